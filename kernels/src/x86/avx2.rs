//! AVX2 + FMA + F16C kernels (256-bit), in two flavours with the same kernel names: [`plain`]
//! (the `avx2` set) and [`avxvnni`] (plus AVX-VNNI's VEX `vpdpbusd`, the `avxvnni` set). The
//! `*_body` functions are `#[inline(always)]` and shared with `avx512`, where they are compiled
//! under the AVX-512 feature set.
//!
//! Integer parts are exact for every input byte, including -128 activations: 4-bit and 6-bit
//! weights are unsigned when multiplied (`maddubs` of values <= 63 by i8 cannot saturate), the
//! offsets (-8, -32) are subtracted as separate products, and Q8_0 x Q8_0 widens to i16 first.

use std::arch::x86_64::*;

use cinder_quant::block::*;
use cinder_quant::dtype::QK_K;
use half::f16;

use super::vnni::{EVEX, NONE, VEX};
use super::{f16_to_f32, f32_to_f16, hsum_epi32, hsum_ps};
use crate::scalar;

macro_rules! avx2_flavour {
    ($m:ident, $feat:literal, $vnni:path) => {
        #[doc = concat!("256-bit kernels compiled for `", $feat, "`.")]
        pub(crate) mod $m {
            use cinder_quant::block::*;
            use half::f16;

            kernels! { $feat;
                unsafe quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) = super::quantize_row_q8_0_body;
                unsafe quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) = super::quantize_row_q8_1_body;
                unsafe quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) = super::quantize_row_q8_k_body;
                unsafe vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 = super::vec_dot_q4_0_q8_0_body::<{ $vnni }>;
                unsafe vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 = super::vec_dot_q8_0_q8_0_body::<{ $vnni }>;
                unsafe vec_dot_q4_k_q8_k(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 = super::vec_dot_q4_k_q8_k_body::<{ $vnni }>;
                unsafe vec_dot_q6_k_q8_k(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 = super::vec_dot_q6_k_q8_k_body::<{ $vnni }>;
                unsafe vec_dot_f16_f32(x: &[f16], y: &[f32]) -> f32 = super::vec_dot_f16_f32_body;
                unsafe vec_dot_f32_f32(x: &[f32], y: &[f32]) -> f32 = super::vec_dot_f32_f32_body;
                unsafe gemm_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::gemm_body::<super::Q4_0Tile<{ $vnni }>, 4, 3>;
                unsafe gemm_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::gemm_body::<super::Q8_0Tile<{ $vnni }>, 4, 3>;
                unsafe gemm_q4_k_q8_k(w: &[BlockQ4_K], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = super::gemm_q4_k_q8_k_body::<{ $vnni }>;
                unsafe dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) = super::dequantize_row_q4_0_body;
                unsafe dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) = super::dequantize_row_q8_0_body;
                unsafe dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) = super::dequantize_row_q6_k_body;
                unsafe dequantize_row_f16(x: &[f16], y: &mut [f32]) = super::dequantize_row_f16_body;
                unsafe gemm_f32_f16(a: &[f32], b: &[f16], c: &mut [f32], s: crate::MatShape) = super::gemm_nn_body::<f16>;
                unsafe gemm_f32_f32(a: &[f32], b: &[f32], c: &mut [f32], s: crate::MatShape) = super::gemm_nn_body::<f32>;
                unsafe gemm_q4_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = crate::x86::avx2_strips::strips_body::<crate::x86::avx2_strips::Q4_0, { $vnni }>;
                unsafe gemm_q8_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = crate::x86::avx2_strips::strips_body::<crate::x86::avx2_strips::Q8_0, { $vnni }>;
                unsafe gemm_q4_kx16_q8_k(w: &[crate::repack::BlockQ4_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<crate::x86::avx2_strips::Q4K<crate::repack::BlockQ4_Kx16, { $vnni }>>;
                unsafe gemm_q5_kx16_q8_k(w: &[crate::repack::BlockQ5_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<crate::x86::avx2_strips::Q4K<crate::repack::BlockQ5_Kx16, { $vnni }>>;
                unsafe gemm_q6_kx16_q8_k(w: &[crate::repack::BlockQ6_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<crate::x86::avx2_strips::Q6K<{ $vnni }>>;
                safe exp_sum(x: &mut [f32], shift: f32) -> f32 = crate::scalar::exp_sum;
                safe silu_mul(g: &mut [f32], u: &[f32]) = crate::scalar::silu_mul;
                unsafe vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 = super::vec_dot_q5_0_q8_0_body::<{ $vnni }>;
                unsafe vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 = super::vec_dot_q4_1_q8_1_body::<{ $vnni }>;
                unsafe vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 = super::vec_dot_q5_1_q8_1_body::<{ $vnni }>;
                unsafe vec_dot_q2_k_q8_k(x: &[BlockQ2_K], y: &[BlockQ8_K]) -> f32 = super::vec_dot_q2_k_q8_k_body::<{ $vnni }>;
                unsafe vec_dot_q3_k_q8_k(x: &[BlockQ3_K], y: &[BlockQ8_K]) -> f32 = super::vec_dot_q3_k_q8_k_body::<{ $vnni }>;
                unsafe vec_dot_q5_k_q8_k(x: &[BlockQ5_K], y: &[BlockQ8_K]) -> f32 = super::vec_dot_q5_k_q8_k_body::<{ $vnni }>;
            }
        }
    };
}

avx2_flavour!(plain, "avx2,fma,f16c", crate::x86::vnni::NONE);
avx2_flavour!(avxvnni, "avx2,fma,f16c,avxvnni", crate::x86::vnni::VEX);

// ---------------------------------------------------------------------------------------------
// Activation quantizers.

/// `|v|` per lane.
#[inline(always)]
unsafe fn abs_ps(v: __m256) -> __m256 {
    // SAFETY: AVX is guaranteed by the caller.
    unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), v) }
}

/// Horizontal max of 8 lanes.
#[inline(always)]
unsafe fn hmax_ps(v: __m256) -> f32 {
    // SAFETY: AVX is guaranteed by the caller.
    unsafe {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        _mm_cvtss_f32(m)
    }
}

/// Round half away from zero (C's `roundf`), exactly: `t = trunc(v)`, then `t + sign(v)` when
/// `|v - t| >= 0.5` (`v - t` is exact).
#[inline(always)]
unsafe fn round_away_ps(v: __m256) -> __m256 {
    // SAFETY: AVX is guaranteed by the caller.
    unsafe {
        let t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        let frac = abs_ps(_mm256_sub_ps(v, t));
        let up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5), _CMP_GE_OQ);
        let one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0)), _mm256_set1_ps(1.0));
        _mm256_add_ps(t, _mm256_and_ps(up, one))
    }
}

