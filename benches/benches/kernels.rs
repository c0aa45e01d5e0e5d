//! Every kernel x every Isa this CPU can run, at Llama 2 7B sizes, single thread.
//!
//! Benchmark ids read as a table: `<op>/<kernel>/<k>/<isa>`, e.g.
//! `vec_dot/q4_0_q8_0/4096/avx512vnni`, `gemm/q4_0_q8_0/11008x4096x64/avx2`.
//!
//! Throughput:
//! - `vec_dot/*`, `dequantize/*`: weight bytes read (GB/s, decimal).
//! - `quantize/*`: bytes of f32 input (GB/s, decimal).
//! - `gemm/*`: criterion "elements" are operations, `2 * rows * k * cols`: read `Gelem/s` as
//!   GOP/s.
//! - `mul_mat/*`: what the runtime does per matmul and llama.cpp's `test-backend-ops perf -o
//!   MUL_MAT` times (its shape, m = 4096 rows, k = 14336, n columns): f32 activations quantized
//!   to Q8_0, then the gemm, on weights repacked in 16-row strips where the Isa prefers them
//!   (outside the timed loop, as at model load). GOP/s like `gemm/*`; compare with its GFLOPS.
//!
//! - `attention/*`: the float products of one attention step of one head, as the runtime runs
//!   them with an f16 KV cache (`gemm_f32_f16`): 16 query rows against the transposed keys
//!   (`scores`, k = head dim 64, n = positions) and 16 score rows against the values (`mix`,
//!   k = positions, n = 64), at 512 positions; GOP/s like `gemm/*`.
//!
//! One row of k = 4096 or 11008 fits in L1/L2, so `vec_dot` measures the kernel, not memory;
//! `gemm/.../x1` (one column, a 7B matrix) is the memory-bound matrix-vector product.
//!
//! Scalar gemm with 64 or 512 columns takes seconds per call, so it is skipped unless
//! `CINDER_BENCH_SLOW=1`.
//!
//! ```text
//! cargo bench -p cinder-benches --bench kernels                        # everything
//! cargo bench -p cinder-benches --bench kernels -- 'vec_dot/q4_0_q8_0/4096/'   # a filter
//! cargo bench -p cinder-benches --bench kernels -- --quick             # smoke run
//! ```

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use bytemuck::Zeroable;
use cinder_benches::rng::Rng;
use cinder_kernels::{Isa, Kernels};
use cinder_quant::block::*;
use cinder_quant::dtype::QK_K;
use cinder_quant::reference as r;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use half::f16;

/// Row lengths of Llama 2 7B: the model width and the feed-forward width.
const KS: [usize; 2] = [4096, 11008];
/// 7B matrix shapes `rows x k` for the tiled gemm (attention projections, ffn gate/up).
const GEMM_SHAPES: [(usize, usize); 2] = [(4096, 4096), (11008, 4096)];
/// Activation columns (tokens) of the tiled gemm.
const GEMM_COLS: [usize; 4] = [1, 8, 64, 512];

fn kernels() -> Vec<Kernels> {
    Kernels::available()
        .into_iter()
        .filter_map(Kernels::new)
        .collect()
}

fn slow_allowed() -> bool {
    std::env::var("CINDER_BENCH_SLOW").is_ok_and(|v| v == "1")
}

/// `n` values uniform in [-1, 1), the same for every run.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; n];
    Rng::new(seed).fill_uniform(&mut v, 1.0);
    v
}

/// `n` values quantized to blocks of `B` with a reference quantizer.
fn blocks<B: Zeroable + Clone>(n: usize, bs: usize, seed: u64, q: fn(&[f32], &mut [B])) -> Vec<B> {
    let mut b = vec![B::zeroed(); n / bs];
    q(&values(n, seed), &mut b);
    b
}

fn id(k: impl std::fmt::Display, isa: Isa) -> BenchmarkId {
    BenchmarkId::new(k.to_string(), isa.name())
}

