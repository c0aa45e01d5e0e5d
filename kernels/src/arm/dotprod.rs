//! NEON + dotprod kernels: the [`super::neon`] bodies with `DOT = true`, so every integer
//! product of signed bytes (the 32-value dots, the k-quant dots and both gemms) runs on `sdot`.
//! Quantizers, dequantizers and float dots have no byte products: they are the NEON bodies,
//! compiled under this feature set.

use cinder_quant::block::*;
use half::f16;

use super::neon::{self, Q4_0Tile, Q8_0Tile};

kernels! { "neon,dotprod";
    quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) = neon::quantize_row_q8_0_body;
    quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) = neon::quantize_row_q8_1_body;
    quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) = neon::quantize_row_q8_k_body;
    vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 = neon::vec_dot_q4_0_q8_0_body::<true>;
    vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 = neon::vec_dot_q5_0_q8_0_body::<true>;
    vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 = neon::vec_dot_q8_0_q8_0_body::<true>;
    vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 = neon::vec_dot_q4_1_q8_1_body::<true>;
    vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 = neon::vec_dot_q5_1_q8_1_body::<true>;
    vec_dot_q2_k_q8_k(x: &[BlockQ2_K], y: &[BlockQ8_K]) -> f32 = neon::vec_dot_q2_k_q8_k_body::<true>;
    vec_dot_q3_k_q8_k(x: &[BlockQ3_K], y: &[BlockQ8_K]) -> f32 = neon::vec_dot_q3_k_q8_k_body::<true>;
    vec_dot_q4_k_q8_k(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 = neon::vec_dot_q4_k_q8_k_body::<true>;
    vec_dot_q5_k_q8_k(x: &[BlockQ5_K], y: &[BlockQ8_K]) -> f32 = neon::vec_dot_q5_k_q8_k_body::<true>;
    vec_dot_q6_k_q8_k(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 = neon::vec_dot_q6_k_q8_k_body::<true>;
    vec_dot_f16_f32(x: &[f16], y: &[f32]) -> f32 = neon::vec_dot_f16_f32_body;
    vec_dot_f32_f32(x: &[f32], y: &[f32]) -> f32 = neon::vec_dot_f32_f32_body;
    gemm_q4_0_q8_0(w: &[BlockQ4_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = neon::gemm_body::<Q4_0Tile, true, 4>;
    gemm_q8_0_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = neon::gemm_body::<Q8_0Tile, true, 4>;
    gemm_q4_k_q8_k(w: &[BlockQ4_K], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = neon::gemm_q4_k_q8_k_body::<true>;
    dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) = neon::dequantize_row_q4_0_body;
    dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) = neon::dequantize_row_q8_0_body;
    dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) = neon::dequantize_row_q6_k_body;
    dequantize_row_f16(x: &[f16], y: &mut [f32]) = neon::dequantize_row_f16_body;
    gemm_f32_f16(a: &[f32], b: &[f16], c: &mut [f32], s: crate::MatShape) = neon::gemm_f32_f16_body;
    gemm_f32_f32(a: &[f32], b: &[f32], c: &mut [f32], s: crate::MatShape) = neon::gemm_f32_f32_body;
    gemm_q4_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::strips_body::<super::strips::Q4_0, { super::strips::DOT }>;
    gemm_q8_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::strips_body::<super::strips::Q8_0, { super::strips::DOT }>;
    gemm_q4_kx16_q8_k(w: &[crate::repack::BlockQ4_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<super::strips::Q4K<crate::repack::BlockQ4_Kx16, { super::strips::DOT }>>;
    gemm_q5_kx16_q8_k(w: &[crate::repack::BlockQ5_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<super::strips::Q4K<crate::repack::BlockQ5_Kx16, { super::strips::DOT }>>;
    gemm_q6_kx16_q8_k(w: &[crate::repack::BlockQ6_Kx16], a: &[BlockQ8_K], nb: usize, out: &mut [f32], ldo: usize) = crate::strips::drive::<super::strips::Q6K<{ super::strips::DOT }>>;
    exp_sum(x: &mut [f32], shift: f32) -> f32 = super::exp_sum_body;
    silu_mul(g: &mut [f32], u: &[f32]) = super::silu_mul_body;
}
