//! The forward pass against the transformers reference outputs in `shared/fixtures/reference`:
//! the fixture checkpoints are converted to GGUF with cinder-convert, loaded, and every
//! reference prompt is evaluated as one batch (and token by token through the KV cache).

use std::path::{Path, PathBuf};

use cinder::{KvType, Model, Session, SessionOptions};
use cinder_convert::{FileType, Options, Overrides};
use cinder_quant::fixtures;
use serde_json::Value;

/// A GGUF converted into the temp dir, deleted when dropped.
struct TempGguf(PathBuf);

impl Drop for TempGguf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn convert(model: &str, ft: FileType) -> TempGguf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let out = std::env::temp_dir().join(format!(
        "cinder-forward-{}-{}-{model}-{}.gguf",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        ft.name()
    ));
    let opts = Options {
        input: fixtures::path(&format!("models/{model}")),
        output: out.clone(),
        file_type: ft,
        overrides: Overrides::default(),
        force: true,
        allow_nonfinite: false,
        name: None,
    };
    cinder_convert::convert(&opts, &mut |_| {})
        .unwrap_or_else(|e| panic!("convert {model} {}: {e:?}", ft.name()));
    TempGguf(out)
}

struct Prompt {
    name: String,
    ids: Vec<u32>,
    /// Positions whose logits are stored, and the rows `[positions][vocab]`.
    positions: Vec<usize>,
    logits: Vec<f32>,
    argmax: Vec<usize>,
    greedy: Vec<u32>,
    margins: Vec<f64>,
}

fn reference(model: &str) -> (usize, Vec<Prompt>) {
    let dir = format!("reference/{model}");
    let json: Value = serde_json::from_slice(&fixtures::read(&format!("{dir}/reference.json")))
        .expect("reference.json");
    let vocab = json["config"]["vocab_size"].as_u64().expect("vocab_size") as usize;
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    let prompts = json["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| {
            let logits = fixtures::read_f32(&format!(
                "{dir}/{}",
                p["logits"]["file"].as_str().expect("file")
            ));
            let positions: Vec<usize> = nums(&p["logits"]["positions"])
                .iter()
                .map(|&x| x as usize)
                .collect();
            assert_eq!(logits.len(), positions.len() * vocab, "{dir}: logits shape");
            Prompt {
                name: p["name"].as_str().expect("name").to_string(),
                ids: nums(&p["input_ids"]).iter().map(|&x| x as u32).collect(),
                positions,
                logits,
                argmax: nums(&p["per_position"]["argmax"])
                    .iter()
                    .map(|&x| x as usize)
                    .collect(),
                greedy: nums(&p["greedy"]["new_ids"])
                    .iter()
                    .map(|&x| x as u32)
                    .collect(),
                margins: nums(&p["greedy"]["step_top1_minus_top2"]),
            }
        })
        .collect();
    (vocab, prompts)
}

fn opts(kv_type: KvType, max_batch: usize) -> SessionOptions {
    SessionOptions {
        ctx_size: 0,
        max_batch,
        kv_type,
    }
}

/// Logits of every token of `ids`, evaluated with `o`.
fn eval_all(model: &Model, ids: &[u32], o: SessionOptions) -> Vec<f32> {
    let mut s = Session::new(model, o).expect("session");
    let mut out = Vec::new();
    s.eval_all(ids, &mut out).expect("eval_all");
    assert_eq!(out.len(), ids.len() * model.config().vocab_size);
    out
}

/// Argmax, ties to the lowest id.
fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Largest `|ours - ref| / max(1, |ref|)` (or absolute when `relative` is false) over the stored
/// positions of every prompt, each prompt evaluated as ONE batch.
fn max_logit_error(path: &Path, model: &str, kv: KvType, relative: bool) -> f32 {
    let m = Model::load(path).expect("load");
    let (vocab, prompts) = reference(model);
    assert_eq!(m.config().vocab_size, vocab);
    let mut worst = 0f32;
    for p in &prompts {
        let ours = eval_all(&m, &p.ids, opts(kv, p.ids.len()));
        let mut prompt_worst = 0f32;
        for (row, &pos) in p.positions.iter().enumerate() {
            let r = &p.logits[row * vocab..(row + 1) * vocab];
            let o = &ours[pos * vocab..(pos + 1) * vocab];
            for (&a, &b) in o.iter().zip(r) {
                let d = (a - b).abs() / if relative { b.abs().max(1.0) } else { 1.0 };
                assert!(d.is_finite(), "{model} {}: non-finite logit", p.name);
                prompt_worst = prompt_worst.max(d);
            }
        }
        eprintln!(
            "{model} {:?} kv {kv:?} prompt {}: max |dlogit| {prompt_worst:.3e}",
            path.file_name(),
            p.name
        );
        worst = worst.max(prompt_worst);
    }
    worst
}

