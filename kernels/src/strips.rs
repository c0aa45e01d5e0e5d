//! The one driver of the 16-row strip gemms ([`crate::repack`]), shared by every kernel set
//! that has strip kernels: AVX-512 VNNI (one 512-bit register per strip, 16 rows), AVX2 (two
//! 256-bit halves of 8 rows) and the aarch64 sets (NEON, dotprod, i8mm: 128-bit quarters and
//! halves). Nothing here is architecture-specific. A kernel set supplies a [`StripKernel`]: how
//! to cut one strip out of a repacked matrix, the per-call activation summaries it needs, and
//! its column kernel (`RN` activation columns against one strip); [`drive`] walks the strips
//! and the columns, [`StripKernel::COLS`] columns at a time and the leftover ones in one
//! narrower call. A kernel whose weights cost work to unpack can also have each strip decoded
//! once per call, from [`StripKernel::DECODE_FROM`] columns on, so that its column calls read
//! the decoded words ([`StripKernel::decode`], [`StripKernel::cols_decoded`]).
//!
//! The activation summaries shared by the kernels live here too: [`ActBlock`] (Q8_0 columns:
//! scale and the seed that removes the weights' unsigned offset) and [`ActK`] (Q8_K columns:
//! scale and the pair sums of `bsums` split in bytes, for the Q4_K mins).

use cinder_quant::block::{BlockQ8_0, BlockQ8_K};

use crate::repack::{BlockQ4_Kx16, BlockQ5_Kx16, Lanes, STRIP_ROWS, Scales16};

/// Per activation block: its scale as f32 and the accumulator seed that removes the weights'
/// unsigned offset (`-offset * sum(q)`).
#[derive(Clone, Copy, Default)]
pub(crate) struct ActBlock {
    pub(crate) d: f32,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // aarch64: signed weights.
    pub(crate) seed: i32,
}

thread_local! {
    static ACT_BLOCKS: std::cell::Cell<Vec<ActBlock>> = const { std::cell::Cell::new(Vec::new()) };
    static ACT_K: std::cell::Cell<Vec<ActK>> = const { std::cell::Cell::new(Vec::new()) };
    static DECODED: std::cell::Cell<Vec<Lanes>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The per-block summaries of `a` for weights stored with unsigned offset `offset`, into this
/// thread's buffer (give it back with [`give_back_blocks`]).
pub(crate) fn act_blocks(offset: i32, a: &[BlockQ8_0]) -> Vec<ActBlock> {
    let mut m = ACT_BLOCKS.take();
    m.clear();
    m.extend(a.iter().map(|b| ActBlock {
        d: b.d.to_f32(),
        seed: -offset * b.qs.iter().map(|&q| i32::from(q)).sum::<i32>(),
    }));
    m
}

/// Returns the buffer of [`act_blocks`] for the next call on this thread.
pub(crate) fn give_back_blocks(m: Vec<ActBlock>) {
    ACT_BLOCKS.set(m);
}

/// Per Q8_K activation block: its scale and its pair sums `b_s = bsums[2 s] + bsums[2 s + 1]`
/// split as `b_s = 256 hi_s + lo_s` with `lo_s` in -128..=127 (so `|hi_s| <= 17`), both as
/// signed bytes, four sub-blocks per word: `bs = [hi 0..4, hi 4..8, lo 0..4, lo 4..8]`. Against
/// the strip's unsigned min bytes ([`crate::repack::BlockQ4_Kx16::mins`]) a byte dot product
/// then gives `msum = 256 * sum_s min_s * hi_s + sum_s min_s * lo_s` exactly. A pair sum is at
/// most `32 * 128` in magnitude for blocks made by the quantizer (consistent `bsums`).
#[derive(Clone, Copy, Default)]
pub(crate) struct ActK {
    pub(crate) d: f32,
    pub(crate) bs: [i32; 4],
}

/// The [`ActK`] summaries of `a`, into this thread's buffer (give it back with
/// [`give_back_k`]).
pub(crate) fn act_k(a: &[BlockQ8_K]) -> Vec<ActK> {
    let mut m = ACT_K.take();
    m.clear();
    for b in a {
        let pair = |s: usize| i32::from(b.bsums[2 * s]) + i32::from(b.bsums[2 * s + 1]);
        // lo in -128..=127 and hi = (b - lo) / 256, exactly.
        let lo = |s: usize| (pair(s) as i8) as i32;
        let hi = |s: usize| (pair(s) - lo(s)) >> 8;
        let word = |f: &dyn Fn(usize) -> i32, s0: usize| {
            i32::from_le_bytes(std::array::from_fn(|i| f(s0 + i) as i8 as u8))
        };
        m.push(ActK {
            d: b.d,
            bs: [word(&hi, 0), word(&hi, 4), word(&lo, 0), word(&lo, 4)],
        });
    }
    m
}

/// Returns the buffer of [`act_k`] for the next call on this thread.
pub(crate) fn give_back_k(m: Vec<ActK>) {
    ACT_K.set(m);
}

/// A Q4_0 or Q8_0 matrix in strips: the 4-byte groups and the block scales, strip by strip,
/// block by block (`groups` groups per block).
#[derive(Clone, Copy)]
pub(crate) struct BlockStrips<'a> {
    pub(crate) q: &'a [Lanes],
    pub(crate) d: &'a [Scales16],
    pub(crate) groups: usize,
}

