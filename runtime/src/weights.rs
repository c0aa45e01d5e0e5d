//! Weight tensors as views into the mapped GGUF file: each [`Tensor`] records where its bytes
//! are, and [`Tensor::view`] borrows them as typed blocks (never a copy).

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use cinder_kernels::repack::{
    self, BlockQ4_Kx16, BlockQ5_Kx16, BlockQ6_Kx16, Lanes, STRIP_ROWS, Scales16,
};

use cinder_quant::GgmlType;
use cinder_quant::block::*;
use cinder_quant::gguf::Gguf;
use half::f16;

use crate::config::Config;
use crate::error::{Error, Result};

/// A tensor's data borrowed from the file, typed by its ggml type.
#[derive(Debug, Clone, Copy)]
pub enum View<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 16-bit IEEE floats.
    F16(&'a [f16]),
    /// bfloat16, as raw bits.
    BF16(&'a [u16]),
    /// Q4_0 blocks.
    Q4_0(&'a [BlockQ4_0]),
    /// Q4_1 blocks.
    Q4_1(&'a [BlockQ4_1]),
    /// Q5_0 blocks.
    Q5_0(&'a [BlockQ5_0]),
    /// Q5_1 blocks.
    Q5_1(&'a [BlockQ5_1]),
    /// Q8_0 blocks.
    Q8_0(&'a [BlockQ8_0]),
    /// Q2_K blocks.
    Q2K(&'a [BlockQ2_K]),
    /// Q3_K blocks.
    Q3K(&'a [BlockQ3_K]),
    /// Q4_K blocks.
    Q4K(&'a [BlockQ4_K]),
    /// Q5_K blocks.
    Q5K(&'a [BlockQ5_K]),
    /// Q6_K blocks.
    Q6K(&'a [BlockQ6_K]),
}

/// The weight types a matrix may have: those with a dot-product kernel (and BF16, which cinder
/// widens to f32 exactly).
pub const MATRIX_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// One weight tensor of `rows` x `cols` values (`cols` contiguous), located in the file, and
/// for Q4_0/Q8_0/Q4_K/Q5_K/Q6_K matrices on kernels that prefer them, its copy repacked in 16-row
/// strips.
#[derive(Debug, Clone)]
pub struct Tensor {
    name: String,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    range: Range<usize>,
    strips: Option<Arc<Repacked>>,
}

/// A matrix repacked in 16-row strips (`cinder_kernels::repack`).
pub enum Repacked {
    /// Q4_0 or Q8_0: the 4-byte groups and the block scales.
    Blocks {
        /// The 4-byte groups.
        q: Vec<Lanes>,
        /// The block scales.
        d: Vec<Scales16>,
    },
    /// Q4_K: one strip block per 16 rows and super-block.
    Q4K(Vec<BlockQ4_Kx16>),
    /// Q5_K: one strip block per 16 rows and super-block.
    Q5K(Vec<BlockQ5_Kx16>),
    /// Q6_K: one strip block per 16 rows and super-block.
    Q6K(Vec<BlockQ6_Kx16>),
}

impl std::fmt::Debug for Repacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repacked::Blocks { q, d } => {
                write!(f, "Repacked({} groups, {} scales)", q.len(), d.len())
            }
            Repacked::Q4K(w) => write!(f, "Repacked({} Q4_K strip blocks)", w.len()),
            Repacked::Q5K(w) => write!(f, "Repacked({} Q5_K strip blocks)", w.len()),
            Repacked::Q6K(w) => write!(f, "Repacked({} Q6_K strip blocks)", w.len()),
        }
    }
}

fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> Option<&[T]> {
    bytemuck::try_cast_slice(bytes).ok()
}

impl Tensor {
    /// A tensor of `rows` x `cols` values of type `ty` at `range` of a buffer (for tests of
    /// code that takes a [`Tensor`]); [`Tensor::view`] checks the bytes when used.
    ///
    /// Panics unless `rows >= 1` and `range` holds exactly `rows` whole rows of `cols` values.
    pub fn from_parts(
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        range: Range<usize>,
    ) -> Self {
        let whole = ty.row_bytes(cols).and_then(|rb| rb.checked_mul(rows));
        assert!(
            rows >= 1 && whole == Some(range.len()),
            "Tensor::from_parts: {name} size"
        );
        Tensor {
            name: name.to_string(),
            ty,
            rows,
            cols,
            range,
            strips: None,
        }
    }

    /// The repacked copy, if [`Tensor::repack`] made one.
    pub fn strips(&self) -> Option<&Repacked> {
        self.strips.as_deref()
    }

    /// Whether [`Tensor::repack`] applies: a Q4_0, Q8_0, Q4_K, Q5_K or Q6_K matrix of whole
    /// 16-row strips.
    pub fn repackable(&self) -> bool {
        matches!(
            self.ty,
            GgmlType::Q4_0 | GgmlType::Q8_0 | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K
        ) && self.rows.is_multiple_of(STRIP_ROWS)
    }

    /// Copy a [`Tensor::repackable`] tensor of `file` into 16-row strips (once, at load);
    /// other tensors are left as they are. Returns whether it repacked.
    pub fn repack(&mut self, file: &[u8]) -> Result<bool> {
        if !self.repackable() || self.strips.is_some() {
            return Ok(false);
        }
        let nb = self.cols / self.ty.block_size();
        let blocks = self.rows * nb;
        let empty = |groups: usize| {
            (
                vec![Lanes([0; STRIP_ROWS]); blocks / STRIP_ROWS * groups],
                vec![Scales16([0; STRIP_ROWS]); blocks / STRIP_ROWS],
            )
        };
        let r = match self.view(file)? {
            View::Q4_0(w) => {
                let (mut q, mut d) = empty(repack::Q4_0_GROUPS);
                repack::repack_q4_0(w, nb, &mut q, &mut d);
                Repacked::Blocks { q, d }
            }
            View::Q8_0(w) => {
                let (mut q, mut d) = empty(repack::Q8_0_GROUPS);
                repack::repack_q8_0(w, nb, &mut q, &mut d);
                Repacked::Blocks { q, d }
            }
            View::Q4K(w) => {
                let mut p = vec![bytemuck::Zeroable::zeroed(); blocks / STRIP_ROWS];
                repack::repack_q4_k(w, nb, &mut p);
                Repacked::Q4K(p)
            }
            View::Q5K(w) => {
                let mut p = vec![bytemuck::Zeroable::zeroed(); blocks / STRIP_ROWS];
                repack::repack_q5_k(w, nb, &mut p);
                Repacked::Q5K(p)
            }
            View::Q6K(w) => {
                let mut p = vec![bytemuck::Zeroable::zeroed(); blocks / STRIP_ROWS];
                repack::repack_q6_k(w, nb, &mut p);
                Repacked::Q6K(p)
            }
            _ => return Ok(false),
        };
        self.strips = Some(Arc::new(r));
        Ok(true)
    }

    /// The byte range of the tensor in its file.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// The GGUF tensor name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ggml type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Rows (outputs of a matrix; 1 for a vector).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row (inputs of a matrix).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.range.len() / self.rows
    }

    /// The raw bytes of the tensor inside `file` (the mapped file it was loaded from).
    ///
    /// Panics if `file` is shorter than the tensor's range (not the file it came from).
    pub fn bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.range.clone()]
    }

    /// The tensor's data in `file`, typed. Fails only if the data is misaligned for the type
    /// (checked when the model is loaded) or the type is not one of [`MATRIX_TYPES`].
    pub fn view<'a>(&self, file: &'a [u8]) -> Result<View<'a>> {
        let b = self.bytes(file);
        let v = match self.ty {
            GgmlType::F32 => cast(b).map(View::F32),
            GgmlType::F16 => cast(b).map(View::F16),
            GgmlType::BF16 => cast(b).map(View::BF16),
            GgmlType::Q4_0 => cast(b).map(View::Q4_0),
            GgmlType::Q4_1 => cast(b).map(View::Q4_1),
            GgmlType::Q5_0 => cast(b).map(View::Q5_0),
            GgmlType::Q5_1 => cast(b).map(View::Q5_1),
            GgmlType::Q8_0 => cast(b).map(View::Q8_0),
            GgmlType::Q2_K => cast(b).map(View::Q2K),
            GgmlType::Q3_K => cast(b).map(View::Q3K),
            GgmlType::Q4_K => cast(b).map(View::Q4K),
            GgmlType::Q5_K => cast(b).map(View::Q5K),
            GgmlType::Q6_K => cast(b).map(View::Q6K),
            _ => None,
        };
        v.ok_or_else(|| Error::TensorAlignment {
            path: Default::default(),
            name: self.name.clone(),
            ty: self.ty,
        })
    }

    /// The data of an F32 tensor (norm weights).
    pub fn f32s<'a>(&self, file: &'a [u8]) -> Result<&'a [f32]> {
        match self.view(file)? {
            View::F32(v) => Ok(v),
            _ => Err(Error::TensorAlignment {
                path: Default::default(),
                name: self.name.clone(),
                ty: self.ty,
            }),
        }
    }
}

/// The weights of one transformer block.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// RMSNorm weight before attention, `[dim]`, F32.
    pub attn_norm: Tensor,
    /// Query projection, `[dim] -> [dim]`.
    pub wq: Tensor,
    /// Key projection, `[dim] -> [kv_dim]`.
    pub wk: Tensor,
    /// Value projection, `[dim] -> [kv_dim]`.
    pub wv: Tensor,
    /// Attention output projection, `[dim] -> [dim]`.
    pub wo: Tensor,
    /// RMSNorm weight before the feed-forward, `[dim]`, F32.
    pub ffn_norm: Tensor,
    /// SwiGLU gate, `[dim] -> [ffn]`.
    pub w_gate: Tensor,
    /// SwiGLU up, `[dim] -> [ffn]`.
    pub w_up: Tensor,
    /// SwiGLU down, `[ffn] -> [dim]`.
    pub w_down: Tensor,
}

