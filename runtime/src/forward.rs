//! The Llama forward pass over a batch of tokens, and the scratch state it runs in.

use cinder_kernels::Kernels;
use cinder_quant::GgmlType;
use rayon::prelude::*;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::matmul::{MatmulScratch, matmul};
use crate::model::Model;
use crate::ops::{RopeTable, add, rmsnorm, rmsnorm_rows, softmax, swiglu};
use crate::weights::Tensor;

/// Below this many attention multiply-adds per layer (roughly), heads run on the calling
/// thread.
const PARALLEL_ATTENTION_MIN_WORK: usize = 1 << 14;

/// Query tokens per attention step of one head: their score rows (`ATTN_TOKENS x ctx`) are
/// one matrix product against the cached keys and one against the cached values.
const ATTN_TOKENS: usize = 16;

/// Which logits a forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only those of the last token of the batch (generation).
    Last,
    /// Those of every token of the batch (perplexity, tests).
    All,
    /// Those of the last token of each sequence of a [`forward_batch`] (a server's step).
    LastOfEach,
}

/// Every buffer the forward pass writes, allocated once for `max_batch` tokens.
#[derive(Debug)]
pub struct State {
    max_batch: usize,
    /// Residual stream, `[batch][dim]`.
    x: Vec<f32>,
    /// Normalized input of a sub-layer / its output before the residual add, `[batch][dim]`.
    xb: Vec<f32>,
    /// Queries, `[batch][n_heads * head_dim]`.
    q: Vec<f32>,
    /// Keys, `[batch][kv_dim]`.
    k: Vec<f32>,
    /// Values, `[batch][kv_dim]`.
    v: Vec<f32>,
    /// Attention output (heads concatenated), `[batch][dim]`.
    attn: Vec<f32>,
    /// Attention weights of `ATTN_TOKENS` tokens per head, `[n_heads][ATTN_TOKENS][ctx_size]`.
    att: Vec<f32>,
    /// SwiGLU gate, `[batch][ffn]`.
    gate: Vec<f32>,
    /// SwiGLU up, `[batch][ffn]`.
    up: Vec<f32>,
    /// Logits, `[batch][vocab]` (row 0 only when just the last token's are asked for).
    logits: Vec<f32>,
    /// Rotary cos/sin for every position of the context.
    rope: RopeTable,
    /// Quantized activations and output tiles of the matmuls.
    mm: MatmulScratch,
    /// Scratch of the matmuls that run beside `mm`'s when one token's Q/K/V or gate/up
    /// projections go in one parallel region (one token: no output tiles).
    mm_side: [MatmulScratch; 2],
}

impl State {
    /// Buffers for batches of up to `max_batch` tokens and a context of `ctx_size` positions.
    pub fn new(c: &Config, max_batch: usize, ctx_size: usize) -> Self {
        let b = max_batch;
        let max_cols = c.dim.max(c.ffn_dim);
        let max_rows = c.dim.max(c.ffn_dim).max(c.vocab_size);
        State {
            max_batch,
            x: vec![0.0; b * c.dim],
            xb: vec![0.0; b * c.dim],
            q: vec![0.0; b * c.dim],
            k: vec![0.0; b * c.kv_dim()],
            v: vec![0.0; b * c.kv_dim()],
            attn: vec![0.0; b * c.dim],
            att: vec![0.0; c.n_heads * ATTN_TOKENS * ctx_size],
            gate: vec![0.0; b * c.ffn_dim],
            up: vec![0.0; b * c.ffn_dim],
            logits: vec![0.0; b * c.vocab_size],
            rope: RopeTable::new(ctx_size, c.rope_dim, c.rope_base),
            mm: MatmulScratch::new(b, max_cols, max_rows),
            mm_side: [
                MatmulScratch::new(1, max_cols, 0),
                MatmulScratch::new(1, max_cols, 0),
            ],
        }
    }

