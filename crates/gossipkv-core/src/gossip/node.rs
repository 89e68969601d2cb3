//! The gossip state machine of one node (sans-IO).
//!
//! # Call order
//!
//! A driver (the simulator, or the tokio node) owns a [`Node`] and:
//! 1. calls [`Node::handle_timeout`] whenever `now >= Node::next_timeout()`;
//! 2. calls [`Node::handle_datagram`] for every message received (datagram or stream);
//! 3. calls [`Node::note_local_write`] after a client write went to the shared [`Replica`]
//!    (or uses [`Node::put`] / [`Node::delete`], which do both);
//! 4. after each of those, drains [`Node::poll_transmit`] and sends every [`Transmit`].
//!
//! Time (`now`, milliseconds) and randomness (the seed) are inputs; nothing here reads a clock
//! or touches a socket, so a seed reproduces a simulation byte for byte.
//!
//! # One exchange (A initiates with B; docs/protocol.md has the full picture)
//!
//! ```text
//! A → B  Sync     root, key count, fresh version ids (rumors)
//! B → A  SyncAck  root, key count, B's fresh ids, ids of A's rumors B wants
//! A ↔ B  Want / Entries        each side pulls the rumors it lacks (values cross once)
//! A → B  Tree     (only if roots differ) A's hashes of the root's 16 children
//! B → A  TreeAck  bitmap of the children that differ;  repeat one level down, ≤ budget nodes
//!                 (at the last level, with B's key count of each differing leaf)
//! A → B  Leaf     A's complete lists of version ids in the differing leaves where A has
//!                 fewer keys, all in one message; LeafRequest for the others, and B sends
//!                 its Leaf (one message) to A
//! B → A  Entries  what A lacks in those leaves;  WantLeaf  what B lacks;  A → B Entries
//! ```
//!
//! Each step is one message, a datagram if it fits the MTU, else one stream message.
//!
//! A node far behind its peer (fewer than half its keys, e.g. restarted empty) instead pulls
//! the whole store over the stream transport in chunks (`BulkRequest` / `BulkChunk`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashMap;

use crate::clock::{ClockKind, hlc_pack};
use crate::digest::{TREE_ARITY, key_hash, short_hash, version_hash};
use crate::gossip::members::{
    ForgetError, MemberNews, MemberRecord, Membership, MembershipConfig, ProbeAction, Status,
};
use crate::gossip::wire::{
    self, Body, EntryList, Head, Hello, ID_LEN, KINDS, LeafId, LeafSection, Message, Packer,
    VersionId, WireEntry, Writer, entry_len, member_len,
};
use crate::lww::{NodeId, Timestamp, Version, VersionRef};
use crate::replica::Replica;
use crate::rng::Rng;

/// A node with fewer than `1 / BULK_RATIO` of its peer's keys, and at least `BULK_MIN_GAP`
/// fewer, catches up in bulk (a small gap is cheaper through the digest tree).
const BULK_RATIO: u64 = 4;
const BULK_MIN_GAP: u64 = 1024;

/// Most peers remembered at once as having walked the tree with us recently.
const MAX_DESCENDED: usize = 4096;

/// Most bytes of entries one `Want` (or one `Vector`'s pulls) is answered with (the rest is
/// asked again later).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Largest stream message a node sends or accepts, by default ([`GossipConfig::max_stream_bytes`];
/// the network layer refuses longer frames). It holds one version of the largest write a
/// client may make ([`MAX_WRITE_BYTES`]) with room to spare for the message's header (an
/// answer's ranges: at most [`MAX_ORIGINS`] of them) and the envelope.
pub const MAX_STREAM_MESSAGE: usize = 68 << 20;

/// Longest key + value a client may write ([`MAX_STREAM_MESSAGE`] must carry it): a front
/// end refuses longer writes, since no message could ever replicate them.
pub const MAX_WRITE_BYTES: usize = (64 << 20) + (64 << 10);

/// Bytes of a stream message kept for everything but its entries: header, an answer's
/// ranges (about 20 bytes for each of at most [`MAX_ORIGINS`] origins), envelope.
const STREAM_HEADER_RESERVE: usize = 2 << 20;

/// Most origins a node keeps a delta log for: a flood of made-up origin ids (gossip without
/// a cluster key) cannot grow it further; versions of other origins still travel by rumors
/// and the digest tree.
const MAX_ORIGINS: usize = 1 << 16;

/// While origin deltas have versions to move, a node still walks the digest tree with a
/// peer at least once every this many rounds (what deltas cannot see: versions an origin
/// issued below a watermark it had already given out, entries dropped by a purge).
const WALK_EVERY_ROUNDS: u64 = 4;

/// Our own watermark covers a write this long after the write was noted (see
/// `Node::own_recent`).
const OWN_LAG_MS: u64 = 100;

/// A delta answer covering more than `1 / SCAN_SHARE` of the keys held reads the whole
/// store in order instead of probing the index once per version.
const SCAN_SHARE: usize = 16;

fn far_behind(mine: u64, theirs: u64) -> bool {
    mine.saturating_mul(BULK_RATIO) < theirs && theirs - mine >= BULK_MIN_GAP
}

/// Tunables of the gossip protocol. Defaults follow docs/protocol.md.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GossipConfig {
    /// Peers contacted per round (`k`).
    pub fanout: usize,
    /// Milliseconds between rounds.
    pub interval_ms: u64,
    /// Largest datagram sent, in bytes.
    pub mtu: usize,
    /// Rounds a fresh version is advertised as a rumor.
    pub rumor_rounds: u32,
    /// Most rumors kept at once of each kind, values and deletes apart, so a burst of writes
    /// cannot push the deletes out (oldest dropped first; anti-entropy covers them).
    pub max_hot: usize,
    /// Most leaves reconciled per exchange when digests differ.
    pub leaves_per_exchange: usize,
    /// Most bytes of leaf summaries one exchange sends.
    pub summary_bytes_per_exchange: usize,
    /// Milliseconds before an unanswered request may be repeated to another peer.
    pub request_timeout_ms: u64,
    /// Bytes per bulk catch-up chunk (stream transport).
    pub bulk_chunk_bytes: usize,
    /// Record every received version for the simulator's copy accounting.
    pub record_receptions: bool,
    /// Membership and failure detection (used once [`Node::enable_membership`] is called).
    pub membership: MembershipConfig,
    /// Tombstones older than this (by their HLC time) are purged, and a node that has been
    /// away from a majority for more than half of it resets its old entries when it comes
    /// back (docs/protocol.md, "Deletes"). 0 keeps tombstones forever. HLC clocks only.
    pub tombstone_grace_ms: u64,
    /// A node started with [`Node::gate_writes`] accepts client writes at the latest this
    /// long after start, even if no peer answered (it may be alone).
    pub ready_timeout_ms: u64,
    /// Origin deltas (docs/protocol.md): with a peer that speaks them too, reconcile by
    /// per-origin watermarks before walking the digest tree. Off, the node behaves as one of
    /// the previous release (wire version 3): digest tree only, and it keeps no origin logs.
    pub origin_deltas: bool,
    /// Largest stream message sent, in bytes ([`MAX_STREAM_MESSAGE`]; tests and simulations
    /// lower it). Every list of entries is cut to fit, keeping 2 MiB (a quarter of a limit
    /// under 8 MiB) for the header: a version shorter than the rest always travels, a
    /// longer one never (counted in [`NodeStats::oversize_versions`]).
    pub max_stream_bytes: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            fanout: 5,
            interval_ms: 1000,
            mtu: 1400,
            rumor_rounds: 3,
            max_hot: 4096,
            leaves_per_exchange: 4096,
            summary_bytes_per_exchange: 1024 * 1024,
            request_timeout_ms: 200,
            bulk_chunk_bytes: 256 * 1024,
            record_receptions: false,
            membership: MembershipConfig::default(),
            tombstone_grace_ms: 0,
            ready_timeout_ms: 3000,
            origin_deltas: true,
            max_stream_bytes: MAX_STREAM_MESSAGE,
        }
    }
}

/// How a message must travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One datagram, at most `mtu` bytes, may be lost.
    Datagram,
    /// The bulk path: an ordered byte stream (TCP in the node), no size bound.
    Stream,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination gossip address.
    pub to: SocketAddr,
    /// Datagram or stream.
    pub transport: Transport,
    /// Encoded message.
    pub payload: Vec<u8>,
}

/// Counters a node keeps about its gossip. Indexed arrays are by message kind byte.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Gossip rounds run.
    pub rounds: u64,
    /// Messages sent, by kind.
    pub sent: [u64; KINDS],
    /// Bytes sent, by kind.
    pub sent_bytes: [u64; KINDS],
    /// Messages received and decoded, by kind.
    pub received: [u64; KINDS],
    /// Bytes received, by kind.
    pub received_bytes: [u64; KINDS],
    /// Largest datagram sent.
    pub max_datagram: usize,
    /// Datagrams refused by the decoder.
    pub decode_errors: u64,
    /// Well-formed messages that made no sense here (unknown exchange, bad level or leaf).
    pub rejected: u64,
    /// Versions received in `Entries` / `BulkChunk`.
    pub versions_received: u64,
    /// Versions that changed the store when merged.
    pub versions_applied: u64,
    /// Exchanges that found differing digests and descended.
    pub descents: u64,
    /// Exchanges whose digests differed but did not descend, because this pair had walked
    /// the tree (in either direction) less than half an interval before.
    pub descents_deferred: u64,
    /// Bulk catch-ups started.
    pub bulk_started: u64,
    /// Member-table pulls sent.
    pub member_pulls: u64,
    /// Tombstones purged after the grace period.
    pub tombstones_purged: u64,
    /// Times this node came back after being away beyond half the purge horizon and dropped
    /// its entries older than the horizon before catching up.
    pub horizon_resets: u64,
    /// Entries dropped by those resets.
    pub horizon_dropped: u64,
    /// Exchanges refused because the peer was away (it must reset first).
    pub away_refused: u64,
    /// Tombstones past the purge horizon received for keys not held, and not taken.
    pub stale_tombstones_skipped: u64,
    /// Times this node stopped being away without a reset (no majority anywhere meanwhile).
    pub away_cleared: u64,
    /// Versions refused because a tombstone at least as new was purged here (a ghost), each
    /// answered with that tombstone so the sender deletes the key too.
    pub ghost_refused: u64,
    /// Purged tombstones remembered as ghosts right now.
    pub ghosts: u64,
    /// Origins pulled from peers by origin deltas (`Vector` pulls sent).
    pub delta_pulls: u64,
    /// Delta ranges that raised one of our watermarks.
    pub delta_ranges: u64,
    /// Exchanges that skipped the digest tree because origin deltas had versions to move.
    pub walks_skipped: u64,
    /// Items in this node's origin logs right now (a gauge).
    pub origin_log_items: u64,
    /// Times a version was left out of a message because alone it is longer than a stream
    /// message may be ([`GossipConfig::max_stream_bytes`]): it never travels. A front end
    /// refuses such writes ([`MAX_WRITE_BYTES`]), so this stays 0 unless the limit was
    /// lowered.
    pub oversize_versions: u64,
    /// Stream messages not sent because they exceed [`GossipConfig::max_stream_bytes`].
    /// Every list of entries is cut to fit, so this stays 0 (tests check it).
    pub oversize_messages: u64,
}

/// What a node remembers of a tombstone it purged (or skipped), for one more grace period:
/// enough to refuse the older values of the key a lagging peer may still hold, and to send
/// that peer the tombstone back. 24 bytes of map payload (with its key hash) instead of a
/// whole entry.
#[derive(Clone, Copy, Debug)]
struct Ghost {
    ts: u64,
    origin: NodeId,
    /// A second hash of the key, so a 64-bit key-hash collision cannot delete another key.
    check: u32,
}

/// Ghosts are forgotten this many graces after their tombstone's timestamp (one grace after
/// the tombstone itself was purged).
const GHOST_GRACES: u64 = 2;

/// How many times longer than other rumors a node pushes the deletes it issued itself.
const LOCAL_DELETE_LIFE: u64 = 3;

/// Bytes of hot deletes pushed to each peer per round.
const DELETE_PUSH_BYTES: usize = 2 * 1400;

fn ghost_check(key: &[u8]) -> u32 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, 0x0067_686f_7374) as u32
}

#[derive(Clone, Copy, Debug)]
struct Hot {
    id: VersionId,
    expires: u64,
}

