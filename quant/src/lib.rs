//! cinder-quant: the bytes on disk.
//!
//! - [`dtype`]: ggml tensor types (ids, block size, bytes per block, bytes per row).
//! - [`block`]: `#[repr(C)]` block layouts, size-checked at compile time against ggml's.
//! - [`reference`]: scalar reference quantizers and dequantizers, bit-exact with ggml's
//!   `quantize_row_*_ref` / `dequantize_row_*`. These are the oracles every SIMD kernel is
//!   tested against.
//! - [`gguf`]: the GGUF container, a bounded reader over `&[u8]` and a streaming writer.
//!
//! No SIMD, no threads, no mmap here.

pub mod block;
pub mod dtype;
pub mod error;
pub mod fixtures;
pub mod gguf;
pub mod reference;

pub use dtype::GgmlType;
pub use error::{Error, Result};
