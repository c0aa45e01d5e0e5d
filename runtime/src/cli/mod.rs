//! Subcommands of `cinder`, one module each.

mod convert;
mod inspect;
mod quantize;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run Llama 2 family models from GGUF files, fast on ordinary CPUs.
#[derive(Parser, Debug)]
#[command(name = "cinder", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a GGUF file's header, metadata and tensor table.
    Inspect(inspect::Args),
    /// Convert a Hugging Face Llama checkpoint (safetensors) to GGUF, quantizing on the way.
    Convert(convert::Args),
    /// Re-type a GGUF file (e.g. f16 -> q4_k_m), as llama-quantize does.
    Quantize(quantize::Args),
}

/// Parses the arguments, runs the subcommand, and turns an error into one line on stderr and
/// exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Quantize(args) => quantize::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cinder: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
