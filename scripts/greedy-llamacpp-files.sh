#!/usr/bin/env bash
# GGUF files made by llama.cpp's own tools (convert_hf_to_gguf.py --outtype f32, then
# llama-quantize to q8_0, q4_0, q4_k_m with its default mixes) run in cinder with llama.cpp's
# greedy tokens: for every fixture model, file and reference prompt, llama.cpp (llama-cpp-python,
# argmax through its KV cache, default f16 cache) generates N tokens; cinder evaluates prompt +
# those tokens (`cinder logits --cache-type f16`, teacher forced) and the argmax of each step must be
# llama.cpp's token. A difference is reported with both top1 - top2 margins at that step
# (tiny margins mean a legitimate tie-break by rounding).
# Control: the same greedy run by llama.cpp with flash attention on (a second llama.cpp code path)
# against llama.cpp's default (off): "llama.cpp FA" column, steps equal before the first difference.
# Also `cinder run --temp 0` vs llama-simple text on the first prompt (stories260k only: the
# random models' text is noise).
# Usage: scripts/greedy-llamacpp-files.sh [N]   (default 32)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-32}
fixtures=../shared/fixtures
eval "$(../shared/tools/llamacpp-build --env --python)"
cargo build --release -q -p cinder
cinder=${CARGO_TARGET_DIR:-target}/release/cinder
py=${LLAMA_CPP_CACHE:-$HOME/.cache/cinder-llamacpp/${LLAMA_CPP_PY_VERSION:-0.3.36}}/venv-logits/bin/python
# Make sure the llama-cpp-python venv exists (built by llamacpp-logits on first use).
[ -x "$py" ] || ../shared/tools/llamacpp-logits /dev/null 1 /dev/null >/dev/null 2>&1 || true
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-22s %-7s %-10s %-9s %s\n' model file prompt "llama FA" "cinder vs llama.cpp greedy"
for m in stories260k tiny-llama2-f16 tiny-llama2-bf16-gqa; do
  ref=$fixtures/reference/$m/reference.json
  vocab=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['config']['vocab_size'])" "$ref")
  "$LLAMA_CPP_PY" "$LLAMA_CPP_SRC/convert_hf_to_gguf.py" "$fixtures/models/$m" --outtype f32 \
    --outfile "$out/$m.f32.gguf" >"$out/convert.log" 2>&1
  for t in q8_0 q4_0 q4_k_m; do
    "$LLAMA_CPP_BIN/llama-quantize" "$out/$m.f32.gguf" "$out/$m.$t.gguf" "$t" >"$out/quantize.log" 2>&1
  done
  for t in f32 q8_0 q4_0 q4_k_m; do
    f=$out/$m.$t.gguf
    np=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['prompts']))" "$ref")
    for ((i = 0; i < np; i++)); do
      read -r name len ids < <(python3 -c "
import json, sys
p = json.load(open(sys.argv[1]))['prompts'][int(sys.argv[2])]
print(p['name'], len(p['input_ids']), ','.join(map(str, p['input_ids'])))" "$ref" "$i")
      "$py" scripts/greedy_llamacpp.py "$f" "$ids" "$n" "$out/greedy.json"
      all=$(python3 -c "import json,sys; print(sys.argv[1] + ',' + ','.join(map(str, json.load(open(sys.argv[2]))['new_ids'])))" "$ids" "$out/greedy.json")
      $cinder --llamacpp-rounding logits -m "$f" --ids "$all" --cache-type f16 -o "$out/cinder.f32" 2>/dev/null
      "$py" scripts/greedy_llamacpp.py "$f" "$ids" "$n" "$out/greedy_fa.json" --flash-attn
      fa=$(python3 -c "
import json, sys
a, b = (json.load(open(p))['new_ids'] for p in sys.argv[1:3])
print(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a)))" "$out/greedy.json" "$out/greedy_fa.json")
      printf '%-22s %-7s %-10s %-9s ' "$m" "$t" "$name" "$fa/$n"
      "$py" scripts/teacher_forced_argmax.py "$out/cinder.f32" "$vocab" "$len" "$out/greedy.json"
    done
    if [ "$m" = stories260k ]; then
      a=$("$LLAMA_CPP_BIN/llama-simple" -m "$f" -n "$n" "Once upon a time" 2>/dev/null | tr -d '\n')
      a=${a#"<s> "} # llama-simple prints the BOS piece
      b=$($cinder --llamacpp-rounding run -m "$f" -p "Once upon a time" -n "$n" --temp 0 2>/dev/null | tr -d '\n')
      [ "$a" = "$b" ] && echo "  run --temp 0 text = llama-simple text: $b" ||
        printf '  run --temp 0 text DIFFERS\n    llama-simple: %s\n    cinder run:   %s\n' "$a" "$b"
    fi
  done
done
