//! Llama 2's SentencePiece BPE tokenizer, token for token equal to sentencepiece 0.2.
//!
//! Encoding, in sentencepiece's order:
//! 1. Normalize (the identity normalizer Llama uses): with `remove_extra_whitespaces`, drop
//!    leading and trailing spaces and collapse runs of spaces; prepend one space to non-empty text
//!    (`add_dummy_prefix`); write every space as `▁` (U+2581).
//! 2. Split into characters (a user-defined piece is one unmergeable symbol).
//! 3. BPE: repeatedly merge the adjacent pair whose concatenation is a piece with the highest
//!    score, the leftmost one on ties. Symbols live in a doubly linked list and candidate pairs in
//!    a max-heap; a popped pair whose symbols have changed since it was pushed is stale and
//!    skipped. This is O(n log n) in the text length.
//! 4. Look up each final symbol; a symbol without a piece becomes its UTF-8 bytes as `<0xXX>`
//!    pieces (byte fallback), or `<unk>` if the vocabulary has no byte pieces.
//!
//! Text is never parsed into control tokens: `"</s>"` in user text is three ordinary pieces.
//!
//! Decoding: control tokens vanish, `<unk>` becomes `" ⁇ "`, runs of byte pieces are decoded as
//! UTF-8 where each byte that does not start a valid character becomes U+FFFD, `▁` becomes a
//! space, and the dummy-prefix space is dropped from the first piece. [`DecodeStream`] does the
//! same incrementally, holding back only an incomplete UTF-8 sequence.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use cinder_convert::vocab::{
    TOKEN_TYPE_BYTE, TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_UNUSED,
    TOKEN_TYPE_USER_DEFINED, Vocab,
};
use cinder_quant::gguf::{Gguf, Value, keys};

/// The character SentencePiece writes for a space.
pub const SPACE_SYMBOL: char = '\u{2581}';

/// What `<unk>` decodes to (sentencepiece's default `unk_surface`).
pub const UNK_SURFACE: &str = " \u{2047} ";

const REPLACEMENT: char = '\u{FFFD}';
const NONE: usize = usize::MAX;

/// A tokenizer that cannot be built from the given vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerError(String);

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tokenizer vocabulary: {}", self.0)
    }
}

impl std::error::Error for TokenizerError {}

/// Everything a [`Tokenizer`] is built from: the GGUF `tokenizer.ggml.*` metadata plus the two
/// normalizer flags.
#[derive(Debug, Clone)]
pub struct TokenizerSpec {
    /// Piece strings by id (`▁` for spaces, `<0xXX>` byte pieces).
    pub tokens: Vec<String>,
    /// Piece scores by id: merge priority, higher first.
    pub scores: Vec<f32>,
    /// GGUF token types by id: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused,
    /// 6 byte.
    pub token_types: Vec<i32>,
    /// Beginning-of-sequence id, if any.
    pub bos_id: Option<u32>,
    /// End-of-sequence id, if any.
    pub eos_id: Option<u32>,
    /// Unknown-piece id.
    pub unk_id: u32,
    /// Whether callers should start a prompt with BOS (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    /// Prepend a space to non-empty text.
    pub add_dummy_prefix: bool,
    /// Drop leading/trailing spaces and collapse runs of spaces before tokenizing.
    pub remove_extra_whitespaces: bool,
}

/// What a token is, for encoding and decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Mergeable and printable (normal and user-defined pieces).
    Normal,
    /// Mergeable but resegmented into its parts after BPE.
    Unused,
    Unknown,
    Control,
    /// A byte piece and the byte it stands for.
    Byte(u8),
}

