//! Every kernel of every available Isa against its scalar twin, the scalar kernels against an
//! f64 dot of quant's reference dequantization, and the activation quantizers against quant's
//! reference bytes.
//!
//! Tolerances. Integer parts are exact, so kernels whose float part is the scalar twin's
//! expression (k-quants, Q5_0/Q4_1/Q5_1, quantizers, dequantizers) must be bit-equal. Kernels
//! that accumulate per-block terms in SIMD lanes (Q4_0, Q8_0, gemm, f16/f32, and Q4_K on
//! AVX-512, whose M counts its scale and min parts separately) sum the same
//! exact products in another order; any order of `n` additions of terms whose magnitudes sum
//! to `M` is within `n * eps * M` of the exact sum (eps = 2^-24), so two orders differ by at
//! most `2 * (n + 16) * eps * M` (16 covers the lane reductions). `M = sum |x_i * y_i|` over
//! the (exactly representable) dequantized values. A small absolute term covers underflow when
//! scales are subnormal.

use bytemuck::{Pod, Zeroable};
use cinder_kernels::{Isa, Kernels, KernelsError};
use cinder_quant::block::*;
use cinder_quant::dtype::QK_K;
use cinder_quant::reference as r;
use half::f16;
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64 / 2.0;

/// Kernel sets under test: every Isa this CPU runs (always includes Scalar).
fn all_kernels() -> Vec<Kernels> {
    let isas = Kernels::available();
    assert!(isas.contains(&Isa::Scalar));
    isas.into_iter()
        .map(|i| Kernels::new(i).unwrap_or_else(|| panic!("{i} listed but not constructible")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Generators.

/// f16 scales: ordinary, zero, subnormal, maximal, negative.
fn scale16() -> impl Strategy<Value = f16> {
    prop_oneof![
        6 => (-2.0f32..2.0).prop_map(f16::from_f32),
        1 => Just(f16::ZERO),
        1 => Just(f16::from_bits(1)),
        1 => Just(f16::from_bits(0x03FF)),
        1 => Just(f16::MAX),
        1 => Just(f16::MIN),
    ]
}

/// Q8_K f32 scales: ordinary, zero, tiny, and a large-ish one.
fn scale32() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -0.1f32..0.1,
        1 => Just(0.0f32),
        1 => Just(1e-38f32),
        1 => Just(f32::from_bits(1)),
        1 => Just(3.0f32),
    ]
}

/// Block bytes: random, or every byte 0x00, 0xFF, 0x80 (-128) or 0x7F (127).
fn block_bytes(size: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), size),
        1 => Just(vec![0x00; size]),
        1 => Just(vec![0xFF; size]),
        1 => Just(vec![0x80; size]),
        1 => Just(vec![0x7F; size]),
        1 => Just(vec![0x88; size]),
    ]
}

fn to_block<B: Pod>(bytes: &[u8]) -> B {
    bytemuck::pod_read_unaligned(bytes)
}

/// `n` blocks of `B` from adversarial bytes, then `fix` sets the scale fields.
fn blocks<B: Pod + std::fmt::Debug, S: Strategy + 'static>(
    n: impl Into<proptest::collection::SizeRange>,
    scales: S,
    fix: fn(&mut B, S::Value),
) -> impl Strategy<Value = Vec<B>>
where
    S::Value: std::fmt::Debug,
{
    let size = std::mem::size_of::<B>();
    proptest::collection::vec((block_bytes(size), scales), n).prop_map(move |v| {
        v.into_iter()
            .map(|(b, s)| {
                let mut blk: B = to_block(&b);
                fix(&mut blk, s);
                blk
            })
            .collect()
    })
}

fn s2() -> impl Strategy<Value = (f16, f16)> {
    (scale16(), scale16())
}

/// Q8_K activation with consistent `bsums` (as the quantizer makes them).
fn fix_q8k(b: &mut BlockQ8_K, d: f32) {
    b.d = d;
    for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = g.iter().map(|&q| q as i16).sum();
    }
}

/// Activation floats: ordinary values, exact halves (rounding ties), zeros, subnormals, huge.
fn floats(n: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(
        prop_oneof![
            8 => -4.0f32..4.0,
            2 => (-300i32..300).prop_map(|i| i as f32 * 0.5),
            1 => Just(0.0f32),
            1 => Just(-0.0f32),
            1 => Just(f32::from_bits(3)),
            1 => -1e30f32..1e30,
        ],
        n,
    )
}

