//! Where gossip bytes are made and read: the versioned binary encoding of every message.
//!
//! Hand-written rather than serde + postcard because gossip must *pack* datagrams to the MTU
//! item by item in priority order, which needs each item's exact encoded size as it is
//! appended, and because keys and values are read in place from the received datagram (an
//! [`EntryList`] borrows them from its bytes) without a copy. The format is small enough to
//! specify in full (docs/protocol.md):
//!
//! ```text
//! datagram := magic "gK" | version u8 (=2) | kind u8 | from varint | exchange varint | body
//! varint   := LEB128, at most 10 bytes;   u64 / u32 / u16 := little-endian fixed width
//! id       := key_hash u64 | ts u64 | version_hash u32                         (20 bytes)
//! leaf id  := short(key_hash) u32 | ts - base varint | short(version_hash) u16  (~10 bytes)
//! entry    := key_len varint | key | ts u64 | origin varint | tag u8 (0 value, 1 tombstone)
//!             | [value_len varint | value]   (value only when tag = 0)
//! ```
//!
//! Decoding never panics and never allocates more than the input can justify: every count is
//! checked against the bytes that remain (each item takes at least one byte).

use bytes::Bytes;
use thiserror::Error;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::digest::TREE_ARITY;
use crate::gossip::members::{MemberNews, MemberRecord, Status};
use crate::lww::{NodeId, Timestamp, Version, VersionRef};

/// First two bytes of every gossip datagram.
pub const MAGIC: [u8; 2] = *b"gK";
/// Newest wire format version. 3: a suspect member record carries its suspector's id.
/// 4: the origin-delta messages `Vector` and `Deltas` (kinds 17 and 18), sent only to peers
/// whose hello says they speak them ([`Hello::DELTAS`]).
pub const WIRE_VERSION: u8 = 4;
/// The version that added a suspicion's suspector to member records.
pub const WIRE_VERSION_SUSPECTOR: u8 = 3;
/// Oldest version understood, and the one every message that version 3 does not change is
/// sent in (all but a `Members` message holding a suspicion), so nodes of the previous
/// release still understand everything else during a rolling upgrade.
pub const WIRE_VERSION_BASE: u8 = 2;

/// Whether messages of wire `version` are understood here.
pub fn version_understood(version: u8) -> bool {
    (WIRE_VERSION_BASE..=WIRE_VERSION).contains(&version)
}

/// The version a `Members` message holding `records` is sent in: 3 if one is a suspicion
/// whose suspector is known (only version 3 carries it), else the base version, which every
/// node of the previous release reads.
pub fn members_version<'a>(records: impl IntoIterator<Item = &'a MemberNews>) -> u8 {
    if records.into_iter().any(carries_suspector) {
        WIRE_VERSION_SUSPECTOR
    } else {
        WIRE_VERSION_BASE
    }
}

/// Splits member records to send into the base version's share and version 3's: only a
/// suspicion whose suspector is known needs version 3, and a node of the previous release
/// drops a whole message of a version it does not read. Sent as two messages, the other
/// records (alive, dead, left, refutations, suspicions relayed without a suspector) still
/// reach such a node during a rolling upgrade. Returns `(version, records)` pairs, base
/// version first, leaving out an empty share.
pub fn members_by_version(records: &[MemberNews]) -> Vec<(u8, Vec<MemberNews>)> {
    let (v3, base): (Vec<MemberNews>, Vec<MemberNews>) =
        records.iter().copied().partition(carries_suspector);
    [(WIRE_VERSION_BASE, base), (WIRE_VERSION_SUSPECTOR, v3)]
        .into_iter()
        .filter(|(_, part)| !part.is_empty())
        .collect()
}
/// Encoded size of a [`VersionId`].
pub const ID_LEN: usize = 20;

/// A compact name for one version of one key: enough to tell whether the receiver lacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VersionId {
    /// Stable hash of the key.
    pub kh: u64,
    /// The version's timestamp.
    pub ts: Timestamp,
    /// Low 32 bits of the version's stable hash (tells concurrent values apart).
    pub vh: u32,
}

impl VersionId {
    /// The id of version `v` of `key`.
    pub fn of(key: &[u8], v: VersionRef<'_>) -> Self {
        let kh = crate::digest::key_hash(key);
        Self { kh, ts: v.ts, vh: crate::digest::version_hash(kh, v) as u32 }
    }
}

/// One version in a `Leaf` summary, fingerprinted with the exchange's salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeafId {
    /// `digest::short_hash(key_hash, exchange)`.
    pub fp: u32,
    /// The version's timestamp (sent as a delta from the message's smallest).
    pub ts: Timestamp,
    /// Low 16 bits of `digest::short_hash(version_hash, exchange)`.
    pub vfp: u16,
}

/// A sender's complete summary of one leaf: every version it keeps there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSection {
    /// Leaf index.
    pub leaf: u32,
    /// Every version the sender keeps in the leaf.
    pub ids: Vec<LeafId>,
}

/// One key with one of its versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireEntry {
    /// The key.
    pub key: Bytes,
    /// The version.
    pub version: Version,
}

/// A message's list of entries, kept as the bytes it arrived in (or was encoded to): decoding
/// checks every entry once and slices the datagram once, and [`EntryList::iter`] hands out
/// keys and values borrowed from those bytes. A received answer of tens of thousands of
/// entries thus costs no per-entry allocation, copy or reference count (the `Bytes` slices and
/// the vector of a `Vec<WireEntry>` were about 3.5% of the simulator's CPU in a profile).
#[derive(Clone, Default)]
pub struct EntryList {
    /// `len` encoded entries (`entry` in the module doc), and nothing else.
    raw: Bytes,
    len: usize,
}

impl EntryList {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in order, borrowed from the list's bytes.
    pub fn iter(&self) -> EntryIter<'_> {
        EntryIter { r: Reader::new(&self.raw), left: self.len }
    }

    /// Owned copies of the entries.
    pub fn to_vec(&self) -> Vec<WireEntry> {
        self.iter()
            .map(|(key, v)| WireEntry { key: Bytes::copy_from_slice(key), version: v.to_owned() })
            .collect()
    }
}

impl<'a> FromIterator<(&'a [u8], VersionRef<'a>)> for EntryList {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], VersionRef<'a>)>>(iter: I) -> Self {
        let mut w = Writer::with_capacity(0);
        let mut len = 0;
        for (key, v) in iter {
            w.entry_ref(key, v);
            len += 1;
        }
        Self { raw: Bytes::from(w.buf), len }
    }
}

impl<'a> FromIterator<&'a WireEntry> for EntryList {
    fn from_iter<I: IntoIterator<Item = &'a WireEntry>>(iter: I) -> Self {
        iter.into_iter().map(|e| (&e.key[..], e.version.as_ref())).collect()
    }
}

impl From<Vec<WireEntry>> for EntryList {
    fn from(entries: Vec<WireEntry>) -> Self {
        entries.iter().collect()
    }
}

impl<'a> IntoIterator for &'a EntryList {
    type Item = (&'a [u8], VersionRef<'a>);
    type IntoIter = EntryIter<'a>;

    fn into_iter(self) -> EntryIter<'a> {
        self.iter()
    }
}

