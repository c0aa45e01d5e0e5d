//! SentencePiece `tokenizer.model` in, `tokenizer.ggml.*` vocabulary out.
//!
//! A `tokenizer.model` is a protobuf `ModelProto` (sentencepiece_model.proto). We decode the few
//! fields Llama needs with a small hand-written protobuf reader over `&[u8]`: every length is
//! checked against the bytes that remain, unknown fields are skipped, and malformed input is an
//! [`Error`], never a panic.
//!
//! The output, [`Vocab`], holds what llama.cpp's `convert_hf_to_gguf.py` writes for a Llama 2
//! SentencePiece tokenizer: one token per piece (the piece string as is, `▁` included), its score,
//! and its GGUF token type. Like that script, a piece of sentencepiece type USER_DEFINED gets the
//! GGUF type NORMAL (the script only tests unknown, control, unused and byte).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// GGUF `tokenizer.ggml.token_type` value of an ordinary piece.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF token type of the unknown piece (`<unk>`).
pub const TOKEN_TYPE_UNKNOWN: i32 = 2;
/// GGUF token type of a control piece (`<s>`, `</s>`): never produced from text.
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of a user-defined piece.
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;
/// GGUF token type of an unused piece.
pub const TOKEN_TYPE_UNUSED: i32 = 5;
/// GGUF token type of a byte-fallback piece (`<0x00>`..`<0xFF>`).
pub const TOKEN_TYPE_BYTE: i32 = 6;

/// sentencepiece `TrainerSpec.ModelType.BPE`, the only model type Llama uses.
const MODEL_TYPE_BPE: u64 = 2;

/// A SentencePiece vocabulary as GGUF stores it (`tokenizer.ggml.*`), plus the normalizer
/// settings the tokenizer needs to reproduce sentencepiece.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// Piece strings by id (`tokenizer.ggml.tokens`), spaces written as `▁` (U+2581).
    pub tokens: Vec<String>,
    /// Piece scores by id (`tokenizer.ggml.scores`): BPE merge priority, higher merges first.
    pub scores: Vec<f32>,
    /// GGUF token types by id (`tokenizer.ggml.token_type`), see the `TOKEN_TYPE_*` constants.
    pub token_types: Vec<i32>,
    /// Beginning-of-sequence id (`<s>`), `None` when the model disables it (id -1).
    pub bos_id: Option<u32>,
    /// End-of-sequence id (`</s>`), `None` when the model disables it (id -1).
    pub eos_id: Option<u32>,
    /// Unknown-piece id (`<unk>`); sentencepiece requires one.
    pub unk_id: u32,
    /// Padding id, `None` when the model has none (Llama 2: -1).
    pub pad_id: Option<u32>,
    /// Characters without a piece are encoded as their UTF-8 bytes (`<0xXX>` pieces).
    pub byte_fallback: bool,
    /// The normalizer prepends one space to non-empty text (protobuf default: true).
    pub add_dummy_prefix: bool,
    /// The normalizer drops leading and trailing spaces and collapses runs of spaces
    /// (protobuf default: true; Llama 2 sets it to false).
    pub remove_extra_whitespaces: bool,
}

impl Vocab {
    /// Reads and parses a SentencePiece `tokenizer.model` file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a SentencePiece `tokenizer.model`; `path` only names the file in
    /// errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let proto = parse_model_proto(bytes).map_err(|e| Error::MalformedTokenizer {
            path: path.to_path_buf(),
            offset: e.offset,
            reason: e.reason,
        })?;
        build(proto, path)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens (never true for a parsed model).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// The fields of ModelProto we read, as decoded (before validation).

/// One `ModelProto.SentencePiece`.
struct RawPiece {
    piece: String,
    score: f32,
    /// sentencepiece type: NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6.
    kind: u64,
}

/// `ModelProto` fields, initialised to the protobuf defaults of sentencepiece_model.proto.
struct RawModel {
    pieces: Vec<RawPiece>,
    model_type: u64,
    byte_fallback: bool,
    treat_whitespace_as_suffix: bool,
    unk_id: i32,
    bos_id: i32,
    eos_id: i32,
    pad_id: i32,
    normalizer_name: String,
    precompiled_charsmap_len: usize,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

impl Default for RawModel {
    fn default() -> Self {
        Self {
            pieces: Vec::new(),
            model_type: 1, // UNIGRAM
            byte_fallback: false,
            treat_whitespace_as_suffix: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            normalizer_name: String::new(),
            precompiled_charsmap_len: 0,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// A protobuf decoding error at an absolute byte offset.
struct ProtoError {
    offset: usize,
    reason: String,
}

type ProtoResult<T> = std::result::Result<T, ProtoError>;

/// One decoded field value (groups, wire types 3 and 4, are rejected).
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl Value<'_> {
    fn wire_name(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64 => "fixed64",
            Value::Bytes(_) => "length-delimited",
            Value::Fixed32(_) => "fixed32",
        }
    }
}

/// A bounded cursor over one protobuf message. `base` is the absolute offset of `buf[0]` in the
/// file, for error messages.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn err(&self, at: usize, reason: impl Into<String>) -> ProtoError {
        ProtoError {
            offset: self.base + at,
            reason: reason.into(),
        }
    }

