//! One-column products over matrices larger than the caches, one thread: the weight bytes read
//! per second by the strip kernels and by the plain row dots of Q4_K, Q5_K and Q6_K. One token
//! of generation is made of such products, so these rates bound it; compare them with
//! `bandwidth` (benches) on the same machine.
//!
//! usage: gemv_bandwidth ISA [MB] [REPS]
//! - ISA: a kernel set name as `cinder info` prints it;
//! - MB: weight megabytes per matrix (default 64), well above the last-level cache;
//! - REPS: products timed per kernel (default 10), after one untimed.

use std::hint::black_box;
use std::time::Instant;

use bytemuck::{Pod, Zeroable};
use cinder_kernels::repack::{self, BlockQ4_Kx16, BlockQ5_Kx16, BlockQ6_Kx16};
use cinder_kernels::{Isa, Kernels};
use cinder_quant::block::{BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K};
use half::f16;

/// Columns of the matrices: super-blocks per row.
const NB: usize = 16;
/// Strips per call, as the runtime hands a thread a range of strips.
const CHUNK: usize = 16;

/// `n` blocks of hashed bytes with every f16 scale set to `0.01`.
fn blocks<B: Pod>(n: usize, fix: impl Fn(&mut B)) -> Vec<B> {
    let mut v = vec![B::zeroed(); n];
    for (i, x) in bytemuck::cast_slice_mut::<B, u8>(&mut v)
        .iter_mut()
        .enumerate()
    {
        *x = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    v.iter_mut().for_each(fix);
    v
}

/// Seconds per product of `f`, best of `reps` after one untimed.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, isa, rest @ ..] = args.as_slice() else {
        eprintln!("usage: gemv_bandwidth ISA [MB] [REPS]");
        std::process::exit(2);
    };
    let isa: Isa = isa.parse().expect("ISA: a kernel set name");
    let mb: usize = rest.first().map_or(64, |v| v.parse().expect("MB: a count"));
    let reps: usize = rest
        .get(1)
        .map_or(10, |v| v.parse().expect("REPS: a count"));
    let k = Kernels::new(isa).expect("this CPU lacks that kernel set");
    let col: Vec<BlockQ8_K> = blocks(NB, |b: &mut BlockQ8_K| {
        b.d = 0.01;
        for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| i16::from(q)).sum();
        }
    });
    let h = f16::from_f32(0.01);
    let report = |name: &str, bytes: usize, strips: f64, rows: f64| {
        let gbs = |s: f64| bytes as f64 / s / 1e9;
        println!(
            "{name} {isa}: {:.0} MB, strips {:.2} GB/s, rows {:.2} GB/s",
            bytes as f64 / 1e6,
            gbs(strips),
            gbs(rows)
        );
    };
    // One strip is 16 rows of NB super-blocks.
    macro_rules! run {
        ($name:expr, $blk:ty, $strip:ty, $fix:expr, $repack:path, $gemm:ident, $dot:ident) => {{
            let strips = (mb << 20) / (16 * NB * std::mem::size_of::<$blk>());
            let rows = 16 * strips;
            let w: Vec<$blk> = blocks(rows * NB, $fix);
            let mut p = vec![<$strip>::zeroed(); strips * NB];
            for (w, p) in w.chunks_exact(16 * NB).zip(p.chunks_exact_mut(NB)) {
                $repack(w, NB, p);
            }
            let mut out = vec![0f32; rows];
            let ts = time(reps, || {
                for s0 in (0..strips).step_by(CHUNK) {
                    let s1 = (s0 + CHUNK).min(strips);
                    let o = &mut out[16 * s0..];
                    k.$gemm(black_box(&p), &col, NB * 256, s0..s1, o, 16 * (s1 - s0));
                }
                black_box(&mut out);
            });
            let tr = time(reps, || {
                for (o, w) in out.iter_mut().zip(w.chunks_exact(NB)) {
                    *o = k.$dot(black_box(w), &col);
                }
                black_box(&mut out);
            });
            report($name, std::mem::size_of_val(&w[..]), ts, tr);
        }};
    }
    run!(
        "q4_k",
        BlockQ4_K,
        BlockQ4_Kx16,
        |b: &mut BlockQ4_K| (b.d, b.dmin) = (h, h),
        repack::repack_q4_k,
        gemm_q4_kx16_q8_k,
        vec_dot_q4_k_q8_k
    );
    run!(
        "q5_k",
        BlockQ5_K,
        BlockQ5_Kx16,
        |b: &mut BlockQ5_K| (b.d, b.dmin) = (h, h),
        repack::repack_q5_k,
        gemm_q5_kx16_q8_k,
        vec_dot_q5_k_q8_k
    );
    run!(
        "q6_k",
        BlockQ6_K,
        BlockQ6_Kx16,
        |b: &mut BlockQ6_K| b.d = h,
        repack::repack_q6_k,
        gemm_q6_kx16_q8_k,
        vec_dot_q6_k_q8_k
    );
}