impl PartialEq for EntryList {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for EntryList {}

impl std::fmt::Debug for EntryList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over an [`EntryList`]: `(key, version)` borrowed from the list's bytes.
#[derive(Debug)]
pub struct EntryIter<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = (&'a [u8], VersionRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // the list's bytes were checked entry by entry when it was made: this cannot fail,
        // and if it did the list would just end early
        self.r.entry().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Opens an exchange: the sender's root hash and key count, and its fresh versions.
    Sync {
        /// Root of the sender's digest tree.
        root: u64,
        /// Number of keys the sender holds (tombstones included).
        keys: u64,
        /// The sender's membership summary.
        hello: Hello,
        /// Fresh versions (rumors) the sender advertises.
        haves: Vec<VersionId>,
    },
    /// Answers a `Sync`: the responder's root, count, fresh versions, and the keys it wants.
    SyncAck {
        /// Root of the responder's digest tree.
        root: u64,
        /// Number of keys the responder holds.
        keys: u64,
        /// The responder's membership summary.
        hello: Hello,
        /// Fresh versions the responder advertises.
        haves: Vec<VersionId>,
        /// Key hashes whose versions the responder asks for.
        wants: Vec<u64>,
    },
    /// Descent step: the sender's hashes of the children of some nodes at `level`, as
    /// 16-bit fingerprints salted by the exchange id (`digest::short_hash`, low 16 bits).
    Tree {
        /// Level of the parent nodes (0 = root).
        level: u8,
        /// `(parent index, fingerprints of its 16 children)`.
        nodes: Vec<(u32, [u16; TREE_ARITY])>,
    },
    /// Descent answer: which children differ, as a 16-bit map per parent.
    TreeAck {
        /// Level of the parent nodes.
        level: u8,
        /// `(parent index, bitmap of differing children)`, non-zero maps only.
        diffs: Vec<(u32, u16)>,
        /// When the children are leaves: the responder's key count of each differing leaf,
        /// in the order of `diffs` and their bits (so the side with fewer keys summarises).
        counts: Vec<u32>,
    },
    /// "Send me your summaries (`Leaf`) of these leaves": the initiator holds more keys there.
    LeafRequest {
        /// Leaf indices.
        leaves: Vec<u32>,
    },
    /// The sender's complete list of versions in each of some leaves, as fingerprints salted
    /// by the exchange id (about 10 bytes a version instead of 20). All the leaves one step of
    /// an exchange summarises travel in one message.
    Leaf {
        /// One section per leaf.
        sections: Vec<LeafSection>,
    },
    /// "Send me every version you keep of these keys."
    Want {
        /// Key hashes.
        keys: Vec<u64>,
    },
    /// "Send me every version you keep of the keys in these leaves with these salted key
    /// fingerprints" (the answer to a `Leaf`, whose fingerprints name the keys).
    WantLeaf {
        /// `(leaf index, digest::short_hash(key_hash, exchange) of each key wanted)`.
        wants: Vec<(u32, Vec<u32>)>,
    },
    /// Versions, pushed or asked for.
    Entries {
        /// The versions.
        entries: EntryList,
    },
    /// Bulk catch-up: "stream me your store from this leaf on" (sent as a stream message).
    BulkRequest {
        /// First leaf wanted.
        cursor: u32,
    },
    /// Membership: "is this address up?" Answered with `Ack` to `origin`, or to the sender
    /// when `origin` is absent. The exchange field carries the probe's nonce.
    Ping {
        /// Who asked for this ping (an indirect probe), if not the sender.
        origin: Option<SocketAddr>,
    },
    /// Membership: "ping `target` for me" (an indirect probe).
    PingReq {
        /// The member to ping.
        target: SocketAddr,
    },
    /// Membership: the answer to a `Ping`.
    Ack,
    /// Membership: "send me the records of the buckets of your member table whose digest
    /// differs from mine" (table digests differed).
    MemberRequest {
        /// Low 32 bits of the requester's digest of each bucket (`members::BUCKETS`).
        buckets: Vec<u32>,
    },
    /// Membership records: rumors of changes, or (`full`) a page of a table pull.
    Members {
        /// A page of a full table (not re-rumored by the receiver).
        full: bool,
        /// The records (a suspicion with its suspector).
        records: Vec<MemberNews>,
    },
    /// One chunk of a bulk catch-up.
    BulkChunk {
        /// Next leaf to ask for, or 0 when the whole store was sent.
        next: u32,
        /// Versions of the leaves in this chunk.
        entries: EntryList,
    },
    /// Origin deltas (version 4): the sender's watermark per origin, and the origins it pulls
    /// from the receiver. A watermark `w` for origin `o` says "I hold every version `o` issued
    /// with a timestamp up to `w`, or something newer for its key".
    Vector {
        /// The receiver must answer with its own vector (and its pulls).
        ask: bool,
        /// `(origin, watermark)`, origins strictly increasing; empty in a pull-only message.
        vector: Vec<(NodeId, Timestamp)>,
        /// `(origin, from)`: "send me the versions of `o` above `from`, up to your watermark".
        pulls: Vec<(NodeId, Timestamp)>,
    },
    /// Origin deltas (version 4): the answer to pulls. Each range `(origin, from, to)` says
    /// the entries hold every version of `origin` with a timestamp in `(from, to]` that the
    /// sender keeps, so a receiver whose watermark is at least `from` may raise it to `to`.
    Deltas {
        /// `(origin, from, to)`.
        ranges: Vec<(NodeId, Timestamp, Timestamp)>,
        /// The versions.
        entries: EntryList,
    },
}

impl Body {
    /// The kind byte on the wire.
    pub fn kind(&self) -> u8 {
        match self {
            Body::Sync { .. } => 1,
            Body::SyncAck { .. } => 2,
            Body::Tree { .. } => 3,
            Body::TreeAck { .. } => 4,
            Body::Leaf { .. } => 5,
            Body::Want { .. } => 6,
            Body::Entries { .. } => 7,
            Body::BulkRequest { .. } => 8,
            Body::BulkChunk { .. } => 9,
            Body::WantLeaf { .. } => 10,
            Body::LeafRequest { .. } => 11,
            Body::Ping { .. } => 12,
            Body::PingReq { .. } => 13,
            Body::Ack => 14,
            Body::MemberRequest { .. } => 15,
            Body::Members { .. } => 16,
            Body::Vector { .. } => 17,
            Body::Deltas { .. } => 18,
        }
    }

    /// A short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        KIND_NAMES[usize::from(self.kind())]
    }
}

/// Number of kind bytes in use, plus one (kind 0 is unused).
pub const KINDS: usize = 19;

/// Names of message kinds, indexed by kind byte (0 is unused).
pub const KIND_NAMES: [&str; KINDS] = [
    "invalid",
    "sync",
    "sync_ack",
    "tree",
    "tree_ack",
    "leaf",
    "want",
    "entries",
    "bulk_request",
    "bulk_chunk",
    "want_leaf",
    "leaf_request",
    "ping",
    "ping_req",
    "ack",
    "member_request",
    "members",
    "vector",
    "deltas",
];

