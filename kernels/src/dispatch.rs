//! Runtime dispatch: [`Isa`] names an instruction set, [`Kernels`] is the table of kernels for
//! one of them. A `Kernels` value can only be obtained after the CPU was probed for its Isa, so
//! its safe methods may call the `unsafe` (`#[target_feature]`) kernels it holds.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use cinder_quant::block::*;
use cinder_quant::dtype::QK_K;
use half::f16;

use crate::repack::{self, BlockQ4_Kx16, BlockQ5_Kx16, BlockQ6_Kx16, Lanes, STRIP_ROWS, Scales16};
use crate::scalar;

/// An instruction set a [`Kernels`] table can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no SIMD intrinsics (always available).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// [`Isa::Avx2`] plus AVX-VNNI (VEX `vpdpbusd`: Intel Core since Alder Lake, AMD Zen 5).
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL (+ AVX2, FMA, F16C).
    Avx512,
    /// [`Isa::Avx512`] plus AVX512-VNNI (`vpdpbusd`).
    Avx512Vnni,
    /// aarch64 NEON (Advanced SIMD).
    Neon,
    /// [`Isa::Neon`] plus the dot-product extension (`sdot`).
    NeonDotprod,
    /// [`Isa::NeonDotprod`] plus the int8 matrix multiply extension (`smmla`).
    NeonI8mm,
}

impl Isa {
    /// Every Isa, weakest first within each architecture.
    pub const ALL: [Isa; 8] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::NeonDotprod,
        Isa::NeonI8mm,
    ];

    /// The name `CINDER_KERNELS` / `--kernels` accept.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "dotprod",
            Isa::NeonI8mm => "i8mm",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a kernel set could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelsError {
    /// The name is not one of `scalar|avx2|avxvnni|avx512|avx512vnni|neon|dotprod|i8mm`.
    UnknownIsa(String),
    /// This CPU (or this build's architecture) cannot run the requested Isa.
    Unsupported(Isa),
}

