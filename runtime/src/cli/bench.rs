//! `cinder bench`: llama-bench's measurements and output formats (md, json, csv), so scripts
//! written for llama-bench read cinder's results unchanged.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cinder::bench::{Samples, Test, run as run_test};
use cinder::{KvType, Model, Session, SessionOptions};
use cinder_kernels::Kernels;
use cinder_quant::gguf::{Gguf, keys};
use clap::ValueEnum;
use serde_json::json;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A markdown table like llama-bench's default.
    Md,
    /// A JSON array with llama-bench's field names.
    Json,
    /// CSV with llama-bench's field names.
    Csv,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// GGUF model file(s); repeat -m for several.
    #[arg(
        short = 'm',
        long = "model",
        value_name = "MODEL.gguf",
        required = true
    )]
    models: Vec<PathBuf>,
    /// Prompt lengths to test as one batched evaluation each (0 to skip), comma-separated.
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    n_prompt: Vec<usize>,
    /// Tokens to generate one by one (0 to skip), comma-separated.
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_gen: Vec<usize>,
    /// Context depths, comma-separated: each test runs after this many tokens already in the
    /// cache (llama-bench's -d).
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Thread counts, comma-separated (default: the CPUs available).
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Repetitions of each test (after one warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Md)]
    format: Format,
    /// KV cache type.
    #[arg(long = "cache-type", value_enum, default_value_t = super::run::CacheType::F16)]
    cache_type: super::run::CacheType,
}

/// What llama-bench reports about a model.
struct ModelInfo {
    filename: String,
    model_type: String,
    size: u64,
    n_params: u64,
}

fn model_info(model: &Model) -> Result<ModelInfo> {
    let g = Gguf::parse(model.bytes()).context("re-reading the GGUF header")?;
    let size = g.tensors().iter().map(|t| t.size()).sum();
    let n_params = g.tensors().iter().map(|t| t.n_elements()).sum();
    let label = match g.get_u32(keys::LLAMA_BLOCK_COUNT).unwrap_or(0) {
        22 => "1B",
        26 => "3B",
        32 => "7B",
        40 => "13B",
        48 => "34B",
        60 => "30B",
        80 => "70B",
        _ => "?B",
    };
    let ftype = match g.get_u32(keys::GENERAL_FILE_TYPE).ok() {
        Some(0) => "all F32",
        Some(1) => "F16",
        Some(2) => "Q4_0",
        Some(3) => "Q4_1",
        Some(7) => "Q8_0",
        Some(8) => "Q5_0",
        Some(9) => "Q5_1",
        Some(10) => "Q2_K - Medium",
        Some(11) => "Q3_K - Small",
        Some(12) => "Q3_K - Medium",
        Some(13) => "Q3_K - Large",
        Some(14) => "Q4_K - Small",
        Some(15) => "Q4_K - Medium",
        Some(16) => "Q5_K - Small",
        Some(17) => "Q5_K - Medium",
        Some(18) => "Q6_K",
        Some(32) => "BF16",
        _ => "?",
    };
    Ok(ModelInfo {
        filename: model.path().display().to_string(),
        model_type: format!("llama {label} {ftype}"),
        size,
        n_params,
    })
}

struct Row<'a> {
    info: &'a ModelInfo,
    threads: usize,
    samples: Samples,
    kernels: &'static str,
}

