//! x86-64 kernels. [`avx2`] holds the 256-bit kernels (without and with AVX-VNNI) and their
//! `#[inline(always)]` bodies;
//! [`avx512`] holds 512-bit kernels in two flavours (`plain`, `vnni`) and reuses the AVX2
//! bodies, compiled under its own feature set, where 512-bit lanes do not help.
//!
//! Every helper here is `#[inline(always)]` without `#[target_feature]`: it is only called from
//! inside a `#[target_feature]` kernel, into which it is inlined.

/// Defines `#[target_feature]` kernels that run an `#[inline(always)]` body under `$feat`.
/// `unsafe` bodies need the features (`# Safety` of the body); `safe` bodies are the portable
/// scalar code, compiled (and auto-vectorized) for `$feat`.
macro_rules! kernels {
    ($feat:literal; $( $kind:ident $name:ident($($arg:ident: $t:ty),*) $(-> $r:ty)? = $body:path; )*) => {$(
        kernels!(@one $kind $feat $name($($arg: $t),*) $(-> $r)? = $body);
    )*};
    (@one unsafe $feat:literal $name:ident($($arg:ident: $t:ty),*) $(-> $r:ty)? = $body:path) => {
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
    };
    (@one safe $feat:literal $name:ident($($arg:ident: $t:ty),*) $(-> $r:ty)? = $body:path) => {
        #[doc = concat!("`", stringify!($body), "` compiled for `", $feat, "`.")]
        ///
        /// # Safety
        /// The CPU must support every feature in `target_feature`.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name($($arg: $t),*) $(-> $r)? {
            $body($($arg),*)
        }
    };
}

/// The VNNI kinds a 256-bit body is compiled for (its `const VNNI: u8` parameter).
pub(crate) mod vnni {
    /// No VNNI: byte products through `vpmaddubsw` and `vpmaddwd`.
    pub(crate) const NONE: u8 = 0;
    /// AVX512-VNNI + VL: the EVEX-encoded 256-bit `vpdpbusd` (the `avx512vnni` set).
    pub(crate) const EVEX: u8 = 1;
    /// AVX-VNNI: the VEX-encoded `vpdpbusd` (the `avxvnni` set: AVX2 laptops and desktops).
    pub(crate) const VEX: u8 = 2;
}

pub(crate) mod avx2;
pub(crate) mod avx2_strips;
pub(crate) mod avx512;
/// The strip driver is shared with the aarch64 sets; `crate::x86::strips` keeps naming it.
pub(crate) use crate::strips;

use std::arch::x86_64::*;

use crate::repack::{Lanes, Scales16};

/// AVX2 + FMA + F16C.
pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// [`has_avx2`] + AVX-VNNI.
pub(crate) fn has_avxvnni() -> bool {
    has_avx2() && is_x86_feature_detected!("avxvnni")
}

/// [`has_avx2`] + AVX-512 F, BW, VL.
pub(crate) fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

/// [`has_avx512`] + AVX512-VNNI.
pub(crate) fn has_avx512vnni() -> bool {
    has_avx512() && is_x86_feature_detected!("avx512vnni")
}

/// f16 -> f32 with F16C.
///
/// # Safety
/// The CPU must support F16C.
#[inline(always)]
pub(crate) unsafe fn f16_to_f32(h: half::f16) -> f32 {
    // SAFETY: F16C is guaranteed by the caller.
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32))) }
}

/// f32 -> f16 with F16C, rounding to nearest even (as `half::f16::from_f32`, without its
/// run-time feature check or software path).
///
/// # Safety
/// The CPU must support F16C.
#[inline(always)]
pub(crate) unsafe fn f32_to_f16(v: f32) -> half::f16 {
    // SAFETY: F16C is guaranteed by the caller.
    unsafe {
        let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v));
        half::f16::from_bits(_mm_extract_epi16::<0>(h) as u16)
    }
}

/// Sum of the 8 lanes of `v`.
///
/// # Safety
/// The CPU must support AVX.
#[inline(always)]
pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
    // SAFETY: AVX is guaranteed by the caller.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Sum of the 8 i32 lanes of `v` (wrapping, exact when the true sum fits).
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    // SAFETY: AVX2 is guaranteed by the caller.
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

