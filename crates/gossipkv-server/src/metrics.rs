//! Counters of what the server did, kept as relaxed atomics so any task can bump them and a
//! metrics exporter (the node's Prometheus endpoint) or `INFO` can read them without locks.
//!
//! Besides the server-wide counters, every command has its own calls, error replies and a
//! latency histogram ([`CommandStats`]): the time from dispatch to the reply being in the
//! connection's write buffer (execution only, like Redis's `INFO commandstats`; not the
//! network round trip). Recording one call costs three relaxed atomic adds.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::cmd;

/// Upper bounds (inclusive, in nanoseconds) of the command latency histogram's buckets; a
/// last, implicit bucket takes everything slower. From 1 µs (a GET on a warm shard) to 100 ms.
pub const LATENCY_BUCKETS_NS: [u64; 13] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    100_000_000,
];

/// Calls, error replies and latency of one command.
#[derive(Debug, Default)]
struct CommandCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    nanos: AtomicU64,
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_NS.len() + 1],
}

/// A point-in-time copy of one command's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Lower-case command name (`"unknown"` for names the server does not know).
    pub name: &'static str,
    /// Times it ran (including runs answered with an error).
    pub calls: u64,
    /// Runs whose reply was an error (wrong arity, NOAUTH, LOADING, bad arguments...).
    pub errors: u64,
    /// Of those errors, the ones given before the command ran (wrong arity, NOAUTH,
    /// LOADING): Redis's `rejected_calls`.
    pub rejected: u64,
    /// Total execution time, nanoseconds.
    pub total_ns: u64,
    /// Runs per latency bucket, cumulative as Prometheus wants them: `le[i]` counts runs that
    /// took at most [`LATENCY_BUCKETS_NS`]`[i]`; the last entry equals `calls` (+Inf).
    pub le: [u64; LATENCY_BUCKETS_NS.len() + 1],
}

/// Server-wide counters. Shared as `Arc<Metrics>`; see [`Metrics::snapshot`].
#[derive(Debug)]
pub struct Metrics {
    connections_received: AtomicU64,
    connections_current: AtomicU64,
    connections_rejected: AtomicU64,
    commands_processed: AtomicU64,
    protocol_errors: AtomicU64,
    net_input_bytes: AtomicU64,
    net_output_bytes: AtomicU64,
    /// Indexed like `cmd::ALL`, plus one slot for unknown commands.
    per_command: Box<[CommandCounters]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connections_received: AtomicU64::new(0),
            connections_current: AtomicU64::new(0),
            connections_rejected: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            per_command: (0..=cmd::ALL.len()).map(|_| CommandCounters::default()).collect(),
        }
    }
}

