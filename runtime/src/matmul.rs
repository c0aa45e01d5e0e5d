//! `out = x W^T` for a batch of activation rows and one weight matrix of any supported type.
//!
//! The activations are converted ONCE per call to the format the weight type's dot product
//! wants (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the k-quants, f32 for float
//! weights; see below). The weight rows are then split into chunks that rayon threads take, so
//! each thread streams its own part of the matrix; a chunk computes every token against its rows with the
//! tiled gemm where the kernels have one (a block of tokens at a time, so they stay in cache
//! while the chunk's rows pass over them), else one `vec_dot` per (row, token). One token
//! (generation) gets a few large contiguous chunks per thread: the matrix is streamed once.
//!
//! Float weights: by default the activations of F16/BF16-weight matmuls stay f32 (the dot
//! widens the weights exactly), which keeps cinder within 1e-6 of transformers on F16 and
//! BF16 files. [`set_llamacpp_rounding`] switches to llama.cpp's rule (its CPU backend dots
//! F16 weights with f16 activations and BF16 with bf16): the activations are rounded to
//! nearest-even f16/bf16 once per call and the dots run in f32 on the rounded values. That
//! brings cinder's logits and perplexity close to llama.cpp's on files with F16 tensors
//! (llama.cpp keeps rows no block fits in F16, like stories260k's 172-wide `ffn_down`, and the
//! next Q8_0 activation quantization amplifies the difference), at about 1e-3 relative error
//! against transformers on an F16 file (llama.cpp's own figure).

use std::ops::Range;

use cinder_kernels::repack::STRIP_ROWS;
use cinder_kernels::{Kernels, Strips};
use cinder_quant::GgmlType;
use cinder_quant::block::{BlockQ8_0, BlockQ8_1, BlockQ8_K, QK};
use cinder_quant::dtype::QK_K;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::error::Result;
use crate::weights::{Repacked, Tensor, View};

static LLAMACPP_ROUNDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Round the activations of F16/BF16-weight matmuls to f16/bf16 as llama.cpp does (process
/// wide; off by default, see the module documentation). `cinder --llamacpp-rounding` sets it.
pub fn set_llamacpp_rounding(on: bool) {
    LLAMACPP_ROUNDING.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`set_llamacpp_rounding`] is on.
pub fn llamacpp_rounding() -> bool {
    LLAMACPP_ROUNDING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Activations to Q8_0: the reference rule (`d = amax / 127`, `q = round_away(x / d)`, as
/// gguf-py and ggml's scalar reference), or with [`set_llamacpp_rounding`]
/// [`quantize_row_q8_0_llamacpp`].
fn q8_0(k: &Kernels, x: &[f32], q: &mut [BlockQ8_0]) {
    if llamacpp_rounding() {
        quantize_row_q8_0_llamacpp(x, q)
    } else {
        k.quantize_row_q8_0(x, q)
    }
}

/// Q8_0 activations as llama.cpp's x86 (AVX/AVX2) and ARM CPU kernels make them:
/// `q = round_half_even(x * (127 / amax))`, where the reference rule multiplies by
/// `1 / (amax / 127)` and rounds half away from zero. The two differ by one on values that
/// land within an ulp of a rounding tie; in a small model one such value moves the logits by
/// about 1e-3, so comparing with llama.cpp on the same file needs its rule.
/// `x.len()` must be `q.len() * 32`.
pub fn quantize_row_q8_0_llamacpp(x: &[f32], q: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), q.len() * QK, "quantize_row_q8_0_llamacpp: lengths");
    for (b, x) in q.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f16::from_f32(amax / 127.0);
        for (q, &v) in b.qs.iter_mut().zip(x) {
            // In range by construction (|v * id| <= 127 up to rounding); NaN becomes 0.
            *q = (v * id).round_ties_even().clamp(-128.0, 127.0) as i8;
        }
    }
}

/// Weight rows per work item when the batch has more than one token.
const CHUNK_ROWS: usize = 32;

/// Work items per thread when the batch is one token (enough to even out a slow thread).
const ITEMS_PER_THREAD: usize = 4;

