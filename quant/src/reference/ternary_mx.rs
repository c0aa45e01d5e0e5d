//! Reference quantizers of the ternary formats TQ1_0 / TQ2_0 and of MXFP4.
//!
//! They follow ggml's `quantize_row_{tq1_0,tq2_0,mxfp4}_ref` and `dequantize_row_*` (which
//! gguf-py reproduces) operation for operation, so bytes and floats come out bit-exact:
//!
//! - TQ1_0 / TQ2_0: `d = amax` of the 256-value super-block (rounded to f16 when stored),
//!   `id = 1/d` in f32 (0 when `d` is 0), each value becomes the trit `round(x * id) + 1` with
//!   C's `lroundf` (half away from zero). When `1/d` overflows (`amax` below about 2^-128),
//!   `x * id` is not finite and ggml's x86 conversion yields the trit 1 (zero): we do the same.
//! - MXFP4: `e = floor(log2(amax)) - 2 + 127` converted to `u8` the way C does it on x86
//!   (a 32-bit truncation, then the low byte: so it wraps for `amax < 2^-125` and is 0 for an
//!   infinite `amax`), `d = 2^(e - 128)`, and each value takes the first index of the smallest
//!   `|kvalue * d - x|` in f32.
//!
//! Inputs with NaN have no common answer (ggml and gguf-py disagree); the code never panics on
//! them.

use half::f16;

use super::assert_blocks;
use crate::block::*;
use crate::dtype::QK_K;

/// Powers of three that shift a packed TQ1_0 byte so that digit `n` becomes the leading one.
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// The e2m1 values of MXFP4, doubled so that they are integers (index 8 is "-0").
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// The absolute maximum as ggml's `MAX(amax, fabsf(v))` computes it.
#[inline]
fn amax_of(x: &[f32]) -> f32 {
    x.iter()
        .fold(0.0f32, |m, v| if m > v.abs() { m } else { v.abs() })
}

/// `1/d`, or 0 for an all-zero block.
#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// The trit (0, 1, 2 for -1, 0, +1) of `v = x * id`: `lroundf(v) + 1`, and 1 when `v` is not
/// finite (x86's out-of-range conversion gives `LONG_MIN`, whose low 32 bits plus one are 1).
#[inline]
fn trit(v: f32) -> u8 {
    if v.is_finite() {
        (v.round() as i32).wrapping_add(1) as u8
    } else {
        1
    }
}

/// Packs trits most significant first into a base-3 number (wrapping like C's `uint8_t`).
#[inline]
fn base3(trits: impl Iterator<Item = u8>) -> u8 {
    trits.fold(0u8, |q, t| q.wrapping_mul(3).wrapping_add(t))
}

/// Stores a 5-digit base-3 number `q` (< 243) in a byte: `ceil(q * 256 / 243)`.
#[inline]
fn scale_to_byte(q: u8) -> u8 {
    (q as u16 * 256).div_ceil(243) as u8
}

/// Digit `n` (0 = most significant) of a TQ1_0 byte.
#[inline]
fn tq1_digit(byte: u8, n: usize) -> i32 {
    let q = byte.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as i32
}

/// TQ1_0: `d = amax`, trits `round(x / d) + 1`, packed 5 per byte (4 in `qh`), see
/// [`BlockTQ1_0`].
pub fn quantize_row_tq1_0(x: &[f32], y: &mut [BlockTQ1_0]) {
    assert_blocks(x.len(), y.len(), QK_K);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        let d = amax_of(x);
        let id = inverse(d);
        b.d = f16::from_f32(d);
        let t = |i: usize| trit(x[i] * id);
        for m in 0..32 {
            b.qs[m] = scale_to_byte(base3((0..5).map(|n| t(m + 32 * n))));
        }
        for m in 0..16 {
            b.qs[32 + m] = scale_to_byte(base3((0..5).map(|n| t(160 + m + 16 * n))));
        }
        for j in 0..4 {
            // Four digits, then a zero fifth digit so the first one is the leading digit.
            let q = base3((0..4).map(|n| t(240 + j + 4 * n)));
            b.qh[j] = scale_to_byte(q.wrapping_mul(3));
        }
    }
}

