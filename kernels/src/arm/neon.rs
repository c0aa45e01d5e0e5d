//! NEON kernels (128-bit), and the `#[inline(always)]` bodies shared with [`super::dotprod`].
//!
//! The integer bodies are generic over `DOT`: with `DOT = false` products of signed bytes are
//! widened with `smull` to i16 (exact even for -128 x -128) and pairwise-added into i32; with
//! `DOT = true` they use `sdot`. Weights are unpacked to signed bytes in value order (offsets
//! such as -8 or -32 applied per byte, which stays in i8), so every block's integer sum is the
//! exact `i32` the scalar twin computes. Each sum is then reduced and combined with the scales by
//! the scalar twin's own float expression, in the same order: results are bit-equal to
//! `crate::scalar` (the float dots excepted: they accumulate in lanes).

use std::arch::aarch64::*;

use cinder_quant::block::*;
use cinder_quant::dtype::QK_K;
use half::f16;

use super::{cvt_f16x4, dot16, dot32, f16_to_f32, ld_s8, ld_s8x32, ld_u8};
use crate::scalar;

kernels! { "neon";
    quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) = quantize_row_q8_0_body;
    quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) = quantize_row_q8_1_body;
    quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) = quantize_row_q8_k_body;
    vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 = vec_dot_q4_0_q8_0_body::<false>;
    vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 = vec_dot_q5_0_q8_0_body::<false>;
    vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 = vec_dot_q8_0_q8_0_body::<false>;
    vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 = vec_dot_q4_1_q8_1_body::<false>;
    vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 = vec_dot_q5_1_q8_1_body::<false>;
    vec_dot_q2_k_q8_k(x: &[BlockQ2_K], y: &[BlockQ8_K]) -> f32 = vec_dot_q2_k_q8_k_body::<false>;
    vec_dot_q3_k_q8_k(x: &[BlockQ3_K], y: &[BlockQ8_K]) -> f32 = vec_dot_q3_k_q8_k_body::<false>;
    vec_dot_q4_k_q8_k(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 = vec_dot_q4_k_q8_k_body::<false>;
    vec_dot_q5_k_q8_k(x: &[BlockQ5_K], y: &[BlockQ8_K]) -> f32 = vec_dot_q5_k_q8_k_body::<false>;
    vec_dot_q6_k_q8_k(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 = vec_dot_q6_k_q8_k_body::<false>;
    vec_dot_f16_f32(x: &[f16], y: &[f32]) -> f32 = vec_dot_f16_f32_body;
    vec_dot_f32_f32(x: &[f32], y: &[f32]) -> f32 = vec_dot_f32_f32_body;
    gemm_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = gemm_body::<Q4_0Tile, false, 4>;
    gemm_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = gemm_body::<Q8_0Tile, false, 4>;
    gemm_q4_k_q8_k(w: &[BlockQ4_K], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = gemm_q4_k_q8_k_body::<false>;
    dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) = dequantize_row_q4_0_body;
    dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) = dequantize_row_q8_0_body;
    dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) = dequantize_row_q6_k_body;
    dequantize_row_f16(x: &[f16], y: &mut [f32]) = dequantize_row_f16_body;
    gemm_f32_f16(a: &[f32], b: &[f16], c: &mut [f32], s: crate::MatShape) = gemm_f32_f16_body;
    gemm_f32_f32(a: &[f32], b: &[f32], c: &mut [f32], s: crate::MatShape) = gemm_f32_f32_body;
    gemm_q4_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::strips_body::<super::strips::Q4_0, { super::strips::NEON }>;
    gemm_q8_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::strips_body::<super::strips::Q8_0, { super::strips::NEON }>;
    gemm_q4_kx16_q8_k(w: &[crate::repack::BlockQ4_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<super::strips::Q4K<crate::repack::BlockQ4_Kx16, { super::strips::NEON }>>;
    gemm_q5_kx16_q8_k(w: &[crate::repack::BlockQ5_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<super::strips::Q4K<crate::repack::BlockQ5_Kx16, { super::strips::NEON }>>;
    gemm_q6_kx16_q8_k(w: &[crate::repack::BlockQ6_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<super::strips::Q6K<{ super::strips::NEON }>>;
    exp_sum(x: &mut [f32], shift: f32) -> f32 = super::exp_sum_body;
    silu_mul(g: &mut [f32], u: &[f32]) = super::silu_mul_body;
}

// ---------------------------------------------------------------------------------------------
// Activation quantizers.

/// Narrows 4 x 4 i32 to 16 i8 in order, saturating like `f32 as i8` after `fcvtas`.
#[inline(always)]
unsafe fn narrow_sat(i: [int32x4_t; 4]) -> int8x16_t {
    // SAFETY: NEON is guaranteed by the caller.
    unsafe {
        let a = vcombine_s16(vqmovn_s32(i[0]), vqmovn_s32(i[1]));
        let b = vcombine_s16(vqmovn_s32(i[2]), vqmovn_s32(i[3]));
        vcombine_s8(vqmovn_s16(a), vqmovn_s16(b))
    }
}

/// One Q8 block of 32: returns the unrounded `d` and `sum(q)`; same float ops as the scalar
/// (`fcvtas` is `round` half away from zero; NaN -> 0 and saturation match `as i8`).
#[inline(always)]
unsafe fn quantize_q8_block(x: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let x = &x[..QK];
    // SAFETY: NEON is guaranteed by the caller; loads read 4 of the 32 values of `x`, the
    // stores write 16 of the 32 bytes of `qs`.
    unsafe {
        let p = x.as_ptr();
        let mut v = [vdupq_n_f32(0.0); 8];
        let mut m = vdupq_n_f32(0.0);
        for (k, v) in v.iter_mut().enumerate() {
            *v = vld1q_f32(p.add(4 * k));
            m = vmaxnmq_f32(m, vabsq_f32(*v));
        }
        let amax = vmaxnmvq_f32(m);
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for h in 0..2 {
            let mut i = [vdupq_n_s32(0); 4];
            for (k, i) in i.iter_mut().enumerate() {
                *i = vcvtaq_s32_f32(vmulq_n_f32(v[4 * h + k], id));
            }
            let q = narrow_sat(i);
            vst1q_s8(qs[16 * h..16 * h + 16].as_mut_ptr(), q);
            sum += vaddlvq_s8(q) as i32;
        }
        (d, sum)
    }
}

/// # Safety
/// NEON; `x.len() == y.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn quantize_row_q8_0_body(x: &[f32], y: &mut [BlockQ8_0]) {
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: NEON guaranteed by the caller.
        let (d, _) = unsafe { quantize_q8_block(x, &mut b.qs) };
        b.d = f16::from_f32(d);
    }
}

/// # Safety
/// NEON; `x.len() == y.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn quantize_row_q8_1_body(x: &[f32], y: &mut [BlockQ8_1]) {
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: NEON guaranteed by the caller.
        let (d, sum) = unsafe { quantize_q8_block(x, &mut b.qs) };
        b.d = f16::from_f32(d);
        b.s = f16::from_f32(sum as f32 * d);
    }
}

/// # Safety
/// NEON; `x.len() == y.len() * 256`.
#[inline(always)]
pub(crate) unsafe fn quantize_row_q8_k_body(x: &[f32], y: &mut [BlockQ8_K]) {
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        let x = &x[..QK_K];
        let p = x.as_ptr();
        // SAFETY: NEON guaranteed by the caller; every load reads 4 of the 256 values of `x`.
        let amax = unsafe {
            let mut m = vdupq_n_f32(0.0);
            for k in 0..QK_K / 4 {
                m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(p.add(4 * k))));
            }
            vmaxnmvq_f32(m)
        };
        if amax == 0.0 {
            b.d = 0.0;
            b.qs = [0; QK_K];
            b.bsums = [0; QK_K / 16];
            continue;
        }
        // The first value of magnitude `amax`, with its sign (as the scalar scan finds it).
        let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
        let iscale = -127.0 / max;
        // SAFETY: NEON guaranteed by the caller; loads read 4 of the 256 values of `x`, each
        // store writes 16 of the 256 bytes of `b.qs`.
        unsafe {
            // `cinder_quant::reference::nearest_int` lane-wise: add 1.5 * 2^23, keep the low mantissa bits.
            let magic = vdupq_n_f32(12_582_912.0);
            let mant = vdupq_n_s32(0x007f_ffff);
            let bias = vdupq_n_s32(0x0040_0000);
            let lim = vdupq_n_s32(127);
            for g in 0..QK_K / 16 {
                let mut i = [vdupq_n_s32(0); 4];
                for (k, i) in i.iter_mut().enumerate() {
                    let v = vmulq_n_f32(vld1q_f32(p.add(16 * g + 4 * k)), iscale);
                    let t = vreinterpretq_s32_f32(vaddq_f32(v, magic));
                    *i = vminq_s32(vsubq_s32(vandq_s32(t, mant), bias), lim);
                }
                // Truncating narrows: `i32 as i8`, as the scalar does.
                let a = vcombine_s16(vmovn_s32(i[0]), vmovn_s32(i[1]));
                let c = vcombine_s16(vmovn_s32(i[2]), vmovn_s32(i[3]));
                let q = vcombine_s8(vmovn_s16(a), vmovn_s16(c));
                vst1q_s8(b.qs[16 * g..16 * g + 16].as_mut_ptr(), q);
                b.bsums[g] = vaddlvq_s8(q);
            }
        }
        b.d = 1.0 / iscale;
    }
}