macro_rules! bench_dot {
    ($c:expr, $name:ident, $label:literal, $w:ty, $wq:expr, $a:ty, $aq:expr, $bs:expr) => {{
        let mut g = $c.benchmark_group(concat!("vec_dot/", $label));
        for k in KS {
            let w: Vec<$w> = blocks(k, $bs, 1, $wq);
            let a: Vec<$a> = blocks(k, $bs, 2, $aq);
            g.throughput(Throughput::BytesDecimal(
                std::mem::size_of_val(&w[..]) as u64
            ));
            for kern in kernels() {
                g.bench_function(id(k, kern.isa()), |b| {
                    b.iter(|| kern.$name(black_box(&w), black_box(&a)))
                });
            }
        }
        g.finish();
    }};
}

fn f16_row(x: &[f32], y: &mut [f16]) {
    for (d, s) in y.iter_mut().zip(x) {
        *d = f16::from_f32(*s);
    }
}

fn f32_row(x: &[f32], y: &mut [f32]) {
    y.copy_from_slice(x);
}

fn vec_dot(c: &mut Criterion) {
    bench_dot!(
        c,
        vec_dot_q4_0_q8_0,
        "q4_0_q8_0",
        BlockQ4_0,
        r::quantize_row_q4_0,
        BlockQ8_0,
        r::quantize_row_q8_0,
        QK
    );
    bench_dot!(
        c,
        vec_dot_q5_0_q8_0,
        "q5_0_q8_0",
        BlockQ5_0,
        r::quantize_row_q5_0,
        BlockQ8_0,
        r::quantize_row_q8_0,
        QK
    );
    bench_dot!(
        c,
        vec_dot_q8_0_q8_0,
        "q8_0_q8_0",
        BlockQ8_0,
        r::quantize_row_q8_0,
        BlockQ8_0,
        r::quantize_row_q8_0,
        QK
    );
    bench_dot!(
        c,
        vec_dot_q4_1_q8_1,
        "q4_1_q8_1",
        BlockQ4_1,
        r::quantize_row_q4_1,
        BlockQ8_1,
        r::quantize_row_q8_1,
        QK
    );
    bench_dot!(
        c,
        vec_dot_q5_1_q8_1,
        "q5_1_q8_1",
        BlockQ5_1,
        r::quantize_row_q5_1,
        BlockQ8_1,
        r::quantize_row_q8_1,
        QK
    );
    bench_dot!(
        c,
        vec_dot_q2_k_q8_k,
        "q2_k_q8_k",
        BlockQ2_K,
        r::quantize_row_q2_k,
        BlockQ8_K,
        r::quantize_row_q8_k,
        QK_K
    );
    bench_dot!(
        c,
        vec_dot_q3_k_q8_k,
        "q3_k_q8_k",
        BlockQ3_K,
        r::quantize_row_q3_k,
        BlockQ8_K,
        r::quantize_row_q8_k,
        QK_K
    );
    bench_dot!(
        c,
        vec_dot_q4_k_q8_k,
        "q4_k_q8_k",
        BlockQ4_K,
        r::quantize_row_q4_k,
        BlockQ8_K,
        r::quantize_row_q8_k,
        QK_K
    );
    bench_dot!(
        c,
        vec_dot_q5_k_q8_k,
        "q5_k_q8_k",
        BlockQ5_K,
        r::quantize_row_q5_k,
        BlockQ8_K,
        r::quantize_row_q8_k,
        QK_K
    );
    bench_dot!(
        c,
        vec_dot_q6_k_q8_k,
        "q6_k_q8_k",
        BlockQ6_K,
        r::quantize_row_q6_k,
        BlockQ8_K,
        r::quantize_row_q8_k,
        QK_K
    );
    bench_dot!(c, vec_dot_f16_f32, "f16_f32", f16, f16_row, f32, f32_row, 1);
    bench_dot!(c, vec_dot_f32_f32, "f32_f32", f32, f32_row, f32, f32_row, 1);
}

macro_rules! bench_quantize {
    ($c:expr, $name:ident, $label:literal, $b:ty, $bs:expr) => {{
        let mut g = $c.benchmark_group(concat!("quantize/", $label));
        for k in KS {
            let x = values(k, 3);
            let mut y = vec![<$b>::zeroed(); k / $bs];
            g.throughput(Throughput::BytesDecimal((k * 4) as u64));
            for kern in kernels() {
                g.bench_function(id(k, kern.isa()), |b| {
                    b.iter(|| kern.$name(black_box(&x), black_box(&mut y)))
                });
            }
        }
        g.finish();
    }};
}

