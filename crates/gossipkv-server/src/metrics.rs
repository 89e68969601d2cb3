//! Counters of what the server did, kept as relaxed atomics so any task can bump them and a
//! later metrics exporter (or `INFO`) can read them without locks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Server-wide counters. Shared as `Arc<Metrics>`; see [`Metrics::snapshot`].
#[derive(Debug, Default)]
pub struct Metrics {
    connections_received: AtomicU64,
    connections_current: AtomicU64,
    connections_rejected: AtomicU64,
    commands_processed: AtomicU64,
    protocol_errors: AtomicU64,
    net_input_bytes: AtomicU64,
    net_output_bytes: AtomicU64,
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

    /// Zeroes the cumulative counters (`CONFIG RESETSTAT`); the open-connection gauge stays.
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
