//! Random-weight Llama GGUF files with the shape of a real model.
//!
//! Speed does not depend on weight values, so a synthetic file measures what a real one would:
//! same tensor shapes, same llama-quantize type mix ([`cinder_convert::plan::tensor_type`]),
//! same vocabulary and metadata keys as `cinder convert` writes. Weights are drawn from
//! N(0, 0.02)-like noise and norms from N(1, 0.02)-like noise, so activations and logits stay
//! finite.
//!
//! Files are streamed: each tensor's rows are generated (one seeded stream per row) and
//! quantized in parallel straight into that tensor's output buffer, which is written and
//! dropped before the next tensor starts. Peak memory is one tensor's encoded bytes.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use cinder_convert::Vocab;
use cinder_convert::convert::QUANTIZATION_VERSION;
use cinder_convert::names::Role;
use cinder_convert::plan::{FileType, ModelShape, Overrides, tensor_type};
use cinder_quant::GgmlType;
use cinder_quant::gguf::{GgufWriter, keys};
use rayon::prelude::*;

use crate::rng::Rng;

/// Everything that can go wrong while writing a synthetic model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The output file could not be created, written or renamed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The GGUF writer or a quantizer refused the data.
    #[error("{}", path.display())]
    Gguf {
        /// The output file.
        path: PathBuf,
        /// The writer's or quantizer's error.
        source: cinder_quant::Error,
    },
    /// The shape is not a valid Llama shape.
    #[error("bad model shape: {0}")]
    BadShape(String),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The hyper-parameters of a Llama model.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Model width (`llama.embedding_length`).
    pub dim: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (GQA when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// SwiGLU hidden width.
    pub ffn_dim: usize,
    /// `llama.context_length`.
    pub context_length: usize,
    /// Vocabulary size of the real model (the file's comes from the tokenizer).
    pub vocab_size: usize,
    /// The output projection is the token embedding (no `output.weight`).
    pub tied: bool,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
    /// RoPE base.
    pub rope_base: f32,
}

impl Shape {
    /// The names [`Shape::named`] knows.
    pub const NAMES: [&'static str; 3] = ["tinyllama-1.1b", "llama2-7b", "stories260k-like"];

    /// A real model's shape by name (see [`Shape::NAMES`]).
    pub fn named(name: &str) -> Option<Shape> {
        let llama = |dim, n_layers, n_heads, n_kv_heads, ffn_dim, context_length| Shape {
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            ffn_dim,
            context_length,
            vocab_size: 32000,
            tied: false,
            norm_eps: 1e-5,
            rope_base: 10000.0,
        };
        match name {
            "tinyllama-1.1b" => Some(llama(2048, 22, 32, 4, 5632, 2048)),
            "llama2-7b" => Some(llama(4096, 32, 32, 32, 11008, 4096)),
            // llama2.c's stories260K: 512-piece vocabulary, tied embeddings, 172-wide FFN.
            "stories260k-like" => Some(Shape {
                vocab_size: 512,
                tied: true,
                ..llama(64, 5, 8, 4, 172, 512)
            }),
            _ => None,
        }
    }

    /// The tokenizer fixture a named shape's real model uses (relative to the fixtures root).
    pub fn default_tokenizer(name: &str) -> &'static str {
        match name {
            "stories260k-like" => "sources/tok512.model",
            _ => "sources/tokenizer.model",
        }
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads.max(1)
    }

    /// Check that the runtime can run this shape.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(Error::BadShape(s));
        let sizes = [
            ("dim", self.dim),
            ("layers", self.n_layers),
            ("heads", self.n_heads),
            ("kv heads", self.n_kv_heads),
            ("ffn", self.ffn_dim),
            ("ctx", self.context_length),
        ];
        if let Some((what, _)) = sizes.iter().find(|(_, n)| *n == 0 || *n > 1 << 20) {
            return bad(format!("{what} must be in 1..=2^20"));
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return bad(format!(
                "{} heads do not divide dim {}",
                self.n_heads, self.dim
            ));
        }
        if self.n_kv_heads > self.n_heads || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} kv heads do not divide {} heads",
                self.n_kv_heads, self.n_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("head size {} is odd (RoPE)", self.head_dim()));
        }
        Ok(())
    }
}