// ---------------------------------------------------------------------------------------------
// Weight unpacking (32-value formats).

/// Bit `i % 8` in lane `i` of each half: tests one bit of a broadcast byte per lane.
const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

/// The 32 nibbles of a Q4_0 / Q4_1 block (0..=15) in value order: low nibbles, then high.
#[inline(always)]
unsafe fn unpack_q4(qs: &[u8; QK / 2]) -> [uint8x16_t; 2] {
    // SAFETY: NEON guaranteed by the caller.
    unsafe {
        let q = ld_u8(qs);
        [vandq_u8(q, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(q)]
    }
}

/// The 32 five-bit quants (0..=31) of a Q5_0 / Q5_1 block in value order: quant `j` takes
/// bit `j` of `qh` as its bit 4.
#[inline(always)]
unsafe fn unpack_q5(qs: &[u8; QK / 2], qh: [u8; 4]) -> [uint8x16_t; 2] {
    // SAFETY: NEON guaranteed by the caller.
    unsafe {
        let [lo, hi] = unpack_q4(qs);
        let bits = ld_u8(&BITS);
        let sixteen = vdupq_n_u8(16);
        let h0 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
        let h1 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
        [
            vorrq_u8(lo, vandq_u8(vtstq_u8(h0, bits), sixteen)),
            vorrq_u8(hi, vandq_u8(vtstq_u8(h1, bits), sixteen)),
        ]
    }
}

/// `q - off` per byte, as signed bytes (the caller keeps the result in i8 range).
#[inline(always)]
unsafe fn signed(q: [uint8x16_t; 2], off: i8) -> [int8x16_t; 2] {
    // SAFETY: NEON guaranteed by the caller.
    unsafe {
        let o = vdupq_n_s8(off);
        [
            vsubq_s8(vreinterpretq_s8_u8(q[0]), o),
            vsubq_s8(vreinterpretq_s8_u8(q[1]), o),
        ]
    }
}

/// The integer dot of one 32-value block pair, reduced to one `i32` (exact).
#[inline(always)]
unsafe fn idot32<const DOT: bool>(w: [int8x16_t; 2], a: [int8x16_t; 2]) -> i32 {
    // SAFETY: features guaranteed by the caller.
    unsafe { vaddvq_s32(dot32::<DOT>(vdupq_n_s32(0), w, a)) }
}

// ---------------------------------------------------------------------------------------------
// Tiles: Q4_0 and Q8_0 weights against Q8_0 activations, for vec_dot and the gemm.

/// A weight format whose blocks unpack to 32 signed bytes and an f32 scale.
pub(crate) trait Tile {
    /// The weight block.
    type W;
    /// The block's 32 signed quants in value order, and its scale.
    ///
    /// # Safety
    /// NEON.
    unsafe fn unpack_w(b: &Self::W) -> ([int8x16_t; 2], f32);
}

/// Q4_0 weights: `q - 8` (-8..=7) per byte.
pub(crate) struct Q4_0Tile;

impl Tile for Q4_0Tile {
    type W = BlockQ4_0;
    #[inline(always)]
    unsafe fn unpack_w(b: &BlockQ4_0) -> ([int8x16_t; 2], f32) {
        // SAFETY: NEON guaranteed by the caller.
        unsafe { (signed(unpack_q4(&b.qs), 8), f16_to_f32(b.d)) }
    }
}

/// Q8_0 weights: the bytes themselves.
pub(crate) struct Q8_0Tile;

impl Tile for Q8_0Tile {
    type W = BlockQ8_0;
    #[inline(always)]
    unsafe fn unpack_w(b: &BlockQ8_0) -> ([int8x16_t; 2], f32) {
        // SAFETY: NEON guaranteed by the caller.
        unsafe { (ld_s8x32(&b.qs), f16_to_f32(b.d)) }
    }
}

/// One weight row . one activation row: per block `isum as f32 * (d_w * d_a)`, summed in
/// order (the scalar twin's expression).
#[inline(always)]
unsafe fn row_dot<T: Tile, const DOT: bool>(x: &[T::W], y: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller.
        let (isum, dw, da) = unsafe {
            let (w, dw) = T::unpack_w(x);
            (idot32::<DOT>(w, ld_s8x32(&y.qs)), dw, f16_to_f32(y.d))
        };
        sum += isum as f32 * (dw * da);
    }
    sum
}