/// What every `Sync` and `SyncAck` says about its sender's membership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// The sender's generation (0: the sender runs without membership).
    pub generation: u64,
    /// The sender's refutation counter.
    pub refute: u32,
    /// Digest of the sender's member table.
    pub digest: u64,
    /// Members the sender knows, itself included.
    pub members: u32,
    /// The sender's clock (highest timestamp issued or seen): a node catching up after a
    /// restart raises its clock to it, so its next writes beat what it wrote before.
    pub clock: u64,
    /// Bit 0 ([`Hello::AWAY`]): the sender has been away from a majority longer than half
    /// the purge horizon. Bit 1 ([`Hello::QUORUM`]): it sees a majority.
    pub flags: u8,
}

impl Hello {
    /// Flag: the sender is away (see docs/protocol.md, "Deletes").
    pub const AWAY: u8 = 1;
    /// Flag: the sender believes a majority of its members is up, and is not away.
    pub const QUORUM: u8 = 2;
    /// Flag: the sender speaks origin deltas (`Vector`, `Deltas`: wire version 4).
    pub const DELTAS: u8 = 4;

    /// Encoded size.
    pub fn len(&self) -> usize {
        varint_len(self.generation)
            + varint_len(u64::from(self.refute))
            + 8
            + varint_len(u64::from(self.members))
            + 8
            + 1
    }

    /// Never empty (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender's node id.
    pub from: NodeId,
    /// Exchange id chosen by the initiator and echoed by every message of the exchange.
    pub exchange: u32,
    /// The content.
    pub body: Body,
}

/// Why a datagram was refused. Every refusal is counted; none panics.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Does not start with the gossip magic.
    #[error("bad magic")]
    BadMagic,
    /// A wire version this build does not speak.
    #[error("unsupported wire version {0}")]
    Version(u8),
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// Ended in the middle of a field.
    #[error("truncated message")]
    Truncated,
    /// A varint longer than 10 bytes or overflowing its type.
    #[error("malformed varint")]
    Varint,
    /// A count or length larger than the bytes that remain could hold.
    #[error("length out of range")]
    Length,
    /// An unknown tag byte.
    #[error("bad tag {0}")]
    Tag(u8),
    /// Bytes left over after the body.
    #[error("trailing bytes")]
    Trailing,
}

/// Appends encoded fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

/// Encoded length of a LEB128 varint.
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Encoded length of a `Leaf` section ([`Writer::leaf_section`]).
pub fn leaf_section_len(leaf: u32, ids: &[LeafId]) -> usize {
    let base = ids.iter().map(|i| i.ts).min().unwrap_or(0);
    let items: usize = ids.iter().map(|i| 6 + varint_len(i.ts - base)).sum();
    varint_len(u64::from(leaf)) + 8 + varint_len(ids.len() as u64) + items
}

/// Encoded length of a socket address.
pub fn addr_len(a: &SocketAddr) -> usize {
    if a.is_ipv4() { 1 + 4 + 2 } else { 1 + 16 + 2 }
}

/// Encoded length of a member record in a message of wire `version` ([`members_version`]):
/// with its suspector if a suspicion and the version carries one.
pub fn member_len(n: &MemberNews, version: u8) -> usize {
    let m = &n.rec;
    varint_len(u64::from(m.id))
        + addr_len(&m.addr)
        + varint_len(m.generation)
        + varint_len(u64::from(m.refute))
        + 1
        + if suspector_on_wire(m.status, version) {
            varint_len(suspector_code(n.suspector))
        } else {
            0
        }
}

/// Whether `n` is a suspicion whose suspector is known: what makes a `Members` message
/// version 3.
fn carries_suspector(n: &MemberNews) -> bool {
    n.rec.status == Status::Suspect && n.suspector.is_some()
}

/// Whether a record of `status` is followed by its suspector in a message of wire `version`:
/// every suspicion is from version 3 on, none before. Writer and reader both ask here.
fn suspector_on_wire(status: Status, version: u8) -> bool {
    status == Status::Suspect && version >= WIRE_VERSION_SUSPECTOR
}

/// How a suspect record's suspector is written: its id + 1, 0 when unknown.
fn suspector_code(s: Option<NodeId>) -> u64 {
    s.map_or(0, |id| u64::from(id) + 1)
}

/// Encoded length of an entry.
pub fn entry_len(key: &[u8], v: &Version) -> usize {
    entry_len_ref(key, v.as_ref())
}

/// Encoded length of an entry, from a borrowed version.
pub fn entry_len_ref(key: &[u8], v: VersionRef<'_>) -> usize {
    let value = v.value.map_or(0, |x| varint_len(x.len() as u64) + x.len());
    varint_len(key.len() as u64) + key.len() + 8 + varint_len(u64::from(v.origin)) + 1 + value
}