impl fmt::Display for KernelsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelsError::UnknownIsa(s) => write!(
                f,
                "unknown kernel set {s:?} (expected scalar|avx2|avxvnni|avx512|avx512vnni|neon|dotprod|i8mm)"
            ),
            KernelsError::Unsupported(isa) => {
                let avail: Vec<_> = Kernels::available().iter().map(|i| i.name()).collect();
                write!(
                    f,
                    "kernel set {isa} is not supported by this CPU (available: {})",
                    avail.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for KernelsError {}

impl FromStr for Isa {
    type Err = KernelsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Isa::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or(KernelsError::UnknownIsa(s))
    }
}

/// CPU features relevant to cinder's kernels, as `(name, present)` (for `cinder info`).
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            ("sse4.2", is_x86_feature_detected!("sse4.2")),
            ("avx", is_x86_feature_detected!("avx")),
            ("avx2", is_x86_feature_detected!("avx2")),
            ("fma", is_x86_feature_detected!("fma")),
            ("f16c", is_x86_feature_detected!("f16c")),
            ("avxvnni", is_x86_feature_detected!("avxvnni")),
            ("avx512f", is_x86_feature_detected!("avx512f")),
            ("avx512bw", is_x86_feature_detected!("avx512bw")),
            ("avx512vl", is_x86_feature_detected!("avx512vl")),
            ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        vec![
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            (
                "dotprod",
                std::arch::is_aarch64_feature_detected!("dotprod"),
            ),
            ("i8mm", std::arch::is_aarch64_feature_detected!("i8mm")),
        ]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

/// Does this CPU have every feature `isa`'s kernels are compiled with?
fn supported(isa: Isa) -> bool {
    match isa {
        Isa::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => crate::x86::has_avx2(),
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => crate::x86::has_avxvnni(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => crate::x86::has_avx512(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => crate::x86::has_avx512vnni(),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => crate::arm::has_neon(),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDotprod => crate::arm::has_dotprod(),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonI8mm => crate::arm::has_i8mm(),
        _ => false,
    }
}

macro_rules! kernel_table {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// The kernels of one [`Isa`]. Owning one proves the CPU has that Isa's features.
        #[derive(Clone, Copy)]
        pub struct Kernels {
            isa: Isa,
            $( $name: $ty, )*
        }

        impl fmt::Debug for Kernels {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Kernels").field("isa", &self.isa).finish_non_exhaustive()
            }
        }

        /// Builds a table from the module `$m` that defines every kernel (missing ones fall back
        /// to the named module path given per entry).
        macro_rules! table_from {
            ($isa:expr, $m:path) => {{
                use $m as m;
                Kernels { isa: $isa, $( $name: m::$name, )* }
            }};
        }
    };
}

type QuantFn<B> = unsafe fn(&[f32], &mut [B]);
type DotFn<X, Y> = unsafe fn(&[X], &[Y]) -> f32;
type GemmFn<W, A> = unsafe fn(&[W], &[A], usize, &mut [f32], usize);
type DequantFn<B> = unsafe fn(&[B], &mut [f32]);
type GemmNnFn<B> = unsafe fn(&[f32], &[B], &mut [f32], MatShape);
type StripGemmFn = unsafe fn(&[Lanes], &[Scales16], &[BlockQ8_0], usize, &mut [f32], usize);
type ExpSumFn = unsafe fn(&mut [f32], f32) -> f32;
type SiluMulFn = unsafe fn(&mut [f32], &[f32]);

kernel_table! {
    quantize_row_q8_0: QuantFn<BlockQ8_0>,
    quantize_row_q8_1: QuantFn<BlockQ8_1>,
    quantize_row_q8_k: QuantFn<BlockQ8_K>,
    vec_dot_q4_0_q8_0: DotFn<BlockQ4_0, BlockQ8_0>,
    vec_dot_q5_0_q8_0: DotFn<BlockQ5_0, BlockQ8_0>,
    vec_dot_q8_0_q8_0: DotFn<BlockQ8_0, BlockQ8_0>,
    vec_dot_q4_1_q8_1: DotFn<BlockQ4_1, BlockQ8_1>,
    vec_dot_q5_1_q8_1: DotFn<BlockQ5_1, BlockQ8_1>,
    vec_dot_q2_k_q8_k: DotFn<BlockQ2_K, BlockQ8_K>,
    vec_dot_q3_k_q8_k: DotFn<BlockQ3_K, BlockQ8_K>,
    vec_dot_q4_k_q8_k: DotFn<BlockQ4_K, BlockQ8_K>,
    vec_dot_q5_k_q8_k: DotFn<BlockQ5_K, BlockQ8_K>,
    vec_dot_q6_k_q8_k: DotFn<BlockQ6_K, BlockQ8_K>,
    vec_dot_f16_f32: DotFn<f16, f32>,
    vec_dot_f32_f32: DotFn<f32, f32>,
    gemm_q4_0_q8_0: GemmFn<BlockQ4_0, BlockQ8_0>,
    gemm_q8_0_q8_0: GemmFn<BlockQ8_0, BlockQ8_0>,
    gemm_q4_k_q8_k: GemmFn<BlockQ4_K, BlockQ8_K>,
    dequantize_row_q4_0: DequantFn<BlockQ4_0>,
    dequantize_row_q8_0: DequantFn<BlockQ8_0>,
    dequantize_row_q6_k: DequantFn<BlockQ6_K>,
    dequantize_row_f16: DequantFn<f16>,
    gemm_f32_f16: GemmNnFn<f16>,
    gemm_f32_f32: GemmNnFn<f32>,
    gemm_q4_0x16_q8_0: StripGemmFn,
    gemm_q8_0x16_q8_0: StripGemmFn,
    gemm_q4_kx16_q8_k: GemmFn<BlockQ4_Kx16, BlockQ8_K>,
    gemm_q5_kx16_q8_k: GemmFn<BlockQ5_Kx16, BlockQ8_K>,
    gemm_q6_kx16_q8_k: GemmFn<BlockQ6_Kx16, BlockQ8_K>,
    exp_sum: ExpSumFn,
    silu_mul: SiluMulFn,
}

impl Kernels {
    /// The kernels of `isa`, if this CPU can run them.
    pub fn new(isa: Isa) -> Option<Self> {
        if !supported(isa) {
            return None;
        }
        Some(match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => table_from!(Isa::Avx2, crate::x86::avx2::plain),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => table_from!(Isa::AvxVnni, crate::x86::avx2::avxvnni),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => table_from!(Isa::Avx512, crate::x86::avx512::plain),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => table_from!(Isa::Avx512Vnni, crate::x86::avx512::vnni),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => table_from!(Isa::Neon, crate::arm::neon),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => table_from!(Isa::NeonDotprod, crate::arm::dotprod),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonI8mm => table_from!(Isa::NeonI8mm, crate::arm::i8mm),
            _ => table_from!(Isa::Scalar, scalar),
        })
    }

    /// The portable scalar kernels (always available).
    pub fn scalar() -> Self {
        table_from!(Isa::Scalar, scalar)
    }

    /// The best kernels this CPU can run.
    pub fn detect() -> Self {
        Self::available()
            .into_iter()
            .rev()
            .find_map(Self::new)
            .unwrap_or_else(Self::scalar)
    }

    /// Every Isa this CPU can run, weakest first (tests and benches loop over it).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|&i| supported(i)).collect()
    }

    /// [`Kernels::detect`], unless `CINDER_KERNELS` names an Isa: then exactly that one, or an
    /// error when the name is unknown or the CPU lacks it (never a silent fallback).
    pub fn from_env() -> Result<Self, KernelsError> {
        match std::env::var("CINDER_KERNELS") {
            Ok(s) if !s.trim().is_empty() => Self::from_name(&s),
            _ => Ok(Self::detect()),
        }
    }

    /// The kernels named `name` (`scalar|avx2|avxvnni|avx512|avx512vnni|neon|dotprod|i8mm`), or an error.
    pub fn from_name(name: &str) -> Result<Self, KernelsError> {
        let isa: Isa = name.parse()?;
        Self::new(isa).ok_or(KernelsError::Unsupported(isa))
    }

    /// The Isa these kernels target.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

