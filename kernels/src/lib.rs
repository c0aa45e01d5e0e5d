//! cinder-kernels: dequantize-and-dot kernels for every ISA, chosen once at startup.
//!
//! - [`dispatch`]: [`Isa`], the [`Kernels`] table (the only way to call a SIMD kernel) and the
//!   `CINDER_KERNELS` override.
//! - [`scalar`]: portable kernels, the twin of every SIMD kernel.
//! - `x86`: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL, optionally VNNI) kernels.
//! - `arm`: NEON, NEON + dotprod (`sdot`) and NEON + dotprod + i8mm (`smmla`) kernels, tested
//!   under qemu-aarch64 in CI.
//!
//! Naming follows ggml: `vec_dot_<weight>_<activation>`, `quantize_row_<activation>`,
//! `dequantize_row_<type>`, `gemm_<weight>_<activation>`. No I/O, no allocation.

pub mod dispatch;
pub mod repack;
pub mod scalar;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod strips;

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
mod arm;

pub use dispatch::{Isa, Kernels, KernelsError, MatShape, Strips, cpu_features};
