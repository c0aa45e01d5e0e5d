//! Arbitrary bytes as a GGUF model file through `Model::from_bytes` (the loader behind
//! `Model::load`); when it loads, one forward step of two tokens (the batch path) and one of a
//! token outside the vocabulary. A panic, an abort or an out-of-bounds access is a bug.

#![no_main]

use cinder::{KvType, Model, Session, SessionOptions};
use cinder_kernels::Kernels;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::from_bytes(data, "fuzz.gguf", Kernels::detect()) else {
        return;
    };
    let opts = SessionOptions {
        ctx_size: 4,
        max_batch: 2,
        kv_type: KvType::F16,
    };
    let Ok(mut session) = Session::new(&model, opts) else {
        return;
    };
    let vocab = model.config().vocab_size as u32;
    if session.eval(&[0, vocab - 1]).is_ok() {
        std::hint::black_box(session.logits());
    }
    assert!(session.eval(&[vocab]).is_err());
});