impl Writer {
    /// A writer with a capacity hint.
    pub fn with_capacity(n: usize) -> Self {
        Self { buf: Vec::with_capacity(n) }
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a little-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a LEB128 varint.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Appends length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// Appends a message header in the base version ([`WIRE_VERSION_BASE`]).
    pub fn header(&mut self, kind: u8, from: NodeId, exchange: u32) {
        self.header_v(WIRE_VERSION_BASE, kind, from, exchange);
    }

    /// Appends a message header of wire `version`.
    pub fn header_v(&mut self, version: u8, kind: u8, from: NodeId, exchange: u32) {
        self.buf.extend_from_slice(&MAGIC);
        self.u8(version);
        self.u8(kind);
        self.varint(u64::from(from));
        self.varint(u64::from(exchange));
    }

    /// Appends a socket address: family byte (4 or 6), address bytes, port u16.
    pub fn addr(&mut self, a: &SocketAddr) {
        match a.ip() {
            IpAddr::V4(ip) => {
                self.u8(4);
                self.buf.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.u8(6);
                self.buf.extend_from_slice(&ip.octets());
            }
        }
        self.u16(a.port());
    }

    /// Appends a membership summary.
    pub fn hello(&mut self, h: &Hello) {
        self.varint(h.generation);
        self.varint(u64::from(h.refute));
        self.u64(h.digest);
        self.varint(u64::from(h.members));
        self.u64(h.clock);
        self.u8(h.flags);
    }

    /// Appends a member record for a message of wire `version`; from version 3 on, a
    /// suspicion is followed by its suspector (id + 1, or 0 if unknown).
    pub fn member(&mut self, n: &MemberNews, version: u8) {
        let m = &n.rec;
        self.varint(u64::from(m.id));
        self.addr(&m.addr);
        self.varint(m.generation);
        self.varint(u64::from(m.refute));
        self.u8(m.status.to_byte());
        if suspector_on_wire(m.status, version) {
            self.varint(suspector_code(n.suspector));
        }
    }

    /// Appends a version id.
    pub fn id(&mut self, id: &VersionId) {
        self.u64(id.kh);
        self.u64(id.ts);
        self.u32(id.vh);
    }

    /// Appends one leaf's section of a `Leaf` message: `leaf varint | base u64 | count
    /// varint | (fp u32, ts - base varint, vfp u16) per version`, `base` the smallest ts.
    pub fn leaf_section(&mut self, leaf: u32, ids: &[LeafId]) {
        let base = ids.iter().map(|i| i.ts).min().unwrap_or(0);
        self.varint(u64::from(leaf));
        self.u64(base);
        self.varint(ids.len() as u64);
        for id in ids {
            self.u32(id.fp);
            self.varint(id.ts - base);
            self.u16(id.vfp);
        }
    }

    /// Appends one leaf's section of a `WantLeaf` message: `leaf varint | count varint |
    /// fp u32 per key`.
    pub fn want_section(&mut self, leaf: u32, fps: &[u32]) {
        self.varint(u64::from(leaf));
        self.varint(fps.len() as u64);
        fps.iter().for_each(|f| self.u32(*f));
    }

    /// Appends a list's count and its entries.
    pub fn entries(&mut self, list: &EntryList) {
        self.varint(list.len as u64);
        self.buf.extend_from_slice(&list.raw);
    }

    /// Appends an entry.
    pub fn entry(&mut self, key: &[u8], v: &Version) {
        self.entry_ref(key, v.as_ref());
    }

    /// Appends an entry from a borrowed version.
    pub fn entry_ref(&mut self, key: &[u8], v: VersionRef<'_>) {
        self.bytes(key);
        self.u64(v.ts);
        self.varint(u64::from(v.origin));
        match v.value {
            Some(value) => {
                self.u8(0);
                self.bytes(value);
            }
            None => self.u8(1),
        }
    }

    /// Appends a watermark vector: `count | base u64 | [(origin gap varint, wm - base
    /// varint)]`, origins strictly increasing (the first gap is the first origin), `base` the
    /// smallest watermark. Watermarks of one era differ by seconds, so each pair takes about
    /// 6 bytes instead of 12.
    pub fn vector(&mut self, vector: &[(NodeId, Timestamp)]) {
        self.varint(vector.len() as u64);
        if vector.is_empty() {
            return;
        }
        let base = vector.iter().map(|&(_, w)| w).min().unwrap_or(0);
        self.u64(base);
        let mut prev = 0u64;
        for (i, &(o, w)) in vector.iter().enumerate() {
            let o = u64::from(o);
            self.varint(if i == 0 { o } else { o.wrapping_sub(prev) });
            self.varint(w - base);
            prev = o;
        }
    }

    /// Appends delta ranges: `count | [(origin varint, from varint, to - from varint)]`.
    pub fn ranges(&mut self, ranges: &[(NodeId, Timestamp, Timestamp)]) {
        self.varint(ranges.len() as u64);
        for &(o, from, to) in ranges {
            self.varint(u64::from(o));
            self.varint(from);
            self.varint(to.saturating_sub(from));
        }
    }
}

/// Reads fields from a received datagram; every method fails instead of panicking.
#[derive(Debug)]
pub struct Reader<'a> {
    src: &'a Bytes,
    pos: usize,
    /// Wire version of the message read ([`WIRE_VERSION`] until [`decode`] reads it).
    version: u8,
}

impl<'a> Reader<'a> {
    /// A reader over `src`.
    pub fn new(src: &'a Bytes) -> Self {
        Self { src, pos: 0, version: WIRE_VERSION }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.src.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let src: &'a [u8] = self.src;
        let end = self.pos.checked_add(n).ok_or(DecodeError::Length)?;
        let s = src.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a LEB128 varint.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // one or two bytes, the usual cases (lengths, counts, node ids below 16,384) inline;
        // the rest out of line
        let src: &[u8] = self.src;
        match src.get(self.pos..) {
            Some(&[b, ..]) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            Some(&[b, c, ..]) if c < 0x80 => {
                self.pos += 2;
                Ok(u64::from(b & 0x7f) | u64::from(c) << 7)
            }
            _ => self.varint_long(),
        }
    }

    /// [`Reader::varint`] of any length.
    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(DecodeError::Varint);
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Varint)
    }

    /// Reads a varint that must fit a u32.
    pub fn varint32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::Varint)
    }

    /// Reads a count of items that each take at least `min_item` bytes.
    pub fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Length)?;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(DecodeError::Length);
        }
        Ok(n)
    }

    /// Reads length-prefixed bytes, borrowed.
    fn slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.count(1)?;
        self.take(n)
    }

    /// Reads a socket address.
    pub fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => {
                let mut a = [0u8; 4];
                a.copy_from_slice(self.take(4)?);
                IpAddr::V4(Ipv4Addr::from(a))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16)?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            t => return Err(DecodeError::Tag(t)),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    /// Reads a membership summary.
    pub fn hello(&mut self) -> Result<Hello, DecodeError> {
        Ok(Hello {
            generation: self.varint()?,
            refute: self.varint32()?,
            digest: self.u64()?,
            members: self.varint32()?,
            clock: self.u64()?,
            flags: self.u8()?,
        })
    }

    /// Reads a member record (and a suspicion's suspector, from version 3 on).
    pub fn member(&mut self) -> Result<MemberNews, DecodeError> {
        let id = self.varint32()?;
        let addr = self.addr()?;
        let generation = self.varint()?;
        let refute = self.varint32()?;
        let b = self.u8()?;
        let status = Status::from_byte(b).ok_or(DecodeError::Tag(b))?;
        let suspector = if suspector_on_wire(status, self.version) {
            match self.varint()? {
                0 => None,
                s => Some(NodeId::try_from(s - 1).map_err(|_| DecodeError::Varint)?),
            }
        } else {
            None
        };
        Ok(MemberNews { rec: MemberRecord { id, addr, generation, refute, status }, suspector })
    }

    /// Reads a version id.
    pub fn id(&mut self) -> Result<VersionId, DecodeError> {
        Ok(VersionId { kh: self.u64()?, ts: self.u64()?, vh: self.u32()? })
    }

    /// Reads an entry.
    pub fn entry(&mut self) -> Result<(&'a [u8], VersionRef<'a>), DecodeError> {
        let key = self.slice()?;
        let ts = self.u64()?;
        let origin = self.varint32()?;
        let value = match self.u8()? {
            0 => Some(self.slice()?),
            1 => None,
            t => return Err(DecodeError::Tag(t)),
        };
        Ok((key, VersionRef { ts, origin, value }))
    }

    fn ids(&mut self) -> Result<Vec<VersionId>, DecodeError> {
        let n = self.count(ID_LEN)?;
        read_n(n, || self.id())
    }

    fn hashes(&mut self) -> Result<Vec<u64>, DecodeError> {
        let n = self.count(8)?;
        read_n(n, || self.u64())
    }

    fn entries(&mut self) -> Result<EntryList, DecodeError> {
        // smallest entry: 1 (key len) + 8 (ts) + 1 (origin) + 1 (tag)
        let len = self.count(11)?;
        let start = self.pos;
        for _ in 0..len {
            self.entry()?;
        }
        Ok(EntryList { raw: self.src.slice(start..self.pos), len })
    }

    /// Reads a watermark vector (see [`Writer::vector`]); origins must strictly increase.
    pub fn vector(&mut self) -> Result<Vec<(NodeId, Timestamp)>, DecodeError> {
        // a pair takes at least 2 bytes
        let n = self.count(2)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let base = self.u64()?;
        let mut out = Vec::with_capacity(n);
        let mut prev = 0u64;
        for i in 0..n {
            let gap = self.varint()?;
            if i > 0 && gap == 0 {
                return Err(DecodeError::Length);
            }
            let o = prev.checked_add(gap).ok_or(DecodeError::Varint)?;
            let o = NodeId::try_from(o).map_err(|_| DecodeError::Varint)?;
            let w = base.checked_add(self.varint()?).ok_or(DecodeError::Varint)?;
            out.push((o, w));
            prev = u64::from(o);
        }
        Ok(out)
    }

    /// Reads delta ranges (see [`Writer::ranges`]).
    pub fn ranges(&mut self) -> Result<Vec<(NodeId, Timestamp, Timestamp)>, DecodeError> {
        let n = self.count(3)?;
        (0..n)
            .map(|_| {
                let o = self.varint32()?;
                let from = self.varint()?;
                let to = from.checked_add(self.varint()?).ok_or(DecodeError::Varint)?;
                Ok((o, from, to))
            })
            .collect()
    }
}

