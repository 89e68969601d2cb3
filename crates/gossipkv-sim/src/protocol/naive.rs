//! The brief's literal baseline: every round, each node sends its *whole store* to `k` random
//! peers; receivers merge. It speaks the same wire codec as the real protocol (`Entries`
//! messages, kind 7, packed to the MTU with [`Packer`]; a version too large for one datagram
//! goes as one stream message), so its bytes compare one to one with gossipkv's.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::digest::{key_hash, version_hash};
use gossipkv_core::gossip::wire::{self, Body, Head, Packer, Writer, varint_len};
use gossipkv_core::gossip::{NodeStats, Transport};
use gossipkv_core::lww::VersionRef;
use gossipkv_core::rng::Rng;
use gossipkv_core::{NodeId, Replica};

use super::Outgoing;

const ENTRIES: u8 = 7;

/// Encoded size of one entry (the same formula as `wire::entry_len`, for a borrowed version).
fn entry_len_ref(key: &[u8], v: VersionRef<'_>) -> usize {
    let value = v.value.map_or(0, |x| varint_len(x.len() as u64) + x.len());
    varint_len(key.len() as u64) + key.len() + 8 + varint_len(u64::from(v.origin)) + 1 + value
}

/// A node of the naive protocol.
#[derive(Debug)]
pub struct NaiveNode {
    replica: Arc<Replica>,
    fanout: usize,
    interval_ms: u64,
    mtu: usize,
    peers: Vec<SocketAddr>,
    rng: Rng,
    next_tick: u64,
    outbox: VecDeque<Outgoing>,
    stats: NodeStats,
    receptions: Vec<(u64, u32)>,
    scratch: Vec<usize>,
}

impl NaiveNode {
    /// A naive node for `replica`, first round at `first_tick`.
    pub fn new(
        replica: Arc<Replica>,
        fanout: usize,
        interval_ms: u64,
        mtu: usize,
        peers: Vec<SocketAddr>,
        seed: u64,
        first_tick: u64,
    ) -> Self {
        Self {
            replica,
            fanout,
            interval_ms,
            mtu,
            peers,
            rng: Rng::new(seed),
            next_tick: first_tick,
            outbox: VecDeque::new(),
            stats: NodeStats::default(),
            receptions: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    fn id(&self) -> NodeId {
        self.replica.id()
    }

    /// When the next round is due.
    pub fn next_timeout(&self) -> u64 {
        self.next_tick
    }

    /// Counters (same layout as the gossip node's).
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.outbox.pop_front()
    }

    /// Calls `f` with the versions received since the last call, as `(key hash, low 32 bits
    /// of version hash)`, then forgets them (keeping the buffer).
    pub fn drain_receptions(&mut self, f: impl FnOnce(&[(u64, u32)])) {
        f(&self.receptions);
        self.receptions.clear();
    }

    /// Forgets pending output and runs the next round at `now`.
    pub fn reset(&mut self, now: u64) {
        self.outbox.clear();
        self.next_tick = now;
    }

    fn send(&mut self, to: SocketAddr, transport: Transport, payload: Bytes) {
        self.stats.sent[usize::from(ENTRIES)] += 1;
        self.stats.sent_bytes[usize::from(ENTRIES)] += payload.len() as u64;
        if transport == Transport::Datagram {
            self.stats.max_datagram = self.stats.max_datagram.max(payload.len());
        }
        self.outbox.push_back(Outgoing { to, transport, payload });
    }

    /// A round: encode the whole store once, send it to `fanout` random peers.
    pub fn handle_timeout(&mut self, now: u64) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = if now >= self.next_tick + self.interval_ms {
            now + self.interval_ms
        } else {
            self.next_tick + self.interval_ms
        };
        self.stats.rounds += 1;
        let mut picked = std::mem::take(&mut self.scratch);
        self.rng.sample_indices(self.peers.len(), self.fanout, &mut picked);
        if picked.is_empty() {
            self.scratch = picked;
            return;
        }
        let store = self.replica.store();
        let mut p = Packer::new(ENTRIES, self.id(), 0, Vec::new(), self.mtu);
        // entries too long for a datagram, encoded once, straight into one stream message
        let mut oversize = Writer::default();
        let mut oversize_count = 0u64;
        for leaf in 0..store.tree().leaves() {
            store.for_each_in_leaf(leaf, |key, versions| {
                for v in versions {
                    if !p.push(entry_len_ref(key, v), |w| w.entry_ref(key, v)) {
                        oversize.entry_ref(key, v);
                        oversize_count += 1;
                    }
                }
            });
        }
        let dgrams: Vec<Bytes> = p.finish(false).into_iter().map(Bytes::from).collect();
        let stream = (oversize_count > 0).then(|| {
            let head = Head::base(ENTRIES, self.id(), 0);
            Bytes::from(wire::list_message(head, &[], oversize_count, &oversize.buf))
        });
        for &i in &picked {
            let peer = self.peers[i];
            for d in &dgrams {
                self.send(peer, Transport::Datagram, d.clone());
            }
            if let Some(s) = &stream {
                self.send(peer, Transport::Stream, s.clone());
            }
        }
        self.scratch = picked;
    }

    /// Merges every version of a received `Entries` message.
    pub fn handle_datagram(&mut self, now: u64, _from: SocketAddr, payload: Bytes) {
        let msg = match wire::decode(&payload) {
            Ok(m) => m,
            Err(_) => {
                self.stats.decode_errors += 1;
                return;
            }
        };
        let kind = usize::from(msg.body.kind());
        self.stats.received[kind] += 1;
        self.stats.received_bytes[kind] += payload.len() as u64;
        let Body::Entries { entries } = msg.body else {
            self.stats.rejected += 1;
            return;
        };
        for (key, v) in &entries {
            let kh = key_hash(key);
            self.stats.versions_received += 1;
            self.receptions.push((kh, version_hash(kh, v) as u32));
            if self.replica.merge_remote(key, v, now).changed() {
                self.stats.versions_applied += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipkv_core::digest::TreeShape;
    use gossipkv_core::{ClockKind, StoreConfig, Version};

    #[test]
    fn whole_store_goes_to_k_peers_in_mtu_datagrams() {
        let cfg = StoreConfig { shards_log2: 0, tree: TreeShape::new(2), max_concurrent: 4 };
        let a = Arc::new(Replica::new(0, ClockKind::Hlc, cfg));
        let b = Arc::new(Replica::new(1, ClockKind::Hlc, cfg));
        for i in 0..200u32 {
            a.merge_remote(format!("key{i}").as_bytes(), Version::put(5, 0, "v").as_ref(), 0);
        }
        let peers = vec![crate::net::addr(1), crate::net::addr(2)];
        let mut na = NaiveNode::new(a.clone(), 2, 1000, 200, peers, 1, 0);
        let mut nb = NaiveNode::new(b.clone(), 1, 1000, 200, vec![crate::net::addr(0)], 2, 0);
        na.handle_timeout(0);
        let mut to_b = 0;
        while let Some(o) = na.poll_transmit() {
            assert!(o.payload.len() <= 200);
            if o.to == crate::net::addr(1) {
                to_b += 1;
                nb.handle_datagram(1, crate::net::addr(0), o.payload);
            }
        }
        assert!(to_b > 1);
        assert_eq!(a.store().root_hash(), b.store().root_hash());
        let mut received = 0;
        nb.drain_receptions(|r| received = r.len());
        assert_eq!(received, 200);
    }
}
