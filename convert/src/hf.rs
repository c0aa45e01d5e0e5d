//! A Hugging Face Llama checkpoint folder: `config.json`, safetensors weights (one file or
//! shards with `model.safetensors.index.json`), read tensor by tensor through memory maps.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;

use crate::error::{Error, Result};

/// The hyperparameters of a Llama checkpoint, from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `hidden_size`: width of the residual stream.
    pub hidden_size: usize,
    /// `intermediate_size`: width of the SwiGLU feed-forward layer.
    pub intermediate_size: usize,
    /// `num_hidden_layers`.
    pub num_layers: usize,
    /// `num_attention_heads`.
    pub num_heads: usize,
    /// `num_key_value_heads` (defaults to `num_attention_heads`; fewer means GQA).
    pub num_kv_heads: usize,
    /// `head_dim` (defaults to `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// `rms_norm_eps`.
    pub rms_norm_eps: f32,
    /// `rope_theta` (defaults to 10000, as Llama 2).
    pub rope_theta: f32,
    /// `max_position_embeddings`: the training context length.
    pub context_length: usize,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `tie_word_embeddings`: no `lm_head.weight`; the output projection is the embedding.
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    /// Parse and check a `config.json` text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        let json: Json = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let archs: Vec<&str> = json
            .get("architectures")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let model_type = json.get("model_type").and_then(Json::as_str).unwrap_or("");
        if !archs.contains(&"LlamaForCausalLM") && model_type != "llama" {
            return Err(bad(format!(
                "unsupported architecture {archs:?} (model_type {model_type:?}): cinder converts LlamaForCausalLM"
            )));
        }
        let int = |key: &str| -> Result<Option<usize>> {
            match json.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .map(Some)
                    .ok_or_else(|| bad(format!("{key} must be a positive integer, found {v}"))),
            }
        };
        let required = |key: &str| int(key)?.ok_or_else(|| bad(format!("missing {key}")));
        let float = |key: &str, default: Option<f32>| -> Result<f32> {
            match json.get(key) {
                None | Some(Json::Null) => default.ok_or_else(|| bad(format!("missing {key}"))),
                Some(v) => v
                    .as_f64()
                    .map(|x| x as f32)
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| bad(format!("{key} must be a positive number, found {v}"))),
            }
        };
        let hidden_size = required("hidden_size")?;
        let num_heads = required("num_attention_heads")?;
        let num_kv_heads = int("num_key_value_heads")?.unwrap_or(num_heads);
        if hidden_size % num_heads != 0 {
            return Err(bad(format!(
                "hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads}"
            )));
        }
        if num_heads % num_kv_heads != 0 {
            return Err(bad(format!(
                "num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"
            )));
        }
        let head_dim = int("head_dim")?.unwrap_or(hidden_size / num_heads);
        if head_dim != hidden_size / num_heads {
            return Err(bad(format!(
                "head_dim {head_dim} differs from hidden_size / num_attention_heads = {}: not a Llama 2 layout",
                hidden_size / num_heads
            )));
        }
        if head_dim % 2 != 0 {
            return Err(bad(format!(
                "head_dim {head_dim} is odd: rotary embeddings need pairs"
            )));
        }
        if let Some(s) = json.get("rope_scaling").filter(|v| !v.is_null()) {
            return Err(bad(format!(
                "rope_scaling {s} is not supported (Llama 2 has none)"
            )));
        }
        for key in ["attention_bias", "mlp_bias"] {
            if json.get(key).and_then(Json::as_bool) == Some(true) {
                return Err(bad(format!(
                    "{key}: true is not supported (Llama 2 has no biases)"
                )));
            }
        }
        if let Some(act) = json.get("hidden_act").and_then(Json::as_str)
            && act != "silu"
        {
            return Err(bad(format!(
                "hidden_act {act:?} is not supported (Llama uses silu)"
            )));
        }
        Ok(LlamaConfig {
            hidden_size,
            intermediate_size: required("intermediate_size")?,
            num_layers: required("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: float("rms_norm_eps", None)?,
            rope_theta: float("rope_theta", Some(10000.0))?,
            context_length: required("max_position_embeddings")?,
            vocab_size: required("vocab_size")?,
            tie_word_embeddings: json
                .get("tie_word_embeddings")
                .and_then(Json::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Element types of checkpoint tensors that cinder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceDtype {
    /// float32.
    F32,
    /// float16.
    F16,
    /// bfloat16.
    BF16,
}

impl SourceDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            SourceDtype::F32 => 4,
            SourceDtype::F16 | SourceDtype::BF16 => 2,
        }
    }

    /// Convert little-endian elements (any alignment) to f32, `out.len()` of them.
    pub fn to_f32(self, bytes: &[u8], out: &mut [f32]) {
        assert_eq!(
            bytes.len(),
            out.len() * self.size(),
            "source bytes and output length disagree"
        );
        match self {
            SourceDtype::F32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            SourceDtype::F16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
            }
            SourceDtype::BF16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
                }
            }
        }
    }
}

