//! Assembles a running gossipkv node: one [`Replica`] shared by the RESP server
//! (`gossipkv-server`) and the gossip driver (`gossipkv-net`), wired so that every client
//! write is handed to gossip as a rumor and `INFO gossip` reports the driver's counters.
//! Also the `gossipkv node` and `gossipkv cluster` commands ([`cli`]).
//!
//! Start-up is two steps so a cluster can learn every address before any node gossips:
//! [`bind`] opens the sockets (failing early on a busy port), [`start`] runs the node.

pub mod cli;
pub mod config;
pub mod http;
pub mod logging;
pub mod metrics;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipkv_core::gossip::auth::{Keyring, Reject};
use gossipkv_core::gossip::{GossipConfig, VersionId};
use gossipkv_core::{ClockKind, Replica, StoreConfig, VersionRef};
use gossipkv_net::{Faults, GossipStatus, NetConfig, RumorRing};
use gossipkv_server::resp::Frame;
use gossipkv_server::{
    AdminFuture, ClusterAdmin, InfoSection, InfoSource, ServerConfig, ServerContext, WriteObserver,
};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything that describes one node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node id: the origin of this node's writes, unique in the cluster (ties between equal
    /// timestamp and value are broken by it).
    pub id: u32,
    /// Potential peers' gossip addresses.
    pub peers: Vec<SocketAddr>,
    /// Protocol tunables.
    pub gossip: GossipConfig,
    /// Injected gossip drop probability (send and receive).
    pub drop_rate: f64,
    /// Timestamp source.
    pub clock: ClockKind,
    /// Store geometry (the digest tree must match across the cluster).
    pub store: StoreConfig,
    /// RESP server settings.
    pub server: ServerConfig,
    /// Cluster name and keys for authenticated gossip (`None`: gossip in clear, unchecked).
    pub auth: Option<Keyring>,
    /// Learn members through gossip from the peers as seeds, detect failures.
    pub membership: bool,
    /// Answer client writes with LOADING until caught up with peers (a node that may have
    /// run before under this id: its next writes then beat the ones before its crash).
    pub gate_writes: bool,
}

/// A node's sockets, bound but not yet serving.
#[derive(Debug)]
pub struct Bound {
    resp: TcpListener,
    udp: UdpSocket,
    stream: TcpListener,
    /// Where clients connect.
    pub resp_addr: SocketAddr,
    /// Where peers gossip.
    pub gossip_addr: SocketAddr,
}

/// Binds the RESP listener on `listen` and the gossip UDP socket + stream listener on
/// `gossip` (port 0 picks free ports).
pub async fn bind(listen: SocketAddr, gossip: SocketAddr) -> io::Result<Bound> {
    let resp = TcpListener::bind(listen).await?;
    let (udp, stream) = gossipkv_net::bind(gossip).await?;
    Ok(Bound { resp_addr: resp.local_addr()?, gossip_addr: udp.local_addr()?, resp, udp, stream })
}

/// A node that is serving and gossiping.
#[derive(Debug)]
pub struct RunningNode {
    /// Node id.
    pub id: u32,
    /// Where clients connect.
    pub resp_addr: SocketAddr,
    /// Where peers gossip.
    pub gossip_addr: SocketAddr,
    /// The replica (for in-process inspection and tests).
    pub replica: Arc<Replica>,
    /// Live gossip counters.
    pub status: Arc<GossipStatus>,
    /// What the HTTP endpoint shows: metrics, health, the live view ([`http::serve`]).
    pub view: Arc<metrics::NodeView>,
    /// The RESP server task.
    pub server: JoinHandle<io::Result<()>>,
    /// The gossip driver task.
    pub gossip: JoinHandle<io::Result<()>>,
}

/// Hands each local write to the gossip driver as a 20-byte rumor id in a [`RumorRing`].
/// The id is computed on the connection's thread; the ring keeps the newest ids (as many as
/// the node's rumor list holds) and counts the older ones it pushes out: the write is already
/// in the replica and anti-entropy will spread it, so client load can never build a backlog
/// in front of gossip. Pushing does not wake the driver, which takes the ids before it
/// handles its next input.
struct RumorQueue {
    ring: Arc<RumorRing>,
    status: Arc<GossipStatus>,
}

