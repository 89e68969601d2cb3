//! What this node last heard from each peer about the peer's store, for metrics and the live
//! view: the digest root and key count every `Sync` and `SyncAck` carries (docs/protocol.md),
//! beside this node's own root and key count at the moment the message arrived. Equal roots
//! mean equal stores (up to a 64-bit hash collision), so the share of recently heard peers
//! whose root matched ours is a direct, cheap convergence signal, and a peer's key count above
//! ours says by how much we are behind it.
//!
//! Only the message header and the first two body fields are read (no allocation); the node
//! still decodes the whole message afterwards. The table is bounded ([`MAX_PEERS`]): without
//! authentication anyone can send datagrams from any address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::Replica;
use gossipkv_core::gossip::MemberRecord;
use gossipkv_core::gossip::wire::{MAGIC, Reader, version_understood};
use gossipkv_core::lww::NodeId;

/// Most peers remembered; past it the one heard from longest ago is forgotten.
pub const MAX_PEERS: usize = 4096;

/// Message kinds that carry the sender's root and key count.
const SYNC: u8 = 1;
const SYNC_ACK: u8 = 2;

/// The last digest a peer reported, and ours when it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerDigest {
    /// The peer's node id.
    pub id: NodeId,
    /// The peer's digest root (hash of its whole store).
    pub root: u64,
    /// Keys the peer holds (tombstones included).
    pub keys: u64,
    /// Our root when the message arrived.
    pub our_root: u64,
    /// Keys we held when the message arrived.
    pub our_keys: u64,
    /// When it arrived (ms since the UNIX epoch).
    pub at_ms: u64,
}

impl PeerDigest {
    /// Whether the peer's store equalled ours then.
    pub fn agrees(&self) -> bool {
        self.root == self.our_root
    }

    /// Keys the peer held beyond ours (0 when we held as many or more).
    pub fn keys_ahead(&self) -> u64 {
        self.keys.saturating_sub(self.our_keys)
    }
}

/// Reads the sender id, root and key count of a `Sync` or `SyncAck`; `None` for any other
/// message or malformed bytes.
pub fn peek_digest(msg: &Bytes) -> Option<(NodeId, u64, u64)> {
    let mut r = Reader::new(msg);
    if r.u16().ok()? != u16::from_le_bytes(MAGIC) || !version_understood(r.u8().ok()?) {
        return None;
    }
    let kind = r.u8().ok()?;
    if kind != SYNC && kind != SYNC_ACK {
        return None;
    }
    let from = r.varint32().ok()?;
    let _exchange = r.varint32().ok()?;
    let root = r.u64().ok()?;
    let keys = r.varint().ok()?;
    Some((from, root, keys))
}

/// How often the member list is copied at most while someone reads it
/// ([`PeerView::refresh_members`]).
pub const MEMBERS_EVERY_MS: u64 = 500;

/// How long after a read ([`PeerView::want_members`]) the list is kept fresh.
pub const MEMBERS_WANTED_MS: u64 = 10_000;

/// Peers' last reported digests, and the member list as this node last copied it.
#[derive(Debug, Default)]
pub struct PeerView {
    /// This node's replica, to compare with (set by [`crate::run`]).
    replica: Option<Arc<Replica>>,
    peers: HashMap<SocketAddr, PeerDigest>,
    /// Whether the node keeps a member table (else the list stays empty).
    tracks_members: bool,
    members: Vec<MemberRecord>,
    members_at: u64,
    members_key: u64,
    /// Until when (ms) someone wants the member list fresh.
    wanted_until: u64,
    /// The copy predates the current reader's first request: copy at the next input.
    stale: bool,
}

impl PeerView {
    /// Compares what peers report with `replica` from now on; `members`: whether the node
    /// keeps a member table (whose list [`Self::refresh_members`] will copy).
    pub fn attach(&mut self, replica: Arc<Replica>, members: bool) {
        self.replica = Some(replica);
        self.tracks_members = members;
    }

