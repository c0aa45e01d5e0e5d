//! AVX-512 kernels, in two flavours with the same kernel names: [`plain`] (F/BW/VL) and
//! [`vnni`] (plus AVX512-VNNI `vpdpbusd`). The 32-value formats and the float dots use 512-bit
//! lanes (two blocks per register); the k-quants, quantizers and dequantizers reuse the AVX2
//! bodies compiled for AVX-512 (and with `vpdpbusd` in the `vnni` flavour).

use std::arch::x86_64::*;

use cinder_quant::block::*;
use half::f16;

use super::avx2::{self, Q4_0Tile, Q8_0Tile, load32, unpack_q4};
use super::vnni::{EVEX, NONE};
use super::{f16_to_f32, hsum_epi32, hsum_ps};

macro_rules! avx512_flavour {
    ($m:ident, $feat:literal, $kind:path) => {
        #[doc = concat!("AVX-512 kernels compiled for `", $feat, "`.")]
        pub(crate) mod $m {
            use cinder_quant::block::*;
            use half::f16;

            use crate::x86::avx2;

            /// The 512-bit bodies take whether the flavour has VNNI; the 256-bit ones its kind.
            const VNNI: bool = $kind != crate::x86::vnni::NONE;

            kernels! { $feat;
                unsafe quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) = avx2::quantize_row_q8_0_body;
                unsafe quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) = avx2::quantize_row_q8_1_body;
                unsafe quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) = avx2::quantize_row_q8_k_body;
                unsafe vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 = super::vec_dot_q4_0_q8_0_body::<VNNI>;
                unsafe vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 = avx2::vec_dot_q8_0_q8_0_body::<{ $kind }>;
                unsafe vec_dot_q4_k_q8_k(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 = super::vec_dot_q4_k_q8_k_body::<VNNI>;
                unsafe vec_dot_q6_k_q8_k(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 = super::vec_dot_q6_k_q8_k_body::<VNNI>;
                unsafe vec_dot_f16_f32(x: &[f16], y: &[f32]) -> f32 = super::vec_dot_f16_f32_body;
                unsafe vec_dot_f32_f32(x: &[f32], y: &[f32]) -> f32 = super::vec_dot_f32_f32_body;
                unsafe gemm_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::gemm_q4_0_q8_0_body::<VNNI>;
                unsafe gemm_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::gemm_q8_0_q8_0_body::<VNNI>;
                unsafe gemm_q4_k_q8_k(w: &[BlockQ4_K], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = super::gemm_q4_k_q8_k_body::<VNNI>;
                unsafe dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) = avx2::dequantize_row_q4_0_body;
                unsafe dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) = avx2::dequantize_row_q8_0_body;
                unsafe dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) = avx2::dequantize_row_q6_k_body;
                unsafe dequantize_row_f16(x: &[f16], y: &mut [f32]) = avx2::dequantize_row_f16_body;
                unsafe gemm_f32_f16(a: &[f32], b: &[f16], c: &mut [f32], s: crate::MatShape) = super::gemm_nn_body::<f16>;
                unsafe gemm_q4_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::<super::Q4_0Strip, VNNI>;
                unsafe gemm_q8_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::<super::Q8_0Strip, VNNI>;
                unsafe gemm_q4_kx16_q8_k(w: &[crate::repack::BlockQ4_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = super::strips_k::<super::Q4KStrip<crate::repack::BlockQ4_Kx16>, VNNI>;
                unsafe gemm_q5_kx16_q8_k(w: &[crate::repack::BlockQ5_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = super::strips_k::<super::Q4KStrip<crate::repack::BlockQ5_Kx16>, VNNI>;
                unsafe gemm_q6_kx16_q8_k(w: &[crate::repack::BlockQ6_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = super::strips_k::<super::Q6KStrip, VNNI>;
                safe exp_sum(x: &mut [f32], shift: f32) -> f32 = crate::scalar::exp_sum;
                safe silu_mul(g: &mut [f32], u: &[f32]) = crate::scalar::silu_mul;
                unsafe gemm_f32_f32(a: &[f32], b: &[f32], c: &mut [f32], s: crate::MatShape) = super::gemm_nn_body::<f32>;
                unsafe vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 = avx2::vec_dot_q5_0_q8_0_body::<{ $kind }>;
                unsafe vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 = avx2::vec_dot_q4_1_q8_1_body::<{ $kind }>;
                unsafe vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 = avx2::vec_dot_q5_1_q8_1_body::<{ $kind }>;
                unsafe vec_dot_q2_k_q8_k(x: &[BlockQ2_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q2_k_q8_k_body::<{ $kind }>;
                unsafe vec_dot_q3_k_q8_k(x: &[BlockQ3_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q3_k_q8_k_body::<{ $kind }>;
                unsafe vec_dot_q5_k_q8_k(x: &[BlockQ5_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q5_k_q8_k_body::<{ $kind }>;
            }
        }
    };
}

avx512_flavour!(
    plain,
    "avx512f,avx512bw,avx512vl,avx2,fma,f16c",
    crate::x86::vnni::NONE
);
avx512_flavour!(
    vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    crate::x86::vnni::EVEX
);

/// Sum of the 16 lanes of `v`.
#[inline(always)]
unsafe fn hsum_ps512(v: __m512) -> f32 {
    // SAFETY: AVX-512F is guaranteed by the caller.
    unsafe {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
        hsum_ps(_mm256_add_ps(lo, hi))
    }
}

/// Two 256-bit halves as one 512-bit register.
#[inline(always)]
unsafe fn join(lo: __m256i, hi: __m256i) -> __m512i {
    // SAFETY: AVX-512F is guaranteed by the caller.
    unsafe { _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1) }
}

/// `a` in lanes 0..8, `b` in lanes 8..16.
#[inline(always)]
unsafe fn splat2(a: f32, b: f32) -> __m512 {
    // SAFETY: AVX-512F is guaranteed by the caller.
    unsafe {
        let lo = _mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(a)));
        _mm512_castpd_ps(_mm512_insertf64x4(
            lo,
            _mm256_castps_pd(_mm256_set1_ps(b)),
            1,
        ))
    }
}

/// `acc + sum of 4 adjacent u * s` per i32 lane; exact for u <= 127 (or any u with VNNI).
#[inline(always)]
unsafe fn dot_u8i8_512<const VNNI: bool>(acc: __m512i, u: __m512i, s: __m512i) -> __m512i {
    // SAFETY: AVX-512BW (+ VNNI when `VNNI`) is guaranteed by the caller.
    unsafe {
        if VNNI {
            _mm512_dpbusd_epi32(acc, u, s)
        } else {
            let p = _mm512_maddubs_epi16(u, s);
            _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)))
        }
    }
}

/// Integer dot of Q4_0 blocks `x0`, `x1` with Q8_0 blocks `y0`, `y1`: lanes 0..8 hold
/// block 0's partial sums, lanes 8..16 block 1's (nibbles - 8 against the activations).
#[inline(always)]
unsafe fn idot_q4_0_pair<const VNNI: bool>(
    x0: &BlockQ4_0,
    x1: &BlockQ4_0,
    y0: &BlockQ8_0,
    y1: &BlockQ8_0,
) -> __m512i {
    // SAFETY: AVX-512 F/BW/VL (+ VNNI when `VNNI`) guaranteed by the caller; the loads read
    // the blocks' 16- and 32-byte arrays.
    unsafe {
        let w = join(unpack_q4(&x0.qs), unpack_q4(&x1.qs));
        let a = join(load32(&y0.qs), load32(&y1.qs));
        let p = dot_u8i8_512::<VNNI>(_mm512_setzero_si512(), w, a);
        let o = dot_u8i8_512::<VNNI>(_mm512_setzero_si512(), _mm512_set1_epi8(8), a);
        _mm512_sub_epi32(p, o)
    }
}

/// Q4_0 x Q8_0, two blocks per 512-bit register. The scale products `d_x * d_y` are made
/// eight blocks at a time in one vector and spread to the register halves with a permute
/// (scalar f16 conversions per block cost as much as the integer dot); the last `n % 8`
/// blocks go pairwise, an odd one through the AVX2 tile.
///
/// # Safety
/// AVX-512 F/BW/VL + FMA + F16C (+ VNNI when `VNNI`); `x.len() == y.len()`.
#[inline(always)]
unsafe fn vec_dot_q4_0_q8_0_body<const VNNI: bool>(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    // SAFETY: features guaranteed by the caller; all block accesses are bounds-checked.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 4];
        // Lane i of the pair-p spread takes product 2p + i / 8.
        let spread = |p: i32| {
            _mm512_set_epi32(
                2 * p + 1,
                2 * p + 1,
                2 * p + 1,
                2 * p + 1,
                2 * p + 1,
                2 * p + 1,
                2 * p + 1,
                2 * p + 1,
                2 * p,
                2 * p,
                2 * p,
                2 * p,
                2 * p,
                2 * p,
                2 * p,
                2 * p,
            )
        };
        let idx = [spread(0), spread(1), spread(2), spread(3)];
        let (xo, yo) = (x.chunks_exact(8), y.chunks_exact(8));
        let (xr, yr) = (xo.remainder(), yo.remainder());
        for (xs, ys) in xo.zip(yo) {
            let xs: &[BlockQ4_0; 8] = xs.try_into().unwrap();
            let ys: &[BlockQ8_0; 8] = ys.try_into().unwrap();
            let d = _mm512_castps256_ps512(avx2::d_products8(xs.map(|b| b.d), ys.map(|b| b.d)));
            for p in 0..4 {
                let s =
                    idot_q4_0_pair::<VNNI>(&xs[2 * p], &xs[2 * p + 1], &ys[2 * p], &ys[2 * p + 1]);
                let dp = _mm512_permutexvar_ps(idx[p], d);
                acc[p] = _mm512_fmadd_ps(dp, _mm512_cvtepi32_ps(s), acc[p]);
            }
        }
        for (x2, y2) in xr.chunks_exact(2).zip(yr.chunks_exact(2)) {
            let s = idot_q4_0_pair::<VNNI>(&x2[0], &x2[1], &y2[0], &y2[1]);
            let d = splat2(
                f16_to_f32(x2[0].d) * f16_to_f32(y2[0].d),
                f16_to_f32(x2[1].d) * f16_to_f32(y2[1].d),
            );
            acc[0] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[0]);
        }
        let mut sum = hsum_ps512(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ));
        if n % 2 == 1 {
            let last = (&x[n - 1..n], &y[n - 1..n]);
            sum += if VNNI {
                avx2::vec_dot_q4_0_q8_0_body::<EVEX>(last.0, last.1)
            } else {
                avx2::vec_dot_q4_0_q8_0_body::<NONE>(last.0, last.1)
            };
        }
        sum
    }
}