/// Quantizer input: general floats, or a row whose largest magnitude is exactly 127 (so the
/// scale is +-1) filled with exact halves: every such value is a rounding tie.
fn quant_floats(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        floats(n),
        (
            proptest::collection::vec((-254i32..=254).prop_map(|i| i as f32 * 0.5), n),
            any::<bool>()
        )
            .prop_map(|(mut v, neg)| {
                for c in v.chunks_mut(32) {
                    c[0] = if neg { -127.0 } else { 127.0 };
                }
                v
            }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks.

fn deq<B: Pod>(f: fn(&[B], &mut [f32]), x: &[B], bs: usize) -> Vec<f64> {
    let mut out = vec![0.0f32; x.len() * bs];
    f(x, &mut out);
    out.into_iter().map(f64::from).collect()
}

/// `sum |d * sc * q_i * a_i| + sum |dmin * m * a_i|` of a Q4_K row against a Q8_K row: the
/// magnitude of the terms a Q4_K dot adds up (the two parts are separately exact in f32).
fn q4_k_magnitude(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f64 {
    let part = |f: fn(&mut BlockQ4_K)| {
        let mut x = x.to_vec();
        x.iter_mut().for_each(f);
        deq(r::dequantize_row_q4_k, &x, QK_K)
    };
    let a = deq(r::dequantize_row_q8_k, y, QK_K);
    mag(&part(|b| b.dmin = f16::ZERO), &a) + mag(&part(|b| b.d = f16::ZERO), &a)
}

/// `sum |x_i * y_i|` in f64.
fn mag(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    x.iter().zip(y).map(|(a, b)| (a * b).abs()).sum()
}

fn close(what: &str, isa: Isa, got: f32, want: f32, n: usize, m: f64) -> Result<(), TestCaseError> {
    let tol = 2.0 * (n as f64 + 16.0) * EPS * m + 1e-35 * (n as f64 + 1.0);
    let err = (got as f64 - want as f64).abs();
    prop_assert!(
        err <= tol || (got.is_nan() && want.is_nan()),
        "{what} on {isa}: got {got}, scalar {want}, |err| {err} > tol {tol}"
    );
    Ok(())
}

fn bit_equal(what: &str, isa: Isa, got: f32, want: f32) -> Result<(), TestCaseError> {
    prop_assert!(
        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
        "{what} on {isa}: got {got}, scalar {want} (must be bit-equal)"
    );
    Ok(())
}

/// What a gemm call may not write: every float of its output buffer outside its window.
const SENTINEL: f32 = -12345.5;

/// The output window of a gemm call over rows (`unit` 1) or 16-row strips (`unit` 16)
/// `min(a, b)..max(a, b)` of `cols` columns with `pad` extra floats per column, and the length
/// of a buffer that holds it and a margin (3 floats when the window is empty).
struct Window {
    lo: usize,
    hi: usize,
    n: usize,
    ldo: usize,
    len: usize,
    cols: usize,
}

impl Window {
    fn new((a, b): (usize, usize), unit: usize, pad: usize, cols: usize) -> Self {
        let (lo, hi) = (a.min(b), a.max(b));
        let n = (hi - lo) * unit;
        let ldo = n + pad;
        let len = if n == 0 {
            3
        } else {
            (cols - 1) * ldo + n + pad
        };
        Window {
            lo,
            hi,
            n,
            ldo,
            len,
            cols,
        }
    }

    /// `(column, row in the window)` of output float `i` when the call must write it.
    fn at(&self, i: usize) -> Option<(usize, usize)> {
        let (c, rr) = (i / self.ldo.max(1), i % self.ldo.max(1));
        (self.n > 0 && rr < self.n && c < self.cols).then_some((c, rr))
    }
}

/// Cases per property: 256 in optimised builds (the README's test command, and the aarch64
/// release run); 64 in unoptimised ones, which CI runs for aarch64 under qemu to prove the debug
/// build assembles and agrees, where the scalar twins are slow.
const CASES: u32 = if cfg!(debug_assertions) { 64 } else { 256 };

// ---------------------------------------------------------------------------------------------
// SIMD == scalar twin.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn q4_0_q8_0_every_isa_matches_scalar_within_reorder_bound(
        (x, y) in (1usize..=24).prop_flat_map(|n| (
            blocks::<BlockQ4_0, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ8_0, _>(n, scale16(), |b, d| b.d = d))),
    ) {
        let want = Kernels::scalar().vec_dot_q4_0_q8_0(&x, &y);
        let m = mag(&deq(r::dequantize_row_q4_0, &x, 32), &deq(r::dequantize_row_q8_0, &y, 32));
        for k in all_kernels() {
            close("vec_dot_q4_0_q8_0", k.isa(), k.vec_dot_q4_0_q8_0(&x, &y), want, x.len(), m)?;
        }
    }

    #[test]
    fn q8_0_q8_0_every_isa_matches_scalar_within_reorder_bound(
        (x, y) in (1usize..=24).prop_flat_map(|n| (
            blocks::<BlockQ8_0, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ8_0, _>(n, scale16(), |b, d| b.d = d))),
    ) {
        let want = Kernels::scalar().vec_dot_q8_0_q8_0(&x, &y);
        let m = mag(&deq(r::dequantize_row_q8_0, &x, 32), &deq(r::dequantize_row_q8_0, &y, 32));
        for k in all_kernels() {
            close("vec_dot_q8_0_q8_0", k.isa(), k.vec_dot_q8_0_q8_0(&x, &y), want, x.len(), m)?;
        }
    }

    #[test]
    fn q5_0_q4_1_q5_1_every_isa_bit_equal_to_scalar(
        (x50, x41, x51, y0, y1) in (1usize..=12).prop_flat_map(|n| (
            blocks::<BlockQ5_0, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ4_1, _>(n, s2(), |b, (d, m)| { b.d = d; b.m = m; }),
            blocks::<BlockQ5_1, _>(n, s2(), |b, (d, m)| { b.d = d; b.m = m; }),
            blocks::<BlockQ8_0, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ8_1, _>(n, s2(), |b, (d, s)| { b.d = d; b.s = s; }))),
    ) {
        let s = Kernels::scalar();
        for k in all_kernels() {
            bit_equal("q5_0_q8_0", k.isa(), k.vec_dot_q5_0_q8_0(&x50, &y0), s.vec_dot_q5_0_q8_0(&x50, &y0))?;
            bit_equal("q4_1_q8_1", k.isa(), k.vec_dot_q4_1_q8_1(&x41, &y1), s.vec_dot_q4_1_q8_1(&x41, &y1))?;
            bit_equal("q5_1_q8_1", k.isa(), k.vec_dot_q5_1_q8_1(&x51, &y1), s.vec_dot_q5_1_q8_1(&x51, &y1))?;
        }
    }

    #[test]
    fn k_quants_every_isa_bit_equal_to_scalar(
        (x2, x3, x4, x5, x6, y) in (1usize..=5).prop_flat_map(|n| (
            blocks::<BlockQ2_K, _>(n, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
            blocks::<BlockQ3_K, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ4_K, _>(n, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
            blocks::<BlockQ5_K, _>(n, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
            blocks::<BlockQ6_K, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ8_K, _>(n, scale32(), fix_q8k))),
    ) {
        let s = Kernels::scalar();
        for k in all_kernels() {
            let i = k.isa();
            bit_equal("q2_k_q8_k", i, k.vec_dot_q2_k_q8_k(&x2, &y), s.vec_dot_q2_k_q8_k(&x2, &y))?;
            bit_equal("q3_k_q8_k", i, k.vec_dot_q3_k_q8_k(&x3, &y), s.vec_dot_q3_k_q8_k(&x3, &y))?;
            let (got, want) = (k.vec_dot_q4_k_q8_k(&x4, &y), s.vec_dot_q4_k_q8_k(&x4, &y));
            if i == Isa::Avx512 || i == Isa::Avx512Vnni {
                // Float lanes per super-block (see the AVX-512 body): the reorder bound, with
                // M over the scale and min parts separately (they may cancel in x).
                close("q4_k_q8_k", i, got, want, x4.len(), q4_k_magnitude(&x4, &y))?;
            } else {
                bit_equal("q4_k_q8_k", i, got, want)?;
            }
            bit_equal("q5_k_q8_k", i, k.vec_dot_q5_k_q8_k(&x5, &y), s.vec_dot_q5_k_q8_k(&x5, &y))?;
            bit_equal("q6_k_q8_k", i, k.vec_dot_q6_k_q8_k(&x6, &y), s.vec_dot_q6_k_q8_k(&x6, &y))?;
        }
    }

    #[test]
    fn float_dots_every_isa_match_scalar_within_reorder_bound(
        (x, y) in (0usize..=300).prop_flat_map(|n| (floats(n), floats(n))),
    ) {
        // Keep products finite: scale the huge values down.
        let x: Vec<f32> = x.iter().map(|v| if v.abs() > 1e4 { v * 1e-30 } else { *v }).collect();
        let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let xhd: Vec<f64> = xh.iter().map(|v| v.to_f64()).collect();
        let yd: Vec<f64> = y.iter().map(|&v| v as f64).collect();
        let s = Kernels::scalar();
        for k in all_kernels() {
            close("f32_f32", k.isa(), k.vec_dot_f32_f32(&x, &y), s.vec_dot_f32_f32(&x, &y), x.len(), mag(&xd, &yd))?;
            close("f16_f32", k.isa(), k.vec_dot_f16_f32(&xh, &y), s.vec_dot_f16_f32(&xh, &y), x.len(), mag(&xhd, &yd))?;
        }
    }

    #[test]
    fn quantizers_every_isa_give_reference_bytes(
        (x32, xk) in (1usize..=8, 1usize..=3).prop_flat_map(|(n, m)| (quant_floats(n * 32), quant_floats(m * QK_K))),
    ) {
        let n = x32.len() / 32;
        let mut r0 = vec![BlockQ8_0::zeroed(); n];
        let mut r1 = vec![BlockQ8_1::zeroed(); n];
        let mut rk = vec![BlockQ8_K::zeroed(); xk.len() / QK_K];
        r::quantize_row_q8_0(&x32, &mut r0);
        r::quantize_row_q8_1(&x32, &mut r1);
        r::quantize_row_q8_k(&xk, &mut rk);
        for k in all_kernels() {
            let (mut a0, mut a1, mut ak) = (r0.clone(), r1.clone(), rk.clone());
            a0.fill(BlockQ8_0::zeroed());
            a1.fill(BlockQ8_1::zeroed());
            ak.fill(BlockQ8_K::zeroed());
            k.quantize_row_q8_0(&x32, &mut a0);
            k.quantize_row_q8_1(&x32, &mut a1);
            k.quantize_row_q8_k(&xk, &mut ak);
            prop_assert!(bytemuck::cast_slice::<_, u8>(&a0) == bytemuck::cast_slice::<_, u8>(&r0), "q8_0 bytes differ on {}", k.isa());
            prop_assert!(bytemuck::cast_slice::<_, u8>(&a1) == bytemuck::cast_slice::<_, u8>(&r1), "q8_1 bytes differ on {}", k.isa());
            prop_assert!(bytemuck::cast_slice::<_, u8>(&ak) == bytemuck::cast_slice::<_, u8>(&rk), "q8_k bytes differ on {}", k.isa());
        }
    }

    #[test]
    fn dequantizers_every_isa_bit_equal_to_reference(
        (x4, x8, x6, xh) in (1usize..=6).prop_flat_map(|n| (
            blocks::<BlockQ4_0, _>(n * 2, scale16(), |b, d| b.d = d),
            blocks::<BlockQ8_0, _>(n * 2, scale16(), |b, d| b.d = d),
            blocks::<BlockQ6_K, _>(n, scale16(), |b, d| b.d = d),
            proptest::collection::vec(any::<u16>().prop_map(f16::from_bits), n * 37))),
    ) {
        for k in all_kernels() {
            let eq = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits()) && a.len() == b.len();
            let (mut got, mut want) = (vec![0.0; x4.len() * 32], vec![0.0; x4.len() * 32]);
            k.dequantize_row_q4_0(&x4, &mut got);
            r::dequantize_row_q4_0(&x4, &mut want);
            prop_assert!(eq(&got, &want), "q4_0 on {}", k.isa());
            k.dequantize_row_q8_0(&x8, &mut got);
            r::dequantize_row_q8_0(&x8, &mut want);
            prop_assert!(eq(&got, &want), "q8_0 on {}", k.isa());
            let (mut got, mut want) = (vec![0.0; x6.len() * QK_K], vec![0.0; x6.len() * QK_K]);
            k.dequantize_row_q6_k(&x6, &mut got);
            r::dequantize_row_q6_k(&x6, &mut want);
            prop_assert!(eq(&got, &want), "q6_k on {}", k.isa());
            let (mut got, mut want) = (vec![0.0; xh.len()], vec![0.0; xh.len()]);
            k.dequantize_row_f16(&xh, &mut got);
            r::dequantize_row_f16(&xh, &mut want);
            prop_assert!(eq(&got, &want), "f16 on {}", k.isa());
        }
    }

    #[test]
    fn gemm_q4_k_every_isa_matches_scalar_and_writes_only_its_tile(
        (nb, _rows, cols, w, a, r0, r1, pad) in (1usize..=3, 1usize..=9, 1usize..=10)
            .prop_flat_map(|(nb, rows, cols)| (
                Just(nb), Just(rows), Just(cols),
                blocks::<BlockQ4_K, _>(nb * rows, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
                blocks::<BlockQ8_K, _>(nb * cols, scale32(), fix_q8k),
                0..=rows, 0..=rows, 0usize..3)),
    ) {
        let win = Window::new((r0, r1), 1, pad, cols);
        let (lo, hi, ldo, len) = (win.lo, win.hi, win.ldo, win.len);
        let s = Kernels::scalar();
        for k in all_kernels() {
            let mut out = vec![SENTINEL; len];
            k.gemm_q4_k_q8_k(&w, &a, nb * QK_K, lo..hi, &mut out, ldo);
            for (i, &v) in out.iter().enumerate() {
                let Some((c, rr)) = win.at(i) else {
                    prop_assert!(v == SENTINEL, "gemm_q4_k_q8_k on {}: wrote outside its tile at {i}", k.isa());
                    continue;
                };
                let (wr, ac) = (&w[(lo + rr) * nb..][..nb], &a[c * nb..][..nb]);
                let want = s.vec_dot_q4_k_q8_k(wr, ac);
                if matches!(k.isa(), Isa::Avx512 | Isa::Avx512Vnni) {
                    close("gemm_q4_k_q8_k", k.isa(), v, want, nb, q4_k_magnitude(wr, ac))?;
                } else {
                    // One dot of the Isa per (row, column): bit-equal.
                    bit_equal("gemm_q4_k_q8_k", k.isa(), v, want)?;
                }
            }
        }
    }

    #[test]
    fn gemm_every_isa_matches_scalar_and_writes_only_its_tile(
        (nb, _rows, cols, w4, w8, a, r0, r1, pad) in (1usize..=5, 1usize..=40, 1usize..=20)
            .prop_flat_map(|(nb, rows, cols)| (
                Just(nb), Just(rows), Just(cols),
                blocks::<BlockQ4_0, _>(nb * rows, scale16(), |b, d| b.d = d),
                blocks::<BlockQ8_0, _>(nb * rows, scale16(), |b, d| b.d = d),
                blocks::<BlockQ8_0, _>(nb * cols, scale16(), |b, d| b.d = d),
                0..=rows, 0..=rows, 0usize..3)),
    ) {
        let win = Window::new((r0, r1), 1, pad, cols);
        let (lo, hi, ldo, len) = (win.lo, win.hi, win.ldo, win.len);
        let s = Kernels::scalar();
        let ad = deq(r::dequantize_row_q8_0, &a, 32);
        let w4d = deq(r::dequantize_row_q4_0, &w4, 32);
        let w8d = deq(r::dequantize_row_q8_0, &w8, 32);
        let k32 = nb * 32;
        for k in all_kernels() {
            for (name, wd) in [("gemm_q4_0_q8_0", &w4d), ("gemm_q8_0_q8_0", &w8d)] {
                let mut out = vec![SENTINEL; len];
                if name == "gemm_q4_0_q8_0" {
                    k.gemm_q4_0_q8_0(&w4, &a, k32, lo..hi, &mut out, ldo);
                } else {
                    k.gemm_q8_0_q8_0(&w8, &a, k32, lo..hi, &mut out, ldo);
                }
                for (i, &v) in out.iter().enumerate() {
                    let Some((c, rr)) = win.at(i) else {
                        prop_assert!(v == SENTINEL, "{name} on {}: wrote outside its tile at {i}", k.isa());
                        continue;
                    };
                    let row = lo + rr;
                    let want = if name == "gemm_q4_0_q8_0" {
                        s.vec_dot_q4_0_q8_0(&w4[row * nb..][..nb], &a[c * nb..][..nb])
                    } else {
                        s.vec_dot_q8_0_q8_0(&w8[row * nb..][..nb], &a[c * nb..][..nb])
                    };
                    let m = mag(&wd[row * k32..][..k32], &ad[c * k32..][..k32]);
                    close(name, k.isa(), v, want, nb, m)?;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar kernels == f64 dot of quant's reference dequantization (ggml-like error bound).

/// `|scalar - f64 dot| <= 2 (nb + 16) eps M + extra`, where `M = sum (|x_i| + |x'_i|) |y_i|`
/// and `x'` is the weight block dequantized with its min/offset negated, so `|x| + |x'|`
/// bounds both parts of `d * q - m` even when they cancel. `extra` covers Q8_1's f16 `s`.
fn check_vs_f64(
    what: &str,
    got: f32,
    x: &[f64],
    xalt: &[f64],
    y: &[f64],
    nb: usize,
    extra: f64,
) -> Result<(), TestCaseError> {
    let exact: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let m: f64 = x
        .iter()
        .zip(xalt)
        .zip(y)
        .map(|((a, b), c)| (a.abs() + b.abs()) * c.abs())
        .sum();
    let tol = 2.0 * (nb as f64 + 16.0) * EPS * m + extra + 1e-35 * (nb as f64 + 1.0);
    let err = (got as f64 - exact).abs();
    prop_assert!(
        err <= tol,
        "{what}: scalar {got}, f64 {exact}, |err| {err} > {tol}"
    );
    Ok(())
}

/// Realistic activations, made by quant's reference quantizers.
fn act_floats(n: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-3.0f32..3.0, n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn scalar_32_value_dots_equal_f64_dot_of_reference_dequantization(
        (x40, x50, x80, x41, x51, xf) in (1usize..=16).prop_flat_map(|n| (
            blocks::<BlockQ4_0, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ5_0, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ8_0, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ4_1, _>(n, s2(), |b, (d, m)| { b.d = d; b.m = m; }),
            blocks::<BlockQ5_1, _>(n, s2(), |b, (d, m)| { b.d = d; b.m = m; }),
            act_floats(n * 32))),
    ) {
        let n = x40.len();
        let s = Kernels::scalar();
        let mut y0 = vec![BlockQ8_0::zeroed(); n];
        let mut y1 = vec![BlockQ8_1::zeroed(); n];
        r::quantize_row_q8_0(&xf, &mut y0);
        r::quantize_row_q8_1(&xf, &mut y1);
        let y0d = deq(r::dequantize_row_q8_0, &y0, 32);
        let y1d = deq(r::dequantize_row_q8_1, &y1, 32);
        let x = deq(r::dequantize_row_q4_0, &x40, 32);
        check_vs_f64("q4_0_q8_0", s.vec_dot_q4_0_q8_0(&x40, &y0), &x, &x, &y0d, n, 0.0)?;
        let x = deq(r::dequantize_row_q5_0, &x50, 32);
        check_vs_f64("q5_0_q8_0", s.vec_dot_q5_0_q8_0(&x50, &y0), &x, &x, &y0d, n, 0.0)?;
        let x = deq(r::dequantize_row_q8_0, &x80, 32);
        check_vs_f64("q8_0_q8_0", s.vec_dot_q8_0_q8_0(&x80, &y0), &x, &x, &y0d, n, 0.0)?;
        // Q8_1's `s = d * sum(q)` is stored as f16: each block may be off by |m| |s| 2^-11.
        let s_err = |m: &[f16]| -> f64 {
            m.iter().zip(&y1).map(|(m, y)| m.to_f64().abs() * y.s.to_f64().abs() * 2f64.powi(-10)).sum()
        };
        let neg41: Vec<BlockQ4_1> = x41.iter().map(|b| BlockQ4_1 { m: -b.m, ..*b }).collect();
        let m41: Vec<f16> = x41.iter().map(|b| b.m).collect();
        check_vs_f64("q4_1_q8_1", s.vec_dot_q4_1_q8_1(&x41, &y1),
            &deq(r::dequantize_row_q4_1, &x41, 32), &deq(r::dequantize_row_q4_1, &neg41, 32), &y1d, n, s_err(&m41))?;
        let neg51: Vec<BlockQ5_1> = x51.iter().map(|b| BlockQ5_1 { m: -b.m, ..*b }).collect();
        let m51: Vec<f16> = x51.iter().map(|b| b.m).collect();
        check_vs_f64("q5_1_q8_1", s.vec_dot_q5_1_q8_1(&x51, &y1),
            &deq(r::dequantize_row_q5_1, &x51, 32), &deq(r::dequantize_row_q5_1, &neg51, 32), &y1d, n, s_err(&m51))?;
    }

    #[test]
    fn scalar_k_quant_dots_equal_f64_dot_of_reference_dequantization(
        (x2, x3, x4, x5, x6, xf) in (1usize..=4).prop_flat_map(|n| (
            blocks::<BlockQ2_K, _>(n, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
            blocks::<BlockQ3_K, _>(n, scale16(), |b, d| b.d = d),
            blocks::<BlockQ4_K, _>(n, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
            blocks::<BlockQ5_K, _>(n, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
            blocks::<BlockQ6_K, _>(n, scale16(), |b, d| b.d = d),
            act_floats(n * QK_K))),
    ) {
        let n = x2.len();
        let s = Kernels::scalar();
        let mut y = vec![BlockQ8_K::zeroed(); n];
        r::quantize_row_q8_k(&xf, &mut y);
        let yd = deq(r::dequantize_row_q8_k, &y, QK_K);
        let neg2: Vec<BlockQ2_K> = x2.iter().map(|b| BlockQ2_K { dmin: -b.dmin, ..*b }).collect();
        check_vs_f64("q2_k_q8_k", s.vec_dot_q2_k_q8_k(&x2, &y),
            &deq(r::dequantize_row_q2_k, &x2, QK_K), &deq(r::dequantize_row_q2_k, &neg2, QK_K), &yd, n, 0.0)?;
        let x = deq(r::dequantize_row_q3_k, &x3, QK_K);
        check_vs_f64("q3_k_q8_k", s.vec_dot_q3_k_q8_k(&x3, &y), &x, &x, &yd, n, 0.0)?;
        let neg4: Vec<BlockQ4_K> = x4.iter().map(|b| BlockQ4_K { dmin: -b.dmin, ..*b }).collect();
        check_vs_f64("q4_k_q8_k", s.vec_dot_q4_k_q8_k(&x4, &y),
            &deq(r::dequantize_row_q4_k, &x4, QK_K), &deq(r::dequantize_row_q4_k, &neg4, QK_K), &yd, n, 0.0)?;
        let neg5: Vec<BlockQ5_K> = x5.iter().map(|b| BlockQ5_K { dmin: -b.dmin, ..*b }).collect();
        check_vs_f64("q5_k_q8_k", s.vec_dot_q5_k_q8_k(&x5, &y),
            &deq(r::dequantize_row_q5_k, &x5, QK_K), &deq(r::dequantize_row_q5_k, &neg5, QK_K), &yd, n, 0.0)?;
        let x = deq(r::dequantize_row_q6_k, &x6, QK_K);
        check_vs_f64("q6_k_q8_k", s.vec_dot_q6_k_q8_k(&x6, &y), &x, &x, &yd, n, 0.0)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

#[test]
fn isa_names_round_trip_and_unknown_names_are_errors() {
    for isa in Isa::ALL {
        assert_eq!(isa.name().parse::<Isa>(), Ok(isa));
    }
    assert_eq!("AVX2".parse::<Isa>(), Ok(Isa::Avx2));
    assert!(matches!(
        "sse9".parse::<Isa>(),
        Err(KernelsError::UnknownIsa(_))
    ));
}

#[test]
fn unsupported_isa_is_an_error_never_a_fallback() {
    let avail = Kernels::available();
    for isa in Isa::ALL {
        match Kernels::from_name(isa.name()) {
            Ok(k) => {
                assert!(avail.contains(&isa));
                assert_eq!(k.isa(), isa);
            }
            Err(e) => {
                assert!(!avail.contains(&isa));
                assert_eq!(e, KernelsError::Unsupported(isa));
                assert!(e.to_string().contains(isa.name()));
            }
        }
    }
    // Each architecture only ever lists its own Isas.
    #[cfg(not(target_arch = "aarch64"))]
    assert!(
        avail
            .iter()
            .all(|i| !matches!(i, Isa::Neon | Isa::NeonDotprod | Isa::NeonI8mm))
    );
    #[cfg(not(target_arch = "x86_64"))]
    assert!(
        avail
            .iter()
            .all(|i| !matches!(i, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni))
    );
}

#[test]
fn detect_picks_the_last_available_isa() {
    let avail = Kernels::available();
    assert_eq!(
        Kernels::detect().isa(),
        *avail.last().expect("scalar is always available")
    );
    assert_eq!(Kernels::scalar().isa(), Isa::Scalar);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn available_matches_cpu_features() {
    let f: std::collections::HashMap<_, _> = cinder_kernels::cpu_features().into_iter().collect();
    let avx2 = f["avx2"] && f["fma"] && f["f16c"];
    let avx512 = avx2 && f["avx512f"] && f["avx512bw"] && f["avx512vl"];
    let avail = Kernels::available();
    assert_eq!(avail.contains(&Isa::Avx2), avx2);
    assert_eq!(avail.contains(&Isa::AvxVnni), avx2 && f["avxvnni"]);
    assert_eq!(avail.contains(&Isa::Avx512), avx512);
    assert_eq!(avail.contains(&Isa::Avx512Vnni), avx512 && f["avx512vnni"]);
}

#[cfg(target_arch = "aarch64")]
#[test]
fn available_matches_cpu_features() {
    let f: std::collections::HashMap<_, _> = cinder_kernels::cpu_features().into_iter().collect();
    let avail = Kernels::available();
    assert_eq!(avail.contains(&Isa::Neon), f["neon"]);
    assert_eq!(avail.contains(&Isa::NeonDotprod), f["neon"] && f["dotprod"]);
    assert_eq!(
        avail.contains(&Isa::NeonI8mm),
        f["neon"] && f["dotprod"] && f["i8mm"]
    );
}

#[test]
#[should_panic(expected = "length mismatch")]
fn dot_length_mismatch_panics() {
    let x = vec![BlockQ4_0::zeroed(); 2];
    let y = vec![BlockQ8_0::zeroed(); 3];
    Kernels::detect().vec_dot_q4_0_q8_0(&x, &y);
}

#[test]
#[should_panic(expected = "out too short")]
fn gemm_short_output_panics() {
    let w = vec![BlockQ4_0::zeroed(); 4];
    let a = vec![BlockQ8_0::zeroed(); 4];
    let mut out = vec![0.0; 5];
    Kernels::detect().gemm_q4_0_q8_0(&w, &a, 64, 0..2, &mut out, 4);
}

/// `CINDER_TEST_KERNELS=neon,dotprod,i8mm` (CI sets it for each qemu CPU) makes a kernel set
/// this CPU lacks a failure instead of a set the property tests silently leave out.
#[test]
fn kernel_sets_the_run_requires_are_available() {
    let Ok(want) = std::env::var("CINDER_TEST_KERNELS") else {
        return;
    };
    let avail = Kernels::available();
    for name in want.split(',').filter(|s| !s.trim().is_empty()) {
        let isa: Isa = name
            .parse()
            .unwrap_or_else(|e| panic!("CINDER_TEST_KERNELS: {e}"));
        assert!(
            avail.contains(&isa),
            "CINDER_TEST_KERNELS asks for {isa}, which this CPU lacks (available: {avail:?})"
        );
    }
}

#[test]
fn available_isas_are_listed() {
    // Printed so a run's log shows which Isas the property tests covered.
    eprintln!("kernels under test: {:?}", Kernels::available());
}

// ---------------------------------------------------------------------------------------------
// Float matrix products (attention): every Isa against the scalar twin, the scalar twin
// against f64, and nothing written outside `c`'s m x n window.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn gemm_f32_every_isa_matches_scalar_and_f64_and_writes_only_its_window(
        ((m, k, n), (pa, pb, pc), a, b) in (1usize..=9, 0usize..=40, 1usize..=80, 0usize..3, 0usize..20, 0usize..3)
            .prop_flat_map(|(m, k, n, pa, pb, pc)| (
                Just((m, k, n)), Just((pa, pb, pc)),
                act_floats(m * (k + pa)), act_floats(k * (n + pb)))),
    ) {
        use cinder_kernels::MatShape;
        let s = MatShape { m, k, n, lda: k + pa, ldb: n + pb, ldc: n + pc };
        let b16: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
        const SENTINEL: f32 = -12345.5;
        let len = m * s.ldc;
        for (name, bd) in [
            ("gemm_f32_f16", b16.iter().map(|v| f64::from(v.to_f32())).collect::<Vec<_>>()),
            ("gemm_f32_f32", b.iter().map(|&v| f64::from(v)).collect()),
        ] {
            let run = |kern: &Kernels, c: &mut [f32]| {
                if name == "gemm_f32_f16" {
                    kern.gemm_f32_f16(&a, &b16, c, s)
                } else {
                    kern.gemm_f32_f32(&a, &b, c, s)
                }
            };
            let mut want = vec![SENTINEL; len];
            run(&Kernels::scalar(), &mut want);
            for kern in all_kernels() {
                let mut got = vec![SENTINEL; len];
                run(&kern, &mut got);
                for t in 0..m {
                    for j in 0..s.ldc {
                        let i = t * s.ldc + j;
                        if j >= n {
                            prop_assert!(got[i] == SENTINEL, "{name} on {}: wrote ({t}, {j})", kern.isa());
                            continue;
                        }
                        let terms: Vec<f64> = (0..k).map(|x| f64::from(a[t * s.lda + x]) * bd[x * s.ldb + j]).collect();
                        let mm: f64 = terms.iter().map(|v| v.abs()).sum();
                        close(name, kern.isa(), got[i], want[i], k, mm)?;
                        if kern.isa() == Isa::Scalar {
                            let exact: f64 = terms.iter().sum();
                            let err = (f64::from(want[i]) - exact).abs();
                            prop_assert!(err <= (k as f64 + 1.0) * EPS * mm + 1e-35, "{name} scalar vs f64: {} vs {exact}", want[i]);
                        }
                    }
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "c too short")]
fn gemm_f32_short_output_panics() {
    let s = cinder_kernels::MatShape {
        m: 2,
        k: 3,
        n: 4,
        lda: 3,
        ldb: 4,
        ldc: 4,
    };
    let (a, b) = (vec![0.0; 6], vec![f16::ZERO; 12]);
    let mut c = vec![0.0; 7];
    Kernels::detect().gemm_f32_f16(&a, &b, &mut c, s);
}

// ---------------------------------------------------------------------------------------------
// Repacked (16-row strip) gemms: every Isa against the scalar dot of the plain rows; the
// scalar strip twin bit-equal to it.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn strip_gemms_every_isa_match_scalar_on_plain_rows(
        (nb, strips, cols, w4, w8, a, s0, s1, pad) in (1usize..=5, 1usize..=3, 1usize..=20)
            .prop_flat_map(|(nb, strips, cols)| (
                Just(nb), Just(strips), Just(cols),
                blocks::<BlockQ4_0, _>(nb * strips * 16, scale16(), |b, d| b.d = d),
                blocks::<BlockQ8_0, _>(nb * strips * 16, scale16(), |b, d| b.d = d),
                blocks::<BlockQ8_0, _>(nb * cols, scale16(), |b, d| b.d = d),
                0..=strips, 0..=strips, 0usize..3)),
    ) {
        use cinder_kernels::repack::{self, Lanes, Scales16};
        use cinder_kernels::Strips;
        let win = Window::new((s0, s1), 16, pad, cols);
        let (lo, hi, ldo, len) = (win.lo, win.hi, win.ldo, win.len);
        let mut q4 = vec![Lanes::zeroed(); strips * nb * repack::Q4_0_GROUPS];
        let mut q8 = vec![Lanes::zeroed(); strips * nb * repack::Q8_0_GROUPS];
        let (mut d4, mut d8) = (vec![Scales16::zeroed(); strips * nb], vec![Scales16::zeroed(); strips * nb]);
        repack::repack_q4_0(&w4, nb, &mut q4, &mut d4);
        repack::repack_q8_0(&w8, nb, &mut q8, &mut d8);
        let s = Kernels::scalar();
        let ad = deq(r::dequantize_row_q8_0, &a, 32);
        let w4d = deq(r::dequantize_row_q4_0, &w4, 32);
        let w8d = deq(r::dequantize_row_q8_0, &w8, 32);
        let k32 = nb * 32;
        for k in all_kernels() {
            for (name, wd) in [("gemm_q4_0x16_q8_0", &w4d), ("gemm_q8_0x16_q8_0", &w8d)] {
                let mut out = vec![SENTINEL; len];
                if name == "gemm_q4_0x16_q8_0" {
                    k.gemm_q4_0x16_q8_0(Strips { q: &q4, d: &d4 }, &a, k32, lo..hi, &mut out, ldo);
                } else {
                    k.gemm_q8_0x16_q8_0(Strips { q: &q8, d: &d8 }, &a, k32, lo..hi, &mut out, ldo);
                }
                for (i, &v) in out.iter().enumerate() {
                    let Some((c, rr)) = win.at(i) else {
                        prop_assert!(v == SENTINEL, "{name} on {}: wrote outside its tile at {i}", k.isa());
                        continue;
                    };
                    let row = lo * 16 + rr;
                    let want = if name == "gemm_q4_0x16_q8_0" {
                        s.vec_dot_q4_0_q8_0(&w4[row * nb..][..nb], &a[c * nb..][..nb])
                    } else {
                        s.vec_dot_q8_0_q8_0(&w8[row * nb..][..nb], &a[c * nb..][..nb])
                    };
                    // The aarch64 strip kernels do the scalar's float step on exact sums.
                    if matches!(k.isa(), Isa::Scalar | Isa::Neon | Isa::NeonDotprod | Isa::NeonI8mm) {
                        bit_equal(name, k.isa(), v, want)?;
                    }
                    let m = mag(&wd[row * k32..][..k32], &ad[c * k32..][..k32]);
                    close(name, k.isa(), v, want, nb, m)?;
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Q4_K strips: every Isa against the scalar dot of the plain rows (the scalar twin and
    /// the AVX-512 VNNI kernel, whose float step is the scalar's, bit-equal; every Isa within
    /// the reorder bound), only the strips' tile written, and repack -> unpack the identity.
    #[test]
    fn q4_k_strip_gemm_every_isa_matches_scalar_on_plain_rows(
        (nb, strips, cols, w, a, s0, s1, pad) in (1usize..=3, 1usize..=3, 1usize..=19)
            .prop_flat_map(|(nb, strips, cols)| (
                Just(nb), Just(strips), Just(cols),
                blocks::<BlockQ4_K, _>(nb * strips * 16, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
                blocks::<BlockQ8_K, _>(nb * cols, scale32(), fix_q8k),
                0..=strips, 0..=strips, 0usize..3)),
    ) {
        use cinder_kernels::repack::{self, BlockQ4_Kx16};
        let win = Window::new((s0, s1), 16, pad, cols);
        let (lo, hi, ldo, len) = (win.lo, win.hi, win.ldo, win.len);
        let mut p = vec![BlockQ4_Kx16::zeroed(); strips * nb];
        repack::repack_q4_k(&w, nb, &mut p);
        for row in 0..strips * 16 {
            for k in 0..nb {
                let b = repack::unpack_q4_k(&p, nb, (row / 16, row % 16, k));
                prop_assert_eq!(bytemuck::bytes_of(&b), bytemuck::bytes_of(&w[row * nb + k]));
            }
        }
        let s = Kernels::scalar();
        for k in all_kernels() {
            let mut out = vec![SENTINEL; len];
            k.gemm_q4_kx16_q8_k(&p, &a, nb * QK_K, lo..hi, &mut out, ldo);
            for (i, &v) in out.iter().enumerate() {
                let Some((c, rr)) = win.at(i) else {
                    prop_assert!(v == SENTINEL, "gemm_q4_kx16_q8_k on {}: wrote outside its tile at {i}", k.isa());
                    continue;
                };
                let row = lo * 16 + rr;
                let (wr, ac) = (&w[row * nb..][..nb], &a[c * nb..][..nb]);
                let want = s.vec_dot_q4_k_q8_k(wr, ac);
                bit_equal("gemm_q4_kx16_q8_k", k.isa(), v, want)?;
                close("gemm_q4_kx16_q8_k", k.isa(), v, want, nb, q4_k_magnitude(wr, ac))?;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Q6_K strips: every Isa bit-equal to the scalar dot of the plain rows (the scalar twin
    /// and the AVX-512 VNNI kernel both do the scalar's float step), only the strips' tile
    /// written, and repack -> unpack the identity.
    #[test]
    fn q6_k_strip_gemm_every_isa_matches_scalar_on_plain_rows(
        (nb, strips, cols, w, a, s0, s1, pad) in (1usize..=3, 1usize..=3, 1usize..=19)
            .prop_flat_map(|(nb, strips, cols)| (
                Just(nb), Just(strips), Just(cols),
                blocks::<BlockQ6_K, _>(nb * strips * 16, scale16(), |b, d| b.d = d),
                blocks::<BlockQ8_K, _>(nb * cols, scale32(), fix_q8k),
                0..=strips, 0..=strips, 0usize..3)),
    ) {
        use cinder_kernels::repack::{self, BlockQ6_Kx16};
        let win = Window::new((s0, s1), 16, pad, cols);
        let (lo, hi, ldo, len) = (win.lo, win.hi, win.ldo, win.len);
        let mut p = vec![BlockQ6_Kx16::zeroed(); strips * nb];
        repack::repack_q6_k(&w, nb, &mut p);
        for row in 0..strips * 16 {
            for k in 0..nb {
                let b = repack::unpack_q6_k(&p, nb, (row / 16, row % 16, k));
                prop_assert_eq!(bytemuck::bytes_of(&b), bytemuck::bytes_of(&w[row * nb + k]));
            }
        }
        let s = Kernels::scalar();
        for k in all_kernels() {
            let mut out = vec![SENTINEL; len];
            k.gemm_q6_kx16_q8_k(&p, &a, nb * QK_K, lo..hi, &mut out, ldo);
            for (i, &v) in out.iter().enumerate() {
                let Some((c, rr)) = win.at(i) else {
                    prop_assert!(v == SENTINEL, "gemm_q6_kx16_q8_k on {}: wrote outside its tile at {i}", k.isa());
                    continue;
                };
                let row = lo * 16 + rr;
                let want = s.vec_dot_q6_k_q8_k(&w[row * nb..][..nb], &a[c * nb..][..nb]);
                bit_equal("gemm_q6_kx16_q8_k", k.isa(), v, want)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Q5_K strips: every Isa bit-equal to the scalar dot of the plain rows (every kernel does
    /// the scalar's float step on exact integer sums), only the strips' tile written, and
    /// repack -> unpack the identity.
    #[test]
    fn q5_k_strip_gemm_every_isa_matches_scalar_on_plain_rows(
        (nb, strips, cols, w, a, s0, s1, pad) in (1usize..=3, 1usize..=3, 1usize..=19)
            .prop_flat_map(|(nb, strips, cols)| (
                Just(nb), Just(strips), Just(cols),
                blocks::<BlockQ5_K, _>(nb * strips * 16, s2(), |b, (d, m)| { b.d = d; b.dmin = m; }),
                blocks::<BlockQ8_K, _>(nb * cols, scale32(), fix_q8k),
                0..=strips, 0..=strips, 0usize..3)),
    ) {
        use cinder_kernels::repack::{self, BlockQ5_Kx16};
        let win = Window::new((s0, s1), 16, pad, cols);
        let (lo, hi, ldo, len) = (win.lo, win.hi, win.ldo, win.len);
        let mut p = vec![BlockQ5_Kx16::zeroed(); strips * nb];
        repack::repack_q5_k(&w, nb, &mut p);
        for row in 0..strips * 16 {
            for k in 0..nb {
                let b = repack::unpack_q5_k(&p, nb, (row / 16, row % 16, k));
                prop_assert_eq!(bytemuck::bytes_of(&b), bytemuck::bytes_of(&w[row * nb + k]));
            }
        }
        let s = Kernels::scalar();
        for k in all_kernels() {
            let mut out = vec![SENTINEL; len];
            k.gemm_q5_kx16_q8_k(&p, &a, nb * QK_K, lo..hi, &mut out, ldo);
            for (i, &v) in out.iter().enumerate() {
                let Some((c, rr)) = win.at(i) else {
                    prop_assert!(v == SENTINEL, "gemm_q5_kx16_q8_k on {}: wrote outside its tile at {i}", k.isa());
                    continue;
                };
                let row = lo * 16 + rr;
                let want = s.vec_dot_q5_k_q8_k(&w[row * nb..][..nb], &a[c * nb..][..nb]);
                bit_equal("gemm_q5_kx16_q8_k", k.isa(), v, want)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// e^x for softmax and SwiGLU: one portable body in every set (bit-equal), accurate against f64.

/// Floats for the exponential kernels: the working range, beyond both clamps, and specials.
fn exp_input() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -90.0f32..90.0,
        2 => -1.0f32..1.0,
        1 => -1e30f32..1e30,
        1 => prop_oneof![
            Just(0.0f32), Just(-0.0), Just(f32::INFINITY), Just(f32::NEG_INFINITY),
            Just(f32::NAN), Just(-87.0), Just(88.0), Just(f32::from_bits(1)),
        ],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// `exp_sum` and `silu_mul` of every Isa equal the scalar twin bit for bit, values and sum.
    #[test]
    fn exp_kernels_every_isa_bit_equal_to_scalar(
        x in prop::collection::vec(exp_input(), 0..80),
        u in prop::collection::vec(-4.0f32..4.0, 80),
        shift in prop_oneof![Just(0.0f32), -10.0f32..10.0],
    ) {
        let s = Kernels::scalar();
        let (mut want, mut want_g) = (x.clone(), x.clone());
        let want_sum = s.exp_sum(&mut want, shift);
        s.silu_mul(&mut want_g, &u[..x.len()]);
        for k in all_kernels() {
            let (mut got, mut got_g) = (x.clone(), x.clone());
            bit_equal("exp_sum (sum)", k.isa(), k.exp_sum(&mut got, shift), want_sum)?;
            k.silu_mul(&mut got_g, &u[..x.len()]);
            for i in 0..x.len() {
                bit_equal("exp_sum", k.isa(), got[i], want[i])?;
                bit_equal("silu_mul", k.isa(), got_g[i], want_g[i])?;
            }
        }
    }

    /// The scalar e^x is within 2 units of the last place of f64's on [-87, 88] (relative
    /// 2 * 2^-23), and the exponentials' sum within the rounding of its additions.
    #[test]
    fn scalar_exp_is_accurate(x in prop::collection::vec(-87.0f32..88.0, 1..60)) {
        let mut e = x.clone();
        let sum = Kernels::scalar().exp_sum(&mut e, 0.0);
        let mut exact = 0f64;
        for (&v, &got) in x.iter().zip(&e) {
            let want = f64::from(v).exp();
            exact += want;
            prop_assert!(
                (f64::from(got) - want).abs() <= 2.0 * 2.0 * EPS * want,
                "e^{v}: got {got}, f64 {want}"
            );
        }
        // (A sum past f32's range is infinite, as f32 additions make it.)
        let bound = (x.len() as f64 + 2.0) * 2.0 * EPS * exact;
        prop_assert!(
            (f64::from(sum) - exact).abs() <= bound || (exact > 3e38 && sum == f32::INFINITY),
            "sum {sum} vs {exact}"
        );
    }
}

/// The clamps and the exact points of the scalar e^x, and SwiGLU's gate at the extremes.
#[test]
fn scalar_exp_clamps_and_fixed_points() {
    let s = Kernels::scalar();
    let e = |v: f32| {
        let mut x = [v];
        s.exp_sum(&mut x, 0.0);
        x[0]
    };
    assert_eq!(e(0.0), 1.0);
    assert_eq!(e(-1000.0), e(-87.0));
    assert_eq!(e(f32::NEG_INFINITY), e(-87.0));
    assert_eq!(e(1000.0), e(88.0));
    assert!(e(f32::NAN).is_nan());
    assert!(e(-87.0) > 0.0 && e(-87.0) < 2e-38, "{}", e(-87.0));
    assert!(e(88.0).is_finite() && e(88.0) > 1.6e38, "{}", e(88.0));
    let mut g = [0.0f32, 200.0, -200.0, 1.0];
    s.silu_mul(&mut g, &[1.0; 4]);
    assert_eq!(g[0], 0.0);
    assert_eq!(g[1], 200.0);
    assert!(g[2] <= 0.0 && g[2] > -1e-35, "{}", g[2]);
    let want = 1.0 / (1.0 + (-1.0f64).exp());
    assert!((f64::from(g[3]) - want).abs() < 1e-7, "{} vs {want}", g[3]);
}
