//! Interop with llama.cpp's Python `gguf` package (0.19.0):
//! (a) cinder writes, `gguf.GGUFReader` reads: its dump must equal what cinder was asked to write;
//! (b) `gguf.GGUFWriter` writes, cinder reads: cinder's view must equal what Python wrote.
//!
//! The JSON form is described in `tests/py/gguf_json.py`; `tests/py/compare_json.py` does the
//! comparison. Python 3 with `gguf` is required: without it these tests fail, never skip.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cinder_quant::GgmlType;
use cinder_quant::gguf::{Array, Gguf, GgufWriter, Value, keys};

fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

/// A unique path under the temp dir.
fn temp(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("cinder-gguf-{}-{nanos}-{tag}", std::process::id()))
}

/// Fail (never skip) when python3 or its `gguf` package is missing.
fn require_gguf() {
    let check = Command::new("python3").args(["-c", "import gguf"]).output();
    match check {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 cannot import gguf ({}); run `pip install gguf==0.19.0`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            panic!("python3 not found ({e}); install Python 3 and run `pip install gguf==0.19.0`")
        }
    }
}

/// Run a helper script; panic with its output when it fails.
fn python(script: &str, args: &[&Path]) {
    require_gguf();
    let out = Command::new("python3")
        .arg(py_dir().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- the JSON form (see tests/py/gguf_json.py) ----

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_list<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, x);
    }
    out.push(']');
}

fn json_array(out: &mut String, a: &Array) {
    write!(
        out,
        "{{\"type\":\"array\",\"elem\":\"{}\",\"value\":",
        a.elem_type()
    )
    .unwrap();
    let num = |out: &mut String, x: &dyn std::fmt::Display| write!(out, "{x}").unwrap();
    match a {
        Array::U8(v) => json_list(out, v, |o, x| num(o, x)),
        Array::I8(v) => json_list(out, v, |o, x| num(o, x)),
        Array::U16(v) => json_list(out, v, |o, x| num(o, x)),
        Array::I16(v) => json_list(out, v, |o, x| num(o, x)),
        Array::U32(v) => json_list(out, v, |o, x| num(o, x)),
        Array::I32(v) => json_list(out, v, |o, x| num(o, x)),
        Array::U64(v) => json_list(out, v, |o, x| num(o, x)),
        Array::I64(v) => json_list(out, v, |o, x| num(o, x)),
        Array::F32(v) => json_list(out, v, |o, x| num(o, &x.to_bits())),
        Array::F64(v) => json_list(out, v, |o, x| num(o, &x.to_bits())),
        Array::Bool(v) => json_list(out, v, |o, x| num(o, x)),
        Array::Str(v) => json_list(out, v, |o, x| json_str(o, x)),
        Array::Array(v) => json_list(out, v, json_array),
    }
    out.push('}');
}

fn json_value(out: &mut String, v: &Value) {
    let ty = v.value_type();
    let scalar = |out: &mut String, x: &dyn std::fmt::Display| {
        write!(out, "{{\"type\":\"{ty}\",\"value\":{x}}}").unwrap()
    };
    match v {
        Value::U8(x) => scalar(out, x),
        Value::I8(x) => scalar(out, x),
        Value::U16(x) => scalar(out, x),
        Value::I16(x) => scalar(out, x),
        Value::U32(x) => scalar(out, x),
        Value::I32(x) => scalar(out, x),
        Value::U64(x) => scalar(out, x),
        Value::I64(x) => scalar(out, x),
        Value::F32(x) => scalar(out, &x.to_bits()),
        Value::F64(x) => scalar(out, &x.to_bits()),
        Value::Bool(x) => scalar(out, x),
        Value::Str(s) => {
            out.push_str("{\"type\":\"string\",\"value\":");
            json_str(out, s);
            out.push('}');
        }
        Value::Array(a) => json_array(out, a),
    }
}

struct TensorJson<'a> {
    name: &'a str,
    dims: &'a [u64],
    ty: GgmlType,
    offset: u64,
    data: &'a [u8],
}

