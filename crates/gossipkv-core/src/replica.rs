//! A node's replica: its id, its clock and its store, so that every local write gets a
//! timestamp that beats everything the node has seen, and every remote version advances the
//! clock before it is merged (the receive rule). Request handlers and the gossip state machine
//! both go through this type; physical time is a parameter.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use crate::clock::{Clock, ClockKind};
use crate::digest::{key_hash, version_hash};
use crate::lww::{MergeOutcome, NodeId, Timestamp, Version, VersionRef};
use crate::store::{MergeRun, Store, StoreConfig};

/// One node's copy of the key space and its timestamp source.
#[derive(Debug)]
pub struct Replica {
    id: NodeId,
    clock: Clock,
    store: Store,
    /// False while a restarted node catches up (client writes are refused meanwhile).
    ready: AtomicBool,
}

impl Replica {
    /// An empty replica for node `id`.
    pub fn new(id: NodeId, clock: ClockKind, store: StoreConfig) -> Self {
        Self {
            id,
            clock: Clock::new(clock),
            store: Store::new(store),
            ready: AtomicBool::new(true),
        }
    }

    /// A replica with an explicit clock (e.g. a custom maximum drift).
    pub fn with_clock(id: NodeId, clock: Clock, store: StoreConfig) -> Self {
        Self { id, clock, store: Store::new(store), ready: AtomicBool::new(true) }
    }

    /// Whether client writes are accepted: false while a restarted node catches up, so its
    /// next writes get timestamps above the ones it issued before the crash.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sets readiness (the gossip node does, see `Node::gate_writes`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A local write from borrowed bytes (`Some(value)` for PUT, `None` for DEL) under a
    /// fresh timestamp, which it returns. The new version beats every version this node had
    /// seen, so it is the winner at once. The value is copied once, into the store.
    pub fn write(&self, key: &[u8], value: Option<&[u8]>, phys_ms: u64) -> Timestamp {
        self.write_hashed(key, value, phys_ms).0
    }

    /// [`Replica::write`], also returning the hashes the store keys the version by
    /// (`kh = digest::key_hash(key)`, `vh = digest::version_hash(kh, version)`), so that a
    /// caller naming the version (gossip's rumor id) need not hash it again.
    pub fn write_hashed(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        phys_ms: u64,
    ) -> (Timestamp, u64, u64) {
        let (v, kh, vh) = self.fresh(key, value, phys_ms);
        self.store.merge_hashed(kh, vh, key, v);
        (v.ts, kh, vh)
    }

    /// A new local version of `key` (a fresh timestamp) and its hashes.
    fn fresh<'v>(
        &self,
        key: &[u8],
        value: Option<&'v [u8]>,
        phys_ms: u64,
    ) -> (VersionRef<'v>, u64, u64) {
        let v = VersionRef { ts: self.clock.issue(phys_ms), origin: self.id, value };
        let kh = key_hash(key);
        (v, kh, version_hash(kh, v))
    }

    /// [`Replica::write_hashed`], first calling `before` with the value the key had here,
    /// atomically with the write ([`Store::merge_hashed_after`]).
    pub fn write_hashed_after<R>(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        phys_ms: u64,
        before: impl FnOnce(Option<&[u8]>) -> R,
    ) -> (Timestamp, u64, u64, R) {
        let (v, kh, vh) = self.fresh(key, value, phys_ms);
        let (_, r) = self.store.merge_hashed_after(kh, vh, key, v, before);
        (v.ts, kh, vh, r)
    }

    /// PUT: stores `value` under a fresh timestamp and returns the version written.
    pub fn put(&self, key: &[u8], value: impl Into<Bytes>, phys_ms: u64) -> Version {
        let value = value.into();
        let ts = self.write(key, Some(&value), phys_ms);
        Version { ts, origin: self.id, value: Some(value) }
    }

    /// DEL: writes a tombstone under a fresh timestamp. Returns the tombstone and whether the
    /// key had a live value here before.
    pub fn delete(&self, key: &[u8], phys_ms: u64) -> (Version, bool) {
        let existed = self.store.contains(key);
        let ts = self.write(key, None, phys_ms);
        (Version::tombstone(ts, self.id), existed)
    }

    /// GET: the winning value, `None` if absent or deleted.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.store.get(key)
    }

    /// The receive rule: whether a remote version with timestamp `ts` may be merged (the
    /// clock refuses some, [`Clock::admissible`]), after advancing the clock past it.
    fn receive(&self, ts: Timestamp, phys_ms: u64) -> bool {
        let ok = self.clock.admissible(ts, phys_ms);
        if ok {
            self.clock.observe(ts, phys_ms);
        }
        ok
    }

    /// Merges a version received from another node: observe its timestamp, then join it.
    /// A version whose timestamp the clock refuses ([`Clock::admissible`]) is not merged.
    pub fn merge_remote(&self, key: &[u8], v: VersionRef<'_>, phys_ms: u64) -> MergeOutcome {
        if !self.receive(v.ts, phys_ms) {
            return MergeOutcome::Ignored;
        }
        self.store.merge(key, v)
    }

    /// [`Replica::merge_remote`] (the same refusal of inadmissible timestamps) within a run
    /// of merges ([`Store::merge_run`] on this replica's store), with the key hash and version
    /// hash already computed (`kh = key_hash(key)`, `vh = version_hash(kh, v)`).
    pub fn merge_remote_in(
        &self,
        run: &mut MergeRun<'_>,
        (kh, vh): (u64, u64),
        key: &[u8],
        v: VersionRef<'_>,
        phys_ms: u64,
    ) -> MergeOutcome {
        if !self.receive(v.ts, phys_ms) {
            return MergeOutcome::Ignored;
        }
        run.merge_hashed(kh, vh, key, v)
    }

    /// The highest timestamp issued or observed here.
    pub fn last_timestamp(&self) -> Timestamp {
        self.clock.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_wins_locally_over_anything_seen() {
        for kind in [ClockKind::Hlc, ClockKind::Lamport] {
            let r = Replica::new(7, kind, StoreConfig::default());
            // a remote write from the future (beyond the drift bound, within the refusal one)
            let ahead = match kind {
                ClockKind::Hlc => crate::clock::hlc_pack(5 + 600_000, 9),
                ClockKind::Lamport => 1 << 30,
            };
            let remote = Version::put(ahead, 1, &b"remote"[..]);
            assert!(r.merge_remote(b"k", remote.as_ref(), 5).changed());
            let mine = r.put(b"k", &b"zzz-larger-value"[..], 5);
            assert!(mine.ts > remote.ts);
            assert_eq!(r.get(b"k").as_deref(), Some(&b"zzz-larger-value"[..]));
            let (_, existed) = r.delete(b"k", 5);
            assert!(existed);
            assert_eq!(r.get(b"k"), None);
        }
    }

    #[test]
    fn timestamps_beyond_the_refusal_bound_are_not_merged_nor_observed() {
        for kind in [ClockKind::Hlc, ClockKind::Lamport] {
            let r = Replica::new(7, kind, StoreConfig::default());
            let poison = Version::put(u64::MAX, 1, &b"poison"[..]);
            assert!(!r.merge_remote(b"k", poison.as_ref(), 5).changed());
            assert_eq!(r.get(b"k"), None);
            assert!(r.last_timestamp() < u64::MAX / 2);
            assert_eq!(r.clock().refused(), 1);
            let mine = r.put(b"k", &b"mine"[..], 5);
            assert_eq!(r.get(b"k").as_deref(), Some(&b"mine"[..]));
            assert!(mine.ts < u64::MAX);
        }
    }
}
