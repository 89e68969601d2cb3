//! The gossip state machine (`gossipkv_core::gossip::Node`) under hostile input. Node A, the
//! target, gossips with an honest node B over a network the fuzzer schedules (deliver, drop,
//! duplicate, reorder), while attackers (and spoofers of B's address) send it raw bytes,
//! well-formed messages aimed at its open exchanges, and its own messages back, tampered or
//! not. Clients write to both nodes and time advances in steps the fuzzer picks.
//!
//! Checked after every step:
//! - no panic, no arithmetic overflow (run.sh builds with debug assertions);
//! - everything A sends decodes, and every datagram fits the MTU;
//! - the outbox is bounded: what one step makes A send is at most a fixed budget (the leaf
//!   summary budget, a few MTUs, four times the input) plus three times A's whole store in
//!   wire bytes, so no message can make A send unboundedly many copies of anything;
//! - the rumor lists (values, deletes) stay within `max_hot` each;
//! - a client write at A wins at A at once (the version it returns is A's winner).
//!
//! At the end, both nodes' gossip is run with lossless delivery for a number of rounds and A
//! and B must hold the same versions (whatever the attackers wrote is replicated too), unless
//! an attacker spoke about membership (it may rightly have convinced A that B is gone).
//!
//! Half the inputs run with membership on (pings, indirect probes, member rumors and table
//! pulls, hellos in every `Sync`); the tombstone purge stays off (`tombstone_grace_ms` 0).
//!
//! Set `GOSSIPKV_FUZZ_ALLOW` to a comma-separated list to tolerate issues already reported
//! (see docs/fuzzing.md), so a run can look for new ones: `want-dups` (a `Want` or `SyncAck`
//! naming one key many times makes A send its versions that many times), `ts-poison` (a
//! remote timestamp at `u64::MAX` saturates A's clock, after which a local write can lose).

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::Bytes;
use gossipkv_core::clock::hlc_pack;
use gossipkv_core::digest::{TreeShape, key_hash, short_hash, version_hash};
use gossipkv_core::gossip::wire::{
    self, Body, LeafId, LeafSection, Message, VersionId, WireEntry, entry_len, member_len,
};
use gossipkv_core::gossip::{
    GossipConfig, MemberNews, MemberRecord, Node, Status, Transmit, Transport,
};
use gossipkv_core::{ClockKind, Replica, StoreConfig, Version};
use libfuzzer_sys::fuzz_target;

const KEYS: u8 = 48;
const MAX_STEPS: usize = 200;
const HEAL_ROUNDS: u64 = 60;
const START_MS: u64 = 1_000_000;

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 7946)
}

fn a_addr() -> SocketAddr {
    addr(1)
}

fn b_addr() -> SocketAddr {
    addr(2)
}

fn key(i: u8) -> Vec<u8> {
    format!("key:{}", i % KEYS).into_bytes()
}

fn config() -> GossipConfig {
    GossipConfig {
        fanout: 2,
        interval_ms: 100,
        mtu: 512,
        rumor_rounds: 2,
        max_hot: 32,
        leaves_per_exchange: 8,
        summary_bytes_per_exchange: 2048,
        request_timeout_ms: 50,
        bulk_chunk_bytes: 2048,
        record_receptions: true,
        ..GossipConfig::default()
    }
}

/// A `Sync` and a `SyncAck` as nodes really send them, as templates for the fuzzer's own:
/// filling in only the fields the fuzzer controls keeps this target compiling when the
/// messages gain fields.
fn templates() -> &'static (Body, Body) {
    static T: OnceLock<(Body, Body)> = OnceLock::new();
    T.get_or_init(|| {
        let node = |id| {
            let replica = Arc::new(Replica::new(id, ClockKind::Hlc, StoreConfig::default()));
            Node::new(replica, config(), vec![addr(99)], 1, 0)
        };
        let decode = |p: Vec<u8>| wire::decode(&Bytes::from(p)).expect("a node's message").body;
        let mut c = node(90);
        c.handle_timeout(0);
        let sync = c.poll_transmit().expect("a round sends a Sync").payload;
        let mut d = node(91);
        d.handle_datagram(0, addr(98), Bytes::from(sync.clone()));
        let ack = std::iter::from_fn(|| d.poll_transmit())
            .map(|t| decode(t.payload))
            .find(|b| matches!(b, Body::SyncAck { .. }))
            .expect("a Sync is answered with a SyncAck");
        (decode(sync), ack)
    })
}

