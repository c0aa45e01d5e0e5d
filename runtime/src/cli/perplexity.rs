//! `cinder perplexity -m MODEL.gguf -f TEXT`: perplexity as llama-perplexity computes it, and
//! KL divergence against a reference model's saved logits.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cinder::perplexity::{KlReader, LogitsSink, LogitsWriter, perplexity};
use cinder::{Session, SessionOptions};
use cinder_kernels::Kernels;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: super::run::ModelArgs,
    /// The text to score.
    #[arg(short = 'f', long = "file", value_name = "TEXT")]
    file: PathBuf,
    /// Save the scored logits here (the reference for --kl-divergence).
    #[arg(long, value_name = "FILE", conflicts_with = "kl_divergence")]
    save_logits: Option<PathBuf>,
    /// Compare with logits saved by --save-logits from a reference model on the same text and
    /// context: mean KL divergence, top-1 agreement, PPL ratio.
    #[arg(long, value_name = "FILE")]
    kl_divergence: Option<PathBuf>,
}

pub fn run(args: &Args, kernels: &Kernels) -> Result<()> {
    let (model, tokenizer, _) = super::run::load(&args.model.model, kernels)?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("{}: cannot read", args.file.display()))?;
    eprintln!("perplexity: tokenizing the input ..");
    let tokens = tokenizer.encode(&text, tokenizer.add_bos());
    let n_ctx = if args.model.ctx_size == 0 {
        512
    } else {
        args.model.ctx_size
    };
    if tokens.len() < 2 * n_ctx {
        bail!(
            "{}: {} tokens; perplexity with -c {n_ctx} needs at least {} (2 * n_ctx, as llama-perplexity)",
            args.file.display(),
            tokens.len(),
            2 * n_ctx
        );
    }
    let n_chunks = tokens.len() / n_ctx;
    eprintln!("perplexity: calculating perplexity over {n_chunks} chunks, n_ctx={n_ctx}");
    let opts = SessionOptions {
        ctx_size: n_ctx,
        max_batch: args.model.batch_size.min(n_ctx),
        ..args.model.session_options()
    };
    let mut session = Session::new(&model, opts)?;
    let pool = args.model.thread_pool()?;
    let vocab = model.config().vocab_size;
    let mut saver = match &args.save_logits {
        Some(p) => Some(LogitsWriter::new(
            BufWriter::new(
                File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
            ),
            vocab,
        )?),
        None => None,
    };
    let mut kl = match &args.kl_divergence {
        Some(p) => Some(KlReader::new(
            BufReader::new(File::open(p).with_context(|| format!("{}: cannot open", p.display()))?),
            vocab,
        )?),
        None => None,
    };
    let sink: Option<&mut dyn LogitsSink> = match (&mut saver, &mut kl) {
        (Some(s), _) => Some(s),
        (_, Some(k)) => Some(k),
        _ => None,
    };
    let bos = tokenizer.bos_id().filter(|_| tokenizer.add_bos());
    let result = pool.install(|| {
        perplexity(&mut session, &tokens, n_ctx, bos, sink, |i, r| {
            let mut out = std::io::stdout();
            let _ = write!(out, "[{}]{:.4},", i + 1, r.ppl());
            let _ = out.flush();
        })
    })?;
    println!();
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5}",
        result.ppl(),
        result.ppl_error()
    );
    if let Some(s) = saver {
        s.finish().context("writing the logits file")?;
    }
    if let Some(k) = kl {
        println!("Mean KLD: {:.6}", k.kl.mean_kl());
        println!("Same top p: {:.3} %", 100.0 * k.kl.top1_agreement());
        println!("PPL ratio: {:.6}", k.kl.ppl_ratio());
    }
    Ok(())
}
