//! `tokenizer.model` parsing against the fixtures: the Llama 2 and tok512 SentencePiece models,
//! cross-checked with the Hugging Face `tokenizer.json` written from the same model and with the
//! pieces sentencepiece printed in the tokenizer fixtures; and malformed input gives errors.

use std::path::Path;

use cinder_convert::Error;
use cinder_convert::vocab::{
    TOKEN_TYPE_BYTE, TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN, Vocab,
};
use cinder_quant::fixtures;

fn load(rel: &str) -> Vocab {
    let path = fixtures::path(rel);
    match Vocab::read(&path) {
        Ok(v) => v,
        Err(e) => panic!("{e:?}"),
    }
}

fn json_lines(rel: &str) -> Vec<serde_json::Value> {
    let text = String::from_utf8(fixtures::read(rel)).expect("fixture is UTF-8");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture line is JSON"))
        .collect()
}

#[test]
fn llama2_model_has_32000_pieces_with_llama2_special_ids_and_normalizer() {
    let v = load("sources/tokenizer.model");
    assert_eq!(v.len(), 32000);
    assert_eq!((v.scores.len(), v.token_types.len()), (32000, 32000));
    assert_eq!(v.unk_id, 0);
    assert_eq!(v.bos_id, Some(1));
    assert_eq!(v.eos_id, Some(2));
    assert_eq!(v.pad_id, None);
    assert_eq!(&v.tokens[..3], ["<unk>", "<s>", "</s>"]);
    assert_eq!(
        &v.token_types[..3],
        [TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_CONTROL, TOKEN_TYPE_CONTROL]
    );
    assert!(v.byte_fallback);
    assert!(v.add_dummy_prefix);
    assert!(!v.remove_extra_whitespaces);
    // Byte pieces <0x00>..<0xFF> are ids 3..=258, type BYTE; everything else is NORMAL.
    for b in 0..=255usize {
        assert_eq!(v.tokens[3 + b], format!("<0x{b:02X}>"));
        assert_eq!(v.token_types[3 + b], TOKEN_TYPE_BYTE, "token {}", 3 + b);
    }
    assert!(v.token_types[259..].iter().all(|&t| t == TOKEN_TYPE_NORMAL));
    // Same file as the one in the tiny model's folder.
    assert_eq!(v, load("models/tiny-llama2-f16/tokenizer.model"));
}

#[test]
fn llama2_scores_are_merge_ranks() {
    // The Llama 2 BPE model scores piece i (after the 259 reserved ones) as -(i - 259): merges
    // learned earlier have higher scores; 16 whitespace pieces (the first is "▁▁", id 259) were
    // added with -1e9. Checks the fixed32 float decoding on every piece.
    let v = load("sources/tokenizer.model");
    assert!(v.scores[..259].iter().all(|&s| s == 0.0));
    let mut added = Vec::new();
    for (i, &s) in v.scores.iter().enumerate().skip(259) {
        if s == -1e9 {
            added.push(i);
        } else {
            assert_eq!(
                s,
                -((i - 259) as f32),
                "score of piece {i} {:?}",
                v.tokens[i]
            );
        }
    }
    assert_eq!(added.len(), 16, "{added:?}");
    assert_eq!(v.tokens[259], "\u{2581}\u{2581}");
    assert!(
        added
            .iter()
            .all(|&i| v.tokens[i].chars().all(|c| c == '\u{2581}'))
    );
}

#[test]
fn llama2_pieces_equal_huggingface_tokenizer_json_vocab() {
    let v = load("sources/tokenizer.model");
    let json: serde_json::Value =
        serde_json::from_slice(&fixtures::read("models/tiny-llama2-f16/tokenizer.json"))
            .expect("tokenizer.json is JSON");
    let vocab = json["model"]["vocab"]
        .as_object()
        .expect("model.vocab object");
    assert_eq!(vocab.len(), v.len());
    for (piece, id) in vocab {
        let id = id.as_u64().expect("id") as usize;
        assert_eq!(&v.tokens[id], piece, "id {id}");
    }
}

#[test]
fn fixture_pieces_match_vocab_tokens() {
    for (model, cases) in [
        ("sources/tokenizer.model", "tokenizer/llama2-tokenize.jsonl"),
        ("sources/tok512.model", "tokenizer/tok512-tokenize.jsonl"),
    ] {
        let v = load(model);
        let mut checked = 0;
        for case in json_lines(cases) {
            let ids = case["ids"].as_array().expect("ids");
            let pieces = case["pieces"].as_array().expect("pieces");
            assert_eq!(ids.len(), pieces.len());
            for (id, piece) in ids.iter().zip(pieces) {
                let id = id.as_u64().expect("id") as usize;
                assert_eq!(v.tokens[id], piece.as_str().expect("piece"), "{cases}");
                checked += 1;
            }
        }
        assert!(checked > 100, "{cases}: only {checked} pieces checked");
    }
}

#[test]
fn tok512_model_has_512_pieces_and_removes_extra_whitespace() {
    let v = load("sources/tok512.model");
    assert_eq!(v.len(), 512);
    assert_eq!(
        (v.unk_id, v.bos_id, v.eos_id, v.pad_id),
        (0, Some(1), Some(2), None)
    );
    assert_eq!(v.tokens[3], "<0x00>");
    assert_eq!(v.token_types[3], TOKEN_TYPE_BYTE);
    assert_eq!(v.tokens[258], "<0xFF>");
    assert!(v.byte_fallback);
    // Both flags are absent from tok512's NormalizerSpec: protobuf defaults (true) apply.
    assert!(v.add_dummy_prefix);
    assert!(v.remove_extra_whitespaces);
}

