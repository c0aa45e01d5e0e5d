//! Model hyper-parameters read from GGUF metadata: the architecture and every required key are
//! checked up front, with errors that name the file and the key.

use std::path::Path;

use cinder_quant::gguf::{Array, Gguf, Value, keys};

use crate::error::{Error, Result};

/// The `general.architecture` values cinder runs.
pub const ARCHITECTURES: &[&str] = &["llama"];

/// [`ARCHITECTURES`] for a message: `"llama"` (quoted, joined with "or").
pub fn architectures() -> String {
    let quoted: Vec<String> = ARCHITECTURES.iter().map(|a| format!("{a:?}")).collect();
    quoted.join(" or ")
}

/// Hyper-parameters of a Llama model.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Model width (`llama.embedding_length`).
    pub dim: usize,
    /// Hidden width of the SwiGLU feed-forward (`llama.feed_forward_length`).
    pub ffn_dim: usize,
    /// Number of transformer blocks (`llama.block_count`).
    pub n_layers: usize,
    /// Query heads (`llama.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads (`llama.attention.head_count_kv`, default `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head: `dim / n_heads`.
    pub head_dim: usize,
    /// Leading dimensions of each head that are rotated (`llama.rope.dimension_count`,
    /// default `head_dim`).
    pub rope_dim: usize,
    /// RoPE base (`llama.rope.freq_base`, default 10000).
    pub rope_base: f32,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub norm_eps: f32,
    /// Training context length (`llama.context_length`).
    pub context_length: usize,
    /// Vocabulary size (length of `tokenizer.ggml.tokens`, else `llama.vocab_size`).
    pub vocab_size: usize,
}

impl Config {
    /// Width of the key and value vectors of one token: `n_kv_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Query heads sharing one key/value head.
    pub fn gqa_group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Read and check the configuration of the GGUF `g` (`path` is for error messages).
    pub fn from_gguf(g: &Gguf<'_>, path: &Path) -> Result<Self> {
        let bad = |key: &'static str, reason: String| Error::BadKey {
            path: path.to_path_buf(),
            key,
            reason,
        };
        let arch = match g.get(keys::GENERAL_ARCHITECTURE) {
            Some(Value::Str(s)) => s.as_str(),
            Some(v) => {
                let found = v.type_description();
                return Err(bad(
                    keys::GENERAL_ARCHITECTURE,
                    format!("is {found}, expected string"),
                ));
            }
            None => return Err(bad(keys::GENERAL_ARCHITECTURE, "missing".into())),
        };
        if !ARCHITECTURES.contains(&arch) {
            return Err(Error::Architecture {
                path: path.to_path_buf(),
                found: arch.to_string(),
            });
        }

        let uint = |key: &'static str| -> Result<Option<usize>> {
            let Some(v) = g.get(key) else { return Ok(None) };
            let n: Option<u64> = match *v {
                Value::U8(x) => Some(x.into()),
                Value::U16(x) => Some(x.into()),
                Value::U32(x) => Some(x.into()),
                Value::U64(x) => Some(x),
                Value::I8(x) => u64::try_from(x).ok(),
                Value::I16(x) => u64::try_from(x).ok(),
                Value::I32(x) => u64::try_from(x).ok(),
                Value::I64(x) => u64::try_from(x).ok(),
                _ => {
                    let found = v.type_description();
                    return Err(bad(key, format!("is {found}, expected an integer")));
                }
            };
            match n.and_then(|n| usize::try_from(n).ok()) {
                Some(n) if n > 0 && n <= 1 << 31 => Ok(Some(n)),
                _ => Err(bad(key, format!("value {v:?} is not in 1..=2^31"))),
            }
        };
        let float = |key: &'static str| -> Result<Option<f32>> {
            let x = match g.get(key) {
                None => return Ok(None),
                Some(Value::F32(x)) => *x,
                Some(Value::F64(x)) => *x as f32,
                Some(v) => {
                    let found = v.type_description();
                    return Err(bad(key, format!("is {found}, expected f32")));
                }
            };
            if x.is_finite() && x > 0.0 {
                Ok(Some(x))
            } else {
                Err(bad(
                    key,
                    format!("value {x} is not a positive finite number"),
                ))
            }
        };
        let required = |key: &'static str| uint(key)?.ok_or_else(|| bad(key, "missing".into()));

        let n_layers = required(keys::LLAMA_BLOCK_COUNT)?;
        let dim = required(keys::LLAMA_EMBEDDING_LENGTH)?;
        let ffn_dim = required(keys::LLAMA_FEED_FORWARD_LENGTH)?;
        let n_heads = required(keys::LLAMA_ATTENTION_HEAD_COUNT)?;
        let n_kv_heads = uint(keys::LLAMA_ATTENTION_HEAD_COUNT_KV)?.unwrap_or(n_heads);
        let norm_eps = float(keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON)?.ok_or_else(|| {
            bad(
                keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON,
                "missing".into(),
            )
        })?;
        let rope_base = float(keys::LLAMA_ROPE_FREQ_BASE)?.unwrap_or(10000.0);
        let context_length = required(keys::LLAMA_CONTEXT_LENGTH)?;

        if dim % n_heads != 0 {
            return Err(bad(
                keys::LLAMA_ATTENTION_HEAD_COUNT,
                format!("{n_heads} heads do not divide embedding_length {dim}"),
            ));
        }
        let head_dim = dim / n_heads;
        if n_kv_heads > n_heads || n_heads % n_kv_heads != 0 {
            return Err(bad(
                keys::LLAMA_ATTENTION_HEAD_COUNT_KV,
                format!("{n_kv_heads} kv heads do not divide {n_heads} query heads"),
            ));
        }
        let rope_dim = uint(keys::LLAMA_ROPE_DIMENSION_COUNT)?.unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(bad(
                keys::LLAMA_ROPE_DIMENSION_COUNT,
                format!("{rope_dim} is odd or larger than the head size {head_dim}"),
            ));
        }

        let vocab_size = match g.get(keys::TOKENIZER_TOKENS) {
            Some(Value::Array(a)) if !a.is_empty() => match a {
                Array::Str(v) => v.len(),
                _ => {
                    return Err(bad(
                        keys::TOKENIZER_TOKENS,
                        "is not an array of strings".into(),
                    ));
                }
            },
            _ => uint(keys::LLAMA_VOCAB_SIZE)?.ok_or_else(|| {
                bad(
                    keys::LLAMA_VOCAB_SIZE,
                    format!("missing (and no {} array)", keys::TOKENIZER_TOKENS),
                )
            })?,
        };

        Ok(Config {
            dim,
            ffn_dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_base,
            norm_eps,
            context_length,
            vocab_size,
        })
    }
}
