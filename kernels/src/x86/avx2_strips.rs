//! AVX2 column kernels for the 16-row strips ([`crate::repack`]), run by the one strip driver
//! ([`super::strips`]). A strip is two halves of 8 rows: lanes 0..8 and 8..16 of every
//! [`Lanes`] are one 256-bit register each, and each half makes its 8 output rows on its own.
//!
//! Without `vpdpbusd` the byte products go through `vpmaddubsw` (unsigned x signed bytes to
//! saturating i16 pair sums), so every kernel keeps its unsigned weights small enough that no
//! pair sum and no i16 running sum can saturate: 4-bit values (<= 15) times any activation byte
//! (|a| <= 128) make pair sums of at most 3840 in magnitude, and eight of them still fit i16;
//! 6-bit values make 16128, two of which fit. Q8_0 weights (biased to unsigned, 0..=255) are
//! split in their two nibbles (`u = 16 hi + lo`). The i16 sums then go to i32 lanes with
//! `vpmaddwd`, against ones or directly against the per-row scales, so every integer below is
//! exact for every input byte, and the k-quant kernels end in the scalar twins' own float
//! expression (bit-equal to them); the Q4_0/Q8_0 kernels accumulate in their own order.
//!
//! In full calls of four columns, the Q4_0, Q4_K and Q6_K kernels (Q6_K decoded) run both
//! halves of a strip together ([`both_chain`]): on Zen 3 a `vpbroadcastd` of an activation word
//! costs about as much as the `vpmaddubsw` it feeds, and this way each broadcast feeds two.
//! (Q5_K and Q8_0 measured no faster that way and keep one half at a time.)
//!
//! The same kernels serve the `avxvnni` set: with a VNNI kind other than `NONE` (`VNNI`
//! parameter, see [`super::vnni`]) each chain of byte products is one `vpdpbusd` per word into
//! i32 lanes (exact for any bytes, so Q8_0 weights are not split), and a k-quant sub-block's
//! sum meets its scale in one `vpmulld`; the integers, and so the results, are the same.

use std::arch::x86_64::*;

use cinder_quant::block::{BlockQ8_0, BlockQ8_K};

use super::avx2::dpbusd;
use super::vnni::NONE;
use crate::repack::{self, BlockQ6_Kx16, Lanes, Scales16};
use crate::x86::strips::{self, ActBlock, ActK, BlockStrips, K4Block, StripKernel};

/// Rows per half strip.
const HALF: usize = 8;

/// Activation columns per full call of a column kernel (16 registers: 8 weights, 4
/// accumulators and the temporaries).
const COLS: usize = 4;

/// Activation word `t` (bytes `4 t .. 4 t + 4` from `qs`) in every i32 lane.
///
/// # Safety
/// AVX; those bytes are readable.
#[inline(always)]
unsafe fn bcast(qs: *const i8, t: usize) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe { _mm256_set1_epi32(qs.add(4 * t).cast::<i32>().read_unaligned()) }
}

/// Half `h` (rows `8 h .. 8 h + 8`) of a 16-row group.
///
/// # Safety
/// AVX; `l` is 64-byte aligned (every `Lanes` is).
#[inline(always)]
unsafe fn half(l: &Lanes, h: usize) -> __m256i {
    // SAFETY: `l.0[8 h ..]` is 32 bytes at a 32-byte aligned offset of an aligned `Lanes`.
    unsafe { _mm256_load_si256(l.0.as_ptr().add(HALF * h).cast()) }
}

/// The 8 f16 values at `p` (16-byte aligned) as f32.
///
/// # Safety
/// AVX + F16C; 16 readable, 16-byte aligned bytes at `p`.
#[inline(always)]
unsafe fn f16x8(p: *const u16) -> __m256 {
    // SAFETY: forwarded caller guarantees.
    unsafe { _mm256_cvtph_ps(_mm_load_si128(p.cast())) }
}

/// The 8 bytes at `p` sign- (`SIGNED`) or zero-extended to one i16 in both halves of each i32
/// lane, the operand of `vpmaddwd` that multiplies both i16 pair sums of a row by its scale.
///
/// # Safety
/// AVX2; 8 readable bytes at `p`.
#[inline(always)]
unsafe fn scale_pairs<const SIGNED: bool>(p: *const u8) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let b = _mm_loadl_epi64(p.cast());
        let s = if SIGNED {
            _mm256_cvtepi8_epi32(b)
        } else {
            _mm256_cvtepu8_epi32(b)
        };
        _mm256_or_si256(
            _mm256_and_si256(s, _mm256_set1_epi32(0xFFFF)),
            _mm256_slli_epi32(s, 16),
        )
    }
}

/// `sum_t maddubs(w[t], word t of qs)` as i16 pair sums, in one chain or two (`SPLIT`); exact
/// when the result fits i16 (see the module documentation).
///
/// # Safety
/// AVX2; bytes `0 .. 4 N` at `qs` readable.
#[inline(always)]
unsafe fn madd_words<const N: usize, const SPLIT: bool>(
    w: &[__m256i; N],
    qs: *const i8,
) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let mut p = [_mm256_setzero_si256(); 2];
        for (t, &w) in w.iter().enumerate() {
            let i = if SPLIT { t & 1 } else { 0 };
            p[i] = _mm256_add_epi16(p[i], _mm256_maddubs_epi16(w, bcast(qs, t)));
        }
        if SPLIT {
            _mm256_add_epi16(p[0], p[1])
        } else {
            p[0]
        }
    }
}

/// `init + sum_t vpdpbusd(w[t], word t of qs)` in i32 lanes, in one chain or two (`SPLIT`);
/// exact. The first chain starts from `init` (a seed costs no extra add).
///
/// # Safety
/// AVX2 and the features of the VNNI kind `VNNI` (not `NONE`); bytes `0 .. 4 N` at `qs`
/// readable.
#[inline(always)]
unsafe fn dp_words<const N: usize, const SPLIT: bool, const VNNI: u8>(
    init: __m256i,
    w: &[__m256i; N],
    qs: *const i8,
) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let mut p = [init, _mm256_setzero_si256()];
        for (t, &w) in w.iter().enumerate() {
            let i = if SPLIT { t & 1 } else { 0 };
            p[i] = dpbusd::<VNNI>(p[i], w, bcast(qs, t));
        }
        if SPLIT {
            _mm256_add_epi32(p[0], p[1])
        } else {
            p[0]
        }
    }
}

/// The 8 bytes at `p` sign- (`SIGNED`) or zero-extended to i32 lanes (the rows' scales for
/// `vpmulld`).
///
/// # Safety
/// AVX2; 8 readable bytes at `p`.
#[inline(always)]
unsafe fn scale_words<const SIGNED: bool>(p: *const u8) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let b = _mm_loadl_epi64(p.cast());
        if SIGNED {
            _mm256_cvtepi8_epi32(b)
        } else {
            _mm256_cvtepu8_epi32(b)
        }
    }
}

