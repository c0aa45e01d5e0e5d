//! aarch64 kernels. [`neon`] holds the `#[inline(always)]` bodies, generic over `DOT` (use the
//! `sdot` instruction or not), and the plain-NEON kernels; [`dotprod`] compiles the same bodies
//! with `DOT = true` under `neon,dotprod`; [`strips`] holds the strip column kernels (Q4_0,
//! Q8_0, Q4_K, Q5_K, Q6_K) of all three sets, and [`i8mm`] is the dotprod set with `smmla`
//! Q4_0/Q8_0 strip gemms.
//!
//! Every helper here is `#[inline(always)]` without `#[target_feature]`: it is only called from
//! inside a `#[target_feature]` kernel, into which it is inlined. The `sdot` inline asm enables
//! the dot-product extension for its own line (`.arch_extension dotprod`): an unoptimised build
//! also emits the helpers that hold it as standalone functions, compiled without the feature,
//! which the assembler would otherwise reject. It runs only where `DOT = true`, which only the
//! `dotprod` kernels pass.
//!
//! Bit-exactness: every kernel except the float dots computes each block's integer sum exactly,
//! reduces it to one `i32` and combines it with the scales by the scalar twin's own float
//! expression, in the scalar's order, so the results equal `crate::scalar` bit for bit.

/// Defines `#[target_feature]` kernels that run an `#[inline(always)]` body under `$feat`.
macro_rules! kernels {
    ($feat:literal; $( $name:ident($($arg:ident: $t:ty),*) $(-> $r:ty)? = $body:path; )*) => {$(
        #[doc = concat!("`", stringify!($body), "` compiled for `", $feat, "`.")]
        ///
        /// # Safety
        /// The CPU must support every feature in `target_feature`; slice lengths must satisfy
        /// the contract checked by the matching safe method of `Kernels`.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name($($arg: $t),*) $(-> $r)? {
            // SAFETY: this function's target features are what the body requires, and the
            // caller upholds the length contract.
            unsafe { $body($($arg),*) }
        }
    )*};
}

/// [`crate::scalar::exp_sum`] as a kernel body: portable code, which LLVM compiles for the
/// kernel's features.
///
/// # Safety
/// None beyond the kernel's (the body is safe code).
#[inline(always)]
unsafe fn exp_sum_body(x: &mut [f32], shift: f32) -> f32 {
    crate::scalar::exp_sum(x, shift)
}

/// [`crate::scalar::silu_mul`] as a kernel body (see [`exp_sum_body`]).
///
/// # Safety
/// None beyond the kernel's (the body is safe code).
#[inline(always)]
unsafe fn silu_mul_body(g: &mut [f32], u: &[f32]) {
    crate::scalar::silu_mul(g, u)
}

pub(crate) mod dotprod;
pub(crate) mod i8mm;
pub(crate) mod neon;
pub(crate) mod strips;

use std::arch::aarch64::*;

/// Advanced SIMD (always present on aarch64 Linux, but probed like every other feature).
pub(crate) fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

/// [`has_neon`] + the dot-product extension (`sdot`).
pub(crate) fn has_dotprod() -> bool {
    has_neon() && std::arch::is_aarch64_feature_detected!("dotprod")
}

/// [`has_dotprod`] + the int8 matrix multiply extension (`smmla`).
pub(crate) fn has_i8mm() -> bool {
    has_dotprod() && std::arch::is_aarch64_feature_detected!("i8mm")
}

/// f16 -> f32 with the base-FP `fcvt` (exact; NaNs are quieted as `half` does).
///
/// # Safety
/// The CPU must support NEON/FP (every aarch64 CPU).
#[inline(always)]
pub(crate) unsafe fn f16_to_f32(h: half::f16) -> f32 {
    let out: f32;
    // SAFETY: `fcvt` (half to single) is base ARMv8 FP; registers only, no memory access.
    unsafe {
        core::arch::asm!(
            "fcvt {o:s}, {i:h}",
            o = lateout(vreg) out,
            i = in(vreg) h.to_bits(),
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Four f16 (as raw bits) -> four f32 with the base-ASIMD `fcvtl` (exact).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn cvt_f16x4(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl` is base ASIMD; registers only, no memory access.
    unsafe {
        core::arch::asm!(
            "fcvtl {o:v}.4s, {i:v}.4h",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// `acc + sdot(a, b)`: lane `i` gains `sum_{k<4} a[4i + k] * b[4i + k]` (exact in i32).
///
/// # Safety
/// The CPU must support NEON + dotprod.
#[inline(always)]
pub(crate) unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: dotprod is guaranteed by the caller; registers only, no memory access.
    unsafe {
        core::arch::asm!(
            ".arch_extension dotprod",
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `acc + products of 16 signed bytes`, spread over 4 i32 lanes, exact for all inputs
/// (`sdot` when `DOT`, else `smull` to i16, then pairwise-add into i32).
///
/// # Safety
/// NEON (+ dotprod when `DOT`).
#[inline(always)]
pub(crate) unsafe fn dot16<const DOT: bool>(
    acc: int32x4_t,
    a: int8x16_t,
    b: int8x16_t,
) -> int32x4_t {
    // SAFETY: features guaranteed by the caller.
    unsafe {
        if DOT {
            sdot(acc, a, b)
        } else {
            let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let hi = vmull_high_s8(a, b);
            vpadalq_s16(vpadalq_s16(acc, lo), hi)
        }
    }
}

/// [`dot16`] over two 16-byte halves of a 32-value block.
///
/// # Safety
/// As [`dot16`].
#[inline(always)]
pub(crate) unsafe fn dot32<const DOT: bool>(
    acc: int32x4_t,
    a: [int8x16_t; 2],
    b: [int8x16_t; 2],
) -> int32x4_t {
    // SAFETY: features guaranteed by the caller.
    unsafe { dot16::<DOT>(dot16::<DOT>(acc, a[0], b[0]), a[1], b[1]) }
}

/// Loads 16 signed bytes from the start of `s` (panics if shorter).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn ld_s8(s: &[i8]) -> int8x16_t {
    let s = &s[..16];
    // SAFETY: NEON guaranteed by the caller; `s` holds 16 bytes.
    unsafe { vld1q_s8(s.as_ptr()) }
}

/// Loads 16 unsigned bytes from the start of `s` (panics if shorter).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn ld_u8(s: &[u8]) -> uint8x16_t {
    let s = &s[..16];
    // SAFETY: NEON guaranteed by the caller; `s` holds 16 bytes.
    unsafe { vld1q_u8(s.as_ptr()) }
}

/// The 32 signed bytes of an i8 block, as two registers.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn ld_s8x32(s: &[i8; 32]) -> [int8x16_t; 2] {
    // SAFETY: NEON guaranteed by the caller.
    unsafe { [ld_s8(&s[..16]), ld_s8(&s[16..])] }
}
