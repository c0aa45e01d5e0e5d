//! aarch64 column kernels for the 16-row strips ([`crate::repack`]), run by the one strip driver
//! ([`crate::strips`]): Q4_0 and Q8_0 here, the k-quants in the last section. A strip is two
//! halves of 8 rows; every [`Lanes`] group of a half is two 128-bit registers of 4 rows x 4
//! bytes. The three kernel sets differ only in how
//! they multiply bytes:
//!
//! - `dotprod`: `sdot` by element: 4 rows x one 4-byte activation word, 16 products each.
//! - `neon`: the word broadcast (`dup`), then `smull`/`smlal` to i16 and pairwise adds to i32.
//! - `i8mm`: `smmla` on 2 rows x 8 bytes against 2 columns x 8 bytes: two groups are zipped into
//!   8-byte row pieces, two columns' activations into 8-byte column pieces. A single column
//!   (generation) goes through `sdot` instead, which wastes no half of the products.
//!
//! Weights become signed bytes once per block and half, for every column of the call: Q8_0
//! bytes are un-biased (XOR 0x80); Q4_0 nibbles are XORed with 8 (so the 4-bit pattern read as
//! signed is `q - 8`) and either sign-extended (`neon`: values -8..=7, whose i16 sums of eight
//! products cannot overflow) or left in the high half of the byte (`dotprod`, `i8mm`: 16 times
//! the value, one instruction fewer; the i32 sum is then 16 times the block's and is converted
//! with 4 fraction bits, exactly). Every block's integer sum is the scalar twin's; the float
//! step is the scalar's own expression in its order (`sum += isum as f32 * (d_w * d_a)`,
//! multiply then add, no FMA), so the results are bit-equal to `crate::scalar`.

use std::arch::aarch64::*;

use cinder_quant::block::{BlockQ8_0, BlockQ8_K};

use super::cvt_f16x4;
use crate::repack::{self, BlockQ6_Kx16, Lanes, Scales16};
use crate::strips::{self, ActBlock, ActK, BlockStrips, K4Block, StripKernel};

/// How a kernel set multiplies bytes (the `MAC` parameter of [`Blocks`]).
pub(crate) const NEON: u8 = 0;
/// `sdot` by element.
pub(crate) const DOT: u8 = 1;
/// `smmla`.
pub(crate) const MMLA: u8 = 2;

/// Rows per half strip.
const HALF: usize = 8;

/// `f(0), f(1), .., f(n - 1)` (`n <= 8`) through a closure, which LLVM may inline or not. The
/// plain-NEON Q4_0/Q8_0 kernel walks its words this way: with [`unroll!`]'s copies its one-column
/// path measured 136 instructions per 256 products under qemu, through this 105.
#[inline(always)]
fn unroll_fn(n: usize, mut f: impl FnMut(usize)) {
    assert!(n <= 8, "unroll_fn: {n} > 8");
    if n > 0 {
        f(0);
    }
    if n > 1 {
        f(1);
    }
    if n > 2 {
        f(2);
    }
    if n > 3 {
        f(3);
    }
    if n > 4 {
        f(4);
    }
    if n > 5 {
        f(5);
    }
    if n > 6 {
        f(6);
    }
    if n > 7 {
        f(7);
    }
}

/// `body` with `$t` bound to `0, 1, .., n - 1` (`n <= 8`), written out copy by copy: LLVM
/// does not fully unroll loops around inline asm (the `sdot` lane must be a constant in each
/// copy), and a closure called that many times may be left outlined, as a helper function
/// would be.
macro_rules! unroll {
    ($n:expr, |$t:ident| $body:expr) => {{
        let n: usize = $n;
        assert!(n <= 8, "unroll: {n} > 8");
        unroll!(@copies n, $t, $body, 0 1 2 3 4 5 6 7);
    }};
    (@copies $n:ident, $t:ident, $body:expr, $($i:literal)*) => {
        $(
            if $i < $n {
                let $t: usize = $i;
                $body;
            }
        )*
    };
}

