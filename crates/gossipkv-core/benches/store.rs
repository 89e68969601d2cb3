//! Criterion benchmarks of the replica store at 1,000,000 keys (16-byte keys, 32-byte values):
//! GET hits, PUT through [`Replica::put`] (HLC timestamp included), and merges of remote
//! versions through [`Replica::merge_remote`] (a new key, a stale version, a duplicate), on
//! one thread and on two threads at once.
//!
//! Run: `cargo bench -p gossipkv-core --bench store` (under a minute of measurement on 2
//! cores; add a filter after `--` to run fewer). With `--features bench-mimalloc` the bench
//! binary uses mimalloc as its global allocator instead of the system's (glibc malloc).
//! docs/benchmarks.md ("Store") has the measured numbers.
//!
//! Access patterns:
//! - `uniform`: keys in a fixed pseudo-random order over all 1M keys. The store (~110 MB) is
//!   far larger than the CPU caches, so each operation pays its cache and TLB misses: the
//!   figure a server sees for a key space with no hot spot.
//! - `hot1k`: the first 1,024 keys of that order, over and over: the store's pure CPU cost
//!   when the keys being touched stay in cache (a skewed workload).
//!
//! Single-thread benchmarks are timed by the benchmark thread's CPU time, not wall time, so that
//! other work on a shared machine preempting the thread does not inflate them (cache and memory
//! interference still can); `BENCH_WALL_CLOCK=1` switches to wall time. On an idle machine the
//! two agree.
//!
//! Two-thread benchmarks (`*_2threads`) split `iters` operations between two threads started
//! together behind a barrier and report wall time divided by the total operation count, i.e.
//! the inverse of the aggregate throughput (half the single-thread figure means perfect
//! scaling). `disjoint`: each thread has its own half of the keys. `overlapping`: both threads
//! walk the same keys (shared shard locks and cache lines, and for `put` the shared clock).

#[cfg(feature = "bench-mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cpu_time::ThreadTime;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use gossipkv_core::{ClockKind, Replica, StoreConfig, VersionRef};

/// Keys in the pre-filled store.
const N: u64 = 1_000_000;
/// Size of the hot key set.
const HOT: usize = 1024;
/// New keys inserted per round of the new-key benchmark before they are removed again, so the
/// store stays near `N` keys whatever the iteration count.
const NEW_POOL: usize = 100_000;
/// Physical time handed to the clock (milliseconds).
const PHYS_MS: u64 = 1_700_000_000_000;
/// Timestamp of the pre-filled versions: one second before `PHYS_MS`.
const BASE_TS: u64 = (PHYS_MS - 1000) << 16;
/// Origin of the pre-filled (remote) versions.
const REMOTE: u32 = 2;

/// Writes `prefix` then `i` zero-padded to fill `out` (`printf("k:%014d")`-style).
fn format_padded(prefix: &[u8], mut i: u64, out: &mut [u8]) {
    out[..prefix.len()].copy_from_slice(prefix);
    for b in out[prefix.len()..].iter_mut().rev() {
        *b = b'0' + (i % 10) as u8;
        i /= 10;
    }
}

/// Key `i`: `k:%014d`, 16 bytes (the keys of `bench/redis_memory.sh`).
fn key(i: u64) -> [u8; 16] {
    let mut k = [0; 16];
    format_padded(b"k:", i, &mut k);
    k
}

/// Value `i`: `v:%030d`, 32 bytes.
fn value(i: u64) -> [u8; 32] {
    let mut v = [0; 32];
    format_padded(b"v:", i, &mut v);
    v
}

/// A key and its pre-filled value.
type Kv = ([u8; 16], [u8; 32]);

/// The fixture: a replica pre-filled with `N` remote versions at `BASE_TS`, and the keys with
/// their values in access order, laid out sequentially so that fetching the next key costs
/// (almost) nothing next to the operation measured.
struct Fixture {
    replica: Replica,
    order: Vec<Kv>,
}

