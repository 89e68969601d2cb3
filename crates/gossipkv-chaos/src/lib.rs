//! `gossipkv chaos`: a Jepsen-style harness against real `gossipkv node` processes.
//!
//! It starts N nodes on loopback ([`cluster`]), runs client threads that PUT and DEL through
//! the `redis` crate and record every write that may have taken effect ([`workload`]),
//! injects faults ([`nemesis`]: kill -9 and restart, SIGSTOP/SIGCONT, partitions, gossip
//! loss up to 50%, duplicated and delayed messages, clock skew), heals everything, waits
//! until every node's digest root is the same, reads every key at every node and checks
//! the result against the LWW winner of the acknowledged writes ([`checker`]). With
//! `--sample-every-s` it also follows each node's memory and tombstones (the soak).
//!
//! The partition, loss, duplication and delay faults go through a control file each node
//! polls, and the skew through a hidden flag: test-only facilities of `gossipkv node`
//! (docs/reliability.md).

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use gossipkv_core::lww::Version;
use gossipkv_core::rng::Rng;

use crate::checker::{CheckParams, CheckResult, NodeRead};
use crate::cluster::{Cluster, ClusterSpec};
use crate::history::{ClientStats, KeyId, Op};
use crate::nemesis::{FaultKind, Nemesis, NemesisSpec};
use crate::workload::{WorkloadSpec, run_client, wall_ms};

/// What can stop a chaos run before its verdict.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// A file or process operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    /// A node process could not be started.
    #[error("cannot start node {node}: {source}")]
    Spawn {
        /// Node index.
        node: usize,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A node did not accept connections in time.
    #[error("node {node} did not listen within {secs} s (see its log in the work dir)")]
    NotListening {
        /// Node index.
        node: usize,
        /// Seconds waited.
        secs: u64,
    },
    /// A node exited while starting.
    #[error("node {node} exited while starting: {status} (see its log in the work dir)")]
    NodeExited {
        /// Node index.
        node: usize,
        /// Its exit status.
        status: String,
    },
    /// `kill -s SIG` failed.
    #[error("cannot send SIG{signal} to node {node}")]
    Signal {
        /// Node index.
        node: usize,
        /// Signal name.
        signal: String,
    },
    /// The flags do not make sense.
    #[error("{0}")]
    Config(String),
    /// The final read of a node failed.
    #[error("final read of node {node}: {source}")]
    Read {
        /// Node index.
        node: usize,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
}

/// Timestamp source of the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClockArg {
    /// Hybrid logical clock.
    Hlc,
    /// Lamport counter.
    Lamport,
}

