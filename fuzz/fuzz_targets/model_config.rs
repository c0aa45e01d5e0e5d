//! Structured GGUF files built from the fuzzer's input (a chosen architecture, a set of known
//! metadata keys with values of any type, and tensors with known names, any type and small
//! shapes) through `Config::from_gguf`, the weight table, the tokenizer and the chat format;
//! a model that loads runs one forward step.

#![no_main]

use std::path::Path;

use cinder::chat_format::Format;
use cinder::config::Config;
use cinder::tokenizer::Tokenizer;
use cinder::weights::Weights;
use cinder::{KvType, Model, Session, SessionOptions};
use cinder_kernels::Kernels;
use cinder_quant::GgmlType;
use cinder_quant::gguf::{Gguf, GgufWriter, Value, keys};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    keys::GENERAL_ALIGNMENT,
    keys::LLAMA_CONTEXT_LENGTH,
    keys::LLAMA_EMBEDDING_LENGTH,
    keys::LLAMA_BLOCK_COUNT,
    keys::LLAMA_FEED_FORWARD_LENGTH,
    keys::LLAMA_ATTENTION_HEAD_COUNT,
    keys::LLAMA_ATTENTION_HEAD_COUNT_KV,
    keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON,
    keys::LLAMA_ROPE_FREQ_BASE,
    keys::LLAMA_ROPE_DIMENSION_COUNT,
    keys::LLAMA_VOCAB_SIZE,
    keys::TOKENIZER_MODEL,
    keys::TOKENIZER_TOKENS,
    keys::TOKENIZER_SCORES,
    keys::TOKENIZER_TOKEN_TYPE,
    keys::TOKENIZER_BOS_TOKEN_ID,
    keys::TOKENIZER_EOS_TOKEN_ID,
    keys::TOKENIZER_UNKNOWN_TOKEN_ID,
    keys::TOKENIZER_PADDING_TOKEN_ID,
    keys::TOKENIZER_ADD_BOS_TOKEN,
    keys::TOKENIZER_ADD_EOS_TOKEN,
    keys::TOKENIZER_CHAT_TEMPLATE,
];

/// Largest `general.alignment` the harness writes (64 KiB).
const MAX_ALIGNMENT: u32 = 1 << 16;

const GLOBAL_TENSORS: &[&str] = &["token_embd.weight", "output_norm.weight", "output.weight"];
const LAYER_TENSORS: &[&str] = &[
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

#[derive(Arbitrary, Debug)]
enum Val {
    U8(u8),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
    U32s(Vec<u32>),
}

#[derive(Arbitrary, Debug)]
struct TensorSpec {
    /// Index into the global names, then the per-layer names.
    name: u8,
    layer: u8,
    ty: u8,
    /// Innermost dimension in blocks of the type (0: one element fewer than a block).
    cols_blocks: u8,
    rows: u8,
    one_dim: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    llama: bool,
    keys: Vec<(u8, Val)>,
    tensors: Vec<TensorSpec>,
    data_seed: u8,
}

fn value(v: Val) -> Value {
    match v {
        Val::U8(x) => Value::U8(x),
        Val::U32(x) => Value::U32(x),
        Val::I32(x) => Value::I32(x),
        Val::U64(x) => Value::U64(x),
        Val::I64(x) => Value::I64(x),
        Val::F32(x) => Value::F32(x),
        Val::F64(x) => Value::F64(x),
        Val::Bool(x) => Value::Bool(x),
        Val::Str(x) => Value::from(x.as_str()),
        Val::Strs(x) => Value::Array(x.into()),
        Val::F32s(x) => Value::Array(x.into()),
        Val::I32s(x) => Value::Array(x.into()),
        Val::U32s(x) => Value::Array(x.into()),
    }
}

fn build(input: Input) -> Option<Vec<u8>> {
    let mut w = GgufWriter::new();
    let arch = if input.llama { "llama" } else { "gpt2" };
    w.add_string(keys::GENERAL_ARCHITECTURE, arch).ok()?;
    for (k, v) in input.keys {
        let key = KEYS[k as usize % KEYS.len()];
        let v = value(v);
        // The writer pads the header and every tensor to `general.alignment` in memory: a
        // fuzzed alignment of 2^29 cost this harness seconds of writing zeros per input (the
        // loader was not involved). Large alignments in files reach the reader through the
        // gguf_parse and model_load targets, which take raw bytes.
        if key == keys::GENERAL_ALIGNMENT && matches!(v, Value::U32(a) if a > MAX_ALIGNMENT) {
            continue;
        }
        // A repeated key is the writer's error: skip it.
        let _ = w.add(key, v);
    }
    let mut names = Vec::new();
    let mut total = 0u64;
    for t in input.tensors.iter().take(64) {
        let n = t.name as usize % (GLOBAL_TENSORS.len() + LAYER_TENSORS.len());
        let name = match GLOBAL_TENSORS.get(n) {
            Some(g) => g.to_string(),
            None => format!(
                "blk.{}.{}.weight",
                t.layer % 4,
                LAYER_TENSORS[n - GLOBAL_TENSORS.len()]
            ),
        };
        let ty = GgmlType::ALL[t.ty as usize % GgmlType::ALL.len()];
        let block = ty.block_size() as u64;
        let cols = match t.cols_blocks {
            0 => block.saturating_sub(1).max(1),
            b => u64::from(b % 16) * block + u64::from(b / 16 == 15),
        };
        let dims: Vec<u64> = if t.one_dim {
            vec![cols]
        } else {
            vec![cols, u64::from(t.rows)]
        };
        if w.add_tensor_info(&name, &dims, ty).is_err() {
            continue;
        }
        let size = w.tensor_size(&name)?;
        total += size;
        if total > 8 << 20 {
            return None;
        }
        names.push(name);
    }
    let mut out = Vec::new();
    w.write_header(&mut out).ok()?;
    for (i, name) in names.iter().enumerate() {
        let size = w.tensor_size(name)? as usize;
        let data: Vec<u8> = (0..size)
            .map(|j| (j.wrapping_mul(31) ^ i ^ input.data_seed as usize) as u8 & 0x3f)
            .collect();
        w.write_tensor_data(&mut out, name, &data).ok()?;
    }
    Some(out)
}

fuzz_target!(|input: Input| {
    let Some(bytes) = build(input) else { return };
    let path = Path::new("fuzz.gguf");
    let Ok(g) = Gguf::parse(&bytes) else { return };
    let _ = Tokenizer::from_gguf(&g).map(|t| t.encode("Hello world", true));
    let _ = Format::from_gguf(&g, path);
    let Ok(config) = Config::from_gguf(&g, path) else {
        return;
    };
    let _ = cinder::memory::SessionMemory::new(&config, 1 << 20, 64, KvType::F16);
    if Weights::from_gguf(&g, &config, path).is_err() {
        return;
    }
    let model = Model::from_bytes(&bytes, path, Kernels::detect()).expect("it parsed once");
    let opts = SessionOptions {
        ctx_size: 4,
        max_batch: 2,
        kv_type: KvType::F32,
    };
    let Ok(mut session) = Session::new(&model, opts) else {
        return;
    };
    let vocab = config.vocab_size as u32;
    let _ = session.eval(&[0, vocab - 1]);
});
