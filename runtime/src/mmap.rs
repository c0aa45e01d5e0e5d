//! Read-only memory maps of model files.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// A file mapped read-only into memory; GGUF tensors are borrowed from it, never copied.
pub struct MappedFile {
    path: PathBuf,
    map: Mmap,
    /// Bytes of `map` that belong to the file (an empty file's anonymous map holds one).
    len: usize,
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
        let len = map.len();
        Ok(Self { path, map, len })
    }

    /// A private anonymous map holding a copy of `bytes`, named `path` in errors: for tests
    /// and fuzzing, which hand the loader bytes rather than a file.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> std::io::Result<Self> {
        // An anonymous map cannot be empty: map one byte and keep an empty view of it.
        let mut map = memmap2::MmapMut::map_anon(bytes.len().max(1))?;
        map[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            path: path.as_ref().to_path_buf(),
            map: map.make_read_only()?,
            len: bytes.len(),
        })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map[..self.len]
    }

    /// Ask the OS to read `range` ahead (before a pass over it, like repacking a tensor), so a
    /// cold file is read in large sequential requests rather than page fault by page fault.
    /// Best effort: a failure (or a non-Unix OS) changes nothing.
    pub fn will_need(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if range.start < range.end && range.end <= self.map.len() {
            let _ = self
                .map
                .advise_range(memmap2::Advice::WillNeed, range.start, range.len());
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// Tell the OS this process no longer needs the pages of `range` (tensors whose data was
    /// copied elsewhere, e.g. repacked at load), so they stop counting in its resident memory.
    /// The bytes stay readable: a later access reads them from the file again. Best effort:
    /// a failure (or a non-Unix OS) changes nothing.
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        {
            let page = 4096;
            let (start, end) = (range.start.next_multiple_of(page), range.end / page * page);
            if start < end && end <= self.map.len() {
                // SAFETY: the map is a private read-only mapping of an unmodified file (see
                // `open`), so MADV_DONTNEED only drops page-table entries: the next access
                // faults the same bytes back in from the file. No reference sees different
                // data, and the range lies inside the map (checked).
                let _ = unsafe {
                    self.map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
