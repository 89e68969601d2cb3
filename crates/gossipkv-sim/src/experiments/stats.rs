//! What the experiments share: summaries of per-trial figures, per-trial seeds, and a
//! deterministic parallel map over trials.
//!
//! Every trial draws from its own [`Rng`], seeded from the run's seed and the trial's
//! coordinates ([`derive_seed`]), and [`par_map`] returns results in trial order whatever the
//! thread count; summaries add up in that order. So a seed fixes the output exactly, on any
//! machine and with any `--threads`.

use gossipkv_core::rng::Rng;
use serde::Serialize;

/// Mean, spread and order statistics of one figure over trials.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of trials.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (`n − 1` in the denominator; 0 for a single trial).
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank: the value at 1-based rank `ceil(0.99 n)`).
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises `xs` (all zeros if it is empty).
    pub fn of(xs: &[f64]) -> Summary {
        let n = xs.len();
        if n == 0 {
            return Summary::default();
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            n,
            mean,
            std,
            min: sorted[0],
            p50: nearest_rank(&sorted, 0.5),
            p99: nearest_rank(&sorted, 0.99),
            max: sorted[n - 1],
        }
    }

    /// Standard error of the mean, `std / √n`.
    pub fn sem(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.std / (self.n as f64).sqrt() }
    }
}

/// The value at 1-based rank `ceil(q × len)` of an ascending, non-empty slice.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A seed for one purpose, derived from the run's `seed` and the coordinates in `parts`
/// (experiment tag, parameter indices, trial number). Each part is folded in through a fresh
/// xoshiro256++ seeded by SplitMix64, so nearby coordinates give unrelated streams.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut h = Rng::new(seed).next_u64();
    for &p in parts {
        h = Rng::new(h ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64();
    }
    h
}

/// The number of worker threads to use: `requested`, or the machine's parallelism when it is
/// 0, and never more than `jobs`.
pub fn threads_for(requested: usize, jobs: usize) -> usize {
    let t = if requested == 0 {
        std::thread::available_parallelism().map_or(1, |p| p.get())
    } else {
        requested
    };
    t.clamp(1, jobs.max(1))
}

/// `f(0), f(1), …, f(count − 1)` computed on `threads` threads (interleaved), returned in
/// index order, so the result does not depend on the thread count.
pub fn par_map<T, F>(count: usize, threads: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync,
{
    let threads = threads_for(threads, count);
    if threads <= 1 {
        return (0..count).map(&f).collect();
    }
    let f = &f;
    let mut parts: Vec<Vec<(usize, T)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || (t..count).step_by(threads).map(|i| (i, f(i))).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                Err(e) => std::panic::resume_unwind(e),
            })
            .collect()
    });
    let mut out: Vec<(usize, T)> = parts.iter_mut().flat_map(std::mem::take).collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_percentiles() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&xs);
        assert_eq!((s.n, s.min, s.max, s.p50, s.p99), (100, 1.0, 100.0, 50.0, 99.0));
        assert!((s.mean - 50.5).abs() < 1e-12);
        assert!((s.std - 29.011_491_975_882_016).abs() < 1e-9);
        assert_eq!(Summary::of(&[3.0]).std, 0.0);
        assert_eq!(Summary::of(&[]).n, 0);
    }

    #[test]
    fn par_map_keeps_order_and_seeds_differ() {
        let a = par_map(37, 1, |i| derive_seed(5, &[1, i as u64]));
        let b = par_map(37, 4, |i| derive_seed(5, &[1, i as u64]));
        assert_eq!(a, b);
        let mut c = a.clone();
        c.sort_unstable();
        c.dedup();
        assert_eq!(c.len(), a.len());
        assert_ne!(derive_seed(5, &[1, 2]), derive_seed(5, &[2, 1]));
    }
}
