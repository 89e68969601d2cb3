//! Set-up shared by the integration tests that run real nodes in the test process.

use std::net::SocketAddr;

use gossipkv_core::digest::TreeShape;
use gossipkv_core::gossip::GossipConfig;
use gossipkv_core::{ClockKind, StoreConfig};
use gossipkv_node::{Bound, NodeSpec, bind};
use gossipkv_server::ServerConfig;

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
