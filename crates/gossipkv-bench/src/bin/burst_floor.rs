//! The burst's floor: the least work any reconciliation protocol must do, with this store and
//! this codec, to give every one of `NODES` replicas all `KEYS` versions, and the simulator's
//! final check.
//!
//! Whatever a protocol does to find differences, each node must at least receive every
//! version once: a sender reads it from its store and encodes it into an `Entries` message, the
//! receiver decodes the message and merges the version into its store (fresh memory: the
//! store grows from empty). The burst (`gossipkv sim --nodes 1000 --keys 100000 ...`) must
//! also check every node against the oracle key by key. This binary does exactly that work and
//! nothing else, with no digest tree walks, no summaries, no loss and no duplicates, on
//! `THREADS` threads (the simulator uses 2). Its time is a lower bound for the burst's
//! on the same machine; `docs/benchmarks.md` compares the two.
//!
//! Each node `i` receives from node `i - THREADS` (the oracle for the first nodes), in a
//! random order of keys, in messages of `BATCH` entries, so both the sender's reads and the
//! receiver's merges land at random places in the stores, as a reconciliation with random
//! peers does. But a node receives all its versions before the next node receives any, so
//! the store being filled stays in the caches and its pages in the TLB. The simulator's nodes
//! take turns message by message instead: `INTERLEAVE=1` does that (receiving from the
//! oracle), and on dev-2c it costs about twice the CPU at the burst's message size
//! (docs/benchmarks.md, "Session 21").
//!
//! Receivers merge as the simulator's nodes do (`Node::merge_entries`): under one
//! [`gossipkv_core::store::MergeRun`], each window of 16 keys read ahead (`warm`) before it
//! merges. What a node does besides (its clock's receive check, rumors, origin logs, the
//! simulator's copy count) is left out. (Until session 23 they merged version by version, `Store::merge_hashed`, which
//! takes the shard lock for each: 16% more CPU; docs/benchmarks.md, "Session 23".)
//!
//! `STORE=flat` (with `INTERLEAVE=1`) gives the receivers a layout experiment instead of the
//! product's store: [`gossipkv_bench::flat::FlatStore`], one table of 64-byte slots
//! addressed by key hash, with no index and no leaf blocks (`FLAT_SLOTS_LOG2`: its starting
//! size, 16 slots by default; 17 presizes it for 100,000 keys, so that it never grows).
//!
//! Settings come from the environment: `NODES` (1,000), `KEYS` (100,000), `THREADS` (2),
//! `BATCH` (100), `SEED` (1), `INTERLEAVE` (0), `STORE` (`product` or `flat`). Run with
//! `/usr/bin/time -v` for CPU time and peak RSS.

use std::time::Instant;

use bytes::Bytes;
use gossipkv_bench::flat::FlatStore;
use gossipkv_core::Store;
use gossipkv_core::StoreConfig;
use gossipkv_core::digest::{TreeShape, key_hash, version_hash};
use gossipkv_core::gossip::wire::{self, Head, Writer};
use gossipkv_core::gossip::{Body, EntryList, Message};
use gossipkv_core::lww::VersionRef;
use gossipkv_core::store::MergeRun;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The whole number in environment variable `name`, or `default` if it is unset.
fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| refuse(&format!("{name} must be a whole number, not {v:?}"))),
        Err(_) => default,
    }
}

/// Exits with a usage error (status 2).
fn refuse(why: &str) -> ! {
    eprintln!("burst_floor: {why}");
    std::process::exit(2)
}

/// SplitMix64: the key, value and order generator (deterministic per seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        gossipkv_core::digest::mix(self.0)
    }
}

fn store_cfg() -> StoreConfig {
    // the simulator's store: one shard, the default tree of 4,096 leaves
    StoreConfig { shards_log2: 0, tree: TreeShape::new(3), max_concurrent: 16 }
}

/// Keys a receiver reads ahead before merging them (`WARM` in the gossip node).
const WARM: usize = 16;

