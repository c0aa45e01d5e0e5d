//! Q4_0 and Q8_0 matrices repacked in strips of 16 rows, the layout of the AVX-512 VNNI strip
//! kernels (`Kernels::prefers_strips`). A runtime repacks such weights once at load and then
//! multiplies them with `Kernels::gemm_q4_0x16_q8_0` / `gemm_q8_0x16_q8_0`.
//!
//! Strip `s` holds rows `16 s .. 16 s + 16`. For each of its blocks `k` (in order) it stores
//! [`Q4_0_GROUPS`] (Q4_0) or [`Q8_0_GROUPS`] (Q8_0) [`Lanes`], where lane `r` of group `g`
//! is the little-endian word of quant bytes `4 g .. 4 g + 4` of row `16 s + r`'s block `k`
//! (Q4_0: the packed nibbles as stored; Q8_0: each byte XOR 0x80, i.e. biased to unsigned),
//! and one [`Scales16`] with the 16 rows' f16 block scales. Every byte is kept: repacking is
//! a permutation and [`unpack_q4_0`] / [`unpack_q8_0`] restore the blocks exactly.

use bytemuck::{Pod, Zeroable};
use cinder_quant::block::{BlockQ4_0, BlockQ8_0};
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
}