#[derive(Clone, Copy, Debug)]
struct Exchange {
    peer: SocketAddr,
    /// The peer's digest root in its `SyncAck`.
    peer_root: u64,
    deadline: u64,
    /// Leaves this exchange may still reconcile.
    budget: usize,
    /// Bytes of leaf summaries this exchange may still send.
    budget_bytes: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bulk {
    peer: SocketAddr,
    cursor: u32,
    deadline: u64,
}

/// Entries of a message whose index slots and entries are read ahead of merging them
/// (`MergeRun::warm`), so that their cache misses overlap.
const WARM: usize = 16;

/// What a peer's version id means to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relation {
    /// We lack it, or hold only older versions.
    Need,
    /// We hold a strictly newer version.
    Newer,
    /// We hold it.
    Same,
}

/// What a node knows of the versions one origin issued (origin deltas, docs/protocol.md).
#[derive(Clone, Debug, Default)]
struct OriginLog {
    /// We hold every version this origin issued with a timestamp up to here (or something
    /// newer for its key).
    wm: Timestamp,
    /// The time unit (`ts >> log_shift`: the HLC's millisecond) items count from.
    base: u64,
    /// Whether `base` is set (by the first item).
    based: bool,
    /// `(time unit - base, top 32 bits of the key hash)` of the versions of this origin we
    /// applied: 8 bytes each, sorted up to `sorted`, appended after. Some may since have been
    /// overwritten or purged: a pull skips those, and a compaction drops them.
    items: Vec<(u32, u32)>,
    sorted: usize,
    /// A version too far in time from `base` to be logged was applied: this origin's pulls
    /// are answered by a pass over the store, which needs no log.
    lossy: bool,
}

impl OriginLog {
    /// Appends an item; false if it cannot be represented (the log turns lossy).
    fn push(&mut self, unit: u64, kh_hi: u32) -> bool {
        if !self.based {
            self.base = unit.saturating_sub(1 << 31);
            self.based = true;
        }
        let Some(off) = unit.checked_sub(self.base).and_then(|d| u32::try_from(d).ok()) else {
            self.lossy = true;
            return false;
        };
        if self.items.len() == self.items.capacity() {
            // grow by an eighth: logs are many and small, and doubling would leave a quarter
            // of their memory unused on average
            self.items.reserve_exact(self.items.len() / 8 + 4);
        }
        self.items.push((off, kh_hi));
        true
    }

    /// Sorts the appended items in (they mostly arrive by time, from a pull, or leaf by leaf
    /// from a pass over a peer's store) and drops duplicates.
    fn sort(&mut self) {
        if self.sorted == self.items.len() {
            return;
        }
        let sorted = self.sorted;
        self.items[sorted..].sort_unstable();
        if sorted > 0 && self.items[sorted - 1] > self.items[sorted] {
            // two sorted runs: the stable sort merges them in linear time
            self.items.sort();
        }
        self.items.dedup();
        self.sorted = self.items.len();
    }

    /// The items (sorted first) whose time unit lies in `[lo, hi]`.
    fn span(&self, lo: u64, hi: u64) -> (usize, usize) {
        let off = |u: u64| u.saturating_sub(self.base).min(u64::from(u32::MAX) + 1);
        let (lo, hi) = (off(lo), off(hi));
        let start = self.items.partition_point(|&(o, _)| u64::from(o) < lo);
        let end = self.items.partition_point(|&(o, _)| u64::from(o) <= hi);
        (start, end.max(start))
    }
}

/// Every origin's log and watermark, by origin id: the logs in the order their origins were
/// first seen, an index by id for the lookup every applied version makes (a B-tree search
/// there cost more than the rest of logging it), and the ids in order for vectors and pulls.
#[derive(Debug, Default)]
struct Origins {
    /// Each origin with its log.
    logs: Vec<(NodeId, OriginLog)>,
    index: HashMap<NodeId, u32>,
    order: BTreeMap<NodeId, u32>,
}

impl Origins {
    fn len(&self) -> usize {
        self.logs.len()
    }

    fn contains(&self, origin: NodeId) -> bool {
        self.index.contains_key(&origin)
    }

    fn get(&self, origin: NodeId) -> Option<&OriginLog> {
        self.index.get(&origin).map(|&i| &self.logs[i as usize].1)
    }

    fn get_mut(&mut self, origin: NodeId) -> Option<&mut OriginLog> {
        self.index.get(&origin).map(|&i| &mut self.logs[i as usize].1)
    }

    /// The log of `origin`, created empty if it has none.
    fn or_default(&mut self, origin: NodeId) -> &mut OriginLog {
        let Origins { logs, index, order } = self;
        let i = *index.entry(origin).or_insert_with(|| {
            let i = logs.len() as u32;
            logs.push((origin, OriginLog::default()));
            order.insert(origin, i);
            i
        });
        &mut logs[i as usize].1
    }

    fn clear(&mut self) {
        *self = Origins::default();
    }

    /// Every origin and its log, by origin id.
    fn iter(&self) -> impl Iterator<Item = (NodeId, &OriginLog)> {
        self.order.iter().map(|(&o, &i)| (o, &self.logs[i as usize].1))
    }

    /// Every origin and its log, in no particular order.
    fn iter_mut(&mut self) -> impl Iterator<Item = (NodeId, &mut OriginLog)> {
        self.logs.iter_mut().map(|(o, l)| (*o, l))
    }
}

/// An origin's bit in a 4,096-bit filter (top 12 bits of a multiplicative hash).
#[inline]
fn origin_bit(origin: NodeId) -> usize {
    (origin.wrapping_mul(0x9E37_79B9) >> 20) as usize
}

/// The last timestamp of time unit `unit` (units are `ts >> shift`).
fn unit_end(unit: u64, shift: u32) -> Timestamp {
    match unit.checked_add(1) {
        Some(next) if next <= u64::MAX >> shift => (next << shift) - 1,
        _ => u64::MAX,
    }
}

/// One node's gossip protocol state machine.
#[derive(Debug)]
pub struct Node {
    replica: Arc<Replica>,
    cfg: GossipConfig,
    peers: Vec<SocketAddr>,
    rng: Rng,
    next_tick: u64,
    hot: VecDeque<Hot>,
    hot_cursor: usize,
    /// Hot deletes, pushed whole (see [`Node::pick_deletes`]).
    hot_dels: VecDeque<Hot>,
    dels_cursor: usize,
    /// Keys asked for and not yet received: deadline, and whether a rumor named them (only
    /// those are advertised on in turn; what anti-entropy repairs is old news).
    pending_wants: HashMap<u64, (u64, bool)>,
    inflight_leaves: HashMap<u32, u64>,
    /// Peers we walked the digest tree with (either side starting it), and until when a new
    /// walk with them waits (half an interval).
    descended: HashMap<SocketAddr, u64>,
    /// Leaves we recently asked a peer to fill (so other peers' summaries wait).
    wanted_leaves: HashMap<u32, u64>,
    exchanges: HashMap<u32, Exchange>,
    bulk: Option<Bulk>,
    /// Leaf from which a stalled bulk catch-up resumes.
    bulk_resume: u32,
    outbox: VecDeque<Transmit>,
    stats: NodeStats,
    receptions: Vec<(u64, u32)>,
    /// Versions a message changed the store with, reused (see [`Node::merge_entries`]):
    /// id, origin, whether a rumor brought it, whether a tombstone.
    applied: Vec<(VersionId, NodeId, bool, bool)>,
    scratch: Vec<usize>,
    /// Reused buffers of leaf reconciliation (no allocation per leaf or per key).
    leaf_ids: Vec<LeafId>,
    their_ids: Vec<(u32, u64, u16)>,
    their_keys: Vec<TheirKey>,
    my_vfps: Vec<u16>,
    /// Membership, once enabled; without it the peers are a fixed list.
    members: Option<Membership>,
    /// Last round at which a majority of members was believed up.
    last_quorum: u64,
    /// Away from a majority for more than half the purge horizon (must reset to rejoin).
    away: bool,
    /// Writes gated until this catch-up completes: (deadline, sync acks still wanted).
    gate: Option<(u64, usize)>,
    last_member_pull: u64,
    /// Peers found away, whose data messages are dropped until the deadline.
    refused: HashMap<SocketAddr, u64>,
    /// Time of the latest input (for the send-side purge filter).
    now: u64,
    /// While away: since when our own view has a majority up again.
    away_quorum_since: Option<u64>,
    /// No purging, skipping or withholding of old tombstones before this time.
    purge_after: u64,
    /// Tombstones purged or skipped here within the last two grace periods, by key hash.
    ghosts: HashMap<u64, Ghost>,
    /// Origin deltas: what we hold of each origin's versions.
    origins: Origins,
    /// Items in all `origins` logs (compacted when well above the keys held).
    log_items: usize,
    /// `log_items` at which to look at compacting again.
    log_compact_at: usize,
    /// Origins pulled from a peer and not yet answered: deadline, the peer, the exchange.
    delta_claims: HashMap<NodeId, (u64, SocketAddr, u32)>,
    /// Our own writes not yet under our watermark: `(noted at, newest timestamp noted by
    /// then)`, one item per millisecond. Our watermark rises to a timestamp `OWN_LAG_MS`
    /// after it was noted, so a write noted a little late (drivers note writes from other
    /// threads, in any order) does not fall below it.
    own_recent: VecDeque<(u64, Timestamp)>,
    /// When we last walked the digest tree with any peer.
    last_walk: u64,
    /// Average encoded bytes of an entry in our recent `Deltas` (to plan an answer's size).
    delta_entry_bytes: usize,
    /// Origin logs keep timestamps at `ts >> log_shift`: milliseconds for HLC timestamps.
    log_shift: u32,
}

/// A key of a peer's `Leaf` summary: its fingerprint, newest timestamp, and the range of its
/// version fingerprints at that timestamp in the sorted summary.
#[derive(Clone, Copy, Debug)]
struct TheirKey {
    fp: u32,
    ts: u64,
    vfps: (u32, u32),
    seen: bool,
}

/// A version kept by [`Node::oldest_first`], ordered by its time alone (newest greatest).
#[derive(Debug)]
struct Oldest {
    key: Vec<u8>,
    v: Version,
}

impl Oldest {
    /// Bytes it takes in a message, at most (key, value and at most 32 bytes of framing).
    fn len(&self) -> usize {
        self.key.len() + self.v.value.as_ref().map_or(0, |b| b.len()) + 32
    }
}

impl PartialEq for Oldest {
    fn eq(&self, other: &Self) -> bool {
        self.v.ts == other.v.ts
    }
}

impl Eq for Oldest {}

impl PartialOrd for Oldest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Oldest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.v.ts.cmp(&other.v.ts)
    }
}

/// A list-bodied message built item by item (`header | count varint | items`): sent as one
/// datagram if it fits the MTU, else as one stream message. So one step of an exchange is one
/// message however many leaves or versions it carries.
struct ListMsg {
    kind: u8,
    exchange: u32,
    count: u64,
    body: Writer,
    /// Most bytes of entries the body may hold (see [`ListMsg::entry`]).
    cap: usize,
    /// An entry was refused for want of room: every later one is refused too, so what the
    /// message holds is a prefix of what its builder offered.
    full: bool,
    /// Entries refused because alone they exceed `cap`.
    oversize: u64,
}

thread_local! {
    /// Bodies of list messages, kept (empty) between messages so that a big one does not
    /// regrow, and fault in fresh memory, every time. Only capacity is reused.
    static BODIES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

impl ListMsg {
    fn new(kind: u8, exchange: u32) -> Self {
        let buf = BODIES.with(|b| b.borrow_mut().pop()).unwrap_or_default();
        Self {
            kind,
            exchange,
            count: 0,
            body: Writer { buf },
            cap: usize::MAX,
            full: false,
            oversize: 0,
        }
    }

    /// The same list, holding at most `cap` bytes of entries.
    fn capped(mut self, cap: usize) -> Self {
        self.cap = cap;
        self
    }

    /// Drops the entries after `(bytes, entries)`, a point the list was at.
    fn truncate(&mut self, (bytes, entries): (usize, u64)) {
        self.body.buf.truncate(bytes);
        self.count = entries;
        self.full = false;
    }

    /// Empties the list (keeping its buffer and its cap).
    fn reset(&mut self) {
        self.body.buf.clear();
        self.count = 0;
        self.full = false;
    }

    /// Gives the body's buffer back for the next message.
    fn recycle(self) {
        let mut buf = self.body.buf;
        buf.clear();
        BODIES.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < 4 {
                b.push(buf);
            }
        });
    }

    /// Appends one version of `key` (an `Entries` message) if the body stays within its cap;
    /// returns whether it did. Once one is refused, so is every later one (the list is then
    /// `full`), except that one refused because alone it exceeds the cap is skipped and
    /// counted (`oversize`), and the list stays open.
    fn entry(&mut self, key: &[u8], v: VersionRef<'_>) -> bool {
        if self.full {
            return false;
        }
        let before = self.body.buf.len();
        self.body.entry_ref(key, v);
        if self.body.buf.len() > self.cap {
            self.body.buf.truncate(before);
            if before == 0 {
                self.oversize += 1;
            } else {
                self.full = true;
            }
            return false;
        }
        self.count += 1;
        true
    }
}

