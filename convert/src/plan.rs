//! Which GGUF type each tensor gets: llama-quantize's rules for its file types.
//!
//! A file type (`--type q4_k_m`) names a default type and, for the k-quant mixes, the tensors
//! that get more bits: `output.weight` (or the tied token embedding) in Q6_K, `attn_v` and
//! `ffn_down` in Q6_K for the first and last eighth of the layers and every third layer
//! between (`_M`), and so on. A type whose block does not divide a tensor's rows falls back
//! as llama-quantize does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0, then
//! F16 when even that does not fit). 1-D tensors and norms stay F32.

use cinder_quant::GgmlType;

use crate::names::Role;

/// A llama.cpp file type (`general.file_type`, llama.cpp's `llama_ftype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum FileType {
    /// All F32.
    F32,
    /// F16 matrices.
    F16,
    /// BF16 matrices.
    BF16,
    /// Q8_0 matrices.
    Q8_0,
    /// Q4_0 matrices, Q6_K output.
    Q4_0,
    /// Q4_1 matrices, Q6_K output.
    Q4_1,
    /// Q5_0 matrices, Q6_K output.
    Q5_0,
    /// Q5_1 matrices, Q6_K output.
    Q5_1,
    /// Q2_K mix.
    Q2_K,
    /// Q3_K mix, small.
    Q3_K_S,
    /// Q3_K mix, medium.
    Q3_K_M,
    /// Q3_K mix, large.
    Q3_K_L,
    /// Q4_K mix, small.
    Q4_K_S,
    /// Q4_K mix, medium.
    Q4_K_M,
    /// Q5_K mix, small.
    Q5_K_S,
    /// Q5_K mix, medium.
    Q5_K_M,
    /// Q6_K everywhere.
    Q6_K,
}

impl FileType {
    /// Every file type, in the order `--help` lists them.
    pub const ALL: [FileType; 17] = [
        FileType::F32,
        FileType::F16,
        FileType::BF16,
        FileType::Q8_0,
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q5_0,
        FileType::Q5_1,
        FileType::Q2_K,
        FileType::Q3_K_S,
        FileType::Q3_K_M,
        FileType::Q3_K_L,
        FileType::Q4_K_S,
        FileType::Q4_K_M,
        FileType::Q5_K_S,
        FileType::Q5_K_M,
        FileType::Q6_K,
    ];

    /// llama.cpp's lower-case name (`q4_k_m`).
    pub fn name(self) -> &'static str {
        use FileType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            BF16 => "bf16",
            Q8_0 => "q8_0",
            Q4_0 => "q4_0",
            Q4_1 => "q4_1",
            Q5_0 => "q5_0",
            Q5_1 => "q5_1",
            Q2_K => "q2_k",
            Q3_K_S => "q3_k_s",
            Q3_K_M => "q3_k_m",
            Q3_K_L => "q3_k_l",
            Q4_K_S => "q4_k_s",
            Q4_K_M => "q4_k_m",
            Q5_K_S => "q5_k_s",
            Q5_K_M => "q5_k_m",
            Q6_K => "q6_k",
        }
    }

    /// Parse a name, case-insensitively (`Q4_K_M`, `q4_k_m`); `q4_k` and `q5_k` mean the
    /// `_M` mixes and `q3_k` the `_M` mix, as in llama-quantize.
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        let s = match s.as_str() {
            "q3_k" => "q3_k_m",
            "q4_k" => "q4_k_m",
            "q5_k" => "q5_k_m",
            other => other,
        };
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// `general.file_type` (llama.cpp's `llama_ftype` value).
    pub fn id(self) -> u32 {
        use FileType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q8_0 => 7,
            Q5_0 => 8,
            Q5_1 => 9,
            Q2_K => 10,
            Q3_K_S => 11,
            Q3_K_M => 12,
            Q3_K_L => 13,
            Q4_K_S => 14,
            Q4_K_M => 15,
            Q5_K_S => 16,
            Q5_K_M => 17,
            Q6_K => 18,
            BF16 => 32,
        }
    }

    /// The type of the matrices no rule singles out.
    pub fn default_type(self) -> GgmlType {
        use FileType::*;
        match self {
            F32 => GgmlType::F32,
            F16 => GgmlType::F16,
            BF16 => GgmlType::BF16,
            Q8_0 => GgmlType::Q8_0,
            Q4_0 => GgmlType::Q4_0,
            Q4_1 => GgmlType::Q4_1,
            Q5_0 => GgmlType::Q5_0,
            Q5_1 => GgmlType::Q5_1,
            Q2_K => GgmlType::Q2_K,
            Q3_K_S | Q3_K_M | Q3_K_L => GgmlType::Q3_K,
            Q4_K_S | Q4_K_M => GgmlType::Q4_K,
            Q5_K_S | Q5_K_M => GgmlType::Q5_K,
            Q6_K => GgmlType::Q6_K,
        }
    }

    fn is_quantized(self) -> bool {
        !matches!(self, FileType::F32 | FileType::F16 | FileType::BF16)
    }
}