    /// Largest batch [`forward`] accepts.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The logits the last [`forward`] computed: `[rows][vocab]`, where rows is the batch size
    /// for [`Logits::All`], 1 for [`Logits::Last`] and the number of sequences for
    /// [`Logits::LastOfEach`].
    pub fn logits(&self, rows: usize, vocab: usize) -> &[f32] {
        &self.logits[..rows * vocab]
    }
}

/// Run the model on `tokens`, at positions `pos..pos + tokens.len()`, given the keys and values
/// of positions `0..pos` in `kv`; stores this batch's keys and values in `kv` and the requested
/// logits in `s` (see [`State::logits`]).
///
/// Panics unless `1 <= tokens.len() <= s.max_batch()` and the positions fit `kv` and `s`'s
/// context (the session checks both); unknown token ids are an error.
pub fn forward(
    model: &Model,
    kv: &mut KvCache,
    s: &mut State,
    tokens: &[u32],
    pos: usize,
    which: Logits,
) -> Result<()> {
    let len = tokens.len();
    forward_batch(model, &mut [SeqTokens { kv, pos, len }], s, tokens, which)
}

/// One sequence's part of a batch: `len` consecutive tokens of the batch, at positions
/// `pos..pos + len` of that sequence, whose earlier keys and values are in `kv`.
#[derive(Debug)]
pub struct SeqTokens<'a> {
    /// The sequence's cache.
    pub kv: &'a mut KvCache,
    /// Position of its first token in the batch.
    pub pos: usize,
    /// How many of the batch's tokens are its.
    pub len: usize,
}

