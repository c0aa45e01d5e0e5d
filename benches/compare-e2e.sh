#!/usr/bin/env bash
# compare-e2e.sh: end-to-end speed of cinder against llama.cpp on the SAME GGUF files, same
# threads, alternating A B A B so machine drift cancels: `cinder bench` against `llama-bench`,
# both -p P -n N -r R, printed as a markdown table with cinder/llama.cpp ratios (> 1: cinder
# faster) per round and their geometric mean. Before each pair, the `bandwidth` probe reads
# memory at the same thread count; generation rows also give each program's fraction of it
# (weight bytes per token x tokens per second / bandwidth, the probe's best pass).
#
# Usage (from anywhere):
#   benches/compare-e2e.sh [options] MODEL.gguf [MODEL.gguf ...]
#   benches/compare-e2e.sh --synth DIR            # write the issue's synthetic models into DIR
# Options:
#   -p N            prompt tokens (pp test, default 512)
#   -n N            generated tokens (tg test, default 128)
#   -r N            repetitions inside each program run (default 3)
#   -t "1 2"        thread counts (default "1 2")
#   --rounds N      A B alternations per model and thread count (default 2)
#   -d N            also at context depth N (llama-bench's -d: the tests start after N tokens)
#   --quick         -p 16 -n 4 -r 1 --rounds 1 (checks the plumbing only; no numbers to quote)
#   --kernels SET   cinder's kernel set (`cinder bench --kernels SET`; default: the best this
#                   CPU has)
#   --llama-cpu C   which llama.cpp build: native (default), avx2 or avx2vnni
#                   (`llamacpp-build --cpu C`); pair `--kernels avx2` with `--llama-cpu avx2`
#   --synth DIR     make TinyLlama-1.1B-shaped q4_0 / q8_0 / q4_k_m / q5_k_m / q6_k and
#                   Llama-2-7B-shaped q4_0 / q8_0 / q4_k_m files with synth-model (about 17 GB
#                   in all), then exit; --synth-only "shape:type ..." limits the list
# cinder and the probe are built with `cargo build --release -p cinder` and `-p cinder-benches
# --bin bandwidth` (target/release/cinder or $CINDER; target/release/bandwidth or $BANDWIDTH);
# llama.cpp comes from ../shared/tools/llamacpp-build unless LLAMA_CPP_BIN is set. Raw JSON
# outputs are kept in target/compare-e2e/. Do not run it while something else builds.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WS=$(cd "$HERE/.." && pwd)
OUT=$WS/target/compare-e2e
P=512 N=128 R=3 THREADS="1 2" ROUNDS=2 SYNTH="" DEPTH="" KERNELS="" LLAMA_CPU=native
SYNTH_LIST="tinyllama-1.1b:q4_0 tinyllama-1.1b:q8_0 tinyllama-1.1b:q4_k_m tinyllama-1.1b:q5_k_m tinyllama-1.1b:q6_k llama2-7b:q4_0 llama2-7b:q8_0 llama2-7b:q4_k_m"
MODELS=()
while [ $# -gt 0 ]; do
  case $1 in
    -p) P=$2; shift ;;
    -n) N=$2; shift ;;
    -r) R=$2; shift ;;
    -t) THREADS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -d) DEPTH=$2; shift ;;
    --quick) P=16 N=4 R=1 ROUNDS=1 ;;
    --kernels) KERNELS=$2; shift ;;
    --llama-cpu) LLAMA_CPU=$2; shift ;;
    --synth) SYNTH=$2; shift ;;
    --synth-only) SYNTH_LIST=$2; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    -*) echo "compare-e2e: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) MODELS+=("$1") ;;
  esac
  shift
done
say() { echo "compare-e2e: $*" >&2; }