/// Largest per-position relative RMS error `rms(ours - ref) / rms(ref)` over the stored positions
/// of every prompt (the measure), each prompt evaluated as ONE batch.
fn max_relative_rms(path: &Path, model: &str, kv: KvType) -> f64 {
    let m = Model::load(path).expect("load");
    let (vocab, prompts) = reference(model);
    let mut worst = 0f64;
    for p in &prompts {
        let ours = eval_all(&m, &p.ids, opts(kv, p.ids.len()));
        for (row, &pos) in p.positions.iter().enumerate() {
            let r = &p.logits[row * vocab..(row + 1) * vocab];
            let o = &ours[pos * vocab..(pos + 1) * vocab];
            let (mut num, mut den) = (0f64, 0f64);
            for (&a, &b) in o.iter().zip(r) {
                num += (f64::from(a) - f64::from(b)).powi(2);
                den += f64::from(b).powi(2);
            }
            let e = (num / den).sqrt();
            assert!(e.is_finite(), "{model} {}: non-finite logit", p.name);
            worst = worst.max(e);
        }
    }
    worst
}

#[test]
fn stories260k_f32_logits_match_reference_within_1e_4() {
    let g = convert("stories260k", FileType::F32);
    let worst = max_logit_error(&g.0, "stories260k", KvType::F32, false);
    eprintln!("stories260k F32: max |dlogit| {worst:.3e}");
    assert!(worst <= 1e-4, "stories260k F32: max |dlogit| {worst}");
}

// F16 and BF16 files, measured as the issue does (per-position relative RMS against
// transformers, f32 KV cache): by default cinder keeps the activations of F16/BF16 matmuls in
// f32, 1.2e-6 for both files. With `--llamacpp-rounding` (activations rounded to f16 / bf16 as
// llama.cpp does, checked at the matmul level in forward_matmul.rs) the figures are F16 1.03e-3
// and BF16 8.6e-3, llama.cpp 0.3.36's own on the same files 1.00e-3 and 8.7e-3.

#[test]
fn tiny_llama2_f16_logits_match_reference_within_1e_3_relative_rms() {
    let g = convert("tiny-llama2-f16", FileType::F16);
    let worst = max_logit_error(&g.0, "tiny-llama2-f16", KvType::F32, true);
    let rms = max_relative_rms(&g.0, "tiny-llama2-f16", KvType::F32);
    eprintln!("tiny-llama2-f16 F16: max relative RMS {rms:.3e}, max relative dlogit {worst:.3e}");
    assert!(rms <= 1e-3, "tiny-llama2-f16: max relative RMS {rms}");
    assert!(
        worst <= 1e-3,
        "tiny-llama2-f16: max relative dlogit {worst}"
    );
}

#[test]
fn tiny_llama2_bf16_gqa_logits_match_reference_within_1e_3_relative_rms() {
    let g = convert("tiny-llama2-bf16-gqa", FileType::BF16);
    let worst = max_logit_error(&g.0, "tiny-llama2-bf16-gqa", KvType::F32, true);
    let rms = max_relative_rms(&g.0, "tiny-llama2-bf16-gqa", KvType::F32);
    eprintln!(
        "tiny-llama2-bf16-gqa BF16: max relative RMS {rms:.3e}, max relative dlogit {worst:.3e}"
    );
    assert!(rms <= 1e-3, "tiny-llama2-bf16-gqa: max relative RMS {rms}");
    assert!(
        worst <= 1e-3,
        "tiny-llama2-bf16-gqa: max relative dlogit {worst}"
    );
}

