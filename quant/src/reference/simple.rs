//! Reference quantizers of the float formats and the 32-value block formats.
//!
//! Each one follows ggml's `quantize_row_*_ref`: the scale is computed in f32 from the block's
//! values, `1/d` in f32 from the unrounded `d` (0 when `d` is 0), and `d` is rounded to f16 only
//! when stored.

use half::f16;

use super::assert_blocks;
use crate::block::*;

/// `1/d`, or 0 for an all-zero block (ggml's convention; never a division by zero).
#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// The value of largest magnitude, with its sign (the first one on ties), and that magnitude.
/// Starts from +0.0 like ggml, so an all-`-0.0` block gives `+0.0`.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// f32 -> f16, round to nearest even.
pub fn quantize_row_f16(x: &[f32], y: &mut [f16]) {
    assert_blocks(x.len(), y.len(), 1);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f16::from_f32(v);
    }
}

/// f16 -> f32 (exact).
pub fn dequantize_row_f16(x: &[f16], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), 1);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.to_f32();
    }
}

/// f32 -> bf16 as ggml does it: round to nearest even, NaN kept quiet.
pub fn fp32_to_bf16(v: f32) -> u16 {
    let u = v.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// bf16 -> f32 (exact).
pub fn bf16_to_fp32(v: u16) -> f32 {
    f32::from_bits((v as u32) << 16)
}

/// f32 -> bf16 (stored as raw u16), see [`fp32_to_bf16`].
pub fn quantize_row_bf16(x: &[f32], y: &mut [u16]) {
    assert_blocks(x.len(), y.len(), 1);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = fp32_to_bf16(v);
    }
}

/// bf16 (raw u16) -> f32.
pub fn dequantize_row_bf16(x: &[u16], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), 1);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = bf16_to_fp32(v);
    }
}

/// Q4_0: `d = max / -8` (signed max), `q = min(15, trunc(x/d + 8.5))`.
pub fn quantize_row_q4_0(x: &[f32], y: &mut [BlockQ4_0]) {
    assert_blocks(x.len(), y.len(), QK);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let (max, _) = signed_absmax(x);
        let d = max / -8.0;
        let id = inverse(d);
        b.d = f16::from_f32(d);
        for j in 0..QK / 2 {
            // x*id + 8.5 lies in [0.5, 16.5]: truncation toward zero is floor here.
            let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = ((x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Q4_0 -> f32: `d * (q - 8)`.
pub fn dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for j in 0..QK / 2 {
            y[j] = ((b.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// The minimum and maximum of a block, as ggml's Q4_1/Q5_1 quantizers find them.
#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Q4_1: `d = (max - min) / 15`, `m = min`, `q = min(15, trunc((x - min)/d + 0.5))`.
pub fn quantize_row_q4_1(x: &[f32], y: &mut [BlockQ4_1]) {
    assert_blocks(x.len(), y.len(), QK);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        b.d = f16::from_f32(d);
        b.m = f16::from_f32(min);
        for j in 0..QK / 2 {
            let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let q1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Q4_1 -> f32: `d * q + m`.
pub fn dequantize_row_q4_1(x: &[BlockQ4_1], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for j in 0..QK / 2 {
            y[j] = (b.qs[j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (b.qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// Q5_0: `d = max / -16` (signed max), `q = min(31, trunc(x/d + 16.5))`, bit 4 into `qh`.
pub fn quantize_row_q5_0(x: &[f32], y: &mut [BlockQ5_0]) {
    assert_blocks(x.len(), y.len(), QK);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let (max, _) = signed_absmax(x);
        let d = max / -16.0;
        let id = inverse(d);
        b.d = f16::from_f32(d);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let q0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
            let q1 = ((x[j + QK / 2] * id + 16.5) as i8).min(31) as u8;
            b.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// The 5-bit values `j` and `j + 16` of a Q5 block.
#[inline]
fn q5_pair(qs: &[u8; QK / 2], qh: u32, j: usize) -> (u8, u8) {
    let h0 = (((qh >> j) << 4) & 0x10) as u8;
    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
    ((qs[j] & 0x0f) | h0, (qs[j] >> 4) | h1)
}

/// Q5_0 -> f32: `d * (q - 16)`.
pub fn dequantize_row_q5_0(x: &[BlockQ5_0], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&b.qs, qh, j);
            y[j] = (q0 as i32 - 16) as f32 * d;
            y[j + QK / 2] = (q1 as i32 - 16) as f32 * d;
        }
    }
}

/// Q5_1: `d = (max - min) / 31`, `m = min`, `q = min(31, trunc((x - min)/d + 0.5))`.
pub fn quantize_row_q5_1(x: &[f32], y: &mut [BlockQ5_1]) {
    assert_blocks(x.len(), y.len(), QK);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        b.d = f16::from_f32(d);
        b.m = f16::from_f32(min);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let q0 = (((x[j] - min) * id + 0.5) as i8).min(31) as u8;
            let q1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(31) as u8;
            b.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// Q5_1 -> f32: `d * q + m`.
pub fn dequantize_row_q5_1(x: &[BlockQ5_1], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&b.qs, qh, j);
            y[j] = q0 as f32 * d + m;
            y[j + QK / 2] = q1 as f32 * d + m;
        }
    }
}

/// The Q8 core shared by Q8_0 and Q8_1: `d = amax / 127`, `q = round(x / d)` (half away from
/// zero, C's `roundf`). Returns `d` and the sum of the quants.
#[inline]
fn quantize_q8(x: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
        sum += *q as i32;
    }
    (d, sum)
}

/// Q8_0: `d = amax / 127`, `q = round(x / d)`.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_blocks(x.len(), y.len(), QK);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, _) = quantize_q8(x, &mut b.qs);
        b.d = f16::from_f32(d);
    }
}

/// Q8_0 -> f32: `d * q`.
pub fn dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Q8_1: as Q8_0, plus `s = d * sum(q)` (with the unrounded `d`).
pub fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    assert_blocks(x.len(), y.len(), QK);
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, sum) = quantize_q8(x, &mut b.qs);
        b.d = f16::from_f32(d);
        b.s = f16::from_f32(sum as f32 * d);
    }
}

/// Q8_1 -> f32: `d * q`.
pub fn dequantize_row_q8_1(x: &[BlockQ8_1], y: &mut [f32]) {
    assert_blocks(y.len(), x.len(), QK);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}
