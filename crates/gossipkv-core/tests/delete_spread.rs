//! How deletes outrun the purge horizon on lossy links (docs/protocol.md, "Deletes", rules 6
//! and 7): hot tombstones are pushed whole next to each `Sync`, and a node that purged (or
//! skipped) a tombstone refuses the key's older values and sends the tombstone back; and how a
//! node frozen past half the horizon still finds itself away (rule 1).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::clock::hlc_pack;
use gossipkv_core::gossip::wire::{decode, encode};
use gossipkv_core::gossip::{Body, GossipConfig, Message, Node, WireEntry};
use gossipkv_core::{ClockKind, Replica, StoreConfig, Version};

const NOW: u64 = 1_800_000_000_000;
const GRACE: u64 = 10_000;

fn addr(i: u8) -> SocketAddr {
    ([127, 0, 0, i], 7946).into()
}

fn node(id: u32, peers: Vec<SocketAddr>) -> (Arc<Replica>, Node) {
    let replica = Arc::new(Replica::new(id, ClockKind::Hlc, StoreConfig::default()));
    let cfg = GossipConfig { tombstone_grace_ms: GRACE, ..GossipConfig::default() };
    let node = Node::new(Arc::clone(&replica), cfg, peers, 7 + u64::from(id), NOW);
    (replica, node)
}

fn entries(from: u32, list: Vec<WireEntry>) -> Bytes {
    Bytes::from(encode(&Message {
        from,
        exchange: 0,
        body: Body::Entries { entries: list.into() },
    }))
}

/// Every `Entries` message the node has queued for `to`, decoded.
fn entries_sent_to(node: &mut Node, to: SocketAddr) -> Vec<WireEntry> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit() {
        if t.to != to {
            continue;
        }
        if let Ok(Message { body: Body::Entries { entries }, .. }) = decode(&Bytes::from(t.payload))
        {
            out.extend(entries.to_vec());
        }
    }
    out
}

#[test]
fn a_ghost_refuses_an_older_value_and_sends_the_tombstone_back() {
    let (a_replica, mut a) = node(1, vec![addr(2), addr(3)]);
    let key = Bytes::from_static(b"k");
    let deleted_at = hlc_pack(NOW - 3 * GRACE / 2, 0);
    // A peer that has not purged yet sends a tombstone past the horizon for a key A does not
    // hold: A does not take it (it would only bounce), but remembers it as a ghost.
    let tomb = WireEntry { key: key.clone(), version: Version::tombstone(deleted_at, 9) };
    a.handle_datagram(NOW, addr(2), entries(2, vec![tomb]));
    assert!(!a_replica.store().contains(b"k"));
    assert_eq!(a.stats().stale_tombstones_skipped, 1);

    // A lagging node (it missed the delete) offers the value the delete removed.
    let (c_replica, mut c) = node(3, vec![addr(1)]);
    let old = Version::put(deleted_at - (5 << 16), 3, b"old".to_vec());
    c_replica.merge_remote(b"k", old.as_ref(), NOW);
    a.handle_datagram(NOW, addr(3), entries(3, vec![WireEntry { key: key.clone(), version: old }]));
    assert_eq!(a_replica.get(b"k"), None, "the deleted key came back at A");
    assert_eq!(a.stats().ghost_refused, 1);

    // A answered with the tombstone; the lagging node deletes the key instead of keeping it.
    let back = entries_sent_to(&mut a, addr(3));
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].key, key);
    assert_eq!(back[0].version, Version::tombstone(deleted_at, 9));
    c.handle_datagram(NOW, addr(1), entries(1, back));
    assert_eq!(c_replica.get(b"k"), None, "the lagging node still holds the deleted value");

    // A value tied with the tombstone loses the tie (a tombstone wins): refused too.
    let tied = Version::put(deleted_at, 4, b"tied".to_vec());
    a.handle_datagram(
        NOW,
        addr(3),
        entries(3, vec![WireEntry { key: key.clone(), version: tied }]),
    );
    assert_eq!(a_replica.get(b"k"), None);
    assert_eq!(a.stats().ghost_refused, 2);

    // A newer write is a new life for the key: taken.
    let newer = Version::put(hlc_pack(NOW - 1_000, 0), 3, b"new".to_vec());
    a.handle_datagram(NOW, addr(3), entries(3, vec![WireEntry { key, version: newer }]));
    assert_eq!(a_replica.get(b"k").as_deref(), Some(&b"new"[..]));
}

