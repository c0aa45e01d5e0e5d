//! `convert()` on the fixture checkpoints: what it writes (checked against the checkpoint
//! through independent code paths), determinism, and clean errors on broken checkpoints.

use std::path::{Path, PathBuf};

use cinder_convert::{Error, FileType, Options, Overrides, convert};
use cinder_quant::GgmlType;
use cinder_quant::fixtures;
use cinder_quant::gguf::Gguf;
use safetensors::SafeTensors;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cinder-convert-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(input: &Path, output: &Path, ft: FileType) -> Options {
    Options {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        file_type: ft,
        overrides: Overrides::default(),
        force: false,
        allow_nonfinite: false,
        name: None,
    }
}

fn run(opts: &Options) -> Result<cinder_convert::Summary, Error> {
    convert(opts, &mut |_| {})
}

/// A copy of a fixture checkpoint folder that a test may break.
fn copy_model(name: &str, dir: &Path) -> PathBuf {
    let src = fixtures::path(&format!("models/{name}"));
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Checkpoint tensor as f32 (the fixtures' f32 stories260k).
fn hf_tensor(model: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = fixtures::read(&format!("models/{model}/model.safetensors"));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    (t.shape().to_vec(), f32s(t.data()))
}

/// The fixture README's permutation from GGUF's adjacent-pair rows to HF's rotate-half rows:
/// `w.view(heads, head_dim/2, 2, dim).transpose(1, 2).reshape(heads*head_dim, dim)`.
fn to_hf_order(w: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    let hd = rows / heads;
    let mut out = vec![0f32; w.len()];
    for h in 0..heads {
        for a in 0..hd / 2 {
            for b in 0..2 {
                let src = h * hd + a * 2 + b;
                let dst = h * hd + b * (hd / 2) + a;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn f32_conversion_keeps_every_weight_and_permutes_q_and_k_per_head() {
    let tmp = TempDir::new("f32");
    let out = tmp.0.join("s.gguf");
    run(&options(
        &fixtures::path("models/stories260k"),
        &out,
        FileType::F32,
    ))
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert!(
        g.tensor("output.weight").is_none(),
        "tied embeddings: no output.weight"
    );
    assert_eq!(g.tensors().len(), 2 + 5 * 9);
    for (gguf, hf, heads) in [
        (
            "blk.2.attn_q.weight",
            "model.layers.2.self_attn.q_proj.weight",
            Some(8),
        ),
        (
            "blk.2.attn_k.weight",
            "model.layers.2.self_attn.k_proj.weight",
            Some(4),
        ),
        (
            "blk.2.attn_v.weight",
            "model.layers.2.self_attn.v_proj.weight",
            None,
        ),
        (
            "blk.4.ffn_down.weight",
            "model.layers.4.mlp.down_proj.weight",
            None,
        ),
        ("token_embd.weight", "model.embed_tokens.weight", None),
        ("output_norm.weight", "model.norm.weight", None),
    ] {
        let (shape, want) = hf_tensor("stories260k", hf);
        let info = g.tensor(gguf).unwrap();
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        assert_eq!(info.dims(), &dims[..], "{gguf}");
        assert_eq!(info.ty(), GgmlType::F32);
        let got = f32s(g.tensor_data(info));
        let got = match heads {
            Some(h) => to_hf_order(&got, h, shape[0], shape[1]),
            None => got,
        };
        assert!(got == want, "{gguf} differs from {hf}");
    }
    assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 4);
    assert_eq!(
        g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
        1e-5
    );
    assert_eq!(g.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
    assert_eq!(g.get_u32("general.file_type").unwrap(), 0);
    assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 512);
    assert!(g.get_bool("tokenizer.ggml.add_bos_token").unwrap());
}

#[test]
fn sharded_f16_and_bf16_gqa_checkpoints_convert_with_expected_types() {
    let tmp = TempDir::new("types");
    let out = tmp.0.join("t.gguf");
    let s = run(&options(
        &fixtures::path("models/tiny-llama2-f16"),
        &out,
        FileType::Q4_K_M,
    ))
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    // 128-wide rows do not fit Q4_K/Q6_K super-blocks: llama-quantize's fallbacks apply.
    assert_eq!(
        g.tensor("blk.0.attn_q.weight").unwrap().ty(),
        GgmlType::Q5_0
    );
    assert_eq!(g.tensor("output.weight").unwrap().ty(), GgmlType::Q8_0);
    // ffn_down rows are 352 wide: 352 = 11 * 32, Q5_0 fits.
    assert_eq!(
        g.tensor("blk.0.ffn_down.weight").unwrap().ty(),
        GgmlType::Q5_0
    );
    assert_eq!(
        g.tensor("blk.0.attn_norm.weight").unwrap().ty(),
        GgmlType::F32
    );
    assert_eq!(g.get_u32("general.file_type").unwrap(), 15);
    assert_eq!(s.file_bytes, bytes.len() as u64);

    let out = tmp.0.join("g.gguf");
    run(&options(
        &fixtures::path("models/tiny-llama2-bf16-gqa"),
        &out,
        FileType::BF16,
    ))
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.tensor("blk.1.attn_k.weight").unwrap().dims(), &[192, 64]);
    assert_eq!(
        g.tensor("blk.1.attn_k.weight").unwrap().ty(),
        GgmlType::BF16
    );
    assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 2);
}

#[test]
fn same_input_gives_byte_identical_output() {
    let tmp = TempDir::new("determinism");
    let (a, b) = (tmp.0.join("a.gguf"), tmp.0.join("b.gguf"));
    for out in [&a, &b] {
        run(&options(
            &fixtures::path("models/tiny-llama2-f16"),
            out,
            FileType::Q4_0,
        ))
        .unwrap();
    }
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}

fn expect_error(opts: &Options, needle: &str) {
    let before = std::fs::read(&opts.output).ok();
    match run(opts) {
        Ok(_) => panic!(
            "conversion of {} succeeded, expected an error with {needle:?}",
            opts.input.display()
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(needle), "error {msg:?} lacks {needle:?}");
        }
    }
    assert_eq!(
        std::fs::read(&opts.output).ok(),
        before,
        "a failed conversion changed {}",
        opts.output.display()
    );
    let dir = opts.output.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn broken_checkpoints_give_errors_that_name_the_file_and_leave_no_output() {
    let tmp = TempDir::new("broken");
    let out = tmp.0.join("out.gguf");

    // Missing config.json.
    let m = copy_model("stories260k", &tmp.0.join("noconfig"));
    std::fs::remove_file(m.join("config.json")).unwrap();
    expect_error(&options(&m, &out, FileType::F32), "config.json");

    // Missing tokenizer.model.
    let m = copy_model("stories260k", &tmp.0.join("notok"));
    std::fs::remove_file(m.join("tokenizer.model")).unwrap();
    expect_error(&options(&m, &out, FileType::F32), "tokenizer.model");

    // Truncated safetensors.
    let m = copy_model("stories260k", &tmp.0.join("trunc"));
    let st = m.join("model.safetensors");
    let len = std::fs::metadata(&st).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&st)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    expect_error(&options(&m, &out, FileType::F32), "model.safetensors");

    // Garbage safetensors header.
    let m = copy_model("stories260k", &tmp.0.join("garbage"));
    std::fs::write(
        m.join("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header",
    )
    .unwrap();
    expect_error(&options(&m, &out, FileType::F32), "model.safetensors");

    // A shape that contradicts the config.
    let m = copy_model("stories260k", &tmp.0.join("shape"));
    let cfg = std::fs::read_to_string(m.join("config.json")).unwrap();
    std::fs::write(
        m.join("config.json"),
        cfg.replace("\"intermediate_size\": 172", "\"intermediate_size\": 176"),
    )
    .unwrap();
    expect_error(&options(&m, &out, FileType::F32), "mlp");

    // Unknown architecture.
    let m = copy_model("stories260k", &tmp.0.join("arch"));
    let cfg = std::fs::read_to_string(m.join("config.json")).unwrap();
    std::fs::write(
        m.join("config.json"),
        cfg.replace("LlamaForCausalLM", "MistralForCausalLM")
            .replace("\"model_type\": \"llama\"", "\"model_type\": \"mistral\""),
    )
    .unwrap();
    expect_error(
        &options(&m, &out, FileType::F32),
        "unsupported architecture",
    );

    // A shard named by the index is missing, and an index entry whose tensor is absent.
    let m = copy_model("tiny-llama2-f16", &tmp.0.join("shard"));
    std::fs::remove_file(m.join("model-00002-of-00002.safetensors")).unwrap();
    expect_error(
        &options(&m, &out, FileType::F16),
        "model-00002-of-00002.safetensors",
    );
    let m = copy_model("tiny-llama2-f16", &tmp.0.join("index"));
    let idx = std::fs::read_to_string(m.join("model.safetensors.index.json")).unwrap();
    let idx = idx.replacen("\"weight_map\": {", "\"weight_map\": {\n    \"model.layers.9.mlp.up_proj.weight\": \"model-00001-of-00002.safetensors\",", 1);
    std::fs::write(m.join("model.safetensors.index.json"), idx).unwrap();
    expect_error(
        &options(&m, &out, FileType::F16),
        "model.layers.9.mlp.up_proj.weight",
    );
}

#[test]
fn nonfinite_weights_are_refused_unless_allowed() {
    let tmp = TempDir::new("nan");
    let m = copy_model("stories260k", &tmp.0);
    // Put a NaN into model.norm.weight, rewriting the file with the safetensors crate.
    let path = m.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    let norm = tensors
        .iter_mut()
        .find(|t| t.0 == "model.norm.weight")
        .unwrap();
    norm.2[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let out = tmp.0.join("out.gguf");
    let mut opts = options(&m, &out, FileType::F32);
    expect_error(&opts, "model.norm.weight");
    opts.allow_nonfinite = true;
    let mut warnings = Vec::new();
    convert(&opts, &mut |p| {
        if let cinder_convert::Progress::Warning(w) = p {
            warnings.push(w)
        }
    })
    .unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("model.norm.weight")),
        "{warnings:?}"
    );
}

#[test]
fn existing_output_is_kept_unless_forced() {
    let tmp = TempDir::new("force");
    let out = tmp.0.join("out.gguf");
    std::fs::write(&out, b"precious").unwrap();
    let mut opts = options(&fixtures::path("models/stories260k"), &out, FileType::Q8_0);
    expect_error(&opts, "already exists");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    opts.force = true;
    run(&opts).unwrap();
    assert!(Gguf::parse(&std::fs::read(&out).unwrap()).is_ok());
}