/// Q4_K x Q8_K, one 64-value sub-block pair per 512-bit register (low nibbles in the low
/// half, high nibbles in the high half, as the activations lie). The integer sums are exact;
/// unlike the AVX2 body, the super-block terms are not reduced to a scalar one by one but
/// accumulated in float lanes (`d_y * d` times the 16 partial sums, `d_y * dmin` times the 4
/// partial min sums) and reduced once at the end: the horizontal sums per super-block cost as
/// much as its integer work. So this is within the reorder bound of the scalar twin, not
/// bit-equal to it.
///
/// # Safety
/// AVX-512 F/BW/VL + F16C (+ VNNI when `VNNI`); `x.len() == y.len()`.
#[inline(always)]
unsafe fn vec_dot_q4_k_q8_k_body<const VNNI: bool>(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 {
    // SAFETY: features guaranteed by the caller; every load reads inside one block's arrays
    // (`qs` 128 bytes, `y.qs` 256, `bsums` 32).
    unsafe {
        let (m4, shr, picks) = q4_k_consts();
        let mut accf = _mm512_setzero_ps();
        let mut accm = _mm_setzero_ps();
        for (x, y) in x.iter().zip(y) {
            let (sc, mn) = avx2::scales_mins_k4_words(&x.scales);
            let sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
            let mn16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
            let bs = _mm256_loadu_si256(y.bsums.as_ptr().cast());
            // bsums[2s] + bsums[2s + 1] (|.| <= 4096, fits i16), then * min, summed.
            let bp = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            let m = _mm_madd_epi16(bp, mn16);
            let mut acc = [_mm512_setzero_si512(); 2];
            for j in 0..4 {
                let q =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(x.qs.as_ptr().add(32 * j).cast()));
                let q = _mm512_and_si512(_mm512_srlv_epi16(q, shr), m4);
                let a = _mm512_loadu_si512(y.qs.as_ptr().add(64 * j).cast());
                // u4 x i8 pairs fit i16.
                let p = _mm512_maddubs_epi16(q, a);
                let s = _mm512_permutexvar_epi16(picks[j], sc16);
                acc[j & 1] = if VNNI {
                    _mm512_dpwssd_epi32(acc[j & 1], p, s)
                } else {
                    _mm512_add_epi32(acc[j & 1], _mm512_madd_epi16(p, s))
                };
            }
            let a = _mm512_add_epi32(acc[0], acc[1]);
            let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(
                (x.d.to_bits() as u32 | (x.dmin.to_bits() as u32) << 16) as i32,
            ));
            let t = _mm_mul_ps(_mm_set1_ps(y.d), dd);
            accf = _mm512_fmadd_ps(_mm512_broadcastss_ps(t), _mm512_cvtepi32_ps(a), accf);
            accm = _mm_fmadd_ps(_mm_permute_ps(t, 0b01_01_01_01), _mm_cvtepi32_ps(m), accm);
        }
        hsum_ps512(accf) - hsum_ps(_mm256_zextps128_ps256(accm))
    }
}

/// The constants of the 512-bit Q4_K products: the nibble mask, the per-half shift (low
/// nibbles in the low 256 bits, high nibbles in the high 256 bits) and the word permutes that
/// spread scale `2j` over word lanes 0..16 and scale `2j + 1` over lanes 16..32.
#[inline(always)]
unsafe fn q4_k_consts() -> (__m512i, __m512i, [__m512i; 4]) {
    // SAFETY: AVX-512 F/BW guaranteed by the caller.
    unsafe {
        let pick = |j: i16| {
            _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_set1_epi16(2 * j)),
                _mm256_set1_epi16(2 * j + 1),
                1,
            )
        };
        (
            _mm512_set1_epi8(0x0F),
            _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1),
            [pick(0), pick(1), pick(2), pick(3)],
        )
    }
}

/// One `RM x RN` tile of the Q4_K gemm: rows `r0..r0 + RM`, columns `c0..c0 + RN`. Each
/// weight super-block is unpacked once per tile (64-value registers and their scale
/// vectors, as in [`vec_dot_q4_k_q8_k_body`]) and multiplied into every column; each
/// (row, column) accumulates `d_y * d` times its partial sums and `-d_y * dmin` times its
/// partial min sums in float lanes, reduced once at the end (the reorder bound of the scalar
/// twin, not bit-equal).
#[inline(always)]
unsafe fn q4_k_tile<const VNNI: bool, const RM: usize, const RN: usize>(
    w: &[BlockQ4_K],
    a: &[BlockQ8_K],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: features guaranteed by the caller; block accesses are bounds-checked and every
    // load reads inside one block's arrays.
    unsafe {
        let (m4, shr, picks) = q4_k_consts();
        let mut accf = [[_mm512_setzero_ps(); RN]; RM];
        for b in 0..nb {
            let wb: [&BlockQ4_K; RM] = std::array::from_fn(|i| &w[(r0 + i) * nb + b]);
            let ab: [&BlockQ8_K; RN] = std::array::from_fn(|c| &a[(c0 + c) * nb + b]);
            let mut sc16 = [_mm512_setzero_si512(); RM];
            let mut mn16 = [_mm_setzero_si128(); RM];
            let mut dd = [_mm_setzero_ps(); RM];
            for i in 0..RM {
                let (sc, mn) = avx2::scales_mins_k4_words(&wb[i].scales);
                sc16[i] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
                mn16[i] = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
                // [d, dmin] (adjacent f16 fields).
                dd[i] = _mm_cvtph_ps(_mm_cvtsi32_si128(
                    (wb[i].d.to_bits() as u32 | (wb[i].dmin.to_bits() as u32) << 16) as i32,
                ));
            }
            let mut acc = [[_mm512_setzero_si512(); RN]; RM];
            for (j, &pick) in picks.iter().enumerate() {
                let mut q = [_mm512_setzero_si512(); RM];
                let mut s = [_mm512_setzero_si512(); RM];
                for i in 0..RM {
                    let v = _mm256_loadu_si256(wb[i].qs.as_ptr().add(32 * j).cast());
                    let v = _mm512_broadcast_i64x4(v);
                    q[i] = _mm512_and_si512(_mm512_srlv_epi16(v, shr), m4);
                    s[i] = _mm512_permutexvar_epi16(pick, sc16[i]);
                }
                for c in 0..RN {
                    let av = _mm512_loadu_si512(ab[c].qs.as_ptr().add(64 * j).cast());
                    for i in 0..RM {
                        // u4 x i8 pairs fit i16.
                        let p = _mm512_maddubs_epi16(q[i], av);
                        acc[i][c] = if VNNI {
                            _mm512_dpwssd_epi32(acc[i][c], p, s[i])
                        } else {
                            _mm512_add_epi32(acc[i][c], _mm512_madd_epi16(p, s[i]))
                        };
                    }
                }
            }
            for c in 0..RN {
                let bs = _mm256_loadu_si256(ab[c].bsums.as_ptr().cast());
                // bsums[2s] + bsums[2s + 1] (|.| <= 4096, fits i16).
                let bp =
                    _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                let yd = _mm_set1_ps(ab[c].d);
                for i in 0..RM {
                    let t = _mm_mul_ps(yd, dd[i]);
                    let m = _mm_cvtepi32_ps(_mm_madd_epi16(bp, mn16[i]));
                    let f = _mm512_fmadd_ps(
                        _mm512_broadcastss_ps(t),
                        _mm512_cvtepi32_ps(acc[i][c]),
                        accf[i][c],
                    );
                    accf[i][c] = _mm512_fnmadd_ps(
                        _mm512_broadcastss_ps(_mm_permute_ps(t, 0b01_01_01_01)),
                        _mm512_zextps128_ps512(m),
                        f,
                    );
                }
            }
        }
        for i in 0..RM {
            for c in 0..RN {
                out[(c0 + c) * ldo + r0 + i] = hsum_ps512(accf[i][c]);
            }
        }
    }
}

