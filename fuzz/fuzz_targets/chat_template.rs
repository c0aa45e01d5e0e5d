//! Arbitrary chat templates rendered with user messages (minijinja, under cinder's fuel limit,
//! minijinja's recursion limit, and the size guards `chat_format` rewrites every template
//! with). The input is the template, then the messages, separated by NUL bytes; the role of
//! each message cycles system, user, assistant.

#![no_main]

use cinder::chat_format::{Format, Message, Role};
use cinder_fuzz::stories_tokenizer;
use libfuzzer_sys::fuzz_target;

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
    let _ = format.tokens(stories_tokenizer(), &messages);
});
