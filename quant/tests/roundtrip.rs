//! Round-trip error bounds for every reference type, as ggml's test-quantize-fns measures them
//! (signal `0.1 + 2 cos(i)`, 4096 values, error `sqrt(sum (x - y)^2) / n`). This is the check for
//! the types the bit-exact fixtures lack (Q8_1, Q8_K, F32) and a second net for the others.

use cinder_quant::GgmlType;
use cinder_quant::reference::{dequantize, quantize};

fn ggml_test_signal(n: usize) -> Vec<f32> {
    (0..n).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect()
}

/// ggml's limits: 0.002 in general (MXFP4 included), 0.01 for the ternary types, 0.0075 for
/// 2-bit, 0.0040 for 3-bit types.
fn max_error(ty: GgmlType) -> f64 {
    match ty {
        GgmlType::TQ1_0 | GgmlType::TQ2_0 => 0.01,
        GgmlType::Q2_K => 0.0075,
        GgmlType::Q3_K => 0.0040,
        _ => 0.002,
    }
}

#[test]
fn every_reference_type_round_trips_within_ggml_error_bounds() {
    let x = ggml_test_signal(4096);
    for &ty in GgmlType::ALL.iter().filter(|t| t.has_reference()) {
        let mut q = vec![0u8; ty.bytes_for(x.len() as u64).unwrap() as usize];
        quantize(ty, &x, &mut q).unwrap();
        let mut y = vec![0f32; x.len()];
        dequantize(ty, &q, &mut y).unwrap();
        let sum: f64 = x
            .iter()
            .zip(&y)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let err = sum.sqrt() / x.len() as f64;
        assert!(
            err < max_error(ty),
            "{ty}: round-trip error {err:e} >= {:e}",
            max_error(ty)
        );
        if ty == GgmlType::F32 {
            assert_eq!(x, y, "F32 must round-trip exactly");
        }
    }
}

#[test]
fn q8_1_sum_field_is_scale_times_sum_of_quants() {
    let x = ggml_test_signal(64);
    let mut y = [cinder_quant::block::BlockQ8_1 {
        d: Default::default(),
        s: Default::default(),
        qs: [0; 32],
    }; 2];
    cinder_quant::reference::quantize_row_q8_1(&x, &mut y);
    for b in &y {
        let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
        let want = half::f16::from_f32(sum as f32 * (b.d.to_f32()));
        // s uses the unrounded d, so allow one f16 step of difference from the rounded one.
        assert!((b.s.to_f32() - want.to_f32()).abs() <= want.to_f32().abs() * 2e-3 + 1e-6);
    }
}

#[test]
fn mismatched_lengths_are_errors_not_panics() {
    let x = [0f32; 33];
    let mut out = [0u8; 18];
    assert!(quantize(GgmlType::Q4_0, &x, &mut out).is_err());
    assert!(quantize(GgmlType::Q4_0, &x[..32], &mut out[..17]).is_err());
    let mut y = [0f32; 32];
    assert!(dequantize(GgmlType::IQ2_XXS, &[0u8; 66], &mut y).is_err());
}
