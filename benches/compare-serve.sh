#!/usr/bin/env bash
# compare-serve.sh: `cinder serve` against llama-server under concurrent load, on the SAME GGUF
# files and threads: for each model and client count C, each server in turn (llama-server with
# -np C, cinder with --parallel C) answers C clients that each send R streaming completions of
# a 256-token prompt asking for 128 tokens (ignore_eos, greedy; a different prompt per request).
# Reports aggregate generated tokens/s and median time to first token, and cinder/llama ratios
# (throughput: > 1 cinder faster; TTFT: < 1 cinder faster), as a markdown table.
#
# Usage:
#   benches/compare-serve.sh [options] MODEL.gguf [MODEL.gguf ...]
# Options:
#   -c "1 4 8"      client counts (default "1 4 8")
#   -t N            threads of both servers (default 2)
#   -r N            requests per client (default 2)
#   -p N / -n N     prompt tokens / generated tokens (default 256 / 128)
#   --vocab N       prompt token ids are drawn below N (default 32000, Llama 2's vocabulary)
#   --quick         -c "1 2" -r 1 -p 32 -n 8 (checks the plumbing; no numbers to quote)
# cinder: target/release/cinder (cargo build --release -p cinder), or $CINDER. llama-server
# comes from ../shared/tools/llamacpp-build unless LLAMA_CPP_BIN is set. Raw JSON lines are
# kept in target/compare-serve/. Run it on an otherwise idle machine.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WS=$(cd "$HERE/.." && pwd)
OUT=$WS/target/compare-serve
CLIENTS="1 4 8" T=2 R=2 P=256 N=128 VOCAB=32000
MODELS=()
while [ $# -gt 0 ]; do
  case $1 in
    -c) CLIENTS=$2; shift ;;
    -t) T=$2; shift ;;
    -r) R=$2; shift ;;
    -p) P=$2; shift ;;
    -n) N=$2; shift ;;
    --vocab) VOCAB=$2; shift ;;
    --quick) CLIENTS="1 2" R=1 P=32 N=8 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "compare-serve: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) MODELS+=("$1") ;;
  esac
  shift
done
say() { echo "compare-serve: $*" >&2; }
[ ${#MODELS[@]} -gt 0 ] || { say "no model given (see --help)"; exit 2; }

CINDER=${CINDER:-$WS/target/release/cinder}
[ -x "$CINDER" ] || { say "$CINDER missing: cargo build --release -p cinder (or set CINDER)"; exit 1; }
if [ -z "${LLAMA_CPP_BIN:-}" ]; then
  eval "$("$WS/../shared/tools/llamacpp-build" --env)"
fi
LLAMA_SERVER=$LLAMA_CPP_BIN/llama-server
[ -x "$LLAMA_SERVER" ] || { say "$LLAMA_SERVER missing"; exit 1; }
mkdir -p "$OUT"
PORT=$((20000 + RANDOM % 20000))
CTX=$((P + N + 64))

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap stop_server EXIT

wait_health() {
  for _ in $(seq 1 600); do
    if curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { say "server exited (log: $1)"; return 1; }
    sleep 0.2
  done
  say "server not ready after 120 s (log: $1)"; return 1
}

# run_one NAME MODEL CLIENTS -> one JSON line
run_one() {
  local name=$1 model=$2 c=$3 log="$OUT/$1-$(basename "$2")-c$3.log"
  PORT=$((PORT + 1))
  case $name in
    llama) "$LLAMA_SERVER" -m "$model" -t "$T" -tb "$T" -np "$c" -c $((CTX * c)) \
             --host 127.0.0.1 --port "$PORT" >"$log" 2>&1 & ;;
    cinder) "$CINDER" serve -m "$model" -t "$T" --parallel "$c" -c "$CTX" \
             --host 127.0.0.1 --port "$PORT" >"$log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  wait_health "$log"
  python3 "$HERE/serve/load.py" "http://127.0.0.1:$PORT" --clients "$c" --requests "$R" \
    --prompt-tokens "$P" --tokens "$N" --vocab "$VOCAB" || { say "$name failed: $log"; exit 1; }
  stop_server
}

echo "| model | clients | llama-server gen t/s | cinder gen t/s | ratio | llama-server TTFT ms | cinder TTFT ms | ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for model in "${MODELS[@]}"; do
  for c in $CLIENTS; do
    l=$(run_one llama "$model" "$c")
    k=$(run_one cinder "$model" "$c")
    echo "{\"model\": \"$(basename "$model")\", \"llama\": $l, \"cinder\": $k}" >>"$OUT/results.jsonl"
    python3 - "$(basename "$model")" "$c" "$l" "$k" <<'PY'
import json, sys
m, c, l, k = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"| {m} | {c} | {l['gen_tps']:.2f} | {k['gen_tps']:.2f} | {k['gen_tps'] / l['gen_tps']:.2f}x "
      f"| {l['ttft_median_s'] * 1e3:.0f} | {k['ttft_median_s'] * 1e3:.0f} "
      f"| {k['ttft_median_s'] / l['ttft_median_s']:.2f} |")
for name, r in (("llama-server", l), ("cinder", k)):
    if r["short_answers"]:
        print(f"compare-serve: {name} gave {r['short_answers']} answers shorter than asked",
              file=sys.stderr)
PY
  done
done
