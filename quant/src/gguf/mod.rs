//! GGUF container: a bounded reader over `&[u8]` and a streaming writer.
//!
//! Layout (little-endian): magic `GGUF`, u32 version (2 or 3), u64 tensor count, u64 metadata
//! count, metadata key/value pairs, tensor infos (name, n_dims, dims innermost first, ggml
//! type, offset), zero padding to `general.alignment` (default 32), then the data section where
//! each tensor's offset (relative to the section) is aligned.
//!
//! - [`Gguf`] parses and validates a whole file without copying tensor data.
//! - [`GgufWriter`] writes a version 3 file to any `io::Write`.
//! - [`keys`] names the metadata keys Llama 2 files use.

pub mod keys;
mod read;
mod value;
mod write;

pub use read::{
    Cursor, DEFAULT_ALIGNMENT, GGUF_MAGIC, Gguf, MAX_DIMS, MAX_TENSOR_NAME, TensorInfo,
};
pub use value::{Array, MAX_ARRAY_DEPTH, Value, ValueType};
pub use write::{GgufWriter, WRITE_VERSION};

#[cfg(test)]
mod tests;