    /// Notes `msg` (already authenticated, if gossip is) from `from` if it carries a digest.
    /// Does nothing before [`Self::attach`].
    pub fn observe(&mut self, from: SocketAddr, msg: &Bytes, now_ms: u64) {
        let Some(replica) = &self.replica else { return };
        let Some((id, root, keys)) = peek_digest(msg) else { return };
        let (our_root, our_keys) = replica.store().root_and_keys();
        let seen =
            PeerDigest { id, root, keys, our_root, our_keys: our_keys as u64, at_ms: now_ms };
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&from) {
            let oldest = self.peers.iter().min_by_key(|(_, p)| p.at_ms).map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.peers.remove(&a);
            }
        }
        self.peers.insert(from, seen);
    }

    /// Every peer heard from, with what it last reported, sorted by address.
    pub fn peers(&self) -> Vec<(SocketAddr, PeerDigest)> {
        let mut v: Vec<_> = self.peers.iter().map(|(a, p)| (*a, *p)).collect();
        v.sort_unstable_by_key(|(a, _)| *a);
        v
    }

    /// Asks for a fresh member list for the next [`MEMBERS_WANTED_MS`]; a reader (the live
    /// view polls every second) calls this each time it reads. Returns whether the list is
    /// already fresh: if nobody read it recently it was not kept up to date, and the driver
    /// copies it at its next input (a reader may wait for that: see `gossipkv-node`).
    pub fn want_members(&mut self, now_ms: u64) -> bool {
        if now_ms >= self.wanted_until {
            self.stale = true;
        }
        self.wanted_until = now_ms.saturating_add(MEMBERS_WANTED_MS);
        !(self.stale && self.tracks_members)
    }

    /// Replaces the member list (this node included) with `records()` if someone reads it
    /// ([`Self::want_members`]) and it may be stale: a reader arrived since the last copy,
    /// `key` (a cheap summary of the table: its digest and status counts) changed, or the
    /// copy is older than [`MEMBERS_EVERY_MS`]. Called after every input: copying whenever
    /// the table changes cost O(members) a datagram on every node, nearly all of them never
    /// looked at (at 1,000 members it was a fifth of an idle node's gossip work).
    pub fn refresh_members(
        &mut self,
        now_ms: u64,
        key: u64,
        records: impl FnOnce() -> Vec<MemberRecord>,
    ) {
        if now_ms >= self.wanted_until {
            return;
        }
        let age = now_ms.saturating_sub(self.members_at);
        if self.stale || key != self.members_key || age >= MEMBERS_EVERY_MS {
            self.members = records();
            self.members_at = now_ms;
            self.members_key = key;
            self.stale = false;
        }
    }

    /// The member list as last copied (empty without membership).
    pub fn members(&self) -> &[MemberRecord] {
        &self.members
    }
}

#[cfg(test)]
mod tests {
    use gossipkv_core::gossip::wire::{self, Body, Hello, Message};
    use gossipkv_core::{ClockKind, StoreConfig};

    use super::*;

    fn msg(body: Body) -> Bytes {
        Bytes::from(wire::encode(&Message { from: 7, exchange: 3, body }))
    }

    #[test]
    fn reads_sync_and_sync_ack_only() {
        let hello = Hello::default();
        let sync = msg(Body::Sync { root: 0xabc, keys: 42, hello, haves: vec![] });
        assert_eq!(peek_digest(&sync), Some((7, 0xabc, 42)));
        let ack = Body::SyncAck { root: 9, keys: 1, hello, haves: vec![], wants: vec![1] };
        assert_eq!(peek_digest(&msg(ack)), Some((7, 9, 1)));
        assert_eq!(peek_digest(&msg(Body::Want { keys: vec![] })), None);
        for cut in 0..sync.len() {
            let _ = peek_digest(&sync.slice(..cut));
        }
        assert_eq!(peek_digest(&Bytes::from_static(b"junk")), None);
    }

    #[test]
    fn compares_with_our_store_and_stays_bounded() {
        let replica = Arc::new(Replica::new(0, ClockKind::Lamport, StoreConfig::default()));
        let mut view = PeerView::default();
        let hello = Hello::default();
        let root = replica.store().root_hash();
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let sync = msg(Body::Sync { root, keys: 0, hello, haves: vec![] });
        view.observe(a, &sync, 5);
        assert!(view.peers().is_empty(), "not attached yet");
        view.attach(Arc::clone(&replica), true);
        view.observe(a, &sync, 5);
        assert!(view.peers()[0].1.agrees());
        replica.put(b"k", &b"v"[..], 1);
        let other = msg(Body::Sync { root: 1, keys: 3, hello, haves: vec![] });
        view.observe(a, &other, 6);
        let (_, p) = view.peers()[0];
        assert!(!p.agrees());
        assert_eq!((p.keys_ahead(), p.at_ms), (2, 6));
        for port in 0..(MAX_PEERS as u16 + 10) {
            view.observe(SocketAddr::from(([10, 0, 0, 1], port)), &other, 10 + u64::from(port));
        }
        assert_eq!(view.peers().len(), MAX_PEERS);
        let me = MemberRecord {
            id: 0,
            addr: a,
            generation: 1,
            refute: 0,
            status: gossipkv_core::gossip::Status::Alive,
        };
        // nobody reading: never copied
        view.refresh_members(1_000, 1, || vec![me]);
        assert!(view.members().is_empty(), "unread: not copied");
        // a reader: stale until the next input copies it
        assert!(!view.want_members(1_001), "never copied: not fresh");
        view.refresh_members(1_002, 1, || vec![me]);
        assert_eq!(view.members().len(), 1, "wanted: copied at the next input");
        assert!(view.want_members(1_003), "copied since the request");
        view.refresh_members(1_004, 1, || vec![me, me]);
        assert_eq!(view.members().len(), 1, "same key: copied at most every MEMBERS_EVERY_MS");
        view.refresh_members(1_005, 2, || vec![me, me]);
        assert_eq!(view.members().len(), 2, "the table changed: copied at once");
        view.refresh_members(1_005 + MEMBERS_EVERY_MS, 2, || vec![me, me, me]);
        assert_eq!(view.members().len(), 3, "same key, old copy: copied again");
        // the reader went away: no more copies; one returning finds the list stale
        let late = 1_003 + MEMBERS_WANTED_MS;
        view.refresh_members(late, 3, || vec![me]);
        assert_eq!(view.members().len(), 3, "no longer read: not copied");
        assert!(!view.want_members(late + 1), "a reader after a quiet spell: stale");
        view.refresh_members(late + 2, 3, || vec![me]);
        assert_eq!(view.members().len(), 1);
        assert!(view.want_members(late + 3));
    }
}