/// 4 weight rows from `r0` x `RN` activation columns from `c0`. Lane `r` of `acc[c]` runs the
/// scalar twin's sum for (row `r0 + r`, column `c0 + c`) exactly: the four block sums of a
/// column are gathered into one register by pairwise adds, converted, multiplied by
/// `d_w * d_a` and added (no FMA), block after block.
#[inline(always)]
unsafe fn tile4<T: Tile, const DOT: bool, const RN: usize>(
    w: &[T::W],
    a: &[BlockQ8_0],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: the caller guarantees the features; block indexing is bounds-checked and every
    // store writes the 4 values of a checked sub-slice of `out`.
    unsafe {
        let zero = vdupq_n_s32(0);
        let mut acc = [vdupq_n_f32(0.0); RN];
        for k in 0..nb {
            let mut wv = [[vdupq_n_s8(0); 2]; 4];
            let mut wd = [0.0f32; 4];
            for r in 0..4 {
                (wv[r], wd[r]) = T::unpack_w(&w[(r0 + r) * nb + k]);
            }
            let wd = vld1q_f32(wd.as_ptr());
            for (c, acc) in acc.iter_mut().enumerate() {
                let ab = &a[(c0 + c) * nb + k];
                let av = ld_s8x32(&ab.qs);
                let p01 = vpaddq_s32(dot32::<DOT>(zero, wv[0], av), dot32::<DOT>(zero, wv[1], av));
                let p23 = vpaddq_s32(dot32::<DOT>(zero, wv[2], av), dot32::<DOT>(zero, wv[3], av));
                let isum = vpaddq_s32(p01, p23);
                let d = vmulq_n_f32(wd, f16_to_f32(ab.d));
                *acc = vaddq_f32(*acc, vmulq_f32(vcvtq_f32_s32(isum), d));
            }
        }
        for (c, &acc) in acc.iter().enumerate() {
            let o = &mut out[(c0 + c) * ldo + r0..][..4];
            vst1q_f32(o.as_mut_ptr(), acc);
        }
    }
}

