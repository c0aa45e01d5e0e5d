//! `cinder quantize IN.gguf OUT.gguf TYPE`: re-type a GGUF file, as llama-quantize does.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cinder::mmap::MappedFile;
use cinder_convert::{FileType, Overrides, QuantizeOptions};
use cinder_quant::GgmlType;

use cinder_convert::convert::temp_path;

use super::convert::{Report, parse_file_type, parse_ggml_type};
use super::interrupt::RemoveOnSignal;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The GGUF file to read (F32/F16/BF16 matrices, or quantized with --allow-requantize).
    input: PathBuf,
    /// The GGUF file to write.
    output: PathBuf,
    /// File type (llama-quantize's names: q4_0, q8_0, q4_k_m, ...).
    #[arg(value_parser = parse_file_type)]
    file_type: FileType,
    /// One type for every matrix (no k-quant mix rules; block-size fallbacks still apply).
    #[arg(long)]
    pure: bool,
    /// Type of output.weight, overriding the mix.
    #[arg(long, value_parser = parse_ggml_type)]
    output_tensor_type: Option<GgmlType>,
    /// Type of token_embd.weight, overriding the mix.
    #[arg(long, value_parser = parse_ggml_type)]
    token_embedding_type: Option<GgmlType>,
    /// Accept already-quantized tensors as input (quality loss compounds).
    #[arg(long)]
    allow_requantize: bool,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let path = args.input.display();
    let file = MappedFile::open(&args.input).with_context(|| format!("{path}: cannot open"))?;
    let opts = QuantizeOptions {
        input: args.input.clone(),
        output: args.output.clone(),
        file_type: args.file_type,
        overrides: Overrides {
            pure: args.pure,
            output: args.output_tensor_type,
            token_embedding: args.token_embedding_type,
        },
        force: args.force,
        allow_requantize: args.allow_requantize,
    };
    let mut report = Report::new(args.quiet);
    let _watch = RemoveOnSignal::new(temp_path(&args.output), &args.output)?;
    let summary = cinder_convert::quantize_gguf(file.bytes(), &opts, &mut |p| report.on(p))
        .with_context(|| format!("quantizing {path}"))?;
    report.done(&summary, args.file_type);
    Ok(())
}
