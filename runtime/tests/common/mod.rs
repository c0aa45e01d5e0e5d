//! Helpers shared by the CLI tests: temp folders, running the `cinder` binary, python3 checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh empty folder under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("cinder-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the `cinder` binary built for this test run.
pub fn cinder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cinder"))
        .args(args)
        .output()
        .expect("run cinder")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fixture checkpoint folder.
pub fn model_dir(name: &str) -> PathBuf {
    cinder_quant::fixtures::path(&format!("models/{name}"))
}

/// `cinder convert DIR -o OUT --type T --quiet`, asserting success.
pub fn convert(model: &str, ty: &str, out: &Path) {
    let o = cinder(&[
        "convert",
        model_dir(model).to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        ty,
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "convert {model} {ty} failed: {}",
        stderr(&o)
    );
}

/// python3 with llama.cpp's `gguf` package: a test that needs it fails (never skips) without it.
pub fn python_with_gguf() -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", "import gguf, numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with the gguf package is required: pip install gguf==0.19.0 numpy"
    );
    "python3"
}

/// quant's python helpers (gguf_dump.py...).
pub fn py_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../quant/tests/py")
        .join(name)
}
pub mod server;
