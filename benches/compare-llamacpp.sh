#!/usr/bin/env bash
# compare-llamacpp.sh: cinder's kernels against llama.cpp's (test-quantize-perf), one thread each,
# printed as a markdown table of throughputs and their ratio (cinder / llama.cpp; > 1: cinder
# faster).
#
# Usage (from anywhere):
#   benches/compare-llamacpp.sh                  # all kernels, k = 4096 and 11008, best Isa
#   benches/compare-llamacpp.sh --quick          # smoke run: tiny iteration counts, no numbers
#   benches/compare-llamacpp.sh --isa avx2 --types "q4_0 q8_0 q4_K q6_K" --sizes 4096 --cpu 1
# Options:
#   --quick         criterion --quick and 100 llama.cpp iterations (checks the plumbing only)
#   --isa NAME      cinder kernel set to compare (default: the best this CPU runs)
#   --types "..."   llama.cpp type names (default: q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K
#                   q6_K f16)
#   --sizes "..."   row lengths (default: 4096 11008, Llama 2 7B's)
#   --iters N       llama.cpp iterations per case (default 200000)
#   --cpu N         pin both programs to CPU N with taskset (default: not pinned)
#
# llama.cpp comes from ../shared/tools/llamacpp-build (built on first use, ~8 minutes) unless
# LLAMA_CPP_BIN is already set. Raw outputs are kept in target/compare-llamacpp/.
#
# What is compared (same row length, same weight type):
#   vec_dot      llama.cpp `vec_dot_q` "quantized throughput"  vs  cinder `vec_dot/<w>_<a>/<k>/<isa>`
#                (weight bytes per second)
#   dequantize   llama.cpp `dequantize_row_q` "quantized throughput"  vs  `dequantize/<t>/<k>/<isa>`
#                (q4_0, q8_0, q6_K, f16: the ones cinder has kernels for)
#   quantize     llama.cpp `quantize_row_q_dot` "float32 throughput" of q4_0 / q4_1 / q4_K (their
#                activation types q8_0 / q8_1 / q8_K)  vs  `quantize/q8_0|q8_1|q8_k/<k>/<isa>`
#                (f32 bytes per second)
# Caveats, read before quoting a ratio:
#   - llama.cpp prints GiB/s; they are converted to GB/s (x 1.073741824) like criterion's.
#   - test-quantize-perf times every call on its own (clock_gettime + rdtsc inside the window),
#     which at L1 sizes (~100 ns per call) costs it some tens of ns per call; criterion amortises
#     its timer over many calls. Small-row ratios therefore flatter cinder somewhat.
#   - its vec_dot_q quantizes both operands with the weight type's quantizer (not the activation
#     type); the work per call is the same kernel, the activation bytes differ.
#   - f16: llama.cpp's vec_dot is f16 x f16, cinder's f16 x f32 (same weight bytes).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WS=$(cd "$HERE/.." && pwd)
OUT=$WS/target/compare-llamacpp
QUICK=0 ISA="" CPU="" ITERS=200000
TYPES="q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K f16"
SIZES="4096 11008"
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --isa) ISA=$2; shift ;;
    --types) TYPES=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --iters) ITERS=$2; shift ;;
    --cpu) CPU=$2; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "compare-llamacpp: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$QUICK" = 1 ] && ITERS=100
say() { echo "compare-llamacpp: $*" >&2; }
PIN=()
if [ -n "$CPU" ]; then
  command -v taskset >/dev/null || { say "--cpu needs taskset"; exit 1; }
  PIN=(taskset -c "$CPU")
fi
mkdir -p "$OUT"

# --- llama.cpp -------------------------------------------------------------------------------
if [ -z "${LLAMA_CPP_BIN:-}" ]; then
  eval "$(cd "$WS" && ../shared/tools/llamacpp-build --env)"
fi
TQP=$LLAMA_CPP_BIN/test-quantize-perf
[ -x "$TQP" ] || { say "$TQP not found (is llama.cpp built? see ../shared/tools/llamacpp-build)"; exit 1; }
args=(--op vec_dot_q --op dequantize_row_q --op quantize_row_q_dot -i "$ITERS")
for t in $TYPES; do args+=(--type "$t"); done
for s in $SIZES; do args+=(--size "$s"); done
say "running test-quantize-perf ${args[*]}"
"${PIN[@]}" "$TQP" "${args[@]}" >"$OUT/llamacpp.txt"
# -> "op type size avg_cycles_per_32 f32_GiBps q_GiBps"
awk '
  /^[^ ]/                 { type = $1; next }
  /^  [a-z]/              { op = $1; next }
  /^    [0-9]+ values/    { size = $1; next }
  /avg cycles/            { cyc = $NF }
  /float32 throughput/    { f32 = $(NF-1) }
  /quantized throughput/  { print op, type, size, cyc, f32, $(NF-1) }
' "$OUT/llamacpp.txt" >"$OUT/llamacpp.tsv"