/// The k-quant VNNI step of one sub-block or group: `isum[c] += scale_r * sum_t vpdpbusd(w[t],
/// word t of qs(c))` per row lane `r`, the rows' scales `sc` ([`scale_words`]); exact while the
/// sums fit i32.
///
/// # Safety
/// AVX2 and the features of the VNNI kind `VNNI` (not `NONE`); bytes `0 .. 4 N` at each
/// `qs(c)` readable.
#[inline(always)]
unsafe fn add_scaled_dots<const N: usize, const RN: usize, const SPLIT: bool, const VNNI: u8>(
    isum: &mut [__m256i; RN],
    w: &[__m256i; N],
    qs: impl Fn(usize) -> *const i8,
    sc: __m256i,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        for (c, isum) in isum.iter_mut().enumerate() {
            let p = dp_words::<N, SPLIT, VNNI>(_mm256_setzero_si256(), w, qs(c));
            *isum = _mm256_add_epi32(*isum, _mm256_mullo_epi32(p, sc));
        }
    }
}

/// The rows' scales of half `h` at `sp` (8 bytes, sign- (`SIGNED`) or zero-extended) as the
/// column kernels multiply by them: i32 words for `vpmulld` with VNNI, else i16 pairs for
/// `vpmaddwd`.
///
/// # Safety
/// AVX2; 8 readable bytes at `sp`.
#[inline(always)]
unsafe fn scale_operand<const SIGNED: bool, const VNNI: u8>(sp: *const u8) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        if VNNI != NONE {
            scale_words::<SIGNED>(sp)
        } else {
            scale_pairs::<SIGNED>(sp)
        }
    }
}

/// Writes `v` to half `h` (rows `8 h .. 8 h + 8`) of `l`.
///
/// # Safety
/// AVX.
#[inline(always)]
unsafe fn put_half(l: &mut Lanes, h: usize, v: __m256i) {
    // SAFETY: `l.0[8 h ..]` is 32 bytes at a 32-byte aligned offset of an aligned `Lanes`.
    unsafe { _mm256_store_si256(l.0.as_mut_ptr().add(HALF * h).cast(), v) }
}

/// Writes unit `u` (a sub-block or group of `N` words), half `h`, to a super-block's decoded
/// words `d`: its values `wv` to words `N u ..`, its scale operand `sc` to word `WORDS + u`.
///
/// # Safety
/// AVX; indexing is checked.
#[inline(always)]
unsafe fn put_unit<const N: usize>(
    d: &mut [Lanes],
    u: usize,
    h: usize,
    (wv, sc): ([__m256i; N], __m256i),
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        for (t, v) in wv.into_iter().enumerate() {
            put_half(&mut d[N * u + t], h, v);
        }
        put_half(&mut d[WORDS + u], h, sc);
    }
}

/// Unit `u`, half `h`, of a super-block's decoded words `d`, as [`put_unit`] wrote it: its
/// values and its scale operand.
///
/// # Safety
/// AVX; indexing is checked.
#[inline(always)]
unsafe fn unit<const N: usize>(d: &[Lanes], u: usize, h: usize) -> ([__m256i; N], __m256i) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let mut wv = [_mm256_setzero_si256(); N];
        for (t, wv) in wv.iter_mut().enumerate() {
            *wv = unit_word::<N>(d, u, t, h);
        }
        (wv, unit_scale(d, u, h))
    }
}

/// Word `t` of unit `u` (of `N` words), half `h`, of a super-block's decoded words `d`.
///
/// # Safety
/// AVX; indexing is checked.
#[inline(always)]
unsafe fn unit_word<const N: usize>(d: &[Lanes], u: usize, t: usize, h: usize) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe { half(&d[N * u + t], h) }
}

/// The scale operand of unit `u`, half `h`, of a super-block's decoded words `d`.
///
/// # Safety
/// AVX; indexing is checked.
#[inline(always)]
unsafe fn unit_scale(d: &[Lanes], u: usize, h: usize) -> __m256i {
    // SAFETY: forwarded caller guarantees.
    unsafe { half(&d[WORDS + u], h) }
}

/// The start of super-block `k` (`b`) in a k-quant column kernel: its decoded words (`per`
/// of them) with `DEC`, else none; reading the packed strip for several columns, the whole
/// block [`super::SUPER_BLOCKS_AHEAD`] ahead is prefetched here (one column spreads it over
/// its steps instead).
///
/// # Safety
/// SSE; with `DEC`, `dec` holds block `k`'s words (checked).
#[inline(always)]
unsafe fn block_start<'a, B, const RN: usize, const DEC: bool>(
    b: &B,
    dec: &'a [Lanes],
    k: usize,
    per: usize,
) -> &'a [Lanes] {
    if DEC {
        return &dec[k * per..(k + 1) * per];
    }
    if RN > 1 {
        // SAFETY: forwarded caller guarantees.
        unsafe { super::prefetch_super_block(b) };
    }
    &[]
}

/// Columns from which a Q4_K, Q5_K or Q6_K strip is decoded once per gemm call
/// ([`StripKernel::decode`]): the bytes rebuilt from nibbles and high bits then serve every
/// column call instead of being rebuilt in each.
const DECODE_FROM: usize = 8;

/// Columns of a full column call, in which the kernels without VNNI run both halves of a strip
/// together ([`both_halves`]): two halves times four columns, 8 i16 chains.
const BOTH_COLS: usize = COLS;

/// Decoded weight words per super-block: word `t` holds values `4 t .. 4 t + 4` of each row as
/// unsigned bytes; the rows' scale operands ([`scale_operand`]) follow, one word per sub-block
/// or group.
pub(crate) const WORDS: usize = 64;