/// Tiled product over every row of `w` and column of `a` (`nb` blocks each):
/// `out[c * ldo + r]`, with 4 x `RN` micro-tiles; leftover rows go through [`row_dot`].
///
/// # Safety
/// NEON (+ dotprod when `DOT`); `w.len()` and `a.len()` multiples of `nb`, and `out` covers
/// every `c * ldo + r` (indexing is checked anyway).
#[inline(always)]
pub(crate) unsafe fn gemm_body<T: Tile, const DOT: bool, const RN: usize>(
    w: &[T::W],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let (rows, cols) = (w.len() / nb, a.len() / nb);
    let (rf, cf) = (rows / 4 * 4, cols / RN * RN);
    // SAFETY: the caller guarantees the features and the shapes.
    unsafe {
        for r0 in (0..rf).step_by(4) {
            for c0 in (0..cf).step_by(RN) {
                tile4::<T, DOT, RN>(w, a, nb, (r0, c0), out, ldo);
            }
            for c0 in cf..cols {
                tile4::<T, DOT, 1>(w, a, nb, (r0, c0), out, ldo);
            }
        }
        for r in rf..rows {
            let wr = &w[r * nb..(r + 1) * nb];
            for c in 0..cols {
                out[c * ldo + r] = row_dot::<T, DOT>(wr, &a[c * nb..(c + 1) * nb]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dot products of the 32-value formats (bit-equal to the scalar twins).

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q4_0_q8_0_body<const DOT: bool>(
    x: &[BlockQ4_0],
    y: &[BlockQ8_0],
) -> f32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { row_dot::<Q4_0Tile, DOT>(x, y) }
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q8_0_q8_0_body<const DOT: bool>(
    x: &[BlockQ8_0],
    y: &[BlockQ8_0],
) -> f32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { row_dot::<Q8_0Tile, DOT>(x, y) }
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q5_0_q8_0_body<const DOT: bool>(
    x: &[BlockQ5_0],
    y: &[BlockQ8_0],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller.
        let (isum, dx, dy) = unsafe {
            let w = signed(unpack_q5(&x.qs, x.qh), 16);
            let isum = idot32::<DOT>(w, ld_s8x32(&y.qs));
            (isum, f16_to_f32(x.d), f16_to_f32(y.d))
        };
        sum += isum as f32 * (dx * dy);
    }
    sum
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q4_1_q8_1_body<const DOT: bool>(
    x: &[BlockQ4_1],
    y: &[BlockQ8_1],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller.
        unsafe {
            let isum = idot32::<DOT>(signed(unpack_q4(&x.qs), 0), ld_s8x32(&y.qs));
            sum += isum as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d))
                + f16_to_f32(x.m) * f16_to_f32(y.s);
        }
    }
    sum
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q5_1_q8_1_body<const DOT: bool>(
    x: &[BlockQ5_1],
    y: &[BlockQ8_1],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller.
        unsafe {
            let w = signed(unpack_q5(&x.qs, x.qh), 0);
            let isum = idot32::<DOT>(w, ld_s8x32(&y.qs));
            sum += isum as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d))
                + f16_to_f32(x.m) * f16_to_f32(y.s);
        }
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// k-quants: each group of 16 (or sub-block of 32) is one or two registers; its exact dot is
// multiplied by its integer scale in i32 lanes, and the super-block sum reduced once.

/// `v >> (2 * j)` per byte, for `j` in 0..4.
#[inline(always)]
unsafe fn shr2j(v: uint8x16_t, j: usize) -> uint8x16_t {
    // SAFETY: NEON guaranteed by the caller.
    unsafe {
        match j {
            0 => v,
            1 => vshrq_n_u8::<2>(v),
            2 => vshrq_n_u8::<4>(v),
            _ => vshrq_n_u8::<6>(v),
        }
    }
}

/// `sum(q * a)` of 16 signed bytes, as 4 lanes.
#[inline(always)]
unsafe fn dot16z<const DOT: bool>(q: int8x16_t, a: int8x16_t) -> int32x4_t {
    // SAFETY: features guaranteed by the caller.
    unsafe { dot16::<DOT>(vdupq_n_s32(0), q, a) }
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q2_k_q8_k_body<const DOT: bool>(
    x: &[BlockQ2_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut msum = 0i32;
        for (&s, &b) in x.scales.iter().zip(&y.bsums) {
            msum += (s >> 4) as i32 * b as i32;
        }
        // SAFETY: features guaranteed by the caller; loads read checked sub-slices.
        let isum = unsafe {
            let mut acc = vdupq_n_s32(0);
            let m3 = vdupq_n_u8(3);
            for n in 0..2 {
                let q = [ld_u8(&x.qs[32 * n..]), ld_u8(&x.qs[32 * n + 16..])];
                for j in 0..4 {
                    for (h, &q) in q.iter().enumerate() {
                        let v = vreinterpretq_s8_u8(vandq_u8(shr2j(q, j), m3));
                        let a = ld_s8(&y.qs[128 * n + 32 * j + 16 * h..]);
                        let g = 8 * n + 2 * j + h;
                        acc = vmlaq_n_s32(acc, dot16z::<DOT>(v, a), (x.scales[g] & 0xF) as i32);
                    }
                }
            }
            vaddvq_s32(acc)
        };
        // SAFETY: FP guaranteed by the caller.
        let (d, dmin) = unsafe { (f16_to_f32(x.d), f16_to_f32(x.dmin)) };
        sum += y.d * d * isum as f32 - y.d * dmin * msum as f32;
    }
    sum
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q3_k_q8_k_body<const DOT: bool>(
    x: &[BlockQ3_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let sc = scalar::scales_q3_k(&x.scales);
        // SAFETY: features guaranteed by the caller; loads read checked sub-slices.
        let isum = unsafe {
            let mut acc = vdupq_n_s32(0);
            let m3 = vdupq_n_u8(3);
            let four = vdupq_n_s8(4);
            let hm = [ld_u8(&x.hmask[..]), ld_u8(&x.hmask[16..])];
            for n in 0..2 {
                let q = [ld_u8(&x.qs[32 * n..]), ld_u8(&x.qs[32 * n + 16..])];
                for j in 0..4 {
                    let bit = vdupq_n_u8(1 << (4 * n + j));
                    for h in 0..2 {
                        let low = vreinterpretq_s8_u8(vandq_u8(shr2j(q[h], j), m3));
                        // -4 where the high bit is clear: -4..=3.
                        let set = vreinterpretq_s8_u8(vtstq_u8(hm[h], bit));
                        let v = vsubq_s8(low, vbicq_s8(four, set));
                        let a = ld_s8(&y.qs[128 * n + 32 * j + 16 * h..]);
                        let g = 8 * n + 2 * j + h;
                        acc = vmlaq_n_s32(acc, dot16z::<DOT>(v, a), sc[g] as i32);
                    }
                }
            }
            vaddvq_s32(acc)
        };
        // SAFETY: FP guaranteed by the caller.
        let d = unsafe { f16_to_f32(x.d) };
        sum += y.d * d * isum as f32;
    }
    sum
}

/// `sum_j sc[2j] * dot(q[j][0], a) + sc[2j+1] * dot(q[j][1], a)` for a Q4_K / Q5_K block
/// whose quants `q[j]` are (low-nibble sub-block `2j`, high-nibble sub-block `2j + 1`).
#[inline(always)]
unsafe fn k4_isum<const DOT: bool>(sc: &[u8; 8], a: &[i8; QK_K], q: &K4Quants) -> i32 {
    // SAFETY: features guaranteed by the caller; loads read checked sub-slices of `a`.
    unsafe {
        let mut acc = vdupq_n_s32(0);
        for (j, [lo, hi]) in q.iter().enumerate() {
            let a0 = [ld_s8(&a[64 * j..]), ld_s8(&a[64 * j + 16..])];
            let a1 = [ld_s8(&a[64 * j + 32..]), ld_s8(&a[64 * j + 48..])];
            let p0 = dot32::<DOT>(vdupq_n_s32(0), *lo, a0);
            let p1 = dot32::<DOT>(vdupq_n_s32(0), *hi, a1);
            acc = vmlaq_n_s32(acc, p0, sc[2 * j] as i32);
            acc = vmlaq_n_s32(acc, p1, sc[2 * j + 1] as i32);
        }
        vaddvq_s32(acc)
    }
}

/// Q4_K gemm: one [`vec_dot_q4_k_q8_k_body`] per row and column (bit-equal to it).
///
/// # Safety
/// As [`vec_dot_q4_k_q8_k_body`]; `w` and `a` hold whole rows of `nb` blocks and `out` every
/// `c * ldo + r`.
#[inline(always)]
pub(crate) unsafe fn gemm_q4_k_q8_k_body<const DOT: bool>(
    w: &[BlockQ4_K],
    a: &[BlockQ8_K],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    scalar::gemm_by_dots(w, a, nb, out, ldo, |x, y| {
        // SAFETY: forwarded caller guarantees (rows of equal length).
        unsafe { vec_dot_q4_k_q8_k_body::<DOT>(x, y) }
    })
}

/// The 256 quants of a Q4_K / Q5_K block: `[j][0]` sub-block `2j`, `[j][1]` sub-block `2j + 1`.
type K4Quants = [[[int8x16_t; 2]; 2]; 4];

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q4_k_q8_k_body<const DOT: bool>(
    x: &[BlockQ4_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let (sc, mn) = scalar::scales_mins_k4(&x.scales);
        let mut msum = 0i32;
        for (&m, b) in mn.iter().zip(y.bsums.chunks_exact(2)) {
            msum += m as i32 * (b[0] as i32 + b[1] as i32);
        }
        // SAFETY: features guaranteed by the caller; loads read checked sub-slices.
        let isum = unsafe {
            let m4 = vdupq_n_u8(0x0F);
            let mut q = [[[vdupq_n_s8(0); 2]; 2]; 4];
            for (j, [lo, hi]) in q.iter_mut().enumerate() {
                for (h, (lo, hi)) in lo.iter_mut().zip(hi).enumerate() {
                    let v = ld_u8(&x.qs[32 * j + 16 * h..]);
                    *lo = vreinterpretq_s8_u8(vandq_u8(v, m4));
                    *hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(v));
                }
            }
            k4_isum::<DOT>(&sc, &y.qs, &q)
        };
        // SAFETY: FP guaranteed by the caller.
        let (d, dmin) = unsafe { (f16_to_f32(x.d), f16_to_f32(x.dmin)) };
        sum += y.d * d * isum as f32 - y.d * dmin * msum as f32;
    }
    sum
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q5_k_q8_k_body<const DOT: bool>(
    x: &[BlockQ5_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let (sc, mn) = scalar::scales_mins_k4(&x.scales);
        let mut msum = 0i32;
        for (&m, b) in mn.iter().zip(y.bsums.chunks_exact(2)) {
            msum += m as i32 * (b[0] as i32 + b[1] as i32);
        }
        // SAFETY: features guaranteed by the caller; loads read checked sub-slices.
        let isum = unsafe {
            let m4 = vdupq_n_u8(0x0F);
            let sixteen = vdupq_n_u8(16);
            let qh = [ld_u8(&x.qh[..]), ld_u8(&x.qh[16..])];
            let mut q = [[[vdupq_n_s8(0); 2]; 2]; 4];
            for (j, [lo, hi]) in q.iter_mut().enumerate() {
                let (b0, b1) = (vdupq_n_u8(1 << (2 * j)), vdupq_n_u8(2 << (2 * j)));
                for (h, (lo, hi)) in lo.iter_mut().zip(hi).enumerate() {
                    let v = ld_u8(&x.qs[32 * j + 16 * h..]);
                    let h0 = vandq_u8(vtstq_u8(qh[h], b0), sixteen);
                    let h1 = vandq_u8(vtstq_u8(qh[h], b1), sixteen);
                    *lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, m4), h0));
                    *hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8::<4>(v), h1));
                }
            }
            k4_isum::<DOT>(&sc, &y.qs, &q)
        };
        // SAFETY: FP guaranteed by the caller.
        let (d, dmin) = unsafe { (f16_to_f32(x.d), f16_to_f32(x.dmin)) };
        sum += y.d * d * isum as f32 - y.d * dmin * msum as f32;
    }
    sum
}

