//! The conversion: checkpoint folder in, GGUF file out, tensor by tensor.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cinder_quant::GgmlType;
use cinder_quant::gguf::{GgufWriter, keys};
use rayon::prelude::*;
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::hf::{Checkpoint, LlamaConfig, SourceTensor};
use crate::names::{self, Role};
use crate::permute::unpermute_rows;
use crate::plan::{self, FileType, ModelShape, Overrides};
use crate::vocab::{TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNUSED, TOKEN_TYPE_USER_DEFINED, Vocab};

/// `general.quantization_version` of ggml's current block formats.
pub const QUANTIZATION_VERSION: u32 = 2;

/// What to convert and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Hugging Face checkpoint folder.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// The file type (`--type`).
    pub file_type: FileType,
    /// `--pure`, `--output-tensor-type`, `--token-embedding-type`.
    pub overrides: Overrides,
    /// Replace an existing output file.
    pub force: bool,
    /// Warn about NaN/Inf weights instead of refusing to convert.
    pub allow_nonfinite: bool,
    /// `general.name` (default: the checkpoint folder's name).
    pub name: Option<String>,
}

/// Progress reports, for a progress bar.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The plan is made: this many tensors and source bytes to go.
    Start {
        /// Tensors to write.
        tensors: usize,
        /// Bytes of checkpoint data to read.
        bytes: u64,
    },
    /// A tensor was written.
    Tensor {
        /// Its GGUF name.
        name: &'a str,
        /// Its GGUF type.
        ty: GgmlType,
        /// Checkpoint bytes it was made from.
        bytes: u64,
    },
    /// Something the user should know that does not stop the conversion.
    Warning(String),
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The output file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// Number of weights.
    pub params: u64,
    /// Bytes of tensor data.
    pub tensor_bytes: u64,
    /// Tensors per GGUF type.
    pub types: BTreeMap<GgmlType, usize>,
    /// Seconds the conversion took.
    pub seconds: f64,
}

impl Summary {
    /// Bits per weight over all tensors.
    pub fn bits_per_weight(&self) -> f64 {
        self.tensor_bytes as f64 * 8.0 / self.params.max(1) as f64
    }
}

/// One tensor of the output and where it comes from.
struct Planned<'a> {
    name: String,
    role: Role,
    source: &'a SourceTensor,
    hf_name: String,
    /// GGUF dims, innermost first.
    dims: Vec<u64>,
    ty: GgmlType,
}

/// The shape a tensor must have (PyTorch order), from the config.
fn expected_shape(c: &LlamaConfig, role: Role) -> Vec<usize> {
    let (h, hd) = (c.hidden_size, c.head_dim);
    match role {
        Role::TokenEmbd | Role::Output => vec![c.vocab_size, h],
        Role::AttnNorm | Role::FfnNorm | Role::OutputNorm => vec![h],
        Role::AttnQ => vec![c.num_heads * hd, h],
        Role::AttnK | Role::AttnV => vec![c.num_kv_heads * hd, h],
        Role::AttnOutput => vec![h, c.num_heads * hd],
        Role::FfnGate | Role::FfnUp => vec![c.intermediate_size, h],
        Role::FfnDown => vec![h, c.intermediate_size],
    }
}

/// Settings from `tokenizer_config.json` (all optional).
struct TokenizerConfig {
    add_bos: bool,
    add_eos: bool,
    chat_template: Option<String>,
    /// `add_prefix_space`, written as `tokenizer.ggml.add_space_prefix` when present.
    add_space_prefix: Option<bool>,
    /// Whether tokenizer.json's pair template puts a separator between sequences.
    add_sep: Option<bool>,
    /// `added_tokens_decoder`: id, content, special.
    added: Vec<(usize, String, bool)>,
}