/// Stores half `h` of `RN` columns' 8-row results at `out[(c0 + c) * ldo + r0 + 8 h ..]`.
///
/// # Safety
/// AVX; indexing is checked.
#[inline(always)]
unsafe fn store_half<const RN: usize>(
    acc: &[__m256; RN],
    (r0, c0, h): (usize, usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    for (c, &v) in acc.iter().enumerate() {
        let o = &mut out[(c0 + c) * ldo + r0 + HALF * h..][..HALF];
        // SAFETY: `o` holds 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) }
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_0 and Q8_0 strips.

/// A 32-value weight format in strips: its integer dots of one half block against `RN`
/// activation blocks.
pub(crate) trait Fmt {
    /// 4-byte groups per block.
    const GROUPS: usize;
    /// The unsigned weights' offset (the signed value is `u - OFFSET`).
    const OFFSET: i32;
    /// `seed[c] + sum_i u_i a_i` (unsigned weights) per row of half `h` of one block (`q`, its
    /// groups) against the 32 activation bytes at each `qs[c]`.
    ///
    /// # Safety
    /// AVX2 (and the features of the VNNI kind `VNNI`); `q` holds the block's groups, 32 bytes
    /// readable at each `qs[c]`.
    unsafe fn idots<const RN: usize, const SPLIT: bool, const VNNI: u8>(
        q: &[Lanes],
        h: usize,
        qs: [*const i8; RN],
        seed: [i32; RN],
    ) -> [__m256i; RN];
    /// Whether full column calls without VNNI take both halves at once ([`Fmt::idots_both`]).
    const BOTH: bool;
    /// Without VNNI: `isum[h][c] += sum_i u_i a_i` per row of half `h` of one block (`q`)
    /// against the 32 activation bytes at each `qs(c)`; by default one half after the other
    /// ([`Fmt::idots`]).
    ///
    /// # Safety
    /// AVX2; `q` holds the block's groups, 32 bytes readable at each `qs(c)`.
    #[inline(always)]
    unsafe fn idots_both<const RN: usize>(
        q: &[Lanes],
        qs: impl Fn(usize) -> *const i8,
        isum: &mut [[__m256i; RN]; 2],
    ) {
        let mut ptrs = [std::ptr::null(); RN];
        for (c, p) in ptrs.iter_mut().enumerate() {
            *p = qs(c);
        }
        for (h, isum) in isum.iter_mut().enumerate() {
            // SAFETY: forwarded caller guarantees.
            let d = unsafe { Self::idots::<RN, false, NONE>(q, h, ptrs, [0; RN]) };
            for (isum, d) in isum.iter_mut().zip(d) {
                // SAFETY: forwarded caller guarantees.
                *isum = unsafe { _mm256_add_epi32(*isum, d) };
            }
        }
    }
}

/// Q4_0: register `s < 8` of a half block holds the low (`s < 4`) or high nibbles of group
/// `s % 4`, against activation word `s`; eight pair sums of nibbles fit i16.
pub(crate) struct Q4_0;

impl Fmt for Q4_0 {
    const GROUPS: usize = repack::Q4_0_GROUPS;
    const OFFSET: i32 = 8;
    const BOTH: bool = true;
    #[inline(always)]
    unsafe fn idots<const RN: usize, const SPLIT: bool, const VNNI: u8>(
        q: &[Lanes],
        h: usize,
        qs: [*const i8; RN],
        seed: [i32; RN],
    ) -> [__m256i; RN] {
        // SAFETY: forwarded caller guarantees.
        unsafe {
            let nib = _mm256_set1_epi8(0x0F);
            let mut w = [_mm256_setzero_si256(); 8];
            for g in 0..4 {
                let raw = half(&q[g], h);
                w[g] = _mm256_and_si256(raw, nib);
                w[4 + g] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);
            }
            let ones = _mm256_set1_epi16(1);
            let mut out = [_mm256_setzero_si256(); RN];
            for ((o, &qs), &seed) in out.iter_mut().zip(&qs).zip(&seed) {
                let seed = _mm256_set1_epi32(seed);
                *o = if VNNI != NONE {
                    dp_words::<8, SPLIT, VNNI>(seed, &w, qs)
                } else {
                    let p = _mm256_madd_epi16(madd_words::<8, SPLIT>(&w, qs), ones);
                    _mm256_add_epi32(p, seed)
                };
            }
            out
        }
    }
    #[inline(always)]
    unsafe fn idots_both<const RN: usize>(
        q: &[Lanes],
        qs: impl Fn(usize) -> *const i8,
        isum: &mut [[__m256i; RN]; 2],
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe {
            let nib = _mm256_set1_epi8(0x0F);
            let mut p = [[_mm256_setzero_si256(); RN]; 2];
            let lo = |h: usize, t: usize| _mm256_and_si256(half(&q[t], h), nib);
            both_chain::<4, RN>(lo, &qs, &mut p);
            let hi =
                |h: usize, t: usize| _mm256_and_si256(_mm256_srli_epi16(half(&q[t], h), 4), nib);
            both_chain::<4, RN>(hi, |c| qs(c).add(16), &mut p);
            let ones = _mm256_set1_epi16(1);
            both_scale(&p, [ones, ones], isum);
        }
    }
}

/// Q8_0 (bytes biased to unsigned, `u = w + 128`): `u = 16 hi + lo`, each nibble against the
/// activations in its own i16 chain, four groups at a time; with VNNI, `u` itself in one chain.
pub(crate) struct Q8_0;

impl Fmt for Q8_0 {
    const GROUPS: usize = repack::Q8_0_GROUPS;
    const OFFSET: i32 = 128;
    // Both halves at once (lo and hi nibble chains in turn) measured slower: pp512 29.6 -> 26.4.
    const BOTH: bool = false;
    #[inline(always)]
    unsafe fn idots<const RN: usize, const SPLIT: bool, const VNNI: u8>(
        q: &[Lanes],
        h: usize,
        qs: [*const i8; RN],
        seed: [i32; RN],
    ) -> [__m256i; RN] {
        // SAFETY: forwarded caller guarantees.
        unsafe {
            if VNNI != NONE {
                let mut w = [_mm256_setzero_si256(); 8];
                for (t, w) in w.iter_mut().enumerate() {
                    *w = half(&q[t], h);
                }
                let mut out = [_mm256_setzero_si256(); RN];
                for ((o, &qs), &seed) in out.iter_mut().zip(&qs).zip(&seed) {
                    *o = dp_words::<8, SPLIT, VNNI>(_mm256_set1_epi32(seed), &w, qs);
                }
                return out;
            }
            let nib = _mm256_set1_epi8(0x0F);
            let (mut lo, mut hi) = ([_mm256_setzero_si256(); RN], [_mm256_setzero_si256(); RN]);
            for part in 0..2 {
                let (mut wl, mut wh) = ([_mm256_setzero_si256(); 4], [_mm256_setzero_si256(); 4]);
                for t in 0..4 {
                    let raw = half(&q[4 * part + t], h);
                    wl[t] = _mm256_and_si256(raw, nib);
                    wh[t] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);
                }
                for c in 0..RN {
                    let p = qs[c].add(16 * part);
                    lo[c] = _mm256_add_epi16(lo[c], madd_words::<4, false>(&wl, p));
                    hi[c] = _mm256_add_epi16(hi[c], madd_words::<4, false>(&wh, p));
                }
            }
            let (ones, sixteen) = (_mm256_set1_epi16(1), _mm256_set1_epi16(16));
            for ((lo, &hi), &seed) in lo.iter_mut().zip(&hi).zip(&seed) {
                let p =
                    _mm256_add_epi32(_mm256_madd_epi16(*lo, ones), _mm256_madd_epi16(hi, sixteen));
                *lo = _mm256_add_epi32(p, _mm256_set1_epi32(seed));
            }
            lo
        }
    }
}

/// One block's float step of the Q4_0 / Q8_0 column kernels: `acc += i * (dw * yd)`, the
/// block's integer dots `i` of 8 rows (scales `dw`) against one column (scale `yd`).
///
/// # Safety
/// AVX + FMA.
#[inline(always)]
unsafe fn add_block(acc: &mut __m256, i: __m256i, dw: __m256, yd: f32) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let sc = _mm256_mul_ps(dw, _mm256_set1_ps(yd));
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), sc, *acc);
    }
}

