//! `convert` and `quantize` interrupted (SIGINT, SIGTERM) or stopped by a file-size limit leave
//! no partial file behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The partial file `cinder` (process `pid`) writes before renaming it to `output`.
fn partial_of(output: &Path, pid: u32) -> PathBuf {
    let name = output.file_name().unwrap().to_string_lossy();
    output.with_file_name(format!(".{name}.partial-{pid}"))
}

/// Runs cinder with `args`, sends `signal` (a `kill` name) as soon as its partial file for
/// `output` exists, and returns what it printed and exited with.
fn interrupt(args: &[&str], output: &Path, signal: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cinder"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cinder");
    let partial = partial_of(output, child.id());
    let start = Instant::now();
    while !partial.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "cinder ended ({status}) before writing {}",
                partial.display()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no partial file"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(!partial.exists(), "{} left behind", partial.display());
    assert!(!output.exists(), "{} written", output.display());
    out
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn sigint_during_quantize_removes_the_partial_file_and_exits_130() {
    let dir = TempDir::new("sigint-quantize");
    let f32 = dir.join("t.f32.gguf");
    convert("tiny-llama2-f16", "f32", &f32);
    let out = dir.join("t.q4_k_m.gguf");
    let o = interrupt(
        &[
            "quantize",
            f32.to_str().unwrap(),
            out.to_str().unwrap(),
            "q4_k_m",
            "--quiet",
        ],
        &out,
        "INT",
    );
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("interrupted (SIGINT)") && err.contains("t.q4_k_m.gguf"),
        "{err}"
    );
    assert_eq!(files_in(&dir.0), ["t.f32.gguf"]);
}

#[test]
fn sigterm_during_convert_removes_the_partial_file_and_exits_143() {
    let dir = TempDir::new("sigterm-convert");
    let out = dir.join("t.q4_k_m.gguf");
    let model = model_dir("tiny-llama2-bf16-gqa");
    let o = interrupt(
        &[
            "convert",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-t",
            "q4_k_m",
            "-q",
        ],
        &out,
        "TERM",
    );
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("interrupted (SIGTERM)"), "{err}");
    assert!(files_in(&dir.0).is_empty(), "{:?}", files_in(&dir.0));
}

/// Runs cinder under bash's `ulimit -f` (KiB): writes past it fail with EFBIG, as on a full
/// disk.
fn cinder_with_file_limit(kib: u32, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -f {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_cinder"))
        .args(args)
        .output()
        .expect("run bash")
}

#[test]
fn a_write_past_the_file_size_limit_is_an_error_and_leaves_nothing() {
    let dir = TempDir::new("fsize");
    let f32 = dir.join("t.f32.gguf");
    convert("stories260k", "f32", &f32);
    let out = dir.join("t.f16.gguf");
    let o = cinder_with_file_limit(
        64,
        &[
            "quantize",
            f32.to_str().unwrap(),
            out.to_str().unwrap(),
            "f16",
            "--quiet",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("File too large"), "{err}");
    assert_eq!(files_in(&dir.0), ["t.f32.gguf"]);

    let out = dir.join("c.f32.gguf");
    let model = model_dir("stories260k");
    let o = cinder_with_file_limit(
        64,
        &[
            "convert",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-t",
            "f32",
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("File too large"), "{}", stderr(&o));
    assert_eq!(files_in(&dir.0), ["t.f32.gguf"]);
}