/// Q4_K x Q8_K gemm in [`q4_k_tile`]s of 2 rows x 4 columns (smaller at the edges).
///
/// # Safety
/// AVX-512 F/BW/VL + F16C (+ VNNI when `VNNI`); `w` and `a` hold whole rows of `nb` blocks and
/// `out` every `c * ldo + r`.
#[inline(always)]
unsafe fn gemm_q4_k_q8_k_body<const VNNI: bool>(
    w: &[BlockQ4_K],
    a: &[BlockQ8_K],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    const RM: usize = 2;
    const RN: usize = 4;
    let (rows, cols) = (w.len() / nb, a.len() / nb);
    let (rf, cf) = (rows / RM * RM, cols / RN * RN);
    // SAFETY: forwarded caller guarantees.
    unsafe {
        for r0 in (0..rf).step_by(RM) {
            for c0 in (0..cf).step_by(RN) {
                q4_k_tile::<VNNI, RM, RN>(w, a, nb, (r0, c0), out, ldo);
            }
        }
        for r0 in rf..rows {
            for c0 in (0..cf).step_by(RN) {
                q4_k_tile::<VNNI, 1, RN>(w, a, nb, (r0, c0), out, ldo);
            }
        }
        // Fewer than RN columns left (one token: generation): a tile would unpack each weight
        // block for one column only, and the row dot does that faster.
        for c in cf..cols {
            let ac = &a[c * nb..(c + 1) * nb];
            for (r, wr) in w.chunks_exact(nb).enumerate() {
                out[c * ldo + r] = vec_dot_q4_k_q8_k_body::<VNNI>(wr, ac);
            }
        }
    }
}

/// Q6_K x Q8_K, 64 values per 512-bit register. The integer sum of a super-block is exact
/// and its float step is the scalar twin's (`d_y * d_x * isum`), so the result is bit-equal.
/// `sum_g scale_g * sum (q - 32) * a` is computed as
/// `sum_g scale_g * sum q * a - 32 * sum_g scale_g * bsum_g` (the Q8_K sums of 16).
///
/// # Safety
/// AVX-512 F/BW/VL + F16C (+ VNNI when `VNNI`); `x.len() == y.len()`.
#[inline(always)]
unsafe fn vec_dot_q6_k_q8_k_body<const VNNI: bool>(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 {
    let mut sum = 0.0f32;
    // SAFETY: features guaranteed by the caller; every load reads inside one block's arrays
    // (`ql` 128 bytes, `qh` 64, `scales` 16, `qs` 256, `bsums` 32).
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let m30 = _mm512_set1_epi8(0x30);
        // Bits 0-1 of `qh` go to bits 4-5 for values 0..32 of a half, bits 2-3 for 32..64,
        // bits 4-5 for 64..96, bits 6-7 for 96..128: per 256-bit half of the register.
        let shl_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
        let shr_hi = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
        // Word lane i of a 64-value register takes the scale of group g0 + i / 8.
        let pick = |g0: i16| {
            _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_setr_epi16(
                    g0,
                    g0,
                    g0,
                    g0,
                    g0,
                    g0,
                    g0,
                    g0,
                    g0 + 1,
                    g0 + 1,
                    g0 + 1,
                    g0 + 1,
                    g0 + 1,
                    g0 + 1,
                    g0 + 1,
                    g0 + 1,
                )),
                _mm256_setr_epi16(
                    g0 + 2,
                    g0 + 2,
                    g0 + 2,
                    g0 + 2,
                    g0 + 2,
                    g0 + 2,
                    g0 + 2,
                    g0 + 2,
                    g0 + 3,
                    g0 + 3,
                    g0 + 3,
                    g0 + 3,
                    g0 + 3,
                    g0 + 3,
                    g0 + 3,
                    g0 + 3,
                ),
                1,
            )
        };
        let picks = [pick(0), pick(4), pick(8), pick(12)];
        for (x, y) in x.iter().zip(y) {
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.scales.as_ptr().cast()));
            let sc = _mm512_castsi256_si512(sc16);
            let mut acc = [_mm512_setzero_si512(); 2];
            for n in 0..2 {
                let l = _mm512_loadu_si512(x.ql.as_ptr().add(64 * n).cast());
                let h =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(x.qh.as_ptr().add(32 * n).cast()));
                let h_lo = _mm512_and_si512(_mm512_sllv_epi16(h, shl_lo), m30);
                let h_hi = _mm512_and_si512(_mm512_srlv_epi16(h, shr_hi), m30);
                // (a & b) | c
                let q_lo = _mm512_ternarylogic_epi32(l, m4, h_lo, 0xEA);
                let q_hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), m4, h_hi, 0xEA);
                for (k, q) in [q_lo, q_hi].into_iter().enumerate() {
                    let a = _mm512_loadu_si512(y.qs.as_ptr().add(128 * n + 64 * k).cast());
                    // Exact: 2 * 63 * 128 < 2^15.
                    let p = _mm512_maddubs_epi16(q, a);
                    let s = _mm512_permutexvar_epi16(picks[2 * n + k], sc);
                    acc[k] = if VNNI {
                        _mm512_dpwssd_epi32(acc[k], p, s)
                    } else {
                        _mm512_add_epi32(acc[k], _mm512_madd_epi16(p, s))
                    };
                }
            }
            let acc = _mm512_add_epi32(acc[0], acc[1]);
            let acc = _mm256_add_epi32(
                _mm512_castsi512_si256(acc),
                _mm512_extracti64x4_epi64(acc, 1),
            );
            let off = _mm256_madd_epi16(sc16, _mm256_loadu_si256(y.bsums.as_ptr().cast()));
            let isum = hsum_epi32(_mm256_sub_epi32(acc, _mm256_slli_epi32(off, 5)));
            sum += y.d * f16_to_f32(x.d) * isum as f32;
        }
    }
    sum
}

/// # Safety
/// AVX-512F + F16C; `x.len() == y.len()`.
#[inline(always)]
unsafe fn vec_dot_f16_f32_body(x: &[f16], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let main = n / 64 * 64;
    // SAFETY: features guaranteed by the caller; every load reads 16 values below `main <= n`.
    let mut sum = unsafe {
        let (px, py) = (x.as_ptr().cast::<u16>(), y.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        for i in (0..main).step_by(64) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_cvtph_ps(_mm256_loadu_si256(px.add(i + 16 * k).cast()));
                *acc = _mm512_fmadd_ps(xv, _mm512_loadu_ps(py.add(i + 16 * k)), *acc);
            }
        }
        hsum_ps512(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    };
    for i in main..n {
        sum += x[i].to_f32() * y[i];
    }
    sum
}

/// # Safety
/// AVX-512F; `x.len() == y.len()`.
#[inline(always)]
unsafe fn vec_dot_f32_f32_body(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let main = n / 64 * 64;
    // SAFETY: features guaranteed by the caller; every load reads 16 values below `main <= n`.
    let mut sum = unsafe {
        let (px, py) = (x.as_ptr(), y.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        for i in (0..main).step_by(64) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_loadu_ps(px.add(i + 16 * k));
                *acc = _mm512_fmadd_ps(xv, _mm512_loadu_ps(py.add(i + 16 * k)), *acc);
            }
        }
        hsum_ps512(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    };
    for i in main..n {
        sum += x[i] * y[i];
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// VNNI tiles: two blocks per 512-bit register. The per-block offset (8 * sum(a) for Q4_0,
// 128 * sum(a) for the biased Q8_0 weights) is computed once per activation block and seeds the
// `vpdpbusd` accumulator, and the block scales are multiplied as vectors (weight scales once
// per row, activation scales once per column), so each (row, column, block pair) costs one
// `vpdpbusd`, one conversion, one multiply and one FMA.

/// A weight format in the 512-bit VNNI tile: a pair of blocks `k, k + 1` per register.
trait PairTile {
    /// The weight block.
    type W;
    /// Unsigned weight bytes of blocks `b0` and `b1` (zeros for a missing `b1`), in the byte
    /// order [`PairTile::prep_a`] puts the activations in.
    unsafe fn unpack_w(b0: &Self::W, b1: Option<&Self::W>) -> __m512i;
    /// The weight scales `d0`, `d1` (0 for a missing `b1`) spread over the lanes of each block.
    unsafe fn scales_w(b0: &Self::W, b1: Option<&Self::W>) -> __m512;
    /// Activation bytes of `b0`, `b1` (zeros for a missing `b1`), the negated offset as the
    /// accumulator seed, and the scales spread like [`PairTile::scales_w`].
    unsafe fn prep_a(b0: &BlockQ8_0, b1: Option<&BlockQ8_0>) -> (__m512i, __m512i, __m512);
}

/// The two f16 scales as f32 lanes: lane `i` gets `d0` when `idx[i] == 0`, `d1` (0 when
/// there is no second block) when `idx[i] == 1`.
#[inline(always)]
unsafe fn spread_scales(d0: f16, d1: f16, idx: __m512i) -> __m512 {
    // SAFETY: AVX-512F + F16C guaranteed by the caller.
    unsafe {
        let bits = u32::from(d0.to_bits()) | (u32::from(d1.to_bits()) << 16);
        let h = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
        _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(h))
    }
}

/// Q4_0 lane order: `[lo nibbles b0, lo nibbles b1, hi nibbles b0, hi nibbles b1]` (16 bytes
/// each), so i32 lanes 0..4 and 8..12 belong to `b0`, 4..8 and 12..16 to `b1`.
struct Q4_0Pair;

/// Lane -> scale index for [`Q4_0Pair`].
#[inline(always)]
unsafe fn q4_idx() -> __m512i {
    // SAFETY: AVX-512F guaranteed by the caller.
    unsafe { _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0) }
}

