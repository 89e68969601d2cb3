//! The `gossipkv node` and `gossipkv cluster` commands: flags, validation, start-up, the
//! table of nodes, and a clean stop on Ctrl-C / SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, ValueEnum};
use gossipkv_core::digest::TreeShape;
use gossipkv_core::gossip::GossipConfig;
use gossipkv_core::gossip::auth::{self, Keyring};
use gossipkv_core::{ClockKind, StoreConfig};
use gossipkv_server::ServerConfig;
use tokio::sync::watch;

use crate::{NodeSpec, RunningNode, bind, signal, start_on};

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
    /// Peers contacted per gossip round (k; docs/operations.md: 3 to 5 up to thousands of
    /// nodes).
    #[arg(long, env = "GOSSIPKV_FANOUT", default_value_t = 5,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub fanout: usize,
    /// Milliseconds between gossip rounds.
    #[arg(long, env = "GOSSIPKV_INTERVAL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,
    /// Probability of dropping each gossip datagram, on send and again on receive (fault
    /// injection, in [0, 1); the brief's scenario is 0.1).
    #[arg(long, env = "GOSSIPKV_DROP_RATE", default_value_t = 0.0, value_parser = probability)]
    pub drop_rate: f64,
    /// Largest gossip datagram in bytes (576 to 65000; keep it under the path MTU).
    #[arg(long, env = "GOSSIPKV_MTU", default_value_t = 1400,
        value_parser = RangedU64ValueParser::<usize>::new().range(576..=65_000))]
    pub mtu: usize,
    /// Timestamp source.
    #[arg(long, env = "GOSSIPKV_CLOCK", value_enum, default_value_t = ClockArg::Hlc)]
    pub clock: ClockArg,
    /// Depth of the digest tree (16^depth leaves, 1 to 6); must be equal on every node.
    #[arg(long, env = "GOSSIPKV_TREE_DEPTH", default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=6))]
    pub tree_depth: u32,
    /// Concurrent values kept per key (versions at the winning timestamp).
    #[arg(long, env = "GOSSIPKV_MAX_CONCURRENT", default_value_t = 16,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub max_concurrent: usize,
    /// Gossip with the fixed peer list only: no member discovery, no failure detection.
    #[arg(long, env = "GOSSIPKV_NO_MEMBERSHIP")]
    pub no_membership: bool,
    /// Tombstones are purged this long after their timestamp (Cassandra's gc_grace); a node
    /// cut off from a majority for over half of it resets its old entries when it comes back.
    /// 0 keeps tombstones forever. HLC only.
    #[arg(long, env = "GOSSIPKV_TOMBSTONE_GRACE_MS", default_value_t = 3_600_000)]
    pub tombstone_grace_ms: u64,
    /// How much lower (in nice steps, 0 to 19; at most nice 19) the gossip thread's CPU
    /// priority is than the process's. Gossip runs on a thread of its own
    /// so its bursts of work (a replica merging thousands of versions, a catch-up chunk)
    /// never hold up client connections; a higher nice also makes it yield the cores to them
    /// when the machine is busy (docs/benchmarks.md). 0 keeps the process's priority.
    #[arg(long, env = "GOSSIPKV_GOSSIP_NICE", default_value_t = DEFAULT_GOSSIP_NICE,
        value_parser = clap::value_parser!(i32).range(0..=19))]
    pub gossip_nice: i32,
    /// Let the memory allocator back the heap with transparent huge pages. Off by default:
    /// with THP a node's RSS moves in 2 MiB steps and pages freed after a catch-up stay
    /// resident (soak, 8.7 MB of data per node: 35-51 MB RSS with THP, about 20 MB without;
    /// docs/reliability.md), and THP page faults raised client p99 (docs/benchmarks.md).
    #[arg(long, env = "GOSSIPKV_THP")]
    pub thp: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthFlags,
}

/// Environment variable read for the cluster key(s) when `--cluster-key` is not given (keeps
/// the secret out of `ps`).
pub const CLUSTER_KEY_ENV: &str = "GOSSIPKV_CLUSTER_KEY";