fn to_json(
    version: u32,
    alignment: u32,
    kv: &[(String, Value)],
    tensors: &[TensorJson<'_>],
) -> String {
    let mut out = format!("{{\"version\":{version},\"alignment\":{alignment},\"kv\":");
    json_list(&mut out, kv, |o, (k, v)| {
        o.push_str("{\"key\":");
        json_str(o, k);
        o.push_str(",\"value\":");
        json_value(o, v);
        o.push('}');
    });
    out.push_str(",\"tensors\":");
    json_list(&mut out, tensors, |o, t| {
        o.push_str("{\"name\":");
        json_str(o, t.name);
        write!(
            o,
            ",\"dims\":{:?},\"type\":{},\"offset\":{},\"data_hex\":\"",
            t.dims,
            t.ty.id(),
            t.offset
        )
        .unwrap();
        t.data.iter().for_each(|b| write!(o, "{b:02x}").unwrap());
        o.push_str("\"}");
    });
    out.push('}');
    out
}

fn gguf_json(g: &Gguf<'_>) -> String {
    let tensors: Vec<_> = g
        .tensors()
        .iter()
        .map(|t| TensorJson {
            name: t.name(),
            dims: t.dims(),
            ty: t.ty(),
            offset: t.offset(),
            data: g.tensor_data(t),
        })
        .collect();
    to_json(g.version(), g.alignment(), g.metadata(), &tensors)
}

// ---- (a) cinder writes, Python reads ----

/// Deterministic pseudo-random values in [-2, 2).
fn floats(seed: u32, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 22) as f32 - 2.0
        })
        .collect()
}

fn metadata_with_every_type() -> Vec<(String, Value)> {
    let s = |x: &str| x.to_string();
    vec![
        (s(keys::GENERAL_ARCHITECTURE), Value::from("llama")),
        (
            s(keys::GENERAL_NAME),
            Value::from("cinder ünïcode ✓ \"q\" \\ \n\t\u{1}"),
        ),
        (s(keys::GENERAL_FILE_TYPE), Value::U32(7)),
        (
            s(keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON),
            Value::F32(1e-5),
        ),
        (s("t.u8"), Value::U8(255)),
        (s("t.i8"), Value::I8(-128)),
        (s("t.u16"), Value::U16(65535)),
        (s("t.i16"), Value::I16(i16::MIN)),
        (s("t.i32"), Value::I32(i32::MIN)),
        (s("t.f32.nan"), Value::F32(f32::from_bits(0x7fc0_1234))),
        (s("t.f32.neg0"), Value::F32(-0.0)),
        (s("t.bool"), Value::Bool(false)),
        (s("t.empty_string"), Value::from("")),
        (s("t.u64"), Value::U64(u64::MAX)),
        (s("t.i64"), Value::I64(i64::MIN)),
        (
            s("t.f64"),
            Value::F64(f64::from_bits(0xfff8_0000_0000_0001)),
        ),
        (
            s(keys::TOKENIZER_TOKENS),
            Value::Array(Array::Str(vec![s("<unk>"), s("▁hi"), s(""), s("\u{7f}")])),
        ),
        (
            s(keys::TOKENIZER_SCORES),
            Value::Array(Array::F32(vec![
                0.0,
                -1.5,
                f32::INFINITY,
                f32::MIN_POSITIVE / 2.0,
            ])),
        ),
        (
            s(keys::TOKENIZER_TOKEN_TYPE),
            Value::Array(Array::I32(vec![2, 1, 1, 6])),
        ),
        (s("a.u8"), Value::Array(Array::U8(vec![0, 1, 255]))),
        (s("a.i8"), Value::Array(Array::I8(vec![-1, 127]))),
        (s("a.u16"), Value::Array(Array::U16(vec![1, 65535]))),
        (s("a.i16"), Value::Array(Array::I16(vec![-1]))),
        (s("a.u32"), Value::Array(Array::U32(vec![u32::MAX]))),
        (s("a.bool"), Value::Array(Array::Bool(vec![true, false]))),
        (s("a.u64"), Value::Array(Array::U64(vec![u64::MAX, 0]))),
        (
            s("a.i64"),
            Value::Array(Array::I64(vec![i64::MIN, i64::MAX])),
        ),
        (s("a.f64"), Value::Array(Array::F64(vec![0.1, -0.0]))),
        (s("a.empty"), Value::Array(Array::U32(vec![]))),
        (
            s("a.nested"),
            Value::Array(Array::Array(vec![
                Array::I32(vec![1, 2]),
                Array::Str(vec![s("x")]),
                Array::Array(vec![Array::F32(vec![0.5]), Array::Array(vec![])]),
                Array::Bool(vec![]),
            ])),
        ),
    ]
}