/// Encodes a whole message (used for small, fixed messages and by tests; gossip packs lists
/// with [`Packer`]).
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    let version = match &msg.body {
        Body::Members { records, .. } => members_version(records),
        Body::Vector { .. } | Body::Deltas { .. } => WIRE_VERSION,
        _ => WIRE_VERSION_BASE,
    };
    w.header_v(version, msg.body.kind(), msg.from, msg.exchange);
    match &msg.body {
        Body::Sync { root, keys, hello, haves } => {
            w.u64(*root);
            w.varint(*keys);
            w.hello(hello);
            w.varint(haves.len() as u64);
            haves.iter().for_each(|id| w.id(id));
        }
        Body::SyncAck { root, keys, hello, haves, wants } => {
            w.u64(*root);
            w.varint(*keys);
            w.hello(hello);
            w.varint(haves.len() as u64);
            haves.iter().for_each(|id| w.id(id));
            w.varint(wants.len() as u64);
            wants.iter().for_each(|k| w.u64(*k));
        }
        Body::Tree { level, nodes } => {
            w.u8(*level);
            w.varint(nodes.len() as u64);
            for (idx, hs) in nodes {
                w.varint(u64::from(*idx));
                hs.iter().for_each(|h| w.u16(*h));
            }
        }
        Body::TreeAck { level, diffs, counts } => {
            w.u8(*level);
            w.varint(diffs.len() as u64);
            for (idx, map) in diffs {
                w.varint(u64::from(*idx));
                w.u16(*map);
            }
            w.varint(counts.len() as u64);
            counts.iter().for_each(|c| w.varint(u64::from(*c)));
        }
        Body::LeafRequest { leaves } => {
            w.varint(leaves.len() as u64);
            leaves.iter().for_each(|l| w.varint(u64::from(*l)));
        }
        Body::Leaf { sections } => {
            w.varint(sections.len() as u64);
            sections.iter().for_each(|s| w.leaf_section(s.leaf, &s.ids));
        }
        Body::WantLeaf { wants } => {
            w.varint(wants.len() as u64);
            wants.iter().for_each(|(leaf, fps)| w.want_section(*leaf, fps));
        }
        Body::Want { keys } => {
            w.varint(keys.len() as u64);
            keys.iter().for_each(|k| w.u64(*k));
        }
        Body::Entries { entries } => {
            w.entries(entries);
        }
        Body::BulkRequest { cursor } => w.varint(u64::from(*cursor)),
        Body::Ping { origin } => match origin {
            None => w.u8(0),
            Some(a) => {
                w.u8(1);
                w.addr(a);
            }
        },
        Body::PingReq { target } => w.addr(target),
        Body::Ack => {}
        Body::MemberRequest { buckets } => {
            w.varint(buckets.len() as u64);
            buckets.iter().for_each(|b| w.u32(*b));
        }
        Body::Members { full, records } => {
            w.u8(u8::from(*full));
            w.varint(records.len() as u64);
            records.iter().for_each(|m| w.member(m, version));
        }
        Body::BulkChunk { next, entries } => {
            w.varint(u64::from(*next));
            w.entries(entries);
        }
        Body::Vector { ask, vector, pulls } => {
            w.u8(u8::from(*ask));
            w.vector(vector);
            w.varint(pulls.len() as u64);
            for (o, from) in pulls {
                w.varint(u64::from(*o));
                w.varint(*from);
            }
        }
        Body::Deltas { ranges, entries } => {
            w.ranges(ranges);
            w.entries(entries);
        }
    }
    w.buf
}

/// The kind byte of an encoded message, read without decoding it: `None` if `payload` does
/// not start like one of ours (too short, or another magic). Only for sorting messages
/// cheaply (the simulator weighs its work by it); what a message is, only [`decode`] says.
pub fn peek_kind(payload: &[u8]) -> Option<u8> {
    if payload.get(..2)? != MAGIC {
        return None;
    }
    payload.get(3).copied()
}

/// Decodes one datagram. Never panics, whatever the bytes.
pub fn decode(src: &Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(src);
    if r.take(2)? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8()?;
    if !version_understood(version) {
        return Err(DecodeError::Version(version));
    }
    r.version = version;
    let kind = r.u8()?;
    let from = r.varint32()?;
    let exchange = r.varint32()?;
    let body = match kind {
        1 => Body::Sync { root: r.u64()?, keys: r.varint()?, hello: r.hello()?, haves: r.ids()? },
        2 => Body::SyncAck {
            root: r.u64()?,
            keys: r.varint()?,
            hello: r.hello()?,
            haves: r.ids()?,
            wants: r.hashes()?,
        },
        12 => {
            let origin = match r.u8()? {
                0 => None,
                1 => Some(r.addr()?),
                t => return Err(DecodeError::Tag(t)),
            };
            Body::Ping { origin }
        }
        13 => Body::PingReq { target: r.addr()? },
        14 => Body::Ack,
        15 => {
            let n = r.count(4)?;
            Body::MemberRequest { buckets: read_n(n, || r.u32())? }
        }
        16 => {
            let full = match r.u8()? {
                0 => false,
                1 => true,
                t => return Err(DecodeError::Tag(t)),
            };
            // smallest record: id 1 + addr 7 + generation 1 + refute 1 + status 1
            let n = r.count(11)?;
            let records = read_n(n, || r.member())?;
            Body::Members { full, records }
        }
        3 => {
            let level = r.u8()?;
            let n = r.count(1 + 2 * TREE_ARITY)?;
            let mut nodes = Vec::with_capacity(n);
            for _ in 0..n {
                let idx = r.varint32()?;
                let mut hs = [0u16; TREE_ARITY];
                for h in &mut hs {
                    *h = r.u16()?;
                }
                nodes.push((idx, hs));
            }
            Body::Tree { level, nodes }
        }
        4 => {
            let level = r.u8()?;
            let n = r.count(3)?;
            let diffs = read_n(n, || Ok((r.varint32()?, r.u16()?)))?;
            let n = r.count(1)?;
            let counts = read_n(n, || r.varint32())?;
            Body::TreeAck { level, diffs, counts }
        }
        5 => {
            // a section: leaf (1+) | base (8) | count (1+)
            let n = r.count(10)?;
            let mut sections = Vec::with_capacity(n);
            for _ in 0..n {
                let (leaf, base) = (r.varint32()?, r.u64()?);
                let n = r.count(7)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    let fp = r.u32()?;
                    let ts = base.checked_add(r.varint()?).ok_or(DecodeError::Varint)?;
                    ids.push(LeafId { fp, ts, vfp: r.u16()? });
                }
                sections.push(LeafSection { leaf, ids });
            }
            Body::Leaf { sections }
        }
        11 => {
            let n = r.count(1)?;
            Body::LeafRequest { leaves: read_n(n, || r.varint32())? }
        }
        10 => {
            // a section: leaf (1+) | count (1+)
            let n = r.count(2)?;
            let mut wants = Vec::with_capacity(n);
            for _ in 0..n {
                let leaf = r.varint32()?;
                let n = r.count(4)?;
                let fps = read_n(n, || r.u32())?;
                wants.push((leaf, fps));
            }
            Body::WantLeaf { wants }
        }
        6 => Body::Want { keys: r.hashes()? },
        7 => Body::Entries { entries: r.entries()? },
        8 => Body::BulkRequest { cursor: r.varint32()? },
        9 => Body::BulkChunk { next: r.varint32()?, entries: r.entries()? },
        17 if version >= 4 => {
            let ask = match r.u8()? {
                0 => false,
                1 => true,
                t => return Err(DecodeError::Tag(t)),
            };
            let vector = r.vector()?;
            let n = r.count(2)?;
            let pulls = read_n(n, || Ok((r.varint32()?, r.varint()?)))?;
            Body::Vector { ask, vector, pulls }
        }
        18 if version >= 4 => Body::Deltas { ranges: r.ranges()?, entries: r.entries()? },
        k => return Err(DecodeError::Kind(k)),
    };
    if r.remaining() != 0 {
        return Err(DecodeError::Trailing);
    }
    Ok(Message { from, exchange, body })
}

