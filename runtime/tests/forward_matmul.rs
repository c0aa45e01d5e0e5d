//! `matmul` for every weight type and every kernel set of this CPU, against a float64 oracle
//! built from quant's reference dequantizers: the weights dequantized, the activations
//! quantized and dequantized with the reference quantizer of the dot format of that weight type.

use bytemuck::Zeroable;
use cinder::matmul::{MatmulScratch, matmul};
use cinder::weights::{MATRIX_TYPES, Tensor};
use cinder_kernels::Kernels;
use cinder_quant::GgmlType;
use cinder_quant::block::BlockQ8_0;
use cinder_quant::reference::{dequantize, quantize};

/// Deterministic values in [-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// The activation format the dot product of weight type `ty` uses (with `llamacpp`, F16 and
/// BF16 weights dot with activations rounded to f16 / bf16, as in llama.cpp).
fn act_type(ty: GgmlType, llamacpp: bool) -> GgmlType {
    use GgmlType as T;
    match ty {
        T::F16 if llamacpp => T::F16,
        T::BF16 if llamacpp => T::BF16,
        T::Q4_0 | T::Q5_0 | T::Q8_0 => T::Q8_0,
        T::Q4_1 | T::Q5_1 => T::Q8_1,
        T::Q2_K | T::Q3_K | T::Q4_K | T::Q5_K | T::Q6_K => T::Q8_K,
        _ => T::F32,
    }
}

/// Round trip through type `ty` with the reference code.
fn through(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let mut q = vec![0u8; ty.row_bytes(x.len()).expect("whole blocks")];
    quantize(ty, x, &mut q).expect("quantize");
    let mut y = vec![0f32; x.len()];
    dequantize(ty, &q, &mut y).expect("dequantize");
    y
}

/// Round trip through Q8_0 as llama.cpp's CPU kernels quantize activations.
fn through_q8_0_llamacpp(x: &[f32]) -> Vec<f32> {
    let mut q = vec![BlockQ8_0::zeroed(); x.len() / 32];
    cinder::matmul::quantize_row_q8_0_llamacpp(x, &mut q);
    q.iter()
        .flat_map(|b| b.qs.map(|v| f32::from(v) * b.d.to_f32()))
        .collect()
}

/// One test in this binary: it switches the process-wide `set_llamacpp_rounding`.
#[test]
fn matmul_matches_reference_dot_products_for_every_type_batch_size_and_isa() {
    for llamacpp in [false, true] {
        cinder::matmul::set_llamacpp_rounding(llamacpp);
        // 70: a partial chunk of rows; 64: whole 16-row strips, repacked where the kernels
        // prefer it. 512: two k-quant super-blocks.
        for (rows, repack) in [(70, false), (64, true)] {
            check_every_type(rows, 512, repack, llamacpp);
        }
    }
}

fn check_every_type(rows: usize, cols: usize, repack: bool, llamacpp: bool) {
    for &ty in MATRIX_TYPES {
        let w = noise(rows * cols, ty.id().into());
        // The weight bytes in an 8-byte aligned buffer, like tensor data in a mapped file.
        let row_bytes = ty.row_bytes(cols).expect("row");
        let mut words = vec![0u64; (rows * row_bytes).div_ceil(8)];
        let file: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        quantize(ty, &w, &mut file[..rows * row_bytes]).expect("quantize weights");
        let file: &[u8] = file;
        let plain = Tensor::from_parts("w", ty, rows, cols, 0..rows * row_bytes);
        let mut repacked = plain.clone();
        if repack {
            let done = repacked.repack(file).expect("repack");
            assert_eq!(
                done,
                matches!(
                    ty,
                    GgmlType::Q4_0
                        | GgmlType::Q8_0
                        | GgmlType::Q4_K
                        | GgmlType::Q5_K
                        | GgmlType::Q6_K
                ),
                "{ty}: repack"
            );
        }
        let mut wd = vec![0f32; rows * cols];
        dequantize(ty, &file[..rows * row_bytes], &mut wd).expect("dequantize weights");

        for n in [1usize, 5, 12] {
            let x = noise(n * cols, 1000 + n as u64);
            // Q8_1 also stores s = d * sum(q) as f16, which the Q4_1/Q5_1 dot products use for
            // the block minimum: that rounding (2^-11 relative per block) is in the format.
            let act = act_type(ty, llamacpp);
            let tol = if act == GgmlType::Q8_1 { 1e-4 } else { 1e-5 };
            let xa: Vec<f32> = x
                .chunks(cols)
                .flat_map(|r| {
                    if llamacpp && act == GgmlType::Q8_0 {
                        through_q8_0_llamacpp(r)
                    } else {
                        through(act, r)
                    }
                })
                .collect();
            for isa in Kernels::available() {
                let k = Kernels::new(isa).expect("available");
                // Repacked weights are only given to kernels that prefer them (as Model does).
                let t = if k.prefers_strips() {
                    &repacked
                } else {
                    &plain
                };
                let mut s = MatmulScratch::new(16, cols, rows);
                let mut out = vec![f32::NAN; n * rows];
                matmul(&k, file, t, &x, &mut out, &mut s).expect("matmul");
                for tok in 0..n {
                    for r in 0..rows {
                        let (wr, xr) = (
                            &wd[r * cols..(r + 1) * cols],
                            &xa[tok * cols..(tok + 1) * cols],
                        );
                        let want: f64 = wr
                            .iter()
                            .zip(xr)
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum();
                        let scale: f64 = wr
                            .iter()
                            .zip(xr)
                            .map(|(&a, &b)| f64::from(a * b).abs())
                            .sum();
                        let got = f64::from(out[tok * rows + r]);
                        assert!(
                            (got - want).abs() <= tol * scale + 1e-6,
                            "{ty} {isa} rows={rows} n={n} llamacpp={llamacpp} token {tok} row {r}: got {got}, want {want} (scale {scale})"
                        );
                    }
                }
            }
        }
    }
}

/// llama.cpp's activation rule rounds ties to even where the reference rounds them away from
/// zero (amax 127 makes the multiplier exactly 1, so 2.5 is a true tie).
#[test]
fn llamacpp_q8_0_rounds_ties_to_even() {
    let mut x = [0.0f32; 32];
    x[..6].copy_from_slice(&[127.0, 2.5, -2.5, 0.5, 1.5, -126.5]);
    let mut q = [BlockQ8_0::zeroed()];
    cinder::matmul::quantize_row_q8_0_llamacpp(&x, &mut q);
    assert_eq!(q[0].qs[..6], [127, 2, -2, 0, 2, -126]);
    assert_eq!(q[0].d.to_f32(), half::f16::from_f32(1.0).to_f32());
    let mut r = vec![0u8; GgmlType::Q8_0.row_bytes(32).expect("row")];
    quantize(GgmlType::Q8_0, &x, &mut r).expect("quantize");
    let rq: Vec<i8> = r[2..8].iter().map(|&b| b as i8).collect();
    assert_eq!(
        rq,
        [127, 3, -3, 1, 2, -127],
        "the reference rule differs on ties"
    );
}