/// Authenticated gossip, shared by `node` and `cluster` (docs/protocol.md, "Authentication
/// envelope").
#[derive(Args, Clone, Default)]
pub struct AuthFlags {
    /// Cluster name bound into every gossip MAC: gossip from a cluster of another name is
    /// refused. Needs a cluster key [default when a key is given: gossipkv].
    #[arg(long, env = "GOSSIPKV_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Shared cluster key in hex (16 to 64 bytes, e.g. `openssl rand -hex 32`); repeat or
    /// comma-separate to rotate: the first seals, every one opens. Read from
    /// GOSSIPKV_CLUSTER_KEY when absent. Without a key gossip is not authenticated.
    #[arg(long, value_name = "HEX", value_delimiter = ',')]
    pub cluster_key: Vec<String>,
}

impl std::fmt::Debug for AuthFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFlags")
            .field("cluster_name", &self.cluster_name)
            .field("cluster_keys", &self.cluster_key.len())
            .finish()
    }
}

impl AuthFlags {
    /// The keyring these flags describe, with `env` standing for GOSSIPKV_CLUSTER_KEY's value
    /// (used only without `--cluster-key`; empty counts as unset). `None`: no key, gossip in
    /// clear.
    pub fn keyring(&self, env: Option<&str>) -> Result<Option<Keyring>, String> {
        let keys = if self.cluster_key.is_empty() {
            match env.map(str::trim).filter(|s| !s.is_empty()) {
                Some(list) => {
                    auth::parse_keys(list).map_err(|e| format!("{CLUSTER_KEY_ENV}: {e}"))?
                }
                None => Vec::new(),
            }
        } else {
            self.cluster_key
                .iter()
                .map(|k| auth::ClusterKey::from_hex(k))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--cluster-key: {e}"))?
        };
        if keys.is_empty() {
            return match &self.cluster_name {
                Some(_) => Err(format!(
                    "--cluster-name needs a cluster key (--cluster-key or {CLUSTER_KEY_ENV})"
                )),
                None => Ok(None),
            };
        }
        let name = self.cluster_name.as_deref().unwrap_or(auth::DEFAULT_CLUSTER_NAME);
        Keyring::new(name, keys)
            .map(Some)
            .map_err(|e| format!("--cluster-name / --cluster-key: {e}"))
    }

    /// [`Self::keyring`] with GOSSIPKV_CLUSTER_KEY read from the environment.
    fn keyring_from_env(&self) -> Result<Option<Keyring>, String> {
        match std::env::var_os(CLUSTER_KEY_ENV) {
            None => self.keyring(None),
            Some(v) => match v.to_str() {
                Some(v) => self.keyring(Some(v)),
                None if self.cluster_key.is_empty() => {
                    Err(format!("{CLUSTER_KEY_ENV} is not valid UTF-8"))
                }
                None => self.keyring(None),
            },
        }
    }
}

/// One line about gossip authentication for the start-up banner.
fn auth_banner(ring: Option<&Keyring>) -> String {
    match ring {
        None => "gossip NOT authenticated (no --cluster-key)".to_string(),
        Some(r) => format!(
            "gossip authenticated: cluster {:?}, {} key(s), primary key id {:02x}",
            r.cluster_name(),
            r.len(),
            r.key_ids().first().copied().unwrap_or(0)
        ),
    }
}

/// Parses a probability in [0, 1) (`--drop-rate`).
fn probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        Ok(p) => Err(format!("{p} is not in [0, 1)")),
        Err(e) => Err(e.to_string()),
    }
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
            tombstone_grace_ms: self.tombstone_grace_ms,
            ready_timeout_ms: 3 * self.interval_ms,
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

