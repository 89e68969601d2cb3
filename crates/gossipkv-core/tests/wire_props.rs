//! Property tests of the gossip wire codec (`gossip::wire`), the bytes every peer (or anyone
//! who can reach the gossip port) sends us:
//!
//! - no input makes `decode` panic: arbitrary bytes, and real messages damaged by bit flips,
//!   truncation, insertion and splicing;
//! - whatever decodes re-encodes canonically: `decode(encode(m)) == m`, encoding is a fixed
//!   point, and the canonical encoding is never longer than the bytes it was read from;
//! - `decode(encode(m)) == m` for generated messages of all 16 kinds (gossip and membership),
//!   and no proper prefix of an encoding decodes (the format is prefix-free, so truncation is
//!   always detected);
//! - the `Packer` keeps every item within the datagram limit, in order.
//!
//! The fuzz target `fuzz/fuzz_targets/wire_decode.rs` checks the same properties
//! coverage-guided (docs/fuzzing.md); these run in CI. The authentication envelope around
//! these bytes has its own tests in `gossip::auth` and the fuzz target `auth_envelope`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use gossipkv_core::Version;
use gossipkv_core::digest::TREE_ARITY;
use gossipkv_core::gossip::wire::{
    self, Body, DecodeError, Hello, KIND_NAMES, KINDS, LeafId, LeafSection, MAGIC, Message, Packer,
    VersionId, WIRE_VERSION, WIRE_VERSION_BASE, WireEntry,
};
use gossipkv_core::gossip::{MemberNews, MemberRecord, Status};
use proptest::prelude::*;

/// Checks every property a decoded message must have, given the bytes it came from.
fn check_decoded(src: &[u8]) -> Result<(), TestCaseError> {
    let Ok(msg) = wire::decode(&Bytes::copy_from_slice(src)) else { return Ok(()) };
    let enc = wire::encode(&msg);
    prop_assert!(enc.len() <= src.len(), "re-encoding grew {} -> {}", src.len(), enc.len());
    let again = wire::decode(&Bytes::from(enc.clone()));
    prop_assert_eq!(again.as_ref(), Ok(&msg));
    prop_assert_eq!(wire::encode(&msg), enc);
    prop_assert!(wire::decode(&Bytes::copy_from_slice(&src[..src.len() - 1])).is_err());
    prop_assert!(usize::from(msg.body.kind()) < KINDS);
    prop_assert_eq!(msg.body.name(), KIND_NAMES[usize::from(msg.body.kind())]);
    Ok(())
}

/// Numbers biased towards varint boundaries and extremes, where codecs go wrong.
fn num64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..300,
        (0u32..64).prop_map(|s| 1u64 << s),
        (1u32..64).prop_map(|s| (1u64 << s) - 1),
        Just(u64::MAX),
    ]
}

fn num32() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), 0u32..300, Just(u32::MAX), (0u32..32).prop_map(|s| 1u32 << s)]
}

fn id() -> impl Strategy<Value = VersionId> {
    (num64(), num64(), any::<u32>()).prop_map(|(kh, ts, vh)| VersionId { kh, ts, vh })
}

fn leaf_ids() -> impl Strategy<Value = Vec<LeafId>> {
    // timestamps close together (small deltas) or spread over the whole range
    let ts = prop_oneof![num64(), 1_000_000u64..1_000_100];
    proptest::collection::vec((any::<u32>(), ts, any::<u16>()), 0..12)
        .prop_map(|v| v.into_iter().map(|(fp, ts, vfp)| LeafId { fp, ts, vfp }).collect())
}

/// A watermark vector: origins strictly increasing, watermarks close together or anywhere.
fn vector() -> impl Strategy<Value = Vec<(u32, u64)>> {
    let wm = prop_oneof![num64(), 1_000_000u64..1_000_100];
    proptest::collection::vec((num32(), wm), 0..12).prop_map(|mut v| {
        v.sort_unstable_by_key(|p| p.0);
        v.dedup_by_key(|p| p.0);
        v
    })
}

/// Delta ranges `(origin, from, to)` with `from <= to`.
fn ranges() -> impl Strategy<Value = Vec<(u32, u64, u64)>> {
    proptest::collection::vec((num32(), num64(), num64()), 0..8).prop_map(|v| {
        v.into_iter().map(|(o, a, d)| (o, a, a.checked_add(d).unwrap_or(a))).collect()
    })
}