/// Tokens per gemm call: their quantized activations (`GEMM_TOKENS * cols` bytes and a bit)
/// stay in L2 while a chunk's rows pass over them.
const GEMM_TOKENS: usize = 64;

/// Below this many multiply-adds a matmul runs on the calling thread (threads cost more).
const PARALLEL_MIN_WORK: usize = 1 << 15;

/// Scratch of [`matmul`], allocated once for the largest batch and matrix.
#[derive(Debug)]
pub struct MatmulScratch {
    q8_0: Vec<BlockQ8_0>,
    q8_1: Vec<BlockQ8_1>,
    q8_k: Vec<BlockQ8_K>,
    /// Activations rounded to f16 or bf16 for float-weight matmuls, widened back to f32 (only
    /// with [`set_llamacpp_rounding`]: allocated on first use, then reused).
    rounded: Vec<f32>,
    /// Most activation values a call may bring (`max_batch * max_cols`).
    max_acts: usize,
    /// Per-chunk output tiles (`chunk rows x tokens`), used when the batch has more than one
    /// token.
    tiles: Vec<f32>,
}

impl MatmulScratch {
    /// Scratch for up to `max_batch` tokens, rows of at most `max_cols` inputs and matrices of
    /// at most `max_rows` outputs.
    pub fn new(max_batch: usize, max_cols: usize, max_rows: usize) -> Self {
        MatmulScratch {
            q8_0: vec![bytemuck::Zeroable::zeroed(); max_batch * max_cols.div_ceil(QK)],
            q8_1: vec![bytemuck::Zeroable::zeroed(); max_batch * max_cols.div_ceil(QK)],
            q8_k: vec![bytemuck::Zeroable::zeroed(); max_batch * max_cols.div_ceil(QK_K)],
            rounded: Vec::new(),
            max_acts: max_batch * max_cols,
            tiles: vec![0.0; max_batch * max_rows],
        }
    }
}

