//! The small element-wise operations of the forward pass: RMSNorm, rotary embeddings, softmax,
//! SwiGLU and the residual add. All work in place or into caller-provided buffers. The ones
//! a batch calls over all its tokens at once ([`rmsnorm_rows`], [`swiglu`], [`add`]) split
//! large inputs across the rayon threads: every value is computed exactly as on one thread, so
//! the results do not depend on the thread count.

use cinder_kernels::Kernels;
use rayon::prelude::*;

/// Values per rayon task of the element-wise operations; smaller inputs stay on the calling
/// thread (one token's vectors during generation cost less than a wake-up).
const PAR_CHUNK: usize = 1 << 14;

/// `out = x / sqrt(mean(x^2) + eps) * w` for one row. The scale is computed in f64 from exact
/// squares, or with [`crate::matmul::set_llamacpp_rounding`] as ggml computes it (f32 squares
/// summed in f64, the mean and `1 / sqrt` in f32): the next Q8_0 quantization turns a one-ulp
/// difference here into a flipped rounding now and then.
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    assert!(
        out.len() == x.len() && w.len() == x.len(),
        "rmsnorm: length mismatch"
    );
    let scale = if crate::matmul::llamacpp_rounding() {
        let ss: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (ss / x.len() as f64) as f32;
        1.0 / (mean + eps).sqrt()
    } else {
        let ss: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        (1.0 / (ss / x.len() as f64 + f64::from(eps)).sqrt()) as f32
    };
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// [`rmsnorm`] of every `w.len()`-wide row of `x` into the same row of `out`.
pub fn rmsnorm_rows(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let dim = w.len();
    assert!(
        dim > 0 && out.len() == x.len() && x.len().is_multiple_of(dim),
        "rmsnorm_rows: length mismatch"
    );
    let row = |(o, xr): (&mut [f32], &[f32])| rmsnorm(o, xr, w, eps);
    if x.len() >= 2 * PAR_CHUNK {
        let rows = PAR_CHUNK.div_ceil(dim);
        out.par_chunks_mut(rows * dim)
            .zip(x.par_chunks(rows * dim))
            .for_each(|(o, xr)| {
                o.chunks_exact_mut(dim)
                    .zip(xr.chunks_exact(dim))
                    .for_each(row)
            });
    } else {
        out.chunks_exact_mut(dim)
            .zip(x.chunks_exact(dim))
            .for_each(row);
    }
}

/// `f(a, b)` over equal-length `a` and `b` in [`PAR_CHUNK`] pieces, on the rayon threads when
/// there are at least two pieces.
fn zip_chunks(a: &mut [f32], b: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if a.len() >= 2 * PAR_CHUNK {
        a.par_chunks_mut(PAR_CHUNK)
            .zip(b.par_chunks(PAR_CHUNK))
            .for_each(|(a, b)| f(a, b));
    } else {
        f(a, b)
    }
}

/// `cos` and `sin` of every (position, frequency) pair of rotary embeddings, computed once.
#[derive(Debug, Clone)]
pub struct RopeTable {
    /// Pairs rotated per head: `rope_dim / 2`.
    half: usize,
    /// `[positions][half]`.
    cos: Vec<f32>,
    /// `[positions][half]`.
    sin: Vec<f32>,
}

impl RopeTable {
    /// The table for `positions` positions: pair `i` of a head at position `p` turns by
    /// `p * base^(-2i / rope_dim)` (computed in f32 like the reference implementation).
    pub fn new(positions: usize, rope_dim: usize, base: f32) -> Self {
        let half = rope_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / rope_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        RopeTable { half, cos, sin }
    }

    /// Rotate the adjacent pairs `(2i, 2i + 1)`, `i < rope_dim / 2`, of every `head_dim`-wide
    /// head in `x` by the angles of position `pos` (GGUF / llama.cpp "normal" RoPE).
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        assert!(
            x.len().is_multiple_of(head_dim) && 2 * self.half <= head_dim,
            "rope: bad head size"
        );
        let cos = &self.cos[pos * self.half..(pos + 1) * self.half];
        let sin = &self.sin[pos * self.half..(pos + 1) * self.half];
        for head in x.chunks_exact_mut(head_dim) {
            for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c - b * s;
                pair[1] = a * s + b * c;
            }
        }
    }

    /// Positions the table covers.
    pub fn positions(&self) -> usize {
        self.cos.len().checked_div(self.half).unwrap_or(usize::MAX)
    }
}

/// In-place softmax; the exponentials are the kernels' ([`Kernels::exp_sum`]).
pub fn softmax(k: &Kernels, x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let inv = 1.0 / k.exp_sum(x, max);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SwiGLU: `gate = silu(gate) * up`, with `silu(g) = g / (1 + e^-g)` ([`Kernels::silu_mul`]).
pub fn swiglu(k: &Kernels, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu: length mismatch");
    zip_chunks(gate, up, |gate, up| k.silu_mul(gate, up))
}

/// Residual connection: `x += y`.
pub fn add(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "add: length mismatch");
    zip_chunks(x, y, |x, y| {
        for (a, &b) in x.iter_mut().zip(y) {
            *a += b;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_adjacent_pairs_by_position_times_frequency() {
        let t = RopeTable::new(4, 4, 10000.0);
        let mut x = vec![1.0, 0.0, 1.0, 0.0];
        t.apply(&mut x, 4, 3);
        // Pair 0 turns by 3 rad, pair 1 by 3 * 10000^(-1/2) rad.
        let a1 = 3.0f32 * 0.01;
        let want = [3f32.cos(), 3f32.sin(), a1.cos(), a1.sin()];
        for (g, w) in x.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{x:?} vs {want:?}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = vec![1.0, 3.0, 2.0, -100.0];
        softmax(&Kernels::detect(), &mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[2] && x[2] > x[0] && x[0] > x[3]);
    }

    #[test]
    fn batched_element_wise_ops_match_the_one_row_ones_at_every_size() {
        // Sizes below, at and above the parallel split, with a ragged last piece.
        for n in [7, 2 * PAR_CHUNK, 3 * PAR_CHUNK + 96] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let y: Vec<f32> = (0..n)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 5.0)
                .collect();
            let (mut g, mut a) = (x.clone(), x.clone());
            swiglu(&Kernels::detect(), &mut g, &y);
            add(&mut a, &y);
            for i in 0..n {
                // The kernels' e^x, the same bits in every set (kernels' proptests).
                let e = cinder_kernels::scalar::exp_f32(-x[i]);
                assert_eq!(g[i], x[i] / (1.0 + e) * y[i], "swiglu {n} at {i}");
                assert_eq!(a[i], x[i] + y[i], "add {n} at {i}");
            }
            let dim = 32;
            let len = n / dim * dim;
            let w: Vec<f32> = (0..dim).map(|i| 0.5 + i as f32 / 16.0).collect();
            let mut out = vec![0.0; len];
            rmsnorm_rows(&mut out, &x[..len], &w, 1e-5);
            for (r, (o, xr)) in out.chunks(dim).zip(x[..len].chunks(dim)).enumerate() {
                let mut want = vec![0.0; dim];
                rmsnorm(&mut want, xr, &w, 1e-5);
                assert_eq!(o, &want[..], "rmsnorm_rows {n} row {r}");
            }
        }
    }

    #[test]
    fn rmsnorm_of_constant_row_is_the_weight() {
        let mut out = [0.0; 4];
        rmsnorm(&mut out, &[2.0; 4], &[1.0, 2.0, 3.0, 4.0], 0.0);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
    }
}