fn quantize(c: &mut Criterion) {
    bench_quantize!(c, quantize_row_q8_0, "q8_0", BlockQ8_0, QK);
    bench_quantize!(c, quantize_row_q8_1, "q8_1", BlockQ8_1, QK);
    bench_quantize!(c, quantize_row_q8_k, "q8_k", BlockQ8_K, QK_K);
}

macro_rules! bench_dequantize {
    ($c:expr, $name:ident, $label:literal, $b:ty, $q:expr, $bs:expr) => {{
        let mut g = $c.benchmark_group(concat!("dequantize/", $label));
        for k in KS {
            let x: Vec<$b> = blocks(k, $bs, 4, $q);
            let mut y = vec![0f32; k];
            g.throughput(Throughput::BytesDecimal(
                std::mem::size_of_val(&x[..]) as u64
            ));
            for kern in kernels() {
                g.bench_function(id(k, kern.isa()), |b| {
                    b.iter(|| kern.$name(black_box(&x), black_box(&mut y)))
                });
            }
        }
        g.finish();
    }};
}

fn dequantize(c: &mut Criterion) {
    bench_dequantize!(
        c,
        dequantize_row_q4_0,
        "q4_0",
        BlockQ4_0,
        r::quantize_row_q4_0,
        QK
    );
    bench_dequantize!(
        c,
        dequantize_row_q8_0,
        "q8_0",
        BlockQ8_0,
        r::quantize_row_q8_0,
        QK
    );
    bench_dequantize!(
        c,
        dequantize_row_q6_k,
        "q6_k",
        BlockQ6_K,
        r::quantize_row_q6_k,
        QK_K
    );
    bench_dequantize!(c, dequantize_row_f16, "f16", f16, f16_row, 1);
}

macro_rules! bench_gemm {
    ($c:expr, $name:ident, $label:literal, $w:ty, $wq:expr) => {
        bench_gemm!(
            $c,
            $name,
            $label,
            $w,
            $wq,
            BlockQ8_0,
            r::quantize_row_q8_0,
            QK
        )
    };
    ($c:expr, $name:ident, $label:literal, $w:ty, $wq:expr, $a:ty, $aq:expr, $qk:expr) => {{
        let mut g = $c.benchmark_group(concat!("gemm/", $label));
        g.sampling_mode(SamplingMode::Flat);
        for (rows, k) in GEMM_SHAPES {
            // Built on first use only, so a filtered run does not quantize unused matrices.
            let w: OnceCell<Vec<$w>> = OnceCell::new();
            for cols in GEMM_COLS {
                let a: OnceCell<Vec<$a>> = OnceCell::new();
                let mut out = vec![0f32; cols * rows];
                // Elements are operations (multiply + add): criterion's Gelem/s is GOP/s.
                g.throughput(Throughput::Elements((2 * rows * k * cols) as u64));
                for kern in kernels() {
                    if kern.isa() == Isa::Scalar && cols >= 64 && !slow_allowed() {
                        continue;
                    }
                    g.bench_function(id(format!("{rows}x{k}x{cols}"), kern.isa()), |b| {
                        let w = w.get_or_init(|| blocks(rows * k, $qk, 5, $wq));
                        let a = a.get_or_init(|| blocks(cols * k, $qk, 6, $aq));
                        b.iter(|| {
                            kern.$name(black_box(w), black_box(a), k, 0..rows, &mut out, rows)
                        })
                    });
                }
            }
        }
        g.finish();
    }};
}

fn gemm(c: &mut Criterion) {
    bench_gemm!(
        c,
        gemm_q4_0_q8_0,
        "q4_0_q8_0",
        BlockQ4_0,
        r::quantize_row_q4_0
    );
    bench_gemm!(
        c,
        gemm_q8_0_q8_0,
        "q8_0_q8_0",
        BlockQ8_0,
        r::quantize_row_q8_0
    );
    bench_gemm!(
        c,
        gemm_q4_k_q8_k,
        "q4_k_q8_k",
        BlockQ4_K,
        r::quantize_row_q4_k,
        BlockQ8_K,
        r::quantize_row_q8_k,
        QK_K
    );
    gemm_q4_k_strips(c);
    gemm_q5_k_strips(c);
    gemm_q6_k_strips(c);
}

