//! AVX-512 kernels, in two flavours with the same kernel names: [`plain`] (F/BW/VL) and
//! [`vnni`] (plus AVX512-VNNI `vpdpbusd`). The 32-value formats and the float dots use 512-bit
//! lanes (two blocks per register); the k-quants, quantizers and dequantizers reuse the AVX2
//! bodies compiled for AVX-512 (and with `vpdpbusd` in the `vnni` flavour).

use std::arch::x86_64::*;

use cinder_quant::block::*;
use half::f16;

use super::avx2::{self, load32, unpack_q4};
use super::{f16_to_f32, hsum_ps};

macro_rules! avx512_flavour {
    ($m:ident, $feat:literal, $vnni:literal) => {
        #[doc = concat!("AVX-512 kernels compiled for `", $feat, "`.")]
        pub(crate) mod $m {
            use cinder_quant::block::*;
            use half::f16;

            use crate::x86::avx2::{self, Q4_0Tile, Q8_0Tile};

            kernels! { $feat;
                unsafe quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) = avx2::quantize_row_q8_0_body;
                unsafe quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) = avx2::quantize_row_q8_1_body;
                unsafe quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) = avx2::quantize_row_q8_k_body;
                unsafe vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 = super::vec_dot_q4_0_q8_0_body::<$vnni>;
                unsafe vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 = super::vec_dot_q8_0_q8_0_body::<$vnni>;
                unsafe vec_dot_q4_k_q8_k(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q4_k_q8_k_body::<$vnni>;
                unsafe vec_dot_q6_k_q8_k(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q6_k_q8_k_body::<$vnni>;
                unsafe vec_dot_f16_f32(x: &[f16], y: &[f32]) -> f32 = super::vec_dot_f16_f32_body;
                unsafe vec_dot_f32_f32(x: &[f32], y: &[f32]) -> f32 = super::vec_dot_f32_f32_body;
                unsafe gemm_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = avx2::gemm_body::<Q4_0Tile<$vnni>, 4, 4>;
                unsafe gemm_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = avx2::gemm_body::<Q8_0Tile<$vnni>, 4, 4>;
                unsafe dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) = avx2::dequantize_row_q4_0_body;
                unsafe dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) = avx2::dequantize_row_q8_0_body;
                unsafe dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) = avx2::dequantize_row_q6_k_body;
                unsafe dequantize_row_f16(x: &[f16], y: &mut [f32]) = avx2::dequantize_row_f16_body;
                unsafe vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 = avx2::vec_dot_q5_0_q8_0_body::<$vnni>;
                unsafe vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 = avx2::vec_dot_q4_1_q8_1_body::<$vnni>;
                unsafe vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 = avx2::vec_dot_q5_1_q8_1_body::<$vnni>;
                unsafe vec_dot_q2_k_q8_k(x: &[BlockQ2_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q2_k_q8_k_body::<$vnni>;
                unsafe vec_dot_q3_k_q8_k(x: &[BlockQ3_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q3_k_q8_k_body::<$vnni>;
                unsafe vec_dot_q5_k_q8_k(x: &[BlockQ5_K], y: &[BlockQ8_K]) -> f32 = avx2::vec_dot_q5_k_q8_k_body::<$vnni>;
            }
        }
    };
}

avx512_flavour!(plain, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
avx512_flavour!(
    vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    true
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

/// Q4_0 x Q8_0, two blocks per 512-bit register; an odd last block goes through the AVX2 tile.
///
/// # Safety
/// AVX-512 F/BW/VL + FMA + F16C (+ VNNI when `VNNI`); `x.len() == y.len()`.
#[inline(always)]
unsafe fn vec_dot_q4_0_q8_0_body<const VNNI: bool>(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let n = x.len().min(y.len());
    let pairs = n / 2;
    // SAFETY: features guaranteed by the caller; all block accesses are bounds-checked.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 2];
        let eight = _mm512_set1_epi8(8);
        for i in 0..pairs {
            let (x0, x1, y0, y1) = (&x[2 * i], &x[2 * i + 1], &y[2 * i], &y[2 * i + 1]);
            let w = join(unpack_q4(&x0.qs), unpack_q4(&x1.qs));
            let a = join(load32(&y0.qs), load32(&y1.qs));
            let p = dot_u8i8_512::<VNNI>(_mm512_setzero_si512(), w, a);
            let o = dot_u8i8_512::<VNNI>(_mm512_setzero_si512(), eight, a);
            let s = _mm512_cvtepi32_ps(_mm512_sub_epi32(p, o));
            let d = splat2(
                f16_to_f32(x0.d) * f16_to_f32(y0.d),
                f16_to_f32(x1.d) * f16_to_f32(y1.d),
            );
            acc[i & 1] = _mm512_fmadd_ps(d, s, acc[i & 1]);
        }
        let mut sum = hsum_ps512(_mm512_add_ps(acc[0], acc[1]));
        if n % 2 == 1 {
            sum += avx2::vec_dot_q4_0_q8_0_body::<VNNI>(&x[n - 1..n], &y[n - 1..n]);
        }
        sum
    }
}

/// Q8_0 x Q8_0: plain widens each block to 32 x i16 (exact for -128 x -128); VNNI biases the
/// weights to unsigned and subtracts `128 * sum(a)`, two blocks per register.
///
/// # Safety
/// AVX-512 F/BW/VL + FMA + F16C (+ VNNI when `VNNI`); `x.len() == y.len()`.
#[inline(always)]
unsafe fn vec_dot_q8_0_q8_0_body<const VNNI: bool>(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let n = x.len().min(y.len());
    let pairs = n / 2;
    // SAFETY: features guaranteed by the caller; all block accesses are bounds-checked.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 2];
        let bias = _mm512_set1_epi8(-128);
        for i in 0..pairs {
            let (x0, x1, y0, y1) = (&x[2 * i], &x[2 * i + 1], &y[2 * i], &y[2 * i + 1]);
            let (d0, d1) = (
                f16_to_f32(x0.d) * f16_to_f32(y0.d),
                f16_to_f32(x1.d) * f16_to_f32(y1.d),
            );
            if VNNI {
                let w = _mm512_xor_si512(join(load32(&x0.qs), load32(&x1.qs)), bias);
                let a = join(load32(&y0.qs), load32(&y1.qs));
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, a);
                let o = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, a);
                let s = _mm512_cvtepi32_ps(_mm512_sub_epi32(p, o));
                acc[i & 1] = _mm512_fmadd_ps(splat2(d0, d1), s, acc[i & 1]);
            } else {
                for (b, (xb, yb, d)) in [(x0, y0, d0), (x1, y1, d1)].into_iter().enumerate() {
                    let xw = _mm512_cvtepi8_epi16(load32(&xb.qs));
                    let yw = _mm512_cvtepi8_epi16(load32(&yb.qs));
                    let s = _mm512_cvtepi32_ps(_mm512_madd_epi16(xw, yw));
                    acc[b] = _mm512_fmadd_ps(_mm512_set1_ps(d), s, acc[b]);
                }
            }
        }
        let mut sum = hsum_ps512(_mm512_add_ps(acc[0], acc[1]));
        if n % 2 == 1 {
            sum += avx2::vec_dot_q8_0_q8_0_body::<VNNI>(&x[n - 1..n], &y[n - 1..n]);
        }
        sum
    }
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