/// `out[t][r] = dot(W row r, x[t])` for every token `t < n` and row `r` of `w`.
///
/// `x` is `[n][w.cols()]` (token-major), `out` is `[n][w.rows()]`. Panics if the lengths do not
/// say so or `n` exceeds the scratch's batch size.
pub fn matmul(
    kernels: &Kernels,
    file: &[u8],
    w: &Tensor,
    x: &[f32],
    out: &mut [f32],
    s: &mut MatmulScratch,
) -> Result<()> {
    let (rows, cols) = (w.rows(), w.cols());
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "matmul {}: activations are not whole rows",
        w.name()
    );
    let n = x.len() / cols;
    assert_eq!(out.len(), n * rows, "matmul {}: output length", w.name());
    if n == 0 {
        return Ok(());
    }
    let k = kernels;
    // Q4_0/Q8_0/Q4_K/Q5_K/Q6_K weights repacked at load: the strip gemms, 16 rows per strip, for
    // one token too (the loader has released the plain copy's pages), except where the kernels'
    // row dot of the type is faster for one column: then the plain rows, which the loader kept.
    let rows_for_one = n == 1 && k.prefers_rows_for_one_column(w.ty());
    match w.strips().filter(|_| !rows_for_one) {
        Some(Repacked::Blocks { q, d }) => {
            let gemm = match w.ty() {
                GgmlType::Q4_0 => Kernels::gemm_q4_0x16_q8_0,
                _ => Kernels::gemm_q8_0x16_q8_0,
            };
            let strips = Strips { q, d };
            let a = quantize(x, n, cols / QK, &mut s.q8_0, |x, q| q8_0(k, x, q));
            run(rows, cols, n, out, &mut s.tiles, |r, t, o| {
                gemm_tokens(a, r, t, o, |a, r, o, ldo| {
                    let st = r.start / STRIP_ROWS..r.end / STRIP_ROWS;
                    gemm(k, strips, a, cols, st, o, ldo)
                })
            });
            return Ok(());
        }
        Some(Repacked::Q4K(p)) => {
            k_strips(k, p, Kernels::gemm_q4_kx16_q8_k, x, (rows, cols, n), out, s);
            return Ok(());
        }
        Some(Repacked::Q5K(p)) => {
            k_strips(k, p, Kernels::gemm_q5_kx16_q8_k, x, (rows, cols, n), out, s);
            return Ok(());
        }
        Some(Repacked::Q6K(p)) => {
            k_strips(k, p, Kernels::gemm_q6_kx16_q8_k, x, (rows, cols, n), out, s);
            return Ok(());
        }
        None => {}
    }
    let tiles = &mut s.tiles;
    // Weight types without a tiled kernel: activations quantized once to the dot format,
    // then one vec_dot per (weight row, token).
    macro_rules! rowwise {
        ($wv:expr, $qk:expr, $buf:ident, $quantize:ident, $dot:ident) => {{
            let nb = cols / $qk;
            let a = quantize(x, n, nb, &mut s.$buf, |x, q| k.$quantize(x, q));
            run(rows, cols, n, out, tiles, |r, t, o| {
                dot_rows($wv, nb, a, nb, r, t, o, |a, b| k.$dot(a, b))
            })
        }};
    }
    match w.view(file)? {
        View::F32(wv) => run(rows, cols, n, out, tiles, |r, t, o| {
            dot_rows(wv, cols, x, cols, r, t, o, |a, b| k.vec_dot_f32_f32(a, b))
        }),
        View::F16(wv) => {
            let a = if llamacpp_rounding() {
                round(x, &mut s.rounded, s.max_acts, |v| f16::from_f32(v).to_f32())
            } else {
                x
            };
            run(rows, cols, n, out, tiles, |r, t, o| {
                dot_rows(wv, cols, a, cols, r, t, o, |a, b| k.vec_dot_f16_f32(a, b))
            })
        }
        View::BF16(wv) => {
            let a = if llamacpp_rounding() {
                round(x, &mut s.rounded, s.max_acts, |v| {
                    bf16::from_f32(v).to_f32()
                })
            } else {
                x
            };
            run(rows, cols, n, out, tiles, |r, t, o| {
                dot_rows(wv, cols, a, cols, r, t, o, dot_bf16_f32)
            })
        }
        View::Q4_0(wv) => {
            let a = quantize(x, n, cols / QK, &mut s.q8_0, |x, q| q8_0(k, x, q));
            run(rows, cols, n, out, tiles, |r, t, o| {
                gemm_tokens(a, r, t, o, |a, r, o, ldo| {
                    k.gemm_q4_0_q8_0(wv, a, cols, r, o, ldo)
                })
            })
        }
        View::Q8_0(wv) => {
            let a = quantize(x, n, cols / QK, &mut s.q8_0, |x, q| q8_0(k, x, q));
            run(rows, cols, n, out, tiles, |r, t, o| {
                gemm_tokens(a, r, t, o, |a, r, o, ldo| {
                    k.gemm_q8_0_q8_0(wv, a, cols, r, o, ldo)
                })
            })
        }
        View::Q5_0(wv) => {
            let nb = cols / QK;
            let a = quantize(x, n, nb, &mut s.q8_0, |x, q| q8_0(k, x, q));
            run(rows, cols, n, out, tiles, |r, t, o| {
                dot_rows(wv, nb, a, nb, r, t, o, |a, b| k.vec_dot_q5_0_q8_0(a, b))
            })
        }
        View::Q4_1(wv) => rowwise!(wv, QK, q8_1, quantize_row_q8_1, vec_dot_q4_1_q8_1),
        View::Q5_1(wv) => rowwise!(wv, QK, q8_1, quantize_row_q8_1, vec_dot_q5_1_q8_1),
        View::Q2K(wv) => rowwise!(wv, QK_K, q8_k, quantize_row_q8_k, vec_dot_q2_k_q8_k),
        View::Q3K(wv) => rowwise!(wv, QK_K, q8_k, quantize_row_q8_k, vec_dot_q3_k_q8_k),
        View::Q4K(wv) => {
            let a = quantize(x, n, cols / QK_K, &mut s.q8_k, |x, q| {
                k.quantize_row_q8_k(x, q)
            });
            run(rows, cols, n, out, tiles, |r, t, o| {
                gemm_tokens(a, r, t, o, |a, r, o, ldo| {
                    k.gemm_q4_k_q8_k(wv, a, cols, r, o, ldo)
                })
            })
        }
        View::Q5K(wv) => rowwise!(wv, QK_K, q8_k, quantize_row_q8_k, vec_dot_q5_k_q8_k),
        View::Q6K(wv) => rowwise!(wv, QK_K, q8_k, quantize_row_q8_k, vec_dot_q6_k_q8_k),
    }
    Ok(())
}