/// Where `node`'s settings come from besides flags and the environment (`crate::config`
/// reads them before clap parses for good; here so that `--help` lists them).
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigFlags {
    /// TOML file of settings: keys are the long flag names (`interval_ms = 500`); flags and
    /// GOSSIPKV_* variables override it (docs/operations.md, "Configuration").
    #[arg(long, env = crate::config::CONFIG_ENV, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Print the settings in force (as TOML, with where each came from) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// `gossipkv node`: one node serving RESP and gossiping with its peers.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigFlags,
    /// Node id, unique in the cluster (the origin of this node's writes).
    #[arg(long, env = "GOSSIPKV_ID", default_value_t = 0)]
    pub id: u32,
    /// Address for Redis-protocol clients.
    #[arg(long, env = "GOSSIPKV_LISTEN", default_value = "127.0.0.1:6379")]
    pub listen: SocketAddr,
    /// Address for gossip (UDP datagrams and the TCP bulk stream share it).
    #[arg(long, env = "GOSSIPKV_GOSSIP", default_value = "127.0.0.1:7946")]
    pub gossip: SocketAddr,
    /// Potential peers' gossip addresses, comma-separated (some may be down or never exist).
    #[arg(long, env = "GOSSIPKV_PEERS", value_delimiter = ',')]
    pub peers: Vec<SocketAddr>,
    /// Serve Prometheus metrics (/metrics), /health and the live view (/) over HTTP on this
    /// address, e.g. 127.0.0.1:9100 (port 0: any free port). Off by default.
    #[arg(long, env = "GOSSIPKV_METRICS", value_name = "HOST:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Require clients to AUTH with this password.
    #[arg(long, env = "GOSSIPKV_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// tokio worker threads for client connections (1 = a single-threaded runtime, Redis's
    /// model); gossip runs on a thread of its own.
    #[arg(long, env = "GOSSIPKV_THREADS", default_value_t = ServerConfig::DEFAULT_WORKER_THREADS,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub threads: usize,
    /// With one thread: microseconds the client event loop busy-waits for more work before
    /// it sleeps, while requests arrive in quick succession (0: never). It saves the client
    /// and the node a wake-up per request under load (docs/benchmarks.md).
    #[arg(long, env = "GOSSIPKV_IDLE_SPIN_US", default_value_t = DEFAULT_IDLE_SPIN_US,
        value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub idle_spin_us: u64,
    /// Seed for gossip peer choice and fault injection (default: derived from the id).
    #[arg(long, env = "GOSSIPKV_SEED")]
    pub seed: Option<u64>,
    /// Accept writes at once. By default a node answers writes with LOADING until its peers
    /// answered (at most 3 intervals): after a crash its clock restarts, and its next writes
    /// must beat the ones it made before.
    #[arg(long, env = "GOSSIPKV_FRESH")]
    pub fresh: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub gossip_flags: GossipFlags,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub chaos: ChaosFlags,
}

/// Test-only fault injection of `gossipkv node`, driven by the chaos harness (`gossipkv
/// chaos`, docs/reliability.md). Hidden from `--help`: not for production use.
#[derive(Args, Clone, Debug, Default)]
pub struct ChaosFlags {
    /// Milliseconds added to this node's clock (negative: behind), for its writes'
    /// timestamps and for gossip.
    #[arg(long, hide = true, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_skew_ms: i64,
    /// Control file re-read every 100 ms: `drop P`, `dup P`, `delay MS`, `block ADDR,...`.
    #[arg(long, hide = true, value_name = "PATH")]
    pub chaos_file: Option<PathBuf>,
}

impl ChaosFlags {
    fn faults(&self) -> gossipkv_net::Faults {
        gossipkv_net::Faults {
            clock_skew_ms: self.clock_skew_ms,
            control_file: self.chaos_file.clone(),
        }
    }
}