# --- cinder ----------------------------------------------------------------------------------
cd "$WS"
# Build through `cargo bench` itself: `cargo build --release` would use another profile.
cargo bench -q -p cinder-benches --bench kernels --no-run
if [ -z "$ISA" ]; then
  ISA=$(cargo bench -q -p cinder-benches --bench kernels -- --list 'vec_dot/f32_f32/4096/' 2>/dev/null \
        | sed -n 's|^vec_dot/f32_f32/4096/\([a-z0-9]*\): benchmark$|\1|p' | tail -1)
  [ -n "$ISA" ] || { say "could not list cinder's benchmarks"; exit 1; }
fi
lower() { echo "$1" | tr 'A-Z' 'a-z'; }
# cinder bench id for (llama.cpp op, llama.cpp type, size), or nothing when cinder has none.
cinder_id() {
  local op=$1 t; t=$(lower "$2")
  case $op in
    vec_dot_q) case $t in
        q4_0|q5_0|q8_0) echo "vec_dot/${t}_q8_0/$3/$ISA" ;;
        q4_1|q5_1) echo "vec_dot/${t}_q8_1/$3/$ISA" ;;
        q2_k|q3_k|q4_k|q5_k|q6_k) echo "vec_dot/${t}_q8_k/$3/$ISA" ;;
        f16) echo "vec_dot/f16_f32/$3/$ISA" ;;
      esac ;;
    dequantize_row_q) case $t in
        q4_0|q8_0|q6_k|f16) echo "dequantize/$t/$3/$ISA" ;;
      esac ;;
    quantize_row_q_dot) case $t in
        q4_0) echo "quantize/q8_0/$3/$ISA" ;;
        q4_1) echo "quantize/q8_1/$3/$ISA" ;;
        q4_k) echo "quantize/q8_k/$3/$ISA" ;;
      esac ;;
  esac
}
ids=()
while read -r op t size _; do
  id=$(cinder_id "$op" "$t" "$size")
  [ -n "$id" ] && ids+=("$id")
done <"$OUT/llamacpp.tsv"
[ ${#ids[@]} -gt 0 ] || { say "no llama.cpp case has a cinder twin"; exit 1; }
# One criterion run over an anchored alternation of the ids.
filter="^($(printf '%s|' "${ids[@]}" | sed 's/|$//'))\$"
crit=()
[ "$QUICK" = 1 ] && crit+=(--quick)
say "running cinder's criterion benches (${#ids[@]} cases, isa $ISA)"
"${PIN[@]}" cargo bench -q -p cinder-benches --bench kernels -- "${crit[@]}" "$filter" \
  >"$OUT/cinder.txt" 2>"$OUT/cinder.stderr"
# -> "id GBps" (middle estimate of the thrpt line, in decimal GB/s)
awk '
  function gb(v, u) {
    if (u == "B/s") return v / 1e9; if (u == "KB/s") return v / 1e6
    if (u == "MB/s") return v / 1e3; if (u == "GB/s") return v; if (u == "TB/s") return v * 1e3
    return -1
  }
  /^[a-z_]+\/[^ ]+/       { id = $1 }
  # The first thrpt line after an id is the estimate; a later one (under "change:") is a delta.
  /thrpt:/ && id != ""    { for (i = 1; i <= NF; i++) if ($i == "thrpt:") print id, gb($(i+3), $(i+4)); id = "" }
' "$OUT/cinder.txt" >"$OUT/cinder.tsv"

# --- table -----------------------------------------------------------------------------------
echo "## cinder ($ISA) vs llama.cpp (test-quantize-perf), 1 thread$([ "$QUICK" = 1 ] && echo ', QUICK RUN: not a measurement')"
echo
echo "| op | type | k | llama.cpp GB/s | llama.cpp cycles/32 | cinder GB/s | cinder / llama.cpp |"
echo "|---|---|---:|---:|---:|---:|---:|"
missing=0
while read -r op t size cyc f32 q; do
  id=$(cinder_id "$op" "$t" "$size")
  [ -n "$id" ] || continue
  case $op in quantize_row_q_dot) ref=$f32 ;; *) ref=$q ;; esac
  c=$(awk -v id="$id" '$1 == id { print $2 }' "$OUT/cinder.tsv" | tail -1)
  if [ -z "$c" ]; then missing=$((missing + 1)); c="?"; fi
  awk -v op="$op" -v t="$t" -v k="$size" -v ref="$ref" -v cyc="$cyc" -v c="$c" -v id="$id" 'BEGIN {
    l = ref * 1.073741824
    r = (c == "?" || l == 0) ? "?" : sprintf("%.2f", c / l)
    cs = (c == "?") ? "?" : sprintf("%.2f", c)
    printf "| %s | %s (`%s`) | %s | %.2f | %s | %s | %s |\n", op, t, id, k, l, cyc, cs, r
  }'
done <"$OUT/llamacpp.tsv"
if [ "$missing" -gt 0 ]; then
  say "$missing cinder results missing (see $OUT/cinder.txt and cinder.stderr)"
  exit 1
fi
