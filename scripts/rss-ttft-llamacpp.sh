#!/usr/bin/env bash
# Memory and cold-start latency of `cinder run` against llama.cpp's llama-completion on one GGUF
# (e.g. a Llama-2-7B-shaped file from `synth-model --shape llama2-7b --type q4_0`), same threads
# and context:
#  - max RSS (/usr/bin/time -v) while generating 16 tokens, next to file size + KV cache size;
#  - time to first token from a cold page cache: the file is evicted (posix_fadvise DONTNEED)
#    before every run, then the wall time of a run that generates ONE token (load + prompt +
#    first token, llama.cpp with its default warmup), the two programs alternating.
# Run it on an otherwise idle machine (no builds).
# Usage: scripts/rss-ttft-llamacpp.sh MODEL.gguf [REPEATS=3] [THREADS=2] [CTX=512]
#   LLAMA_ARGS="--no-repack" adds flags to llama-completion (llama.cpp repacks Q4_0 weights into
#   anonymous memory by default: a copy of the weights, hence its RSS and load time).
set -euo pipefail
cd "$(dirname "$0")/.."
f=$1; reps=${2:-3}; threads=${3:-2}; ctx=${4:-512}
eval "$(../shared/tools/llamacpp-build --env --python)"
cinder=${CARGO_TARGET_DIR:-target}/release/cinder
[ -x "$cinder" ] || cargo build --release -q -p cinder
evict() { python3 -c "import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)" "$f"; }
prompt="Once upon a time"
run_cinder() { "$cinder" run -m "$f" -p "$prompt" -n "$1" -c "$ctx" -t "$threads" --temp 0; }
run_llama() { "$LLAMA_CPP_BIN/llama-completion" -m "$f" -p "$prompt" -n "$1" -c "$ctx" -t "$threads" --temp 0 -no-cnv ${LLAMA_ARGS:-}; }
rss_kib() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
wall() { local t0 t1; evict; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
size=$(stat -c %s "$f")
kv=$("$LLAMA_CPP_PY" - "$f" "$ctx" <<'PY'
import sys
from gguf import GGUFReader
# KV cache bytes, f16: 2 (K, V) * layers * ctx * n_kv_heads * head_dim * 2 bytes.
r = GGUFReader(sys.argv[1])
m = {f.name: f.contents() for f in r.fields.values()}
a = m["general.architecture"]
layers, heads = m[f"{a}.block_count"], m[f"{a}.attention.head_count"]
kv_heads = m.get(f"{a}.attention.head_count_kv", heads)
print(2 * layers * int(sys.argv[2]) * kv_heads * (m[f"{a}.embedding_length"] // heads) * 2)
PY
)
mib() { echo "scale=1; $1 / 1048576" | bc; }
echo "file $(mib "$size") MiB, f16 KV cache (ctx $ctx) $(mib "$kv") MiB, bound file + KV + 64 MiB = $(mib $((size + kv + 64 * 1048576))) MiB"
rc=$(rss_kib bash -c "$(declare -f run_cinder); cinder=$cinder f=$f prompt='$prompt' ctx=$ctx threads=$threads; run_cinder 16")
rl=$(rss_kib bash -c "$(declare -f run_llama); LLAMA_ARGS='${LLAMA_ARGS:-}' LLAMA_CPP_BIN=$LLAMA_CPP_BIN f=$f prompt='$prompt' ctx=$ctx threads=$threads; run_llama 16")
echo "max RSS generating 16 tokens: cinder $(mib $((rc * 1024))) MiB, llama.cpp $(mib $((rl * 1024))) MiB, ratio $(echo "scale=2; $rc / $rl" | bc)"
for ((i = 0; i < reps; i++)); do
  tc=$(wall run_cinder 1); tl=$(wall run_llama 1)
  echo "cold time to first token, run $i: cinder ${tc}s, llama.cpp ${tl}s, ratio $(echo "scale=2; $tc / $tl" | bc)"
done
