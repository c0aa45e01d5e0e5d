//! Portable scalar kernels: always compiled, the twin every SIMD kernel is tested against.
//!
//! Integer parts (the per-block `sum(q_w * q_a)` and the k-quants' `bsums * mins`) are exact
//! `i32` arithmetic; each block then contributes one f32 term (`d_w * d_a * isum`, plus the
//! min/offset term), and the terms are summed left to right in f32. SIMD kernels compute the
//! same integers and the same per-block terms but sum them in another order.

use cinder_quant::block::*;
use cinder_quant::dtype::QK_K;
use half::f16;

use crate::dispatch::MatShape;
use crate::repack::{self, BlockQ4_Kx16, BlockQ5_Kx16, BlockQ6_Kx16, Lanes, Scales16};

// ---------------------------------------------------------------------------------------------
// Activation quantizers: the scalar twins are quant's reference quantizers themselves (the
// oracle the SIMD quantizers must equal byte for byte).

/// f32 -> Q8_0 (activations of Q4_0, Q5_0, Q8_0). `x.len() == y.len() * 32`.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    cinder_quant::reference::quantize_row_q8_0(x, y)
}

/// f32 -> Q8_1 (activations of Q4_1, Q5_1): Q8_0 plus `s = d * sum(q)`.
pub fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    cinder_quant::reference::quantize_row_q8_1(x, y)
}

/// f32 -> Q8_K (activations of the k-quants), with the sums of each group of 16 quants.
pub fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) {
    cinder_quant::reference::quantize_row_q8_k(x, y)
}

// ---------------------------------------------------------------------------------------------
// Scale unpacking shared with the SIMD kernels (once per super-block, scalar everywhere).

/// Q4_K / Q5_K: the 8 six-bit scales and 8 six-bit mins packed in 12 bytes.
#[inline(always)]
pub(crate) fn scales_mins_k4(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
    }
    for j in 4..8 {
        sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    (sc, mn)
}

/// Q3_K: the 16 six-bit scales packed in 12 bytes, minus 32.
#[inline(always)]
pub(crate) fn scales_q3_k(s: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = ((low | (high << 4)) as i8) - 32;
    }
    out
}

/// The 256 quants of a Q2_K block (0..=3) in value order.
#[inline(always)]
fn quants_q2_k(b: &BlockQ2_K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for n in 0..2 {
        for j in 0..4 {
            for l in 0..32 {
                q[n * 128 + j * 32 + l] = ((b.qs[n * 32 + l] >> (2 * j)) & 3) as i8;
            }
        }
    }
    q
}

/// The 256 quants of a Q3_K block (-4..=3) in value order.
#[inline(always)]
fn quants_q3_k(b: &BlockQ3_K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for n in 0..2 {
        for j in 0..4 {
            for l in 0..32 {
                let low = ((b.qs[n * 32 + l] >> (2 * j)) & 3) as i8;
                let high = (b.hmask[l] >> (n * 4 + j)) & 1;
                q[n * 128 + j * 32 + l] = low - if high == 0 { 4 } else { 0 };
            }
        }
    }
    q
}

/// The 256 quants of a Q4_K block (0..=15) in value order.
#[inline(always)]
fn quants_q4_k(b: &BlockQ4_K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for j in 0..4 {
        for l in 0..32 {
            q[j * 64 + l] = (b.qs[j * 32 + l] & 0xF) as i8;
            q[j * 64 + 32 + l] = (b.qs[j * 32 + l] >> 4) as i8;
        }
    }
    q
}

/// The 256 quants of a Q5_K block (0..=31) in value order.
#[inline(always)]
fn quants_q5_k(b: &BlockQ5_K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for j in 0..4 {
        for l in 0..32 {
            let h0 = ((b.qh[l] >> (2 * j)) & 1) << 4;
            let h1 = ((b.qh[l] >> (2 * j + 1)) & 1) << 4;
            q[j * 64 + l] = ((b.qs[j * 32 + l] & 0xF) | h0) as i8;
            q[j * 64 + 32 + l] = ((b.qs[j * 32 + l] >> 4) | h1) as i8;
        }
    }
    q
}

