//! The compute thread: loads the model, then runs every request on `--parallel` slots with
//! continuous batching.
//!
//! Each step (1) samples the next token of every slot whose logits are fresh, sends its text
//! and ends the requests that are done, (2) admits waiting requests to free slots, reusing the
//! longest cached prefix of their prompt, and (3) runs one forward pass over the next token of
//! every generating slot plus chunks of the prompts being read, so the weights are streamed
//! once per step for all of them. A request whose client has gone is dropped at the next step.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use cinder::batch::Sequences;
use cinder::sampler::{Sampler, SamplerParams};
use cinder::tokenizer::{DecodeStream, Tokenizer};
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::{Metrics, Permit};
use super::stop::StopMatcher;

/// A request for the compute thread.
pub struct Job {
    /// The prompt's token ids (not empty, shorter than the context).
    pub prompt: Vec<u32>,
    pub sampling: SamplerParams,
    pub logit_bias: Vec<(u32, f32)>,
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    /// Report the chosen token's log-probability and this many alternatives.
    pub logprobs: Option<usize>,
    /// Decode the generated text as the continuation of the prompt's (completions: a leading
    /// space is kept); otherwise as fresh text (chat).
    pub continue_text: bool,
    pub tx: UnboundedSender<Event>,
    /// Holds the request's place in the bounded queue until the job is dropped.
    pub _permit: Permit,
}

/// The log-probability of one generated token and of the most likely alternatives.
#[derive(Debug, Clone)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

/// Why a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What the compute thread sends back for a request.
#[derive(Debug)]
pub enum Event {
    /// Text that can be sent (possibly empty) and the log-probabilities of the token that
    /// produced it (when asked for).
    Text {
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// The end: why, and the number of tokens generated.
    Done {
        finish: Finish,
        completion_tokens: usize,
    },
    /// The model failed on this request.
    Failed(String),
}

/// Messages to the compute thread.
pub enum Msg {
    Job(Box<Job>),
    /// Finish the requests in hand, then return.
    Shutdown,
}

/// A request being served on a slot.
struct Active<'t> {
    job: Box<Job>,
    sampler: Sampler,
    decoder: DecodeStream<'t>,
    stop: StopMatcher,
    /// Prompt tokens already in the cache.
    fed: usize,
    /// The sampled token to evaluate next.
    next: Option<u32>,
    /// The slot's logits are this request's, ready to sample from.
    ready: bool,
    generated: usize,
    text: String,
}

struct Slot<'t> {
    /// The tokens the slot's cache holds (a prompt cache for the next request).
    cached: Vec<u32>,
    last_used: u64,
    active: Option<Active<'t>>,
}

