//! What a running node shows about itself: Prometheus metrics, `/health` and the live view's
//! `/status.json` (served by [`crate::http`]). docs/operations.md explains every metric.
//!
//! Each node has its own [`Registry`] (no global one), so `gossipkv cluster` can run many
//! nodes in one process and serve each on its own port. Nothing is copied into metric objects
//! as the node runs: one [`Collector`] reads the sources at scrape time: the RESP server's
//! [`Metrics`], the gossip driver's [`GossipStatus`] (protocol counters refreshed after every
//! input, transport counters, members, the digests peers reported), and the replica.
//!
//! **How far behind is this node?** Every `Sync` and `SyncAck` carries its sender's digest
//! root (a hash of its whole store) and key count; the driver notes both beside our own root
//! at arrival ([`gossipkv_net::peers`]). Over the peers heard from in the last
//! [`AGREEMENT_WINDOW_ROUNDS`] gossip intervals, `gossipkv_digest_agreement_ratio` is the
//! share whose root equalled ours (1: this node holds exactly what they hold), and
//! `gossipkv_keys_behind` is the most keys any of them reported beyond what we hold now (keys
//! include tombstones; a peer's count is at most one round old). While writes flow, roots
//! differ for a moment even between up-to-date nodes; once writes stop, every node of a
//! converged cluster reads ratio 1 and keys behind 0 within a round or two. What a node heard
//! is up to an interval old, so right after a write burst a node that has not exchanged since
//! can still read 1; `gossipkv_digest_root_fingerprint` (the top 32 bits of the node's own
//! root, read at scrape time) is the cluster-wide check: equal on every node iff every node
//! holds the same data.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gossipkv_core::gossip::auth::Reject;
use gossipkv_core::gossip::wire::KIND_NAMES;
use gossipkv_core::{ClockKind, Replica};
use gossipkv_net::GossipStatus;
use gossipkv_net::peers::PeerDigest;
use gossipkv_server::Metrics;
use gossipkv_server::metrics::LATENCY_BUCKETS_NS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::NodeSpec;

/// Peers count toward digest agreement if heard from within this many gossip intervals.
pub const AGREEMENT_WINDOW_ROUNDS: u64 = 3;

/// Content type of the OpenMetrics text format (what Prometheus asks for first).
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format (served to everyone else, e.g. curl).
pub const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything a node's HTTP endpoint reads. Built by [`crate::start`]; shared as
/// `Arc<NodeView>`.
#[derive(Debug)]
pub struct NodeView {
    src: Arc<Sources>,
    registry: Registry,
    rates: Mutex<RateWindow>,
}

/// Per-second rates for the live view, computed between `/status.json` requests at least
/// [`RATE_WINDOW`] apart (Prometheus computes its own with `rate()`).
#[derive(Debug, Default)]
struct RateWindow {
    /// When `counters` were read.
    at: Option<Instant>,
    counters: [u64; RATE_FIELDS],
    /// The rates over the last completed window.
    last: Option<Rates>,
}

/// Shortest window rates are computed over.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

const RATE_FIELDS: usize = 6;

/// How much longer than one gossip interval `/status.json` waits for a fresh member list.
pub const MEMBERS_WAIT: Duration = Duration::from_millis(250);

/// The longest `/status.json` waits for a fresh member list (then it shows the last copy).
pub const MEMBERS_WAIT_MAX: Duration = Duration::from_secs(3);

/// Per-second rates over the last window of at least [`RATE_WINDOW`].
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Rates {
    /// Seconds the rates are over.
    pub window_s: f64,
    /// Gossip messages sent per second.
    pub messages_sent: f64,
    /// Gossip messages received per second.
    pub messages_received: f64,
    /// Gossip bytes sent per second.
    pub bytes_sent: f64,
    /// Gossip bytes received per second.
    pub bytes_received: f64,
    /// Versions received by gossip that changed the store, per second.
    pub versions_applied: f64,
    /// Client commands per second.
    pub client_commands: f64,
}

/// The sources the collector reads at scrape time.
#[derive(Debug)]
struct Sources {
    id: u32,
    resp_addr: SocketAddr,
    gossip_addr: SocketAddr,
    peers: Vec<SocketAddr>,
    interval_ms: u64,
    fanout: usize,
    clock: ClockKind,
    auth: bool,
    started: Instant,
    replica: Arc<Replica>,
    status: Arc<GossipStatus>,
    server: Arc<Metrics>,
}

impl NodeView {
    /// The view of the node `spec` describes, over its replica, gossip status and server
    /// metrics.
    pub fn new(
        spec: &NodeSpec,
        addrs: (SocketAddr, SocketAddr),
        replica: Arc<Replica>,
        status: Arc<GossipStatus>,
        server: Arc<Metrics>,
    ) -> Self {
        let src = Arc::new(Sources {
            id: spec.id,
            resp_addr: addrs.0,
            gossip_addr: addrs.1,
            peers: spec.peers.clone(),
            interval_ms: spec.gossip.interval_ms.max(1),
            fanout: spec.gossip.fanout,
            clock: spec.clock,
            auth: spec.auth.is_some(),
            started: Instant::now(),
            replica,
            status,
            server,
        });
        let mut registry = Registry::with_prefix("gossipkv");
        registry.register_collector(Box::new(Collect(Arc::clone(&src))));
        Self { src, registry, rates: Mutex::new(RateWindow::default()) }
    }

