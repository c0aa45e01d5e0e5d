//! A large context that fits is allocated without touching its memory (alone in its test
//! binary: it measures this process's resident memory).

mod common;

use cinder::{KvType, Model, Session, SessionOptions};
use common::*;

/// This process's resident memory, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_large_context_that_fits_is_not_touched_until_used() {
    let dir = TempDir::new("ctx-lazy");
    let path = dir.join("m.gguf");
    convert("stories260k", "q8_0", &path);
    let model = Model::load(&path).unwrap();
    let ctx = 400_000;
    let need = cinder::memory::SessionMemory::new(model.config(), ctx, 64, KvType::F16).unwrap();
    assert!(need.total() > 400 << 20, "{}", need.total());
    if cinder::memory::available().is_some_and(|a| a < need.total() + (256 << 20)) {
        panic!("this test needs {} bytes of free memory", need.total());
    }
    let before = rss_bytes();
    let mut s = Session::new(
        &model,
        SessionOptions {
            ctx_size: ctx,
            max_batch: 64,
            kv_type: KvType::F16,
        },
    )
    .unwrap();
    let after_new = rss_bytes().saturating_sub(before);
    s.eval(&[1, 300, 400]).unwrap();
    assert!(s.logits().iter().all(|x| x.is_finite()));
    let grown = rss_bytes().saturating_sub(before);
    // The cache and attention rows are zeroed allocations the OS maps on first touch; only
    // the RoPE table (cos and sin of every position, ~13 MB) and the touched rows are resident.
    assert!(
        grown < need.total() / 8,
        "resident memory grew by {after_new} bytes in Session::new, {grown} after 3 tokens, of {} bytes",
        need.total()
    );
}