/// Greedy decoding through the KV cache (prompt as one batch, then one token per step) agrees
/// with the reference tokens wherever the reference's margin exceeds 1e-3, up to the first
/// divergence. Returns how many tokens were compared.
fn greedy_matches(path: &Path, model: &str, kv: KvType) -> usize {
    let m = Model::load(path).expect("load");
    let (_, prompts) = reference(model);
    let mut compared = 0;
    for p in &prompts {
        let mut s = Session::new(&m, opts(kv, 64)).expect("session");
        s.eval(&p.ids).expect("prompt");
        for (step, (&want, &margin)) in p.greedy.iter().zip(&p.margins).enumerate() {
            let got = argmax(s.logits()) as u32;
            if got != want {
                assert!(
                    margin <= 1e-3,
                    "{model} {} step {step}: got {got}, reference {want} (margin {margin})",
                    p.name
                );
                eprintln!(
                    "{model} {}: diverged at step {step} within margin {margin}",
                    p.name
                );
                break;
            }
            compared += 1;
            s.eval(&[got]).expect("decode");
        }
    }
    compared
}

#[test]
fn greedy_decode_with_kv_cache_matches_reference_tokens() {
    for (model, ft) in [
        ("stories260k", FileType::F32),
        ("tiny-llama2-f16", FileType::F16),
        ("tiny-llama2-bf16-gqa", FileType::BF16),
    ] {
        let g = convert(model, ft);
        let n = greedy_matches(&g.0, model, KvType::F32);
        eprintln!("{model} {}: {n} greedy tokens equal", ft.name());
        assert!(n >= 32, "{model}: only {n} greedy tokens compared");
    }
}

#[test]
fn stories260k_greedy_with_f16_kv_cache_matches_reference_tokens() {
    let g = convert("stories260k", FileType::F32);
    let n = greedy_matches(&g.0, "stories260k", KvType::F16);
    assert_eq!(
        n,
        4 * 32,
        "every greedy token of stories260k with an f16 KV cache"
    );
}

/// Evaluating token by token gives the logits of one batch (and of batches split by
/// `max_batch`). With f32 weights the arithmetic is the same whatever the batch: within 1e-4.
/// Quantized weights go through different kernels (a 16-row strip gemm for batches, a
/// row-at-a-time dot for one token) that round their float sums in another order, and the
/// next layer's 8-bit activation quantization can turn such a last-bit difference into one
/// quantization step: there the bound is `quant_rel_rms` (relative RMS over every logit of
/// the prompt), far below what a wrong tile or position would give.
fn batch_equals_incremental(path: &Path, model: &str, quant_rel_rms: Option<f64>) {
    let m = Model::load(path).expect("load");
    let (vocab, prompts) = reference(model);
    for p in &prompts[..2] {
        let batch = eval_all(&m, &p.ids, opts(KvType::F32, p.ids.len()));
        let split = eval_all(&m, &p.ids, opts(KvType::F32, 3));
        let mut s = Session::new(&m, opts(KvType::F32, 64)).expect("session");
        let mut worst = 0f32;
        let (mut d2, mut r2) = (0f64, 0f64);
        for (i, &id) in p.ids.iter().enumerate() {
            s.eval(&[id]).expect("eval");
            let row = &batch[i * vocab..(i + 1) * vocab];
            for ((&a, &b), &c) in s.logits().iter().zip(row).zip(&split[i * vocab..]) {
                worst = worst.max((a - b).abs()).max((c - b).abs());
                d2 += f64::from(a - b).powi(2).max(f64::from(c - b).powi(2));
                r2 += f64::from(b).powi(2);
            }
        }
        let rel = (d2 / r2).sqrt();
        eprintln!(
            "{model} {:?} {}: batch vs incremental max |d| {worst:.3e}, relative RMS {rel:.3e}",
            path.file_name(),
            p.name
        );
        match quant_rel_rms {
            None => assert!(
                worst <= 1e-4,
                "{model} {}: batch vs incremental differ by {worst}",
                p.name
            ),
            Some(bound) => assert!(
                rel <= bound,
                "{model} {}: batch vs incremental relative RMS {rel} > {bound}",
                p.name
            ),
        }
    }
}

#[test]
fn batch_and_incremental_evaluation_agree() {
    for (model, ft, bound) in [
        ("stories260k", FileType::F32, None),
        ("stories260k", FileType::Q8_0, Some(5e-3)),
        ("tiny-llama2-bf16-gqa", FileType::Q4_0, Some(5e-3)),
    ] {
        let g = convert(model, ft);
        batch_equals_incremental(&g.0, model, bound);
    }
}

