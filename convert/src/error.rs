//! The one error type of cinder-convert.
//!
//! Every variant names the file it is about, so a failed conversion says where to look. A
//! variant that wraps another error returns it as `source()` and does not repeat it in its
//! message: print the chain (anyhow's `{:#}`) to see every cause once.

use std::path::PathBuf;

/// Everything that can go wrong in cinder-convert.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A SentencePiece `tokenizer.model` is not a well-formed `ModelProto`.
    #[error("{}: malformed SentencePiece model at byte {offset}: {reason}", path.display())]
    MalformedTokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// Byte offset in the file where the problem was found.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A well-formed tokenizer that cinder cannot convert faithfully.
    #[error("{}: unsupported tokenizer: {reason}", path.display())]
    UnsupportedTokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// Why it is not supported.
        reason: String,
    },
    /// `config.json` (or `tokenizer_config.json`) is missing a key, has a bad value, or
    /// describes a model cinder does not convert.
    #[error("{}: {reason}", path.display())]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `model.safetensors.index.json` is malformed or disagrees with the shards.
    #[error("{}: {reason}", path.display())]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The folder has neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("{}: no model.safetensors or model.safetensors.index.json", dir.display())]
    MissingWeights {
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// A shard named by the index does not exist.
    #[error("{}: shard listed in {} is missing", path.display(), index.display())]
    MissingShard {
        /// The missing shard.
        path: PathBuf,
        /// The index that names it.
        index: PathBuf,
    },
    /// A safetensors file is truncated, corrupt, or holds a dtype cinder cannot read.
    #[error("{}: bad safetensors file: {reason}", path.display())]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("{}: missing tensor {name}", path.display())]
    MissingTensor {
        /// The tensor.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A tensor that is not part of a Llama model (or a layer beyond `num_hidden_layers`).
    #[error("{}: unexpected tensor {name} (not part of a Llama model with this config)", path.display())]
    UnexpectedTensor {
        /// The tensor.
        name: String,
        /// The file that holds it.
        path: PathBuf,
    },
    /// A tensor's shape contradicts `config.json`.
    #[error("{}: tensor {name} has shape {found:?}, config.json implies {expected:?}", path.display())]
    ShapeMismatch {
        /// The tensor.
        name: String,
        /// The file that holds it.
        path: PathBuf,
        /// Its shape.
        found: Vec<usize>,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// A weight is NaN or infinite (allowed with `--allow-nonfinite`).
    #[error("{}: {detail} (use --allow-nonfinite to convert anyway)", path.display())]
    NonFinite {
        /// The file that holds it.
        path: PathBuf,
        /// Which tensor and where.
        detail: String,
    },
    /// The output file exists and `--force` was not given.
    #[error("{}: already exists (use --force to replace it)", path.display())]
    OutputExists {
        /// The output file.
        path: PathBuf,
    },
    /// A requested type cannot store a tensor (row length not a multiple of its block).
    #[error("tensor {name}: type {ty} cannot store rows of {row} values")]
    IncompatibleType {
        /// The tensor (GGUF name).
        name: String,
        /// The type asked for.
        ty: cinder_quant::GgmlType,
        /// Its row length.
        row: u64,
    },
    /// Writing or reading GGUF failed.
    #[error("{}", path.display())]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What went wrong.
        source: cinder_quant::Error,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
