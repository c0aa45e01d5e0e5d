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
    /// The SIGBUS table slot naming this map's file (see [`sigbus`]).
    sigbus_slot: Option<usize>,
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
        let sigbus_slot = sigbus::register(map.as_ptr() as usize, len, &path);
        Ok(Self {
            path,
            map,
            len,
            sigbus_slot,
        })
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
            // Memory, not a file: nothing can truncate it.
            sigbus_slot: None,
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

impl Drop for MappedFile {
    fn drop(&mut self) {
        if let Some(slot) = self.sigbus_slot {
            sigbus::unregister(slot);
        }
    }
}

/// A file truncated (or rewritten shorter) while it is mapped makes the next read of a page
/// past its new end raise SIGBUS, which would kill cinder with nothing but "Bus error". The
/// handler installed here looks the faulting address up among the mapped model files and
/// prints which file changed before exiting with 135 (128 + SIGBUS), the status the default
/// action gives. A fault outside every registered map restores the default action and returns,
/// so the access faults again and ends the process as before.
#[cfg(unix)]
pub mod sigbus {
    use std::path::Path;
    use std::sync::Once;
    use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

    /// Most files mapped at once that the handler can name (more are mapped all the same).
    const SLOTS: usize = 64;
    const FREE: u8 = 0;
    const FILLING: u8 = 1;
    const LIVE: u8 = 2;

    struct Slot {
        state: AtomicU8,
        start: AtomicUsize,
        end: AtomicUsize,
        msg: AtomicPtr<u8>,
        msg_len: AtomicUsize,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        state: AtomicU8::new(FREE),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        msg: AtomicPtr::new(std::ptr::null_mut()),
        msg_len: AtomicUsize::new(0),
    };

    /// The maps the handler knows: read with atomics only, so the handler may read them.
    static MAPS: [Slot; SLOTS] = [EMPTY; SLOTS];
    static INSTALL: Once = Once::new();

    /// Exit status after a SIGBUS on a model file (what the default action reports).
    pub const EXIT_STATUS: i32 = 128 + libc::SIGBUS;

    /// Name the `len` bytes mapped at `start` as the file `path` for the SIGBUS handler
    /// (installed on first use); the slot to unregister, or `None` when all are taken.
    pub fn register(start: usize, len: usize, path: &Path) -> Option<usize> {
        INSTALL.call_once(install);
        let (i, slot) = MAPS.iter().enumerate().find(|(_, s)| {
            s.state
                .compare_exchange(FREE, FILLING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        // Leaked: the handler may read it at any moment, and it is a line per file mapped.
        let msg: &'static mut [u8] = Box::leak(
            format!(
                "cinder: {} changed on disk while cinder was reading it (truncated or rewritten under its memory map); stopping\n",
                path.display()
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        slot.msg_len.store(msg.len(), Ordering::Relaxed);
        slot.msg.store(msg.as_mut_ptr(), Ordering::Relaxed);
        slot.start.store(start, Ordering::Relaxed);
        slot.end.store(start.saturating_add(len), Ordering::Relaxed);
        slot.state.store(LIVE, Ordering::Release);
        Some(i)
    }

    /// Forget slot `i` (its map is about to be unmapped).
    pub fn unregister(i: usize) {
        MAPS[i].state.store(FREE, Ordering::Release);
    }

    fn install() {
        // SAFETY: a zeroed `sigaction` is a valid value (no flags, empty mask), filled in
        // below before use; `on_sigbus` has the three-argument signature SA_SIGINFO requires
        // and only calls async-signal-safe functions (atomic loads, write, _exit, signal).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            // A failure leaves the default action: the process still stops on SIGBUS.
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
        }
    }

    extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t, whose si_addr is the
        // faulting address for SIGBUS.
        let addr = unsafe { (*info).si_addr() } as usize;
        for s in &MAPS {
            if s.state.load(Ordering::Acquire) == LIVE
                && (s.start.load(Ordering::Relaxed)..s.end.load(Ordering::Relaxed)).contains(&addr)
            {
                let msg = s.msg.load(Ordering::Relaxed);
                let len = s.msg_len.load(Ordering::Relaxed);
                // SAFETY: `msg` points to `len` leaked bytes that live forever (stored before
                // the slot became LIVE); write(2) and _exit(2) are async-signal-safe.
                unsafe {
                    libc::write(2, msg.cast::<libc::c_void>(), len);
                    libc::_exit(EXIT_STATUS);
                }
            }
        }
        // SAFETY: signal(2) is async-signal-safe; the default action ends the process when the
        // access faults again on return.
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
    }
}

/// Without Unix signals there is nothing to install.
#[cfg(not(unix))]
pub mod sigbus {
    use std::path::Path;

    /// Does nothing here.
    pub fn register(_: usize, _: usize, _: &Path) -> Option<usize> {
        None
    }

    /// Does nothing here.
    pub fn unregister(_: usize) {}
}