/// Teacher-forced fidelity of a file against the f32 reference: the fraction of positions (all
/// prompts) where our argmax equals the reference's, and the mean KL divergence
/// `KL(reference || ours)` of the next-token distributions over the stored logit rows.
fn fidelity(path: &Path, model: &str) -> (f64, f64) {
    let m = Model::load(path).expect("load");
    let (vocab, prompts) = reference(model);
    let (mut same, mut total) = (0, 0);
    let (mut kl, mut rows) = (0f64, 0);
    for p in &prompts {
        let ours = eval_all(&m, &p.ids, opts(KvType::F16, 64));
        for (i, &want) in p.argmax.iter().enumerate() {
            same += usize::from(argmax(&ours[i * vocab..(i + 1) * vocab]) == want);
            total += 1;
        }
        for (row, &pos) in p.positions.iter().enumerate() {
            let r = &p.logits[row * vocab..(row + 1) * vocab];
            kl += kl_divergence(r, &ours[pos * vocab..(pos + 1) * vocab]);
            rows += 1;
        }
    }
    assert!(total > 0 && rows > 0);
    (same as f64 / total as f64, kl / rows as f64)
}

/// `KL(softmax(p) || softmax(q))` in f64.
fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    assert_eq!(p.len(), q.len());
    let log_softmax = |x: &[f32]| -> Vec<f64> {
        let max = x
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let lse = max
            + x.iter()
                .map(|&v| (f64::from(v) - max).exp())
                .sum::<f64>()
                .ln();
        x.iter().map(|&v| f64::from(v) - lse).collect()
    };
    let (lp, lq) = (log_softmax(p), log_softmax(q));
    lp.iter().zip(&lq).map(|(&a, &b)| a.exp() * (a - b)).sum()
}