/// The fields of a message's header: wire version, kind, sender and exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Wire version of the message.
    pub version: u8,
    /// Message kind.
    pub kind: u8,
    /// The sender's node id.
    pub from: NodeId,
    /// The exchange the message belongs to.
    pub exchange: u32,
}

impl Head {
    /// A header in the base version ([`WIRE_VERSION_BASE`]).
    pub fn base(kind: u8, from: NodeId, exchange: u32) -> Self {
        Self { version: WIRE_VERSION_BASE, kind, from, exchange }
    }

    /// Encoded length: magic 2 + version 1 + kind 1 + the sender's and exchange's varints.
    pub fn encoded_len(&self) -> usize {
        4 + varint_len(u64::from(self.from)) + varint_len(u64::from(self.exchange))
    }
}

/// A list-bodied message, `header | prefix | count varint | items`, from `count` items
/// already encoded one after another in `items`. Every list whose items are encoded before
/// its header is framed by it: [`Packer`]'s datagrams, and the lists that travel whole
/// (gossip's entry lists, delta answers and bulk chunks, the simulator's naive baseline).
/// The buffer is allocated at its exact length (a `Bytes` made from a full `Vec` needs no
/// second allocation).
pub fn list_message(head: Head, prefix: &[u8], count: u64, items: &[u8]) -> Vec<u8> {
    let len = head.encoded_len() + prefix.len() + varint_len(count) + items.len();
    let mut w = Writer::with_capacity(len);
    w.header_v(head.version, head.kind, head.from, head.exchange);
    w.buf.extend_from_slice(prefix);
    w.varint(count);
    w.buf.extend_from_slice(items);
    debug_assert_eq!(w.buf.len(), len);
    w.buf
}

/// Packs a list-bodied message into as many datagrams as needed, none over `limit` bytes:
/// `header | prefix | count varint | items`. Items are appended in priority order; when the
/// next one does not fit, the datagram is finished and a new one started.
#[derive(Debug)]
pub struct Packer {
    head: Head,
    prefix: Vec<u8>,
    limit: usize,
    items: Writer,
    count: u64,
    done: Vec<Vec<u8>>,
}

impl Packer {
    /// A packer for messages of `kind` with a fixed `prefix` (fields before the list).
    pub fn new(kind: u8, from: NodeId, exchange: u32, prefix: Vec<u8>, limit: usize) -> Self {
        Self {
            head: Head::base(kind, from, exchange),
            prefix,
            limit,
            items: Writer::default(),
            count: 0,
            done: Vec::new(),
        }
    }

    /// The same, its datagrams of wire `version` (the base version by default).
    pub fn with_version(mut self, version: u8) -> Self {
        self.head.version = version;
        self
    }

    fn overhead(&self, count: u64) -> usize {
        self.head.encoded_len() + self.prefix.len() + varint_len(count)
    }

    /// Whether an item of `len` bytes fits in the current datagram.
    pub fn fits(&self, len: usize) -> bool {
        self.overhead(self.count + 1) + self.items.buf.len() + len <= self.limit
    }

    /// Appends an item of `len` encoded bytes written by `write`, starting a new datagram if
    /// needed. Returns false (and writes nothing) if the item alone exceeds the limit.
    pub fn push(&mut self, len: usize, write: impl FnOnce(&mut Writer)) -> bool {
        if self.overhead(1) + len > self.limit {
            return false;
        }
        if !self.fits(len) {
            self.finish_one();
        }
        write(&mut self.items);
        self.count += 1;
        true
    }

    /// Items in the datagram being filled.
    pub fn pending(&self) -> u64 {
        self.count
    }

    fn finish_one(&mut self) {
        let msg = list_message(self.head, &self.prefix, self.count, &self.items.buf);
        self.items.buf.clear();
        self.count = 0;
        self.done.push(msg);
    }

    /// Finishes and returns every datagram; an empty list gives one datagram only if
    /// `send_empty`.
    pub fn finish(mut self, send_empty: bool) -> Vec<Vec<u8>> {
        if self.count > 0 || (send_empty && self.done.is_empty()) {
            self.finish_one();
        }
        self.done
    }
}

/// Items [`read_n`] reserves room for before reading any: a full 4 MiB delta answer (about
/// 70,000 entries of 16 B keys and 32 B values) fits.
const READ_N_RESERVE: usize = 1 << 17;

