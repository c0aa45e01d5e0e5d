//! Speed measurements the way llama-bench makes them: prompt processing (`pp512`: one batched
//! evaluation of 512 tokens from an empty cache) and text generation (`tg128`: 128 single-token
//! decodes from an empty cache), repeated, after one warm-up run. With a depth `d` (llama-bench's
//! `-d`), each repetition first fills the cache with `d` tokens, untimed, and the test runs
//! after them (`pp512 @ d4096`).

use std::time::Instant;

use crate::error::Result;
use crate::model::Session;

/// One test of a benchmark run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// Prompt processing of `n` tokens in one batched evaluation.
    Prompt(usize),
    /// Generation of `n` tokens, one decode each.
    Generate(usize),
}

impl Test {
    /// llama-bench's name: `pp512`, `tg128`.
    pub fn name(self) -> String {
        match self {
            Test::Prompt(n) => format!("pp{n}"),
            Test::Generate(n) => format!("tg{n}"),
        }
    }

    /// Tokens the test evaluates.
    pub fn tokens(self) -> usize {
        match self {
            Test::Prompt(n) | Test::Generate(n) => n,
        }
    }
}

/// Timings of the repetitions of one test.
#[derive(Debug, Clone)]
pub struct Samples {
    /// The test.
    pub test: Test,
    /// Tokens in the cache before the timed part (llama-bench's `n_depth`).
    pub depth: usize,
    /// Nanoseconds of each repetition.
    pub ns: Vec<u64>,
}

impl Samples {
    /// Tokens per second of each repetition.
    pub fn tokens_per_second(&self) -> Vec<f64> {
        self.ns
            .iter()
            .map(|&ns| self.test.tokens() as f64 * 1e9 / ns.max(1) as f64)
            .collect()
    }

    /// Mean and sample standard deviation of `xs`.
    pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
        let n = xs.len().max(1) as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = if xs.len() > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        (mean, var.sqrt())
    }
}

/// Deterministic token ids in `1..vocab` (speed does not depend on which tokens).
fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (1 + s % (vocab as u64 - 1).max(1)) as u32
        })
        .collect()
}

fn once(
    session: &mut Session<'_>,
    test: Test,
    toks: &[u32],
    fill: &[u32],
    batch: usize,
) -> Result<u64> {
    session.reset();
    for chunk in fill.chunks(batch.max(1)) {
        session.eval(chunk)?;
    }
    let start = Instant::now();
    match test {
        Test::Prompt(_) => session.eval(toks)?,
        Test::Generate(_) => {
            for t in toks {
                session.eval(std::slice::from_ref(t))?;
            }
        }
    }
    Ok(start.elapsed().as_nanos() as u64)
}

/// Run `test` `reps` times after one warm-up run, each time after `depth` tokens evaluated
/// (untimed) in batches of `batch`. The session must hold `depth + test.tokens()` positions
/// and batches of `batch` tokens and, for prompt tests, of `test.tokens()`.
pub fn run(
    session: &mut Session<'_>,
    test: Test,
    reps: usize,
    (depth, batch): (usize, usize),
) -> Result<Samples> {
    let vocab = session.model().config().vocab_size;
    let toks = tokens(test.tokens(), vocab, test.tokens() as u64);
    let fill = tokens(depth, vocab, depth as u64 + 7);
    once(session, test, &toks, &fill, batch)?;
    let ns = (0..reps.max(1))
        .map(|_| once(session, test, &toks, &fill, batch))
        .collect::<Result<Vec<_>>>()?;
    Ok(Samples { test, depth, ns })
}
