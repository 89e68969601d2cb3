//! Set-up shared by the integration tests that run real nodes in the test process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossipkv_core::digest::TreeShape;
use gossipkv_core::gossip::GossipConfig;
use gossipkv_core::{ClockKind, StoreConfig};
use gossipkv_net::Faults;
use gossipkv_node::{Bound, NodeSpec, RunningNode, bind, start_on};
use gossipkv_server::ServerConfig;
use redis::Connection;
use tokio::sync::watch;

/// A multi-thread tokio runtime with `workers` worker threads, for nodes run by a test.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `n` RESP + gossip socket pairs on free loopback ports.
pub async fn bind_all(n: usize) -> Vec<Bound> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let mut bound = Vec::with_capacity(n);
    for _ in 0..n {
        bound.push(bind(any, any).await.expect("bind"));
    }
    bound
}

/// Node `i` of a test cluster whose gossip addresses are `gossip`, serving RESP on `resp`:
/// every other node a potential peer, 100 ms rounds, HLC, 4 shards and 4,096 leaves,
/// membership on, no write gate, no auth, no injected drops. Tests change what they need.
pub fn spec(i: usize, gossip: &[SocketAddr], resp: SocketAddr) -> NodeSpec {
    NodeSpec {
        id: i as u32,
        peers: gossip.iter().copied().filter(|a| *a != gossip[i]).collect(),
        gossip: GossipConfig { interval_ms: 100, ..GossipConfig::default() },
        drop_rate: 0.0,
        clock: ClockKind::Hlc,
        store: StoreConfig { shards_log2: 2, tree: TreeShape::new(3), max_concurrent: 16 },
        server: ServerConfig::new(resp),
        auth: None,
        membership: true,
        gate_writes: false,
    }
}

/// The value of `name` in the node's `INFO gossip` reply over `con`, if the field is there.
#[allow(dead_code, reason = "not every test file that includes this module reads INFO")]
pub fn info_gossip_field(con: &mut redis::Connection, name: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg("gossip").query(con).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::to_string)
}

/// Nodes run in the test process on loopback sockets, each serving RESP and gossiping with
/// all the others; stopped (bounded waits) when dropped.
#[allow(dead_code, reason = "not every test file that includes this module runs a cluster")]
pub struct Cluster {
    pub rt: tokio::runtime::Runtime,
    pub nodes: Vec<RunningNode>,
    pub stop: watch::Sender<bool>,
    /// Where the gossip drivers run when not on `rt` (dropped after the nodes stopped).
    pub gossip_rt: Option<tokio::runtime::Runtime>,
}

#[allow(dead_code, reason = "not every test file that includes this module runs a cluster")]
impl Cluster {
    pub fn start(n: usize, drop_rate: f64, clock: ClockKind, interval_ms: u64) -> Self {
        Self::start_with(n, drop_rate, clock, interval_ms, false)
    }

    /// `gossip_thread`: the drivers on a one-worker runtime of their own, as `gossipkv node`
    /// and `gossipkv cluster` run them.
    pub fn start_with(
        n: usize,
        drop_rate: f64,
        clock: ClockKind,
        interval_ms: u64,
        gossip_thread: bool,
    ) -> Self {
        let gossip_rt = gossip_thread.then(|| runtime(1));
        let gossip_handle = gossip_rt.as_ref().map(|r| r.handle().clone());
        let rt = runtime(2);
        let (stop, stop_rx) = watch::channel(false);
        let nodes = rt.block_on(async {
            let bound = bind_all(n).await;
            let addrs: Vec<SocketAddr> = bound.iter().map(|b| b.gossip_addr).collect();
            bound
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    let mut spec = spec(i, &addrs, b.resp_addr);
                    spec.gossip.interval_ms = interval_ms;
                    spec.drop_rate = drop_rate;
                    spec.clock = clock;
                    let seed = 42 + i as u64;
                    let faults = Faults::default();
                    start_on(b, spec, seed, stop_rx.clone(), faults, gossip_handle.as_ref())
                })
                .collect()
        });
        Self { rt, nodes, stop, gossip_rt }
    }

    pub fn con(&self, i: usize) -> Connection {
        let client =
            redis::Client::open(format!("redis://{}/", self.nodes[i].resp_addr)).expect("client");
        client.get_connection().expect("connect")
    }

    /// Waits (bounded) until `check` holds at every node.
    pub fn wait_all(&self, what: &str, check: impl Fn(&mut Connection) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut cons: Vec<Connection> = (0..self.nodes.len()).map(|i| self.con(i)).collect();
        loop {
            if cons.iter_mut().all(&check) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop_all(&self.rt, &self.stop, std::mem::take(&mut self.nodes));
        drop(self.gossip_rt.take());
    }
}

/// Tells `nodes` (run on `rt`) to stop and waits for each, at most 5 s per task.
#[allow(dead_code, reason = "not every test file that includes this module runs nodes")]
pub fn stop_all(rt: &tokio::runtime::Runtime, stop: &watch::Sender<bool>, nodes: Vec<RunningNode>) {
    let _ = stop.send(true);
    rt.block_on(async {
        for n in nodes {
            let _ = tokio::time::timeout(Duration::from_secs(5), n.server).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), n.gossip).await;
        }
    });
}