impl Fixture {
    fn new() -> Self {
        let replica = Replica::new(1, ClockKind::Hlc, StoreConfig::default());
        for i in 0..N {
            let v = value(i);
            let ver = VersionRef { ts: BASE_TS, origin: REMOTE, value: Some(&v) };
            replica.merge_remote(&key(i), ver, PHYS_MS);
        }
        // A fixed pseudo-random permutation (xorshift-driven Fisher-Yates).
        let mut idx: Vec<u32> = (0..N as u32).collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..idx.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            idx.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let order = idx.into_iter().map(|i| (key(u64::from(i)), value(u64::from(i)))).collect();
        Self { replica, order }
    }

    fn uniform(&self) -> &[Kv] {
        &self.order
    }

    fn hot(&self) -> &[Kv] {
        &self.order[..HOT]
    }
}

/// Cycles through `keys` forever.
struct Cycle<'a, T> {
    items: &'a [T],
    at: usize,
}

impl<'a, T> Cycle<'a, T> {
    fn new(items: &'a [T]) -> Self {
        Self { items, at: 0 }
    }

    #[inline]
    fn next(&mut self) -> &'a T {
        let item = &self.items[self.at];
        self.at += 1;
        if self.at == self.items.len() {
            self.at = 0;
        }
        item
    }
}

/// Whether to time single-thread benchmarks by wall clock (`BENCH_WALL_CLOCK=1`) rather than
/// by the thread's CPU time.
fn wall_clock() -> bool {
    std::env::var_os("BENCH_WALL_CLOCK").is_some_and(|v| v != "0")
}

/// Runs `op` `iters` times on this thread and returns how long that took: the thread's CPU
/// time (`CLOCK_THREAD_CPUTIME_ID`) by default, so that time the thread spends preempted by
/// other work on a shared machine is not counted (cache misses and lock waits that spin are);
/// wall time with `BENCH_WALL_CLOCK=1`. On an idle machine the two agree.
fn timed(iters: u64, mut op: impl FnMut()) -> Duration {
    if wall_clock() {
        let t = Instant::now();
        for _ in 0..iters {
            op();
        }
        t.elapsed()
    } else {
        let t = ThreadTime::now();
        for _ in 0..iters {
            op();
        }
        t.elapsed()
    }
}

fn get_len(r: &Replica, k: &[u8]) -> usize {
    r.store().get_with(k, |v| v.map_or(0, <[u8]>::len))
}

fn single_thread(c: &mut Criterion, fx: &Fixture) {
    let r = &fx.replica;
    let mut g = c.benchmark_group("store_1M");
    g.throughput(Throughput::Elements(1));

    for (pattern, keys) in [("uniform", fx.uniform()), ("hot1k", fx.hot())] {
        g.bench_function(format!("get_with/{pattern}"), |b| {
            let mut it = Cycle::new(keys);
            b.iter_custom(|iters| {
                timed(iters, || {
                    black_box(get_len(r, &it.next().0));
                })
            });
        });
    }
    g.bench_function("get_bytes/uniform", |b| {
        let mut it = Cycle::new(fx.uniform());
        b.iter_custom(|iters| {
            timed(iters, || {
                black_box(r.get(&it.next().0));
            })
        });
    });
    g.bench_function("merge_stale/uniform", |b| {
        let mut it = Cycle::new(fx.uniform());
        b.iter_custom(|iters| {
            timed(iters, || {
                let (k, v) = it.next();
                let ver = VersionRef { ts: BASE_TS - 1, origin: REMOTE, value: Some(v) };
                black_box(r.merge_remote(k, ver, PHYS_MS));
            })
        });
    });
    g.bench_function("merge_duplicate/uniform", |b| {
        let mut it = Cycle::new(fx.uniform());
        b.iter_custom(|iters| {
            timed(iters, || {
                let (k, v) = it.next();
                let ver = VersionRef { ts: BASE_TS, origin: REMOTE, value: Some(v) };
                black_box(r.merge_remote(k, ver, PHYS_MS));
            })
        });
    });
    // From here on the store's versions change (PUTs overwrite the pre-filled ones).
    let val = Bytes::from_static(b"v:put-put-put-put-put-put-put-pu");
    for (pattern, keys) in [("uniform", fx.uniform()), ("hot1k", fx.hot())] {
        g.bench_function(format!("put/{pattern}"), |b| {
            let mut it = Cycle::new(keys);
            b.iter_custom(|iters| {
                timed(iters, || {
                    black_box(r.put(&it.next().0, val.clone(), PHYS_MS));
                })
            });
        });
    }
    bench_merge_new_key(&mut g, r);
    g.finish();
}

