//! Calls one kernel on deterministic pseudo-random inputs, so that an instruction counter (qemu,
//! `benches/arm-icount.sh`) can measure what the kernel executes per super-block.
//!
//! usage: icount KERNEL ISA NB COLS [CALLS]
//! - KERNEL: `q4_0`, `q8_0` (strip gemms, NB blocks of 32), `q4_k`, `q5_k`, `q6_k` (strip gemms,
//!   NB super-blocks of 256), `vq4_k`, `vq5_k`, `vq6_k` (one plain row against one column);
//! - ISA: a kernel set name as `cinder info` prints it;
//! - one strip of 16 rows against COLS columns, CALLS times (default 1).

use std::hint::black_box;

use bytemuck::Zeroable;
use cinder_kernels::repack::{self, BlockQ4_Kx16, BlockQ5_Kx16, BlockQ6_Kx16, Lanes, Scales16};
use cinder_kernels::{Isa, Kernels, Strips};
use cinder_quant::block::{BlockQ4_0, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_0, BlockQ8_K};
use half::f16;

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A finite f16 in [-1, 1).
    fn half(&mut self) -> f16 {
        f16::from_f32((self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
    }

    /// `n` blocks of random bytes whose scale fields `fix` then sets.
    fn blocks<B: bytemuck::Pod>(&mut self, n: usize, fix: impl Fn(&mut B, &mut Rng)) -> Vec<B> {
        let mut v = vec![B::zeroed(); n];
        for b in &mut v {
            for x in bytemuck::bytes_of_mut(b) {
                *x = (self.next() >> 56) as u8;
            }
            fix(b, self);
        }
        v
    }
}

/// A Q8_K column block: finite scale, `bsums` consistent with `qs`.
fn fix_q8_k(b: &mut BlockQ8_K, r: &mut Rng) {
    b.d = r.half().to_f32() * 0.01;
    for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = g.iter().map(|&q| i16::from(q)).sum();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, kernel, isa, nb, cols, rest @ ..] = args.as_slice() else {
        eprintln!("usage: icount KERNEL ISA NB COLS [CALLS]");
        std::process::exit(2);
    };
    let isa: Isa = isa.parse().expect("ISA: a kernel set name");
    let nb: usize = nb.parse().expect("NB: a count");
    let cols: usize = cols.parse().expect("COLS: a count");
    let calls: usize = rest
        .first()
        .map_or(1, |c| c.parse().expect("CALLS: a count"));
    let k = Kernels::new(isa).expect("this CPU lacks that kernel set");
    let (rows, mut out, mut sum) = (16, vec![0f32; 16 * cols], 0f64);
    let r = &mut Rng(0x9E37_79B9_7F4A_7C15);
    match kernel.as_str() {
        "q4_0" | "q8_0" => {
            let a: Vec<BlockQ8_0> = r.blocks(nb * cols, |b: &mut BlockQ8_0, r| b.d = r.half());
            let mut d = vec![Scales16::zeroed(); nb];
            let q = if kernel == "q4_0" {
                let w: Vec<BlockQ4_0> = r.blocks(nb * rows, |b: &mut BlockQ4_0, r| b.d = r.half());
                let mut q = vec![Lanes::zeroed(); nb * repack::Q4_0_GROUPS];
                repack::repack_q4_0(&w, nb, &mut q, &mut d);
                q
            } else {
                let w: Vec<BlockQ8_0> = r.blocks(nb * rows, |b: &mut BlockQ8_0, r| b.d = r.half());
                let mut q = vec![Lanes::zeroed(); nb * repack::Q8_0_GROUPS];
                repack::repack_q8_0(&w, nb, &mut q, &mut d);
                q
            };
            for _ in 0..calls {
                let w = Strips {
                    q: black_box(&q),
                    d: black_box(&d),
                };
                if kernel == "q4_0" {
                    k.gemm_q4_0x16_q8_0(w, black_box(&a), nb * 32, 0..1, &mut out, rows);
                } else {
                    k.gemm_q8_0x16_q8_0(w, black_box(&a), nb * 32, 0..1, &mut out, rows);
                }
                black_box(&mut out);
            }
        }
        "q4_k" | "vq4_k" | "q5_k" | "vq5_k" => {
            let a: Vec<BlockQ8_K> = r.blocks(nb * cols, fix_q8_k);
            let q5 = kernel.contains('5');
            let w4: Vec<BlockQ4_K> = r.blocks(nb * rows, |b: &mut BlockQ4_K, r| {
                (b.d, b.dmin) = (r.half(), r.half());
            });
            let w5: Vec<BlockQ5_K> = r.blocks(nb * rows, |b: &mut BlockQ5_K, r| {
                (b.d, b.dmin) = (r.half(), r.half());
            });
            let mut p4 = vec![BlockQ4_Kx16::zeroed(); nb];
            let mut p5 = vec![BlockQ5_Kx16::zeroed(); nb];
            repack::repack_q4_k(&w4, nb, &mut p4);
            repack::repack_q5_k(&w5, nb, &mut p5);
            for _ in 0..calls {
                let a = black_box(&a);
                match (kernel.starts_with('v'), q5) {
                    (false, false) => k.gemm_q4_kx16_q8_k(&p4, a, nb * 256, 0..1, &mut out, rows),
                    (false, true) => k.gemm_q5_kx16_q8_k(&p5, a, nb * 256, 0..1, &mut out, rows),
                    (true, false) => sum += f64::from(k.vec_dot_q4_k_q8_k(&w4[..nb], &a[..nb])),
                    (true, true) => sum += f64::from(k.vec_dot_q5_k_q8_k(&w5[..nb], &a[..nb])),
                }
                black_box(&mut out);
            }
        }
        "q6_k" | "vq6_k" => {
            let a: Vec<BlockQ8_K> = r.blocks(nb * cols, fix_q8_k);
            let w: Vec<BlockQ6_K> = r.blocks(nb * rows, |b: &mut BlockQ6_K, r| b.d = r.half());
            let mut p = vec![BlockQ6_Kx16::zeroed(); nb];
            repack::repack_q6_k(&w, nb, &mut p);
            for _ in 0..calls {
                let a = black_box(&a);
                if kernel == "q6_k" {
                    k.gemm_q6_kx16_q8_k(&p, a, nb * 256, 0..1, &mut out, rows);
                } else {
                    sum += f64::from(k.vec_dot_q6_k_q8_k(&w[..nb], &a[..nb]));
                }
                black_box(&mut out);
            }
        }
        other => panic!("unknown kernel {other}"),
    }
    let s = out.iter().map(|&x| f64::from(x)).sum::<f64>() + sum;
    println!("{kernel} {isa} nb={nb} cols={cols} calls={calls} checksum={s:e}");
}