/// The 256 quants of a Q6_K block (-32..=31) in value order.
#[inline(always)]
fn quants_q6_k(b: &BlockQ6_K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for n in 0..2 {
        let (ql, qh) = (&b.ql[n * 64..n * 64 + 64], &b.qh[n * 32..n * 32 + 32]);
        for l in 0..32 {
            let v = &mut q[n * 128..n * 128 + 128];
            v[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            v[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            v[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            v[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    q
}

/// `sum(a[i] * b[i])` over equal-length i8 slices, exact.
#[inline(always)]
fn idot(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

// ---------------------------------------------------------------------------------------------
// Dot products of the 32-value formats. Every slice pair has equal length (checked by the
// safe wrappers in `dispatch`).

/// Q4_0 x Q8_0: per block `isum = sum((q - 8) * a)`, term `isum * (d_w * d_a)`.
pub fn vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut isum = 0i32;
        for j in 0..QK / 2 {
            let lo = (x.qs[j] & 0xF) as i32 - 8;
            let hi = (x.qs[j] >> 4) as i32 - 8;
            isum += lo * y.qs[j] as i32 + hi * y.qs[j + QK / 2] as i32;
        }
        sum += isum as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}

/// Q4_1 x Q8_1: per block `isum = sum(q * a)`, term `isum * (d_w * d_a) + m_w * s_a`.
pub fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut isum = 0i32;
        for j in 0..QK / 2 {
            let lo = (x.qs[j] & 0xF) as i32;
            let hi = (x.qs[j] >> 4) as i32;
            isum += lo * y.qs[j] as i32 + hi * y.qs[j + QK / 2] as i32;
        }
        sum += isum as f32 * (x.d.to_f32() * y.d.to_f32()) + x.m.to_f32() * y.s.to_f32();
    }
    sum
}

/// The 32 five-bit quants of a Q5 block (0..=31) in value order.
#[inline(always)]
fn quants_q5(qs: &[u8; QK / 2], qh: [u8; 4]) -> [i8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0i8; QK];
    for j in 0..QK / 2 {
        q[j] = ((qs[j] & 0xF) | ((((qh >> j) & 1) as u8) << 4)) as i8;
        q[j + 16] = ((qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4)) as i8;
    }
    q
}

/// Q5_0 x Q8_0: per block `isum = sum((q - 16) * a)`, term `isum * (d_w * d_a)`.
pub fn vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = quants_q5(&x.qs, x.qh);
        let isum: i32 = q
            .iter()
            .zip(&y.qs)
            .map(|(&q, &a)| (q as i32 - 16) * a as i32)
            .sum();
        sum += isum as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}

/// Q5_1 x Q8_1: per block `isum = sum(q * a)`, term `isum * (d_w * d_a) + m_w * s_a`.
pub fn vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = quants_q5(&x.qs, x.qh);
        let isum = idot(&q, &y.qs);
        sum += isum as f32 * (x.d.to_f32() * y.d.to_f32()) + x.m.to_f32() * y.s.to_f32();
    }
    sum
}

/// Q8_0 x Q8_0: per block `isum = sum(q * a)`, term `isum * (d_w * d_a)`.
pub fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        sum += idot(&x.qs, &y.qs) as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// k-quant dot products (activations Q8_K).

/// Q2_K x Q8_K: `isum = sum_g scale_g * sum(q * a)`, `msum = sum_g min_g * bsum_g`;
/// term `d_w * d_a * isum - dmin_w * d_a * msum`.
pub fn vec_dot_q2_k_q8_k(x: &[BlockQ2_K], y: &[BlockQ8_K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = quants_q2_k(x);
        let (mut isum, mut msum) = (0i32, 0i32);
        for g in 0..16 {
            let r = g * 16..g * 16 + 16;
            isum += (x.scales[g] & 0xF) as i32 * idot(&q[r.clone()], &y.qs[r]);
            msum += (x.scales[g] >> 4) as i32 * y.bsums[g] as i32;
        }
        sum += y.d * x.d.to_f32() * isum as f32 - y.d * x.dmin.to_f32() * msum as f32;
    }
    sum
}

/// Q3_K x Q8_K: `isum = sum_g (scale_g - 32) * sum(q * a)`, term `d_w * d_a * isum`.
pub fn vec_dot_q3_k_q8_k(x: &[BlockQ3_K], y: &[BlockQ8_K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = quants_q3_k(x);
        let sc = scales_q3_k(&x.scales);
        let mut isum = 0i32;
        for (g, &sc) in sc.iter().enumerate() {
            let r = g * 16..g * 16 + 16;
            isum += sc as i32 * idot(&q[r.clone()], &y.qs[r]);
        }
        sum += y.d * x.d.to_f32() * isum as f32;
    }
    sum
}