/// Every weight of a Llama model.
#[derive(Debug, Clone)]
pub struct Weights {
    /// Token embeddings, `[vocab] x [dim]`.
    pub token_embd: Tensor,
    /// The transformer blocks.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm weight, `[dim]`, F32.
    pub output_norm: Tensor,
    /// Output projection `[dim] -> [vocab]` (the token embedding when the file has none).
    pub output: Tensor,
    /// Whether `output` is the token embedding (tied weights).
    pub tied: bool,
}

/// What a tensor may be.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A 1-D F32 vector (norm weights).
    Norm,
    /// A matrix used in a matmul: one of [`MATRIX_TYPES`].
    Matrix,
    /// The embedding table: any type with a dequantizer (it is also a matrix when tied).
    Embedding,
}

impl Weights {
    /// The matrices [`Weights::repack`] considers: every layer's seven, then the output.
    fn matrices(&self) -> impl Iterator<Item = &Tensor> {
        self.layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .chain(std::iter::once(&self.output))
    }

    /// Bytes in the file of the matrices [`Weights::repack`] repacks (those not repacked yet).
    pub fn repack_bytes(&self) -> u64 {
        self.matrices()
            .filter(|t| t.repackable() && t.strips.is_none())
            .map(|t| t.range.len() as u64)
            .sum()
    }