/// The strip gemm of a k-quant: `repack` turns the plain super-blocks into strips, `gemm` is
/// the `Kernels` method (`w`, `a`, `k`, `strips`, `out`, `ldo`).
type KStripGemm<P> =
    fn(&Kernels, &[P], &[BlockQ8_K], usize, std::ops::Range<usize>, &mut [f32], usize);

/// k-quant weights (`W`, quantized by `wq`) repacked in 16-row strips (as a runtime does at
/// load on kernels that prefer them) x Q8_K columns: the shapes and columns of the tiled
/// gemms. Isas that do not prefer strips run the scalar twin, so only those that do are timed
/// (and Scalar only when slow runs are allowed, as a reference).
fn gemm_k_strips<W: Zeroable + Clone, P: Zeroable + Clone>(
    c: &mut Criterion,
    label: &str,
    wq: fn(&[f32], &mut [W]),
    repack: fn(&[W], usize, &mut [P]),
    gemm: KStripGemm<P>,
) {
    let mut g = c.benchmark_group(format!("gemm/{label}"));
    g.sampling_mode(SamplingMode::Flat);
    for (rows, k) in GEMM_SHAPES {
        let nb = k / QK_K;
        // Built on first use only, so a filtered run does not quantize unused matrices.
        let w: OnceCell<Vec<P>> = OnceCell::new();
        for cols in GEMM_COLS {
            let a: OnceCell<Vec<BlockQ8_K>> = OnceCell::new();
            let mut out = vec![0f32; cols * rows];
            g.throughput(Throughput::Elements((2 * rows * k * cols) as u64));
            for kern in kernels() {
                let timed = kern.prefers_strips() || (kern.isa() == Isa::Scalar && slow_allowed());
                if !timed {
                    continue;
                }
                g.bench_function(id(format!("{rows}x{k}x{cols}"), kern.isa()), |b| {
                    let w = w.get_or_init(|| {
                        let plain: Vec<W> = blocks(rows * k, QK_K, 5, wq);
                        let mut p = vec![P::zeroed(); rows / 16 * nb];
                        repack(&plain, nb, &mut p);
                        p
                    });
                    let a = a.get_or_init(|| blocks(cols * k, QK_K, 6, r::quantize_row_q8_k));
                    b.iter(|| {
                        gemm(
                            &kern,
                            black_box(w),
                            black_box(a),
                            k,
                            0..rows / 16,
                            &mut out,
                            rows,
                        )
                    })
                });
            }
        }
    }
    g.finish();
}

fn gemm_q4_k_strips(c: &mut Criterion) {
    use cinder_kernels::repack;
    gemm_k_strips(
        c,
        "q4_kx16_q8_k",
        r::quantize_row_q4_k,
        repack::repack_q4_k,
        Kernels::gemm_q4_kx16_q8_k,
    );
}

fn gemm_q5_k_strips(c: &mut Criterion) {
    use cinder_kernels::repack;
    gemm_k_strips(
        c,
        "q5_kx16_q8_k",
        r::quantize_row_q5_k,
        repack::repack_q5_k,
        Kernels::gemm_q5_kx16_q8_k,
    );
}

fn gemm_q6_k_strips(c: &mut Criterion) {
    use cinder_kernels::repack;
    gemm_k_strips(
        c,
        "q6_kx16_q8_k",
        r::quantize_row_q6_k,
        repack::repack_q6_k,
        Kernels::gemm_q6_kx16_q8_k,
    );
}

/// `test-backend-ops perf -o MUL_MAT`'s matrix: m = 4096 rows, k = 14336.
const MUL_MAT_SHAPE: (usize, usize) = (4096, 14336);
/// Its column counts that cinder's table reports.
const MUL_MAT_COLS: [usize; 4] = [1, 4, 8, 512];

