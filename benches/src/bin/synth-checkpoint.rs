//! `synth-checkpoint`: write a random-weight Hugging Face Llama checkpoint folder with a real
//! model's shape, in float16 and sharded as Meta's releases are, to benchmark converters
//! (`cinder convert`, llama.cpp's `convert_hf_to_gguf.py`) without downloading real weights.
//!
//! ```text
//! cargo run --release -p cinder-benches --bin synth-checkpoint -- --shape llama2-7b -o /tmp/ck7b
//! ```
//!
//! The folder holds `config.json` (like `meta-llama/Llama-2-7b-hf`'s), the safetensors shards
//! (`model-0000K-of-0000N.safetensors`, at most `--max-shard-bytes` of tensor data each, with
//! `model.safetensors.index.json`; a single `model.safetensors` when everything fits in one), and
//! `tokenizer.model` + `tokenizer_config.json` copied from a tokenizer folder.
//!
//! Shards are streamed: each file's header (8-byte little-endian length, then the JSON table of
//! `{dtype, shape, data_offsets}`) is written first, then every tensor's rows are generated in
//! parallel (one seeded stream per row), a bounded chunk at a time. Memory stays at a few tens of
//! megabytes whatever the model size. Weights are N(0, 0.02)-like f16 noise; norms are 1.0.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cinder_benches::rng::Rng;
use cinder_benches::synth::Shape;
use clap::Parser;
use half::f16;
use rayon::prelude::*;
use serde_json::{Map, Value as Json, json};

/// Write a random-weight Hugging Face Llama checkpoint (f16 safetensors) with a real shape.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Model shape: llama2-7b, tinyllama-1.1b, or custom (then give --dim, --layers, --heads
    /// and --ffn). The size flags below also override a named shape.
    #[arg(long, default_value = "llama2-7b")]
    shape: String,
    /// Output folder (created if missing; files of the same names are replaced).
    #[arg(short, long)]
    output: PathBuf,
    /// Seed of the weight generator (same seed, same files).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most tensor bytes per shard (Hugging Face's default `max_shard_size` is 10 GB).
    #[arg(long, default_value_t = 10_000_000_000)]
    max_shard_bytes: u64,
    /// Folder whose tokenizer.model and tokenizer_config.json are copied [default: the
    /// fixtures' models/tiny-llama2-f16, Llama 2's tokenizer].
    #[arg(long)]
    tokenizer_dir: Option<PathBuf>,
    /// Model width (`hidden_size`).
    #[arg(long, visible_alias = "hidden")]
    dim: Option<usize>,
    /// Number of transformer blocks (`num_hidden_layers`).
    #[arg(long)]
    layers: Option<usize>,
    /// Query heads (`num_attention_heads`).
    #[arg(long)]
    heads: Option<usize>,
    /// Key/value heads (`num_key_value_heads`) [default: --heads for custom shapes].
    #[arg(long)]
    kv_heads: Option<usize>,
    /// Feed-forward width (`intermediate_size`).
    #[arg(long)]
    ffn: Option<usize>,
    /// Context length (`max_position_embeddings`) [default for custom shapes: 2048].
    #[arg(long)]
    ctx: Option<usize>,
    /// Vocabulary size (`vocab_size`; at least the tokenizer's piece count) [default: 32000].
    #[arg(long)]
    vocab: Option<usize>,
    /// Worker threads for generation (0: all cores).
    #[arg(short, long, default_value_t = 0)]
    threads: usize,
}

fn shape_of(a: &Args) -> Result<Shape> {
    let mut s = match a.shape.as_str() {
        "custom" => {
            let (Some(dim), Some(layers), Some(heads), Some(ffn)) =
                (a.dim, a.layers, a.heads, a.ffn)
            else {
                bail!("--shape custom needs --dim, --layers, --heads and --ffn");
            };
            Shape {
                dim,
                n_layers: layers,
                n_heads: heads,
                n_kv_heads: a.kv_heads.unwrap_or(heads),
                ffn_dim: ffn,
                context_length: 2048,
                vocab_size: 32000,
                tied: false,
                norm_eps: 1e-5,
                rope_base: 10000.0,
            }
        }
        "stories260k-like" => bail!("stories260k-like has no Hugging Face checkpoint form here"),
        name => Shape::named(name).with_context(|| {
            format!("unknown shape {name:?} (expected llama2-7b, tinyllama-1.1b or custom)")
        })?,
    };
    s.dim = a.dim.unwrap_or(s.dim);
    s.n_layers = a.layers.unwrap_or(s.n_layers);
    s.n_heads = a.heads.unwrap_or(s.n_heads);
    s.n_kv_heads = a.kv_heads.unwrap_or(s.n_kv_heads);
    s.ffn_dim = a.ffn.unwrap_or(s.ffn_dim);
    s.context_length = a.ctx.unwrap_or(s.context_length);
    s.vocab_size = a.vocab.unwrap_or(s.vocab_size);
    if s.vocab_size == 0 || s.vocab_size > 1 << 24 {
        bail!("--vocab must be in 1..=2^24");
    }
    s.validate()?;
    Ok(s)
}

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fill {
    /// N(0, 0.02)-like noise (every matrix).
    Weight,
    /// All 1.0 (RMSNorm gains, as initialised).
    Ones,
}