/// A receiving replica: the product's store or the layout experiment.
trait Receiver: Send {
    /// What merges a message: holds the replica (and, for the store, its shard lock).
    type Run<'a>: Merging
    where
        Self: 'a;

    /// An empty replica (`slots_log2`: the flat table's starting size; the store ignores it).
    fn empty(slots_log2: u32) -> Self;

    /// Starts merging a message.
    fn run(&mut self) -> Self::Run<'_>;

    /// Whether it holds exactly the oracle's versions.
    fn equals(&self, oracle: &Store) -> bool;

    /// Merges a decoded message as the simulator's nodes do: windows of [`WARM`] keys, each
    /// read ahead before it merges (but a message shorter than a window). How many versions
    /// changed the replica.
    fn merge_all(&mut self, entries: &EntryList) -> u64 {
        let mut applied = 0;
        let mut run = self.run();
        let hashed: Vec<_> = entries.iter().map(|(key, v)| (key_hash(key), key, v)).collect();
        for (w, window) in hashed.chunks(WARM).enumerate() {
            if w > 0 || window.len() == WARM {
                for &(kh, key, _) in window {
                    run.warm(kh, key);
                }
            }
            for &(kh, key, v) in window {
                applied += u64::from(run.merge(kh, version_hash(kh, v), key, v));
            }
        }
        applied
    }
}

/// One message's merges into a replica.
trait Merging {
    /// Reads what merging `key` will touch first.
    fn warm(&mut self, kh: u64, key: &[u8]);
    /// Joins `v` into `key`; whether the replica changed.
    fn merge(&mut self, kh: u64, vh: u64, key: &[u8], v: VersionRef<'_>) -> bool;
}

impl Merging for MergeRun<'_> {
    fn warm(&mut self, kh: u64, key: &[u8]) {
        MergeRun::warm(self, kh, key);
    }

    fn merge(&mut self, kh: u64, vh: u64, key: &[u8], v: VersionRef<'_>) -> bool {
        self.merge_hashed(kh, vh, key, v).changed()
    }
}

impl Receiver for Store {
    type Run<'a> = MergeRun<'a>;

    fn empty(_slots_log2: u32) -> Self {
        Store::new(store_cfg())
    }

    fn run(&mut self) -> MergeRun<'_> {
        self.merge_run()
    }

    fn equals(&self, oracle: &Store) -> bool {
        Store::equals(self, oracle)
    }
}

impl Merging for &mut FlatStore {
    fn warm(&mut self, kh: u64, _key: &[u8]) {
        std::hint::black_box(FlatStore::warm(self, kh));
    }

    fn merge(&mut self, kh: u64, vh: u64, key: &[u8], v: VersionRef<'_>) -> bool {
        FlatStore::merge(self, kh, vh, key, v).unwrap_or_else(|e| refuse(&e.to_string()))
    }
}

impl Receiver for FlatStore {
    type Run<'a> = &'a mut FlatStore;

    fn empty(slots_log2: u32) -> Self {
        FlatStore::with_slots_log2(slots_log2)
    }

    fn run(&mut self) -> &mut FlatStore {
        self
    }

    fn equals(&self, oracle: &Store) -> bool {
        self.len() == oracle.keys_held()
            && self.root_hash() == oracle.root_hash()
            && self.for_each(|key, v| {
                oracle.with_key_by_hash(key_hash(key), |found| {
                    found.is_some_and(|(k, mut kept)| {
                        k == key && kept.next() == Some(v) && kept.next().is_none()
                    })
                })
            })
    }
}

/// Sends every key of `hashes` (in that order) from `from` to `to`, `batch` entries per
/// message: read and encode at the sender, decode and merge at the receiver.
fn transfer(from: &Store, to: &mut impl Receiver, hashes: &[u64], batch: usize) -> u64 {
    let mut applied = 0;
    for chunk in hashes.chunks(batch) {
        let mut body = Writer::with_capacity(64 * batch);
        let mut count = 0u64;
        for &kh in chunk {
            from.with_key_by_hash(kh, |found| {
                if let Some((key, kept)) = found {
                    for v in kept {
                        body.entry_ref(key, v);
                        count += 1;
                    }
                }
            });
        }
        let msg = wire::list_message(Head::base(7, 1, 1), &[], count, &body.buf);
        let Ok(Message { body: Body::Entries { entries }, .. }) = wire::decode(&Bytes::from(msg))
        else {
            panic!("an Entries message we encoded did not decode");
        };
        applied += to.merge_all(&entries);
    }
    applied
}