/// Asks for the cache lines of the block `blocks` blocks after `cur` (one block's bytes: the
/// next blocks of a strip, then of the next strip, are contiguous). With few columns the strip
/// kernels otherwise wait on memory where the hardware prefetchers stop (page boundaries):
/// measured on one-token and four-token products, +14% and +30% on a Q4_K_M file.
///
/// # Safety
/// SSE (`prefetcht0` never faults, and the address is formed with wrapping arithmetic).
#[inline(always)]
unsafe fn prefetch_ahead<T>(cur: &[T], blocks: usize) {
    // SAFETY: forwarded caller guarantees.
    unsafe { prefetch_lines_ahead(cur, blocks, 0..usize::MAX) }
}

/// The cache lines `lines` (clipped to the block) of the block `blocks` blocks after `cur`:
/// the one loop behind [`prefetch_ahead`] and [`prefetch_spread`].
///
/// # Safety
/// SSE (`prefetcht0` never faults, and the address is formed with wrapping arithmetic).
#[inline(always)]
unsafe fn prefetch_lines_ahead<T>(cur: &[T], blocks: usize, lines: std::ops::Range<usize>) {
    let len = std::mem::size_of_val(cur);
    let p = cur.as_ptr().cast::<i8>().wrapping_add(blocks * len);
    for line in lines.start..lines.end.min(len.div_ceil(64)) {
        // SAFETY: a prefetch is a hint: no access, no fault, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                p.wrapping_add(64 * line),
            )
        };
    }
}

/// How many super-blocks ahead the k-quant strip kernels prefetch.
const SUPER_BLOCKS_AHEAD: usize = 2;

/// [`prefetch_ahead`] for a k-quant strip kernel at super-block `b`: [`SUPER_BLOCKS_AHEAD`]
/// super-blocks ahead.
///
/// # Safety
/// SSE.
#[inline(always)]
pub(crate) unsafe fn prefetch_super_block<B>(b: &B) {
    // SAFETY: forwarded caller guarantees.
    unsafe { prefetch_ahead(std::slice::from_ref(b), SUPER_BLOCKS_AHEAD) }
}

/// Share `step` of `steps` of the super-block [`SUPER_BLOCKS_AHEAD`] blocks after `b`: a k-quant
/// strip kernel that works through its block in `steps` steps calls this once per step, so that
/// the next blocks' lines are asked for a few at a time. For one column, asking for a whole strip
/// block at once (37 to 53 lines, [`prefetch_super_block`]) at the start of each block left the
/// products out of cache at about half of the memory's speed on AMD Zen 3
/// (`kernels/examples/gemv_bandwidth.rs`); spread, they run at the row-dot kernels' speed or
/// above. With several columns the kernels keep the whole-block prefetch: the spread one,
/// inside their steps, made Q4_K_M prompts about 15% slower there.
///
/// # Safety
/// SSE.
#[inline(always)]
pub(crate) unsafe fn prefetch_spread<B>(b: &B, step: usize, steps: usize) {
    let per = std::mem::size_of::<B>().div_ceil(64).div_ceil(steps);
    // SAFETY: forwarded caller guarantees.
    unsafe {
        prefetch_lines_ahead(
            std::slice::from_ref(b),
            SUPER_BLOCKS_AHEAD,
            per * step..per * step + per,
        )
    }
}

/// [`prefetch_ahead`] for a Q4_0/Q8_0 strip kernel at block `k` (its `groups` 4-byte groups
/// `q` and its scales `d`): 4 KiB of groups ahead, as their blocks are small, and the scales of
/// the same block.
///
/// # Safety
/// SSE.
#[inline(always)]
pub(crate) unsafe fn prefetch_group_block(q: &[Lanes], d: &Scales16, groups: usize) {
    let blocks = 4096 / (groups * std::mem::size_of::<Lanes>());
    // SAFETY: forwarded caller guarantees.
    unsafe {
        prefetch_ahead(q, blocks);
        prefetch_ahead(std::slice::from_ref(d), blocks);
    }
}
