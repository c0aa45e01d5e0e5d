//! Reference quantizers and dequantizers of the k-quants (Q2_K..Q6_K and Q8_K).
//!
//! They follow ggml's `quantize_row_<type>_ref` (the path `llama-quantize` takes for a tensor
//! without an importance matrix) and `dequantize_row_<type>` operation for operation, so the
//! bytes and floats come out bit-exact:
//!
//! - every float expression is evaluated in the same order as ggml's C (Rust never contracts
//!   `a * b + c` into a fused multiply-add, and ggml's reference build has no FMA either);
//! - rounding is [`nearest_int`] (ties to even), and the int -> `u8`/`i8` conversions wrap the
//!   way C's do (`as`);
//! - super-block scales are rounded to f16 (round to nearest even) when stored, and the
//!   re-quantization pass uses the stored, rounded scales;
//! - the iterative scale searches use ggml's step counts and ranges per type.
//!
//! A super-block holds [`QK_K`] = 256 values.

use bytemuck::Zeroable;
use half::f16;

use super::{assert_blocks, nearest_int};
use crate::block::*;
use crate::dtype::QK_K;

/// Below this magnitude a group counts as all zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// The value of largest magnitude (with its sign; the first one on ties) and that magnitude.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// Symmetric quantization of `x` to `l - nmax` with `l` in `0..2*nmax`, weights `x²`
/// (ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights).
///
/// Tries 19 candidate scales around `-nmax / max` and keeps the one that maximizes
/// `sumlx² / suml2`; writes the offset quants to `l_out` and returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // Weighted sums of x*l and l*l for one candidate inverse scale.
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let fill = |iscale: f32, l_out: &mut [u8]| {
        for (o, &v) in l_out.iter_mut().zip(x) {
            *o = (nmax + quant(iscale, v)) as u8;
        }
    };

    let iscale = -(nmax as f32) / max;
    fill(iscale, l_out);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill(iscale, l_out);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Symmetric 3-bit-style quantization with weights `x²` refined by coordinate descent