    fn varint(&mut self) -> ProtoResult<u64> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(start, "truncated varint"));
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a 64-bit value.
            if i == 9 && b > 1 {
                return Err(self.err(start, "varint overflows 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.err(start, "varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize, what: &str) -> ProtoResult<&'a [u8]> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                self.err(
                    start,
                    format!(
                        "{what} of {n} bytes runs past the end ({} bytes left)",
                        self.buf.len() - start
                    ),
                )
            })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    /// The next field as (field number, value, absolute offset of the value), or `None` at the
    /// end of the message.
    fn field(&mut self) -> ProtoResult<Option<(u64, Value<'a>, usize)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key_at = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(self.err(key_at, "field number 0"));
        }
        let value_at = self.base + self.pos;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8, "fixed64 field")?;
                Value::Fixed64
            }
            2 => {
                let len_at = self.pos;
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .map_err(|_| self.err(len_at, format!("length {len} does not fit usize")))?;
                Value::Bytes(self.take(len, "length-delimited field")?)
            }
            5 => {
                let b = self.take(4, "fixed32 field")?;
                Value::Fixed32([b[0], b[1], b[2], b[3]])
            }
            wire => {
                return Err(self.err(
                    key_at,
                    format!("field {number} has unsupported wire type {wire}"),
                ));
            }
        };
        Ok(Some((number, value, value_at)))
    }
}

fn wrong_wire(message: &str, number: u64, value: &Value<'_>, at: usize, want: &str) -> ProtoError {
    ProtoError {
        offset: at,
        reason: format!(
            "{message} field {number} is {}, expected {want}",
            value.wire_name()
        ),
    }
}

fn expect_varint(message: &str, number: u64, value: &Value<'_>, at: usize) -> ProtoResult<u64> {
    match value {
        Value::Varint(v) => Ok(*v),
        other => Err(wrong_wire(message, number, other, at, "varint")),
    }
}

fn expect_bytes<'a>(
    message: &str,
    number: u64,
    value: &Value<'a>,
    at: usize,
) -> ProtoResult<&'a [u8]> {
    match value {
        Value::Bytes(b) => Ok(b),
        other => Err(wrong_wire(message, number, other, at, "length-delimited")),
    }
}

fn expect_string(message: &str, number: u64, value: &Value<'_>, at: usize) -> ProtoResult<String> {
    let bytes = expect_bytes(message, number, value, at)?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(ProtoError {
            offset: at,
            reason: format!("{message} field {number} is not valid UTF-8: {e}"),
        }),
    }
}

/// protobuf `int32`: negative values are sign-extended to 64 bits on the wire, so the low
/// 32 bits are the value.
fn as_int32(v: u64) -> i32 {
    v as u32 as i32
}

fn parse_model_proto(bytes: &[u8]) -> ProtoResult<RawModel> {
    let mut model = RawModel::default();
    let mut r = Reader::new(bytes, 0);
    while let Some((number, value, at)) = r.field()? {
        match number {
            1 => {
                let b = expect_bytes("ModelProto", number, &value, at)?;
                model.pieces.push(parse_piece(b, at)?);
            }
            2 => parse_trainer_spec(
                expect_bytes("ModelProto", number, &value, at)?,
                at,
                &mut model,
            )?,
            3 => parse_normalizer_spec(
                expect_bytes("ModelProto", number, &value, at)?,
                at,
                &mut model,
            )?,
            _ => {} // self_test_data, denormalizer_spec, extensions
        }
    }
    Ok(model)
}