struct Allow {
    want_dups: bool,
    ts_poison: bool,
}

fn allow() -> &'static Allow {
    static ALLOW: OnceLock<Allow> = OnceLock::new();
    ALLOW.get_or_init(|| {
        let v = std::env::var("GOSSIPKV_FUZZ_ALLOW").unwrap_or_default();
        let has = |name: &str| v.split(',').any(|s| s.trim() == name);
        Allow { want_dups: has("want-dups"), ts_poison: has("ts-poison") }
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u64,
    deep_tree: bool,
    /// Both nodes run membership and failure detection (SWIM-like), with A's peers as seeds.
    membership: bool,
    preload: Vec<Write>,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Write {
    on_b: bool,
    key: u8,
    value: Option<Val>,
}

#[derive(Arbitrary, Debug)]
struct Val {
    len: u16,
    fill: u8,
}

impl Val {
    fn bytes(&self) -> Vec<u8> {
        // mostly small; sometimes larger than the MTU (those travel on the stream)
        let len =
            usize::from(if self.len.is_multiple_of(16) { self.len % 1500 } else { self.len % 400 });
        vec![self.fill; len]
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Arbitrary bytes from a peer address.
    Raw { from: Peer, bytes: Vec<u8> },
    /// A well-formed message from a peer address.
    Msg { from: Peer, exchange: Xid, body: ArbBody },
    /// One of A's earlier messages sent back to it, maybe with one byte changed.
    Replay { from: Peer, pick: u16, flip: Option<(u16, u8)> },
    /// The honest network between A and B.
    Net { to_b: bool, pick: u8, action: NetAction },
    /// Time passes; rounds run when due.
    Tick { ms: u16 },
    /// A client write (PUT or DEL) at A or B.
    Write(Write),
}

#[derive(Arbitrary, Debug)]
enum NetAction {
    Deliver,
    Drop,
    Duplicate,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Peer {
    B,
    Attacker(u8),
}

impl Peer {
    fn addr(self) -> SocketAddr {
        match self {
            Peer::B => b_addr(),
            Peer::Attacker(i) => addr(3 + i % 3),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Xid {
    /// The exchange of one of A's recent messages.
    Recent(u8),
    Any(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kh {
    Key(u8),
    Any(u64),
}

impl Kh {
    fn get(self) -> u64 {
        match self {
            Kh::Key(i) => key_hash(&key(i)),
            Kh::Any(h) => h,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ts {
    /// Around the current HLC time.
    Near(i16),
    /// Just below `u64::MAX`.
    Top(u8),
    Any(u64),
}

impl Ts {
    fn get(self, now: u64) -> u64 {
        match self {
            Ts::Near(d) => hlc_pack(now, 0).wrapping_add_signed(i64::from(d) << 8),
            Ts::Top(d) => u64::MAX - u64::from(d),
            Ts::Any(t) => t,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Leaf {
    OfKey(u8),
    Any(u32),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Any(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct ArbEntry {
    key: Key,
    ts: Ts,
    origin: u32,
    value: Option<Val>,
}

#[derive(Arbitrary, Debug)]
struct ArbId {
    kh: Kh,
    ts: Ts,
    /// The hash of the value `fill * len` at this key and timestamp, or an arbitrary one.
    vh: Result<Val, u32>,
}

#[derive(Arbitrary, Debug)]
struct ArbLeafId {
    kh: Kh,
    ts: Ts,
    vfp: u16,
}

/// What a `Sync` / `SyncAck` says about its sender (the fields a sender controls).
#[derive(Arbitrary, Debug)]
struct ArbHello {
    generation: u64,
    refute: u32,
    clock: Ts,
    flags: u8,
}

#[derive(Arbitrary, Debug)]
struct ArbMember {
    id: u8,
    addr: Option<Peer>,
    generation: u8,
    refute: u8,
    status: u8,
    /// The suspector of a suspicion (wire version 3); ignored on the wire for other statuses.
    suspector: Option<u8>,
}

#[derive(Arbitrary, Debug)]
enum ArbBody {
    Sync { root: u64, keys: u64, hello: ArbHello, haves: Vec<ArbId> },
    SyncAck { root: Option<u64>, keys: u64, hello: ArbHello, haves: Vec<ArbId>, wants: Vec<Kh> },
    Ping { origin: Option<Peer> },
    PingReq { target: Option<Peer> },
    Ack,
    MemberRequest { buckets: Vec<u32> },
    Members { full: bool, records: Vec<ArbMember> },
    Tree { level: u8, nodes: Vec<(u16, [u16; 16])> },
    TreeAck { level: u8, diffs: Vec<(u16, u16)>, counts: Vec<u16> },
    LeafRequest { leaves: Vec<u16> },
    Leaf { sections: Vec<(Leaf, Vec<ArbLeafId>)> },
    Want { keys: Vec<Kh> },
    WantLeaf { wants: Vec<(Leaf, Vec<Result<Kh, u32>>)> },
    Entries { entries: Vec<ArbEntry> },
    BulkRequest { cursor: u16 },
    BulkChunk { next: u16, entries: Vec<ArbEntry> },
}

struct World {
    a: Node,
    b: Node,
    tree: TreeShape,
    now: u64,
    /// In flight between A and B: (to B?, message).
    net: Vec<(bool, Transmit)>,
    /// A's recent messages to anyone (for replays and exchange ids).
    recent: Vec<Vec<u8>>,
    /// Whether anyone but B told A something about membership (then A may rightly stop
    /// gossiping with B, and the final convergence check does not apply).
    forged_membership: bool,
}

impl World {
    fn new(input: &Input) -> Self {
        let tree = TreeShape::new(if input.deep_tree { 2 } else { 1 });
        let store = StoreConfig { shards_log2: 1, tree, max_concurrent: 4 };
        let ra = Arc::new(Replica::new(1, ClockKind::Hlc, store));
        let rb = Arc::new(Replica::new(2, ClockKind::Hlc, store));
        let peers_a = vec![b_addr(), addr(3), addr(4), addr(5)];
        let mut a = Node::new(ra, config(), peers_a, input.seed, START_MS + 7);
        let mut b = Node::new(rb, config(), vec![a_addr()], input.seed ^ 0x9e37, START_MS + 61);
        if input.membership {
            a.enable_membership(a_addr(), 1, START_MS);
            b.enable_membership(b_addr(), 1, START_MS);
        }
        Self {
            a,
            b,
            tree,
            now: START_MS,
            net: Vec::new(),
            recent: Vec::new(),
            forged_membership: false,
        }
    }

    fn ts(&self, t: Ts) -> u64 {
        t.get(self.now)
    }

    fn leaf(&self, l: &Leaf) -> u32 {
        match *l {
            Leaf::OfKey(i) => self.tree.leaf_of(key_hash(&key(i))) as u32,
            Leaf::Any(x) => x,
        }
    }

    fn exchange(&self, x: &Xid) -> u32 {
        match *x {
            Xid::Recent(i) if !self.recent.is_empty() => {
                let m = &self.recent[usize::from(i) % self.recent.len()];
                wire::decode(&Bytes::copy_from_slice(m)).map_or(0, |m| m.exchange)
            }
            Xid::Recent(i) => u32::from(i),
            Xid::Any(x) => x,
        }
    }

    fn entry(&self, e: &ArbEntry) -> WireEntry {
        let key = match &e.key {
            Key::Known(i) => key(*i),
            Key::Any(k) => k.clone(),
        };
        let version = Version {
            ts: self.ts(e.ts),
            origin: e.origin,
            value: e.value.as_ref().map(|v| v.bytes().into()),
        };
        WireEntry { key: key.into(), version }
    }

    fn body(&self, b: &ArbBody, exchange: u32) -> Body {
        let salt = u64::from(exchange);
        let id = |x: &ArbId| {
            let kh = x.kh.get();
            let ts = self.ts(x.ts);
            let vh = match &x.vh {
                Ok(v) => {
                    let value = v.bytes();
                    let r = gossipkv_core::VersionRef { ts, origin: 2, value: Some(&value) };
                    version_hash(kh, r) as u32
                }
                Err(h) => *h,
            };
            VersionId { kh, ts, vh }
        };
        match b {
            ArbBody::Sync { root, keys, hello, haves } => {
                let mut body = templates().0.clone();
                if let Body::Sync { root: r, keys: k, hello: he, haves: h, .. } = &mut body {
                    (*r, *k, *h) = (*root, *keys, haves.iter().map(id).collect());
                    (he.generation, he.refute) = (hello.generation, hello.refute);
                    (he.clock, he.flags) = (self.ts(hello.clock), hello.flags);
                }
                body
            }
            ArbBody::SyncAck { root, keys, hello, haves, wants } => {
                let mut body = templates().1.clone();
                if let Body::SyncAck { root: r, keys: k, hello: he, haves: h, wants: w, .. } =
                    &mut body
                {
                    *r = root.unwrap_or_else(|| self.a.replica().store().root_hash());
                    *k = *keys;
                    *h = haves.iter().map(id).collect();
                    *w = wants.iter().map(|k| k.get()).collect();
                    (he.generation, he.refute) = (hello.generation, hello.refute);
                    (he.clock, he.flags) = (self.ts(hello.clock), hello.flags);
                }
                body
            }
            ArbBody::Ping { origin } => Body::Ping { origin: origin.map(Peer::addr) },
            ArbBody::PingReq { target } => {
                Body::PingReq { target: target.map_or_else(a_addr, Peer::addr) }
            }
            ArbBody::Ack => Body::Ack,
            ArbBody::MemberRequest { buckets } => Body::MemberRequest { buckets: buckets.clone() },
            ArbBody::Members { full, records } => Body::Members {
                full: *full,
                records: records
                    .iter()
                    .map(|m| MemberNews {
                        rec: MemberRecord {
                            id: u32::from(m.id % 8),
                            addr: m.addr.map_or_else(a_addr, Peer::addr),
                            generation: u64::from(m.generation),
                            refute: u32::from(m.refute),
                            status: Status::from_byte(m.status % 4).unwrap_or(Status::Alive),
                        },
                        suspector: m.suspector.map(|id| u32::from(id % 8)),
                    })
                    .collect(),
            },
            ArbBody::Tree { level, nodes } => Body::Tree {
                level: *level % 4,
                nodes: nodes.iter().map(|(i, h)| (u32::from(*i), *h)).collect(),
            },
            ArbBody::TreeAck { level, diffs, counts } => Body::TreeAck {
                level: *level % 4,
                diffs: diffs.iter().map(|(i, m)| (u32::from(*i), *m)).collect(),
                counts: counts.iter().map(|c| u32::from(*c)).collect(),
            },
            ArbBody::LeafRequest { leaves } => {
                Body::LeafRequest { leaves: leaves.iter().map(|l| u32::from(*l)).collect() }
            }
            ArbBody::Leaf { sections } => Body::Leaf {
                sections: sections
                    .iter()
                    .map(|(leaf, ids)| LeafSection {
                        leaf: self.leaf(leaf),
                        ids: ids
                            .iter()
                            .map(|x| LeafId {
                                fp: short_hash(x.kh.get(), salt),
                                ts: self.ts(x.ts),
                                vfp: x.vfp,
                            })
                            .collect(),
                    })
                    .collect(),
            },
            ArbBody::Want { keys } => Body::Want { keys: keys.iter().map(|k| k.get()).collect() },
            ArbBody::WantLeaf { wants } => Body::WantLeaf {
                wants: wants
                    .iter()
                    .map(|(leaf, fps)| {
                        let fps = fps
                            .iter()
                            .map(|f| match f {
                                Ok(k) => short_hash(k.get(), salt),
                                Err(x) => *x,
                            })
                            .collect();
                        (self.leaf(leaf), fps)
                    })
                    .collect(),
            },
            ArbBody::Entries { entries } => Body::Entries {
                entries: entries.iter().map(|e| self.entry(e)).collect::<Vec<_>>().into(),
            },
            ArbBody::BulkRequest { cursor } => Body::BulkRequest { cursor: u32::from(*cursor) },
            ArbBody::BulkChunk { next, entries } => Body::BulkChunk {
                next: u32::from(*next),
                entries: entries.iter().map(|e| self.entry(e)).collect::<Vec<_>>().into(),
            },
        }
    }

    /// A's state in wire bytes: every version of every key as an `Entries` item, and every
    /// member record it holds.
    fn store_wire_bytes(&self) -> usize {
        let store: usize = self
            .a
            .replica()
            .store()
            .snapshot()
            .iter()
            .map(|(k, vs)| vs.iter().map(|v| entry_len(k, v)).sum::<usize>())
            .sum();
        let members: usize = self.a.membership().map_or(0, |m| {
            m.records()
                .iter()
                .map(|r| member_len(&MemberNews::plain(*r), wire::WIRE_VERSION) + 16)
                .sum()
        });
        store + members
    }

    /// Notes a message from anyone but the honest B that speaks about membership.
    fn note_forged(&mut self, payload: &[u8]) {
        if let Ok(m) = wire::decode(&Bytes::copy_from_slice(payload)) {
            let hello = match &m.body {
                Body::Sync { hello, .. } | Body::SyncAck { hello, .. } => hello.generation > 0,
                _ => false,
            };
            self.forged_membership |= m.body.kind() >= 12 || hello;
        }
    }

    /// Extra bytes A may send for a `Want` / `SyncAck` naming keys more than once, when
    /// `want-dups` is allowed.
    fn dup_allowance(&self, payload: &[u8]) -> usize {
        if !allow().want_dups {
            return 0;
        }
        let Ok(msg) = wire::decode(&Bytes::copy_from_slice(payload)) else { return 0 };
        let mut khs = match msg.body {
            Body::Want { keys } => keys,
            Body::SyncAck { wants, .. } => wants,
            _ => return 0,
        };
        khs.sort_unstable();
        let mut extra = 0;
        for w in khs.windows(2) {
            if w[0] == w[1]
                && let Some((k, vs)) = self.a.replica().store().get_by_hash(w[0])
            {
                extra += vs.iter().map(|v| entry_len(&k, v) + 64).sum::<usize>();
            }
        }
        extra
    }

    /// Hands `payload` to A and checks what A sends in response.
    fn deliver_to_a(&mut self, from: SocketAddr, payload: Vec<u8>) {
        let allowance = self.dup_allowance(&payload);
        let len = payload.len();
        self.a.handle_datagram(self.now, from, Bytes::from(payload));
        self.drain(len, allowance);
    }

    fn deliver_to_b(&mut self, payload: Vec<u8>) {
        self.b.handle_datagram(self.now, a_addr(), Bytes::from(payload));
        while let Some(t) = self.b.poll_transmit() {
            if t.to == a_addr() {
                self.net.push((false, t));
            }
        }
    }

    /// Takes everything A wants to send, checks it, and routes it.
    fn drain(&mut self, input_len: usize, allowance: usize) {
        let cfg = config();
        let mut bytes = 0usize;
        let mut count = 0usize;
        while let Some(t) = self.a.poll_transmit() {
            count += 1;
            bytes += t.payload.len();
            if t.transport == Transport::Datagram {
                assert!(t.payload.len() <= cfg.mtu, "datagram of {} bytes", t.payload.len());
            }
            let msg = wire::decode(&Bytes::from(t.payload.clone()));
            assert!(msg.is_ok(), "A sent an undecodable message: {msg:?}");
            if self.recent.len() >= 64 {
                self.recent.remove(0);
            }
            self.recent.push(t.payload.clone());
            if t.to == b_addr() {
                self.net.push((true, t));
            }
        }
        assert!(self.a.stats().max_datagram <= cfg.mtu);
        // values and deletes are bounded apart, each by max_hot
        assert!(self.a.hot_len() <= 2 * cfg.max_hot, "{} rumors", self.a.hot_len());
        // leaf summaries (an exchange's budget plus one leaf), a round's Syncs, a SyncAck,
        // answers in proportion to what was asked, and a few copies of the store
        let fixed = cfg.summary_bytes_per_exchange
            + cfg.leaves_per_exchange * 64
            + (cfg.fanout + 2) * cfg.mtu
            + 4 * input_len
            + allowance;
        if bytes > fixed {
            let store = self.store_wire_bytes();
            assert!(
                bytes <= fixed + 3 * store,
                "one step made A send {bytes} bytes in {count} messages (input {input_len} \
                 bytes, store {store} wire bytes)"
            );
        }
    }

    fn write(&mut self, w: &Write) {
        let k = key(w.key);
        let node = if w.on_b { &mut self.b } else { &mut self.a };
        let v = match &w.value {
            Some(val) => node.put(&k, val.bytes(), self.now),
            None => node.delete(&k, self.now),
        };
        if !w.on_b {
            let winner = self.a.replica().store().winner(&k);
            let poisoned = allow().ts_poison && v.ts == u64::MAX;
            assert!(
                winner.as_ref() == Some(&v) || poisoned,
                "a write at A does not win at A: wrote {v:?}, winner {winner:?}"
            );
            self.drain(0, 0);
        } else {
            while let Some(t) = self.b.poll_transmit() {
                if t.to == a_addr() {
                    self.net.push((false, t));
                }
            }
        }
    }

    fn tick(&mut self) {
        if self.now >= self.a.next_timeout() {
            self.a.handle_timeout(self.now);
            self.drain(0, 0);
        }
        if self.now >= self.b.next_timeout() {
            self.b.handle_timeout(self.now);
            while let Some(t) = self.b.poll_transmit() {
                if t.to == a_addr() {
                    self.net.push((false, t));
                }
            }
        }
    }

    fn step(&mut self, s: &Step) {
        match s {
            Step::Raw { from, bytes } => {
                self.note_forged(bytes);
                self.deliver_to_a(from.addr(), bytes.clone());
            }
            Step::Msg { from, exchange, body } => {
                let exchange = self.exchange(exchange);
                let body = self.body(body, exchange);
                let from_id = if matches!(from, Peer::B) { 2 } else { 9 };
                let payload = wire::encode(&Message { from: from_id, exchange, body });
                self.note_forged(&payload);
                self.deliver_to_a(from.addr(), payload);
            }
            Step::Replay { from, pick, flip } => {
                if self.recent.is_empty() {
                    return;
                }
                let mut m = self.recent[usize::from(*pick) % self.recent.len()].clone();
                if let Some((at, x)) = flip {
                    let i = usize::from(*at) % m.len();
                    m[i] ^= x;
                }
                self.note_forged(&m);
                self.deliver_to_a(from.addr(), m);
            }
            Step::Net { to_b, pick, action } => {
                let idx: Vec<usize> =
                    (0..self.net.len()).filter(|&i| self.net[i].0 == *to_b).collect();
                if idx.is_empty() {
                    return;
                }
                let i = idx[usize::from(*pick) % idx.len().min(4)];
                let payload = match action {
                    NetAction::Drop => {
                        self.net.remove(i);
                        return;
                    }
                    NetAction::Deliver => self.net.remove(i).1.payload,
                    NetAction::Duplicate => self.net[i].1.payload.clone(),
                };
                if *to_b {
                    self.deliver_to_b(payload);
                } else {
                    self.deliver_to_a(b_addr(), payload);
                }
            }
            Step::Tick { ms } => {
                self.now += u64::from(*ms % 400);
                self.tick();
            }
            Step::Write(w) => self.write(w),
        }
    }

    /// Lossless, immediate delivery between A and B for `HEAL_ROUNDS` rounds.
    fn heal(&mut self) -> bool {
        let end = self.now + HEAL_ROUNDS * config().interval_ms;
        while self.now < end {
            self.now += 10;
            self.tick();
            while !self.net.is_empty() {
                let (to_b, t) = self.net.remove(0);
                if to_b {
                    self.deliver_to_b(t.payload);
                } else {
                    self.deliver_to_a(b_addr(), t.payload);
                }
            }
            if self.a.replica().store().root_hash() == self.b.replica().store().root_hash()
                && self.a.replica().store().snapshot() == self.b.replica().store().snapshot()
            {
                return true;
            }
        }
        false
    }
}

fuzz_target!(|input: Input| {
    let mut w = World::new(&input);
    for p in input.preload.iter().take(64) {
        w.write(p);
    }
    for s in input.steps.iter().take(MAX_STEPS) {
        w.step(s);
    }
    let converged = w.heal();
    assert!(
        converged || w.forged_membership,
        "A and B did not converge after {HEAL_ROUNDS} lossless rounds: A {:?}\nB {:?}",
        w.a.replica().store().snapshot(),
        w.b.replica().store().snapshot()
    );
});
