//! `synth-model`: write a random-weight Llama GGUF with a real model's shape, vocabulary,
//! metadata and llama-quantize's tensor-type mix, for speed measurements without the real
//! weights.
//!
//! ```text
//! cargo run --release -p cinder-benches --bin synth-model -- \
//!     --shape llama2-7b --type q4_k_m -o /tmp/llama2-7b.q4_k_m.gguf
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cinder_benches::synth::{self, Options, Shape};
use cinder_convert::{FileType, Vocab};
use clap::Parser;

/// Write a random-weight Llama GGUF with the shape of a real model.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Model shape: tinyllama-1.1b, llama2-7b, stories260k-like, or custom (then give --dim,
    /// --layers, --heads and --ffn). The size flags below also override a named shape.
    #[arg(long, default_value = "tinyllama-1.1b")]
    shape: String,
    /// llama.cpp file type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s,
    /// q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k.
    #[arg(long = "type", default_value = "q4_0")]
    file_type: String,
    /// Output GGUF file.
    #[arg(short, long)]
    output: PathBuf,
    /// Seed of the weight generator (same seed, same file).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// SentencePiece tokenizer.model whose vocabulary the file carries [default: the fixtures'
    /// sources/tokenizer.model (Llama 2), or sources/tok512.model for stories260k-like].
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Model width (embedding length).
    #[arg(long)]
    dim: Option<usize>,
    /// Number of transformer blocks.
    #[arg(long)]
    layers: Option<usize>,
    /// Query heads.
    #[arg(long)]
    heads: Option<usize>,
    /// Key/value heads [default: --heads for custom shapes].
    #[arg(long)]
    kv_heads: Option<usize>,
    /// Feed-forward hidden width.
    #[arg(long)]
    ffn: Option<usize>,
    /// Context length [default for custom shapes: 2048].
    #[arg(long)]
    ctx: Option<usize>,
    /// Tie the output projection to the token embedding (no output.weight).
    #[arg(long)]
    tied: bool,
    /// `general.name` [default: synth-<shape>].
    #[arg(long)]
    name: Option<String>,
    /// Worker threads for generation and quantization (0: all cores).
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
                vocab_size: 0,
                tied: false,
                norm_eps: 1e-5,
                rope_base: 10000.0,
            }
        }
        name => Shape::named(name).with_context(|| {
            format!(
                "unknown shape {name:?} (expected {} or custom)",
                Shape::NAMES.join(", ")
            )
        })?,
    };
    s.dim = a.dim.unwrap_or(s.dim);
    s.n_layers = a.layers.unwrap_or(s.n_layers);
    s.n_heads = a.heads.unwrap_or(s.n_heads);
    s.n_kv_heads = a.kv_heads.unwrap_or(s.n_kv_heads);
    s.ffn_dim = a.ffn.unwrap_or(s.ffn_dim);
    s.context_length = a.ctx.unwrap_or(s.context_length);
    s.tied |= a.tied;
    s.validate()?;
    Ok(s)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let shape = shape_of(&a)?;
    let file_type = FileType::from_name(&a.file_type).with_context(|| {
        let names: Vec<_> = FileType::ALL.iter().map(|t| t.name()).collect();
        format!(
            "unknown --type {:?} (expected one of {})",
            a.file_type,
            names.join(", ")
        )
    })?;
    let tok = match &a.tokenizer {
        Some(p) => p.clone(),
        // Panics naming the path when the fixtures are missing: pass --tokenizer then.
        None => cinder_quant::fixtures::path(Shape::default_tokenizer(&a.shape)),
    };
    let vocab = Vocab::read(&tok).with_context(|| format!("reading {}", tok.display()))?;
    if shape.vocab_size != 0 && shape.vocab_size != vocab.len() {
        eprintln!(
            "note: {} has {} tokens; the real {} has {}",
            tok.display(),
            vocab.len(),
            a.shape,
            shape.vocab_size
        );
    }
    if a.threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(a.threads)
            .build_global()
            .context("starting the thread pool")?;
    }
    let opts = Options {
        shape,
        file_type,
        seed: a.seed,
        name: a
            .name
            .clone()
            .unwrap_or_else(|| format!("synth-{}", a.shape)),
    };
    let n = synth::plan(&opts.shape, vocab.len(), file_type).len();
    let start = Instant::now();
    let mut done = 0;
    let tty = std::io::stderr().is_terminal();
    let summary = synth::write(&a.output, &opts, &vocab, &mut |t| {
        done += 1;
        let line = format!("[{done:>4}/{n}] {:<28} {:<5}", t.name, t.ty.name());
        if tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    })?;
    if tty {
        eprintln!();
    }
    eprintln!(
        "wrote {} ({} tensors, {:.2} GB of tensor data, {}) in {:.1} s",
        a.output.display(),
        summary.tensors,
        summary.data_bytes as f64 / 1e9,
        file_type.name(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