    /// The node's id.
    pub fn id(&self) -> u32 {
        self.src.id
    }

    /// The metrics in the OpenMetrics text format (`openmetrics`) or the Prometheus 0.0.4 text
    /// format.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(32 * 1024);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }

    /// `/health`: the node serves; whether it still refuses writes (loading) or is away.
    pub fn health(&self) -> Health {
        let s = &self.src;
        let loading = !s.replica.is_ready();
        let away = s.status.members.lock().away;
        let state = if loading {
            "loading"
        } else if away {
            "away"
        } else {
            "serving"
        };
        Health { status: "ok", state, node_id: s.id, loading, away }
    }

    /// Waits (at most one gossip interval and [`MEMBERS_WAIT`] more, [`MEMBERS_WAIT_MAX`] in
    /// all) until the gossip driver has copied a fresh member list for [`Self::status`]: the
    /// driver keeps that copy only while someone reads it, so the first read after a quiet
    /// spell waits for the driver's next input (a datagram or the round timer: milliseconds
    /// in a cluster, up to one interval for a lone node).
    pub async fn fresh_members(&self) {
        let wait = Duration::from_millis(self.src.interval_ms) + MEMBERS_WAIT;
        let deadline = tokio::time::Instant::now() + wait.min(MEMBERS_WAIT_MAX);
        while !self.src.status.peers.lock().want_members(gossipkv_net::now_ms())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `/status.json`: what the live view shows.
    pub fn status(&self) -> NodeStatus {
        let s = &self.src;
        let now = gossipkv_net::now_ms();
        let store = s.replica.store();
        let st = store.stats();
        let root = store.root_hash();
        let stats = s.status.stats.lock().clone();
        let counts = *s.status.members.lock();
        let (heard, members) = {
            let mut view = s.status.peers.lock();
            // keeps the copy fresh while the view is polled ([`Self::fresh_members`] waits
            // for it to be copied after a quiet spell)
            view.want_members(now);
            (view.peers(), view.members().to_vec())
        };
        let window = s.window_ms();
        let agreement = Agreement::over(&heard, now, window, store.keys_held() as u64);
        let peer = |addr: SocketAddr| heard.iter().find(|(a, _)| *a == addr).map(|(_, p)| *p);
        let mut rows: Vec<MemberRow> = Vec::new();
        let me = |status: &str| MemberRow {
            id: Some(s.id),
            addr: s.gossip_addr.to_string(),
            status: status.to_string(),
            is_self: true,
            root: Some(format!("{root:016x}")),
            keys: Some(store.keys_held() as u64),
            agrees: Some(true),
            heard_ms_ago: Some(0),
        };
        let row = |id: Option<u32>, addr: SocketAddr, status: &str| {
            let p = peer(addr);
            MemberRow {
                id: id.or(p.map(|p| p.id)),
                addr: addr.to_string(),
                status: status.to_string(),
                is_self: false,
                root: p.map(|p| format!("{:016x}", p.root)),
                keys: p.map(|p| p.keys),
                agrees: p.map(|p| p.agrees()),
                heard_ms_ago: p.map(|p| now.saturating_sub(p.at_ms)),
            }
        };
        if members.is_empty() {
            // no membership (or not copied yet): ourselves, the configured peers, and anyone
            // else we heard from
            rows.push(me("alive"));
            let mut addrs: Vec<SocketAddr> = s.peers.clone();
            addrs.extend(heard.iter().map(|(a, _)| *a));
            addrs.sort_unstable();
            addrs.dedup();
            for a in addrs.into_iter().filter(|a| *a != s.gossip_addr) {
                let status = if peer(a).is_some() { "heard" } else { "unknown" };
                rows.push(row(None, a, status));
            }
        } else {
            for m in &members {
                let status = m.status.name();
                if m.addr == s.gossip_addr && m.id == s.id {
                    rows.push(me(status));
                } else {
                    rows.push(row(Some(m.id), m.addr, status));
                }
            }
        }
        NodeStatus {
            node_id: s.id,
            version: env!("CARGO_PKG_VERSION"),
            resp_addr: s.resp_addr.to_string(),
            gossip_addr: s.gossip_addr.to_string(),
            now_ms: now,
            uptime_s: s.started.elapsed().as_secs_f64(),
            state: self.health().state,
            interval_ms: s.interval_ms,
            fanout: s.fanout,
            auth: s.auth,
            digest_root: format!("{root:016x}"),
            keys: st.live_keys as u64,
            tombstones: st.tombstones as u64,
            concurrent_values: st.extra_versions as u64,
            rounds: stats.rounds,
            messages_sent: stats.sent.iter().sum(),
            messages_received: stats.received.iter().sum(),
            bytes_sent: stats.sent_bytes.iter().sum(),
            bytes_received: stats.received_bytes.iter().sum(),
            versions_received: stats.versions_received,
            versions_applied: stats.versions_applied,
            client_commands: s.server.snapshot().commands_processed,
            members_alive: counts.alive as u64,
            members_suspect: counts.suspect as u64,
            members_dead: counts.dead as u64,
            agreement,
            rates: None,
            members: rows,
        }
        .with_rates(&self.rates)
    }
}

impl NodeStatus {
    /// Fills `rates` from the window, advancing it if [`RATE_WINDOW`] has passed.
    fn with_rates(mut self, window: &Mutex<RateWindow>) -> Self {
        let now = Instant::now();
        let counters = [
            self.messages_sent,
            self.messages_received,
            self.bytes_sent,
            self.bytes_received,
            self.versions_applied,
            self.client_commands,
        ];
        let mut w = window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match w.at {
            Some(at) if now.duration_since(at) < RATE_WINDOW => {}
            Some(at) => {
                let dt = now.duration_since(at).as_secs_f64();
                let r = |i: usize| counters[i].saturating_sub(w.counters[i]) as f64 / dt;
                w.last = Some(Rates {
                    window_s: dt,
                    messages_sent: r(0),
                    messages_received: r(1),
                    bytes_sent: r(2),
                    bytes_received: r(3),
                    versions_applied: r(4),
                    client_commands: r(5),
                });
                w.at = Some(now);
                w.counters = counters;
            }
            None => {
                w.at = Some(now);
                w.counters = counters;
            }
        }
        self.rates = w.last;
        self
    }
}

/// The body of `/health`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Health {
    /// Always `"ok"`: the endpoint answers while the node runs.
    pub status: &'static str,
    /// `"loading"` (client writes refused until caught up after a start), `"away"` (cut off
    /// from a majority beyond half the tombstone grace) or `"serving"`.
    pub state: &'static str,
    /// Node id.
    pub node_id: u32,
    /// Client writes are refused with LOADING.
    pub loading: bool,
    /// Away from a majority of the members.
    pub away: bool,
}