/// `acc + sdot(w, word L of a)`: lane `i` gains `sum_{k<4} w[4i + k] * a[4L + k]` (exact).
///
/// # Safety
/// NEON + dotprod.
#[inline(always)]
unsafe fn sdot_lane<const L: i32>(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: dotprod is guaranteed by the caller; registers only, no memory access. The
    // directive lets an unoptimised build assemble this helper outside its dotprod caller.
    unsafe {
        core::arch::asm!(
            ".arch_extension dotprod",
            "sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[{l}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            l = const L,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// [`sdot_lane`] with the word chosen at run time (a constant once unrolled).
///
/// # Safety
/// NEON + dotprod.
#[inline(always)]
unsafe fn sdot_word(acc: int32x4_t, w: int8x16_t, a: int8x16_t, l: usize) -> int32x4_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        match l {
            0 => sdot_lane::<0>(acc, w, a),
            1 => sdot_lane::<1>(acc, w, a),
            2 => sdot_lane::<2>(acc, w, a),
            _ => sdot_lane::<3>(acc, w, a),
        }
    }
}

/// Word `l` of `a` in every i32 lane, as bytes.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn dup_word(a: int8x16_t, l: usize) -> int8x16_t {
    // SAFETY: NEON is guaranteed by the caller.
    unsafe {
        let a = vreinterpretq_s32_s8(a);
        vreinterpretq_s8_s32(match l {
            0 => vdupq_laneq_s32::<0>(a),
            1 => vdupq_laneq_s32::<1>(a),
            2 => vdupq_laneq_s32::<2>(a),
            _ => vdupq_laneq_s32::<3>(a),
        })
    }
}

/// `acc + smmla(w, a)`: `acc[2 i + j] += sum_{k<8} w[8 i + k] * a[8 j + k]` (exact).
///
/// # Safety
/// NEON + i8mm.
#[inline(always)]
unsafe fn smmla(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: i8mm is guaranteed by the caller; registers only, no memory access. The
    // directive lets an unoptimised build assemble this helper outside its i8mm caller.
    unsafe {
        core::arch::asm!(
            ".arch_extension i8mm",
            "smmla {acc:v}.4s, {w:v}.16b, {a:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Rows `4 qi .. 4 qi + 4` of a group, 4 bytes each (the k-quant kernels mask `qi` so that the
/// compiler sees it below 4).
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn qtr(l: &Lanes, qi: usize) -> uint8x16_t {
    let q = &l.0[4 * qi..][..4];
    // SAFETY: `q` is 4 words, 16 readable bytes.
    unsafe { vld1q_u8(q.as_ptr().cast()) }
}

/// The 8 rows' f16 scales of half `h` as f32, rows `0..4` and `4..8`.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn scales(d: &Scales16, h: usize) -> [float32x4_t; 2] {
    let d = &d.0[HALF * h..][..HALF];
    // SAFETY: `d` is 8 readable u16; the conversion is exact.
    unsafe {
        let v = vld1q_u16(d.as_ptr());
        [cvt_f16x4(vget_low_u16(v)), cvt_f16x4(vget_high_u16(v))]
    }
}

/// A 32-value weight format in strips: its signed weight bytes, word by word. Word `t < 8`
/// multiplies activation bytes `4 t .. 4 t + 4`; group `g` holds words `g + 4 j` for
/// `j < PARTS`.
pub(crate) trait Fmt {
    /// 4-byte groups per block.
    const GROUPS: usize;
    /// Words per group.
    const PARTS: usize;
    /// Whether the weights are 16 times their value when `SCALED` is asked for.
    const SCALES: bool;
    /// Whether i16 sums of 8 products of a weight and any activation byte cannot overflow.
    const SMALL: bool;
    /// The signed bytes of the parts of one register of raw (repacked) bytes: part `j` is
    /// the word `g + 4 j` of the group the bytes come from.
    ///
    /// # Safety
    /// NEON.
    unsafe fn split<const SCALED: bool>(raw: uint8x16_t) -> [int8x16_t; 2];
}

/// The signed bytes of the words of group `g`, half `h`: `[part][rows 0..4, rows 4..8]`.
///
/// # Safety
/// NEON; `q` holds the block's groups.
#[inline(always)]
unsafe fn group<F: Fmt, const SCALED: bool>(
    q: &[Lanes],
    h: usize,
    g: usize,
) -> [[int8x16_t; 2]; 2] {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let [x0, x1] = [0, 1].map(|i| F::split::<SCALED>(qtr(&q[g], 2 * h + i)));
        [[x0[0], x1[0]], [x0[1], x1[1]]]
    }
}

/// Q4_0: the low nibbles of group `g` are word `g`, the high ones word `g + 4`.
pub(crate) struct Q4_0;

impl Fmt for Q4_0 {
    const GROUPS: usize = repack::Q4_0_GROUPS;
    const PARTS: usize = 2;
    const SCALES: bool = true;
    const SMALL: bool = true;
    #[inline(always)]
    unsafe fn split<const SCALED: bool>(raw: uint8x16_t) -> [int8x16_t; 2] {
        // SAFETY: NEON is guaranteed by the caller.
        unsafe {
            let x = vreinterpretq_s8_u8(veorq_u8(raw, vdupq_n_u8(0x88)));
            if SCALED {
                [vshlq_n_s8::<4>(x), vandq_s8(x, vdupq_n_s8(0xF0u8 as i8))]
            } else {
                [vshrq_n_s8::<4>(vshlq_n_s8::<4>(x)), vshrq_n_s8::<4>(x)]
            }
        }
    }
}

/// Q8_0: group `g` is word `g` (bytes biased to unsigned by the repack, un-biased here).
pub(crate) struct Q8_0;

impl Fmt for Q8_0 {
    const GROUPS: usize = repack::Q8_0_GROUPS;
    const PARTS: usize = 1;
    const SCALES: bool = false;
    const SMALL: bool = false;
    #[inline(always)]
    unsafe fn split<const SCALED: bool>(raw: uint8x16_t) -> [int8x16_t; 2] {
        // SAFETY: NEON is guaranteed by the caller.
        unsafe {
            [
                vreinterpretq_s8_u8(veorq_u8(raw, vdupq_n_u8(0x80))),
                vdupq_n_s8(0),
            ]
        }
    }
}

/// `vcvtq_f32_s32`, dividing by 16 exactly when `scaled`.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn to_f32(i: int32x4_t, scaled: bool) -> float32x4_t {
    // SAFETY: NEON is guaranteed by the caller.
    unsafe {
        if scaled {
            vcvtq_n_f32_s32::<4>(i)
        } else {
            vcvtq_f32_s32(i)
        }
    }
}