/// The quants (-32..=31) of one 128-value half of a Q6_K block, 16 lanes at a time:
/// `out[k]` holds values `32 k + 16 h .. 32 k + 16 h + 16` of the half (group `2 k + h`).
#[inline(always)]
unsafe fn unpack_q6(ql: &[u8], qh: &[u8], h: usize) -> [int8x16_t; 4] {
    // SAFETY: NEON guaranteed by the caller; loads read checked sub-slices.
    unsafe {
        let l0 = ld_u8(&ql[16 * h..]);
        let l1 = ld_u8(&ql[32 + 16 * h..]);
        let hh = ld_u8(&qh[16 * h..]);
        let m4 = vdupq_n_u8(0x0F);
        let m30 = vdupq_n_u8(0x30);
        let u = [
            vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8::<4>(hh), m30)),
            vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8::<2>(hh), m30)),
            vorrq_u8(vshrq_n_u8::<4>(l0), vandq_u8(hh, m30)),
            vorrq_u8(vshrq_n_u8::<4>(l1), vandq_u8(vshrq_n_u8::<2>(hh), m30)),
        ];
        let o = vdupq_n_s8(32);
        [
            vsubq_s8(vreinterpretq_s8_u8(u[0]), o),
            vsubq_s8(vreinterpretq_s8_u8(u[1]), o),
            vsubq_s8(vreinterpretq_s8_u8(u[2]), o),
            vsubq_s8(vreinterpretq_s8_u8(u[3]), o),
        ]
    }
}