/// Packs 4 x 8 i32 (already in i8 range or saturated like `as i8`) into 32 i8 in order.
#[inline(always)]
unsafe fn pack_i32x32(i: [__m256i; 4]) -> __m256i {
    // SAFETY: AVX2 is guaranteed by the caller.
    unsafe {
        let p01 = _mm256_packs_epi32(i[0], i[1]);
        let p23 = _mm256_packs_epi32(i[2], i[3]);
        let p = _mm256_packs_epi16(p01, p23);
        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }
}

/// One Q8 block of 32: returns the unrounded `d` and `sum(q)`; same float ops as the scalar.
#[inline(always)]
unsafe fn quantize_q8_block(x: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    assert!(x.len() >= QK);
    // SAFETY: AVX2 is guaranteed by the caller; `x` has 32 values (asserted), `qs` 32 bytes.
    unsafe {
        let p = x.as_ptr();
        let v = [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ];
        let m = _mm256_max_ps(
            _mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])),
            _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3])),
        );
        let amax = hmax_ps(m);
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let mut i = [_mm256_setzero_si256(); 4];
        for (i, &v) in i.iter_mut().zip(&v) {
            *i = _mm256_cvtps_epi32(round_away_ps(_mm256_mul_ps(v, id)));
        }
        let sum = hsum_epi32(_mm256_add_epi32(
            _mm256_add_epi32(i[0], i[1]),
            _mm256_add_epi32(i[2], i[3]),
        ));
        _mm256_storeu_si256(qs.as_mut_ptr().cast(), pack_i32x32(i));
        (d, sum)
    }
}

/// # Safety
/// AVX2 + F16C; `x.len() == y.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn quantize_row_q8_0_body(x: &[f32], y: &mut [BlockQ8_0]) {
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: features guaranteed by the caller.
        unsafe {
            let (d, _) = quantize_q8_block(x, &mut b.qs);
            b.d = f32_to_f16(d);
        }
    }
}

/// # Safety
/// AVX2 + F16C; `x.len() == y.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn quantize_row_q8_1_body(x: &[f32], y: &mut [BlockQ8_1]) {
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: features guaranteed by the caller.
        unsafe {
            let (d, sum) = quantize_q8_block(x, &mut b.qs);
            b.d = f32_to_f16(d);
            b.s = f32_to_f16(sum as f32 * d);
        }
    }
}

/// # Safety
/// AVX2; `x.len() == y.len() * 256`.
#[inline(always)]
pub(crate) unsafe fn quantize_row_q8_k_body(x: &[f32], y: &mut [BlockQ8_K]) {
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        assert!(x.len() == QK_K);
        // SAFETY: AVX2 guaranteed by the caller; every load reads 8 of the 256 values of `x`
        // and every store writes 32 of the 256 bytes of `b.qs`.
        unsafe {
            let p = x.as_ptr();
            let mut m = _mm256_setzero_ps();
            for k in 0..QK_K / 8 {
                m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(p.add(8 * k))));
            }
            let amax = hmax_ps(m);
            if amax == 0.0 {
                b.d = 0.0;
                b.qs = [0; QK_K];
                b.bsums = [0; QK_K / 16];
                continue;
            }
            // The first value of magnitude `amax`, with its sign (as the scalar scan finds it).
            let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
            let iscale = -127.0 / max;
            let is = _mm256_set1_ps(iscale);
            let lim = _mm256_set1_epi32(127);
            for g in 0..QK_K / 32 {
                let mut i = [_mm256_setzero_si256(); 4];
                for (k, i) in i.iter_mut().enumerate() {
                    let v = _mm256_mul_ps(is, _mm256_loadu_ps(p.add(32 * g + 8 * k)));
                    let r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    *i = _mm256_min_epi32(_mm256_cvtps_epi32(r), lim);
                }
                _mm256_storeu_si256(b.qs.as_mut_ptr().add(32 * g).cast(), pack_i32x32(i));
            }
            for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
                *s = g.iter().map(|&q| q as i16).sum();
            }
            b.d = 1.0 / iscale;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// u8 x i8 dot products: the one place VNNI differs. The bodies take the VNNI kind as a const
// parameter (`super::vnni`): none (`vpmaddubsw` + `vpmaddwd`), EVEX (AVX512-VNNI + VL, the
// `avx512vnni` set) or VEX (AVX-VNNI, the `avxvnni` set); the last two are the same
// instructions in two encodings, each needing its own target feature.

/// `acc + sum of 4 adjacent u * s` per i32 lane (u unsigned bytes, s signed bytes), exact in
/// every case; needs a VNNI kind other than `NONE`.
///
/// # Safety
/// AVX512-VNNI + VL (`EVEX`) or AVX-VNNI (`VEX`).
#[inline(always)]
pub(crate) unsafe fn dpbusd<const VNNI: u8>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    // SAFETY: the caller guarantees the features of the encoding `VNNI` names.
    unsafe {
        match VNNI {
            EVEX => _mm256_dpbusd_epi32(acc, u, s),
            VEX => _mm256_dpbusd_avx_epi32(acc, u, s),
            _ => unreachable!("vpdpbusd without VNNI"),
        }
    }
}

/// `acc + sum of 2 adjacent p * s` per i32 lane (i16 x i16), exact unless the sum wraps;
/// needs a VNNI kind other than `NONE`.
///
/// # Safety
/// As [`dpbusd`].
#[inline(always)]
pub(crate) unsafe fn dpwssd<const VNNI: u8>(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
    // SAFETY: the caller guarantees the features of the encoding `VNNI` names.
    unsafe {
        match VNNI {
            EVEX => _mm256_dpwssd_epi32(acc, p, s),
            VEX => _mm256_dpwssd_avx_epi32(acc, p, s),
            _ => unreachable!("vpdpwssd without VNNI"),
        }
    }
}

/// `acc + sum of 4 adjacent u * s` per i32 lane (u unsigned bytes, s signed bytes), exact
/// when each adjacent pair `u0*s0 + u1*s1` fits i16 (true for u <= 127).
#[inline(always)]
pub(crate) unsafe fn dot_u8i8<const VNNI: u8>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    // SAFETY: AVX2 (and the VNNI kind's features) is guaranteed by the caller.
    unsafe {
        if VNNI != NONE {
            dpbusd::<VNNI>(acc, u, s)
        } else {
            let p = _mm256_maddubs_epi16(u, s);
            _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
        }
    }
}

