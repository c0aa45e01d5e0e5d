//! The `bandwidth` probe: one JSON line per thread count with a positive read speed over the
//! whole buffer, and, for a model, the weight bytes one generated token reads.

use std::path::PathBuf;
use std::process::Command;

use cinder_quant::gguf::Gguf;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cinder-bandwidth-{}-{name}", std::process::id()))
}

#[test]
fn probe_reports_each_thread_count_and_the_bytes_a_token_reads() {
    let model = tmp("q4_0.gguf");
    let status = Command::new(env!("CARGO_BIN_EXE_synth-model"))
        .args([
            "--shape", "custom", "--dim", "256", "--layers", "2", "--heads", "4",
        ])
        .args(["--ffn", "512", "--ctx", "64", "--type", "q4_0", "-o"])
        .arg(&model)
        .status()
        .expect("synth-model runs");
    assert!(status.success(), "synth-model failed: {status}");

    let out = Command::new(env!("CARGO_BIN_EXE_bandwidth"))
        .args(["-t", "1,2", "--mib", "8", "-r", "2", "--model"])
        .arg(&model)
        .output()
        .expect("bandwidth runs");
    assert!(out.status.success(), "bandwidth failed: {out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, t) in lines.iter().zip([1, 2]) {
        assert_eq!(line["threads"], t);
        assert_eq!(line["bytes"], 8 << 20);
        let best = line["gb_per_s"].as_f64().expect("gb_per_s");
        let mean = line["mean_gb_per_s"].as_f64().expect("mean_gb_per_s");
        assert!(best > 0.0 && mean > 0.0 && mean <= best, "{line}");
    }

    // Every tensor once, except the embedding table, of which one row (of 32000).
    let bytes = std::fs::read(&model).expect("model written");
    let g = Gguf::parse(&bytes).expect("a valid GGUF");
    let embd = g.tensor("token_embd.weight").expect("token_embd");
    assert_eq!(embd.dims(), [256, 32000]);
    let all: u64 = g.tensors().iter().map(|t| t.size()).sum();
    let want = all - embd.size() + embd.size() / 32000;
    assert_eq!(lines[2]["bytes_per_token"], want);
    assert_eq!(embd.size() / 32000, 144, "a row: 8 Q4_0 blocks of 18 bytes");
    std::fs::remove_file(&model).ok();
}

#[test]
fn probe_rejects_zero_threads() {
    let out = Command::new(env!("CARGO_BIN_EXE_bandwidth"))
        .args(["-t", "0", "--mib", "1"])
        .output()
        .expect("bandwidth runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be positive"), "{err}");
}