/// The column kernel of format `F` for the kernel set that multiplies bytes by `MAC`.
pub(crate) struct Blocks<F, const MAC: u8>(std::marker::PhantomData<F>);

impl<F: Fmt, const MAC: u8> StripKernel for Blocks<F, MAC> {
    type W<'a> = BlockStrips<'a>;
    type A = BlockQ8_0;
    type M = ActBlock;
    /// Registers (of 32): `dotprod` and `i8mm` hold 4 columns x (2 i32 + 2 f32 accumulators
    /// + 2 activation registers) per half; `neon` needs 4 i16 or i32 accumulators per column.
    const COLS: usize = if MAC == NEON { 3 } else { 4 };
    fn prep(a: &[BlockQ8_0]) -> Vec<ActBlock> {
        strips::act_blocks(0, a)
    }
    fn done(m: Vec<ActBlock>) {
        strips::give_back_blocks(m)
    }
    #[inline(always)]
    unsafe fn cols<const RN: usize, const SPLIT: bool>(
        w: BlockStrips<'_>,
        a: &[BlockQ8_0],
        m: &[ActBlock],
        nb: usize,
        (r0, c0): (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        let a = &a[c0 * nb..(c0 + RN) * nb];
        let m = &m[c0 * nb..(c0 + RN) * nb];
        // Few columns (generation): both halves of each block in turn, so the strip streams
        // once. More: one half at a time, through every block.
        let (halves, passes) = if RN <= 2 { (2, 1) } else { (1, 2) };
        for pass in 0..passes {
            // SAFETY: the kernel set's features are guaranteed by the caller; `w` is one strip
            // of `nb` blocks and every slice access is checked.
            unsafe {
                let mut facc = [[[vdupq_n_f32(0.0); 2]; RN]; 2];
                for k in 0..nb {
                    let q = &w.q[k * F::GROUPS..(k + 1) * F::GROUPS];
                    for (hh, facc) in facc.iter_mut().enumerate().take(halves) {
                        let h = pass + hh;
                        let dw = scales(&w.d[k], h);
                        let da: [f32; RN] = std::array::from_fn(|c| m[c * nb + k].d);
                        let qs: [&[i8; 32]; RN] = std::array::from_fn(|c| &a[c * nb + k].qs);
                        if MAC == MMLA && RN > 1 {
                            block_mmla::<F, RN>(q, h, qs, dw, da, facc);
                        } else {
                            let isum = if MAC != NEON {
                                isums_dot::<F, RN>(q, h, qs)
                            } else {
                                isums_neon::<F, RN>(q, h, qs)
                            };
                            let scaled = MAC != NEON && F::SCALES;
                            for c in 0..RN {
                                for i in 0..2 {
                                    let t = vmulq_f32(
                                        to_f32(isum[c][i], scaled),
                                        vmulq_n_f32(dw[i], da[c]),
                                    );
                                    facc[c][i] = vaddq_f32(facc[c][i], t);
                                }
                            }
                        }
                    }
                }
                for (hh, facc) in facc.iter().enumerate().take(halves) {
                    let h = pass + hh;
                    for (c, f) in facc.iter().enumerate() {
                        for (i, &f) in f.iter().enumerate() {
                            let o = &mut out[(c0 + c) * ldo + r0 + HALF * h + 4 * i..][..4];
                            vst1q_f32(o.as_mut_ptr(), f);
                        }
                    }
                }
            }
        }
    }
}

/// The 32 activation bytes of each column as two registers.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn acts<const RN: usize>(qs: [&[i8; 32]; RN]) -> [[int8x16_t; 2]; RN] {
    // SAFETY: each `qs[c]` holds 32 readable bytes.
    qs.map(|q| unsafe { [vld1q_s8(q.as_ptr()), vld1q_s8(q.as_ptr().add(16))] })
}

