//! The key/value cache: the rotated keys and the values of every past position, per layer,
//! allocated once for the session's context size.
//!
//! Keys are stored transposed, `[layer][kv_dim][position]`, and values `[layer][position]
//! [kv_dim]`, so both products of attention read row-major operands from the cache: the scores
//! `q K^T` take K^T's rows (one per head dimension, positions contiguous) and the output `p V`
//! takes V's rows (one per position), each through the kernels' tiled `gemm_f32_*` for a block
//! of query tokens at once.

use cinder_kernels::{Kernels, MatShape};
use half::f16;

/// Element type of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// IEEE half precision (half the memory; what llama.cpp uses by default).
    #[default]
    F16,
    /// f32 (exact).
    F32,
}

#[derive(Debug)]
enum Store {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl Store {
    fn new(ty: KvType, len: usize) -> Self {
        match ty {
            // Zeroed allocations (calloc): the OS hands out zero pages as they are first
            // touched, so a large context costs nothing until it is used.
            KvType::F16 => Store::F16(bytemuck::zeroed_vec(len)),
            KvType::F32 => Store::F32(vec![0.0; len]),
        }
    }

    fn set(&mut self, i: usize, v: f32) {
        match self {
            Store::F16(s) => s[i] = f16::from_f32(v),
            Store::F32(s) => s[i] = v,
        }
    }

    /// `c = a b`, with `b` the cache from element `start` on (see [`MatShape`]).
    fn gemm(&self, k: &Kernels, a: &[f32], start: usize, c: &mut [f32], s: MatShape) {
        match self {
            Store::F16(b) => k.gemm_f32_f16(a, &b[start..], c, s),
            Store::F32(b) => k.gemm_f32_f32(a, &b[start..], c, s),
        }
    }
}

/// Keys and values of up to `ctx_size` positions for every layer.
#[derive(Debug)]
pub struct KvCache {
    ty: KvType,
    n_layers: usize,
    ctx_size: usize,
    kv_dim: usize,
    k: Store,
    v: Store,
}

impl KvCache {
    /// A zeroed cache of `n_layers` x `ctx_size` positions x `kv_dim` values, for keys and for
    /// values.
    pub fn new(ty: KvType, n_layers: usize, ctx_size: usize, kv_dim: usize) -> Self {
        let len = n_layers * ctx_size * kv_dim;
        KvCache {
            ty,
            n_layers,
            ctx_size,
            kv_dim,
            k: Store::new(ty, len),
            v: Store::new(ty, len),
        }
    }

    /// Element type.
    pub fn ty(&self) -> KvType {
        self.ty
    }

    /// Positions per layer.
    pub fn ctx_size(&self) -> usize {
        self.ctx_size
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let elem = match self.ty {
            KvType::F16 => 2,
            KvType::F32 => 4,
        };
        2 * self.n_layers * self.ctx_size * self.kv_dim * elem
    }

    /// Store the key `k` and value `v` (`[kv_dim]` each) of position `pos` in `layer`.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        assert!(
            layer < self.n_layers && pos < self.ctx_size,
            "kv store out of range"
        );
        assert!(
            k.len() == self.kv_dim && v.len() == self.kv_dim,
            "kv store: row length"
        );
        let kbase = layer * self.kv_dim * self.ctx_size + pos;
        for (i, &x) in k.iter().enumerate() {
            self.k.set(kbase + i * self.ctx_size, x);
        }
        let vbase = (layer * self.ctx_size + pos) * self.kv_dim;
        for (i, &x) in v.iter().enumerate() {
            self.v.set(vbase + i, x);
        }
    }

    /// Attention scores of `m` query tokens of one head: `scores[t * lds + j] = q[t * ldq..]
    /// [..hd] . key(j)[offset..offset + hd]` for `t < m` and positions `j < positions`.
    #[allow(clippy::too_many_arguments)]
    pub fn key_scores(
        &self,
        k: &Kernels,
        layer: usize,
        offset: usize,
        (q, ldq): (&[f32], usize),
        (m, hd, positions): (usize, usize, usize),
        scores: &mut [f32],
        lds: usize,
    ) {
        assert!(
            positions <= self.ctx_size && offset + hd <= self.kv_dim,
            "key_scores: range"
        );
        let shape = MatShape {
            m,
            k: hd,
            n: positions,
            lda: ldq,
            ldb: self.ctx_size,
            ldc: lds,
        };
        let start = (layer * self.kv_dim + offset) * self.ctx_size;
        self.k.gemm(k, q, start, scores, shape);
    }

    /// Attention output of `m` query tokens of one head: `out[t * ldo + d] = sum_{j <
    /// positions} weights[t * ldw + j] * value(j)[offset + d]` for `t < m`, `d < hd`.
    #[allow(clippy::too_many_arguments)]
    pub fn mix_values(
        &self,
        k: &Kernels,
        layer: usize,
        offset: usize,
        (weights, ldw): (&[f32], usize),
        (m, hd, positions): (usize, usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        assert!(
            positions <= self.ctx_size && offset + hd <= self.kv_dim,
            "mix_values: range"
        );
        let shape = MatShape {
            m,
            k: positions,
            n: hd,
            lda: ldw,
            ldb: self.kv_dim,
            ldc: ldo,
        };
        let start = layer * self.ctx_size * self.kv_dim + offset;
        self.v.gemm(k, weights, start, out, shape);
    }
}
