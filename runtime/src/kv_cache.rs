//! The key/value cache: the rotated keys and the values of every past position, per layer,
//! allocated once for the session's context size.
//!
//! Keys are stored `[layer][position][kv_dim]`, so a query dots one contiguous row per
//! position. Values are stored transposed, `[layer][kv_dim][position]`, so each output element
//! of attention is one contiguous dot product of the attention weights with a value column.

use cinder_kernels::Kernels;
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
            KvType::F16 => Store::F16(vec![f16::ZERO; len]),
            KvType::F32 => Store::F32(vec![0.0; len]),
        }
    }

    fn set(&mut self, i: usize, v: f32) {
        match self {
            Store::F16(s) => s[i] = f16::from_f32(v),
            Store::F32(s) => s[i] = v,
        }
    }

    /// `dot(self[range], x)`.
    fn dot(&self, k: &Kernels, start: usize, x: &[f32]) -> f32 {
        let r = start..start + x.len();
        match self {
            Store::F16(s) => k.vec_dot_f16_f32(&s[r], x),
            Store::F32(s) => k.vec_dot_f32_f32(&s[r], x),
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
        let kbase = (layer * self.ctx_size + pos) * self.kv_dim;
        for (i, &x) in k.iter().enumerate() {
            self.k.set(kbase + i, x);
        }
        let vbase = layer * self.kv_dim * self.ctx_size;
        for (i, &x) in v.iter().enumerate() {
            self.v.set(vbase + i * self.ctx_size + pos, x);
        }
    }

    /// `scores[t] = dot(key of position t, q)` for `t < scores.len()`, where `q` is one head
    /// (`head_dim` values) and `offset` the head's first element within `kv_dim`.
    pub fn key_scores(
        &self,
        k: &Kernels,
        layer: usize,
        offset: usize,
        q: &[f32],
        scores: &mut [f32],
    ) {
        assert!(
            scores.len() <= self.ctx_size && offset + q.len() <= self.kv_dim,
            "key_scores: range"
        );
        let base = layer * self.ctx_size * self.kv_dim + offset;
        for (t, s) in scores.iter_mut().enumerate() {
            *s = self.k.dot(k, base + t * self.kv_dim, q);
        }
    }

    /// `out[d] = sum_t weights[t] * value[t][offset + d]` over the positions `t < weights.len()`.
    pub fn mix_values(
        &self,
        k: &Kernels,
        layer: usize,
        offset: usize,
        weights: &[f32],
        out: &mut [f32],
    ) {
        assert!(
            weights.len() <= self.ctx_size && offset + out.len() <= self.kv_dim,
            "mix_values: range"
        );
        let base = (layer * self.kv_dim + offset) * self.ctx_size;
        for (d, o) in out.iter_mut().enumerate() {
            *o = self.v.dot(k, base + d * self.ctx_size, weights);
        }
    }
}