/// # Safety
/// NEON (+ dotprod when `DOT`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q6_k_q8_k_body<const DOT: bool>(
    x: &[BlockQ6_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller; loads read checked sub-slices.
        let isum = unsafe {
            let mut acc = vdupq_n_s32(0);
            for n in 0..2 {
                let (ql, qh) = (&x.ql[64 * n..64 * n + 64], &x.qh[32 * n..32 * n + 32]);
                for h in 0..2 {
                    for (k, &v) in unpack_q6(ql, qh, h).iter().enumerate() {
                        let off = 128 * n + 32 * k + 16 * h;
                        let a = ld_s8(&y.qs[off..]);
                        acc = vmlaq_n_s32(acc, dot16z::<DOT>(v, a), x.scales[off / 16] as i32);
                    }
                }
            }
            vaddvq_s32(acc)
        };
        // SAFETY: FP guaranteed by the caller.
        let d = unsafe { f16_to_f32(x.d) };
        sum += y.d * d * isum as f32;
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Float dot products: 4 accumulators of 4 lanes, FMA.

/// # Safety
/// NEON; `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_f16_f32_body(x: &[f16], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let main = n / 16 * 16;
    // SAFETY: NEON guaranteed by the caller; every load reads 4 values below `main <= n`.
    let mut sum = unsafe {
        let (px, py) = (x.as_ptr().cast::<u16>(), y.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        for i in (0..main).step_by(16) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let xv = cvt_f16x4(vld1_u16(px.add(i + 4 * k)));
                *acc = vfmaq_f32(*acc, xv, vld1q_f32(py.add(i + 4 * k)));
            }
        }
        vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ))
    };
    for i in main..n {
        sum += x[i].to_f32() * y[i];
    }
    sum
}