/// `gossipkv chaos`: flags (every one has a default; `--help` lists them).
#[derive(Args, Clone, Debug)]
pub struct ChaosArgs {
    /// Node processes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Seconds of workload under faults (then heal, settle, check).
    #[arg(long, default_value_t = 30)]
    pub duration_s: u64,
    /// Seed of the workload, the nemesis and the skews.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The gossipkv binary to run nodes with [default: this executable].
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Gossip round interval of the nodes, ms.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// Gossip fanout of the nodes.
    #[arg(long, default_value_t = 3)]
    pub fanout: usize,
    /// Node timestamp source.
    #[arg(long, value_enum, default_value_t = ClockArg::Hlc)]
    pub clock: ClockArg,
    /// Tombstone grace period of the nodes, ms (0: never purge).
    #[arg(long, default_value_t = 10_000)]
    pub tombstone_grace_ms: u64,
    /// Client threads.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Hot keys (every client writes them: conflicts).
    #[arg(long, default_value_t = 64)]
    pub keys: u32,
    /// Share of hot-key writes that are DELs.
    #[arg(long, default_value_t = 0.2)]
    pub del_ratio: f64,
    /// Share of operations on churn keys (created, then deleted a few operations later).
    #[arg(long, default_value_t = 0.1)]
    pub churn: f64,
    /// Bytes per value.
    #[arg(long, default_value_t = 24)]
    pub value_size: usize,
    /// Operations per second over all clients (0: as fast as the nodes answer).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Client request timeout, ms (a write without an answer by then is indeterminate).
    #[arg(long, default_value_t = 1_000)]
    pub op_timeout_ms: u64,
    /// Fault kinds, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<FaultKind>,
    /// Mean milliseconds between fault starts.
    #[arg(long, default_value_t = 1_000)]
    pub fault_every_ms: u64,
    /// Most nodes down (killed or paused) at once [default: a third, at least 1].
    #[arg(long)]
    pub max_down: Option<usize>,
    /// Nodes 0..N are never killed.
    #[arg(long, default_value_t = 0)]
    pub never_kill: usize,
    /// Highest gossip drop rate a `drop` fault sets.
    #[arg(long, default_value_t = 0.5)]
    pub max_drop: f64,
    /// Each node's clock is off by a uniform amount up to this, ms, either way.
    #[arg(long, default_value_t = 1_000)]
    pub max_skew_ms: u64,
    /// A loss is blamed on a crash (no durability) when the acknowledging node was killed
    /// less than this much connected time after the acknowledgement [default: 20 intervals].
    #[arg(long)]
    pub crash_window_ms: Option<u64>,
    /// Longest wait for convergence after healing, s.
    #[arg(long, default_value_t = 120)]
    pub settle_timeout_s: u64,
    /// Nodes listen on 127.A.B.(i+1) [default: derived from the process id].
    #[arg(long, value_name = "A.B")]
    pub ip_prefix: Option<String>,
    /// RESP port of every node.
    #[arg(long, default_value_t = 21_379)]
    pub resp_port: u16,
    /// Gossip port of every node.
    #[arg(long, default_value_t = 21_946)]
    pub gossip_port: u16,
    /// Logs and control files [default: a fresh dir under the temp dir, removed on success].
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Authenticate gossip with this key (hex).
    #[arg(long, value_name = "HEX")]
    pub cluster_key: Option<String>,
    /// Soak: sample every node's RSS and tombstones every N seconds (0: off).
    #[arg(long, default_value_t = 0)]
    pub sample_every_s: u64,
    /// Soak: RSS baseline is taken this many seconds into the run.
    #[arg(long, default_value_t = 300)]
    pub warmup_s: u64,
    /// Soak: largest allowed relative change of a node's RSS from its baseline.
    #[arg(long, default_value_t = 0.10)]
    pub rss_tolerance: f64,
    /// Soak: the baseline is the median RSS over this many seconds after warm-up, the end
    /// level the median over the last this many seconds (a bulk catch-up or a burst of
    /// datagrams lifts RSS by 1-3 MB for a minute or so: a spike is not growth).
    #[arg(long, default_value_t = 300)]
    pub rss_window_s: u64,
    /// Keys written once before the faults start (pipelined, spread over the nodes) and
    /// checked at the end like every other write: a resident data set for the soak.
    #[arg(long, default_value_t = 0)]
    pub preload: u32,
    /// Print less.
    #[arg(long)]
    pub quiet: bool,
}

impl ChaosArgs {
    /// The defaults, as `gossipkv chaos` with no flag.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            args: ChaosArgs,
        }
        <Cmd as clap::Parser>::try_parse_from(["chaos"]).map(|c| c.args).unwrap_or_else(|e| {
            // the defaults always parse: a failure is a bug in the flag definitions
            panic!("chaos defaults: {e}")
        })
    }

    fn kinds(&self) -> Vec<FaultKind> {
        if self.faults.is_empty() { FaultKind::ALL.to_vec() } else { self.faults.clone() }
    }

    fn validate(&self) -> Result<(), ChaosError> {
        let bad = |m: String| Err(ChaosError::Config(m));
        if !(1..=250).contains(&self.nodes) {
            return bad(format!("--nodes must be 1..=250, got {}", self.nodes));
        }
        if self.clients == 0 || self.clients > 1000 {
            return bad(format!("--clients must be 1..=1000, got {}", self.clients));
        }
        if !(0.0..=0.99).contains(&self.max_drop) {
            return bad(format!("--max-drop must be in [0, 0.99], got {}", self.max_drop));
        }
        if !(0.0..=1.0).contains(&self.del_ratio) || !(0.0..=1.0).contains(&self.churn) {
            return bad("--del-ratio and --churn must be in [0, 1]".into());
        }
        if self.value_size < 12 {
            return bad("--value-size must be at least 12 (values name their write)".into());
        }
        if self.interval_ms == 0 || self.fanout == 0 || self.fault_every_ms == 0 {
            return bad("--interval-ms, --fanout and --fault-every-ms must be positive".into());
        }
        Ok(())
    }
}

/// One soak sample: per node, RSS (KiB) and tombstones (`None`: not readable then).
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the workload started.
    pub t_s: f64,
    /// Per node RSS in KiB.
    pub rss_kib: Vec<Option<u64>>,
    /// Per node tombstones (INFO gossip).
    pub tombstones: Vec<Option<u64>>,
    /// Per node live keys (INFO gossip).
    pub keys: Vec<Option<u64>>,
    /// Per node store memory estimate in KiB (INFO memory `used_memory_dataset`): what the
    /// data itself takes, so that a rise in RSS can be told apart from growth of the data.
    pub store_kib: Vec<Option<u64>>,
}

