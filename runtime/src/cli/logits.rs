//! `cinder logits`: evaluate tokens as one batch and dump the logits of every position, in the
//! fixtures' format (raw little-endian f32, `[n_tokens, vocab]`), or print the top 5 of each.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cinder::{KvType, Model, Session, SessionOptions};
use cinder_kernels::Kernels;

use super::run::{CacheType, load};

/// Arguments of `cinder logits`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The GGUF model file.
    #[arg(short = 'm', long, value_name = "MODEL.gguf")]
    pub model: PathBuf,
    /// Token ids, comma separated (e.g. 1,403,407). Also --tokens.
    #[arg(
        long,
        alias = "tokens",
        value_delimiter = ',',
        value_name = "IDS",
        required_unless_present = "prompt",
        conflicts_with = "prompt"
    )]
    pub ids: Vec<u32>,
    /// Text to tokenize instead of --ids (BOS is added when the model asks for it).
    #[arg(short = 'p', long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Do not prepend BOS to --prompt.
    #[arg(long)]
    pub no_bos: bool,
    /// Write the logits here as raw little-endian f32 [n_tokens, vocab] instead of printing
    /// the top 5 of each position.
    #[arg(short = 'o', long, value_name = "OUT.f32")]
    pub output: Option<PathBuf>,
    /// Element type of the KV cache (default f32: this command is for checking numbers).
    #[arg(long = "cache-type", value_enum, default_value_t = CacheType::F32)]
    pub cache_type: CacheType,
    /// The old spelling of --cache-type f16, still accepted.
    #[arg(long = "f16-cache", hide = true, conflicts_with = "cache_type")]
    pub f16_cache: bool,
}

impl Args {
    /// The KV cache type asked for, by --cache-type or the old --f16-cache.
    fn kv_type(&self) -> KvType {
        if self.f16_cache {
            KvType::F16
        } else {
            self.cache_type.into()
        }
    }
}

/// The ids and (value, id) pairs of the 5 largest logits, best first (ties: lower id).
fn top5(row: &[f32]) -> Vec<(u32, f32)> {
    let mut order: Vec<u32> = (0..row.len() as u32).collect();
    order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    order
        .iter()
        .take(5)
        .map(|&i| (i, row[i as usize]))
        .collect()
}

pub fn run(args: &Args, kernels: &Kernels) -> Result<()> {
    let (model, tok, _) = load(&args.model, kernels)?;
    let ids = match &args.prompt {
        Some(text) => tok.encode(text, tok.add_bos() && !args.no_bos),
        None => args.ids.clone(),
    };
    if ids.is_empty() {
        bail!("no tokens to evaluate");
    }
    let logits = eval_all(&model, &ids, args.kv_type())?;
    let vocab = model.config().vocab_size;
    match &args.output {
        Some(path) => {
            let bytes: Vec<u8> = logits.iter().flat_map(|x| x.to_le_bytes()).collect();
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "cinder: wrote {} x {vocab} logits to {}",
                ids.len(),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            for (pos, (row, &id)) in logits.chunks_exact(vocab).zip(&ids).enumerate() {
                let top: Vec<String> = top5(row)
                    .into_iter()
                    .map(|(i, x)| format!("{i} {:?} {x:.4}", tok.piece(i)))
                    .collect();
                writeln!(
                    out,
                    "{pos:4} {id:6} {:>12} -> {}",
                    format!("{:?}", tok.piece(id)),
                    top.join(", ")
                )?;
            }
        }
    }
    Ok(())
}

/// Every position's logits of `ids` evaluated as one batch from an empty cache.
fn eval_all(model: &Model, ids: &[u32], kv_type: KvType) -> Result<Vec<f32>> {
    let mut session = Session::new(
        model,
        SessionOptions {
            ctx_size: ids.len().max(model.config().context_length),
            max_batch: ids.len(),
            kv_type,
        },
    )?;
    let mut logits = Vec::new();
    session.eval_all(ids, &mut logits)?;
    Ok(logits)
}