/// A k-quant strip gemm of the kernels (`Kernels::gemm_q4_kx16_q8_k` and its siblings).
type KStripGemm<P> = fn(&Kernels, &[P], &[BlockQ8_K], usize, Range<usize>, &mut [f32], usize);

/// `out = x W^T` for k-quant weights repacked in strips `p`: Q8_K activations, then `gemm` over
/// each chunk's strips.
fn k_strips<P: Sync>(
    k: &Kernels,
    p: &[P],
    gemm: KStripGemm<P>,
    x: &[f32],
    (rows, cols, n): (usize, usize, usize),
    out: &mut [f32],
    s: &mut MatmulScratch,
) {
    let a = quantize(x, n, cols / QK_K, &mut s.q8_k, |x, q| {
        k.quantize_row_q8_k(x, q)
    });
    run(rows, cols, n, out, &mut s.tiles, |r, t, o| {
        gemm_tokens(a, r, t, o, |a, r, o, ldo| {
            let st = r.start / STRIP_ROWS..r.end / STRIP_ROWS;
            gemm(k, p, a, cols, st, o, ldo)
        })
    });
}

/// Convert the `n` activation rows of `x` to `nb` blocks each with `f`; returns the `n * nb`
/// blocks written. A batch's rows are converted on the rayon threads (each row as on one
/// thread), so the other threads do not wait for the calling one before the gemm.
fn quantize<'a, B: Send>(
    x: &[f32],
    n: usize,
    nb: usize,
    q: &'a mut [B],
    f: impl Fn(&[f32], &mut [B]) + Sync,
) -> &'a [B] {
    let q = &mut q[..n * nb];
    let one = |(xr, qr): (&[f32], &mut [B])| f(xr, qr);
    if n > 1 && x.len() >= PARALLEL_MIN_WORK {
        x.par_chunks_exact(x.len() / n)
            .zip(q.par_chunks_exact_mut(nb))
            .for_each(one);
    } else {
        x.chunks_exact(x.len() / n)
            .zip(q.chunks_exact_mut(nb))
            .for_each(one);
    }
    q
}

/// `x` with every value passed through `f` (a rounding to a narrower float), into `buf`
/// (grown once to `max` values). Panics if `x` holds more than `max` (the scratch is smaller
/// than the batch).
fn round<'a>(x: &[f32], buf: &'a mut Vec<f32>, max: usize, f: impl Fn(f32) -> f32) -> &'a [f32] {
    assert!(x.len() <= max, "matmul: scratch smaller than the batch");
    if buf.len() < max {
        buf.resize(max, 0.0);
    }
    let buf = &mut buf[..x.len()];
    for (b, &v) in buf.iter_mut().zip(x) {
        *b = f(v);
    }
    buf
}

/// The tile of the gemms (`n` columns of quantized activations in `a`), `GEMM_TOKENS` tokens
/// at a time:
/// `gemm(a columns, rows, out, ldo)` as the kernels' `gemm_*` with `k = cols`.
fn gemm_tokens<A>(
    a: &[A],
    rows: Range<usize>,
    n: usize,
    out: &mut [f32],
    gemm: impl Fn(&[A], Range<usize>, &mut [f32], usize),
) {
    let (nb, len) = (a.len() / n, rows.len());
    debug_assert_eq!(nb * n, a.len(), "gemm_tokens: whole columns");
    for c0 in (0..n).step_by(GEMM_TOKENS) {
        let c1 = (c0 + GEMM_TOKENS).min(n);
        gemm(
            &a[c0 * nb..c1 * nb],
            rows.clone(),
            &mut out[c0 * len..],
            len,
        );
    }
}