/// Q4_K x Q8_K: `isum = sum_s scale_s * sum(q * a)` over 8 sub-blocks of 32,
/// `msum = sum_s min_s * (bsum_2s + bsum_2s+1)`; term `d_w * d_a * isum - dmin_w * d_a * msum`.
pub fn vec_dot_q4_k_q8_k(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = quants_q4_k(x);
        let (sc, mn) = scales_mins_k4(&x.scales);
        let (mut isum, mut msum) = (0i32, 0i32);
        for s in 0..8 {
            let r = s * 32..s * 32 + 32;
            isum += sc[s] as i32 * idot(&q[r.clone()], &y.qs[r]);
            msum += mn[s] as i32 * (y.bsums[2 * s] as i32 + y.bsums[2 * s + 1] as i32);
        }
        sum += y.d * x.d.to_f32() * isum as f32 - y.d * x.dmin.to_f32() * msum as f32;
    }
    sum
}

/// Q5_K x Q8_K: as Q4_K with 5-bit quants.
pub fn vec_dot_q5_k_q8_k(x: &[BlockQ5_K], y: &[BlockQ8_K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = quants_q5_k(x);
        let (sc, mn) = scales_mins_k4(&x.scales);
        let (mut isum, mut msum) = (0i32, 0i32);
        for s in 0..8 {
            let r = s * 32..s * 32 + 32;
            isum += sc[s] as i32 * idot(&q[r.clone()], &y.qs[r]);
            msum += mn[s] as i32 * (y.bsums[2 * s] as i32 + y.bsums[2 * s + 1] as i32);
        }
        sum += y.d * x.d.to_f32() * isum as f32 - y.d * x.dmin.to_f32() * msum as f32;
    }
    sum
}

/// Q6_K x Q8_K: `isum = sum_g scale_g * sum((q - 32) * a)` over 16 groups of 16;
/// term `d_w * d_a * isum`.
pub fn vec_dot_q6_k_q8_k(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = quants_q6_k(x);
        let mut isum = 0i32;
        for g in 0..16 {
            let r = g * 16..g * 16 + 16;
            isum += x.scales[g] as i32 * idot(&q[r.clone()], &y.qs[r]);
        }
        sum += y.d * x.d.to_f32() * isum as f32;
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Float dot products.

/// f16 x f32, summed left to right in f32.
pub fn vec_dot_f16_f32(x: &[f16], y: &[f32]) -> f32 {
    x.iter()
        .zip(y)
        .fold(0.0f32, |s, (&a, &b)| s + a.to_f32() * b)
}

/// f32 x f32, summed left to right in f32.
pub fn vec_dot_f32_f32(x: &[f32], y: &[f32]) -> f32 {
    x.iter().zip(y).fold(0.0f32, |s, (&a, &b)| s + a * b)
}

// ---------------------------------------------------------------------------------------------
// Tiled matrix products: scalar twins are plain loops over `vec_dot`.

/// `out[c * ldo + r] = vec_dot(w row r, a column c)` for every weight row in `w` (`nb` blocks
/// each) and every activation column in `a`.
pub fn gemm_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) {
    for (r, wr) in w.chunks_exact(nb).enumerate() {
        for (c, ac) in a.chunks_exact(nb).enumerate() {
            out[c * ldo + r] = vec_dot_q4_0_q8_0(wr, ac);
        }
    }
}

/// As [`gemm_q4_0_q8_0`] for Q8_0 weights.
pub fn gemm_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) {
    for (r, wr) in w.chunks_exact(nb).enumerate() {
        for (c, ac) in a.chunks_exact(nb).enumerate() {
            out[c * ldo + r] = vec_dot_q8_0_q8_0(wr, ac);
        }
    }
}

/// `out[c * ldo + r] = dot(w row r, a column c)` for every row (of `nb` blocks) and column:
/// the gemm of weight types without a tiled kernel on an Isa, inlined into each Isa's kernel
/// with that Isa's dot (so bit-equal to it).
#[inline(always)]
pub(crate) fn gemm_by_dots<W, A>(
    w: &[W],
    a: &[A],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
    dot: impl Fn(&[W], &[A]) -> f32,
) {
    for (r, wr) in w.chunks_exact(nb).enumerate() {
        for (c, ac) in a.chunks_exact(nb).enumerate() {
            out[c * ldo + r] = dot(wr, ac);
        }
    }
}

