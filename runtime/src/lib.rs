//! cinder: Llama 2 inference from GGUF files.

pub mod mmap;
pub mod tokenizer;