/// Sum of the products of 32 signed bytes, as 8 i32 lanes, exact for all inputs.
#[inline(always)]
unsafe fn dot_i8i8(x: __m256i, y: __m256i) -> __m256i {
    // SAFETY: AVX2 is guaranteed by the caller.
    unsafe {
        let xl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
        let xh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1));
        let yl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(y));
        let yh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(y, 1));
        _mm256_add_epi32(_mm256_madd_epi16(xl, yl), _mm256_madd_epi16(xh, yh))
    }
}

/// The 32 nibbles of a Q4_0 / Q4_1 block in value order (low nibbles, then high).
#[inline(always)]
pub(crate) unsafe fn unpack_q4(qs: &[u8; QK / 2]) -> __m256i {
    // SAFETY: AVX2 is guaranteed by the caller; the load reads the 16 bytes of `qs`.
    unsafe {
        let q = _mm_loadu_si128(qs.as_ptr().cast());
        let both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }
}

/// Loads 32 bytes.
#[inline(always)]
pub(crate) unsafe fn load32<T>(p: &[T; 32]) -> __m256i
where
    T: Copy,
{
    debug_assert!(std::mem::size_of::<T>() == 1);
    // SAFETY: AVX is guaranteed by the caller; `p` is 32 one-byte values.
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

// ---------------------------------------------------------------------------------------------
// Tiles: a weight format's per-block integer dot against a Q8_0 activation block, split into
// "unpack the weight block" and "prepare the activation block" so a tile does each once.

/// One weight format in a tiled (or 1 x 1: vec_dot) product with Q8_0 activations.
pub(crate) trait Tile {
    /// The weight block.
    type W;
    /// A weight block unpacked into registers.
    type Wu: Copy;
    /// An activation block prepared for this weight format.
    type Au: Copy;
    /// Unpack a weight block; returns it and its scale.
    unsafe fn unpack_w(b: &Self::W) -> (Self::Wu, f32);
    /// Prepare an activation block; returns it and its scale.
    unsafe fn prep_a(b: &BlockQ8_0) -> (Self::Au, f32);
    /// The block's integer dot product, spread over 8 i32 lanes (exact).
    unsafe fn idot(w: Self::Wu, a: Self::Au) -> __m256i;
}

/// Q4_0 weights: `sum(q * a) - sum(8 * a)`, the second part computed once per activation.
pub(crate) struct Q4_0Tile<const VNNI: u8>;

impl<const VNNI: u8> Tile for Q4_0Tile<VNNI> {
    type W = BlockQ4_0;
    type Wu = __m256i;
    type Au = (__m256i, __m256i);
    #[inline(always)]
    unsafe fn unpack_w(b: &BlockQ4_0) -> (__m256i, f32) {
        // SAFETY: AVX2 + F16C guaranteed by the caller.
        unsafe { (unpack_q4(&b.qs), f16_to_f32(b.d)) }
    }
    #[inline(always)]
    unsafe fn prep_a(b: &BlockQ8_0) -> ((__m256i, __m256i), f32) {
        // SAFETY: AVX2 + F16C guaranteed by the caller.
        unsafe {
            let a = load32(&b.qs);
            let eight = dot_u8i8::<VNNI>(_mm256_setzero_si256(), _mm256_set1_epi8(8), a);
            ((a, eight), f16_to_f32(b.d))
        }
    }
    #[inline(always)]
    unsafe fn idot(w: __m256i, (a, eight): (__m256i, __m256i)) -> __m256i {
        // SAFETY: AVX2 guaranteed by the caller.
        unsafe { _mm256_sub_epi32(dot_u8i8::<VNNI>(_mm256_setzero_si256(), w, a), eight) }
    }
}

/// Q8_0 weights: signed x signed, widened to i16 (exact even for -128 x -128).
pub(crate) struct Q8_0Tile<const VNNI: u8>;

impl<const VNNI: u8> Tile for Q8_0Tile<VNNI> {
    type W = BlockQ8_0;
    type Wu = __m256i;
    type Au = (__m256i, __m256i);
    #[inline(always)]
    unsafe fn unpack_w(b: &BlockQ8_0) -> (__m256i, f32) {
        // SAFETY: AVX2 + F16C guaranteed by the caller.
        unsafe {
            let w = load32(&b.qs);
            // VNNI: bias the weights to unsigned (w + 128); the bias is removed in `idot`.
            let w = if VNNI != NONE {
                _mm256_xor_si256(w, _mm256_set1_epi8(-128))
            } else {
                w
            };
            (w, f16_to_f32(b.d))
        }
    }
    #[inline(always)]
    unsafe fn prep_a(b: &BlockQ8_0) -> ((__m256i, __m256i), f32) {
        // SAFETY: AVX2 + F16C guaranteed by the caller.
        unsafe {
            let a = load32(&b.qs);
            let bias = if VNNI != NONE {
                // 128 * a, summed like the main product.
                dot_u8i8::<VNNI>(_mm256_setzero_si256(), _mm256_set1_epi8(-128), a)
            } else {
                _mm256_setzero_si256()
            };
            ((a, bias), f16_to_f32(b.d))
        }
    }
    #[inline(always)]
    unsafe fn idot(w: __m256i, (a, bias): (__m256i, __m256i)) -> __m256i {
        // SAFETY: AVX2 (+ VNNI when enabled) guaranteed by the caller.
        unsafe {
            if VNNI != NONE {
                // (w + 128) * a - 128 * a, each pair of u8*i8 products exact in i32 lanes.
                _mm256_sub_epi32(dpbusd::<VNNI>(_mm256_setzero_si256(), w, a), bias)
            } else {
                dot_i8i8(w, a)
            }
        }
    }
}

/// `RM x RN` outputs starting at weight row `r0`, activation column `c0`: every weight block is
/// unpacked once for `RN` columns and every activation block prepared once for `RM` rows.
#[inline(always)]
unsafe fn tile<T: Tile, const RM: usize, const RN: usize>(
    w: &[T::W],
    a: &[BlockQ8_0],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: the caller guarantees the features; all indexing below is bounds-checked.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); RN]; RM];
        for k in 0..nb {
            let mut av = [T::prep_a(&a[c0 * nb + k]); RN];
            for (c, av) in av.iter_mut().enumerate().skip(1) {
                *av = T::prep_a(&a[(c0 + c) * nb + k]);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let (wu, wd) = T::unpack_w(&w[(r0 + r) * nb + k]);
                for (acc, &(au, ad)) in acc.iter_mut().zip(&av) {
                    let s = _mm256_cvtepi32_ps(T::idot(wu, au));
                    *acc = _mm256_fmadd_ps(_mm256_set1_ps(wd * ad), s, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (c, &v) in acc.iter().enumerate() {
                out[(c0 + c) * ldo + r0 + r] = hsum_ps(v);
            }
        }
    }
}

/// Tiled product over every row of `w` and column of `a` (`nb` blocks each):
/// `out[c * ldo + r]`, with `RM x RN` micro-tiles and 1-wide edge tiles.
///
/// # Safety
/// The features `T` needs; `w.len()` and `a.len()` multiples of `nb`, and `out` covers every
/// `c * ldo + r` (indexing is checked anyway).
#[inline(always)]
pub(crate) unsafe fn gemm_body<T: Tile, const RM: usize, const RN: usize>(
    w: &[T::W],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let (rows, cols) = (w.len() / nb, a.len() / nb);
    let (rf, cf) = (rows / RM * RM, cols / RN * RN);
    // SAFETY: the caller guarantees the features and the shapes.
    unsafe {
        for r0 in (0..rf).step_by(RM) {
            for c0 in (0..cf).step_by(RN) {
                tile::<T, RM, RN>(w, a, nb, (r0, c0), out, ldo);
            }
            for c0 in cf..cols {
                tile::<T, RM, 1>(w, a, nb, (r0, c0), out, ldo);
            }
        }
        for r0 in rf..rows {
            for c0 in (0..cf).step_by(RN) {
                tile::<T, 1, RN>(w, a, nb, (r0, c0), out, ldo);
            }
            for c0 in cf..cols {
                tile::<T, 1, 1>(w, a, nb, (r0, c0), out, ldo);
            }
        }
    }
}

/// Dot product of one weight row with one activation row through a `Tile`.
#[inline(always)]
unsafe fn row_dot<T: Tile>(x: &[T::W], y: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the features.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 2];
        for (i, (x, y)) in x.iter().zip(y).enumerate() {
            let (wu, wd) = T::unpack_w(x);
            let (au, ad) = T::prep_a(y);
            let s = _mm256_cvtepi32_ps(T::idot(wu, au));
            acc[i & 1] = _mm256_fmadd_ps(_mm256_set1_ps(wd * ad), s, acc[i & 1]);
        }
        hsum_ps(_mm256_add_ps(acc[0], acc[1]))
    }
}

