//! `cinder run`: generate text from a prompt, streaming it to stdout like llama-cli.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cinder::generate::{GenerateOptions, Generator, StopReason, Timings, load_tokenizer};
use cinder::sampler::{Sampler, SamplerParams};
use cinder::tokenizer::Tokenizer;
use cinder::{KvType, LoadProgress, Model, Session, SessionOptions};
use cinder_kernels::Kernels;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheType {
    /// Half precision (llama.cpp's default).
    F16,
    /// Single precision.
    F32,
}

impl From<CacheType> for KvType {
    fn from(c: CacheType) -> Self {
        match c {
            CacheType::F16 => KvType::F16,
            CacheType::F32 => KvType::F32,
        }
    }
}

/// Options shared by `run` and `chat`: the model, the context and the threads.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// The GGUF model file.
    #[arg(short = 'm', long, value_name = "MODEL.gguf")]
    pub model: PathBuf,
    /// Context size in tokens; 0 uses the model's training context.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0, value_name = "N")]
    pub ctx_size: usize,
    /// Threads for the matrix products (default: the CPUs available).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Most prompt tokens evaluated in one forward pass.
    #[arg(
        short = 'b',
        long = "batch-size",
        default_value_t = 512,
        value_name = "N"
    )]
    pub batch_size: usize,
    /// Element type of the KV cache.
    #[arg(long = "cache-type", value_enum, default_value_t = CacheType::F16)]
    pub cache_type: CacheType,
}

impl ModelArgs {
    /// The session options these flags ask for.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            ctx_size: self.ctx_size,
            max_batch: self.batch_size,
            kv_type: self.cache_type.into(),
        }
    }

    /// A rayon pool with `--threads` threads (default: available parallelism).
    pub fn thread_pool(&self) -> Result<rayon::ThreadPool> {
        let n = match self.threads {
            Some(0) => bail!("--threads must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .context("building the thread pool")
    }
}

/// Sampling flags (llama.cpp's names and defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy (argmax).
    #[arg(long = "temp", default_value_t = 0.8, value_name = "T")]
    pub temperature: f32,
    /// Keep only the K most likely tokens; 0 keeps all.
    #[arg(long = "top-k", default_value_t = 40, value_name = "K")]
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches P; 1 keeps all.
    #[arg(long = "top-p", default_value_t = 0.95, value_name = "P")]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely one; 0 keeps all.
    #[arg(long = "min-p", default_value_t = 0.05, value_name = "P")]
    pub min_p: f32,
    /// Repetition penalty over the last --repeat-last-n tokens; 1 is off.
    #[arg(long = "repeat-penalty", default_value_t = 1.0, value_name = "X")]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at; 0 turns them off.
    #[arg(long = "repeat-last-n", default_value_t = 64, value_name = "N")]
    pub repeat_last_n: usize,
    /// Subtract X per earlier occurrence from a token's logit; 0 is off.
    #[arg(long = "frequency-penalty", default_value_t = 0.0, value_name = "X")]
    pub frequency_penalty: f32,
    /// Subtract X from the logit of any token already present; 0 is off.
    #[arg(long = "presence-penalty", default_value_t = 0.0, value_name = "X")]
    pub presence_penalty: f32,
    /// Seed of the sampler's random numbers (default: from the clock).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The sampler these flags describe.
    pub fn sampler(&self) -> Result<Sampler> {
        for (name, x) in [
            ("--temp", self.temperature),
            ("--top-p", self.top_p),
            ("--min-p", self.min_p),
            ("--repeat-penalty", self.repeat_penalty),
            ("--frequency-penalty", self.frequency_penalty),
            ("--presence-penalty", self.presence_penalty),
        ] {
            if !x.is_finite() {
                bail!("{name} must be a finite number, not {x}");
            }
        }
        if self.repeat_penalty <= 0.0 {
            bail!("--repeat-penalty must be positive");
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(Sampler::new(SamplerParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            seed,
        }))
    }
}

/// Arguments of `cinder run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt.
    #[arg(short = 'p', long, value_name = "TEXT", conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from this file.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Tokens to generate; -1 runs until end of text or a full context.
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true, value_name = "N")]
    pub n_predict: i64,
    /// Do not print the prompt before the generated text.
    #[arg(long)]
    pub no_display_prompt: bool,
    /// Print the model, the settings and the prompt's tokens on stderr.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Loads the model with `kernels` and its tokenizer; returns them with the time taken. A
/// large file shows its progress on stderr (see [`load_model`]).
pub fn load(path: &Path, kernels: &Kernels) -> Result<(Model, Tokenizer, Duration)> {
    let start = Instant::now();
    let model = load_model(path, kernels)?;
    let tokenizer = load_tokenizer(&model)?;
    Ok((model, tokenizer, start.elapsed()))
}

/// Files larger than this show a progress bar while they load (1 GB: a 1B model at 8 bits).
const LOAD_PROGRESS_MIN_BYTES: u64 = 1_000_000_000;