/// Where one checkpoint tensor lives.
#[derive(Debug, Clone)]
pub struct SourceTensor {
    /// Index of the shard in [`Checkpoint::shards`].
    pub shard: usize,
    /// Element type.
    pub dtype: SourceDtype,
    /// Shape, outermost first (PyTorch order).
    pub shape: Vec<usize>,
    /// Byte range inside the shard file.
    pub range: std::ops::Range<usize>,
}

/// One memory-mapped safetensors file.
pub struct Shard {
    /// The file.
    pub path: PathBuf,
    map: Mmap,
}

/// A checkpoint folder opened for reading.
pub struct Checkpoint {
    /// The folder.
    pub dir: PathBuf,
    /// Its `config.json`.
    pub config: LlamaConfig,
    /// The safetensors files.
    pub shards: Vec<Shard>,
    /// Every tensor by Hugging Face name.
    pub tensors: BTreeMap<String, SourceTensor>,
}

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // SAFETY: read-only private map; checkpoint files are inputs that nobody rewrites while a
    // conversion runs (the same contract as the safetensors crate's own examples). Every
    // access goes through bounds-checked slices validated against the file length.
    unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl Checkpoint {
    /// Open `dir`: parse `config.json`, find the weight files, and validate every safetensors
    /// header (offsets tile the data exactly, dtypes are float32/float16/bfloat16).
    pub fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = LlamaConfig::parse(&config_path, &read_to_string(&config_path)?)?;
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        // The files to open, and for sharded checkpoints which file each tensor must be in.
        let (files, expected): (Vec<String>, Option<BTreeMap<String, String>>) = if index.exists() {
            let text = read_to_string(&index)?;
            let json: Json = serde_json::from_str(&text).map_err(|e| Error::BadIndex {
                path: index.clone(),
                reason: format!("not JSON: {e}"),
            })?;
            let map = json
                .get("weight_map")
                .and_then(Json::as_object)
                .ok_or_else(|| Error::BadIndex {
                    path: index.clone(),
                    reason: "no weight_map object".into(),
                })?;
            let mut expected = BTreeMap::new();
            for (name, file) in map {
                let file = file
                    .as_str()
                    .filter(|f| is_plain_file_name(f))
                    .ok_or_else(|| Error::BadIndex {
                        path: index.clone(),
                        reason: format!(
                            "tensor {name}: file {file} is not a file name in this folder"
                        ),
                    })?;
                expected.insert(name.clone(), file.to_string());
            }
            let mut files: Vec<String> = expected.values().cloned().collect();
            files.sort();
            files.dedup();
            (files, Some(expected))
        } else if single.exists() {
            (vec!["model.safetensors".into()], None)
        } else {
            return Err(Error::MissingWeights {
                dir: dir.to_path_buf(),
            });
        };
        let mut shards = Vec::new();
        let mut tensors = BTreeMap::new();
        for (i, file) in files.iter().enumerate() {
            let path = dir.join(file);
            if !path.exists() {
                return Err(Error::MissingShard {
                    path,
                    index: index.clone(),
                });
            }
            let map = map_file(&path)?;
            for (name, tensor) in read_shard(&map, &path, i)? {
                if let Some(expected) = &expected
                    && expected.get(&name).map(String::as_str) != Some(file.as_str())
                {
                    return Err(Error::BadIndex {
                        path: index.clone(),
                        reason: format!("tensor {name} is in {file} but the index does not say so"),
                    });
                }
                tensors.insert(name, tensor);
            }
            shards.push(Shard { path, map });
        }
        if let Some(expected) = &expected
            && let Some(name) = expected.keys().find(|n| !tensors.contains_key(*n))
        {
            return Err(Error::MissingTensor {
                name: name.clone(),
                path: dir.join(&expected[name]),
            });
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            config,
            shards,
            tensors,
        })
    }

    /// The tensor named `name`, or an error naming the checkpoint.
    pub fn tensor(&self, name: &str) -> Result<&SourceTensor> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            path: self.dir.clone(),
        })
    }

    /// The raw bytes of rows `rows` of `t` (rows = outermost dimension).
    pub fn rows_bytes(&self, t: &SourceTensor, rows: std::ops::Range<usize>) -> &[u8] {
        tensor_rows(&self.shards[t.shard].map, t, rows)
    }

    /// Tell the kernel that the bytes of `t` will not be read again, so the mapped pages leave
    /// this process's resident set (a 7B checkpoint would otherwise become resident whole).
    pub fn release(&self, t: &SourceTensor) {
        const PAGE: usize = 4096;
        let start = t.range.start.div_ceil(PAGE) * PAGE;
        let end = t.range.end / PAGE * PAGE;
        if end > start {
            let map = &self.shards[t.shard].map;
            // SAFETY: MADV_DONTNEED on a read-only private file mapping only drops this
            // process's page-table entries; later reads fault the same file bytes back in, so
            // no slice borrowed from the map can observe different contents.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

/// The tensors of one safetensors file, `bytes`, which is shard number `shard` of its
/// checkpoint (`path` names it in errors): the header is validated (offsets tile the data
/// exactly, sizes match shapes) and every dtype must be float32, float16 or bfloat16.
pub fn read_shard(bytes: &[u8], path: &Path, shard: usize) -> Result<Vec<(String, SourceTensor)>> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::BadSafetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let data_start = 8 + header_len;
    let mut out = Vec::new();
    for (name, info) in metadata.tensors() {
        let dtype = match info.dtype {
            Dtype::F32 => SourceDtype::F32,
            Dtype::F16 => SourceDtype::F16,
            Dtype::BF16 => SourceDtype::BF16,
            other => {
                return Err(Error::BadSafetensors {
                    path: path.to_path_buf(),
                    reason: format!("tensor {name}: dtype {other:?} (cinder reads F32, F16, BF16)"),
                });
            }
        };
        let (start, end) = info.data_offsets;
        let range = data_start + start..data_start + end;
        out.push((
            name,
            SourceTensor {
                shard,
                dtype,
                shape: info.shape.clone(),
                range,
            },
        ));
    }
    Ok(out)
}

/// The raw bytes of rows `rows` of `t` (rows = outermost dimension; a scalar is one row) in
/// the shard `bytes` it was read from by [`read_shard`]. Panics if the rows are outside `t`.
pub fn tensor_rows<'a>(
    bytes: &'a [u8],
    t: &SourceTensor,
    rows: std::ops::Range<usize>,
) -> &'a [u8] {
    let inner = t.shape.get(1..).unwrap_or(&[]);
    let row_bytes = inner.iter().product::<usize>() * t.dtype.size();
    let start = t.range.start + rows.start * row_bytes;
    let end = t.range.start + rows.end * row_bytes;
    assert!(
        rows.start <= rows.end && end <= t.range.end,
        "rows {rows:?} outside tensor"
    );
    &bytes[start..end]
}