/// TQ1_0 -> f32: `(t - 1) * d`.
pub fn dequantize_row_tq1_0(x: &[BlockTQ1_0], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let value = |byte: u8, n: usize| (tq1_digit(byte, n) - 1) as f32 * d;
        for n in 0..5 {
            for m in 0..32 {
                y[32 * n + m] = value(b.qs[m], n);
            }
        }
        for n in 0..5 {
            for m in 0..16 {
                y[160 + 16 * n + m] = value(b.qs[32 + m], n);
            }
        }
        for n in 0..4 {
            for j in 0..4 {
                y[240 + 4 * n + j] = value(b.qh[j], n);
            }
        }
    }
}

/// TQ2_0: `d = amax`, trits `round(x / d) + 1`, 2 bits each, see [`BlockTQ2_0`].
pub fn quantize_row_tq2_0(x: &[f32], y: &mut [BlockTQ2_0]) {
    assert_blocks(x.len(), y.len(), QK_K);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        let d = amax_of(x);
        let id = inverse(d);
        b.d = f16::from_f32(d);
        for (c, x) in x.chunks_exact(128).enumerate() {
            for m in 0..32 {
                b.qs[32 * c + m] =
                    (0..4).fold(0u8, |q, l| q | ((trit(x[32 * l + m] * id) & 3) << (2 * l)));
            }
        }
    }
}

/// TQ2_0 -> f32: `(t - 1) * d`.
pub fn dequantize_row_tq2_0(x: &[BlockTQ2_0], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK_K);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for (c, y) in y.chunks_exact_mut(128).enumerate() {
            for l in 0..4 {
                for m in 0..32 {
                    let t = (b.qs[32 * c + m] >> (2 * l)) & 3;
                    y[32 * l + m] = (t as i32 - 1) as f32 * d;
                }
            }
        }
    }
}

/// Half the value of an E8M0 scale, `2^(e - 128)` (ggml's `GGML_E8M0_TO_FP32_HALF`): subnormal
/// for `e` 0 and 1, never zero, `2^127` at most.
#[inline]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        (e as u32 - 1) << 23
    };
    f32::from_bits(bits)
}

/// C's `(uint8_t)v` for a float as x86 compilers emit it: truncate to a 32-bit integer (out of
/// range and NaN give `i32::MIN`), keep the low byte.
#[inline]
fn c_f32_to_u8(v: f32) -> u8 {
    let i = if v > -2_147_483_904.0 && v < 2_147_483_648.0 {
        v as i32
    } else {
        i32::MIN
    };
    i as u8
}

/// The MXFP4 index whose `kvalue * d` is closest to `v` (the first one on ties).
#[inline]
fn best_index_mxfp4(v: f32, d: f32) -> u8 {
    let err = |i: usize| (KVALUES_MXFP4[i] as f32 * d - v).abs();
    let (mut best, mut best_err) = (0, err(0));
    for i in 1..16 {
        let e = err(i);
        if e < best_err {
            (best, best_err) = (i, e);
        }
    }
    best as u8
}

/// MXFP4: `e = floor(log2(amax)) + 125` (0 for an all-zero block), `d = 2^(e - 128)`, each value
/// the nearest `kvalue * d`.
pub fn quantize_row_mxfp4(x: &[f32], y: &mut [BlockMXFP4]) {
    assert_blocks(x.len(), y.len(), QK);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = x
            .iter()
            .fold(0.0f32, |m, v| if m < v.abs() { v.abs() } else { m });
        // log2 is the C library's log2f, as in ggml (it rounds up to the next integer for
        // values just below a large power of two, and floor follows it).
        b.e = if amax > 0.0 {
            c_f32_to_u8(amax.log2().floor() - 2.0 + 127.0)
        } else {
            0
        };
        let d = e8m0_to_f32_half(b.e);
        for j in 0..QK / 2 {
            b.qs[j] = best_index_mxfp4(x[j], d) | (best_index_mxfp4(x[j + QK / 2], d) << 4);
        }
    }
}