/// # Safety
/// NEON; `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_f32_f32_body(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let main = n / 16 * 16;
    // SAFETY: NEON guaranteed by the caller; every load reads 4 values below `main <= n`.
    let mut sum = unsafe {
        let (px, py) = (x.as_ptr(), y.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        for i in (0..main).step_by(16) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let xv = vld1q_f32(px.add(i + 4 * k));
                *acc = vfmaq_f32(*acc, xv, vld1q_f32(py.add(i + 4 * k)));
            }
        }
        vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ))
    };
    for i in main..n {
        sum += x[i] * y[i];
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Dequantizers: the scalar twin's float operations, 4 lanes at a time (bit-equal).

/// Stores `q[i] as f32 * d` for the 16 signed bytes of `q` at `out[..16]`.
#[inline(always)]
unsafe fn store16_scaled(out: &mut [f32], q: int8x16_t, d: f32) {
    let out = &mut out[..16];
    // SAFETY: NEON guaranteed by the caller; each store writes 4 of the 16 values of `out`.
    unsafe {
        let p = out.as_mut_ptr();
        let lo = vmovl_s8(vget_low_s8(q));
        let hi = vmovl_high_s8(q);
        let parts = [
            vmovl_s16(vget_low_s16(lo)),
            vmovl_high_s16(lo),
            vmovl_s16(vget_low_s16(hi)),
            vmovl_high_s16(hi),
        ];
        for (k, i) in parts.into_iter().enumerate() {
            vst1q_f32(p.add(4 * k), vmulq_n_f32(vcvtq_f32_s32(i), d));
        }
    }
}

/// # Safety
/// NEON; `y.len() == x.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_q4_0_body(x: &[BlockQ4_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        // SAFETY: NEON guaranteed by the caller; stores go to checked sub-slices of `y`.
        unsafe {
            let d = f16_to_f32(b.d);
            let q = signed(unpack_q4(&b.qs), 8);
            store16_scaled(&mut y[..16], q[0], d);
            store16_scaled(&mut y[16..], q[1], d);
        }
    }
}

