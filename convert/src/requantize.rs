//! `cinder quantize`: a GGUF file (F32/F16/BF16, or quantized with `allow_requantize`) to
//! another file type, as llama-quantize does: metadata copied, `general.file_type` and
//! `general.quantization_version` set, every matrix re-typed by the same plan as `convert`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cinder_quant::GgmlType;
use cinder_quant::gguf::{Gguf, GgufWriter, Value, keys};
use rayon::prelude::*;

use crate::convert::{Progress, QUANTIZATION_VERSION, Summary, temp_path};
use crate::error::{Error, Result};
use crate::names::gguf_role;
use crate::plan::{self, FileType, ModelShape, Overrides};

/// What to quantize and how.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// The file type.
    pub file_type: FileType,
    /// `--pure`, `--output-tensor-type`, `--token-embedding-type`.
    pub overrides: Overrides,
    /// Replace an existing output file.
    pub force: bool,
    /// Accept already-quantized input tensors (quality loss compounds).
    pub allow_requantize: bool,
}

/// Re-type the tensors of a GGUF file held in `bytes` (the mapped `opts.input`).
pub fn quantize_gguf(
    bytes: &[u8],
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary> {
    let started = Instant::now();
    let input = &opts.input;
    let bad = |e| Error::Gguf {
        path: input.clone(),
        source: e,
    };
    if opts.output.exists() && !opts.force {
        return Err(Error::OutputExists {
            path: opts.output.clone(),
        });
    }
    if same_file(input, &opts.output) {
        return Err(Error::BadConfig {
            path: opts.output.clone(),
            reason: "output is the input file".into(),
        });
    }
    let g = Gguf::parse(bytes).map_err(bad)?;
    let arch = g.get_str(keys::GENERAL_ARCHITECTURE).map_err(bad)?;
    if arch != "llama" {
        return Err(Error::BadConfig {
            path: input.clone(),
            reason: format!("architecture {arch:?}: cinder quantizes llama models"),
        });
    }
    let n_layers = g.get_u32(keys::LLAMA_BLOCK_COUNT).map_err(bad)? as usize;
    let heads = g
        .get_u32(keys::LLAMA_ATTENTION_HEAD_COUNT)
        .map_err(bad)?
        .max(1);
    let kv_heads = match g.get_u32(keys::LLAMA_ATTENTION_HEAD_COUNT_KV) {
        Ok(n) => n.max(1),
        Err(_) => heads,
    };
    let has_output = g.tensor("output.weight").is_some();
    let shape = ModelShape {
        n_layers,
        n_gqa: (heads / kv_heads) as usize,
        has_output,
    };

    let mut w = GgufWriter::new();
    let gguf_out = |e| Error::Gguf {
        path: opts.output.clone(),
        source: e,
    };
    for (key, value) in g.metadata() {
        let value = match key.as_str() {
            keys::GENERAL_FILE_TYPE => Value::U32(opts.file_type.id()),
            keys::GENERAL_QUANTIZATION_VERSION => Value::U32(QUANTIZATION_VERSION),
            _ => value.clone(),
        };
        w.add(key, value).map_err(gguf_out)?;
    }
    if g.get(keys::GENERAL_FILE_TYPE).is_none() {
        w.add_u32(keys::GENERAL_FILE_TYPE, opts.file_type.id())
            .map_err(gguf_out)?;
    }
    if g.get(keys::GENERAL_QUANTIZATION_VERSION).is_none() {
        w.add_u32(keys::GENERAL_QUANTIZATION_VERSION, QUANTIZATION_VERSION)
            .map_err(gguf_out)?;
    }
    let mut plan = Vec::new();
    for t in g.tensors() {
        let ty = match gguf_role(t.name()) {
            Some((role, layer)) => plan::tensor_type(
                opts.file_type,
                &opts.overrides,
                &shape,
                role,
                layer,
                t.dims(),
            ),
            // Tensors outside the Llama layout (e.g. rope_freqs) are copied as they are.
            None => t.ty(),
        };
        let src_is_float = matches!(t.ty(), GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        if ty != t.ty() {
            if !src_is_float && !opts.allow_requantize {
                return Err(Error::BadConfig {
                    path: input.clone(),
                    reason: format!(
                        "tensor {} is already {}; requantizing loses quality (allow it with --allow-requantize)",
                        t.name(),
                        t.ty()
                    ),
                });
            }
            if !t.ty().has_reference() || ty.row_bytes(t.dims()[0] as usize).is_none() {
                return Err(Error::IncompatibleType {
                    name: t.name().to_string(),
                    ty,
                    row: t.dims()[0],
                });
            }
        }
        w.add_tensor_info(t.name(), t.dims(), ty)
            .map_err(gguf_out)?;
        plan.push((t, ty));
    }
    let total: u64 = g.tensors().iter().map(|t| t.size()).sum();
    progress(Progress::Start {
        tensors: plan.len(),
        bytes: total,
    });

    let tmp = temp_path(&opts.output);
    let result = (|| -> Result<()> {
        let io = |source| Error::Io {
            path: tmp.clone(),
            source,
        };
        let mut out = BufWriter::with_capacity(1 << 22, File::create(&tmp).map_err(io)?);
        w.write_header(&mut out).map_err(gguf_out)?;
        for (t, ty) in &plan {
            let data = g.tensor_data(t);
            if *ty == t.ty() {
                w.write_tensor_data(&mut out, t.name(), data)
                    .map_err(gguf_out)?;
            } else {
                let cols = t.dims()[0] as usize;
                let (src_row, dst_row) = (
                    t.ty().row_bytes(cols).unwrap_or(0),
                    ty.row_bytes(cols).unwrap_or(0),
                );
                let rows = data.len() / src_row.max(1);
                let mut q = vec![0u8; rows * dst_row];
                q.par_chunks_mut(dst_row)
                    .zip(data.par_chunks(src_row))
                    .try_for_each_init(
                        || vec![0f32; cols],
                        |x, (o, s)| {
                            cinder_quant::reference::dequantize(t.ty(), s, x)?;
                            cinder_quant::reference::quantize(*ty, x, o)
                        },
                    )
                    .map_err(bad)?;
                w.write_tensor_data(&mut out, t.name(), &q)
                    .map_err(gguf_out)?;
            }
            progress(Progress::Tensor {
                name: t.name(),
                ty: *ty,
                bytes: t.size(),
            });
        }
        w.finish().map_err(gguf_out)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &opts.output).map_err(|source| Error::Io {
            path: opts.output.clone(),
            source,
        })
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let mut types = std::collections::BTreeMap::new();
    for (_, ty) in &plan {
        *types.entry(*ty).or_insert(0) += 1;
    }
    Ok(Summary {
        path: opts.output.clone(),
        file_bytes: std::fs::metadata(&opts.output)
            .map(|m| m.len())
            .unwrap_or(0),
        params: plan.iter().map(|(t, _)| t.n_elements()).sum(),
        tensor_bytes: plan
            .iter()
            .map(|(t, ty)| ty.bytes_for(t.n_elements()).unwrap_or(0))
            .sum(),
        types,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