/// # Safety
/// AVX2 + FMA + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q4_0_q8_0_body<const VNNI: u8>(
    x: &[BlockQ4_0],
    y: &[BlockQ8_0],
) -> f32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { row_dot::<Q4_0Tile<VNNI>>(x, y) }
}

/// `d_x[i] * d_y[i]` for 8 block pairs, one per lane (exact f16 -> f32, one f32 multiply,
/// as the scalar twin).
#[inline(always)]
pub(crate) unsafe fn d_products8(dx: [f16; 8], dy: [f16; 8]) -> __m256 {
    let bits = |d: [f16; 8]| d.map(|h| h.to_bits());
    let (bx, by) = (bits(dx), bits(dy));
    // SAFETY: F16C + AVX guaranteed by the caller; each load reads one 8 x u16 array.
    unsafe {
        let hx = _mm_loadu_si128(bx.as_ptr().cast());
        let hy = _mm_loadu_si128(by.as_ptr().cast());
        _mm256_mul_ps(_mm256_cvtph_ps(hx), _mm256_cvtph_ps(hy))
    }
}

/// Integer dot of two Q8_0 blocks as 8 i32 lanes, exact for all bytes (also -128 x -128).
/// VNNI: `(x + 128) * y - 128 * y` with `vpdpbusd`; otherwise widened to i16 and `vpmaddwd`.
#[inline(always)]
pub(crate) unsafe fn idot_q8_0<const VNNI: u8>(x: &[i8; QK], y: &[i8; QK]) -> __m256i {
    // SAFETY: AVX2 (+ the features of the VNNI kind `VNNI`) guaranteed by the caller; every load reads
    // 16 or 32 bytes inside the 32-byte arrays.
    unsafe {
        if VNNI != NONE {
            let bias = _mm256_set1_epi8(-128);
            let a = load32(y);
            let w = _mm256_xor_si256(load32(x), bias);
            let p = dpbusd::<VNNI>(_mm256_setzero_si256(), w, a);
            _mm256_sub_epi32(p, dpbusd::<VNNI>(_mm256_setzero_si256(), bias, a))
        } else {
            let half = |p: &[i8; QK], o: usize| {
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.as_ptr().add(o).cast()))
            };
            _mm256_add_epi32(
                _mm256_madd_epi16(half(x, 0), half(y, 0)),
                _mm256_madd_epi16(half(x, 16), half(y, 16)),
            )
        }
    }
}

