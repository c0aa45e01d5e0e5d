//! GGUF writer: collect metadata and tensor infos, then stream the header and each tensor's
//! data to any [`std::io::Write`].
//!
//! ```text
//! let mut w = GgufWriter::new();
//! w.add_string(keys::GENERAL_ARCHITECTURE, "llama")?;
//! w.add_tensor_info("output.weight", &[4096, 32000], GgmlType::Q6_K)?;
//! w.write_header(&mut out)?;                           // magic .. tensor infos, padding
//! w.write_tensor_data(&mut out, "output.weight", &bytes)?;  // in info order, padded
//! w.finish()?;                                          // every tensor written
//! ```
//!
//! The output is a deterministic function of the calls: metadata in insertion order, tensors
//! in insertion order, offsets packed at `general.alignment` (32 unless set), zero padding.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use super::keys;
use super::read::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_TENSOR_NAME, tensor_size};
use super::value::{Array, MAX_ARRAY_DEPTH, Value};
use crate::dtype::GgmlType;
use crate::error::{Error, Result};

/// GGUF version the writer produces.
pub const WRITE_VERSION: u32 = 3;

#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting metadata and tensor infos.
    Building,
    /// Header written; `next` is the index of the next tensor to write.
    Data { next: usize },
}

/// A streaming GGUF (version 3) writer. See the module docs for the call order.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashMap<String, usize>,
    alignment: u32,
    state: State,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn io(e: std::io::Error) -> Error {
    Error::GgufIo(e)
}

fn pad_len(n: u64, align: u32) -> u64 {
    let a = u64::from(align);
    (a - n % a) % a
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::Str(s) => put_str(out, s),
        Value::Array(a) => put_array(out, a),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.elem_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => le!(v),
        Array::U16(v) => le!(v),
        Array::I16(v) => le!(v),
        Array::U32(v) => le!(v),
        Array::I32(v) => le!(v),
        Array::F32(v) => le!(v),
        Array::U64(v) => le!(v),
        Array::I64(v) => le!(v),
        Array::F64(v) => le!(v),
        Array::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        Array::Str(v) => v.iter().for_each(|s| put_str(out, s)),
        Array::Array(v) => v.iter().for_each(|inner| put_array(out, inner)),
    }
}

impl GgufWriter {
    /// An empty writer (alignment 32).
    pub fn new() -> Self {
        GgufWriter {
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashMap::new(),
            alignment: DEFAULT_ALIGNMENT,
            state: State::Building,
        }
    }

    fn building(&self, what: &str) -> Result<()> {
        match self.state {
            State::Building => Ok(()),
            State::Data { .. } => Err(Error::GgufWriterState(format!(
                "{what} after the header was written"
            ))),
        }
    }

    /// Add metadata `key = value`. Keys must be unique; `general.alignment` must be a u32
    /// nonzero power of two and sets the alignment of tensor data; arrays may nest at most
    /// [`MAX_ARRAY_DEPTH`] deep.
    pub fn add(&mut self, key: &str, value: impl Into<Value>) -> Result<()> {
        self.building("metadata added")?;
        let value = value.into();
        if self.keys.contains(key) {
            return Err(Error::GgufDuplicateKey {
                offset: 0,
                key: key.to_string(),
            });
        }
        if let Value::Array(a) = &value
            && a.depth() > MAX_ARRAY_DEPTH
        {
            return Err(Error::GgufNestingTooDeep {
                offset: 0,
                key: key.to_string(),
                max: MAX_ARRAY_DEPTH,
            });
        }
        if key == keys::GENERAL_ALIGNMENT {
            self.alignment = match value {
                Value::U32(a) if a.is_power_of_two() => a,
                Value::U32(a) => {
                    return Err(Error::GgufBadAlignment {
                        offset: 0,
                        alignment: a,
                    });
                }
                ref other => {
                    return Err(Error::GgufAlignmentType {
                        offset: 0,
                        found: other.type_description(),
                    });
                }
            };
        }
        self.keys.insert(key.to_string());
        self.metadata.push((key.to_string(), value));
        Ok(())
    }

    /// Add a u8 value.
    pub fn add_u8(&mut self, key: &str, v: u8) -> Result<()> {
        self.add(key, Value::U8(v))
    }
    /// Add an i8 value.
    pub fn add_i8(&mut self, key: &str, v: i8) -> Result<()> {
        self.add(key, Value::I8(v))
    }
    /// Add a u16 value.
    pub fn add_u16(&mut self, key: &str, v: u16) -> Result<()> {
        self.add(key, Value::U16(v))
    }
    /// Add an i16 value.
    pub fn add_i16(&mut self, key: &str, v: i16) -> Result<()> {
        self.add(key, Value::I16(v))
    }
    /// Add a u32 value.
    pub fn add_u32(&mut self, key: &str, v: u32) -> Result<()> {
        self.add(key, Value::U32(v))
    }
    /// Add an i32 value.
    pub fn add_i32(&mut self, key: &str, v: i32) -> Result<()> {
        self.add(key, Value::I32(v))
    }
    /// Add an f32 value.
    pub fn add_f32(&mut self, key: &str, v: f32) -> Result<()> {
        self.add(key, Value::F32(v))
    }
    /// Add a u64 value.
    pub fn add_u64(&mut self, key: &str, v: u64) -> Result<()> {
        self.add(key, Value::U64(v))
    }
    /// Add an i64 value.
    pub fn add_i64(&mut self, key: &str, v: i64) -> Result<()> {
        self.add(key, Value::I64(v))
    }
    /// Add an f64 value.
    pub fn add_f64(&mut self, key: &str, v: f64) -> Result<()> {
        self.add(key, Value::F64(v))
    }
    /// Add a bool value.
    pub fn add_bool(&mut self, key: &str, v: bool) -> Result<()> {
        self.add(key, Value::Bool(v))
    }
    /// Add a string value.
    pub fn add_string(&mut self, key: &str, v: &str) -> Result<()> {
        self.add(key, Value::Str(v.to_string()))
    }
    /// Add an array value (`Vec<f32>`, `Vec<String>`, `Vec<Array>`... convert into [`Array`]).
    pub fn add_array(&mut self, key: &str, v: impl Into<Array>) -> Result<()> {
        self.add(key, Value::Array(v.into()))
    }

