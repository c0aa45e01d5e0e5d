//! Read-only memory maps of model files.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// A file mapped read-only into memory; GGUF tensors are borrowed from it, never copied.
pub struct MappedFile {
    path: PathBuf,
    map: Mmap,
}

impl MappedFile {
    /// Map `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)?;
        // SAFETY: the map is read-only and private to this process. The one way it could be
        // invalidated is another process truncating or rewriting the file while it is mapped;
        // model files are not modified in place by cinder, and llama.cpp accepts the same
        // contract for the same files.
        let map = unsafe { Mmap::map(&file)? };
        Ok(Self { path, map })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
