//! Arbitrary chat templates rendered with user messages (minijinja, under cinder's fuel limit
//! and minijinja's recursion limit). The input is the template, then the messages, separated
//! by NUL bytes; the role of each message cycles system, user, assistant.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use cinder::chat_format::{Format, Message, Role};
use cinder::tokenizer::Tokenizer;
use cinder_convert::vocab::Vocab;
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let bytes = include_bytes!("../../models/stories260k/tokenizer.model");
        let vocab = Vocab::parse(bytes, Path::new("tokenizer.model")).expect("stories260k vocab");
        Tokenizer::from_vocab(&vocab).expect("stories260k tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let Some(template) = parts.next() else { return };
    let roles = [Role::System, Role::User, Role::Assistant];
    let messages: Vec<Message> = parts
        .take(16)
        .enumerate()
        .map(|(i, content)| Message::new(roles[i % 3], content))
        .collect();
    let Ok(format) = Format::template(template) else {
        return;
    };
    let _ = format.tokens(tokenizer(), &messages);
});
