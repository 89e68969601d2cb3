//! What the workload did: every write it sent, to which node, when, and what came back.
//!
//! Values are unique per write and name their writer ([`ValueId`]), so a value read back at
//! the end says exactly which write it came from.

use std::fmt;

/// A key of the workload: one of the hot keys every client writes (conflicts), or a churn
/// key one client creates and later deletes (tombstones that only purging can bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u64);

const CHURN_BIT: u64 = 1 << 63;

impl KeyId {
    /// Hot key number `n` (`k{n}`).
    pub fn hot(n: u32) -> Self {
        Self(u64::from(n))
    }

    /// Churn key number `n` of client `client` (`c{client}-{n}`).
    pub fn churn(client: u16, n: u32) -> Self {
        Self(CHURN_BIT | u64::from(client) << 32 | u64::from(n))
    }

    /// Whether this is a churn key.
    pub fn is_churn(self) -> bool {
        self.0 & CHURN_BIT != 0
    }

    /// The key's bytes as sent to the server.
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_churn() {
            write!(f, "c{}-{}", (self.0 >> 32) as u16, self.0 as u32)
        } else {
            write!(f, "k{}", self.0)
        }
    }
}

/// Names the value one PUT wrote: its client and that client's write number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId {
    /// Client thread number.
    pub client: u16,
    /// The client's operation number.
    pub seq: u32,
}

impl ValueId {
    /// The value's bytes: 12 hex digits naming the write, padded with `.` to `size`.
    pub fn bytes(self, size: usize) -> Vec<u8> {
        let mut v = format!("{:04x}{:08x}", self.client, self.seq).into_bytes();
        if v.len() < size {
            v.resize(size, b'.');
        }
        v
    }

    /// Which write a value read back came from (`None`: not a value this harness wrote).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let head = std::str::from_utf8(bytes.get(..12)?).ok()?;
        let client = u16::from_str_radix(&head[..4], 16).ok()?;
        let seq = u32::from_str_radix(&head[4..], 16).ok()?;
        Some(Self { client, seq })
    }
}

/// What came of one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The node answered: for a PUT the timestamp it assigned; a DEL's timestamp is not
    /// returned (`None`).
    Acked {
        /// The LWW timestamp (PUT only).
        ts: Option<u64>,
    },
    /// Sent, but no answer (timeout, connection lost, node killed or paused): it may or may
    /// not take effect, now or later.
    Indeterminate,
}

/// One write the workload sent (writes refused before being applied, e.g. LOADING or a
/// refused connection, are counted but not kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The key written.
    pub key: KeyId,
    /// The value a PUT wrote; `None` for a DEL.
    pub put: Option<ValueId>,
    /// The node it was sent to (also the origin id of the version it made).
    pub node: u16,
    /// Wall-clock milliseconds just before the request was sent.
    pub invoked_ms: u64,
    /// Wall-clock milliseconds when the answer (or the failure) came back.
    pub done_ms: u64,
    /// What came of it.
    pub outcome: Outcome,
}

impl Op {
    /// Whether the node acknowledged it.
    pub fn acked(&self) -> bool {
        matches!(self.outcome, Outcome::Acked { .. })
    }

    /// The timestamp a PUT was acknowledged with.
    pub fn ts(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Acked { ts } => ts,
            Outcome::Indeterminate => None,
        }
    }
}

/// Counts of what the clients saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent (every attempt, retries included).
    pub attempts: u64,
    /// PUTs acknowledged with a timestamp.
    pub acked_puts: u64,
    /// DELs acknowledged.
    pub acked_dels: u64,
    /// Writes answered LOADING (a restarted node catching up): not applied, retried elsewhere.
    pub loading: u64,
    /// Connections refused or not established in time (node down or paused): not applied.
    pub refused: u64,
    /// Other error replies (not applied).
    pub errors: u64,
    /// Sent without an answer: may or may not have taken effect.
    pub indeterminate: u64,
    /// Operations given up after trying every node.
    pub gave_up: u64,
}

impl ClientStats {
    /// Adds another client's counts.
    pub fn add(&mut self, o: &ClientStats) {
        self.attempts += o.attempts;
        self.acked_puts += o.acked_puts;
        self.acked_dels += o.acked_dels;
        self.loading += o.loading;
        self.refused += o.refused;
        self.errors += o.errors;
        self.indeterminate += o.indeterminate;
        self.gave_up += o.gave_up;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        assert_eq!(KeyId::hot(7).name(), "k7");
        assert_eq!(KeyId::churn(3, 9).name(), "c3-9");
        assert!(KeyId::churn(0, 0).is_churn() && !KeyId::hot(0).is_churn());
        let v = ValueId { client: 0x12, seq: 0xdead_beef };
        let b = v.bytes(20);
        assert_eq!(b.len(), 20);
        assert_eq!(ValueId::parse(&b), Some(v));
        assert_eq!(ValueId::parse(&v.bytes(0)), Some(v));
        assert_eq!(ValueId::parse(b"hello"), None);
        assert_eq!(ValueId::parse(b"zzzzzzzzzzzz"), None);
    }
}
