//! The convergence oracle: the LWW join of every write that survives, and the checks of every
//! node against it.
//!
//! Every version a client write returns is merged into one [`Store`] (same `max_concurrent`
//! and tree as the nodes), so the oracle's kept versions per key are exactly the join.
//!
//! **Lost writes.** A node that crashes loses its memory; a version that no live node holds
//! any more is gone for good, and the cluster cannot be expected to converge to it. The oracle
//! tracks this exactly, without guessing:
//! - each surviving write has a *witness*: a live node whose store covers it (holds it, or holds
//!   a strictly newer version of the key, which makes the write irrelevant to the join while
//!   that node lives). A fresh write's witness is its origin.
//! - when a node crashes, every write it witnessed looks for another live witness (a lookup per
//!   node until one is found); a write with none is marked lost and leaves the join.
//! - a lost write that a node receives later (it was in flight when its last holder crashed)
//!   is revived, with the receiver as witness.
//!
//! The join of the surviving writes is then exactly the join of what the live nodes hold plus
//! what is still in flight, which is what a correct protocol converges to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gossipkv_core::digest::{key_hash, version_hash};
use gossipkv_core::lww::VersionRef;
use gossipkv_core::{Replica, Store, StoreConfig, Version};
use hashbrown::HashMap;
use serde::Serialize;

use crate::workload::key_bytes;

/// Every key of the key space, stored flat.
#[derive(Debug)]
pub struct KeySpace {
    size: usize,
    buf: Vec<u8>,
}