/// Digest agreement with recently heard peers (see the module docs).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Agreement {
    /// Peers heard from (a `Sync` or `SyncAck`) within the window.
    pub peers_heard: u64,
    /// Of those, peers whose root equalled ours at arrival.
    pub peers_agreeing: u64,
    /// `peers_agreeing / peers_heard`; `None` when no peer was heard.
    pub ratio: Option<f64>,
    /// Most keys a peer reported beyond the keys this node holds now.
    pub keys_behind: u64,
    /// The window, ms.
    pub window_ms: u64,
}

impl Agreement {
    /// Over the peers in `heard` that reported within `window_ms` of `now`, with `our_keys`
    /// the keys this node holds now.
    fn over(heard: &[(SocketAddr, PeerDigest)], now: u64, window_ms: u64, our_keys: u64) -> Self {
        let recent: Vec<&PeerDigest> = heard
            .iter()
            .map(|(_, p)| p)
            .filter(|p| now.saturating_sub(p.at_ms) <= window_ms)
            .collect();
        let agreeing = recent.iter().filter(|p| p.agrees()).count() as u64;
        let n = recent.len() as u64;
        Agreement {
            peers_heard: n,
            peers_agreeing: agreeing,
            ratio: (n > 0).then(|| agreeing as f64 / n as f64),
            keys_behind: recent.iter().map(|p| p.keys.saturating_sub(our_keys)).max().unwrap_or(0),
            window_ms,
        }
    }
}

/// One row of the live view's member table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MemberRow {
    /// Node id, when known.
    pub id: Option<u32>,
    /// Gossip address.
    pub addr: String,
    /// `alive`, `suspect`, `dead`, `left`; without membership `heard` or `unknown`.
    pub status: String,
    /// This node.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// The member's digest root as it last reported it (hex).
    pub root: Option<String>,
    /// Its key count (tombstones included) as last reported.
    pub keys: Option<u64>,
    /// Whether that root equalled ours at the time.
    pub agrees: Option<bool>,
    /// How long ago it reported, ms.
    pub heard_ms_ago: Option<u64>,
}