impl PairTile for Q4_0Pair {
    type W = BlockQ4_0;
    #[inline(always)]
    unsafe fn unpack_w(b0: &BlockQ4_0, b1: Option<&BlockQ4_0>) -> __m512i {
        // SAFETY: AVX-512F/BW guaranteed by the caller; each load reads one block's 16 bytes.
        unsafe {
            let lo = _mm_loadu_si128(b0.qs.as_ptr().cast());
            let hi = match b1 {
                Some(b1) => _mm_loadu_si128(b1.qs.as_ptr().cast()),
                None => _mm_setzero_si128(),
            };
            let x = _mm256_set_m128i(hi, lo);
            let both = join(x, _mm256_srli_epi16(x, 4));
            _mm512_and_si512(both, _mm512_set1_epi8(0x0F))
        }
    }
    #[inline(always)]
    unsafe fn scales_w(b0: &BlockQ4_0, b1: Option<&BlockQ4_0>) -> __m512 {
        // SAFETY: forwarded caller guarantees.
        unsafe { spread_scales(b0.d, b1.map_or(f16::ZERO, |b| b.d), q4_idx()) }
    }
    #[inline(always)]
    unsafe fn prep_a(b0: &BlockQ8_0, b1: Option<&BlockQ8_0>) -> (__m512i, __m512i, __m512) {
        // SAFETY: AVX-512F/BW/VNNI guaranteed by the caller; loads read one block's 32 bytes.
        unsafe {
            let hi = match b1 {
                Some(b1) => load32(&b1.qs),
                None => _mm256_setzero_si256(),
            };
            // [b0 lo, b0 hi, b1 lo, b1 hi] -> [b0 lo, b1 lo, b0 hi, b1 hi] (128-bit lanes).
            let a = join(load32(&b0.qs), hi);
            let a = _mm512_shuffle_i64x2::<0b11_01_10_00>(a, a);
            let off = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), a);
            let neg = _mm512_sub_epi32(_mm512_setzero_si512(), off);
            (
                a,
                neg,
                spread_scales(b0.d, b1.map_or(f16::ZERO, |b| b.d), q4_idx()),
            )
        }
    }
}

/// Q8_0 lane order: `[b0, b1]` (32 bytes each), weights biased to unsigned by `+ 128`; i32
/// lanes 0..8 belong to `b0`, 8..16 to `b1`.
struct Q8_0Pair;

/// Lane -> scale index for [`Q8_0Pair`].
#[inline(always)]
unsafe fn q8_idx() -> __m512i {
    // SAFETY: AVX-512F guaranteed by the caller.
    unsafe { _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0) }
}

impl PairTile for Q8_0Pair {
    type W = BlockQ8_0;
    #[inline(always)]
    unsafe fn unpack_w(b0: &BlockQ8_0, b1: Option<&BlockQ8_0>) -> __m512i {
        // SAFETY: AVX-512F/BW guaranteed by the caller; loads read one block's 32 bytes.
        unsafe {
            let hi = match b1 {
                Some(b1) => load32(&b1.qs),
                None => _mm256_setzero_si256(),
            };
            _mm512_xor_si512(join(load32(&b0.qs), hi), _mm512_set1_epi8(-128))
        }
    }
    #[inline(always)]
    unsafe fn scales_w(b0: &BlockQ8_0, b1: Option<&BlockQ8_0>) -> __m512 {
        // SAFETY: forwarded caller guarantees.
        unsafe { spread_scales(b0.d, b1.map_or(f16::ZERO, |b| b.d), q8_idx()) }
    }
    #[inline(always)]
    unsafe fn prep_a(b0: &BlockQ8_0, b1: Option<&BlockQ8_0>) -> (__m512i, __m512i, __m512) {
        // SAFETY: AVX-512F/BW/VNNI guaranteed by the caller; loads read one block's 32 bytes.
        unsafe {
            let hi = match b1 {
                Some(b1) => load32(&b1.qs),
                None => _mm256_setzero_si256(),
            };
            let a = join(load32(&b0.qs), hi);
            let off = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), a);
            let neg = _mm512_sub_epi32(_mm512_setzero_si512(), off);
            (
                a,
                neg,
                spread_scales(b0.d, b1.map_or(f16::ZERO, |b| b.d), q8_idx()),
            )
        }
    }
}

/// One block pair (`k`, and `k + 1` unless `last_single`) of an `RM x RN` tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pair_step<T: PairTile, const RM: usize, const RN: usize>(
    w: &[T::W],
    a: &[BlockQ8_0],
    nb: usize,
    (r0, c0): (usize, usize),
    k: usize,
    single: bool,
    acc: &mut [[__m512; RN]; RM],
) {
    // SAFETY: the caller guarantees the features; all indexing below is bounds-checked.
    unsafe {
        // (No closure here: closures do not inherit the target features and stay calls.)
        let i = c0 * nb + k;
        let mut av = [T::prep_a(&a[i], if single { None } else { Some(&a[i + 1]) }); RN];
        for (c, av) in av.iter_mut().enumerate().skip(1) {
            let i = (c0 + c) * nb + k;
            *av = T::prep_a(&a[i], if single { None } else { Some(&a[i + 1]) });
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let i = (r0 + r) * nb + k;
            let b1 = if single { None } else { Some(&w[i + 1]) };
            let wu = T::unpack_w(&w[i], b1);
            let wd = T::scales_w(&w[i], b1);
            for (acc, &(au, neg, ad)) in acc.iter_mut().zip(&av) {
                let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(neg, wu, au));
                *acc = _mm512_fmadd_ps(_mm512_mul_ps(wd, ad), s, *acc);
            }
        }
    }
}

/// `RM x RN` outputs starting at weight row `r0`, activation column `c0`.
#[inline(always)]
unsafe fn pair_tile<T: PairTile, const RM: usize, const RN: usize>(
    w: &[T::W],
    a: &[BlockQ8_0],
    nb: usize,
    rc: (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: the caller guarantees the features; all indexing is bounds-checked.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); RN]; RM];
        for k in (0..nb / 2 * 2).step_by(2) {
            pair_step::<T, RM, RN>(w, a, nb, rc, k, false, &mut acc);
        }
        if nb % 2 == 1 {
            pair_step::<T, RM, RN>(w, a, nb, rc, nb - 1, true, &mut acc);
        }
        let (r0, c0) = rc;
        for (r, acc) in acc.iter().enumerate() {
            for (c, &v) in acc.iter().enumerate() {
                out[(c0 + c) * ldo + r0 + r] = hsum_ps512(v);
            }
        }
    }
}

/// Tiled product over every row of `w` and column of `a` with [`pair_tile`]s; the same
/// contract as `avx2::gemm_body`.
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI + FMA + F16C; `w.len()` and `a.len()` multiples of `nb`, and `out`
/// covers every `c * ldo + r` (indexing is checked anyway).
#[inline(always)]
unsafe fn gemm_pairs<T: PairTile, const RM: usize, const RN: usize>(
    w: &[T::W],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let (rows, cols) = (w.len() / nb, a.len() / nb);
    let (rf, cf) = (rows / RM * RM, cols / RN * RN);
    // SAFETY: forwarded caller guarantees.
    unsafe {
        for r0 in (0..rf).step_by(RM) {
            for c0 in (0..cf).step_by(RN) {
                pair_tile::<T, RM, RN>(w, a, nb, (r0, c0), out, ldo);
            }
            for c0 in cf..cols {
                pair_tile::<T, RM, 1>(w, a, nb, (r0, c0), out, ldo);
            }
        }
        for r0 in rf..rows {
            for c0 in (0..cf).step_by(RN) {
                pair_tile::<T, 1, RN>(w, a, nb, (r0, c0), out, ldo);
            }
            for c0 in cf..cols {
                pair_tile::<T, 1, 1>(w, a, nb, (r0, c0), out, ldo);
            }
        }
    }
}

/// Q4_0 x Q8_0 gemm: the VNNI pair tiles, else the AVX2 tiles. One activation column
/// (generation) goes one weight row at a time: a single sequential stream through the matrix
/// measured ~1.7x faster here than interleaving 4 rows (which the 4 x 4 tiles do).
///
/// # Safety
/// AVX-512 F/BW/VL + FMA + F16C (+ VNNI when `VNNI`); the shapes of `avx2::gemm_body`.
#[inline(always)]
unsafe fn gemm_q4_0_q8_0_body<const VNNI: bool>(
    w: &[BlockQ4_0],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: forwarded caller guarantees (VNNI present when `VNNI`).
    unsafe {
        if VNNI && a.len() == nb {
            gemv_pairs::<Q4_0Pair>(w, a, nb, out)
        } else if VNNI && a.len() >= STRIP_MIN_COLS * nb {
            gemm_strips::<Q4_0Strip>(w, a, nb, out, ldo)
        } else if VNNI {
            gemm_pairs::<Q4_0Pair, 4, 4>(w, a, nb, out, ldo)
        } else {
            avx2::gemm_body::<Q4_0Tile<NONE>, 4, 4>(w, a, nb, out, ldo)
        }
    }
}

