//! The one error type of cinder-quant.

use crate::dtype::GgmlType;

/// Everything that can go wrong in cinder-quant.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A type has no reference quantizer/dequantizer in cinder.
    #[error("no reference {op} for type {ty}")]
    NoReference {
        /// "quantizer" or "dequantizer".
        op: &'static str,
        /// The type asked for.
        ty: GgmlType,
    },
    /// Input and output lengths of a row conversion do not agree.
    #[error("{ty}: {values} values do not fit {bytes} bytes (block of {block} values, {size} bytes)")]
    RowLength {
        /// The type converted.
        ty: GgmlType,
        /// Number of f32 values.
        values: usize,
        /// Number of bytes.
        bytes: usize,
        /// Values per block.
        block: usize,
        /// Bytes per block.
        size: usize,
    },
    // GGUF_ERRORS: the gguf module's variants go below this line.
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
