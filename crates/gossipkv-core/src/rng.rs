//! A small seeded PRNG (xoshiro256++ seeded through SplitMix64) that the protocol core takes as
//! an input. Written here rather than taken from `rand` because the simulator's byte-for-byte
//! reproducibility must not depend on a dependency's algorithm choice: `rand::rngs::SmallRng`
//! is documented as not portable or stable across versions. It is 30 lines.

use crate::digest::mix;

/// xoshiro256++: fast, 256-bit state, good statistical quality; not cryptographic.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole output is a function of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(z)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32
    /// for the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Picks up to `k` distinct indices from `0..n` (partial Fisher-Yates over a scratch
    /// vector; O(n) memory is fine for peer lists).
    pub fn sample_indices(&mut self, n: usize, k: usize, scratch: &mut Vec<usize>) {
        scratch.clear();
        if n == 0 || k == 0 {
            return;
        }
        if k * 4 < n {
            // sparse: rejection sampling, no O(n) pass
            while scratch.len() < k {
                let i = self.below(n as u64) as usize;
                if !scratch.contains(&i) {
                    scratch.push(i);
                }
            }
            return;
        }
        scratch.extend(0..n);
        let k = k.min(n);
        for i in 0..k {
            let j = i + self.below((n - i) as u64) as usize;
            scratch.swap(i, j);
        }
        scratch.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_samples_are_distinct() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut v = Vec::new();
        for n in [1usize, 5, 10, 1000] {
            for k in [0usize, 1, 3, 5, 10] {
                a.sample_indices(n, k, &mut v);
                assert_eq!(v.len(), k.min(n));
                let mut w = v.clone();
                w.sort_unstable();
                w.dedup();
                assert_eq!(w.len(), v.len());
                assert!(v.iter().all(|&i| i < n));
            }
        }
        let hits = (0..10_000).filter(|_| a.chance(0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