/// `sdot`: per column, the block's integer sums of half `h`'s rows `0..4` and `4..8`
/// (16 times the sums for Q4_0).
///
/// # Safety
/// NEON + dotprod; `q` holds the block's groups.
#[inline(always)]
unsafe fn isums_dot<F: Fmt, const RN: usize>(
    q: &[Lanes],
    h: usize,
    qs: [&[i8; 32]; RN],
) -> [[int32x4_t; 2]; RN] {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let av = acts(qs);
        let mut acc = [[vdupq_n_s32(0); 2]; RN];
        unroll!(F::GROUPS, |g| {
            let wg = group::<F, true>(q, h, g);
            unroll!(F::PARTS, |j| {
                // `% 2`: no-ops in the copies that run (j < 2, t < 8); the compiler's constant
                // index check also reads the dead copies past `F::PARTS` and `F::GROUPS`.
                let t = g + 4 * j;
                for c in 0..RN {
                    for i in 0..2 {
                        let a = av[c][t / 4 % 2];
                        acc[c][i] = sdot_word(acc[c][i], wg[j % 2][i], a, t % 4);
                    }
                }
            });
        });
        acc
    }
}

/// Plain NEON: as [`isums_dot`] (exact sums), with each word broadcast and multiplied by
/// `smull`/`smlal`: summed in i16 for formats whose sums fit ([`Fmt::SMALL`]), else
/// pairwise-added into i32 after every product.
///
/// # Safety
/// NEON; `q` holds the block's groups.
#[inline(always)]
unsafe fn isums_neon<F: Fmt, const RN: usize>(
    q: &[Lanes],
    h: usize,
    qs: [&[i8; 32]; RN],
) -> [[int32x4_t; 2]; RN] {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let av = acts(qs);
        // [column][rows 0..4, 4..8][rows 0-1, rows 2-3]
        let mut a16 = [[[vdupq_n_s16(0); 2]; 2]; RN];
        let mut a32 = [[[vdupq_n_s32(0); 2]; 2]; RN];
        unroll_fn(F::GROUPS, |g| {
            let wg = group::<F, false>(q, h, g);
            unroll_fn(F::PARTS, |j| {
                // `% 2`: as in [`isums_dot`].
                let wv = &wg[j % 2];
                let t = g + 4 * j;
                unroll_fn(RN, |c| {
                    let d = dup_word(av[c][t / 4 % 2], t % 4);
                    for i in 0..2 {
                        if F::SMALL {
                            let s = &mut a16[c][i];
                            s[0] = vmlal_s8(s[0], vget_low_s8(wv[i]), vget_low_s8(d));
                            s[1] = vmlal_high_s8(s[1], wv[i], d);
                        } else {
                            let s = &mut a32[c][i];
                            s[0] = vpadalq_s16(s[0], vmull_s8(vget_low_s8(wv[i]), vget_low_s8(d)));
                            s[1] = vpadalq_s16(s[1], vmull_high_s8(wv[i], d));
                        }
                    }
                });
            });
        });
        let mut isum = [[vdupq_n_s32(0); 2]; RN];
        for c in 0..RN {
            for i in 0..2 {
                // Lanes [r0 b01, r0 b23, r1 b01, r1 b23] and the same for rows 2, 3.
                let (lo, hi) = if F::SMALL {
                    (vpaddlq_s16(a16[c][i][0]), vpaddlq_s16(a16[c][i][1]))
                } else {
                    (a32[c][i][0], a32[c][i][1])
                };
                isum[c][i] = vpaddq_s32(lo, hi);
            }
        }
        isum
    }
}