/// As [`gemm_q4_0_q8_0`] for Q4_K weights and Q8_K columns.
pub fn gemm_q4_k_q8_k(w: &[BlockQ4_K], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) {
    gemm_by_dots(w, a, nb, out, ldo, vec_dot_q4_k_q8_k)
}

/// Strips of a repacked Q4_0 matrix (`crate::repack`, `nb` blocks per row) x Q8_0 columns:
/// `out[c * ldo + r] = vec_dot_q4_0_q8_0(row r, column c)` for every row `r` of the strips,
/// bit-equal to [`gemm_q4_0_q8_0`] on the plain rows.
pub fn gemm_q4_0x16_q8_0(
    q: &[Lanes],
    d: &[Scales16],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    gemm_x16(
        d.len() / nb,
        a,
        nb,
        out,
        ldo,
        |at| repack::unpack_q4_0(q, d, nb, at),
        vec_dot_q4_0_q8_0,
    )
}

/// As [`gemm_q4_0x16_q8_0`] for Q8_0 strips.
pub fn gemm_q8_0x16_q8_0(
    q: &[Lanes],
    d: &[Scales16],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    gemm_x16(
        d.len() / nb,
        a,
        nb,
        out,
        ldo,
        |at| repack::unpack_q8_0(q, d, nb, at),
        vec_dot_q8_0_q8_0,
    )
}

/// Strips of a repacked Q4_K matrix (`crate::repack`, `nb` super-blocks per row) x Q8_K
/// columns: `out[c * ldo + r] = vec_dot_q4_k_q8_k(row r, column c)` for every row `r` of the
/// strips, bit-equal to [`gemm_q4_k_q8_k`] on the plain rows.
pub fn gemm_q4_kx16_q8_k(
    w: &[BlockQ4_Kx16],
    a: &[BlockQ8_K],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    gemm_x16(
        w.len() / nb,
        a,
        nb,
        out,
        ldo,
        |at| repack::unpack_q4_k(w, nb, at),
        vec_dot_q4_k_q8_k,
    )
}

/// As [`gemm_q4_kx16_q8_k`] for Q5_K strips: bit-equal to `vec_dot_q5_k_q8_k` on the plain
/// rows.
pub fn gemm_q5_kx16_q8_k(
    w: &[BlockQ5_Kx16],
    a: &[BlockQ8_K],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    gemm_x16(
        w.len() / nb,
        a,
        nb,
        out,
        ldo,
        |at| repack::unpack_q5_k(w, nb, at),
        vec_dot_q5_k_q8_k,
    )
}

/// As [`gemm_q4_kx16_q8_k`] for Q6_K strips: bit-equal to `vec_dot_q6_k_q8_k` on the plain
/// rows.
pub fn gemm_q6_kx16_q8_k(
    w: &[BlockQ6_Kx16],
    a: &[BlockQ8_K],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    gemm_x16(
        w.len() / nb,
        a,
        nb,
        out,
        ldo,
        |at| repack::unpack_q6_k(w, nb, at),
        vec_dot_q6_k_q8_k,
    )
}