#[test]
fn python_gguf_reader_reads_what_cinder_writes() {
    let kv = metadata_with_every_type();
    // (name, dims innermost first, type)
    let specs: [(&str, &[u64], GgmlType); 8] = [
        ("token_embd.weight", &[64, 3], GgmlType::F32),
        ("blk.0.attn_q.weight", &[32, 2, 2], GgmlType::F16),
        ("blk.0.ffn_up.weight", &[64, 2], GgmlType::Q4_0),
        ("blk.0.ffn_down.weight", &[96], GgmlType::Q8_0),
        ("output.weight", &[256, 2], GgmlType::Q6_K),
        ("blk.0.attn_k.weight", &[512, 1, 1, 1], GgmlType::Q4_K),
        ("blk.0.bf16", &[5], GgmlType::BF16),
        ("blk.0.ids", &[7], GgmlType::I32),
    ];
    let mut data = Vec::new();
    for (i, (_, dims, ty)) in specs.iter().enumerate() {
        let n: u64 = dims.iter().product();
        let mut bytes = vec![0u8; ty.bytes_for(n).unwrap() as usize];
        match ty {
            GgmlType::F32 | GgmlType::F16 | GgmlType::Q4_0 | GgmlType::Q8_0 => {
                cinder_quant::reference::quantize(*ty, &floats(i as u32, n as usize), &mut bytes)
                    .unwrap()
            }
            _ => bytes
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = (j * 31 + i * 7) as u8),
        }
        data.push(bytes);
    }

    let mut w = GgufWriter::new();
    for (k, v) in &kv {
        w.add(k, v.clone()).unwrap();
    }
    for (name, dims, ty) in &specs {
        w.add_tensor_info(name, dims, *ty).unwrap();
    }
    let mut file = Vec::new();
    w.write_header(&mut file).unwrap();
    for ((name, _, _), bytes) in specs.iter().zip(&data) {
        w.write_tensor_data(&mut file, name, bytes).unwrap();
    }
    w.finish().unwrap();

    // Expected JSON from the writer's inputs; offsets packed at 32-byte alignment.
    let mut offset = 0;
    let tensors: Vec<_> = specs
        .iter()
        .zip(&data)
        .map(|((name, dims, ty), bytes)| {
            let t = TensorJson {
                name,
                dims,
                ty: *ty,
                offset,
                data: bytes,
            };
            offset += (bytes.len() as u64).next_multiple_of(32);
            t
        })
        .collect();
    let expected = to_json(3, 32, &kv, &tensors);

    let (gguf_path, expected_path, dump_path) =
        (temp("a.gguf"), temp("a-expected.json"), temp("a-dump.json"));
    std::fs::write(&gguf_path, &file).unwrap();
    std::fs::write(&expected_path, expected).unwrap();
    python("gguf_dump.py", &[&gguf_path, &dump_path]);
    python("compare_json.py", &[&expected_path, &dump_path]);
    for p in [gguf_path, expected_path, dump_path] {
        let _ = std::fs::remove_file(p);
    }
}

// ---- (b) Python writes, cinder reads ----

#[test]
fn cinder_reads_what_python_gguf_writer_writes() {
    let (gguf_path, expected_path, actual_path) = (
        temp("b.gguf"),
        temp("b-expected.json"),
        temp("b-cinder.json"),
    );
    python("gguf_write.py", &[&gguf_path, &expected_path]);
    let bytes = std::fs::read(&gguf_path).unwrap();
    let g = Gguf::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", gguf_path.display()));
    assert_eq!(
        g.alignment(),
        64,
        "the Python file sets general.alignment = 64"
    );
    assert_eq!(g.get_str(keys::GENERAL_ARCHITECTURE).unwrap(), "llama");
    assert_eq!(g.get_str_array(keys::TOKENIZER_TOKENS).unwrap().len(), 7);
    std::fs::write(&actual_path, gguf_json(&g)).unwrap();
    python("compare_json.py", &[&expected_path, &actual_path]);
    for p in [gguf_path, expected_path, actual_path] {
        let _ = std::fs::remove_file(p);
    }
}

/// The comparison itself must be able to fail: a one-bit change in a value is reported.
#[test]
fn json_comparison_detects_a_changed_value() {
    let kv = vec![("k".to_string(), Value::F32(1.0))];
    let a = to_json(3, 32, &kv, &[]);
    let b = to_json(
        3,
        32,
        &[(
            "k".to_string(),
            Value::F32(f32::from_bits(1.0f32.to_bits() + 1)),
        )],
        &[],
    );
    let (pa, pb) = (temp("c-a.json"), temp("c-b.json"));
    std::fs::write(&pa, a).unwrap();
    std::fs::write(&pb, b).unwrap();
    require_gguf();
    let out = Command::new("python3")
        .arg(py_dir().join("compare_json.py"))
        .args([&pa, &pb])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "compare_json.py accepted different values"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("$.kv[0].value.value"));
    let _ = std::fs::remove_file(pa);
    let _ = std::fs::remove_file(pb);
}