/// Reads `n` items with `f` into a vector allocated once: a big message (a 4 MiB delta
/// answer holds tens of thousands of entries) would otherwise regrow and copy its vector a
/// dozen times. `n` comes from a count the reader already bounded by the bytes left; the
/// allocation made before any item decodes is capped too ([`READ_N_RESERVE`] items), so a
/// forged count in a 64 MiB stream message reserves megabytes, not hundreds of them.
fn read_n<T>(
    n: usize,
    mut f: impl FnMut() -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::with_capacity(n.min(READ_N_RESERVE));
    for _ in 0..n {
        out.push(f()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_varints_read_as_the_general_reader_reads_them() {
        // every first two bytes, alone or followed by more: the inline paths and the general
        // loop agree on the value, the error and the bytes consumed
        let tails: [&[u8]; 4] = [&[], &[0x05], &[0x81, 0x01], &[0xff; 9]];
        for b in 0..=255u8 {
            for c in 0..=255u8 {
                for tail in tails {
                    for src in [vec![b], [&[b, c][..], tail].concat()] {
                        let src = Bytes::from(src);
                        let (mut fast, mut slow) = (Reader::new(&src), Reader::new(&src));
                        assert_eq!(fast.varint(), slow.varint_long(), "{src:?}");
                        assert_eq!(fast.pos, slow.pos, "{src:?}");
                    }
                }
            }
        }
        let mut w = Writer::with_capacity(64);
        let values = [0, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX];
        for v in values {
            w.varint(v);
        }
        let src = Bytes::from(w.buf);
        let mut r = Reader::new(&src);
        for v in values {
            assert_eq!(r.varint(), Ok(v));
        }
        assert_eq!(r.remaining(), 0);
    }

    fn roundtrip(body: Body) {
        let msg = Message { from: 300, exchange: 7, body };
        let bytes = Bytes::from(encode(&msg));
        assert_eq!(peek_kind(&bytes), Some(msg.body.kind()));
        assert_eq!(decode(&bytes), Ok(msg));
    }

    #[test]
    fn peek_kind_needs_our_magic_and_a_kind_byte() {
        let msg = Message { from: 1, exchange: 2, body: Body::Ack };
        let bytes = encode(&msg);
        assert_eq!(peek_kind(&bytes), Some(14));
        assert_eq!(peek_kind(&bytes[..4]), Some(14));
        // too short for a kind byte, or not ours
        for short in 0..4 {
            assert_eq!(peek_kind(&bytes[..short]), None);
        }
        let mut other = bytes.clone();
        other[0] ^= 1;
        assert_eq!(peek_kind(&other), None);
    }

    /// Rolling upgrades from version 2: only a `Members` message holding a suspicion with a
    /// known suspector is sent in version 3; version-2 messages still decode (a suspicion in
    /// one has no suspector).
    #[test]
    fn version_2_peers_are_understood_and_understand_us() {
        let v4 = SocketAddr::from(([10, 1, 2, 3], 7000));
        let rec = |status| MemberRecord { id: 9, addr: v4, generation: 5, refute: 1, status };
        let msg = |records| Message {
            from: 3,
            exchange: 0,
            body: Body::Members { full: false, records },
        };
        let alive = MemberNews::plain(rec(Status::Alive));
        let suspect = MemberNews { rec: rec(Status::Suspect), suspector: Some(4) };
        let sync = Message { from: 3, exchange: 1, body: Body::Ack };
        assert_eq!(encode(&sync)[2], WIRE_VERSION_BASE, "unchanged kinds go out as version 2");
        assert_eq!(encode(&msg(vec![alive]))[2], WIRE_VERSION_BASE);
        let with_suspicion = encode(&msg(vec![alive, suspect]));
        assert_eq!(with_suspicion[2], WIRE_VERSION_SUSPECTOR, "a suspicion needs version 3");
        // so a node sends it apart from the records a version-2 node can read
        assert_eq!(
            members_by_version(&[alive, suspect, alive]),
            vec![(WIRE_VERSION_BASE, vec![alive, alive]), (WIRE_VERSION_SUSPECTOR, vec![suspect])]
        );
        assert_eq!(members_by_version(&[suspect]), vec![(WIRE_VERSION_SUSPECTOR, vec![suspect])]);
        assert_eq!(members_by_version(&[alive]), vec![(WIRE_VERSION_BASE, vec![alive])]);
        assert_eq!(decode(&Bytes::from(with_suspicion)), Ok(msg(vec![alive, suspect])));
        // what a version-2 node sends: the same record bytes, no suspector after a suspect
        let mut w = Writer::default();
        w.header_v(2, 16, 3, 0);
        w.u8(0);
        w.varint(1);
        let r = rec(Status::Suspect);
        w.varint(u64::from(r.id));
        w.addr(&r.addr);
        w.varint(r.generation);
        w.varint(u64::from(r.refute));
        w.u8(r.status.to_byte());
        let from_v2 = Bytes::from(w.buf);
        let unknown = MemberNews::plain(rec(Status::Suspect));
        assert_eq!(decode(&from_v2), Ok(msg(vec![unknown])));
        // a suspicion whose suspector is unknown (such as one relayed from a version-2 node)
        // goes out as version 2 again, byte for byte, so version-2 nodes still read it
        assert_eq!(encode(&msg(vec![unknown])), from_v2.to_vec());
        assert_eq!(encode(&msg(vec![alive, unknown]))[2], WIRE_VERSION_BASE);
        // the same bytes claiming version 3 lack the suspector: truncated, not misread
        let mut as_v3 = from_v2.to_vec();
        as_v3[2] = 3;
        assert_eq!(decode(&Bytes::from(as_v3)), Err(DecodeError::Truncated));
        // and any other version-2 message (an `Ack`)
        let mut w = Writer::default();
        w.header_v(2, 14, 3, 1);
        assert_eq!(decode(&Bytes::from(w.buf)).map(|m| m.body), Ok(Body::Ack));
    }

    #[test]
    fn every_kind_roundtrips() {
        let id = VersionId { kh: 1 << 63, ts: 99, vh: 7 };
        let e = WireEntry { key: Bytes::from_static(b"k\r\n\0"), version: Version::put(5, 2, "v") };
        let t = WireEntry { key: Bytes::from_static(b""), version: Version::tombstone(6, 0) };
        let hello =
            Hello { generation: 1 << 40, refute: 3, digest: 9, members: 1000, clock: 5, flags: 1 };
        roundtrip(Body::Sync { root: 1, keys: 2, hello, haves: vec![id] });
        roundtrip(Body::SyncAck { root: 1, keys: 0, hello, haves: vec![], wants: vec![3, 4] });
        let v4 = SocketAddr::from(([127, 0, 0, 9], 7000));
        let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7001));
        roundtrip(Body::Ping { origin: None });
        roundtrip(Body::Ping { origin: Some(v6) });
        roundtrip(Body::PingReq { target: v4 });
        roundtrip(Body::Ack);
        roundtrip(Body::MemberRequest { buckets: vec![1, u32::MAX] });
        let m = |id, addr, status| {
            MemberNews::plain(MemberRecord { id, addr, generation: 77, refute: 1, status })
        };
        let suspected = |by| MemberNews { suspector: by, ..m(9, v4, Status::Suspect) };
        roundtrip(Body::Members {
            full: true,
            records: vec![
                m(1, v4, Status::Alive),
                m(u32::MAX, v6, Status::Left),
                suspected(Some(0)),
                suspected(Some(u32::MAX)),
                suspected(None),
            ],
        });
        roundtrip(Body::Members { full: false, records: vec![] });
        roundtrip(Body::Members { full: true, records: vec![suspected(None)] });
        for rec in [m(5, v6, Status::Suspect), suspected(Some(u32::MAX)), m(5, v6, Status::Dead)] {
            for version in [WIRE_VERSION_BASE, WIRE_VERSION] {
                let mut w = Writer::default();
                w.member(&rec, version);
                assert_eq!(w.buf.len(), member_len(&rec, version));
            }
        }
        let mut w = Writer::default();
        w.hello(&hello);
        assert_eq!(w.buf.len(), hello.len());
        roundtrip(Body::Tree { level: 2, nodes: vec![(5, [9; 16])] });
        roundtrip(Body::Tree { level: 0, nodes: vec![] });
        roundtrip(Body::TreeAck { level: 1, diffs: vec![(3, 0x8001)], counts: vec![] });
        roundtrip(Body::TreeAck { level: 2, diffs: vec![(3, 0x8001)], counts: vec![0, 300] });
        roundtrip(Body::LeafRequest { leaves: vec![0, 4095] });
        let lid = LeafId { fp: 3, ts: u64::MAX - 5, vfp: 9 };
        let lid2 = LeafId { fp: 4, ts: 17, vfp: 1 };
        roundtrip(Body::Leaf {
            sections: vec![
                LeafSection { leaf: 4095, ids: vec![lid, lid2] },
                LeafSection { leaf: 0, ids: vec![] },
            ],
        });
        roundtrip(Body::Leaf { sections: vec![] });
        roundtrip(Body::WantLeaf { wants: vec![(9, vec![1, u32::MAX]), (4095, vec![])] });
        roundtrip(Body::Want { keys: vec![u64::MAX] });
        roundtrip(Body::Entries { entries: vec![e.clone(), t].into() });
        roundtrip(Body::BulkRequest { cursor: 12 });
        roundtrip(Body::BulkChunk { next: 0, entries: vec![e].into() });
    }

    #[test]
    fn entry_list_reads_back_what_it_holds_and_decoding_checks_every_entry() {
        let entries = vec![
            WireEntry { key: Bytes::from_static(b"k"), version: Version::put(7, 3, &b"v"[..]) },
            WireEntry { key: Bytes::from_static(b""), version: Version::tombstone(u64::MAX, 0) },
            WireEntry { key: Bytes::from(vec![9u8; 300]), version: Version::put(1, 70000, vec![]) },
        ];
        let list = EntryList::from(entries.clone());
        assert_eq!(list.len(), 3);
        assert_eq!(list.to_vec(), entries);
        let borrowed: Vec<_> = list.iter().collect();
        assert_eq!(borrowed[0], (&b"k"[..], entries[0].version.as_ref()));
        assert_eq!(borrowed[2].0.len(), 300);
        assert_ne!(list, entries[..2].iter().collect());
        assert!(EntryList::new().is_empty() && EntryList::new().iter().next().is_none());
        // a list whose count promises one entry more than its bytes hold, or whose last
        // entry is cut short, is refused when the message is decoded
        let msg = |list: &EntryList, cut: usize, extra: u64| {
            let (count, items) = (list.len() as u64 + extra, &list.raw[..list.raw.len() - cut]);
            decode(&Bytes::from(list_message(Head::base(7, 1, 0), &[], count, items)))
                .map(|m| m.body)
        };
        assert_eq!(msg(&list, 0, 0), Ok(Body::Entries { entries: list.clone() }));
        assert!(msg(&list, 1, 0).is_err());
        assert!(msg(&list, 0, 1).is_err());
    }

    #[test]
    fn leaf_section_len_matches_encoding() {
        let ids =
            [LeafId { fp: 1, ts: 1 << 40, vfp: 2 }, LeafId { fp: 3, ts: (1 << 40) + 300, vfp: 4 }];
        for (leaf, ids) in [(4095, &ids[..]), (3, &ids[..1]), (0, &[][..])] {
            let mut w = Writer::default();
            w.leaf_section(leaf, ids);
            assert_eq!(w.buf.len(), leaf_section_len(leaf, ids));
        }
    }

    #[test]
    fn entry_len_matches_encoding() {
        for v in [Version::put(u64::MAX, 70000, vec![1u8; 300]), Version::tombstone(1, 0)] {
            let mut w = Writer::default();
            w.entry(b"some-key", &v);
            assert_eq!(w.buf.len(), entry_len(b"some-key", &v));
        }
    }

    #[test]
    fn a_list_message_is_header_prefix_count_items_at_its_exact_length() {
        let v = Version::put(7, 300, b"value".to_vec());
        let mut items = Writer::default();
        items.entry(b"a", &v);
        items.entry(b"bb", &v);
        let mut prefix = Writer::default();
        prefix.varint(4095);
        // the longest varints: a sender id and an exchange of 5 bytes each
        let head = Head { version: WIRE_VERSION, kind: 9, from: u32::MAX, exchange: u32::MAX };
        let msg = list_message(head, &prefix.buf, 2, &items.buf);
        let mut want = Writer::default();
        want.header_v(WIRE_VERSION, 9, u32::MAX, u32::MAX);
        want.varint(4095);
        want.varint(2);
        want.buf.extend_from_slice(&items.buf);
        assert_eq!(msg, want.buf);
        assert_eq!(msg.capacity(), msg.len());
        match decode(&Bytes::from(msg)).expect("a bulk chunk").body {
            Body::BulkChunk { next, entries } => {
                assert_eq!(next, 4095);
                let got: Vec<_> = entries.iter().map(|(k, v)| (k.to_vec(), v.to_owned())).collect();
                assert_eq!(got, vec![(b"a".to_vec(), v.clone()), (b"bb".to_vec(), v)]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn packer_never_exceeds_limit_and_keeps_every_item() {
        let mut p = Packer::new(6, 12345, 99999, Vec::new(), 100);
        for k in 0..50u64 {
            assert!(p.push(8, |w| w.u64(k)));
        }
        assert!(!p.push(200, |_| {}));
        let dgrams = p.finish(false);
        let mut all = Vec::new();
        for d in &dgrams {
            assert!(d.len() <= 100);
            match decode(&Bytes::from(d.clone())).expect("valid").body {
                Body::Want { keys } => all.extend(keys),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn hostile_inputs_are_refused_not_panicking() {
        assert_eq!(decode(&Bytes::new()), Err(DecodeError::Truncated));
        assert_eq!(decode(&Bytes::from_static(b"xx\x01\x01")), Err(DecodeError::BadMagic));
        // version 1 (leaf summaries one leaf per message) is not spoken any more
        assert_eq!(decode(&Bytes::from_static(b"gK\x01\x01")), Err(DecodeError::Version(1)));
        assert_eq!(decode(&Bytes::from_static(b"gK\x05\x01")), Err(DecodeError::Version(5)));
        // the origin-delta kinds exist from version 4 on only
        assert_eq!(decode(&Bytes::from_static(b"gK\x03\x11\x00\x00")), Err(DecodeError::Kind(17)));
        assert_eq!(decode(&Bytes::from_static(b"gK\x02\x12\x00\x00")), Err(DecodeError::Kind(18)));
        // a vector whose origins do not strictly increase
        let mut w = Writer::default();
        w.header_v(4, 17, 1, 0);
        w.u8(1);
        w.varint(2);
        w.u64(100);
        w.varint(7);
        w.varint(0);
        w.varint(0);
        w.varint(0);
        w.varint(0);
        assert_eq!(decode(&Bytes::from(w.buf)), Err(DecodeError::Length));
        // a count claiming 2^60 items in a tiny datagram
        let huge = b"gK\x03\x06\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x0f";
        assert_eq!(decode(&Bytes::from_static(huge)), Err(DecodeError::Length));
        // an overlong varint
        let bad = b"gK\x03\x06\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
        assert_eq!(decode(&Bytes::from_static(bad)), Err(DecodeError::Varint));
    }
}
