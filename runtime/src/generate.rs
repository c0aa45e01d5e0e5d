//! [`Generator`]: evaluate a prompt, then produce tokens one at a time with their text.
//!
//! The prompt is evaluated in batches (the session splits it by its `max_batch`); each
//! generated token is sampled from the last logits, decoded by the streaming decoder, and
//! evaluated so the next logits are ready. Generation stops at EOS, after the requested number
//! of tokens, or when the context is full, and says which. The token loop allocates nothing
//! beyond the decoded text, whose buffer is reused.

use std::time::{Duration, Instant};

use cinder_quant::gguf::Gguf;

use crate::error::{Error, Result};
use crate::model::{Model, Session};
use crate::sampler::Sampler;
use crate::tokenizer::{DecodeStream, Tokenizer};

/// The tokenizer described by the model's GGUF metadata.
pub fn load_tokenizer(model: &Model) -> Result<Tokenizer> {
    let path = model.path().to_path_buf();
    let g = Gguf::parse(model.bytes()).map_err(|source| Error::Gguf {
        path: path.clone(),
        source,
    })?;
    Tokenizer::from_gguf(&g).map_err(|source| Error::Tokenizer { path, source })
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced the end-of-sequence token.
    Eos,
    /// The requested number of tokens was generated.
    Limit,
    /// The KV cache has no room for another token.
    ContextFull,
    /// The caller stopped it (the callback of [`Generator::run`] returned `false`).
    Interrupted,
}

/// Token counts and wall-clock times of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Time spent evaluating them.
    pub prompt_time: Duration,
    /// Tokens generated (sampled and returned; EOS is not counted).
    pub generated_tokens: usize,
    /// Time spent sampling and evaluating generated tokens.
    pub generate_time: Duration,
}

impl Timings {
    /// Prompt tokens per second (0 when nothing was measured).
    pub fn prompt_tokens_per_second(&self) -> f64 {
        per_second(self.prompt_tokens, self.prompt_time)
    }

    /// Generated tokens per second (0 when nothing was measured).
    pub fn generate_tokens_per_second(&self) -> f64 {
        per_second(self.generated_tokens, self.generate_time)
    }
}

fn per_second(n: usize, t: Duration) -> f64 {
    let s = t.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// Options of a [`Generator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenerateOptions {
    /// Most tokens to generate; `None` runs until EOS or a full context.
    pub max_tokens: Option<usize>,
    /// Run the prompt through the streaming decoder, so the generated text continues it
    /// exactly (the prompt's own text is then available from [`Generator::prompt_text`]).
    /// Off, the first generated piece loses its leading space, as a fresh decode does.
    pub decode_prompt: bool,
}

/// Generates tokens on a session: [`Generator::prompt`], then [`Generator::next_token`] until
/// it returns `None` (or [`Generator::run`] with a callback).
#[derive(Debug)]
pub struct Generator<'a, 'm> {
    session: &'a mut Session<'m>,
    tokenizer: &'a Tokenizer,
    sampler: &'a mut Sampler,
    decoder: DecodeStream<'a>,
    opts: GenerateOptions,
    /// Text of the last token (or of the prompt, until the first token).
    text: String,
    prompt_text: String,
    stop: Option<StopReason>,
    /// The last returned token could not be evaluated: the context is full.
    full: bool,
    timings: Timings,
}

impl<'a, 'm> Generator<'a, 'm> {
    /// A generator continuing whatever `session` holds.
    pub fn new(
        session: &'a mut Session<'m>,
        tokenizer: &'a Tokenizer,
        sampler: &'a mut Sampler,
        opts: GenerateOptions,
    ) -> Self {
        Generator {
            session,
            tokenizer,
            sampler,
            decoder: tokenizer.decoder(),
            opts,
            text: String::new(),
            prompt_text: String::new(),
            stop: None,
            full: false,
            timings: Timings::default(),
        }
    }

    /// Evaluates `tokens` after what the session holds and records them in the sampler's
    /// penalty window. May be called more than once before generating.
    pub fn prompt(&mut self, tokens: &[u32]) -> Result<()> {
        let vocab = self.session.model().config().vocab_size;
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::TokenOutOfRange { id, vocab });
        }
        let start = Instant::now();
        self.session.eval(tokens)?;
        self.timings.prompt_time += start.elapsed();
        self.timings.prompt_tokens += tokens.len();
        for &id in tokens {
            self.sampler.accept(id);
            if self.opts.decode_prompt {
                self.decoder.push_into(id, &mut self.prompt_text);
            }
        }
        Ok(())
    }

    /// The decoded prompt (empty unless [`GenerateOptions::decode_prompt`]; incomplete UTF-8 at
    /// its end is held back until the next token).
    pub fn prompt_text(&self) -> &str {
        &self.prompt_text
    }

    /// Samples, decodes and evaluates the next token; returns its id and the text it completes
    /// (possibly empty), or `None` once generation has stopped (see [`Generator::stop_reason`]).
    pub fn next_token(&mut self) -> Result<Option<(u32, &str)>> {
        if self.stop.is_some() {
            return Ok(None);
        }
        if self.full {
            return Ok(self.finish(StopReason::ContextFull));
        }
        if self
            .opts
            .max_tokens
            .is_some_and(|n| self.timings.generated_tokens >= n)
        {
            return Ok(self.finish(StopReason::Limit));
        }
        let start = Instant::now();
        let logits = self.session.logits();
        if logits.is_empty() {
            return Err(Error::NoPrompt);
        }
        let Some(id) = self.sampler.sample(logits) else {
            return Err(Error::NoPrompt);
        };
        self.sampler.accept(id);
        if Some(id) == self.tokenizer.eos_id() {
            self.timings.generate_time += start.elapsed();
            return Ok(self.finish(StopReason::Eos));
        }
        self.timings.generated_tokens += 1;
        self.text.clear();
        self.decoder.push_into(id, &mut self.text);
        // Evaluate it unless nothing will ever read the logits.
        let last = self
            .opts
            .max_tokens
            .is_some_and(|n| self.timings.generated_tokens >= n);
        if !last {
            if self.session.position() < self.session.ctx_size() {
                self.session.eval(&[id])?;
            } else {
                self.full = true;
            }
        }
        self.timings.generate_time += start.elapsed();
        Ok(Some((id, &self.text)))
    }

    fn finish(&mut self, reason: StopReason) -> Option<(u32, &str)> {
        self.stop = Some(reason);
        None
    }

    /// Generates until a stop, calling `on_token(id, text)` for every token; `on_token`
    /// returning `false` stops with [`StopReason::Interrupted`]. Returns the reason.
    pub fn run(&mut self, mut on_token: impl FnMut(u32, &str) -> bool) -> Result<StopReason> {
        while let Some((id, text)) = self.next_token()? {
            if !on_token(id, text) {
                self.stop = Some(StopReason::Interrupted);
                break;
            }
        }
        Ok(self.stop.unwrap_or(StopReason::Interrupted))
    }

    /// Ends the stream: the text of bytes the decoder still holds (each becomes U+FFFD).
    pub fn flush(&mut self) -> String {
        self.decoder.finish()
    }

    /// Why generation stopped (`None` while it can go on).
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Counts and times so far.
    pub fn timings(&self) -> Timings {
        self.timings
    }
}