/// One checkpoint tensor: Hugging Face name, PyTorch shape (outermost first), fill.
#[derive(Debug, Clone)]
struct Tensor {
    name: String,
    shape: Vec<usize>,
    fill: Fill,
}

impl Tensor {
    fn rows_cols(&self) -> (usize, usize) {
        let cols = self.shape.last().copied().unwrap_or(1);
        let rows = self.shape[..self.shape.len() - 1].iter().product();
        (rows, cols)
    }

    fn bytes(&self) -> u64 {
        2 * self.shape.iter().map(|&d| d as u64).product::<u64>()
    }
}

/// The tensors of a `LlamaForCausalLM` in `save_pretrained` order.
fn tensors(s: &Shape) -> Vec<Tensor> {
    let (d, f, v) = (s.dim, s.ffn_dim, s.vocab_size);
    let kv = s.n_kv_heads * s.head_dim();
    let w = |name: String, shape: Vec<usize>| Tensor {
        name,
        shape,
        fill: Fill::Weight,
    };
    let norm = |name: String| Tensor {
        name,
        shape: vec![d],
        fill: Fill::Ones,
    };
    let mut out = vec![w("model.embed_tokens.weight".into(), vec![v, d])];
    for l in 0..s.n_layers {
        let p = format!("model.layers.{l}");
        out.push(norm(format!("{p}.input_layernorm.weight")));
        out.push(w(format!("{p}.self_attn.q_proj.weight"), vec![d, d]));
        out.push(w(format!("{p}.self_attn.k_proj.weight"), vec![kv, d]));
        out.push(w(format!("{p}.self_attn.v_proj.weight"), vec![kv, d]));
        out.push(w(format!("{p}.self_attn.o_proj.weight"), vec![d, d]));
        out.push(norm(format!("{p}.post_attention_layernorm.weight")));
        out.push(w(format!("{p}.mlp.gate_proj.weight"), vec![f, d]));
        out.push(w(format!("{p}.mlp.up_proj.weight"), vec![f, d]));
        out.push(w(format!("{p}.mlp.down_proj.weight"), vec![d, f]));
    }
    out.push(norm("model.norm.weight".into()));
    if !s.tied {
        out.push(w("lm_head.weight".into(), vec![v, d]));
    }
    out
}

/// Split `tensors` (in order) into shards of at most `max` bytes (a bigger tensor gets its own).
fn shards(tensors: &[Tensor], max: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0u64);
    for (i, t) in tensors.iter().enumerate() {
        if i > start && size + t.bytes() > max {
            out.push(start..i);
            (start, size) = (i, 0);
        }
        size += t.bytes();
    }
    if start < tensors.len() {
        out.push(start..tensors.len());
    }
    out
}

