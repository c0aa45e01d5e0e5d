#!/usr/bin/env bash
# Build every fuzz target and run each for SECONDS (default 20) from seeds made of real files:
# the GGUF writer's seeds (corpus-seeds/: container files, and tiny complete Llama models of a
# few KB in several weight types, which keep model_load fast), stories260k's safetensors and
# tokenizer.model, a tiny tokenizer.model, and fuzz/seeds/. Needs a nightly toolchain and
# cargo-fuzz. The corpora live in fuzz/corpus/ (not in git).
#   fuzz/run-all.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
corpus=corpus
mkdir -p "$corpus"/{gguf_parse,model_load,model_config,safetensors,spm_model,tokenize,chat_template}
cp corpus-seeds/*.bin corpus-seeds/*.gguf "$corpus/gguf_parse/"
cp corpus-seeds/model-*.gguf "$corpus/model_load/"
cp ../models/stories260k/model.safetensors "$corpus/safetensors/stories260k.safetensors"
cp ../models/stories260k/tokenizer.model "$corpus/spm_model/stories260k.model"
cp corpus-seeds/tiny.tokenizer.model "$corpus/spm_model/"
cp seeds/tokenize/* "$corpus/tokenize/"
cp seeds/chat_template/* "$corpus/chat_template/"
cargo +nightly fuzz build
for t in gguf_parse model_load model_config safetensors spm_model tokenize chat_template; do
  echo "== fuzz $t for ${secs}s"
  set +e
  # The model seeds are under 24 KB; longer inputs only slow model_load down.
  max_len=()
  [ "$t" = model_load ] && max_len=(-max_len=32768)
  cargo +nightly fuzz run "$t" "$corpus/$t" -- "${max_len[@]}" -max_total_time="$secs" -timeout=1 \
    -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 > "$corpus/$t.log" 2>&1
  status=$?
  set -e
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec)" "$corpus/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$corpus/$t.log" >&2
    echo "fuzz target $t failed" >&2
    exit 1
  fi
done