/// Q8_0 x Q8_0, 8 blocks per step: the 8 scale products in one F16C multiply, each block's
/// integer lanes scaled into one of 4 float accumulators (no per-block horizontal sum).
///
/// # Safety
/// AVX2 + FMA + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q8_0_q8_0_body<const VNNI: u8>(
    x: &[BlockQ8_0],
    y: &[BlockQ8_0],
) -> f32 {
    let n = x.len().min(y.len());
    let (xc, xr) = x[..n].as_chunks::<8>();
    let (yc, yr) = y[..n].as_chunks::<8>();
    // SAFETY: features guaranteed by the caller; all block accesses are bounds-checked.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (xs, ys) in xc.iter().zip(yc) {
            let mut dd = [0f32; 8];
            _mm256_storeu_ps(
                dd.as_mut_ptr(),
                d_products8(xs.map(|b| b.d), ys.map(|b| b.d)),
            );
            for j in 0..8 {
                let s = _mm256_cvtepi32_ps(idot_q8_0::<VNNI>(&xs[j].qs, &ys[j].qs));
                acc[j % 4] = _mm256_fmadd_ps(_mm256_set1_ps(dd[j]), s, acc[j % 4]);
            }
        }
        for (j, (x, y)) in xr.iter().zip(yr).enumerate() {
            let s = _mm256_cvtepi32_ps(idot_q8_0::<VNNI>(&x.qs, &y.qs));
            let d = f16_to_f32(x.d) * f16_to_f32(y.d);
            acc[j % 4] = _mm256_fmadd_ps(_mm256_set1_ps(d), s, acc[j % 4]);
        }
        hsum_ps(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// k-quants: the integer sum of each super-block is reduced to a scalar and combined with the
// scales by exactly the scalar twin's float expression, so these equal `scalar` bit for bit.

/// Q4_K / Q5_K packed scales and mins (`scalar::scales_mins_k4`) with word operations: the
/// 8 six-bit scales and the 8 six-bit mins, one per byte.
#[inline(always)]
pub(crate) fn scales_mins_k4_words(s: &[u8; 12]) -> (u64, u64) {
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (a, b, c) = (w(0), w(4), w(8));
    let (m6, m4, m2) = (0x3F3F_3F3Fu32, 0x0F0F_0F0Fu32, 0x0303_0303u32);
    let sc_hi = (c & m4) | (((a >> 6) & m2) << 4);
    let mn_hi = ((c >> 4) & m4) | (((b >> 6) & m2) << 4);
    let sc = (a & m6) as u64 | (sc_hi as u64) << 32;
    let mn = (b & m6) as u64 | (mn_hi as u64) << 32;
    (sc, mn)
}

/// `acc + sum of adjacent pairs p * s` (i16 x i16 -> i32), `vpdpwssd` with VNNI.
#[inline(always)]
unsafe fn madd_acc<const VNNI: u8>(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
    // SAFETY: AVX2 (+ the features of the VNNI kind `VNNI`) guaranteed by the caller.
    unsafe {
        if VNNI != NONE {
            dpwssd::<VNNI>(acc, p, s)
        } else {
            _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
        }
    }
}

/// Q4_K x Q8_K. Per super-block, exactly the scalar twin's integers and float expression (so
/// bit-equal): sub-block products as `maddubs` (u4 x i8 pairs fit i16) times the i16 scale
/// broadcast by `pshufb`, mins against pair-summed `bsums` in one `pmaddwd`.
///
/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q4_k_q8_k_body<const VNNI: u8>(
    x: &[BlockQ4_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let (sc, mn) = scales_mins_k4_words(&x.scales);
        // SAFETY: AVX2 + F16C (+VNNI) guaranteed by the caller; loads read whole 32-byte
        // sub-arrays of `x.qs` / `y.qs` and the 32 bytes of `y.bsums`.
        let term = unsafe {
            // Scales as 8 x i16, in both 128-bit halves.
            let sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64));
            let sc16 = _mm256_broadcastsi128_si256(sc16);
            let mn16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
            let bs = _mm256_loadu_si256(y.bsums.as_ptr().cast());
            // bsums[2s] + bsums[2s + 1] (|.| <= 4096, fits i16), then * min, summed.
            let bp = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            let m = _mm_madd_epi16(bp, mn16);

            let m4 = _mm256_set1_epi8(0x0F);
            let qs = x.qs.as_ptr();
            let aq = y.qs.as_ptr();
            let mut acc = [_mm256_setzero_si256(); 2];
            for j in 0..4 {
                let q = _mm256_loadu_si256(qs.add(32 * j).cast());
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                let p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(aq.add(64 * j).cast()));
                let p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(aq.add(64 * j + 32).cast()));
                // Broadcast i16 lanes 2j and 2j + 1 of the scales.
                let k = 4 * j as u8;
                let s0 =
                    _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(i16::from_le_bytes([k, k + 1])));
                let s1 = _mm256_shuffle_epi8(
                    sc16,
                    _mm256_set1_epi16(i16::from_le_bytes([k + 2, k + 3])),
                );
                acc[0] = madd_acc::<VNNI>(acc[0], p0, s0);
                acc[1] = madd_acc::<VNNI>(acc[1], p1, s1);
            }
            let a = _mm256_add_epi32(acc[0], acc[1]);
            let a = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
            // [isum, msum, ..]: both reductions at once, then both conversions at once.
            let v = _mm_hadd_epi32(a, m);
            let v = _mm_cvtepi32_ps(_mm_hadd_epi32(v, v));
            // [d, dmin] (adjacent f16 fields), times d_a, times [isum, msum]: the scalar twin's
            // `y.d * d * isum` and `y.d * dmin * msum`, rounded the same way.
            let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(
                (x.d.to_bits() as u32 | (x.dmin.to_bits() as u32) << 16) as i32,
            ));
            let t = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(y.d), dd), v);
            _mm_cvtss_f32(t) - _mm_cvtss_f32(_mm_movehdup_ps(t))
        };
        sum += term;
    }
    sum
}

/// Q4_K gemm: one [`vec_dot_q4_k_q8_k_body`] per row and column (bit-equal to it).
///
/// # Safety
/// As [`vec_dot_q4_k_q8_k_body`]; `w` and `a` hold whole rows of `nb` blocks and `out` every
/// `c * ldo + r`.
#[inline(always)]
pub(crate) unsafe fn gemm_q4_k_q8_k_body<const VNNI: u8>(
    w: &[BlockQ4_K],
    a: &[BlockQ8_K],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    crate::scalar::gemm_by_dots(w, a, nb, out, ldo, |x, y| {
        // SAFETY: forwarded caller guarantees (rows of equal length).
        unsafe { vec_dot_q4_k_q8_k_body::<VNNI>(x, y) }
    })
}

/// The 4 x 32 six-bit quants (0..=63) of one 128-value half of a Q6_K block.
#[inline(always)]
unsafe fn unpack_q6_half(ql: *const u8, qh: *const u8) -> [__m256i; 4] {
    // SAFETY: AVX2 guaranteed by the caller; `ql` points at 64 bytes, `qh` at 32.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let m30 = _mm256_set1_epi8(0x30);
        let l0 = _mm256_loadu_si256(ql.cast());
        let l1 = _mm256_loadu_si256(ql.add(32).cast());
        let h = _mm256_loadu_si256(qh.cast());
        // Bits 2k..2k+2 of `qh`, moved to bits 4..6 (16-bit shifts: the mask drops what
        // crosses from the neighbouring byte).
        let hb = [
            _mm256_and_si256(_mm256_slli_epi16(h, 4), m30),
            _mm256_and_si256(_mm256_slli_epi16(h, 2), m30),
            _mm256_and_si256(h, m30),
            _mm256_and_si256(_mm256_srli_epi16(h, 2), m30),
        ];
        [
            _mm256_or_si256(_mm256_and_si256(l0, m4), hb[0]),
            _mm256_or_si256(_mm256_and_si256(l1, m4), hb[1]),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), hb[2]),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), hb[3]),
        ]
    }
}