/// The body of `/status.json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeStatus {
    /// Node id.
    pub node_id: u32,
    /// gossipkv version.
    pub version: &'static str,
    /// Where clients connect.
    pub resp_addr: String,
    /// Where peers gossip.
    pub gossip_addr: String,
    /// The node's wall clock, ms since the UNIX epoch.
    pub now_ms: u64,
    /// Seconds since start.
    pub uptime_s: f64,
    /// As in [`Health::state`].
    pub state: &'static str,
    /// Gossip interval, ms.
    pub interval_ms: u64,
    /// Peers per round.
    pub fanout: usize,
    /// Gossip is authenticated.
    pub auth: bool,
    /// Our digest root (hex).
    pub digest_root: String,
    /// Live keys.
    pub keys: u64,
    /// Tombstones.
    pub tombstones: u64,
    /// Concurrent values kept beside winners.
    pub concurrent_values: u64,
    /// Gossip rounds run.
    pub rounds: u64,
    /// Gossip messages sent, all kinds.
    pub messages_sent: u64,
    /// Gossip messages received, all kinds.
    pub messages_received: u64,
    /// Gossip bytes sent.
    pub bytes_sent: u64,
    /// Gossip bytes received.
    pub bytes_received: u64,
    /// Versions received by gossip.
    pub versions_received: u64,
    /// Versions that changed the store.
    pub versions_applied: u64,
    /// Client commands run.
    pub client_commands: u64,
    /// Members alive (this node included).
    pub members_alive: u64,
    /// Members suspected.
    pub members_suspect: u64,
    /// Members declared dead.
    pub members_dead: u64,
    /// Digest agreement with recently heard peers.
    pub agreement: Agreement,
    /// Per-second rates between requests at least a second apart (`None` until two were).
    pub rates: Option<Rates>,
    /// Every member (or, without membership, peer) with what it last reported.
    pub members: Vec<MemberRow>,
}

impl Sources {
    fn window_ms(&self) -> u64 {
        AGREEMENT_WINDOW_ROUNDS * self.interval_ms
    }
}

/// The collector registered in each node's registry.
#[derive(Debug)]
struct Collect(Arc<Sources>);

/// Writes one family of metrics: a descriptor, then samples.
struct Out<'e, 'a> {
    enc: &'e mut DescriptorEncoder<'a>,
}

impl Out<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, v: u64) -> std::fmt::Result {
        let mut m = self.enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        m.encode_counter::<NoLabelSet, _, f64>(&v, None)
    }

    fn gauge(&mut self, name: &str, help: &str, v: impl EncodeGaugeValue) -> std::fmt::Result {
        let mut m = self.enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        m.encode_gauge(&v)
    }

    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        label: &str,
        samples: impl IntoIterator<Item = (String, u64)>,
    ) -> std::fmt::Result {
        let mut m = self.enc.encode_descriptor(name, help, None, kind)?;
        for (value, v) in samples {
            let labels = [(label, value.as_str())];
            let mut s = m.encode_family(&labels)?;
            match kind {
                MetricType::Counter => s.encode_counter::<NoLabelSet, _, f64>(&v, None)?,
                _ => s.encode_gauge(&v)?,
            }
        }
        Ok(())
    }
}

/// Samples by gossip message kind (kind 0 is unused).
fn by_kind(a: &[u64]) -> impl Iterator<Item = (String, u64)> + '_ {
    a.iter().zip(KIND_NAMES).skip(1).map(|(n, k)| (k.to_string(), *n))
}

impl Collector for Collect {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &*self.0;
        let mut o = Out { enc: &mut enc };
        let net = &s.status.net;
        let st = s.status.stats.lock().clone();
        let counts = *s.status.members.lock();
        let store = s.replica.store();
        let ss = store.stats();
        let heard = s.status.peers.lock().peers();
        let agreement = Agreement::over(
            &heard,
            gossipkv_net::now_ms(),
            s.window_ms(),
            store.keys_held() as u64,
        );

        // the node
        {
            let mut m = o.enc.encode_descriptor(
                "node",
                "This node: id, addresses, version, clock (value always 1).",
                None,
                MetricType::Info,
            )?;
            let id = s.id.to_string();
            let resp = s.resp_addr.to_string();
            let gossip = s.gossip_addr.to_string();
            let clock = match s.clock {
                ClockKind::Hlc => "hlc",
                ClockKind::Lamport => "lamport",
            };
            let labels = [
                ("node_id", id.as_str()),
                ("resp_addr", resp.as_str()),
                ("gossip_addr", gossip.as_str()),
                ("version", env!("CARGO_PKG_VERSION")),
                ("clock", clock),
            ];
            m.encode_info(&labels)?;
        }
        o.gauge(
            "uptime_seconds",
            "Seconds since the node started.",
            s.started.elapsed().as_secs_f64(),
        )?;
        o.gauge(
            "loading",
            "1 while client writes are refused with LOADING (catching up after a start).",
            u64::from(!s.replica.is_ready()),
        )?;
        o.gauge(
            "away",
            "1 while cut off from a majority beyond half the tombstone grace period.",
            u64::from(counts.away),
        )?;

