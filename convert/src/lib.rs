//! cinder-convert: Hugging Face Llama checkpoints to GGUF.
//!
//! [`convert()`] reads a checkpoint folder ([`hf`]), maps tensor names ([`names`]), undoes the
//! rotate-half row order of Q and K ([`permute`]), chooses each tensor's type as llama-quantize
//! would ([`plan`]), turns `tokenizer.model` into `tokenizer.ggml.*` ([`vocab`]) and streams a
//! GGUF file, tensor by tensor, through quant's reference quantizers (same bytes on every CPU).

pub mod convert;
pub mod error;
pub mod hf;
pub mod names;
pub mod permute;
pub mod plan;
pub mod requantize;
pub mod vocab;

pub use convert::{Options, Progress, Summary, convert};
pub use error::{Error, Result};
pub use plan::{FileType, Overrides};
pub use requantize::{QuantizeOptions, quantize_gguf};
pub use vocab::Vocab;