/// A point-in-time copy of [`Metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Connections accepted since start (or the last reset), rejected ones excluded.
    pub connections_received: u64,
    /// Connections open now.
    pub connections_current: u64,
    /// Connections refused because `max_connections` were open.
    pub connections_rejected: u64,
    /// Requests executed (each command of a pipeline counts).
    pub commands_processed: u64,
    /// Connections closed for a protocol error.
    pub protocol_errors: u64,
    /// Bytes read from clients.
    pub net_input_bytes: u64,
    /// Bytes written to clients.
    pub net_output_bytes: u64,
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every counter (each individually atomic; the set is not one snapshot).
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            connections_received: self.connections_received.load(Relaxed),
            connections_current: self.connections_current.load(Relaxed),
            connections_rejected: self.connections_rejected.load(Relaxed),
            commands_processed: self.commands_processed.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            net_input_bytes: self.net_input_bytes.load(Relaxed),
            net_output_bytes: self.net_output_bytes.load(Relaxed),
        }
    }

    /// Every command's counters, in `COMMAND` order, then `"unknown"`; commands never called
    /// included (with zeros), so a scrape always shows the same series.
    pub fn commands_snapshot(&self) -> Vec<CommandStats> {
        self.per_command
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut le = [0; LATENCY_BUCKETS_NS.len() + 1];
                let mut acc = 0;
                for (slot, b) in le.iter_mut().zip(&c.buckets) {
                    acc += b.load(Relaxed);
                    *slot = acc;
                }
                CommandStats {
                    name: cmd::ALL.get(i).map_or("unknown", |s| s.name),
                    // read after the buckets: calls >= the +Inf bucket while calls race in
                    calls: c.calls.load(Relaxed).max(acc),
                    errors: c.errors.load(Relaxed),
                    rejected: c.rejected.load(Relaxed),
                    total_ns: c.nanos.load(Relaxed),
                    le,
                }
            })
            .collect()
    }

    /// Zeroes the cumulative counters (`CONFIG RESETSTAT`), per-command ones included; the
    /// open-connection gauge stays.
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.connections_rejected,
            &self.commands_processed,
            &self.protocol_errors,
            &self.net_input_bytes,
            &self.net_output_bytes,
        ] {
            c.store(0, Relaxed);
        }
        for c in self.per_command.iter() {
            for a in [&c.calls, &c.errors, &c.rejected, &c.nanos].into_iter().chain(&c.buckets) {
                a.store(0, Relaxed);
            }
        }
    }

    /// Counts an error for a command already counted by [`Self::command`] whose reply came
    /// later (`CLUSTER MEMBERS` / `FORGET`, answered by the gossip layer).
    pub(crate) fn late_command_error(&self, slot: usize) {
        if let Some(c) = self.per_command.get(slot) {
            c.errors.fetch_add(1, Relaxed);
        }
    }

    /// Records one run of the command at `slot` (index in `cmd::ALL`; past it: unknown):
    /// `error` if its reply was one, `rejected` if that error came before it ran.
    pub(crate) fn command(&self, slot: usize, took: Duration, error: bool, rejected: bool) {
        let Some(c) = self.per_command.get(slot).or_else(|| self.per_command.last()) else {
            return;
        };
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket =
            LATENCY_BUCKETS_NS.iter().position(|&b| ns <= b).unwrap_or(LATENCY_BUCKETS_NS.len());
        c.calls.fetch_add(1, Relaxed);
        c.nanos.fetch_add(ns, Relaxed);
        c.buckets[bucket].fetch_add(1, Relaxed);
        if error {
            c.errors.fetch_add(1, Relaxed);
        }
        if rejected {
            c.rejected.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_received.fetch_add(1, Relaxed);
        self.connections_current.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_current.fetch_sub(1, Relaxed);
    }

    pub(crate) fn connection_rejected(&self) {
        self.connections_rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn commands(&self, n: u64) {
        if n > 0 {
            self.commands_processed.fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn bytes_in(&self, n: usize) {
        self.net_input_bytes.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn bytes_out(&self, n: usize) {
        self.net_output_bytes.fetch_add(n as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_command_histogram_is_cumulative_and_resets() {
        let m = Metrics::new();
        let get = cmd::ALL.iter().position(|s| s.name == "get").unwrap_or(0);
        m.command(get, Duration::from_nanos(800), false, false);
        m.command(get, Duration::from_micros(30), true, false);
        m.command(cmd::ALL.len() + 7, Duration::from_secs(1), true, true);
        let snap = m.commands_snapshot();
        assert_eq!(snap.len(), cmd::ALL.len() + 1);
        let g = &snap[get];
        assert_eq!((g.name, g.calls, g.errors, g.total_ns), ("get", 2, 1, 30_800));
        // 800 ns in the first bucket (1 µs); 30 µs in the 50 µs one; +Inf holds both
        assert_eq!(g.le[0], 1);
        assert_eq!(g.le[4], 1);
        assert_eq!(g.le[5], 2);
        assert_eq!(g.le[LATENCY_BUCKETS_NS.len()], 2);
        let unknown = &snap[cmd::ALL.len()];
        assert_eq!(
            (unknown.name, unknown.calls, unknown.le[LATENCY_BUCKETS_NS.len() - 1]),
            ("unknown", 1, 0)
        );
        m.reset();
        assert!(m.commands_snapshot().iter().all(|c| c.calls == 0 && c.le.iter().all(|&n| n == 0)));
    }
}