        // clients
        let sm = s.server.snapshot();
        // commands appear once called (21 commands x 16 histogram lines would drown the rest)
        let cmds: Vec<_> =
            s.server.commands_snapshot().into_iter().filter(|c| c.calls > 0).collect();
        o.family(
            "client_commands",
            "Client commands run, by command (errors included).",
            MetricType::Counter,
            "command",
            cmds.iter().map(|c| (c.name.to_string(), c.calls)),
        )?;
        o.family(
            "client_command_errors",
            "Client commands answered with an error, by command (arity, NOAUTH, LOADING...).",
            MetricType::Counter,
            "command",
            cmds.iter().map(|c| (c.name.to_string(), c.errors)),
        )?;
        o.family(
            "client_command_rejected",
            "Client commands refused before they ran (arity, NOAUTH, LOADING), by command; also counted in client_commands and client_command_errors (Redis's rejected_calls).",
            MetricType::Counter,
            "command",
            cmds.iter().map(|c| (c.name.to_string(), c.rejected)),
        )?;
        {
            let mut m = o.enc.encode_descriptor(
                "client_command_duration_seconds",
                "Execution time of client commands, by command (parsed request to reply buffered).",
                None,
                MetricType::Histogram,
            )?;
            for c in &cmds {
                let labels = [("command", c.name)];
                let mut h = m.encode_family(&labels)?;
                encode_latency(&mut h, c)?;
            }
        }
        o.gauge("client_connections", "Client connections open.", sm.connections_current)?;
        o.counter(
            "client_connections_received",
            "Client connections accepted.",
            sm.connections_received,
        )?;
        o.counter(
            "client_connections_rejected",
            "Client connections refused at the connection limit.",
            sm.connections_rejected,
        )?;
        o.counter(
            "client_protocol_errors",
            "Client connections closed for a RESP protocol error.",
            sm.protocol_errors,
        )?;
        o.counter("client_received_bytes", "Bytes read from clients.", sm.net_input_bytes)?;
        o.counter("client_sent_bytes", "Bytes written to clients.", sm.net_output_bytes)?;

        // the store
        o.gauge("keys", "Live keys (winner is a value).", ss.live_keys as u64)?;
        o.gauge(
            "tombstones",
            "Keys whose winner is a tombstone (a delete).",
            ss.tombstones as u64,
        )?;
        o.gauge(
            "concurrent_values",
            "Versions kept beside the winners: equal-timestamp ties (VERSIONS shows them).",
            ss.extra_versions as u64,
        )?;
        o.gauge(
            "store_memory_estimate_bytes",
            "Heap bytes this node's store holds, estimated from its layout.",
            store.memory_estimate() as u64,
        )?;
        if let Some(rss) = resident_bytes() {
            o.gauge(
                "process_resident_memory_bytes",
                "Resident memory of the whole process (VmRSS; shared by every node of a cluster).",
                rss,
            )?;
        }
        o.counter(
            "clock_drift_events",
            "Remote timestamps received further ahead of our clock than the maximum drift.",
            s.replica.clock().drift_events(),
        )?;