/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q6_k_q8_k_body<const VNNI: u8>(
    x: &[BlockQ6_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: AVX2 (+VNNI) guaranteed by the caller; pointers stay inside the blocks.
        let isum = unsafe {
            // sum_g scale_g * sum_{i in g} (q_i - 32) * a_i, as
            // sum_g scale_g * sum q_i * a_i  -  32 * sum_g scale_g * bsum_g.
            // `vpmaddubsw` is exact here: 2 * 63 * 128 < 2^15.
            // One accumulator per 32-value chunk of a half: the multiply-adds do not wait on
            // each other's latency.
            let mut acc = [_mm256_setzero_si256(); 4];
            let sc8 = _mm_loadu_si128(x.scales.as_ptr().cast());
            let sc16 = _mm256_cvtepi8_epi16(sc8);
            for n in 0..2 {
                let q = unpack_q6_half(x.ql.as_ptr().add(64 * n), x.qh.as_ptr().add(32 * n));
                for (k, q) in q.into_iter().enumerate() {
                    let a = _mm256_loadu_si256(y.qs.as_ptr().add(128 * n + 32 * k).cast());
                    // i16 lanes 0..8 take group g's scale, lanes 8..16 group g + 1's.
                    let g = (8 * n + 2 * k) as i8;
                    let pick = _mm_setr_epi8(
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                    );
                    let sc = if VNNI == EVEX {
                        // AVX512-BW/VL (part of the EVEX flavour): one word permute.
                        _mm256_permutexvar_epi16(_mm256_cvtepi8_epi16(pick), sc16)
                    } else {
                        _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick))
                    };
                    let p = _mm256_maddubs_epi16(q, a);
                    acc[k] = madd_acc::<VNNI>(acc[k], p, sc);
                }
            }
            let bs = _mm256_loadu_si256(y.bsums.as_ptr().cast());
            let off = _mm256_madd_epi16(sc16, bs);
            let acc = _mm256_add_epi32(
                _mm256_add_epi32(acc[0], acc[1]),
                _mm256_add_epi32(acc[2], acc[3]),
            );
            hsum_epi32(_mm256_sub_epi32(acc, _mm256_slli_epi32(off, 5)))
        };
        // SAFETY: F16C guaranteed by the caller.
        let d = unsafe { f16_to_f32(x.d) };
        sum += y.d * d * isum as f32;
    }
    sum
}

/// Byte `i` of the result is 16 when bit `i` of `qh` is set, else 0.
#[inline(always)]
unsafe fn bits_to_16s(qh: [u8; 4]) -> __m256i {
    // SAFETY: AVX2 is guaranteed by the caller.
    unsafe {
        let v = _mm256_set1_epi32(i32::from_le_bytes(qh));
        // Byte i takes byte i / 8 of qh, then tests bit i % 8.
        let spread = _mm256_shuffle_epi8(
            v,
            _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                3, 3, 3, 3,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        _mm256_and_si256(set, _mm256_set1_epi8(16))
    }
}

/// The 32 five-bit quants (0..=31) of a Q5_0 / Q5_1 block, in value order.
#[inline(always)]
unsafe fn unpack_q5(qs: &[u8; QK / 2], qh: [u8; 4]) -> __m256i {
    // SAFETY: AVX2 is guaranteed by the caller.
    unsafe { _mm256_or_si256(unpack_q4(qs), bits_to_16s(qh)) }
}

/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q5_0_q8_0_body<const VNNI: u8>(
    x: &[BlockQ5_0],
    y: &[BlockQ8_0],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller; loads read whole block arrays.
        let (isum, dx, dy) = unsafe {
            let a = load32(&y.qs);
            let p = dot_u8i8::<VNNI>(_mm256_setzero_si256(), unpack_q5(&x.qs, x.qh), a);
            let o = dot_u8i8::<VNNI>(_mm256_setzero_si256(), _mm256_set1_epi8(16), a);
            (
                hsum_epi32(_mm256_sub_epi32(p, o)),
                f16_to_f32(x.d),
                f16_to_f32(y.d),
            )
        };
        sum += isum as f32 * (dx * dy);
    }
    sum
}

/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q4_1_q8_1_body<const VNNI: u8>(
    x: &[BlockQ4_1],
    y: &[BlockQ8_1],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller; loads read whole block arrays.
        unsafe {
            let p = dot_u8i8::<VNNI>(_mm256_setzero_si256(), unpack_q4(&x.qs), load32(&y.qs));
            let isum = hsum_epi32(p);
            sum += isum as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d))
                + f16_to_f32(x.m) * f16_to_f32(y.s);
        }
    }
    sum
}

/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q5_1_q8_1_body<const VNNI: u8>(
    x: &[BlockQ5_1],
    y: &[BlockQ8_1],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        // SAFETY: features guaranteed by the caller; loads read whole block arrays.
        unsafe {
            let w = unpack_q5(&x.qs, x.qh);
            let isum = hsum_epi32(dot_u8i8::<VNNI>(_mm256_setzero_si256(), w, load32(&y.qs)));
            sum += isum as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d))
                + f16_to_f32(x.m) * f16_to_f32(y.s);
        }
    }
    sum
}

/// Byte `i` is 16 where `qh[i] & bit` is set, else 0 (`sixteen` is 16 in every byte).
#[inline(always)]
unsafe fn bit_to_16s(qh: __m256i, bit: u8, sixteen: __m256i) -> __m256i {
    // SAFETY: AVX2 is guaranteed by the caller.
    unsafe {
        let b = _mm256_set1_epi8(bit as i8);
        _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b), b), sixteen)
    }
}

/// `[a; 4 lanes] ++ [b; 4 lanes]`: scales of two groups of 16 values.
#[inline(always)]
unsafe fn two_scales(a: i32, b: i32) -> __m256i {
    // SAFETY: AVX is guaranteed by the caller.
    unsafe { _mm256_set_m128i(_mm_set1_epi32(b), _mm_set1_epi32(a)) }
}

/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q2_k_q8_k_body<const VNNI: u8>(
    x: &[BlockQ2_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut msum = 0i32;
        for (&s, &b) in x.scales.iter().zip(&y.bsums) {
            msum += (s >> 4) as i32 * b as i32;
        }
        // SAFETY: AVX2 (+VNNI) guaranteed by the caller; pointers stay inside the blocks.
        let isum = unsafe {
            let mut acc = _mm256_setzero_si256();
            let m2 = _mm256_set1_epi8(3);
            for n in 0..2 {
                let q = _mm256_loadu_si256(x.qs.as_ptr().add(32 * n).cast());
                for j in 0..4 {
                    let v = match j {
                        0 => q,
                        1 => _mm256_srli_epi16(q, 2),
                        2 => _mm256_srli_epi16(q, 4),
                        _ => _mm256_srli_epi16(q, 6),
                    };
                    let v = _mm256_and_si256(v, m2);
                    let a = _mm256_loadu_si256(y.qs.as_ptr().add(128 * n + 32 * j).cast());
                    let p = dot_u8i8::<VNNI>(_mm256_setzero_si256(), v, a);
                    let g = 8 * n + 2 * j;
                    let sc = two_scales((x.scales[g] & 0xF) as i32, (x.scales[g + 1] & 0xF) as i32);
                    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, sc));
                }
            }
            hsum_epi32(acc)
        };
        // SAFETY: F16C guaranteed by the caller.
        let (d, dmin) = unsafe { (f16_to_f32(x.d), f16_to_f32(x.dmin)) };
        sum += y.d * d * isum as f32 - y.d * dmin * msum as f32;
    }
    sum
}

