//! `Sequences`: tokens of several sequences in one forward pass give each sequence the logits
//! it gets alone in a `Session` (stories260k, Q8_0 and f32), and truncating a sequence lets it
//! continue from a shorter prefix.

mod common;

use cinder::batch::Sequences;
use cinder::{KvType, Model, Session, SessionOptions};
use common::*;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check(ty: &str) {
    let dir = TempDir::new("batch");
    let file = dir.join("s.gguf");
    convert("stories260k", ty, &file);
    let model = Model::load(&file).unwrap();
    let opts = SessionOptions {
        ctx_size: 128,
        max_batch: 64,
        kv_type: KvType::F32,
    };
    // Three sequences of different lengths and histories.
    let prompts: [Vec<u32>; 3] = [
        vec![1, 403, 407, 261, 378],
        vec![1, 300, 301, 302, 303, 304, 305, 306, 307],
        vec![1, 500],
    ];
    let next: [u32; 3] = [290, 291, 292];
    let mut alone = Vec::new();
    for (p, &t) in prompts.iter().zip(&next) {
        let mut s = Session::new(&model, opts).unwrap();
        s.eval(p).unwrap();
        let first = s.logits().to_vec();
        s.eval(&[t]).unwrap();
        alone.push((first, s.logits().to_vec()));
    }
    let mut seqs = Sequences::new(&model, 4, opts).unwrap();
    // Step 1: the three prompts together (sequence 3 stays empty).
    let work: Vec<(usize, &[u32])> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| (i, &p[..]))
        .collect();
    seqs.eval(&work).unwrap();
    for (i, (first, _)) in alone.iter().enumerate() {
        assert!(
            max_diff(seqs.logits(i), first) < 1e-4,
            "{ty} seq {i} prompt"
        );
        assert_eq!(seqs.position(i), prompts[i].len());
    }
    assert!(seqs.logits(3).is_empty());
    // Step 2: one token each, in another order.
    let tail: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
    seqs.eval(&[(2, &tail[2][..]), (0, &tail[0][..]), (1, &tail[1][..])])
        .unwrap();
    for (i, (_, second)) in alone.iter().enumerate() {
        assert!(
            max_diff(seqs.logits(i), second) < 1e-4,
            "{ty} seq {i} token"
        );
    }
    // Truncate sequence 1 back to its prompt and evaluate the same token again.
    seqs.truncate(1, prompts[1].len());
    assert!(seqs.logits(1).is_empty());
    seqs.eval(&[(1, &tail[1][..])]).unwrap();
    assert!(
        max_diff(seqs.logits(1), &alone[1].1) < 1e-4,
        "{ty} truncated"
    );
    // Bad batches are errors, not panics.
    assert!(seqs.eval(&[]).is_err());
    assert!(seqs.eval(&[(0, &tail[0][..]), (0, &tail[0][..])]).is_err());
    assert!(seqs.eval(&[(9, &tail[0][..])]).is_err());
}

#[test]
fn sequences_batched_together_get_the_logits_each_gets_alone_q8_0() {
    check("q8_0");
}

#[test]
fn sequences_batched_together_get_the_logits_each_gets_alone_f32() {
    check("f32");
}

#[test]
fn a_batch_larger_than_every_context_together_is_cut_to_them_not_allocated() {
    let dir = TempDir::new("batch-huge");
    let file = dir.join("s.gguf");
    convert("stories260k", "q8_0", &file);
    let model = Model::load(&file).unwrap();
    let opts = SessionOptions {
        ctx_size: 16,
        max_batch: usize::MAX / 2,
        kv_type: KvType::F16,
    };
    // Scratch for usize::MAX / 2 tokens would overflow or fail the memory check.
    let mut seqs = Sequences::new(&model, 3, opts).unwrap();
    assert_eq!(seqs.max_batch(), 48);
    let full = [1u32; 16];
    let work: Vec<(usize, &[u32])> = (0..3).map(|i| (i, &full[..])).collect();
    seqs.eval(&work).unwrap();
    assert!((0..3).all(|i| seqs.position(i) == 16 && !seqs.logits(i).is_empty()));
}
