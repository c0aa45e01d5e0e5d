//! Choosing the next token from the logits, in llama.cpp's default order:
//!
//! 1. penalties: repetition (divide a positive logit, multiply a negative one), frequency
//!    (minus `count * f`) and presence (minus `p` once) over the last `repeat_last_n` tokens;
//! 2. top-k: keep the `k` highest logits;
//! 3. top-p (nucleus): keep the smallest set of most likely tokens whose probability reaches `p`;
//! 4. min-p: drop tokens less likely than `min_p` times the most likely one;
//! 5. temperature: divide the logits by `t`;
//! 6. draw from the softmax of what is left with a seeded PRNG.
//!
//! A temperature of 0 (or less) is greedy: the argmax after the penalties, ties to the lowest id.
//! Every stage is a function over a [`Candidate`] list so that each can be tested alone.
//! After the first call the sampler does not allocate: its buffers are kept and reused.

use std::cmp::Ordering;
use std::collections::VecDeque;

/// Sampling settings; [`Default`] gives llama.cpp's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerParams {
    /// Softmax temperature; `<= 0` is greedy (argmax).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Nucleus threshold; 1 keeps all.
    pub top_p: f32,
    /// Minimum probability relative to the most likely token; 0 keeps all.
    pub min_p: f32,
    /// Repetition penalty; 1 is off.
    pub repeat_penalty: f32,
    /// How many of the latest tokens the penalties look at; 0 turns all penalties off.
    pub repeat_last_n: usize,
    /// Subtracted from a logit once per occurrence in the window; 0 is off.
    pub frequency_penalty: f32,
    /// Subtracted from the logit of any token present in the window; 0 is off.
    pub presence_penalty: f32,
    /// Seed of the random number generator.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0x5eed,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding (temperature 0, no penalties).
    pub fn greedy() -> Self {
        SamplerParams {
            temperature: 0.0,
            ..Self::default()
        }
    }

    fn penalties_on(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }
}

/// xoshiro256** seeded through splitmix64: small, fast, and the same sequence on every
/// platform for a given seed.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is four splitmix64 outputs of `seed` (never all zero).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [splitmix(), splitmix(), splitmix(), splitmix()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform number in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// One candidate token: its id, its (possibly modified) logit, and its probability once
/// [`softmax`] has run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Logit after the stages so far.
    pub logit: f32,
    /// Probability among the remaining candidates (valid after [`softmax`]).
    pub p: f32,
}

/// Higher logit first; equal logits by lower id (a total order, NaN last).
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Fills `out` with one candidate per logit, in id order.
pub fn candidates_from_logits(logits: &[f32], out: &mut Vec<Candidate>) {
    out.clear();
    out.extend(logits.iter().enumerate().map(|(id, &logit)| Candidate {
        id: id as u32,
        logit,
        p: 0.0,
    }));
}

/// Applies the repetition, frequency and presence penalties for the tokens in `recent` to
/// `cands`, which must still be the full list in id order (`cands[id].id == id`). `scratch` is
/// reused to count occurrences. Ids outside the list are ignored.
pub fn apply_penalties(
    cands: &mut [Candidate],
    recent: impl IntoIterator<Item = u32>,
    repeat: f32,
    frequency: f32,
    presence: f32,
    scratch: &mut Vec<u32>,
) {
    scratch.clear();
    scratch.extend(recent);
    scratch.sort_unstable();
    let mut i = 0;
    while i < scratch.len() {
        let id = scratch[i];
        let run = scratch[i..].iter().take_while(|&&x| x == id).count();
        i += run;
        let Some(c) = cands.get_mut(id as usize) else {
            continue;
        };
        assert_eq!(
            c.id, id,
            "penalties need the full candidate list in id order"
        );
        // Dividing a negative logit would make the token more likely: multiply it instead.
        if c.logit <= 0.0 {
            c.logit *= repeat;
        } else {
            c.logit /= repeat;
        }
        c.logit -= run as f32 * frequency + presence;
    }
}