impl RumorQueue {
    fn push(&self, id: VersionId, delete: bool) {
        if !self.ring.push(id, delete) {
            self.status.net.rumors_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl WriteObserver for RumorQueue {
    fn on_local_write(&self, key: &[u8], version: VersionRef<'_>) {
        self.push(VersionId::of(key, version), version.value.is_none());
    }

    /// The server's path: the id from the hashes the store just computed, not hashed again.
    fn on_local_write_hashed(&self, _key: &[u8], version: VersionRef<'_>, kh: u64, vh: u64) {
        self.push(VersionId { kh, ts: version.ts, vh: vh as u32 }, version.value.is_none());
    }
}

/// `CLUSTER MEMBERS` and `CLUSTER FORGET`, carried out by the gossip driver.
struct Admin {
    status: Arc<GossipStatus>,
}

fn admin_error(e: impl std::fmt::Display) -> Frame {
    Frame::Error(Bytes::from(format!("ERR {e}")))
}

impl ClusterAdmin for Admin {
    fn forget(&self, id: u32) -> AdminFuture {
        let status = Arc::clone(&self.status);
        Box::pin(async move {
            match status.forget_member(id).await {
                Ok(_) => Frame::Simple(Bytes::from_static(b"OK")),
                Err(e) => admin_error(e),
            }
        })
    }

    fn members(&self) -> AdminFuture {
        let status = Arc::clone(&self.status);
        Box::pin(async move {
            match status.member_records().await {
                Ok(recs) => Frame::Array(
                    recs.iter()
                        .map(|r| {
                            Frame::Array(vec![
                                Frame::Integer(i64::from(r.id)),
                                Frame::Bulk(Bytes::from(r.addr.to_string())),
                                Frame::Bulk(Bytes::from_static(r.status.name().as_bytes())),
                                Frame::Integer(i64::try_from(r.generation).unwrap_or(i64::MAX)),
                            ])
                        })
                        .collect(),
                ),
                Err(e) => admin_error(e),
            }
        })
    }
}

/// `INFO gossip` / `INFO replication` fields from the driver's counters.
struct GossipInfo {
    replica: Arc<Replica>,
    status: Arc<GossipStatus>,
    gossip_addr: SocketAddr,
    peers: usize,
    /// Cluster name, number of keys, primary key id (when gossip is authenticated).
    auth: Option<(String, usize, u8)>,
}

impl InfoSource for GossipInfo {
    fn replication(&self, s: &mut InfoSection) {
        s.field("role", "replica-of-all");
        s.field("gossip_peers_known", self.peers);
    }

    fn gossip(&self, s: &mut InfoSection) {
        use std::sync::atomic::Ordering::Relaxed;
        let st = self.status.stats.lock().clone();
        let store = self.replica.store().stats();
        s.field("gossip_addr", self.gossip_addr);
        s.field("node_id", self.replica.id());
        s.field("rounds", st.rounds);
        s.field("messages_sent", st.sent.iter().sum::<u64>());
        s.field("bytes_sent", st.sent_bytes.iter().sum::<u64>());
        s.field("messages_received", st.received.iter().sum::<u64>());
        s.field("bytes_received", st.received_bytes.iter().sum::<u64>());
        s.field("max_datagram", st.max_datagram);
        s.field("decode_errors", st.decode_errors);
        s.field("rejected", st.rejected);
        s.field("versions_received", st.versions_received);
        s.field("versions_applied", st.versions_applied);
        s.field("descents", st.descents);
        s.field("descents_deferred", st.descents_deferred);
        s.field("bulk_catchups", st.bulk_started);
        s.field("oversize_versions", st.oversize_versions);
        s.field("oversize_messages", st.oversize_messages);
        s.field("dropped_injected_send", self.status.net.dropped_send.load(Relaxed));
        s.field("dropped_injected_recv", self.status.net.dropped_recv.load(Relaxed));
        s.field("dropped_injected_stream", self.status.net.dropped_stream.load(Relaxed));
        s.field("io_errors", self.status.net.io_errors.load(Relaxed));
        s.field("rumors_dropped", self.status.net.rumors_dropped.load(Relaxed));
        s.field("chaos_blocked", self.status.net.chaos_blocked.load(Relaxed));
        s.field("chaos_duplicated", self.status.net.chaos_duplicated.load(Relaxed));
        s.field("chaos_delayed", self.status.net.chaos_delayed.load(Relaxed));
        s.field("chaos_control_errors", self.status.net.chaos_control_errors.load(Relaxed));
        let net = &self.status.net;
        s.field("auth_enabled", u8::from(self.auth.is_some()));
        if let Some((cluster, keys, primary)) = &self.auth {
            s.field("auth_cluster", cluster);
            s.field("auth_keys", keys);
            s.field("auth_primary_key_id", format!("{primary:02x}"));
        }
        s.field("auth_opened", net.auth_opened.load(Relaxed));
        s.field("auth_rejected", net.auth_rejected_total());
        for why in Reject::ALL {
            s.field(&format!("auth_rejected_{}", why.name()), net.auth_rejected(why));
        }
        s.field("auth_senders_tracked", net.auth_senders.load(Relaxed));
        s.field("auth_seal_errors", net.auth_seal_errors.load(Relaxed));
        let m = *self.status.members.lock();
        s.field("members_known", m.known);
        s.field("members_alive", m.alive);
        s.field("members_suspect", m.suspect);
        s.field("members_dead", m.dead);
        s.field("members_left", m.left);
        s.field("generation", m.generation);
        s.field("away", u8::from(m.away));
        s.field("member_suspicions", m.events.suspicions);
        s.field("member_deaths", m.events.deaths);
        s.field("member_refutes", m.events.refutes);
        s.field("member_confirmations", m.events.confirmations);
        s.field("member_probe_misses", m.events.probe_misses);
        s.field("members_forgotten", m.events.forgotten);
        s.field("loading", u8::from(!self.replica.is_ready()));
        s.field("member_pulls", st.member_pulls);
        s.field("tombstones_purged", st.tombstones_purged);
        s.field("horizon_resets", st.horizon_resets);
        s.field("tombstone_ghosts", st.ghosts);
        s.field("ghost_refused", st.ghost_refused);
        s.field("stale_tombstones_skipped", st.stale_tombstones_skipped);
        s.field("away_refused", st.away_refused);
        s.field("digest_root", format!("{:016x}", self.replica.store().root_hash()));
        s.field("keys", store.live_keys);
        s.field("tombstones", store.tombstones);
        s.field("concurrent_values", store.extra_versions);
        s.field("last_timestamp", self.replica.last_timestamp());
        s.field("clock_drift_events", self.replica.clock().drift_events());
    }
}

/// Starts serving clients and gossiping on `bound` sockets; both stop when `shutdown` turns
/// true. `seed` feeds the protocol's randomness and the fault injector.
pub fn start(
    bound: Bound,
    spec: NodeSpec,
    seed: u64,
    shutdown: watch::Receiver<bool>,
) -> RunningNode {
    start_with_faults(bound, spec, seed, shutdown, Faults::default())
}

/// [`start`] with test-only fault injection (clock skew for the RESP server's timestamps
/// and for gossip, and a control file the driver polls: docs/reliability.md).
pub fn start_with_faults(
    bound: Bound,
    spec: NodeSpec,
    seed: u64,
    shutdown: watch::Receiver<bool>,
    faults: Faults,
) -> RunningNode {
    start_on(bound, spec, seed, shutdown, faults, None)
}

/// [`start_with_faults`] with the gossip driver on the runtime `gossip` (`None`: the calling
/// one, like the RESP server). A runtime of its own keeps gossip work (a replica merging a
/// burst of versions, a catch-up chunk: milliseconds at a time under write load) from
/// holding up client connections, which stay on the calling runtime.
pub fn start_on(
    bound: Bound,
    mut spec: NodeSpec,
    seed: u64,
    shutdown: watch::Receiver<bool>,
    faults: Faults,
    gossip: Option<&tokio::runtime::Handle>,
) -> RunningNode {
    spec.server.clock_skew_ms = faults.clock_skew_ms;
    let replica = Arc::new(Replica::new(spec.id, spec.clock, spec.store));
    let status = Arc::new(GossipStatus::default());
    let ring = Arc::new(RumorRing::new(spec.gossip.max_hot));
    let observer = RumorQueue { ring: Arc::clone(&ring), status: Arc::clone(&status) };
    let info = GossipInfo {
        replica: Arc::clone(&replica),
        status: Arc::clone(&status),
        gossip_addr: bound.gossip_addr,
        peers: spec.peers.len(),
        auth: spec.auth.as_ref().map(|r| {
            (r.cluster_name().to_string(), r.len(), r.key_ids().first().copied().unwrap_or(0))
        }),
    };
    let ctx = ServerContext::new(spec.server.clone())
        .with_write_observer(Arc::new(observer))
        .with_info_source(Arc::new(info))
        .with_cluster_admin(Arc::new(Admin { status: Arc::clone(&status) }));
    let view = Arc::new(metrics::NodeView::new(
        &spec,
        (bound.resp_addr, bound.gossip_addr),
        Arc::clone(&replica),
        Arc::clone(&status),
        ctx.metrics(),
    ));
    let server = tokio::spawn(gossipkv_server::serve(
        bound.resp,
        Arc::clone(&replica),
        ctx,
        stopped(shutdown.clone()),
    ));
    let net = NetConfig {
        gossip_addr: bound.gossip_addr,
        peers: spec.peers,
        gossip: spec.gossip,
        drop_rate: spec.drop_rate,
        seed,
        auth: spec.auth,
        membership: spec.membership,
        gate_writes: spec.gate_writes,
        faults,
    };
    let driver = |udp, stream| {
        gossipkv_net::run(
            Arc::clone(&replica),
            net,
            udp,
            stream,
            ring,
            Arc::clone(&status),
            stopped(shutdown),
        )
    };
    let gossip = match gossip {
        None => tokio::spawn(driver(bound.udp, bound.stream)),
        Some(rt) => {
            // re-register the sockets with the gossip runtime's reactor
            let (udp, stream) = (bound.udp.into_std(), bound.stream.into_std());
            let _enter = rt.enter();
            let sockets =
                udp.and_then(|u| Ok((UdpSocket::from_std(u)?, TcpListener::from_std(stream?)?)));
            match sockets {
                Ok((udp, stream)) => rt.spawn(driver(udp, stream)),
                Err(e) => rt.spawn(async move { Err(e) }),
            }
        }
    };
    RunningNode {
        id: spec.id,
        resp_addr: bound.resp_addr,
        gossip_addr: bound.gossip_addr,
        replica,
        status,
        view,
        server,
        gossip,
    }
}

/// Completes when the watch value turns true (or its sender is dropped).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// The server hands the observer the hashes the store computed; the rumor id built from
    /// them must be the one gossip computes from the key and the version (`VersionId::of`),
    /// or peers would be told of versions nobody holds.
    #[test]
    fn rumor_ids_from_the_stores_hashes_equal_the_computed_ones() {
        let replica = Replica::new(7, ClockKind::Hlc, StoreConfig::default());
        let queue = RumorQueue {
            ring: Arc::new(RumorRing::new(16)),
            status: Arc::new(GossipStatus::default()),
        };
        let writes: [(&[u8], Option<&[u8]>); 3] =
            [(b"k1", Some(b"v1")), (b"k2", Some(b"")), (b"k1", None)];
        let mut expected = Vec::new();
        for (i, (key, value)) in writes.into_iter().enumerate() {
            let (ts, kh, vh) = replica.write_hashed(key, value, 1_000 + i as u64);
            let v = VersionRef { ts, origin: 7, value };
            queue.on_local_write_hashed(key, v, kh, vh);
            expected.push((VersionId::of(key, v), value.is_none()));
        }
        let mut got = VecDeque::new();
        queue.ring.take_all(&mut got);
        assert_eq!(Vec::from(got), expected);
    }
}