/// What the fill modes share: the settings, the oracle (one copy per thread: the read lock
/// each lookup takes is an atomic write, and two threads reading one store would bounce its
/// cache line between the cores), and each thread's order of keys.
#[derive(Clone, Copy)]
struct Fill<'a> {
    nodes: usize,
    keys: usize,
    threads: usize,
    batch: usize,
    oracles: &'a [Store],
    orders: &'a [Vec<u64>],
    /// `FLAT_SLOTS_LOG2`: the flat table's starting size (it does not grow below it).
    slots_log2: u32,
}

/// Runs `fill(t)` on each of `threads` threads; each returns the stores of its nodes.
fn on_threads<R: Send>(threads: usize, fill: impl Fn(usize) -> Vec<R> + Sync) -> Vec<Vec<R>> {
    std::thread::scope(|s| {
        let fill = &fill;
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || fill(t))).collect();
        handles.into_iter().map(|h| h.join().expect("a fill thread panicked")).collect()
    })
}

/// Node `i`'s order of keys: its thread's order, rotated so that nodes do not share it.
fn rotation(order: &[u64], i: usize) -> (&[u64], &[u64]) {
    let (a, b) = order.split_at((i * 7919) % order.len().max(1));
    (b, a)
}

/// The default mode: node `i` lives on thread `i % threads` and receives every version, in
/// its own rotation of the thread's order, from the previous node of its thread (the oracle
/// for the first) before the next node receives any.
fn fill_one_after_another(f: &Fill<'_>) -> Vec<Vec<Store>> {
    let Fill { nodes, keys, threads, batch, oracles, orders, .. } = *f;
    on_threads(threads, |t| {
        let oracle = &oracles[t];
        let mut mine: Vec<Store> = Vec::new();
        for i in (t..nodes).step_by(threads) {
            let mut store = Store::new(store_cfg());
            let from = mine.last().unwrap_or(oracle);
            let (first, then) = rotation(&orders[t], i);
            let applied =
                transfer(from, &mut store, first, batch) + transfer(from, &mut store, then, batch);
            assert_eq!(applied, keys as u64, "node {i} applied {applied} versions");
            mine.push(store);
        }
        mine
    })
}

/// `INTERLEAVE=1`: every node receives from the oracle, one message at a time, the nodes of
/// a thread taking turns (node after node, message after message), so that consecutive merges
/// land in different stores, as they do in the simulator, whose nodes' work interleaves in
/// virtual time. The sender's reads hit the oracle (small, so cached): this mode measures
/// what the receivers' spread over the whole footprint costs.
fn fill_interleaved<R: Receiver>(f: &Fill<'_>) -> Vec<Vec<R>> {
    let Fill { nodes, keys, threads, batch, oracles, orders, slots_log2 } = *f;
    on_threads(threads, |t| {
        let oracle = &oracles[t];
        let ids: Vec<usize> = (t..nodes).step_by(threads).collect();
        let mut mine: Vec<R> = ids.iter().map(|_| R::empty(slots_log2)).collect();
        let mut applied = vec![0u64; ids.len()];
        for c in 0..keys.div_ceil(batch) {
            let (start, end) = (c * batch, ((c + 1) * batch).min(keys));
            for (n, store) in mine.iter_mut().enumerate() {
                // messages `c` of the node's rotation; the one message that straddles its
                // two parts goes as two
                let (first, then) = rotation(&orders[t], ids[n]);
                let cut = first.len();
                let a = &first[start.min(cut)..end.min(cut)];
                let b = &then[start.max(cut) - cut..end.max(cut) - cut];
                applied[n] += transfer(oracle, store, a, batch) + transfer(oracle, store, b, batch);
            }
        }
        for (n, &a) in applied.iter().enumerate() {
            assert_eq!(a, keys as u64, "node {} applied {a} versions", ids[n]);
        }
        mine
    })
}

