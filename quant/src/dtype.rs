//! ggml tensor types: numeric ids as stored in GGUF, block size and bytes per block.

use std::fmt;

/// Values per super-block of the k-quants (`QK_K` in ggml).
pub const QK_K: usize = 256;

macro_rules! ggml_types {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $block:expr, $size:expr; )*) => {
        /// A ggml tensor type, with the numeric id GGUF stores.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        pub enum GgmlType {
            $( $(#[$doc])* $variant = $id, )*
        }

        impl GgmlType {
            /// Every type cinder knows the layout of, in id order.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$variant),*];

            /// The type with ggml id `id`, if cinder knows it.
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $( $id => Some(GgmlType::$variant), )*
                    _ => None,
                }
            }

            /// ggml's name of the type (`"Q4_0"`, `"F16"`...).
            pub fn name(self) -> &'static str {
                match self { $( GgmlType::$variant => $name, )* }
            }

            /// Values per block.
            pub const fn block_size(self) -> usize {
                match self { $( GgmlType::$variant => $block, )* }
            }

            /// Bytes per block.
            pub const fn type_size(self) -> usize {
                match self { $( GgmlType::$variant => $size, )* }
            }
        }
    };
}

ggml_types! {
    /// 32-bit IEEE float.
    F32 = 0, "F32", 1, 4;
    /// 16-bit IEEE float.
    F16 = 1, "F16", 1, 2;
    /// 4-bit, one f16 scale per 32 values.
    Q4_0 = 2, "Q4_0", 32, 18;
    /// 4-bit, f16 scale and minimum per 32 values.
    Q4_1 = 3, "Q4_1", 32, 20;
    /// 5-bit, one f16 scale per 32 values.
    Q5_0 = 6, "Q5_0", 32, 22;
    /// 5-bit, f16 scale and minimum per 32 values.
    Q5_1 = 7, "Q5_1", 32, 24;
    /// 8-bit, one f16 scale per 32 values.
    Q8_0 = 8, "Q8_0", 32, 34;
    /// 8-bit, f16 scale and f16 `d * sum(q)` per 32 values (activations of Q4_1/Q5_1).
    Q8_1 = 9, "Q8_1", 32, 36;
    /// 2-bit k-quant.
    Q2_K = 10, "Q2_K", QK_K, 84;
    /// 3-bit k-quant.
    Q3_K = 11, "Q3_K", QK_K, 110;
    /// 4-bit k-quant.
    Q4_K = 12, "Q4_K", QK_K, 144;
    /// 5-bit k-quant.
    Q5_K = 13, "Q5_K", QK_K, 176;
    /// 6-bit k-quant.
    Q6_K = 14, "Q6_K", QK_K, 210;
    /// 8-bit k-quant with f32 scale and block sums (activations of the k-quants).
    Q8_K = 15, "Q8_K", QK_K, 292;
    /// i-quant (layout known for sizes only).
    IQ2_XXS = 16, "IQ2_XXS", QK_K, 66;
    /// i-quant (layout known for sizes only).
    IQ2_XS = 17, "IQ2_XS", QK_K, 74;
    /// i-quant (layout known for sizes only).
    IQ3_XXS = 18, "IQ3_XXS", QK_K, 98;
    /// i-quant (layout known for sizes only).
    IQ1_S = 19, "IQ1_S", QK_K, 50;
    /// i-quant (layout known for sizes only).
    IQ4_NL = 20, "IQ4_NL", 32, 18;
    /// i-quant (layout known for sizes only).
    IQ3_S = 21, "IQ3_S", QK_K, 110;
    /// i-quant (layout known for sizes only).
    IQ2_S = 22, "IQ2_S", QK_K, 82;
    /// i-quant (layout known for sizes only).
    IQ4_XS = 23, "IQ4_XS", QK_K, 136;
    /// 8-bit integer.
    I8 = 24, "I8", 1, 1;
    /// 16-bit integer.
    I16 = 25, "I16", 1, 2;
    /// 32-bit integer.
    I32 = 26, "I32", 1, 4;
    /// 64-bit integer.
    I64 = 27, "I64", 1, 8;
    /// 64-bit IEEE float.
    F64 = 28, "F64", 1, 8;
    /// i-quant (layout known for sizes only).
    IQ1_M = 29, "IQ1_M", QK_K, 56;
    /// bfloat16.
    BF16 = 30, "BF16", 1, 2;
    /// ternary quant, base-3 packed (1.69 bits per weight).
    TQ1_0 = 34, "TQ1_0", QK_K, 54;
    /// ternary quant, 2 bits per weight.
    TQ2_0 = 35, "TQ2_0", QK_K, 66;
    /// microscaling fp4: e2m1 values with a shared e8m0 scale per 32.
    MXFP4 = 39, "MXFP4", 32, 17;
}

impl GgmlType {
    /// ggml's numeric id.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// Bytes of a row of `n` values, or `None` when `n` is not a multiple of the block size
    /// (or the size overflows).
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }

    /// Bytes of a tensor with `n` values in total, checked like [`GgmlType::row_bytes`].
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n.is_multiple_of(bs) {
            return None;
        }
        (n / bs).checked_mul(self.type_size() as u64)
    }

    /// The type with ggml name `name` (case-insensitive), e.g. `"q4_k"`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Whether cinder has a reference quantizer/dequantizer for this type.
    pub fn has_reference(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16
                | BF16
                | Q4_0
                | Q4_1
                | Q5_0
                | Q5_1
                | Q8_0
                | Q8_1
                | Q2_K
                | Q3_K
                | Q4_K
                | Q5_K
                | Q6_K
                | Q8_K
                | TQ1_0
                | TQ2_0
                | MXFP4
        )
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_names_are_unique() {
        for &t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
            assert_eq!(GgmlType::from_name(&t.name().to_lowercase()), Some(t));
        }
        assert_eq!(
            GgmlType::from_id(4),
            None,
            "ids 4 and 5 (Q4_2, Q4_3) were removed from ggml"
        );
    }

    #[test]
    fn row_bytes_rejects_partial_blocks() {
        assert_eq!(GgmlType::Q4_0.row_bytes(64), Some(36));
        assert_eq!(GgmlType::Q4_0.row_bytes(33), None);
        assert_eq!(GgmlType::Q6_K.row_bytes(4096), Some(16 * 210));
        assert_eq!(GgmlType::F32.row_bytes(3), Some(12));
    }
}
