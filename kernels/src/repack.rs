//! Q4_0, Q8_0, Q4_K, Q5_K and Q6_K matrices repacked in strips of 16 rows, the layout of every
//! SIMD set's strip kernels (`Kernels::prefers_strips`). A runtime repacks such weights once at load and
//! then multiplies them with `Kernels::gemm_q4_0x16_q8_0` / `gemm_q8_0x16_q8_0` /
//! `gemm_q4_kx16_q8_k` / `gemm_q6_kx16_q8_k`.
//!
//! Strip `s` holds rows `16 s .. 16 s + 16`. For each of its blocks `k` (in order) it stores
//! [`Q4_0_GROUPS`] (Q4_0) or [`Q8_0_GROUPS`] (Q8_0) [`Lanes`], where lane `r` of group `g`
//! is the little-endian word of quant bytes `4 g .. 4 g + 4` of row `16 s + r`'s block `k`
//! (Q4_0: the packed nibbles as stored; Q8_0: each byte XOR 0x80, i.e. biased to unsigned),
//! and one [`Scales16`] with the 16 rows' f16 block scales. Every byte is kept: repacking is
//! a permutation and [`unpack_q4_0`] / [`unpack_q8_0`] restore the blocks exactly.
//!
//! Q4_K strips are one [`BlockQ4_Kx16`] per super-block `k` of the 16 rows: word `t` (`< 8`)
//! of sub-block pair `j` (`< 4`) is the [`Lanes`] `qs[8 j + t]` whose lane `r` is the
//! little-endian word of row `r`'s quant bytes `32 j + 4 t .. 32 j + 4 t + 4`, so its low
//! nibbles are values `64 j + 4 t ..` (sub-block `2 j`) and its high nibbles values
//! `64 j + 32 + 4 t ..` (sub-block `2 j + 1`). The 12-byte scale field is decoded: the 8
//! six-bit scales per row as bytes, the 8 six-bit mins as bytes in two words per row (the
//! unsigned operands of `vpdpbusd`), and `d`, `dmin` as f16 bits. The 96 bits of the scale field are all kept, so
//! this too is a permutation: [`unpack_q4_k`] re-encodes them exactly.
//!
//! Q5_K strips ([`BlockQ5_Kx16`]) are the Q4_K strip block of the low nibbles, scales and mins
//! plus the 32 `qh` bytes of each row as 8 [`Lanes`]: bit `s` of `qh` byte `l` is the fifth bit
//! of value `32 s + l`, so word `t` of the `qh` lanes holds the fifth bits of every sub-block's
//! values `4 t .. 4 t + 4`.
//!
//! Q6_K strips are one [`BlockQ6_Kx16`] per super-block of the 16 rows: lane `r` of
//! `ql[t]` (`< 32`) is the little-endian word of row `r`'s `ql` bytes `4 t .. 4 t + 4`, of
//! `qh[u]` (`< 16`) that of its `qh` bytes `4 u .. 4 u + 4`, `scales[g][r]` its signed scale of
//! group `g` and `d` the rows' f16 scales: a permutation of the plain bytes plus 32 bytes of
//! padding, restored exactly by [`unpack_q6_k`]. In half `n` of the values, `ql[16 n + j]` and
//! `qh[8 n + j]` (`j < 8`) together hold the 6-bit quants of values `128 n + 32 m + 4 j ..`
//! for `m < 4`: the low nibbles and `qh` bits 0-1 (`m = 0`), the low nibbles of
//! `ql[16 n + 8 + j]` and bits 2-3 (`m = 1`), the high nibbles of `ql[16 n + j]` and bits 4-5
//! (`m = 2`), the high nibbles of `ql[16 n + 8 + j]` and bits 6-7 (`m = 3`).

use bytemuck::{Pod, Zeroable};
use cinder_quant::block::{BlockQ4_0, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_0};
use half::f16;

/// Rows per strip.
pub const STRIP_ROWS: usize = 16;

/// 4-byte groups per Q4_0 block (16 quant bytes).
pub const Q4_0_GROUPS: usize = 4;

/// 4-byte groups per Q8_0 block (32 quant bytes).
pub const Q8_0_GROUPS: usize = 8;

/// One 4-byte group of 16 rows: a 512-bit register's worth, 64-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct Lanes(pub [u32; STRIP_ROWS]);