/// `gossipkv cluster`: N nodes in one process on 127.0.0.1.
#[derive(Args, Clone, Debug)]
pub struct ClusterArgs {
    /// TOML file of settings: keys are the long flag names (`nodes = 20`); flags and GOSSIPKV_*
    /// variables override it (docs/operations.md, "Configuration"). Its own variable, not
    /// `node`'s GOSSIPKV_CONFIG: a node's file (id, peers, ...) is not a cluster's.
    #[arg(long, env = crate::config::CLUSTER_CONFIG_ENV, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Print the settings in force (as TOML, with where each came from) and exit.
    #[arg(long)]
    pub print_config: bool,
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
    /// tokio worker threads for the client connections of all nodes (1 = a single-threaded
    /// runtime, Redis's model); the nodes' gossip runs on a thread of its own.
    #[arg(long, default_value_t = 1,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub threads: usize,
    /// With one thread: microseconds the client event loop busy-waits for more work before
    /// it sleeps, while requests arrive in quick succession (0: never; as for `node`).
    #[arg(long, default_value_t = DEFAULT_IDLE_SPIN_US,
        value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub idle_spin_us: u64,
    /// Print only the summary line, not the table of nodes.
    #[arg(long)]
    pub quiet: bool,
    /// Node i serves metrics, /health and the live view over HTTP on 127.0.0.1:(P + i).
    /// Off by default.
    #[arg(long, value_name = "P")]
    pub metrics_base_port: Option<u16>,
    /// Seed for peer lists, gossip and fault injection.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub gossip_flags: GossipFlags,
}

/// Default of `--idle-spin-us` ([`ServerConfig::DEFAULT_IDLE_SPIN`]).
pub const DEFAULT_IDLE_SPIN_US: u64 = ServerConfig::DEFAULT_IDLE_SPIN.as_micros() as u64;

/// Default of `--gossip-nice`.
pub const DEFAULT_GOSSIP_NICE: i32 = 10;

/// The runtime every gossip driver of the process runs on: one worker thread of its own
/// (named `gossipkv-gossip`), its priority lowered by `nice` (best effort: a failure is
/// logged and the thread keeps the process's priority). Client connections stay on the
/// runtime of [`runtime`].
fn gossip_runtime(nice: i32) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gossipkv-gossip")
        .on_thread_start(move || {
            if nice != 0 {
                // Linux: `who` 0 with PRIO_PROCESS is the calling thread, not the process.
                // Lowered from the priority the thread started with: a process started
                // with `nice -n 19` keeps its gossip at 19 (setting 10 outright would raise
                // it, which root may do)
                let base = rustix::process::getpriority_process(None).unwrap_or(0);
                let target = base.saturating_add(nice).min(19);
                if let Err(e) = rustix::process::setpriority_process(None, target) {
                    tracing::warn!(nice, error = %e, "cannot lower the gossip thread's priority");
                }
            }
        })
        .enable_all()
        .build()
}

/// The client runtime of `server` and the gossip runtime ([`gossip_runtime`]), or the exit
/// code of a process that cannot start them (the error printed).
fn runtimes(
    server: &ServerConfig,
    gossip_nice: i32,
) -> Result<(tokio::runtime::Runtime, tokio::runtime::Runtime), ExitCode> {
    let rt = server.runtime().map_err(|e| fail(format!("cannot start the runtime: {e}")))?;
    let gossip_rt = gossip_runtime(gossip_nice)
        .map_err(|e| fail(format!("cannot start the gossip runtime: {e}")))?;
    Ok((rt, gossip_rt))
}

/// Unless `thp`, turns transparent huge pages off for this process: the kernel's
/// per-process flag, so the allocator's `madvise(MADV_HUGEPAGE)` has no effect from here on
/// (best effort: a kernel without the flag keeps its default).
fn huge_pages(thp: bool) {
    if !thp && let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "cannot turn transparent huge pages off");
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("gossipkv: {msg}");
    ExitCode::from(2)
}