/// One tensor of the file: GGUF name, dims (innermost first), role, layer and type.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthTensor {
    /// GGUF name (`blk.3.attn_q.weight`).
    pub name: String,
    /// GGUF dims, innermost first (`[cols]` or `[cols, rows]`).
    pub dims: Vec<u64>,
    /// Role in the architecture.
    pub role: Role,
    /// Block index of `blk.N.*` tensors.
    pub layer: Option<usize>,
    /// The type llama-quantize would give it.
    pub ty: GgmlType,
}

impl SynthTensor {
    /// Rows (1 for a vector) and values per row.
    pub fn rows_cols(&self) -> (usize, usize) {
        let cols = self.dims[0] as usize;
        let rows = self.dims[1..].iter().product::<u64>() as usize;
        (rows, cols)
    }
}

/// The tensors of a `shape` model with `n_vocab` tokens stored as `ft`, in file order
/// (`token_embd`, the blocks, `output_norm`, `output`).
pub fn plan(shape: &Shape, n_vocab: usize, ft: FileType) -> Vec<SynthTensor> {
    let model = ModelShape {
        n_layers: shape.n_layers,
        n_gqa: shape.n_heads / shape.n_kv_heads.max(1),
        has_output: !shape.tied,
    };
    let (d, f, v) = (shape.dim as u64, shape.ffn_dim as u64, n_vocab as u64);
    let kv = (shape.n_kv_heads * shape.head_dim()) as u64;
    let mut out = Vec::new();
    let mut add = |name: String, dims: Vec<u64>, role: Role, layer: Option<usize>| {
        let ty = tensor_type(ft, &Overrides::default(), &model, role, layer, &dims);
        out.push(SynthTensor {
            name,
            dims,
            role,
            layer,
            ty,
        });
    };
    add(
        "token_embd.weight".into(),
        vec![d, v],
        Role::TokenEmbd,
        None,
    );
    for l in 0..shape.n_layers {
        let layer: [(&str, Vec<u64>, Role); 9] = [
            ("attn_norm", vec![d], Role::AttnNorm),
            ("attn_q", vec![d, d], Role::AttnQ),
            ("attn_k", vec![d, kv], Role::AttnK),
            ("attn_v", vec![d, kv], Role::AttnV),
            ("attn_output", vec![d, d], Role::AttnOutput),
            ("ffn_norm", vec![d], Role::FfnNorm),
            ("ffn_gate", vec![d, f], Role::FfnGate),
            ("ffn_up", vec![d, f], Role::FfnUp),
            ("ffn_down", vec![f, d], Role::FfnDown),
        ];
        for (name, dims, role) in layer {
            add(format!("blk.{l}.{name}.weight"), dims, role, Some(l));
        }
    }
    add("output_norm.weight".into(), vec![d], Role::OutputNorm, None);
    if !shape.tied {
        add("output.weight".into(), vec![d, v], Role::Output, None);
    }
    out
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model shape.
    pub shape: Shape,
    /// llama.cpp file type (the type mix).
    pub file_type: FileType,
    /// Seed of every weight stream.
    pub seed: u64,
    /// `general.name`.
    pub name: String,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data (without padding).
    pub data_bytes: u64,
}

/// Standard deviation of the weight matrices and of the noise around the norms' 1.0.
const WEIGHT_STD: f32 = 0.02;