/// The AVX2 column kernel of format `F` (with the VNNI kind `VNNI`).
pub(crate) struct Blocks<F, const VNNI: u8>(std::marker::PhantomData<F>);

impl<F: Fmt, const VNNI: u8> StripKernel for Blocks<F, VNNI> {
    type W<'a> = BlockStrips<'a>;
    type A = BlockQ8_0;
    type M = ActBlock;
    const COLS: usize = COLS;
    fn prep(a: &[BlockQ8_0]) -> Vec<ActBlock> {
        strips::act_blocks(F::OFFSET, a)
    }
    fn done(m: Vec<ActBlock>) {
        strips::give_back_blocks(m)
    }
    #[inline(always)]
    unsafe fn cols<const RN: usize, const SPLIT: bool>(
        w: BlockStrips<'_>,
        a: &[BlockQ8_0],
        m: &[ActBlock],
        nb: usize,
        (r0, c0): (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        let a = &a[c0 * nb..(c0 + RN) * nb];
        let m = &m[c0 * nb..(c0 + RN) * nb];
        // SAFETY: features guaranteed by the caller; `w.q` holds `nb * GROUPS` groups and
        // `w.d` `nb` scales (one strip); each activation read is inside its block's 32 bytes.
        unsafe {
            if VNNI == NONE && RN == BOTH_COLS && F::BOTH {
                // Both halves at once, each activation word broadcast once for the two.
                let mut acc = [[_mm256_setzero_ps(); RN]; 2];
                for k in 0..nb {
                    let q = &w.q[k * F::GROUPS..(k + 1) * F::GROUPS];
                    super::prefetch_group_block(q, &w.d[k], F::GROUPS);
                    let mut isum = [[_mm256_setzero_si256(); RN]; 2];
                    for c in 0..RN {
                        let seed = _mm256_set1_epi32(m[c * nb + k].seed);
                        (isum[0][c], isum[1][c]) = (seed, seed);
                    }
                    F::idots_both::<RN>(q, |c| a[c * nb + k].qs.as_ptr(), &mut isum);
                    for (h, (acc, isum)) in acc.iter_mut().zip(&isum).enumerate() {
                        let dw = f16x8(w.d[k].0.as_ptr().add(HALF * h));
                        for (c, (acc, &i)) in acc.iter_mut().zip(isum).enumerate() {
                            add_block(acc, i, dw, m[c * nb + k].d);
                        }
                    }
                }
                for (h, acc) in acc.iter().enumerate() {
                    store_half(acc, (r0, c0, h), out, ldo);
                }
                return;
            }
            // Few columns (generation): both halves of each block in turn, so the strip streams
            // once. More: one half at a time, whose 8 weight registers stay while 4 columns pass.
            let (halves, passes) = if RN <= 2 { (2, 1) } else { (1, 2) };
            for pass in 0..passes {
                // acc[h][j][c]: half h, chain j (odd blocks when SPLIT), column c.
                let mut acc = [[[_mm256_setzero_ps(); RN]; 2]; 2];
                for k in 0..nb {
                    let q = &w.q[k * F::GROUPS..(k + 1) * F::GROUPS];
                    super::prefetch_group_block(q, &w.d[k], F::GROUPS);
                    let mut qs = [std::ptr::null(); RN];
                    let mut seed = [0; RN];
                    for (c, (qs, seed)) in qs.iter_mut().zip(&mut seed).enumerate() {
                        *qs = a[c * nb + k].qs.as_ptr();
                        *seed = m[c * nb + k].seed;
                    }
                    let j = if SPLIT { k & 1 } else { 0 };
                    for (hh, acc) in acc.iter_mut().enumerate().take(halves) {
                        let h = pass + hh;
                        let dw = f16x8(w.d[k].0.as_ptr().add(HALF * h));
                        let is = F::idots::<RN, SPLIT, VNNI>(q, h, qs, seed);
                        for (c, &i) in is.iter().enumerate() {
                            add_block(&mut acc[j][c], i, dw, m[c * nb + k].d);
                        }
                    }
                }
                for (hh, [acc, odd]) in acc.iter_mut().enumerate().take(halves) {
                    if SPLIT {
                        for (a, &b) in acc.iter_mut().zip(odd.iter()) {
                            *a = _mm256_add_ps(*a, b);
                        }
                    }
                    store_half(acc, (r0, c0, pass + hh), out, ldo);
                }
            }
        }
    }
}

/// The Q4_0 / Q8_0 strip gemms (`Kernels::gemm_q4_0x16_q8_0` / `gemm_q8_0x16_q8_0`).
///
/// # Safety
/// AVX2 + FMA + F16C (and the VNNI kind's features); `q.len() == d.len() * F::GROUPS`,
/// `d.len()` and `a.len()` multiples of `nb`, `out` covers every `c * ldo + r` (indexing is
/// checked anyway).
#[inline(always)]
pub(crate) unsafe fn strips_body<F: Fmt, const VNNI: u8>(
    q: &[Lanes],
    d: &[Scales16],
    a: &[BlockQ8_0],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let w = BlockStrips {
        q,
        d,
        groups: F::GROUPS,
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { strips::drive::<Blocks<F, VNNI>>(w, a, nb, out, ldo) }
}

// ---------------------------------------------------------------------------------------------
// Q4_K strips. Per half, super-block and sub-block `s`: 8 registers of nibbles, each column's
// 8 `vpmaddubsw` summed in i16 (<= 8 * 3840), then one `vpmaddwd` against the rows' scales
// gives `scale_s * p_s` in each row's i32 lane. The mins: `vpmaddubsw` of the min bytes against
// the split pair sums of `ActK` (<= 4 * 63 * 128 per i16), `vpmaddwd` by ones. Float step: the
// scalar's.

/// Q4_K strips (and Q5_K strips: the same kernel with the fifth bits added to the nibbles and
/// two i16 chains of four words per sub-block, each <= 4 * 7936), AVX2 column kernel. With
/// VNNI: 8 `vpdpbusd` per sub-block and column, then one `vpmulld` by the rows' scales. For
/// Q5_K with [`DECODE_FROM`] columns or more, each strip's value bytes (nibbles and fifth bits
/// joined) and scale operands are decoded once per call, [`WORDS`] + 8 words per super-block.
pub(crate) struct Q4K<B, const VNNI: u8>(std::marker::PhantomData<B>);

impl<B: K4Block + 'static, const VNNI: u8> StripKernel for Q4K<B, VNNI> {
    type W<'a> = &'a [B];
    type A = BlockQ8_K;
    type M = ActK;
    const COLS: usize = COLS;
    // Q4_K's nibbles cost one `vpand` (and a shift for odd sub-blocks) per register, less than
    // reading twice the bytes back: decoding made its prompts slower.
    const DECODE_FROM: usize = if B::Q5 { DECODE_FROM } else { usize::MAX };
    const DECODED: usize = WORDS + 8;
    fn prep(a: &[BlockQ8_K]) -> Vec<ActK> {
        strips::act_k(a)
    }
    fn done(m: Vec<ActK>) {
        strips::give_back_k(m)
    }
    #[inline(always)]
    unsafe fn cols<const RN: usize, const SPLIT: bool>(
        w: &[B],
        a: &[BlockQ8_K],
        m: &[ActK],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe { q4k_cols::<B, RN, SPLIT, VNNI, false>(w, &[], a, m, nb, rc, out, ldo) }
    }
    #[inline(always)]
    unsafe fn decode(w: &[B], nb: usize, dec: &mut [Lanes]) {
        // SAFETY: features guaranteed by the caller; see `k4_decode`.
        unsafe {
            for (bk, d) in w.iter().zip(dec.chunks_exact_mut(WORDS + 8)).take(nb) {
                super::prefetch_super_block(bk);
                for h in 0..2 {
                    k4_decode::<0, B, VNNI>(bk, h, d);
                    k4_decode::<1, B, VNNI>(bk, h, d);
                    k4_decode::<2, B, VNNI>(bk, h, d);
                    k4_decode::<3, B, VNNI>(bk, h, d);
                    k4_decode::<4, B, VNNI>(bk, h, d);
                    k4_decode::<5, B, VNNI>(bk, h, d);
                    k4_decode::<6, B, VNNI>(bk, h, d);
                    k4_decode::<7, B, VNNI>(bk, h, d);
                }
            }
        }
    }
    #[inline(always)]
    unsafe fn cols_decoded<const RN: usize, const SPLIT: bool>(
        w: &[B],
        dec: &[Lanes],
        a: &[BlockQ8_K],
        m: &[ActK],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe { q4k_cols::<B, RN, SPLIT, VNNI, true>(w, dec, a, m, nb, rc, out, ldo) }
    }
}

/// The [`Q4K`] column kernel, on the strip `w` or (`DEC`) on its decoded words `dec`.
///
/// # Safety
/// As [`StripKernel::cols`]; with `DEC`, `dec` holds `w` decoded ([`Q4K`]'s `decode`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn q4k_cols<
    B: K4Block,
    const RN: usize,
    const SPLIT: bool,
    const VNNI: u8,
    const DEC: bool,
>(
    w: &[B],
    dec: &[Lanes],
    a: &[BlockQ8_K],
    m: &[ActK],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    let a = &a[c0 * nb..(c0 + RN) * nb];
    let m = &m[c0 * nb..(c0 + RN) * nb];
    // SAFETY: features guaranteed by the caller; the aligned loads read 32-byte halves of
    // 64-byte aligned `Lanes` and 16-byte aligned halves of the `Scales16` fields; each
    // activation read is inside its block's `qs` (`32 s + 32 <= 256`).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut accf2 = [[_mm256_setzero_ps(); RN]; 2];
        for (k, bk) in w.iter().enumerate().take(nb) {
            let dk = block_start::<B, RN, DEC>(bk, dec, k, WORDS + 8);
            let mut isum2 = [[_mm256_setzero_si256(); RN]; 2];
            // Sub-block `s` is a const parameter: its nibble and fifth-bit shifts are chosen at
            // compile time and the 8 sub-blocks run without branches.
            if VNNI == NONE && RN == BOTH_COLS && !B::Q5 {
                let at = (k, nb);
                k4_sub_both::<0, B, RN>(bk, a, at, &mut isum2);
                k4_sub_both::<1, B, RN>(bk, a, at, &mut isum2);
                k4_sub_both::<2, B, RN>(bk, a, at, &mut isum2);
                k4_sub_both::<3, B, RN>(bk, a, at, &mut isum2);
                k4_sub_both::<4, B, RN>(bk, a, at, &mut isum2);
                k4_sub_both::<5, B, RN>(bk, a, at, &mut isum2);
                k4_sub_both::<6, B, RN>(bk, a, at, &mut isum2);
                k4_sub_both::<7, B, RN>(bk, a, at, &mut isum2);
            } else {
                for (h, isum) in isum2.iter_mut().enumerate() {
                    let at = (k, nb, h);
                    k4_sub::<0, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                    k4_sub::<1, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                    k4_sub::<2, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                    k4_sub::<3, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                    k4_sub::<4, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                    k4_sub::<5, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                    k4_sub::<6, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                    k4_sub::<7, B, RN, SPLIT, VNNI, DEC>(bk, dk, a, at, isum);
                }
            }
            for ((h, accf), isum) in accf2.iter_mut().enumerate().zip(isum2) {
                let b = bk.q4();
                let d = f16x8(b.d.0.as_ptr().add(HALF * h));
                let dmin = f16x8(b.dmin.0.as_ptr().add(HALF * h));
                let mins = [half(&b.mins[0], h), half(&b.mins[1], h)];
                for (c, (accf, &isum)) in accf.iter_mut().zip(&isum).enumerate() {
                    let mk = &m[c * nb + k];
                    let part = |w0: i32, w1: i32| {
                        let (w0, w1) = (_mm256_set1_epi32(w0), _mm256_set1_epi32(w1));
                        if VNNI != NONE {
                            let p = dpbusd::<VNNI>(_mm256_setzero_si256(), mins[0], w0);
                            dpbusd::<VNNI>(p, mins[1], w1)
                        } else {
                            let p0 = _mm256_maddubs_epi16(mins[0], w0);
                            let p1 = _mm256_maddubs_epi16(mins[1], w1);
                            _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones)
                        }
                    };
                    let msum = _mm256_add_epi32(
                        _mm256_slli_epi32(part(mk.bs[0], mk.bs[1]), 8),
                        part(mk.bs[2], mk.bs[3]),
                    );
                    let yd = _mm256_set1_ps(mk.d);
                    let t = _mm256_sub_ps(
                        _mm256_mul_ps(_mm256_mul_ps(yd, d), _mm256_cvtepi32_ps(isum)),
                        _mm256_mul_ps(_mm256_mul_ps(yd, dmin), _mm256_cvtepi32_ps(msum)),
                    );
                    *accf = _mm256_add_ps(*accf, t);
                }
            }
        }
        for (h, accf) in accf2.iter().enumerate() {
            store_half(accf, (r0, c0, h), out, ldo);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q6_K strips. Per half, super-block and group `g` (16 values, in half `n = g / 8` as quarter
// `m = g % 8 / 2`, words `j = 4 (g % 2) ..`): 4 registers of unsigned 6-bit quants rebuilt from
// `ql` nibbles and `qh` bit pairs; per column two i16 chains of two `vpmaddubsw` (<= 2 * 16128
// each), each multiplied by the rows' signed scales with `vpmaddwd`. The -32 offset is removed
// once per super-block: `32 * sum_g scale_g * bsums[g]`, one `vpmaddwd` per pair of groups.
// The integer `isum` equals the scalar's, and the float step is the scalar's.

/// Q6_K strips, AVX2 column kernel. With VNNI: per group and column one chain of 4
/// `vpdpbusd`, then one `vpmulld` by the rows' signed scales. With [`DECODE_FROM`] columns or
/// more, each strip's 6-bit values and scale operands are decoded once per call, [`WORDS`] +
/// 16 words per super-block.
pub(crate) struct Q6K<const VNNI: u8>;

impl<const VNNI: u8> StripKernel for Q6K<VNNI> {
    type W<'a> = &'a [BlockQ6_Kx16];
    type A = BlockQ8_K;
    type M = ();
    const COLS: usize = COLS;
    const DECODE_FROM: usize = DECODE_FROM;
    const DECODED: usize = WORDS + 16;
    fn prep(_: &[BlockQ8_K]) -> Vec<()> {
        Vec::new()
    }
    fn done(_: Vec<()>) {}
    #[inline(always)]
    unsafe fn cols<const RN: usize, const SPLIT: bool>(
        w: &[BlockQ6_Kx16],
        a: &[BlockQ8_K],
        _: &[()],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe { q6k_cols::<RN, SPLIT, VNNI, false>(w, &[], a, nb, rc, out, ldo) }
    }
    #[inline(always)]
    unsafe fn decode(w: &[BlockQ6_Kx16], nb: usize, dec: &mut [Lanes]) {
        // SAFETY: features guaranteed by the caller; see `q6_decode`.
        unsafe {
            for (b, d) in w.iter().zip(dec.chunks_exact_mut(WORDS + 16)).take(nb) {
                super::prefetch_super_block(b);
                for h in 0..2 {
                    for n in 0..2 {
                        for jh in 0..2 {
                            q6_decode::<0, VNNI>(b, (h, n, jh), d);
                            q6_decode::<1, VNNI>(b, (h, n, jh), d);
                            q6_decode::<2, VNNI>(b, (h, n, jh), d);
                            q6_decode::<3, VNNI>(b, (h, n, jh), d);
                        }
                    }
                }
            }
        }
    }
    #[inline(always)]
    unsafe fn cols_decoded<const RN: usize, const SPLIT: bool>(
        w: &[BlockQ6_Kx16],
        dec: &[Lanes],
        a: &[BlockQ8_K],
        _: &[()],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe { q6k_cols::<RN, SPLIT, VNNI, true>(w, dec, a, nb, rc, out, ldo) }
    }
}

/// The [`Q6K`] column kernel, on the strip `w` or (`DEC`) on its decoded words `dec`.
///
/// # Safety
/// As [`StripKernel::cols`]; with `DEC`, `dec` holds `w` decoded ([`Q6K`]'s `decode`).
#[inline(always)]
unsafe fn q6k_cols<const RN: usize, const SPLIT: bool, const VNNI: u8, const DEC: bool>(
    w: &[BlockQ6_Kx16],
    dec: &[Lanes],
    a: &[BlockQ8_K],
    nb: usize,
    (r0, c0): (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    let a = &a[c0 * nb..(c0 + RN) * nb];
    // SAFETY: features guaranteed by the caller; the aligned loads read 32-byte halves of
    // 64-byte aligned `Lanes` and a 16-byte aligned half of `d`; 8 bytes of `scales[g]`;
    // each activation read is inside its block's `qs` (`16 g + 16 <= 256`).
    unsafe {
        let lo16 = _mm256_set1_epi32(0xFFFF);
        let mut accf2 = [[_mm256_setzero_ps(); RN]; 2];
        for (k, b) in w.iter().enumerate().take(nb) {
            let dk = block_start::<BlockQ6_Kx16, RN, DEC>(b, dec, k, WORDS + 16);
            let mut isum2 = [[_mm256_setzero_si256(); RN]; 2];
            if VNNI == NONE && RN == BOTH_COLS && DEC {
                // Both halves at once: each activation word broadcast once for the two.
                for g in 0..16 {
                    let sc = [unit_scale(dk, g, 0), unit_scale(dk, g, 1)];
                    let qs = |c: usize| a[c * nb + k].qs.as_ptr().add(16 * g);
                    let word = |h: usize, t: usize| unit_word::<4>(dk, g, t, h);
                    both_halves::<4, 2, RN>(word, sc, qs, &mut isum2);
                }
            } else {
                for (h, isum) in isum2.iter_mut().enumerate() {
                    // Quarter `m` is a const parameter, so that its `qh` shift is chosen at
                    // compile time and the 16 groups run without branches.
                    for n in 0..2 {
                        for jh in 0..2 {
                            if RN == 1 && !DEC {
                                super::prefetch_spread(b, 4 * h + 2 * n + jh, 8);
                            }
                            let at = (k, nb, h, n, jh);
                            q6_group::<0, RN, SPLIT, VNNI, DEC>(b, dk, a, at, isum);
                            q6_group::<1, RN, SPLIT, VNNI, DEC>(b, dk, a, at, isum);
                            q6_group::<2, RN, SPLIT, VNNI, DEC>(b, dk, a, at, isum);
                            q6_group::<3, RN, SPLIT, VNNI, DEC>(b, dk, a, at, isum);
                        }
                    }
                }
            }
            for ((h, accf), isum) in accf2.iter_mut().enumerate().zip(isum2) {
                // Row r's scales of groups 2 j, 2 j + 1 as an i16 pair in its lane.
                let mut sp = [_mm256_setzero_si256(); 8];
                for (j, sp) in sp.iter_mut().enumerate() {
                    let ld = |g: usize| {
                        let p = b.scales[g].as_ptr().add(HALF * h);
                        _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))
                    };
                    *sp = _mm256_or_si256(
                        _mm256_and_si256(ld(2 * j), lo16),
                        _mm256_slli_epi32(ld(2 * j + 1), 16),
                    );
                }
                let d = f16x8(b.d.0.as_ptr().add(HALF * h));
                for (c, (accf, &isum)) in accf.iter_mut().zip(&isum).enumerate() {
                    let y = &a[c * nb + k];
                    let mut off = _mm256_setzero_si256();
                    for (j, &sp) in sp.iter().enumerate() {
                        let pair = (y.bsums[2 * j] as u16 as u32)
                            | (y.bsums[2 * j + 1] as u16 as u32) << 16;
                        let bs = _mm256_set1_epi32(pair as i32);
                        off = _mm256_add_epi32(off, _mm256_madd_epi16(sp, bs));
                    }
                    let isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(off, 5));
                    let yd = _mm256_set1_ps(y.d);
                    let t = _mm256_mul_ps(_mm256_mul_ps(yd, d), _mm256_cvtepi32_ps(isum));
                    *accf = _mm256_add_ps(*accf, t);
                }
            }
        }
        for (h, accf) in accf2.iter().enumerate() {
            store_half(accf, (r0, c0, h), out, ldo);
        }
    }
}

/// The 4 registers of unsigned 6-bit values of group `g = 8 n + 2 M + jh` (half `n` of the
/// super-block, quarter `M`, words `4 jh ..`), half `h`, rebuilt from `ql` and `qh`.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn q6_words<const M: usize>(
    b: &BlockQ6_Kx16,
    (h, n, jh): (usize, usize, usize),
) -> [__m256i; 4] {
    // SAFETY: forwarded caller guarantees; the aligned loads read 32-byte halves of 64-byte
    // aligned `Lanes`.
    unsafe {
        let nib = _mm256_set1_epi8(0x0F);
        let hi2 = _mm256_set1_epi8(0x30);
        let mut wv = [_mm256_setzero_si256(); 4];
        for (t, wv) in wv.iter_mut().enumerate() {
            let j = 4 * jh + t;
            let l = half(&b.ql[16 * n + 8 * (M % 2) + j], h);
            let l = if M < 2 { l } else { _mm256_srli_epi16(l, 4) };
            let q = half(&b.qh[8 * n + j], h);
            // qh bits 2 M .. 2 M + 2 of each byte to bits 4..6.
            let q = match M {
                0 => _mm256_slli_epi16(q, 4),
                1 => _mm256_slli_epi16(q, 2),
                2 => q,
                _ => _mm256_srli_epi16(q, 2),
            };
            *wv = _mm256_or_si256(_mm256_and_si256(l, nib), _mm256_and_si256(q, hi2));
        }
        wv
    }
}