impl Node {
    /// A node gossiping for `replica` with the given potential peers (its own address must not
    /// be among them). The first round runs at `first_tick` (drivers spread nodes' phases).
    pub fn new(
        replica: Arc<Replica>,
        cfg: GossipConfig,
        peers: Vec<SocketAddr>,
        seed: u64,
        first_tick: u64,
    ) -> Self {
        let log_shift = match replica.clock().kind() {
            ClockKind::Hlc => 16,
            ClockKind::Lamport => 0,
        };
        Self {
            replica,
            cfg,
            peers,
            rng: Rng::new(seed),
            next_tick: first_tick,
            hot: VecDeque::new(),
            hot_cursor: 0,
            hot_dels: VecDeque::new(),
            dels_cursor: 0,
            pending_wants: HashMap::new(),
            inflight_leaves: HashMap::new(),
            descended: HashMap::new(),
            wanted_leaves: HashMap::new(),
            exchanges: HashMap::new(),
            bulk: None,
            bulk_resume: 0,
            outbox: VecDeque::new(),
            stats: NodeStats::default(),
            receptions: Vec::new(),
            applied: Vec::new(),
            scratch: Vec::new(),
            leaf_ids: Vec::new(),
            their_ids: Vec::new(),
            their_keys: Vec::new(),
            my_vfps: Vec::new(),
            members: None,
            last_quorum: first_tick,
            away: false,
            gate: None,
            last_member_pull: 0,
            refused: HashMap::new(),
            now: first_tick,
            away_quorum_since: None,
            purge_after: 0,
            ghosts: HashMap::new(),
            origins: Origins::default(),
            log_items: 0,
            log_compact_at: 4096,
            delta_claims: HashMap::new(),
            own_recent: VecDeque::new(),
            last_walk: first_tick,
            delta_entry_bytes: 64,
            log_shift,
        }
    }

    /// Turns on membership: this node is `addr` in generation `generation` (a value that
    /// grows across restarts, e.g. the start time in ms), and the potential peers given so far
    /// become its seeds. From now on it learns members through gossip, detects failures, and
    /// picks peers among members it believes alive.
    pub fn enable_membership(&mut self, addr: SocketAddr, generation: u64, now: u64) {
        let seeds = std::mem::take(&mut self.peers);
        let mut cfg = self.cfg.membership;
        if let Some(grace) = self.horizon() {
            // failure detection well inside the half horizon of the away rule
            let cap = grace / 4;
            cfg.suspicion_cap_ms =
                if cfg.suspicion_cap_ms == 0 { cap } else { cfg.suspicion_cap_ms.min(cap) };
        }
        self.members = Some(Membership::new(cfg, self.id(), addr, generation, seeds));
        self.last_quorum = now;
    }

    /// The membership view, if enabled.
    pub fn membership(&self) -> Option<&Membership> {
        self.members.as_ref()
    }

    /// Forgets member `id`, which must be believed dead ([`Membership::forget`]): it then
    /// counts as having left, here and, as the record spreads, everywhere. The record is
    /// sent to `fanout` members at once. `None` without membership.
    pub fn forget_member(
        &mut self,
        id: NodeId,
        now: u64,
    ) -> Option<Result<MemberRecord, ForgetError>> {
        let rec = self.members.as_mut()?.forget(id, now);
        if rec.is_ok() {
            self.rumor_members_now(now);
        }
        Some(rec)
    }

    /// Sends the pending membership rumors to `fanout` members at once, without waiting for
    /// the next round (a leave, a forget).
    fn rumor_members_now(&mut self, now: u64) {
        let Some(m) = self.members.as_mut() else { return };
        let peers = m.pick(&mut self.rng, self.cfg.fanout);
        for p in peers {
            self.send_member_rumors(p, now);
        }
    }

    /// Leaves the cluster on purpose: our record becomes `Left` and is sent to `fanout`
    /// members at once (poll the transmits before shutting down).
    pub fn leave(&mut self, now: u64) {
        let Some(m) = self.members.as_mut() else { return };
        m.leave();
        self.rumor_members_now(now);
    }

    /// Holds client writes (the replica reports not ready) until this node has caught up:
    /// `fanout` peers answered a `Sync` (their clocks raised ours) and any bulk catch-up
    /// finished, or `ready_timeout_ms` passed. Call it when a node starts and may have run
    /// before (a restart): its next writes then beat the ones it issued before the crash.
    /// A node that knows no peer at all (no seed, no member) has nobody to catch up from:
    /// its writes stay open.
    pub fn gate_writes(&mut self, now: u64) {
        let alone = match &self.members {
            None => self.peers.is_empty(),
            Some(m) => m.len() == 1 && !m.has_seeds(),
        };
        if alone {
            return;
        }
        self.replica.set_ready(false);
        self.gate = Some((now + self.cfg.ready_timeout_ms, self.cfg.fanout.max(1)));
    }

    /// Whether this node is away from a majority beyond half the purge horizon.
    pub fn is_away(&self) -> bool {
        self.away
    }

    fn open_gate(&mut self) {
        self.gate = None;
        self.replica.set_ready(true);
    }

    fn hello(&self) -> Hello {
        let clock = self.replica.clock().last();
        let quorum = !self.away
            && self.horizon().is_some()
            && self.members.as_ref().is_some_and(|m| m.has_quorum());
        let flags = if self.away { Hello::AWAY } else { 0 }
            | if quorum { Hello::QUORUM } else { 0 }
            | if self.cfg.origin_deltas { Hello::DELTAS } else { 0 };
        match &self.members {
            None => Hello { clock, flags, ..Hello::default() },
            Some(m) => Hello {
                generation: m.me().generation,
                refute: m.me().refute,
                digest: m.digest(),
                members: m.len() as u32,
                clock,
                flags,
            },
        }
    }

    /// Keys whose winner is a tombstone older than this are not sent: they are purged or about
    /// to be everywhere, and a receiver that purged (or skips) the tombstone must not get the
    /// values tied with it. A margin above the receivers' skip cutoff covers clock offsets.
    fn send_cutoff(&self) -> Option<u64> {
        let grace = self.purge_horizon()?;
        let margin = (grace / 8).max(1000);
        Some(hlc_pack(self.now.saturating_sub(grace).saturating_add(margin), 0))
    }

    /// Whether a key with this winner is withheld from peers (see [`Node::send_cutoff`]).
    fn withheld(cutoff: Option<u64>, winner: VersionRef<'_>) -> bool {
        cutoff.is_some_and(|c| winner.value.is_none() && winner.ts < c)
    }

    /// The horizon, if tombstones older than it are purged now (not while away, nor during
    /// the hold-off after an away period ended without a reset).
    fn purge_horizon(&self) -> Option<u64> {
        self.horizon().filter(|_| !self.away && self.now >= self.purge_after)
    }

    /// Whether purging and horizon resets apply (a horizon is set and timestamps are times).
    fn horizon(&self) -> Option<u64> {
        (self.cfg.tombstone_grace_ms > 0 && self.replica.clock().kind() == ClockKind::Hlc)
            .then_some(self.cfg.tombstone_grace_ms)
    }

    /// Handles what a `Sync` / `SyncAck` says about its sender. Returns false when the
    /// exchange must go no further (the peer is away and must reset first).
    fn on_hello(
        &mut self,
        now: u64,
        from: SocketAddr,
        sender: u32,
        h: &Hello,
        respond: bool,
    ) -> bool {
        if self.replica.clock().admissible(h.clock, now) {
            self.replica.clock().observe(h.clock, now);
        }
        let peer_away = h.flags & Hello::AWAY != 0;
        let mut pull = false;
        let mut rumors = false;
        let mut tell = None;
        if let Some(m) = self.members.as_mut() {
            if h.generation > 0 {
                let rec = MemberRecord {
                    id: sender,
                    addr: from,
                    generation: h.generation,
                    refute: h.refute,
                    status: Status::Alive,
                };
                m.hello(rec, now);
                // it believes itself alive and we do not: tell it, so it refutes
                tell = m
                    .get(sender)
                    .filter(|r| r.status != Status::Alive && r.generation == h.generation);
                // the peer knows members we do not: pull (at most once a round); same count
                // but different digests (a death, a restart): pull now and then
                let since = now.saturating_sub(self.last_member_pull);
                pull = h.digest != m.digest()
                    && !m.view_full()
                    && if h.members as usize > m.len() {
                        since >= self.cfg.interval_ms
                    } else {
                        since >= 2 * self.cfg.interval_ms && self.rng.chance(0.25)
                    };
            }
            rumors = respond && m.has_rumors();
        }
        if let Some(rec) = tell {
            self.send_members(from, false, &[MemberNews::plain(rec)]);
        }
        if pull {
            self.last_member_pull = now;
            self.stats.member_pulls += 1;
            let buckets = self.members.as_ref().map(|m| m.bucket_digests()).unwrap_or_default();
            self.send_body(from, 0, Body::MemberRequest { buckets });
        }
        if rumors {
            self.send_member_rumors(from, now);
        }
        // a node resumed after a freeze may handle a queued message before its first round:
        // notice the gap before this contact counts as being in touch
        self.check_away(now);
        if !self.away && h.flags & Hello::QUORUM != 0 {
            // in touch with a node that sees a majority: we are not cut off
            self.last_quorum = now;
        }
        if self.horizon().is_none() {
            return true;
        }
        if self.away {
            // only a node that sees a majority can take us back (horizon reset)
            return h.flags & Hello::QUORUM != 0;
        }
        if peer_away {
            // refuse its data until it has reset: it may hold keys whose tombstones we purged
            self.stats.away_refused += 1;
            self.refused.insert(from, now + 2 * self.cfg.interval_ms);
            return false;
        }
        self.refused.remove(&from);
        true
    }

    fn send_body(&mut self, to: SocketAddr, exchange: u32, body: Body) {
        let msg = Message { from: self.id(), exchange, body };
        self.send(to, Transport::Datagram, wire::encode(&msg));
    }

    fn send_member_rumors(&mut self, to: SocketAddr, _now: u64) {
        let Some(m) = self.members.as_mut() else { return };
        let recs = m.take_rumors(32);
        self.send_members(to, false, &recs);
    }

    fn send_members(&mut self, to: SocketAddr, full: bool, recs: &[MemberNews]) {
        if recs.is_empty() {
            return;
        }
        // suspicions with a suspector (version 3) apart, so older nodes read the rest
        for (version, part) in wire::members_by_version(recs) {
            let mut p = Packer::new(16, self.id(), 0, vec![u8::from(full)], self.cfg.mtu)
                .with_version(version);
            for r in &part {
                p.push(member_len(r, version), |w| w.member(r, version));
            }
            let dgrams = p.finish(false);
            self.send_all(to, dgrams);
        }
    }

    /// Marks this node away when it has been out of touch with a majority for more than half
    /// the purge horizon (membership on, purging on).
    fn check_away(&mut self, now: u64) {
        if let Some(grace) = self.horizon()
            && self.members.is_some()
            && now.saturating_sub(self.last_quorum) > grace / 2
        {
            self.away = true;
        }
    }

    /// Comes back from being away: drops every entry older than the purge horizon (a
    /// tombstone for it may have been purged elsewhere), then pulls the peer's store in bulk.
    fn horizon_reset(&mut self, now: u64, peer: SocketAddr, exchange: u32) {
        let Some(grace) = self.horizon() else { return };
        let before = hlc_pack(now.saturating_sub(grace), 0);
        let dropped = self.replica.store().purge(before, false);
        // our watermarks covered what was just dropped
        self.clear_logs();
        self.stats.horizon_resets += 1;
        self.away_quorum_since = None;
        self.stats.horizon_dropped += dropped as u64;
        self.away = false;
        self.last_quorum = now;
        self.bulk = None;
        self.start_bulk(now, peer, exchange, 0);
    }

