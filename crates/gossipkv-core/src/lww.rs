//! **The one place Last-Write-Wins is decided.**
//!
//! A [`Version`] of a key is `(timestamp, origin, value | tombstone)`. One total order ranks
//! every pair of versions, and every replica uses only [`rank`] (through [`beats`]) to decide:
//!
//! 1. the higher timestamp wins;
//! 2. on equal timestamps the lexicographically smaller value wins (byte order, which equals
//!    code-point order for UTF-8), and a tombstone counts as smaller than every value, so a
//!    delete wins a tie;
//! 3. on equal timestamp and value, the smaller origin node id wins, so replicas end up
//!    byte-identical and their digests agree.
//!
//! Versions that share a key's winning timestamp are *concurrent values* (the brief's
//! definition of concurrent writes). A key keeps the `N` best of them ([`ConcurrentSet`]);
//! "union, then keep the N best at the maximum timestamp" is a join (commutative, associative,
//! idempotent), which is what makes gossip order-insensitive. `tests/lww_laws.rs` proves it.

use std::cmp::Ordering;

use bytes::Bytes;

/// A logical timestamp: an HLC reading packed in a u64, or a Lamport counter.
pub type Timestamp = u64;

/// Identifies the node that issued a version.
pub type NodeId = u32;

/// One version of a key: who wrote what, when. `value == None` is a tombstone (a delete).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// Timestamp issued by the origin's clock.
    pub ts: Timestamp,
    /// The node that issued the write.
    pub origin: NodeId,
    /// The value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

impl Version {
    /// A version carrying a value.
    pub fn put(ts: Timestamp, origin: NodeId, value: impl Into<Bytes>) -> Self {
        Self { ts, origin, value: Some(value.into()) }
    }

    /// A tombstone (delete marker).
    pub fn tombstone(ts: Timestamp, origin: NodeId) -> Self {
        Self { ts, origin, value: None }
    }

    /// Whether this version is a delete.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// A borrowed view of this version.
    pub fn as_ref(&self) -> VersionRef<'_> {
        VersionRef { ts: self.ts, origin: self.origin, value: self.value.as_deref() }
    }
}

/// A borrowed version, as stored in the replica store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRef<'a> {
    /// Timestamp issued by the origin's clock.
    pub ts: Timestamp,
    /// The node that issued the write.
    pub origin: NodeId,
    /// The value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
}

impl VersionRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> Version {
        Version { ts: self.ts, origin: self.origin, value: self.value.map(Bytes::copy_from_slice) }
    }
}

/// The total LWW order, best first: `rank(a, b) == Less` means `a` beats `b`.
///
/// Higher timestamp first; then tombstone before any value; then smaller value bytes; then
/// smaller origin. `Equal` only for identical versions (duplicates).
#[inline]
pub fn rank(a: VersionRef<'_>, b: VersionRef<'_>) -> Ordering {
    b.ts.cmp(&a.ts)
        // `None < Some(_)` is exactly "a tombstone is smaller than every value", and byte
        // slices compare lexicographically.
        .then_with(|| a.value.cmp(&b.value))
        .then_with(|| a.origin.cmp(&b.origin))
}

/// Whether `a` strictly beats `b` under the LWW order.
#[inline]
pub fn beats(a: VersionRef<'_>, b: VersionRef<'_>) -> bool {
    rank(a, b) == Ordering::Less
}

/// The versions a key keeps: every version at the key's highest timestamp, best first,
/// bounded to the `limit` best. `versions[0]` is the winner.
///
/// This is a value type used by tests, the simulator's oracle and the wire; the store keeps
/// an equivalent but more compact layout and is checked against this one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConcurrentSet {
    versions: Vec<Version>,
}

/// What merging one version into a key did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The key had no version before; the incoming one is now the winner.
    Inserted,
    /// The incoming version has a higher timestamp; it replaced every kept version.
    Replaced,
    /// The incoming version shares the winning timestamp and was kept as a concurrent value
    /// (possibly becoming the new winner, possibly evicting the worst one past the limit).
    Concurrent,
    /// Nothing changed: older timestamp, a duplicate, or worse than the `limit` kept ones.
    Ignored,
}

impl MergeOutcome {
    /// Whether the merge changed the key's state.
    pub fn changed(self) -> bool {
        !matches!(self, MergeOutcome::Ignored)
    }
}