/// Decodes group `g = 8 n + 2 M + jh`, half `h`, of `b` into the block's decoded words `d`:
/// its values to words `4 g ..`, its scale operand to word `WORDS + g`.
///
/// # Safety
/// AVX2; `d` holds `WORDS + 16` words (checked).
#[inline(always)]
unsafe fn q6_decode<const M: usize, const VNNI: u8>(
    b: &BlockQ6_Kx16,
    (h, n, jh): (usize, usize, usize),
    d: &mut [Lanes],
) {
    let g = 8 * n + 2 * M + jh;
    // SAFETY: forwarded caller guarantees; 8 bytes of `scales[g]` are read.
    unsafe {
        let sp = b.scales[g].as_ptr().add(HALF * h).cast();
        let sc = scale_operand::<true, VNNI>(sp);
        put_unit(d, g, h, (q6_words::<M>(b, (h, n, jh)), sc));
    }
}

/// One Q6_K group of half `h` of super-block `k` in the [`Q6K`] column kernel: group
/// `g = 8 n + 2 M + jh` (half `n` of the super-block, quarter `M`, words `4 jh ..`), its 4
/// registers of unsigned 6-bit quants against `RN` columns, added to `isum` times the rows'
/// signed scales; with `DEC`, values and scales are read from the block's decoded words `dk`.
///
/// # Safety
/// As [`Q6K`]'s column kernel: AVX2 (and the VNNI kind's features), `a` holds `RN` columns of
/// `nb` blocks; with `DEC`, `dk` holds `b` decoded.
#[inline(always)]
unsafe fn q6_group<
    const M: usize,
    const RN: usize,
    const SPLIT: bool,
    const VNNI: u8,
    const DEC: bool,