/// A name with no directory part (index files must not point outside the folder).
fn is_plain_file_name(f: &str) -> bool {
    !f.is_empty() && !f.contains('/') && !f.contains('\\') && f != "." && f != ".."
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    /// A safetensors file holding `tensors` (name, dtype, shape, bytes).
    fn shard(tensors: &[(&str, &str, &[usize], &[u8])]) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape,
                    "data_offsets": [data.len(), data.len() + bytes.len()]}),
            );
            data.extend_from_slice(bytes);
        }
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header);
        out.extend(data);
        out
    }

    #[test]
    fn a_scalar_tensor_is_one_row_not_a_panic() {
        let bytes = shard(&[("s", "F32", &[], &1.5f32.to_le_bytes())]);
        let tensors = read_shard(&bytes, Path::new("s.safetensors"), 0).unwrap();
        let (_, t) = &tensors[0];
        assert_eq!(tensor_rows(&bytes, t, 0..1), 1.5f32.to_le_bytes());
    }

    #[test]
    fn a_shard_with_an_integer_dtype_is_an_error_naming_the_tensor() {
        let bytes = shard(&[("i", "I64", &[1], &[0; 8])]);
        let e = read_shard(&bytes, Path::new("i.safetensors"), 0).unwrap_err();
        assert!(e.to_string().contains("tensor i: dtype I64"), "{e}");
    }
}