/// `smmla`: one block of half `h` against `RN` columns, two at a time (an odd last column is
/// paired with itself), added to `facc` by the scalar's float step. Groups `2 p`, `2 p + 1`
/// zipped give rows `(0, 1)`, `(2, 3)` of each 4-row register as 8-byte pieces; the columns'
/// activation bytes `8 p' .. 8 p' + 8`, zipped, are the other operand; the accumulator of row
/// pair `i` holds `[r0 c0, r0 c1, r1 c0, r1 c1]`.
///
/// # Safety
/// NEON + i8mm; `q` holds the block's groups.
#[inline(always)]
unsafe fn block_mmla<F: Fmt, const RN: usize>(
    q: &[Lanes],
    h: usize,
    qs: [&[i8; 32]; RN],
    dw: [float32x4_t; 2],
    da: [f32; RN],
    facc: &mut [[float32x4_t; 2]; RN],
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let av = acts(qs);
        let pairs = RN.div_ceil(2);
        // Column pair `p`'s 8-byte pieces: ops[p][piece].
        let mut ops = [[vdupq_n_s8(0); 4]; 4];
        for (p, ops) in ops.iter_mut().enumerate().take(pairs) {
            let (x, y) = (av[2 * p], av[(2 * p + 1).min(RN - 1)]);
            for (piece, op) in ops.iter_mut().enumerate() {
                let (x, y) = (
                    vreinterpretq_s64_s8(x[piece / 2]),
                    vreinterpretq_s64_s8(y[piece / 2]),
                );
                let z = if piece % 2 == 0 {
                    vzip1q_s64(x, y)
                } else {
                    vzip2q_s64(x, y)
                };
                *op = vreinterpretq_s8_s64(z);
            }
        }
        // acc[pair][row pair 0..4]
        let mut acc = [[vdupq_n_s32(0); 4]; 4];
        for gp in 0..F::GROUPS / 2 {
            for i in 0..2 {
                // Rows (0, 1) and (2, 3) of register `i` as 8-byte pieces of groups 2 gp, 2 gp + 1
                // (zipped before splitting: the parts of a zipped register stay zipped).
                let (x, y) = (qtr(&q[2 * gp], 2 * h + i), qtr(&q[2 * gp + 1], 2 * h + i));
                let (x, y) = (vreinterpretq_u32_u8(x), vreinterpretq_u32_u8(y));
                let z0 = F::split::<true>(vreinterpretq_u8_u32(vzip1q_u32(x, y)));
                let z1 = F::split::<true>(vreinterpretq_u8_u32(vzip2q_u32(x, y)));
                for j in 0..F::PARTS {
                    let piece = gp + 2 * j;
                    for p in 0..pairs {
                        acc[p][2 * i] = smmla(acc[p][2 * i], z0[j], ops[p][piece]);
                        acc[p][2 * i + 1] = smmla(acc[p][2 * i + 1], z1[j], ops[p][piece]);
                    }
                }
            }
        }
        // Row pair `i`'s scales [d_r0, d_r0, d_r1, d_r1].
        let dr = [
            vzip1q_f32(dw[0], dw[0]),
            vzip2q_f32(dw[0], dw[0]),
            vzip1q_f32(dw[1], dw[1]),
            vzip2q_f32(dw[1], dw[1]),
        ];
        for (p, acc) in acc.iter().enumerate().take(pairs) {
            let (c, c1) = (2 * p, (2 * p + 1).min(RN - 1));
            // [d_c0, d_c1, d_c0, d_c1]
            let dc = vzip1q_f32(vdupq_n_f32(da[c]), vdupq_n_f32(da[c1]));
            let mut f = [vdupq_n_f32(0.0); 4];
            for (i, f) in f.iter_mut().enumerate() {
                *f = vmulq_f32(to_f32(acc[i], F::SCALES), vmulq_f32(dr[i], dc));
            }
            // Column c: rows 0..4 are lanes 0 and 2 of row pairs 0 and 1.
            for half in 0..2 {
                let (x, y) = (f[2 * half], f[2 * half + 1]);
                facc[c][half] = vaddq_f32(facc[c][half], vuzp1q_f32(x, y));
                if c1 != c {
                    facc[c1][half] = vaddq_f32(facc[c1][half], vuzp2q_f32(x, y));
                }
            }
        }
    }
}