macro_rules! bench_mul_mat {
    ($c:expr, $label:literal, $w:ty, $wq:expr, $repack:path, $groups:expr, $plain:ident, $strips:ident) => {{
        use cinder_kernels::Strips;
        use cinder_kernels::repack::{Lanes, Scales16};
        let mut g = $c.benchmark_group(concat!("mul_mat/", $label));
        g.sampling_mode(SamplingMode::Flat);
        let (rows, k) = MUL_MAT_SHAPE;
        let nb = k / QK;
        // Built on first use only, so a filtered run does not quantize this 59M-value matrix.
        let prep: OnceCell<(Vec<$w>, Vec<Lanes>, Vec<Scales16>)> = OnceCell::new();
        let prepare = || {
            let w: Vec<$w> = blocks(rows * k, QK, 7, $wq);
            let mut q = vec![Lanes::zeroed(); rows / 16 * nb * $groups];
            let mut d = vec![Scales16::zeroed(); rows / 16 * nb];
            $repack(&w, nb, &mut q, &mut d);
            (w, q, d)
        };
        for cols in MUL_MAT_COLS {
            let x = values(cols * k, 8);
            let mut a = vec![BlockQ8_0::zeroed(); cols * nb];
            let mut out = vec![0f32; cols * rows];
            g.throughput(Throughput::Elements((2 * rows * k * cols) as u64));
            for kern in kernels() {
                if kern.isa() == Isa::Scalar && cols >= 8 && !slow_allowed() {
                    continue;
                }
                g.bench_function(id(format!("{rows}x{k}x{cols}"), kern.isa()), |b| {
                    let (w, q, d) = prep.get_or_init(prepare);
                    b.iter(|| {
                        for (xc, ac) in x.chunks_exact(k).zip(a.chunks_exact_mut(nb)) {
                            kern.quantize_row_q8_0(black_box(xc), ac);
                        }
                        if kern.prefers_strips() {
                            let st = Strips { q, d };
                            kern.$strips(st, &a, k, 0..rows / 16, &mut out, rows)
                        } else {
                            kern.$plain(black_box(w), &a, k, 0..rows, &mut out, rows)
                        }
                    })
                });
            }
        }
        g.finish();
    }};
}

fn mul_mat(c: &mut Criterion) {
    use cinder_kernels::repack;
    bench_mul_mat!(
        c,
        "q4_0",
        BlockQ4_0,
        r::quantize_row_q4_0,
        repack::repack_q4_0,
        repack::Q4_0_GROUPS,
        gemm_q4_0_q8_0,
        gemm_q4_0x16_q8_0
    );
    bench_mul_mat!(
        c,
        "q8_0",
        BlockQ8_0,
        r::quantize_row_q8_0,
        repack::repack_q8_0,
        repack::Q8_0_GROUPS,
        gemm_q8_0_q8_0,
        gemm_q8_0x16_q8_0
    );
}

/// One head's attention step with an f16 cache: 16 tokens, head dim 64, 512 positions, the
/// strides the runtime uses (`dim` 2048 query rows, keys transposed with a 512-position
/// context, values 256 wide).
fn attention(c: &mut Criterion) {
    use cinder_kernels::MatShape;
    let (m, hd, pos, dim, kv_dim) = (16, 64, 512, 2048, 256);
    let to_f16 = |v: Vec<f32>| v.into_iter().map(f16::from_f32).collect::<Vec<_>>();
    let q = values(m * dim, 1);
    let keys = to_f16(values(hd * pos, 2));
    let scores = values(m * pos, 3);
    let vals = to_f16(values(pos * kv_dim, 4));
    let mut out = vec![0f32; m * pos];
    let cases = [
        (
            "scores",
            MatShape {
                m,
                k: hd,
                n: pos,
                lda: dim,
                ldb: pos,
                ldc: pos,
            },
            &q,
            &keys,
        ),
        (
            "mix",
            MatShape {
                m,
                k: pos,
                n: hd,
                lda: pos,
                ldb: kv_dim,
                ldc: hd,
            },
            &scores,
            &vals,
        ),
    ];
    let mut g = c.benchmark_group("attention");
    for (name, s, a, b) in cases {
        g.throughput(Throughput::Elements((2 * s.m * s.k * s.n) as u64));
        for k in kernels() {
            g.bench_function(
                id(format!("{name}/{}x{}x{}", s.m, s.k, s.n), k.isa()),
                |bch| bch.iter(|| k.gemm_f32_f16(black_box(a), black_box(b), &mut out, s)),
            );
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = vec_dot, quantize, dequantize, gemm, mul_mat, attention
}

criterion_main!(benches);
