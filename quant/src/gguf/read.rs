//! GGUF reader: a bounded cursor over `&[u8]` and the parsed [`Gguf`] view.
//!
//! Every declared count and length is checked against the bytes left *before* anything is
//! allocated, sizes and offsets use checked arithmetic, and tensor data is only ever borrowed.

use std::collections::HashMap;

use super::value::{Array, MAX_ARRAY_DEPTH, Value, ValueType};
use crate::dtype::GgmlType;
use crate::error::{Error, Result};

/// The four magic bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// Longest tensor name in bytes (ggml's `GGML_MAX_NAME` is 64 including the NUL).
pub const MAX_TENSOR_NAME: usize = 63;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Smallest on-disk size of one metadata key/value pair: key length, one key byte is not
/// required (empty keys parse), value type, smallest value.
const MIN_KV_SIZE: usize = 8 + 4 + 1;
/// Smallest on-disk size of one tensor info: name length, n_dims, one dimension, type, offset.
const MIN_TENSOR_INFO_SIZE: usize = 8 + 4 + 8 + 4 + 8;

/// A forward-only reader over a byte slice that never reads past its end.
#[derive(Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("len", &self.bytes.len())
            .field("pos", &self.pos)
            .finish()
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Current file offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current offset.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes; `what` names the field in the error.
    pub fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(Error::GgufTruncated {
                offset: self.pos as u64,
                what: what(),
                need: n as u64,
                remaining: remaining as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// A little-endian u32.
    pub fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A little-endian u64.
    pub fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A declared count of items of at least `min_size` bytes each, checked against the bytes
    /// left so that the caller may allocate `count` items.
    pub fn count(&mut self, min_size: usize, what: impl Fn() -> String) -> Result<usize> {
        let offset = self.pos as u64;
        let len = self.u64(&what)?;
        let remaining = self.remaining();
        let fits = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(min_size))
            .is_some_and(|bytes| bytes <= remaining);
        if !fits {
            return Err(Error::GgufLengthTooLarge {
                offset,
                what: what(),
                len,
                min_size: min_size as u64,
                remaining: remaining as u64,
            });
        }
        // `len * min_size <= remaining <= usize::MAX`, so `len` fits usize.
        Ok(len as usize)
    }

    /// A GGUF string (u64 length, UTF-8 bytes) borrowed from the input.
    pub fn str(&mut self, what: impl Fn() -> String) -> Result<&'a str> {
        let n = self.count(1, &what)?;
        let offset = self.pos as u64;
        let bytes = self.take(n, &what)?;
        std::str::from_utf8(bytes).map_err(|_| Error::GgufInvalidUtf8 {
            offset,
            what: what(),
        })
    }

    /// `n` fixed-size little-endian scalars decoded with `f`.
    fn scalars<T, const N: usize>(
        &mut self,
        n: usize,
        what: impl FnOnce() -> String,
        f: fn([u8; N]) -> T,
    ) -> Result<Vec<T>> {
        let total = n.saturating_mul(N);
        let bytes = self.take(total, what)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }

    fn bool(&mut self, key: &str) -> Result<bool> {
        let offset = self.pos as u64;
        let [b] = self.array::<1>(|| format!("bool value of key '{key}'"))?;
        match b {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(Error::GgufInvalidBool {
                offset,
                key: key.to_string(),
                byte,
            }),
        }
    }

    fn value_type(&mut self, key: &str) -> Result<ValueType> {
        let offset = self.pos as u64;
        let id = self.u32(|| format!("value type of key '{key}'"))?;
        ValueType::from_id(id).ok_or_else(|| Error::GgufUnknownValueType {
            offset,
            key: key.to_string(),
            id,
        })
    }

    /// One metadata value of type `ty` belonging to `key`.
    fn value(&mut self, key: &str, ty: ValueType) -> Result<Value> {
        let what = || format!("value of key '{key}'");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => Value::Bool(self.bool(key)?),
            ValueType::String => Value::Str(self.str(what)?.to_string()),
            ValueType::Array => Value::Array(self.array_value(key, 1)?),
        })
    }

    /// An array (element type, count, elements) at nesting depth `depth` (1 = outermost).
    fn array_value(&mut self, key: &str, depth: usize) -> Result<Array> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(Error::GgufNestingTooDeep {
                offset: self.pos as u64,
                key: key.to_string(),
                max: MAX_ARRAY_DEPTH,
            });
        }
        let ty = self.value_type(key)?;
        let n = self.count(ty.min_size(), || format!("array length of key '{key}'"))?;
        let what = || format!("array elements of key '{key}'");
        Ok(match ty {
            ValueType::U8 => Array::U8(self.take(n, what)?.to_vec()),
            ValueType::I8 => Array::I8(self.scalars(n, what, i8::from_le_bytes)?),
            ValueType::U16 => Array::U16(self.scalars(n, what, u16::from_le_bytes)?),
            ValueType::I16 => Array::I16(self.scalars(n, what, i16::from_le_bytes)?),
            ValueType::U32 => Array::U32(self.scalars(n, what, u32::from_le_bytes)?),
            ValueType::I32 => Array::I32(self.scalars(n, what, i32::from_le_bytes)?),
            ValueType::F32 => Array::F32(self.scalars(n, what, f32::from_le_bytes)?),
            ValueType::U64 => Array::U64(self.scalars(n, what, u64::from_le_bytes)?),
            ValueType::I64 => Array::I64(self.scalars(n, what, i64::from_le_bytes)?),
            ValueType::F64 => Array::F64(self.scalars(n, what, f64::from_le_bytes)?),
            ValueType::Bool => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool(key)?);
                }
                Array::Bool(v)
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.str(what)?.to_string());
                }
                Array::Str(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array_value(key, depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

/// One tensor's description from the GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    offset: u64,
    size: u64,
    info_offset: u64,
}

impl TensorInfo {
    /// Tensor name (UTF-8, fewer than 64 bytes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions, innermost (contiguous, `ne[0]`) first; 1 to 4 of them.
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// Element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Offset of the data relative to the start of the data section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Byte size of the data.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        // Checked during parsing: the product fits i64.
        self.dims.iter().product()
    }

    /// File offset where this tensor's info record starts (for error messages).
    pub fn info_offset(&self) -> u64 {
        self.info_offset
    }
}