/// The Q4_0 / Q8_0 strip gemms (`Kernels::gemm_q4_0x16_q8_0` / `gemm_q8_0x16_q8_0`).
///
/// # Safety
/// NEON (+ dotprod for `DOT`, + i8mm for `MMLA`); `q.len() == d.len() * F::GROUPS`,
/// `d.len()` and `a.len()` multiples of `nb`, `out` covers every `c * ldo + r` (indexing is
/// checked anyway).
#[inline(always)]
pub(crate) unsafe fn strips_body<F: Fmt, const MAC: u8>(
    q: &[Lanes],
    d: &[Scales16],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let w = BlockStrips {
        q,
        d,
        groups: F::GROUPS,
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { strips::drive::<Blocks<F, MAC>>(w, a, nb, out, ldo) }
}

// ---------------------------------------------------------------------------------------------
// K-quant strips. A column kernel walks a strip one quarter (4 rows, one 128-bit register of
// each `Lanes`) at a time: all four quarters of a super-block in turn for few columns (the
// strip streams once), else one quarter per pass through every super-block (8 weight registers
// stay while 4 columns pass). Per sub-block (Q4_K, Q5_K: 32 values) or group (Q6_K: 16) and
// column, the words of products go into one i32 per row: `sdot` by element (`dotprod`; `i8mm`
// uses the same kernels), or `smlal` into i16 lanes and pairwise adds (`neon`: at most 8
// products of a 5-bit or 4 of a signed 6-bit value with a byte per lane, <= 31744), then one
// `mla` by the rows' scales. The integers are the scalar's and the float step is its own
// expression in its order, so the results are bit-equal to `crate::scalar`.

/// `init + sum_t` of activation word `t` (`av[t / 4]`, lane `t % 4`) against the 4 rows'
/// bytes `wv[t]`, per row lane; with `SPLIT` (and `sdot`) in two chains. Exact when every i16
/// lane of the `neon` path (one product per word) stays within i16.
///
/// # Safety
/// NEON (+ dotprod when `MAC != NEON`).
#[inline(always)]
unsafe fn words_dot<const MAC: u8, const SPLIT: bool, const N: usize>(
    init: int32x4_t,
    wv: &[int8x16_t; N],
    av: &[int8x16_t],
) -> int32x4_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        if MAC != NEON {
            let mut p = [init, vdupq_n_s32(0)];
            unroll!(N, |t| {
                let j = if SPLIT { t & 1 } else { 0 };
                p[j] = sdot_word(p[j], wv[t], av[t / 4], t % 4);
            });
            if SPLIT { vaddq_s32(p[0], p[1]) } else { p[0] }
        } else {
            // [rows 0-1, rows 2-3], lanes [r b0, r b1, r b2, r b3, r+1 b0, ..].
            let mut s = [vdupq_n_s16(0); 2];
            for (t, &w) in wv.iter().enumerate() {
                let d = dup_word(av[t / 4], t % 4);
                s[0] = vmlal_s8(s[0], vget_low_s8(w), vget_low_s8(d));
                s[1] = vmlal_high_s8(s[1], w, d);
            }
            vaddq_s32(init, vpaddq_s32(vpaddlq_s16(s[0]), vpaddlq_s16(s[1])))
        }
    }
}

/// The 4 bytes at `p` (rows `4 qi ..` of a per-row byte field) sign- (`SIGNED`) or
/// zero-extended to i32 lanes.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn bytes4<const SIGNED: bool>(p: &[u8]) -> int32x4_t {
    let w = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    // SAFETY: NEON is guaranteed by the caller; registers only.
    unsafe {
        let v = vreinterpret_u8_u32(vdup_n_u32(w));
        if SIGNED {
            vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_u8(v))))
        } else {
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(v))))
        }
    }
}

/// Rows `4 qi .. 4 qi + 4` of `d` (f16 bits) as f32.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn scale4(d: &Scales16, qi: usize) -> float32x4_t {
    let d = &d.0[4 * qi..][..4];
    // SAFETY: `d` is 4 readable u16; the conversion is exact.
    unsafe { cvt_f16x4(vld1_u16(d.as_ptr())) }
}

