//! NEON + dotprod + i8mm kernels: the Q4_0 and Q8_0 strip gemms on `smmla` (2 rows x 8 bytes
//! by 8 bytes x 2 columns per instruction, [`super::strips`]); every other kernel is the
//! [`super::dotprod`] one (every CPU with i8mm that this set accepts also has dotprod).

use cinder_quant::block::BlockQ8_0;

pub(crate) use super::dotprod::{
    dequantize_row_f16, dequantize_row_q4_0, dequantize_row_q6_k, dequantize_row_q8_0, exp_sum,
    gemm_f32_f16, gemm_f32_f32, gemm_q4_0_q8_0, gemm_q4_k_q8_k, gemm_q4_kx16_q8_k,
    gemm_q5_kx16_q8_k, gemm_q6_kx16_q8_k, gemm_q8_0_q8_0, quantize_row_q8_0, quantize_row_q8_1,
    quantize_row_q8_k, silu_mul, vec_dot_f16_f32, vec_dot_f32_f32, vec_dot_q2_k_q8_k,
    vec_dot_q3_k_q8_k, vec_dot_q4_0_q8_0, vec_dot_q4_1_q8_1, vec_dot_q4_k_q8_k, vec_dot_q5_0_q8_0,
    vec_dot_q5_1_q8_1, vec_dot_q5_k_q8_k, vec_dot_q6_k_q8_k, vec_dot_q8_0_q8_0,
};

kernels! { "neon,dotprod,i8mm";
    gemm_q4_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::strips_body::<super::strips::Q4_0, { super::strips::MMLA }>;
    gemm_q8_0x16_q8_0(q: &[crate::repack::Lanes], d: &[crate::repack::Scales16], a: &[BlockQ8_0], nb: usize, out: &mut [f32], ldo: usize) = super::strips::strips_body::<super::strips::Q8_0, { super::strips::MMLA }>;
}
