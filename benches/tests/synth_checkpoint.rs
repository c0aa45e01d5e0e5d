//! `synth-checkpoint` end to end: the folder is a valid sharded Hugging Face checkpoint (the
//! reference safetensors parser accepts every shard, the index covers every tensor, values are
//! N(0, 0.02)-like f16 and norms 1.0), the same seed gives the same bytes, and
//! `cinder_convert::convert` turns it into a GGUF that parses with the right tensors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cinder_convert::{FileType, Options, Overrides};
use cinder_quant::GgmlType;
use cinder_quant::gguf::{Gguf, Value, keys};
use half::f16;
use safetensors::{Dtype, SafeTensors};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cinder-synth-ck-{}-{name}", std::process::id()))
}

/// A small GQA model: dim 256, 2 layers, 4 heads, 2 kv heads, ffn 512, Llama 2's vocabulary;
/// shards capped at 10 MB, so the 16 MB embedding and lm_head get shards of their own.
const SMALL: [&str; 14] = [
    "--shape",
    "custom",
    "--hidden",
    "256",
    "--layers",
    "2",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--ffn",
    "512",
    "--max-shard-bytes",
    "10000000",
];

fn run_synth(args: &[&str], out: &Path) {
    let run = Command::new(env!("CARGO_BIN_EXE_synth-checkpoint"))
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .expect("synth-checkpoint runs");
    assert!(
        run.status.success(),
        "synth-checkpoint {args:?} failed: {}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every tensor of the folder: name -> (shard file, shape, f16 values).
fn read_all(dir: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<f32>)> {
    let index = json(&dir.join("model.safetensors.index.json"));
    let map = index["weight_map"].as_object().expect("weight_map object");
    let mut files: Vec<&str> = map
        .values()
        .map(|v| v.as_str().expect("file name"))
        .collect();
    files.sort_unstable();
    files.dedup();
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    for f in files {
        let bytes = std::fs::read(dir.join(f)).expect("shard readable");
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        assert_eq!(header_len % 8, 0, "{f}: header not padded to 8 bytes");
        let st = SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("{f}: safetensors rejects it: {e:?}"));
        for (name, view) in st.tensors() {
            assert_eq!(view.dtype(), Dtype::F16, "{name}");
            assert_eq!(
                map[&name].as_str(),
                Some(f),
                "{name}: index names another shard"
            );
            total += view.data().len() as u64;
            let values = view
                .data()
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect();
            out.insert(name, (f.to_string(), view.shape().to_vec(), values));
        }
    }
    assert_eq!(
        out.len(),
        map.len(),
        "index and shards list different tensors"
    );
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total));
    out
}

#[test]
fn small_sharded_checkpoint_is_valid_safetensors_with_meta_config_and_sane_values() {
    let dir = tmp("valid");
    run_synth(&SMALL, &dir);
    let config = json(&dir.join("config.json"));
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    assert_eq!(config["torch_dtype"], "float16");
    assert_eq!(config["hidden_size"], 256);
    assert_eq!(config["num_hidden_layers"], 2);
    assert_eq!(config["num_key_value_heads"], 2);
    assert_eq!(config["intermediate_size"], 512);
    assert_eq!(config["vocab_size"], 32000);
    // Written as Python writes them (not the f64 widening of an f32).
    assert_eq!(config["rms_norm_eps"].as_f64(), Some(1e-5));
    assert_eq!(config["rope_theta"].as_f64(), Some(10000.0));
    let tok = cinder_quant::fixtures::path("models/tiny-llama2-f16");
    for f in ["tokenizer.model", "tokenizer_config.json"] {
        assert_eq!(
            std::fs::read(dir.join(f)).expect("copied"),
            std::fs::read(tok.join(f)).expect("fixture"),
            "{f} is not a copy of the fixture's"
        );
    }

    let all = read_all(&dir);
    // embed + 9 per layer + norm + lm_head.
    assert_eq!(all.len(), 1 + 2 * 9 + 2);
    let shards: std::collections::BTreeSet<&str> = all.values().map(|t| t.0.as_str()).collect();
    assert_eq!(
        shards.into_iter().collect::<Vec<_>>(),
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors"
        ]
    );
    assert_eq!(all["model.embed_tokens.weight"].1, [32000, 256]);
    assert_eq!(all["model.layers.1.self_attn.k_proj.weight"].1, [128, 256]);
    assert_eq!(all["model.layers.1.mlp.down_proj.weight"].1, [256, 512]);
    for (name, (_, shape, v)) in &all {
        assert_eq!(v.len(), shape.iter().product::<usize>(), "{name}");
        if name.ends_with("norm.weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}: norms must be 1.0");
        } else {
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let std = (v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n).sqrt();
            assert!(mean.abs() < 1e-3, "{name}: mean {mean}");
            assert!((std - 0.02).abs() < 1e-3, "{name}: std {std}");
        }
    }
    // Rows are distinct streams (not one row repeated).
    let q = &all["model.layers.0.self_attn.q_proj.weight"].2;
    assert_ne!(q[..256], q[256..512]);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn same_seed_gives_same_files_and_another_seed_different_weights() {
    let (a, b, c) = (tmp("seed-a"), tmp("seed-b"), tmp("seed-c"));
    run_synth(&SMALL, &a);
    run_synth(&SMALL, &b);
    run_synth(&[&SMALL[..], &["--seed", "1"]].concat(), &c);
    let shard = "model-00002-of-00003.safetensors";
    let read = |d: &Path| std::fs::read(d.join(shard)).expect("shard");
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
    for d in [a, b, c] {
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}

#[test]
fn cinder_converts_the_synthetic_checkpoint_to_a_gguf_that_parses() {
    let dir = tmp("convert");
    run_synth(&SMALL, &dir);
    let source = read_all(&dir);
    for (ft, name) in [(FileType::F16, "f16"), (FileType::Q4_0, "q4_0")] {
        let out = tmp(&format!("convert.{name}.gguf"));
        let opts = Options {
            input: dir.clone(),
            output: out.clone(),
            file_type: ft,
            overrides: Overrides::default(),
            force: true,
            allow_nonfinite: false,
            name: Some("synth".into()),
        };
        let summary = cinder_convert::convert(&opts, &mut |_| {}).expect("converts");
        let bytes = std::fs::read(&out).expect("output written");
        assert_eq!(summary.file_bytes, bytes.len() as u64);
        let g = Gguf::parse(&bytes).expect("cinder's GGUF parses");
        assert_eq!(g.tensors().len(), source.len());
        assert_eq!(
            g.get(keys::LLAMA_BLOCK_COUNT),
            Some(&Value::U32(2)),
            "{name}: block count"
        );
        assert_eq!(
            g.get(keys::LLAMA_ATTENTION_HEAD_COUNT_KV),
            Some(&Value::U32(2))
        );
        let embd = g.tensor("token_embd.weight").expect("token_embd");
        assert_eq!(embd.dims(), [256, 32000]);
        let down = g.tensor("blk.1.ffn_down.weight").expect("ffn_down");
        assert_eq!(down.dims(), [512, 256]);
        if ft == FileType::F16 {
            // Unpermuted tensors pass through f16 untouched: the GGUF holds the source bytes.
            assert_eq!(embd.ty(), GgmlType::F16);
            let got: Vec<f32> = g
                .tensor_data(embd)
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect();
            assert_eq!(got, source["model.embed_tokens.weight"].2);
        } else {
            assert_eq!(down.ty(), GgmlType::Q4_0);
        }
        std::fs::remove_file(&out).expect("cleanup");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