/// A repacked matrix the driver can cut into strips of `nb` blocks.
pub(crate) trait StripMatrix: Copy {
    /// How many strips of `nb` blocks.
    fn strips(self, nb: usize) -> usize;
    /// Strip `s`.
    fn strip(self, nb: usize, s: usize) -> Self;
}

impl StripMatrix for BlockStrips<'_> {
    fn strips(self, nb: usize) -> usize {
        self.d.len() / nb
    }
    fn strip(self, nb: usize, s: usize) -> Self {
        let g = self.groups;
        BlockStrips {
            q: &self.q[s * nb * g..(s + 1) * nb * g],
            d: &self.d[s * nb..(s + 1) * nb],
            groups: g,
        }
    }
}

impl<P> StripMatrix for &[P] {
    fn strips(self, nb: usize) -> usize {
        self.len() / nb
    }
    fn strip(self, nb: usize, s: usize) -> Self {
        &self[s * nb..(s + 1) * nb]
    }
}

/// One kernel set's strip gemm for one layout.
pub(crate) trait StripKernel {
    /// The repacked matrix (and one strip of it).
    type W<'a>: StripMatrix;
    /// The activation block.
    type A;
    /// The per-block activation summaries the column kernel reads.
    type M;
    /// Columns per full call of [`StripKernel::cols`] (3, 4 or 8).
    const COLS: usize;
    /// The summaries of `a` (one per block), from a thread-local buffer.
    fn prep(a: &[Self::A]) -> Vec<Self::M>;
    /// Gives the summaries' buffer back.
    fn done(m: Vec<Self::M>);
    /// `RN` activation columns from `c0` against one strip `w` of `nb` blocks, written to
    /// rows `r0..r0 + 16` of `out` (`out[c * ldo + r]`). `SPLIT` asks for more independent
    /// chains (few columns: the latency of one chain per column would be the limit).
    ///
    /// # Safety
    /// The kernel set's features; `w` is one strip of `nb` blocks, `a` and `m` hold whole
    /// columns of `nb` blocks; indexing is checked.
    #[allow(clippy::too_many_arguments)]
    unsafe fn cols<const RN: usize, const SPLIT: bool>(
        w: Self::W<'_>,
        a: &[Self::A],
        m: &[Self::M],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    );
    /// From how many columns [`drive_with`] decodes each strip once ([`StripKernel::decode`])
    /// for all its column calls ([`StripKernel::cols_decoded`]); `usize::MAX`, the default:
    /// never, the column kernel reads the repacked strip. Decoding pays where rebuilding the
    /// weight bytes from their packed bits is a large share of a column call's work (Q5_K and
    /// Q6_K without 512-bit registers) and several calls share the strip.
    const DECODE_FROM: usize = usize::MAX;
    /// [`Lanes`] per block of a decoded strip.
    const DECODED: usize = 0;
    /// Writes strip `w` of `nb` blocks to `dec` (`nb * DECODED` words) in the form that
    /// [`StripKernel::cols_decoded`] reads.
    ///
    /// # Safety
    /// The kernel set's features; `w` is one strip of `nb` blocks; indexing is checked.
    #[inline(always)]
    unsafe fn decode(w: Self::W<'_>, nb: usize, dec: &mut [Lanes]) {
        let _ = (w, nb, dec);
    }
    /// [`StripKernel::cols`] on a strip that [`StripKernel::decode`] wrote to `dec` (the
    /// default reads `w` and ignores `dec`).
    ///
    /// # Safety
    /// As [`StripKernel::cols`], and `dec` holds `w` decoded.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn cols_decoded<const RN: usize, const SPLIT: bool>(
        w: Self::W<'_>,
        dec: &[Lanes],
        a: &[Self::A],
        m: &[Self::M],
        nb: usize,
        rc: (usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        let _ = dec;
        // SAFETY: forwarded caller guarantees.
        unsafe { Self::cols::<RN, SPLIT>(w, a, m, nb, rc, out, ldo) }
    }
}

/// Every strip of `w` (`nb` blocks per row) against every column of `a`:
/// `out[c * ldo + r]` for every row `r` of the strips.
///
/// # Safety
/// `S`'s kernel set's features; `w` holds whole strips and `a` whole columns of `nb` blocks,
/// `out` covers every `c * ldo + r` (indexing is checked anyway).
#[inline(always)]
pub(crate) unsafe fn drive<S: StripKernel>(
    w: S::W<'_>,
    a: &[S::A],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let m = S::prep(a);
    // SAFETY: forwarded caller guarantees; `m` holds one summary per block of `a`.
    unsafe { drive_with::<S>(w, a, &m, nb, out, ldo) };
    S::done(m);
}

