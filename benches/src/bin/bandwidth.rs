//! `bandwidth`: how fast this machine reads memory, the ceiling of one-token generation. A
//! STREAM-like read (every thread sums its own contiguous part of a buffer far larger than the
//! last-level cache), at each thread count asked for, best of a few passes. With `--model`, it
//! also prints the weight bytes a generated token reads from that GGUF file (every tensor but
//! `token_embd.weight`, of which one row), so that `bytes per token x tokens per second /
//! bandwidth` says how close generation is to the limit (`benches/compare-e2e.sh` prints it).
//!
//! ```text
//! cargo run --release -p cinder-benches --bin bandwidth -- -t 1,2 --model tinyllama.q4_k_m.gguf
//! ```
//! Output: one JSON object per line, `{"threads": T, "gb_per_s": best, "mean_gb_per_s": mean,
//! "bytes": B}`, then `{"model": FILE, "bytes_per_token": N}` with `--model`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cinder_quant::gguf::Gguf;
use clap::Parser;

/// Measure the memory-read bandwidth at one or more thread counts.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Thread counts, comma-separated.
    #[arg(short, long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Buffer size in MiB (keep it well above the last-level cache).
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Timed passes over the buffer per thread count (the best is reported).
    #[arg(short, long, default_value_t = 5)]
    reps: usize,
    /// Also print the weight bytes one generated token reads from this GGUF file.
    #[arg(long)]
    model: Option<PathBuf>,
}

/// The wrapping sum of `x`, in 8 independent lanes so the loop vectorizes and is not bound by
/// one addition chain.
fn sum(x: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(v);
        }
    }
    let t = tail.iter().fold(0u64, |s, &v| s.wrapping_add(v));
    acc.iter().fold(t, |s, &v| s.wrapping_add(v))
}

/// Seconds one pass of `threads` threads over `buf` takes, from a common start to the last
/// thread's end (threads are started before the clock).
fn pass(buf: &[u64], threads: usize) -> f64 {
    let part = buf.len().div_ceil(threads);
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = buf
            .chunks(part)
            .map(|chunk| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    black_box(sum(black_box(chunk)))
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for h in handles {
            h.join().expect("bandwidth: a reader thread panicked");
        }
        t0.elapsed().as_secs_f64()
    })
}

/// Bytes a one-token forward pass reads from the weights of the GGUF file at `path`.
fn bytes_per_token(path: &PathBuf) -> Result<u64> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let g = Gguf::parse(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let mut total = 0u64;
    for t in g.tensors() {
        total += if t.name() == "token_embd.weight" {
            let rows = t.dims().get(1).copied().unwrap_or(1).max(1);
            t.size() / rows
        } else {
            t.size()
        };
    }
    Ok(total)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.threads.is_empty() || args.threads.contains(&0) || args.reps == 0 || args.mib == 0 {
        bail!("bandwidth: --threads, --reps and --mib must be positive");
    }
    let len = args.mib << 17; // u64s in `mib` MiB
    // Distinct values on every page, so each page is really backed before timing.
    let buf: Vec<u64> = (0..len as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9))
        .collect();
    let bytes = std::mem::size_of_val(buf.as_slice());
    for &t in &args.threads {
        pass(&buf, t); // warm-up: threads, TLB
        let times: Vec<f64> = (0..args.reps).map(|_| pass(&buf, t)).collect();
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "{{\"threads\": {t}, \"gb_per_s\": {:.2}, \"mean_gb_per_s\": {:.2}, \"bytes\": {bytes}}}",
            bytes as f64 / best / 1e9,
            bytes as f64 / mean / 1e9
        );
    }
    if let Some(m) = &args.model {
        println!(
            "{}",
            serde_json::json!({"model": m.display().to_string(), "bytes_per_token": bytes_per_token(m)?})
        );
    }
    Ok(())
}