fn entry() -> impl Strategy<Value = WireEntry> {
    let bytes = |n| proptest::collection::vec(any::<u8>(), 0..n);
    (bytes(40), num64(), num32(), proptest::option::of(bytes(300))).prop_map(
        |(key, ts, origin, value)| WireEntry {
            key: key.into(),
            version: Version { ts, origin, value: value.map(Bytes::from) },
        },
    )
}

fn entries() -> impl Strategy<Value = Vec<WireEntry>> {
    proptest::collection::vec(entry(), 0..6)
}

fn hello() -> impl Strategy<Value = Hello> {
    (num64(), num32(), any::<u64>(), num32(), num64(), any::<u8>()).prop_map(
        |(generation, refute, digest, members, clock, flags)| Hello {
            generation,
            refute,
            digest,
            members,
            clock,
            flags,
        },
    )
}

/// Addresses as the wire carries them (no IPv6 flow info or scope id: those are not sent).
fn addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

/// A member record as sent: a suspicion with or without its suspector, other records without.
fn member() -> impl Strategy<Value = MemberNews> {
    let status = prop_oneof![
        Just(Status::Alive),
        Just(Status::Suspect),
        Just(Status::Dead),
        Just(Status::Left)
    ];
    (num32(), addr(), num64(), num32(), status, proptest::option::of(num32())).prop_map(
        |(id, addr, generation, refute, status, suspector)| MemberNews {
            rec: MemberRecord { id, addr, generation, refute, status },
            suspector: suspector.filter(|_| status == Status::Suspect),
        },
    )
}

fn list<S: Strategy>(s: S, n: usize) -> impl Strategy<Value = Vec<S::Value>> {
    proptest::collection::vec(s, 0..n)
}

/// A message of any kind with arbitrary contents.
fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        (num64(), num64(), hello(), list(id(), 6))
            .prop_map(|(root, keys, hello, haves)| Body::Sync { root, keys, hello, haves }),
        (num64(), num64(), hello(), list(id(), 6), list(num64(), 8)).prop_map(
            |(root, keys, hello, haves, wants)| Body::SyncAck { root, keys, hello, haves, wants }
        ),
        (any::<u8>(), list((num32(), any::<[u16; TREE_ARITY]>()), 4))
            .prop_map(|(level, nodes)| Body::Tree { level, nodes }),
        (any::<u8>(), list((num32(), any::<u16>()), 8), list(num32(), 16))
            .prop_map(|(level, diffs, counts)| Body::TreeAck { level, diffs, counts }),
        list(num32(), 10).prop_map(|leaves| Body::LeafRequest { leaves }),
        list((num32(), leaf_ids()), 4).prop_map(|s| Body::Leaf {
            sections: s.into_iter().map(|(leaf, ids)| LeafSection { leaf, ids }).collect()
        }),
        list(num64(), 10).prop_map(|keys| Body::Want { keys }),
        list((num32(), list(any::<u32>(), 10)), 4).prop_map(|wants| Body::WantLeaf { wants }),
        entries().prop_map(|entries| Body::Entries { entries: entries.into() }),
        num32().prop_map(|cursor| Body::BulkRequest { cursor }),
        (num32(), entries())
            .prop_map(|(next, entries)| Body::BulkChunk { next, entries: entries.into() }),
        proptest::option::of(addr()).prop_map(|origin| Body::Ping { origin }),
        addr().prop_map(|target| Body::PingReq { target }),
        Just(Body::Ack),
        list(any::<u32>(), 10).prop_map(|buckets| Body::MemberRequest { buckets }),
        (any::<bool>(), list(member(), 6))
            .prop_map(|(full, records)| Body::Members { full, records }),
        (any::<bool>(), vector(), list((num32(), num64()), 6))
            .prop_map(|(ask, vector, pulls)| Body::Vector { ask, vector, pulls }),
        (ranges(), entries())
            .prop_map(|(ranges, entries)| Body::Deltas { ranges, entries: entries.into() }),
    ];
    (num32(), num32(), body).prop_map(|(from, exchange, body)| Message { from, exchange, body })
}

/// Ways to damage a valid datagram.
#[derive(Clone, Debug)]
enum Damage {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Replace a byte with one that ends a varint early or makes it overlong.
    Varint(usize, bool),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Damage::Remove(i, n)),
        (any::<usize>(), any::<bool>()).prop_map(|(i, c)| Damage::Varint(i, c)),
    ]
}