>(
    b: &BlockQ6_Kx16,
    dk: &[Lanes],
    a: &[BlockQ8_K],
    (k, nb, h, n, jh): (usize, usize, usize, usize, usize),
    isum: &mut [__m256i; RN],
) {
    let g = 8 * n + 2 * M + jh;
    // SAFETY: forwarded caller guarantees; the aligned loads read 32-byte halves of 64-byte
    // aligned `Lanes`, 8 bytes of `scales[g]`; each activation read is inside its block's `qs`
    // (`16 g + 16 <= 256`).
    unsafe {
        let (wv, sc) = if DEC {
            unit::<4>(dk, g, h)
        } else {
            let sp = b.scales[g].as_ptr().add(HALF * h).cast();
            (
                q6_words::<M>(b, (h, n, jh)),
                scale_operand::<true, VNNI>(sp),
            )
        };
        if VNNI != NONE {
            let qs = |c: usize| a[c * nb + k].qs.as_ptr().add(16 * g);
            add_scaled_dots::<4, RN, SPLIT, VNNI>(isum, &wv, qs, sc);
            return;
        }
        for (c, isum) in isum.iter_mut().enumerate() {
            let qs = a[c * nb + k].qs.as_ptr().add(16 * g);
            let p0 = madd_words::<2, false>(&[wv[0], wv[1]], qs);
            let p1 = madd_words::<2, false>(&[wv[2], wv[3]], qs.add(8));
            let p = _mm256_add_epi32(_mm256_madd_epi16(p0, sc), _mm256_madd_epi16(p1, sc));
            *isum = _mm256_add_epi32(*isum, p);
        }
    }
}

