//! Arbitrary bytes as a SentencePiece `tokenizer.model`; a vocabulary that parses becomes a
//! tokenizer, which encodes and decodes a short text.

#![no_main]

use std::path::Path;

use cinder::tokenizer::Tokenizer;
use cinder_convert::vocab::Vocab;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(vocab) = Vocab::parse(data, Path::new("tokenizer.model")) else {
        return;
    };
    let Ok(tok) = Tokenizer::from_vocab(&vocab) else {
        return;
    };
    let ids = tok.encode(" Hello  wörld \u{1F600}\n<s>", true);
    std::hint::black_box(tok.decode(&ids));
});