    /// Membership, quorum, purge and gate bookkeeping of one round. Returns the peers to
    /// gossip with when membership is on.
    fn round_upkeep(&mut self, now: u64) -> Option<Vec<SocketAddr>> {
        if let Some((deadline, _)) = self.gate
            && now >= deadline
            && self.bulk.is_none()
        {
            self.open_gate();
        }
        let horizon = self.horizon();
        let m = self.members.as_mut()?;
        let mut actions = Vec::new();
        m.tick(now, self.next_tick, self.cfg.interval_ms, &mut self.rng, &mut actions);
        for a in actions {
            match a {
                ProbeAction::Ping { target } => {
                    self.send_body(target, 0, Body::Ping { origin: None });
                }
                ProbeAction::PingReq { relay, target } => {
                    self.send_body(relay, 0, Body::PingReq { target });
                }
                ProbeAction::Notify { to, news } => self.send_members(to, false, &[news]),
            }
        }
        self.check_away(now);
        let m = self.members.as_mut()?;
        if let Some(grace) = horizon {
            // Away, but our own view has a majority up again and for 5 rounds no peer that
            // sees a majority (and so may have purged) answered: the whole cluster was split
            // without a majority anywhere, so nobody purged meanwhile. Stop being away.
            if self.away && m.has_quorum() {
                let since = *self.away_quorum_since.get_or_insert(now);
                if now.saturating_sub(since) >= 5 * self.cfg.interval_ms {
                    self.away = false;
                    self.away_quorum_since = None;
                    self.last_quorum = now;
                    self.stats.away_cleared += 1;
                    // but the sides may hold tombstones the others lack, older than the
                    // horizon: no purging (nor withholding) until they reconciled
                    self.purge_after = now + grace / 2;
                }
            } else {
                self.away_quorum_since = None;
            }
            if m.has_quorum() && !self.away {
                self.last_quorum = now;
                // purge every 8 rounds: a pass walks the whole store
                if self.stats.rounds.is_multiple_of(8) && now >= self.purge_after {
                    let before = hlc_pack(now.saturating_sub(grace), 0);
                    let ghosts = &mut self.ghosts;
                    let n = self.replica.store().purge_with(before, true, |key, v| {
                        let g = Ghost { ts: v.ts, origin: v.origin, check: ghost_check(key) };
                        ghosts.insert(key_hash(key), g);
                    });
                    self.stats.tombstones_purged += n as u64;
                    // a ghost lives one more grace period after its tombstone was purged
                    let forget =
                        hlc_pack(now.saturating_sub(grace.saturating_mul(GHOST_GRACES)), 0);
                    self.ghosts.retain(|_, g| g.ts >= forget);
                    self.stats.ghosts = self.ghosts.len() as u64;
                }
            }
        }
        let m = self.members.as_mut()?;
        let peers = m.pick(&mut self.rng, self.cfg.fanout);
        if let Some(&first) = peers.first() {
            m.probe(first, self.next_tick);
        }
        Some(peers)
    }

