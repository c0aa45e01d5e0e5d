//! Q and K rows from Hugging Face's rotate-half RoPE order to GGUF's adjacent-pair order.
//!
//! Hugging Face rotates pairs `(i, i + head_dim/2)` of each head; llama.cpp (like Meta's
//! original code) rotates adjacent pairs `(2i, 2i + 1)`. Within each head, output row
//! `2i + j` is input row `j * head_dim/2 + i` (j in 0..2). K uses the kv-head count.

/// Reorder the rows of one Q or K weight (`rows` rows of `cols` values each, `heads` heads).
/// `src` and `dst` have `rows * cols` values; `rows` must be a multiple of `2 * heads`.
pub fn unpermute_rows<T: Copy>(src: &[T], dst: &mut [T], heads: usize, rows: usize, cols: usize) {
    assert_eq!(src.len(), rows * cols, "source size");
    assert_eq!(dst.len(), rows * cols, "destination size");
    assert!(
        heads > 0 && rows.is_multiple_of(2 * heads),
        "{rows} rows do not split into {heads} heads of pairs"
    );
    let head_dim = rows / heads;
    let half = head_dim / 2;
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let out_row = h * head_dim + 2 * i + j;
                let in_row = h * head_dim + j * half + i;
                dst[out_row * cols..(out_row + 1) * cols]
                    .copy_from_slice(&src[in_row * cols..(in_row + 1) * cols]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_the_permutation_the_fixture_readme_gives() {
        // README: HF = w.view(heads, head_dim/2, 2, dim).transpose(1, 2).reshape(...) of the
        // adjacent-pair layout. Build that from a known adjacent-pair matrix and undo it.
        let (heads, head_dim, cols) = (3, 8, 2);
        let rows = heads * head_dim;
        let adjacent: Vec<u32> = (0..(rows * cols) as u32).collect();
        let mut hf = vec![0; rows * cols];
        for h in 0..heads {
            for a in 0..head_dim / 2 {
                for b in 0..2 {
                    // view index (h, a, b) -> transposed (h, b, a)
                    let src_row = h * head_dim + a * 2 + b;
                    let dst_row = h * head_dim + b * (head_dim / 2) + a;
                    hf[dst_row * cols..(dst_row + 1) * cols]
                        .copy_from_slice(&adjacent[src_row * cols..(src_row + 1) * cols]);
                }
            }
        }
        let mut back = vec![0; rows * cols];
        unpermute_rows(&hf, &mut back, heads, rows, cols);
        assert_eq!(back, adjacent);
    }
}