/// Loads the model with `kernels`. A file over [`LOAD_PROGRESS_MIN_BYTES`] shows a progress
/// bar on stderr while it is mapped, checked and repacked, when stderr is a terminal (as
/// `convert` does); the bar is cleared when loading ends.
pub fn load_model(path: &Path, kernels: &Kernels) -> Result<Model> {
    // A file that cannot be read gets no bar; loading it reports the error.
    let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let Some(bar) = load_bar(path, file_bytes, std::io::stderr().is_terminal()) else {
        return Ok(Model::load_with_kernels(path, *kernels)?);
    };
    let model = Model::load_with_progress(path, *kernels, &|p| match p {
        LoadProgress::Checked { repack_bytes, .. } if repack_bytes > 0 => {
            bar.set_length(repack_bytes);
            bar.set_style(super::convert::bytes_style());
            bar.set_message("repacking");
        }
        LoadProgress::Checked { .. } => {}
        LoadProgress::Repacked { name, bytes } => {
            bar.inc(bytes);
            bar.set_message(name.to_string());
        }
    });
    bar.finish_and_clear();
    Ok(model?)
}

/// The bar [`load_model`] draws on stderr for a file of `file_bytes`, or `None` when it shows
/// none (a small file, or stderr not a terminal).
fn load_bar(path: &Path, file_bytes: u64, stderr_is_terminal: bool) -> Option<ProgressBar> {
    if file_bytes <= LOAD_PROGRESS_MIN_BYTES || !stderr_is_terminal {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} loading {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(path.display().to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

/// Prints llama.cpp-style timings on stderr.
pub fn print_timings(load: Duration, t: &Timings) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let line = |what: &str, d: Duration, n: usize, rate: f64| {
        let per = if n > 0 { ms(d) / n as f64 } else { 0.0 };
        eprintln!(
            "cinder: {what:>16} = {:10.2} ms / {n:5} tokens ({per:8.2} ms per token, {rate:8.2} tokens per second)",
            ms(d)
        );
    };
    eprintln!("cinder: {:>16} = {:10.2} ms", "load time", ms(load));
    line(
        "prompt eval time",
        t.prompt_time,
        t.prompt_tokens,
        t.prompt_tokens_per_second(),
    );
    line(
        "eval time",
        t.generate_time,
        t.generated_tokens,
        t.generate_tokens_per_second(),
    );
    eprintln!(
        "cinder: {:>16} = {:10.2} ms / {:5} tokens",
        "total time",
        ms(load + t.prompt_time + t.generate_time),
        t.prompt_tokens + t.generated_tokens
    );
}

pub fn run(args: &Args, kernels: &Kernels) -> Result<()> {
    let prompt = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the prompt from {}", f.display()))?,
        (None, None) => bail!("give a prompt with -p TEXT or -f FILE"),
    };
    let max_tokens = match args.n_predict {
        n if n < -1 => bail!("-n must be -1 (no limit) or a token count, not {n}"),
        -1 => None,
        n => Some(usize::try_from(n)?),
    };
    let mut sampler = args.sampling.sampler()?;
    let pool = args.model.thread_pool()?;
    pool.install(|| {
        // Refuse a context that cannot fit before spending seconds loading the model.
        cinder::memory::check_file(&args.model.model, kernels, &args.model.session_options())?;
        let (model, tokenizer, load_time) = load(&args.model.model, kernels)?;
        let mut session = Session::new(&model, args.model.session_options())?;
        let tokens = tokenizer.encode(&prompt, tokenizer.add_bos());
        if tokens.is_empty() {
            bail!("the prompt is empty and the model adds no BOS token");
        }
        if args.verbose {
            eprintln!(
                "cinder: model {} {:?}",
                model.path().display(),
                model.config()
            );
            eprintln!(
                "cinder: kernels {}, threads {}, ctx {}, batch {}, sampling {:?}",
                kernels.isa().name(),
                rayon::current_num_threads(),
                session.ctx_size(),
                args.model.batch_size,
                sampler.params()
            );
            eprintln!("cinder: prompt tokens {tokens:?}");
        }
        if tokens.len() >= session.ctx_size() {
            bail!(
                "the prompt has {} tokens; the context holds {} (raise --ctx-size)",
                tokens.len(),
                session.ctx_size()
            );
        }
        let opts = GenerateOptions {
            max_tokens,
            decode_prompt: true,
        };
        let mut generator = Generator::new(&mut session, &tokenizer, &mut sampler, opts);
        generator.prompt(&tokens)?;
        let mut out = std::io::stdout().lock();
        if !args.no_display_prompt {
            out.write_all(generator.prompt_text().as_bytes())?;
            out.flush()?;
        }
        let mut io_error = None;
        let reason = generator.run(|_, text| {
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => true,
                Err(e) => {
                    io_error = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = io_error {
            return Err(e).context("writing to stdout");
        }
        out.write_all(generator.flush().as_bytes())?;
        writeln!(out)?;
        out.flush()?;
        let why = match reason {
            StopReason::Eos => "end of text",
            StopReason::Limit => "token limit",
            StopReason::ContextFull => "context full",
            StopReason::Interrupted => "interrupted",
        };
        eprintln!("\ncinder: stopped: {why}");
        print_timings(load_time, &generator.timings());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_progress_shows_only_for_files_over_1_gb_on_a_terminal() {
        let p = Path::new("m.gguf");
        assert!(load_bar(p, 2 * LOAD_PROGRESS_MIN_BYTES, true).is_some());
        assert!(load_bar(p, LOAD_PROGRESS_MIN_BYTES + 1, true).is_some());
        assert!(load_bar(p, 2 * LOAD_PROGRESS_MIN_BYTES, false).is_none());
        assert!(load_bar(p, LOAD_PROGRESS_MIN_BYTES, true).is_none());
        assert!(load_bar(p, 1 << 20, true).is_none());
    }
}