/// Split the `rows` weight rows into chunks and let `tile(rows, n, out)` fill, for its chunk,
/// `out[t * rows.len() + (r - rows.start)]` for every token `t < n`. With one token the tiles
/// are the output itself, in `ITEMS_PER_THREAD` contiguous chunks per thread; with more they
/// are `CHUNK_ROWS` rows, go through `tiles` and are scattered to the token-major `out[t][r]`.
fn run(
    rows: usize,
    cols: usize,
    n: usize,
    out: &mut [f32],
    tiles: &mut [f32],
    tile: impl Fn(Range<usize>, usize, &mut [f32]) + Sync,
) {
    let parallel = rows * cols * n >= PARALLEL_MIN_WORK;
    // With one token, a few large contiguous chunks per thread stream the matrix once; with
    // more, chunks as large as still balance the threads, since each tiled-gemm call repacks
    // its rows and summarizes its activations once.
    let items = rayon::current_num_threads() * ITEMS_PER_THREAD;
    let chunk = rows.div_ceil(items).next_multiple_of(16);
    let chunk = if n == 1 { chunk } else { chunk.max(CHUNK_ROWS) };
    let work = |(j, o): (usize, &mut [f32])| {
        let start = j * chunk;
        tile(start..start + o.len() / n, n, o)
    };
    let buf: &mut [f32] = if n == 1 { out } else { &mut tiles[..rows * n] };
    if parallel {
        buf.par_chunks_mut(chunk * n).enumerate().for_each(work);
    } else {
        buf.chunks_mut(chunk * n).enumerate().for_each(work);
    }
    if n > 1 {
        // Tile j holds rows j*chunk.. for every token; copy them to out[t][r].
        let tiles = &tiles[..rows * n];
        let scatter = |(t, o): (usize, &mut [f32])| {
            for (j, tile) in tiles.chunks(chunk * n).enumerate() {
                let len = tile.len() / n;
                let r0 = j * chunk;
                o[r0..r0 + len].copy_from_slice(&tile[t * len..(t + 1) * len]);
            }
        };
        if parallel {
            out.par_chunks_mut(rows).enumerate().for_each(scatter);
        } else {
            out.chunks_mut(rows).enumerate().for_each(scatter);
        }
    }
}

/// The generic tile: `out[t * len + (r - rows.start)] = dot(w row r, a row t)`, where a weight
/// row is `wr` elements of `w` and an activation row `ar` elements of `a`. Each weight row is
/// read once and dotted with every token.
#[allow(clippy::too_many_arguments)]
fn dot_rows<W, A>(
    w: &[W],
    wr: usize,
    a: &[A],
    ar: usize,
    rows: Range<usize>,
    n: usize,
    out: &mut [f32],
    dot: impl Fn(&[W], &[A]) -> f32,
) {
    let len = rows.len();
    for (i, r) in rows.enumerate() {
        let row = &w[r * wr..(r + 1) * wr];
        for t in 0..n {
            out[t * len + i] = dot(row, &a[t * ar..(t + 1) * ar]);
        }
    }
}

/// bfloat16 weights (raw bits) . f32 activations; the widening to f32 is exact.
pub fn dot_bf16_f32(w: &[u16], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len(), "dot_bf16_f32: length mismatch");
    let mut acc = [0f32; 8];
    let (wc, wt) = w.split_at(w.len() / 8 * 8);
    let (xc, xt) = x.split_at(wc.len());
    for (wb, xb) in wc.chunks_exact(8).zip(xc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += f32::from_bits(u32::from(wb[i]) << 16) * xb[i];
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (&wv, &xv) in wt.iter().zip(xt) {
        sum += f32::from_bits(u32::from(wv) << 16) * xv;
    }
    sum
}
