#!/usr/bin/env bash
# arm-icount.sh: instructions the aarch64 kernels execute per 256 weight x activation products,
# counted under qemu on this x86 machine (aarch64 speed cannot be timed here). Builds the
# kernels crate's `icount` example for aarch64 with the toolchain of ../shared/tools/aarch64-test
# (run that once first: it installs the toolchain, the cross linker and qemu-user), then for
# each set, kernel and column count runs it under `qemu-aarch64 -cpu max -singlestep -d
# exec,nochain -dfilter RANGES`, RANGES being the kernel function and the cinder helpers it
# calls (activation summaries, f16 conversion), and counts the executed instructions. One call
# at NB and 2 NB (super-blocks of 256; 32-value blocks x 8 for Q4_0/Q8_0), each minus a run
# with one call fewer (the first call also allocates thread-local buffers): the difference
# between the two sizes is the cost of NB super-blocks, divided by the 16 x COLS x NB x 256 / 256
# products it makes. Prints a markdown table.
#
# Usage: benches/arm-icount.sh [NB]    (default 2; the count is linear in NB)
set -euo pipefail
WS=$(cd "$(dirname "$0")/.." && pwd)
NB=${1:-2}
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_DIR=$WS/target/cross-aarch64
for tool in /usr/bin/cargo qemu-aarch64 aarch64-linux-gnu-nm python3; do
  command -v "$tool" >/dev/null || { echo "arm-icount: $tool missing (run ../shared/tools/aarch64-test once)" >&2; exit 1; }
done
(cd "$WS" && /usr/bin/cargo build -q --release --target aarch64-unknown-linux-gnu -p cinder-kernels --example icount)
BIN=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/examples/icount
LOG=$(mktemp /tmp/arm-icount.XXXXXX)
trap 'rm -f "$LOG"' EXIT

# The address ranges (as qemu-user loads a PIE: at 0x5500000000) of the functions whose names
# match the regex $1, plus the helpers every kernel may call.
ranges() {
  aarch64-linux-gnu-nm -S --defined-only -C "$BIN" | python3 -c '
import re, sys
want = re.compile(sys.argv[1] + r"|strips::act_k$|strips::act_blocks$|f16_to_f32")
out = []
for line in sys.stdin:
    p = line.split(None, 3)
    if len(p) == 4 and p[2] in "tT" and want.search(p[3]):
        a = int(p[0], 16) + 0x5500000000
        out.append(f"0x{a:x}..0x{a + int(p[1], 16) - 1:x}")
print(",".join(out))' "$1"
}

# Executed instructions inside the ranges: count KERNEL ISA NB COLS CALLS RANGES.
count() {
  qemu-aarch64 -cpu max -singlestep -d exec,nochain -dfilter "$6" -D "$LOG" "$BIN" "$1" "$2" "$3" "$4" "$5" >/dev/null
  grep -c '^Trace' "$LOG" || true
}

# Instructions per 256 products: per256 KERNEL ISA COLS FUNCTION_REGEX.
per256() {
  local k=$1 isa=$2 cols=$3 r scale=1 n1 n2
  r=$(ranges "$4")
  case $k in q4_0|q8_0) scale=8 ;; esac
  local nb1=$((NB * scale)) nb2=$((2 * NB * scale))
  n1=$(( $(count "$k" "$isa" $nb1 "$cols" 2 "$r") - $(count "$k" "$isa" $nb1 "$cols" 1 "$r") ))
  n2=$(( $(count "$k" "$isa" $nb2 "$cols" 2 "$r") - $(count "$k" "$isa" $nb2 "$cols" 1 "$r") ))
  local rows=16
  case $k in v*) rows=1 ;; esac
  python3 -c "print(f'{($n2 - $n1) / ($rows * $cols * $NB):.1f}')"
}

echo "| set | kernel | strips, full tile | strips, 1 column | plain row (vec_dot) |"
echo "|---|---|---:|---:|---:|"
for isa in neon dotprod i8mm; do
  full=4; [ "$isa" = neon ] && full=3
  for k in q4_0 q8_0 q4_k q5_k q6_k; do
    f="arm::(neon|dotprod|i8mm)::gemm_${k}x16_q8_(0|k)$"
    t=$(per256 "$k" "$isa" "$full" "$f")
    o=$(per256 "$k" "$isa" 1 "$f")
    v=-
    case $k in q?_k) v=$(per256 "v$k" "$isa" 1 "arm::(neon|dotprod|i8mm)::vec_dot_${k}_q8_k$") ;; esac
    echo "| $isa | ${k^^} | $t (16 rows x $full cols) | $o | $v |"
  done
done
