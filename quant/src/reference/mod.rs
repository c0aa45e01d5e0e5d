//! Scalar reference quantizers and dequantizers, bit-exact with ggml's `*_ref` functions.
//!
//! Per type there is `quantize_row_<type>(x: &[f32], y: &mut [Block])` and
//! `dequantize_row_<type>(x: &[Block], y: &mut [f32])`; both assert that
//! `x.len() == y.len() * block_size` (or the reverse). [`quantize`] and [`dequantize`] do the
//! same by [`GgmlType`] over raw (possibly unaligned) tensor bytes.

mod kquants;
mod simple;
mod ternary_mx;

pub use kquants::*;
pub use simple::*;
pub use ternary_mx::*;

use bytemuck::Pod;

use crate::dtype::GgmlType;
use crate::error::{Error, Result};

fn check_len(ty: GgmlType, values: usize, bytes: usize) -> Result<()> {
    let (block, size) = (ty.block_size(), ty.type_size());
    if !values.is_multiple_of(block) || values / block * size != bytes {
        return Err(Error::RowLength {
            ty,
            values,
            bytes,
            block,
            size,
        });
    }
    Ok(())
}

/// Quantize `src` with `f` into `dst` (raw bytes, any alignment).
fn quantize_with<B: Pod>(src: &[f32], dst: &mut [u8], f: fn(&[f32], &mut [B])) {
    let mut blocks = vec![B::zeroed(); dst.len() / std::mem::size_of::<B>()];
    f(src, &mut blocks);
    dst.copy_from_slice(bytemuck::cast_slice(&blocks));
}

/// Dequantize raw bytes (any alignment) with `f`.
fn dequantize_with<B: Pod>(src: &[u8], dst: &mut [f32], f: fn(&[B], &mut [f32])) {
    match bytemuck::try_cast_slice::<u8, B>(src) {
        Ok(blocks) => f(blocks, dst),
        Err(_) => {
            let blocks: Vec<B> = src
                .chunks_exact(std::mem::size_of::<B>())
                .map(bytemuck::pod_read_unaligned)
                .collect();
            f(&blocks, dst)
        }
    }
}

/// Quantize `src` to type `ty`, writing exactly `dst.len()` bytes as GGUF stores them.
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    check_len(ty, src.len(), dst.len())?;
    use GgmlType as T;
    match ty {
        T::F32 => dst.copy_from_slice(bytemuck::cast_slice(src)),
        T::F16 => quantize_with(src, dst, quantize_row_f16),
        T::BF16 => quantize_with(src, dst, quantize_row_bf16),
        T::Q4_0 => quantize_with(src, dst, quantize_row_q4_0),
        T::Q4_1 => quantize_with(src, dst, quantize_row_q4_1),
        T::Q5_0 => quantize_with(src, dst, quantize_row_q5_0),
        T::Q5_1 => quantize_with(src, dst, quantize_row_q5_1),
        T::Q8_0 => quantize_with(src, dst, quantize_row_q8_0),
        T::Q8_1 => quantize_with(src, dst, quantize_row_q8_1),
        T::Q2_K => quantize_with(src, dst, quantize_row_q2_k),
        T::Q3_K => quantize_with(src, dst, quantize_row_q3_k),
        T::Q4_K => quantize_with(src, dst, quantize_row_q4_k),
        T::Q5_K => quantize_with(src, dst, quantize_row_q5_k),
        T::Q6_K => quantize_with(src, dst, quantize_row_q6_k),
        T::Q8_K => quantize_with(src, dst, quantize_row_q8_k),
        T::TQ1_0 => quantize_with(src, dst, quantize_row_tq1_0),
        T::TQ2_0 => quantize_with(src, dst, quantize_row_tq2_0),
        T::MXFP4 => quantize_with(src, dst, quantize_row_mxfp4),
        _ => {
            return Err(Error::NoReference {
                op: "quantizer",
                ty,
            });
        }
    }
    Ok(())
}

/// Dequantize `src` (raw bytes of type `ty`, any alignment) into `dst`.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_len(ty, dst.len(), src.len())?;
    use GgmlType as T;
    match ty {
        T::F32 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        T::F16 => dequantize_with(src, dst, dequantize_row_f16),
        T::BF16 => dequantize_with(src, dst, dequantize_row_bf16),
        T::Q4_0 => dequantize_with(src, dst, dequantize_row_q4_0),
        T::Q4_1 => dequantize_with(src, dst, dequantize_row_q4_1),
        T::Q5_0 => dequantize_with(src, dst, dequantize_row_q5_0),
        T::Q5_1 => dequantize_with(src, dst, dequantize_row_q5_1),
        T::Q8_0 => dequantize_with(src, dst, dequantize_row_q8_0),
        T::Q8_1 => dequantize_with(src, dst, dequantize_row_q8_1),
        T::Q2_K => dequantize_with(src, dst, dequantize_row_q2_k),
        T::Q3_K => dequantize_with(src, dst, dequantize_row_q3_k),
        T::Q4_K => dequantize_with(src, dst, dequantize_row_q4_k),
        T::Q5_K => dequantize_with(src, dst, dequantize_row_q5_k),
        T::Q6_K => dequantize_with(src, dst, dequantize_row_q6_k),
        T::Q8_K => dequantize_with(src, dst, dequantize_row_q8_k),
        T::TQ1_0 => dequantize_with(src, dst, dequantize_row_tq1_0),
        T::TQ2_0 => dequantize_with(src, dst, dequantize_row_tq2_0),
        T::MXFP4 => dequantize_with(src, dst, dequantize_row_mxfp4),
        _ => {
            return Err(Error::NoReference {
                op: "dequantizer",
                ty,
            });
        }
    }
    Ok(())
}

/// Asserts that `values` f32 fill exactly `blocks` blocks of `block` values.
#[track_caller]
pub(crate) fn assert_blocks(values: usize, blocks: usize, block: usize) {
    assert_eq!(
        values,
        blocks * block,
        "row of {values} values does not fill {blocks} blocks of {block}"
    );
}

/// ggml's `nearest_int`: round to nearest, ties to even, for |x| < 2^22.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    debug_assert!(x.abs() <= 4_194_303.0);
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}