/// [`drive`] given the activations' summaries `m`.
///
/// # Safety
/// As [`drive`], and `m.len() == a.len()`.
#[inline(always)]
pub(crate) unsafe fn drive_with<S: StripKernel>(
    w: S::W<'_>,
    a: &[S::A],
    m: &[S::M],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let cols = a.len() / nb;
    if cols < S::DECODE_FROM {
        // SAFETY: forwarded caller guarantees.
        unsafe { drive_strips::<S, false>(w, &mut [], a, m, nb, out, ldo) };
        return;
    }
    let mut dec = DECODED.take();
    if dec.len() < nb * S::DECODED {
        dec.resize(nb * S::DECODED, Lanes([0; STRIP_ROWS]));
    }
    // SAFETY: forwarded caller guarantees; `dec` holds `nb * DECODED` words.
    unsafe { drive_strips::<S, true>(w, &mut dec[..nb * S::DECODED], a, m, nb, out, ldo) };
    DECODED.set(dec);
}

/// [`drive_with`]'s walk over the strips and columns; with `DEC`, each strip is decoded once
/// into `dec` and its column calls read it.
///
/// # Safety
/// As [`drive_with`], and with `DEC`, `dec.len() == nb * S::DECODED`.
#[inline(always)]
unsafe fn drive_strips<S: StripKernel, const DEC: bool>(
    w: S::W<'_>,
    dec: &mut [Lanes],
    a: &[S::A],
    m: &[S::M],
    nb: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let (strips, cols) = (w.strips(nb), a.len() / nb);
    let cf = cols / S::COLS * S::COLS;
    // SAFETY: forwarded caller guarantees; every strip is cut from `w` by `strip` (and
    // decoded before its column calls).
    unsafe {
        for s in 0..strips {
            let st = w.strip(nb, s);
            if DEC {
                S::decode(st, nb, dec);
            }
            let d = &*dec;
            let r0 = s * STRIP_ROWS;
            for c0 in (0..cf).step_by(S::COLS) {
                let rc = (r0, c0);
                match S::COLS {
                    3 => col::<S, 3, false, DEC>(st, d, a, m, nb, rc, out, ldo),
                    4 => col::<S, 4, false, DEC>(st, d, a, m, nb, rc, out, ldo),
                    _ => col::<S, 8, false, DEC>(st, d, a, m, nb, rc, out, ldo),
                }
            }
            let rc = (r0, cf);
            match cols - cf {
                0 => {}
                1 => col::<S, 1, true, DEC>(st, d, a, m, nb, rc, out, ldo),
                2 => col::<S, 2, true, DEC>(st, d, a, m, nb, rc, out, ldo),
                3 => col::<S, 3, true, DEC>(st, d, a, m, nb, rc, out, ldo),
                4 => col::<S, 4, false, DEC>(st, d, a, m, nb, rc, out, ldo),
                5 => col::<S, 5, false, DEC>(st, d, a, m, nb, rc, out, ldo),
                6 => col::<S, 6, false, DEC>(st, d, a, m, nb, rc, out, ldo),
                _ => col::<S, 7, false, DEC>(st, d, a, m, nb, rc, out, ldo),
            }
        }
    }
}

/// One column call of [`drive_strips`]: on the decoded strip `dec` with `DEC`, else on `w`.
///
/// # Safety
/// As [`StripKernel::cols`] (and [`StripKernel::cols_decoded`] with `DEC`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn col<S: StripKernel, const RN: usize, const SPLIT: bool, const DEC: bool>(
    w: S::W<'_>,
    dec: &[Lanes],
    a: &[S::A],
    m: &[S::M],
    nb: usize,
    rc: (usize, usize),
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        if DEC {
            S::cols_decoded::<RN, SPLIT>(w, dec, a, m, nb, rc, out, ldo)
        } else {
            S::cols::<RN, SPLIT>(w, a, m, nb, rc, out, ldo)
        }
    }
}

/// A strip block the Q4_K column kernels read: a [`BlockQ4_Kx16`], or a [`BlockQ5_Kx16`]
/// (its Q4_K part plus the fifth bits, which the kernels add to the nibbles when `Q5`).
pub(crate) trait K4Block {
    /// Whether the values have a fifth bit in [`K4Block::qh`].
    const Q5: bool;
    /// The nibbles, scales and mins.
    fn q4(&self) -> &BlockQ4_Kx16;
    /// The fifth bits (`Q5` only).
    fn qh(&self) -> &[Lanes; 8];
}

/// No fifth bits (never read: `Q5` is false).
static NO_QH: [Lanes; 8] = [Lanes([0; STRIP_ROWS]); 8];

impl K4Block for BlockQ4_Kx16 {
    const Q5: bool = false;
    fn q4(&self) -> &BlockQ4_Kx16 {
        self
    }
    fn qh(&self) -> &[Lanes; 8] {
        &NO_QH
    }
}

impl K4Block for BlockQ5_Kx16 {
    const Q5: bool = true;
    fn q4(&self) -> &BlockQ4_Kx16 {
        &self.q4
    }
    fn qh(&self) -> &[Lanes; 8] {
        &self.qh
    }
}