/// Runs `gossipkv node` until Ctrl-C / SIGTERM.
pub fn node_main(args: NodeArgs) -> ExitCode {
    crate::logging::init("info");
    huge_pages(args.gossip_flags.thp);
    if let Err(e) = args.gossip_flags.validate() {
        return fail(e);
    }
    let keyring = match args.gossip_flags.auth.keyring_from_env() {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let banner = auth_banner(keyring.as_ref());
    let peers: Vec<SocketAddr> = args.peers.iter().copied().filter(|p| *p != args.gossip).collect();
    let mut server = ServerConfig::new(args.listen);
    server.requirepass = args.requirepass.clone();
    server.worker_threads = args.threads;
    server.idle_spin = Duration::from_micros(args.idle_spin_us);
    let spec = NodeSpec {
        id: args.id,
        peers,
        gossip: args.gossip_flags.gossip(),
        drop_rate: args.gossip_flags.drop_rate,
        clock: args.gossip_flags.clock.into(),
        store: args.gossip_flags.store(6),
        server,
        auth: keyring,
        membership: !args.gossip_flags.no_membership,
        gate_writes: !args.fresh,
    };
    let (rt, gossip_rt) = match runtimes(&spec.server, args.gossip_flags.gossip_nice) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let gossip_handle = gossip_rt.handle().clone();
    let seed = args.seed.unwrap_or(u64::from(args.id).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    rt.block_on(async move {
        let bound = match bind(args.listen, args.gossip).await {
            Ok(b) => b,
            Err(e) => return fail(format!("cannot bind {} / {}: {e}", args.listen, args.gossip)),
        };
        let metrics = match args.metrics {
            None => None,
            Some(a) => match crate::http::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => return fail(format!("cannot bind --metrics {a}: {e}")),
            },
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let node =
            start_on(bound, spec, seed, stop_rx, args.chaos.faults(), Some(&gossip_handle));
        println!(
            "gossipkv node {} serving RESP on {} and gossiping on {} with {} potential peers",
            node.id,
            node.resp_addr,
            node.gossip_addr,
            args.peers.len()
        );
        println!("{banner}");
        let http = metrics.and_then(|l| {
            crate::http::serve(l, std::sync::Arc::clone(&node.view), stop_tx.subscribe()).ok()
        });
        if let Some(h) = &http {
            println!("metrics on http://{0}/metrics, health on /health, live view on http://{0}/", h.addr);
        }
        tracing::info!(id = node.id, resp = %node.resp_addr, gossip = %node.gossip_addr, "node started");
        signal().await;
        println!("stopping");
        let _ = stop_tx.send(true);
        let _ = node.server.await;
        let _ = node.gossip.await;
        if let Some(h) = http {
            let _ = h.task.await;
        }
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
    // many nodes in one process: only warnings unless RUST_LOG asks for more
    crate::logging::init("warn");
    if let Err(e) = args.gossip_flags.validate() {
        return fail(e);
    }
    if args.nodes == 0 {
        return fail("--nodes must be at least 1");
    }
    // every node of the cluster gets the same keyring
    let keyring = match args.gossip_flags.auth.keyring_from_env() {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let gossip_base = args.gossip_base_port.unwrap_or(args.base_port.wrapping_add(10_000));
    let last = |base: u16| u32::from(base) + args.nodes as u32 - 1;
    if last(args.base_port) > 65_535 || last(gossip_base) > 65_535 {
        return fail("ports past 65535: lower --base-port / --gossip-base-port or --nodes");
    }
    if args.metrics_base_port.is_some_and(|p| last(p) > 65_535) {
        return fail("ports past 65535: lower --metrics-base-port or --nodes");
    }
    huge_pages(args.gossip_flags.thp);
    // 3 sockets per node plus clients: make sure the process may open them
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let client_runtime = ServerConfig {
        worker_threads: args.threads,
        idle_spin: Duration::from_micros(args.idle_spin_us),
        ..ServerConfig::default()
    };
    let (rt, gossip_rt) = match runtimes(&client_runtime, args.gossip_flags.gossip_nice) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let gossip_handle = gossip_rt.handle().clone();
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
        let mut metrics = Vec::new();
        for i in 0..args.nodes {
            let Some(base) = args.metrics_base_port else { break };
            let addr = SocketAddr::new(host, base + i as u16);
            match crate::http::bind(addr).await {
                Ok(l) => metrics.push(l),
                Err(e) => return fail(format!("node {i}: cannot bind metrics {addr}: {e}")),
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
                    auth: keyring.clone(),
                    membership: !flags.no_membership,
                    // a brand-new cluster: nothing to catch up with
                    gate_writes: false,
                };
                start_on(
                    b,
                    spec,
                    args.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    stop_rx.clone(),
                    gossipkv_net::Faults::default(),
                    Some(&gossip_handle),
                )
            })
            .collect();
        let http: Vec<crate::http::HttpServer> = nodes
            .iter()
            .zip(metrics)
            .filter_map(|(n, l)| {
                crate::http::serve(l, std::sync::Arc::clone(&n.view), stop_tx.subscribe()).ok()
            })
            .collect();
        if !args.quiet {
            let metrics_col = if http.is_empty() { "" } else { "  metrics, live view (http)" };
            println!(
                "{:>6}  {:<21}  {:<21}{metrics_col}",
                "node", "resp (redis-cli -p)", "gossip (udp+tcp)"
            );
            for (i, n) in nodes.iter().enumerate() {
                let url = http.get(i).map(|h| format!("  http://{}/", h.addr)).unwrap_or_default();
                println!("{:>6}  {:<21}  {:<21}{url}", n.id, n.resp_addr, n.gossip_addr);
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
        println!("{}", auth_banner(keyring.as_ref()));
        signal().await;
        println!("stopping {} nodes", nodes.len());
        let _ = stop_tx.send(true);
        for n in nodes {
            let _ = n.server.await;
            let _ = n.gossip.await;
        }
        for h in http {
            let _ = h.task.await;
        }
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod auth_flag_tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        node: NodeArgs,
    }

    const K1: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const K2: &str = "ffeeddccbbaa99887766554433221100";

    fn flags(args: &[&str]) -> AuthFlags {
        let argv = std::iter::once("node").chain(args.iter().copied());
        Cmd::try_parse_from(argv).map(|c| c.node.gossip_flags.auth).unwrap_or_else(|e| {
            panic!("{e}");
        })
    }

    #[test]
    fn keys_repeatable_or_comma_separated_first_is_primary() {
        let k2 = auth::ClusterKey::from_hex(K2).map(|k| k.id()).ok();
        for args in [
            &["--cluster-key", K2, "--cluster-key", K1][..],
            &["--cluster-key", &format!("{K2},{K1}")],
        ] {
            let ring = flags(args).keyring(None).ok().flatten();
            assert_eq!(ring.as_ref().map(|r| r.len()), Some(2));
            assert_eq!(ring.as_ref().and_then(|r| r.key_ids().first().copied()), k2);
            assert_eq!(ring.as_ref().map(|r| r.cluster_name()), Some(auth::DEFAULT_CLUSTER_NAME));
        }
        let ring = flags(&["--cluster-key", K1, "--cluster-name", "prod"]).keyring(None);
        assert_eq!(ring.ok().flatten().map(|r| r.cluster_name().to_string()), Some("prod".into()));
    }

    #[test]
    fn env_is_read_only_without_the_flag() {
        let f = flags(&[]);
        assert!(matches!(f.keyring(None), Ok(None)));
        assert!(matches!(f.keyring(Some("  ")), Ok(None)));
        assert_eq!(f.keyring(Some(&format!("{K1},{K2}"))).ok().flatten().map(|r| r.len()), Some(2));
        let f = flags(&["--cluster-key", K1]);
        assert_eq!(f.keyring(Some(K2)).ok().flatten().map(|r| r.len()), Some(1));
    }

    #[test]
    fn bad_keys_and_a_name_without_a_key_are_errors() {
        assert!(flags(&["--cluster-name", "prod"]).keyring(None).is_err());
        assert!(flags(&["--cluster-key", "abcd"]).keyring(None).is_err());
        assert!(flags(&["--cluster-key", "xyz0"]).keyring(None).is_err());
        assert!(flags(&[]).keyring(Some("nothex")).is_err());
        // Debug never prints keys
        assert!(!format!("{:?}", flags(&["--cluster-key", K1])).contains(K1));
    }
}
