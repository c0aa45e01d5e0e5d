//! Model files with hostile values (found by the fuzz targets in fuzz/): each is an error
//! naming the file, never an abort or a huge allocation.

mod common;

use cinder::{KvType, Model, Session, SessionOptions};
use cinder_kernels::Kernels;
use cinder_quant::gguf::{Gguf, GgufWriter, Value};
use common::*;

/// The GGUF `bytes` with metadata `key` set to `value`.
fn with_key(bytes: &[u8], key: &str, value: Value) -> Vec<u8> {
    let g = Gguf::parse(bytes).expect("parse");
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        if k != key {
            w.add(k, v.clone()).expect("metadata");
        }
    }
    w.add(key, value).expect("key");
    for t in g.tensors() {
        w.add_tensor_info(t.name(), t.dims(), t.ty()).expect("info");
    }
    let mut out = Vec::new();
    w.write_header(&mut out).expect("header");
    for t in g.tensors() {
        w.write_tensor_data(&mut out, t.name(), g.tensor_data(t))
            .expect("data");
    }
    out
}

fn stories_q8() -> Vec<u8> {
    let dir = TempDir::new("hostile");
    let path = dir.join("m.gguf");
    convert("stories260k", "q8_0", &path);
    std::fs::read(&path).unwrap()
}

#[test]
fn a_block_count_of_billions_is_a_missing_tensor_not_a_huge_allocation() {
    let bytes = with_key(
        &stories_q8(),
        "llama.block_count",
        Value::U32(1_700_000_000),
    );
    let e = Model::from_bytes(&bytes, "huge-layers.gguf", Kernels::scalar()).unwrap_err();
    assert!(
        matches!(e, cinder::Error::MissingTensor { ref name, .. } if name == "blk.5.attn_norm.weight"),
        "{e}"
    );
}

#[test]
fn a_training_context_of_billions_is_refused_when_the_session_is_made() {
    let bytes = with_key(&stories_q8(), "llama.context_length", Value::U32(1 << 31));
    let model = Model::from_bytes(&bytes, "huge-ctx.gguf", Kernels::scalar()).unwrap();
    let opts = SessionOptions {
        ctx_size: 0,
        max_batch: 64,
        kv_type: KvType::F16,
    };
    let e = Session::new(&model, opts).unwrap_err();
    assert!(
        matches!(e, cinder::Error::OutOfMemory { ctx_size, .. } if ctx_size == 1 << 31),
        "{e}"
    );
}
