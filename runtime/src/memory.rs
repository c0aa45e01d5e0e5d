//! Memory a session needs, counted before anything is allocated, and the memory the machine
//! has for it.
//!
//! A context size comes from the command line or the model file (`llama.context_length`), so
//! it can be anything: [`SessionMemory`] computes, with checked arithmetic, the bytes of the KV
//! cache and of the scratch buffers of [`crate::forward::State`] for a context and batch, and
//! [`SessionMemory::check`] compares them with [`available`] and refuses, naming the numbers
//! and the largest context that fits, instead of letting the allocator abort or the machine
//! swap.

use std::path::Path;

use cinder_kernels::Kernels;
use cinder_quant::gguf::Gguf;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::kv_cache::KvType;
use crate::mmap::MappedFile;
use crate::model::SessionOptions;
use crate::weights::Weights;

/// Query tokens per attention step (`forward::ATTN_TOKENS`): the attention scratch holds this
/// many score rows of the whole context per head.
const ATTN_TOKENS: u64 = 16;

/// Bytes one session of a model takes, split into the part that grows with the context and
/// the part that does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMemory {
    /// Sequences, each with its own KV cache of `ctx_size` positions (1 for a
    /// [`crate::Session`]; a server's slots for [`crate::batch::Sequences`]).
    pub slots: u64,
    /// Positions of each sequence's context.
    pub ctx_size: u64,
    /// Bytes per position of the context: the KV caches' keys and values of every layer (of
    /// every sequence), the attention score rows and the RoPE table.
    pub per_position: u64,
    /// Bytes that do not depend on the context: batch activations, matmul scratch, logits.
    pub fixed: u64,
}

impl SessionMemory {
    /// The memory of a session of `ctx_size` positions evaluating up to `max_batch` tokens at
    /// once, with a `kv_type` cache, for a model of configuration `c`. An error if the count
    /// does not fit a `u64` (a context or a dimension from the file that large cannot be
    /// allocated anyway).
    pub fn new(c: &Config, ctx_size: usize, max_batch: usize, kv_type: KvType) -> Result<Self> {
        // A session is one slot: it evaluates at most its context at once.
        Self::slots(c, 1, ctx_size, max_batch, kv_type)
    }

    /// The memory of [`crate::batch::Sequences`]: `slots` sequences of `ctx_size` positions
    /// each (a KV cache and last logits per sequence) sharing one scratch state for batches of
    /// up to `max_batch` tokens in all.
    pub fn slots(
        c: &Config,
        slots: usize,
        ctx_size: usize,
        max_batch: usize,
        kv_type: KvType,
    ) -> Result<Self> {
        let b = slots_batch(slots, ctx_size, max_batch);
        let too_large = || {
            Error::BadOption(if slots == 1 {
                format!(
                    "a context of {ctx_size} tokens is too large for this model: its size in bytes overflows"
                )
            } else {
                format!(
                    "{slots} sequences of {ctx_size} tokens are too many for this model: their size in bytes overflows"
                )
            })
        };
        let mul = |xs: &[usize]| -> Option<u64> {
            xs.iter()
                .try_fold(1u64, |acc, &x| acc.checked_mul(u64::try_from(x).ok()?))
        };
        let sum = |xs: &[Option<u64>]| -> Option<u64> {
            xs.iter().try_fold(0u64, |acc, x| acc.checked_add((*x)?))
        };
        let elem = match kv_type {
            KvType::F16 => 2,
            KvType::F32 => 4,
        };
        let kv_dim = c.n_kv_heads.checked_mul(c.head_dim).ok_or_else(too_large)?;
        // Keys and values of every layer of every sequence; ATTN_TOKENS score rows per head;
        // cos and sin of rope_dim / 2 pairs (the last two shared by the sequences).
        let per_position = sum(&[
            mul(&[slots, 2, c.n_layers, kv_dim, elem]),
            mul(&[c.n_heads, ATTN_TOKENS as usize, 4]),
            mul(&[c.rope_dim, 4]),
        ])
        .ok_or_else(too_large)?;
        let max_cols = c.dim.max(c.ffn_dim);
        let max_rows = max_cols.max(c.vocab_size);
        // f32 buffers of the state: x, xb, q, attn ([b][dim]), k, v ([b][kv_dim]), gate, up
        // ([b][ffn]), logits ([b][vocab]) and each sequence's last logits ([vocab]); the
        // matmul scratch: quantized activations (under 4 bytes per value in every format, for
        // the main and the two side scratches) and output tiles ([b][max_rows]); a sequence's
        // bookkeeping (its cache's header, position, flags: under 128 bytes).
        let fixed = sum(&[
            mul(&[4, b, c.dim, 4]),
            mul(&[2, b, kv_dim, 4]),
            mul(&[2, b, c.ffn_dim, 4]),
            b.checked_add(slots)
                .and_then(|rows| mul(&[rows, c.vocab_size, 4])),
            b.checked_add(2).and_then(|rows| mul(&[rows, max_cols, 4])),
            mul(&[b, max_rows, 4]),
            mul(&[slots, 128]),
        ])
        .ok_or_else(too_large)?;
        let ctx_size = u64::try_from(ctx_size).map_err(|_| too_large())?;
        // The total must fit too.
        per_position
            .checked_mul(ctx_size)
            .and_then(|x| x.checked_add(fixed))
            .ok_or_else(too_large)?;
        Ok(SessionMemory {
            slots: slots as u64,
            ctx_size,
            per_position,
            fixed,
        })
    }