if [ -n "$SYNTH" ]; then
  mkdir -p "$SYNTH"
  (cd "$WS" && cargo build --release -q -p cinder-benches --bin synth-model)
  for spec in $SYNTH_LIST; do
    shape=${spec%%:*} ty=${spec##*:}
    f=$SYNTH/$shape.$ty.gguf
    [ -s "$f" ] && { say "$f exists"; continue; }
    say "writing $f"
    "$WS/target/release/synth-model" --shape "$shape" --type "$ty" -o "$f"
  done
  exit 0
fi
[ ${#MODELS[@]} -gt 0 ] || { echo "compare-e2e: no model given (see --help)" >&2; exit 2; }
for m in "${MODELS[@]}"; do
  [ -f "$m" ] || { echo "compare-e2e: $m: no such file" >&2; exit 2; }
done

CINDER=${CINDER:-$WS/target/release/cinder}
if [ -z "${CINDER_SKIP_BUILD:-}" ]; then
  (cd "$WS" && cargo build --release -q -p cinder && cargo build --release -q -p cinder-benches --bin bandwidth)
fi
BANDWIDTH=${BANDWIDTH:-$WS/target/release/bandwidth}
[ -x "$BANDWIDTH" ] || { echo "compare-e2e: $BANDWIDTH not found (cargo build --release -p cinder-benches --bin bandwidth)" >&2; exit 1; }
if [ -z "${LLAMA_CPP_BIN:-}" ]; then
  eval "$("$WS/../shared/tools/llamacpp-build" --env --cpu "$LLAMA_CPU")"
fi
CINDER_ARGS=() LLAMA_ARGS=()
[ -n "$KERNELS" ] && CINDER_ARGS+=(--kernels "$KERNELS")
[ -n "$DEPTH" ] && { CINDER_ARGS+=(-d "$DEPTH"); LLAMA_ARGS+=(-d "$DEPTH"); }
say "cinder ${KERNELS:-(default kernels)} against llama.cpp built with --cpu $LLAMA_CPU ($LLAMA_CPP_BIN)" 
LLAMA_BENCH=$LLAMA_CPP_BIN/llama-bench
[ -x "$LLAMA_BENCH" ] || { echo "compare-e2e: $LLAMA_BENCH not found" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

for m in "${MODELS[@]}"; do
  BPT=$("$BANDWIDTH" -t 1 --mib 1 -r 1 --model "$m" | python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin][-1]["bytes_per_token"])')
  for t in $THREADS; do
    for round in $(seq 1 "$ROUNDS"); do
      base=$OUT/$(basename "$m" .gguf).t$t.r$round
      say "$(basename "$m") t=$t round $round: bandwidth probe"
      "$BANDWIDTH" -t "$t" > "$base.bw.json"
      say "$(basename "$m") t=$t round $round: cinder"
      "$CINDER" bench -m "$m" -p "$P" -n "$N" -r "$R" -t "$t" ${CINDER_ARGS[@]+"${CINDER_ARGS[@]}"} -o json > "$base.cinder.json"
      say "$(basename "$m") t=$t round $round: llama-bench"
      "$LLAMA_BENCH" -m "$m" -p "$P" -n "$N" -r "$R" -t "$t" ${LLAMA_ARGS[@]+"${LLAMA_ARGS[@]}"} -o json > "$base.llama.json" 2> "$base.llama.err"
      python3 - "$m" "$t" "$round" "$base.cinder.json" "$base.llama.json" "$base.bw.json" "$BPT" >> "$RESULTS" <<'PY'
import json, sys
model, t, rnd, cf, lf, bwf, bpt = sys.argv[1:8]
bw = json.loads(open(bwf).read().splitlines()[0])["gb_per_s"] * 1e9
def tests(path):
    out = {}
    for r in json.load(open(path)):
        name = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        if r.get("n_depth", 0):
            name += f" @ d{r['n_depth']}"
        out[name] = r["avg_ts"]
    return out
c, l = tests(cf), tests(lf)
for name in sorted(set(c) & set(l)):
    print(json.dumps({"model": model, "threads": int(t), "round": int(rnd), "test": name,
                      "cinder": c[name], "llama": l[name], "bandwidth": bw,
                      "bytes_per_token": int(bpt)}))
PY
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, math, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    groups.setdefault((r["model"], r["threads"], r["test"]), []).append(r)
print("| model | threads | test | cinder t/s | llama.cpp t/s | ratio per round | ratio (geo. mean) "
      "| read GB/s | cinder / bandwidth | llama.cpp / bandwidth |")
print("|---|---:|---|---:|---:|---|---:|---:|---:|---:|")
for (m, t, test), rs in groups.items():
    ratios = [r["cinder"] / r["llama"] for r in rs]
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    c = sum(r["cinder"] for r in rs) / len(rs)
    l = sum(r["llama"] for r in rs) / len(rs)
    bw = sum(r["bandwidth"] for r in rs) / len(rs)
    if test.startswith("tg"):
        # Generation reads every weight once per token: the fraction of the probe's bandwidth
        # it reaches (per round, then the mean).
        frac = lambda k: sum(r[k] * r["bytes_per_token"] / r["bandwidth"] for r in rs) / len(rs)
        fc, fl = f"{frac('cinder'):.0%}", f"{frac('llama'):.0%}"
    else:
        fc = fl = ""
    print(f"| {os.path.basename(m)} | {t} | {test} | {c:.2f} | {l:.2f} | "
          f"{' '.join(f'{x:.2f}' for x in ratios)} | {geo:.2f} | {bw / 1e9:.1f} | {fc} | {fl} |")
PY
