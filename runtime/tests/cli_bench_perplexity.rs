//! `cinder bench` output formats and `cinder perplexity` (with --save-logits/--kl-divergence).

mod common;

use common::*;

#[test]
fn bench_json_uses_llama_bench_field_names_and_md_and_csv_have_one_row_per_test() {
    let dir = TempDir::new("bench");
    let file = dir.join("s.q8_0.gguf");
    convert("stories260k", "q8_0", &file);
    let f = file.to_str().unwrap();
    let o = cinder(&[
        "bench", "-m", f, "-p", "32", "-n", "8", "-r", "2", "-t", "1,2", "-o", "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 thread counts x (pp32, tg8)");
    for r in rows {
        for key in [
            "model_filename",
            "model_type",
            "model_size",
            "model_n_params",
            "n_threads",
            "n_prompt",
            "n_gen",
            "avg_ns",
            "stddev_ns",
            "avg_ts",
            "stddev_ts",
            "samples_ns",
            "samples_ts",
        ] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
        assert_eq!(r["samples_ns"].as_array().unwrap().len(), 2);
        assert!(
            r["model_type"].as_str().unwrap().ends_with("Q8_0"),
            "{}",
            r["model_type"]
        );
    }
    assert_eq!(
        (rows[0]["n_prompt"].as_u64(), rows[0]["n_gen"].as_u64()),
        (Some(32), Some(0))
    );
    assert_eq!(
        (rows[1]["n_prompt"].as_u64(), rows[1]["n_gen"].as_u64()),
        (Some(0), Some(8))
    );
    let o = cinder(&[
        "bench", "-m", f, "-p", "16", "-n", "4", "-r", "1", "-t", "1",
    ]);
    let md = stdout(&o);
    assert!(md.contains("| pp16 |") && md.contains("| tg4 |"), "{md}");
    let o = cinder(&[
        "bench", "-m", f, "-p", "16", "-n", "0", "-r", "1", "-t", "1", "-o", "csv",
    ]);
    let csv = stdout(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("build_commit,model_filename"), "{csv}");
}

#[test]
fn bench_depth_runs_each_test_after_that_many_cached_tokens_as_llama_bench_names_it() {
    let dir = TempDir::new("bench-depth");
    let file = dir.join("s.q8_0.gguf");
    convert("stories260k", "q8_0", &file);
    let f = file.to_str().unwrap();
    let o = cinder(&[
        "bench", "-m", f, "-p", "16", "-n", "4", "-d", "0,40", "-r", "1", "-t", "1", "-o", "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let got: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["n_prompt"].as_u64(),
                r["n_gen"].as_u64(),
                r["n_depth"].as_u64(),
            )
        })
        .collect();
    let want = [(16, 0, 0), (16, 0, 40), (0, 4, 0), (0, 4, 40)]
        .map(|(p, g, d)| (Some(p), Some(g), Some(d)));
    assert_eq!(got, want);
    let o = cinder(&[
        "bench", "-m", f, "-p", "16", "-n", "0", "-d", "40", "-r", "1", "-t", "1",
    ]);
    let md = stdout(&o);
    assert!(md.contains("| pp16 @ d40 |"), "{md}");
}

#[test]
fn perplexity_prints_running_chunks_and_kl_against_itself_is_zero() {
    let dir = TempDir::new("ppl-cli");
    let file = dir.join("s.q8_0.gguf");
    convert("stories260k", "q8_0", &file);
    let text = dir.join("text.txt");
    let mut s = String::from_utf8(cinder_quant::fixtures::read(
        "reference/stories260k/heldout_sampled.txt",
    ))
    .unwrap();
    s.push_str(
        &String::from_utf8(cinder_quant::fixtures::read(
            "reference/stories260k/heldout_story.txt",
        ))
        .unwrap(),
    );
    std::fs::write(&text, s).unwrap();
    let (f, t) = (file.to_str().unwrap(), text.to_str().unwrap());
    let logits = dir.join("base.logits");
    let o = cinder(&[
        "perplexity",
        "-m",
        f,
        "-f",
        t,
        "-c",
        "128",
        "--save-logits",
        logits.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("[1]") && out.contains("[3]") && out.contains("Final estimate: PPL = "),
        "{out}"
    );
    let o = cinder(&[
        "perplexity",
        "-m",
        f,
        "-f",
        t,
        "-c",
        "128",
        "--kl-divergence",
        logits.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Mean KLD: 0.000000") && out.contains("Same top p: 100.000 %"),
        "{out}"
    );
    // Too short a text for the context: a clear error, as llama-perplexity.
    let o = cinder(&["perplexity", "-m", f, "-f", t, "-c", "512"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("needs at least"), "{}", stderr(&o));
}