/// MXFP4 -> f32: `kvalue[q] * 2^(e - 128)`.
pub fn dequantize_row_mxfp4(x: &[BlockMXFP4], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = e8m0_to_f32_half(b.e);
        for j in 0..QK / 2 {
            y[j] = KVALUES_MXFP4[(b.qs[j] & 0x0f) as usize] as f32 * d;
            y[j + QK / 2] = KVALUES_MXFP4[(b.qs[j] >> 4) as usize] as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytemuck::Zeroable;

    use super::*;

    fn tq1(x: &[f32]) -> (Vec<BlockTQ1_0>, Vec<f32>) {
        let mut q = vec![BlockTQ1_0::zeroed(); x.len() / QK_K];
        quantize_row_tq1_0(x, &mut q);
        let mut y = vec![f32::NAN; x.len()];
        dequantize_row_tq1_0(&q, &mut y);
        (q, y)
    }

    fn tq2(x: &[f32]) -> (Vec<BlockTQ2_0>, Vec<f32>) {
        let mut q = vec![BlockTQ2_0::zeroed(); x.len() / QK_K];
        quantize_row_tq2_0(x, &mut q);
        let mut y = vec![f32::NAN; x.len()];
        dequantize_row_tq2_0(&q, &mut y);
        (q, y)
    }

    fn mxfp4(x: &[f32]) -> (Vec<BlockMXFP4>, Vec<f32>) {
        let mut q = vec![BlockMXFP4::zeroed(); x.len() / QK];
        quantize_row_mxfp4(x, &mut q);
        let mut y = vec![f32::NAN; x.len()];
        dequantize_row_mxfp4(&q, &mut y);
        (q, y)
    }

    /// A deterministic ternary pattern (0, 1, 2 for -1, 0, +1) that is not periodic in 3.
    fn ternary_pattern(n: usize) -> Vec<i32> {
        (0..n)
            .map(|i| ((i * 7 + i / 5 + i / 37) % 3) as i32)
            .collect()
    }

    fn assert_all_positive_zero(y: &[f32]) {
        assert!(y.iter().all(|v| v.to_bits() == 0), "expected only +0.0");
    }

    #[test]
    fn tq1_0_digit_extraction_inverts_the_byte_packing() {
        // Every 5-digit base-3 number survives ceil(q * 256 / 243) and the digit read-back.
        for q in 0..243u16 {
            let byte = scale_to_byte(q as u8);
            let digits: Vec<i32> = (0..5).map(|n| tq1_digit(byte, n)).collect();
            let back = digits.iter().fold(0, |acc, &t| acc * 3 + t);
            assert_eq!(back, q as i32, "q {q} -> byte {byte} -> digits {digits:?}");
        }
    }

    #[test]
    fn ternary_blocks_round_trip_exactly_in_both_formats() {
        let pattern = ternary_pattern(2 * QK_K);
        for scale in [
            1.0f32,
            0.375,
            65504.0,
            6.1035156e-5, /* smallest normal f16 */
        ] {
            let x: Vec<f32> = pattern.iter().map(|&t| (t - 1) as f32 * scale).collect();
            let (q1, y1) = tq1(&x);
            let (q2, y2) = tq2(&x);
            assert_eq!(q1[0].d.to_f32(), scale);
            assert_eq!(q2[0].d.to_f32(), scale);
            assert_eq!(y1, x, "TQ1_0 scale {scale}");
            assert_eq!(y2, x, "TQ2_0 scale {scale}");
        }
    }

    #[test]
    fn ternary_rounding_is_half_away_from_zero() {
        // x / d = ±0.5 exactly: lroundf gives ±1, not 0 (round half to even would give 0).
        let mut x = vec![0.0f32; QK_K];
        x[0] = 2.0;
        x[1] = 1.0;
        x[2] = -1.0;
        // Just below 0.5: rounds to 0 (adding 0.5 then truncating would give 1 in f32).
        x[3] = 0.99999994;
        let (_, y1) = tq1(&x);
        let (_, y2) = tq2(&x);
        for y in [y1, y2] {
            assert_eq!(&y[..4], &[2.0, 2.0, -2.0, 0.0]);
            assert_all_positive_zero(&y[4..]);
        }
    }

    #[test]
    fn all_zero_blocks_have_zero_scales_and_decode_to_positive_zero() {
        for x in [vec![0.0f32; QK_K], vec![-0.0f32; QK_K]] {
            let (q1, y1) = tq1(&x);
            let (q2, y2) = tq2(&x);
            assert_eq!(q1[0].d.to_bits(), 0);
            assert_eq!(q2[0].d.to_bits(), 0);
            // Every trit is 1 (zero): five 1-digits, 11111 in base 3 = 121; in qh 1111 then 0.
            assert!(q1[0].qs.iter().all(|&b| b == scale_to_byte(121)));
            assert!(q1[0].qh.iter().all(|&b| b == scale_to_byte(120)));
            assert!(q2[0].qs.iter().all(|&b| b == 0b01_01_01_01));
            assert_all_positive_zero(&y1);
            assert_all_positive_zero(&y2);

            let (qm, ym) = mxfp4(&x[..QK]);
            assert_eq!((qm[0].e, qm[0].qs), (0, [0; QK / 2]));
            assert_all_positive_zero(&ym);
        }
    }

    #[test]
    fn ternary_blocks_whose_inverse_scale_overflows_quantize_like_zero_blocks() {
        // amax = 1e-39: 1/amax is +inf in f32, x * id is inf or NaN; ggml stores trit 1.
        let mut x = vec![0.0f32; QK_K];
        x[3] = 1e-39;
        x[7] = -5e-40;
        let zero = vec![0.0f32; QK_K];
        assert_eq!(tq1(&x).0[0].qs, tq1(&zero).0[0].qs);
        assert_eq!(tq1(&x).0[0].qh, tq1(&zero).0[0].qh);
        assert_eq!(tq2(&x).0[0].qs, tq2(&zero).0[0].qs);
        assert_all_positive_zero(&tq1(&x).1);
        assert_all_positive_zero(&tq2(&x).1);
    }

    #[test]
    fn ternary_extremes_within_f16_range_decode_without_nan() {
        let mut x: Vec<f32> = (0..QK_K).map(|i| (i as f32 - 128.0) * 511.0).collect();
        x[5] = 65504.0;
        x[6] = -65504.0;
        x[7] = 1e-45;
        for y in [tq1(&x).1, tq2(&x).1] {
            assert!(y.iter().all(|v| v.is_finite()));
            assert_eq!((y[5], y[6], y[7]), (65504.0, -65504.0, 0.0));
        }
    }

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        for e in 0..=255u8 {
            assert_eq!(
                e8m0_to_f32_half(e) as f64,
                2f64.powi(e as i32 - 128),
                "e = {e}"
            );
        }
    }

    #[test]
    fn mxfp4_represents_its_own_grid_exactly() {
        // The e2m1 values (0, ±0.5 ... ±6) times 2^s, with 6 * 2^s as the block maximum.
        for s in [-126i32, -3, 0, 5, 120] {
            let p = 2f32.powi(s);
            let x: Vec<f32> = (0..QK)
                .map(|i| KVALUES_MXFP4[i % 16] as f32 * 0.5 * p)
                .collect();
            let (q, y) = mxfp4(&x);
            assert_eq!(q[0].e as i32, s + 127, "2^{s}");
            assert_eq!(y, x, "2^{s}");
        }
    }

    #[test]
    fn mxfp4_picks_the_first_of_equally_close_values() {
        // With amax = 6 (e = 127, d = 0.5): 2.5 lies between 2 (index 4) and 3 (index 5).
        let mut x = [0.0f32; QK];
        x[0] = 6.0;
        x[1] = 2.5;
        x[2] = -2.5;
        x[3] = -0.0;
        let (q, y) = mxfp4(&x);
        assert_eq!(q[0].e, 127);
        assert_eq!(
            (q[0].qs[1] & 0x0f, q[0].qs[2] & 0x0f, q[0].qs[3] & 0x0f),
            (4, 12, 0)
        );
        assert_eq!(&y[..4], &[6.0, 2.0, -2.0, 0.0]);
    }

    #[test]
    fn mxfp4_extremes_decode_finite_and_tiny_exponents_wrap_like_ggml() {
        let mut x = [0.0f32; QK];
        x[0] = f32::MAX;
        x[1] = -3e38;
        x[2] = 1.0;
        let (q, y) = mxfp4(&x);
        assert_eq!(q[0].e, 253);
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!((y[0], y[1]), (6.0 * 2f32.powi(125), -6.0 * 2f32.powi(125)));

        // amax = 2^-140: floor(log2) - 2 + 127 = -15, which C's (uint8_t) turns into 241.
        let mut x = [0.0f32; QK];
        x[0] = 2f32.powi(-140);
        let (q, y) = mxfp4(&x);
        assert_eq!(q[0].e, 241);
        assert_all_positive_zero(&y);

        // amax = +inf: the conversion of +inf gives 0.
        x[0] = f32::INFINITY;
        assert_eq!(mxfp4(&x).0[0].e, 0);
    }
}
