//! Regressions for what the `gossip_node` fuzz target found (docs/fuzzing.md), each a datagram
//! as bytes, as anyone who can reach the gossip port of a cluster without a key (or any holder
//! of the cluster key, a compromised or buggy member) could send it. Both are open: the
//! fixes belong to the gossip state machine and the clock, so these are ignored until then
//! (run them with `cargo test --release -p gossipkv-core --test gossip_fuzz_findings --
//! --ignored`); un-ignore each with its fix.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::gossip::wire::{self, Body};
use gossipkv_core::gossip::{GossipConfig, Node};
use gossipkv_core::{ClockKind, Replica, StoreConfig};

fn node() -> (Arc<Replica>, Node) {
    let replica = Arc::new(Replica::new(1, ClockKind::Hlc, StoreConfig::default()));
    let node = Node::new(replica.clone(), GossipConfig::default(), Vec::new(), 1, u64::MAX);
    (replica, node)
}

fn attacker() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 9], 7946))
}

/// `key_hash(b"k")`, little-endian, as it appears in a `Want`.
const KH_K: &[u8; 8] = b"\x1d\x88\xda\x4f\x70\xe3\x21\xa9";

/// Found as `fuzz/found/gossip_node-want-dups`: a `Want` naming one key N times makes the node
/// send that key's versions N times. One 1,368-byte datagram naming a key 170 times drew 170
/// datagrams (224 KB) for a 1,300-byte value, and one 178 MB stream message for a 1 MiB value;
/// with a 64 MiB value that is an 11 GiB allocation. `SyncAck.wants` takes the same path.
#[test]
fn a_want_naming_a_key_many_times_gets_it_once() {
    let (replica, mut node) = node();
    replica.put(b"k", vec![7u8; 1000], 1000);
    // header: magic, version 2, kind 6 (Want), from 9, exchange 7; count 170 (varint)
    let mut datagram = b"gK\x03\x06\x09\x07\xaa\x01".to_vec();
    datagram.extend(KH_K.repeat(170));
    assert!(matches!(
        wire::decode(&Bytes::from(datagram.clone())).map(|m| m.body),
        Ok(Body::Want { keys }) if keys.len() == 170
    ));
    node.handle_datagram(2000, attacker(), Bytes::from(datagram));
    let (mut copies, mut bytes) = (0, 0);
    while let Some(t) = node.poll_transmit() {
        bytes += t.payload.len();
        if let Ok(Body::Entries { entries }) = wire::decode(&Bytes::from(t.payload)).map(|m| m.body)
        {
            copies += entries.iter().filter(|(key, _)| *key == b"k").count();
        }
    }
    assert_eq!(copies, 1, "sent the key's one version {copies} times in {bytes} bytes");
}

/// Found by the fuzz target twice, through two carriers: one datagram carrying a timestamp at
/// `u64::MAX` saturates the receiver's clock (`Clock::observe` takes any remote timestamp; the
/// drift bound is only counted), as a version in `Entries` and as the `clock` of the `Hello`
/// in a `Sync` (no entry needed; `fuzz/found/gossip_node-ts-poison`). Every later local write
/// then gets `u64::MAX` too and, tying with a version already there, can lose to it: an
/// acknowledged PUT that a read at the same node does not return. Gossip carries the poisoned
/// timestamp on to every node's clock.
#[test]
fn a_far_future_timestamp_does_not_make_local_writes_lose() {
    // Entries, from 9, exchange 7: one entry, key "k", ts u64::MAX, origin 9, tombstone
    let entries = &b"gK\x03\x07\x09\x07\x01\x01k\xff\xff\xff\xff\xff\xff\xff\xff\x09\x01"[..];
    // Sync, from 9, exchange 7: root 0, 0 keys, hello { generation 0, refute 0, digest 0,
    // members 0, clock u64::MAX, flags 0 }, no rumors
    let sync = &b"gK\x03\x01\x09\x07\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\
                 \xff\xff\xff\xff\xff\xff\xff\xff\0\0"[..];
    for (name, datagram) in [("Entries", entries), ("Sync", sync)] {
        assert!(wire::decode(&Bytes::from_static(datagram)).is_ok(), "{name} decodes");
        let (replica, mut node) = node();
        node.handle_datagram(1000, attacker(), Bytes::from_static(datagram));
        // the tie needs a rival at u64::MAX: the Entries datagram brings one, and after a Sync
        // the node's own first write is one
        replica.put(b"k", &b"zzz"[..], 1500);
        let v = node.put(b"k", &b"acknowledged"[..], 2000);
        assert!(v.ts < u64::MAX, "{name}: the clock saturated");
        assert_eq!(replica.get(b"k").as_deref(), Some(&b"acknowledged"[..]), "{name}");
    }
}