/// The f16 block scales of 16 rows (bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(32))]
pub struct Scales16(pub [u16; STRIP_ROWS]);

/// Sub-block pairs x words per pair of a Q4_K super-block (128 quant bytes).
pub const Q4_K_GROUPS: usize = 32;

/// One Q4_K super-block (256 values) of 16 rows, the unit of the Q4_K strips.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct BlockQ4_Kx16 {
    /// `qs[8 j + t]`, lane `r`: row `r`'s quant bytes `32 j + 4 t .. 32 j + 4 t + 4` (LE).
    pub qs: [Lanes; Q4_K_GROUPS],
    /// `mins[i]`, lane `r`: row `r`'s mins of sub-blocks `4 i .. 4 i + 4`, one per byte (LE).
    pub mins: [Lanes; 2],
    /// `scales[s][r]`: row `r`'s scale of sub-block `s`.
    pub scales: [[u8; STRIP_ROWS]; 8],
    /// The 16 rows' super-block scales (f16 bits).
    pub d: Scales16,
    /// The 16 rows' super-block min scales (f16 bits).
    pub dmin: Scales16,
}

const _: () = assert!(std::mem::size_of::<BlockQ4_Kx16>() == 2368);

/// One Q5_K super-block (256 values) of 16 rows, the unit of the Q5_K strips: the low four
/// bits of every value, the scales and mins as a [`BlockQ4_Kx16`], and the fifth bits.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct BlockQ5_Kx16 {
    /// The Q4_K strip block of the low nibbles (`qs`), scales, mins, `d` and `dmin`.
    pub q4: BlockQ4_Kx16,
    /// `qh[t]`, lane `r`: row `r`'s `qh` bytes `4 t .. 4 t + 4` (LE); bit `s` of byte `l` is
    /// the fifth bit of value `32 s + l`.
    pub qh: [Lanes; 8],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_Kx16>() == 2880);

/// One Q6_K super-block (256 values) of 16 rows, the unit of the Q6_K strips.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct BlockQ6_Kx16 {
    /// `ql[t]`, lane `r`: row `r`'s `ql` bytes `4 t .. 4 t + 4` (LE).
    pub ql: [Lanes; 32],
    /// `qh[u]`, lane `r`: row `r`'s `qh` bytes `4 u .. 4 u + 4` (LE).
    pub qh: [Lanes; 16],
    /// `scales[g][r]`: row `r`'s scale of group `g` (values `16 g .. 16 g + 16`).
    pub scales: [[i8; STRIP_ROWS]; 16],
    /// The 16 rows' super-block scales (f16 bits).
    pub d: Scales16,
    /// Zero: pads the block to a multiple of 64 bytes.
    pub pad: Scales16,
}

const _: () = assert!(std::mem::size_of::<BlockQ6_Kx16>() == 3392);

/// Bytes `4 g .. 4 g + 4` of `qs` as one little-endian word.
fn word(qs: &[u8], g: usize) -> u32 {
    u32::from_le_bytes([qs[4 * g], qs[4 * g + 1], qs[4 * g + 2], qs[4 * g + 3]])
}

/// Repack a Q4_0 matrix of `w.len() / nb` rows (a multiple of 16) and `nb` blocks per row
/// into `q` (`rows * nb * Q4_0_GROUPS / 16` groups) and `d` (`rows * nb / 16` scales).
///
/// Panics if the lengths do not say so.
pub fn repack_q4_0(w: &[BlockQ4_0], nb: usize, q: &mut [Lanes], d: &mut [Scales16]) {
    repack(w, nb, q, d, Q4_0_GROUPS, |b, g| word(&b.qs, g), |b| b.d);
}

/// As [`repack_q4_0`] for Q8_0 (`Q8_0_GROUPS` groups per block, bytes biased by XOR 0x80).
pub fn repack_q8_0(w: &[BlockQ8_0], nb: usize, q: &mut [Lanes], d: &mut [Scales16]) {
    repack(
        w,
        nb,
        q,
        d,
        Q8_0_GROUPS,
        |b, g| word(bytemuck::bytes_of(&b.qs), g) ^ 0x8080_8080,
        |b| b.d,
    );
}