impl KeySpace {
    /// Keys `0..n` of `size` bytes each.
    pub fn new(n: usize, size: usize) -> Self {
        let mut buf = Vec::with_capacity(n * size);
        let mut k = Vec::new();
        for i in 0..n {
            key_bytes(i, size, &mut k);
            buf.extend_from_slice(&k);
        }
        Self { size, buf }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.buf.len().checked_div(self.size).unwrap_or(0)
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Key `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.buf[i * self.size..(i + 1) * self.size]
    }
}

#[derive(Debug)]
struct Issued {
    key: u32,
    kh: u64,
    vh: u32,
    version: Version,
    lost: bool,
    witness: u32,
}

/// One version as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShownVersion {
    /// Timestamp.
    pub ts: u64,
    /// Origin node id.
    pub origin: u32,
    /// Value (lossy UTF-8), or `null` for a tombstone.
    pub value: Option<String>,
}

impl ShownVersion {
    fn of(v: &Version) -> Self {
        Self {
            ts: v.ts,
            origin: v.origin,
            value: v.value.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
        }
    }
}

/// A node whose state differs from the oracle's at one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Node index.
    pub node: usize,
    /// The key (lossy UTF-8).
    pub key: String,
    /// The oracle's kept versions, winner first.
    pub expected: Vec<ShownVersion>,
    /// The node's kept versions, winner first.
    pub actual: Vec<ShownVersion>,
}

/// Result of the key-by-key check of every node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Nodes (live or down) whose state differs from the oracle's at some key.
    pub mismatched_nodes: usize,
    /// `(node, key)` pairs that differ.
    pub stale_pairs: u64,
    /// Up to five examples.
    pub examples: Vec<Mismatch>,
}

/// The oracle.
#[derive(Debug)]
pub struct Oracle {
    cfg: StoreConfig,
    store: Store,
    ops: Vec<Issued>,
    lost: HashMap<(u64, u32), Vec<u32>>,
    dirty: bool,
    lost_events: u64,
    revived: u64,
    /// Tombstones older than this are purged (the nodes' grace period); 0 = never.
    cutoff: u64,
}

impl Oracle {
    /// An empty oracle whose store has the nodes' configuration.
    pub fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            store: Store::new(cfg),
            ops: Vec::new(),
            lost: HashMap::new(),
            dirty: false,
            lost_events: 0,
            revived: 0,
            cutoff: 0,
        }
    }

    /// Records a client write issued at node `origin`.
    pub fn record(&mut self, key: &[u8], key_index: u32, v: Version, origin: u32) {
        let kh = key_hash(key);
        let vh = version_hash(kh, v.as_ref()) as u32;
        self.store.merge(key, v.as_ref());
        self.ops.push(Issued { key: key_index, kh, vh, version: v, lost: false, witness: origin });
    }

    /// Writes recorded.
    pub fn ops(&self) -> usize {
        self.ops.len()
    }

    /// Whether some write is lost now (so receptions may revive it: they must then be
    /// reported, in order, to [`Oracle::on_reception`]).
    pub fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Writes currently lost.
    pub fn lost_now(&self) -> usize {
        self.ops.iter().filter(|o| o.lost).count()
    }

    /// Times a write was found lost, and times a lost write was revived.
    pub fn lost_counts(&self) -> (u64, u64) {
        (self.lost_events, self.revived)
    }

    /// Node `crashed` is about to lose its memory. `live[j]` is node `j`'s replica if it is up
    /// (the crashing node included; it is skipped).
    pub fn on_crash(&mut self, crashed: usize, live: &[Option<&Replica>]) {
        let n = live.len();
        for (i, op) in self.ops.iter_mut().enumerate() {
            if op.lost || op.witness as usize != crashed {
                continue;
            }
            let found = (1..n)
                .map(|d| (crashed + d) % n)
                .find(|&j| live[j].is_some_and(|r| covers(r.store(), op.kh, op.version.as_ref())));
            match found {
                Some(j) => op.witness = j as u32,
                None => {
                    op.lost = true;
                    self.lost_events += 1;
                    self.lost.entry((op.kh, op.vh)).or_default().push(i as u32);
                    self.dirty = true;
                }
            }
        }
    }

    /// Node `node` received the version `(kh, vh)`: revives it if it was lost.
    pub fn on_reception(&mut self, kh: u64, vh: u32, node: usize) {
        if self.lost.is_empty() {
            return;
        }
        if let Some(ids) = self.lost.remove(&(kh, vh)) {
            for i in ids {
                let op = &mut self.ops[i as usize];
                op.lost = false;
                op.witness = node as u32;
                self.revived += 1;
            }
            self.dirty = true;
        }
    }

    /// The join of the surviving writes, rebuilt if writes were lost or revived since.
    pub fn store(&mut self, keys: &KeySpace) -> &Store {
        if self.dirty {
            let s = Store::new(self.cfg);
            for op in self.ops.iter().filter(|o| !o.lost) {
                s.merge(keys.get(op.key as usize), op.version.as_ref());
            }
            s.purge_tombstones(self.cutoff);
            self.store = s;
            self.dirty = false;
        }
        &self.store
    }

    /// Purges tombstones older than `cutoff` from the expected state, as nodes do after the
    /// grace period. A node may still hold such a tombstone (it purges later): the check
    /// counts that as equal (the key reads as deleted either way); a value is never excused.
    pub fn set_purge_cutoff(&mut self, cutoff: u64) {
        if cutoff > self.cutoff {
            self.cutoff = cutoff;
            self.store.purge_tombstones(cutoff);
        }
    }

    /// The oracle's kept versions of every key in `sample`.
    pub fn expected(&mut self, keys: &KeySpace, sample: &[u32]) -> Vec<Vec<Version>> {
        let store = self.store(keys);
        sample.iter().map(|&k| store.versions(keys.get(k as usize))).collect()
    }

    /// Key-by-key, concurrent value by concurrent value check of every node. `nodes[j]` is
    /// node `j`'s replica, or `None` if it is down (a down node holds nothing). Runs on up to
    /// `threads` threads; the result does not depend on the thread count.
    pub fn check_all(
        &mut self,
        keys: &KeySpace,
        nodes: &[Option<&Replica>],
        threads: usize,
    ) -> CheckResult {
        let all: Vec<u32> = (0..keys.len() as u32).collect();
        let lenient = self.cutoff > 0;
        let expected = self.expected(keys, &all);
        let oracle = &self.store;
        let threads = threads.clamp(1, nodes.len().max(1));
        // each thread takes the next node not yet taken (with halves fixed in advance, the
        // thread whose nodes took less time waited for the other); the results are put back
        // in node order, so they do not depend on who checked what
        let next = AtomicUsize::new(0);
        let mut per_node: Vec<(usize, (u64, Option<Mismatch>))> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (expected, next) = (&expected, &next);
                    s.spawn(move || {
                        let mut done = Vec::new();
                        loop {
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            let Some(r) = nodes.get(j) else { break };
                            // fast path: a store equal to the oracle's (keys and values
                            // compared byte for byte) has no stale key; any other node is
                            // checked key by key (which also finds the example)
                            let result = if r.is_some_and(|r| r.store().equals(oracle)) {
                                (0, None)
                            } else {
                                check_node(j, *r, keys, expected, lenient)
                            };
                            done.push((j, result));
                        }
                        done
                    })
                })
                .collect();
            // (a panic in a check is the run's, not a node left out of the count)
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        per_node.sort_unstable_by_key(|&(j, _)| j);
        let mut out = CheckResult::default();
        for (_, (stale, example)) in per_node {
            if stale > 0 {
                out.mismatched_nodes += 1;
                out.stale_pairs += stale;
            }
            if let Some(m) = example
                && out.examples.len() < 5
            {
                out.examples.push(m);
            }
        }
        out
    }

    /// The final kept versions of every key, for the copy accounting: `(key hash, low 32 bits
    /// of the version hash)` of each, in key order.
    pub fn final_versions(&mut self, keys: &KeySpace) -> Vec<(u64, u32)> {
        let store = self.store(keys);
        let mut out = Vec::new();
        for i in 0..keys.len() {
            let key = keys.get(i);
            let kh = key_hash(key);
            store.with_versions_by_hash(kh, |it| {
                for v in it {
                    out.push((kh, version_hash(kh, v) as u32));
                }
            });
        }
        out
    }

    /// Keys whose final state keeps more than one concurrent value.
    pub fn keys_with_concurrent_values(&mut self, keys: &KeySpace) -> usize {
        let store = self.store(keys);
        (0..keys.len())
            .filter(|&i| store.with_versions_by_hash(key_hash(keys.get(i)), |it| it.count() > 1))
            .count()
    }

    /// A sorted snapshot of the oracle (tests).
    pub fn snapshot(&mut self, keys: &KeySpace) -> BTreeMap<Bytes, Vec<Version>> {
        self.store(keys).snapshot()
    }
}

/// Whether `store` covers version `v` of the key hashed `kh`: holds it, or holds a strictly
/// newer timestamp for the key.
fn covers(store: &Store, kh: u64, v: VersionRef<'_>) -> bool {
    store.with_versions_by_hash(kh, |mut it| match it.next() {
        None => false,
        Some(first) if first.ts > v.ts => true,
        Some(first) if first.ts < v.ts => false,
        Some(first) => first == v || Iterator::any(&mut it, |x| x == v),
    })
}

fn check_node(
    node: usize,
    replica: Option<&Replica>,
    keys: &KeySpace,
    expected: &[Vec<Version>],
    purged_tombstones_equal_absent: bool,
) -> (u64, Option<Mismatch>) {
    let mut stale = 0;
    let mut example = None;
    for (i, exp) in expected.iter().enumerate() {
        let key = keys.get(i);
        let ok = match replica {
            Some(r) => {
                r.store().versions_equal(key, exp)
                    || (purged_tombstones_equal_absent
                        && exp.is_empty()
                        && r.store().versions(key).iter().all(|v| v.value.is_none()))
            }
            None => exp.is_empty(),
        };
        if !ok {
            stale += 1;
            if example.is_none() {
                let actual = replica.map(|r| r.store().versions(key)).unwrap_or_default();
                example = Some(Mismatch {
                    node,
                    key: String::from_utf8_lossy(key).into_owned(),
                    expected: exp.iter().map(ShownVersion::of).collect(),
                    actual: actual.iter().map(ShownVersion::of).collect(),
                });
            }
        }
    }
    (stale, example)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipkv_core::ClockKind;
    use gossipkv_core::digest::TreeShape;

    fn cfg() -> StoreConfig {
        StoreConfig { shards_log2: 0, tree: TreeShape::new(1), max_concurrent: 4 }
    }

    #[test]
    fn a_write_held_by_nobody_alive_is_lost_until_received_again() {
        let keys = KeySpace::new(4, 4);
        let mut o = Oracle::new(cfg());
        let a = Replica::new(0, ClockKind::Hlc, cfg());
        let b = Replica::new(1, ClockKind::Hlc, cfg());
        let v = a.put(keys.get(1), &b"x"[..], 10);
        o.record(keys.get(1), 1, v.clone(), 0);
        let with = o.store(&keys).root_hash();
        // node 0 crashes before anyone got the write: lost
        o.on_crash(0, &[Some(&a), Some(&b)]);
        assert_eq!(o.lost_now(), 1);
        assert_eq!(o.store(&keys).root_hash(), 0);
        // it was in flight: node 1 receives it, the write is back
        let kh = key_hash(keys.get(1));
        b.merge_remote(keys.get(1), v.as_ref(), 11);
        o.on_reception(kh, version_hash(kh, v.as_ref()) as u32, 1);
        assert_eq!(o.lost_now(), 0);
        assert_eq!(o.store(&keys).root_hash(), with);
        // node 1 holds it now: node 1's crash with node 0 back (empty) loses it again
        let a2 = Replica::new(0, ClockKind::Hlc, cfg());
        o.on_crash(1, &[Some(&a2), Some(&b)]);
        assert_eq!(o.lost_now(), 1);
        let r = o.check_all(&keys, &[Some(&a2), None], 2);
        assert_eq!(r, CheckResult::default());
    }

    #[test]
    fn a_newer_version_elsewhere_covers_an_older_write() {
        let keys = KeySpace::new(2, 4);
        let mut o = Oracle::new(cfg());
        let a = Replica::new(0, ClockKind::Hlc, cfg());
        let b = Replica::new(1, ClockKind::Hlc, cfg());
        let old = a.put(keys.get(0), &b"old"[..], 10);
        o.record(keys.get(0), 0, old, 0);
        let new = b.put(keys.get(0), &b"new"[..], 20);
        o.record(keys.get(0), 0, new, 1);
        o.on_crash(0, &[Some(&a), Some(&b)]);
        assert_eq!(o.lost_now(), 0, "covered by node 1's newer version");
        let r = o.check_all(&keys, &[Some(&a), Some(&b)], 1);
        assert_eq!(r.mismatched_nodes, 1);
        assert_eq!(r.examples[0].node, 0);
        assert_eq!(r.examples[0].expected[0].value.as_deref(), Some("new"));
    }
}