/// A parsed GGUF file borrowing its bytes: metadata in file order and tensor views.
#[derive(Clone)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    alignment: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_offset: usize,
}

impl std::fmt::Debug for Gguf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the bytes: they may be gigabytes of weights.
        f.debug_struct("Gguf")
            .field("len", &self.bytes.len())
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl<'a> Gguf<'a> {
    /// Parse and validate a whole GGUF file held in `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut c = Cursor::new(bytes);
        let magic = bytes.get(..4).unwrap_or(bytes);
        if magic != GGUF_MAGIC {
            return Err(Error::GgufBadMagic {
                found: magic.to_vec(),
            });
        }
        c.take(4, || "magic".into())?;
        let version = c.u32(|| "version".into())?;
        if version != 0 && version & 0xFFFF == 0 {
            return Err(Error::GgufBigEndian { raw: version });
        }
        if version != 2 && version != 3 {
            return Err(Error::GgufUnsupportedVersion { version });
        }
        let n_tensors = c.count(MIN_TENSOR_INFO_SIZE, || "tensor count".into())?;
        let n_kv = c.count(MIN_KV_SIZE, || "metadata key/value count".into())?;

        // Metadata, in file order.
        let mut metadata = Vec::with_capacity(n_kv);
        let mut key_index = HashMap::with_capacity(n_kv);
        let mut alignment = DEFAULT_ALIGNMENT;
        for i in 0..n_kv {
            let kv_offset = c.offset() as u64;
            let key = c.str(|| format!("key #{i}"))?;
            if key_index.contains_key(key) {
                return Err(Error::GgufDuplicateKey {
                    offset: kv_offset,
                    key: key.to_string(),
                });
            }
            let ty = c.value_type(key)?;
            let value = c.value(key, ty)?;
            if key == super::keys::GENERAL_ALIGNMENT {
                alignment = match value {
                    Value::U32(a) if a != 0 && a.is_power_of_two() => a,
                    Value::U32(a) => {
                        return Err(Error::GgufBadAlignment {
                            offset: kv_offset,
                            alignment: a,
                        });
                    }
                    ref other => {
                        return Err(Error::GgufAlignmentType {
                            offset: kv_offset,
                            found: other.type_description(),
                        });
                    }
                };
            }
            key_index.insert(key.to_string(), metadata.len());
            metadata.push((key.to_string(), value));
        }

        // Tensor infos.
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let info = read_tensor_info(&mut c, i)?;
            if tensor_index.contains_key(&info.name) {
                return Err(Error::GgufDuplicateTensor {
                    offset: info.info_offset,
                    name: info.name,
                });
            }
            tensor_index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }

        // Data section: header end rounded up to the alignment.
        let header_end = c.offset();
        let align = alignment as usize;
        let data_offset = header_end
            .checked_next_multiple_of(align)
            .unwrap_or(usize::MAX);
        let data_len = bytes.len().saturating_sub(data_offset) as u64;
        for t in &tensors {
            if t.offset % alignment as u64 != 0 {
                return Err(Error::GgufMisalignedTensor {
                    offset: t.info_offset,
                    tensor: t.name.clone(),
                    data_offset: t.offset,
                    alignment: alignment as u64,
                });
            }
            // The data section itself may start past the end (missing padding): then even an
            // empty tensor is out of bounds.
            let fits = data_offset <= bytes.len()
                && t.offset
                    .checked_add(t.size)
                    .is_some_and(|end| end <= data_len);
            if !fits {
                return Err(Error::GgufTensorOutOfBounds {
                    offset: t.info_offset,
                    tensor: t.name.clone(),
                    data_offset: t.offset,
                    size: t.size,
                    data_len,
                });
            }
        }
        // No two non-empty tensors may share a byte (empty tensors cannot overlap anything).
        let mut order: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
        order.sort_by_key(|t| (t.offset, t.info_offset));
        for pair in order.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // In bounds, so `a.offset + a.size` does not overflow.
            if b.offset < a.offset + a.size {
                let (first, second) = if a.info_offset < b.info_offset {
                    (a, b)
                } else {
                    (b, a)
                };
                return Err(Error::GgufTensorOverlap {
                    offset: second.info_offset,
                    tensor: second.name.clone(),
                    other: first.name.clone(),
                });
            }
        }

        Ok(Gguf {
            bytes,
            version,
            alignment,
            metadata,
            key_index,
            tensors,
            tensor_index,
            data_offset,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment in bytes (`general.alignment`, or 32).
    pub fn alignment(&self) -> u32 {
        self.alignment
    }

    /// File offset where the data section starts.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The data of a tensor of this file, borrowed from the input bytes.
    ///
    /// Panics if `info` does not describe data inside this file (an info of another file).
    pub fn tensor_data(&self, info: &TensorInfo) -> &'a [u8] {
        let range = usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(self.data_offset))
            .and_then(|start| Some(start..start.checked_add(usize::try_from(info.size).ok()?)?));
        match range.and_then(|r| self.bytes.get(r)) {
            Some(data) => data,
            None => panic!("tensor '{}' does not lie inside this GGUF file", info.name),
        }
    }

    /// The data of the tensor named `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&'a [u8]> {
        let info = self.tensor(name).ok_or_else(|| Error::GgufMissingTensor {
            name: name.to_string(),
        })?;
        Ok(self.tensor_data(info))
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::GgufMissingKey {
            key: key.to_string(),
        })
    }

    fn wrong(key: &str, expected: &'static str, found: &Value) -> Error {
        Error::GgufWrongType {
            key: key.to_string(),
            expected,
            found: found.type_description(),
        }
    }
}