/// The safetensors header of `tensors`, packed in order, padded with spaces to 8 bytes.
fn header(tensors: &[Tensor]) -> Result<Vec<u8>> {
    let mut map = Map::new();
    map.insert("__metadata__".into(), json!({ "format": "pt" }));
    let mut offset = 0u64;
    for t in tensors {
        let end = offset + t.bytes();
        map.insert(
            t.name.clone(),
            json!({ "dtype": "F16", "shape": t.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut bytes = serde_json::to_vec(&Json::Object(map)).context("encoding the header")?;
    while !bytes.len().is_multiple_of(8) {
        bytes.push(b' ');
    }
    Ok(bytes)
}

/// Values generated per chunk: 8 MB of f16, whatever the tensor size.
const CHUNK_VALUES: usize = 1 << 22;

/// Stream one shard: header, then each tensor's rows, chunk by chunk.
fn write_shard(
    path: &Path,
    tensors: &[(usize, &Tensor)],
    seed: u64,
    report: &mut dyn FnMut(&Tensor),
) -> Result<()> {
    let list: Vec<Tensor> = tensors.iter().map(|(_, t)| (*t).clone()).collect();
    let head = header(&list)?;
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 22, file);
    let io =
        |e: std::io::Error| anyhow::Error::new(e).context(format!("writing {}", path.display()));
    out.write_all(&(head.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&head).map_err(io)?;
    let mut buf = Vec::new();
    for &(index, t) in tensors {
        let (rows, cols) = t.rows_cols();
        let chunk_rows = (CHUNK_VALUES / cols.max(1)).max(1);
        let mut start = 0;
        while start < rows {
            let end = (start + chunk_rows).min(rows);
            buf.resize((end - start) * cols * 2, 0u8);
            buf.par_chunks_mut(cols * 2)
                .enumerate()
                .for_each(|(i, row)| fill_row(row, t.fill, seed, index, start + i));
            out.write_all(&buf).map_err(io)?;
            start = end;
        }
        report(t);
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Row `row` of tensor number `index`, as little-endian f16 bytes.
fn fill_row(row: &mut [u8], fill: Fill, seed: u64, index: usize, row_index: usize) {
    match fill {
        Fill::Ones => {
            let one = f16::ONE.to_le_bytes();
            for v in row.chunks_exact_mut(2) {
                v.copy_from_slice(&one);
            }
        }
        Fill::Weight => {
            let mut rng = Rng::derive(seed, index as u64, row_index as u64);
            for v in row.chunks_exact_mut(2) {
                v.copy_from_slice(&f16::from_f32(0.02 * rng.normal()).to_le_bytes());
            }
        }
    }
}

/// The f64 whose shortest decimal form is `x`'s (1e-5f32 -> 1e-5, not 9.999999747378752e-6):
/// config.json values are written as Python writes them.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// `config.json` as `meta-llama/Llama-2-7b-hf` has it, with this shape's sizes.
fn config(s: &Shape, name: &str) -> Json {
    json!({
        "_name_or_path": name,
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": false,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": s.dim,
        "initializer_range": 0.02,
        "intermediate_size": s.ffn_dim,
        "max_position_embeddings": s.context_length,
        "model_type": "llama",
        "num_attention_heads": s.n_heads,
        "num_hidden_layers": s.n_layers,
        "num_key_value_heads": s.n_kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": decimal(s.norm_eps),
        "rope_scaling": null,
        "rope_theta": decimal(s.rope_base),
        "tie_word_embeddings": s.tied,
        "torch_dtype": "float16",
        "transformers_version": "4.31.0.dev0",
        "use_cache": true,
        "vocab_size": s.vocab_size,
    })
}

fn write_json(path: &Path, value: &Json) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let a = Args::parse();
    let shape = shape_of(&a)?;
    if a.max_shard_bytes == 0 {
        bail!("--max-shard-bytes must be positive");
    }
    if a.threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(a.threads)
            .build_global()
            .context("starting the thread pool")?;
    }
    let tok_dir = match &a.tokenizer_dir {
        Some(d) => d.clone(),
        // Panics naming the path when the fixtures are missing: pass --tokenizer-dir then.
        None => cinder_quant::fixtures::path("models/tiny-llama2-f16"),
    };
    let dir = &a.output;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in ["tokenizer.model", "tokenizer_config.json"] {
        let (from, to) = (tok_dir.join(f), dir.join(f));
        // Read and write rather than fs::copy: the copy must not inherit read-only permissions,
        // so a second run can replace it.
        let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        std::fs::write(&to, bytes).with_context(|| format!("writing {}", to.display()))?;
    }
    write_json(
        &dir.join("config.json"),
        &config(&shape, &format!("synth-{}", a.shape)),
    )?;

    let all = tensors(&shape);
    let parts = shards(&all, a.max_shard_bytes);
    let n_shards = parts.len();
    let file_name = |k: usize| {
        if n_shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n_shards:05}.safetensors", k + 1)
        }
    };
    let total: u64 = all.iter().map(Tensor::bytes).sum();
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut done = 0;
    let mut weight_map = Map::new();
    for (k, range) in parts.iter().enumerate() {
        let name = file_name(k);
        let part: Vec<(usize, &Tensor)> = range.clone().map(|i| (i, &all[i])).collect();
        for (_, t) in &part {
            weight_map.insert(t.name.clone(), Json::String(name.clone()));
        }
        write_shard(&dir.join(&name), &part, a.seed, &mut |t| {
            done += 1;
            let line = format!("[{done:>4}/{}] {:<48} {}", all.len(), t.name, name);
            if tty {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        })?;
    }
    if tty {
        eprintln!();
    }
    if n_shards > 1 {
        write_json(
            &dir.join("model.safetensors.index.json"),
            &json!({ "metadata": { "total_size": total }, "weight_map": weight_map }),
        )?;
    }
    eprintln!(
        "wrote {} ({} tensors, {:.2} GB of f16 in {n_shards} shard(s)) in {:.1} s",
        dir.display(),
        all.len(),
        total as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