    /// Repack every [`Tensor::repackable`] matrix into 16-row strips (in parallel), calling
    /// `before(t)` before and `after(t)` after each one (the loader reads the tensor ahead and
    /// then releases its mapped pages, so resident memory never holds both copies of much).
    pub fn repack(
        &mut self,
        file: &[u8],
        before: impl Fn(&Tensor) + Sync,
        after: impl Fn(&Tensor) + Sync,
    ) -> Result<()> {
        use rayon::prelude::*;
        let mut all: Vec<&mut Tensor> = self
            .layers
            .iter_mut()
            .flat_map(|l| {
                [
                    &mut l.wq,
                    &mut l.wk,
                    &mut l.wv,
                    &mut l.wo,
                    &mut l.w_gate,
                    &mut l.w_up,
                    &mut l.w_down,
                ]
            })
            .collect();
        all.push(&mut self.output);
        all.into_par_iter().try_for_each(|t| {
            if t.repackable() && t.strips.is_none() {
                before(t);
                t.repack(file)?;
                after(t);
            }
            Ok(())
        })
    }

    /// Locate and check every tensor of the model described by `c` in the GGUF `g` (whose
    /// bytes start at file offset 0). Errors name `path` and the tensor.
    pub fn from_gguf(g: &Gguf<'_>, c: &Config, path: &Path) -> Result<Self> {
        let file = g.bytes();
        let get = |name: &str, kind: Kind, shape: &[usize]| -> Result<Tensor> {
            let info = g.tensor(name).ok_or_else(|| Error::MissingTensor {
                path: path.to_path_buf(),
                name: name.to_string(),
            })?;
            let expected: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            if info.dims() != expected.as_slice() {
                return Err(Error::TensorShape {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    found: info.dims().to_vec(),
                    expected,
                });
            }
            let ty = info.ty();
            let type_error = |reason| Error::TensorType {
                path: path.to_path_buf(),
                name: name.to_string(),
                ty,
                reason,
            };
            match kind {
                Kind::Norm if ty != GgmlType::F32 => {
                    return Err(type_error("norm weights must be F32"));
                }
                Kind::Matrix if !MATRIX_TYPES.contains(&ty) => {
                    return Err(type_error(
                        "matrices must be F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or Q2_K..Q6_K",
                    ));
                }
                Kind::Embedding
                    if !ty.has_reference() || ty == GgmlType::Q8_1 || ty == GgmlType::Q8_K =>
                {
                    return Err(type_error("no dequantizer for this embedding type"));
                }
                _ => {}
            }
            let cols = shape[0];
            let rows = shape.get(1).copied().unwrap_or(1);
            let row_bytes = ty
                .row_bytes(cols)
                .ok_or_else(|| type_error("rows are not whole blocks"))?;
            let data = g.tensor_data(info);
            if Some(data.len()) != row_bytes.checked_mul(rows) {
                return Err(type_error("data size does not match the shape"));
            }
            // The data slice lies inside `file`, so this offset is in range.
            let start = data.as_ptr() as usize - file.as_ptr() as usize;
            let t = Tensor {
                name: name.to_string(),
                ty,
                rows,
                cols,
                range: start..start + data.len(),
                strips: None,
            };
            if MATRIX_TYPES.contains(&ty) && t.view(file).is_err() {
                return Err(Error::TensorAlignment {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    ty,
                });
            }
            Ok(t)
        };

        let (dim, kv, ffn) = (c.dim, c.kv_dim(), c.ffn_dim);
        let token_embd = get("token_embd.weight", Kind::Embedding, &[dim, c.vocab_size])?;
        // n_layers comes from the file: never reserve more layers than it has tensors for (a
        // missing layer tensor ends the loop with an error).
        let mut layers = Vec::with_capacity(c.n_layers.min(g.tensors().len()));
        for i in 0..c.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(LayerWeights {
                attn_norm: get(&n("attn_norm"), Kind::Norm, &[dim])?,
                wq: get(&n("attn_q"), Kind::Matrix, &[dim, dim])?,
                wk: get(&n("attn_k"), Kind::Matrix, &[dim, kv])?,
                wv: get(&n("attn_v"), Kind::Matrix, &[dim, kv])?,
                wo: get(&n("attn_output"), Kind::Matrix, &[dim, dim])?,
                ffn_norm: get(&n("ffn_norm"), Kind::Norm, &[dim])?,
                w_gate: get(&n("ffn_gate"), Kind::Matrix, &[dim, ffn])?,
                w_up: get(&n("ffn_up"), Kind::Matrix, &[dim, ffn])?,
                w_down: get(&n("ffn_down"), Kind::Matrix, &[ffn, dim])?,
            });
        }
        let output_norm = get("output_norm.weight", Kind::Norm, &[dim])?;
        let (output, tied) = if g.tensor("output.weight").is_some() {
            (
                get("output.weight", Kind::Matrix, &[dim, c.vocab_size])?,
                false,
            )
        } else {
            // Tied: the embedding doubles as the output matrix, so it must be a matrix type.
            (
                get("token_embd.weight", Kind::Matrix, &[dim, c.vocab_size])?,
                true,
            )
        };
        Ok(Weights {
            token_embd,
            layers,
            output_norm,
            output,
            tied,
        })
    }
}
