//! The discrete-event run loop.
//!
//! One [`Queue`] holds every future event (gossip timers, message deliveries, client writes,
//! crashes, restarts, partition changes), ordered by `(virtual ms, sequence)`. The loop pops
//! the earliest, hands it to the node it concerns, and routes whatever that node wants sent
//! through the virtual network back into the queue. Every `interval_ms` of virtual time a
//! *checkpoint* compares each node's digest root with the oracle's and records the round's
//! bytes. Nothing depends on wall time, threads or hash-map iteration order; all randomness
//! comes from `gossipkv_core::rng::Rng` streams derived from the seed, one per purpose.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipkv_core::clock::hlc_pack;
use gossipkv_core::digest::{TreeShape, mix};
use gossipkv_core::gossip::auth::{self, Auth, Reject};
use gossipkv_core::gossip::members::MemberStats;
use gossipkv_core::gossip::wire::{self, Body, EntryList, Hello, KIND_NAMES, Message};
use gossipkv_core::gossip::{GossipConfig, Node, NodeStats, Transport};
use gossipkv_core::lww::beats;
use gossipkv_core::rng::Rng;
use gossipkv_core::{Replica, StoreConfig};
use hashbrown::HashTable;

use crate::config::{ClockChoice, InjectedBug, Protocol, SimConfig};
use crate::hostile::{self, Hostile};
use crate::net::{Event, Partition, Queue, addr, index};
use crate::oracle::{KeySpace, Oracle};
use crate::protocol::{NaiveNode, Outgoing, ProtoNode, add_stats};
use crate::report::{MembersCheck, Report, Series, Timings};
use crate::workload::{self, Workload, WorkloadSpec, value_bytes};

/// Virtual time at which a run starts (ms). Not zero, so that a negative clock skew still
/// gives a positive physical time.
pub const EPOCH_MS: u64 = 1_000_000;

/// Where a run is, reported to the progress callback at every checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Checkpoint index.
    pub round: u32,
    /// Index of the settle checkpoint (last write or end of faults).
    pub settle_round: u32,
    /// The last checkpoint the run can reach (it usually stops earlier).
    pub last_round: u32,
    /// Nodes equal to the oracle at this checkpoint.
    pub nodes_converged: usize,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Whether the cluster converged (the run is measuring idle traffic).
    pub converged: bool,
}

// Purposes of derived seeds.
const NET: u64 = 1;
const WORKLOAD: u64 = 2;
const FAULTS: u64 = 3;
const NODE: u64 = 4;
const VIEW: u64 = 5;
const PHASE: u64 = 6;

/// A seed for `purpose` (and indices `a`, `b`) derived from the master seed.
fn derive(seed: u64, purpose: u64, a: u64, b: u64) -> u64 {
    mix(seed ^ mix(purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ mix(a ^ (b << 40))))
}

