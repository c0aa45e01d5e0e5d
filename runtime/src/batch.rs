//! [`Sequences`]: several independent sequences on one model (a server's slots), each with its
//! own KV cache and position, evaluated together: one [`Sequences::eval`] takes some tokens of
//! any number of the sequences and runs them through one forward pass, so the weights are
//! streamed once for all of them, while each token attends only to its own sequence's past.

use crate::error::{Error, Result};
use crate::forward::{Logits, SeqTokens, State, forward_batch};
use crate::kv_cache::KvCache;
use crate::model::{Model, SessionOptions};

/// `n` sequences with their caches, one shared scratch state for batches of up to
/// `max_batch` tokens in all, and the last logits of each sequence.
#[derive(Debug)]
pub struct Sequences<'m> {
    model: &'m Model,
    kvs: Vec<KvCache>,
    positions: Vec<usize>,
    state: State,
    /// Logits of each sequence's last evaluated token, `[n][vocab]`.
    logits: Vec<f32>,
    has_logits: Vec<bool>,
    /// The batch description of one eval (reused, so evaluating does not allocate).
    batch: Vec<(usize, usize, usize)>,
    ids: Vec<u32>,
}

impl<'m> Sequences<'m> {
    /// `n` empty sequences on `model`; `opts.ctx_size` is each sequence's context (0: the
    /// model's) and `opts.max_batch` the most tokens one [`Sequences::eval`] takes in all (at
    /// most `n` whole contexts).
    pub fn new(model: &'m Model, n: usize, opts: SessionOptions) -> Result<Self> {
        let c = model.config();
        let ctx_size = if opts.ctx_size == 0 {
            c.context_length
        } else {
            opts.ctx_size
        };
        if n == 0 || opts.max_batch == 0 {
            return Err(Error::BadOption(
                "at least one sequence and a batch of at least one token are needed".into(),
            ));
        }
        // Sizes come from the command line or the file: count the bytes of every cache and
        // of the scratch, with checked arithmetic, before allocating any of them.
        crate::memory::SessionMemory::slots(c, n, ctx_size, opts.max_batch, opts.kv_type)?
            .check(0, crate::memory::available())?;
        let max_batch = crate::memory::slots_batch(n, ctx_size, opts.max_batch);
        Ok(Sequences {
            model,
            kvs: (0..n)
                .map(|_| KvCache::new(opts.kv_type, c.n_layers, ctx_size, c.kv_dim()))
                .collect(),
            positions: vec![0; n],
            state: State::new(c, max_batch, ctx_size),
            logits: vec![0.0; n * c.vocab_size],
            has_logits: vec![false; n],
            batch: Vec::with_capacity(n),
            ids: Vec::with_capacity(max_batch),
        })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.kvs.len()
    }

    /// Always false (there is at least one sequence).
    pub fn is_empty(&self) -> bool {
        self.kvs.is_empty()
    }

    /// Positions each sequence's cache holds.
    pub fn ctx_size(&self) -> usize {
        self.kvs[0].ctx_size()
    }

    /// Most tokens one [`Sequences::eval`] takes in all.
    pub fn max_batch(&self) -> usize {
        self.state.max_batch()
    }

    /// Bytes of all the KV caches.
    pub fn kv_bytes(&self) -> usize {
        self.kvs.iter().map(KvCache::bytes).sum()
    }

    /// Tokens in sequence `seq`'s cache.
    pub fn position(&self, seq: usize) -> usize {
        self.positions[seq]
    }

    /// Keep only the first `n` tokens of sequence `seq` (no-op if it has fewer); its logits are
    /// cleared.
    pub fn truncate(&mut self, seq: usize, n: usize) {
        if n < self.positions[seq] {
            self.positions[seq] = n;
            self.has_logits[seq] = false;
        }
    }

    /// Appends `work[i].1` to sequence `work[i].0`, for all `i` in one forward pass; afterwards
    /// [`Sequences::logits`] of each of those sequences predicts the token after its last one.
    /// Each sequence appears at most once; the tokens number 1 to [`Sequences::max_batch`] in
    /// all, and each sequence's must fit its context. On an error no position advances.
    pub fn eval(&mut self, work: &[(usize, &[u32])]) -> Result<()> {
        let vocab = self.model.config().vocab_size;
        let total: usize = work.iter().map(|(_, t)| t.len()).sum();
        if total == 0 || total > self.max_batch() {
            return Err(Error::BadOption(format!(
                "a batch of {total} tokens (1 to {} allowed)",
                self.max_batch()
            )));
        }
        self.batch.clear();
        self.ids.clear();
        for &(seq, tokens) in work {
            if seq >= self.len() || self.batch.iter().any(|&(s, _, _)| s == seq) {
                return Err(Error::BadOption(format!(
                    "sequence {seq} is unknown or appears twice"
                )));
            }
            if tokens.is_empty() {
                continue;
            }
            let pos = self.positions[seq];
            if pos + tokens.len() > self.ctx_size() {
                return Err(Error::ContextFull {
                    position: pos,
                    new: tokens.len(),
                    ctx_size: self.ctx_size(),
                });
            }
            if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::TokenOutOfRange { id, vocab });
            }
            self.batch.push((seq, pos, tokens.len()));
            self.ids.extend_from_slice(tokens);
        }
        for &(seq, _, _) in &self.batch {
            self.has_logits[seq] = false;
        }
        let mut caches: Vec<SeqTokens<'_>> = Vec::with_capacity(self.batch.len());
        {
            // Each sequence's cache, in the batch's order (disjoint borrows of `kvs`).
            let mut kvs: Vec<Option<&mut KvCache>> = self.kvs.iter_mut().map(Some).collect();
            for &(seq, pos, len) in &self.batch {
                let kv = kvs[seq].take().expect("each sequence once (checked above)");
                caches.push(SeqTokens { kv, pos, len });
            }
            forward_batch(
                self.model,
                &mut caches,
                &mut self.state,
                &self.ids,
                Logits::LastOfEach,
            )?;
        }
        drop(caches);
        let rows = self.state.logits(self.batch.len(), vocab);
        for (i, &(seq, _, len)) in self.batch.iter().enumerate() {
            self.logits[seq * vocab..(seq + 1) * vocab]
                .copy_from_slice(&rows[i * vocab..(i + 1) * vocab]);
            self.has_logits[seq] = true;
            self.positions[seq] += len;
        }
        Ok(())
    }

    /// Logits of sequence `seq`'s last evaluated token, `[vocab]` (empty before its first
    /// evaluation and after a [`Sequences::truncate`]).
    pub fn logits(&self, seq: usize) -> &[f32] {
        let vocab = self.model.config().vocab_size;
        if self.has_logits[seq] {
            &self.logits[seq * vocab..(seq + 1) * vocab]
        } else {
            &[]
        }
    }
}