/// Llama 2's SentencePiece BPE tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    scores: Vec<f32>,
    kinds: Vec<Kind>,
    /// Normal, user-defined and unused pieces: the ones BPE may produce.
    mergeable: HashMap<String, u32>,
    /// Unknown, control and byte pieces: found by lookup only, never by merging.
    reserved: HashMap<String, u32>,
    /// User-defined pieces: matched whole and never merged.
    user_defined: HashSet<String>,
    user_defined_max_len: usize,
    /// Id of `<0xXX>` for each byte (the unk id where that piece is missing).
    byte_ids: [u32; 256],
    byte_fallback: bool,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    unk_id: u32,
    add_bos: bool,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
}

/// Parses a byte piece `<0xXX>` (two upper- or lower-case hex digits).
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl Tokenizer {
    /// Builds a tokenizer, checking that the arrays agree and the special ids exist.
    pub fn new(spec: TokenizerSpec) -> Result<Self, TokenizerError> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(TokenizerError("no tokens".into()));
        }
        if spec.scores.len() != n || spec.token_types.len() != n {
            return Err(TokenizerError(format!(
                "{n} tokens but {} scores and {} token types",
                spec.scores.len(),
                spec.token_types.len()
            )));
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError(format!("{n} tokens do not fit u32 ids")));
        }
        for (name, id) in [
            ("bos", spec.bos_id),
            ("eos", spec.eos_id),
            ("unk", Some(spec.unk_id)),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(TokenizerError(format!("{name} id {id} >= {n} tokens")));
            }
        }

        let mut kinds = Vec::with_capacity(n);
        let mut mergeable = HashMap::with_capacity(n);
        let mut reserved = HashMap::new();
        let mut user_defined = HashSet::new();
        for (id, (piece, &ty)) in spec.tokens.iter().zip(&spec.token_types).enumerate() {
            let kind = match ty {
                TOKEN_TYPE_NORMAL | TOKEN_TYPE_USER_DEFINED => Kind::Normal,
                TOKEN_TYPE_UNUSED => Kind::Unused,
                TOKEN_TYPE_UNKNOWN => Kind::Unknown,
                TOKEN_TYPE_CONTROL => Kind::Control,
                TOKEN_TYPE_BYTE => match parse_byte_piece(piece) {
                    Some(b) => Kind::Byte(b),
                    None => {
                        return Err(TokenizerError(format!(
                            "token {id} {piece:?} has type byte but is not <0xXX>"
                        )));
                    }
                },
                other => {
                    return Err(TokenizerError(format!(
                        "token {id} {piece:?} has unknown type {other}"
                    )));
                }
            };
            kinds.push(kind);
            if piece.is_empty() {
                continue; // can never match text
            }
            let map = match kind {
                Kind::Normal | Kind::Unused => &mut mergeable,
                _ => &mut reserved,
            };
            // Like sentencepiece, the first of two equal pieces wins.
            map.entry(piece.clone()).or_insert(id as u32);
            if ty == TOKEN_TYPE_USER_DEFINED {
                user_defined.insert(piece.clone());
            }
        }

        let mut tok = Self {
            user_defined_max_len: user_defined.iter().map(String::len).max().unwrap_or(0),
            tokens: spec.tokens,
            scores: spec.scores,
            byte_fallback: kinds.iter().any(|k| matches!(k, Kind::Byte(_))),
            kinds,
            mergeable,
            reserved,
            user_defined,
            byte_ids: [spec.unk_id; 256],
            bos_id: spec.bos_id,
            eos_id: spec.eos_id,
            unk_id: spec.unk_id,
            add_bos: spec.add_bos,
            add_dummy_prefix: spec.add_dummy_prefix,
            remove_extra_whitespaces: spec.remove_extra_whitespaces,
        };
        for b in 0..=255u8 {
            tok.byte_ids[b as usize] = tok.piece_to_id(&format!("<0x{b:02X}>"));
        }
        Ok(tok)
    }

    /// Builds the tokenizer a GGUF converted from this vocabulary describes (BOS added to
    /// prompts, as Llama 2's `tokenizer_config.json` says).
    pub fn from_vocab(vocab: &Vocab) -> Result<Self, TokenizerError> {
        Self::new(TokenizerSpec {
            tokens: vocab.tokens.clone(),
            scores: vocab.scores.clone(),
            token_types: vocab.token_types.clone(),
            bos_id: vocab.bos_id,
            eos_id: vocab.eos_id,
            unk_id: vocab.unk_id,
            add_bos: true,
            add_dummy_prefix: vocab.add_dummy_prefix,
            remove_extra_whitespaces: vocab.remove_extra_whitespaces,
        })
    }

    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`). `tokenizer.ggml.model`
    /// must be `"llama"` (SentencePiece BPE). Scores default to 0 and token types to normal when
    /// absent, the unknown id to 0, BOS/EOS to none, `add_bos_token` to true (llama.cpp's
    /// defaults for this model). GGUF has no key for `remove_extra_whitespaces`, so it is off,
    /// as in llama.cpp; `add_dummy_prefix` is on.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, TokenizerError> {
        let bad = |key: &str, reason: String| TokenizerError(format!("{key}: {reason}"));
        match g.get(keys::TOKENIZER_MODEL) {
            Some(Value::Str(m)) if m == "llama" => {}
            Some(Value::Str(m)) => {
                return Err(bad(
                    keys::TOKENIZER_MODEL,
                    format!("{m:?} is not supported (cinder runs \"llama\", SentencePiece BPE)"),
                ));
            }
            Some(v) => {
                let found = v.type_description();
                return Err(bad(
                    keys::TOKENIZER_MODEL,
                    format!("is {found}, expected string"),
                ));
            }
            None => return Err(bad(keys::TOKENIZER_MODEL, "missing".into())),
        }
        let tokens = g
            .get_str_array(keys::TOKENIZER_TOKENS)
            .map_err(|e| bad(keys::TOKENIZER_TOKENS, e.to_string()))?
            .to_vec();
        let n = tokens.len();
        let scores = match g.get(keys::TOKENIZER_SCORES) {
            None => vec![0.0; n],
            Some(_) => g
                .get_f32_array(keys::TOKENIZER_SCORES)
                .map_err(|e| bad(keys::TOKENIZER_SCORES, e.to_string()))?
                .to_vec(),
        };
        let token_types = match g.get(keys::TOKENIZER_TOKEN_TYPE) {
            None => vec![TOKEN_TYPE_NORMAL; n],
            Some(_) => g
                .get_i32_array(keys::TOKENIZER_TOKEN_TYPE)
                .map_err(|e| bad(keys::TOKENIZER_TOKEN_TYPE, e.to_string()))?
                .to_vec(),
        };
        let id = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
            match g.get(key) {
                None => Ok(None),
                Some(Value::U32(x)) => Ok(Some(*x)),
                Some(Value::I32(x)) if *x < 0 => Ok(None), // llama.cpp writes -1 for "none"
                Some(Value::I32(x)) => Ok(Some(x.unsigned_abs())),
                Some(v) => {
                    let found = v.type_description();
                    Err(bad(key, format!("is {found}, expected u32")))
                }
            }
        };
        let bos_id = id(keys::TOKENIZER_BOS_TOKEN_ID)?;
        let eos_id = id(keys::TOKENIZER_EOS_TOKEN_ID)?;
        let unk_id = id(keys::TOKENIZER_UNKNOWN_TOKEN_ID)?.unwrap_or(0);
        let add_bos = match g.get(keys::TOKENIZER_ADD_BOS_TOKEN) {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                let found = v.type_description();
                return Err(bad(
                    keys::TOKENIZER_ADD_BOS_TOKEN,
                    format!("is {found}, expected bool"),
                ));
            }
        };
        Self::new(TokenizerSpec {
            tokens,
            scores,
            token_types,
            bos_id,
            eos_id,
            unk_id,
            add_bos,
            add_dummy_prefix: true,
            remove_extra_whitespaces: false,
        })
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Unknown-piece id.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Whether prompts should start with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The vocabulary string of a token (`▁Hello`, `<0x0A>`, `<s>`); `""` for an id outside
    /// the vocabulary.
    pub fn piece(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or("", String::as_str)
    }

    /// Score of a token (0 for an id outside the vocabulary).
    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Whether a token is a control token (`<s>`, `</s>`), which decodes to nothing.
    pub fn is_control(&self, id: u32) -> bool {
        self.kinds.get(id as usize) == Some(&Kind::Control)
    }

    /// sentencepiece's PieceToId: reserved pieces first, then mergeable ones, else unk.
    fn piece_to_id(&self, piece: &str) -> u32 {
        self.reserved
            .get(piece)
            .or_else(|| self.mergeable.get(piece))
            .copied()
            .unwrap_or(self.unk_id)
    }

    fn is_unknown(&self, id: u32) -> bool {
        id == self.unk_id || self.kinds.get(id as usize) == Some(&Kind::Unknown)
    }

    /// The identity normalizer with sentencepiece's whitespace handling.
    pub fn normalize(&self, text: &str) -> String {
        let remove_extra = self.remove_extra_whitespaces;
        let input = if remove_extra {
            text.trim_start_matches(' ')
        } else {
            text
        };
        let mut out = String::with_capacity(input.len() + input.len() / 2 + 3);
        if input.is_empty() {
            return out;
        }
        if self.add_dummy_prefix {
            out.push(SPACE_SYMBOL);
        }
        let mut prev_space = remove_extra;
        for ch in input.chars() {
            if ch == ' ' {
                if !(remove_extra && prev_space) {
                    out.push(SPACE_SYMBOL);
                }
                prev_space = remove_extra;
            } else {
                out.push(ch);
                prev_space = false;
            }
        }
        if remove_extra {
            while let Some(rest) = out.strip_suffix(SPACE_SYMBOL) {
                out.truncate(rest.len());
            }
        }
        out
    }

    /// Length of the symbol starting at `rest`: the longest user-defined piece there (frozen),
    /// else one character.
    fn next_symbol(&self, rest: &str) -> (usize, bool) {
        if self.user_defined_max_len > 0 {
            let mut end = self.user_defined_max_len.min(rest.len());
            while end > 0 {
                if rest.is_char_boundary(end) && self.user_defined.contains(&rest[..end]) {
                    return (end, true);
                }
                end -= 1;
            }
        }
        let len = rest.chars().next().map_or(1, char::len_utf8);
        (len, false)
    }

    /// Token ids of `text` (sentencepiece `encode`), preceded by BOS when `add_bos` is set and
    /// the vocabulary has one.
    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        let mut ids = Vec::new();
        if let Some(bos) = self.bos_id.filter(|_| add_bos) {
            ids.push(bos);
        }
        let normalized = self.normalize(text);
        if normalized.is_empty() {
            return ids;
        }

        // Split into symbols, linked both ways.
        let mut symbols: Vec<Symbol> = Vec::with_capacity(normalized.len());
        let mut at = 0;
        while at < normalized.len() {
            let (len, freeze) = self.next_symbol(&normalized[at..]);
            let index = symbols.len();
            symbols.push(Symbol {
                start: at,
                len,
                prev: if index == 0 { NONE } else { index - 1 },
                next: if at + len < normalized.len() {
                    index + 1
                } else {
                    NONE
                },
                freeze,
            });
            at += len;
        }

        let mut merger = Merger {
            tok: self,
            text: &normalized,
            symbols,
            agenda: BinaryHeap::new(),
            rev_merge: HashMap::new(),
        };
        merger.run();

        // Walk the list; resegment unused pieces; then byte fallback.
        let mut pieces: Vec<(&str, u32)> = Vec::new();
        let mut index = 0;
        while index != NONE {
            let s = &merger.symbols[index];
            merger.resegment(&normalized[s.start..s.start + s.len], &mut pieces);
            index = s.next;
        }
        let mut prev_unknown = false;
        for (piece, id) in pieces {
            let unknown = self.is_unknown(id);
            if unknown && self.byte_fallback {
                ids.extend(piece.bytes().map(|b| self.byte_ids[b as usize]));
            } else if !(unknown && prev_unknown) {
                // Without byte fallback a run of unknown symbols is one <unk>.
                ids.push(id);
            }
            prev_unknown = unknown;
        }
        ids
    }

    /// Text of `ids` (sentencepiece `decode`). An id outside the vocabulary decodes like `<unk>`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut stream = self.decoder();
        for &id in ids {
            stream.push_into(id, &mut out);
        }
        stream.finish_into(&mut out);
        out
    }

    /// A decoder for tokens that arrive one at a time.
    pub fn decoder(&self) -> DecodeStream<'_> {
        DecodeStream {
            tok: self,
            bytes: Vec::new(),
            is_bos_ws: true,
            bos_ws_seen: false,
            wrote: false,
        }
    }
}

/// A symbol of the text being merged: `text[start..start + len]`; `len == 0` once merged into
/// its left neighbour.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
    freeze: bool,
}

/// A candidate merge of the adjacent symbols `left` and `right` into a piece of `size` bytes.
#[derive(Debug, Clone, Copy)]
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Pair {
    /// Higher score first; on equal scores the leftmost pair first.
    fn cmp(&self, other: &Self) -> Ordering {
        if self.score < other.score {
            Ordering::Less
        } else if self.score > other.score {
            Ordering::Greater
        } else {
            other.left.cmp(&self.left)
        }
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}

/// State of one BPE run over a normalized text.
struct Merger<'t, 's> {
    tok: &'t Tokenizer,
    text: &'s str,
    symbols: Vec<Symbol>,
    agenda: BinaryHeap<Pair>,
    /// For each unused piece made by a merge: the two parts it was made of.
    rev_merge: HashMap<&'s str, (&'s str, &'s str)>,
}

impl<'s> Merger<'_, 's> {
    fn span(&self, index: usize) -> &'s str {
        let s = &self.symbols[index];
        &self.text[s.start..s.start + s.len]
    }

    fn maybe_add_pair(&mut self, left: usize, right: usize) {
        if left == NONE || right == NONE || self.symbols[left].freeze || self.symbols[right].freeze
        {
            return;
        }
        let l = self.symbols[left];
        let size = l.len + self.symbols[right].len;
        let piece = &self.text[l.start..l.start + size];
        let Some(&id) = self.tok.mergeable.get(piece) else {
            return;
        };
        self.agenda.push(Pair {
            score: self.tok.scores[id as usize],
            left,
            right,
            size,
        });
        if self.tok.kinds[id as usize] == Kind::Unused {
            let parts = (self.span(left), self.span(right));
            self.rev_merge.insert(piece, parts);
        }
    }

    fn run(&mut self) {
        for i in 1..self.symbols.len() {
            self.maybe_add_pair(i - 1, i);
        }
        while let Some(top) = self.agenda.pop() {
            let (l, r) = (self.symbols[top.left], self.symbols[top.right]);
            // Stale: one side was merged away or grew since this pair was pushed.
            if l.len == 0 || r.len == 0 || l.len + r.len != top.size {
                continue;
            }
            self.symbols[top.left].len = top.size;
            self.symbols[top.left].next = r.next;
            if r.next != NONE {
                self.symbols[r.next].prev = top.left;
            }
            self.symbols[top.right].len = 0;
            self.maybe_add_pair(l.prev, top.left);
            self.maybe_add_pair(top.left, r.next);
        }
    }

    /// Emits `piece`, splitting unused pieces back into the parts they were merged from.
    fn resegment(&self, piece: &'s str, out: &mut Vec<(&'s str, u32)>) {
        let id = self.tok.piece_to_id(piece);
        let parts = match self.tok.kinds[id as usize] {
            Kind::Unused => self.rev_merge.get(piece),
            _ => None,
        };
        match parts {
            Some(&(left, right)) => {
                self.resegment(left, out);
                self.resegment(right, out);
            }
            None => out.push((piece, id)),
        }
    }
}

/// Incremental decoding: [`DecodeStream::push`] returns the text that is final so far, holding
/// back only the bytes of an incomplete UTF-8 character. The concatenation of everything pushed
/// and [`DecodeStream::finish`] equals [`Tokenizer::decode`] of all the ids.
#[derive(Debug, Clone)]
pub struct DecodeStream<'t> {
    tok: &'t Tokenizer,
    /// Byte-piece bytes not yet written.
    bytes: Vec<u8>,
    /// The next printable piece may lose a leading `▁` (the dummy prefix).
    is_bos_ws: bool,
    /// The last non-byte piece lost its leading `▁`.
    bos_ws_seen: bool,
    /// Some text has been written.
    wrote: bool,
}

impl DecodeStream<'_> {
    /// Decodes one more token; returns the newly completed text.
    pub fn push(&mut self, id: u32) -> String {
        let mut out = String::new();
        self.push_into(id, &mut out);
        out
    }

    /// Decodes one more token, appending the newly completed text to `out`.
    pub fn push_into(&mut self, id: u32, out: &mut String) {
        let kind = self
            .tok
            .kinds
            .get(id as usize)
            .copied()
            .unwrap_or(Kind::Unknown);
        if let Kind::Byte(b) = kind {
            self.bytes.push(b);
            self.flush_bytes(false, out);
            return;
        }
        self.flush_bytes(true, out);
        if self.bos_ws_seen || self.wrote {
            self.is_bos_ws = false;
        }
        self.bos_ws_seen = false;
        match kind {
            Kind::Control => {}
            Kind::Unknown => {
                out.push_str(UNK_SURFACE);
                self.wrote = true;
            }
            _ => {
                let tok = self.tok;
                let mut piece = tok.piece(id);
                let strip =
                    self.is_bos_ws && (tok.add_dummy_prefix || tok.remove_extra_whitespaces);
                if let Some(rest) = piece.strip_prefix(SPACE_SYMBOL).filter(|_| strip) {
                    piece = rest;
                    // With remove_extra_whitespaces every leading `▁` goes.
                    self.bos_ws_seen = !tok.remove_extra_whitespaces;
                }
                for ch in piece.chars() {
                    out.push(if ch == SPACE_SYMBOL { ' ' } else { ch });
                }
                self.wrote |= !piece.is_empty();
            }
        }
    }

    /// Ends the stream; returns the held-back bytes (each becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.finish_into(&mut out);
        out
    }

    /// Ends the stream, appending the held-back bytes (each becomes U+FFFD) to `out`.
    pub fn finish_into(&mut self, out: &mut String) {
        self.flush_bytes(true, out);
    }

    /// Writes the pending bytes one character at a time; a byte that does not start a valid
    /// UTF-8 character becomes U+FFFD and decoding resumes at the next byte. Unless `all`, an
    /// incomplete character at the end is kept for later.
    fn flush_bytes(&mut self, all: bool, out: &mut String) {
        let bytes = &self.bytes;
        let mut i = 0;
        let before = out.len();
        while i < bytes.len() {
            let need = match bytes[i] {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 0,
            };
            let rest = &bytes[i..];
            if need == 0 {
                out.push(REPLACEMENT);
                i += 1;
            } else if rest.len() < need {
                let may_complete = rest[1..].iter().all(|&b| (0x80..=0xbf).contains(&b));
                if !all && may_complete {
                    break;
                }
                out.push(REPLACEMENT);
                i += 1;
            } else if let Ok(s) = std::str::from_utf8(&rest[..need]) {
                out.push_str(s);
                i += need;
            } else {
                out.push(REPLACEMENT);
                i += 1;
            }
        }
        self.bytes.drain(..i);
        self.wrote |= out.len() > before;
    }
}
