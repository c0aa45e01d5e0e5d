//! Perplexity against the transformers reference (per-token NLL over the held-out texts of
//! stories260k), and the chunked llama-perplexity method's bookkeeping.

mod common;

use cinder::perplexity::{KlReader, LogitsWriter, perplexity, sequence_nll};
use cinder::{Model, Session, SessionOptions};
use common::*;

fn reference() -> serde_json::Value {
    serde_json::from_slice(&cinder_quant::fixtures::read(
        "reference/stories260k/reference.json",
    ))
    .unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn sequence_nll_of_f32_stories260k_matches_transformers_per_token() {
    let dir = TempDir::new("ppl-ref");
    let file = dir.join("s.f32.gguf");
    convert("stories260k", "f32", &file);
    let model = Model::load(&file).unwrap();
    let r = reference();
    for name in ["sampled", "story"] {
        let p = &r["perplexity"][name];
        let tokens = ids(&p["input_ids"]);
        let mut s = Session::new(
            &model,
            SessionOptions {
                kv_type: cinder::KvType::F32,
                ..Default::default()
            },
        )
        .unwrap();
        let got = sequence_nll(&mut s, &tokens).unwrap();
        let want_ppl = p["perplexity"].as_f64().unwrap();
        assert_eq!(got.count, p["n_predicted"].as_u64().unwrap() as usize);
        let rel = (got.ppl() - want_ppl).abs() / want_ppl;
        assert!(
            rel < 1e-4,
            "{name}: ppl {} vs transformers {want_ppl} (rel {rel:e})",
            got.ppl()
        );
    }
}

#[test]
fn chunked_perplexity_scores_second_halves_and_kl_of_a_model_with_itself_is_zero() {
    let dir = TempDir::new("ppl-chunks");
    let file = dir.join("s.q8_0.gguf");
    convert("stories260k", "q8_0", &file);
    let model = Model::load(&file).unwrap();
    let tokens = ids(&reference()["perplexity"]["sampled"]["input_ids"]);
    let mut s = Session::new(
        &model,
        SessionOptions {
            ctx_size: 128,
            ..Default::default()
        },
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    let mut w = LogitsWriter::new(&mut buf, model.config().vocab_size).unwrap();
    let p = perplexity(&mut s, &tokens, 128, Some(1), Some(&mut w), |i, r| {
        seen.push((i, r.count))
    })
    .unwrap();
    w.finish().unwrap();
    // 301 tokens -> 2 chunks of 128, each scoring positions 64..127 (63 tokens).
    assert_eq!(seen, vec![(0, 63), (1, 126)]);
    assert_eq!(p.count, 126);
    assert!(p.ppl().is_finite() && p.ppl() > 1.0);
    let mut kl = KlReader::new(&buf[..], model.config().vocab_size).unwrap();
    let again = perplexity(&mut s, &tokens, 128, Some(1), Some(&mut kl), |_, _| {}).unwrap();
    assert_eq!(
        again.nll_sum, p.nll_sum,
        "same model, same text: identical NLL"
    );
    assert!(kl.kl.mean_kl().abs() < 1e-9, "{}", kl.kl.mean_kl());
    assert_eq!(kl.kl.top1_agreement(), 1.0);
    assert!((kl.kl.ppl_ratio() - 1.0).abs() < 1e-12);
    // A reference made from other tokens is refused.
    let mut other = tokens.clone();
    other[100] = other[100] % 500 + 3;
    let mut kl = KlReader::new(&buf[..], model.config().vocab_size).unwrap();
    assert!(perplexity(&mut s, &other, 128, Some(1), Some(&mut kl), |_, _| {}).is_err());
}
