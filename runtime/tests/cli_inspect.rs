//! `cinder inspect`: agrees with llama.cpp's own reader (gguf-py) on files cinder and gguf-py
//! write, and fails cleanly (one line naming the file, non-zero exit) on bad files.

mod common;

use common::*;
use serde_json::Value;

/// `cinder inspect --json` and gguf-py's GGUFReader describe `file` identically.
fn assert_inspect_matches_gguf_py(file: &std::path::Path) {
    let out = cinder(&["inspect", "--json", file.to_str().unwrap()]);
    assert!(out.status.success(), "inspect failed: {}", stderr(&out));
    let ours: Value = serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    let dump = file.with_extension("py.json");
    let py = std::process::Command::new(python_with_gguf())
        .arg(py_script("gguf_dump.py"))
        .arg(file)
        .arg(&dump)
        .output()
        .expect("run gguf_dump.py");
    assert!(
        py.status.success(),
        "gguf-py could not read {}: {}",
        file.display(),
        stderr(&py)
    );
    let theirs: Value = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();

    assert_eq!(ours["version"], theirs["version"]);
    assert_eq!(ours["alignment"], theirs["alignment"]);
    let (ok, tk) = (
        ours["metadata"].as_array().unwrap(),
        theirs["kv"].as_array().unwrap(),
    );
    assert_eq!(ok.len(), tk.len(), "number of metadata keys");
    for (o, t) in ok.iter().zip(tk) {
        let key = t["key"].as_str().unwrap();
        assert_eq!(o["key"], t["key"]);
        assert_values_equal(key, &o["type"], &o["value"], &t["value"]);
    }
    let (ot, tt) = (
        ours["tensors"].as_array().unwrap(),
        theirs["tensors"].as_array().unwrap(),
    );
    assert_eq!(ot.len(), tt.len(), "number of tensors");
    for (o, t) in ot.iter().zip(tt) {
        assert_eq!(o["name"], t["name"]);
        assert_eq!(o["shape"], t["dims"], "{}", t["name"]);
        let ty = cinder_quant::GgmlType::from_name(o["type"].as_str().unwrap()).unwrap();
        assert_eq!(Value::from(ty.id()), t["type"], "{}", t["name"]);
        assert_eq!(o["offset"], t["offset"], "{}", t["name"]);
        assert_eq!(o["bytes"], t["n_bytes"], "{}", t["name"]);
    }
    let params: u64 = ot.iter().map(|t| t["n_elements"].as_u64().unwrap()).sum();
    assert_eq!(ours["totals"]["parameters"], params);
}

/// One metadata value: cinder prints `type` as "u32", "array of f32"...; gguf_dump gives
/// `{type, value}` with floats as IEEE bits.
fn assert_values_equal(key: &str, our_type: &Value, ours: &Value, theirs: &Value) {
    let their_type = theirs["type"].as_str().unwrap();
    let described = match their_type {
        "array" => format!("array of {}", theirs["elem"].as_str().unwrap()),
        t => t.to_string(),
    };
    assert_eq!(our_type.as_str().unwrap(), described, "{key}: type");
    match their_type {
        "array" => {
            let elem = theirs["elem"].as_str().unwrap();
            let (o, t) = (
                ours.as_array().unwrap(),
                theirs["value"].as_array().unwrap(),
            );
            assert_eq!(o.len(), t.len(), "{key}: array length");
            for (i, (a, b)) in o.iter().zip(t).enumerate() {
                match elem {
                    "array" => assert_values_equal(
                        key,
                        &Value::from(format!("array of {}", b["elem"].as_str().unwrap())),
                        a,
                        b,
                    ),
                    "f32" | "f64" => assert_float(key, elem, a, b, i),
                    _ => assert_eq!(a, b, "{key}[{i}]"),
                }
            }
        }
        "f32" | "f64" => assert_float(key, their_type, ours, &theirs["value"], 0),
        _ => assert_eq!(ours, &theirs["value"], "{key}"),
    }
}