fn write_metadata(w: &mut GgufWriter, opts: &Options, vocab: &Vocab) -> cinder_quant::Result<()> {
    let s = &opts.shape;
    let u32_of = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    w.add_string(keys::GENERAL_ARCHITECTURE, "llama")?;
    w.add_string("general.type", "model")?;
    w.add_string(keys::GENERAL_NAME, &opts.name)?;
    w.add_u32(keys::LLAMA_BLOCK_COUNT, u32_of(s.n_layers))?;
    w.add_u32(keys::LLAMA_CONTEXT_LENGTH, u32_of(s.context_length))?;
    w.add_u32(keys::LLAMA_EMBEDDING_LENGTH, u32_of(s.dim))?;
    w.add_u32(keys::LLAMA_FEED_FORWARD_LENGTH, u32_of(s.ffn_dim))?;
    w.add_u32(keys::LLAMA_ATTENTION_HEAD_COUNT, u32_of(s.n_heads))?;
    w.add_u32(keys::LLAMA_ATTENTION_HEAD_COUNT_KV, u32_of(s.n_kv_heads))?;
    w.add_f32(keys::LLAMA_ROPE_FREQ_BASE, s.rope_base)?;
    w.add_f32(keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON, s.norm_eps)?;
    w.add_u32(keys::GENERAL_FILE_TYPE, opts.file_type.id())?;
    w.add_u32(keys::LLAMA_VOCAB_SIZE, u32_of(vocab.len()))?;
    w.add_u32(keys::LLAMA_ROPE_DIMENSION_COUNT, u32_of(s.head_dim()))?;
    w.add_string(keys::TOKENIZER_MODEL, "llama")?;
    w.add_string("tokenizer.ggml.pre", "default")?;
    w.add_array(keys::TOKENIZER_TOKENS, vocab.tokens.clone())?;
    w.add_array(keys::TOKENIZER_SCORES, vocab.scores.clone())?;
    w.add_array(keys::TOKENIZER_TOKEN_TYPE, vocab.token_types.clone())?;
    if let Some(id) = vocab.bos_id {
        w.add_u32(keys::TOKENIZER_BOS_TOKEN_ID, id)?;
    }
    if let Some(id) = vocab.eos_id {
        w.add_u32(keys::TOKENIZER_EOS_TOKEN_ID, id)?;
    }
    w.add_u32(keys::TOKENIZER_UNKNOWN_TOKEN_ID, vocab.unk_id)?;
    if let Some(id) = vocab.pad_id {
        w.add_u32(keys::TOKENIZER_PADDING_TOKEN_ID, id)?;
    }
    w.add_bool(keys::TOKENIZER_ADD_BOS_TOKEN, true)?;
    w.add_bool(keys::TOKENIZER_ADD_EOS_TOKEN, false)?;
    w.add_u32(keys::GENERAL_QUANTIZATION_VERSION, QUANTIZATION_VERSION)?;
    Ok(())
}

/// Generate and encode every row of `t` (tensor number `index` of the file) into `data`.
fn encode_tensor(
    t: &SynthTensor,
    index: usize,
    seed: u64,
    data: &mut [u8],
) -> cinder_quant::Result<()> {
    let (rows, cols) = t.rows_cols();
    let row_bytes = data.len() / rows.max(1);
    let is_norm = t.dims.len() == 1;
    let (mean, std) = if is_norm {
        (1.0, WEIGHT_STD)
    } else {
        (0.0, WEIGHT_STD)
    };
    data.par_chunks_mut(row_bytes.max(1))
        .enumerate()
        .try_for_each_init(
            || vec![0f32; cols],
            |values, (row, out)| {
                Rng::derive(seed, index as u64, row as u64).fill_normal(values, mean, std);
                cinder_quant::reference::quantize(t.ty, values, out)
            },
        )
}