    /// Add a tensor of type `ty` with dimensions `dims` (innermost first). Its data must be
    /// written, in the order tensors were added, after [`GgufWriter::write_header`].
    pub fn add_tensor_info(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> Result<()> {
        self.building("tensor info added")?;
        if name.len() > MAX_TENSOR_NAME {
            return Err(Error::GgufTensorNameTooLong {
                offset: 0,
                name: name.to_string(),
                len: name.len(),
            });
        }
        if self.names.contains_key(name) {
            return Err(Error::GgufDuplicateTensor {
                offset: 0,
                name: name.to_string(),
            });
        }
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(Error::GgufBadDimCount {
                offset: 0,
                tensor: name.to_string(),
                n_dims: dims.len() as u64,
            });
        }
        if let Some((index, &dim)) = dims.iter().enumerate().find(|(_, d)| **d > i64::MAX as u64) {
            return Err(Error::GgufBadDim {
                offset: 0,
                tensor: name.to_string(),
                index,
                dim,
            });
        }
        let size = tensor_size(name, dims, ty, 0)?;
        self.names.insert(name.to_string(), self.tensors.len());
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            size,
        });
        Ok(())
    }

    /// Alignment of the data section and of every tensor's data.
    pub fn alignment(&self) -> u32 {
        self.alignment
    }

    /// Byte size of the data of tensor `name`, if it was added.
    pub fn tensor_size(&self, name: &str) -> Option<u64> {
        self.names.get(name).map(|&i| self.tensors[i].size)
    }

    /// The header bytes: magic, version, counts, metadata, tensor infos, zero padding to the
    /// alignment. Tensor offsets pack the tensors in insertion order, each padded.
    pub fn header_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&WRITE_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = t
                .size
                .checked_add(pad_len(t.size, self.alignment))
                .and_then(|s| offset.checked_add(s))
                .ok_or_else(|| Error::GgufTensorTooLarge {
                    offset: 0,
                    tensor: t.name.clone(),
                    dims: t.dims.clone(),
                    ty: t.ty,
                })?;
        }
        let pad = pad_len(out.len() as u64, self.alignment) as usize;
        out.resize(out.len() + pad, 0);
        Ok(out)
    }

    /// Write the header (see [`GgufWriter::header_bytes`]). Called once, before any data.
    pub fn write_header<W: Write>(&mut self, w: &mut W) -> Result<()> {
        self.building("header written again")?;
        let header = self.header_bytes()?;
        w.write_all(&header).map_err(io)?;
        self.state = State::Data { next: 0 };
        Ok(())
    }

    /// Write the data of tensor `name`, which must be the next one in insertion order and have
    /// exactly its byte size, followed by zero padding to the alignment.
    pub fn write_tensor_data<W: Write>(
        &mut self,
        w: &mut W,
        name: &str,
        data: &[u8],
    ) -> Result<()> {
        let State::Data { next } = self.state else {
            return Err(Error::GgufWriterState(format!(
                "tensor '{name}' written before the header"
            )));
        };
        let Some(t) = self.tensors.get(next) else {
            return Err(Error::GgufWriterState(format!(
                "tensor '{name}' written after all {} tensors",
                self.tensors.len()
            )));
        };
        if t.name != name {
            return Err(Error::GgufWriteOrder {
                expected: t.name.clone(),
                got: name.to_string(),
            });
        }
        if t.size != data.len() as u64 {
            return Err(Error::GgufWriteLength {
                tensor: t.name.clone(),
                expected: t.size,
                got: data.len() as u64,
            });
        }
        w.write_all(data).map_err(io)?;
        let pad = pad_len(t.size, self.alignment) as usize;
        w.write_all(&vec![0u8; pad]).map_err(io)?;
        self.state = State::Data { next: next + 1 };
        Ok(())
    }

    /// Check that the header and every tensor's data were written.
    pub fn finish(self) -> Result<()> {
        match self.state {
            State::Building => Err(Error::GgufWriterState("finished before the header".into())),
            State::Data { next } if next < self.tensors.len() => {
                Err(Error::GgufWriterState(format!(
                    "finished with {} of {} tensors written (next: '{}')",
                    next,
                    self.tensors.len(),
                    self.tensors[next].name
                )))
            }
            State::Data { .. } => Ok(()),
        }
    }
}