#[test]
fn a_fresh_delete_is_pushed_whole_and_a_fresh_value_is_only_advertised() {
    let peer = addr(2);
    let (_, mut a) = node(1, vec![peer]);
    let (b_replica, mut b) = node(2, vec![addr(1)]);
    let old = Version::put(hlc_pack(NOW - 500, 0), 2, b"v".to_vec());
    b_replica.merge_remote(b"gone", old.as_ref(), NOW);

    a.delete(b"gone", NOW);
    a.put(b"fresh", Bytes::from_static(b"value"), NOW);
    a.handle_timeout(NOW + 1_000);
    let pushed = entries_sent_to(&mut a, peer);
    let keys: Vec<&[u8]> = pushed.iter().map(|e| &e.key[..]).collect();
    assert_eq!(keys, vec![&b"gone"[..]], "only the delete travels whole: {pushed:?}");
    assert!(pushed[0].version.is_tombstone());

    // one message, and the peer has deleted the key
    b.handle_datagram(NOW + 1_005, addr(1), entries(1, pushed));
    assert_eq!(b_replica.get(b"gone"), None);
    // and, having taken a delete it did not have, pushes it on in its own next round
    b.handle_timeout(NOW + 1_200);
    let onward = entries_sent_to(&mut b, addr(1));
    assert!(onward.iter().any(|e| &e.key[..] == b"gone" && e.version.is_tombstone()), "{onward:?}");
}

/// Drivers that take client writes on another thread hand gossip only an id and the delete
/// flag (`note_local_rumor`, no store lookup): a delete is pushed whole, a value only
/// advertised.
#[test]
fn a_delete_named_by_id_is_pushed_whole() {
    use gossipkv_core::gossip::wire::VersionId;
    let peer = addr(2);
    let (replica, mut a) = node(1, vec![peer]);
    let del_ts = replica.write(b"gone", None, NOW);
    let put_ts = replica.write(b"fresh", Some(b"value"), NOW);
    let del = VersionId::of(b"gone", Version::tombstone(del_ts, 1).as_ref());
    let put = VersionId::of(b"fresh", Version::put(put_ts, 1, b"value".to_vec()).as_ref());
    a.note_local_rumor(del, true, NOW);
    a.note_local_rumor(put, false, NOW);
    a.handle_timeout(NOW + 1_000);
    let pushed = entries_sent_to(&mut a, peer);
    let keys: Vec<&[u8]> = pushed.iter().map(|e| &e.key[..]).collect();
    assert_eq!(keys, vec![&b"gone"[..]], "{pushed:?}");
    assert!(pushed[0].version.is_tombstone());
}

/// A node frozen (SIGSTOP, a VM pause) for longer than half the grace runs no round while
/// frozen. When it resumes, the first thing it handles may be a `Sync` from a peer that sees a
/// majority, queued in its socket meanwhile; that contact must not count as "in touch" before
/// the node has noticed the gap, or it never finds itself away and never resets, and gossips
/// entries whose tombstones the others purged meanwhile.
#[test]
fn a_node_resumed_after_half_the_grace_finds_itself_away_whatever_it_handles_first() {
    use gossipkv_core::gossip::Hello;

    let (_, mut a) = node(1, vec![addr(2)]);
    a.enable_membership(addr(1), 1, NOW);
    a.handle_timeout(NOW);
    assert!(!a.is_away());
    let resumed = NOW + GRACE / 2 + 3_000;
    let hello = Hello { generation: 1, members: 2, flags: Hello::QUORUM, ..Hello::default() };
    let sync = Body::Sync { root: 0, keys: 0, hello, haves: Vec::new() };
    let msg = Message { from: 2, exchange: 5, body: sync };
    a.handle_datagram(resumed, addr(2), Bytes::from(encode(&msg)));
    a.handle_timeout(resumed);
    assert!(a.is_away(), "frozen for {} ms with a {GRACE} ms grace, yet not away", resumed - NOW);
}
