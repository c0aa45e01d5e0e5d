//! `cinder convert HF_DIR -o OUT.gguf --type TYPE`: a Hugging Face Llama checkpoint to GGUF.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cinder_convert::convert::temp_path;
use cinder_convert::{FileType, Options, Overrides, Progress};
use cinder_quant::GgmlType;
use indicatif::{ProgressBar, ProgressStyle};

use super::interrupt::RemoveOnSignal;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The checkpoint folder (config.json, *.safetensors, tokenizer.model).
    input: PathBuf,
    /// The GGUF file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// File type, as llama-quantize names them: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,
    /// q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k.
    #[arg(short = 't', long = "type", default_value = "f16", value_parser = parse_file_type)]
    file_type: FileType,
    /// One type for every matrix (no k-quant mix rules; block-size fallbacks still apply).
    #[arg(long)]
    pure: bool,
    /// Type of output.weight (e.g. q8_0), overriding the mix.
    #[arg(long, value_parser = parse_ggml_type)]
    output_tensor_type: Option<GgmlType>,
    /// Type of token_embd.weight, overriding the mix.
    #[arg(long, value_parser = parse_ggml_type)]
    token_embedding_type: Option<GgmlType>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    force: bool,
    /// Convert weights that are NaN or infinite (with a warning) instead of stopping.
    #[arg(long)]
    allow_nonfinite: bool,
    /// general.name to record (default: the folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

pub(super) fn parse_file_type(s: &str) -> Result<FileType, String> {
    FileType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = FileType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown type {s:?}; one of {}", names.join(", "))
    })
}

pub(super) fn parse_ggml_type(s: &str) -> Result<GgmlType, String> {
    GgmlType::from_name(s)
        .filter(|t| t.has_reference())
        .ok_or_else(|| format!("unknown or unsupported tensor type {s:?}"))
}

pub fn run(args: &Args) -> Result<()> {
    if args.input.is_file() {
        bail!(
            "{}: is a file; give the checkpoint folder",
            args.input.display()
        );
    }
    let opts = Options {
        input: args.input.clone(),
        output: args.output.clone(),
        file_type: args.file_type,
        overrides: Overrides {
            pure: args.pure,
            output: args.output_tensor_type,
            token_embedding: args.token_embedding_type,
        },
        force: args.force,
        allow_nonfinite: args.allow_nonfinite,
        name: args.name.clone(),
    };
    let mut report = Report::new(args.quiet);
    let _watch = RemoveOnSignal::new(temp_path(&args.output), &args.output)?;
    let summary = cinder_convert::convert(&opts, &mut |p| report.on(p))
        .with_context(|| format!("converting {}", args.input.display()))?;
    report.done(&summary, args.file_type);
    Ok(())
}

/// The style of cinder's progress bars over bytes (convert, quantize, loading a model).
pub(super) fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// The progress bar and summary line shared by `convert` and `quantize`.
pub(super) struct Report {
    bar: ProgressBar,
    quiet: bool,
}

impl Report {
    pub(super) fn new(quiet: bool) -> Self {
        Report {
            bar: ProgressBar::hidden(),
            quiet,
        }
    }

    pub(super) fn on(&mut self, p: Progress<'_>) {
        match p {
            Progress::Start { bytes, .. } if !self.quiet => {
                self.bar
                    .set_draw_target(indicatif::ProgressDrawTarget::stderr());
                self.bar.set_length(bytes);
                self.bar.set_style(bytes_style());
            }
            Progress::Start { .. } => {}
            Progress::Tensor { name, ty, bytes } => {
                self.bar.inc(bytes);
                self.bar.set_message(format!("{name} -> {ty}"));
            }
            Progress::Warning(msg) => self.bar.suspend(|| eprintln!("warning: {msg}")),
        }
    }

    pub(super) fn done(&self, summary: &cinder_convert::Summary, file_type: FileType) {
        self.bar.finish_and_clear();
        if self.quiet {
            return;
        }
        let types: Vec<String> = summary
            .types
            .iter()
            .map(|(t, n)| format!("{t}: {n}"))
            .collect();
        eprintln!(
            "wrote {} ({}): {:.1} MiB, {} parameters, {:.2} bits per weight, tensors [{}], {:.1} s",
            summary.path.display(),
            file_type.name(),
            summary.file_bytes as f64 / (1024.0 * 1024.0),
            summary.params,
            summary.bits_per_weight(),
            types.join(", "),
            summary.seconds
        );
    }
}