/// Decides how `incoming` joins a key whose kept versions are `kept` (best first, all at one
/// timestamp, at most `limit`). Returns the outcome and, for [`MergeOutcome::Concurrent`], the
/// index at which to insert. This is the single decision both the store and
/// [`ConcurrentSet`] use.
#[inline]
pub fn decide<'a>(
    kept: impl ExactSizeIterator<Item = VersionRef<'a>>,
    incoming: VersionRef<'_>,
    limit: usize,
) -> (MergeOutcome, usize) {
    let len = kept.len();
    let mut pos = len;
    for (i, v) in kept.enumerate() {
        if i == 0 {
            match incoming.ts.cmp(&v.ts) {
                Ordering::Greater => return (MergeOutcome::Replaced, 0),
                Ordering::Less => return (MergeOutcome::Ignored, 0),
                Ordering::Equal => {}
            }
        }
        match rank(incoming, v) {
            Ordering::Equal => return (MergeOutcome::Ignored, 0),
            Ordering::Less => {
                pos = i;
                break;
            }
            Ordering::Greater => {}
        }
    }
    if len == 0 {
        (MergeOutcome::Inserted, 0)
    } else if pos >= limit.max(1) {
        (MergeOutcome::Ignored, 0)
    } else {
        (MergeOutcome::Concurrent, pos)
    }
}

impl ConcurrentSet {
    /// An empty set (the key was never written).
    pub fn new() -> Self {
        Self::default()
    }

    /// The kept versions, winner first.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// The winning version, if any.
    pub fn winner(&self) -> Option<&Version> {
        self.versions.first()
    }

    /// Joins one version in, keeping at most `limit` concurrent versions.
    pub fn merge(&mut self, incoming: Version, limit: usize) -> MergeOutcome {
        let (outcome, pos) =
            decide(self.versions.iter().map(Version::as_ref), incoming.as_ref(), limit);
        match outcome {
            MergeOutcome::Inserted => self.versions.push(incoming),
            MergeOutcome::Replaced => {
                self.versions.clear();
                self.versions.push(incoming);
            }
            MergeOutcome::Concurrent => {
                self.versions.insert(pos, incoming);
                self.versions.truncate(limit.max(1));
            }
            MergeOutcome::Ignored => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts: u64, origin: u32, value: &str) -> Version {
        Version::put(ts, origin, value.as_bytes().to_vec())
    }

    #[test]
    fn higher_timestamp_wins_regardless_of_value() {
        assert!(beats(v(2, 9, "zzz").as_ref(), v(1, 0, "aaa").as_ref()));
        assert!(!beats(v(1, 0, "aaa").as_ref(), v(2, 9, "zzz").as_ref()));
    }

    #[test]
    fn tie_smaller_value_wins_by_bytes() {
        assert!(beats(v(5, 2, "apple").as_ref(), v(5, 1, "banana").as_ref()));
        // a prefix is smaller than its extension
        assert!(beats(v(5, 2, "ab").as_ref(), v(5, 1, "abc").as_ref()));
        // byte order: 'B' (0x42) < 'a' (0x61)
        assert!(beats(v(5, 2, "B").as_ref(), v(5, 1, "a").as_ref()));
        // empty value is the smallest value, but a tombstone is smaller still
        assert!(beats(v(5, 2, "").as_ref(), v(5, 1, "a").as_ref()));
        assert!(beats(Version::tombstone(5, 9).as_ref(), v(5, 1, "").as_ref()));
    }

    #[test]
    fn tie_same_value_smaller_origin_wins() {
        assert!(beats(v(5, 1, "x").as_ref(), v(5, 2, "x").as_ref()));
        assert_eq!(rank(v(5, 1, "x").as_ref(), v(5, 1, "x").as_ref()), Ordering::Equal);
    }

    #[test]
    fn set_keeps_only_the_max_timestamp_best_first_and_bounded() {
        let mut s = ConcurrentSet::new();
        assert_eq!(s.merge(v(3, 1, "m"), 2), MergeOutcome::Inserted);
        assert_eq!(s.merge(v(2, 1, "a"), 2), MergeOutcome::Ignored);
        assert_eq!(s.merge(v(3, 2, "c"), 2), MergeOutcome::Concurrent);
        assert_eq!(s.winner().map(|w| w.origin), Some(2));
        assert_eq!(s.merge(v(3, 3, "z"), 2), MergeOutcome::Ignored, "worse than the 2 kept");
        assert_eq!(s.merge(v(3, 3, "a"), 2), MergeOutcome::Concurrent);
        let vals: Vec<_> = s.versions().iter().map(|x| x.value.clone()).collect();
        assert_eq!(vals, vec![Some(Bytes::from("a")), Some(Bytes::from("c"))]);
        assert_eq!(s.merge(v(3, 3, "a"), 2), MergeOutcome::Ignored, "duplicate");
        assert_eq!(s.merge(v(4, 0, "q"), 2), MergeOutcome::Replaced);
        assert_eq!(s.versions().len(), 1);
    }
}
