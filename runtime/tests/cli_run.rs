//! `cinder run`, `tokenize`, `logits` and `chat` on the stories260k f32 GGUF, against the
//! transformers / sentencepiece references in fixtures/reference/stories260k.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn reference() -> serde_json::Value {
    let bytes = cinder_quant::fixtures::read("reference/stories260k/reference.json");
    serde_json::from_slice(&bytes).expect("reference.json is JSON")
}

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("id fits u32"))
        .collect()
}

/// stories260k converted to an f32 GGUF in a fresh temp folder.
fn stories_f32(tag: &str) -> (TempDir, String) {
    let dir = TempDir::new(tag);
    let out = dir.join("stories260k-f32.gguf");
    convert("stories260k", "f32", &out);
    let path = out.to_str().expect("utf-8 temp path").to_string();
    (dir, path)
}

#[test]
fn run_greedy_200_prints_the_prompt_then_the_reference_greedy_text() {
    let (_dir, model) = stories_f32("run-greedy");
    let r = reference();
    let g = &r["greedy_200"];
    let prompt = g["prompt"].as_str().expect("prompt");
    let o = cinder(&[
        "run", "-m", &model, "-p", prompt, "--temp", "0", "-n", "200",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let full = g["full_text"].as_str().expect("full_text");
    assert!(full.starts_with(prompt));
    // -n 200 is exactly the reference's 200 tokens: the output is the prompt echo + the text.
    assert_eq!(text.strip_suffix('\n').unwrap_or(&text), full);
    let err = stderr(&o);
    for what in ["load time", "prompt eval time", "eval time", "token limit"] {
        assert!(err.contains(what), "stderr lacks {what:?}: {err}");
    }
}

#[test]
fn run_without_display_prompt_prints_only_the_generated_text() {
    let (_dir, model) = stories_f32("run-noprompt");
    let r = reference();
    let once = &r["prompts"][0];
    let o = cinder(&[
        "run",
        "-m",
        &model,
        "-p",
        once["text"].as_str().unwrap(),
        "--temp",
        "0",
        "-n",
        "32",
        "--no-display-prompt",
        "-t",
        "1",
        "-b",
        "2",
        "--cache-type",
        "f32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let want = once["greedy"]["text"].as_str().unwrap();
    // A fresh decode drops the dummy-prefix space; the streamed text keeps the continuation's.
    assert_eq!(text.trim_end_matches('\n').trim_start(), want);
}

/// tok512.model has `remove_extra_whitespaces` on, which GGUF cannot record: like llama.cpp
/// (and like Hugging Face's fast tokenizer, which the reference also records), a GGUF tokenizer
/// keeps runs of spaces. So the prompt with indented code must equal the reference's "fast"
/// ids, every other prompt sentencepiece's `input_ids`.
#[test]
fn tokenize_ids_equal_the_reference_input_ids() {
    let (_dir, model) = stories_f32("tokenize");
    let r = reference();
    let vocab =
        cinder_convert::vocab::Vocab::read(&model_dir("stories260k").join("tokenizer.model"))
            .unwrap();
    assert!(
        vocab.remove_extra_whitespaces,
        "why the code prompt differs"
    );
    let fast = r["tokenizer_check"]["hf_fast_mismatches"]
        .as_array()
        .unwrap();
    assert_eq!(fast.len(), 1, "only the code prompt has runs of spaces");
    for p in r["prompts"].as_array().unwrap() {
        let text = p["text"].as_str().unwrap();
        let o = cinder(&["tokenize", "-m", &model, "--ids", text]);
        assert!(o.status.success(), "{}", stderr(&o));
        let want = match fast.iter().find(|m| m["text"].as_str() == Some(text)) {
            Some(m) => u32s(&m["fast"]),
            None => u32s(&p["input_ids"]),
        };
        let want_line = format!(
            "[{}]",
            want.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(stdout(&o).trim_end(), want_line, "prompt {}", p["name"]);
    }
}

#[test]
fn tokenize_default_json_and_no_bos_outputs() {
    let (_dir, model) = stories_f32("tokenize-fmt");
    let o = cinder(&["tokenize", "-m", &model, "Once upon"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "     1 -> '<s>'\n   403 -> ' Once'\n   407 -> ' upon'\n"
    );
    let o = cinder(&["tokenize", "-m", &model, "--json", "--no-bos", "Once upon"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON output");
    assert_eq!(
        v,
        serde_json::json!([{"id": 403, "piece": " Once"}, {"id": 407, "piece": " upon"}])
    );
}

#[test]
fn logits_output_matches_the_reference_logits_within_1e_4() {
    let (dir, model) = stories_f32("logits");
    let r = reference();
    for p in r["prompts"].as_array().unwrap() {
        let ids = u32s(&p["input_ids"]);
        let list = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let out = dir.join("out.f32");
        let o = cinder(&[
            "logits",
            "-m",
            &model,
            "--ids",
            &list,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        let got: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let file = p["logits"]["file"].as_str().unwrap();
        let want = cinder_quant::fixtures::read_f32(&format!("reference/stories260k/{file}"));
        assert_eq!(got.len(), ids.len() * 512, "{file}");
        assert_eq!(got.len(), want.len(), "{file}");
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max <= 1e-4, "{file}: max |diff| {max}");
    }
}

#[test]
fn logits_without_output_prints_the_top5_of_each_position() {
    let (_dir, model) = stories_f32("logits-top5");
    let o = cinder(&["logits", "-m", &model, "-p", "Once upon a time"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    // After "<s> Once" the reference's argmax is " upon" (id 407).
    assert!(lines[1].contains("-> 407 \"▁upon\""), "{text}");
}

fn run_sampled(model: &str, seed: &str) -> String {
    let o = cinder(&[
        "run",
        "-m",
        model,
        "-p",
        "Once upon a time",
        "-n",
        "60",
        "--temp",
        "1",
        "--seed",
        seed,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn same_seed_gives_the_same_text_and_different_seeds_differ() {
    let (_dir, model) = stories_f32("seed");
    let a = run_sampled(&model, "42");
    assert_eq!(a, run_sampled(&model, "42"));
    assert_ne!(a, run_sampled(&model, "7"));
    assert!(a.len() > "Once upon a time".len() + 20, "{a}");
}

#[test]
fn run_rejects_a_prompt_longer_than_the_context() {
    let (_dir, model) = stories_f32("run-ctx");
    let o = cinder(&["run", "-m", &model, "-p", "Once upon a time", "-c", "4"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("raise --ctx-size"), "{}", stderr(&o));
}

#[test]
fn chat_answers_two_lines_from_stdin_and_exits_at_eof() {
    let (_dir, model) = stories_f32("chat");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cinder"))
        .args([
            "chat",
            "-m",
            &model,
            "-n",
            "24",
            "--seed",
            "3",
            "--system",
            "Tell stories.",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cinder chat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Tell me about a cat.\nAnd a dog? [INST] </s>\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let answers: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(answers.len() >= 2, "two answers expected: {out:?}");
    // One "> " prompt per line read, plus the one that meets EOF.
    assert_eq!(stderr(&o).matches("> ").count(), 3, "{}", stderr(&o));
}

#[test]
fn chat_drops_the_oldest_turns_when_the_context_fills() {
    let (_dir, model) = stories_f32("chat-ctx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cinder"))
        .args(["chat", "-m", &model, "-n", "20", "-c", "96", "--temp", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cinder chat");
    let mut input = String::new();
    for i in 0..6 {
        input.push_str(&format!("Once upon a time there was a girl number {i}.\n"));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("dropped the"), "{}", stderr(&o));
}

#[test]
fn logits_takes_cache_type_like_run_and_the_old_f16_cache_and_tokens_spellings_still_work() {
    let (dir, model) = stories_f32("logits-aliases");
    let r = reference();
    // The longest reference prompt: an f16 cache rounds enough of its keys and values to move
    // the logits.
    let ids = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u32s(&p["input_ids"]))
        .max_by_key(Vec::len)
        .unwrap();
    let list = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let logits = |tag: &str, flags: &[&str]| -> Vec<u8> {
        let out = dir.join(&format!("{tag}.f32"));
        let mut args = vec!["logits", "-m", &model, "-o", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = cinder(&args);
        assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), ids.len() * 512 * 4, "{flags:?}");
        bytes
    };
    let default = logits("default", &["--ids", &list]);
    let f32_cache = logits("f32", &["--ids", &list, "--cache-type", "f32"]);
    let f16_cache = logits("f16", &["--ids", &list, "--cache-type", "f16"]);
    let old_f16 = logits("old-f16", &["--ids", &list, "--f16-cache"]);
    let tokens = logits("tokens", &["--tokens", &list]);
    assert!(default == f32_cache, "the default cache is f32");
    assert!(f16_cache != f32_cache, "an f16 cache changes the logits");
    assert!(old_f16 == f16_cache, "--f16-cache is --cache-type f16");
    assert!(tokens == default, "--tokens is --ids");

    // One spelling at a time; the help shows the one name.
    let o = cinder(&[
        "logits",
        "-m",
        &model,
        "--ids",
        "1",
        "--f16-cache",
        "--cache-type",
        "f32",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = cinder(&["logits", "--help"]);
    let help = stdout(&o);
    assert!(
        help.contains("--cache-type") && help.contains("--ids"),
        "{help}"
    );
    assert!(!help.contains("--f16-cache"), "{help}");
    let o = cinder(&["run", "--help"]);
    assert!(stdout(&o).contains("--cache-type"), "{}", stdout(&o));
}