/// Memory of one node over a soak.
#[derive(Clone, Debug, PartialEq)]
pub struct RssCheck {
    /// Node index.
    pub node: usize,
    /// RSS after warm-up (median over the first window), KiB.
    pub baseline_kib: u64,
    /// RSS at the end (median over the last window), KiB.
    pub final_kib: u64,
    /// Highest RSS after warm-up, KiB.
    pub max_kib: u64,
    /// Tombstones after warm-up (median over the first window).
    pub tombstones_baseline: u64,
    /// Most tombstones seen after warm-up.
    pub tombstones_max: u64,
    /// Tombstones at the end.
    pub tombstones_final: u64,
    /// Store memory estimate after warm-up (median over the first window), KiB.
    pub store_baseline_kib: u64,
    /// Store memory estimate at the end (median over the last window), KiB.
    pub store_final_kib: u64,
}

impl RssCheck {
    /// `final / baseline − 1`.
    pub fn change(&self) -> f64 {
        self.final_kib as f64 / self.baseline_kib.max(1) as f64 - 1.0
    }
}

/// Everything a run measured, and its verdict ([`Report::passed`]).
#[derive(Clone, Debug)]
pub struct Report {
    /// The flags of the run.
    pub args: ChaosArgs,
    /// Faults injected, by kind (`skew`: nodes with a skewed clock).
    pub faults: BTreeMap<FaultKind, u64>,
    /// Restarts of killed nodes.
    pub restarts: u64,
    /// Messages affected per counter (`chaos_blocked`, ...), summed over nodes since each
    /// node's last start.
    pub messages: BTreeMap<String, u64>,
    /// What the clients saw.
    pub clients: ClientStats,
    /// Node processes that exited on their own.
    pub unexpected_exits: Vec<String>,
    /// Seconds from healing until every node had the same digest root (`None`: never
    /// within the settle timeout).
    pub converge_s: Option<f64>,
    /// What the check found.
    pub check: CheckResult,
    /// Keys per node at the end (DBSIZE).
    pub dbsize: Vec<u64>,
    /// Soak samples.
    pub samples: Vec<Sample>,
    /// Soak memory per never-restarted node (empty without sampling).
    pub rss: Vec<RssCheck>,
    /// Wall seconds of the whole run.
    pub wall_s: f64,
    /// Where the logs, the nemesis's log and the history were kept (after a failure).
    pub kept_workdir: Option<PathBuf>,
}

impl Report {
    /// Whether the soak's memory check holds (true when there was no soak).
    pub fn rss_ok(&self) -> bool {
        self.rss.iter().all(|r| r.change().abs() <= self.args.rss_tolerance)
    }

