//! The one error type of the cinder library (the binary wraps it in `anyhow`).
//!
//! A variant that wraps another error (an `io::Error`, the GGUF reader's) returns it as
//! `source()` and does not repeat it in its message: the binary prints the chain (`{:#}`), so
//! every cause shows once.

use std::path::PathBuf;

use cinder_quant::GgmlType;

/// Everything that can go wrong loading a model or running it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be opened or mapped.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed GGUF file.
    #[error("{}", path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What the GGUF reader found.
        #[source]
        source: cinder_quant::Error,
    },
    /// `general.architecture` is not one cinder runs ([`crate::config::ARCHITECTURES`]).
    #[error(
        "{}: general.architecture is {found:?}, which cinder cannot run: cinder runs the {} architecture (Llama 2 family models)",
        path.display(),
        crate::config::architectures()
    )]
    Architecture {
        /// The file.
        path: PathBuf,
        /// The architecture the file names.
        found: String,
    },
    /// A metadata key is missing, has the wrong type or an impossible value.
    #[error("{}: metadata key {key}: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the model needs is absent.
    #[error("{}: missing tensor {name}", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor's shape does not match the configuration.
    #[error("{}: tensor {name} has shape {found:?}, expected {expected:?} (innermost first)", path.display())]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Shape in the file.
        found: Vec<u64>,
        /// Shape the configuration implies.
        expected: Vec<u64>,
    },
    /// A tensor's type cannot be used where it is.
    #[error("{}: tensor {name} has type {ty}, which cinder cannot use here ({reason})", path.display())]
    TensorType {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Its type.
        ty: GgmlType,
        /// Which types are accepted.
        reason: &'static str,
    },
    /// A tensor's data is not aligned for its element type.
    #[error("{}: tensor {name} data is not aligned for type {ty}", path.display())]
    TensorAlignment {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Its type.
        ty: GgmlType,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// The tokens do not fit the session's context.
    #[error("context full: {position} tokens + {new} new exceed the context size {ctx_size}")]
    ContextFull {
        /// Tokens already in the cache.
        position: usize,
        /// Tokens being added.
        new: usize,
        /// The session's context size.
        ctx_size: usize,
    },
    /// A session (or a set of sequences) does not fit in the memory available.
    #[error(
        "{} {ctx_size} tokens need{} {} of memory{}, but {} is available; the largest context {}that fits is {largest} tokens",
        if *slots == 1 { "a context of".to_string() } else { format!("{slots} sequences of") },
        if *slots == 1 { "s" } else { "" },
        crate::memory::human_bytes(*needed),
        if *other > 0 { format!(" (with {} for the repacked weights)", crate::memory::human_bytes(*other)) } else { String::new() },
        crate::memory::human_bytes(*available),
        if *slots == 1 { String::new() } else { format!("per sequence at {slots} sequences ") }
    )]
    OutOfMemory {
        /// Sequences, each with a context of `ctx_size` (1 for a session).
        slots: u64,
        /// The context asked for (of each sequence).
        ctx_size: u64,
        /// Bytes it needs: KV caches, scratch and `other`.
        needed: u64,
        /// Bytes needed besides the sequences' (the repacked weights when checked before
        /// loading).
        other: u64,
        /// Bytes available.
        available: u64,
        /// The largest context (of each sequence) that fits.
        largest: u64,
    },
    /// A session option is impossible (zero sizes, a context larger than the model's).
    #[error("invalid session option: {0}")]
    BadOption(String),
    /// Dequantizing an embedding row failed.
    #[error("tensor {name}")]
    Dequantize {
        /// The tensor name.
        name: String,
        /// What the reference dequantizer said.
        #[source]
        source: cinder_quant::Error,
    },
    /// The GGUF's tokenizer metadata cannot build a tokenizer.
    #[error("{}", path.display())]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong with the vocabulary.
        #[source]
        source: crate::tokenizer::TokenizerError,
    },
    /// A chat template cannot be parsed or rendered (a syntax error, `raise_exception`, or
    /// more work than its fuel allows).
    #[error("{action} tokenizer.chat_template")]
    ChatTemplate {
        /// "parsing" or "rendering".
        action: &'static str,
        /// What minijinja said.
        #[source]
        source: minijinja::Error,
    },
    /// Generation was asked for before any prompt token was evaluated.
    #[error("nothing to generate from: evaluate a prompt first")]
    NoPrompt,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