/// The 8 registers of unsigned values of sub-block `S`, half `h`: nibbles, with the fifth bits
/// joined when `B::Q5`.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn k4_words<const S: usize, B: K4Block>(bk: &B, h: usize) -> [__m256i; 8] {
    // SAFETY: forwarded caller guarantees; the aligned loads read 32-byte halves of 64-byte
    // aligned `Lanes`.
    unsafe {
        let mut wv = [_mm256_setzero_si256(); 8];
        for (t, wv) in wv.iter_mut().enumerate() {
            *wv = k4_word::<S, B>(bk, h, t);
        }
        wv
    }
}

/// Word `t` of [`k4_words`]: values `4 t .. 4 t + 4` of sub-block `S` of each row of half `h`.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn k4_word<const S: usize, B: K4Block>(bk: &B, h: usize, t: usize) -> __m256i {
    // SAFETY: forwarded caller guarantees; the aligned loads read 32-byte halves of 64-byte
    // aligned `Lanes`.
    unsafe {
        let raw = half(&bk.q4().qs[8 * (S / 2) + t], h);
        let raw = if S.is_multiple_of(2) {
            raw
        } else {
            _mm256_srli_epi16(raw, 4)
        };
        let v = _mm256_and_si256(raw, _mm256_set1_epi8(0x0F));
        if !B::Q5 {
            return v;
        }
        // Bit `S` of each `qh` byte to bit 4 (no bit crosses a byte).
        let q = half(&bk.qh()[t], h);
        let q = match S {
            0 => _mm256_slli_epi16(q, 4),
            1 => _mm256_slli_epi16(q, 3),
            2 => _mm256_slli_epi16(q, 2),
            3 => _mm256_slli_epi16(q, 1),
            4 => q,
            5 => _mm256_srli_epi16(q, 1),
            6 => _mm256_srli_epi16(q, 2),
            _ => _mm256_srli_epi16(q, 3),
        };
        _mm256_or_si256(v, _mm256_and_si256(q, _mm256_set1_epi8(0x10)))
    }
}

/// Decodes sub-block `S`, half `h`, of `bk` into the block's decoded words `d`: its values to
/// words `8 S ..`, its scale operand to word `WORDS + S`.
///
/// # Safety
/// AVX2; `d` holds `WORDS + 8` words (checked).
#[inline(always)]
unsafe fn k4_decode<const S: usize, B: K4Block, const VNNI: u8>(bk: &B, h: usize, d: &mut [Lanes]) {
    // SAFETY: forwarded caller guarantees; 8 bytes of `scales[S]` are read.
    unsafe {
        let sp = bk.q4().scales[S].as_ptr().add(HALF * h);
        let sc = scale_operand::<false, VNNI>(sp);
        put_unit(d, S, h, (k4_words::<S, B>(bk, h), sc));
    }
}

