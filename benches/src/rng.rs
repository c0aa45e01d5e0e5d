//! A fast seeded PRNG: [`splitmix64`] turns any seed into a well-mixed state, [`Rng`] is a
//! xorshift64* stream over it. Statistical quality is far beyond what bench inputs need, and a
//! stream is cheap to start, so every matrix row can get its own (parallel, reproducible).

/// SplitMix64's finaliser: a bijective mix of 64 bits (used to derive stream states).
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A xorshift64* generator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        // xorshift must not start at 0; splitmix64 maps exactly one input to 0.
        let s = splitmix64(seed);
        Rng {
            state: if s == 0 { 0x2545_F491_4F6C_DD1D } else { s },
        }
    }

    /// The stream of item `index` of stream family `seed` (e.g. one row of one tensor).
    pub fn derive(seed: u64, family: u64, index: u64) -> Self {
        Self::new(splitmix64(seed ^ splitmix64(family)).wrapping_add(index))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[-1, 1)`.
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        // 24 random mantissa bits: exact in f32.
        let u = (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
        2.0 * u - 1.0
    }

    /// Approximately standard normal: the centred sum of four 16-bit uniforms (Irwin-Hall),
    /// scaled to unit variance. Bounded by +-2*sqrt(3), so always finite and sane.
    #[inline]
    pub fn normal(&mut self) -> f32 {
        let x = self.next_u64();
        let sum = (x & 0xFFFF) + ((x >> 16) & 0xFFFF) + ((x >> 32) & 0xFFFF) + (x >> 48);
        // Each (u + 0.5) / 65536 has mean 1/2 and variance ~1/12: the sum has mean 2 and
        // variance 1/3.
        let s = (sum as f32 + 2.0) * (1.0 / 65536.0);
        (s - 2.0) * 3f32.sqrt()
    }

    /// Fill `out` with `mean + std * normal()`.
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f32, std: f32) {
        for v in out {
            *v = mean + std * self.normal();
        }
    }

    /// Fill `out` with uniform values in `[-scale, scale)`.
    pub fn fill_uniform(&mut self, out: &mut [f32], scale: f32) {
        for v in out {
            *v = scale * self.uniform();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_unit_variance_and_zero_mean() {
        let mut r = Rng::new(7);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| f64::from(r.normal())).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!(xs.iter().all(|x| x.abs() <= 2.0 * 3f64.sqrt()));
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = {
            let mut r = Rng::derive(1, 2, 3);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::derive(1, 2, 3);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut other = Rng::derive(1, 2, 4);
        assert_ne!(a[0], other.next_u64());
        let mut u = Rng::new(0);
        assert!(
            (0..1000)
                .map(|_| u.uniform())
                .all(|x| (-1.0..1.0).contains(&x))
        );
    }
}
