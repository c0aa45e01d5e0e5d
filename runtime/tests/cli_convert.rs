//! `cinder convert` and `cinder quantize` from the command line.

mod common;

use common::*;

#[test]
fn quantize_of_an_f16_file_equals_direct_conversion() {
    let dir = TempDir::new("quantize");
    let f16 = dir.join("t.f16.gguf");
    convert("tiny-llama2-f16", "f16", &f16);
    for ty in ["q4_k_m", "q8_0", "q5_1"] {
        let direct = dir.join(&format!("direct.{ty}.gguf"));
        convert("tiny-llama2-f16", ty, &direct);
        let requant = dir.join(&format!("requant.{ty}.gguf"));
        let o = cinder(&[
            "quantize",
            f16.to_str().unwrap(),
            requant.to_str().unwrap(),
            ty,
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        // f16 -> f32 is exact, so both paths quantize the same numbers.
        assert!(
            std::fs::read(&direct).unwrap() == std::fs::read(&requant).unwrap(),
            "{ty}: files differ"
        );
    }
}

#[test]
fn quantize_refuses_quantized_input_without_allow_requantize() {
    let dir = TempDir::new("requant");
    let q = dir.join("t.q8_0.gguf");
    convert("stories260k", "q8_0", &q);
    let out = dir.join("t.q4_0.gguf");
    let o = cinder(&[
        "quantize",
        q.to_str().unwrap(),
        out.to_str().unwrap(),
        "q4_0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--allow-requantize"), "{}", stderr(&o));
    assert!(!out.exists());
    let o = cinder(&[
        "quantize",
        q.to_str().unwrap(),
        out.to_str().unwrap(),
        "q4_0",
        "--allow-requantize",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn convert_prints_a_summary_and_rejects_unknown_types() {
    let dir = TempDir::new("convert-cli");
    let out = dir.join("s.gguf");
    let m = model_dir("stories260k");
    let o = cinder(&[
        "convert",
        m.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("wrote") && err.contains("bits per weight"),
        "{err}"
    );
    let o = cinder(&[
        "convert",
        m.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q4_2",
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    assert!(
        stderr(&o).contains("q4_k_m"),
        "lists the valid types: {}",
        stderr(&o)
    );
}

#[test]
fn q8_0_and_q4_0_tensors_equal_gguf_py_quantization_of_the_f32_conversion() {
    let dir = TempDir::new("vs-gguf-py");
    for model in ["stories260k", "tiny-llama2-f16", "tiny-llama2-bf16-gqa"] {
        let f32 = dir.join(&format!("{model}.f32.gguf"));
        convert(model, "f32", &f32);
        for ty in ["q8_0", "q4_0"] {
            let q = dir.join(&format!("{model}.{ty}.gguf"));
            let o = cinder(&[
                "convert",
                model_dir(model).to_str().unwrap(),
                "-o",
                q.to_str().unwrap(),
                "--type",
                ty,
                "--pure",
                "-q",
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/py/quantized_equals_gguf_py.py");
            let py = std::process::Command::new(python_with_gguf())
                .arg(script)
                .arg(&f32)
                .arg(&q)
                .output()
                .unwrap();
            assert!(
                py.status.success(),
                "{model} {ty}: {}{}",
                stdout(&py),
                stderr(&py)
            );
        }
    }
}
