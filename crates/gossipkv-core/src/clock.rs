//! Logical clocks that issue LWW timestamps. Physical time is always an *input*
//! (`phys_ms`), never read here, so the simulator can skew it per node.
//!
//! Both clocks keep one invariant (Lamport's receive rule): every timestamp a node issues is
//! greater than every timestamp it has issued or observed. A PUT is therefore visible at its
//! own node at once and beats every version that node had seen; without the rule the busiest
//! writer would win instead of the latest.
//!
//! - [`ClockKind::Hlc`] (default): a hybrid logical clock packed in a u64, 48 bits of
//!   milliseconds and 16 logical bits. Issuing is `max(last + 1, phys_ms << 16)`: when the
//!   logical half overflows it carries into the millisecond half, which keeps it monotonic.
//! - [`ClockKind::Lamport`]: a plain counter, `last + 1`.
//!
//! **Drift.** A remote HLC timestamp more than `max_drift_ms` (default 500 ms, as CockroachDB
//! and uhlc) ahead of our physical time is counted ([`Clock::drift_events`]). The version is
//! still merged and the clock still advances past it: refusing it would make replicas disagree
//! about the LWW join (the remote node and anyone who accepted it keep it forever), and not
//! advancing would let that far-future version shadow this node's next PUTs. The count is the
//! operator's signal to fix the skewed node's clock; docs/clocks.md says more.
//!
//! All operations are lock-free (`AtomicU64` compare-and-swap), so many request threads and
//! the gossip driver can share one clock.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::lww::Timestamp;

/// Number of logical bits at the bottom of a packed HLC timestamp.
pub const HLC_LOGICAL_BITS: u32 = 16;

/// Default maximum tolerated clock drift for remote HLC timestamps.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 500;

/// Which clock a node uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClockKind {
    /// Hybrid logical clock (48-bit ms, 16-bit logical).
    #[default]
    Hlc,
    /// Lamport counter.
    Lamport,
}

/// Remote HLC timestamps further ahead of the local physical clock than this are refused
/// (docs/clocks.md): one hour.
pub const MAX_AHEAD_MS: u64 = 3_600_000;

/// Remote Lamport timestamps further above the local counter than this are refused.
pub const MAX_LAMPORT_JUMP: u64 = 1 << 40;

/// Packs a physical millisecond reading and a logical counter into an HLC timestamp.
pub fn hlc_pack(ms: u64, logical: u16) -> Timestamp {
    (ms << HLC_LOGICAL_BITS) | u64::from(logical)
}

/// The millisecond part of a packed HLC timestamp.
pub fn hlc_millis(ts: Timestamp) -> u64 {
    ts >> HLC_LOGICAL_BITS
}

/// A node's timestamp source.
#[derive(Debug)]
pub struct Clock {
    kind: ClockKind,
    last: AtomicU64,
    max_drift_ms: u64,
    drift_events: AtomicU64,
    refused: AtomicU64,
}

impl Clock {
    /// A clock of the given kind that starts at zero.
    pub fn new(kind: ClockKind) -> Self {
        Self::with_drift(kind, DEFAULT_MAX_DRIFT_MS)
    }

    /// A clock with a custom maximum drift (HLC only).
    pub fn with_drift(kind: ClockKind, max_drift_ms: u64) -> Self {
        Self {
            kind,
            last: AtomicU64::new(0),
            max_drift_ms,
            drift_events: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The clock kind.
    pub fn kind(&self) -> ClockKind {
        self.kind
    }

    /// Issues a fresh timestamp, greater than every one issued or observed so far.
    pub fn issue(&self, phys_ms: u64) -> Timestamp {
        let floor = match self.kind {
            ClockKind::Hlc => hlc_pack(phys_ms, 0),
            ClockKind::Lamport => 0,
        };
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(last.saturating_add(1).max(floor))
            })
            .unwrap_or_else(|x| x); // the closure never returns None
        prev.saturating_add(1).max(floor)
    }