        // gossip
        o.counter("gossip_rounds", "Gossip rounds run.", st.rounds)?;
        o.family(
            "gossip_messages_sent",
            "Gossip messages sent, by kind.",
            MetricType::Counter,
            "kind",
            by_kind(&st.sent),
        )?;
        o.family(
            "gossip_messages_received",
            "Gossip messages received and decoded, by kind.",
            MetricType::Counter,
            "kind",
            by_kind(&st.received),
        )?;
        o.family(
            "gossip_sent_bytes",
            "Gossip bytes sent, by kind (before the authentication envelope).",
            MetricType::Counter,
            "kind",
            by_kind(&st.sent_bytes),
        )?;
        o.family(
            "gossip_received_bytes",
            "Gossip bytes received, by kind (after the authentication envelope).",
            MetricType::Counter,
            "kind",
            by_kind(&st.received_bytes),
        )?;
        o.gauge("gossip_max_datagram_bytes", "Largest datagram sent.", st.max_datagram as u64)?;
        o.counter(
            "gossip_versions_received",
            "Versions received by gossip (Entries, BulkChunk).",
            st.versions_received,
        )?;
        o.counter(
            "gossip_versions_applied",
            "Versions received by gossip that changed the store (merges that won).",
            st.versions_applied,
        )?;
        o.counter(
            "gossip_descents",
            "Exchanges whose digest roots differed and walked down the tree.",
            st.descents,
        )?;
        o.counter(
            "gossip_descents_deferred",
            "Exchanges whose roots differed that did not walk the tree: the pair had walked it \
             less than half an interval before.",
            st.descents_deferred,
        )?;
        o.counter(
            "gossip_bulk_catchups",
            "Bulk catch-ups started (far behind a peer).",
            st.bulk_started,
        )?;
        o.counter("gossip_member_pulls", "Member-table pulls sent.", st.member_pulls)?;
        let ev = counts.events;
        o.family(
            "member_events",
            "Membership events counted by this node: suspicions it raised after failed probes, \
             deaths it declared, refutations of its own suspicion or death, direct probes that \
             got no answer, dead members forgotten by an operator (CLUSTER FORGET), suspicions \
             confirmed by a further suspector (each shortens the suspicion timeout).",
            MetricType::Counter,
            "event",
            [
                ("suspicion", ev.suspicions),
                ("death", ev.deaths),
                ("refute", ev.refutes),
                ("probe_miss", ev.probe_misses),
                ("forgotten", ev.forgotten),
                ("confirmation", ev.confirmations),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        )?;
        o.family(
            "gossip_dropped_injected",
            "Gossip messages dropped on purpose by --drop-rate, by where.",
            MetricType::Counter,
            "where",
            [
                ("send", net.dropped_send.load(Relaxed)),
                ("receive", net.dropped_recv.load(Relaxed)),
                ("stream", net.dropped_stream.load(Relaxed)),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        )?;
        o.counter(
            "gossip_io_errors",
            "Real send, connect and receive errors (e.g. a peer down, a full socket buffer).",
            net.io_errors.load(Relaxed),
        )?;
        o.counter(
            "gossip_oversize_versions",
            "Versions never sent because one alone exceeds a gossip stream message's limit (writes that long are refused, so 0).",
            st.oversize_versions,
        )?;
        o.counter(
            "gossip_oversize_messages",
            "Stream messages built over the limit and not sent (every list of entries is cut to fit, so 0).",
            st.oversize_messages,
        )?;
        o.counter(
            "gossip_rumors_dropped",
            "Local writes not advertised as rumors: pushed out of the rumor ring by newer writes before the gossip task took them.",
            net.rumors_dropped.load(Relaxed),
        )?;
        let mut rejected = vec![
            ("decode_error".to_string(), st.decode_errors),
            ("unexpected".to_string(), st.rejected),
            ("bad_stream_frame".to_string(), net.bad_frames.load(Relaxed)),
        ];
        rejected.extend(
            Reject::ALL.iter().map(|r| (format!("auth_{}", r.name()), net.auth_rejected(*r))),
        );
        o.family(
            "gossip_rejected",
            "Gossip messages refused, by reason (decoder, protocol, stream framing, authentication).",
            MetricType::Counter,
            "reason",
            rejected,
        )?;
        o.counter(
            "gossip_auth_opened",
            "Gossip messages that passed authentication.",
            net.auth_opened.load(Relaxed),
        )?;
        o.counter(
            "gossip_auth_seal_errors",
            "Outgoing gossip messages that could not be sealed (dropped).",
            net.auth_seal_errors.load(Relaxed),
        )?;
        o.counter(
            "tombstones_purged",
            "Tombstones purged after the grace period.",
            st.tombstones_purged,
        )?;
        o.counter(
            "horizon_resets",
            "Times this node came back from away and dropped its entries older than the horizon.",
            st.horizon_resets,
        )?;
        o.counter("horizon_dropped", "Entries dropped by horizon resets.", st.horizon_dropped)?;
        o.gauge(
            "tombstone_ghosts",
            "Purged tombstones remembered (key hash and timestamp) for one more grace period.",
            st.ghosts,
        )?;
        o.counter(
            "ghost_refused",
            "Versions refused because a newer tombstone was purged here; each answered with it.",
            st.ghost_refused,
        )?;
        o.counter("away_refused", "Exchanges refused because the peer was away.", st.away_refused)?;

        // members
        o.family(
            "members",
            "Members this node knows, by status (itself counted alive).",
            MetricType::Gauge,
            "status",
            [
                ("alive", counts.alive),
                ("suspect", counts.suspect),
                ("dead", counts.dead),
                ("left", counts.left),
            ]
            .map(|(k, v)| (k.to_string(), v as u64)),
        )?;

        // how far behind
        o.gauge(
            "peers_heard",
            "Peers that reported their digest root (Sync/SyncAck) within the agreement window.",
            agreement.peers_heard as u64,
        )?;
        o.gauge(
            "peers_agreeing",
            "Of the peers heard in the window, those whose root equalled ours.",
            agreement.peers_agreeing as u64,
        )?;
        if let Some(r) = agreement.ratio {
            o.gauge(
                "digest_agreement_ratio",
                "peers_agreeing / peers_heard: 1 when this node holds what its peers hold.",
                r,
            )?;
        }
        o.gauge(
            "keys_behind",
            "Most keys a peer heard in the window reported beyond what we hold now (0: not behind).",
            agreement.keys_behind as u64,
        )?;
        o.gauge(
            "digest_root_fingerprint",
            "Top 32 bits of this node's digest root: equal on every node iff they hold the same data.",
            root_fingerprint(store.root_hash()),
        )?;
        o.gauge(
            "agreement_window_seconds",
            "The window of peers_heard: AGREEMENT_WINDOW_ROUNDS gossip intervals.",
            s.window_ms() as f64 / 1000.0,
        )?;
        Ok(())
    }
}

/// The top 32 bits of a digest root, a gauge Prometheus holds exactly (an f64 holds 53 bits).
pub fn root_fingerprint(root: u64) -> u64 {
    root >> 32
}

/// One command's latency histogram, converted from cumulative counts to per-bucket ones (the
/// encoder accumulates).
fn encode_latency(
    h: &mut MetricEncoder<'_>,
    c: &gossipkv_server::CommandStats,
) -> std::fmt::Result {
    let mut buckets = Vec::with_capacity(c.le.len());
    let mut prev = 0;
    for (i, &cum) in c.le.iter().enumerate() {
        let bound = LATENCY_BUCKETS_NS.get(i).map_or(f64::INFINITY, |ns| *ns as f64 / 1e9);
        buckets.push((bound, cum.saturating_sub(prev)));
        prev = cum;
    }
    h.encode_histogram::<NoLabelSet>(c.total_ns as f64 / 1e9, prev, &buckets, None)
}

/// Resident memory of this process from /proc/self/status (`None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Renders `v` as JSON (the bodies above never fail to serialize; `{}` if one did).
pub fn to_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
}

