//! aarch64 column kernels for the Q4_0 / Q8_0 16-row strips ([`crate::repack`]), run by the one
//! strip driver ([`crate::strips`]). A strip is two halves of 8 rows; every [`Lanes`] group of a
//! half is two 128-bit registers of 4 rows x 4 bytes. The three kernel sets differ only in how
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

use cinder_quant::block::BlockQ8_0;

use super::cvt_f16x4;
use crate::repack::{self, Lanes, Scales16};
use crate::strips::{self, ActBlock, BlockStrips, StripKernel};

/// How a kernel set multiplies bytes (the `MAC` parameter of [`Blocks`]).
pub(crate) const NEON: u8 = 0;
/// `sdot` by element.
pub(crate) const DOT: u8 = 1;
/// `smmla`.
pub(crate) const MMLA: u8 = 2;

/// Rows per half strip.
const HALF: usize = 8;

/// `f(0), f(1), .., f(n - 1)` for `n <= 8`, written out: LLVM does not fully unroll loops
/// around inline asm, and the `sdot` lane must be a constant in each copy.
#[inline(always)]
fn unroll(n: usize, mut f: impl FnMut(usize)) {
    assert!(n <= 8, "unroll: {n} > 8");
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

/// Rows `8 h + 4 i .. 8 h + 4 i + 4` of a group, 4 bytes each.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn quarter(l: &Lanes, h: usize, i: usize) -> uint8x16_t {
    let q = &l.0[HALF * h + 4 * i..][..4];
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
        let [x0, x1] = [0, 1].map(|i| F::split::<SCALED>(quarter(&q[g], h, i)));
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
        unroll(F::GROUPS, |g| {
            let wg = group::<F, true>(q, h, g);
            unroll(F::PARTS, |j| {
                let t = g + 4 * j;
                unroll(RN, |c| {
                    for i in 0..2 {
                        acc[c][i] = sdot_word(acc[c][i], wg[j][i], av[c][t / 4], t % 4);
                    }
                });
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
        unroll(F::GROUPS, |g| {
            let wg = group::<F, false>(q, h, g);
            unroll(F::PARTS, |j| {
                let wv = &wg[j];
                let t = g + 4 * j;
                unroll(RN, |c| {
                    let d = dup_word(av[c][t / 4], t % 4);
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
                let (x, y) = (quarter(&q[2 * gp], h, i), quarter(&q[2 * gp + 1], h, i));
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