macro_rules! scalar_getters {
    ($( $(#[$doc:meta])* $fn:ident -> $t:ty, $variant:ident, $name:literal; )*) => {
        impl<'a> Gguf<'a> {
            $(
                $(#[$doc])*
                pub fn $fn(&self, key: &str) -> Result<$t> {
                    match self.require(key)? {
                        Value::$variant(v) => Ok(*v),
                        other => Err(Self::wrong(key, $name, other)),
                    }
                }
            )*
        }
    };
}

scalar_getters! {
    /// `key` as a u32 (the stored type must be u32).
    get_u32 -> u32, U32, "u32";
    /// `key` as an i32 (the stored type must be i32).
    get_i32 -> i32, I32, "i32";
    /// `key` as a u64 (the stored type must be u64).
    get_u64 -> u64, U64, "u64";
    /// `key` as an f32 (the stored type must be f32).
    get_f32 -> f32, F32, "f32";
    /// `key` as a bool (the stored type must be bool).
    get_bool -> bool, Bool, "bool";
}

macro_rules! array_getters {
    ($( $(#[$doc:meta])* $fn:ident -> $t:ty, $variant:ident, $name:literal; )*) => {
        impl<'a> Gguf<'a> {
            $(
                $(#[$doc])*
                pub fn $fn(&self, key: &str) -> Result<&[$t]> {
                    match self.require(key)? {
                        Value::Array(Array::$variant(v)) => Ok(v),
                        other => Err(Self::wrong(key, $name, other)),
                    }
                }
            )*
        }
    };
}

array_getters! {
    /// `key` as an array of strings.
    get_str_array -> String, Str, "array of string";
    /// `key` as an array of f32.
    get_f32_array -> f32, F32, "array of f32";
    /// `key` as an array of i32.
    get_i32_array -> i32, I32, "array of i32";
    /// `key` as an array of u32.
    get_u32_array -> u32, U32, "array of u32";
}

impl<'a> Gguf<'a> {
    /// `key` as a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            Value::Str(s) => Ok(s),
            other => Err(Self::wrong(key, "string", other)),
        }
    }

    /// `key` as an array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&Array> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            other => Err(Self::wrong(key, "array", other)),
        }
    }
}

/// One tensor info record (`i` is its index, for error messages).
fn read_tensor_info(c: &mut Cursor<'_>, i: usize) -> Result<TensorInfo> {
    let info_offset = c.offset() as u64;
    let name = c.str(|| format!("name of tensor #{i}"))?;
    if name.len() > MAX_TENSOR_NAME {
        return Err(Error::GgufTensorNameTooLong {
            offset: info_offset,
            name: name.to_string(),
            len: name.len(),
        });
    }
    let dims_offset = c.offset() as u64;
    let n_dims = c.u32(|| format!("dimension count of tensor '{name}'"))?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(Error::GgufBadDimCount {
            offset: dims_offset,
            tensor: name.to_string(),
            n_dims: n_dims.into(),
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for index in 0..n_dims as usize {
        let offset = c.offset() as u64;
        let dim = c.u64(|| format!("dimension {index} of tensor '{name}'"))?;
        if dim > i64::MAX as u64 {
            return Err(Error::GgufBadDim {
                offset,
                tensor: name.to_string(),
                index,
                dim,
            });
        }
        dims.push(dim);
    }
    let type_offset = c.offset() as u64;
    let type_id = c.u32(|| format!("type of tensor '{name}'"))?;
    let ty = GgmlType::from_id(type_id).ok_or_else(|| Error::GgufUnknownTensorType {
        offset: type_offset,
        tensor: name.to_string(),
        id: type_id,
    })?;
    let size = tensor_size(name, &dims, ty, info_offset)?;
    let offset = c.u64(|| format!("data offset of tensor '{name}'"))?;
    Ok(TensorInfo {
        name: name.to_string(),
        dims,
        ty,
        offset,
        size,
        info_offset,
    })
}

/// Byte size of a tensor, with ggml's checks: the innermost dimension is a whole number of
/// blocks and the element count fits `i64`. `offset` is for error messages.
pub(crate) fn tensor_size(name: &str, dims: &[u64], ty: GgmlType, offset: u64) -> Result<u64> {
    let ne0 = dims.first().copied().unwrap_or(1);
    let block = ty.block_size();
    if ne0 % block as u64 != 0 {
        return Err(Error::GgufNotBlockMultiple {
            offset,
            tensor: name.to_string(),
            ty,
            ne0,
            block,
        });
    }
    let too_large = || Error::GgufTensorTooLarge {
        offset,
        tensor: name.to_string(),
        dims: dims.to_vec(),
        ty,
    };
    let n = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(too_large)?;
    ty.bytes_for(n).ok_or_else(too_large)
}
