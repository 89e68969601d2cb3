//! Origin deltas message by message (docs/protocol.md, "Origin deltas"): a range raises a
//! watermark only when it continues it, pulls are answered from the logs, and a hostile
//! vector is refused.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::gossip::wire::{self, Body, EntryList, Message, WireEntry};
use gossipkv_core::gossip::{GossipConfig, Node};
use gossipkv_core::{ClockKind, Replica, StoreConfig, Version};

fn node() -> Node {
    let replica = Arc::new(Replica::new(1, ClockKind::Hlc, StoreConfig::default()));
    Node::new(replica, GossipConfig::default(), Vec::new(), 1, u64::MAX)
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 9], 7946))
}

fn deliver(n: &mut Node, body: Body) -> Vec<Message> {
    let msg = Message { from: 9, exchange: 77, body };
    n.handle_datagram(1_000, peer(), Bytes::from(wire::encode(&msg)));
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit() {
        out.push(wire::decode(&Bytes::from(t.payload)).expect("the node sends what it reads"));
    }
    out
}

fn entry(key: &str, ts: u64, origin: u32) -> WireEntry {
    WireEntry {
        key: Bytes::copy_from_slice(key.as_bytes()),
        version: Version::put(ts, origin, &b"v"[..]),
    }
}

/// The peer says it is far ahead on `origins`: the node pulls them from it (and may then
/// take a range of theirs from it).
fn ahead(n: &mut Node, origins: &[u32]) {
    let vector = origins.iter().map(|&o| (o, 1_000_000)).collect();
    let out = deliver(n, Body::Vector { ask: true, vector, pulls: Vec::new() });
    let [Message { body: Body::Vector { pulls, .. }, .. }] = out.as_slice() else {
        panic!("expected one Vector answer, got {out:?}");
    };
    assert_eq!(pulls.iter().map(|p| p.0).collect::<Vec<_>>(), origins);
}

/// The node's vector, as it answers a request for it.
fn vector_of(n: &mut Node) -> Vec<(u32, u64)> {
    let out = deliver(n, Body::Vector { ask: true, vector: Vec::new(), pulls: Vec::new() });
    match out.as_slice() {
        [Message { body: Body::Vector { ask: false, vector, .. }, .. }] => vector.clone(),
        other => panic!("expected one Vector answer, got {other:?}"),
    }
}

#[test]
fn a_range_raises_a_watermark_only_when_it_continues_it() {
    let mut n = node();
    // versions (100, 200] of origin 5, but we hold nothing of origin 5 up to 100
    ahead(&mut n, &[5]);
    deliver(
        &mut n,
        Body::Deltas { ranges: vec![(5, 100, 200)], entries: vec![entry("a", 150, 5)].into() },
    );
    assert_eq!(n.replica().store().len(), 1, "the entries are merged anyway");
    assert_eq!(vector_of(&mut n), Vec::new(), "a gap below the range: no watermark");
    // (0, 120] continues our watermark (0)
    ahead(&mut n, &[5]);
    deliver(
        &mut n,
        Body::Deltas { ranges: vec![(5, 0, 120)], entries: vec![entry("b", 120, 5)].into() },
    );
    assert_eq!(vector_of(&mut n), vec![(5, 120)]);
    // and now (100, 200] overlaps it: raised to 200
    ahead(&mut n, &[5]);
    deliver(&mut n, Body::Deltas { ranges: vec![(5, 100, 200)], entries: EntryList::new() });
    assert_eq!(vector_of(&mut n), vec![(5, 200)]);
    // a range nobody asked for (forged, or late) raises nothing, and is counted
    let before = n.stats().rejected;
    deliver(&mut n, Body::Deltas { ranges: vec![(5, 0, 900)], entries: EntryList::new() });
    assert_eq!(vector_of(&mut n), vec![(5, 200)]);
    assert_eq!(n.stats().rejected, before + 1);
}

#[test]
fn a_pull_is_answered_with_every_kept_version_in_its_range() {
    let mut n = node();
    let entries =
        vec![entry("a", 110, 5), entry("b", 150, 5), entry("c", 190, 5), entry("d", 150, 6)];
    ahead(&mut n, &[5, 6]);
    deliver(
        &mut n,
        Body::Deltas { ranges: vec![(5, 0, 200), (6, 0, 150)], entries: entries.into() },
    );
    // a newer version of "b" by another origin: origin 5's 150 is no longer kept
    deliver(&mut n, Body::Deltas { ranges: Vec::new(), entries: vec![entry("b", 180, 7)].into() });
    let out =
        deliver(&mut n, Body::Vector { ask: false, vector: Vec::new(), pulls: vec![(5, 110)] });
    let [Message { body: Body::Deltas { ranges, entries }, .. }] = out.as_slice() else {
        panic!("expected one Deltas answer, got {out:?}");
    };
    assert_eq!(ranges, &vec![(5, 110, 200)]);
    let keys: Vec<&[u8]> = entries.iter().map(|(key, _)| key).collect();
    assert_eq!(keys, vec![&b"c"[..]], "above 110, kept, of origin 5 only");
    // a pull at or above our watermark gets nothing
    assert!(
        deliver(&mut n, Body::Vector { ask: false, vector: Vec::new(), pulls: vec![(5, 200)] })
            .is_empty()
    );
}

#[test]
fn a_vector_whose_origins_do_not_increase_is_refused() {
    let mut n = node();
    let refused = |n: &Node| n.stats().rejected + n.stats().decode_errors;
    let before = refused(&n);
    let out = deliver(
        &mut n,
        Body::Vector { ask: true, vector: vec![(7, 10), (3, 10)], pulls: Vec::new() },
    );
    assert!(out.is_empty(), "no answer, no pull: {out:?}");
    assert_eq!(refused(&n), before + 1);
}