fn repack<B>(
    w: &[B],
    nb: usize,
    q: &mut [Lanes],
    d: &mut [Scales16],
    groups: usize,
    word: impl Fn(&B, usize) -> u32,
    scale: impl Fn(&B) -> f16,
) {
    assert!(
        nb > 0 && w.len().is_multiple_of(nb * STRIP_ROWS),
        "repack: rows must be a multiple of 16"
    );
    let strips = w.len() / (nb * STRIP_ROWS);
    assert!(
        q.len() == strips * nb * groups && d.len() == strips * nb,
        "repack: output lengths"
    );
    for s in 0..strips {
        for k in 0..nb {
            let blk = s * nb + k;
            for r in 0..STRIP_ROWS {
                let b = &w[(s * STRIP_ROWS + r) * nb + k];
                d[blk].0[r] = scale(b).to_bits();
                for g in 0..groups {
                    q[blk * groups + g].0[r] = word(b, g);
                }
            }
        }
    }
}

/// Block `k` of row `r` (`< 16`) of strip `s` of a repacked Q4_0 matrix of `nb` blocks per row.
pub fn unpack_q4_0(
    q: &[Lanes],
    d: &[Scales16],
    nb: usize,
    (s, r, k): (usize, usize, usize),
) -> BlockQ4_0 {
    let blk = s * nb + k;
    let mut b = BlockQ4_0 {
        d: f16::from_bits(d[blk].0[r]),
        qs: [0; 16],
    };
    for g in 0..Q4_0_GROUPS {
        b.qs[4 * g..4 * g + 4].copy_from_slice(&q[blk * Q4_0_GROUPS + g].0[r].to_le_bytes());
    }
    b
}

/// As [`unpack_q4_0`] for Q8_0.
pub fn unpack_q8_0(
    q: &[Lanes],
    d: &[Scales16],
    nb: usize,
    (s, r, k): (usize, usize, usize),
) -> BlockQ8_0 {
    let blk = s * nb + k;
    let mut b = BlockQ8_0 {
        d: f16::from_bits(d[blk].0[r]),
        qs: [0; 32],
    };
    for g in 0..Q8_0_GROUPS {
        let bytes = (q[blk * Q8_0_GROUPS + g].0[r] ^ 0x8080_8080).to_le_bytes();
        for (i, &v) in bytes.iter().enumerate() {
            b.qs[4 * g + i] = v as i8;
        }
    }
    b
}

/// Repack a Q4_K matrix of `w.len() / nb` rows (a multiple of 16) and `nb` super-blocks per
/// row into `out` (`rows * nb / 16` strip blocks: strip by strip, super-block by super-block).
///
/// Panics if the lengths do not say so.
pub fn repack_q4_k(w: &[BlockQ4_K], nb: usize, out: &mut [BlockQ4_Kx16]) {
    repack_k("repack_q4_k", w, nb, out, |o, r, b| {
        put_q4_k(o, r, (b.d, b.dmin), &b.scales, &b.qs)
    });
}

/// Row `r` of a [`BlockQ4_Kx16`]: the super-block scales, the 12-byte scale field decoded,
/// the 128 nibble bytes.
fn put_q4_k(o: &mut BlockQ4_Kx16, r: usize, (d, dmin): (f16, f16), scales: &[u8; 12], qs: &[u8]) {
    o.d.0[r] = d.to_bits();
    o.dmin.0[r] = dmin.to_bits();
    let (sc, mn) = crate::scalar::scales_mins_k4(scales);
    for (i, m) in o.mins.iter_mut().enumerate() {
        m.0[r] = word(&mn, i);
    }
    for (sub, &v) in sc.iter().enumerate() {
        o.scales[sub][r] = v;
    }
    for (g, q) in o.qs.iter_mut().enumerate() {
        q.0[r] = word(qs, g);
    }
}

/// Repack a Q5_K matrix of `w.len() / nb` rows (a multiple of 16) and `nb` super-blocks per
/// row into `out` (`rows * nb / 16` strip blocks: strip by strip, super-block by super-block).
///
/// Panics if the lengths do not say so.
pub fn repack_q5_k(w: &[BlockQ5_K], nb: usize, out: &mut [BlockQ5_Kx16]) {
    repack_k("repack_q5_k", w, nb, out, |o, r, b| {
        put_q4_k(&mut o.q4, r, (b.d, b.dmin), &b.scales, &b.qs);
        for (t, q) in o.qh.iter_mut().enumerate() {
            q.0[r] = word(&b.qh, t);
        }
    });
}