/// The walk shared by the k-quant column kernels: `step(k, qi, facc)` adds super-block `k`'s
/// terms of quarter `qi < 4` (rows `4 qi .. 4 qi + 4`; a step masks it, `qi & 3`, so that the
/// compiler sees the bound where it indexes) to its `RN` columns' sums, quarter by
/// quarter within each super-block for at most 2 columns, else one quarter per pass; the sums
/// then go to `out[(c0 + c) * ldo + r0 + 4 qi ..]`.
///
/// # Safety
/// NEON, and whatever `step` needs; indexing is checked.
#[inline(always)]
unsafe fn by_quarters<const RN: usize>(
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
    mut step: impl FnMut(usize, usize, &mut [float32x4_t; RN]),
) {
    let (quarters, passes) = if RN <= 2 { (4, 1) } else { (1, 4) };
    for pass in 0..passes {
        // SAFETY: NEON is guaranteed by the caller; the stores go through checked slices.
        unsafe {
            let mut facc = [[vdupq_n_f32(0.0); RN]; 4];
            for k in 0..nb {
                for (qq, facc) in facc.iter_mut().enumerate().take(quarters) {
                    step(k, pass + qq, facc);
                }
            }
            for (qq, facc) in facc.iter().enumerate().take(quarters) {
                for (c, &f) in facc.iter().enumerate() {
                    let o = &mut out[(c0 + c) * ldo + r0 + 4 * (pass + qq)..][..4];
                    vst1q_f32(o.as_mut_ptr(), f);
                }
            }
        }
    }
}

/// Q4_K strips (and Q5_K strips: the fifth bit of each value inserted above its nibble):
/// per quarter, sub-block and column 8 word products and one `mla` by the scales; per
/// super-block the mins' sum from [`ActK`]'s split pair sums (4 word products), then the
/// scalar's float step.
pub(crate) struct Q4K<B, const MAC: u8>(std::marker::PhantomData<B>);

impl<B: K4Block + 'static, const MAC: u8> StripKernel for Q4K<B, MAC> {
    type W<'a> = &'a [B];
    type A = BlockQ8_K;
    type M = ActK;
    const COLS: usize = if MAC == NEON { 3 } else { 4 };
    fn prep(a: &[BlockQ8_K]) -> Vec<ActK> {
        strips::act_k(a)
    }
    fn done(m: Vec<ActK>) {
        strips::give_back_k(m)
    }
    #[inline(always)]
    unsafe fn cols<const RN: usize, const SPLIT: bool>(
        w: &[B],
        a: &[BlockQ8_K],
        m: &[ActK],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        let a = &a[rc.1 * nb..(rc.1 + RN) * nb];
        let m = &m[rc.1 * nb..(rc.1 + RN) * nb];
        // SAFETY: the kernel set's features are guaranteed by the caller; `w` is one strip of
        // `nb` super-blocks and every slice access is checked.
        unsafe {
            by_quarters::<RN>(nb, rc, out, ldo, |k, qi, facc| {
                let (bk, qi) = (&w[k], qi & 3);
                let b = bk.q4();
                let mut isum = [vdupq_n_s32(0); RN];
                // Written out (`unroll`): each sub-block's shifts and offsets are constants.
                unroll!(8, |s| {
                    let wv: [int8x16_t; 8] = std::array::from_fn(|t| {
                        let raw = qtr(&b.qs[8 * (s / 2) + t], qi);
                        // The nibble in the low 4 bits (anything above them when `s` is even).
                        let nib = if s % 2 == 0 {
                            raw
                        } else {
                            vshrq_n_u8::<4>(raw)
                        };
                        let v = if B::Q5 {
                            // Bit `s` of each `qh` byte above the nibble (`sli` keeps the
                            // nibble's 4 low bits only).
                            let q = vshlq_u8(qtr(&bk.qh()[t], qi), vdupq_n_s8(-(s as i8)));
                            vsliq_n_u8::<4>(nib, vandq_u8(q, vdupq_n_u8(1)))
                        } else if s % 2 == 0 {
                            vandq_u8(raw, vdupq_n_u8(0x0F))
                        } else {
                            nib
                        };
                        vreinterpretq_s8_u8(v)
                    });
                    let sc = bytes4::<false>(&b.scales[s][4 * qi..]);
                    for (c, isum) in isum.iter_mut().enumerate() {
                        let qs = &a[c * nb + k].qs[32 * s..][..32];
                        let av = [vld1q_s8(qs.as_ptr()), vld1q_s8(qs.as_ptr().add(16))];
                        let p = words_dot::<MAC, SPLIT, 8>(vdupq_n_s32(0), &wv, &av);
                        *isum = vmlaq_s32(*isum, p, sc);
                    }
                });
                let mins = [0, 1].map(|j| vreinterpretq_s8_u8(qtr(&b.mins[j], qi)));
                let (d, dmin) = (scale4(&b.d, qi), scale4(&b.dmin, qi));
                for (c, (facc, &isum)) in facc.iter_mut().zip(&isum).enumerate() {
                    let mk = &m[c * nb + k];
                    // Words [hi 0..4, hi 4..8, lo 0..4, lo 4..8]; the lo words rotated to 0, 1.
                    let bs = vreinterpretq_s8_s32(vld1q_s32(mk.bs.as_ptr()));
                    let lo = [vextq_s8::<8>(bs, bs)];
                    let hi = words_dot::<MAC, false, 2>(vdupq_n_s32(0), &mins, &[bs]);
                    let msum = words_dot::<MAC, false, 2>(vshlq_n_s32::<8>(hi), &mins, &lo);
                    let t = vsubq_f32(
                        vmulq_f32(vmulq_n_f32(d, mk.d), vcvtq_f32_s32(isum)),
                        vmulq_f32(vmulq_n_f32(dmin, mk.d), vcvtq_f32_s32(msum)),
                    );
                    *facc = vaddq_f32(*facc, t);
                }
            });
        }
    }
}

