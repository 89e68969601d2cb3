//! Protocol bugs the chaos harness found, as small deterministic regression tests (fixed in
//! c294671; docs/reliability.md, "Findings", has the chaos runs that found them).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::clock::hlc_pack;
use gossipkv_core::gossip::wire::encode;
use gossipkv_core::gossip::{Body, GossipConfig, Message, Node, WireEntry};
use gossipkv_core::{ClockKind, Replica, StoreConfig, Version};

/// A node whose store no longer holds `k` (its tombstone was purged) is sent `k`'s kept set
/// by a peer that has not purged yet: a tombstone and a value at the same timestamp (the
/// tombstone wins the tie: the key is deleted), both past the purge horizon, winner first.
/// `merge_entries` skips the tombstone (past the horizon, key not held) and then takes the
/// value, which is now the winner: the deleted key is back, and spreads from there once the
/// others purge. Found by bench/chaos.sh seed 1 (24 nodes): `stale` then `resurrected`;
/// fixed by skipping the values tied with (or below) a skipped tombstone.
#[test]
fn a_value_tied_with_a_purged_tombstone_does_not_come_back() {
    let now = 1_800_000_000_000;
    let replica = Arc::new(Replica::new(1, ClockKind::Hlc, StoreConfig::default()));
    let cfg = GossipConfig { tombstone_grace_ms: 10_000, ..GossipConfig::default() };
    let peer: SocketAddr = ([127, 0, 0, 2], 7946).into();
    let mut node = Node::new(Arc::clone(&replica), cfg, vec![peer], 7, now);
    let ts = hlc_pack(now - 60_000, 3);
    let key = Bytes::from_static(b"k");
    let entries = vec![
        WireEntry { key: key.clone(), version: Version::tombstone(ts, 2) },
        WireEntry { key, version: Version::put(ts, 3, b"v".to_vec()) },
    ];
    let msg = Message { from: 2, exchange: 0, body: Body::Entries { entries: entries.into() } };
    node.handle_datagram(now, peer, Bytes::from(encode(&msg)));
    assert_eq!(
        replica.get(b"k"),
        None,
        "a deleted key came back: {:?}",
        replica.store().versions(b"k")
    );
}