/// Runs requests from `rx` on `seqs` until [`Msg::Shutdown`] (or the channel closes) and
/// every request in hand is answered.
pub fn run(seqs: &mut Sequences<'_>, tok: &Tokenizer, rx: &Receiver<Msg>, metrics: &Arc<Metrics>) {
    let vocab = tok.n_vocab();
    let mut slots: Vec<Slot<'_>> = (0..seqs.len())
        .map(|_| Slot {
            cached: Vec::new(),
            last_used: 0,
            active: None,
        })
        .collect();
    let mut waiting: VecDeque<Box<Job>> = VecDeque::new();
    let mut shutdown = false;
    let mut clock = 0u64;
    let mut biased = vec![0.0f32; vocab];
    let mut work_ids: Vec<(usize, Vec<u32>)> = Vec::new();
    let ctx = seqs.ctx_size();
    loop {
        // Take what has arrived; wait for something when idle.
        let idle = waiting.is_empty() && slots.iter().all(|s| s.active.is_none());
        if idle && shutdown {
            return;
        }
        if idle {
            match rx.recv() {
                Ok(Msg::Job(j)) => waiting.push_back(j),
                Ok(Msg::Shutdown) | Err(_) => return,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => waiting.push_back(j),
                Ok(Msg::Shutdown) | Err(TryRecvError::Disconnected) => shutdown = true,
                Err(TryRecvError::Empty) => break,
            }
            if shutdown {
                break;
            }
        }
        waiting.retain(|j| !j.tx.is_closed());

        // (1) Sample where the logits are fresh.
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(a) = slot.active.as_mut() else {
                continue;
            };
            if a.job.tx.is_closed() {
                slot.active = None;
                continue;
            }
            if !a.ready {
                continue;
            }
            a.ready = false;
            let logits = seqs.logits(i);
            let logits = if a.job.logit_bias.is_empty() {
                logits
            } else {
                biased.copy_from_slice(logits);
                for &(id, b) in &a.job.logit_bias {
                    biased[id as usize] += b;
                }
                &biased[..]
            };
            let Some(id) = a.sampler.sample(logits) else {
                let _ = a
                    .job
                    .tx
                    .send(Event::Failed("no logits to sample from".into()));
                slot.active = None;
                continue;
            };
            a.sampler.accept(id);
            let finish = if Some(id) == tok.eos_id() {
                Some(Finish::Stop)
            } else {
                a.generated += 1;
                metrics.generated_tokens.fetch_add(1, Ordering::Relaxed);
                let logprob = a.job.logprobs.map(|n| token_logprob(tok, logits, id, n));
                a.text.clear();
                a.decoder.push_into(id, &mut a.text);
                let (text, hit) = a.stop.push(&a.text);
                let _ = a.job.tx.send(Event::Text { text, logprob });
                if hit {
                    Some(Finish::Stop)
                } else if a.job.max_tokens.is_some_and(|m| a.generated >= m)
                    || seqs.position(i) + 1 >= ctx
                {
                    // The prompt and the answer fill the context (the token just sampled
                    // would be evaluated at its last position: nothing could follow it).
                    Some(Finish::Length)
                } else {
                    a.next = Some(id);
                    None
                }
            };
            if let Some(finish) = finish {
                let mut rest = a.decoder.finish();
                rest.push_str(&a.stop.finish());
                // After a matched stop string there is nothing held back.
                if !rest.is_empty() {
                    let _ = a.job.tx.send(Event::Text {
                        text: rest,
                        logprob: None,
                    });
                }
                metrics.requests_done.fetch_add(1, Ordering::Relaxed);
                let _ = a.job.tx.send(Event::Done {
                    finish,
                    completion_tokens: a.generated,
                });
                slot.active = None;
            }
        }

        // (2) Admit waiting requests to free slots: the one whose cache shares the longest
        // prefix with the prompt, else the least recently used.
        while let Some(free) = slots.iter().position(|s| s.active.is_none()) {
            let Some(job) = waiting.pop_front() else {
                break;
            };
            let best = (0..slots.len())
                .filter(|&i| slots[i].active.is_none())
                .max_by_key(|&i| {
                    let lcp = common_prefix(&slots[i].cached, &job.prompt);
                    (lcp, std::cmp::Reverse(slots[i].last_used))
                })
                .unwrap_or(free);
            let slot = &mut slots[best];
            // At least the prompt's last token is evaluated: its logits start the answer.
            let reuse = common_prefix(&slot.cached, &job.prompt).min(job.prompt.len() - 1);
            slot.cached.truncate(reuse);
            seqs.truncate(best, reuse);
            metrics
                .prompt_tokens_cached
                .fetch_add(reuse as u64, Ordering::Relaxed);
            clock += 1;
            slot.last_used = clock;
            let mut sampler = Sampler::new(job.sampling);
            let window = job.sampling.repeat_last_n;
            for &id in &job.prompt[job.prompt.len().saturating_sub(window)..] {
                sampler.accept(id);
            }
            let mut decoder = tok.decoder();
            if job.continue_text {
                let mut scratch = String::new();
                for &id in &job.prompt {
                    decoder.push_into(id, &mut scratch);
                }
            }
            slot.active = Some(Active {
                stop: StopMatcher::new(job.stop.clone()),
                job,
                sampler,
                decoder,
                fed: reuse,
                next: None,
                ready: false,
                generated: 0,
                text: String::new(),
            });
        }

        // (3) One forward pass: every generating slot's token, then prompt chunks.
        let budget = seqs.max_batch();
        let mut used = 0;
        let mut prompt_n = 0;
        work_ids.clear();
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(id) = slot.active.as_mut().and_then(|a| a.next.take()) {
                work_ids.push((i, vec![id]));
                used += 1;
            }
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(a) = slot.active.as_mut() else {
                continue;
            };
            let left = a.job.prompt.len() - a.fed;
            if left == 0 || used >= budget {
                continue;
            }
            let n = left.min(budget - used);
            work_ids.push((i, a.job.prompt[a.fed..a.fed + n].to_vec()));
            a.fed += n;
            used += n;
            prompt_n += n;
        }
        set_gauges(metrics, &slots, &waiting, seqs);
        if work_ids.is_empty() {
            continue;
        }
        let work: Vec<(usize, &[u32])> = work_ids.iter().map(|(i, t)| (*i, &t[..])).collect();
        let start = Instant::now();
        let result = seqs.eval(&work);
        let elapsed = start.elapsed();
        match result {
            Ok(()) => {
                for (i, tokens) in &work_ids {
                    let slot = &mut slots[*i];
                    slot.cached.extend_from_slice(tokens);
                    if let Some(a) = slot.active.as_mut()
                        && a.fed == a.job.prompt.len()
                    {
                        a.ready = true;
                    }
                }
                metrics
                    .prompt_tokens
                    .fetch_add(prompt_n as u64, Ordering::Relaxed);
                metrics
                    .busy_nanos
                    .fetch_add(duration_nanos(elapsed), Ordering::Relaxed);
            }
            Err(e) => {
                // The sequences of this step are in an unknown state: fail their requests and
                // forget their caches.
                for (i, _) in &work_ids {
                    let slot = &mut slots[*i];
                    slot.cached.clear();
                    seqs.truncate(*i, 0);
                    if let Some(a) = slot.active.take() {
                        let _ = a.job.tx.send(Event::Failed(e.to_string()));
                    }
                }
            }
        }
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn set_gauges(m: &Metrics, slots: &[Slot<'_>], waiting: &VecDeque<Box<Job>>, seqs: &Sequences) {
    let busy = slots.iter().filter(|s| s.active.is_some()).count();
    m.processing.store(busy as u64, Ordering::Relaxed);
    m.waiting.store(waiting.len() as u64, Ordering::Relaxed);
    let used: usize = (0..seqs.len()).map(|i| seqs.position(i)).sum();
    m.kv_used.store(used as u64, Ordering::Relaxed);
    m.kv_total
        .store((seqs.len() * seqs.ctx_size()) as u64, Ordering::Relaxed);
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A token's text as OpenAI shows it in logprobs (the piece, `▁` as a space).
pub fn token_text(tok: &Tokenizer, id: u32) -> String {
    let piece = tok.piece(id);
    if let Some(hex) = piece
        .strip_prefix("<0x")
        .and_then(|h| h.strip_suffix('>'))
        .filter(|h| h.len() == 2)
        && let Ok(b) = u8::from_str_radix(hex, 16)
    {
        return String::from_utf8_lossy(&[b]).into_owned();
    }
    piece.replace('\u{2581}', " ")
}

/// Log-softmax of the model's logits at `id`, and the `n` most likely tokens.
fn token_logprob(tok: &Tokenizer, logits: &[f32], id: u32, n: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = max + sum.ln() as f32;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if top.len() < n || l > top[top.len() - 1].1 {
                let at = top.partition_point(|&(_, x)| x >= l);
                top.insert(at, (i as u32, l));
                top.truncate(n);
            }
        }
    }
    TokenLogprob {
        token: token_text(tok, id),
        logprob: logits[id as usize] - log_z,
        top: top
            .into_iter()
            .map(|(i, l)| (token_text(tok, i), l - log_z))
            .collect(),
    }
}