    /// Bytes of the KV cache and scratch together.
    pub fn total(&self) -> u64 {
        self.per_position * self.ctx_size + self.fixed
    }

    /// The largest context whose session fits in `bytes` (0 if not even one position does).
    pub fn largest_context(&self, bytes: u64) -> u64 {
        bytes.saturating_sub(self.fixed) / self.per_position.max(1)
    }

    /// Err with the numbers unless this session, plus `other` bytes the caller is about to
    /// allocate as well, fits in `available` bytes (`None`: the platform does not say, and
    /// only the overflow checks of [`SessionMemory::new`] apply).
    pub fn check(&self, other: u64, available: Option<u64>) -> Result<()> {
        let Some(available) = available else {
            return Ok(());
        };
        let needed = self.total().saturating_add(other);
        if needed <= available {
            return Ok(());
        }
        Err(Error::OutOfMemory {
            slots: self.slots,
            ctx_size: self.ctx_size,
            needed,
            other,
            available,
            largest: self.largest_context(available.saturating_sub(other)),
        })
    }
}

/// The batch `slots` sequences of `ctx_size` positions can use at most, of the `max_batch`
/// asked for: one evaluation takes at most every sequence's whole context.
pub fn slots_batch(slots: usize, ctx_size: usize, max_batch: usize) -> usize {
    max_batch.min(slots.saturating_mul(ctx_size.max(1)))
}

/// Bytes of memory this process can still use without swapping: on Linux `MemAvailable` of
/// `/proc/meminfo`, lowered to the room left under the cgroup's `memory.max` when there is
/// one; `None` where the platform does not say.
pub fn available() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let mem = meminfo_available(&meminfo)?;
        let cgroup = cgroup_room(
            std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok(),
            std::fs::read_to_string("/sys/fs/cgroup/memory.current").ok(),
        );
        Some(cgroup.map_or(mem, |room| room.min(mem)))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// Bytes left under a cgroup v2 limit, from the texts of `memory.max` and `memory.current`
/// (`None` without a limit).
fn cgroup_room(max: Option<String>, current: Option<String>) -> Option<u64> {
    let max: u64 = max?.trim().parse().ok()?; // "max" (no limit) does not parse
    let current: u64 = current?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// Before loading the model at `path` with `kernels`: err unless a session with `opts` fits in
/// the memory available, counting the copies of the matrices that loading repacks. Reads only
/// the file's header and tensor table, so a context that cannot fit is refused at once rather
/// than after the seconds of loading a large model.
pub fn check_file(path: &Path, kernels: &Kernels, opts: &SessionOptions) -> Result<()> {
    check_file_slots(path, kernels, 1, opts)
}

/// [`check_file`] for `slots` sequences of `opts.ctx_size` positions each sharing batches of
/// `opts.max_batch` tokens (a server's [`crate::batch::Sequences`]).
pub fn check_file_slots(
    path: &Path,
    kernels: &Kernels,
    slots: usize,
    opts: &SessionOptions,
) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = MappedFile::open(path).map_err(io)?;
    let g = Gguf::parse(file.bytes()).map_err(|source| Error::Gguf {
        path: path.to_path_buf(),
        source,
    })?;
    let config = Config::from_gguf(&g, path)?;
    let weights = Weights::from_gguf(&g, &config, path)?;
    let repack = if kernels.prefers_strips() {
        weights.repack_bytes()
    } else {
        0
    };
    let ctx_size = if opts.ctx_size == 0 {
        config.context_length
    } else {
        opts.ctx_size
    };
    SessionMemory::slots(&config, slots, ctx_size, opts.max_batch, opts.kv_type)?
        .check(repack, available())
}