    /// Observes a remote timestamp (Lamport's receive rule). Returns `false` and counts a
    /// drift event when an HLC timestamp is more than `max_drift_ms` ahead of `phys_ms`.
    pub fn observe(&self, remote: Timestamp, phys_ms: u64) -> bool {
        // a read-modify-write only when it raises the clock: the clock only grows, so a
        // timestamp below what is read now stays below it, and most remote timestamps are
        // (an atomic read-modify-write per merged version waited for the merge's stores)
        if remote > self.last.load(Ordering::Acquire) {
            self.last.fetch_max(remote, Ordering::AcqRel);
        }
        let within = match self.kind {
            ClockKind::Hlc => hlc_millis(remote) <= phys_ms.saturating_add(self.max_drift_ms),
            ClockKind::Lamport => true,
        };
        if !within {
            self.drift_events.fetch_add(1, Ordering::Relaxed);
        }
        within
    }

    /// Whether a remote timestamp may be observed and its version merged at all. Refused:
    /// an HLC timestamp more than [`MAX_AHEAD_MS`] ahead of `phys_ms` (a clock an hour wrong,
    /// or a forged `u64::MAX` that would saturate every clock it reaches and make later local
    /// writes tie and lose), a Lamport timestamp more than [`MAX_LAMPORT_JUMP`] above ours.
    /// Refusals are counted. A refused HLC version becomes admissible once physical time has
    /// caught up, so replicas still converge then.
    pub fn admissible(&self, remote: Timestamp, phys_ms: u64) -> bool {
        let ok = match self.kind {
            ClockKind::Hlc => hlc_millis(remote) <= phys_ms.saturating_add(MAX_AHEAD_MS),
            ClockKind::Lamport => remote <= self.last().saturating_add(MAX_LAMPORT_JUMP),
        };
        if !ok {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Remote timestamps refused by [`Clock::admissible`].
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The highest timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last.load(Ordering::Acquire)
    }

    /// Raises the clock to at least `ts` without counting drift (used when restoring state).
    pub fn advance_to(&self, ts: Timestamp) {
        self.last.fetch_max(ts, Ordering::AcqRel);
    }

    /// How many remote timestamps were beyond the maximum drift.
    pub fn drift_events(&self) -> u64 {
        self.drift_events.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_follows_physical_time_and_stays_monotonic_when_it_stalls() {
        let c = Clock::new(ClockKind::Hlc);
        let a = c.issue(1000);
        assert_eq!(a, hlc_pack(1000, 0));
        let b = c.issue(1000);
        assert_eq!(b, hlc_pack(1000, 1));
        // physical time going backwards (NTP step) never makes the clock go back
        let d = c.issue(900);
        assert!(d > b);
        assert_eq!(c.issue(2000), hlc_pack(2000, 0));
    }

    #[test]
    fn logical_overflow_carries_into_millis() {
        let c = Clock::new(ClockKind::Hlc);
        c.advance_to(hlc_pack(7, u16::MAX));
        let t = c.issue(7);
        assert_eq!(t, hlc_pack(8, 0));
    }

    #[test]
    fn receive_rule_next_issue_beats_observed() {
        for kind in [ClockKind::Hlc, ClockKind::Lamport] {
            let c = Clock::new(kind);
            c.issue(10);
            let remote = hlc_pack(10_000, 42);
            c.observe(remote, 10);
            assert!(c.issue(10) > remote, "{kind:?}");
        }
    }

    #[test]
    fn drift_is_counted_only_beyond_the_bound() {
        let c = Clock::with_drift(ClockKind::Hlc, 500);
        assert!(c.observe(hlc_pack(1500, 0), 1000));
        assert_eq!(c.drift_events(), 0);
        assert!(!c.observe(hlc_pack(1501, 0), 1000));
        assert_eq!(c.drift_events(), 1);
        // the clock still moved past it
        assert!(c.issue(1000) > hlc_pack(1501, 0));
        // Lamport has no physical bound
        let l = Clock::new(ClockKind::Lamport);
        assert!(l.observe(u64::MAX / 2, 0));
        assert_eq!(l.drift_events(), 0);
    }
}
