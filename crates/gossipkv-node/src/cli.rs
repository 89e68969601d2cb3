//! The `gossipkv node` and `gossipkv cluster` commands: flags, validation, start-up, the
//! table of nodes, and a clean stop on Ctrl-C / SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use gossipkv_core::digest::TreeShape;
use gossipkv_core::gossip::GossipConfig;
use gossipkv_core::{ClockKind, StoreConfig};
use gossipkv_server::ServerConfig;
use tokio::sync::watch;

use crate::{NodeSpec, RunningNode, bind, signal, start};

/// Timestamp source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClockArg {
    /// Hybrid logical clock: 48-bit milliseconds + 16-bit counter.
    Hlc,
    /// Lamport counter.
    Lamport,
}

impl From<ClockArg> for ClockKind {
    fn from(c: ClockArg) -> Self {
        match c {
            ClockArg::Hlc => ClockKind::Hlc,
            ClockArg::Lamport => ClockKind::Lamport,
        }
    }
}

/// Gossip settings shared by `node` and `cluster`.
#[derive(Args, Clone, Debug)]
pub struct GossipFlags {
    /// Peers contacted per gossip round (k).
    #[arg(long, default_value_t = 5)]
    pub fanout: usize,
    /// Milliseconds between gossip rounds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Probability of dropping each gossip datagram, on send and again on receive (fault
    /// injection; the brief's scenario is 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Largest gossip datagram in bytes.
    #[arg(long, default_value_t = 1400)]
    pub mtu: usize,
    /// Timestamp source.
    #[arg(long, value_enum, default_value_t = ClockArg::Hlc)]
    pub clock: ClockArg,
    /// Depth of the digest tree (16^depth leaves); must be equal on every node.
    #[arg(long, default_value_t = 3)]
    pub tree_depth: u32,
    /// Concurrent values kept per key (versions at the winning timestamp).
    #[arg(long, default_value_t = 16)]
    pub max_concurrent: usize,
}

impl GossipFlags {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.drop_rate) {
            return Err(format!("--drop-rate must be in [0, 1), got {}", self.drop_rate));
        }
        if self.fanout == 0 {
            return Err("--fanout must be at least 1".into());
        }
        if self.interval_ms == 0 {
            return Err("--interval-ms must be at least 1".into());
        }
        if !(576..=65_000).contains(&self.mtu) {
            return Err(format!("--mtu must be between 576 and 65000, got {}", self.mtu));
        }
        if !(1..=6).contains(&self.tree_depth) {
            return Err(format!("--tree-depth must be 1..=6, got {}", self.tree_depth));
        }
        Ok(())
    }

    fn gossip(&self) -> GossipConfig {
        GossipConfig {
            fanout: self.fanout,
            interval_ms: self.interval_ms,
            mtu: self.mtu,
            ..GossipConfig::default()
        }
    }

    fn store(&self, shards_log2: u32) -> StoreConfig {
        StoreConfig {
            shards_log2,
            tree: TreeShape::new(self.tree_depth),
            max_concurrent: self.max_concurrent.max(1),
        }
    }
}

/// `gossipkv node`: one node serving RESP and gossiping with its peers.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// Node id, unique in the cluster (the origin of this node's writes).
    #[arg(long, default_value_t = 0)]
    pub id: u32,
    /// Address for Redis-protocol clients.
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub listen: SocketAddr,
    /// Address for gossip (UDP datagrams and the TCP bulk stream share it).
    #[arg(long, default_value = "127.0.0.1:7946")]
    pub gossip: SocketAddr,
    /// Potential peers' gossip addresses, comma-separated (some may be down or never exist).
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<SocketAddr>,
    /// Require clients to AUTH with this password.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// tokio worker threads (1 = a single-threaded runtime, Redis's model).
    #[arg(long, default_value_t = ServerConfig::DEFAULT_WORKER_THREADS)]
    pub threads: usize,
    /// Seed for gossip peer choice and fault injection (default: derived from the id).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub gossip_flags: GossipFlags,
}

/// `gossipkv cluster`: N nodes in one process on 127.0.0.1.
#[derive(Args, Clone, Debug)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Node i serves RESP on 127.0.0.1:(base-port + i).
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// Node i gossips on 127.0.0.1:(gossip-base-port + i) (default: base-port + 10000).
    #[arg(long)]
    pub gossip_base_port: Option<u16>,
    /// How many potential peers each node is told about (random, plus its neighbour, so the
    /// cluster is connected); 0 = all.
    #[arg(long, default_value_t = 0)]
    pub peers_per_node: usize,
    /// tokio worker threads for the whole cluster.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print only the summary line, not the table of nodes.
    #[arg(long)]
    pub quiet: bool,
    /// Seed for peer lists, gossip and fault injection.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub gossip_flags: GossipFlags,
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("gossipkv: {msg}");
    ExitCode::from(2)
}