/// Every model x type of `quantization_calibration.json` (weight-only quantization simulated
/// with gguf-py in transformers): cinder's file of that type, weights AND activations
/// quantized, keeps a teacher-forced argmax agreement at most 2 points below the calibration's.
#[test]
fn quantized_files_argmax_agreement_within_2_points_of_weight_only_calibration() {
    let json: Value =
        serde_json::from_slice(&fixtures::read("reference/quantization_calibration.json"))
            .expect("quantization_calibration.json");
    let mut checked = 0;
    let mut failures = Vec::new();
    for model in ["stories260k", "tiny-llama2-f16", "tiny-llama2-bf16-gqa"] {
        let types = json[model]
            .as_object()
            .unwrap_or_else(|| panic!("quantization_calibration.json: no entry for {model}"));
        for (ty, entry) in types {
            let ft = FileType::from_name(ty)
                .unwrap_or_else(|| panic!("calibration type {ty}: not a cinder file type"));
            let want = entry["teacher_forced_argmax_agreement"]
                .as_f64()
                .unwrap_or_else(|| panic!("{model} {ty}: no teacher_forced_argmax_agreement"));
            let g = convert(model, ft);
            let (agree, kl) = fidelity(&g.0, model);
            eprintln!(
                "{model} {ty}: agreement {agree:.4} (weight-only calibration {want:.4}), \
                 mean KL vs f32 reference {kl:.3e}"
            );
            if agree < want - 0.02 {
                failures.push(format!(
                    "{model} {ty}: agreement {agree:.4} < {want:.4} - 0.02"
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} calibration entries checked");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Quantized random models: their logits are nearly flat, so compare loosely. The README's
/// weight-only measurements (max |dlogit| Q8_0 <= 0.19, Q4_0 <= 3.0; Q8_0 argmax agreement
/// 0.915-0.935) do not include what cinder adds on top, like llama.cpp: activations rounded
/// to Q8_0 for every dot product and an f16 KV cache (README: "allow roughly 1e-2 relative on
/// top"). Measured here: Q8_0 max |dlogit| 0.16-0.27 and agreement 0.898-0.925, Q4_0 2.78.
#[test]
fn quantized_random_models_stay_within_loose_logit_bounds() {
    for (model, ft, max_d, min_agree) in [
        ("tiny-llama2-f16", FileType::Q8_0, 0.35, 0.88),
        ("tiny-llama2-bf16-gqa", FileType::Q8_0, 0.35, 0.88),
        ("tiny-llama2-bf16-gqa", FileType::Q4_0, 4.0, 0.25),
    ] {
        let g = convert(model, ft);
        let d = max_logit_error(&g.0, model, KvType::F16, false);
        let (a, _) = fidelity(&g.0, model);
        eprintln!(
            "{model} {}: max |dlogit| {d:.3}, teacher-forced argmax agreement {a:.4}",
            ft.name()
        );
        assert!(d <= max_d, "{model} {}: max |dlogit| {d}", ft.name());
        assert!(
            a >= min_agree,
            "{model} {}: argmax agreement {a}",
            ft.name()
        );
    }
}

#[test]
fn malformed_files_are_errors_naming_the_problem() {
    let g = convert("stories260k", FileType::Q8_0);
    let bytes = std::fs::read(&g.0).expect("read");
    let bad = TempGguf(g.0.with_extension("bad.gguf"));
    for cut in [0, 3, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&bad.0, &bytes[..cut]).expect("write");
        let e = Model::load(&bad.0).expect_err("truncated file must not load");
        assert!(
            e.to_string().contains("bad.gguf"),
            "error names the file: {e}"
        );
    }
    let missing = Model::load(g.0.with_extension("missing.gguf")).expect_err("missing file");
    assert!(matches!(missing, cinder::Error::Io { .. }), "{missing}");
}

/// Copy the GGUF `src` to `dst`, dropping metadata `drop_key`, replacing the architecture with
/// `arch`, dropping tensor `drop_tensor` and transposing the dims of `transpose` (same bytes).
fn rewrite(src: &Path, dst: &Path, drop_key: &str, arch: &str, drop_tensor: &str, transpose: &str) {
    use cinder_quant::gguf::{Gguf, GgufWriter, keys};
    let bytes = std::fs::read(src).expect("read");
    let g = Gguf::parse(&bytes).expect("parse");
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        if k == drop_key {
            continue;
        }
        if k == keys::GENERAL_ARCHITECTURE {
            w.add_string(k, arch).expect("arch");
        } else {
            w.add(k, v.clone()).expect("metadata");
        }
    }
    let tensors: Vec<_> = g
        .tensors()
        .iter()
        .filter(|t| t.name() != drop_tensor)
        .collect();
    for t in &tensors {
        let mut dims = t.dims().to_vec();
        if t.name() == transpose {
            dims.reverse();
        }
        w.add_tensor_info(t.name(), &dims, t.ty())
            .expect("tensor info");
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).expect("create"));
    w.write_header(&mut out).expect("header");
    for t in &tensors {
        w.write_tensor_data(&mut out, t.name(), g.tensor_data(t))
            .expect("data");
    }
    w.finish().expect("finish");
}

#[test]
fn bad_metadata_and_tensors_are_errors_naming_key_or_tensor() {
    let g = convert("stories260k", FileType::F32);
    let bad = TempGguf(g.0.with_extension("edited.gguf"));
    let load_err = |drop_key: &str, arch: &str, drop_tensor: &str, transpose: &str| {
        rewrite(&g.0, &bad.0, drop_key, arch, drop_tensor, transpose);
        Model::load(&bad.0)
            .expect_err("edited file must not load")
            .to_string()
    };
    // Unchanged copy loads (the edits below are what break it).
    rewrite(&g.0, &bad.0, "", "llama", "", "");
    Model::load(&bad.0).expect("unedited copy loads");

    let e = load_err("llama.block_count", "llama", "", "");
    assert!(
        e.contains("llama.block_count") && e.contains("edited.gguf"),
        "{e}"
    );
    let e = load_err("llama.attention.layer_norm_rms_epsilon", "llama", "", "");
    assert!(e.contains("layer_norm_rms_epsilon"), "{e}");
    let e = load_err("", "gpt2", "", "");
    assert!(e.contains("gpt2"), "{e}");
    let e = load_err("", "llama", "blk.3.ffn_down.weight", "");
    assert!(e.contains("blk.3.ffn_down.weight"), "{e}");
    let e = load_err("", "llama", "", "blk.0.ffn_gate.weight");
    assert!(
        e.contains("blk.0.ffn_gate.weight") && e.contains("shape"),
        "{e}"
    );

    // Optional keys take their defaults: head_count_kv = head_count changes the shape check.
    let e = load_err("llama.attention.head_count_kv", "llama", "", "");
    assert!(e.contains("blk.0.attn_k.weight"), "{e}");
    // Without the tokens array the vocabulary size comes from llama.vocab_size.
    rewrite(&g.0, &bad.0, "tokenizer.ggml.tokens", "llama", "", "");
    assert_eq!(
        Model::load(&bad.0)
            .expect("vocab from llama.vocab_size")
            .config()
            .vocab_size,
        512
    );
}

#[test]
fn session_truncate_reeval_reproduces_logits_and_bad_input_is_an_error() {
    let g = convert("stories260k", FileType::F32);
    let m = Model::load(&g.0).expect("load");
    let (_, prompts) = reference("stories260k");
    let ids = &prompts[0].ids;
    let mut s = Session::new(
        &m,
        SessionOptions {
            ctx_size: 16,
            max_batch: 4,
            kv_type: KvType::F32,
        },
    )
    .expect("session");
    assert!(
        s.logits().is_empty(),
        "no logits before the first evaluation"
    );
    s.eval(ids).expect("prompt");
    let first = s.logits().to_vec();
    assert_eq!(s.position(), ids.len());
    // Drop the last two tokens and evaluate them again: same cache, same logits.
    s.truncate(ids.len() - 2);
    assert!(s.logits().is_empty());
    s.eval(&ids[ids.len() - 2..]).expect("re-eval");
    assert_eq!(s.logits(), first.as_slice());

    let vocab = m.config().vocab_size as u32;
    let e = s.eval(&[vocab]).expect_err("token id out of range");
    assert!(matches!(e, cinder::Error::TokenOutOfRange { .. }), "{e}");
    let e = s.eval(&[1; 12]).expect_err("context of 16 overflows");
    assert!(matches!(e, cinder::Error::ContextFull { .. }), "{e}");
    s.reset();
    assert_eq!(s.position(), 0);
    s.eval(ids).expect("after reset");
    assert_eq!(s.logits(), first.as_slice());
}

#[test]
fn load_progress_reports_each_repacked_matrix_once_and_their_bytes_add_up() {
    use cinder::LoadProgress;
    use cinder_kernels::Kernels;
    use std::sync::Mutex;
    let g = convert("stories260k", FileType::Q8_0);
    let file_len = std::fs::metadata(&g.0).expect("metadata").len();
    for isa in Kernels::available() {
        let kernels = Kernels::new(isa).expect("available");
        let checked = Mutex::new(Vec::new());
        let repacked = Mutex::new(Vec::new());
        let model = Model::load_with_progress(&g.0, kernels, &|p| match p {
            LoadProgress::Checked {
                file_bytes,
                repack_bytes,
            } => {
                assert!(repacked.lock().unwrap().is_empty(), "Checked comes first");
                checked.lock().unwrap().push((file_bytes, repack_bytes));
            }
            LoadProgress::Repacked { name, bytes } => {
                repacked.lock().unwrap().push((name.to_string(), bytes));
            }
        })
        .expect("load");
        let checked = checked.into_inner().unwrap();
        let mut repacked = repacked.into_inner().unwrap();
        repacked.sort();
        // What the loaded model holds: the matrices that have strips.
        let w = model.weights();
        let mut expected: Vec<(String, u64)> = w
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .chain([&w.output])
            .filter(|t| t.strips().is_some())
            .map(|t| (t.name().to_string(), t.range().len() as u64))
            .collect();
        expected.sort();
        assert_eq!(checked.len(), 1, "{isa:?}: one Checked");
        let (file_bytes, repack_bytes) = checked[0];
        assert_eq!(file_bytes, file_len, "{isa:?}");
        assert_eq!(repacked, expected, "{isa:?}");
        assert_eq!(
            repack_bytes,
            expected.iter().map(|e| e.1).sum::<u64>(),
            "{isa:?}"
        );
        assert_eq!(
            repack_bytes > 0,
            kernels.prefers_strips(),
            "{isa:?}: Q8_0 stories260k has repackable matrices"
        );
    }
}