/// Sub-block `S` of half `h` of super-block `k` in the [`Q4K`] column kernel: its 8 registers
/// of nibbles (with the fifth bits when `B::Q5`) against `RN` columns, added to `isum` times the
/// rows' scales; with `DEC`, values and scales are read from the block's decoded words `dk`.
///
/// # Safety
/// As [`Q4K`]'s column kernel: AVX2 (and the VNNI kind's features), `a` holds `RN` columns of
/// `nb` blocks; with `DEC`, `dk` holds `bk` decoded.
#[inline(always)]
unsafe fn k4_sub<
    const S: usize,
    B: K4Block,
    const RN: usize,
    const SPLIT: bool,
    const VNNI: u8,
    const DEC: bool,
>(
    bk: &B,
    dk: &[Lanes],
    a: &[BlockQ8_K],
    (k, nb, h): (usize, usize, usize),
    isum: &mut [__m256i; RN],
) {
    // SAFETY: forwarded caller guarantees; the aligned loads read 32-byte halves of 64-byte
    // aligned `Lanes`, 8 bytes of `scales[S]`; each activation read is inside its block's `qs`
    // (`32 S + 32 <= 256`).
    unsafe {
        if RN == 1 && !DEC {
            super::prefetch_spread(bk, 8 * h + S, 16);
        }
        let (wv, sc) = if DEC {
            unit::<8>(dk, S, h)
        } else {
            let sp = bk.q4().scales[S].as_ptr().add(HALF * h);
            (k4_words::<S, B>(bk, h), scale_operand::<false, VNNI>(sp))
        };
        if VNNI != NONE {
            let qs = |c: usize| a[c * nb + k].qs.as_ptr().add(32 * S);
            add_scaled_dots::<8, RN, SPLIT, VNNI>(isum, &wv, qs, sc);
            return;
        }
        let [w0, w1, w2, w3, w4, w5, w6, w7] = wv;
        for (c, isum) in isum.iter_mut().enumerate() {
            let qs = a[c * nb + k].qs.as_ptr().add(32 * S);
            let p = if B::Q5 {
                let p0 = madd_words::<4, false>(&[w0, w1, w2, w3], qs);
                let p1 = madd_words::<4, false>(&[w4, w5, w6, w7], qs.add(16));
                _mm256_add_epi32(_mm256_madd_epi16(p0, sc), _mm256_madd_epi16(p1, sc))
            } else {
                _mm256_madd_epi16(madd_words::<8, SPLIT>(&wv, qs), sc)
            };
            *isum = _mm256_add_epi32(*isum, p);
        }
    }
}

/// Sub-block `S` of super-block `k` in the [`Q4K`] column kernel without VNNI, both halves at
/// once ([`both_halves`]), the integers of [`k4_sub`]; Q4_K only (Q5_K measured no faster).
///
/// # Safety
/// As [`k4_sub`], without VNNI.
#[inline(always)]
unsafe fn k4_sub_both<const S: usize, B: K4Block, const RN: usize>(
    bk: &B,
    a: &[BlockQ8_K],
    (k, nb): (usize, usize),
    isum: &mut [[__m256i; RN]; 2],
) {
    // SAFETY: forwarded caller guarantees; as `k4_sub`.
    unsafe {
        let sp = bk.q4().scales[S].as_ptr();
        let sc = [
            scale_operand::<false, NONE>(sp),
            scale_operand::<false, NONE>(sp.add(HALF)),
        ];
        let qs = |c: usize| a[c * nb + k].qs.as_ptr().add(32 * S);
        both_halves::<8, 8, RN>(|h, t| k4_word::<S, B>(bk, h, t), sc, qs, isum);
    }
}

/// One unit (sub-block or group) of `N` weight words for both halves of a strip and `RN`
/// columns, without VNNI: `isum[h][c] += sc[h] * sum_t maddubs(word(h, t), word t of qs(c))`
/// per row lane, in i16 chains of `CHAIN` words (exact while a chain fits i16, see the module
/// documentation), each chain's sum then multiplied by the rows' scale pairs `sc[h]` with
/// `vpmaddwd` ([`both_chain`], [`both_scale`]).
///
/// # Safety
/// AVX2; `word` and `qs` return readable operands (bytes `0 .. 4 N` at each `qs(c)`).
#[inline(always)]
unsafe fn both_halves<const N: usize, const CHAIN: usize, const RN: usize>(
    word: impl Fn(usize, usize) -> __m256i,
    sc: [__m256i; 2],
    qs: impl Fn(usize) -> *const i8,
    isum: &mut [[__m256i; RN]; 2],
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        for part in 0..N / CHAIN {
            let mut p = [[_mm256_setzero_si256(); RN]; 2];
            let word = |h: usize, t: usize| word(h, CHAIN * part + t);
            let qs = |c: usize| qs(c).add(4 * CHAIN * part);
            both_chain::<CHAIN, RN>(word, qs, &mut p);
            both_scale(&p, sc, isum);
        }
    }
}

/// `p[h][c] += sum_{t < N} maddubs(word(h, t), word t of qs(c))` in i16 lanes, for both halves
/// `h` of a strip and `RN` columns: each activation word is broadcast once for the two halves
/// (on Zen 3 the broadcast costs about as much as the product it feeds).
///
/// # Safety
/// AVX2; `word` and `qs` return readable operands (bytes `0 .. 4 N` at each `qs(c)`); the
/// sums fit i16.
#[inline(always)]
unsafe fn both_chain<const N: usize, const RN: usize>(
    word: impl Fn(usize, usize) -> __m256i,
    qs: impl Fn(usize) -> *const i8,
    p: &mut [[__m256i; RN]; 2],
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        for t in 0..N {
            let w = [word(0, t), word(1, t)];
            for c in 0..RN {
                let x = bcast(qs(c), t);
                for (p, &w) in p.iter_mut().zip(&w) {
                    p[c] = _mm256_add_epi16(p[c], _mm256_maddubs_epi16(w, x));
                }
            }
        }
    }
}

/// `isum[h][c] += vpmaddwd(p[h][c], sc[h])`: [`both_chain`]'s i16 sums times each half's rows'
/// scale pairs, in i32 lanes.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn both_scale<const RN: usize>(
    p: &[[__m256i; RN]; 2],
    sc: [__m256i; 2],
    isum: &mut [[__m256i; RN]; 2],
) {
    for ((isum, p), sc) in isum.iter_mut().zip(p).zip(sc) {
        for (isum, &p) in isum.iter_mut().zip(p) {
            // SAFETY: forwarded caller guarantees.
            *isum = unsafe { _mm256_add_epi32(*isum, _mm256_madd_epi16(p, sc)) };
        }
    }
}
