//! k-quants reference (Q2_K..Q6_K, Q8_K). PLACEHOLDER being written right now; replaced before commit.
#![allow(unused_variables)]
use crate::block::*;
macro_rules! todo_k { ($($q:ident $d:ident $b:ty),*) => {$(
    /// Placeholder.
    pub fn $q(x: &[f32], y: &mut [$b]) { unimplemented!() }
    /// Placeholder.
    pub fn $d(x: &[$b], y: &mut [f32]) { unimplemented!() }
)*}}
todo_k!(quantize_row_q2_k dequantize_row_q2_k BlockQ2_K, quantize_row_q3_k dequantize_row_q3_k BlockQ3_K,
        quantize_row_q4_k dequantize_row_q4_k BlockQ4_K, quantize_row_q5_k dequantize_row_q5_k BlockQ5_K,
        quantize_row_q6_k dequantize_row_q6_k BlockQ6_K, quantize_row_q8_k dequantize_row_q8_k BlockQ8_K);
