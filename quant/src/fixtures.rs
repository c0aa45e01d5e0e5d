//! The one way tests find `../shared/fixtures`.
//!
//! The folder is `$CINDER_FIXTURES` when set, else `shared/fixtures` beside the workspace
//! checkout. A missing fixture is a test failure that names the path it looked at, never a
//! silent skip.

use std::path::{Path, PathBuf};

/// The fixtures folder (it must exist: panics with the path otherwise).
pub fn root() -> PathBuf {
    let root = match std::env::var_os("CINDER_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    };
    assert!(
        root.is_dir(),
        "test fixtures not found at {} (set CINDER_FIXTURES or put shared/ beside the checkout)",
        root.display()
    );
    root
}

/// Path of a fixture file under the fixtures folder; panics, naming the path, if it is missing.
pub fn path(rel: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(p.exists(), "test fixture missing: {}", p.display());
    p
}

/// Bytes of a fixture file; panics, naming the path, if it cannot be read.
pub fn read(rel: &str) -> Vec<u8> {
    let p = path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read test fixture {}: {e}", p.display()))
}

/// A fixture file of little-endian f32 values.
pub fn read_f32(rel: &str) -> Vec<f32> {
    let bytes = read(rel);
    assert!(
        bytes.len().is_multiple_of(4),
        "fixture {rel} is not a whole number of f32 values"
    );
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