fn parse_piece(bytes: &[u8], base: usize) -> ProtoResult<RawPiece> {
    const MSG: &str = "SentencePiece";
    let mut piece = RawPiece {
        piece: String::new(),
        score: 0.0,
        kind: 1,
    };
    let mut r = Reader::new(bytes, base);
    while let Some((number, value, at)) = r.field()? {
        match number {
            1 => piece.piece = expect_string(MSG, number, &value, at)?,
            2 => match value {
                Value::Fixed32(b) => piece.score = f32::from_le_bytes(b),
                other => return Err(wrong_wire(MSG, number, &other, at, "fixed32")),
            },
            3 => piece.kind = expect_varint(MSG, number, &value, at)?,
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_trainer_spec(bytes: &[u8], base: usize, model: &mut RawModel) -> ProtoResult<()> {
    const MSG: &str = "TrainerSpec";
    let mut r = Reader::new(bytes, base);
    while let Some((number, value, at)) = r.field()? {
        match number {
            3 => model.model_type = expect_varint(MSG, number, &value, at)?,
            24 => model.treat_whitespace_as_suffix = expect_varint(MSG, number, &value, at)? != 0,
            35 => model.byte_fallback = expect_varint(MSG, number, &value, at)? != 0,
            40 => model.unk_id = as_int32(expect_varint(MSG, number, &value, at)?),
            41 => model.bos_id = as_int32(expect_varint(MSG, number, &value, at)?),
            42 => model.eos_id = as_int32(expect_varint(MSG, number, &value, at)?),
            43 => model.pad_id = as_int32(expect_varint(MSG, number, &value, at)?),
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer_spec(bytes: &[u8], base: usize, model: &mut RawModel) -> ProtoResult<()> {
    const MSG: &str = "NormalizerSpec";
    let mut r = Reader::new(bytes, base);
    while let Some((number, value, at)) = r.field()? {
        match number {
            1 => model.normalizer_name = expect_string(MSG, number, &value, at)?,
            2 => model.precompiled_charsmap_len = expect_bytes(MSG, number, &value, at)?.len(),
            3 => model.add_dummy_prefix = expect_varint(MSG, number, &value, at)? != 0,
            4 => model.remove_extra_whitespaces = expect_varint(MSG, number, &value, at)? != 0,
            5 => model.escape_whitespaces = expect_varint(MSG, number, &value, at)? != 0,
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Validation and mapping to GGUF.

fn build(model: RawModel, path: &Path) -> Result<Vocab> {
    let unsupported = |reason: String| Error::UnsupportedTokenizer {
        path: PathBuf::from(path),
        reason,
    };
    let malformed = |reason: String| Error::MalformedTokenizer {
        path: PathBuf::from(path),
        offset: 0,
        reason,
    };

    if model.model_type != MODEL_TYPE_BPE {
        let name = match model.model_type {
            1 => "UNIGRAM",
            3 => "WORD",
            4 => "CHAR",
            _ => "unknown",
        };
        return Err(unsupported(format!(
            "model_type {} ({name}); Llama tokenizers are BPE (2)",
            model.model_type
        )));
    }
    if model.precompiled_charsmap_len != 0 {
        return Err(unsupported(format!(
            "normalizer {:?} has a precompiled character map ({} bytes); only the identity \
             normalizer can be reproduced from GGUF metadata",
            model.normalizer_name, model.precompiled_charsmap_len
        )));
    }
    if !model.escape_whitespaces {
        return Err(unsupported(
            "escape_whitespaces is false (spaces are not written as U+2581)".into(),
        ));
    }
    if model.treat_whitespace_as_suffix {
        return Err(unsupported("treat_whitespace_as_suffix is true".into()));
    }
    if model.pieces.is_empty() {
        return Err(malformed("no pieces".into()));
    }
    let n = model.pieces.len();
    let id_limit = u32::try_from(n).map_err(|_| malformed(format!("{n} pieces")))?;

    let mut tokens = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    let mut token_types = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    for (id, p) in model.pieces.into_iter().enumerate() {
        let token_type = match p.kind {
            // USER_DEFINED becomes NORMAL, as in convert_hf_to_gguf.py.
            1 | 4 => TOKEN_TYPE_NORMAL,
            2 => TOKEN_TYPE_UNKNOWN,
            3 => TOKEN_TYPE_CONTROL,
            5 => TOKEN_TYPE_UNUSED,
            6 => TOKEN_TYPE_BYTE,
            other => return Err(malformed(format!("piece {id} has unknown type {other}"))),
        };
        if p.piece.is_empty() {
            return Err(malformed(format!("piece {id} is empty")));
        }
        if !seen.insert(p.piece.clone()) {
            return Err(malformed(format!(
                "piece {id} {:?} is a duplicate",
                p.piece
            )));
        }
        tokens.push(p.piece);
        scores.push(p.score);
        token_types.push(token_type);
    }

    let special = |name: &str, id: i32| -> Result<Option<u32>> {
        match id {
            -1 => Ok(None),
            id => match u32::try_from(id) {
                Ok(id) if id < id_limit => Ok(Some(id)),
                _ => Err(malformed(format!("{name} {id} is not a piece id (0..{n})"))),
            },
        }
    };
    let unk_id = special("unk_id", model.unk_id)?
        .ok_or_else(|| malformed("unk_id is -1; sentencepiece requires an unknown piece".into()))?;
    if token_types[unk_id as usize] != TOKEN_TYPE_UNKNOWN {
        return Err(malformed(format!(
            "unk_id {unk_id} ({:?}) is not of type UNKNOWN",
            tokens[unk_id as usize]
        )));
    }
    Ok(Vocab {
        bos_id: special("bos_id", model.bos_id)?,
        eos_id: special("eos_id", model.eos_id)?,
        pad_id: special("pad_id", model.pad_id)?,
        unk_id,
        tokens,
        scores,
        token_types,
        byte_fallback: model.byte_fallback,
        add_dummy_prefix: model.add_dummy_prefix,
        remove_extra_whitespaces: model.remove_extra_whitespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_decodes_multi_byte_and_rejects_truncation() {
        let mut r = Reader::new(&[0xac, 0x02], 0);
        assert_eq!(r.varint().ok(), Some(300));
        let mut r = Reader::new(&[0xac], 0);
        assert!(r.varint().is_err());
        let mut r = Reader::new(&[0xff; 11], 0);
        assert!(r.varint().is_err());
    }

    #[test]
    fn negative_int32_is_ten_byte_varint() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let mut r = Reader::new(&bytes, 0);
        let v = r.varint().ok().map(as_int32);
        assert_eq!(v, Some(-1));
    }
}
