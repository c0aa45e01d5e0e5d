//! The library's `Generator` on the stories260k f32 GGUF: greedy tokens equal the reference
//! `greedy.new_ids` of every prompt, and the stop reasons (limit, full context) are right.

mod common;

use cinder::generate::{GenerateOptions, Generator, StopReason, load_tokenizer};
use cinder::sampler::{Sampler, SamplerParams};
use cinder::{Model, Session, SessionOptions};
use common::*;

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("id fits u32"))
        .collect()
}

fn stories_f32(dir: &TempDir) -> Model {
    let out = dir.join("stories260k-f32.gguf");
    convert("stories260k", "f32", &out);
    Model::load(&out).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn greedy_generation_equals_the_reference_new_ids_for_every_prompt() {
    let dir = TempDir::new("gen-greedy");
    let model = stories_f32(&dir);
    let tok = load_tokenizer(&model).unwrap();
    let r: serde_json::Value = serde_json::from_slice(&cinder_quant::fixtures::read(
        "reference/stories260k/reference.json",
    ))
    .unwrap();
    let prompts = r["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 4);
    for p in prompts {
        let ids = u32s(&p["input_ids"]);
        let want = u32s(&p["greedy"]["new_ids"]);
        // A small batch makes the prompt span several forward passes.
        let opts = SessionOptions {
            max_batch: 7,
            ..SessionOptions::default()
        };
        let mut session = Session::new(&model, opts).unwrap();
        let mut sampler = Sampler::new(SamplerParams::greedy());
        let gen_opts = GenerateOptions {
            max_tokens: Some(want.len()),
            decode_prompt: true,
        };
        let mut g = Generator::new(&mut session, &tok, &mut sampler, gen_opts);
        g.prompt(&ids).unwrap();
        let mut got = Vec::new();
        let mut text = g.prompt_text().to_string();
        let reason = g
            .run(|id, t| {
                got.push(id);
                text.push_str(t);
                true
            })
            .unwrap();
        text.push_str(&g.flush());
        assert_eq!(got, want, "prompt {}", p["name"]);
        assert_eq!(reason, StopReason::Limit);
        assert_eq!(
            text,
            p["greedy"]["full_text"].as_str().unwrap(),
            "prompt {}",
            p["name"]
        );
        let t = g.timings();
        assert_eq!(
            (t.prompt_tokens, t.generated_tokens),
            (ids.len(), want.len())
        );
    }
}

#[test]
fn generation_stops_with_context_full_after_the_last_position() {
    let dir = TempDir::new("gen-ctx");
    let model = stories_f32(&dir);
    let tok = load_tokenizer(&model).unwrap();
    let opts = SessionOptions {
        ctx_size: 16,
        ..SessionOptions::default()
    };
    let mut session = Session::new(&model, opts).unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut g = Generator::new(&mut session, &tok, &mut sampler, GenerateOptions::default());
    let prompt = tok.encode("Once upon a time", true);
    assert_eq!(prompt.len(), 5);
    g.prompt(&prompt).unwrap();
    let mut n = 0;
    let reason = g
        .run(|_, _| {
            n += 1;
            true
        })
        .unwrap();
    assert_eq!(reason, StopReason::ContextFull);
    // Positions 5..16 each predict one token; the token predicted at position 15 is returned
    // but has no room to be evaluated.
    assert_eq!(n, 16 - 5 + 1);
    assert_eq!(session.position(), 16);
}

#[test]
fn generating_without_a_prompt_is_an_error() {
    let dir = TempDir::new("gen-noprompt");
    let model = stories_f32(&dir);
    let tok = load_tokenizer(&model).unwrap();
    let mut session = Session::new(&model, SessionOptions::default()).unwrap();
    let mut sampler = Sampler::new(SamplerParams::default());
    let mut g = Generator::new(&mut session, &tok, &mut sampler, GenerateOptions::default());
    assert!(matches!(g.next_token(), Err(cinder::Error::NoPrompt)));
    assert!(matches!(
        g.prompt(&[100_000]),
        Err(cinder::Error::TokenOutOfRange { .. })
    ));
}

#[test]
fn tokenizer_from_gguf_equals_the_one_from_the_sentencepiece_model_on_plain_text() {
    let dir = TempDir::new("gen-tok");
    let model = stories_f32(&dir);
    let tok = load_tokenizer(&model).unwrap();
    let vocab =
        cinder_convert::vocab::Vocab::read(&model_dir("stories260k").join("tokenizer.model"))
            .unwrap();
    let spm = cinder::tokenizer::Tokenizer::from_vocab(&vocab).unwrap();
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.unk_id(), tok.add_bos()),
        (Some(1), Some(2), 0, true)
    );
    for text in [
        "Once upon a time",
        "Lily saw a big dog.\nIt ran!",
        "héllo wörld 123",
    ] {
        assert_eq!(tok.encode(text, true), spm.encode(text, true), "{text:?}");
    }
}