/// Runs `gossipkv node` until Ctrl-C / SIGTERM.
pub fn node_main(args: NodeArgs) -> ExitCode {
    if let Err(e) = args.gossip_flags.validate() {
        return fail(e);
    }
    let peers: Vec<SocketAddr> = args.peers.iter().copied().filter(|p| *p != args.gossip).collect();
    let mut server = ServerConfig::new(args.listen);
    server.requirepass = args.requirepass.clone();
    server.worker_threads = args.threads;
    let spec = NodeSpec {
        id: args.id,
        peers,
        gossip: args.gossip_flags.gossip(),
        drop_rate: args.gossip_flags.drop_rate,
        clock: args.gossip_flags.clock.into(),
        store: args.gossip_flags.store(6),
        server,
    };
    let rt = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let seed = args.seed.unwrap_or(u64::from(args.id).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    rt.block_on(async move {
        let bound = match bind(args.listen, args.gossip).await {
            Ok(b) => b,
            Err(e) => return fail(format!("cannot bind {} / {}: {e}", args.listen, args.gossip)),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let node = start(bound, spec, seed, stop_rx);
        println!(
            "gossipkv node {} serving RESP on {} and gossiping on {} with {} potential peers",
            node.id,
            node.resp_addr,
            node.gossip_addr,
            args.peers.len()
        );
        signal().await;
        println!("stopping");
        let _ = stop_tx.send(true);
        let _ = node.server.await;
        let _ = node.gossip.await;
        ExitCode::SUCCESS
    })
}

/// Builds each node's potential-peer list: all others, or `per` random ones plus the next
/// node (a ring keeps the cluster connected whatever the random choice).
pub fn peer_lists(addrs: &[SocketAddr], per: usize, seed: u64) -> Vec<Vec<SocketAddr>> {
    let n = addrs.len();
    let mut rng = gossipkv_core::rng::Rng::new(seed);
    let mut scratch = Vec::new();
    (0..n)
        .map(|i| {
            if per == 0 || per + 1 >= n {
                return (0..n).filter(|&j| j != i).map(|j| addrs[j]).collect();
            }
            rng.sample_indices(n, per + 1, &mut scratch);
            let mut list: Vec<usize> = scratch.iter().copied().filter(|&j| j != i).collect();
            list.truncate(per);
            let next = (i + 1) % n;
            if !list.contains(&next) {
                list.push(next);
            }
            list.into_iter().map(|j| addrs[j]).collect()
        })
        .collect()
}

/// Runs `gossipkv cluster` until Ctrl-C / SIGTERM.
pub fn cluster_main(args: ClusterArgs) -> ExitCode {
    if let Err(e) = args.gossip_flags.validate() {
        return fail(e);
    }
    if args.nodes == 0 {
        return fail("--nodes must be at least 1");
    }
    let gossip_base = args.gossip_base_port.unwrap_or(args.base_port.wrapping_add(10_000));
    let last = |base: u16| u32::from(base) + args.nodes as u32 - 1;
    if last(args.base_port) > 65_535 || last(gossip_base) > 65_535 {
        return fail("ports past 65535: lower --base-port / --gossip-base-port or --nodes");
    }
    // 3 sockets per node plus clients: make sure the process may open them
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let rt = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut bound = Vec::with_capacity(args.nodes);
        for i in 0..args.nodes {
            let resp = SocketAddr::new(host, args.base_port + i as u16);
            let gossip = SocketAddr::new(host, gossip_base + i as u16);
            match bind(resp, gossip).await {
                Ok(b) => bound.push(b),
                Err(e) => return fail(format!("node {i}: cannot bind {resp} / {gossip}: {e}")),
            }
        }
        let addrs: Vec<SocketAddr> = bound.iter().map(|b| b.gossip_addr).collect();
        let peers = peer_lists(&addrs, args.peers_per_node, args.seed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let flags = &args.gossip_flags;
        let nodes: Vec<RunningNode> = bound
            .into_iter()
            .zip(peers)
            .enumerate()
            .map(|(i, (b, peers))| {
                let spec = NodeSpec {
                    id: i as u32,
                    peers,
                    gossip: flags.gossip(),
                    drop_rate: flags.drop_rate,
                    clock: flags.clock.into(),
                    // many replicas in one process: fewer shards each
                    store: flags.store(2),
                    server: ServerConfig::new(b.resp_addr),
                };
                start(
                    b,
                    spec,
                    args.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    stop_rx.clone(),
                )
            })
            .collect();
        if !args.quiet {
            println!("{:>6}  {:<21}  {:<21}", "node", "resp (redis-cli -p)", "gossip (udp+tcp)");
            for n in &nodes {
                println!("{:>6}  {:<21}  {:<21}", n.id, n.resp_addr, n.gossip_addr);
            }
        }
        println!(
            "gossipkv cluster: {} nodes up, RESP on 127.0.0.1:{}-{}, fanout {}, interval {} ms, \
             drop rate {}. Ctrl-C stops them all.",
            nodes.len(),
            args.base_port,
            last(args.base_port),
            flags.fanout,
            flags.interval_ms,
            flags.drop_rate
        );
        signal().await;
        println!("stopping {} nodes", nodes.len());
        let _ = stop_tx.send(true);
        for n in nodes {
            let _ = n.server.await;
            let _ = n.gossip.await;
        }
        ExitCode::SUCCESS
    })
}
