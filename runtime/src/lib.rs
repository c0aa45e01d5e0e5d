//! cinder: Llama 2 inference from GGUF files.

pub mod batch;
pub mod bench;
pub mod chat_format;
pub mod config;
pub mod error;
pub mod forward;
pub mod generate;
pub mod kv_cache;
pub mod matmul;
pub mod memory;
pub mod mmap;
pub mod model;
pub mod ops;
pub mod perplexity;
pub mod sampler;
pub mod tokenizer;
pub mod weights;

pub use error::{Error, Result};
pub use kv_cache::KvType;
pub use model::{LoadProgress, Model, Session, SessionOptions};