    /// The replica this node gossips for.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.replica.id()
    }

    /// The configuration.
    pub fn config(&self) -> &GossipConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Our origin-delta watermark of `origin` (0 if none): we hold every version of it up to
    /// this time that a peer keeps, so pulls of it start above.
    pub fn watermark(&self, origin: NodeId) -> Timestamp {
        self.origins.get(origin).map_or(0, |l| l.wm)
    }

    /// Rumors currently advertised, values and deletes (each kind at most `max_hot`).
    pub fn hot_len(&self) -> usize {
        self.hot.len() + self.hot_dels.len()
    }

    /// Replaces the potential peers.
    pub fn set_peers(&mut self, peers: Vec<SocketAddr>) {
        self.peers = peers;
    }

    /// When [`Node::handle_timeout`] must next be called.
    pub fn next_timeout(&self) -> u64 {
        self.next_tick
    }

    /// Next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// Calls `f` with the `(key hash, version hash)` of every version received since the last
    /// call (only with `record_receptions`), then forgets them. A small buffer is kept for the
    /// next call; a big one (a bulk answer's) is freed, so that a thousand simulated nodes do
    /// not each hold their largest.
    pub fn drain_receptions(&mut self, f: impl FnOnce(&[(u64, u32)])) {
        f(&self.receptions);
        if self.receptions.capacity() > 4096 {
            self.receptions = Vec::new();
        } else {
            self.receptions.clear();
        }
    }

    /// Forgets all protocol state (a crash): the caller clears the replica.
    pub fn reset(&mut self, now: u64) {
        self.hot.clear();
        self.hot_dels.clear();
        self.pending_wants.clear();
        self.inflight_leaves.clear();
        self.descended.clear();
        self.wanted_leaves.clear();
        self.exchanges.clear();
        self.bulk = None;
        self.bulk_resume = 0;
        self.outbox.clear();
        self.next_tick = now;
        self.last_quorum = now;
        self.away = false;
        self.ghosts.clear();
        self.clear_logs();
        self.delta_claims.clear();
        self.own_recent.clear();
        self.last_walk = now;
    }

    /// A client PUT at this node: writes the replica and spreads the new version.
    pub fn put(&mut self, key: &[u8], value: impl Into<Bytes>, now: u64) -> Version {
        let v = self.replica.put(key, value, now);
        self.note_local_write(key, &v, now);
        v
    }

    /// A client DEL at this node.
    pub fn delete(&mut self, key: &[u8], now: u64) -> Version {
        let (v, _) = self.replica.delete(key, now);
        self.note_local_write(key, &v, now);
        v
    }

    /// Tells gossip that a client wrote `v` to the replica, so it is spread as a rumor.
    pub fn note_local_write(&mut self, key: &[u8], v: &Version, now: u64) {
        self.note_local_rumor(VersionId::of(key, v.as_ref()), v.value.is_none(), now);
    }

    /// Spreads the version named `id`, which this node's client just wrote (`delete`: a
    /// tombstone), as a rumor. Drivers that learn of writes on another thread send just the
    /// id and the flag, computed there, so taking a burst of client writes costs gossip no
    /// store lookup.
    pub fn note_local_rumor(&mut self, id: VersionId, delete: bool, now: u64) {
        self.make_hot(id, delete, now, true);
        if !self.cfg.origin_deltas {
            return;
        }
        self.log_version(self.id(), id.ts, id.kh);
        match self.own_recent.back_mut() {
            Some(last) if last.0 >= now => last.1 = last.1.max(id.ts),
            _ => {
                let newest = self.own_recent.back().map_or(id.ts, |l| l.1.max(id.ts));
                self.own_recent.push_back((now, newest));
            }
        }
    }

    /// Raises our own watermark over the writes noted at least `OWN_LAG_MS` ago.
    fn settle_own(&mut self, now: u64) {
        let mut top = None;
        while let Some(&(at, ts)) = self.own_recent.front() {
            if at + OWN_LAG_MS > now {
                break;
            }
            top = Some(ts);
            self.own_recent.pop_front();
        }
        if let Some(ts) = top {
            let me = self.id();
            self.raise_watermark(me, ts);
        }
    }

    /// Makes a version a rumor (`delete`: it is a tombstone; `local`: this node issued it).
    /// A local delete lives `LOCAL_DELETE_LIFE` times longer: until it has left its origin,
    /// the origin is its only holder, and a lossy link there must not leave it unspread for a
    /// whole grace period.
    fn make_hot(&mut self, id: VersionId, delete: bool, now: u64, local: bool) {
        let life = self.cfg.interval_ms * u64::from(self.cfg.rumor_rounds);
        let (list, cursor) = if delete {
            (&mut self.hot_dels, &mut self.dels_cursor)
        } else {
            (&mut self.hot, &mut self.hot_cursor)
        };
        let expires = now + if delete && local { life * LOCAL_DELETE_LIFE } else { life };
        if self.cfg.max_hot == 0 {
            return;
        }
        // make room first, so the list never holds more than `max_hot` (nor reserves room
        // for twice as many)
        while list.len() >= self.cfg.max_hot {
            list.pop_front();
            *cursor = cursor.saturating_sub(1);
        }
        list.push_back(Hot { id, expires });
    }

    /// Drops expired rumors from the front, keeping the round-robin cursor on the same rumor.
    /// (Local deletes live longer, so a later rumor may wait behind one: it then lives a
    /// little longer than its time, never shorter.)
    fn expire_hot(list: &mut VecDeque<Hot>, cursor: &mut usize, now: u64) {
        while list.front().is_some_and(|h| h.expires <= now) {
            list.pop_front();
            *cursor = cursor.saturating_sub(1);
        }
    }

    /// Runs a gossip round if one is due: expire state, then open an exchange with `fanout`
    /// random peers.
    pub fn handle_timeout(&mut self, now: u64) {
        if now < self.next_tick {
            return;
        }
        self.now = self.now.max(now);
        self.next_tick = if now >= self.next_tick + self.cfg.interval_ms {
            now + self.cfg.interval_ms
        } else {
            self.next_tick + self.cfg.interval_ms
        };
        self.stats.rounds += 1;
        Self::expire_hot(&mut self.hot, &mut self.hot_cursor, now);
        Self::expire_hot(&mut self.hot_dels, &mut self.dels_cursor, now);
        self.pending_wants.retain(|_, p| p.0 > now);
        self.inflight_leaves.retain(|_, d| *d > now);
        self.descended.retain(|_, d| *d > now);
        self.wanted_leaves.retain(|_, d| *d > now);
        self.exchanges.retain(|_, x| x.deadline > now);
        self.refused.retain(|_, d| *d > now);
        self.delta_claims.retain(|_, c| c.0 > now);
        self.settle_own(now);
        if let Some(b) = self.bulk.filter(|b| b.deadline <= now) {
            // stalled: the next catch-up (from any peer) resumes where this one got to
            self.bulk_resume = b.cursor;
            self.bulk = None;
        }
        let chosen = match self.round_upkeep(now) {
            Some(peers) => peers,
            None => {
                let mut picked = std::mem::take(&mut self.scratch);
                self.rng.sample_indices(self.peers.len(), self.cfg.fanout, &mut picked);
                let peers = picked.iter().map(|&i| self.peers[i]).collect();
                self.scratch = picked;
                peers
            }
        };
        let (root, keys) = self.root_and_keys();
        let hello = self.hello();
        for peer in chosen {
            let exchange = self.rng.next_u64() as u32;
            self.exchanges.insert(
                exchange,
                Exchange {
                    peer,
                    peer_root: 0,
                    deadline: now + self.cfg.interval_ms,
                    budget: self.cfg.leaves_per_exchange,
                    budget_bytes: self.cfg.summary_bytes_per_exchange,
                },
            );
            let mut prefix = Writer::with_capacity(64);
            prefix.u64(root);
            prefix.varint(keys);
            prefix.hello(&hello);
            let haves = self.pick_rumors(&prefix.buf, exchange, 0);
            let pushed = self.pick_deletes();
            let mut w = Writer::with_capacity(self.cfg.mtu);
            w.header(1, self.id(), exchange);
            w.buf.extend_from_slice(&prefix.buf);
            w.varint(haves.len() as u64);
            haves.iter().for_each(|id| w.id(id));
            self.send(peer, Transport::Datagram, w.buf);
            self.send_entries(peer, exchange, &pushed);
            if self.members.as_ref().is_some_and(|m| m.has_rumors()) {
                self.send_member_rumors(peer, now);
            }
        }
    }

    fn key_count(&self) -> u64 {
        self.replica.store().keys_held() as u64
    }

    /// The digest root and the key count a `Sync` / `SyncAck` carries.
    fn root_and_keys(&self) -> (u64, u64) {
        let (root, keys) = self.replica.store().root_and_keys();
        (root, keys as u64)
    }

    /// Rumors that fit in one datagram after a header and `prefix` (and `reserve` bytes),
    /// rotating through the hot list so every rumor gets its turn.
    fn pick_rumors(&mut self, prefix: &[u8], exchange: u32, reserve: usize) -> Vec<VersionId> {
        let head = 4 + 5 + wire::varint_len(u64::from(exchange)) + prefix.len() + 3 + reserve;
        let room = self.cfg.mtu.saturating_sub(head) / ID_LEN;
        let n = room.min(self.hot.len());
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if self.hot_cursor >= self.hot.len() {
                self.hot_cursor = 0;
            }
            out.push(self.hot[self.hot_cursor].id);
            self.hot_cursor += 1;
        }
        out
    }

    /// The next hot deletes to push whole to one peer (round robin, about `DELETE_PUSH_BYTES`
    /// of them). A tombstone is about as small as its id, and pushing it is one message where
    /// advertising it takes three (id, want, entries); and deletes are not queued behind
    /// values for the room of a `Sync`. A lossy link then rarely misses a delete, which
    /// matters because a delete missed for longer than the purge grace would bring the key
    /// back.
    fn pick_deletes(&mut self) -> Vec<WireEntry> {
        let cutoff = self.send_cutoff();
        let mut out = Vec::new();
        let mut bytes = 0;
        for _ in 0..self.hot_dels.len() {
            if bytes >= DELETE_PUSH_BYTES {
                break;
            }
            if self.dels_cursor >= self.hot_dels.len() {
                self.dels_cursor = 0;
            }
            let id = self.hot_dels[self.dels_cursor].id;
            self.dels_cursor += 1;
            let Some((key, versions)) = self.replica.store().get_by_hash(id.kh) else { continue };
            let Some(w) = versions.first() else { continue };
            let current = w.ts == id.ts && version_hash(id.kh, w.as_ref()) as u32 == id.vh;
            if !current || !w.is_tombstone() || Self::withheld(cutoff, w.as_ref()) {
                continue;
            }
            bytes += versions.iter().map(|v| entry_len(&key, v)).sum::<usize>();
            out.extend(versions.into_iter().map(|version| WireEntry { key: key.clone(), version }));
        }
        out
    }

    fn send(&mut self, to: SocketAddr, transport: Transport, payload: Vec<u8>) {
        if transport == Transport::Stream && payload.len() > self.cfg.max_stream_bytes {
            // the peer would refuse it: builders cut their lists so that this never happens
            self.stats.oversize_messages += 1;
            return;
        }
        let kind = usize::from(payload.get(3).copied().unwrap_or(0)).min(KINDS - 1);
        self.stats.sent[kind] += 1;
        self.stats.sent_bytes[kind] += payload.len() as u64;
        if transport == Transport::Datagram {
            self.stats.max_datagram = self.stats.max_datagram.max(payload.len());
        }
        self.outbox.push_back(Transmit { to, transport, payload });
    }

    /// Most bytes of entries one stream message may carry: the message's limit less room for
    /// its header.
    fn list_cap(&self) -> usize {
        let max = self.cfg.max_stream_bytes;
        max - STREAM_HEADER_RESERVE.min(max / 4)
    }

    fn send_all(&mut self, to: SocketAddr, dgrams: Vec<Vec<u8>>) {
        for d in dgrams {
            self.send(to, Transport::Datagram, d);
        }
    }

    /// Handles one received message from `from` (its gossip address). Malformed input is
    /// counted and dropped.
    pub fn handle_datagram(&mut self, now: u64, from: SocketAddr, payload: Bytes) {
        self.now = self.now.max(now);
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
        if let Some(m) = self.members.as_mut() {
            m.heard(from);
        }
        let Message { exchange, body, from: sender } = msg;
        // from a peer found away: no reconciliation and no data until it has reset (it may
        // still ask for our store in bulk, and membership flows as usual)
        if !self.refused.is_empty()
            && matches!(
                body,
                Body::Tree { .. }
                    | Body::TreeAck { .. }
                    | Body::Leaf { .. }
                    | Body::LeafRequest { .. }
                    | Body::WantLeaf { .. }
                    | Body::Want { .. }
                    | Body::Entries { .. }
                    | Body::BulkChunk { .. }
                    | Body::Vector { .. }
                    | Body::Deltas { .. }
            )
            && self.refused.get(&from).is_some_and(|d| *d > now)
        {
            self.stats.away_refused += 1;
            return;
        }
        match body {
            Body::Sync { keys, hello, haves, .. } => {
                let go_on = self.on_hello(now, from, sender, &hello, true);
                self.on_sync(now, from, exchange, keys, if go_on { &haves } else { &[] }, go_on)
            }
            Body::SyncAck { root, keys, hello, haves, wants } => {
                let go_on = self.on_hello(now, from, sender, &hello, false);
                if !go_on {
                    return;
                }
                // back from away: reset against a peer that sees a majority and holds about
                // as much as we do (not a node that itself restarted empty)
                let reset =
                    self.away && hello.flags & Hello::QUORUM != 0 && keys * 2 >= self.key_count();
                if reset && self.horizon().is_some() {
                    self.horizon_reset(now, from, exchange);
                    return;
                }
                let deltas = hello.flags & Hello::DELTAS != 0;
                self.on_sync_ack(now, from, exchange, (root, keys, deltas), &haves, &wants)
            }
            Body::Ping { origin } => {
                self.send_body(origin.unwrap_or(from), exchange, Body::Ack);
            }
            Body::PingReq { target } => {
                self.send_body(target, exchange, Body::Ping { origin: Some(from) });
            }
            Body::Ack => {}
            Body::MemberRequest { buckets } => {
                if let Some(m) = self.members.as_ref() {
                    let recs = m.records_differing(&buckets);
                    self.send_members(from, true, &recs);
                }
            }
            Body::Members { full, records } => {
                if let Some(m) = self.members.as_mut() {
                    for r in records {
                        m.apply(r, now, !full);
                    }
                }
            }
            Body::Tree { level, nodes } => {
                if level == 0 {
                    self.note_descent(from, now);
                }
                self.on_tree(from, exchange, level, &nodes)
            }
            Body::TreeAck { level, diffs, counts } => {
                self.on_tree_ack(now, from, exchange, level, &diffs, &counts)
            }
            Body::LeafRequest { leaves } => self.on_leaf_request(from, exchange, &leaves),
            Body::Leaf { sections } => self.on_leaf(now, from, exchange, &sections),
            Body::WantLeaf { wants } => self.on_want_leaf(from, exchange, &wants),
            Body::Want { keys } => self.send_versions_of(from, exchange, &keys),
            Body::Entries { entries } => {
                self.merge_entries(now, Some((from, exchange)), &entries, true)
            }
            Body::BulkRequest { cursor } => self.on_bulk_request(from, exchange, cursor),
            Body::BulkChunk { next, entries } => self.on_bulk_chunk(now, from, next, &entries),
            Body::Vector { .. } | Body::Deltas { .. } if !self.cfg.origin_deltas => {
                self.stats.rejected += 1;
            }
            Body::Vector { ask, vector, pulls } => {
                self.on_vector(now, from, exchange, ask, &vector, &pulls)
            }
            Body::Deltas { ranges, entries } => {
                self.on_deltas(now, from, exchange, &ranges, &entries)
            }
        }
    }

    fn relation(&self, id: &VersionId) -> Relation {
        self.replica.store().with_key_by_hash(id.kh, |found| {
            let Some((_, versions)) = found else { return Relation::Need };
            let mut it = versions.hashed();
            let Some((first, vh)) = it.next() else { return Relation::Need };
            if first.ts > id.ts {
                return Relation::Newer;
            }
            if first.ts < id.ts {
                return Relation::Need;
            }
            if vh as u32 == id.vh || it.any(|(_, vh)| vh as u32 == id.vh) {
                return Relation::Same;
            }
            Relation::Need
        })
    }

    /// Sorts a peer's rumors into keys to ask for (not already asked for) and keys where we
    /// hold something newer (to push back).
    fn triage(&mut self, now: u64, haves: &[VersionId], wants: &mut Vec<u64>, push: &mut Vec<u64>) {
        for id in haves {
            match self.relation(id) {
                Relation::Need => {
                    if self.pending_wants.get(&id.kh).is_none_or(|p| p.0 <= now) {
                        self.pending_wants.insert(id.kh, (now + self.cfg.request_timeout_ms, true));
                        wants.push(id.kh);
                    }
                }
                Relation::Newer => push.push(id.kh),
                Relation::Same => {}
            }
        }
        wants.sort_unstable();
        wants.dedup();
        push.sort_unstable();
        push.dedup();
    }

    fn on_sync(
        &mut self,
        now: u64,
        from: SocketAddr,
        exchange: u32,
        peer_keys: u64,
        haves: &[VersionId],
        go_on: bool,
    ) {
        let (mut wants, mut push) = (Vec::new(), Vec::new());
        self.triage(now, haves, &mut wants, &mut push);
        let (root, keys) = self.root_and_keys();
        let mut prefix = Writer::with_capacity(64);
        prefix.u64(root);
        prefix.varint(keys);
        prefix.hello(&self.hello());
        // wants go first (they are answers); rumors fill the rest of the datagram
        let want_room = (self.cfg.mtu / 2) / 8;
        let (now_wants, later_wants) = wants.split_at(wants.len().min(want_room));
        let haves_out = self.pick_rumors(&prefix.buf, exchange, 3 + now_wants.len() * 8);
        let mut w = Writer::with_capacity(self.cfg.mtu);
        w.header(2, self.id(), exchange);
        w.buf.extend_from_slice(&prefix.buf);
        w.varint(haves_out.len() as u64);
        haves_out.iter().for_each(|id| w.id(id));
        w.varint(now_wants.len() as u64);
        now_wants.iter().for_each(|k| w.u64(*k));
        self.send(from, Transport::Datagram, w.buf);
        if !later_wants.is_empty() {
            let later = later_wants.to_vec();
            self.send_wants(from, exchange, &later);
        }
        self.send_versions_of(from, exchange, &push);
        if go_on && far_behind(keys, peer_keys) && self.bulk.is_none() {
            self.start_bulk(now, from, exchange, self.bulk_resume);
        }
    }

    /// `peer`: the peer's root, key count, and whether it speaks origin deltas.
    fn on_sync_ack(
        &mut self,
        now: u64,
        from: SocketAddr,
        exchange: u32,
        peer: (u64, u64, bool),
        haves: &[VersionId],
        wants: &[u64],
    ) {
        let (peer_root, peer_keys, deltas) = peer;
        let Some(x) = self.exchanges.get_mut(&exchange) else {
            self.stats.rejected += 1;
            return;
        };
        if x.peer != from {
            self.stats.rejected += 1;
            return;
        }
        // an exchange that is making progress lives on
        x.deadline = now + self.cfg.interval_ms;
        x.peer_root = peer_root;
        self.send_versions_of(from, exchange, wants);
        let (mut my_wants, mut push) = (Vec::new(), Vec::new());
        self.triage(now, haves, &mut my_wants, &mut push);
        self.send_wants(from, exchange, &my_wants);
        self.send_versions_of(from, exchange, &push);
        let my_keys = self.key_count();
        let behind = far_behind(my_keys, peer_keys);
        if let Some((deadline, wanted)) = self.gate
            && !behind
            && self.bulk.is_none()
        {
            if wanted <= 1 { self.open_gate() } else { self.gate = Some((deadline, wanted - 1)) }
        }
        let store = self.replica.store();
        if peer_root == store.root_hash() {
            return;
        }
        if behind && self.bulk.is_none() {
            self.start_bulk(now, from, exchange, self.bulk_resume);
            return;
        }
        if deltas && self.cfg.origin_deltas {
            // origin deltas first: the tree is walked when they have nothing to move (see
            // `on_vector`), or when our last walk is too old
            self.settle_own(now);
            let vector = self.vector();
            self.send_vector(from, exchange, true, vector, Vec::new());
            if now < self.last_walk + WALK_EVERY_ROUNDS * self.cfg.interval_ms {
                return;
            }
        }
        self.walk_tree(now, from, exchange);
    }

    /// Starts a walk of the digest tree with `from`, unless this pair walked it less than
    /// half an interval ago.
    fn walk_tree(&mut self, now: u64, from: SocketAddr, exchange: u32) {
        if self.descended.get(&from).is_some_and(|&until| until > now) {
            // this pair walked the tree less than half an interval ago (the peer's round,
            // or ours): what changed since waits for the next round, rumors carry the fresh
            self.stats.descents_deferred += 1;
            return;
        }
        self.note_descent(from, now);
        self.stats.descents += 1;
        self.send_tree(from, exchange, 0, &[0]);
    }

    /// Records a tree walk with `peer` starting now: another one waits half an interval.
    /// That is enough for two nodes that pick each other every round to walk once per round
    /// between them, not twice (whatever the phase of their rounds); a longer wait also
    /// thins the walks of mid-sized clusters, and at 20 nodes (0.9 interval) it left the
    /// old tombstones of an even split unreconciled past the purge hold-off
    /// (`an_even_split_beyond_half_the_horizon_heals`, seed 2: 46 deleted keys came back).
    fn note_descent(&mut self, peer: SocketAddr, now: u64) {
        self.last_walk = now;
        // bounded: a flood of `Tree`s from made-up addresses (gossip without a cluster key)
        // fills it only until the next round's clean-up; past the cap, walks just happen
        if self.descended.len() < MAX_DESCENDED || self.descended.contains_key(&peer) {
            self.descended.insert(peer, now + self.cfg.interval_ms / 2);
        }
    }

    /// Sends our salted fingerprints of the children of `parents` at `level`.
    fn send_tree(&mut self, to: SocketAddr, exchange: u32, level: u32, parents: &[u32]) {
        let salt = u64::from(exchange);
        let mut p = Packer::new(3, self.id(), exchange, vec![level as u8], self.cfg.mtu);
        for &idx in parents {
            let hs = self.replica.store().children_hashes(level, idx as usize);
            p.push(wire::varint_len(u64::from(idx)) + 2 * TREE_ARITY, |w| {
                w.varint(u64::from(idx));
                hs.iter().for_each(|h| w.u16(short_hash(*h, salt) as u16));
            });
        }
        let dgrams = p.finish(false);
        self.send_all(to, dgrams);
    }

    fn send_wants(&mut self, to: SocketAddr, exchange: u32, keys: &[u64]) {
        if keys.is_empty() {
            return;
        }
        let mut p = Packer::new(6, self.id(), exchange, Vec::new(), self.cfg.mtu);
        for k in keys {
            p.push(8, |w| w.u64(*k));
        }
        self.send_all(to, p.finish(false));
    }

    /// Sends every version we keep of each key hash (an answer to `Want`, or a push).
    fn send_versions_of(&mut self, to: SocketAddr, exchange: u32, keys: &[u64]) {
        if keys.is_empty() {
            return;
        }
        // each key once, and a bounded answer (a hostile Want may name one key 170 times)
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        let mut sink = ListMsg::new(7, exchange).capped(self.list_cap());
        let cutoff = self.send_cutoff();
        let store = self.replica.store();
        for &kh in &keys {
            if sink.full || sink.body.buf.len() >= MAX_ANSWER_BYTES {
                break;
            }
            store.with_key_by_hash(kh, |found| {
                if let Some((key, versions)) = found {
                    let mut versions = versions.peekable();
                    if versions.peek().is_some_and(|w| Self::withheld(cutoff, *w)) {
                        return;
                    }
                    for v in versions {
                        sink.entry(key, v);
                    }
                }
            });
        }
        self.send_list(to, sink);
    }

    /// Sends `entries` (if any) in one `Entries` message.
    fn send_entries(&mut self, to: SocketAddr, exchange: u32, entries: &[WireEntry]) {
        if entries.is_empty() {
            return;
        }
        // (what does not fit one message is left to later exchanges)
        let mut msg = ListMsg::new(7, exchange).capped(self.list_cap());
        for e in entries {
            msg.entry(&e.key, e.version.as_ref());
        }
        self.send_list(to, msg);
    }

    /// Sends `msg` (if it holds anything) as one datagram if it fits, else on the stream.
    fn send_list(&mut self, to: SocketAddr, msg: ListMsg) {
        self.stats.oversize_versions += msg.oversize;
        if msg.count > 0 {
            let (kind, exchange, items) = (msg.kind, msg.exchange, &msg.body.buf);
            let buf =
                wire::list_message(Head::base(kind, self.id(), exchange), &[], msg.count, items);
            let transport =
                if buf.len() <= self.cfg.mtu { Transport::Datagram } else { Transport::Stream };
            self.send(to, transport, buf);
        }
        msg.recycle();
    }

    fn on_tree(
        &mut self,
        from: SocketAddr,
        exchange: u32,
        level: u8,
        nodes: &[(u32, [u16; TREE_ARITY])],
    ) {
        let tree = self.replica.store().tree();
        let level32 = u32::from(level);
        if level32 >= tree.depth() {
            self.stats.rejected += 1;
            return;
        }
        let at_leaves = level32 + 1 == tree.depth();
        let salt = u64::from(exchange);
        // (parent, map, counts of the differing leaves when the children are leaves)
        let mut diffs: Vec<(u32, u16)> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut size = 0;
        for (idx, theirs) in nodes {
            if *idx as usize >= tree.nodes_at(level32) {
                self.stats.rejected += 1;
                continue;
            }
            let store = self.replica.store();
            let mine = store.children_hashes(level32, *idx as usize);
            let lens = if at_leaves {
                store.children_leaf_lens(level32, *idx as usize)
            } else {
                [0; TREE_ARITY]
            };
            let mut map = 0u16;
            let mut item = wire::varint_len(u64::from(*idx)) + 2;
            let first_count = counts.len();
            for c in 0..TREE_ARITY {
                if short_hash(mine[c], salt) as u16 != theirs[c] {
                    map |= 1 << c;
                    if at_leaves {
                        let n = lens[c];
                        item += wire::varint_len(u64::from(n));
                        counts.push(n);
                    }
                }
            }
            if map == 0 {
                continue;
            }
            if size + item + 24 > self.cfg.mtu && !diffs.is_empty() {
                let mine_counts = counts.split_off(first_count);
                let body = Body::TreeAck {
                    level,
                    diffs: std::mem::take(&mut diffs),
                    counts: std::mem::replace(&mut counts, mine_counts),
                };
                self.send(
                    from,
                    Transport::Datagram,
                    wire::encode(&Message { from: self.id(), exchange, body }),
                );
                size = 0;
            }
            diffs.push((*idx, map));
            size += item;
        }
        if !diffs.is_empty() {
            let body = Body::TreeAck { level, diffs, counts };
            self.send(
                from,
                Transport::Datagram,
                wire::encode(&Message { from: self.id(), exchange, body }),
            );
        }
    }

    fn on_tree_ack(
        &mut self,
        now: u64,
        from: SocketAddr,
        exchange: u32,
        level: u8,
        diffs: &[(u32, u16)],
        counts: &[u32],
    ) {
        let Some(mut x) = self.exchanges.get(&exchange).copied() else {
            self.stats.rejected += 1;
            return;
        };
        let tree = self.replica.store().tree();
        let level = u32::from(level);
        if x.peer != from || level >= tree.depth() {
            self.stats.rejected += 1;
            return;
        }
        x.deadline = now + self.cfg.interval_ms;
        let mut children: Vec<u32> = Vec::new();
        for &(idx, map) in diffs {
            if idx as usize >= tree.nodes_at(level) {
                continue;
            }
            for c in 0..TREE_ARITY as u32 {
                if map & (1 << c) != 0 {
                    children.push(idx * TREE_ARITY as u32 + c);
                }
            }
        }
        let at_leaves = level + 1 == tree.depth();
        // their key count per differing leaf, when they sent one per leaf
        let mut theirs: Vec<Option<u32>> = vec![None; children.len()];
        if at_leaves && counts.len() == children.len() {
            theirs = counts.iter().map(|c| Some(*c)).collect();
        }
        let mut pairs: Vec<(u32, Option<u32>)> = children.into_iter().zip(theirs).collect();
        // random choice among differing nodes, so concurrent exchanges spread over the tree
        for i in (1..pairs.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            pairs.swap(i, j);
        }
        if at_leaves {
            self.reconcile_leaves(now, from, exchange, &mut x, pairs);
        } else {
            let mut nodes: Vec<u32> = pairs.into_iter().map(|(c, _)| c).collect();
            nodes.truncate(x.budget.max(1));
            self.send_tree(from, exchange, level + 1, &nodes);
        }
    }

    /// Reconciles up to the exchange's remaining budget of differing `leaves` (skipping leaves
    /// already being reconciled with another peer). For each leaf the side holding fewer keys
    /// sends its summary: ours directly, theirs through a `LeafRequest`. So a node that is
    /// behind receives little more than the versions it lacks. All our summaries go in one
    /// `Leaf` message.
    fn reconcile_leaves(
        &mut self,
        now: u64,
        to: SocketAddr,
        exchange: u32,
        x: &mut Exchange,
        mut leaves: Vec<(u32, Option<u32>)>,
    ) {
        leaves.retain(|(l, _)| self.inflight_leaves.get(l).is_none_or(|d| *d <= now));
        let mut ask = Vec::new();
        let mut summaries = ListMsg::new(5, exchange);
        for (leaf, their_count) in leaves {
            if x.budget == 0 || x.budget_bytes == 0 {
                break;
            }
            self.inflight_leaves.insert(leaf, now + self.cfg.request_timeout_ms);
            x.budget -= 1;
            match their_count {
                Some(n) if n < self.replica.store().leaf_len(leaf as usize) => {
                    ask.push(leaf);
                    x.budget_bytes = x.budget_bytes.saturating_sub(n as usize * 10 + 12);
                }
                _ => {
                    let sent = self.leaf_summary(leaf, exchange, &mut summaries);
                    x.budget_bytes = x.budget_bytes.saturating_sub(sent);
                }
            }
        }
        self.exchanges.insert(exchange, *x);
        self.send_list(to, summaries);
        if !ask.is_empty() {
            let mut p = Packer::new(11, self.id(), exchange, Vec::new(), self.cfg.mtu);
            for leaf in ask {
                p.push(wire::varint_len(u64::from(leaf)), |w| w.varint(u64::from(leaf)));
            }
            let dgrams = p.finish(false);
            self.send_all(to, dgrams);
        }
    }

    /// Answers a `LeafRequest` with our summaries of the leaves (at most a budget's worth),
    /// in one `Leaf` message.
    fn on_leaf_request(&mut self, from: SocketAddr, exchange: u32, leaves: &[u32]) {
        let n = self.replica.store().tree().leaves();
        let mut budget = self.cfg.summary_bytes_per_exchange;
        let mut summaries = ListMsg::new(5, exchange);
        for &leaf in leaves.iter().take(self.cfg.leaves_per_exchange) {
            if leaf as usize >= n {
                self.stats.rejected += 1;
                continue;
            }
            if budget == 0 {
                break;
            }
            budget = budget.saturating_sub(self.leaf_summary(leaf, exchange, &mut summaries));
        }
        self.send_list(from, summaries);
    }

    /// Appends our complete summary of `leaf` (salted fingerprints of every version we keep
    /// there) to a `Leaf` message. Returns its size in bytes.
    fn leaf_summary(&mut self, leaf: u32, exchange: u32, msg: &mut ListMsg) -> usize {
        let salt = u64::from(exchange);
        let mut ids = std::mem::take(&mut self.leaf_ids);
        ids.clear();
        let cutoff = self.send_cutoff();
        self.replica.store().for_each_in_leaf_hashed(leaf as usize, |kh, _, versions| {
            if versions.clone().next().is_some_and(|w| Self::withheld(cutoff, w)) {
                // as if purged already (it will be within a purge pass)
                return;
            }
            let fp = short_hash(kh, salt);
            for (v, vh) in versions.hashed() {
                ids.push(LeafId { fp, ts: v.ts, vfp: short_hash(vh, salt) as u16 });
            }
        });
        let before = msg.body.buf.len();
        msg.body.leaf_section(leaf, &ids);
        msg.count += 1;
        self.leaf_ids = ids;
        msg.body.buf.len() - before
    }

    /// Compares a peer's summaries of some leaves with ours: pushes what it lacks (one
    /// `Entries` message), asks for what we lack (one `WantLeaf` message).
    fn on_leaf(&mut self, now: u64, from: SocketAddr, exchange: u32, sections: &[LeafSection]) {
        let leaves = self.replica.store().tree().leaves();
        let mut push = ListMsg::new(7, exchange).capped(self.list_cap());
        let mut want = ListMsg::new(10, exchange);
        let mut wants = Vec::new();
        for section in sections {
            if section.leaf as usize >= leaves {
                self.stats.rejected += 1;
                continue;
            }
            wants.clear();
            self.compare_leaf(section, exchange, &mut push, &mut wants);
            // one peer at a time fills a leaf for us; others' summaries of it wait their turn
            let leaf = section.leaf;
            if !wants.is_empty() && self.wanted_leaves.get(&leaf).is_none_or(|d| *d <= now) {
                self.wanted_leaves.insert(leaf, now + self.cfg.request_timeout_ms);
                wants.sort_unstable();
                want.body.want_section(leaf, &wants);
                want.count += 1;
            }
        }
        self.send_list(from, push);
        self.send_list(from, want);
    }

    /// Compares a peer's summary of one leaf with ours: appends to `push` every version of
    /// ours it lacks, and to `wants` the fingerprint of every key where it has something we
    /// lack.
    fn compare_leaf(
        &mut self,
        section: &LeafSection,
        exchange: u32,
        push: &mut ListMsg,
        wants: &mut Vec<u32>,
    ) {
        let salt = u64::from(exchange);
        let cutoff = self.send_cutoff();
        // theirs, grouped by key fingerprint: (max ts, version fingerprints at that ts)
        let mut their = std::mem::take(&mut self.their_ids);
        their.clear();
        their.extend(section.ids.iter().map(|id| (id.fp, id.ts, id.vfp)));
        their.sort_unstable();
        let mut keys = std::mem::take(&mut self.their_keys);
        keys.clear();
        let mut at = 0;
        while at < their.len() {
            let fp = their[at].0;
            let end = at + their[at..].iter().take_while(|t| t.0 == fp).count();
            let ts = their[end - 1].1;
            let first = at + their[at..end].iter().take_while(|t| t.1 < ts).count();
            keys.push(TheirKey { fp, ts, vfps: (first as u32, end as u32), seen: false });
            at = end;
        }
        let mut my_vfps = std::mem::take(&mut self.my_vfps);
        self.replica.store().for_each_in_leaf_hashed(section.leaf as usize, |kh, key, versions| {
            let Some(first) = versions.clone().next() else { return };
            let fp = short_hash(kh, salt);
            if Self::withheld(cutoff, first) {
                return;
            }
            let Ok(k) = keys.binary_search_by_key(&fp, |k| k.fp) else {
                for v in versions {
                    push.entry(key, v);
                }
                return;
            };
            let k = &mut keys[k];
            k.seen = true;
            if first.ts > k.ts {
                for v in versions {
                    push.entry(key, v);
                }
            } else if first.ts < k.ts {
                wants.push(fp);
            } else {
                let vfps = &their[k.vfps.0 as usize..k.vfps.1 as usize];
                my_vfps.clear();
                for (v, vh) in versions.hashed() {
                    let vfp = short_hash(vh, salt) as u16;
                    my_vfps.push(vfp);
                    if !vfps.iter().any(|t| t.2 == vfp) {
                        push.entry(key, v);
                    }
                }
                if vfps.iter().any(|t| !my_vfps.contains(&t.2)) {
                    wants.push(fp);
                }
            }
        });
        wants.extend(keys.iter().filter(|k| !k.seen).map(|k| k.fp));
        self.their_ids = their;
        self.their_keys = keys;
        self.my_vfps = my_vfps;
    }

    /// Answers a `WantLeaf`: every version of the keys in those leaves with those
    /// fingerprints, in one `Entries` message.
    fn on_want_leaf(&mut self, from: SocketAddr, exchange: u32, wants: &[(u32, Vec<u32>)]) {
        let leaves = self.replica.store().tree().leaves();
        let salt = u64::from(exchange);
        let mut push = ListMsg::new(7, exchange).capped(self.list_cap());
        let mut fps = Vec::new();
        let cutoff = self.send_cutoff();
        // each leaf once, and a bounded answer (as for `Want`: a hostile message may name a
        // leaf many times)
        let mut done = hashbrown::HashSet::with_capacity(wants.len());
        for (leaf, wanted) in wants {
            if *leaf as usize >= leaves {
                self.stats.rejected += 1;
                continue;
            }
            if push.full || push.body.buf.len() >= MAX_ANSWER_BYTES || !done.insert(*leaf) {
                continue;
            }
            fps.clear();
            fps.extend_from_slice(wanted);
            fps.sort_unstable();
            self.replica.store().for_each_in_leaf_hashed(*leaf as usize, |kh, key, versions| {
                if fps.binary_search(&short_hash(kh, salt)).is_ok() {
                    if versions.clone().next().is_some_and(|w| Self::withheld(cutoff, w)) {
                        return;
                    }
                    for v in versions {
                        push.entry(key, v);
                    }
                }
            });
        }
        self.send_list(from, push);
    }

    /// Records that we applied version `ts` of `origin` for the key `kh` (origin deltas).
    fn log_version(&mut self, origin: NodeId, ts: Timestamp, kh: u64) {
        if !self.cfg.origin_deltas
            || (self.origins.len() >= MAX_ORIGINS && !self.origins.contains(origin))
        {
            return;
        }
        let unit = ts >> self.log_shift;
        if self.origins.or_default(origin).push(unit, (kh >> 32) as u32) {
            self.log_items += 1;
            self.stats.origin_log_items = self.log_items as u64;
        }
        if self.log_items > self.log_compact_at {
            // amortized: the next look is after the logs doubled again
            let held = self.replica.store().keys_held();
            if self.log_items > 2 * held + 4096 {
                self.compact_logs();
            }
            self.log_compact_at = 2 * self.log_items.max(held) + 4096;
        }
    }

    /// Forgets every origin log and watermark (the store lost entries they covered).
    fn clear_logs(&mut self) {
        self.origins.clear();
        self.log_items = 0;
        self.log_compact_at = 4096;
        self.stats.origin_log_items = 0;
    }

    /// Drops the log items whose version we no longer keep (overwritten, purged).
    fn compact_logs(&mut self) {
        let store = self.replica.store();
        let shift = self.log_shift;
        let mut total = 0;
        for (origin, log) in self.origins.iter_mut() {
            log.sort();
            let base = log.base;
            log.items.retain(|&(off, hi)| {
                let unit = base + u64::from(off);
                let mut kept = false;
                store.for_each_with_hash_hi(hi, |_, versions| {
                    for v in versions {
                        kept |= v.origin == origin && v.ts >> shift == unit;
                    }
                });
                kept
            });
            log.items.shrink_to_fit();
            log.sorted = log.items.len();
            total += log.items.len();
        }
        self.log_items = total;
        self.stats.origin_log_items = total as u64;
    }

    fn raise_watermark(&mut self, origin: NodeId, to: Timestamp) {
        if self.origins.len() >= MAX_ORIGINS && !self.origins.contains(origin) {
            return;
        }
        let log = self.origins.or_default(origin);
        log.wm = log.wm.max(to);
    }

    /// Our watermark of every origin we know (by origin id).
    fn vector(&self) -> Vec<(NodeId, Timestamp)> {
        self.origins.iter().filter(|(_, l)| l.wm > 0).map(|(o, l)| (o, l.wm)).collect()
    }

    fn send_vector(
        &mut self,
        to: SocketAddr,
        exchange: u32,
        ask: bool,
        vector: Vec<(NodeId, Timestamp)>,
        pulls: Vec<(NodeId, Timestamp)>,
    ) {
        self.stats.delta_pulls += pulls.len() as u64;
        let msg = Message { from: self.id(), exchange, body: Body::Vector { ask, vector, pulls } };
        let payload = wire::encode(&msg);
        let transport =
            if payload.len() <= self.cfg.mtu { Transport::Datagram } else { Transport::Stream };
        self.send(to, transport, payload);
    }

    /// The origins `theirs` (a peer's vector) is ahead of us on and that no other peer is
    /// sending us right now, each with our watermark: what to pull from that peer. Claims
    /// them until an answer or `request_timeout_ms`. Also says whether the peer is ahead on
    /// any origin at all (claimed or not).
    fn plan_pulls(
        &mut self,
        now: u64,
        peer: SocketAddr,
        exchange: u32,
        theirs: &[(NodeId, Timestamp)],
    ) -> (Vec<(NodeId, Timestamp)>, bool) {
        let mut pulls = Vec::new();
        let mut ahead = false;
        let mut mine = self.origins.iter().peekable();
        for &(o, w) in theirs {
            // both lists are by origin: one pass over each
            while mine.next_if(|(m, _)| *m < o).is_some() {}
            let have = mine.peek().filter(|(m, _)| *m == o).map_or(0, |(_, l)| l.wm);
            ahead |= w > have;
            if w > have && self.delta_claims.get(&o).is_none_or(|c| c.0 <= now) {
                pulls.push((o, have));
            }
        }
        let until = now + self.cfg.request_timeout_ms;
        for &(o, _) in &pulls {
            self.delta_claims.insert(o, (until, peer, exchange));
        }
        (pulls, ahead)
    }

    /// Handles a `Vector`: answers its pulls with `Deltas`; answers a request (`ask`) with
    /// our vector and our pulls; on the answer to our own request, sends our pulls, or walks
    /// the digest tree when neither side has anything to pull (the roots still differing).
    fn on_vector(
        &mut self,
        now: u64,
        from: SocketAddr,
        exchange: u32,
        ask: bool,
        theirs: &[(NodeId, Timestamp)],
        pulls: &[(NodeId, Timestamp)],
    ) {
        if !theirs.windows(2).all(|w| w[0].0 < w[1].0) {
            self.stats.rejected += 1;
            return;
        }
        self.serve_pulls(from, exchange, pulls);
        let mine = self.exchanges.get(&exchange).filter(|x| x.peer == from).copied();
        self.settle_own(now);
        let (my_pulls, behind) = self.plan_pulls(now, from, exchange, theirs);
        if ask {
            let vector = self.vector();
            self.send_vector(from, exchange, false, vector, my_pulls);
        } else if let Some(x) = mine {
            if !my_pulls.is_empty() {
                self.send_vector(from, exchange, false, Vec::new(), my_pulls);
            }
            if behind || !pulls.is_empty() {
                // deltas are moving versions (here, or from another peer): no walk
                self.stats.walks_skipped += 1;
            } else if x.peer_root != self.replica.store().root_hash() {
                self.walk_tree(now, from, exchange);
            }
        }
    }

    /// Answers pulls: for each `(origin, from)`, every version of that origin above `from`
    /// and up to our watermark that we keep, in one `Deltas` message (a datagram if it fits,
    /// else a stream message) of about `MAX_ANSWER_BYTES` of entries at most. Whole origins
    /// are served while their versions (counted in the logs) fit; the rest is pulled again
    /// later. A pull that covers a good share of the store is answered by one pass over the
    /// store (sequential reads) rather than one index probe per version (a cache miss each);
    /// a single origin too big for one answer is cut between two of its log's time units.
    fn serve_pulls(&mut self, to: SocketAddr, exchange: u32, pulls: &[(NodeId, Timestamp)]) {
        if pulls.is_empty() {
            return;
        }
        let avg = self.delta_entry_bytes.max(16);
        let shift = self.log_shift;
        // (origin, from, to, first item, end of items)
        let mut plan: Vec<(NodeId, Timestamp, Timestamp, usize, usize)> = Vec::new();
        let mut total = 0usize;
        let mut lossy = false;
        let mut sorted = pulls.to_vec();
        sorted.sort_unstable();
        sorted.dedup_by_key(|p| p.0);
        for &(o, from) in &sorted {
            let Some(log) = self.origins.get_mut(o) else { continue };
            if log.wm <= from {
                continue;
            }
            log.sort();
            let (start, end) = log.span(from >> shift, log.wm >> shift);
            let n = end - start;
            if !plan.is_empty() && (total + n) * avg > MAX_ANSWER_BYTES {
                break;
            }
            lossy |= log.lossy;
            plan.push((o, from, log.wm, start, end));
            total += n;
        }
        if plan.is_empty() {
            return;
        }
        let cutoff = self.send_cutoff();
        let store = self.replica.store();
        let mut sink = ListMsg::new(18, exchange).capped(self.list_cap());
        let mut ranges = Vec::with_capacity(plan.len());
        // the origin to serve alone if the answer's first time unit overflows the message
        let mut fallback = None;
        let scan =
            lossy || (plan.len() > 1 && total.saturating_mul(SCAN_SHARE) > store.keys_held());
        if scan {
            // one pass over the store, in memory order
            // asked for every entry read: a hash lookup, where a binary search over the
            // plan's hundreds of origins was most of the pass (session 17)
            let table: HashMap<NodeId, (Timestamp, Timestamp)> =
                plan.iter().map(|&(o, from, to, _, _)| (o, (from, to))).collect();
            // and before the map, a 4,096-bit filter of the plan's origins, in L1: most
            // entries are of other origins (a plan names about a tenth of them in the burst)
            let mut filter = [0u64; 64];
            for &(o, ..) in &plan {
                let b = origin_bit(o);
                filter[b >> 6] |= 1 << (b & 63);
            }
            let wanted = |origin: NodeId, ts: Timestamp| {
                let b = origin_bit(origin);
                filter[b >> 6] & (1 << (b & 63)) != 0
                    && table.get(&origin).is_some_and(|&(from, to)| ts > from && ts <= to)
            };
            store.for_each_matching(wanted, |key, versions| {
                let mut versions = versions.peekable();
                if versions.peek().is_some_and(|w| Self::withheld(cutoff, *w)) {
                    return;
                }
                for v in versions {
                    if wanted(v.origin, v.ts) {
                        sink.entry(key, v);
                    }
                }
            });
            // (an answer over the limit is built again below, for one origin)
            if !sink.full {
                ranges.extend(plan.iter().map(|&(o, from, to, _, _)| (o, from, to)));
            }
        } else {
            'plan: for &(o, from, wm, start, end) in &plan {
                let Some(log) = self.origins.get(o) else { continue };
                // the time unit being served, the last one served whole, and where the
                // current one starts in the answer (bytes, entries)
                let (mut last, mut done, mut mark) = (None, None, (0, 0));
                let items = &log.items[start..end];
                for (i, &(off, hi)) in items.iter().enumerate() {
                    if i % WARM == 0 {
                        // each lookup is a few dependent cache misses: start the next few
                        // lookups' misses together
                        store.warm_hash_hi(items[i..].iter().take(WARM).map(|&(_, h)| h));
                    }
                    let unit = log.base + u64::from(off);
                    if last != Some(unit) {
                        if let Some(prev) = last
                            && sink.body.buf.len() >= MAX_ANSWER_BYTES
                        {
                            // cut between two time units: everything up to the end of `prev`
                            // went
                            let cut = unit_end(prev, shift).min(wm);
                            if cut > from {
                                ranges.push((o, from, cut));
                            }
                            break 'plan;
                        }
                        (done, last, mark) = (last, Some(unit), (sink.body.buf.len(), sink.count));
                    }
                    store.for_each_with_hash_hi(hi, |key, versions| {
                        let mut versions = versions.peekable();
                        if versions.peek().is_some_and(|w| Self::withheld(cutoff, *w)) {
                            return;
                        }
                        for v in versions {
                            if v.origin == o && v.ts > from && v.ts <= wm && v.ts >> shift == unit {
                                sink.entry(key, v);
                            }
                        }
                    });
                    if sink.full {
                        // the message's limit fell inside this unit: the answer ends with the
                        // unit before (if nothing comes before, it is built again below)
                        if let Some(prev) = done {
                            let cut = unit_end(prev, shift).min(wm);
                            if cut > from {
                                ranges.push((o, from, cut));
                            }
                        }
                        if mark.1 > 0 || !ranges.is_empty() {
                            sink.truncate(mark);
                        } else {
                            fallback = Some((o, from, wm));
                        }
                        break 'plan;
                    }
                }
                ranges.push((o, from, wm));
            }
        }
        if sink.full {
            // a single time unit of one origin (or, in a pass over the store, the plan's first
            // origins) holds more than one message may: serve one origin, oldest versions
            // first, cut between two of them
            let (o, from, wm) = fallback.unwrap_or((plan[0].0, plan[0].1, plan[0].2));
            sink.reset();
            ranges.clear();
            let cut = Self::oldest_first(store, cutoff, (o, from, wm), &mut sink);
            if cut > from {
                ranges.push((o, from, cut));
            }
        }
        self.stats.oversize_versions += sink.oversize;
        if sink.count > 0 {
            let per = sink.body.buf.len() / sink.count as usize;
            self.delta_entry_bytes = (self.delta_entry_bytes * 3 + per) / 4;
        }
        let mut prefix = Writer::with_capacity(8 + ranges.len() * 12);
        prefix.ranges(&ranges);
        let head = Head { version: wire::WIRE_VERSION, kind: 18, from: self.id(), exchange };
        let buf = wire::list_message(head, &prefix.buf, sink.count, &sink.body.buf);
        sink.recycle();
        let transport =
            if buf.len() <= self.cfg.mtu { Transport::Datagram } else { Transport::Stream };
        self.send(to, transport, buf);
    }

    /// Appends to `sink` the versions of origin `o` in `(from, wm]` that we keep, oldest
    /// first, until it is full; returns the time up to which every one was appended (or
    /// skipped as too long for any message). A pass over the store that keeps, as it goes,
    /// only the oldest versions that fit the message (its memory stays within one message,
    /// whatever the store holds): only an answer whose first time unit overflows a message
    /// comes here.
    fn oldest_first(
        store: &crate::store::Store,
        cutoff: Option<Timestamp>,
        (o, from, wm): (NodeId, Timestamp, Timestamp),
        sink: &mut ListMsg,
    ) -> Timestamp {
        let in_range = |origin: NodeId, ts: Timestamp| origin == o && ts > from && ts <= wm;
        let budget = sink.cap.saturating_sub(sink.body.buf.len());
        let (mut kept, mut bytes, mut cut) = (BinaryHeap::new(), 0, wm);
        store.for_each_matching(in_range, |key, versions| {
            let mut versions = versions.peekable();
            if versions.peek().is_some_and(|w| Self::withheld(cutoff, *w)) {
                return;
            }
            for v in versions {
                if in_range(v.origin, v.ts) && v.ts <= cut {
                    let v = Oldest { key: key.to_vec(), v: v.to_owned() };
                    bytes += v.len();
                    kept.push(v);
                    // the newest leave the message (and bound what it may claim), but one
                    // stays, even alone too long (it is then skipped, and counted)
                    while bytes > budget && kept.len() > 1 {
                        if let Some(newest) = kept.pop() {
                            bytes -= newest.len();
                            cut = cut.min(newest.v.ts - 1);
                        }
                    }
                }
            }
        });
        for x in kept.into_sorted_vec() {
            if x.v.ts > cut {
                break;
            }
            if !sink.entry(&x.key, x.v.as_ref()) && sink.full {
                return x.v.ts - 1;
            }
        }
        cut
    }

    /// Handles `Deltas`: merges the entries, then raises our watermark of each range's
    /// origin that we pulled from this peer and that the range continues.
    fn on_deltas(
        &mut self,
        now: u64,
        from: SocketAddr,
        exchange: u32,
        ranges: &[(NodeId, Timestamp, Timestamp)],
        entries: &EntryList,
    ) {
        // only a range we asked this peer for may raise a watermark: an unasked one (a
        // forged or very late answer) could make us skip versions we lack
        let asked: Vec<bool> = ranges
            .iter()
            .map(|r| self.delta_claims.get(&r.0).is_some_and(|c| (c.1, c.2) == (from, exchange)))
            .collect();
        self.merge_entries(now, Some((from, exchange)), entries, false);
        // the answer to that pull: what it left out may be pulled again, from anyone
        self.delta_claims.retain(|_, c| (c.1, c.2) != (from, exchange));
        for (&(o, lo, hi), asked) in ranges.iter().zip(asked) {
            if !asked {
                self.stats.rejected += 1;
                continue;
            }
            let have = self.origins.get(o).map_or(0, |l| l.wm);
            if lo <= have && hi > have {
                self.raise_watermark(o, hi);
                self.stats.delta_ranges += 1;
            }
        }
    }

    /// Merges received entries. `from` (sender, exchange) gets back the tombstones of ghosts
    /// that refused some of them.
    fn merge_entries(
        &mut self,
        now: u64,
        from: Option<(SocketAddr, u32)>,
        entries: &EntryList,
        spread: bool,
    ) {
        // a tombstone past the purge horizon for a key we do not hold would only be purged
        // again: taking it back from a peer that has not purged yet would make it bounce
        let cutoff = self.purge_horizon().map(|g| hlc_pack(now.saturating_sub(g), 0));
        let mut skipped: Vec<(u64, u64)> = Vec::new();
        let mut answer: Vec<WireEntry> = Vec::new();
        if self.cfg.record_receptions {
            self.receptions.reserve(entries.len());
        }
        // the merges run under as few shard locks as possible (`Store::merge_run`); what a
        // changed version updates here (logs, rumors) waits until the run is dropped, since
        // it may read the store
        let replica = Arc::clone(&self.replica);
        let mut run = None;
        let mut applied = std::mem::take(&mut self.applied);
        applied.clear();
        // entries are read in windows of `WARM`, each key hashed and warmed before any merge
        let mut window = [(0u64, &[][..], VersionRef { ts: 0, origin: 0, value: None }); WARM];
        let mut list = entries.iter();
        for w in 0.. {
            let mut filled = 0;
            for (slot, (key, v)) in window.iter_mut().zip(list.by_ref()) {
                *slot = (key_hash(key), key, v);
                filled += 1;
            }
            if filled == 0 {
                break;
            }
            let window = &window[..filled];
            if w > 0 || filled == WARM {
                let run = run.get_or_insert_with(|| replica.store().merge_run());
                for &(kh, key, _) in window {
                    run.warm(kh, key);
                }
            }
            for &(kh, key, v) in window {
                let vh = version_hash(kh, v);
                self.stats.versions_received += 1;
                if self.cfg.record_receptions {
                    self.receptions.push((kh, vh as u32));
                }
                if !self.ghosts.is_empty()
                    && let Some(g) = self.ghosts.get(&kh).copied()
                    && g.check == ghost_check(key)
                {
                    if v.ts > g.ts {
                        // written again after the delete: the key lives
                        self.ghosts.remove(&kh);
                    } else {
                        // no newer than a tombstone purged here: the sender lags (it missed the
                        // delete for longer than the grace). Refuse it, and send the tombstone
                        // back so that the sender deletes the key too.
                        self.pending_wants.remove(&kh);
                        if v.value.is_some() && !skipped.iter().any(|&(k, _)| k == kh) {
                            self.stats.ghost_refused += 1;
                            if answer.last().is_none_or(|a| a.key[..] != *key) {
                                let version = Version::tombstone(g.ts, g.origin);
                                answer
                                    .push(WireEntry { key: Bytes::copy_from_slice(key), version });
                            }
                        }
                        continue;
                    }
                }
                if let Some(cutoff) = cutoff
                    && v.value.is_none()
                    && v.ts < cutoff
                    && {
                        // (a read of the store: the run's lock goes first)
                        run = None;
                        !replica.store().contains(key)
                    }
                {
                    self.pending_wants.remove(&kh);
                    self.stats.stale_tombstones_skipped += 1;
                    skipped.push((kh, v.ts));
                    let g = Ghost { ts: v.ts, origin: v.origin, check: ghost_check(key) };
                    self.ghosts.insert(kh, g);
                    continue;
                }
                // a value tied with (or older than) a tombstone just skipped would win without it
                if skipped.iter().any(|&(k, ts)| k == kh && v.ts <= ts) {
                    continue;
                }
                // a rumor we asked for, or a delete (pushed whole by rumor mongering)
                let rumor = (!self.pending_wants.is_empty()
                    && self.pending_wants.remove(&kh).is_some_and(|p| p.1))
                    || v.value.is_none();
                let run = run.get_or_insert_with(|| replica.store().merge_run());
                if replica.merge_remote_in(run, (kh, vh), key, v, now).changed() {
                    let id = VersionId { kh, ts: v.ts, vh: vh as u32 };
                    applied.push((id, v.origin, rumor, v.value.is_none()));
                }
            }
        }
        drop(run);
        for &(id, origin, rumor, delete) in &applied {
            self.stats.versions_applied += 1;
            self.log_version(origin, id.ts, id.kh);
            if spread && rumor {
                // changed and a tombstone: it is the winner (a delete wins a tie)
                self.make_hot(id, delete, now, false);
            }
        }
        if applied.capacity() <= 1024 {
            // (a large message's list is not kept: thousands of simulated nodes each hold one)
            self.applied = applied;
        }
        if let Some((to, exchange)) = from
            && !answer.is_empty()
        {
            self.send_entries(to, exchange, &answer);
        }
    }

    fn start_bulk(&mut self, now: u64, peer: SocketAddr, exchange: u32, cursor: u32) {
        self.stats.bulk_started += 1;
        self.bulk = Some(Bulk { peer, cursor, deadline: now + self.cfg.interval_ms * 2 });
        let msg = Message { from: self.id(), exchange, body: Body::BulkRequest { cursor } };
        self.send(peer, Transport::Stream, wire::encode(&msg));
    }

    fn on_bulk_request(&mut self, from: SocketAddr, exchange: u32, cursor: u32) {
        let store = self.replica.store();
        let leaves = store.tree().leaves() as u32;
        if cursor >= leaves {
            self.stats.rejected += 1;
            return;
        }
        let mut chunk = ListMsg::new(9, exchange).capped(self.list_cap());
        let mut leaf = cursor;
        let cutoff = self.send_cutoff();
        // whole leaves, except that a leaf holding more than a message may is cut short (what
        // is left of it comes through the digest tree once the catch-up is over)
        while leaf < leaves && !chunk.full && chunk.body.buf.len() < self.cfg.bulk_chunk_bytes {
            store.for_each_in_leaf(leaf as usize, |key, versions| {
                let mut versions = versions.peekable();
                if versions.peek().is_some_and(|w| Self::withheld(cutoff, *w)) {
                    return;
                }
                for v in versions {
                    chunk.entry(key, v);
                }
            });
            leaf += 1;
        }
        self.stats.oversize_versions += chunk.oversize;
        let next = if leaf >= leaves { 0 } else { leaf };
        let mut prefix = Writer::with_capacity(5);
        prefix.varint(u64::from(next));
        let head = Head::base(9, self.id(), exchange);
        let buf = wire::list_message(head, &prefix.buf, chunk.count, &chunk.body.buf);
        chunk.recycle();
        self.send(from, Transport::Stream, buf);
    }

    fn on_bulk_chunk(&mut self, now: u64, from: SocketAddr, next: u32, entries: &EntryList) {
        let Some(mut b) = self.bulk else {
            self.stats.rejected += 1;
            return;
        };
        if b.peer != from {
            self.stats.rejected += 1;
            return;
        }
        self.merge_entries(now, Some((from, 0)), entries, false);
        if next == 0 || next <= b.cursor {
            self.bulk = None;
            self.bulk_resume = 0;
            return;
        }
        b.cursor = next;
        b.deadline = now + self.cfg.interval_ms * 2;
        self.bulk = Some(b);
        let exchange = self.rng.next_u64() as u32;
        let msg = Message { from: self.id(), exchange, body: Body::BulkRequest { cursor: next } };
        self.send(from, Transport::Stream, wire::encode(&msg));
    }
}