/// Appends a protobuf key.
fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
    let mut p = Vec::new();
    bytes_field(&mut p, 1, text.as_bytes());
    key(&mut p, 2, 5);
    p.extend_from_slice(&score.to_le_bytes());
    key(&mut p, 3, 0);
    varint(&mut p, kind);
    p
}

/// A tiny ModelProto: <unk> <s> </s> a b ab, with the given trainer model_type.
fn tiny_model(model_type: u64) -> Vec<u8> {
    let mut m = Vec::new();
    for (text, score, kind) in [
        ("<unk>", 0.0, 2),
        ("<s>", 0.0, 3),
        ("</s>", 0.0, 3),
        ("a", -1.0, 1),
        ("b", -2.0, 1),
        ("ab", -0.5, 4),
    ] {
        bytes_field(&mut m, 1, &piece(text, score, kind));
    }
    let mut trainer = Vec::new();
    key(&mut trainer, 3, 0);
    varint(&mut trainer, model_type);
    key(&mut trainer, 43, 0);
    varint(&mut trainer, u64::MAX); // pad_id = -1 as a 10-byte varint
    key(&mut trainer, 999, 1); // unknown fixed64 field: skipped
    trainer.extend_from_slice(&[0; 8]);
    bytes_field(&mut m, 2, &trainer);
    let mut normalizer = Vec::new();
    bytes_field(&mut normalizer, 1, b"identity");
    key(&mut normalizer, 3, 0);
    varint(&mut normalizer, 0); // add_dummy_prefix = false
    bytes_field(&mut m, 3, &normalizer);
    bytes_field(&mut m, 77, b"unknown field"); // skipped
    m
}

#[test]
fn hand_built_model_parses_with_defaults_and_user_defined_as_normal() {
    let v = Vocab::parse(&tiny_model(2), Path::new("tiny.model")).expect("parses");
    assert_eq!(v.tokens, ["<unk>", "<s>", "</s>", "a", "b", "ab"]);
    assert_eq!(v.scores, [0.0, 0.0, 0.0, -1.0, -2.0, -0.5]);
    // USER_DEFINED (4) is written as NORMAL (1), as convert_hf_to_gguf.py does.
    assert_eq!(v.token_types, [2, 3, 3, 1, 1, 1]);
    assert_eq!(
        (v.unk_id, v.bos_id, v.eos_id, v.pad_id),
        (0, Some(1), Some(2), None)
    );
    assert!(!v.byte_fallback);
    assert!(!v.add_dummy_prefix);
    assert!(
        v.remove_extra_whitespaces,
        "absent remove_extra_whitespaces defaults to true"
    );
}

#[test]
fn non_bpe_model_is_unsupported_and_names_the_file() {
    for model_type in [1, 3, 4] {
        let err = Vocab::parse(&tiny_model(model_type), Path::new("dir/uni.model"))
            .expect_err("only BPE is accepted");
        assert!(matches!(err, Error::UnsupportedTokenizer { .. }), "{err}");
        assert!(err.to_string().contains("dir/uni.model"), "{err}");
    }
    // A model without a trainer_spec is UNIGRAM by the protobuf default.
    let mut m = Vec::new();
    bytes_field(&mut m, 1, &piece("<unk>", 0.0, 2));
    assert!(matches!(
        Vocab::parse(&m, Path::new("x")),
        Err(Error::UnsupportedTokenizer { .. })
    ));
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = Vocab::read(Path::new("/nonexistent/tokenizer.model")).expect_err("no such file");
    assert!(matches!(err, Error::Io { .. }));
    assert!(
        err.to_string().contains("/nonexistent/tokenizer.model"),
        "{err}"
    );
}

#[test]
fn every_truncation_of_tok512_is_an_error_not_a_panic() {
    let bytes = fixtures::read("sources/tok512.model");
    assert!(Vocab::parse(&bytes, Path::new("tok512.model")).is_ok());
    // Every proper prefix either cuts a field (malformed) or drops pieces or specs, which the
    // validation must notice (a prefix ending exactly between fields may still parse when only
    // trailing optional data is lost, so count rather than demand an error for each).
    let mut errors = 0;
    for len in 0..bytes.len() {
        if Vocab::parse(&bytes[..len], Path::new("tok512.model")).is_err() {
            errors += 1;
        }
    }
    // All prefixes that stop before the trainer_spec lack model_type = BPE.
    assert!(
        errors > bytes.len() * 9 / 10,
        "{errors} of {} prefixes rejected",
        bytes.len()
    );
}

#[test]
fn corrupted_bytes_never_panic() {
    // Deterministic xorshift mutations of the tok512 model: flip, overwrite and cut bytes.
    let original = fixtures::read("sources/tok512.model");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 8 {
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => bytes[at] ^= 1 << (next() % 8),
                1 => bytes[at] = next() as u8,
                _ => bytes.truncate(at.max(1)),
            }
        }
        // Must return (Ok or Err), never panic.
        let _ = Vocab::parse(&bytes, Path::new("mutated.model"));
    }
    // Hand-made malformed inputs give the malformed error.
    for bad in [
        &[0x0a, 0x05, 0x0a][..], // length past the end
        &[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ][..], // huge length
        &[0x0b][..],             // wire type 3 (group)
        &[0x00, 0x00][..],       // field number 0
        &[0x15, 0x00][..],       // truncated fixed32
        &[0x08, 0x80][..],       // truncated varint
    ] {
        let err = Vocab::parse(bad, Path::new("bad.model")).expect_err("malformed");
        assert!(
            matches!(err, Error::MalformedTokenizer { .. }),
            "{bad:?}: {err}"
        );
    }
}