/// What the plan needs to know about the model.
#[derive(Debug, Clone, Copy)]
pub struct ModelShape {
    /// Number of layers.
    pub n_layers: usize,
    /// Query heads per kv head (1 without GQA).
    pub n_gqa: usize,
    /// The model has its own `output.weight` (not tied to the token embedding).
    pub has_output: bool,
}

/// User choices on top of the file type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// One type everywhere (`--pure`): no mix rules; block-size fallbacks still apply.
    pub pure: bool,
    /// `--output-tensor-type`.
    pub output: Option<GgmlType>,
    /// `--token-embedding-type`.
    pub token_embedding: Option<GgmlType>,
}

/// llama.cpp's `use_more_bits`: first and last eighth of the layers and every third between.
fn use_more_bits(i: usize, n: usize) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type a type falls back to when its block does not divide a row of `ncols` values.
fn fallback(ty: GgmlType, ncols: usize) -> GgmlType {
    if ncols.is_multiple_of(ty.block_size()) {
        return ty;
    }
    let next = match ty {
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    };
    if ncols.is_multiple_of(next.block_size()) {
        next
    } else {
        GgmlType::F16
    }
}

/// The GGUF type of one tensor. `dims` are GGUF dims (innermost first); `layer` is the block
/// index for `blk.N.*` tensors.
pub fn tensor_type(
    ft: FileType,
    ov: &Overrides,
    model: &ModelShape,
    role: Role,
    layer: Option<usize>,
    dims: &[u64],
) -> GgmlType {
    let is_norm = matches!(role, Role::AttnNorm | Role::FfnNorm | Role::OutputNorm);
    if dims.len() < 2 || is_norm {
        return GgmlType::F32;
    }
    let ncols = dims[0] as usize;
    let is_output = role == Role::Output || (!model.has_output && role == Role::TokenEmbd);
    if role == Role::TokenEmbd
        && let Some(t) = ov.token_embedding
    {
        return t;
    }
    if is_output && let Some(t) = ov.output {
        return t;
    }
    let default = ft.default_type();
    if !ft.is_quantized() {
        return default;
    }
    let mut ty = default;
    if !ov.pure {
        ty = mix_rule(
            ft,
            model,
            role,
            layer.unwrap_or(0),
            ncols,
            is_output,
            default,
        );
    }
    fallback(ty, ncols)
}