/// Q8_0 x Q8_0 gemm: the VNNI pair tiles (one row at a time for one column, as for Q4_0),
/// else the AVX2 tiles.
///
/// # Safety
/// AVX-512 F/BW/VL + FMA + F16C (+ VNNI when `VNNI`); the shapes of `avx2::gemm_body`.
#[inline(always)]
unsafe fn gemm_q8_0_q8_0_body<const VNNI: bool>(
    w: &[BlockQ8_0],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: forwarded caller guarantees (VNNI present when `VNNI`).
    unsafe {
        if VNNI && a.len() == nb {
            gemv_pairs::<Q8_0Pair>(w, a, nb, out)
        } else if VNNI && a.len() >= STRIP_MIN_COLS * nb {
            gemm_strips::<Q8_0Strip>(w, a, nb, out, ldo)
        } else if VNNI {
            gemm_pairs::<Q8_0Pair, 4, 4>(w, a, nb, out, ldo)
        } else {
            avx2::gemm_body::<Q8_0Tile<NONE>, 4, 4>(w, a, nb, out, ldo)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VNNI strip kernels. Sixteen weight rows sit side by side, one per i32 lane, in the layout of
// `crate::repack` (weights repacked at load, or per call for the plain-layout gemms): a block's
// 4 (Q4_0) or 8 (Q8_0) registers hold quant bytes `4g..4g + 4` of every row, and each
// activation word is a broadcast operand of `vpdpbusd`. The weight registers of a block are
// unpacked once for 8 activation columns, the 16 lanes need no horizontal sum, and per
// (block, column) the float work is one conversion, one multiply and one FMA for 16 rows. The
// Q8_0 activations' per-block sums (for the unsigned-weight offset) and f32 scales are
// computed once per call.

use crate::repack::{self, Lanes, STRIP_ROWS, Scales16};
use crate::x86::avx2_strips;
use crate::x86::strips::{self, ActBlock, ActK, BlockStrips, K4Block, StripKernel};

/// Fewest activation columns for which repacking plain-layout weights per call beats the pair
/// tiles (repacking a strip costs about as much as two columns of work).
const STRIP_MIN_COLS: usize = 4;

/// Activation columns per pass over a strip.
const STRIP_COLS: usize = 8;

thread_local! {
    static STRIP_Q: std::cell::Cell<Vec<Lanes>> = const { std::cell::Cell::new(Vec::new()) };
    static STRIP_D: std::cell::Cell<Vec<Scales16>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A weight format in the strip kernels.
trait Strip {
    /// The plain weight block.
    type W;
    /// The pair tile of the same format (for rows a strip gemm leaves over).
    type Pair: PairTile<W = Self::W>;
    /// The same format in the AVX2 strip kernels (the plain AVX-512 flavour's kernel).
    type Avx2: avx2_strips::Fmt;
    /// 4-byte groups per block.
    const GROUPS: usize;
    /// The unsigned weights' offset (the signed value is `u - OFFSET`).
    const OFFSET: i32;
    /// `crate::repack`'s repacker of this format.
    fn repack(w: &[Self::W], nb: usize, q: &mut [Lanes], d: &mut [Scales16]);
    /// The 8 unsigned weight registers of one block of a strip (register `s` pairs with
    /// activation bytes `4s..4s + 4`) and the 16 row scales.
    ///
    /// # Safety
    /// AVX-512 F/BW + F16C; `q` holds the block's `GROUPS` groups.
    unsafe fn load(q: &[Lanes], d: &Scales16) -> ([__m512i; 8], __m512);
}

struct Q4_0Strip;

impl Strip for Q4_0Strip {
    type W = BlockQ4_0;
    type Pair = Q4_0Pair;
    type Avx2 = avx2_strips::Q4_0;
    const GROUPS: usize = repack::Q4_0_GROUPS;
    const OFFSET: i32 = 8;
    fn repack(w: &[BlockQ4_0], nb: usize, q: &mut [Lanes], d: &mut [Scales16]) {
        repack::repack_q4_0(w, nb, q, d)
    }
    #[inline(always)]
    unsafe fn load(q: &[Lanes], d: &Scales16) -> ([__m512i; 8], __m512) {
        // SAFETY: AVX-512F/BW + F16C guaranteed by the caller; each load reads one 64-byte
        // aligned `Lanes` or the 32-byte aligned `Scales16`.
        unsafe {
            let m = _mm512_set1_epi8(0x0F);
            let mut w = [_mm512_setzero_si512(); 8];
            for (g, q) in q.iter().enumerate().take(4) {
                let raw = load_lanes(q);
                w[g] = _mm512_and_si512(raw, m);
                w[4 + g] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m);
            }
            (w, _mm512_cvtph_ps(_mm256_load_si256(d.0.as_ptr().cast())))
        }
    }
}

struct Q8_0Strip;

impl Strip for Q8_0Strip {
    type W = BlockQ8_0;
    type Pair = Q8_0Pair;
    type Avx2 = avx2_strips::Q8_0;
    const GROUPS: usize = repack::Q8_0_GROUPS;
    const OFFSET: i32 = 128;
    fn repack(w: &[BlockQ8_0], nb: usize, q: &mut [Lanes], d: &mut [Scales16]) {
        repack::repack_q8_0(w, nb, q, d)
    }
    #[inline(always)]
    unsafe fn load(q: &[Lanes], d: &Scales16) -> ([__m512i; 8], __m512) {
        // SAFETY: as for Q4_0Strip::load.
        unsafe {
            let mut w = [_mm512_setzero_si512(); 8];
            for (w, q) in w.iter_mut().zip(q) {
                *w = load_lanes(q);
            }
            (w, _mm512_cvtph_ps(_mm256_load_si256(d.0.as_ptr().cast())))
        }
    }
}

/// `RN` activation columns from `c0` against one strip (`q`, `d`: its `nb` blocks), written to
/// rows `r0..r0 + 16` of `out`.
///
/// # Safety
/// AVX-512 F/BW + VNNI + FMA + F16C; `q.len() == nb * S::GROUPS`, `d.len() == nb`; indexing
/// is checked.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn strip_cols<S: Strip, const RN: usize>(
    (q, d): (&[Lanes], &[Scales16]),
    a: &[BlockQ8_0],
    m: &[ActBlock],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    let a = &a[c0 * nb..(c0 + RN) * nb];
    let m = &m[c0 * nb..(c0 + RN) * nb];
    // SAFETY: features guaranteed by the caller; each activation word read is inside its
    // block (s < 8), the stores are inside the bounds-checked 16-float slices.
    unsafe {
        let mut accf = [_mm512_setzero_ps(); RN];
        for (k, (qk, dk)) in q.chunks_exact(S::GROUPS).zip(d).enumerate().take(nb) {
            super::prefetch_group_block(qk, dk, S::GROUPS);
            let (w, dw) = S::load(qk, dk);
            for (c, accf) in accf.iter_mut().enumerate() {
                let (ab, mb) = (&a[c * nb + k], m[c * nb + k]);
                let qs = ab.qs.as_ptr();
                let mut acc = _mm512_set1_epi32(mb.seed);
                for (s, &w) in w.iter().enumerate() {
                    let v = qs.add(4 * s).cast::<i32>().read_unaligned();
                    acc = _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(v));
                }
                let sc = _mm512_mul_ps(dw, _mm512_set1_ps(mb.d));
                *accf = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), sc, *accf);
            }
        }
        for (c, &v) in accf.iter().enumerate() {
            let o = &mut out[(c0 + c) * ldo + r0..][..STRIP_ROWS];
            _mm512_storeu_ps(o.as_mut_ptr(), v);
        }
    }
}

/// One column against one strip: as [`strip_cols`] with `RN = 1`, but the block loop carries
/// two accumulators (generation streams the weights once; the FMA chain is the limit).
///
/// # Safety
/// As [`strip_cols`].
#[inline(always)]
unsafe fn strip_col<S: Strip>(
    (q, d): (&[Lanes], &[Scales16]),
    a: &[BlockQ8_0],
    m: &[ActBlock],
    out: &mut [f32],
) {
    // SAFETY: as in `strip_cols`.
    unsafe {
        let mut accf = [_mm512_setzero_ps(); 2];
        for (k, ((qk, dk), (ab, mb))) in q
            .chunks_exact(S::GROUPS)
            .zip(d)
            .zip(a.iter().zip(m))
            .enumerate()
        {
            super::prefetch_group_block(qk, dk, S::GROUPS);
            let (w, dw) = S::load(qk, dk);
            let qs = ab.qs.as_ptr();
            let mut acc = _mm512_set1_epi32(mb.seed);
            for (s, &w) in w.iter().enumerate() {
                let v = qs.add(4 * s).cast::<i32>().read_unaligned();
                acc = _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(v));
            }
            let sc = _mm512_mul_ps(dw, _mm512_set1_ps(mb.d));
            accf[k & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), sc, accf[k & 1]);
        }
        let o = &mut out[..STRIP_ROWS];
        _mm512_storeu_ps(o.as_mut_ptr(), _mm512_add_ps(accf[0], accf[1]));
    }
}

/// The VNNI column kernels of format `S` for the strip driver.
struct Vnni<S>(std::marker::PhantomData<S>);

impl<S: Strip> StripKernel for Vnni<S> {
    type W<'a> = BlockStrips<'a>;
    type A = BlockQ8_0;
    type M = ActBlock;
    const COLS: usize = STRIP_COLS;
    fn prep(a: &[BlockQ8_0]) -> Vec<ActBlock> {
        strips::act_blocks(S::OFFSET, a)
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
        // SAFETY: forwarded caller guarantees.
        unsafe {
            if RN == 1 && SPLIT {
                let (a, m) = (&a[c0 * nb..(c0 + 1) * nb], &m[c0 * nb..(c0 + 1) * nb]);
                strip_col::<S>((w.q, w.d), a, m, &mut out[c0 * ldo + r0..]);
            } else {
                strip_cols::<S, RN>((w.q, w.d), a, m, nb, (r0, c0), out, ldo);
            }
        }
    }
}