/// # Safety
/// NEON; `y.len() == x.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_q8_0_body(x: &[BlockQ8_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        // SAFETY: NEON guaranteed by the caller; stores go to checked sub-slices of `y`.
        unsafe {
            let d = f16_to_f32(b.d);
            let q = ld_s8x32(&b.qs);
            store16_scaled(&mut y[..16], q[0], d);
            store16_scaled(&mut y[16..], q[1], d);
        }
    }
}

/// # Safety
/// NEON; `y.len() == x.len() * 256`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_q6_k_body(x: &[BlockQ6_K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        // SAFETY: NEON guaranteed by the caller; stores go to checked sub-slices of `y`.
        unsafe {
            let d = f16_to_f32(b.d);
            for n in 0..2 {
                let (ql, qh) = (&b.ql[64 * n..64 * n + 64], &b.qh[32 * n..32 * n + 32]);
                for h in 0..2 {
                    for (k, &q) in unpack_q6(ql, qh, h).iter().enumerate() {
                        let off = 128 * n + 32 * k + 16 * h;
                        store16_scaled(&mut y[off..], q, d * b.scales[off / 16] as f32);
                    }
                }
            }
        }
    }
}

/// # Safety
/// NEON; `y.len() == x.len()`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_f16_body(x: &[f16], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let main = n / 8 * 8;
    // SAFETY: NEON guaranteed by the caller; loads/stores of 4 stay below `main <= n`.
    unsafe {
        let (px, py) = (x.as_ptr().cast::<u16>(), y.as_mut_ptr());
        for i in (0..main).step_by(8) {
            let h = vld1q_u16(px.add(i));
            vst1q_f32(py.add(i), cvt_f16x4(vget_low_u16(h)));
            vst1q_f32(py.add(i + 4), cvt_f16x4(vget_high_u16(h)));
        }
    }
    for i in main..n {
        y[i] = x[i].to_f32();
    }
}

// ---------------------------------------------------------------------------------------------
// Float matrix products (attention): the scalar twins, compiled (and auto-vectorized) for NEON.

/// `crate::scalar::gemm_f32_f16` under this module's features.
///
/// # Safety
/// None beyond the caller's (the body is safe code).
#[inline(always)]
pub(crate) unsafe fn gemm_f32_f16_body(a: &[f32], b: &[f16], c: &mut [f32], s: crate::MatShape) {
    scalar::gemm_f32_f16(a, b, c, s)
}

/// `crate::scalar::gemm_f32_f32` under this module's features.
///
/// # Safety
/// None beyond the caller's (the body is safe code).
#[inline(always)]
pub(crate) unsafe fn gemm_f32_f32_body(a: &[f32], b: &[f32], c: &mut [f32], s: crate::MatShape) {
    scalar::gemm_f32_f32(a, b, c, s)
}
