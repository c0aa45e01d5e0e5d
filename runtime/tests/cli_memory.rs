//! Contexts too large for the machine are refused at once, with the numbers; large ones that
//! fit are allocated without touching their memory.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_context_of_two_billion_tokens_is_refused_at_once_with_the_largest_that_fits() {
    let dir = TempDir::new("ctx-huge");
    let model = dir.join("m.gguf");
    convert("stories260k", "q8_0", &model);
    for ctx in ["2000000000", "100000000000000"] {
        let start = Instant::now();
        let o = cinder(&["run", "-m", model.to_str().unwrap(), "-c", ctx, "-p", "hi"]);
        let elapsed = start.elapsed();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("a context of {ctx} tokens needs"))
                && err.contains("is available; the largest context that fits is"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        // Not a timing claim: an allocation of terabytes would abort or take far longer.
        assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    }
}

#[test]
fn a_context_whose_size_overflows_is_an_error_not_an_abort() {
    let dir = TempDir::new("ctx-overflow");
    let model = dir.join("m.gguf");
    convert("stories260k", "q8_0", &model);
    let o = cinder(&[
        "run",
        "-m",
        model.to_str().unwrap(),
        "-c",
        &usize::MAX.to_string(),
        "-p",
        "hi",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("too large"), "{}", stderr(&o));
}