/// The strip-by-strip, super-block-by-super-block walk of the k-quant repacks: `put(o, r, b)`
/// stores plain super-block `b` as row `r` of strip block `o`. Panics (naming `name`) unless
/// `w` holds whole strips of `nb` super-blocks and `out` one strip block per strip and
/// super-block.
fn repack_k<W, P>(name: &str, w: &[W], nb: usize, out: &mut [P], put: impl Fn(&mut P, usize, &W)) {
    assert!(
        nb > 0 && w.len().is_multiple_of(nb * STRIP_ROWS),
        "{name}: rows must be a multiple of 16"
    );
    let strips = w.len() / (nb * STRIP_ROWS);
    assert!(out.len() == strips * nb, "{name}: output length");
    for s in 0..strips {
        for k in 0..nb {
            let o = &mut out[s * nb + k];
            for r in 0..STRIP_ROWS {
                put(o, r, &w[(s * STRIP_ROWS + r) * nb + k]);
            }
        }
    }
}

/// The inverse of `scalar::scales_mins_k4`: the 12-byte field of 8 six-bit scales and mins.
fn encode_scales_mins_k4(sc: &[u8; 8], mn: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = sc[j] | (sc[j + 4] >> 4) << 6;
        s[j + 4] = mn[j] | (mn[j + 4] >> 4) << 6;
        s[j + 8] = (sc[j + 4] & 0xF) | (mn[j + 4] & 0xF) << 4;
    }
    s
}

/// Super-block `k` of row `r` (`< 16`) of strip `s` of a repacked Q4_K matrix of `nb`
/// super-blocks per row.
pub fn unpack_q4_k(w: &[BlockQ4_Kx16], nb: usize, (s, r, k): (usize, usize, usize)) -> BlockQ4_K {
    let p = &w[s * nb + k];
    let mut b = BlockQ4_K {
        d: f16::ZERO,
        dmin: f16::ZERO,
        scales: [0; 12],
        qs: [0; 128],
    };
    (b.d, b.dmin, b.scales) = get_q4_k(p, r, &mut b.qs);
    b
}

/// Row `r` of a [`BlockQ4_Kx16`]: `d`, `dmin` and the 12-byte scale field re-encoded; the
/// nibble bytes into `qs`.
fn get_q4_k(p: &BlockQ4_Kx16, r: usize, qs: &mut [u8; 128]) -> (f16, f16, [u8; 12]) {
    let sc = std::array::from_fn(|sub| p.scales[sub][r]);
    let mn = std::array::from_fn(|sub| p.mins[sub / 4].0[r].to_le_bytes()[sub % 4]);
    for (g, q) in p.qs.iter().enumerate() {
        qs[4 * g..4 * g + 4].copy_from_slice(&q.0[r].to_le_bytes());
    }
    (
        f16::from_bits(p.d.0[r]),
        f16::from_bits(p.dmin.0[r]),
        encode_scales_mins_k4(&sc, &mn),
    )
}

/// Super-block `k` of row `r` (`< 16`) of strip `s` of a repacked Q5_K matrix of `nb`
/// super-blocks per row.
pub fn unpack_q5_k(w: &[BlockQ5_Kx16], nb: usize, (s, r, k): (usize, usize, usize)) -> BlockQ5_K {
    let p = &w[s * nb + k];
    let mut b = BlockQ5_K {
        d: f16::ZERO,
        dmin: f16::ZERO,
        scales: [0; 12],
        qh: [0; 32],
        qs: [0; 128],
    };
    (b.d, b.dmin, b.scales) = get_q4_k(&p.q4, r, &mut b.qs);
    for (t, q) in p.qh.iter().enumerate() {
        b.qh[4 * t..4 * t + 4].copy_from_slice(&q.0[r].to_le_bytes());
    }
    b
}