    /// No lost, stale or resurrected write, converged, no node died on its own, memory flat.
    pub fn passed(&self) -> bool {
        self.check.valid()
            && self.converge_s.is_some()
            && self.unexpected_exits.is_empty()
            && self.rss_ok()
            && (self.args.sample_every_s == 0 || !self.rss.is_empty())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
        writeln!(
            f,
            "gossipkv chaos: {} nodes, {} s of faults, seed {}, gossip every {} ms (fanout {}), \
             {:?} clock, {}",
            a.nodes,
            a.duration_s,
            a.seed,
            a.interval_ms,
            a.fanout,
            a.clock,
            match (a.clock, a.tombstone_grace_ms) {
                (ClockArg::Hlc, g) if g > 0 => format!("tombstone grace {g} ms"),
                _ => "tombstones never purged".to_string(),
            }
        )?;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| match k {
                FaultKind::Skew => format!("skew {n} nodes (up to ±{} ms)", a.max_skew_ms),
                FaultKind::Kill => format!("kill {n} (restarts {})", self.restarts),
                k => format!("{k} {n}"),
            })
            .collect();
        let total: u64 =
            self.faults.iter().filter(|(k, _)| **k != FaultKind::Skew).map(|(_, n)| n).sum();
        writeln!(f, "faults injected: {total} ({})", faults.join(", "))?;
        let msgs: Vec<String> = self.messages.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            f,
            "  gossip messages affected (since each node's last start): {}",
            msgs.join(", ")
        )?;
        let c = &self.clients;
        writeln!(
            f,
            "workload: {} clients, {} hot keys, DEL ratio {}, churn {}: {} attempts",
            a.clients, a.keys, a.del_ratio, a.churn, c.attempts
        )?;
        writeln!(
            f,
            "  acknowledged {} (PUT {}, DEL {}); not applied: LOADING {}, unreachable {}, \
             errors {}; indeterminate {}; gave up {}",
            c.acked_puts + c.acked_dels,
            c.acked_puts,
            c.acked_dels,
            c.loading,
            c.refused,
            c.errors,
            c.indeterminate,
            c.gave_up
        )?;
        match self.converge_s {
            Some(s) => writeln!(f, "converged {s:.2} s after healing (every digest root equal)")?,
            None => writeln!(f, "NOT converged {} s after healing", a.settle_timeout_s)?,
        }
        let k = &self.check;
        writeln!(
            f,
            "checked {} keys at {} nodes: {} acknowledged PUTs, {} acknowledged DELs",
            k.keys, a.nodes, k.acked_puts, k.acked_dels
        )?;
        writeln!(
            f,
            "  lost {} (in {} keys), stale {}, resurrected {}, unexplained {}, missing concurrent \
             values {}, GET mismatches {}",
            k.lost,
            k.lost_keys,
            k.stale,
            k.resurrected,
            k.unexplained,
            k.missing_concurrent,
            k.get_mismatch
        )?;
        writeln!(
            f,
            "  lost with a node killed, or cut off past the purge horizon, soon after \
             acknowledging (expected): PUT {}, DEL {} (at most {} ms of connected time in \
             between); indeterminate writes that won: {}",
            k.lost_with_crash, k.deletes_lost_with_crash, k.max_crash_gap_ms, k.indeterminate_won
        )?;
        let (lo, hi) = (self.dbsize.iter().min(), self.dbsize.iter().max());
        writeln!(f, "  keys per node at the end: {}..{}", lo.unwrap_or(&0), hi.unwrap_or(&0))?;
        for e in &k.examples {
            writeln!(f, "  ! {e}")?;
        }
        for e in &self.unexpected_exits {
            writeln!(f, "  ! node exited on its own: {e}")?;
        }
        if a.sample_every_s > 0 {
            writeln!(
                f,
                "soak: {} samples every {} s; RSS medians over the {} s after warm-up ({} s) and \
                 the last {} s; tolerance {:.0}%",
                self.samples.len(),
                a.sample_every_s,
                a.rss_window_s,
                a.warmup_s,
                a.rss_window_s,
                a.rss_tolerance * 100.0
            )?;
            if self.rss.is_empty() {
                writeln!(
                    f,
                    "  ! not enough samples after warm-up for a memory verdict (two windows)"
                )?;
            }
            for r in &self.rss {
                writeln!(
                    f,
                    "  node {:>2}: RSS {} -> {} KiB ({:+.1}%, max {}), store {} -> {} KiB, \
                     tombstones {} -> {} (max {})",
                    r.node,
                    r.baseline_kib,
                    r.final_kib,
                    r.change() * 100.0,
                    r.max_kib,
                    r.store_baseline_kib,
                    r.store_final_kib,
                    r.tombstones_baseline,
                    r.tombstones_final,
                    r.tombstones_max
                )?;
            }
        }
        writeln!(f, "wall time {:.1} s", self.wall_s)?;
        if let Some(dir) = &self.kept_workdir {
            writeln!(f, "node logs, nemesis.log and history.tsv kept in {}", dir.display())?;
        }
        if self.passed() {
            write!(f, "verdict: PASS (no acknowledged write lost, no stale or resurrected key)")
        } else {
            write!(f, "verdict: FAIL")
        }
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn rss_checks(samples: &[Sample], warmup_s: u64, window_s: u64, nodes: &[usize]) -> Vec<RssCheck> {
    let post: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= warmup_s as f64).collect();
    let Some(last_t) = post.last().map(|s| s.t_s) else { return Vec::new() };
    let window = window_s as f64;
    let first: Vec<&Sample> =
        post.iter().copied().filter(|s| s.t_s < warmup_s as f64 + window).collect();
    let last: Vec<&Sample> = post.iter().copied().filter(|s| s.t_s > last_t - window).collect();
    // the two windows must not overlap: the run is too short for a verdict otherwise
    if first.len() < 3 || last.len() < 3 || last_t - window < warmup_s as f64 + window {
        return Vec::new();
    }
    let series = |set: &[&Sample], i: usize, f: fn(&Sample) -> &Vec<Option<u64>>| -> Vec<u64> {
        set.iter().filter_map(|s| f(s).get(i).copied().flatten()).collect()
    };
    nodes
        .iter()
        .filter_map(|&i| {
            let (b, e) = (series(&first, i, |s| &s.rss_kib), series(&last, i, |s| &s.rss_kib));
            let all = series(&post, i, |s| &s.rss_kib);
            let tb = series(&first, i, |s| &s.tombstones);
            let tall = series(&post, i, |s| &s.tombstones);
            let (sb, se) =
                (series(&first, i, |s| &s.store_kib), series(&last, i, |s| &s.store_kib));
            if b.len() < 3 || e.len() < 3 || tb.is_empty() {
                return None;
            }
            Some(RssCheck {
                node: i,
                baseline_kib: median(b),
                final_kib: median(e),
                max_kib: all.iter().copied().max().unwrap_or(0),
                tombstones_baseline: median(tb),
                tombstones_max: tall.iter().copied().max().unwrap_or(0),
                tombstones_final: tall.last().copied().unwrap_or(0),
                store_baseline_kib: median(sb),
                store_final_kib: median(se),
            })
        })
        .collect()
}

