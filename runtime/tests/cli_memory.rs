//! Contexts too large for the machine are refused at once, with the numbers, by `run` and by
//! `serve` for its slots; large ones that fit are allocated without touching their memory.

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
fn serve_refuses_slots_that_do_not_fit_at_once_naming_parallel_and_the_context() {
    let dir = TempDir::new("serve-huge");
    let model = dir.join("m.gguf");
    convert("stories260k", "q8_0", &model);
    let m = model.to_str().unwrap();
    let start = Instant::now();
    let o = cinder(&[
        "serve",
        "-m",
        m,
        "-c",
        "2000000000",
        "--parallel",
        "4",
        "--port",
        "0",
    ]);
    let elapsed = start.elapsed();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--parallel 4 slots of -c 2000000000 tokens need")
            && err.contains("the largest -c that fits at --parallel 4 is"),
        "{err}"
    );
    // Refused before the port is bound and the model loaded.
    assert!(!err.contains("listening"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Not a timing claim: allocating 4 caches of terabytes would abort or take far longer.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    // Four caches: the largest context at 4 slots is well under one session's (stories260k's
    // keys and values are about half of what a position costs; the rest is shared scratch).
    let largest = |err: &str| -> u64 {
        let tail = err.trim_end().rsplit(" is ").next().unwrap();
        tail.trim_end_matches(" tokens").parse().expect(err)
    };
    let at4 = largest(&err);
    let o = cinder(&["run", "-m", m, "-c", "2000000000", "-p", "hi"]);
    let at1 = largest(&stderr(&o));
    assert!(at4 > 0 && at4 < at1 / 2, "{at4} {at1}");
    // A count that overflows is an error too, not an abort.
    let o = cinder(&[
        "serve",
        "-m",
        m,
        "-c",
        "1000000000000000",
        "--parallel",
        "100000",
        "--port",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("too many"), "{}", stderr(&o));
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
