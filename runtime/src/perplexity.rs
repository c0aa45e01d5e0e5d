//! Perplexity as llama.cpp's `llama-perplexity` computes it, and KL divergence against saved
//! reference logits, which is how users judge a quantization.
//!
//! llama-perplexity's method: the text's tokens (BOS first) are cut into chunks of `n_ctx`
//! tokens; each chunk is evaluated from an empty cache with its first token replaced by BOS,
//! and only the second half is scored: the logits at positions `n_ctx/2 .. n_ctx-1` predict
//! the next token of the chunk. Perplexity is `exp(mean NLL)` over every scored token.

use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::model::Session;

/// Per-chunk progress and the final figures.
#[derive(Debug, Clone, Default)]
pub struct Perplexity {
    /// Sum of `-ln p(token)` over the scored tokens.
    pub nll_sum: f64,
    /// Sum of squared NLLs (for llama.cpp's error estimate).
    pub nll2_sum: f64,
    /// Number of scored tokens.
    pub count: usize,
    /// Number of chunks evaluated.
    pub chunks: usize,
}

impl Perplexity {
    /// `exp(mean NLL)`.
    pub fn ppl(&self) -> f64 {
        (self.nll_sum / self.count.max(1) as f64).exp()
    }

    /// llama.cpp's uncertainty of the PPL estimate (`ppl * stderr(mean NLL)`).
    pub fn ppl_error(&self) -> f64 {
        let n = self.count.max(2) as f64;
        let mean = self.nll_sum / n;
        let var = (self.nll2_sum / n - mean * mean).max(0.0);
        self.ppl() * (var / (n - 1.0)).sqrt()
    }

    fn add(&mut self, nll: f64) {
        self.nll_sum += nll;
        self.nll2_sum += nll * nll;
        self.count += 1;
    }
}

/// `ln softmax(logits)[token]`, computed in f64.
pub fn log_prob(logits: &[f32], token: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    logits[token as usize] as f64 - max - sum.ln()
}

/// Where the scored logits of each chunk go (for `--save-logits` / `--kl-divergence`).
pub trait LogitsSink: Send {
    /// `rows` rows of `vocab` logits, in the order the tokens were scored, with the tokens
    /// they predict.
    fn scored(&mut self, logits: &[f32], next_tokens: &[u32]) -> Result<()>;
}