/// llama-quantize's per-tensor rules for the file types cinder writes.
fn mix_rule(
    ft: FileType,
    model: &ModelShape,
    role: Role,
    layer: usize,
    ncols: usize,
    is_output: bool,
    default: GgmlType,
) -> GgmlType {
    use FileType as F;
    use GgmlType as G;
    let n = model.n_layers;
    if is_output {
        return if !ncols.is_multiple_of(default.block_size()) {
            G::Q8_0
        } else if default != G::Q8_0 {
            G::Q6_K
        } else {
            default
        };
    }
    let is_70b = n == 80;
    match role {
        Role::AttnV => {
            let mut ty = match ft {
                F::Q2_K => {
                    if model.n_gqa >= 4 {
                        G::Q4_K
                    } else {
                        G::Q3_K
                    }
                }
                F::Q3_K_M => {
                    if layer < 2 {
                        G::Q5_K
                    } else {
                        G::Q4_K
                    }
                }
                F::Q3_K_L => G::Q5_K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(layer, n) => G::Q6_K,
                F::Q4_K_S if layer < 4 => G::Q5_K,
                _ => default,
            };
            if is_70b && matches!(ty, G::Q3_K | G::Q4_K) {
                ty = G::Q5_K;
            }
            ty
        }
        Role::FfnDown => match ft {
            F::Q2_K => G::Q3_K,
            F::Q3_K_M => {
                if layer < n / 16 {
                    G::Q5_K
                } else {
                    G::Q4_K
                }
            }
            F::Q3_K_L => G::Q5_K,
            F::Q4_K_M | F::Q5_K_M if use_more_bits(layer, n) => G::Q6_K,
            F::Q4_K_S if layer < n / 8 => G::Q5_K,
            _ => default,
        },
        Role::AttnOutput => match ft {
            F::Q2_K => G::Q3_K,
            F::Q3_K_M => G::Q4_K,
            F::Q3_K_L => G::Q5_K,
            _ => default,
        },
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA2_7B: ModelShape = ModelShape {
        n_layers: 32,
        n_gqa: 1,
        has_output: true,
    };

    fn ty(ft: FileType, role: Role, layer: usize, dims: &[u64]) -> GgmlType {
        tensor_type(
            ft,
            &Overrides::default(),
            &LLAMA2_7B,
            role,
            Some(layer),
            dims,
        )
    }

    #[test]
    fn q4_k_m_gives_more_bits_where_llama_quantize_does() {
        let d = [4096u64, 4096];
        let v: Vec<usize> = (0..32)
            .filter(|&l| ty(FileType::Q4_K_M, Role::AttnV, l, &d) == GgmlType::Q6_K)
            .collect();
        // i < 4, i >= 28, and (i - 4) % 3 == 2.
        assert_eq!(
            v,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
        assert_eq!(ty(FileType::Q4_K_M, Role::AttnQ, 0, &d), GgmlType::Q4_K);
        assert_eq!(
            ty(FileType::Q4_K_M, Role::Output, 0, &[4096, 32000]),
            GgmlType::Q6_K
        );
        assert_eq!(
            ty(FileType::Q4_K_M, Role::TokenEmbd, 0, &[4096, 32000]),
            GgmlType::Q4_K
        );
        assert_eq!(
            ty(FileType::Q4_0, Role::Output, 0, &[4096, 32000]),
            GgmlType::Q6_K
        );
        assert_eq!(
            ty(FileType::Q8_0, Role::Output, 0, &[4096, 32000]),
            GgmlType::Q8_0
        );
        assert_eq!(
            ty(FileType::Q4_K_M, Role::AttnNorm, 0, &[4096]),
            GgmlType::F32
        );
    }

    #[test]
    fn block_size_fallbacks_follow_llama_quantize() {
        assert_eq!(fallback(GgmlType::Q4_K, 4096), GgmlType::Q4_K);
        assert_eq!(fallback(GgmlType::Q4_K, 64), GgmlType::Q5_0);
        assert_eq!(fallback(GgmlType::Q5_K, 64), GgmlType::Q5_1);
        assert_eq!(fallback(GgmlType::Q6_K, 64), GgmlType::Q8_0);
        assert_eq!(fallback(GgmlType::Q2_K, 64), GgmlType::Q4_0);
        assert_eq!(fallback(GgmlType::Q3_K, 64), GgmlType::Q4_0);
        // stories260k's ffn_down rows are 172 wide: not even a multiple of 32.
        assert_eq!(fallback(GgmlType::Q4_0, 172), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q4_K, 172), GgmlType::F16);
        // Tied embeddings of a 64-wide model: output rule says Q8_0 when Q6_K's block does not fit.
        let tiny = ModelShape {
            n_layers: 5,
            n_gqa: 2,
            has_output: false,
        };
        let t = tensor_type(
            FileType::Q4_K_M,
            &Overrides::default(),
            &tiny,
            Role::TokenEmbd,
            None,
            &[64, 512],
        );
        assert_eq!(t, GgmlType::Q8_0);
    }

    #[test]
    fn pure_and_overrides() {
        let pure = Overrides {
            pure: true,
            ..Default::default()
        };
        let t = tensor_type(
            FileType::Q4_0,
            &pure,
            &LLAMA2_7B,
            Role::Output,
            None,
            &[4096, 32000],
        );
        assert_eq!(t, GgmlType::Q4_0);
        let ov = Overrides {
            output: Some(GgmlType::Q8_0),
            token_embedding: Some(GgmlType::F16),
            pure: false,
        };
        assert_eq!(
            tensor_type(
                FileType::Q4_0,
                &ov,
                &LLAMA2_7B,
                Role::Output,
                None,
                &[4096, 32000]
            ),
            GgmlType::Q8_0
        );
        assert_eq!(
            tensor_type(
                FileType::Q4_0,
                &ov,
                &LLAMA2_7B,
                Role::TokenEmbd,
                None,
                &[4096, 32000]
            ),
            GgmlType::F16
        );
    }

    #[test]
    fn names_round_trip() {
        for ft in FileType::ALL {
            assert_eq!(FileType::from_name(&ft.name().to_uppercase()), Some(ft));
        }
        assert_eq!(FileType::from_name("q4_k"), Some(FileType::Q4_K_M));
        assert_eq!(FileType::from_name("q4_2"), None);
    }
}