/// Keeps the `k` highest logits (ties: lower id), sorted best first. `k == 0` or `k >= len`
/// keeps all (and leaves the order alone).
pub fn top_k(cands: &mut Vec<Candidate>, k: usize) {
    if k == 0 || k >= cands.len() {
        return;
    }
    cands.select_nth_unstable_by(k - 1, by_logit_desc);
    cands.truncate(k);
    cands.sort_unstable_by(by_logit_desc);
}

/// Sorts best first and sets `p` to the softmax of the logits.
pub fn softmax(cands: &mut [Candidate]) {
    cands.sort_unstable_by(by_logit_desc);
    let Some(max) = cands.first().map(|c| c.logit) else {
        return;
    };
    let mut sum = 0.0f64;
    for c in cands.iter_mut() {
        c.p = (c.logit - max).exp();
        sum += f64::from(c.p);
    }
    let inv = (1.0 / sum) as f32;
    for c in cands.iter_mut() {
        c.p *= inv;
    }
}

/// Keeps the smallest prefix of the most likely tokens whose probability sum reaches `p`
/// (at least one token). `p >= 1` keeps all.
pub fn top_p(cands: &mut Vec<Candidate>, p: f32) {
    if p >= 1.0 || cands.is_empty() {
        return;
    }
    softmax(cands);
    let mut sum = 0.0f32;
    let mut keep = cands.len();
    for (i, c) in cands.iter().enumerate() {
        sum += c.p;
        if sum >= p {
            keep = i + 1;
            break;
        }
    }
    cands.truncate(keep);
}

/// Drops the tokens whose probability is below `min_p` times the largest one (at least one
/// token stays). `min_p <= 0` keeps all.
pub fn min_p(cands: &mut Vec<Candidate>, min_p: f32) {
    if min_p <= 0.0 || cands.is_empty() {
        return;
    }
    let max = cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    // p_i / p_max = exp(l_i - l_max) >= min_p  <=>  l_i >= l_max + ln(min_p).
    let threshold = max + min_p.ln();
    cands.retain(|c| c.logit >= threshold);
}

/// Divides the logits by `t`; `t <= 0` keeps only the highest logit (ties: lowest id).
pub fn temperature(cands: &mut Vec<Candidate>, t: f32) {
    if t <= 0.0 {
        if let Some(best) = cands.iter().copied().min_by(by_logit_desc) {
            cands.clear();
            cands.push(best);
        }
        return;
    }
    for c in cands.iter_mut() {
        c.logit /= t;
    }
}

/// Draws one candidate from the softmax of the logits (`None` for an empty list).
pub fn draw(cands: &mut [Candidate], rng: &mut Rng) -> Option<u32> {
    softmax(cands);
    let u = rng.next_f64();
    let mut sum = 0.0f64;
    for c in cands.iter() {
        sum += f64::from(c.p);
        if u < sum {
            return Some(c.id);
        }
    }
    // Rounding left the sum just under 1: the last token with any probability.
    cands
        .iter()
        .rev()
        .find(|c| c.p > 0.0)
        .or(cands.first())
        .map(|c| c.id)
}

/// The highest logit, ties to the lowest id (`None` for an empty slice).
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        match best {
            Some((_, b)) if x <= b => {}
            _ if x.is_nan() => {}
            _ => best = Some((i, x)),
        }
    }
    best.map(|(i, _)| i as u32)
}

/// The sampling chain with its state: the random generator and the recent-token window.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    /// The last `repeat_last_n` accepted tokens, oldest first.
    recent: VecDeque<u32>,
    cands: Vec<Candidate>,
    scratch: Vec<u32>,
}