/// Repack a Q6_K matrix of `w.len() / nb` rows (a multiple of 16) and `nb` super-blocks per
/// row into `out` (`rows * nb / 16` strip blocks: strip by strip, super-block by super-block).
///
/// Panics if the lengths do not say so.
pub fn repack_q6_k(w: &[BlockQ6_K], nb: usize, out: &mut [BlockQ6_Kx16]) {
    repack_k("repack_q6_k", w, nb, out, |o, r, b| {
        o.d.0[r] = b.d.to_bits();
        o.pad.0[r] = 0;
        for (g, &v) in b.scales.iter().enumerate() {
            o.scales[g][r] = v;
        }
        for (t, q) in o.ql.iter_mut().enumerate() {
            q.0[r] = word(&b.ql, t);
        }
        for (u, q) in o.qh.iter_mut().enumerate() {
            q.0[r] = word(&b.qh, u);
        }
    });
}

/// Super-block `k` of row `r` (`< 16`) of strip `s` of a repacked Q6_K matrix of `nb`
/// super-blocks per row.
pub fn unpack_q6_k(w: &[BlockQ6_Kx16], nb: usize, (s, r, k): (usize, usize, usize)) -> BlockQ6_K {
    let p = &w[s * nb + k];
    let mut b = BlockQ6_K {
        ql: [0; 128],
        qh: [0; 64],
        scales: std::array::from_fn(|g| p.scales[g][r]),
        d: f16::from_bits(p.d.0[r]),
    };
    for (t, q) in p.ql.iter().enumerate() {
        b.ql[4 * t..4 * t + 4].copy_from_slice(&q.0[r].to_le_bytes());
    }
    for (u, q) in p.qh.iter().enumerate() {
        b.qh[4 * u..4 * u + 4].copy_from_slice(&q.0[r].to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repack_then_unpack_restores_every_block() {
        let (rows, nb) = (32, 3);
        let w4: Vec<BlockQ4_0> = (0..rows * nb)
            .map(|i| BlockQ4_0 {
                d: f16::from_f32(i as f32 * 0.25 - 3.0),
                qs: std::array::from_fn(|j| (i * 7 + j * 13) as u8),
            })
            .collect();
        let w8: Vec<BlockQ8_0> = (0..rows * nb)
            .map(|i| BlockQ8_0 {
                d: f16::from_f32(1.0 / (i as f32 + 1.0)),
                qs: std::array::from_fn(|j| (i * 5 + j * 31) as u8 as i8),
            })
            .collect();
        let strips = rows / STRIP_ROWS;
        let mut q4 = vec![Lanes::zeroed(); strips * nb * Q4_0_GROUPS];
        let mut q8 = vec![Lanes::zeroed(); strips * nb * Q8_0_GROUPS];
        let (mut d4, mut d8) = (
            vec![Scales16::zeroed(); strips * nb],
            vec![Scales16::zeroed(); strips * nb],
        );
        repack_q4_0(&w4, nb, &mut q4, &mut d4);
        repack_q8_0(&w8, nb, &mut q8, &mut d8);
        for row in 0..rows {
            for k in 0..nb {
                let at = (row / STRIP_ROWS, row % STRIP_ROWS, k);
                assert_eq!(unpack_q4_0(&q4, &d4, nb, at), w4[row * nb + k]);
                assert_eq!(unpack_q8_0(&q8, &d8, nb, at), w8[row * nb + k]);
            }
        }
        // Q8_0 bytes are biased: 0x80 (-128) becomes 0.
        assert_eq!(q8[0].0[0] & 0xFF, (w8[0].qs[0] as u8 ^ 0x80) as u32);
    }

    #[test]
    fn q4_k_repack_then_unpack_restores_every_block() {
        let (rows, nb) = (32, 3);
        // Every byte of the scale field varies (all 96 bits are used), as do the quants.
        let w: Vec<BlockQ4_K> = (0..rows * nb)
            .map(|i| BlockQ4_K {
                d: f16::from_f32(i as f32 * 0.125 - 2.0),
                dmin: f16::from_bits((i * 977) as u16),
                scales: std::array::from_fn(|j| (i * 37 + j * 101 + 3) as u8),
                qs: std::array::from_fn(|j| (i * 7 + j * 13) as u8),
            })
            .collect();
        let mut p = vec![BlockQ4_Kx16::zeroed(); rows / STRIP_ROWS * nb];
        repack_q4_k(&w, nb, &mut p);
        for row in 0..rows {
            for k in 0..nb {
                let at = (row / STRIP_ROWS, row % STRIP_ROWS, k);
                // Bytes, not `==`: some `dmin` bits are NaNs.
                let b = unpack_q4_k(&p, nb, at);
                assert_eq!(bytemuck::bytes_of(&b), bytemuck::bytes_of(&w[row * nb + k]));
            }
        }
        // The decoded fields are what the scalar decoder gives.
        let (sc, mn) = crate::scalar::scales_mins_k4(&w[nb].scales);
        assert_eq!(p[0].scales[7][1], sc[7]);
        assert_eq!(
            p[0].mins[1].0[1],
            u32::from_le_bytes([mn[4], mn[5], mn[6], mn[7]])
        );
        // Sub-block 1's first values are the high nibbles of word 0.
        assert_eq!(p[0].qs[0].0[0] >> 4 & 0xF, u32::from(w[0].qs[0] >> 4));
    }

    #[test]
    fn q5_k_repack_then_unpack_restores_every_block() {
        let (rows, nb) = (32, 2);
        let w: Vec<BlockQ5_K> = (0..rows * nb)
            .map(|i| BlockQ5_K {
                d: f16::from_f32(i as f32 * 0.125 - 2.0),
                dmin: f16::from_bits((i * 977) as u16),
                scales: std::array::from_fn(|j| (i * 37 + j * 101 + 3) as u8),
                qh: std::array::from_fn(|j| (i * 11 + j * 29 + 5) as u8),
                qs: std::array::from_fn(|j| (i * 7 + j * 13) as u8),
            })
            .collect();
        let mut p = vec![BlockQ5_Kx16::zeroed(); rows / STRIP_ROWS * nb];
        repack_q5_k(&w, nb, &mut p);
        for row in 0..rows {
            for k in 0..nb {
                let at = (row / STRIP_ROWS, row % STRIP_ROWS, k);
                // Bytes, not `==`: some `dmin` bits are NaNs.
                let b = unpack_q5_k(&p, nb, at);
                assert_eq!(bytemuck::bytes_of(&b), bytemuck::bytes_of(&w[row * nb + k]));
            }
        }
        // Row 1 of strip 0, super-block 1: its `qh` bytes 28..32.
        assert_eq!(p[1].qh[7].0[1].to_le_bytes(), w[nb + 1].qh[28..32]);
    }

    #[test]
    fn q4_k_scale_field_encoding_inverts_the_decoder_for_every_byte_value() {
        for v in 0..=255u8 {
            for pos in 0..12 {
                let mut s = [0x5Au8; 12];
                s[pos] = v;
                let (sc, mn) = crate::scalar::scales_mins_k4(&s);
                assert_eq!(encode_scales_mins_k4(&sc, &mn), s);
            }
        }
    }

    #[test]
    fn q6_k_repack_then_unpack_restores_every_block() {
        let (rows, nb) = (48, 2);
        let w: Vec<BlockQ6_K> = (0..rows * nb)
            .map(|i| BlockQ6_K {
                ql: std::array::from_fn(|j| (i * 7 + j * 13) as u8),
                qh: std::array::from_fn(|j| (i * 11 + j * 29 + 5) as u8),
                scales: std::array::from_fn(|j| (i * 37 + j * 101 + 3) as u8 as i8),
                d: f16::from_bits((i * 977) as u16),
            })
            .collect();
        let mut p = vec![BlockQ6_Kx16::zeroed(); rows / STRIP_ROWS * nb];
        repack_q6_k(&w, nb, &mut p);
        for row in 0..rows {
            for k in 0..nb {
                let at = (row / STRIP_ROWS, row % STRIP_ROWS, k);
                // Bytes, not `==`: some `d` bits are NaNs.
                let b = unpack_q6_k(&p, nb, at);
                assert_eq!(bytemuck::bytes_of(&b), bytemuck::bytes_of(&w[row * nb + k]));
            }
        }
        // Row 1 of strip 0, super-block 1: its `ql` bytes 4..8, `qh` bytes 60..64, scale 15.
        let b = &w[nb + 1];
        assert_eq!(p[1].ql[1].0[1].to_le_bytes(), b.ql[4..8]);
        assert_eq!(p[1].qh[15].0[1].to_le_bytes(), b.qh[60..64]);
        assert_eq!(p[1].scales[15][1], b.scales[15]);
    }
}