/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q3_k_q8_k_body<const VNNI: u8>(
    x: &[BlockQ3_K],
    y: &[BlockQ8_K],
) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let sc = scalar::scales_q3_k(&x.scales);
        // SAFETY: AVX2 (+VNNI) guaranteed by the caller; pointers stay inside the blocks.
        let isum = unsafe {
            let mut acc = _mm256_setzero_si256();
            let m2 = _mm256_set1_epi8(3);
            let four = _mm256_set1_epi8(4);
            let hm = load32(&x.hmask);
            for n in 0..2 {
                let q = _mm256_loadu_si256(x.qs.as_ptr().add(32 * n).cast());
                for j in 0..4 {
                    let v = match j {
                        0 => q,
                        1 => _mm256_srli_epi16(q, 2),
                        2 => _mm256_srli_epi16(q, 4),
                        _ => _mm256_srli_epi16(q, 6),
                    };
                    // Unsigned quant low2 + 4 * hbit (0..=7); the -4 is one product per group.
                    let bit = _mm256_set1_epi8((1u8 << (4 * n + j)) as i8);
                    let h = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
                    let v = _mm256_or_si256(_mm256_and_si256(v, m2), _mm256_and_si256(h, four));
                    let a = _mm256_loadu_si256(y.qs.as_ptr().add(128 * n + 32 * j).cast());
                    let p = dot_u8i8::<VNNI>(_mm256_setzero_si256(), v, a);
                    let o = dot_u8i8::<VNNI>(_mm256_setzero_si256(), four, a);
                    let g = 8 * n + 2 * j;
                    let s = two_scales(sc[g] as i32, sc[g + 1] as i32);
                    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_sub_epi32(p, o), s));
                }
            }
            hsum_epi32(acc)
        };
        // SAFETY: F16C guaranteed by the caller.
        let d = unsafe { f16_to_f32(x.d) };
        sum += y.d * d * isum as f32;
    }
    sum
}

/// # Safety
/// AVX2 + F16C (+ the features of the VNNI kind `VNNI`); `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_q5_k_q8_k_body<const VNNI: u8>(
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
        // SAFETY: AVX2 (+VNNI) guaranteed by the caller; pointers stay inside the blocks.
        let isum = unsafe {
            let mut acc = _mm256_setzero_si256();
            let m4 = _mm256_set1_epi8(0x0F);
            let sixteen = _mm256_set1_epi8(16);
            let qh = load32(&x.qh);
            for j in 0..4 {
                let q = _mm256_loadu_si256(x.qs.as_ptr().add(32 * j).cast());
                let lo = _mm256_or_si256(
                    _mm256_and_si256(q, m4),
                    bit_to_16s(qh, 1 << (2 * j), sixteen),
                );
                let hi = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                    bit_to_16s(qh, 1 << (2 * j + 1), sixteen),
                );
                let a0 = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j).cast());
                let a1 = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j + 32).cast());
                let p0 = dot_u8i8::<VNNI>(_mm256_setzero_si256(), lo, a0);
                let p1 = dot_u8i8::<VNNI>(_mm256_setzero_si256(), hi, a1);
                let p0 = _mm256_mullo_epi32(p0, _mm256_set1_epi32(sc[2 * j] as i32));
                let p1 = _mm256_mullo_epi32(p1, _mm256_set1_epi32(sc[2 * j + 1] as i32));
                acc = _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
            }
            hsum_epi32(acc)
        };
        // SAFETY: F16C guaranteed by the caller.
        let (d, dmin) = unsafe { (f16_to_f32(x.d), f16_to_f32(x.dmin)) };
        sum += y.d * d * isum as f32 - y.d * dmin * msum as f32;
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Float dot products: 4 accumulators of 8 lanes, FMA.

/// # Safety
/// AVX + FMA + F16C; `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_f16_f32_body(x: &[f16], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let main = n / 32 * 32;
    // SAFETY: features guaranteed by the caller; every load reads 8 values below `main <= n`.
    let mut sum = unsafe {
        let (px, py) = (x.as_ptr().cast::<u16>(), y.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        for i in (0..main).step_by(32) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let xv = _mm256_cvtph_ps(_mm_loadu_si128(px.add(i + 8 * k).cast()));
                *acc = _mm256_fmadd_ps(xv, _mm256_loadu_ps(py.add(i + 8 * k)), *acc);
            }
        }
        hsum_ps(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    };
    for i in main..n {
        sum += x[i].to_f32() * y[i];
    }
    sum
}

/// # Safety
/// AVX + FMA; `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_f32_f32_body(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let main = n / 32 * 32;
    // SAFETY: features guaranteed by the caller; every load reads 8 values below `main <= n`.
    let mut sum = unsafe {
        let (px, py) = (x.as_ptr(), y.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        for i in (0..main).step_by(32) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let xv = _mm256_loadu_ps(px.add(i + 8 * k));
                *acc = _mm256_fmadd_ps(xv, _mm256_loadu_ps(py.add(i + 8 * k)), *acc);
            }
        }
        hsum_ps(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    };
    for i in main..n {
        sum += x[i] * y[i];
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Dequantizers: the scalar twin's float operations, 8 lanes at a time (bit-equal).

/// Stores `d * i` for 8 i32 lanes at `out[..8]`.
#[inline(always)]
unsafe fn store_scaled(out: &mut [f32], i: __m256i, d: __m256) {
    assert!(out.len() >= 8);
    // SAFETY: AVX guaranteed by the caller; `out` has at least 8 values (asserted).
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_mul_ps(_mm256_cvtepi32_ps(i), d)) }
}

/// # Safety
/// AVX2 + F16C; `y.len() == x.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_q4_0_body(x: &[BlockQ4_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        // SAFETY: features guaranteed by the caller; loads read the block's 16 bytes.
        unsafe {
            let d = _mm256_set1_ps(f16_to_f32(b.d));
            let q = _mm_loadu_si128(b.qs.as_ptr().cast());
            let m4 = _mm_set1_epi8(0x0F);
            let eight = _mm256_set1_epi32(8);
            let lo = _mm_and_si128(q, m4);
            let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
            for (k, v) in [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)]
                .into_iter()
                .enumerate()
            {
                let i = _mm256_sub_epi32(_mm256_cvtepu8_epi32(v), eight);
                store_scaled(&mut y[8 * k..], i, d);
            }
        }
    }
}