/// Every strip of a repacked matrix (`q`, `d`; `nb` blocks per row) against every column of
/// `a`: `out[c * ldo + r]` for row `r` of the strips given.
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI + FMA + F16C; `q.len() == d.len() * S::GROUPS`, `d.len()` and
/// `a.len()` multiples of `nb`, `out` covers every `c * ldo + r` (indexing is checked anyway).
#[inline(always)]
unsafe fn gemm_strips_repacked<S: Strip>(
    (q, d): (&[Lanes], &[Scales16]),
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let w = BlockStrips {
        q,
        d,
        groups: S::GROUPS,
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { strips::drive::<Vnni<S>>(w, a, nb, out, ldo) }
}

/// Plain-layout weights through the strip kernels: each 16-row strip is repacked into a
/// thread-local buffer first (leftover rows through the pair tiles); the contract of
/// `avx2::gemm_body`.
///
/// # Safety
/// As [`gemm_strips_repacked`], with `w.len()` a multiple of `nb`.
#[inline(always)]
unsafe fn gemm_strips<S: Strip>(
    w: &[S::W],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let rows = w.len() / nb;
    let rs = rows / STRIP_ROWS * STRIP_ROWS;
    let (mut q, mut d) = (STRIP_Q.take(), STRIP_D.take());
    q.clear();
    q.resize(nb * S::GROUPS, Lanes([0; STRIP_ROWS]));
    d.clear();
    d.resize(nb, Scales16([0; STRIP_ROWS]));
    // SAFETY: forwarded caller guarantees; `q` and `d` hold one strip.
    unsafe {
        let m = strips::act_blocks(S::OFFSET, a);
        for r0 in (0..rs).step_by(STRIP_ROWS) {
            S::repack(&w[r0 * nb..(r0 + STRIP_ROWS) * nb], nb, &mut q, &mut d);
            let st = BlockStrips {
                q: &q,
                d: &d,
                groups: S::GROUPS,
            };
            strips::drive_with::<Vnni<S>>(st, a, &m, nb, &mut out[r0..], ldo);
        }
        strips::give_back_blocks(m);
        STRIP_Q.set(q);
        STRIP_D.set(d);
        if rs < rows {
            gemm_pairs::<S::Pair, 1, 4>(&w[rs * nb..], a, nb, &mut out[rs..], ldo);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Float matrix products (attention): `c = a b`, register tiles of MR rows x 64 columns. For each
// `i`, four 16-column vectors of `b`'s row `i` are loaded once and multiplied by each of the MR
// broadcast `a[t][i]`; the last columns use masked loads and stores.

/// A `b` element type: 16 elements (lanes outside `mask` read as 0 and not accessed) as f32.
trait Row16: Copy {
    /// # Safety
    /// AVX-512 F/BW/VL + F16C; every element of `p` selected by `mask` is readable.
    unsafe fn load16(p: *const Self, mask: __mmask16) -> __m512;
}

impl Row16 for f16 {
    #[inline(always)]
    unsafe fn load16(p: *const f16, mask: __mmask16) -> __m512 {
        // SAFETY: forwarded caller guarantees; masked-off lanes are not accessed.
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.cast())) }
    }
}

impl Row16 for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const f32, mask: __mmask16) -> __m512 {
        // SAFETY: forwarded caller guarantees; masked-off lanes are not accessed.
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    }
}

/// Vectors of 16 columns per tile.
const NV: usize = 4;