/// Perplexity of `tokens` (BOS already first) in llama-perplexity's chunked method.
/// `on_chunk(i, running)` is called after each chunk.
pub fn perplexity(
    session: &mut Session<'_>,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    mut sink: Option<&mut dyn LogitsSink>,
    mut on_chunk: impl FnMut(usize, &Perplexity),
) -> Result<Perplexity> {
    if n_ctx < 4 {
        return Err(Error::BadOption(format!(
            "context {n_ctx} is too small for perplexity"
        )));
    }
    let n_chunks = tokens.len() / n_ctx;
    if n_chunks == 0 {
        return Err(Error::BadOption(format!(
            "the text has {} tokens; perplexity with -c {n_ctx} needs at least {n_ctx}",
            tokens.len()
        )));
    }
    let vocab = session.model().config().vocab_size;
    let first = n_ctx / 2;
    let mut result = Perplexity::default();
    let mut chunk = vec![0u32; n_ctx];
    let mut logits = Vec::with_capacity(n_ctx * vocab);
    for c in 0..n_chunks {
        chunk.copy_from_slice(&tokens[c * n_ctx..(c + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.reset();
        logits.clear();
        session.eval_all(&chunk, &mut logits)?;
        let scored = &logits[first * vocab..(n_ctx - 1) * vocab];
        let next = &tokens[c * n_ctx + first + 1..(c + 1) * n_ctx];
        for (row, &t) in scored.chunks_exact(vocab).zip(next) {
            result.add(-log_prob(row, t));
        }
        if let Some(s) = sink.as_deref_mut() {
            s.scored(scored, next)?;
        }
        result.chunks += 1;
        on_chunk(c, &result);
    }
    Ok(result)
}

/// Mean NLL over every position of one sequence (the fixtures' method: `tokens` evaluated
/// once, each token after the first scored).
pub fn sequence_nll(session: &mut Session<'_>, tokens: &[u32]) -> Result<Perplexity> {
    let vocab = session.model().config().vocab_size;
    let mut logits = Vec::new();
    session.reset();
    session.eval_all(tokens, &mut logits)?;
    let mut result = Perplexity {
        chunks: 1,
        ..Default::default()
    };
    for (row, &t) in logits.chunks_exact(vocab).zip(&tokens[1..]) {
        result.add(-log_prob(row, t));
    }
    Ok(result)
}

const LOGITS_MAGIC: &[u8; 8] = b"CNDRLGT1";

/// Writes scored logits to a file: `CNDRLGT1`, vocab (u32), then per scored token its id (u32)
/// and `vocab` f32 logits, little-endian.
pub struct LogitsWriter<W: Write> {
    out: W,
    vocab: usize,
}

impl<W: Write> LogitsWriter<W> {
    /// Start a logits file.
    pub fn new(mut out: W, vocab: usize) -> std::io::Result<Self> {
        out.write_all(LOGITS_MAGIC)?;
        out.write_all(&(vocab as u32).to_le_bytes())?;
        Ok(LogitsWriter { out, vocab })
    }

    /// Flush and return the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write + Send> LogitsSink for LogitsWriter<W> {
    fn scored(&mut self, logits: &[f32], next: &[u32]) -> Result<()> {
        let io = |e: std::io::Error| Error::BadOption(format!("writing logits: {e}"));
        for (row, &t) in logits.chunks_exact(self.vocab).zip(next) {
            self.out.write_all(&t.to_le_bytes()).map_err(io)?;
            let bytes: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.out.write_all(&bytes).map_err(io)?;
        }
        Ok(())
    }
}

/// Quality of a model against saved reference logits (llama.cpp's `--kl-divergence` figures).
#[derive(Debug, Clone, Default)]
pub struct KlDivergence {
    /// Sum of KL(reference || model) over scored tokens.
    pub kl_sum: f64,
    /// Scored tokens where both argmaxes agree.
    pub same_top: usize,
    /// Scored tokens.
    pub count: usize,
    /// NLL sums of the reference and of the model (for the PPL ratio).
    pub ref_nll: f64,
    /// See `ref_nll`.
    pub nll: f64,
}

impl KlDivergence {
    /// Mean KL divergence (nats).
    pub fn mean_kl(&self) -> f64 {
        self.kl_sum / self.count.max(1) as f64
    }
    /// Fraction of tokens whose top-1 token agrees.
    pub fn top1_agreement(&self) -> f64 {
        self.same_top as f64 / self.count.max(1) as f64
    }
    /// PPL(model) / PPL(reference).
    pub fn ppl_ratio(&self) -> f64 {
        ((self.nll - self.ref_nll) / self.count.max(1) as f64).exp()
    }
}

/// Reads a logits file written by [`LogitsWriter`] and compares each scored row with it.
pub struct KlReader<R: Read> {
    input: R,
    vocab: usize,
    reference: Vec<f32>,
    /// The running figures.
    pub kl: KlDivergence,
}

impl<R: Read> KlReader<R> {
    /// Open a reference logits file for a model with `vocab` logits per token.
    pub fn new(mut input: R, vocab: usize) -> Result<Self> {
        let bad = |m: String| Error::BadOption(format!("reference logits: {m}"));
        let mut head = [0u8; 12];
        input
            .read_exact(&mut head)
            .map_err(|e| bad(e.to_string()))?;
        if &head[..8] != LOGITS_MAGIC {
            return Err(bad("not a cinder logits file (bad magic)".into()));
        }
        let v = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
        if v != vocab {
            return Err(bad(format!(
                "vocabulary {v} differs from the model's {vocab}"
            )));
        }
        Ok(KlReader {
            input,
            vocab,
            reference: vec![0.0; vocab],
            kl: KlDivergence::default(),
        })
    }
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

impl<R: Read + Send> LogitsSink for KlReader<R> {
    fn scored(&mut self, logits: &[f32], next: &[u32]) -> Result<()> {
        let bad = |m: String| Error::BadOption(format!("reference logits: {m}"));
        let mut buf = vec![0u8; self.vocab * 4];
        for (row, &t) in logits.chunks_exact(self.vocab).zip(next) {
            let mut id = [0u8; 4];
            self.input.read_exact(&mut id).map_err(|_| {
                bad("ends before the text does (was it made with the same text and -c?)".into())
            })?;
            if u32::from_le_bytes(id) != t {
                return Err(bad(format!(
                    "token {} where the text has {t}: made from another text or tokenizer",
                    u32::from_le_bytes(id)
                )));
            }
            self.input
                .read_exact(&mut buf)
                .map_err(|e| bad(e.to_string()))?;
            for (r, c) in self.reference.iter_mut().zip(buf.chunks_exact(4)) {
                *r = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            // KL(P_ref || P) = sum p_ref (ln p_ref - ln p), both log-softmaxed in f64.
            let lse = |x: &[f32]| {
                let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
            };
            let (lr, lm) = (lse(&self.reference), lse(row));
            let kl: f64 = self
                .reference
                .iter()
                .zip(row)
                .map(|(&r, &m)| {
                    let lp = r as f64 - lr;
                    lp.exp() * (lp - (m as f64 - lm))
                })
                .sum();
            self.kl.kl_sum += kl.max(0.0);
            self.kl.same_top += usize::from(argmax(&self.reference) == argmax(row));
            self.kl.ref_nll += lr - self.reference[t as usize] as f64;
            self.kl.nll += lm - row[t as usize] as f64;
            self.kl.count += 1;
        }
        Ok(())
    }
}
