//! The node state machines the simulator can drive, behind one enum so the run loop treats
//! them alike: gossipkv's protocol core ([`gossipkv_core::gossip::Node`]) and the naive
//! whole-store baseline ([`naive::NaiveNode`]).

pub mod naive;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::gossip::{Node, NodeStats, Transport};
use gossipkv_core::{Replica, Version};

pub use naive::NaiveNode;

/// A message a node wants sent.
#[derive(Debug)]
pub struct Outgoing {
    /// Destination gossip address.
    pub to: SocketAddr,
    /// Datagram or stream.
    pub transport: Transport,
    /// Encoded message.
    pub payload: Bytes,
}

/// One simulated node's protocol state machine.
#[derive(Debug)]
pub enum ProtoNode {
    /// gossipkv's protocol.
    Gossip(Box<Node>),
    /// The naive baseline.
    Naive(Box<NaiveNode>),
}

impl ProtoNode {
    /// The node's replica.
    pub fn replica(&self) -> &Arc<Replica> {
        match self {
            ProtoNode::Gossip(n) => n.replica(),
            ProtoNode::Naive(n) => n.replica(),
        }
    }

    /// When the timer must next fire.
    pub fn next_timeout(&self) -> u64 {
        match self {
            ProtoNode::Gossip(n) => n.next_timeout(),
            ProtoNode::Naive(n) => n.next_timeout(),
        }
    }

    /// Runs a round if one is due.
    pub fn handle_timeout(&mut self, now: u64) {
        match self {
            ProtoNode::Gossip(n) => n.handle_timeout(now),
            ProtoNode::Naive(n) => n.handle_timeout(now),
        }
    }

    /// Handles a received message.
    pub fn handle_datagram(&mut self, now: u64, from: SocketAddr, payload: Bytes) {
        match self {
            ProtoNode::Gossip(n) => n.handle_datagram(now, from, payload),
            ProtoNode::Naive(n) => n.handle_datagram(now, from, payload),
        }
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        match self {
            ProtoNode::Gossip(n) => n.poll_transmit().map(|t| Outgoing {
                to: t.to,
                transport: t.transport,
                payload: Bytes::from(t.payload),
            }),
            ProtoNode::Naive(n) => n.poll_transmit(),
        }
    }

    /// Tells the protocol a client wrote `v` (gossip spreads it as a rumor; naive needs
    /// nothing: the whole store goes out every round).
    pub fn note_local_write(&mut self, key: &[u8], v: &Version, now: u64) {
        match self {
            ProtoNode::Gossip(n) => n.note_local_write(key, v, now),
            ProtoNode::Naive(_) => {}
        }
    }

    /// Calls `f` with the `(key hash, version hash)` of every version received since the last
    /// call, then forgets them.
    pub fn drain_receptions(&mut self, f: impl FnOnce(&[(u64, u32)])) {
        match self {
            ProtoNode::Gossip(n) => n.drain_receptions(f),
            ProtoNode::Naive(n) => n.drain_receptions(f),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        match self {
            ProtoNode::Gossip(n) => n.stats(),
            ProtoNode::Naive(n) => n.stats(),
        }
    }

    /// Forgets protocol state and runs the next round at `now` (a restart).
    pub fn reset(&mut self, now: u64) {
        match self {
            ProtoNode::Gossip(n) => n.reset(now),
            ProtoNode::Naive(n) => n.reset(now),
        }
    }
}

/// Adds `b`'s counters into `a`.
pub fn add_stats(a: &mut NodeStats, b: &NodeStats) {
    a.rounds += b.rounds;
    for k in 0..a.sent.len() {
        a.sent[k] += b.sent[k];
        a.sent_bytes[k] += b.sent_bytes[k];
        a.received[k] += b.received[k];
        a.received_bytes[k] += b.received_bytes[k];
    }
    a.max_datagram = a.max_datagram.max(b.max_datagram);
    a.decode_errors += b.decode_errors;
    a.oversize_versions += b.oversize_versions;
    a.oversize_messages += b.oversize_messages;
    a.rejected += b.rejected;
    a.versions_received += b.versions_received;
    a.versions_applied += b.versions_applied;
    a.descents += b.descents;
    a.descents_deferred += b.descents_deferred;
    a.bulk_started += b.bulk_started;
    a.member_pulls += b.member_pulls;
    a.tombstones_purged += b.tombstones_purged;
    a.horizon_resets += b.horizon_resets;
    a.horizon_dropped += b.horizon_dropped;
    a.away_refused += b.away_refused;
    a.stale_tombstones_skipped += b.stale_tombstones_skipped;
    a.ghost_refused += b.ghost_refused;
    a.ghosts += b.ghosts;
    a.away_cleared += b.away_cleared;
}