pub fn run(args: &Args, kernels: &Kernels) -> Result<()> {
    let threads = if args.threads.is_empty() {
        vec![std::thread::available_parallelism().map_or(1, |n| n.get())]
    } else {
        args.threads.clone()
    };
    if threads.contains(&0) {
        bail!("thread counts must be at least 1");
    }
    let tests: Vec<Test> = args
        .n_prompt
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| Test::Prompt(n))
        .chain(
            args.n_gen
                .iter()
                .filter(|&&n| n > 0)
                .map(|&n| Test::Generate(n)),
        )
        .collect();
    let mut rows = Vec::new();
    let mut infos = Vec::new();
    for path in &args.models {
        let model = super::run::load_model(path, kernels)?;
        infos.push(model_info(&model)?);
        let info = infos.last().expect("just pushed");
        let longest = tests.iter().map(|t| t.tokens()).max().unwrap_or(1);
        let deepest = args.n_depth.iter().copied().max().unwrap_or(0);
        let opts = SessionOptions {
            ctx_size: (longest + deepest).max(16),
            max_batch: longest.max(1),
            kv_type: KvType::from(args.cache_type),
        };
        let mut session = Session::new(&model, opts)?;
        for &t in &threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .context("thread pool")?;
            for (&test, &depth) in tests
                .iter()
                .flat_map(|t| args.n_depth.iter().map(move |d| (t, d)))
            {
                let batch = longest.max(1);
                let samples =
                    pool.install(|| run_test(&mut session, test, args.reps, (depth, batch)))?;
                let row = Row {
                    info,
                    threads: t,
                    samples,
                    kernels: kernels.isa().name(),
                };
                if args.format == Format::Md {
                    if rows.is_empty() {
                        println!("| model | size | params | backend | threads | test | t/s |");
                        println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
                    }
                    println!("{}", markdown(&row));
                }
                rows.push(row_json(&row));
            }
        }
        drop(session);
        drop(model);
    }
    match args.format {
        Format::Md => println!(
            "\nbuild: cinder {} ({} kernels)",
            env!("CARGO_PKG_VERSION"),
            kernels.isa().name()
        ),
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Csv => {
            let fields = CSV_FIELDS;
            println!("{}", fields.join(","));
            for r in &rows {
                let line: Vec<String> = fields
                    .iter()
                    .map(|f| match &r[*f] {
                        serde_json::Value::String(s) => format!("\"{}\"", s.replace('"', "\"\"")),
                        v => v.to_string(),
                    })
                    .collect();
                println!("{}", line.join(","));
            }
        }
    }
    Ok(())
}

const CSV_FIELDS: [&str; 14] = [
    "build_commit",
    "model_filename",
    "model_type",
    "model_size",
    "model_n_params",
    "n_batch",
    "n_threads",
    "type_k",
    "n_prompt",
    "n_gen",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
];

/// llama-bench's test label: `pp512`, or `pp512 @ d4096` with a depth.
fn test_name(s: &Samples) -> String {
    if s.depth > 0 {
        format!("{} @ d{}", s.test.name(), s.depth)
    } else {
        s.test.name()
    }
}

fn markdown(r: &Row<'_>) -> String {
    let (ts, sd) = Samples::mean_sd(&r.samples.tokens_per_second());
    let size = r.info.size as f64;
    let size = if size >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", size / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.2} MiB", size / (1024.0 * 1024.0))
    };
    let params = r.info.n_params as f64;
    let params = if params >= 1e9 {
        format!("{:.2} B", params / 1e9)
    } else {
        format!("{:.2} M", params / 1e6)
    };
    format!(
        "| {} | {size} | {params} | CPU ({}) | {} | {} | {ts:.2} ± {sd:.2} |",
        r.info.model_type,
        r.kernels,
        r.threads,
        test_name(&r.samples)
    )
}

fn row_json(r: &Row<'_>) -> serde_json::Value {
    let ns: Vec<f64> = r.samples.ns.iter().map(|&n| n as f64).collect();
    let ts = r.samples.tokens_per_second();
    let (avg_ns, sd_ns) = Samples::mean_sd(&ns);
    let (avg_ts, sd_ts) = Samples::mean_sd(&ts);
    let (n_prompt, n_gen) = match r.samples.test {
        Test::Prompt(n) => (n, 0),
        Test::Generate(n) => (0, n),
    };
    json!({
        "build_commit": format!("cinder-{}", env!("CARGO_PKG_VERSION")),
        "backends": "CPU",
        "kernels": r.kernels,
        "model_filename": r.info.filename,
        "model_type": r.info.model_type,
        "model_size": r.info.size,
        "model_n_params": r.info.n_params,
        "n_batch": n_prompt.max(1),
        "n_ubatch": n_prompt.max(1),
        "n_threads": r.threads,
        "type_k": "f16",
        "type_v": "f16",
        "use_mmap": true,
        "n_prompt": n_prompt,
        "n_gen": n_gen,
        "n_depth": r.samples.depth,
        "avg_ns": avg_ns.round() as u64,
        "stddev_ns": sd_ns.round() as u64,
        "avg_ts": avg_ts,
        "stddev_ts": sd_ts,
        "samples_ns": r.samples.ns,
        "samples_ts": ts,
    })
}
