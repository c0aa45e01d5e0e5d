#!/usr/bin/env bash
# Same GGUF file, cinder's logits against llama.cpp's (llama-cpp-python, f32 KV cache on both
# sides), for every fixture model, file type and reference prompt: per-position relative RMS
# error rms(cinder - llama.cpp) / rms(llama.cpp), its mean and max over the prompt's positions,
# the worst position, max |dlogit| and the number of positions whose argmax differs.
# The files are made by `cinder convert`; the issue's bar is max rel RMS <= 1e-3.
# Usage: scripts/compare-logits-llamacpp.sh [TYPES...]   (default: f32 f16 bf16 q8_0 q4_0 q4_k_m;
#        f16/bf16 are only run on the checkpoint stored in that type, f32 on every model)
# Needs ../shared/tools/llamacpp-logits (builds llama-cpp-python once, ~5 min).
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=../shared/fixtures
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(f32 f16 bf16 q8_0 q4_0 q4_k_m)
cargo build --release -q -p cinder
cinder=${CARGO_TARGET_DIR:-target}/release/cinder
py=${LLAMA_CPP_CACHE:-$HOME/.cache/cinder-llamacpp/${LLAMA_CPP_PY_VERSION:-0.3.36}}/venv-logits/bin/python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-22s %-7s %-7s %4s %8s %8s %4s %8s %3s\n' model type prompt npos mean_rel max_rel @pos max_abs argmax_diff
for m in stories260k tiny-llama2-f16 tiny-llama2-bf16-gqa; do
  ref=$fixtures/reference/$m/reference.json
  vocab=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['config']['vocab_size'])" "$ref")
  for t in "${types[@]}"; do
    case "$t/$m" in
      f16/stories260k | f16/tiny-llama2-bf16-gqa | bf16/stories260k | bf16/tiny-llama2-f16) continue ;;
    esac
    f=$out/$m.$t.gguf
    $cinder convert "$fixtures/models/$m" -o "$f" --type "$t" --quiet --force
    n=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['prompts']))" "$ref")
    for ((i = 0; i < n; i++)); do
      read -r name ids < <(python3 -c "
import json, sys
p = json.load(open(sys.argv[1]))['prompts'][int(sys.argv[2])]
print(p['name'], ','.join(map(str, p['input_ids'])))" "$ref" "$i")
      ../shared/tools/llamacpp-logits "$f" "$ids" "$out/llama.f32" --threads 2 2>/dev/null
      $cinder --llamacpp-rounding logits -m "$f" --ids "$ids" -o "$out/cinder.f32" 2>/dev/null
      printf '%-22s %-7s %-7s ' "$m" "$t" "$name"
      "$py" scripts/compare_logits.py "$out/cinder.f32" "$out/llama.f32" "$vocab"
    done
  done
done