/// # Safety
/// AVX-512 F/BW/VL + FMA + F16C; the slices hold the shape (`MatShape::check`).
#[inline(always)]
unsafe fn gemm_nn_body<B: Row16>(a: &[f32], b: &[B], c: &mut [f32], s: crate::MatShape) {
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

/// Rows `t0..t0 + MR` of `c`.
///
/// # Safety
/// As [`gemm_nn_body`], and `t0 + MR <= s.m`.
#[inline(always)]
unsafe fn gemm_nn_rows<B: Row16, const MR: usize>(
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
    // SAFETY: features guaranteed by the caller. Every `a[(t0 + r) * lda + i]` read has
    // `t0 + r < m` and `i < k`, so it lies inside `a` (`MatShape::check`); every `b` and `c`
    // access is masked to columns `< n` of rows `< k` / `< m`, inside `b` / `c` likewise; the
    // pointers to masked-off lanes are formed with `wrapping_add` and never dereferenced.
    unsafe {
        for j0 in (0..n).step_by(16 * NV) {
            let mut mask = [0 as __mmask16; NV];
            for (v, m) in mask.iter_mut().enumerate() {
                let lo = j0 + 16 * v;
                *m = if lo >= n {
                    0
                } else if n - lo >= 16 {
                    0xFFFF
                } else {
                    (1u16 << (n - lo)) - 1
                };
            }
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            for i in 0..k {
                let row = bp.wrapping_add(i * ldb + j0);
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, bv) in bv.iter_mut().enumerate() {
                    *bv = B::load16(row.wrapping_add(16 * v), mask[v]);
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ap.add((t0 + r) * lda + i));
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm512_fmadd_ps(x, bv, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    let p = cp.wrapping_add((t0 + r) * ldc + j0 + 16 * v);
                    _mm512_mask_storeu_ps(p, mask[v], acc);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VNNI matrix-vector product (generation): the one activation column is prepared once per call
// (pair-tile byte order, offset seeds, spread scales) into a thread-local buffer, then each
// weight row streams through with one `vpdpbusd`, one conversion and two float ops per pair of
// blocks.

thread_local! {
    static PREP_A: std::cell::Cell<Vec<[__m512i; 3]>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `out[r] = dot(w row r, a)` for every row of `w`, with [`PairTile`] arithmetic.
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI + FMA + F16C; `a.len() == nb`, `w.len()` a multiple of `nb`, `out`
/// holds a value per row (indexing is checked anyway).
#[inline(always)]
unsafe fn gemv_pairs<T: PairTile>(w: &[T::W], a: &[BlockQ8_0], nb: usize, out: &mut [f32]) {
    let pairs = nb.div_ceil(2);
    let mut prep = PREP_A.take();
    prep.clear();
    // SAFETY: features guaranteed by the caller; block indexing is checked, and the casts
    // between the 512-bit vector types only reinterpret bits.
    unsafe {
        for j in 0..pairs {
            let b1 = a.get(2 * j + 1);
            let (au, neg, ad) = T::prep_a(&a[2 * j], b1);
            prep.push([au, neg, _mm512_castps_si512(ad)]);
        }
        for (row, o) in w.chunks_exact(nb).zip(out.iter_mut()) {
            let mut acc = [_mm512_setzero_ps(); 2];
            for (j, &[au, neg, ad]) in prep.iter().enumerate() {
                let b1 = row.get(2 * j + 1);
                let wu = T::unpack_w(&row[2 * j], b1);
                let wd = T::scales_w(&row[2 * j], b1);
                let sum = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(neg, wu, au));
                let sc = _mm512_mul_ps(wd, _mm512_castsi512_ps(ad));
                acc[j & 1] = _mm512_fmadd_ps(sc, sum, acc[j & 1]);
            }
            *o = hsum_ps512(_mm512_add_ps(acc[0], acc[1]));
        }
    }
    PREP_A.set(prep);
}

/// The strip gemms of both flavours: VNNI runs the VNNI strip kernels, the plain flavour the
/// AVX2 ones (compiled for AVX-512).
///
/// # Safety
/// As [`gemm_strips_repacked`] (VNNI only when `VNNI`).
#[inline(always)]
unsafe fn strips<S: Strip, const VNNI: bool>(
    q: &[Lanes],
    d: &[Scales16],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    if VNNI {
        // SAFETY: forwarded caller guarantees, VNNI present.
        unsafe { gemm_strips_repacked::<S>((q, d), a, nb, out, ldo) }
    } else {
        // SAFETY: forwarded caller guarantees (AVX-512 includes AVX2 + FMA + F16C).
        unsafe { avx2_strips::strips_body::<S::Avx2, NONE>(q, d, a, nb, out, ldo) }
    }
}

// ---------------------------------------------------------------------------------------------
// VNNI Q4_K strip kernel. A strip's super-block ([`repack::BlockQ4_Kx16`]) holds 32 registers
// of packed nibbles; sub-block `s` is the low (`s` even) or high nibbles of registers
// `8 (s / 2) .. 8 (s / 2) + 8`, each against a broadcast activation word at value `32 s + 4 t`.
// Per (super-block, column), every row's integer sums are exact in its i32 lane, as in the
// scalar dot: `isum = sum_s scale_s * p_s` (8 `vpdpbusd` and one `vpmulld` per sub-block) and
// `msum = sum_s min_s * (bsums[2 s] + bsums[2 s + 1])` (4 `vpdpbusd`, see [`ActK`]); the float
// step is the scalar's expression (`(d_y * d) * isum - (d_y * dmin) * msum`, then added), so
// the result is bit-equal to the scalar twin.

/// Activation word `t` from `qs` (bytes `4 t .. 4 t + 4`) in every i32 lane.
///
/// # Safety
/// AVX-512F; those bytes are readable.
#[inline(always)]
unsafe fn bcast_word(qs: *const i8, t: usize) -> __m512i {
    // SAFETY: forwarded caller guarantees.
    unsafe { _mm512_set1_epi32(qs.add(4 * t).cast::<i32>().read_unaligned()) }
}

/// `RN` activation columns from `c0` against one strip (`w`: its `nb` super-blocks), written
/// to rows `r0..r0 + 16` of `out`. With `SPLIT`, each sub-block's 8 `vpdpbusd` go into two
/// chains (for few columns, where one chain per column would wait on its latency). With `DEC`,
/// the value words and scales are read from the strip's decoded words `dec` (the AVX2 kernel's
/// decoding, [`avx2_strips::Q4K`]) instead of being rebuilt from the nibbles and fifth bits.
///
/// # Safety
/// AVX-512 F/BW + VNNI + F16C; `w.len() == nb`; with `DEC`, `dec` holds `w` decoded; indexing
/// is checked.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn q4_k_strip_cols<B: K4Block, const RN: usize, const SPLIT: bool, const DEC: bool>(
    w: &[B],
    dec: &[Lanes],
    a: &[BlockQ8_K],
    m: &[ActK],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    let a = &a[c0 * nb..(c0 + RN) * nb];
    let m = &m[c0 * nb..(c0 + RN) * nb];
    // SAFETY: features guaranteed by the caller; the aligned loads read whole fields of a
    // 64-byte aligned `BlockQ4_Kx16` (`qs`/`mins` 64-byte, `scales[s]` at a 16-byte offset,
    // `d`/`dmin` at 32-byte offsets) or whole 64-byte aligned decoded `Lanes`; each activation
    // word read is inside its block's `qs` (`32 s + 4 t + 4 <= 256`); the stores are inside the
    // bounds-checked 16-float slices.
    unsafe {
        let nib = _mm512_set1_epi8(0x0F);
        let mut accf = [_mm512_setzero_ps(); RN];
        let fifth = _mm512_set1_epi8(0x10);
        for (k, bk) in w.iter().enumerate().take(nb) {
            let dk = if DEC {
                &dec[k * K4_DECODED..(k + 1) * K4_DECODED]
            } else {
                super::prefetch_super_block(bk);
                &[]
            };
            let b = bk.q4();
            let mut isum = [_mm512_setzero_si512(); RN];
            for s in 0..8 {
                let mut wv = [_mm512_setzero_si512(); 8];
                // Bit `s` of each `qh` byte to bit 4 (no bit crosses a byte: shifts <= 4).
                let (up, down) = (
                    _mm_cvtsi32_si128(4 - s.min(4) as i32),
                    _mm_cvtsi32_si128(s.max(4) as i32 - 4),
                );
                for (t, wv) in wv.iter_mut().enumerate() {
                    if DEC {
                        *wv = load_lanes(&dk[8 * s + t]);
                        continue;
                    }
                    let raw = load_lanes(&b.qs[8 * (s / 2) + t]);
                    let raw = if s % 2 == 0 {
                        raw
                    } else {
                        _mm512_srli_epi16(raw, 4)
                    };
                    *wv = _mm512_and_si512(raw, nib);
                    if B::Q5 {
                        let h = load_lanes(&bk.qh()[t]);
                        let h = _mm512_srl_epi16(_mm512_sll_epi16(h, up), down);
                        // wv | (h & 0x10)
                        *wv = _mm512_ternarylogic_epi32(*wv, h, fifth, 0xF8);
                    }
                }
                let sc = if DEC {
                    load_lanes(&dk[avx2_strips::WORDS + s])
                } else {
                    _mm512_cvtepu8_epi32(_mm_load_si128(b.scales[s].as_ptr().cast()))
                };
                for (c, isum) in isum.iter_mut().enumerate() {
                    let qs = a[c * nb + k].qs.as_ptr().add(32 * s);
                    let p = if SPLIT {
                        let (mut p0, mut p1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                        for t in (0..8).step_by(2) {
                            p0 = _mm512_dpbusd_epi32(p0, wv[t], bcast_word(qs, t));
                            p1 = _mm512_dpbusd_epi32(p1, wv[t + 1], bcast_word(qs, t + 1));
                        }
                        _mm512_add_epi32(p0, p1)
                    } else {
                        let mut p = _mm512_setzero_si512();
                        for (t, &wv) in wv.iter().enumerate() {
                            p = _mm512_dpbusd_epi32(p, wv, bcast_word(qs, t));
                        }
                        p
                    };
                    *isum = _mm512_add_epi32(*isum, _mm512_mullo_epi32(p, sc));
                }
            }
            let d = _mm512_cvtph_ps(_mm256_load_si256(b.d.0.as_ptr().cast()));
            let dmin = _mm512_cvtph_ps(_mm256_load_si256(b.dmin.0.as_ptr().cast()));
            let mins = [load_lanes(&b.mins[0]), load_lanes(&b.mins[1])];
            for (c, (accf, &isum)) in accf.iter_mut().zip(&isum).enumerate() {
                let mk = &m[c * nb + k];
                let part = |w0: i32, w1: i32| {
                    let p =
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), mins[0], _mm512_set1_epi32(w0));
                    _mm512_dpbusd_epi32(p, mins[1], _mm512_set1_epi32(w1))
                };
                let msum = _mm512_add_epi32(
                    _mm512_slli_epi32(part(mk.bs[0], mk.bs[1]), 8),
                    part(mk.bs[2], mk.bs[3]),
                );
                let yd = _mm512_set1_ps(mk.d);
                let t = _mm512_sub_ps(
                    _mm512_mul_ps(_mm512_mul_ps(yd, d), _mm512_cvtepi32_ps(isum)),
                    _mm512_mul_ps(_mm512_mul_ps(yd, dmin), _mm512_cvtepi32_ps(msum)),
                );
                *accf = _mm512_add_ps(*accf, t);
            }
        }
        for (c, &v) in accf.iter().enumerate() {
            let o = &mut out[(c0 + c) * ldo + r0..][..STRIP_ROWS];
            _mm512_storeu_ps(o.as_mut_ptr(), v);
        }
    }
}

/// The 16 rows of `l` (64-byte aligned, as every `Lanes` is) in one register.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn load_lanes(l: &Lanes) -> __m512i {
    // SAFETY: `l` is 64 readable, 64-byte aligned bytes.
    unsafe { _mm512_load_si512(l.0.as_ptr().cast()) }
}

/// Decoded words per super-block of a Q4_K or Q5_K strip: [`avx2_strips::Q4K`]'s decoding (with
/// the EVEX scale operands: i32 lanes), whose layout does not depend on the block type.
const K4_DECODED: usize = <avx2_strips::Q4K<repack::BlockQ4_Kx16, EVEX> as StripKernel>::DECODED;

/// Decoded words per super-block of a Q6_K strip ([`avx2_strips::Q6K`]'s decoding).
const Q6_DECODED: usize = <avx2_strips::Q6K<EVEX> as StripKernel>::DECODED;

/// Columns from which a k-quant strip is decoded once per gemm call: one full column call
/// rebuilds each value word once anyway, so decoding pays from the second call on. Then the
/// inner loops are the `vpdpbusd` and the scale's `vpmulld` alone; in `kernels/examples/icount`
/// (one strip, k = 2048, 64 columns) that made Q4_K 12%, Q5_K 20% and Q6_K 19% faster on an
/// Intel Xeon (family 6 model 207, AVX-512 VNNI).
const DECODE_FROM: usize = STRIP_COLS + 1;

// ---------------------------------------------------------------------------------------------
// VNNI Q6_K strip kernel. Group `g` (values `16 g .. 16 g + 16`, in half `n = g / 8` as
// quarter `m = g % 8 / 2`, words `j = 4 (g % 2) .. + 4`) of a strip's super-block
// ([`repack::BlockQ6_Kx16`]) is 4 registers of unsigned 6-bit quants, each rebuilt from an
// `ql` register (nibbles) and a `qh` register (2-bit fields) with a shift and one ternary
// logic op (or read from the strip's decoded words), against a broadcast activation word. Per
// (super-block, column) every row's `isum = sum_g scale_g * p_g` with `p_g = sum q * a` is
// exact in its i32 lane (|isum| <= 16 * 128 * 16 * 63 * 128 < 2^31). The -32 offset is
// removed once per super-block and column: `32 * sum_g scale_g * bsums[g]`, one `vpdpwssd` of
// the rows' scale pairs against each pair of the Q8_K group sums (which the quantizer makes
// equal to the groups' sums). The float step is the scalar's (`(d_y * d) * isum`, then
// added), so the result is bit-equal to the scalar twin.

use repack::BlockQ6_Kx16;

/// `RN` activation columns from `c0` against one Q6_K strip (`w`: its `nb` super-blocks),
/// written to rows `r0..r0 + 16` of `out`. With `SPLIT`, each group's 4 `vpdpbusd` go into two
/// chains (for few columns). With `DEC`, the value words and scales are read from the strip's
/// decoded words `dec` ([`avx2_strips::Q6K`]'s decoding).
///
/// # Safety
/// AVX-512 F/BW + VNNI + F16C; `w.len() == nb`; with `DEC`, `dec` holds `w` decoded; indexing
/// is checked.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn q6_k_strip_cols<const RN: usize, const SPLIT: bool, const DEC: bool>(
    w: &[BlockQ6_Kx16],
    dec: &[Lanes],
    a: &[BlockQ8_K],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    let a = &a[c0 * nb..(c0 + RN) * nb];
    // SAFETY: features guaranteed by the caller; the aligned loads read whole fields of a
    // 64-byte aligned `BlockQ6_Kx16` (`ql`/`qh` 64-byte, `scales[g]` at a 16-byte offset, `d`
    // at a 32-byte offset) or whole 64-byte aligned decoded `Lanes`; each activation word read
    // is inside its block's `qs` (`16 g + 4 t + 4 <= 256`), each pair of group sums inside its
    // `bsums` (`2 j + 2 <= 16`); the stores are inside the bounds-checked 16-float slices.
    unsafe {
        let nib = _mm512_set1_epi8(0x0F);
        let hi2 = _mm512_set1_epi8(0x30);
        let mut accf = [_mm512_setzero_ps(); RN];
        for (k, b) in w.iter().enumerate().take(nb) {
            let dk = if DEC {
                &dec[k * Q6_DECODED..(k + 1) * Q6_DECODED]
            } else {
                super::prefetch_super_block(b);
                &[]
            };
            let mut isum = [_mm512_setzero_si512(); RN];
            for g in 0..16 {
                let (n, m, j0) = (g / 8, g % 8 / 2, 4 * (g % 2));
                let mut wv = [_mm512_setzero_si512(); 4];
                for (t, wv) in wv.iter_mut().enumerate() {
                    if DEC {
                        *wv = load_lanes(&dk[4 * g + t]);
                        continue;
                    }
                    let j = j0 + t;
                    let l = load_lanes(&b.ql[16 * n + 8 * (m % 2) + j]);
                    let l = if m < 2 { l } else { _mm512_srli_epi16(l, 4) };
                    let h = load_lanes(&b.qh[8 * n + j]);
                    // qh bits 2 m .. 2 m + 2 of each byte to bits 4..6.
                    let h = match m {
                        0 => _mm512_slli_epi16(h, 4),
                        1 => _mm512_slli_epi16(h, 2),
                        2 => h,
                        _ => _mm512_srli_epi16(h, 2),
                    };
                    // (l & 0x0F) | (h & 0x30): bitwise select of l or h by the nibble mask.
                    let h = _mm512_and_si512(h, hi2);
                    *wv = _mm512_ternarylogic_epi32(l, nib, h, 0xEA);
                }
                let sc = if DEC {
                    load_lanes(&dk[avx2_strips::WORDS + g])
                } else {
                    _mm512_cvtepi8_epi32(_mm_load_si128(b.scales[g].as_ptr().cast()))
                };
                for (c, isum) in isum.iter_mut().enumerate() {
                    let qs = a[c * nb + k].qs.as_ptr().add(16 * g);
                    let p = if SPLIT {
                        let p0 =
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[0], bcast_word(qs, 0));
                        let p1 =
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[1], bcast_word(qs, 1));
                        let p0 = _mm512_dpbusd_epi32(p0, wv[2], bcast_word(qs, 2));
                        let p1 = _mm512_dpbusd_epi32(p1, wv[3], bcast_word(qs, 3));
                        _mm512_add_epi32(p0, p1)
                    } else {
                        let mut p = _mm512_setzero_si512();
                        for (t, &wv) in wv.iter().enumerate() {
                            p = _mm512_dpbusd_epi32(p, wv, bcast_word(qs, t));
                        }
                        p
                    };
                    *isum = _mm512_add_epi32(*isum, _mm512_mullo_epi32(p, sc));
                }
            }
            // Row r's scales of groups 2 j, 2 j + 1 as an i16 pair in its lane: the two groups'
            // 16 bytes interleaved, then sign-extended.
            let mut sp = [_mm512_setzero_si512(); 8];
            for (j, sp) in sp.iter_mut().enumerate() {
                let lo = _mm_load_si128(b.scales[2 * j].as_ptr().cast());
                let hi = _mm_load_si128(b.scales[2 * j + 1].as_ptr().cast());
                let pairs = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
                *sp = _mm512_cvtepi8_epi16(pairs);
            }
            let d = _mm512_cvtph_ps(_mm256_load_si256(b.d.0.as_ptr().cast()));
            for (c, (accf, &isum)) in accf.iter_mut().zip(&isum).enumerate() {
                let y = &a[c * nb + k];
                let bs = y.bsums.as_ptr().cast::<i32>();
                let mut off = _mm512_setzero_si512();
                for (j, &sp) in sp.iter().enumerate() {
                    off =
                        _mm512_dpwssd_epi32(off, sp, _mm512_set1_epi32(bs.add(j).read_unaligned()));
                }
                let isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(off, 5));
                let yd = _mm512_set1_ps(y.d);
                let t = _mm512_mul_ps(_mm512_mul_ps(yd, d), _mm512_cvtepi32_ps(isum));
                *accf = _mm512_add_ps(*accf, t);
            }
        }
        for (c, &v) in accf.iter().enumerate() {
            let o = &mut out[(c0 + c) * ldo + r0..][..STRIP_ROWS];
            _mm512_storeu_ps(o.as_mut_ptr(), v);
        }
    }
}

