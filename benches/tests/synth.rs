//! `synth-model` end to end: the file parses, carries the real vocabulary and llama.cpp's keys,
//! has llama-quantize's type mix, holds sane values, and cinder runs it to finite logits.

use std::path::{Path, PathBuf};
use std::process::Command;

use cinder::{Model, Session, SessionOptions};
use cinder_benches::synth::{self, Options, Shape};
use cinder_convert::{FileType, Vocab};
use cinder_quant::GgmlType;
use cinder_quant::gguf::{Gguf, Value, keys};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cinder-synth-{}-{name}", std::process::id()))
}

fn run_synth(args: &[&str], out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_synth-model"))
        .args(args)
        .arg("-o")
        .arg(out)
        .status()
        .expect("synth-model runs");
    assert!(status.success(), "synth-model {args:?} failed: {status}");
}

fn mean_std(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

fn values(g: &Gguf<'_>, name: &str) -> Vec<f32> {
    let t = g.tensor(name).expect("tensor present");
    let mut out = vec![0f32; t.n_elements() as usize];
    cinder_quant::reference::dequantize(t.ty(), g.tensor_data(t), &mut out).expect("dequantize");
    out
}

#[test]
fn custom_q4_k_m_model_has_llama_quantize_mix_real_vocab_and_runs_to_finite_logits() {
    let path = tmp("custom-q4_k_m.gguf");
    run_synth(
        &[
            "--shape",
            "custom",
            "--dim",
            "256",
            "--layers",
            "2",
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--ffn",
            "512",
            "--ctx",
            "64",
            "--type",
            "q4_k_m",
            "--seed",
            "3",
        ],
        &path,
    );
    let bytes = std::fs::read(&path).expect("output written");
    let g = Gguf::parse(&bytes).expect("a valid GGUF");

    // The real Llama 2 vocabulary (the default tokenizer) and llama.cpp's keys.
    let vocab = Vocab::read(&cinder_quant::fixtures::path("sources/tokenizer.model"))
        .expect("tokenizer.model parses");
    match g.get(keys::TOKENIZER_TOKENS) {
        Some(Value::Array(a)) => assert_eq!(a.len(), vocab.len()),
        other => panic!("no token array: {other:?}"),
    }
    assert_eq!(vocab.len(), 32000);
    assert_eq!(
        g.get_str(keys::GENERAL_ARCHITECTURE).expect("arch"),
        "llama"
    );
    let u32_key = |k: &str| match g.get(k) {
        Some(Value::U32(v)) => *v,
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(u32_key(keys::LLAMA_EMBEDDING_LENGTH), 256);
    assert_eq!(u32_key(keys::LLAMA_BLOCK_COUNT), 2);
    assert_eq!(u32_key(keys::LLAMA_ATTENTION_HEAD_COUNT), 4);
    assert_eq!(u32_key(keys::LLAMA_ATTENTION_HEAD_COUNT_KV), 2);
    assert_eq!(u32_key(keys::LLAMA_FEED_FORWARD_LENGTH), 512);
    assert_eq!(u32_key(keys::LLAMA_CONTEXT_LENGTH), 64);
    assert_eq!(u32_key(keys::LLAMA_ROPE_DIMENSION_COUNT), 64);
    assert_eq!(u32_key(keys::GENERAL_FILE_TYPE), 15);

    // llama-quantize's Q4_K_M with 2 layers: use_more_bits is true for layer 1 only, so its
    // attn_v and ffn_down are Q6_K; output.weight is Q6_K; norms F32; the rest Q4_K.
    assert_eq!(g.tensors().len(), 2 + 9 * 2 + 1);
    for t in g.tensors() {
        let n = t.name();
        let want = if n.ends_with("norm.weight") {
            GgmlType::F32
        } else if n == "output.weight" || n == "blk.1.attn_v.weight" || n == "blk.1.ffn_down.weight"
        {
            GgmlType::Q6_K
        } else {
            GgmlType::Q4_K
        };
        assert_eq!(t.ty(), want, "{n}");
    }
    let kv = g.tensor("blk.0.attn_k.weight").expect("attn_k");
    assert_eq!(kv.dims(), &[256, 128]);
    let down = g.tensor("blk.0.ffn_down.weight").expect("ffn_down");
    assert_eq!(down.dims(), &[512, 256]);

    // Values: norms around 1, weights around N(0, 0.02).
    let (m, s) = mean_std(&values(&g, "blk.0.attn_norm.weight"));
    assert!(
        (m - 1.0).abs() < 0.01 && s > 0.01 && s < 0.03,
        "norm mean {m} std {s}"
    );
    let (m, s) = mean_std(&values(&g, "blk.0.ffn_up.weight"));
    assert!(
        m.abs() < 0.002 && (s - 0.02).abs() < 0.003,
        "weight mean {m} std {s}"
    );
    drop(g);

    let model = Model::load(&path).expect("cinder loads the synthetic model");
    let mut session = Session::new(&model, SessionOptions::default()).expect("session");
    session.eval(&[1, 450, 4996, 17354]).expect("eval");
    let logits = session.logits();
    assert_eq!(logits.len(), 32000);
    assert!(logits.iter().all(|x| x.is_finite()), "non-finite logits");
    let (_, s) = mean_std(logits);
    assert!(s > 0.0, "logits are all equal");
    drop(session);
    drop(model);
    std::fs::remove_file(&path).expect("remove output");
}

fn write_lib(shape: &Shape, ft: FileType, seed: u64, name: &str) -> Vec<u8> {
    let vocab = Vocab::read(&cinder_quant::fixtures::path("sources/tok512.model"))
        .expect("tok512.model parses");
    let path = tmp(name);
    let opts = Options {
        shape: shape.clone(),
        file_type: ft,
        seed,
        name: "t".into(),
    };
    let mut seen = Vec::new();
    let summary =
        synth::write(&path, &opts, &vocab, &mut |t| seen.push(t.name.clone())).expect("written");
    assert_eq!(summary.tensors, seen.len());
    let bytes = std::fs::read(&path).expect("read back");
    std::fs::remove_file(&path).expect("remove output");
    bytes
}

#[test]
fn same_seed_gives_same_bytes_and_another_seed_differs() {
    let shape = Shape::named("stories260k-like").expect("known shape");
    let a = write_lib(&shape, FileType::Q8_0, 1, "a.gguf");
    let b = write_lib(&shape, FileType::Q8_0, 1, "b.gguf");
    let c = write_lib(&shape, FileType::Q8_0, 2, "c.gguf");
    assert!(a == b, "same seed, different files");
    assert_eq!(a.len(), c.len());
    assert!(a != c, "different seeds, same file");
}

#[test]
fn stories_like_f16_model_is_tied_and_runs() {
    let shape = Shape::named("stories260k-like").expect("known shape");
    let path = tmp("stories-f16.gguf");
    let bytes = write_lib(&shape, FileType::F16, 5, "stories-f16.gguf");
    let g = Gguf::parse(&bytes).expect("a valid GGUF");
    assert!(
        g.tensor("output.weight").is_none(),
        "tied model has no output.weight"
    );
    assert_eq!(
        g.tensor("token_embd.weight").expect("embd").dims(),
        &[64, 512]
    );
    assert_eq!(
        g.tensor("blk.4.ffn_down.weight").expect("ffn_down").ty(),
        GgmlType::F16
    );
    std::fs::write(&path, &bytes).expect("write copy");
    let model = Model::load(&path).expect("loads");
    let mut session = Session::new(&model, SessionOptions::default()).expect("session");
    session.eval(&[1, 2, 3]).expect("eval");
    assert_eq!(session.logits().len(), 512);
    assert!(session.logits().iter().all(|x| x.is_finite()));
    drop(session);
    drop(model);
    std::fs::remove_file(&path).expect("remove copy");
}