/// Fills the replicas with `fill`, then checks each against the oracle (its thread's copy);
/// the fill's and the check's times, and how many replicas equal the oracle.
fn run<R: Receiver + Sync>(
    oracles: &[Store],
    started: Instant,
    fill: impl FnOnce() -> Vec<Vec<R>>,
) -> (std::time::Duration, std::time::Duration, usize) {
    let per_thread = fill();
    let filled = started.elapsed();
    let check = Instant::now();
    let equal: usize = std::thread::scope(|s| {
        let handles: Vec<_> = per_thread
            .iter()
            .zip(oracles)
            .map(|(mine, oracle)| {
                s.spawn(move || mine.iter().filter(|st| st.equals(oracle)).count())
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a check thread panicked")).sum()
    });
    (filled, check.elapsed(), equal)
}

fn main() {
    let nodes = setting("NODES", 1000);
    let keys = setting("KEYS", 100_000);
    let threads = setting("THREADS", 2).max(1);
    let batch = setting("BATCH", 100).max(1);
    let interleave = setting("INTERLEAVE", 0) != 0;
    let flat = match std::env::var("STORE").as_deref() {
        Ok("flat") => true,
        Ok("product") | Err(_) => false,
        Ok(other) => refuse(&format!("STORE must be product or flat, not {other}")),
    };
    if flat && !interleave {
        refuse("STORE=flat needs INTERLEAVE=1");
    }
    let slots_log2 = setting("FLAT_SLOTS_LOG2", 4);
    if !(4..=24).contains(&slots_log2) {
        refuse("FLAT_SLOTS_LOG2 must be 4 to 24 (at most 1 GiB of slots a replica)");
    }
    let mut rng = Rng(setting("SEED", 1) as u64);

    let started = Instant::now();
    let oracles: Vec<Store> = (0..threads).map(|_| Store::new(store_cfg())).collect();
    let mut hashes = Vec::with_capacity(keys);
    for i in 0..keys {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&rng.next().to_le_bytes());
        key[8..].copy_from_slice(&rng.next().to_le_bytes());
        let mut value = [0u8; 32];
        for c in value.chunks_mut(8) {
            c.copy_from_slice(&rng.next().to_le_bytes());
        }
        let kh = key_hash(&key);
        let v = VersionRef {
            ts: 1 << 20 | i as u64,
            origin: (i % nodes.max(1)) as u32,
            value: Some(&value),
        };
        for oracle in &oracles {
            oracle.merge_hashed(kh, version_hash(kh, v), &key, v);
        }
        hashes.push(kh);
    }
    let orders: Vec<Vec<u64>> = (0..threads)
        .map(|_| {
            let mut h = hashes.clone();
            for i in (1..h.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                h.swap(i, j);
            }
            h
        })
        .collect();
    let setup = started.elapsed();

    let fill = Instant::now();
    let (oracles, orders) = (&oracles, &orders);
    let slots_log2 = slots_log2 as u32;
    let f = Fill { nodes, keys, threads, batch, oracles, orders, slots_log2 };
    let (fill, check, equal) = match (flat, interleave) {
        (false, false) => run(oracles, fill, || fill_one_after_another(&f)),
        (false, true) => run(oracles, fill, || fill_interleaved::<Store>(&f)),
        // (`STORE=flat` without `INTERLEAVE=1` was refused above)
        (true, _) => run(oracles, fill, || fill_interleaved::<FlatStore>(&f)),
    };
    assert_eq!(equal, nodes, "every node must equal the oracle");

    println!(
        "burst_floor nodes={nodes} keys={keys} threads={threads} batch={batch} interleave={interleave} flat={flat} setup_ms={} fill_ms={} check_ms={} total_ms={}",
        setup.as_millis(),
        fill.as_millis(),
        check.as_millis(),
        started.elapsed().as_millis()
    );
}
