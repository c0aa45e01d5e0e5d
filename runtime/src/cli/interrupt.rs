//! What `convert` and `quantize` do when interrupted: SIGINT or SIGTERM removes the partial
//! output file and exits with 130 or 143 (128 + the signal, as shells report it) after one
//! line on stderr; SIGXFSZ (a file-size limit reached) is caught so that the write fails with
//! an error, which removes the partial file, instead of killing the process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM, SIGXFSZ};
use signal_hook::iterator::{Handle, Signals};

/// Watches for SIGINT and SIGTERM while an output file is written; dropping it stops watching.
pub struct RemoveOnSignal {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl RemoveOnSignal {
    /// Until dropped, SIGINT and SIGTERM remove `partial` (the file being written for
    /// `output`) and exit.
    pub fn new(partial: PathBuf, output: &Path) -> Result<Self> {
        // A flag nobody reads: the handler turns SIGXFSZ's default (terminate) into a failed
        // write (EFBIG), which the writer reports and cleans up after.
        signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))
            .context("installing the SIGXFSZ handler")?;
        let mut signals =
            Signals::new([SIGINT, SIGTERM]).context("installing the SIGINT/SIGTERM handler")?;
        let handle = signals.handle();
        let output = output.display().to_string();
        let thread = std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = std::fs::remove_file(&partial);
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                eprintln!(
                    "cinder: interrupted ({name}): {output} not written, partial file removed"
                );
                std::process::exit(128 + sig);
            }
        });
        Ok(RemoveOnSignal {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for RemoveOnSignal {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