/// # Safety
/// AVX2 + F16C; `y.len() == x.len() * 32`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_q8_0_body(x: &[BlockQ8_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        // SAFETY: features guaranteed by the caller; loads read 8 of the block's 32 bytes.
        unsafe {
            let d = _mm256_set1_ps(f16_to_f32(b.d));
            for k in 0..4 {
                let v = _mm_loadl_epi64(b.qs.as_ptr().add(8 * k).cast());
                store_scaled(&mut y[8 * k..], _mm256_cvtepi8_epi32(v), d);
            }
        }
    }
}

/// # Safety
/// AVX2 + F16C; `y.len() == x.len() * 256`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_q6_k_body(x: &[BlockQ6_K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        // SAFETY: features guaranteed by the caller; pointers stay inside the block, stores
        // inside `y`'s 256 values.
        unsafe {
            let d = f16_to_f32(b.d);
            let mut buf = [0u8; 32];
            for n in 0..2 {
                let q = unpack_q6_half(b.ql.as_ptr().add(64 * n), b.qh.as_ptr().add(32 * n));
                for (k, q) in q.into_iter().enumerate() {
                    _mm256_storeu_si256(buf.as_mut_ptr().cast(), q);
                    let base = 128 * n + 32 * k;
                    for h in 0..2 {
                        let ds = _mm256_set1_ps(d * b.scales[base / 16 + h] as f32);
                        for e in 0..2 {
                            let o = 16 * h + 8 * e;
                            let v = _mm_loadl_epi64(buf.as_ptr().add(o).cast());
                            let i =
                                _mm256_sub_epi32(_mm256_cvtepu8_epi32(v), _mm256_set1_epi32(32));
                            store_scaled(&mut y[base + o..], i, ds);
                        }
                    }
                }
            }
        }
    }
}

/// # Safety
/// AVX + F16C; `y.len() == x.len()`.
#[inline(always)]
pub(crate) unsafe fn dequantize_row_f16_body(x: &[f16], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let main = n / 8 * 8;
    // SAFETY: features guaranteed by the caller; loads/stores of 8 stay below `main <= n`.
    unsafe {
        for i in (0..main).step_by(8) {
            let v = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(i).cast()));
            _mm256_storeu_ps(y.as_mut_ptr().add(i), v);
        }
    }
    for i in main..n {
        y[i] = x[i].to_f32();
    }
}

// ---------------------------------------------------------------------------------------------
// Float matrix products (attention): `c = a b`, register tiles of MR rows x 16 columns; for
// each `i`, two 8-column vectors of `b`'s row `i` are loaded once and multiplied by each of the
// MR broadcast `a[t][i]`. The columns past the last whole 16 go through a zero-padded copy of
// each row, in the same order. The inner loop reads through pointers (the shape was checked
// once): slicing each `b` row per `i` cost 5x in speed.

/// A `b` element type of [`gemm_nn_body`].
pub(crate) trait Row8: Copy {
    /// 8 elements from `p` as f32.
    ///
    /// # Safety
    /// AVX + F16C; 8 elements readable at `p`.
    unsafe fn load8(p: *const Self) -> __m256;
    /// The element as f32.
    fn to_f32(self) -> f32;
}

impl Row8 for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: forwarded caller guarantees.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Row8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: forwarded caller guarantees.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

/// # Safety
/// AVX2 + FMA + F16C; the slices hold the shape (`MatShape::check`).
#[inline(always)]
pub(crate) unsafe fn gemm_nn_body<B: Row8>(a: &[f32], b: &[B], c: &mut [f32], s: crate::MatShape) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        for t0 in (0..s.m).step_by(4) {
            match s.m - t0 {
                1 => gemm_nn_rows::<B, 1>(a, b, c, s, t0),
                2 => gemm_nn_rows::<B, 2>(a, b, c, s, t0),
                3 => gemm_nn_rows::<B, 3>(a, b, c, s, t0),
                _ => gemm_nn_rows::<B, 4>(a, b, c, s, t0),
            }
        }
    }
}

/// Rows `t0..t0 + MR` of `c`: whole 16-column tiles, then the last columns (fewer than 16)
/// through a zero-padded copy of each `b` row.
///
/// # Safety
/// As [`gemm_nn_body`], and `t0 + MR <= s.m`.
#[inline(always)]
unsafe fn gemm_nn_rows<B: Row8, const MR: usize>(
    a: &[f32],
    b: &[B],
    c: &mut [f32],
    s: crate::MatShape,
    t0: usize,
) {
    let crate::MatShape {
        k,
        n,
        lda,
        ldb,
        ldc,
        ..
    } = s;
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let whole = n / 16 * 16;
    // SAFETY: features guaranteed by the caller. Every `a[(t0 + r) * lda + i]` read has
    // `t0 + r < m` and `i < k`, so it lies inside `a` (`MatShape::check`); the whole tiles read
    // `b[i * ldb + j0 .. + 16]` and write `c[(t0 + r) * ldc + j0 .. + 16]` with `j0 + 16 <= n`,
    // inside `b` / `c` likewise; the last columns are read and written by checked indexing.
    unsafe {
        for j0 in (0..whole).step_by(16) {
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            for i in 0..k {
                let row = bp.add(i * ldb + j0);
                let bv = [B::load8(row), B::load8(row.add(8))];
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*ap.add((t0 + r) * lda + i));
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm256_fmadd_ps(x, bv, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let p = cp.add((t0 + r) * ldc + j0);
                _mm256_storeu_ps(p, acc[0]);
                _mm256_storeu_ps(p.add(8), acc[1]);
            }
        }
        if whole < n {
            let cols = n - whole;
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            let mut pad = [0f32; 16];
            for i in 0..k {
                for (p, &v) in pad.iter_mut().zip(&b[i * ldb + whole..][..cols]) {
                    *p = v.to_f32();
                }
                let bv = [
                    _mm256_loadu_ps(pad.as_ptr()),
                    _mm256_loadu_ps(pad.as_ptr().add(8)),
                ];
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(a[(t0 + r) * lda + i]);
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm256_fmadd_ps(x, bv, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(pad.as_mut_ptr(), acc[0]);
                _mm256_storeu_ps(pad.as_mut_ptr().add(8), acc[1]);
                c[(t0 + r) * ldc + whole..][..cols].copy_from_slice(&pad[..cols]);
            }
        }
    }
}
