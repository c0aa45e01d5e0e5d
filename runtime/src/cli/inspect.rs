//! `cinder inspect FILE.gguf`: what a GGUF file holds, as text or JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cinder::mmap::MappedFile;
use cinder_quant::gguf::{Array, Gguf, Value};
use serde_json::json;

/// How many array elements the text output shows before abbreviating.
const SHOWN_ELEMENTS: usize = 8;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The GGUF file to inspect.
    file: PathBuf,
    /// Print JSON (every metadata value in full) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let path = args.file.display();
    let file = MappedFile::open(&args.file).with_context(|| format!("{path}: cannot open"))?;
    let gguf =
        Gguf::parse(file.bytes()).with_context(|| format!("{path}: not a valid GGUF file"))?;
    let totals = Totals::of(&gguf, file.bytes().len());
    let out = if args.json {
        serde_json::to_string_pretty(&to_json(&args.file, &gguf, &totals))? + "\n"
    } else {
        to_text(&args.file, &gguf, &totals)
    };
    use std::io::Write;
    // A closed pipe (`cinder inspect f | head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

struct Totals {
    params: u64,
    tensor_bytes: u64,
    file_bytes: u64,
}

impl Totals {
    fn of(gguf: &Gguf<'_>, file_bytes: usize) -> Self {
        let params = gguf.tensors().iter().map(|t| t.n_elements()).sum();
        let tensor_bytes = gguf.tensors().iter().map(|t| t.size()).sum();
        Totals {
            params,
            tensor_bytes,
            file_bytes: file_bytes as u64,
        }
    }

    /// Bits per weight over all tensors, as llama.cpp reports it.
    fn bits_per_weight(&self) -> f64 {
        if self.params == 0 {
            0.0
        } else {
            self.tensor_bytes as f64 * 8.0 / self.params as f64
        }
    }
}

fn to_text(path: &std::path::Path, gguf: &Gguf<'_>, totals: &Totals) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "file:        {}", path.display());
    let _ = writeln!(s, "version:     {}", gguf.version());
    let _ = writeln!(s, "alignment:   {}", gguf.alignment());
    let _ = writeln!(s, "data offset: {}", gguf.data_offset());
    let _ = writeln!(s, "\nmetadata ({} keys):", gguf.metadata().len());
    let key_width = gguf
        .metadata()
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0);
    for (key, value) in gguf.metadata() {
        let _ = writeln!(
            s,
            "  {key:<key_width$}  {:<16}  {}",
            value.type_description(),
            text_value(value)
        );
    }
    let _ = writeln!(s, "\ntensors ({}):", gguf.tensors().len());
    let name_width = gguf
        .tensors()
        .iter()
        .map(|t| t.name().len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:>5}  {:<name_width$}  {:<7}  {:<24}  {:>14}  {:>14}",
        "#", "name", "type", "shape", "bytes", "offset"
    );
    for (i, t) in gguf.tensors().iter().enumerate() {
        let _ = writeln!(
            s,
            "  {i:>5}  {:<name_width$}  {:<7}  {:<24}  {:>14}  {:>14}",
            t.name(),
            t.ty().name(),
            shape(t.dims()),
            t.size(),
            t.offset()
        );
    }
    let _ = writeln!(
        s,
        "\ntotals: {} parameters ({}), {} tensor bytes, {} file bytes, {:.2} bits per weight",
        totals.params,
        human_count(totals.params),
        totals.tensor_bytes,
        totals.file_bytes,
        totals.bits_per_weight()
    );
    s
}

fn shape(dims: &[u64]) -> String {
    let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.2} K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn text_value(v: &Value) -> String {
    match v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
        Value::Str(x) => abbreviate_str(x),
        Value::Array(a) => text_array(a),
    }
}

/// A string on one line: quoted and escaped, long ones cut with their length.
fn abbreviate_str(s: &str) -> String {
    const MAX_CHARS: usize = 80;
    if s.chars().count() <= MAX_CHARS {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_CHARS).collect();
        format!("{head:?}... ({} bytes)", s.len())
    }
}

fn text_array(a: &Array) -> String {
    fn items<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
        let shown: Vec<String> = v.iter().take(SHOWN_ELEMENTS).map(f).collect();
        let more = if v.len() > SHOWN_ELEMENTS {
            ", ..."
        } else {
            ""
        };
        format!("[{}{more}] (length {})", shown.join(", "), v.len())
    }
    match a {
        Array::U8(v) => items(v, u8::to_string),
        Array::I8(v) => items(v, i8::to_string),
        Array::U16(v) => items(v, u16::to_string),
        Array::I16(v) => items(v, i16::to_string),
        Array::U32(v) => items(v, u32::to_string),
        Array::I32(v) => items(v, i32::to_string),
        Array::U64(v) => items(v, u64::to_string),
        Array::I64(v) => items(v, i64::to_string),
        Array::F32(v) => items(v, f32::to_string),
        Array::F64(v) => items(v, f64::to_string),
        Array::Bool(v) => items(v, bool::to_string),
        Array::Str(v) => items(v, |s| abbreviate_str(s)),
        Array::Array(v) => items(v, text_array),
    }
}

fn to_json(path: &std::path::Path, gguf: &Gguf<'_>, totals: &Totals) -> serde_json::Value {
    let metadata: Vec<_> = gguf
        .metadata()
        .iter()
        .map(|(k, v)| json!({ "key": k, "type": v.type_description(), "value": json_value(v) }))
        .collect();
    let tensors: Vec<_> = gguf
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name(),
                "type": t.ty().name(),
                "shape": t.dims(),
                "n_elements": t.n_elements(),
                "bytes": t.size(),
                "offset": t.offset(),
            })
        })
        .collect();
    json!({
        "file": path.display().to_string(),
        "version": gguf.version(),
        "alignment": gguf.alignment(),
        "data_offset": gguf.data_offset(),
        "metadata": metadata,
        "tensors": tensors,
        "totals": {
            "parameters": totals.params,
            "tensor_bytes": totals.tensor_bytes,
            "file_bytes": totals.file_bytes,
            "bits_per_weight": totals.bits_per_weight(),
        },
    })
}

/// Floats that JSON cannot hold (NaN, infinities) become null.
fn json_float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => json_float(*x as f64),
        Value::F64(x) => json_float(*x),
        Value::Bool(x) => json!(x),
        Value::Str(x) => json!(x),
        Value::Array(a) => json_array(a),
    }
}

fn json_array(a: &Array) -> serde_json::Value {
    match a {
        Array::U8(v) => json!(v),
        Array::I8(v) => json!(v),
        Array::U16(v) => json!(v),
        Array::I16(v) => json!(v),
        Array::U32(v) => json!(v),
        Array::I32(v) => json!(v),
        Array::U64(v) => json!(v),
        Array::I64(v) => json!(v),
        Array::F32(v) => v.iter().map(|&x| json_float(x as f64)).collect(),
        Array::F64(v) => v.iter().map(|&x| json_float(x)).collect(),
        Array::Bool(v) => json!(v),
        Array::Str(v) => json!(v),
        Array::Array(v) => v.iter().map(json_array).collect(),
    }
}