macro_rules! quantizer {
    ($(#[$doc:meta])* $name:ident, $b:ty, $bs:expr) => {
        $(#[$doc])*
        /// Panics unless `x.len() == y.len() * block size`.
        pub fn $name(&self, x: &[f32], y: &mut [$b]) {
            assert_eq!(x.len(), y.len() * $bs, concat!(stringify!($name), ": length mismatch"));
            // SAFETY: owning `self` proves the CPU has `self.isa`'s features; lengths checked.
            unsafe { (self.$name)(x, y) }
        }
    };
}

macro_rules! dot {
    ($(#[$doc:meta])* $name:ident, $x:ty, $y:ty) => {
        $(#[$doc])*
        /// Panics unless `x.len() == y.len()` (in blocks).
        pub fn $name(&self, x: &[$x], y: &[$y]) -> f32 {
            assert_eq!(x.len(), y.len(), concat!(stringify!($name), ": length mismatch"));
            // SAFETY: owning `self` proves the CPU has `self.isa`'s features; lengths checked.
            unsafe { (self.$name)(x, y) }
        }
    };
}

macro_rules! dequantizer {
    ($(#[$doc:meta])* $name:ident, $b:ty, $bs:expr) => {
        $(#[$doc])*
        /// Panics unless `y.len() == x.len() * block size`.
        pub fn $name(&self, x: &[$b], y: &mut [f32]) {
            assert_eq!(y.len(), x.len() * $bs, concat!(stringify!($name), ": length mismatch"));
            // SAFETY: owning `self` proves the CPU has `self.isa`'s features; lengths checked.
            unsafe { (self.$name)(x, y) }
        }
    };
}

macro_rules! gemm {
    ($(#[$doc:meta])* $name:ident, $w:ty, $a:ty) => {
        gemm!($(#[$doc])* $name, $w, $a, QK);
    };
    ($(#[$doc:meta])* $name:ident, $w:ty, $a:ty, $qk:expr) => {
        $(#[$doc])*
        ///
        /// `w` is a row-major weight matrix of `w.len() / (k / 32)` rows, `a` holds
        /// `cols = a.len() / (k / 32)` quantized activation columns (one token each). For every
        /// weight row `r` in `rows` and every column `c`:
        /// `out[c * ldo + (r - rows.start)] = vec_dot(w row r, a column c)`.
        /// With `rows = 0..n` and `ldo = n` that is the token-major output of the matmul; a thread
        /// given a row range writes its own `cols x rows.len()` tile.
        ///
        /// Panics unless `k` is a positive multiple of the block size (32; 256 for the k-quants), `w` and `a` hold whole rows of `k`,
        /// `rows` lies inside `w`, `ldo >= rows.len()` and `out` holds the last element.
        pub fn $name(
            &self,
            w: &[$w],
            a: &[$a],
            k: usize,
            rows: Range<usize>,
            out: &mut [f32],
            ldo: usize,
        ) {
            assert!(k > 0 && k % $qk == 0, concat!(stringify!($name), ": k must be a positive multiple of ", stringify!($qk)));
            let nb = k / $qk;
            assert!(w.len() % nb == 0 && a.len() % nb == 0, concat!(stringify!($name), ": partial rows"));
            assert!(rows.start <= rows.end && rows.end <= w.len() / nb, concat!(stringify!($name), ": rows out of range"));
            let cols = a.len() / nb;
            let n = rows.end - rows.start;
            assert!(ldo >= n, concat!(stringify!($name), ": ldo < rows.len()"));
            if n == 0 || cols == 0 {
                return;
            }
            assert!(out.len() >= (cols - 1) * ldo + n, concat!(stringify!($name), ": out too short"));
            let w = &w[rows.start * nb..rows.end * nb];
            // SAFETY: owning `self` proves the CPU has `self.isa`'s features; `w` and `a` hold
            // whole rows of `nb` blocks and `out` covers every `c * ldo + r` (checked above).
            unsafe { (self.$name)(w, a, nb, out, ldo) }
        }
    };
}

/// Shape of a float matrix product `c = a b` ([`Kernels::gemm_f32_f16`]): `a` is `m x k`,
/// `b` is `k x n`, `c` is `m x n`, each row-major with the given row strides (in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatShape {
    /// Rows of `a` and `c`.
    pub m: usize,
    /// Columns of `a`, rows of `b`.
    pub k: usize,
    /// Columns of `b` and `c`.
    pub n: usize,
    /// Row stride of `a` (`>= k`).
    pub lda: usize,
    /// Row stride of `b` (`>= n`).
    pub ldb: usize,
    /// Row stride of `c` (`>= n`).
    pub ldc: usize,
}

impl MatShape {
    /// Panics unless the strides and the three lengths hold the shape.
    fn check(&self, name: &str, a: usize, b: usize, c: usize) {
        let MatShape {
            m,
            k,
            n,
            lda,
            ldb,
            ldc,
        } = *self;
        assert!(
            lda >= k && ldb >= n && ldc >= n,
            "{name}: a row stride is shorter than its row"
        );
        if m > 0 && k > 0 {
            assert!(a >= (m - 1) * lda + k, "{name}: a too short");
        }
        if k > 0 && n > 0 {
            assert!(b >= (k - 1) * ldb + n, "{name}: b too short");
        }
        if m > 0 && n > 0 {
            assert!(c >= (m - 1) * ldc + n, "{name}: c too short");
        }
    }
}

macro_rules! gemm_nn {
    ($(#[$doc:meta])* $name:ident, $b:ty) => {
        $(#[$doc])*
        ///
        /// `c[t * ldc + j] = sum_{i < k} a[t * lda + i] * b[i * ldb + j]` for `t < m`, `j < n`
        /// (`c`'s other elements are untouched; `k = 0` gives zeros). Panics unless the slices
        /// hold the shape.
        pub fn $name(&self, a: &[f32], b: &[$b], c: &mut [f32], s: MatShape) {
            s.check(stringify!($name), a.len(), b.len(), c.len());
            if s.m == 0 || s.n == 0 {
                return;
            }
            // SAFETY: owning `self` proves the CPU has `self.isa`'s features; the slices hold
            // every element the shape addresses (checked above).
            unsafe { (self.$name)(a, b, c, s) }
        }
    };
}

/// A Q4_0 or Q8_0 matrix repacked in 16-row strips ([`crate::repack`]).
#[derive(Debug, Clone, Copy)]
pub struct Strips<'a> {
    /// The 4-byte groups, strip by strip, block by block.
    pub q: &'a [Lanes],
    /// The block scales, strip by strip, block by block.
    pub d: &'a [Scales16],
}

/// The length contract of the strip gemms: `k` a positive multiple of the block size `qk`,
/// `units` (one per strip and block) whole strips of `nb = k / qk` blocks, `a_len` whole
/// columns, `strips` inside the matrix, `ldo >= 16 * strips.len()` and `out_len` reaching the
/// last element. Returns `nb`, or `None` when there is nothing to compute. Panics naming
/// `name` otherwise.
fn check_strips(
    name: &str,
    (k, qk): (usize, usize),
    units: usize,
    a_len: usize,
    strips: &Range<usize>,
    out_len: usize,
    ldo: usize,
) -> Option<usize> {
    assert!(
        k > 0 && k.is_multiple_of(qk),
        "{name}: k must be a positive multiple of {qk}"
    );
    let nb = k / qk;
    assert!(
        units.is_multiple_of(nb) && a_len.is_multiple_of(nb),
        "{name}: partial strips or columns"
    );
    assert!(
        strips.start <= strips.end && strips.end <= units / nb,
        "{name}: strips out of range"
    );
    let (cols, n) = (a_len / nb, strips.len() * STRIP_ROWS);
    assert!(ldo >= n, "{name}: ldo < rows");
    if n == 0 || cols == 0 {
        return None;
    }
    assert!(out_len >= (cols - 1) * ldo + n, "{name}: out too short");
    Some(nb)
}

macro_rules! strip_gemm {
    ($(#[$doc:meta])* $name:ident, $groups:expr) => {
        $(#[$doc])*
        ///
        /// `w` holds `w.d.len() / (k / 32)` strips of 16 rows; for every row `r` of the strips
        /// in `strips` and every activation column `c` of `a`:
        /// `out[c * ldo + (r - 16 * strips.start)] = vec_dot(row r, column c)`.
        ///
        /// Panics unless `k` is a positive multiple of 32, `w` is consistent (`q` holds
        /// `groups * d.len()` groups, `d` whole strips), `a` holds whole columns, `strips` lies
        /// inside `w`, `ldo >= 16 * strips.len()` and `out` holds the last element.
        pub fn $name(
            &self,
            w: Strips<'_>,
            a: &[BlockQ8_0],
            k: usize,
            strips: Range<usize>,
            out: &mut [f32],
            ldo: usize,
        ) {
            let name = stringify!($name);
            assert!(
                w.q.len() == w.d.len() * $groups,
                "{name}: groups and scales disagree"
            );
            let Some(nb) = check_strips(name, (k, QK), w.d.len(), a.len(), &strips, out.len(), ldo)
            else {
                return;
            };
            let q = &w.q[strips.start * nb * $groups..strips.end * nb * $groups];
            let d = &w.d[strips.start * nb..strips.end * nb];
            // SAFETY: owning `self` proves the CPU has `self.isa`'s features; `q`, `d` and `a`
            // hold whole strips and columns of `nb` blocks and `out` covers every `c * ldo + r`
            // (checked above).
            unsafe { (self.$name)(q, d, a, nb, out, ldo) }
        }
    };
}

macro_rules! k_strip_gemm {
    ($(#[$doc:meta])* $name:ident, $p:ty, $dot:ident) => {
        $(#[$doc])*
        ///
        /// `w` holds `w.len() / (k / 256)` strips of 16 rows; for every row `r` of the strips in
        /// `strips` and every activation column `c` of `a`:
        #[doc = concat!("`out[c * ldo + (r - 16 * strips.start)] = ", stringify!($dot), "(row r, column c)`.")]
        ///
        /// Panics unless `k` is a positive multiple of 256, `w` holds whole strips, `a` whole
        /// columns, `strips` lies inside `w`, `ldo >= 16 * strips.len()` and `out` holds the last
        /// element.
        pub fn $name(
            &self,
            w: &[$p],
            a: &[BlockQ8_K],
            k: usize,
            strips: Range<usize>,
            out: &mut [f32],
            ldo: usize,
        ) {
            let name = stringify!($name);
            let Some(nb) = check_strips(name, (k, QK_K), w.len(), a.len(), &strips, out.len(), ldo)
            else {
                return;
            };
            let w = &w[strips.start * nb..strips.end * nb];
            // SAFETY: owning `self` proves the CPU has `self.isa`'s features; `w` and `a` hold
            // whole strips and columns of `nb` super-blocks and `out` covers every `c * ldo + r`
            // (checked above).
            unsafe { (self.$name)(w, a, nb, out, ldo) }
        }
    };
}

impl Kernels {
    /// Whether this Isa's Q4_0/Q8_0/Q4_K/Q5_K/Q6_K products are fastest on weights repacked in
    /// 16-row strips ([`crate::repack`], [`Kernels::gemm_q4_0x16_q8_0`],
    /// [`Kernels::gemm_q4_kx16_q8_k`]): every SIMD set has its strip kernels; the scalar set's
    /// are its twins, slower than its plain rows.
    pub fn prefers_strips(&self) -> bool {
        self.isa != Isa::Scalar
    }

    /// Whether one activation column (generation) against a repacked matrix of type `ty` is
    /// faster through its plain rows (the `vec_dot`) than through its strips, so that a runtime
    /// keeps both: Q6_K on AVX-512, whose row dot streams the matrix at the memory's speed, and
    /// Q5_K on AVX-512 and AVX-VNNI, whose strips rebuild the fifth bits once per sub-block and
    /// column. On AVX2 the Q5_K strips (fifth-bit shifts fixed at compile time) execute about
    /// half the instructions of the row dot for one column (94 against 182 per 256 products,
    /// counted with callgrind), so no second copy is kept there.
    pub fn prefers_rows_for_one_column(&self, ty: cinder_quant::GgmlType) -> bool {
        use cinder_quant::GgmlType as T;
        match ty {
            T::Q6_K => matches!(self.isa, Isa::Avx512 | Isa::Avx512Vnni),
            T::Q5_K => matches!(self.isa, Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni),
            _ => false,
        }
    }

    strip_gemm!(/// Q4_0 strips x Q8_0 columns (weights repacked at load).
        gemm_q4_0x16_q8_0, repack::Q4_0_GROUPS);
    strip_gemm!(/// Q8_0 strips x Q8_0 columns (weights repacked at load).
        gemm_q8_0x16_q8_0, repack::Q8_0_GROUPS);

    k_strip_gemm!(/// Q4_K strips x Q8_K columns (weights repacked at load by [`repack::repack_q4_k`]).
        gemm_q4_kx16_q8_k, BlockQ4_Kx16, vec_dot_q4_k_q8_k);
    k_strip_gemm!(/// Q5_K strips x Q8_K columns (weights repacked at load by [`repack::repack_q5_k`]).
        gemm_q5_kx16_q8_k, BlockQ5_Kx16, vec_dot_q5_k_q8_k);
    k_strip_gemm!(/// Q6_K strips x Q8_K columns (weights repacked at load by [`repack::repack_q6_k`]).
        gemm_q6_kx16_q8_k, BlockQ6_Kx16, vec_dot_q6_k_q8_k);
    gemm_nn!(/// f32 x f16 matrix product (attention over an f16 KV cache).
        gemm_f32_f16, f16);
    gemm_nn!(/// f32 x f32 matrix product (attention over an f32 KV cache).
        gemm_f32_f32, f32);
    quantizer!(/// f32 -> Q8_0 activations (for Q4_0, Q5_0, Q8_0 weights); bytes equal quant's reference.
        quantize_row_q8_0, BlockQ8_0, QK);
    quantizer!(/// f32 -> Q8_1 activations (for Q4_1, Q5_1 weights); bytes equal quant's reference.
        quantize_row_q8_1, BlockQ8_1, QK);
    quantizer!(/// f32 -> Q8_K activations (for the k-quants); bytes equal quant's reference.
        quantize_row_q8_k, BlockQ8_K, QK_K);
    dot!(/// Q4_0 weights . Q8_0 activations.
        vec_dot_q4_0_q8_0, BlockQ4_0, BlockQ8_0);
    dot!(/// Q5_0 weights . Q8_0 activations.
        vec_dot_q5_0_q8_0, BlockQ5_0, BlockQ8_0);
    dot!(/// Q8_0 weights . Q8_0 activations.
        vec_dot_q8_0_q8_0, BlockQ8_0, BlockQ8_0);
    dot!(/// Q4_1 weights . Q8_1 activations.
        vec_dot_q4_1_q8_1, BlockQ4_1, BlockQ8_1);
    dot!(/// Q5_1 weights . Q8_1 activations.
        vec_dot_q5_1_q8_1, BlockQ5_1, BlockQ8_1);
    dot!(/// Q2_K weights . Q8_K activations.
        vec_dot_q2_k_q8_k, BlockQ2_K, BlockQ8_K);
    dot!(/// Q3_K weights . Q8_K activations.
        vec_dot_q3_k_q8_k, BlockQ3_K, BlockQ8_K);
    dot!(/// Q4_K weights . Q8_K activations.
        vec_dot_q4_k_q8_k, BlockQ4_K, BlockQ8_K);
    dot!(/// Q5_K weights . Q8_K activations.
        vec_dot_q5_k_q8_k, BlockQ5_K, BlockQ8_K);
    dot!(/// Q6_K weights . Q8_K activations.
        vec_dot_q6_k_q8_k, BlockQ6_K, BlockQ8_K);
    dot!(/// f16 weights . f32 activations.
        vec_dot_f16_f32, f16, f32);
    dot!(/// f32 . f32.
        vec_dot_f32_f32, f32, f32);
    gemm!(/// Tiled Q4_0 x Q8_0 matrix product (prompt processing).
        gemm_q4_0_q8_0, BlockQ4_0, BlockQ8_0);
    gemm!(/// Tiled Q8_0 x Q8_0 matrix product (prompt processing).
        gemm_q8_0_q8_0, BlockQ8_0, BlockQ8_0);
    gemm!(/// Tiled Q4_K x Q8_K matrix product (prompt processing; AVX-512 tiles, elsewhere one
        /// dot per row and column).
        gemm_q4_k_q8_k, BlockQ4_K, BlockQ8_K, QK_K);
    dequantizer!(/// Q4_0 -> f32 (embedding rows); bit-equal to quant's reference.
        dequantize_row_q4_0, BlockQ4_0, QK);
    dequantizer!(/// Q8_0 -> f32 (embedding rows); bit-equal to quant's reference.
        dequantize_row_q8_0, BlockQ8_0, QK);
    dequantizer!(/// Q6_K -> f32 (embedding rows); bit-equal to quant's reference.
        dequantize_row_q6_k, BlockQ6_K, QK_K);
    dequantizer!(/// f16 -> f32 (exact).
        dequantize_row_f16, f16, 1);

    /// `x[i] = e^(x[i] - shift)` for every element (softmax's exponentials); returns their sum.
    /// e^x is [`scalar::exp_f32`] (a polynomial, clamped to [-87, 88]) in every kernel set, and
    /// every set returns the same bits.
    pub fn exp_sum(&self, x: &mut [f32], shift: f32) -> f32 {
        // SAFETY: owning `self` proves the CPU has `self.isa`'s features; any length is valid.
        unsafe { (self.exp_sum)(x, shift) }
    }

    /// SwiGLU's gate: `g[i] = g[i] / (1 + e^-g[i]) * u[i]` with [`scalar::exp_f32`], the same
    /// bits in every kernel set.
    ///
    /// Panics unless `g.len() == u.len()`.
    pub fn silu_mul(&self, g: &mut [f32], u: &[f32]) {
        assert_eq!(g.len(), u.len(), "silu_mul: length mismatch");
        // SAFETY: owning `self` proves the CPU has `self.isa`'s features; lengths checked.
        unsafe { (self.silu_mul)(g, u) }
    }
}