/// (ggml's `make_q3_quants` with `do_rmse`). Quants `l + nmax` go to `l_out`; returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
    const N: usize = 16;
    assert_eq!(x.len(), N);
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut l = [0i32; N];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (li, &v) in l.iter_mut().zip(x) {
        *li = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        let w = v * v;
        sumlx += w * v * *li as f32;
        suml2 += w * *li as f32 * *li as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (li, &v) in l.iter_mut().zip(x) {
            let w = v * v;
            let mut slx = sumlx - w * v * *li as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * *li as f32 * *li as f32;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *li {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for (o, &li) in l_out.iter_mut().zip(&l) {
        *o = (li + nmax) as u8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Search parameters of [`make_qkx2_quants`]: candidate inverse scales are
/// `(rmin + rdelta * is + nmax) / (max - min)` for `is` in `0..=nstep`.
struct Search {
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    /// Minimize the weighted absolute error (true) or the weighted squared error (false).
    use_mad: bool,
}

/// Asymmetric quantization `x ≈ scale * l - the_min` with `l` in `0..=nmax` (ggml's
/// `make_qkx2_quants`): a weighted least-squares fit of scale and min for each candidate
/// rounding, keeping the one with the smallest weighted error. Writes `l` to `l_out` and
/// returns `(scale, the_min)` (`the_min >= 0` is subtracted).
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    search: &Search,
) -> (f32, f32) {
    let n = x.len();
    assert!(n <= 32 && weights.len() == n && l_out.len() == n);
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let error_of = |diff: f32| {
        if search.use_mad {
            diff.abs()
        } else {
            diff * diff
        }
    };

    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for ((o, &v), &w) in l_out.iter_mut().zip(x).zip(weights) {
        let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
        *o = l as u8;
        best_error += w * error_of(scale * l as f32 + min - v);
    }
    if search.nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=search.nstep {
        let iscale = (search.rmin + search.rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((o, &v), &w) in laux.iter_mut().zip(x).zip(weights) {
            let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
            *o = l as u8;
            let l = l as f32;
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for ((&l, &v), &w) in laux.iter().zip(x).zip(weights) {
                cur_error += w * error_of(this_scale * l as f32 + this_min - v);
            }
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Scale and min (6 bits each) of sub-block `j` (0..8) of a Q4_K/Q5_K super-block: bytes
/// 0..4 hold scales 0..3, bytes 4..8 mins 0..3 (low 6 bits each); bytes 8..12 hold the low
/// nibbles of scale (low) and min (high) 4..7, whose top 2 bits sit in bits 6..7 of bytes 0..8.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs the 6-bit scales and mins of the 8 sub-blocks in the layout [`get_scale_min_k4`] reads.
fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            q[j - 4] |= (ls[j] >> 4) << 6;
            q[j] |= (lm[j] >> 4) << 6;
        }
    }
    q
}

/// Signed 6-bit scale of sub-block `j` (0..16) of a Q3_K super-block, already minus 32: low
/// nibble in `scales[j]` (j < 8) or the high nibble of `scales[j - 8]`, top 2 bits in
/// `scales[8 + j % 4]` at bit `2 * (j / 4)`.
#[inline]
fn q3_scale(j: usize, scales: &[u8; 12]) -> i32 {
    let low = if j < 8 {
        scales[j] & 0xF
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

/// Packs 2-bit values: byte `l` of each 32-byte group `g` (128 values) holds values
/// `128g + l + 32k` at bits `2k`.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for (chunk, out) in l.chunks_exact(128).zip(qs.chunks_exact_mut(32)) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = chunk[i] | (chunk[i + 32] << 2) | (chunk[i + 64] << 4) | (chunk[i + 96] << 6);
        }
    }
}

/// Packs 4-bit values: byte `l` of each 32-byte group (64 values) holds value `l` (low nibble)
/// and `l + 32` (high nibble). Values must be below 16.
fn pack_4bit(l: &[u8], qs: &mut [u8]) {
    for (chunk, out) in l.chunks_exact(64).zip(qs.chunks_exact_mut(32)) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = chunk[i] | (chunk[i + 32] << 4);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q2_K

/// Q2_K: per sub-block of 16 an asymmetric 2-bit fit weighted by `|x|` (mean absolute error),
/// then 4-bit scales and mins relative to the super-block's largest (`d`, `dmin` in f16), then
/// re-quantization with the stored scales.
pub fn quantize_row_q2_k(x: &[f32], y: &mut [BlockQ2_K]) {
    assert_blocks(x.len(), y.len(), QK_K);
    const Q4SCALE: f32 = 15.0;
    let search = Search {
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..16 {
            let xs = &xb[16 * j..16 * j + 16];
            let mut weights = [0f32; 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            (scales[j], mins[j]) =
                make_qkx2_quants(3, xs, &weights, &mut l[16 * j..16 * j + 16], &search);
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }

        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (s, &sc) in yb.scales.iter_mut().zip(&scales) {
                *s = nearest_int(iscale * sc) as u8;
            }
            yb.d = f16::from_f32(max_scale / Q4SCALE);
        } else {
            yb.scales = [0; 16];
            yb.d = f16::from_f32(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (s, &m) in yb.scales.iter_mut().zip(&mins) {
                *s |= (nearest_int(iscale * m) << 4) as u8;
            }
            yb.dmin = f16::from_f32(max_min / Q4SCALE);
        } else {
            yb.dmin = f16::from_f32(0.0);
        }

        let (d_all, m_all) = (yb.d.to_f32(), yb.dmin.to_f32());
        for j in 0..16 {
            let d = d_all * (yb.scales[j] & 0xF) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = m_all * (yb.scales[j] >> 4) as f32;
            for i in 16 * j..16 * j + 16 {
                l[i] = nearest_int((xb[i] + dm) / d).clamp(0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut yb.qs);
    }
}

/// Q2_K: `x = d * scale * q - dmin * min` per sub-block of 16.
pub fn dequantize_row_q2_k(x: &[BlockQ2_K], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (xb.d.to_f32(), xb.dmin.to_f32());
        // Values 128h + 32k + i come from byte 32h + i at bits 2k; sub-block = value / 16.
        for (v, out) in yb.iter_mut().enumerate() {
            let (h, k, i) = (v / 128, (v % 128) / 32, v % 32);
            let sc = xb.scales[v / 16];
            let dl = d * (sc & 0xF) as f32;
            let ml = min * (sc >> 4) as f32;
            let q = (xb.qs[32 * h + i] >> (2 * k)) & 3;
            *out = dl * q as f32 - ml;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q3_K

/// Q3_K: per sub-block of 16 a symmetric 3-bit fit weighted by `x²` (refined by coordinate
/// descent), then signed 6-bit scales relative to the largest-magnitude one (`d` in f16), then
/// re-quantization with the stored scales; the third bit goes to `hmask`.
pub fn quantize_row_q3_k(x: &[f32], y: &mut [BlockQ3_K]) {
    assert_blocks(x.len(), y.len(), QK_K);
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &xb[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }

        yb.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &sc) in scales.iter().enumerate() {
                // ggml stores the rounded value in an int8 before clamping.
                let ls = ((nearest_int(iscale * sc) as i8).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    yb.scales[j] = ls & 0xF;
                } else {
                    yb.scales[j - 8] |= (ls & 0xF) << 4;
                }
                yb.scales[j % 4 + 8] |= (ls >> 4) << (2 * (j / 4));
            }
            yb.d = f16::from_f32(1.0 / iscale);
        } else {
            yb.d = f16::from_f32(0.0);
        }

        let d_all = yb.d.to_f32();
        for j in 0..16 {
            let d = d_all * q3_scale(j, &yb.scales) as f32;
            if d == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = (nearest_int(xb[i] / d).clamp(-4, 3) + 4) as u8;
            }
        }

        // Bit 2 of value v goes to hmask[v % 32] at bit v / 32.
        yb.hmask = [0; QK_K / 8];
        for (v, lv) in l.iter_mut().enumerate() {
            if *lv > 3 {
                yb.hmask[v % 32] |= 1 << (v / 32);
                *lv -= 4;
            }
        }
        pack_2bit(&l, &mut yb.qs);
    }
}

/// Q3_K: `x = d * scale * (q - (hmask bit set ? 0 : 4))`, signed 6-bit scales per 16 values.
pub fn dequantize_row_q3_k(x: &[BlockQ3_K], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d_all = xb.d.to_f32();
        for (v, out) in yb.iter_mut().enumerate() {
            let (h, k, i) = (v / 128, (v % 128) / 32, v % 32);
            let dl = d_all * q3_scale(v / 16, &xb.scales) as f32;
            let low = ((xb.qs[32 * h + i] >> (2 * k)) & 3) as i32;
            let high = if xb.hmask[i] & (1 << (v / 32)) != 0 {
                0
            } else {
                4
            };
            *out = dl * (low - high) as f32;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_K and Q5_K

/// The shared first half of Q4_K and Q5_K: per sub-block of 32 an asymmetric fit with
/// `nmax` levels weighted by `rms + |x|`, then 6-bit scales and mins relative to the largest.
/// Returns `(d, dmin, packed scales, quants)` with the quants re-computed from the stored
/// (f16-rounded) scales.
fn quantize_superblock_qkx(
    xb: &[f32],
    nmax: i32,
    search: &Search,
) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &xb[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        (scales[j], mins[j]) =
            make_qkx2_quants(nmax, xs, &weights, &mut l[32 * j..32 * j + 32], search);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        // ggml converts the rounded int to uint8 (wrapping) before taking the min with 63.
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);

    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let d = d.to_f32() * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((xb[i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

/// Q4_K: per sub-block of 32 an asymmetric 4-bit fit (squared error weighted by
/// `rms + |x|`, 21 candidate scales), 6-bit scales and mins, `d`/`dmin` in f16.
pub fn quantize_row_q4_k(x: &[f32], y: &mut [BlockQ4_K]) {
    assert_blocks(x.len(), y.len(), QK_K);
    let search = Search {
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (d, dmin, scales, l) = quantize_superblock_qkx(xb, 15, &search);
        yb.d = d;
        yb.dmin = dmin;
        yb.scales = scales;
        pack_4bit(&l, &mut yb.qs);
    }
}

/// Q4_K: `x = d * scale * q - dmin * min` per sub-block of 32.
pub fn dequantize_row_q4_k(x: &[BlockQ4_K], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (xb.d.to_f32(), xb.dmin.to_f32());
        // Group g (64 values) = bytes 32g..32g+32: low nibbles sub-block 2g, high 2g + 1.
        for (g, (out, q)) in yb
            .chunks_exact_mut(64)
            .zip(xb.qs.chunks_exact(32))
            .enumerate()
        {
            let (sc1, m1) = get_scale_min_k4(2 * g, &xb.scales);
            let (sc2, m2) = get_scale_min_k4(2 * g + 1, &xb.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for (i, &b) in q.iter().enumerate() {
                out[i] = d1 * (b & 0xF) as f32 - m1;
                out[i + 32] = d2 * (b >> 4) as f32 - m2;
            }
        }
    }
}

/// Q5_K: as Q4_K with 5-bit quants (16 candidate scales, `rmin = -0.5`); the fifth bit of
/// value `64g + i` (`+ 32`) is bit `2g` (`2g + 1`) of `qh[i]`.
pub fn quantize_row_q5_k(x: &[f32], y: &mut [BlockQ5_K]) {
    assert_blocks(x.len(), y.len(), QK_K);
    let search = Search {
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (d, dmin, scales, mut l) = quantize_superblock_qkx(xb, 31, &search);
        yb.d = d;
        yb.dmin = dmin;
        yb.scales = scales;
        yb.qh = [0; QK_K / 8];
        for (v, lv) in l.iter_mut().enumerate() {
            if *lv > 15 {
                // Value 64g + 32h + i: bit 2g + h of qh[i].
                yb.qh[v % 32] |= 1 << (v / 32);
                *lv -= 16;
            }
        }
        pack_4bit(&l, &mut yb.qs);
    }
}

/// Q5_K: `x = d * scale * (q + 16 * high bit) - dmin * min` per sub-block of 32.
pub fn dequantize_row_q5_k(x: &[BlockQ5_K], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (xb.d.to_f32(), xb.dmin.to_f32());
        for (g, (out, q)) in yb
            .chunks_exact_mut(64)
            .zip(xb.qs.chunks_exact(32))
            .enumerate()
        {
            let (sc1, m1) = get_scale_min_k4(2 * g, &xb.scales);
            let (sc2, m2) = get_scale_min_k4(2 * g + 1, &xb.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
            for (i, &b) in q.iter().enumerate() {
                let h1 = if xb.qh[i] & u1 != 0 { 16 } else { 0 };
                let h2 = if xb.qh[i] & u2 != 0 { 16 } else { 0 };
                out[i] = d1 * ((b & 0xF) as i32 + h1) as f32 - m1;
                out[i + 32] = d2 * ((b >> 4) as i32 + h2) as f32 - m2;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q6_K

/// Q6_K: per sub-block of 16 a symmetric 6-bit fit weighted by `x²` (19 candidate scales),
/// signed 8-bit scales relative to the largest-magnitude one (`d` in f16), then
/// re-quantization with the stored scales.
pub fn quantize_row_q6_k(x: &[f32], y: &mut [BlockQ6_K]) {
    assert_blocks(x.len(), y.len(), QK_K);
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_qx_quants(32, &xb[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let abs_scale = scales[j].abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scales[j];
            }
        }

        if max_abs_scale < GROUP_MAX_EPS {
            *yb = BlockQ6_K::zeroed();
            continue;
        }

        let iscale = -128.0 / max_scale;
        yb.d = f16::from_f32(1.0 / iscale);
        for (s, &sc) in yb.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * sc).min(127) as i8;
        }

        let d_all = yb.d.to_f32();
        for j in 0..16 {
            let d = d_all * yb.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = (nearest_int(xb[i] / d).clamp(-32, 31) + 32) as u8;
            }
        }

        // Group g (128 values): ql[64g + i] = value i (low) | value i + 64 (high nibble),
        // ql[64g + 32 + i] = values i + 32 | i + 96; qh[32g + i] has bits 4..5 of value
        // i + 32k at bits 2k.
        for (g, chunk) in l.chunks_exact(128).enumerate() {
            let ql = &mut yb.ql[64 * g..64 * g + 64];
            for i in 0..32 {
                ql[i] = (chunk[i] & 0xF) | ((chunk[i + 64] & 0xF) << 4);
                ql[i + 32] = (chunk[i + 32] & 0xF) | ((chunk[i + 96] & 0xF) << 4);
            }
            for i in 0..32 {
                yb.qh[32 * g + i] = (chunk[i] >> 4)
                    | ((chunk[i + 32] >> 4) << 2)
                    | ((chunk[i + 64] >> 4) << 4)
                    | ((chunk[i + 96] >> 4) << 6);
            }
        }
    }
}

/// Q6_K: `x = d * scale * (q - 32)` per sub-block of 16.
pub fn dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = xb.d.to_f32();
        for (g, out) in yb.chunks_exact_mut(128).enumerate() {
            let ql = &xb.ql[64 * g..64 * g + 64];
            let qh = &xb.qh[32 * g..32 * g + 32];
            let sc = &xb.scales[8 * g..8 * g + 8];
            for i in 0..32 {
                let is = i / 16;
                let q1 = ((ql[i] & 0xF) | ((qh[i] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[i + 32] & 0xF) | (((qh[i] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) as i32 - 32;
                out[i] = d * sc[is] as f32 * q1 as f32;
                out[i + 32] = d * sc[is + 2] as f32 * q2 as f32;
                out[i + 64] = d * sc[is + 4] as f32 * q3 as f32;
                out[i + 96] = d * sc[is + 6] as f32 * q4 as f32;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_K

/// Q8_K (the activation format of the k-quant dot products): `d = max / -127` in f32 where
/// `max` is the signed value of largest magnitude, `q = min(127, round(x / d))`, and `bsums`
/// the sums of each 16 quants. An all-zero block gets `d = 0` and zero quants and sums.
pub fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) {
    assert_blocks(x.len(), y.len(), QK_K);
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (max, amax) = signed_absmax(xb);
        if amax == 0.0 {
            yb.d = 0.0;
            yb.qs = [0; QK_K];
            yb.bsums = [0; QK_K / 16];
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, q) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| v as i32).sum::<i32>() as i16;
        }
        yb.d = 1.0 / iscale;
    }
}

/// Q8_K: `x = d * q`.
pub fn dequantize_row_q8_k(x: &[BlockQ8_K], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (o, &q) in yb.iter_mut().zip(&xb.qs) {
            *o = xb.d * q as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const ARRAYS: [&str; 6] = ["normal", "uniform", "zeros", "outlier", "tiny", "mixed"];

    /// The first differing byte of two encodings, located by block and offset in the block.
    fn first_byte_diff(got: &[u8], want: &[u8], block_bytes: usize) -> Option<String> {
        if got.len() != want.len() {
            return Some(format!("length {} != expected {}", got.len(), want.len()));
        }
        let i = got.iter().zip(want).position(|(a, b)| a != b)?;
        let blocks: Vec<usize> = (0..got.len() / block_bytes)
            .filter(|b| {
                let r = b * block_bytes..(b + 1) * block_bytes;
                got[r.clone()] != want[r]
            })
            .collect();
        Some(format!(
            "first difference at byte {i} (block {}, offset {}): got {:#04x}, expected {:#04x}; \
             differing blocks: {blocks:?}",
            i / block_bytes,
            i % block_bytes,
            got[i],
            want[i]
        ))
    }

    /// The first value whose bits differ.
    fn first_f32_diff(got: &[f32], want: &[f32]) -> Option<String> {
        if got.len() != want.len() {
            return Some(format!("length {} != expected {}", got.len(), want.len()));
        }
        let i = got
            .iter()
            .zip(want)
            .position(|(a, b)| a.to_bits() != b.to_bits())?;
        let n = got
            .iter()
            .zip(want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        Some(format!(
            "{n} values differ; first at {i} (super-block {}): got {:e}, expected {:e}",
            i / QK_K,
            got[i],
            want[i]
        ))
    }

    fn check_quantize<B: Block>(name: &str, quantize: fn(&[f32], &mut [B])) {
        let mut failures = Vec::new();
        for array in ARRAYS {
            let x = fixtures::read_f32(&format!("quant/inputs/{array}.f32"));
            let want = fixtures::read(&format!("quant/{array}/{name}.bin"));
            let mut blocks = vec![B::zeroed(); x.len() / QK_K];
            quantize(&x, &mut blocks);
            let got: &[u8] = bytemuck::cast_slice(&blocks);
            if let Some(d) = first_byte_diff(got, &want, std::mem::size_of::<B>()) {
                failures.push(format!("{name} quantize {array}: {d}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn check_dequantize<B: Block>(name: &str, dequantize: fn(&[B], &mut [f32])) {
        let mut failures = Vec::new();
        let cases = ARRAYS
            .iter()
            .map(|a| format!("quant/{a}/{name}"))
            .chain([format!("quant/dequant_only/{name}")]);
        for base in cases {
            let bytes = fixtures::read(&format!("{base}.bin"));
            let want = fixtures::read_f32(&format!("{base}.deq.f32"));
            let blocks: Vec<B> = bytes
                .chunks_exact(std::mem::size_of::<B>())
                .map(bytemuck::pod_read_unaligned)
                .collect();
            assert_eq!(
                blocks.len() * std::mem::size_of::<B>(),
                bytes.len(),
                "{base}.bin"
            );
            let mut got = vec![0f32; blocks.len() * QK_K];
            dequantize(&blocks, &mut got);
            if let Some(d) = first_f32_diff(&got, &want) {
                failures.push(format!("{base}: {d}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    macro_rules! fixture_tests {
        ($($quant:ident $dequant:ident: $name:literal $q:ident $dq:ident;)*) => {$(
            #[test]
            fn $quant() {
                check_quantize($name, $q);
            }
            #[test]
            fn $dequant() {
                check_dequantize($name, $dq);
            }
        )*};
    }

    fixture_tests! {
        q2_k_quantize_matches_ggml_bytes_on_all_arrays
        q2_k_dequantize_matches_ggml_bits: "Q2_K" quantize_row_q2_k dequantize_row_q2_k;
        q3_k_quantize_matches_ggml_bytes_on_all_arrays
        q3_k_dequantize_matches_ggml_bits: "Q3_K" quantize_row_q3_k dequantize_row_q3_k;
        q4_k_quantize_matches_ggml_bytes_on_all_arrays
        q4_k_dequantize_matches_ggml_bits: "Q4_K" quantize_row_q4_k dequantize_row_q4_k;
        q5_k_quantize_matches_ggml_bytes_on_all_arrays
        q5_k_dequantize_matches_ggml_bits: "Q5_K" quantize_row_q5_k dequantize_row_q5_k;
        q6_k_quantize_matches_ggml_bytes_on_all_arrays
        q6_k_dequantize_matches_ggml_bits: "Q6_K" quantize_row_q6_k dequantize_row_q6_k;
    }

    /// ggml's test signal: `0.1 + 2 cos(i)`.
    fn smooth_signal(n: usize) -> Vec<f32> {
        (0..n).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect()
    }

    /// ggml test-quantize-fns' "rmse": `sqrt(sum of squared differences) / n`, in f64.
    fn ggml_total_error(a: &[f32], b: &[f32]) -> f64 {
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum();
        sum.sqrt() / a.len() as f64
    }

    fn round_trip<B: Block>(
        x: &[f32],
        quantize: fn(&[f32], &mut [B]),
        dequantize: fn(&[B], &mut [f32]),
    ) -> Vec<f32> {
        let mut blocks = vec![B::zeroed(); x.len() / QK_K];
        quantize(x, &mut blocks);
        let mut out = vec![0f32; x.len()];
        dequantize(&blocks, &mut out);
        out
    }

    /// The total-error thresholds of ggml's tests/test-quantize-fns.cpp on 4096 values of
    /// `0.1 + 2 cos(i)`: 0.0075 for Q2_K, 0.0040 for Q3_K, 0.002 for the others.
    #[test]
    fn round_trip_error_within_ggml_test_quantize_fns_thresholds() {
        let x = smooth_signal(32 * 128);
        let cases: [(&str, f64, Vec<f32>); 6] = [
            (
                "Q2_K",
                0.0075,
                round_trip(&x, quantize_row_q2_k, dequantize_row_q2_k),
            ),
            (
                "Q3_K",
                0.0040,
                round_trip(&x, quantize_row_q3_k, dequantize_row_q3_k),
            ),
            (
                "Q4_K",
                0.002,
                round_trip(&x, quantize_row_q4_k, dequantize_row_q4_k),
            ),
            (
                "Q5_K",
                0.002,
                round_trip(&x, quantize_row_q5_k, dequantize_row_q5_k),
            ),
            (
                "Q6_K",
                0.002,
                round_trip(&x, quantize_row_q6_k, dequantize_row_q6_k),
            ),
            (
                "Q8_K",
                0.002,
                round_trip(&x, quantize_row_q8_k, dequantize_row_q8_k),
            ),
        ];
        for (name, limit, y) in cases {
            let err = ggml_total_error(&x, &y);
            assert!(err < limit, "{name}: total error {err} >= {limit}");
        }
    }

    /// Q8_K has no fixture: every value is within half a step (`amax / 127 / 2`) of its input,
    /// `|q| <= 127`, and `bsums` are the sums of each 16 quants; an all-zero block is all zero.
    #[test]
    fn q8_k_round_trip_within_half_step_and_bsums_are_quant_sums() {
        let mut inputs: Vec<(String, Vec<f32>)> = ARRAYS
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    fixtures::read_f32(&format!("quant/inputs/{a}.f32")),
                )
            })
            .collect();
        inputs.push(("smooth".into(), smooth_signal(4096)));
        let mut checked_nonzero = 0;
        for (name, x) in &inputs {
            let mut blocks = vec![BlockQ8_K::zeroed(); x.len() / QK_K];
            quantize_row_q8_k(x, &mut blocks);
            let mut y = vec![0f32; x.len()];
            dequantize_row_q8_k(&blocks, &mut y);
            for (b, (blk, (xs, ys))) in blocks
                .iter()
                .zip(x.chunks_exact(QK_K).zip(y.chunks_exact(QK_K)))
                .enumerate()
            {
                let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
                if amax == 0.0 {
                    assert_eq!(blk.d, 0.0, "{name} block {b}");
                    assert!(blk.qs.iter().all(|&q| q == 0), "{name} block {b}");
                } else {
                    checked_nonzero += 1;
                    let step = amax / 127.0;
                    assert!(
                        (blk.d.abs() - step).abs() <= step * 1e-6,
                        "{name} block {b}: d"
                    );
                    assert!(
                        blk.qs.iter().any(|&q| q.unsigned_abs() == 127),
                        "{name} block {b}"
                    );
                }
                assert!(
                    blk.qs.iter().all(|&q| q != i8::MIN),
                    "{name} block {b}: q = -128"
                );
                let bound = amax / 127.0 * 0.5 + amax * 1e-6;
                for (i, (&a, &r)) in xs.iter().zip(ys).enumerate() {
                    assert!(
                        (a - r).abs() <= bound,
                        "{name} block {b} value {i}: {a} -> {r}"
                    );
                }
                for (j, (&s, q)) in blk.bsums.iter().zip(blk.qs.chunks_exact(16)).enumerate() {
                    let sum: i32 = q.iter().map(|&v| v as i32).sum();
                    assert_eq!(s as i32, sum, "{name} block {b} bsums[{j}]");
                }
            }
        }
        assert!(
            checked_nonzero > 50,
            "too few non-zero blocks checked: {checked_nonzero}"
        );
    }

    #[test]
    fn get_scale_min_k4_inverts_packing_for_all_6_bit_values() {
        for seed in 0u32..64 {
            let ls: [u8; 8] = std::array::from_fn(|j| ((seed * 7 + j as u32 * 13) % 64) as u8);
            let lm: [u8; 8] = std::array::from_fn(|j| ((seed * 11 + j as u32 * 5 + 3) % 64) as u8);
            let packed = pack_scale_min_k4(&ls, &lm);
            for j in 0..8 {
                assert_eq!(
                    get_scale_min_k4(j, &packed),
                    (ls[j], lm[j]),
                    "seed {seed} j {j}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not fill")]
    fn quantize_rejects_partial_super_block() {
        let x = vec![0f32; QK_K + 1];
        let mut y = vec![BlockQ4_K::zeroed(); 1];
        quantize_row_q4_k(&x, &mut y);
    }
}
