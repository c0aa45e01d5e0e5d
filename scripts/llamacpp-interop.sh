#!/usr/bin/env bash
# Interop with llama.cpp itself (not part of `cargo test`: it needs llama.cpp built, ~10 minutes
# the first time, by ../shared/tools/llamacpp-build):
#  1. for every fixture checkpoint and every quantized file type, `cinder convert` gives the
#     same tensors, byte for byte, as `cinder convert --type f32` followed by llama.cpp's own
#     `llama-quantize` (so cinder's type plan and quantizers are llama-quantize's);
#  2. llama.cpp's own converter (convert_hf_to_gguf.py --outtype f32) gives the same tensors and,
#     key for key, the same metadata as `cinder convert --type f32` (except the naming keys
#     general.name/size_label/basename/finetune);
#  3. llama.cpp loads cinder's stories260k GGUF and generates the documented greedy story.
# Usage: scripts/llamacpp-interop.sh   (from the repository root; ../shared beside it)
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(../shared/tools/llamacpp-build --env --python)"
cargo build --release -q -p cinder
cinder=target/release/cinder
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
for m in stories260k tiny-llama2-f16 tiny-llama2-bf16-gqa; do
  $cinder convert "../shared/fixtures/models/$m" -o "$out/$m.f32.gguf" --type f32 --quiet
  "$LLAMA_CPP_PY" "$LLAMA_CPP_SRC/convert_hf_to_gguf.py" "../shared/fixtures/models/$m" --outtype f32 \
    --outfile "$out/$m.f32.llama.gguf" >"$out/convert.log" 2>&1
  python3 scripts/gguf_tensors_equal.py "$out/$m.f32.gguf" "$out/$m.f32.llama.gguf" || fail=1
  python3 scripts/gguf_metadata_diff.py "$out/$m.f32.gguf" "$out/$m.f32.llama.gguf" \
    --ignore general.name,general.size_label,general.basename,general.finetune || fail=1
  for t in q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k; do
    $cinder convert "../shared/fixtures/models/$m" -o "$out/$m.$t.cinder.gguf" --type "$t" --quiet
    "$LLAMA_CPP_BIN/llama-quantize" "$out/$m.f32.gguf" "$out/$m.$t.llama.gguf" "$t" >"$out/quantize.log" 2>&1
    python3 scripts/gguf_tensors_equal.py "$out/$m.$t.cinder.gguf" "$out/$m.$t.llama.gguf" || fail=1
  done
done
story=$("$LLAMA_CPP_BIN/llama-simple" -m "$out/stories260k.f32.gguf" -n 40 "Once upon a time" 2>/dev/null)
echo "llama.cpp on cinder's stories260k GGUF: $story"
case "$story" in
  *"Once upon a time, there was a little girl named Lily. She loved to play outside in the park."*) ;;
  *) echo "FAIL: llama.cpp did not generate the documented story" >&2; fail=1 ;;
esac
[ "$fail" = 0 ] && echo "llamacpp-interop: all checks passed" || { echo "llamacpp-interop: FAILED" >&2; exit 1; }
