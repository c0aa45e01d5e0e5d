//! Subcommands of `cinder`, one module each.

mod bench;
mod chat;
mod convert;
mod info;
mod inspect;
mod interrupt;
mod logits;
mod perplexity;
mod quantize;
mod run;
mod serve;
mod tokenize;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Where models come from: shown after the help of `cinder`, `run` and `chat`, and when a
/// command that needs a model is given none.
const MODELS_HELP: &str = "\
Models: cinder runs Llama 2 family models stored in GGUF files. Either
  - convert a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer.model):
      cinder convert Llama-2-7b-hf -o llama2-7b.q4_k_m.gguf --type q4_k_m
    (the repository carries a tiny trained one: cinder convert models/stories260k -o s.gguf)
  - or use any llama.cpp GGUF of a Llama model, e.g. a Q4_0 or Q4_K_M file downloaded from
    Hugging Face. Then: cinder run -m MODEL.gguf -p \"Once upon a time\"";

/// Run Llama 2 family models from GGUF files, fast on ordinary CPUs.
#[derive(Parser, Debug)]
#[command(
    name = "cinder",
    version,
    about,
    propagate_version = true,
    arg_required_else_help = true,
    after_help = MODELS_HELP
)]
struct Cli {
    /// Kernel set to use instead of the best one this CPU supports:
    /// scalar, avx2, avxvnni, avx512, avx512vnni, neon, dotprod or i8mm (also CINDER_KERNELS).
    #[arg(long, global = true, value_name = "ISA")]
    kernels: Option<String>,
    /// Round the activations of F16/BF16-weight matmuls to f16/bf16 as llama.cpp does (for
    /// comparing logits or perplexity with llama.cpp; the default keeps them f32).
    #[arg(long, global = true)]
    llamacpp_rounding: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the CPU features seen, the kernel sets available and the one chosen.
    Info,
    /// Print a GGUF file's header, metadata and tensor table.
    Inspect(inspect::Args),
    /// Convert a Hugging Face Llama checkpoint (safetensors) to GGUF, quantizing on the way.
    Convert(convert::Args),
    /// Re-type a GGUF file (e.g. f16 -> q4_k_m), as llama-quantize does.
    Quantize(quantize::Args),
    /// Generate text from a prompt, streaming it to stdout (like llama-cli).
    #[command(after_help = MODELS_HELP)]
    Run(run::Args),
    /// Chat interactively on stdin (Llama 2 chat format, or the model's chat template).
    #[command(after_help = MODELS_HELP)]
    Chat(chat::Args),
    /// Show the tokens a text becomes (like llama-tokenize).
    Tokenize(tokenize::Args),
    /// Evaluate tokens as one batch and write or summarize every position's logits.
    Logits(logits::Args),
    /// Measure prompt and generation speed like llama-bench (pp512, tg128; md/json/csv).
    Bench(bench::Args),
    /// Perplexity of a text as llama-perplexity computes it; KL divergence against saved logits.
    Perplexity(perplexity::Args),
    /// Serve the model over HTTP with an OpenAI-compatible API (like llama-server).
    #[command(after_help = MODELS_HELP)]
    Serve(serve::Args),
}

/// Parses the arguments, runs the subcommand, and turns an error into one line on stderr and
/// exit code 1.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    cinder::matmul::set_llamacpp_rounding(cli.llamacpp_rounding);
    let result =
        select_kernels(cli.kernels.as_deref()).and_then(|(kernels, chosen_by)| match cli.command {
            Command::Info => info::run(&kernels, chosen_by),
            Command::Inspect(args) => inspect::run(&args),
            Command::Convert(args) => convert::run(&args),
            Command::Quantize(args) => quantize::run(&args),
            Command::Run(args) => run::run(&args, &kernels),
            Command::Chat(args) => chat::run(&args, &kernels),
            Command::Tokenize(args) => tokenize::run(&args),
            Command::Logits(args) => logits::run(&args, &kernels),
            Command::Bench(args) => bench::run(&args, &kernels),
            Command::Perplexity(args) => perplexity::run(&args, &kernels),
            Command::Serve(args) => serve::run(&args, &kernels),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cinder: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints clap's message (help, version or a usage error) and returns its exit code; when the
/// missing argument is the model, also says where models come from.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // Printing can only fail on a closed stdout/stderr; nothing is left to tell then.
    let _ = e.print();
    let missing_model = e.kind() == ErrorKind::MissingRequiredArgument
        && match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(args)) => args.iter().any(|a| a.starts_with("--model")),
            Some(ContextValue::String(a)) => a.starts_with("--model"),
            _ => false,
        };
    if missing_model {
        eprintln!("\n{MODELS_HELP}");
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// The kernel set: `--kernels`, else `CINDER_KERNELS`, else the best this CPU runs. Asking for
/// a set the CPU lacks is an error, never a silent fallback.
fn select_kernels(flag: Option<&str>) -> anyhow::Result<(cinder_kernels::Kernels, &'static str)> {
    use cinder_kernels::Kernels;
    if let Some(name) = flag {
        return Ok((Kernels::from_name(name)?, "--kernels"));
    }
    match std::env::var("CINDER_KERNELS") {
        Ok(name) if !name.trim().is_empty() => Ok((Kernels::from_name(&name)?, "CINDER_KERNELS")),
        _ => Ok((Kernels::detect(), "detected")),
    }
}