fn read_tokenizer_config(dir: &Path) -> Result<TokenizerConfig> {
    let path = dir.join("tokenizer_config.json");
    let mut tc = TokenizerConfig {
        add_bos: true,
        add_eos: false,
        chat_template: None,
        add_space_prefix: None,
        add_sep: read_add_sep(dir)?,
        added: Vec::new(),
    };
    if !path.exists() {
        return Ok(tc);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let json: Json = serde_json::from_str(&text).map_err(|e| Error::BadConfig {
        path: path.clone(),
        reason: format!("not JSON: {e}"),
    })?;
    if let Some(b) = json.get("add_bos_token").and_then(Json::as_bool) {
        tc.add_bos = b;
    }
    if let Some(b) = json.get("add_eos_token").and_then(Json::as_bool) {
        tc.add_eos = b;
    }
    tc.add_space_prefix = json.get("add_prefix_space").and_then(Json::as_bool);
    if let Some(map) = json.get("added_tokens_decoder").and_then(Json::as_object) {
        for (id, t) in map {
            let (Ok(id), Some(content)) =
                (id.parse::<usize>(), t.get("content").and_then(Json::as_str))
            else {
                return Err(Error::BadConfig {
                    path: path.clone(),
                    reason: format!("added_tokens_decoder entry {id} is malformed"),
                });
            };
            let special = t.get("special").and_then(Json::as_bool).unwrap_or(false);
            tc.added.push((id, content.to_string(), special));
        }
    }
    tc.chat_template = match json.get("chat_template") {
        Some(Json::String(s)) => Some(s.clone()),
        // A list of named templates: llama.cpp's converter keeps the one named "default".
        Some(Json::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
            .and_then(|t| t.get("template").and_then(Json::as_str))
            .map(str::to_string),
        _ => None,
    };
    Ok(tc)
}

/// llama.cpp's treatment of added tokens: `added_tokens.json` entries become user-defined
/// pieces, `added_tokens_decoder` entries control pieces when special (user-defined with `▁`
/// as a space otherwise), all with score -1000.
fn apply_added_tokens(dir: &Path, vocab: &mut Vocab, tc: &TokenizerConfig) -> Result<()> {
    let n = vocab.tokens.len();
    let path = dir.join("added_tokens.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let json: Json = serde_json::from_str(&text).map_err(|e| Error::BadConfig {
            path: path.clone(),
            reason: format!("not JSON: {e}"),
        })?;
        for (content, id) in json.as_object().into_iter().flatten() {
            let Some(id) = id.as_u64().map(|i| i as usize).filter(|&i| i < n) else {
                continue;
            };
            vocab.tokens[id] = content.clone();
            vocab.scores[id] = -1000.0;
            vocab.token_types[id] = TOKEN_TYPE_USER_DEFINED;
        }
    }
    for (id, content, special) in &tc.added {
        if *id >= n {
            continue;
        }
        let looks_special = content.starts_with("<|") && content.ends_with("|>");
        if *special || looks_special {
            vocab.tokens[*id] = content.clone();
            vocab.token_types[*id] = TOKEN_TYPE_CONTROL;
        } else {
            vocab.tokens[*id] = content.replace('\u{2581}', " ");
            vocab.token_types[*id] = TOKEN_TYPE_USER_DEFINED;
        }
        vocab.scores[*id] = -1000.0;
    }
    Ok(())
}

/// gguf-py's reading of tokenizer.json's pair template: whether a separator (the sep or eos
/// token) stands between the two sequences. `None` without a TemplateProcessing pair.
fn read_add_sep(dir: &Path) -> Result<Option<bool>> {
    let path = dir.join("tokenizer.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let json: Json = serde_json::from_str(&text).map_err(|e| Error::BadConfig {
        path: path.clone(),
        reason: format!("not JSON: {e}"),
    })?;
    let Some(pp) = json
        .get("post_processor")
        .filter(|p| p.get("type").and_then(Json::as_str) == Some("TemplateProcessing"))
    else {
        return Ok(None);
    };
    let Some(pair) = pp.get("pair").and_then(Json::as_array) else {
        return Ok(None);
    };
    let special = |e: &Json| {
        e.get("SpecialToken")
            .and_then(|s| s.get("id"))
            .and_then(Json::as_str)
            .map(str::to_string)
    };
    let seq = |e: &Json| {
        e.get("Sequence")
            .and_then(|s| s.get("id"))
            .and_then(Json::as_str)
            .map(str::to_string)
    };
    let (Some(a), Some(b)) = (
        pair.iter().position(|e| seq(e).as_deref() == Some("A")),
        pair.iter().position(|e| seq(e).as_deref() == Some("B")),
    ) else {
        return Ok(None);
    };
    let tc: Option<Json> = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let name = |k: &str| {
        tc.as_ref().and_then(|c| c.get(k)).and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.get("content").and_then(Json::as_str).map(str::to_string))
        })
    };
    let seps = [name("sep_token"), name("eos_token")];
    let between = if a < b { &pair[a + 1..b] } else { &[][..] };
    Ok(Some(
        between
            .iter()
            .filter_map(special)
            .any(|s| seps.contains(&Some(s))),
    ))
}

