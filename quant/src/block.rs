//! Block layouts of the ggml quantized types, byte for byte as GGUF stores them.
//!
//! Every struct is `#[repr(C)]`, `Pod` + `Zeroable` (so a tensor's bytes can be viewed as a
//! slice of blocks with `bytemuck`), and its size is checked at compile time against
//! [`GgmlType::type_size`], which carries ggml's sizes.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::dtype::{GgmlType, QK_K};

/// Values per block of the 32-wide formats (`QK4_0`, `QK8_0`... in ggml).
pub const QK: usize = 32;

/// Q4_0: `x = d * (q - 8)`, q in 0..16; `qs[j]` holds value j (low nibble) and j + 16 (high).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}

/// Q4_1: `x = d * q + m`, q in 0..16; nibble order as Q4_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}

/// Q5_0: `x = d * (q - 16)`, q in 0..32; bit 4 of value j is bit j of `qh` (little-endian u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q5_1: `x = d * q + m`, q in 0..32; high bits as Q5_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q8_0: `x = d * q`, q in -127..=127.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

/// Q8_1: as Q8_0 plus `s = d * sum(qs)` (the activation format of Q4_1 and Q5_1).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}

/// Q2_K: 16 sub-blocks of 16; `scales[i]` = 4-bit scale (low) and 4-bit min (high);
/// `x = d * scale * q - dmin * min`, q in 0..4.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2_K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

/// Q3_K: 16 sub-blocks of 16 with 6-bit signed scales packed in 12 bytes;
/// 2 low bits in `qs`, the third bit in `hmask` (set means "no -4").
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3_K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes;
/// `x = d * scale * q - dmin * min`, q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

/// Q5_K: as Q4_K with a fifth bit per value in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; `x = d * scale * (q - 32)`, q in 0..64
/// (4 low bits in `ql`, 2 high bits in `qh`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6_K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

/// Q8_K: f32 scale, 256 signed bytes and the sums of each group of 16 (activations of the
/// k-quants' dot products).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

/// A block type: its ggml type and values per block.
pub trait Block: Pod {
    /// The ggml type whose blocks these are.
    const TYPE: GgmlType;
    /// Values per block.
    const BLOCK_SIZE: usize = Self::TYPE.block_size();
}

macro_rules! blocks {
    ($($block:ty => $ty:ident),* $(,)?) => {$(
        impl Block for $block {
            const TYPE: GgmlType = GgmlType::$ty;
        }
        const _: () = assert!(std::mem::size_of::<$block>() == GgmlType::$ty.type_size());
    )*};
}

blocks! {
    BlockQ4_0 => Q4_0, BlockQ4_1 => Q4_1, BlockQ5_0 => Q5_0, BlockQ5_1 => Q5_1,
    BlockQ8_0 => Q8_0, BlockQ8_1 => Q8_1, BlockQ2_K => Q2_K, BlockQ3_K => Q3_K,
    BlockQ4_K => Q4_K, BlockQ5_K => Q5_K, BlockQ6_K => Q6_K, BlockQ8_K => Q8_K,
}

// ggml's exact sizes, written out once more so a mistake in the table above cannot hide.
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);
const _: () = assert!(std::mem::size_of::<BlockQ2_K>() == 84);
const _: () = assert!(std::mem::size_of::<BlockQ3_K>() == 110);
const _: () = assert!(std::mem::size_of::<BlockQ4_K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5_K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6_K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8_K>() == 292);

/// TQ1_0 (ternary, 1.6875 bits per value): `x = d * (t - 1)`, t in 0..3.
///
/// Values 0..160 go five per byte into `qs[0..32]` (value `32 n + m` is base-3 digit `n` of
/// byte `m`, most significant first), values 160..240 five per byte into `qs[32..48]` (value
/// `160 + 16 n + m`, byte `32 + m`) and values 240..256 four per byte into `qh` (value
/// `240 + 4 n + j`, byte `j`, followed by a zero digit). Each byte stores its 5-digit number
/// `q` as `ceil(q * 256 / 243)`, so digit `n` is read back as `((byte * 3^n mod 256) * 3) >> 8`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockTQ1_0 {
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    pub qh: [u8; QK_K / 64],
    pub d: f16,
}

/// TQ2_0 (ternary, 2.0625 bits per value): `x = d * (t - 1)`, t in 0..3 (3 is never written
/// but decodes to `2 d`); value `128 c + 32 l + m` is bits `2l..2l+2` of `qs[32 c + m]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockTQ2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: f16,
}

/// MXFP4 (OCP microscaling fp4): an E8M0 exponent `e` shared by 32 e2m1 values;
/// `x = kvalue[q] * 2^(e - 128)`, where `kvalue` is the e2m1 table doubled (0, 1, 2, 3, 4, 6,
/// 8, 12 and their negatives). Nibble order as Q4_0: `qs[j]` holds value j (low) and j + 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockMXFP4 {
    pub e: u8,
    pub qs: [u8; QK / 2],
}

blocks! { BlockTQ1_0 => TQ1_0, BlockTQ2_0 => TQ2_0, BlockMXFP4 => MXFP4 }

const _: () = assert!(std::mem::size_of::<BlockTQ1_0>() == 54);
const _: () = assert!(std::mem::size_of::<BlockTQ2_0>() == 66);
const _: () = assert!(std::mem::size_of::<BlockMXFP4>() == 17);