/// `k` distinct indices of `0..n`, sorted (O(k log k), for big peer views).
fn sample_sorted(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    if k * 2 >= n {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + rng.below((n - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        all.sort_unstable();
        return all;
    }
    let mut out = Vec::with_capacity(k + k / 8);
    while out.len() < k {
        for _ in out.len()..k {
            out.push(rng.below(n as u64) as usize);
        }
        out.sort_unstable();
        out.dedup();
    }
    out
}

#[derive(Debug)]
pub(crate) struct Slot {
    node: ProtoNode,
    up: bool,
    inc: u32,
    skew: i64,
    retired: NodeStats,
    retired_drift: u64,
    /// The node's authentication envelope (with `auth`).
    auth: Option<Auth>,
}

#[derive(Debug, Default)]
struct Counters {
    messages_sent: u64,
    bytes_sent: u64,
    dropped_loss: u64,
    dropped_partition: u64,
    dropped_down: u64,
    duplicated: u64,
    stream_messages: u64,
    stream_bytes: u64,
    max_datagram: usize,
    round_bytes: u64,
    round_messages: u64,
    crashes: u64,
    writes_skipped: u64,
    unknown_destination: u64,
}

/// A timer or a delivery to run at one node, and what the node emitted doing it.
#[derive(Debug)]
struct Task {
    t: u64,
    node: u32,
    /// The node's gossip timer (else a delivery).
    timer: bool,
    /// For a delivery, until it runs: sender, whether on the stream, and payload.
    msg: Option<(u32, bool, Bytes)>,
    out: Vec<Outgoing>,
    receptions: Vec<(u64, u32)>,
    /// A delivery the node's envelope refused (the reason's index).
    rejected: Option<usize>,
    /// A hostile sender's delivery the node accepted.
    accepted: bool,
}

impl Task {
    fn new(t: u64, node: u32, msg: Option<(u32, bool, Bytes)>) -> Self {
        Self {
            t,
            node,
            timer: msg.is_none(),
            msg,
            out: Vec::new(),
            receptions: Vec::new(),
            rejected: None,
            accepted: false,
        }
    }

    /// Rough cost in nanoseconds, to share a batch's work between the two threads: a fixed
    /// cost by message kind plus a cost per payload byte ([`KIND_COST`]). It only decides
    /// which thread runs which nodes, never what they do.
    fn weight(&self) -> u64 {
        let Some((_, _, p)) = &self.msg else { return TIMER_COST };
        let (fixed, per_byte) = wire::peek_kind(p)
            .and_then(|k| KIND_COST.get(usize::from(k)))
            .copied()
            .unwrap_or(UNKNOWN_COST);
        fixed + per_byte * p.len() as u64
    }
}

/// What a node's gossip timer costs, in ns (see [`KIND_COST`]).
const TIMER_COST: u64 = 100_000;

/// What handling a delivery costs, in ns: `(fixed, per payload byte)`, by kind byte. Means
/// measured on the burst (1,000 nodes, 100,000 keys; docs/benchmarks.md, "Session 27"): a
/// `Vector` is a few hundred bytes but answering it reads the store (0.7 ms on average),
/// where the bytes of a `Deltas` are the cost of merging them (9 ns each). Weighing every
/// message by its bytes alone left a thread idle at the end of many batches.
const KIND_COST: [(u64, u64); wire::KINDS] = [
    UNKNOWN_COST,  // 0: unused
    (10_000, 10),  // sync
    (15_000, 10),  // sync_ack
    (5_000, 10),   // tree
    (370_000, 10), // tree_ack: answered with the leaves that differ
    (0, 20),       // leaf: compared with our own leaves
    (17_000, 10),  // want
    (10_000, 10),  // entries
    (630_000, 10), // bulk_request: answered with a chunk of the store
    (0, 10),       // bulk_chunk
    (140_000, 10), // want_leaf
    (500_000, 10), // leaf_request
    (1_000, 10),   // ping
    (1_000, 10),   // ping_req
    (1_000, 10),   // ack
    (50_000, 10),  // member_request
    (20_000, 10),  // members
    (670_000, 10), // vector: answered from the origin logs or a pass over the store
    (0, 10),       // deltas
];

/// The cost of a delivery that is not one of our messages (a sealed or hostile payload).
const UNKNOWN_COST: (u64, u64) = (10_000, 10);

/// Timers and deliveries that run together: events of a few consecutive milliseconds, none of
/// which can cause another one of them (see [`Sim::run_until`]). Each concerns one node and
/// touches only that node's state, so the nodes' work runs on both cores: the nodes are cut
/// into ranges of about equal bytes, which the two threads take from a shared queue, each
/// node's tasks in their scheduling order on one thread; the output
/// (the network's random draws, new events, counters) is then applied in scheduling order.
/// A run is therefore the same, byte for byte, as running the events one by one.
#[derive(Debug, Default)]
struct Batch {
    tasks: Vec<Task>,
    weights: Vec<u64>,
}

impl Batch {
    /// Batches of less work than this (ns, [`Task::weight`]) run on one thread (the result
    /// is the same).
    const MIN_PARALLEL_WEIGHT: u64 = 200_000;
    /// Node ranges a batch is cut into: enough for the two threads to even out.
    const PARTS: u64 = 512;

    fn push(&mut self, task: Task) {
        self.tasks.push(task);
    }

    /// Node ranges for the two threads to share: boundaries `0 = c0 < c1 < ... = n` of about
    /// [`Batch::PARTS`] ranges of equal work (just `[0, n]` if the batch is small: one thread).
    fn cuts(&mut self, n: usize) -> Vec<usize> {
        let total: u64 = self.tasks.iter().map(Task::weight).sum();
        if total < Self::MIN_PARALLEL_WEIGHT || n < 2 {
            return vec![0, n];
        }
        self.weights.clear();
        self.weights.resize(n, 0);
        for t in &self.tasks {
            self.weights[t.node as usize] += t.weight();
        }
        let share = total.div_ceil(Self::PARTS);
        let mut cuts = vec![0];
        let mut acc = 0;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
            if acc >= share && i + 1 < n {
                cuts.push(i + 1);
                acc = 0;
            }
        }
        cuts.push(n);
        cuts
    }
}

/// Receptions per `(key hash, version hash)`: slots of 16 bytes (key hash, version hash,
/// count) placed by the key hash itself, already a strong hash. A `HashMap` took 24 bytes a
/// slot and hashed again; the table misses the cache at every reception (about 115,000
/// versions in the burst), so its size is its cost.
#[derive(Debug, Default)]
struct Copies(HashTable<(u64, u32, u32)>);

impl Copies {
    fn slot_hash(kh: u64, vh: u32) -> u64 {
        kh ^ u64::from(vh).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Counts `receptions`.
    fn add(&mut self, receptions: &[(u64, u32)]) {
        for &(kh, vh) in receptions {
            let h = Self::slot_hash(kh, vh);
            match self.0.find_mut(h, |e| (e.0, e.1) == (kh, vh)) {
                Some(e) => e.2 += 1,
                None => {
                    self.0.insert_unique(h, (kh, vh, 1), |e| Self::slot_hash(e.0, e.1));
                }
            }
        }
    }

    /// Receptions of version `vh` of the key whose hash is `kh`.
    fn get(&self, (kh, vh): (u64, u32)) -> u32 {
        self.0.find(Self::slot_hash(kh, vh), |e| (e.0, e.1) == (kh, vh)).map_or(0, |e| e.2)
    }
}

/// Takes what node `i` (in `slot`) queued to send, sealed with its envelope if it has one.
fn poll_sealed(slot: &mut Slot, i: usize, outs: &mut Vec<Outgoing>) {
    while let Some(mut out) = slot.node.poll_transmit() {
        if let Some(a) = slot.auth.as_mut() {
            let stream = out.transport == Transport::Stream;
            match a.seal(out.transport, &hostile::aad(stream, addr(i)), &out.payload) {
                Ok(sealed) => out.payload = Bytes::from(sealed),
                Err(_) => continue,
            }
        }
        outs.push(out);
    }
}

/// The thread that works beside the simulator's own (see `Sim::helper`): a rayon pool of
/// one, kept busy-waiting for a moment between two pieces of shared work.
///
/// A batch is about 10 ms of work in the burst (5,996 of them), with about 0.1 ms in between
/// for the simulator's own thread alone (routing the batch's messages, taking the next
/// events). With nothing to do, a rayon worker soon sleeps on a condition variable, and so
/// does the simulator's thread while it waits for the worker's half; each must then be
/// woken. Each thread sat idle about 4% of the burst's batch time, and 110-220 µs a batch
/// at 250 nodes (docs/benchmarks.md, "Session 27"). So both sides spin, for at most
/// [`Helper::SPIN`], where they would have slept.
struct Helper {
    pool: rayon::ThreadPool,
    /// Set when shared work is coming: ends the helper's busy wait ([`Helper::linger`]).
    wanted: Arc<AtomicBool>,
}

impl Helper {
    /// Longest busy wait, on either side.
    const SPIN: Duration = Duration::from_millis(2);

    fn new() -> Result<Self, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "sim-helper".into())
            .build()
            .map_err(|e| format!("cannot start the simulator's second thread: {e}"))?;
        Ok(Self { pool, wanted: Arc::new(AtomicBool::new(false)) })
    }

    /// Runs `a` on this thread and `b` on the helper at the same time; returns both results.
    fn both<A, B: Send>(&self, a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> (A, B) {
        self.wanted.store(true, Ordering::Release);
        let done = AtomicBool::new(false);
        let mut out_b = None;
        let out_a = self.pool.in_place_scope(|s| {
            s.spawn(|_| {
                out_b = Some(b());
                done.store(true, Ordering::Release);
            });
            let out_a = a();
            // the scope would block until `b` is done: spin first, while it likely ends soon
            spin_until(&done, Self::SPIN);
            out_a
        });
        // (the scope returns after `b` ran; a panic in it is resumed here by rayon)
        (out_a, out_b.expect("in_place_scope returns after its spawn ran"))
    }

    /// Keeps the helper busy-waiting for the next [`Helper::both`] (at most [`Helper::SPIN`])
    /// instead of going to sleep.
    fn linger(&self) {
        self.wanted.store(false, Ordering::Release);
        let wanted = Arc::clone(&self.wanted);
        self.pool.spawn(move || spin_until(&wanted, Self::SPIN));
    }
}

/// Spins until `flag` is set or `limit` has passed.
fn spin_until(flag: &AtomicBool, limit: Duration) {
    let start = Instant::now();
    while !flag.load(Ordering::Acquire) && start.elapsed() < limit {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
}

/// How a batch's tasks run at the nodes.
#[derive(Clone, Copy)]
struct Run {
    /// Nodes in the cluster (senders past the last are hostile).
    nodes: usize,
    bug: Option<InjectedBug>,
    /// Keep each task's receptions for the oracle (only while some write is lost).
    keep_receptions: bool,
}

impl Run {
    /// Runs `tasks` (in order) at the nodes of `slots`, whose first is node `offset`, and
    /// counts their receptions into `copies`.
    fn tasks<'t>(
        self,
        slots: &mut [Slot],
        offset: usize,
        tasks: impl Iterator<Item = &'t mut Task>,
        copies: &mut Copies,
    ) {
        for task in tasks {
            let i = task.node as usize;
            let slot = &mut slots[i - offset];
            match task.msg.take() {
                None => slot.node.handle_timeout(task.t),
                Some((from, stream, payload)) => {
                    let from = from as usize;
                    let payload = match slot.auth.as_mut() {
                        None => payload,
                        Some(a) => {
                            let aad = hostile::aad(stream, addr(from));
                            match a.open(hostile::transport(stream), &aad, &payload) {
                                Ok(p) => p,
                                Err(e) => {
                                    task.rejected = Some(e.reason().index());
                                    continue;
                                }
                            }
                        }
                    };
                    // without auth, "accepted" means it decodes as a message
                    task.accepted = from >= self.nodes
                        && (slot.auth.is_some() || wire::decode(&payload).is_ok());
                    let payload = match self.bug {
                        Some(InjectedBug::HideAway) => hide_away(payload),
                        Some(bug) if i == 0 => inject_bug(bug, slot.node.replica(), payload),
                        _ => payload,
                    };
                    slot.node.handle_datagram(task.t, addr(from), payload);
                }
            }
            slot.node.drain_receptions(|receptions| {
                copies.add(receptions);
                if self.keep_receptions {
                    task.receptions = receptions.to_vec();
                }
            });
            poll_sealed(slot, i, &mut task.out);
        }
    }
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    gcfg: GossipConfig,
    store_cfg: StoreConfig,
    view: usize,
    slots: Vec<Slot>,
    queue: Queue,
    net: Rng,
    partition: Partition,
    episodes: Vec<Vec<bool>>,
    workload: Workload,
    keys: KeySpace,
    oracle: Oracle,
    /// Receptions per `(key hash, version hash)`, counted by each of the two threads that
    /// run batches (sums: the split does not change the totals).
    copies: [Copies; 2],
    /// The second thread, alive for the whole run: it takes half of each batch, of building
    /// the nodes and of each round's checkpoint. A thread spawned per
    /// batch (5,500 in the burst) started each time with an empty allocator heap and empty
    /// thread-local buffer pools, so the message bodies it built regrew, and faulted in fresh
    /// memory, in every batch.
    helper: Helper,
    c: Counters,
    stale_sample: Vec<u32>,
    hostile: Option<Hostile>,
    auth_rejected: [u64; Reject::COUNT],
}

impl<'a> Sim<'a> {
    fn peers_of(&self, i: usize) -> Vec<std::net::SocketAddr> {
        let n = self.cfg.nodes;
        if self.cfg.seeds > 0 || self.cfg.phantom_seeds > 0 {
            // a seed list: a few real nodes, and addresses past the last node that never answer
            let mut r = Rng::new(derive(self.cfg.seed, VIEW, i as u64, 1));
            let real = self.cfg.seeds.min(n - 1);
            let mut peers: Vec<std::net::SocketAddr> = sample_sorted(&mut r, n - 1, real)
                .into_iter()
                .map(|j| addr(if j >= i { j + 1 } else { j }))
                .collect();
            peers.extend(
                (0..self.cfg.phantom_seeds).map(|p| addr(n + i * self.cfg.phantom_seeds + p)),
            );
            return peers;
        }
        if self.view + 1 >= n {
            let mut peers = Vec::with_capacity(n.saturating_sub(1));
            peers.extend((0..i).map(addr));
            peers.extend((i + 1..n).map(addr));
            return peers;
        }
        let mut r = Rng::new(derive(self.cfg.seed, VIEW, i as u64, 0));
        sample_sorted(&mut r, n - 1, self.view)
            .into_iter()
            .map(|j| addr(if j >= i { j + 1 } else { j }))
            .collect()
    }

    /// Node `i`'s incarnation `inc`; with membership, `start` is its generation.
    fn make_node(&self, i: usize, inc: u32, first_tick: u64, start: u64) -> ProtoNode {
        let replica = Arc::new(Replica::new(i as u32, self.cfg.clock.kind(), self.store_cfg));
        // every replica ends with the workload's keys: size its index once (no rehashing on
        // the way, and no freed smaller tables left behind; the run's report is the same)
        replica.store().reserve(self.cfg.keys);
        let peers = self.peers_of(i);
        let seed = derive(self.cfg.seed, NODE, i as u64, u64::from(inc));
        match self.cfg.protocol {
            Protocol::Gossip => {
                let mut node = Node::new(replica, self.gcfg, peers, seed, first_tick);
                if self.cfg.membership {
                    node.enable_membership(addr(i), start, start);
                }
                ProtoNode::Gossip(Box::new(node))
            }
            Protocol::Naive => ProtoNode::Naive(Box::new(NaiveNode::new(
                replica,
                self.gcfg.fanout,
                self.gcfg.interval_ms,
                self.gcfg.mtu,
                peers,
                seed,
                first_tick,
            ))),
        }
    }

    /// Sends what node `i` emitted at `now` through the virtual network.
    fn send_out(&mut self, i: usize, now: u64, outs: &mut Vec<Outgoing>) {
        let cfg = self.cfg;
        for out in outs.drain(..) {
            let Some(to) = index(&out.to).filter(|&j| j < cfg.nodes) else {
                // a seed that never existed: the datagram is sent, and lost
                self.c.unknown_destination += 1;
                self.c.messages_sent += 1;
                self.c.bytes_sent += out.payload.len() as u64;
                self.c.round_bytes += out.payload.len() as u64;
                self.c.round_messages += 1;
                continue;
            };
            let len = out.payload.len() as u64;
            self.c.messages_sent += 1;
            self.c.bytes_sent += len;
            self.c.round_bytes += len;
            self.c.round_messages += 1;
            let stream = out.transport == Transport::Stream;
            if stream {
                self.c.stream_messages += 1;
                self.c.stream_bytes += len;
            } else {
                self.c.max_datagram = self.c.max_datagram.max(out.payload.len());
            }
            if self.partition.cut(i, to) {
                self.c.dropped_partition += 1;
                continue;
            }
            let p = if stream { cfg.stream_loss } else { cfg.loss };
            if self.net.chance(p) {
                self.c.dropped_loss += 1;
                continue;
            }
            let transfer = if stream { len / cfg.stream_bytes_per_ms } else { 0 };
            let delay = |net: &mut Rng| {
                let jitter = if cfg.jitter_ms > 0 { net.below(cfg.jitter_ms + 1) } else { 0 };
                cfg.latency_ms + jitter + transfer
            };
            let d1 = delay(&mut self.net);
            if self.net.chance(cfg.dup_rate) {
                self.c.duplicated += 1;
                let d2 = delay(&mut self.net);
                let payload = out.payload.clone();
                self.queue.push(
                    now + d2,
                    Event::Deliver { from: i as u32, to: to as u32, stream, payload },
                );
            }
            self.queue.push(
                now + d1,
                Event::Deliver { from: i as u32, to: to as u32, stream, payload: out.payload },
            );
        }
    }

    /// Accounts the versions node `i` received (copies, revived writes).
    fn account(&mut self, i: usize, receptions: &[(u64, u32)]) {
        self.copies[0].add(receptions);
        self.revive(i, receptions);
    }

    /// Tells the oracle what node `i` received, if some write is lost (a reception revives it).
    fn revive(&mut self, i: usize, receptions: &[(u64, u32)]) {
        if self.oracle.has_lost() {
            for &(kh, vh) in receptions {
                self.oracle.on_reception(kh, vh, i);
            }
        }
    }

    /// After any call into node `i`: account receptions, then send its output.
    fn after_call(&mut self, i: usize, now: u64) {
        let mut receptions = Vec::new();
        self.slots[i].node.drain_receptions(|r| receptions.extend_from_slice(r));
        self.account(i, &receptions);
        let mut outs = Vec::new();
        poll_sealed(&mut self.slots[i], i, &mut outs);
        self.send_out(i, now, &mut outs);
    }

    fn schedule_timer(&mut self, i: usize) {
        let s = &self.slots[i];
        self.queue.push(s.node.next_timeout(), Event::Timer { node: i as u32, inc: s.inc });
    }

    /// Handles a barrier event (anything but a timer or a delivery), alone.
    fn handle_barrier(&mut self, now: u64, ev: Event) {
        match ev {
            Event::Timer { .. } | Event::Deliver { .. } => {
                let mut batch = Batch::default();
                self.admit(&mut batch, now, ev);
                self.run_batch(&mut batch);
            }
            Event::Write { op } => self.write(now, op as usize),
            Event::Attack { h } => self.attack(now, h),
            Event::Crash { node } => self.crash(node as usize),
            Event::Restart { node } => {
                let i = node as usize;
                self.slots[i].up = true;
                self.slots[i].node.reset(now);
                if self.cfg.auth {
                    // a new incarnation for the envelope's replay guard, like a real restart
                    self.slots[i].auth =
                        hostile::node_auth(self.cfg.seed, i as u32, now, self.cfg.gossip.mtu);
                }
                if let ProtoNode::Gossip(g) = &mut self.slots[i].node {
                    if self.cfg.membership {
                        // a new generation; client writes wait for the catch-up
                        g.enable_membership(addr(i), now, now);
                    }
                    g.gate_writes(now);
                }
                self.schedule_timer(i);
            }
            Event::Split { episode } => {
                let side = self.episodes[episode as usize].clone();
                self.partition.split(side);
            }
            Event::Heal => self.partition.heal(),
        }
    }

    /// Runs every event due by `cp`: timers and deliveries in batches (see [`Batch`]), the
    /// other events one by one, all in `(time, scheduling order)` order.
    fn run_until(&mut self, cp: u64, batch: &mut Batch) {
        // No event of a batch can cause another within `window` ms: deliveries take at least
        // `latency_ms`, and a timer's next one is `interval_ms` later.
        let window = self.cfg.latency_ms.min(self.gcfg.interval_ms).max(1);
        while let Some(t0) = self.queue.peek_time() {
            if t0 > cp {
                break;
            }
            let end = (t0 + window - 1).min(cp);
            while let Some((t, ev)) = self.queue.peek() {
                if t > end || !matches!(ev, Event::Timer { .. } | Event::Deliver { .. }) {
                    break;
                }
                let Some((t, ev)) = self.queue.pop() else { break };
                self.admit(batch, t, ev);
            }
            if batch.tasks.is_empty() {
                if let Some((t, ev)) = self.queue.pop() {
                    self.handle_barrier(t, ev);
                }
            } else {
                self.run_batch(batch);
            }
        }
    }

    /// Turns a timer or delivery into a task of `batch`, or drops it (as the sequential
    /// loop would: stale timers, deliveries to down nodes or across a partition).
    fn admit(&mut self, batch: &mut Batch, t: u64, ev: Event) {
        match ev {
            Event::Timer { node, inc } => {
                let i = node as usize;
                if self.slots[i].up && self.slots[i].inc == inc {
                    batch.push(Task::new(t, node, None));
                }
            }
            Event::Deliver { from, to, stream, payload } => {
                if !self.slots[to as usize].up {
                    self.c.dropped_down += 1;
                } else if self.partition.cut(from as usize, to as usize) {
                    self.c.dropped_partition += 1;
                } else {
                    if (from as usize) < self.cfg.nodes
                        && let Some(h) = self.hostile.as_mut()
                    {
                        // overheard on arrival, so a replay can only come after the original
                        h.overhear(to, stream, &payload);
                    }
                    batch.push(Task::new(t, to, Some((from, stream, payload))));
                }
            }
            _ => unreachable!("only timers and deliveries are batched"),
        }
    }

    /// Runs a batch: the nodes' work on both cores (each node's tasks in order, on one
    /// thread), then every task's output in the order the tasks were scheduled, exactly as
    /// if they had run one by one.
    fn run_batch(&mut self, batch: &mut Batch) {
        let n = self.slots.len();
        let run = Run {
            nodes: self.cfg.nodes,
            bug: self.cfg.bug,
            keep_receptions: self.oracle.has_lost(),
        };
        let cuts = batch.cuts(n);
        let [copies_a, copies_b] = &mut self.copies;
        if cuts.len() <= 2 {
            run.tasks(&mut self.slots, 0, batch.tasks.iter_mut(), copies_a);
        } else {
            // node ranges (contiguous, so each is a disjoint `&mut` of the slots) with their
            // tasks in order; both threads take ranges from a shared queue until none is left
            let mut groups: Vec<Vec<&mut Task>> = cuts[1..].iter().map(|_| Vec::new()).collect();
            for t in batch.tasks.iter_mut() {
                let g = cuts[1..].partition_point(|&c| c <= t.node as usize);
                groups[g].push(t);
            }
            let mut parts = Vec::with_capacity(groups.len());
            let mut rest = &mut self.slots[..];
            for (w, tasks) in cuts.windows(2).zip(groups) {
                let (part, tail) = rest.split_at_mut(w[1] - w[0]);
                rest = tail;
                parts.push((w[0], part, tasks));
            }
            // heaviest first: what is left for the end is small, so neither thread waits long
            // for the other (the order of ranges does not change any node's result)
            let weights = &batch.weights;
            parts.sort_by_cached_key(|p| {
                std::cmp::Reverse(weights[p.0..p.0 + p.1.len()].iter().sum::<u64>())
            });
            let queue = std::sync::Mutex::new(parts.into_iter());
            let work = |copies: &mut Copies| loop {
                let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                let Some((offset, slots, tasks)) = next else { break };
                run.tasks(slots, offset, tasks.into_iter(), copies);
            };
            self.helper.both(|| work(copies_a), || work(copies_b));
            self.helper.linger();
        }
        let mut tasks = std::mem::take(&mut batch.tasks);
        for task in &mut tasks {
            let i = task.node as usize;
            if let Some(r) = task.rejected.take() {
                self.auth_rejected[r] += 1;
            }
            if std::mem::take(&mut task.accepted)
                && let Some(h) = self.hostile.as_mut()
            {
                h.accepted += 1;
            }
            self.revive(i, &task.receptions);
            self.send_out(i, task.t, &mut task.out);
            if task.timer {
                self.schedule_timer(i);
            }
        }
        tasks.clear();
        batch.tasks = tasks;
    }

    fn write(&mut self, now: u64, op: usize) {
        let op = self.workload.ops[op];
        let n = self.cfg.nodes;
        let avoid = self.outage_side(op);
        let ready = |j: usize| {
            let s = &self.slots[j];
            s.up && s.node.replica().is_ready() && avoid.is_none_or(|side| !side[j])
        };
        let Some(i) = (0..n).map(|d| (op.node as usize + d) % n).find(|&j| ready(j)) else {
            self.c.writes_skipped += 1;
            return;
        };
        let key = self.keys.get(op.key as usize);
        let phys = now.saturating_add_signed(self.slots[i].skew);
        let replica = Arc::clone(self.slots[i].node.replica());
        let v = match op.value {
            Some(seed) => replica.put(key, value_bytes(seed, self.cfg.value_size), phys),
            None => replica.delete(key, phys).0,
        };
        // Node::put would pass one `now` as both the physical time and the rumor clock; the
        // simulator skews only the physical time, so it calls the replica and the node apart.
        self.slots[i].node.note_local_write(key, &v, now);
        self.oracle.record(key, op.key, v, i as u32);
        self.after_call(i, now);
    }

    /// Hostile sender `h` sends its datagrams of this round, then schedules the next round.
    fn attack(&mut self, now: u64, h: u32) {
        let n = self.cfg.nodes;
        let forge = self.keys.get(0).to_vec();
        let sealed = self.cfg.auth;
        let rate = self.cfg.hostile_rate;
        let Some(host) = self.hostile.as_mut() else { return };
        for (to, payload) in host.attack(n, rate, &forge, sealed) {
            let from = (n + h as usize) as u32;
            self.queue.push(
                now + self.cfg.latency_ms,
                Event::Deliver { from, to, stream: false, payload },
            );
        }
        self.queue.push(now + self.cfg.gossip.interval_ms, Event::Attack { h });
    }

    /// For the long-outage deletes: the cut-off side, which must not take them.
    fn outage_side(&self, op: crate::workload::Op) -> Option<&Vec<bool>> {
        (op.value.is_none() && self.cfg.outage_deletes > 0.0)
            .then(|| self.episodes.first())
            .flatten()
    }

    fn crash(&mut self, i: usize) {
        if !self.slots[i].up {
            return;
        }
        let live: Vec<Option<&Replica>> =
            self.slots.iter().map(|s| s.up.then(|| &**s.node.replica())).collect();
        self.oracle.on_crash(i, &live);
        drop(live);
        let inc = self.slots[i].inc + 1;
        let fresh = self.make_node(i, inc, u64::MAX, u64::MAX);
        let s = &mut self.slots[i];
        add_stats(&mut s.retired, s.node.stats());
        s.retired_drift += s.node.replica().clock().drift_events();
        s.node = fresh;
        s.inc = inc;
        s.up = false;
        self.c.crashes += 1;
    }

    /// With membership: how well each live node knows the other live nodes.
    fn membership_check(&self) -> Option<MembersCheck> {
        if !self.cfg.membership || self.cfg.protocol != Protocol::Gossip {
            return None;
        }
        let up: Vec<usize> = (0..self.slots.len()).filter(|&j| self.slots[j].up).collect();
        // what a node can know: every live node, or with partial views a full view of them
        let view = self.gcfg.membership.view;
        let target = if view == 0 { up.len() } else { up.len().min(view + 1) };
        let is_up: Vec<bool> = self.slots.iter().map(|s| s.up).collect();
        let mut out =
            MembersCheck { live: up.len(), min_known: usize::MAX, ..MembersCheck::default() };
        let mut totals = MemberStats::default();
        for &i in &up {
            let ProtoNode::Gossip(g) = &self.slots[i].node else { continue };
            let Some(m) = g.membership() else { continue };
            let s = m.stats();
            totals.suspicions += s.suspicions;
            totals.deaths += s.deaths;
            totals.refutes += s.refutes;
            totals.confirmations += s.confirmations;
            // walk the node's table, not the live nodes: O(view) a node, not O(n)
            let (mut known, mut gone) = (0usize, 0u64);
            for r in m.iter() {
                if is_up.get(r.id as usize).copied().unwrap_or(false) {
                    if r.status.gone() {
                        gone += 1;
                    } else {
                        known += 1;
                    }
                }
            }
            out.min_known = out.min_known.min(known);
            out.max_known = out.max_known.max(known);
            out.missing += target.saturating_sub(known) as u64;
            out.gone_marked_up += gone;
            out.member_pulls += g.stats().member_pulls;
            out.tombstones_purged += g.stats().tombstones_purged;
            out.horizon_resets += g.stats().horizon_resets;
            out.away_refused += g.stats().away_refused;
            out.away_cleared += g.stats().away_cleared;
        }
        if up.is_empty() {
            out.min_known = 0;
        }
        out.suspicions = totals.suspicions;
        out.deaths = totals.deaths;
        out.refutes = totals.refutes;
        out.confirmations = totals.confirmations;
        Some(out)
    }

    /// Compares every live node's root with the oracle's; samples stale keys.
    fn checkpoint(&mut self, series: &mut Series) -> usize {
        let root = self.oracle.store(&self.keys).root_hash();
        let expected = if self.stale_sample.is_empty() {
            Vec::new()
        } else {
            self.oracle.expected(&self.keys, &self.stale_sample)
        };
        let held = expected.iter().filter(|e| !e.is_empty()).count() as u64;
        let (keys, sample) = (&self.keys, &self.stale_sample);
        // (converged, up, stale pairs) over some nodes; read-only, so both halves of the
        // nodes are counted on their own thread (sums: the result does not depend on it)
        let count = |slots: &[Slot]| {
            let (mut converged, mut up, mut stale) = (0usize, 0usize, 0u64);
            for s in slots {
                if !s.up {
                    stale += held;
                    continue;
                }
                up += 1;
                let store = s.node.replica().store();
                if store.root_hash() == root {
                    converged += 1;
                    continue;
                }
                for (k, exp) in sample.iter().zip(&expected) {
                    if !store.versions_equal(keys.get(*k as usize), exp) {
                        stale += 1;
                    }
                }
            }
            (converged, up, stale)
        };
        let (lo, hi) = self.slots.split_at(self.slots.len() / 2);
        let (a, b) = self.helper.both(|| count(lo), || count(hi));
        let (converged, up, stale) = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
        let pairs = (self.cfg.nodes * self.stale_sample.len()) as f64;
        series.nodes_converged.push(converged as u32);
        series.nodes_up.push(up as u32);
        series.bytes.push(std::mem::take(&mut self.c.round_bytes));
        series.messages.push(std::mem::take(&mut self.c.round_messages));
        series.stale_key_share.push(if pairs > 0.0 { stale as f64 / pairs } else { 0.0 });
        converged
    }
}

/// `InjectedBug::HideAway`: clears the away flag of a `Sync` / `SyncAck`.
fn hide_away(payload: Bytes) -> Bytes {
    let Ok(mut msg) = wire::decode(&payload) else { return payload };
    match &mut msg.body {
        Body::Sync { hello, .. } | Body::SyncAck { hello, .. }
            if hello.flags & Hello::AWAY != 0 =>
        {
            hello.flags &= !Hello::AWAY;
            Bytes::from(wire::encode(&msg))
        }
        _ => payload,
    }
}

/// The driver-level bug of `--inject-bug`: filters versions arriving at node 0.
fn inject_bug(bug: InjectedBug, replica: &Replica, payload: Bytes) -> Bytes {
    let Ok(msg) = wire::decode(&payload) else { return payload };
    enum Carrier {
        Entries,
        Bulk(u32),
        Deltas(Vec<(u32, u64, u64)>),
    }
    let (entries, carrier) = match msg.body {
        Body::Entries { entries } => (entries, Carrier::Entries),
        Body::BulkChunk { next, entries } => (entries, Carrier::Bulk(next)),
        Body::Deltas { ranges, entries } => (entries, Carrier::Deltas(ranges)),
        _ => return payload,
    };
    let before = entries.len();
    let kept: EntryList = entries
        .iter()
        .filter(|&(key, v)| match replica.store().winner(key) {
            Some(w) if w.ts == v.ts && w.as_ref() != v => match bug {
                InjectedBug::DropTies => false,
                InjectedBug::WrongTieBreak => !beats(v, w.as_ref()),
                InjectedBug::HideAway => true,
            },
            _ => true,
        })
        .collect();
    if kept.len() == before {
        return payload;
    }
    let body = match carrier {
        Carrier::Entries => Body::Entries { entries: kept },
        Carrier::Bulk(next) => Body::BulkChunk { next, entries: kept },
        Carrier::Deltas(ranges) => Body::Deltas { ranges, entries: kept },
    };
    Bytes::from(wire::encode(&Message { from: msg.from, exchange: msg.exchange, body }))
}

/// Runs one simulation. `progress` is called at every checkpoint.
pub fn run(cfg: &SimConfig, progress: &mut dyn FnMut(&Progress)) -> Result<Report, String> {
    let (report, nodes) = run_keeping_nodes(cfg, progress)?;
    nodes.free();
    Ok(report)
}

/// The simulated nodes of a finished run: gigabytes of replicas at scale.
#[derive(Debug)]
pub struct Nodes(Vec<Slot>);

impl Nodes {
    /// Frees them, on two threads (1,000 full replicas take seconds to free).
    pub fn free(self) {
        let mut lo = self.0;
        let hi = lo.split_off(lo.len() / 2);
        std::thread::scope(|s| {
            s.spawn(move || drop(hi));
            drop(lo);
        });
    }
}

/// [`run`], handing back the nodes instead of freeing them: a process about to exit can
/// skip freeing them (`std::mem::forget`), which `gossipkv sim` does.
pub fn run_keeping_nodes(
    cfg: &SimConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Report, Nodes), String> {
    cfg.validate()?;
    let started = Instant::now();
    let n = cfg.nodes;
    let interval = cfg.gossip.interval_ms;
    let depth = cfg.effective_tree_depth();
    let store_cfg = StoreConfig {
        shards_log2: 0,
        tree: TreeShape::new(depth),
        max_concurrent: cfg.max_concurrent,
    };
    let mut gcfg = GossipConfig { record_receptions: true, ..cfg.gossip };
    gcfg.membership.view = cfg.effective_member_view();
    if cfg.auth {
        // sealed datagrams must still fit the MTU
        gcfg.mtu = auth::payload_mtu(cfg.gossip.mtu);
    }

    // the workload
    let write_start = EPOCH_MS + interval;
    let spec = WorkloadSpec {
        nodes: n,
        keys: cfg.keys,
        writes: cfg.writes,
        conflict_rate: cfg.conflict_rate,
        delete_rate: cfg.delete_rate,
        start: write_start,
        span: u64::from(cfg.write_rounds) * interval,
    };
    let workload = workload::generate(&spec, &mut Rng::new(derive(cfg.seed, WORKLOAD, 0, 0)));

    let keys = KeySpace::new(cfg.keys, cfg.key_size);
    let stale_sample: Vec<u32> = {
        let k = cfg.keys;
        let m = if k.saturating_mul(n) <= cfg.stale_budget {
            k
        } else {
            (cfg.stale_budget / n.max(1)).clamp(1, k.max(1)).min(k)
        };
        (0..m).map(|j| (j * k / m.max(1)) as u32).collect()
    };
    let mut sim = Sim {
        cfg,
        gcfg,
        store_cfg,
        view: cfg.effective_view(),
        slots: Vec::with_capacity(n),
        queue: Queue::default(),
        net: Rng::new(derive(cfg.seed, NET, 0, 0)),
        partition: Partition::default(),
        episodes: Vec::new(),
        workload,
        keys,
        oracle: Oracle::new(store_cfg),
        copies: [Copies::default(), Copies::default()],
        helper: Helper::new()?,
        c: Counters::default(),
        stale_sample,
        hostile: (cfg.hostile > 0).then(|| Hostile::new(cfg.seed, cfg.gossip.mtu)),
        auth_rejected: [0; Reject::COUNT],
    };
    for h in 0..cfg.hostile {
        sim.queue.push(write_start + h as u64 * 37 % interval, Event::Attack { h: h as u32 });
    }

    // faults
    let mut frng = Rng::new(derive(cfg.seed, FAULTS, 0, 0));
    let f = cfg.faults;
    let skews: Vec<i64> = (0..n)
        .map(|_| {
            if f.skew_ms == 0 { 0 } else { frng.below(2 * f.skew_ms + 1) as i64 - f.skew_ms as i64 }
        })
        .collect();
    let window = u64::from(f.fault_rounds) * interval;
    let fault_end = write_start + window;
    let mut partitions = 0;
    let delay = u64::from(f.partition_delay_rounds) * interval;
    if f.partitions > 0 && f.partition_rounds > 0 && n >= 2 && window > delay {
        let slot = (window - delay) / u64::from(f.partitions);
        let dur = (u64::from(f.partition_rounds) * interval).min(slot);
        for e in 0..f.partitions {
            let share =
                if f.partition_share > 0.0 { f.partition_share } else { 0.2 + 0.3 * frng.unit() };
            let m = ((share * n as f64).round() as usize).clamp(1, n - 1);
            let mut side = vec![false; n];
            for j in sample_sorted(&mut frng, n, m) {
                side[j] = true;
            }
            sim.episodes.push(side);
            let start = write_start + delay + u64::from(e) * slot;
            sim.queue.push(start, Event::Split { episode: e });
            sim.queue.push(start + dur, Event::Heal);
            partitions += 1;
        }
    }
    if f.crash_share > 0.0 && n >= 2 && window > 0 {
        let count = ((f.crash_share * n as f64).ceil() as usize).clamp(1, n - 1);
        for j in sample_sorted(&mut frng, n, count) {
            let down = u64::from(1 + frng.below(u64::from(f.max_down_rounds.max(1))) as u32);
            let latest = window.saturating_sub(down * interval).max(1);
            let at = write_start + frng.below(latest);
            sim.queue.push(at, Event::Crash { node: j as u32 });
            sim.queue.push(at + down * interval, Event::Restart { node: j as u32 });
        }
    }

    // nodes, with random phases; built on both cores (most of it is the first touch of
    // each replica's index), each from its own seed, so the result is the same
    let mut phase = Rng::new(derive(cfg.seed, PHASE, 0, 0));
    let firsts: Vec<u64> = (0..n).map(|_| EPOCH_MS + phase.below(interval)).collect();
    let nodes: Vec<ProtoNode> = {
        let sim = &sim;
        let build = |range: std::ops::Range<usize>| {
            range.map(|i| sim.make_node(i, 0, firsts[i], EPOCH_MS)).collect::<Vec<_>>()
        };
        let (mut lo, hi) = sim.helper.both(|| build(0..n / 2), || build(n / 2..n));
        lo.extend(hi);
        lo
    };
    for ((i, skew), node) in skews.into_iter().enumerate().zip(nodes) {
        sim.slots.push(Slot {
            node,
            up: true,
            inc: 0,
            skew,
            retired: NodeStats::default(),
            retired_drift: 0,
            auth: if cfg.auth {
                hostile::node_auth(cfg.seed, i as u32, EPOCH_MS, cfg.gossip.mtu)
            } else {
                None
            },
        });
        sim.schedule_timer(i);
    }
    if cfg.outage_deletes > 0.0 && partitions > 0 {
        // deletes of written keys, at the majority side, two rounds into the partition
        let at = write_start + delay + 2 * interval;
        let mut drng = Rng::new(derive(cfg.seed, WORKLOAD, 1, 0));
        let mut written: Vec<u32> = sim.workload.ops.iter().map(|o| o.key).collect();
        written.sort_unstable();
        written.dedup();
        for key in written {
            if drng.chance(cfg.outage_deletes) {
                let node = drng.below(n as u64) as u32;
                sim.workload.ops.push(crate::workload::Op { t: at, node, key, value: None });
            }
        }
        sim.workload.last_t = sim.workload.last_t.max(at);
    }
    for (k, op) in sim.workload.ops.iter().enumerate() {
        sim.queue.push(op.t, Event::Write { op: k as u32 });
    }

    // checkpoints: every interval, on a grid through the settle point
    let settle_t = sim.workload.last_t.max(if window > 0 { fault_end } else { 0 });
    let settle_round = ((settle_t - EPOCH_MS) / interval) as u32;
    let first_cp = settle_t - u64::from(settle_round) * interval;
    let cooldown = cfg.effective_cooldown();
    let last_round = settle_round + cfg.max_rounds + cooldown + cfg.idle_rounds;
    let setup_ms = started.elapsed().as_millis() as u64;

    let mut series = Series {
        stale_exact: sim.stale_sample.len() == cfg.keys,
        stale_sample_keys: sim.stale_sample.len(),
        ..Series::default()
    };
    let mut converged_round: Option<u32> = None;
    let mut batch = Batch::default();
    let mut members_round: Option<u32> = None;
    let all_round = |a: Option<u32>, b: Option<u32>| Some(a?.max(b?));
    let mut round = 0u32;
    let mut cp = first_cp;
    loop {
        sim.run_until(cp, &mut batch);
        series.t_ms.push(cp - EPOCH_MS);
        let grace = cfg.gossip.tombstone_grace_ms;
        if grace > 0 && cfg.clock == ClockChoice::Hlc && cfg.protocol == Protocol::Gossip {
            sim.oracle.set_purge_cutoff(hlc_pack(cp.saturating_sub(grace), 0));
        }
        let conv = sim.checkpoint(&mut series);
        progress(&Progress {
            round,
            settle_round,
            last_round,
            nodes_converged: conv,
            nodes: n,
            bytes_sent: sim.c.bytes_sent,
            converged: converged_round.is_some(),
        });
        if round >= settle_round {
            if converged_round.is_none() && conv == n {
                converged_round = Some(round);
            }
            // membership agrees: every live node knows every live member as up
            if members_round.is_none()
                && converged_round.is_some()
                && sim.membership_check().is_none_or(|m| m.missing == 0)
            {
                members_round = Some(round);
            }
            match all_round(converged_round, members_round) {
                None if round - settle_round >= cfg.max_rounds => break,
                // the run ends once the idle rounds are measured, at a round where every live
                // node knows every live member as up: under lasting loss SWIM now and then
                // declares a live member dead until it refutes (docs/simulator.md), and a
                // run must not end inside such a window, nor hide one that never closes
                Some(r)
                    if round >= r + cooldown + cfg.idle_rounds
                        && (round - settle_round >= cfg.max_rounds
                            || sim.membership_check().is_none_or(|m| m.missing == 0)) =>
                {
                    break;
                }
                _ => {}
            }
        }
        round += 1;
        cp += interval;
    }
    let simulate_ms = started.elapsed().as_millis() as u64 - setup_ms;

    // the final check, key by key
    let t_check = Instant::now();
    let live: Vec<Option<&Replica>> =
        sim.slots.iter().map(|s| s.up.then(|| &**s.node.replica())).collect();
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(8);
    let check = sim.oracle.check_all(&sim.keys, &live, threads);
    drop(live);
    let members = sim.membership_check();
    let finals = sim.oracle.final_versions(&sim.keys);
    let keys_written = {
        let mut ks: Vec<u64> = finals.iter().map(|x| x.0).collect();
        ks.dedup();
        ks.len()
    };
    let copies: u64 =
        finals.iter().flat_map(|&id| sim.copies.iter().map(move |c| u64::from(c.get(id)))).sum();
    let keys_with_concurrent_values = sim.oracle.keys_with_concurrent_values(&sim.keys);
    let check_ms = t_check.elapsed().as_millis() as u64;

    let mut total = NodeStats::default();
    let mut drift = 0;
    for s in &sim.slots {
        add_stats(&mut total, &s.retired);
        add_stats(&mut total, s.node.stats());
        drift += s.retired_drift + s.node.replica().clock().drift_events();
    }
    let mut bytes_by_kind = BTreeMap::new();
    for (k, b) in total.sent_bytes.iter().enumerate() {
        if *b > 0 {
            bytes_by_kind.insert(KIND_NAMES[k].to_string(), *b);
        }
    }
    let per_node_round = |from: u32, rounds: u32| -> Option<f64> {
        if rounds == 0 {
            return None;
        }
        let (a, b) = (from as usize + 1, (from + rounds) as usize + 1);
        let bytes: u64 = series.bytes.get(a..b.min(series.bytes.len()))?.iter().sum();
        Some(bytes as f64 / (n as f64 * f64::from(rounds)))
    };
    let (idle, cooldown_bytes) = match all_round(converged_round, members_round) {
        Some(r) if round >= r + cooldown + cfg.idle_rounds => {
            (per_node_round(r + cooldown, cfg.idle_rounds), per_node_round(r, cooldown))
        }
        _ => (None, None),
    };
    let (lost_events, revived) = sim.oracle.lost_counts();
    let ops = &sim.workload.ops;
    let report = Report {
        nodes: n,
        fanout: cfg.gossip.fanout,
        loss: cfg.loss,
        stream_loss: cfg.stream_loss,
        dup_rate: cfg.dup_rate,
        latency_ms: cfg.latency_ms,
        jitter_ms: cfg.jitter_ms,
        interval_ms: interval,
        mtu: cfg.gossip.mtu,
        seed: cfg.seed,
        protocol: cfg.protocol,
        scenario: cfg.scenario,
        clock: cfg.clock,
        tree_depth: depth,
        view: sim.view,
        member_view: cfg.effective_member_view(),
        suspicion_max_mult: cfg.gossip.membership.suspicion_max_mult,
        keys: cfg.keys,
        writes: cfg.writes,
        key_size: cfg.key_size,
        value_size: cfg.value_size,
        conflict_rate: cfg.conflict_rate,
        delete_rate: cfg.delete_rate,
        ops_issued: sim.oracle.ops(),
        deletes_issued: ops.iter().filter(|o| o.value.is_none()).count(),
        conflict_groups: sim.workload.conflict_groups,
        keys_written,
        keys_with_concurrent_values,
        converged: converged_round.is_some()
            && check.stale_pairs == 0
            && (!cfg.auth || sim.hostile.as_ref().is_none_or(|h| h.accepted == 0))
            && members.as_ref().is_none_or(|m| m.missing == 0),
        hostile: (cfg.auth || cfg.hostile > 0).then(|| match &sim.hostile {
            Some(h) => h.report(&sim.auth_rejected),
            None => Hostile::new(0, 0).report(&sim.auth_rejected),
        }),
        members: members.map(|m| MembersCheck {
            rounds_to_agree: members_round.map(|r| r - settle_round),
            ..m
        }),
        rounds_to_converge: converged_round.map(|r| r - settle_round),
        settle_round,
        rounds_run: round + 1,
        messages_sent: sim.c.messages_sent,
        messages_dropped: sim.c.dropped_loss + sim.c.dropped_partition + sim.c.dropped_down,
        dropped_loss: sim.c.dropped_loss,
        dropped_partition: sim.c.dropped_partition,
        dropped_down: sim.c.dropped_down,
        messages_duplicated: sim.c.duplicated,
        bytes_sent: sim.c.bytes_sent,
        bytes_by_kind,
        stream_messages: sim.c.stream_messages,
        stream_bytes: sim.c.stream_bytes,
        max_datagram_bytes: sim.c.max_datagram,
        bytes_bound: 3
            * (n as u64).saturating_sub(1)
            * keys_written as u64
            * (cfg.key_size + cfg.value_size) as u64,
        bytes_to_converge: converged_round.map(|r| series.bytes.iter().take(r as usize + 1).sum()),
        idle_bytes_per_node_per_round: idle,
        cooldown_bytes_per_node_per_round: cooldown_bytes,
        value_copies_per_node: if finals.is_empty() {
            0.0
        } else {
            copies as f64 / (n as f64 * finals.len() as f64)
        },
        versions_received_per_node_per_key: if keys_written == 0 {
            0.0
        } else {
            total.versions_received as f64 / (n as f64 * keys_written as f64)
        },
        crashes: sim.c.crashes,
        partitions,
        lost_writes: sim.oracle.lost_now(),
        lost_events,
        revived_writes: revived,
        writes_skipped: sim.c.writes_skipped,
        bulk_started: total.bulk_started,
        node_rounds: total.rounds,
        decode_errors: total.decode_errors,
        oversize_versions: total.oversize_versions,
        oversize_messages: total.oversize_messages,
        rejected: total.rejected,
        drift_events: drift,
        check,
        wall_ms: started.elapsed().as_millis() as u64,
        series,
        timings: Timings { setup_ms, simulate_ms, check_ms },
    };
    Ok((report, Nodes(std::mem::take(&mut sim.slots))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_count_each_version_apart() {
        // versions of one key, equal version hashes under different keys, and a version
        // pair whose slot hash equals another pair's: each counted on its own
        let mut r = Rng::new(7);
        let mut ids: Vec<(u64, u32)> =
            (0..5_000).map(|_| (r.next_u64() % 300, r.next_u64() as u32 % 4)).collect();
        let (kh, vh) = (0x1234_5678_9abc_def0u64, 5u32);
        // `(twin, 0)` has the slot hash of `(kh, vh)` (the case this test is for)
        let twin = Copies::slot_hash(kh, vh);
        assert_eq!(Copies::slot_hash(twin, 0), Copies::slot_hash(kh, vh));
        ids.extend([(kh, vh), (twin, 0), (twin, 0)]);
        let mut want = BTreeMap::new();
        let mut copies = Copies::default();
        for chunk in ids.chunks(97) {
            copies.add(chunk);
            for &id in chunk {
                *want.entry(id).or_insert(0) += 1;
            }
        }
        for (&id, &n) in &want {
            assert_eq!(copies.get(id), n, "{id:?}");
        }
        assert_eq!(copies.0.len(), want.len());
        assert_eq!(copies.get((kh, vh + 1)), 0);
    }

    #[test]
    fn sorted_samples_are_distinct_and_in_range() {
        let mut r = Rng::new(1);
        for (n, k) in [(10, 3), (10, 10), (100_000, 256), (5, 0)] {
            let s = sample_sorted(&mut r, n, k);
            assert_eq!(s.len(), k.min(n));
            assert!(s.windows(2).all(|w| w[0] < w[1]));
            assert!(s.iter().all(|&x| x < n));
        }
    }
}