impl Sampler {
    /// A sampler with `params`, its generator seeded with `params.seed`.
    pub fn new(params: SamplerParams) -> Self {
        Sampler {
            params,
            rng: Rng::new(params.seed),
            recent: VecDeque::with_capacity(params.repeat_last_n),
            cands: Vec::new(),
            scratch: Vec::with_capacity(params.repeat_last_n),
        }
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token (prompt or generated) in the penalty window.
    pub fn accept(&mut self, id: u32) {
        let n = self.params.repeat_last_n;
        if n == 0 {
            return;
        }
        if self.recent.len() == n {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    /// Forgets the penalty window (the random generator keeps its state).
    pub fn clear_history(&mut self) {
        self.recent.clear();
    }

    /// Chooses the next token from `logits` (`[vocab]`). Does not record it: call
    /// [`Sampler::accept`]. `None` only for empty (or all-NaN, when greedy) logits.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        let p = self.params;
        if p.temperature <= 0.0 && !p.penalties_on() {
            return argmax(logits);
        }
        candidates_from_logits(logits, &mut self.cands);
        if p.penalties_on() {
            apply_penalties(
                &mut self.cands,
                self.recent.iter().copied(),
                p.repeat_penalty,
                p.frequency_penalty,
                p.presence_penalty,
                &mut self.scratch,
            );
        }
        if p.temperature <= 0.0 {
            temperature(&mut self.cands, 0.0);
            return self.cands.first().map(|c| c.id);
        }
        top_k(&mut self.cands, p.top_k);
        top_p(&mut self.cands, p.top_p);
        min_p(&mut self.cands, p.min_p);
        temperature(&mut self.cands, p.temperature);
        draw(&mut self.cands, &mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(logits: &[f32]) -> Vec<Candidate> {
        let mut v = Vec::new();
        candidates_from_logits(logits, &mut v);
        v
    }

    fn ids(c: &[Candidate]) -> Vec<u32> {
        c.iter().map(|c| c.id).collect()
    }

    #[test]
    fn argmax_takes_the_lowest_id_on_ties_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0, -2.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn top_k_keeps_the_k_best_sorted_with_ties_to_lower_ids() {
        let mut c = cands(&[0.5, 2.0, -1.0, 2.0, 1.0]);
        top_k(&mut c, 3);
        assert_eq!(ids(&c), [1, 3, 4]);
        let mut all = cands(&[0.5, 2.0]);
        top_k(&mut all, 0);
        assert_eq!(ids(&all), [0, 1]);
    }

    #[test]
    fn softmax_of_ln_weights_gives_the_weights_normalized() {
        let mut c = cands(&[1f32.ln(), 2f32.ln(), 5f32.ln()]);
        softmax(&mut c);
        assert_eq!(ids(&c), [2, 1, 0]);
        for (got, want) in c.iter().map(|c| c.p).zip([0.625, 0.25, 0.125]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Probabilities 0.5, 0.3, 0.15, 0.05 (ids 2, 0, 3, 1).
        let logits = [0.3f32.ln(), 0.05f32.ln(), 0.5f32.ln(), 0.15f32.ln()];
        let mut c = cands(&logits);
        top_p(&mut c, 0.79);
        assert_eq!(ids(&c), [2, 0]);
        let mut c = cands(&logits);
        top_p(&mut c, 0.81);
        assert_eq!(ids(&c), [2, 0, 3]);
        let mut c = cands(&logits);
        top_p(&mut c, 0.1);
        assert_eq!(ids(&c), [2], "at least the best token stays");
    }

    #[test]
    fn min_p_is_relative_to_the_most_likely_token() {
        // Probabilities proportional to 10, 5, 1, 0.9: with min_p 0.1 the cut is at 1.0.
        let logits = [10f32.ln(), 5f32.ln(), 1.0001f32.ln(), 0.9f32.ln()];
        let mut c = cands(&logits);
        min_p(&mut c, 0.1);
        assert_eq!(ids(&c), [0, 1, 2]);
        let mut c = cands(&logits);
        min_p(&mut c, 0.6);
        assert_eq!(ids(&c), [0]);
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut c = cands(&[2.0, -2.0, 3.0, 0.0]);
        let mut scratch = Vec::new();
        apply_penalties(&mut c, [0, 1, 1], 2.0, 0.0, 0.0, &mut scratch);
        let logits: Vec<f32> = c.iter().map(|c| c.logit).collect();
        assert_eq!(logits, [1.0, -4.0, 3.0, 0.0]);
    }

    #[test]
    fn frequency_penalty_counts_occurrences_and_presence_counts_once() {
        let mut c = cands(&[2.0, 2.0, 2.0]);
        let mut scratch = Vec::new();
        apply_penalties(&mut c, [1, 1, 1, 2, 99], 1.0, 0.5, 0.25, &mut scratch);
        let logits: Vec<f32> = c.iter().map(|c| c.logit).collect();
        assert_eq!(logits, [2.0, 2.0 - 1.5 - 0.25, 2.0 - 0.5 - 0.25]);
    }

    #[test]
    fn sampler_window_only_penalizes_the_last_n_tokens() {
        let mut s = Sampler::new(SamplerParams {
            temperature: 0.0,
            repeat_penalty: 10.0,
            repeat_last_n: 2,
            ..SamplerParams::default()
        });
        // Token 0 is best; penalized it falls below token 1.
        let logits = [5.0, 1.0, 0.0];
        s.accept(0);
        assert_eq!(s.sample(&logits), Some(1));
        s.accept(2);
        s.accept(2); // token 0 leaves the window of 2
        assert_eq!(s.sample(&logits), Some(0));
    }

    #[test]
    fn temperature_divides_logits_and_zero_keeps_the_argmax() {
        let mut c = cands(&[1.0, 4.0, -2.0]);
        temperature(&mut c, 2.0);
        let logits: Vec<f32> = c.iter().map(|c| c.logit).collect();
        assert_eq!(logits, [0.5, 2.0, -1.0]);
        let mut c = cands(&[1.0, 4.0, 4.0]);
        temperature(&mut c, 0.0);
        assert_eq!(ids(&c), [1]);
    }

    #[test]
    fn temperature_zero_sampler_equals_argmax_on_random_logits() {
        let mut rng = Rng::new(7);
        let mut s = Sampler::new(SamplerParams::greedy());
        for _ in 0..50 {
            let logits: Vec<f32> = (0..100).map(|_| rng.next_f64() as f32 * 10.0).collect();
            assert_eq!(s.sample(&logits), argmax(&logits));
        }
    }

    #[test]
    fn draw_follows_the_cumulative_distribution() {
        // p = 0.75 / 0.25: over many draws token 0 comes about three times as often.
        let mut rng = Rng::new(1);
        let mut count0 = 0;
        for _ in 0..10_000 {
            let mut c = cands(&[3f32.ln(), 0.0]);
            if draw(&mut c, &mut rng) == Some(0) {
                count0 += 1;
            }
        }
        assert!((7_200..7_800).contains(&count0), "{count0}");
    }

    #[test]
    fn rng_is_uniform_enough_and_in_range() {
        let mut rng = Rng::new(3);
        let mut sum = 0.0;
        for _ in 0..100_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        assert!((sum / 100_000.0 - 0.5).abs() < 0.01);
    }

    #[test]
    fn same_seed_gives_the_same_sequence_and_different_seeds_differ() {
        let logits: Vec<f32> = (0..64).map(|i| ((i * 37 % 11) as f32) * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed,
                ..SamplerParams::default()
            });
            (0..40).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn default_chain_never_picks_a_token_removed_by_top_k() {
        let logits: Vec<f32> = (0..200).map(|i| i as f32 * 0.01).collect();
        let mut s = Sampler::new(SamplerParams {
            top_k: 3,
            top_p: 1.0,
            min_p: 0.0,
            temperature: 5.0,
            ..SamplerParams::default()
        });
        for _ in 0..200 {
            let id = s.sample(&logits).unwrap();
            assert!((197..200).contains(&id), "{id}");
        }
    }
}