/// Q4_K (and Q5_K) strips, VNNI column kernel; decoded once per call from [`DECODE_FROM`]
/// columns on.
struct Q4KStrip<B>(std::marker::PhantomData<B>);

impl<B: K4Block + 'static> StripKernel for Q4KStrip<B> {
    type W<'a> = &'a [B];
    type A = BlockQ8_K;
    type M = ActK;
    const COLS: usize = STRIP_COLS;
    const DECODE_FROM: usize = DECODE_FROM;
    const DECODED: usize = K4_DECODED;
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
        // SAFETY: forwarded caller guarantees.
        unsafe { q4_k_strip_cols::<B, RN, SPLIT, false>(w, &[], a, m, nb, rc, out, ldo) }
    }
    #[inline(always)]
    unsafe fn decode(w: &[B], nb: usize, dec: &mut [Lanes]) {
        // SAFETY: forwarded caller guarantees (AVX-512 VNNI includes the EVEX kind's features).
        unsafe { avx2_strips::Q4K::<B, EVEX>::decode(w, nb, dec) }
    }
    #[inline(always)]
    unsafe fn cols_decoded<const RN: usize, const SPLIT: bool>(
        w: &[B],
        dec: &[Lanes],
        a: &[BlockQ8_K],
        m: &[ActK],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe { q4_k_strip_cols::<B, RN, SPLIT, true>(w, dec, a, m, nb, rc, out, ldo) }
    }
}

/// Q6_K strips, VNNI column kernel; decoded once per call from [`DECODE_FROM`] columns on.
struct Q6KStrip;

impl StripKernel for Q6KStrip {
    type W<'a> = &'a [BlockQ6_Kx16];
    type A = BlockQ8_K;
    type M = ();
    const COLS: usize = STRIP_COLS;
    const DECODE_FROM: usize = DECODE_FROM;
    const DECODED: usize = Q6_DECODED;
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
        // SAFETY: forwarded caller guarantees (AVX-512 includes AVX2 + FMA + F16C).
        unsafe {
            if RN <= 2 {
                // Generation: the AVX2 kernel (bit-equal) streams a Q6_K strip about twice as
                // fast as this one, which rebuilds and multiplies every group's scale per column.
                avx2_strips::Q6K::<NONE>::cols::<RN, SPLIT>(w, a, &[], nb, rc, out, ldo)
            } else {
                q6_k_strip_cols::<RN, SPLIT, false>(w, &[], a, nb, rc, out, ldo)
            }
        }
    }
    #[inline(always)]
    unsafe fn decode(w: &[BlockQ6_Kx16], nb: usize, dec: &mut [Lanes]) {
        // SAFETY: forwarded caller guarantees (AVX-512 VNNI includes the EVEX kind's features).
        unsafe { avx2_strips::Q6K::<EVEX>::decode(w, nb, dec) }
    }
    #[inline(always)]
    unsafe fn cols_decoded<const RN: usize, const SPLIT: bool>(
        w: &[BlockQ6_Kx16],
        dec: &[Lanes],
        a: &[BlockQ8_K],
        _: &[()],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe { q6_k_strip_cols::<RN, SPLIT, true>(w, dec, a, nb, rc, out, ldo) }
    }
}

/// The k-quant strip gemms of both flavours: VNNI runs the strip driver over `S`'s column
/// kernel, the plain flavour over the AVX2 column kernel of the same layout.
///
/// # Safety
/// AVX-512 F/BW/VL + F16C (+ VNNI when `VNNI`); `w.len()` and `a.len()` multiples of `nb`,
/// `out` covers every `c * ldo + r` (indexing is checked anyway).
#[inline(always)]
unsafe fn strips_k<S, const VNNI: bool>(
    w: &[S::P],
    a: &[BlockQ8_K],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) where
    S: KTwin,
    for<'a> S: StripKernel<W<'a> = &'a [S::P], A = BlockQ8_K>,
    for<'a> S::Avx2: StripKernel<W<'a> = &'a [S::P], A = BlockQ8_K>,
{
    // SAFETY: forwarded caller guarantees (VNNI present when `VNNI`; AVX-512 includes AVX2 +
    // FMA + F16C).
    unsafe {
        if VNNI {
            strips::drive::<S>(w, a, nb, out, ldo)
        } else {
            strips::drive::<S::Avx2>(w, a, nb, out, ldo)
        }
    }
}

/// A k-quant strip layout's block and its AVX2 column kernel.
trait KTwin {
    type P;
    type Avx2;
}

impl<B: K4Block + 'static> KTwin for Q4KStrip<B> {
    type P = B;
    type Avx2 = avx2_strips::Q4K<B, NONE>;
}

impl KTwin for Q6KStrip {
    type P = BlockQ6_Kx16;
    type Avx2 = avx2_strips::Q6K<NONE>;
}