/// Write a synthetic model to `path` (through `path.partial`, renamed at the end), calling
/// `progress` after each tensor.
pub fn write(
    path: &Path,
    opts: &Options,
    vocab: &Vocab,
    progress: &mut dyn FnMut(&SynthTensor),
) -> Result<Summary> {
    opts.shape.validate()?;
    if vocab.is_empty() {
        return Err(Error::BadShape("the tokenizer has no tokens".into()));
    }
    let gguf = |source| Error::Gguf {
        path: path.to_path_buf(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let io = |source| Error::Io {
        path: partial.clone(),
        source,
    };

    let tensors = plan(&opts.shape, vocab.len(), opts.file_type);
    let mut w = GgufWriter::new();
    write_metadata(&mut w, opts, vocab).map_err(gguf)?;
    for t in &tensors {
        w.add_tensor_info(&t.name, &t.dims, t.ty).map_err(gguf)?;
    }
    let file = File::create(&partial).map_err(io)?;
    let written = (|| -> Result<u64> {
        let mut out = BufWriter::with_capacity(1 << 22, file);
        w.write_header(&mut out).map_err(gguf)?;
        let mut data_bytes = 0u64;
        for (i, t) in tensors.iter().enumerate() {
            let size = w.tensor_size(&t.name).unwrap_or(0);
            let size = usize::try_from(size)
                .map_err(|_| Error::BadShape(format!("tensor {} is too large", t.name)))?;
            let mut data = vec![0u8; size];
            encode_tensor(t, i, opts.seed, &mut data).map_err(gguf)?;
            w.write_tensor_data(&mut out, &t.name, &data)
                .map_err(gguf)?;
            data_bytes += size as u64;
            progress(t);
        }
        w.finish().map_err(gguf)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        Ok(data_bytes)
    })();
    let data_bytes = match written {
        Ok(n) => n,
        Err(e) => {
            // Best effort: do not leave a half-written file behind.
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Summary {
        tensors: tensors.len(),
        data_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_m_plan_of_7b_matches_llama_quantize_mix() {
        let s = Shape::named("llama2-7b").expect("known shape");
        let p = plan(&s, 32000, FileType::Q4_K_M);
        assert_eq!(p.len(), 2 + 9 * 32 + 1);
        let ty = |n: &str| p.iter().find(|t| t.name == n).map(|t| t.ty);
        assert_eq!(ty("output.weight"), Some(GgmlType::Q6_K));
        assert_eq!(ty("token_embd.weight"), Some(GgmlType::Q4_K));
        assert_eq!(ty("blk.0.attn_v.weight"), Some(GgmlType::Q6_K));
        assert_eq!(ty("blk.4.attn_v.weight"), Some(GgmlType::Q4_K));
        assert_eq!(ty("blk.6.ffn_down.weight"), Some(GgmlType::Q6_K));
        assert_eq!(ty("blk.5.ffn_down.weight"), Some(GgmlType::Q4_K));
        assert_eq!(ty("blk.5.attn_norm.weight"), Some(GgmlType::F32));
        let q6 = p.iter().filter(|t| t.ty == GgmlType::Q6_K).count();
        // 16 attn_v + 16 ffn_down + output.
        assert_eq!(q6, 33);
    }

    #[test]
    fn stories_like_shape_is_tied_and_falls_back_like_the_real_one() {
        let s = Shape::named("stories260k-like").expect("known shape");
        let p = plan(&s, 512, FileType::Q4_0);
        assert!(p.iter().all(|t| t.name != "output.weight"));
        let ty = |n: &str| p.iter().find(|t| t.name == n).map(|t| t.ty);
        // 172-wide rows fit no quantized block: F16 as llama-quantize does.
        assert_eq!(ty("blk.0.ffn_down.weight"), Some(GgmlType::F16));
        // Tied embedding with 64-wide rows: the output rule's Q8_0.
        assert_eq!(ty("token_embd.weight"), Some(GgmlType::Q8_0));
    }

    #[test]
    fn shapes_validate() {
        for n in Shape::NAMES {
            Shape::named(n)
                .expect("known shape")
                .validate()
                .expect("valid");
        }
        let mut s = Shape::named("llama2-7b").expect("known shape");
        s.n_kv_heads = 5;
        assert!(s.validate().is_err());
        assert!(Shape::named("gpt2").is_none());
    }
}
