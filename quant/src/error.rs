//! The one error type of cinder-quant.
//!
//! A variant that wraps another error returns it as `source()` and does not repeat it in its
//! message: print the chain (anyhow's `{:#}`) to see every cause once.

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
    #[error(
        "{ty}: {values} values do not fit {bytes} bytes (block of {block} values, {size} bytes)"
    )]
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
    /// The file does not start with the GGUF magic.
    #[error("not a GGUF file: magic {found:02x?} at offset 0, expected \"GGUF\"")]
    GgufBadMagic {
        /// The first (up to) four bytes.
        found: Vec<u8>,
    },
    /// The version is not 2 or 3.
    #[error("unsupported GGUF version {version} (at offset 4; cinder reads versions 2 and 3)")]
    GgufUnsupportedVersion {
        /// Version found.
        version: u32,
    },
    /// The version field reads byte-swapped: the file was written big-endian.
    #[error("big-endian GGUF not supported (version field at offset 4 reads {raw:#010x})")]
    GgufBigEndian {
        /// The version field as read little-endian.
        raw: u32,
    },
    /// The file ends inside a field.
    #[error("GGUF truncated at offset {offset}: {what} needs {need} bytes, {remaining} remain")]
    GgufTruncated {
        /// File offset of the field.
        offset: u64,
        /// Which field (names the key or tensor).
        what: String,
        /// Bytes needed.
        need: u64,
        /// Bytes left in the file.
        remaining: u64,
    },
    /// A count or length declares more items than the rest of the file could hold.
    #[error(
        "GGUF {what} at offset {offset} declares {len} items of at least {min_size} bytes, only {remaining} bytes remain"
    )]
    GgufLengthTooLarge {
        /// File offset of the length field.
        offset: u64,
        /// Which length (names the key or tensor).
        what: String,
        /// Declared count.
        len: u64,
        /// Smallest size of one item.
        min_size: u64,
        /// Bytes left in the file after the length field.
        remaining: u64,
    },
    /// Arrays nested deeper than [`crate::gguf::MAX_ARRAY_DEPTH`].
    #[error("GGUF key '{key}': arrays nested deeper than {max} at offset {offset}")]
    GgufNestingTooDeep {
        /// File offset of the too-deep array (0 when writing).
        offset: u64,
        /// The key.
        key: String,
        /// The limit.
        max: usize,
    },
    /// A string (key, value or tensor name) is not UTF-8.
    #[error("GGUF {what}: string at offset {offset} is not valid UTF-8")]
    GgufInvalidUtf8 {
        /// File offset of the string bytes.
        offset: u64,
        /// Which string (names the key or tensor).
        what: String,
    },
    /// A bool byte other than 0 or 1.
    #[error("GGUF key '{key}': bool at offset {offset} has byte {byte}, expected 0 or 1")]
    GgufInvalidBool {
        /// File offset of the byte.
        offset: u64,
        /// The key.
        key: String,
        /// The byte found.
        byte: u8,
    },
    /// A metadata value type id outside 0..=12.
    #[error("GGUF key '{key}': unknown value type id {id} at offset {offset}")]
    GgufUnknownValueType {
        /// File offset of the type id.
        offset: u64,
        /// The key.
        key: String,
        /// The id found.
        id: u32,
    },
    /// The same key appears twice.
    #[error("GGUF duplicate key '{key}' at offset {offset}")]
    GgufDuplicateKey {
        /// File offset of the second occurrence (0 when writing).
        offset: u64,
        /// The key.
        key: String,
    },
    /// `general.alignment` is not a u32.
    #[error("GGUF key 'general.alignment' at offset {offset} must be u32, found {found}")]
    GgufAlignmentType {
        /// File offset of the key (0 when writing).
        offset: u64,
        /// Type found.
        found: String,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error(
        "GGUF key 'general.alignment' at offset {offset}: {alignment} is not a nonzero power of two"
    )]
    GgufBadAlignment {
        /// File offset of the key (0 when writing).
        offset: u64,
        /// Value found.
        alignment: u32,
    },
    /// The same tensor name appears twice.
    #[error("GGUF duplicate tensor '{name}' at offset {offset}")]
    GgufDuplicateTensor {
        /// File offset of the second tensor info (0 when writing).
        offset: u64,
        /// Tensor name.
        name: String,
    },
    /// A tensor name of 64 bytes or more (ggml keeps names in 64 bytes including the NUL).
    #[error("GGUF tensor name '{name}' at offset {offset} is {len} bytes, at most 63 allowed")]
    GgufTensorNameTooLong {
        /// File offset of the tensor info (0 when writing).
        offset: u64,
        /// Tensor name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A tensor with no dimensions or more than four.
    #[error("GGUF tensor '{tensor}' at offset {offset} has {n_dims} dimensions, expected 1 to 4")]
    GgufBadDimCount {
        /// File offset of the dimension count (0 when writing).
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// Count found.
        n_dims: u64,
    },
    /// A dimension larger than `i64::MAX` (ggml stores dimensions as int64).
    #[error(
        "GGUF tensor '{tensor}' at offset {offset}: dimension {index} is {dim}, above i64::MAX"
    )]
    GgufBadDim {
        /// File offset of the dimension (0 when writing).
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// Which dimension (0 innermost).
        index: usize,
        /// Value found.
        dim: u64,
    },
    /// The element count or byte size of a tensor overflows.
    #[error("GGUF tensor '{tensor}' at offset {offset}: shape {dims:?} of {ty} overflows")]
    GgufTensorTooLarge {
        /// File offset of the tensor info (0 when writing).
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// Dimensions, innermost first.
        dims: Vec<u64>,
        /// Tensor type.
        ty: crate::dtype::GgmlType,
    },
    /// A tensor type id cinder does not know.
    #[error("GGUF tensor '{tensor}' at offset {offset}: unknown ggml type id {id}")]
    GgufUnknownTensorType {
        /// File offset of the type id.
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// The id found.
        id: u32,
    },
    /// The innermost dimension is not a multiple of the type's block size.
    #[error(
        "GGUF tensor '{tensor}' at offset {offset}: {ne0} values per row is not a multiple of the {ty} block size {block}"
    )]
    GgufNotBlockMultiple {
        /// File offset of the tensor info (0 when writing).
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// Tensor type.
        ty: crate::dtype::GgmlType,
        /// Innermost dimension.
        ne0: u64,
        /// Values per block.
        block: usize,
    },
    /// A tensor's data offset is not a multiple of the alignment.
    #[error(
        "GGUF tensor '{tensor}' (info at offset {offset}): data offset {data_offset} is not a multiple of the alignment {alignment}"
    )]
    GgufMisalignedTensor {
        /// File offset of the tensor info.
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// Offset relative to the data section.
        data_offset: u64,
        /// Alignment in force.
        alignment: u64,
    },
    /// A tensor's data does not lie inside the file.
    #[error(
        "GGUF tensor '{tensor}' (info at offset {offset}): {size} bytes at data offset {data_offset} end past the {data_len} bytes of the data section"
    )]
    GgufTensorOutOfBounds {
        /// File offset of the tensor info.
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// Offset relative to the data section.
        data_offset: u64,
        /// Byte size of the tensor.
        size: u64,
        /// Bytes in the data section.
        data_len: u64,
    },
    /// Two tensors' data ranges overlap.
    #[error("GGUF tensor '{tensor}' (info at offset {offset}) overlaps tensor '{other}'")]
    GgufTensorOverlap {
        /// File offset of the tensor info.
        offset: u64,
        /// Tensor name.
        tensor: String,
        /// The tensor it overlaps.
        other: String,
    },
    /// A metadata key asked for is absent.
    #[error("GGUF missing key {key}")]
    GgufMissingKey {
        /// The key.
        key: String,
    },
    /// A metadata key holds another type than the one asked for.
    #[error("GGUF key '{key}' is {found}, expected {expected}")]
    GgufWrongType {
        /// The key.
        key: String,
        /// Type asked for.
        expected: &'static str,
        /// Type found.
        found: String,
    },
    /// A tensor asked for is absent.
    #[error("GGUF missing tensor {name}")]
    GgufMissingTensor {
        /// Tensor name.
        name: String,
    },
    /// Writer calls out of order (header twice, data before header, finish with tensors left).
    #[error("GGUF writer: {0}")]
    GgufWriterState(String),
    /// Tensor data written out of info order.
    #[error("GGUF writer: tensor '{got}' written, expected '{expected}' next")]
    GgufWriteOrder {
        /// Next tensor in info order.
        expected: String,
        /// Tensor given.
        got: String,
    },
    /// Tensor data of the wrong length.
    #[error("GGUF writer: tensor '{tensor}' needs {expected} bytes, got {got}")]
    GgufWriteLength {
        /// Tensor name.
        tensor: String,
        /// Bytes its shape and type need.
        expected: u64,
        /// Bytes given.
        got: u64,
    },
    /// Writing to the output failed.
    #[error("GGUF writer: I/O error")]
    GgufIo(#[source] std::io::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