fn num(info: &HashMap<String, String>, k: &str) -> Option<u64> {
    info.get(k).and_then(|v| v.parse().ok())
}

/// Polls every node until all report the same digest root twice in a row and none is
/// loading; returns the seconds from `since` to the first poll of that streak.
fn wait_converged(c: &Cluster, since: Instant, timeout: Duration) -> Option<f64> {
    let deadline = since + timeout;
    let mut streak: Option<Instant> = None;
    let mut last_root = String::new();
    while Instant::now() < deadline {
        let polled = Instant::now();
        let roots: Option<Vec<String>> = (0..c.len())
            .map(|i| {
                let info = c.info(i, Duration::from_secs(2)).ok()?;
                (num(&info, "loading") == Some(0)).then(|| info.get("digest_root").cloned())?
            })
            .collect();
        match roots {
            Some(r) if r.windows(2).all(|w| w[0] == w[1]) => {
                let root = r.first().cloned().unwrap_or_default();
                match streak {
                    Some(t) if root == last_root => return Some((t - since).as_secs_f64()),
                    _ => streak = Some(polled),
                }
                last_root = root;
            }
            _ => streak = None,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn parse_versions(v: redis::Value) -> Vec<Version> {
    let redis::Value::Array(items) = v else { return Vec::new() };
    items
        .into_iter()
        .filter_map(|item| {
            let redis::Value::Array(f) = item else { return None };
            let mut f = f.into_iter();
            let (val, ts, origin) = (f.next()?, f.next()?, f.next()?);
            let (redis::Value::Int(ts), redis::Value::Int(origin)) = (ts, origin) else {
                return None;
            };
            let (ts, origin) = (ts as u64, origin as u32);
            match val {
                redis::Value::BulkString(b) => Some(Version::put(ts, origin, b)),
                redis::Value::Nil => Some(Version::tombstone(ts, origin)),
                _ => None,
            }
        })
        .collect()
}

/// Reads `VERSIONS` and `GET` of every key at node `i` (pipelined).
fn final_read(
    c: &Cluster,
    i: usize,
    keys: &[KeyId],
) -> Result<(HashMap<KeyId, NodeRead>, u64), ChaosError> {
    let err = |source| ChaosError::Read { node: i, source };
    let mut conn = c.connect(i, Duration::from_secs(10)).map_err(err)?;
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(256) {
        let mut pipe = redis::pipe();
        for k in chunk {
            let name = k.name();
            pipe.cmd("VERSIONS").arg(&name).cmd("GET").arg(&name);
        }
        let vals: Vec<redis::Value> = pipe.query(&mut conn).map_err(err)?;
        let mut it = vals.into_iter();
        for k in chunk {
            let versions = it.next().map(parse_versions).unwrap_or_default();
            let get = match it.next() {
                Some(redis::Value::BulkString(b)) => Some(b),
                _ => None,
            };
            out.insert(*k, NodeRead { versions, get });
        }
    }
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut conn).map_err(err)?;
    Ok((out, dbsize))
}

/// Runs one chaos test and returns its report (whatever the verdict); `Err` only when the
/// harness itself could not run.
pub fn run(args: &ChaosArgs) -> Result<Report, ChaosError> {
    args.validate()?;
    let started = Instant::now();
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| ChaosError::Io("current_exe".into(), e))?,
    };
    let pid = std::process::id();
    let base_ip = match &args.ip_prefix {
        Some(p) => {
            let parts: Vec<u8> = p.split('.').filter_map(|x| x.parse().ok()).collect();
            match parts[..] {
                [a, b] => [127, a, b],
                _ => return Err(ChaosError::Config(format!("--ip-prefix wants A.B, got {p}"))),
            }
        }
        None => [127, 100 + (pid % 150) as u8, (pid / 150 % 250) as u8 + 1],
    };
    let own_workdir = args.workdir.is_none();
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("gossipkv-chaos-{pid}")));
    let kinds = args.kinds();
    let mut rng = Rng::new(args.seed ^ 0x5ce3);
    let skews: Vec<i64> = (0..args.nodes)
        .map(|_| {
            if kinds.contains(&FaultKind::Skew) && args.max_skew_ms > 0 {
                rng.below(2 * args.max_skew_ms + 1) as i64 - args.max_skew_ms as i64
            } else {
                0
            }
        })
        .collect();
    let clock = match args.clock {
        ClockArg::Hlc => "hlc",
        ClockArg::Lamport => "lamport",
    };
    let node_args: Vec<String> = [
        "--interval-ms",
        &args.interval_ms.to_string(),
        "--fanout",
        &args.fanout.to_string(),
        "--tombstone-grace-ms",
        &args.tombstone_grace_ms.to_string(),
        "--clock",
        clock,
        "--threads",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let spec = ClusterSpec {
        bin,
        nodes: args.nodes,
        base_ip,
        resp_port: args.resp_port,
        gossip_port: args.gossip_port,
        workdir: workdir.clone(),
        skews_ms: skews.clone(),
        node_args,
        cluster_key: args.cluster_key.clone(),
    };
    let say = |s: String| {
        if !args.quiet {
            eprintln!("{s}");
        }
    };
    say(format!(
        "chaos: starting {} nodes on {}.{}.{}.1-{} (logs in {})",
        args.nodes,
        base_ip[0],
        base_ip[1],
        base_ip[2],
        args.nodes,
        workdir.display()
    ));
    let mut cluster = Cluster::start(spec)?;
    let interval = args.interval_ms;
    let nem_spec = NemesisSpec {
        kinds: kinds.clone(),
        every_ms: args.fault_every_ms,
        max_down: args.max_down.unwrap_or((args.nodes / 3).max(1)),
        never_kill: args.never_kill,
        max_drop: args.max_drop,
        grace_ms: if args.clock == ClockArg::Hlc { args.tombstone_grace_ms } else { 0 },
        seed: args.seed,
    };
    let t0 = wall_ms();
    let mut nemesis = Nemesis::new(nem_spec, args.nodes, t0);
    nemesis.note_skew(skews.iter().filter(|s| **s != 0).count() as u64);

    // the workload
    let wl = WorkloadSpec {
        clients: args.clients,
        hot_keys: args.keys,
        del_ratio: args.del_ratio,
        churn: args.churn,
        value_size: args.value_size,
        rate: args.rate,
        timeout: Duration::from_millis(args.op_timeout_ms),
        seed: args.seed,
    };
    let addrs: Vec<_> = (0..args.nodes).map(|i| cluster.resp_addr(i)).collect();
    let mut ops: Vec<Op> = Vec::new();
    if args.preload > 0 {
        say(format!("chaos: preloading {} keys", args.preload));
        preload(&cluster, args.preload, args.value_size, &mut ops)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_s);
    // clients stop by the flag; the deadline is a backstop
    let client_deadline = deadline + Duration::from_secs(60);
    let handles: Vec<_> = (0..args.clients)
        .map(|id| {
            let (wl, addrs, stop) = (wl.clone(), addrs.clone(), Arc::clone(&stop));
            std::thread::spawn(move || run_client(id as u16, &wl, &addrs, &stop, client_deadline))
        })
        .collect();

    let mut unexpected = Vec::new();
    let mut samples = Vec::new();
    let mut next_sample = start;
    let mut next_progress = start + Duration::from_secs(10);
    let sample_every = Duration::from_secs(args.sample_every_s);
    let mut outcome: Result<(), ChaosError> = Ok(());
    while Instant::now() < deadline {
        let now = wall_ms();
        if let Err(e) = nemesis.step(&mut cluster, now) {
            outcome = Err(e);
            break;
        }
        for (i, status) in cluster.reap_unexpected() {
            unexpected
                .push(format!("node {i} at {:.1} s: {status}", start.elapsed().as_secs_f64()));
            nemesis.note_exit(i, now);
        }
        if args.sample_every_s > 0 && Instant::now() >= next_sample {
            next_sample += sample_every;
            let s = sample(&cluster, start);
            say(format!(
                "chaos: sample at {:.0} s: RSS KiB {:?} store KiB {:?} tombstones {:?}",
                s.t_s,
                s.rss_kib.iter().map(|x| x.unwrap_or(0)).collect::<Vec<_>>(),
                s.store_kib.iter().map(|x| x.unwrap_or(0)).collect::<Vec<_>>(),
                s.tombstones.iter().map(|x| x.unwrap_or(0)).collect::<Vec<_>>()
            ));
            samples.push(s);
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(10);
            let down =
                (0..cluster.len()).filter(|&i| !cluster.is_running(i) || cluster.is_paused(i));
            say(format!(
                "chaos: {:.0} s, faults so far {:?}, down now {:?}",
                start.elapsed().as_secs_f64(),
                nemesis.counts(),
                down.collect::<Vec<_>>()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let healed = nemesis.heal(&mut cluster, wall_ms());
    let mut stats = ClientStats::default();
    for h in handles {
        match h.join() {
            Ok(r) => {
                ops.extend(r.ops);
                stats.add(&r.stats);
                for e in r.errors {
                    say(format!("chaos: client error reply: {e}"));
                }
            }
            Err(_) => outcome = Err(ChaosError::Config("a client thread panicked".into())),
        }
    }
    outcome?;
    healed?;
    let heal_done = Instant::now();
    say(format!(
        "chaos: healed after {:.1} s; waiting for convergence",
        start.elapsed().as_secs_f64()
    ));
    let converge_s =
        wait_converged(&cluster, heal_done, Duration::from_secs(args.settle_timeout_s));
    for (i, status) in cluster.reap_unexpected() {
        unexpected.push(format!("node {i} after healing: {status}"));
    }

    // the final read and the check
    let mut keys: Vec<KeyId> = ops.iter().map(|o| o.key).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut finals = Vec::with_capacity(args.nodes);
    let mut dbsize = Vec::with_capacity(args.nodes);
    let mut messages: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..args.nodes {
        let (reads, n) = final_read(&cluster, i, &keys)?;
        finals.push(reads);
        dbsize.push(n);
        if let Ok(info) = cluster.info(i, Duration::from_secs(5)) {
            for k in [
                "chaos_blocked",
                "chaos_duplicated",
                "chaos_delayed",
                "dropped_injected_send",
                "dropped_injected_recv",
                "dropped_injected_stream",
                "horizon_resets",
                "tombstones_purged",
                "ghost_refused",
                "bulk_catchups",
            ] {
                *messages.entry(k.to_string()).or_default() += num(&info, k).unwrap_or(0);
            }
        }
    }
    let params = CheckParams {
        skews_ms: skews,
        hlc: args.clock == ClockArg::Hlc,
        crash_window_ms: args.crash_window_ms.unwrap_or(20 * interval),
        max_concurrent: 16,
        margin_ms: 50,
        max_examples: 20,
        value_size: args.value_size,
        reset_after_ms: (args.clock == ClockArg::Hlc && args.tombstone_grace_ms > 0)
            .then(|| args.tombstone_grace_ms.saturating_sub(2 * args.max_skew_ms + 50)),
    };
    let check = checker::check(&ops, &finals, nemesis.timeline(), &params);
    let never_restarted: Vec<usize> = (0..args.nodes).filter(|&i| cluster.starts(i) == 1).collect();
    let rss = if args.sample_every_s > 0 {
        rss_checks(&samples, args.warmup_s, args.rss_window_s, &never_restarted)
    } else {
        Vec::new()
    };
    let report = Report {
        args: args.clone(),
        faults: nemesis.counts().clone(),
        restarts: nemesis.restarts(),
        messages,
        clients: stats,
        unexpected_exits: unexpected,
        converge_s,
        check,
        dbsize,
        samples,
        rss,
        wall_s: started.elapsed().as_secs_f64(),
        kept_workdir: None,
    };
    drop(cluster);
    let mut report = report;
    if own_workdir && report.passed() {
        let _ = std::fs::remove_dir_all(&workdir);
    } else {
        write_evidence(&workdir, t0, nemesis.log(), &ops)?;
        report.kept_workdir = Some(workdir);
    }
    Ok(report)
}

/// Writes what happened next to the node logs: `nemesis.log` (faults, ms since start) and
/// `history.tsv` (every write that may have taken effect).
fn write_evidence(
    dir: &std::path::Path,
    t0: u64,
    log: &[(u64, String)],
    ops: &[Op],
) -> Result<(), ChaosError> {
    use std::io::Write as _;
    let io = |what: &str, e| ChaosError::Io(format!("write {}", dir.join(what).display()), e);
    let mut f = io::BufWriter::new(
        std::fs::File::create(dir.join("nemesis.log")).map_err(|e| io("nemesis.log", e))?,
    );
    for (t, e) in log {
        writeln!(f, "{:>8} {e}", t.saturating_sub(t0)).map_err(|e| io("nemesis.log", e))?;
    }
    f.flush().map_err(|e| io("nemesis.log", e))?;
    let mut f = io::BufWriter::new(
        std::fs::File::create(dir.join("history.tsv")).map_err(|e| io("history.tsv", e))?,
    );
    writeln!(f, "key\top\tvalue\tnode\tinvoked_ms\tdone_ms\toutcome\tts")
        .map_err(|e| io("history.tsv", e))?;
    for o in ops {
        let (op, value) = match o.put {
            Some(v) => ("PUT", format!("{:04x}{:08x}", v.client, v.seq)),
            None => ("DEL", "-".to_string()),
        };
        let (outcome, ts) = match o.outcome {
            history::Outcome::Acked { ts } => ("ok", ts.map_or("-".to_string(), |t| t.to_string())),
            history::Outcome::Indeterminate => ("info", "-".to_string()),
        };
        writeln!(
            f,
            "{}\t{op}\t{value}\t{}\t{}\t{}\t{outcome}\t{ts}",
            o.key,
            o.node,
            o.invoked_ms.saturating_sub(t0),
            o.done_ms.saturating_sub(t0)
        )
        .map_err(|e| io("history.tsv", e))?;
    }
    f.flush().map_err(|e| io("history.tsv", e))
}

/// Writes `n` keys `c65535-i` once, in pipelined batches spread over the nodes, and records
/// them as acknowledged PUTs.
fn preload(c: &Cluster, n: u32, value_size: usize, ops: &mut Vec<Op>) -> Result<(), ChaosError> {
    const BATCH: u32 = 1_000;
    let mut conns = Vec::with_capacity(c.len());
    for i in 0..c.len() {
        conns.push(
            c.connect(i, Duration::from_secs(30))
                .map_err(|source| ChaosError::Read { node: i, source })?,
        );
    }
    for (b, first) in (0..n).step_by(BATCH as usize).enumerate() {
        let node = b % c.len();
        let ids: Vec<u32> = (first..n.min(first + BATCH)).collect();
        let mut pipe = redis::pipe();
        for &k in &ids {
            let v = history::ValueId { client: u16::MAX, seq: k };
            pipe.cmd("PUT").arg(history::KeyId::churn(u16::MAX, k).name()).arg(v.bytes(value_size));
        }
        let invoked_ms = wall_ms();
        let ts: Vec<u64> =
            pipe.query(&mut conns[node]).map_err(|source| ChaosError::Read { node, source })?;
        let done_ms = wall_ms();
        for (&k, ts) in ids.iter().zip(ts) {
            ops.push(Op {
                key: history::KeyId::churn(u16::MAX, k),
                put: Some(history::ValueId { client: u16::MAX, seq: k }),
                node: node as u16,
                invoked_ms,
                done_ms,
                outcome: history::Outcome::Acked { ts: Some(ts) },
            });
        }
    }
    Ok(())
}

fn sample(c: &Cluster, start: Instant) -> Sample {
    let n = c.len();
    let mut s = Sample {
        t_s: start.elapsed().as_secs_f64(),
        rss_kib: Vec::with_capacity(n),
        tombstones: Vec::with_capacity(n),
        keys: Vec::with_capacity(n),
        store_kib: Vec::with_capacity(n),
    };
    for i in 0..n {
        s.rss_kib.push(c.rss_kib(i));
        let info = (c.is_running(i) && !c.is_paused(i))
            .then(|| c.info_sections(i, &["gossip", "memory"], Duration::from_millis(500)).ok())
            .flatten();
        s.tombstones.push(info.as_ref().and_then(|m| num(m, "tombstones")));
        s.keys.push(info.as_ref().and_then(|m| num(m, "keys")));
        s.store_kib
            .push(info.as_ref().and_then(|m| num(m, "used_memory_dataset")).map(|b| b / 1024));
    }
    s
}

/// `gossipkv chaos`: runs, prints the report, exits 0 on PASS, 1 on FAIL, 2 when the
/// harness could not run.
pub fn main(args: ChaosArgs) -> ExitCode {
    match run(&args) {
        Ok(report) => {
            println!("{report}");
            if let Some(dir) = &report.kept_workdir {
                let _ = std::fs::write(dir.join("report.txt"), format!("{report}\n"));
            }
            if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("gossipkv chaos: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss: impl Fn(u64) -> u64) -> Vec<Sample> {
        (0..=120)
            .map(|k| Sample {
                t_s: (k * 15) as f64,
                rss_kib: vec![Some(rss(k))],
                tombstones: vec![Some(100)],
                keys: vec![Some(1_000)],
                store_kib: vec![Some(9_000)],
            })
            .collect()
    }

    #[test]
    fn spikes_are_not_growth_but_a_steady_climb_is() {
        // 30 minutes every 15 s, baseline after 5 minutes, 5-minute windows
        let spiky = samples(|k| if k % 7 == 0 { 16_000 } else { 13_000 });
        let r = rss_checks(&spiky, 300, 300, &[0]);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].baseline_kib, r[0].final_kib, r[0].max_kib), (13_000, 13_000, 16_000));
        let leaking = samples(|k| 13_000 + 30 * k);
        let r = rss_checks(&leaking, 300, 300, &[0]);
        assert!(r[0].change() > 0.15, "{:?}", r[0]);
        // too short for two windows after warm-up: no verdict
        assert!(rss_checks(&spiky[..40], 300, 300, &[0]).is_empty());
    }

    #[test]
    fn the_defaults_parse_and_validate() {
        let a = ChaosArgs::defaults();
        assert!(a.validate().is_ok());
        assert_eq!((a.nodes, a.duration_s, a.kinds().len()), (5, 30, FaultKind::ALL.len()));
        let bad = ChaosArgs { value_size: 4, ..a.clone() };
        assert!(matches!(bad.validate(), Err(ChaosError::Config(_))));
        let bad = ChaosArgs { max_drop: 1.5, ..a };
        assert!(bad.validate().is_err());
    }
}