/// Convert a checkpoint folder to a GGUF file (see [`Options`]).
pub fn convert(opts: &Options, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Summary> {
    let started = Instant::now();
    if opts.output.exists() && !opts.force {
        return Err(Error::OutputExists {
            path: opts.output.clone(),
        });
    }
    let ckpt = Checkpoint::open(&opts.input)?;
    let config = &ckpt.config;
    let tok_path = opts.input.join("tokenizer.model");
    if !tok_path.exists() {
        return Err(Error::Io {
            path: tok_path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no tokenizer.model (SentencePiece) in the checkpoint",
            ),
        });
    }
    let mut vocab = Vocab::read(&tok_path)?;
    if vocab.len() > config.vocab_size {
        return Err(Error::BadConfig {
            path: opts.input.join("config.json"),
            reason: format!(
                "vocab_size {} is smaller than the tokenizer's {} pieces",
                config.vocab_size,
                vocab.len()
            ),
        });
    }
    // Like llama.cpp's converter: ids past the tokenizer's pieces are unused "[PAD<id>]" pieces.
    for id in vocab.len()..config.vocab_size {
        vocab.tokens.push(format!("[PAD{id}]"));
        vocab.scores.push(-10000.0);
        vocab.token_types.push(TOKEN_TYPE_UNUSED);
    }
    let tc = read_tokenizer_config(&opts.input)?;
    apply_added_tokens(&opts.input, &mut vocab, &tc)?;

    // Map every checkpoint tensor to its GGUF name; anything unknown is an error.
    let mut by_name: BTreeMap<String, (String, Role, &SourceTensor)> = BTreeMap::new();
    for (hf_name, src) in &ckpt.tensors {
        if names::is_ignored(hf_name) {
            continue;
        }
        let mapped = names::map_name(hf_name).ok_or_else(|| Error::UnexpectedTensor {
            name: hf_name.clone(),
            path: ckpt.shards[src.shard].path.clone(),
        })?;
        if mapped.layer.is_some_and(|l| l >= config.num_layers) {
            return Err(Error::UnexpectedTensor {
                name: hf_name.clone(),
                path: ckpt.shards[src.shard].path.clone(),
            });
        }
        by_name.insert(mapped.name, (hf_name.clone(), mapped.role, src));
    }
    let has_output = by_name.contains_key("output.weight");
    if !has_output && !config.tie_word_embeddings {
        return Err(Error::MissingTensor {
            name: "lm_head.weight".into(),
            path: opts.input.clone(),
        });
    }
    let shape = ModelShape {
        n_layers: config.num_layers,
        n_gqa: config.num_heads / config.num_kv_heads,
        has_output,
    };
    let mut planned = Vec::new();
    for name in names::expected_order(config.num_layers, has_output) {
        let (hf_name, role, source) =
            by_name.remove(&name).ok_or_else(|| Error::MissingTensor {
                name: format!("{name} (Hugging Face name for layer tensors: model.layers.N...)"),
                path: opts.input.clone(),
            })?;
        let want = expected_shape(config, role);
        if source.shape != want {
            return Err(Error::ShapeMismatch {
                name: hf_name,
                path: ckpt.shards[source.shard].path.clone(),
                found: source.shape.clone(),
                expected: want,
            });
        }
        let dims: Vec<u64> = source.shape.iter().rev().map(|&d| d as u64).collect();
        let layer = name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse().ok());
        let ty = plan::tensor_type(opts.file_type, &opts.overrides, &shape, role, layer, &dims);
        if ty.row_bytes(dims[0] as usize).is_none() || !ty.has_reference() {
            return Err(Error::IncompatibleType {
                name,
                ty,
                row: dims[0],
            });
        }
        planned.push(Planned {
            name,
            role,
            source,
            hf_name,
            dims,
            ty,
        });
    }

    let mut w = GgufWriter::new();
    let gguf = |e| Error::Gguf {
        path: opts.output.clone(),
        source: e,
    };
    write_metadata(&mut w, opts, config, &vocab, &tc).map_err(gguf)?;
    for p in &planned {
        w.add_tensor_info(&p.name, &p.dims, p.ty).map_err(gguf)?;
    }
    let total_bytes: u64 = planned.iter().map(|p| p.source.range.len() as u64).sum();
    progress(Progress::Start {
        tensors: planned.len(),
        bytes: total_bytes,
    });

    let tmp = temp_path(&opts.output);
    let result = write_file(&tmp, w, &planned, &ckpt, opts, progress);
    let finish = result.and_then(|()| {
        std::fs::rename(&tmp, &opts.output).map_err(|source| Error::Io {
            path: opts.output.clone(),
            source,
        })
    });
    if let Err(e) = finish {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let file_bytes = std::fs::metadata(&opts.output)
        .map(|m| m.len())
        .unwrap_or(0);
    let mut types = BTreeMap::new();
    for p in &planned {
        *types.entry(p.ty).or_insert(0) += 1;
    }
    Ok(Summary {
        path: opts.output.clone(),
        file_bytes,
        params: planned.iter().map(|p| p.dims.iter().product::<u64>()).sum(),
        tensor_bytes: planned
            .iter()
            .map(|p| p.ty.bytes_for(p.dims.iter().product()).unwrap_or(0))
            .sum(),
        types,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The file written before it is renamed to `output`: `.NAME.partial-PID` beside it, never
/// mistaken for a finished `.gguf` (a caller that is interrupted removes it).
pub fn temp_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn write_metadata(
    w: &mut GgufWriter,
    opts: &Options,
    c: &LlamaConfig,
    v: &Vocab,
    tc: &TokenizerConfig,
) -> cinder_quant::Result<()> {
    let name = opts.name.clone().unwrap_or_else(|| {
        opts.input
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "llama".into())
    });
    let u32_of = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    w.add_string(keys::GENERAL_ARCHITECTURE, "llama")?;
    w.add_string("general.type", "model")?;
    w.add_string(keys::GENERAL_NAME, &name)?;
    w.add_u32(keys::LLAMA_BLOCK_COUNT, u32_of(c.num_layers))?;
    w.add_u32(keys::LLAMA_CONTEXT_LENGTH, u32_of(c.context_length))?;
    w.add_u32(keys::LLAMA_EMBEDDING_LENGTH, u32_of(c.hidden_size))?;
    w.add_u32(keys::LLAMA_FEED_FORWARD_LENGTH, u32_of(c.intermediate_size))?;
    w.add_u32(keys::LLAMA_ATTENTION_HEAD_COUNT, u32_of(c.num_heads))?;
    w.add_u32(keys::LLAMA_ATTENTION_HEAD_COUNT_KV, u32_of(c.num_kv_heads))?;
    w.add_f32(keys::LLAMA_ROPE_FREQ_BASE, c.rope_theta)?;
    w.add_f32(keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON, c.rms_norm_eps)?;
    w.add_u32(keys::GENERAL_FILE_TYPE, opts.file_type.id())?;
    w.add_u32(keys::LLAMA_VOCAB_SIZE, u32_of(c.vocab_size))?;
    w.add_u32(keys::LLAMA_ROPE_DIMENSION_COUNT, u32_of(c.head_dim))?;
    // llama.cpp's converter records these for every Llama checkpoint (transformers' config
    // fills head_dim in when config.json lacks it).
    w.add_u32("llama.attention.key_length", u32_of(c.head_dim))?;
    w.add_u32("llama.attention.value_length", u32_of(c.head_dim))?;
    w.add_string(keys::TOKENIZER_MODEL, "llama")?;
    w.add_string("tokenizer.ggml.pre", "default")?;
    w.add_array(keys::TOKENIZER_TOKENS, v.tokens.clone())?;
    w.add_array(keys::TOKENIZER_SCORES, v.scores.clone())?;
    w.add_array(keys::TOKENIZER_TOKEN_TYPE, v.token_types.clone())?;
    if let Some(id) = v.bos_id {
        w.add_u32(keys::TOKENIZER_BOS_TOKEN_ID, id)?;
    }
    if let Some(id) = v.eos_id {
        w.add_u32(keys::TOKENIZER_EOS_TOKEN_ID, id)?;
    }
    w.add_u32(keys::TOKENIZER_UNKNOWN_TOKEN_ID, v.unk_id)?;
    if let Some(id) = v.pad_id {
        w.add_u32(keys::TOKENIZER_PADDING_TOKEN_ID, id)?;
    }
    w.add_bool(keys::TOKENIZER_ADD_BOS_TOKEN, tc.add_bos)?;
    w.add_bool(keys::TOKENIZER_ADD_EOS_TOKEN, tc.add_eos)?;
    if let Some(b) = tc.add_sep {
        w.add_bool("tokenizer.ggml.add_sep_token", b)?;
    }
    if let Some(b) = tc.add_space_prefix {
        w.add_bool("tokenizer.ggml.add_space_prefix", b)?;
    }
    if let Some(t) = &tc.chat_template {
        w.add_string(keys::TOKENIZER_CHAT_TEMPLATE, t)?;
    }
    w.add_u32(keys::GENERAL_QUANTIZATION_VERSION, QUANTIZATION_VERSION)?;
    Ok(())
}

/// Read one byte of every page of `bytes` (a memory-mapped range), so the kernel reads them in.
fn prefetch(bytes: &[u8]) {
    const PAGE: usize = 4096;
    let sum = bytes.iter().step_by(PAGE).fold(0u8, |a, &b| a ^ b);
    std::hint::black_box(sum);
}

/// Rows converted at a time: bounded memory whatever the tensor size.
const CHUNK_VALUES: usize = 1 << 22;

fn write_file(
    tmp: &Path,
    mut w: GgufWriter,
    planned: &[Planned<'_>],
    ckpt: &Checkpoint,
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<()> {
    let io = |source| Error::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let gguf = |source| Error::Gguf {
        path: opts.output.clone(),
        source,
    };
    let file = File::create(tmp).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 22, file);
    w.write_header(&mut out).map_err(gguf)?;
    let c = &ckpt.config;
    for (index, p) in planned.iter().enumerate() {
        let rows = p.source.shape[0];
        let cols: usize = p.source.shape[1..].iter().product();
        let heads = match p.role {
            Role::AttnQ => Some(c.num_heads),
            Role::AttnK => Some(c.num_kv_heads),
            _ => None,
        };
        // Whole heads per chunk for permuted tensors; whole rows always.
        let unit = heads.map_or(1, |h| rows / h);
        let chunk_rows = (CHUNK_VALUES / cols.max(1)).max(1).div_ceil(unit) * unit;
        let row_bytes = p.ty.row_bytes(cols).expect("checked when planning");
        let mut data = vec![0u8; rows * row_bytes];
        let src_row_bytes = cols * p.source.dtype.size();
        let dtype = p.source.dtype;
        let mut permuted = Vec::new();
        // Fault the next tensor's pages in while this one is quantized, so disk reads overlap
        // the computation (its pages leave the resident set once it is written, as these do).
        let next = planned
            .get(index + 1)
            .map(|n| ckpt.rows_bytes(n.source, 0..n.source.shape[0]));
        std::thread::scope(|scope| -> Result<()> {
            if let Some(bytes) = next {
                scope.spawn(move || prefetch(bytes));
            }
            let mut start = 0;
            while start < rows {
                let end = (start + chunk_rows).min(rows);
                let raw = ckpt.rows_bytes(p.source, start..end);
                // Q/K: a permutation of whole rows, applied to the raw source bytes.
                let raw: &[u8] = match heads {
                    Some(_) => {
                        permuted.resize(raw.len(), 0u8);
                        let n_heads = (end - start) / unit;
                        unpermute_rows(raw, &mut permuted, n_heads, end - start, src_row_bytes);
                        &permuted
                    }
                    None => raw,
                };
                // Decode, check and quantize each row on the worker threads.
                let nonfinite = AtomicBool::new(false);
                data[start * row_bytes..end * row_bytes]
                    .par_chunks_mut(row_bytes)
                    .zip(raw.par_chunks(src_row_bytes))
                    .try_for_each_init(
                        || vec![0f32; cols],
                        |x, (o, b)| {
                            dtype.to_f32(b, x);
                            if x.iter().any(|v| !v.is_finite()) {
                                nonfinite.store(true, Ordering::Relaxed);
                                if !opts.allow_nonfinite {
                                    return Ok(());
                                }
                            }
                            cinder_quant::reference::quantize(p.ty, x, o)
                        },
                    )
                    .map_err(gguf)?;
                if nonfinite.load(Ordering::Relaxed) {
                    // Rare: find the first non-finite value in source order, for the message.
                    let mut src = vec![0f32; (end - start) * cols];
                    dtype.to_f32(ckpt.rows_bytes(p.source, start..end), &mut src);
                    if let Some(bad) = src.iter().position(|x| !x.is_finite()) {
                        let msg = format!(
                            "tensor {} has a non-finite value ({}) at row {}",
                            p.hf_name,
                            src[bad],
                            start + bad / cols.max(1)
                        );
                        if !opts.allow_nonfinite {
                            return Err(Error::NonFinite {
                                path: ckpt.shards[p.source.shard].path.clone(),
                                detail: msg,
                            });
                        }
                        progress(Progress::Warning(msg));
                    }
                }
                start = end;
            }
            Ok(())
        })?;
        ckpt.release(p.source);
        w.write_tensor_data(&mut out, &p.name, &data)
            .map_err(gguf)?;
        progress(Progress::Tensor {
            name: &p.name,
            ty: p.ty,
            bytes: p.source.range.len() as u64,
        });
    }
    w.finish().map_err(gguf)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}