/// For tests and the docs: the value of the sample `name` (with `labels` as written, e.g.
/// `{command="get"}`, or empty) in a text exposition.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let want = format!("{name}{labels} ");
    text.lines().find_map(|l| l.strip_prefix(want.as_str())).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use gossipkv_core::StoreConfig;
    use gossipkv_core::gossip::GossipConfig;
    use gossipkv_server::ServerConfig;

    use super::*;

    fn view() -> (NodeView, Arc<Replica>, Arc<GossipStatus>, Arc<Metrics>) {
        let addr = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let spec = NodeSpec {
            id: 3,
            peers: vec![addr(2), addr(4)],
            gossip: GossipConfig::default(),
            drop_rate: 0.0,
            clock: ClockKind::Hlc,
            store: StoreConfig::default(),
            server: ServerConfig::new(addr(1)),
            auth: None,
            membership: false,
            gate_writes: false,
        };
        let replica = Arc::new(Replica::new(3, ClockKind::Hlc, StoreConfig::default()));
        let status = Arc::new(GossipStatus::default());
        let server = Arc::new(Metrics::new());
        let v = NodeView::new(
            &spec,
            (addr(1), addr(3)),
            Arc::clone(&replica),
            Arc::clone(&status),
            Arc::clone(&server),
        );
        (v, replica, status, server)
    }

    const NAMES: &[&str] = &[
        "gossipkv_node_info",
        "gossipkv_uptime_seconds",
        "gossipkv_loading",
        "gossipkv_away",
        "gossipkv_client_connections",
        "gossipkv_keys",
        "gossipkv_tombstones",
        "gossipkv_concurrent_values",
        "gossipkv_store_memory_estimate_bytes",
        "gossipkv_clock_drift_events_total",
        "gossipkv_gossip_rounds_total",
        "gossipkv_gossip_messages_sent_total",
        "gossipkv_gossip_messages_received_total",
        "gossipkv_gossip_sent_bytes_total",
        "gossipkv_gossip_received_bytes_total",
        "gossipkv_gossip_versions_received_total",
        "gossipkv_gossip_versions_applied_total",
        "gossipkv_gossip_dropped_injected_total",
        "gossipkv_gossip_io_errors_total",
        "gossipkv_gossip_rejected_total",
        "gossipkv_tombstones_purged_total",
        "gossipkv_horizon_resets_total",
        "gossipkv_members",
        "gossipkv_peers_heard",
        "gossipkv_keys_behind",
        "gossipkv_digest_root_fingerprint",
    ];

    #[test]
    fn every_metric_is_named_and_values_follow_the_node() {
        let (v, replica, status, _server) = view();
        let text = v.render(false).unwrap_or_default();
        for name in NAMES {
            assert!(text.contains(&format!("\n# TYPE {name} ")), "{name} missing:\n{text}");
        }
        assert_eq!(sample(&text, "gossipkv_keys", ""), Some(0.0));
        assert_eq!(
            sample(&text, "gossipkv_gossip_rejected_total", "{reason=\"auth_bad_mac\"}"),
            Some(0.0)
        );
        // no peer heard yet: no ratio (rather than a made-up 1 or 0)
        assert!(!text.contains("gossipkv_digest_agreement_ratio "));
        for i in 0..10u32 {
            replica.put(format!("k{i}").as_bytes(), format!("v{i}"), 1_000 + u64::from(i));
        }
        replica.delete(b"k0", 2_000);
        status.stats.lock().rounds = 7;
        status.stats.lock().sent[1] = 4;
        status.net.dropped_send.fetch_add(2, Relaxed);
        status.members.lock().alive = 5;
        let text = v.render(false).unwrap_or_default();
        assert_eq!(sample(&text, "gossipkv_keys", ""), Some(9.0));
        let fp = root_fingerprint(replica.store().root_hash()) as f64;
        assert_eq!(sample(&text, "gossipkv_digest_root_fingerprint", ""), Some(fp));
        assert_eq!(sample(&text, "gossipkv_tombstones", ""), Some(1.0));
        assert_eq!(sample(&text, "gossipkv_gossip_rounds_total", ""), Some(7.0));
        assert_eq!(
            sample(&text, "gossipkv_gossip_messages_sent_total", "{kind=\"sync\"}"),
            Some(4.0)
        );
        assert_eq!(
            sample(&text, "gossipkv_gossip_dropped_injected_total", "{where=\"send\"}"),
            Some(2.0)
        );
        assert_eq!(sample(&text, "gossipkv_members", "{status=\"alive\"}"), Some(5.0));
        assert!(sample(&text, "gossipkv_store_memory_estimate_bytes", "").unwrap_or(0.0) > 0.0);
    }

    #[test]
    fn client_commands_show_up_once_called() {
        let (v, _replica, _status, server) = view();
        assert!(!v.render(false).unwrap_or_default().contains("command=\"get\""));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let Ok(rt) = rt else { return };
        // run real commands through a RESP server sharing `server`
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok();
            let Some(listener) = listener else { return };
            let addr = listener.local_addr().ok();
            let replica = Arc::new(Replica::new(0, ClockKind::Hlc, StoreConfig::default()));
            let ctx = gossipkv_server::ServerContext::new(ServerConfig::default())
                .with_metrics(Arc::clone(&server));
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let srv = tokio::spawn(gossipkv_server::serve(listener, replica, ctx, async {
                let _ = rx.await;
            }));
            if let Some(addr) = addr {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                if let Ok(mut c) = tokio::net::TcpStream::connect(addr).await {
                    let req = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$3\r\nGET\r\n";
                    let _ = c.write_all(req).await;
                    let mut buf = vec![0u8; 256];
                    let mut got = Vec::new();
                    while !got.ends_with(b"command\r\n") {
                        match c.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                }
            }
            let _ = tx.send(());
            let _ = srv.await;
        });
        let text = v.render(true).unwrap_or_default();
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
        assert_eq!(sample(&text, "gossipkv_client_commands_total", "{command=\"get\"}"), Some(2.0));
        assert_eq!(sample(&text, "gossipkv_client_commands_total", "{command=\"set\"}"), Some(1.0));
        assert_eq!(
            sample(&text, "gossipkv_client_command_errors_total", "{command=\"get\"}"),
            Some(1.0),
            "GET without a key is an arity error"
        );
        assert_eq!(
            sample(&text, "gossipkv_client_command_rejected_total", "{command=\"get\"}"),
            Some(1.0),
            "an arity error is refused before the command runs"
        );
        assert_eq!(
            sample(&text, "gossipkv_client_command_rejected_total", "{command=\"set\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "gossipkv_client_command_duration_seconds_count", "{command=\"get\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "gossipkv_client_command_duration_seconds_bucket",
                "{le=\"+Inf\",command=\"get\"}"
            ),
            Some(2.0)
        );
    }

    #[test]
    fn agreement_counts_recent_peers_only() {
        let d =
            |root, keys, at_ms| PeerDigest { id: 1, root, keys, our_root: 5, our_keys: 0, at_ms };
        let a = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
        let heard = [(a(1), d(5, 10, 1_000)), (a(2), d(6, 30, 1_500)), (a(3), d(6, 99, 10))];
        let g = Agreement::over(&heard, 2_000, 1_000, 20);
        assert_eq!((g.peers_heard, g.peers_agreeing, g.keys_behind), (2, 1, 10));
        assert_eq!(g.ratio, Some(0.5));
        assert_eq!(Agreement::over(&[], 2_000, 3_000, 0).ratio, None);
    }

    #[test]
    fn live_view_rates_need_a_second_between_requests() {
        let (v, _replica, status, _) = view();
        assert_eq!(v.status().rates, None, "first request: nothing to compare with");
        assert_eq!(v.status().rates, None, "too soon");
        // pretend the first request was two seconds ago
        if let Some(back) = Instant::now().checked_sub(Duration::from_secs(2)) {
            v.rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner).at = Some(back);
            status.stats.lock().sent[1] = 10;
            let r = v.status().rates.unwrap_or_default();
            assert!((r.messages_sent - 5.0).abs() < 0.1, "{r:?}");
            assert!(r.window_s >= 2.0);
        }
    }

    #[test]
    fn health_and_status_report_the_state() {
        let (v, replica, status, _) = view();
        assert_eq!(v.health().state, "serving");
        replica.set_ready(false);
        assert_eq!(v.health().state, "loading");
        replica.set_ready(true);
        status.members.lock().away = true;
        assert_eq!((v.health().state, v.health().away), ("away", true));
        let s = v.status();
        assert_eq!(s.node_id, 3);
        // no membership: this node plus the two configured peers, never heard
        assert_eq!(s.members.len(), 3);
        assert!(s.members[0].is_self);
        assert_eq!(s.members[1].status, "unknown");
        assert!(to_json(&s).contains("\"members\":["));
    }
}
