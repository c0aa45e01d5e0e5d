//! A model file truncated while cinder has it mapped: the SIGBUS this raises is reported
//! naming the file, with the exit status of SIGBUS (135).
#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_model_file_truncated_under_a_running_bench_is_named_on_sigbus() {
    let dir = TempDir::new("sigbus");
    let path = dir.join("victim.gguf");
    convert("stories260k", "f16", &path);
    // Long enough to be generating when the file is cut (it is cut as soon as it is mapped).
    let child = Command::new(env!("CARGO_BIN_EXE_cinder"))
        .args([
            "bench",
            "-m",
            path.to_str().unwrap(),
            "-p",
            "0",
            "-n",
            "50000",
            "-r",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cinder");
    let maps = format!("/proc/{}/maps", child.id());
    let start = Instant::now();
    let needle = path.to_str().unwrap().to_string();
    while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(&needle)) {
        assert!(start.elapsed() < Duration::from_secs(60), "never mapped");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(135), "{err}");
    assert!(
        err.contains(&format!(
            "{needle} changed on disk while cinder was reading it"
        )),
        "{err}"
    );
}