/// `bytes` for people: `1.50 GiB`, `12.0 MiB`, `512 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut x = bytes as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TinyLlama 1.1B's shape.
    fn tinyllama() -> Config {
        Config {
            dim: 2048,
            ffn_dim: 5632,
            n_layers: 22,
            n_heads: 32,
            n_kv_heads: 4,
            head_dim: 64,
            rope_dim: 64,
            rope_base: 10000.0,
            norm_eps: 1e-5,
            context_length: 2048,
            vocab_size: 32000,
        }
    }

    #[test]
    fn kv_cache_bytes_per_position_match_the_cache_layout() {
        let c = tinyllama();
        let m = SessionMemory::new(&c, 1000, 64, KvType::F16).unwrap();
        // Keys and values, 22 layers, 256 values, 2 bytes; 32 heads x 16 score rows x 4
        // bytes; 64 cos/sin values x 4 bytes.
        assert_eq!(m.per_position, 2 * 22 * 256 * 2 + 32 * 16 * 4 + 64 * 4);
        let f32 = SessionMemory::new(&c, 1000, 64, KvType::F32).unwrap();
        assert_eq!(f32.per_position - m.per_position, 2 * 22 * 256 * 2);
        assert_eq!(m.total(), 1000 * m.per_position + m.fixed);
    }

    #[test]
    fn two_billion_positions_are_refused_with_the_numbers_and_the_largest_context() {
        let c = tinyllama();
        let m = SessionMemory::new(&c, 2_000_000_000, 512, KvType::F16).unwrap();
        let available = 16 << 30;
        let err = m.check(0, Some(available)).unwrap_err();
        let Error::OutOfMemory {
            needed, largest, ..
        } = err
        else {
            panic!("{err}")
        };
        assert_eq!(needed, m.total());
        assert!(needed > 40 << 40, "{needed}");
        // The largest context fits and one more position does not.
        let at = SessionMemory::new(&c, largest as usize, 512, KvType::F16).unwrap();
        assert!(at.total() <= available);
        let over = SessionMemory::new(&c, largest as usize + 1, 512, KvType::F16).unwrap();
        assert!(over.total() > available);
        let msg = err_text(&c, 2_000_000_000, available);
        assert!(msg.contains("2000000000"), "{msg}");
        assert!(msg.contains(&largest.to_string()), "{msg}");
    }

    fn err_text(c: &Config, ctx: usize, available: u64) -> String {
        SessionMemory::new(c, ctx, 512, KvType::F16)
            .unwrap()
            .check(0, Some(available))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn slots_count_a_cache_and_logits_per_sequence_and_share_the_scratch() {
        let c = tinyllama();
        let one = SessionMemory::new(&c, 200_000, 512, KvType::F16).unwrap();
        assert_eq!(
            SessionMemory::slots(&c, 1, 200_000, 512, KvType::F16).unwrap(),
            one
        );
        let four = SessionMemory::slots(&c, 4, 200_000, 512, KvType::F16).unwrap();
        let kv = 2 * 22 * 256 * 2;
        assert_eq!(four.per_position - one.per_position, 3 * kv);
        assert_eq!(four.fixed - one.fixed, 3 * (32000 * 4 + 128));
        // Each slot has its own cache (90% of a position here), the score rows and RoPE table
        // are shared: at 4 slots the largest context per slot is between a quarter and a
        // third of one session's.
        let available = 8 << 30;
        let err = four.check(0, Some(available)).unwrap_err();
        let Error::OutOfMemory { slots, largest, .. } = &err else {
            panic!("{err}")
        };
        let (slots, largest) = (*slots, *largest);
        assert_eq!(slots, 4);
        let alone = one.largest_context(available);
        assert!(
            alone / 4 < largest && largest < alone / 3,
            "{largest} {alone}"
        );
        let fits = SessionMemory::slots(&c, 4, largest as usize, 512, KvType::F16).unwrap();
        assert!(fits.total() <= available);
        let over = SessionMemory::slots(&c, 4, largest as usize + 1, 512, KvType::F16).unwrap();
        assert!(over.total() > available);
        let msg = err.to_string();
        assert!(
            msg.starts_with("4 sequences of 200000 tokens need "),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "per sequence at 4 sequences that fits is {largest} tokens"
            )),
            "{msg}"
        );
        assert!(SessionMemory::slots(&c, usize::MAX / 2, 2, 1, KvType::F16).is_err());
    }

    #[test]
    fn a_context_that_fits_passes_and_other_allocations_count() {
        let c = tinyllama();
        let m = SessionMemory::new(&c, 2048, 512, KvType::F16).unwrap();
        assert!(m.check(0, Some(m.total())).is_ok());
        assert!(m.check(1, Some(m.total())).is_err());
        assert!(m.check(u64::MAX, None).is_ok(), "no figure: no refusal");
    }

    #[test]
    fn sizes_that_overflow_are_errors_not_panics() {
        let mut c = tinyllama();
        assert!(SessionMemory::new(&c, usize::MAX, 512, KvType::F16).is_err());
        c.n_layers = usize::MAX / 2;
        assert!(SessionMemory::new(&c, 2, 1, KvType::F16).is_err());
        c = tinyllama();
        c.vocab_size = usize::MAX / 3;
        assert!(SessionMemory::new(&c, 2, 4, KvType::F16).is_err());
    }

    #[test]
    fn meminfo_and_cgroup_texts_are_read() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23692548 kB\n";
        assert_eq!(meminfo_available(text), Some(23692548 * 1024));
        assert_eq!(meminfo_available("MemFree: 1 kB\n"), None);
        assert_eq!(
            cgroup_room(Some("1000\n".into()), Some("400\n".into())),
            Some(600)
        );
        assert_eq!(
            cgroup_room(Some("max\n".into()), Some("400\n".into())),
            None
        );
        assert_eq!(cgroup_room(None, None), None);
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(3 << 29), "1.50 GiB");
        assert_eq!(human_bytes(20 << 40), "20.00 TiB");
    }
}
