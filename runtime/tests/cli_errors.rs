//! What a new user sees when something is missing: each cause named once, the file named.

mod common;

use common::*;

/// What this OS says for a file that does not exist (e.g. "No such file or directory (os error
/// 2)"), taken from the OS rather than written here.
fn not_found_message(dir: &TempDir) -> String {
    std::fs::metadata(dir.join("does-not-exist"))
        .expect_err("the file does not exist")
        .to_string()
}

#[test]
fn convert_of_a_folder_without_config_json_names_the_file_and_the_os_error_once() {
    let dir = TempDir::new("err-config");
    let empty = dir.join("checkpoint");
    std::fs::create_dir(&empty).unwrap();
    let out = dir.join("out.gguf");
    let o = cinder(&[
        "convert",
        empty.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let os = not_found_message(&dir);
    assert!(err.contains("config.json"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.matches(os.as_str()).count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!out.exists());
}

#[test]
fn commands_given_a_missing_model_file_name_it_and_the_os_error_once() {
    let dir = TempDir::new("err-model");
    let missing = dir.join("missing.gguf");
    let m = missing.to_str().unwrap();
    let out = dir.join("out.gguf");
    let out = out.to_str().unwrap();
    let os = not_found_message(&dir);
    let runs: [&[&str]; 7] = [
        &["run", "-m", m, "-p", "Once"],
        &["chat", "-m", m],
        &["logits", "-m", m, "--ids", "1"],
        &["tokenize", "-m", m, "Once"],
        &["inspect", m],
        &["quantize", m, out, "q8_0"],
        &["bench", "-m", m, "-p", "0", "-n", "1", "-r", "1"],
    ];
    for args in runs {
        let o = cinder(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("missing.gguf"), "{args:?}: {err}");
        assert_eq!(err.matches(os.as_str()).count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn library_errors_return_the_io_error_as_source_and_do_not_repeat_it() {
    let dir = TempDir::new("err-lib");
    let os = not_found_message(&dir);
    let e = cinder::Model::load(dir.join("missing.gguf")).expect_err("missing file");
    let source = std::error::Error::source(&e).expect("the io::Error is the source");
    assert_eq!(source.to_string(), os);
    assert!(!e.to_string().contains(&os), "{e}");
    assert!(e.to_string().contains("missing.gguf"), "{e}");
}

/// The lines that say where models come from (convert a Hugging Face folder, or any llama.cpp
/// GGUF).
fn says_where_models_come_from(text: &str) -> bool {
    text.contains("cinder convert")
        && text.contains("Hugging Face checkpoint folder")
        && text.contains("llama.cpp GGUF")
}

#[test]
fn cinder_with_no_arguments_prints_help_saying_where_models_come_from() {
    let o = cinder(&[]);
    // clap's convention for a missing subcommand: help on stderr, exit code 2.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let all = stdout(&o) + &stderr(&o);
    assert!(all.contains("Usage: cinder"), "{all}");
    for sub in ["run", "chat", "convert", "inspect"] {
        assert!(all.contains(&format!("  {sub} ")), "lists {sub}: {all}");
    }
    assert!(says_where_models_come_from(&all), "{all}");
}

#[test]
fn run_and_chat_without_a_model_print_usage_saying_where_models_come_from() {
    let runs: [&[&str]; 4] = [
        &["run"],
        &["run", "-p", "Once upon a time"],
        &["chat"],
        &["logits", "--ids", "1"],
    ];
    for args in runs {
        let o = cinder(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--model"), "{args:?}: {err}");
        assert!(
            err.contains(&format!("Usage: cinder {}", args[0])),
            "{args:?}: {err}"
        );
        assert!(says_where_models_come_from(&err), "{args:?}: {err}");
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn other_usage_errors_do_not_print_the_models_note() {
    let dir = TempDir::new("usage");
    let out = dir.join("o.gguf");
    let o = cinder(&["convert", "-o", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("<INPUT>"), "{err}");
    assert!(!says_where_models_come_from(&err), "{err}");
}

#[test]
fn run_help_says_where_models_come_from() {
    let o = cinder(&["run", "--help"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(says_where_models_come_from(&stdout(&o)), "{}", stdout(&o));
}

/// A small GGUF that is not a Llama: `general.architecture` = `arch`, a few of that
/// architecture's keys, one tensor.
fn write_gguf_of_arch(path: &std::path::Path, arch: &str) {
    use cinder_quant::GgmlType;
    use cinder_quant::gguf::GgufWriter;
    let mut w = GgufWriter::new();
    w.add_string("general.architecture", arch).unwrap();
    w.add_string("general.name", "not a llama").unwrap();
    w.add(
        &format!("{arch}.block_count"),
        cinder_quant::gguf::Value::U32(1),
    )
    .unwrap();
    w.add_tensor_info("token_embd.weight", &[8, 4], GgmlType::F32)
        .unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_header(&mut out).unwrap();
    let data: Vec<u8> = (0..32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.write_tensor_data(&mut out, "token_embd.weight", &data)
        .unwrap();
    w.finish().unwrap();
    std::io::Write::flush(&mut out).unwrap();
}

#[test]
fn inference_commands_on_a_non_llama_gguf_say_which_architectures_cinder_runs_and_exit_1() {
    let dir = TempDir::new("arch");
    let text = dir.join("text.txt");
    std::fs::write(&text, "Once upon a time there was a cat.\n").unwrap();
    let text = text.to_str().unwrap();
    for arch in ["qwen2", "gpt2"] {
        let file = dir.join(&format!("{arch}.gguf"));
        write_gguf_of_arch(&file, arch);
        // The file is well-formed: inspect reads it.
        let o = cinder(&["inspect", file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let m = file.to_str().unwrap();
        let runs: [&[&str]; 5] = [
            &["run", "-m", m, "-p", "Once upon a time", "-n", "4"],
            &["chat", "-m", m],
            &["logits", "-m", m, "--ids", "1,2"],
            &["perplexity", "-m", m, "-f", text],
            &["bench", "-m", m, "-p", "0", "-n", "1", "-r", "1"],
        ];
        for args in runs {
            let o = cinder(args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
            assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
            assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
            assert!(
                err.contains(&format!("{arch}.gguf")),
                "{args:?}: names the file: {err}"
            );
            assert!(
                err.contains(&format!("\"{arch}\"")),
                "{args:?}: names {arch}: {err}"
            );
            assert!(
                err.contains("cinder runs the \"llama\" architecture"),
                "{args:?}: says what cinder runs: {err}"
            );
        }
    }
}