fn apply(mut b: Vec<u8>, d: &Damage) -> Vec<u8> {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match d {
        Damage::Flip(i, x) if !b.is_empty() => {
            let i = at(*i, b.len());
            b[i] ^= x;
        }
        Damage::Truncate(i) => b.truncate(at(*i, b.len())),
        Damage::Insert(i, bytes) => {
            let i = at(*i, b.len() + 1);
            b.splice(i..i, bytes.iter().copied());
        }
        Damage::Remove(i, n) if !b.is_empty() => {
            let i = at(*i, b.len());
            let end = (i + n).min(b.len());
            b.drain(i..end);
        }
        Damage::Varint(i, cont) if !b.is_empty() => {
            let i = at(*i, b.len());
            b[i] = if *cont { b[i] | 0x80 } else { b[i] & 0x7f };
        }
        _ => {}
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_decoded(&bytes)?;
        // the same bytes behind a valid header of each version, so the body decoders see them
        for version in [WIRE_VERSION_BASE, WIRE_VERSION] {
            for kind in 0..=KINDS as u8 {
                let mut d = vec![MAGIC[0], MAGIC[1], version, kind, 0, 0];
                d.extend_from_slice(&bytes);
                check_decoded(&d)?;
            }
        }
    }

    #[test]
    fn every_kind_round_trips_and_no_prefix_decodes(msg in message()) {
        let enc = wire::encode(&msg);
        prop_assert_eq!(wire::decode(&Bytes::from(enc.clone())), Ok(msg.clone()));
        prop_assert_eq!(usize::from(enc[3]), usize::from(msg.body.kind()));
        for cut in 0..enc.len() {
            prop_assert!(
                wire::decode(&Bytes::copy_from_slice(&enc[..cut])).is_err(),
                "prefix of {} bytes decoded", cut
            );
        }
        let mut longer = enc.clone();
        longer.push(0);
        prop_assert_eq!(wire::decode(&Bytes::from(longer)), Err(DecodeError::Trailing));
    }

    #[test]
    fn damaged_messages_never_panic(msg in message(), damages in proptest::collection::vec(damage(), 1..4)) {
        let mut bytes = wire::encode(&msg);
        for d in &damages {
            bytes = apply(bytes, d);
            check_decoded(&bytes)?;
        }
    }

    #[test]
    fn spliced_messages_never_panic(a in message(), b in message(), cut_a in any::<usize>(), cut_b in any::<usize>()) {
        let (ea, eb) = (wire::encode(&a), wire::encode(&b));
        let mut spliced = ea[..cut_a % (ea.len() + 1)].to_vec();
        spliced.extend_from_slice(&eb[cut_b % (eb.len() + 1)..]);
        check_decoded(&spliced)?;
    }

    #[test]
    fn packer_respects_the_limit_and_keeps_order(
        keys in proptest::collection::vec(num64(), 0..200),
        limit in 8usize..200,
        from in num32(),
        exchange in num32(),
    ) {
        let mut p = Packer::new(6, from, exchange, Vec::new(), limit);
        let mut accepted = Vec::new();
        for k in &keys {
            if p.push(8, |w| w.u64(*k)) {
                accepted.push(*k);
            }
        }
        let mut got = Vec::new();
        for d in p.finish(false) {
            prop_assert!(d.len() <= limit, "{} bytes > {}", d.len(), limit);
            match wire::decode(&Bytes::from(d)) {
                Ok(Message { body: Body::Want { keys }, .. }) => got.extend(keys),
                other => prop_assert!(false, "packed datagram decoded to {:?}", other),
            }
        }
        prop_assert_eq!(got, accepted);
    }
}

/// Found by `fuzz/run.sh wire_decode` (2026-11-28): a version-2 `Members` message holding a
/// suspicion decoded to a suspicion with no suspector, which was re-encoded as version 3 with
/// a 0 for the suspector: one byte longer than what came in, and unreadable to version-2
/// nodes. Such a message now goes out as version 2 again.
#[test]
fn fuzz_found_version_2_suspicion_reencodes_as_it_came() {
    let src = [
        0x67, 0x4b, 0x02, 0x10, 0x67, 0x4b, 0x00, 0x01, 0xff, 0x03, 0x04, 0x01, 0xff, 0xff, 0xff,
        0x01, 0x01, 0x01, 0xb2, 0x30, 0x01,
    ];
    let msg = wire::decode(&Bytes::copy_from_slice(&src)).expect("the fuzzer's input decodes");
    assert!(matches!(&msg.body, Body::Members { records, .. }
        if records.iter().any(|n| n.rec.status == Status::Suspect && n.suspector.is_none())));
    assert_eq!(wire::encode(&msg), src.to_vec());
    check_decoded(&src).expect("canonical, and no longer than the input");
}