fn assert_float(key: &str, ty: &str, ours: &Value, their_bits: &Value, i: usize) {
    let bits = their_bits.as_u64().unwrap();
    let theirs = if ty == "f32" {
        f32::from_bits(bits as u32) as f64
    } else {
        f64::from_bits(bits)
    };
    match ours.as_f64() {
        Some(v) if ty == "f32" => assert_eq!((v as f32).to_bits(), bits as u32, "{key}[{i}]"),
        Some(v) => assert_eq!(v.to_bits(), bits, "{key}[{i}]"),
        None => assert!(!theirs.is_finite(), "{key}[{i}]: null for a finite value"),
    }
}

#[test]
fn inspect_json_matches_gguf_py_on_a_converted_llama_file() {
    let dir = TempDir::new("inspect-conv");
    let file = dir.join("s.q8_0.gguf");
    convert("stories260k", "q8_0", &file);
    assert_inspect_matches_gguf_py(&file);
    let file = dir.join("t.q4_k_m.gguf");
    convert("tiny-llama2-f16", "q4_k_m", &file);
    assert_inspect_matches_gguf_py(&file);
}

#[test]
fn inspect_json_matches_gguf_py_on_a_file_gguf_py_wrote() {
    let dir = TempDir::new("inspect-py");
    let file = dir.join("py.gguf");
    let spec = dir.join("py.json");
    let o = std::process::Command::new(python_with_gguf())
        .arg(py_script("gguf_write.py"))
        .arg(&file)
        .arg(&spec)
        .output()
        .expect("run gguf_write.py");
    assert!(o.status.success(), "gguf_write.py failed: {}", stderr(&o));
    assert_inspect_matches_gguf_py(&file);
}

#[test]
fn inspect_text_shows_header_keys_abbreviated_arrays_tensors_and_totals() {
    let dir = TempDir::new("inspect-text");
    let file = dir.join("t.f16.gguf");
    convert("tiny-llama2-f16", "f16", &file);
    let o = cinder(&["inspect", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "version:     3",
        "alignment:   32",
        "general.architecture",
        "\"llama\"",
        "(length 32000)",
        "blk.3.ffn_down.weight",
        "F16",
        "[352, 128]",
        "bits per weight",
    ] {
        assert!(
            text.contains(needle),
            "inspect output lacks {needle:?}:\n{text}"
        );
    }
    // 32000 tokens are abbreviated, not printed one by one.
    assert!(text.len() < 20_000, "inspect text is {} bytes", text.len());
}

#[test]
fn inspect_rejects_bad_files_with_one_line_naming_the_file() {
    let dir = TempDir::new("inspect-bad");
    let good = dir.join("good.gguf");
    convert("stories260k", "q4_0", &good);
    let bytes = std::fs::read(&good).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", b"this is not a gguf file at all".to_vec()),
        ("truncated-header", bytes[..100].to_vec()),
        ("truncated-data", bytes[..bytes.len() - 1000].to_vec()),
    ];
    let mut v1 = bytes.clone();
    v1[4..8].copy_from_slice(&1u32.to_le_bytes());
    cases.push(("version1", v1));
    let mut big_endian = bytes.clone();
    big_endian[4..8].copy_from_slice(&3u32.to_be_bytes());
    cases.push(("big-endian", big_endian));
    let mut huge_count = bytes.clone();
    huge_count[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(("huge-tensor-count", huge_count));
    for (name, data) in cases {
        let path = dir.join(&format!("{name}.gguf"));
        std::fs::write(&path, &data).unwrap();
        let o = cinder(&["inspect", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{name}: inspect accepted a bad file");
        assert_eq!(
            o.status.code(),
            Some(1),
            "{name}: exit code (a panic exits 101)"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{name}: not one line: {err}"
        );
        assert!(
            err.contains(&format!("{name}.gguf")),
            "{name}: error does not name the file: {err}"
        );
    }
    let o = cinder(&["inspect", dir.join("missing.gguf").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.gguf"));
}