/// [`forward`] over tokens of several sequences at once: `tokens` is the concatenation of each
/// sequence's tokens, in the order of `seqs`. The matrix products take all the tokens together
/// (the weights are streamed once); RoPE, the cache and attention take each token at its own
/// sequence's position, against that sequence's past only. [`Logits::LastOfEach`] gives one
/// row per sequence, in the order of `seqs`.
///
/// Panics unless the lengths add up to `tokens.len()`, which is 1 to `s.max_batch()`, and each
/// sequence's positions fit its cache and `s`'s context.
pub fn forward_batch(
    model: &Model,
    seqs: &mut [SeqTokens<'_>],
    s: &mut State,
    tokens: &[u32],
    which: Logits,
) -> Result<()> {
    let c = model.config();
    let w = model.weights();
    let k = model.kernels();
    let file = model.bytes();
    let n = tokens.len();
    assert!(n >= 1 && n <= s.max_batch, "forward: batch of {n} tokens");
    assert_eq!(
        seqs.iter().map(|sq| sq.len).sum::<usize>(),
        n,
        "forward: sequence lengths"
    );
    for sq in seqs.iter() {
        assert!(
            sq.pos + sq.len <= sq.kv.ctx_size() && sq.pos + sq.len <= s.rope.positions(),
            "forward: context"
        );
    }
    let (dim, kv_dim, hd) = (c.dim, c.kv_dim(), c.head_dim);
    let (ffn, vocab, eps) = (c.ffn_dim, c.vocab_size, c.norm_eps);
    let scale = 1.0 / (hd as f32).sqrt();
    let State {
        x,
        xb,
        q,
        k: kb,
        v: vb,
        attn,
        att,
        gate,
        up,
        logits,
        rope,
        mm,
        mm_side,
        ..
    } = s;
    let x = &mut x[..n * dim];
    let xb = &mut xb[..n * dim];
    let q = &mut q[..n * dim];
    let kb = &mut kb[..n * kv_dim];
    let vb = &mut vb[..n * kv_dim];
    let attn = &mut attn[..n * dim];
    let gate = &mut gate[..n * ffn];
    let up = &mut up[..n * ffn];

    // x[n][dim] = token_embd[tokens]
    for (&id, xr) in tokens.iter().zip(x.chunks_exact_mut(dim)) {
        if id as usize >= vocab {
            return Err(Error::TokenOutOfRange { id, vocab });
        }
        embed(k, file, &w.token_embd, id as usize, xr)?;
    }

    for (l, lw) in w.layers.iter().enumerate() {
        // --- attention block ---
        // xb[n][dim] = RMSNorm(x) * attn_norm
        let norm = lw.attn_norm.f32s(file)?;
        rmsnorm_rows(xb, x, norm, eps);
        // q[n][dim] = xb Wq^T, k[n][kv_dim] = xb Wk^T, v[n][kv_dim] = xb Wv^T
        // (One token: the three matmuls share one parallel region; a region costs a thread
        // wake-up and a join, which at generation speed is a visible part of a token.)
        if n == 1 {
            let [m1, m2] = &mut *mm_side;
            let xb = &*xb;
            let (a, (b, c)) = rayon::join(
                || matmul(k, file, &lw.wq, xb, q, mm),
                || {
                    rayon::join(
                        || matmul(k, file, &lw.wk, xb, kb, m1),
                        || matmul(k, file, &lw.wv, xb, vb, m2),
                    )
                },
            );
            a?;
            b?;
            c?;
        } else {
            matmul(k, file, &lw.wq, xb, q, mm)?;
            matmul(k, file, &lw.wk, xb, kb, mm)?;
            matmul(k, file, &lw.wv, xb, vb, mm)?;
        }
        // RoPE on q and k: adjacent pairs of each head, at each token's position in its
        // sequence; then k, v -> that sequence's cache[l][position].
        let mut t = 0;
        for sq in seqs.iter_mut() {
            for p in sq.pos..sq.pos + sq.len {
                rope.apply(&mut q[t * dim..(t + 1) * dim], hd, p);
                rope.apply(&mut kb[t * kv_dim..(t + 1) * kv_dim], hd, p);
                sq.kv.store(
                    l,
                    p,
                    &kb[t * kv_dim..(t + 1) * kv_dim],
                    &vb[t * kv_dim..(t + 1) * kv_dim],
                );
                t += 1;
            }
        }
        // attn[t][h] = softmax(q[t][h] . K[0..=p][h / group] / sqrt(hd)) . V[0..=p][h / group]
        // for each token t at position p of its sequence (causal, that sequence's cache K, V)
        // and query head h. One task per head runs every token, sequence by sequence,
        // ATTN_TOKENS at a time (scores of a block: [m][positions], the positions after a
        // token's own zeroed), writing head-major into xb (`[n_heads][n][hd]`, free until the
        // output projection), which is then transposed into attn.
        let (seqs_ref, q_ref) = (&*seqs, &*q);
        let ctx = att.len() / (c.n_heads * ATTN_TOKENS);
        let head = |(h, (o, sc)): (usize, (&mut [f32], &mut [f32]))| {
            let kv_off = (h / c.gqa_group()) * hd;
            let mut first = 0;
            for sq in seqs_ref {
                let (kv_ref, pos) = (&*sq.kv, sq.pos);
                for t0 in (0..sq.len).step_by(ATTN_TOKENS) {
                    let m = ATTN_TOKENS.min(sq.len - t0);
                    let positions = pos + t0 + m;
                    let q_block = (&q_ref[(first + t0) * dim + h * hd..], dim);
                    kv_ref.key_scores(k, l, kv_off, q_block, (m, hd, positions), sc, ctx);
                    for (t, row) in sc.chunks_mut(ctx).take(m).enumerate() {
                        let (seen, future) = row[..positions].split_at_mut(pos + t0 + t + 1);
                        seen.iter_mut().for_each(|v| *v *= scale);
                        softmax(k, seen);
                        future.fill(0.0);
                    }
                    let o = &mut o[(first + t0) * hd..];
                    kv_ref.mix_values(k, l, kv_off, (sc, ctx), (m, hd, positions), o, hd);
                }
                first += sq.len;
            }
        };
        let work: usize = seqs.iter().map(|sq| sq.len * (sq.pos + sq.len) * dim).sum();
        if work >= PARALLEL_ATTENTION_MIN_WORK {
            xb.par_chunks_mut(n * hd)
                .zip(att.par_chunks_mut(ATTN_TOKENS * ctx))
                .enumerate()
                .for_each(head);
        } else {
            xb.chunks_mut(n * hd)
                .zip(att.chunks_mut(ATTN_TOKENS * ctx))
                .enumerate()
                .for_each(head);
        }
        for (t, out) in attn.chunks_exact_mut(dim).enumerate() {
            for (h, o) in out.chunks_exact_mut(hd).enumerate() {
                o.copy_from_slice(&xb[(h * n + t) * hd..(h * n + t + 1) * hd]);
            }
        }
        // x[n][dim] += attn Wo^T
        matmul(k, file, &lw.wo, attn, xb, mm)?;
        add(x, xb);

        // --- feed-forward block ---
        // xb[n][dim] = RMSNorm(x) * ffn_norm
        let norm = lw.ffn_norm.f32s(file)?;
        rmsnorm_rows(xb, x, norm, eps);
        // gate[n][ffn] = xb Wgate^T, up[n][ffn] = xb Wup^T, gate = silu(gate) * up
        if n == 1 {
            let xb = &*xb;
            let (a, b) = rayon::join(
                || matmul(k, file, &lw.w_gate, xb, gate, mm),
                || matmul(k, file, &lw.w_up, xb, up, &mut mm_side[0]),
            );
            a?;
            b?;
        } else {
            matmul(k, file, &lw.w_gate, xb, gate, mm)?;
            matmul(k, file, &lw.w_up, xb, up, mm)?;
        }
        swiglu(k, gate, up);
        // x[n][dim] += gate Wdown^T
        matmul(k, file, &lw.w_down, gate, xb, mm)?;
        add(x, xb);
    }

    // logits[rows][vocab] = RMSNorm(x[rows]) * output_norm . Wout^T, rows = all tokens, the
    // last, or the last of each sequence
    let norm = w.output_norm.f32s(file)?;
    let mut rows = 0;
    let mut last_of_each = seqs.iter().scan(0, |end, sq| {
        *end += sq.len;
        Some(*end - 1)
    });
    let mut next_row = |i: usize| -> Option<usize> {
        match which {
            Logits::All => (i < n).then_some(i),
            Logits::Last => (i == 0).then_some(n - 1),
            Logits::LastOfEach => last_of_each.next(),
        }
    };
    while let Some(t) = next_row(rows) {
        rmsnorm(
            &mut xb[rows * dim..(rows + 1) * dim],
            &x[t * dim..(t + 1) * dim],
            norm,
            eps,
        );
        rows += 1;
    }
    let xb = &xb[..rows * dim];
    matmul(k, file, &w.output, xb, &mut logits[..rows * vocab], mm)?;
    Ok(())
}

/// `out = row `id` of the embedding table`, dequantized.
fn embed(k: &Kernels, file: &[u8], t: &Tensor, id: usize, out: &mut [f32]) -> Result<()> {
    let rb = t.row_bytes();
    let row = &t.bytes(file)[id * rb..(id + 1) * rb];
    let done = match t.ty() {
        GgmlType::F32 => bytemuck::try_cast_slice(row)
            .map(|r| out.copy_from_slice(r))
            .is_ok(),
        GgmlType::F16 => bytemuck::try_cast_slice(row)
            .map(|r| k.dequantize_row_f16(r, out))
            .is_ok(),
        GgmlType::Q4_0 => bytemuck::try_cast_slice(row)
            .map(|r| k.dequantize_row_q4_0(r, out))
            .is_ok(),
        GgmlType::Q8_0 => bytemuck::try_cast_slice(row)
            .map(|r| k.dequantize_row_q8_0(r, out))
            .is_ok(),
        GgmlType::Q6_K => bytemuck::try_cast_slice(row)
            .map(|r| k.dequantize_row_q6_k(r, out))
            .is_ok(),
        _ => false,
    };
    if !done {
        cinder_quant::reference::dequantize(t.ty(), row, out).map_err(|source| {
            Error::Dequantize {
                name: t.name().to_string(),
                source,
            }
        })?;
    }
    Ok(())
}