/// Merges of versions of keys the store does not hold (`MergeOutcome::Inserted`). After each
/// round of at most `NEW_POOL` inserts the new keys are deleted and purged, untimed.
fn bench_merge_new_key(g: &mut BenchmarkGroup<'_, WallTime>, r: &Replica) {
    let pool: Vec<[u8; 16]> = (0..NEW_POOL as u64).map(|j| key(N + j)).collect();
    let v = value(0);
    g.bench_function("merge_new_key", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(NEW_POOL as u64) as usize;
                let ver = VersionRef { ts: BASE_TS, origin: REMOTE, value: Some(&v) };
                let mut keys = pool[..n].iter();
                total += timed(n as u64, || {
                    if let Some(k) = keys.next() {
                        black_box(r.merge_remote(k, ver, PHYS_MS));
                    }
                });
                let tomb = VersionRef { ts: BASE_TS + 1, origin: REMOTE, value: None };
                for k in &pool[..n] {
                    r.merge_remote(k, tomb, PHYS_MS);
                }
                r.store().purge_tombstones(BASE_TS + 2);
                left -= n as u64;
            }
            total
        });
    });
}

/// Runs `iters` operations split between two threads released together: thread `t` runs
/// the closure `make(t)` returns, once per operation. Returns the wall time from the release to
/// the last thread's end.
fn two_threads<F: FnMut()>(iters: u64, make: impl Fn(usize) -> F + Sync) -> Duration {
    let barrier = Barrier::new(3);
    let (make, barrier) = (&make, &barrier);
    std::thread::scope(|s| {
        let handles: Vec<_> = [iters - iters / 2, iters / 2]
            .into_iter()
            .enumerate()
            .map(|(t, n)| {
                s.spawn(move || {
                    let mut op = make(t);
                    barrier.wait();
                    for _ in 0..n {
                        op();
                    }
                    Instant::now()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let end = handles.into_iter().filter_map(|h| h.join().ok()).max().unwrap_or(start);
        end.saturating_duration_since(start)
    })
}

fn two_thread(c: &mut Criterion, fx: &Fixture) {
    let r = &fx.replica;
    let mut g = c.benchmark_group("store_1M_2threads");
    g.throughput(Throughput::Elements(1));
    let all = fx.uniform();
    let halves: [&[Kv]; 2] = [&all[..all.len() / 2], &all[all.len() / 2..]];
    let hot = fx.hot();
    let val = Bytes::from_static(b"v:put-put-put-put-put-put-put-pu");

    g.bench_function("get_with/uniform_disjoint", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |t| {
                let mut it = Cycle::new(halves[t]);
                move || {
                    black_box(get_len(r, &it.next().0));
                }
            })
        });
    });
    g.bench_function("get_with/hot1k_overlapping", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |_| {
                let mut it = Cycle::new(hot);
                move || {
                    black_box(get_len(r, &it.next().0));
                }
            })
        });
    });
    g.bench_function("put/uniform_disjoint", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |t| {
                let mut it = Cycle::new(halves[t]);
                let val = val.clone();
                move || {
                    black_box(r.put(&it.next().0, val.clone(), PHYS_MS));
                }
            })
        });
    });
    g.bench_function("put/hot1k_overlapping", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |_| {
                let mut it = Cycle::new(hot);
                let val = val.clone();
                move || {
                    black_box(r.put(&it.next().0, val.clone(), PHYS_MS));
                }
            })
        });
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::new();
    single_thread(c, &fx);
    two_thread(c, &fx);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = store;
    config = config();
    targets = benches
}
criterion_main!(store);