/// Q6_K strips: the 6-bit values rebuilt from `ql` nibbles and `qh` bit pairs and made signed
/// (`q - 32`, so no offset is left to remove); per quarter, group and column 4 word products
/// and one `mla` by the rows' signed scales, then the scalar's float step.
pub(crate) struct Q6K<const MAC: u8>;

impl<const MAC: u8> StripKernel for Q6K<MAC> {
    type W<'a> = &'a [BlockQ6_Kx16];
    type A = BlockQ8_K;
    type M = ();
    const COLS: usize = if MAC == NEON { 3 } else { 4 };
    fn prep(_: &[BlockQ8_K]) -> Vec<()> {
        Vec::new()
    }
    fn done(_: Vec<()>) {}
    #[inline(always)]
    unsafe fn cols<const RN: usize, const SPLIT: bool>(
        w: &[BlockQ6_Kx16],
        a: &[BlockQ8_K],
        _: &[()],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        let a = &a[rc.1 * nb..(rc.1 + RN) * nb];
        // SAFETY: the kernel set's features are guaranteed by the caller; `w` is one strip of
        // `nb` super-blocks and every slice access is checked.
        unsafe {
            by_quarters::<RN>(nb, rc, out, ldo, |k, qi, facc| {
                let (b, qi) = (&w[k], qi & 3);
                let mut isum = [vdupq_n_s32(0); RN];
                // Written out (`unroll`): each group's shifts and offsets are constants, and the
                // `qh` register its four quarters `m` share is loaded once.
                unroll!(2, |n| {
                    unroll!(8, |gg| {
                        let (g, m, j0) = (8 * n + gg, gg / 2, 4 * (gg % 2));
                        let wv: [int8x16_t; 4] = std::array::from_fn(|t| {
                            let j = j0 + t;
                            let l = qtr(&b.ql[16 * n + 8 * (m % 2) + j], qi);
                            let l = if m < 2 { l } else { vshrq_n_u8::<4>(l) };
                            // qh bits 2 m .. 2 m + 2 of each byte above the nibble.
                            let q = vshlq_u8(qtr(&b.qh[8 * n + j], qi), vdupq_n_s8(-2 * m as i8));
                            let v = vsliq_n_u8::<4>(l, vandq_u8(q, vdupq_n_u8(3)));
                            vreinterpretq_s8_u8(vsubq_u8(v, vdupq_n_u8(32)))
                        });
                        let sc = bytes4::<true>(&bytemuck::cast_slice(&b.scales[g])[4 * qi..]);
                        for (c, isum) in isum.iter_mut().enumerate() {
                            let qs = &a[c * nb + k].qs[16 * g..][..16];
                            let p = words_dot::<MAC, SPLIT, 4>(
                                vdupq_n_s32(0),
                                &wv,
                                &[vld1q_s8(qs.as_ptr())],
                            );
                            *isum = vmlaq_s32(*isum, p, sc);
                        }
                    })
                });
                let d = scale4(&b.d, qi);
                for (c, (facc, &isum)) in facc.iter_mut().zip(&isum).enumerate() {
                    let yd = a[c * nb + k].d;
                    let t = vmulq_f32(vmulq_n_f32(d, yd), vcvtq_f32_s32(isum));
                    *facc = vaddq_f32(*facc, t);
                }
            });
        }
    }
}