/// One block at a time: `vec_dot` of a single block returns exactly the term the row-long
/// `vec_dot` adds, so summing them in order reproduces it bit for bit.
fn gemm_x16<B, A>(
    strips: usize,
    a: &[A],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
    block: impl Fn((usize, usize, usize)) -> B,
    dot: fn(&[B], &[A]) -> f32,
) {
    for s in 0..strips {
        for r in 0..repack::STRIP_ROWS {
            for (c, ac) in a.chunks_exact(nb).enumerate() {
                let mut sum = 0.0f32;
                for (k, ak) in ac.iter().enumerate() {
                    sum += dot(
                        std::slice::from_ref(&block((s, r, k))),
                        std::slice::from_ref(ak),
                    );
                }
                out[c * ldo + s * repack::STRIP_ROWS + r] = sum;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Float matrix products (attention): `c = a b` with `b` row-major, summed in `i` order.

/// `c[t * ldc + j] = sum_{i < k} a[t * lda + i] * b[i * ldb + j]` for `t < m`, `j < n`: each
/// output summed left to right in f32 (`Kernels::gemm_f32_f16` checks the shape).
#[inline(always)]
pub fn gemm_f32_f16(a: &[f32], b: &[f16], c: &mut [f32], s: MatShape) {
    gemm_nn(a, b, c, s, f16::to_f32)
}

/// As [`gemm_f32_f16`] with f32 `b`.
#[inline(always)]
pub fn gemm_f32_f32(a: &[f32], b: &[f32], c: &mut [f32], s: MatShape) {
    gemm_nn(a, b, c, s, |v| v)
}

/// The body of both: one row of `c` at a time, `b`'s rows streamed in `i` order.
#[inline(always)]
fn gemm_nn<B: Copy>(a: &[f32], b: &[B], c: &mut [f32], s: MatShape, f: impl Fn(B) -> f32) {
    let MatShape {
        m,
        k,
        n,
        lda,
        ldb,
        ldc,
    } = s;
    for t in 0..m {
        let crow = &mut c[t * ldc..][..n];
        crow.fill(0.0);
        for i in 0..k {
            let x = a[t * lda + i];
            for (cj, &bj) in crow.iter_mut().zip(&b[i * ldb..][..n]) {
                *cj += x * f(bj);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dequantizers (embedding lookup). Same float operations as quant's reference, so bit-equal.

/// Q4_0 -> f32: `(q - 8) * d`.
pub fn dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for j in 0..QK / 2 {
            y[j] = ((b.qs[j] & 0xF) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Q8_0 -> f32: `q * d`.
pub fn dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Q6_K -> f32: `(d * scale) * (q - 32)`.
pub fn dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let q = quants_q6_k(b);
        for (i, o) in y.iter_mut().enumerate() {
            *o = d * b.scales[i / 16] as f32 * q[i] as f32;
        }
    }
}

/// f16 -> f32 (exact).
pub fn dequantize_row_f16(x: &[f16], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.to_f32();
    }
}

// ---------------------------------------------------------------------------------------------
// e^x for softmax and SwiGLU. One portable body serves every kernel set: the x86 tables compile
// it for their features (LLVM vectorizes it there, `mul_add` becomes an FMA) and the others call
// it as it is, so every set computes the same bits. The method: `n = round(x / ln 2)` by adding
// a shifter, `r = x - n ln 2` in two FMA steps (`ln 2` split in a short high part and the rest),
// `e^r = 1 + r + r^2 P(r)` with P of degree 5 on |r| <= ln 2 / 2 (the Cephes `expf`
// coefficients), times `2^n` built from the shifter's low bits. Inputs are first clamped to
// [-87, 88], so `2^n` is a normal number: below -87 the result stays near 1.6e-38 (not 0),
// above 88 at 1.65e38 (not infinity); a NaN stays NaN. Within the range the
// relative error is a few units of the last place (tested against f64).

/// Lower clamp of [`exp_f32`]: `n >= -126`.
const EXP_LO: f32 = -87.0;
/// Upper clamp of [`exp_f32`]: `n <= 127`.
const EXP_HI: f32 = 88.0;
/// `1.5 * 2^23 + 127`: added to `x / ln 2`, rounds it to an integer `n` and leaves `n + 127`
/// in the low mantissa bits.
const EXP_SHIFT: f32 = 12_583_039.0;
/// `1 / ln 2`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` = `LN2_HI + LN2_LO`, `LN2_HI` with few mantissa bits so that `n * LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `P(r)`, highest degree first.
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// e^x as described above (clamped to [-87, 88] first).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(EXP_LO, EXP_HI);
    let t = x.mul_add(LOG2E, EXP_SHIFT);
    let n = t - EXP_SHIFT;
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = EXP_P[0];
    for &c in &EXP_P[1..] {
        p = p.mul_add(r, c);
    }
    let e_r = p.mul_add(r * r, r) + 1.0;
    // The low 9 mantissa bits of `t` are `n + 127` (1..=254), the exponent field of `2^n`.
    e_r * f32::from_bits(t.to_bits() << 23)
}

/// `x[i] = e^(x[i] - shift)` ([`exp_f32`]) for every element; returns their sum, added in 16
/// running sums (element `i` into sum `i % 16`), which are then added in order.
#[inline(always)]
pub fn exp_sum(x: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *v = exp_f32(*v - shift);
            *a += *v;
        }
    }
    for (a, v) in acc.iter_mut().zip(chunks.into_remainder()) {
        *v = exp_f32(*v - shift);
        *a += *v;
    }
    acc.iter().sum()
}

/// SwiGLU's gate: `g[i] = g[i] / (1 + e^-g[i]) * u[i]` ([`exp_f32`]). `g.len() == u.len()`.
#[inline(always)]
pub fn silu_mul(g: &mut [f32], u: &[f32]) {
    for (g, &u) in g.iter_mut().zip(u) {
        *g = *g / (1.0 + exp_f32(-*g)) * u;
    }
}
