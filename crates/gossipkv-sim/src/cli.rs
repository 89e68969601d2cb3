//! The `gossipkv sim` subcommand: its flags ([`SimArgs`]) and what it prints ([`main`]).
//!
//! Kept in this crate so the root binary only lists subcommands; `node` and `cluster` can add
//! their own `Args` structs the same way.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{ClockChoice, InjectedBug, Protocol, Scenario, SimConfig};
use crate::report::Report;
use crate::sim::Progress;

/// Flags of `gossipkv sim`. Flags without a fixed default take the scenario's value (shown
/// in their help).
#[derive(Args, Clone, Debug)]
#[command(
    about = "Run the deterministic cluster simulator",
    long_about = "Runs n gossipkv protocol cores in one process on a virtual, lossy network \
                  (one event queue, virtual time, seeded randomness), issues a workload with \
                  conflicting writes, and checks every node against an LWW oracle key by key. \
                  The same seed gives the same report (except wall_ms). With no flags: the \
                  brief's scenario, 1,000 nodes, fanout 5, 10% loss, 1,000 keys, 10% conflicting. \
                  Exit status: 0 if every node equals the oracle, 1 if not, 2 on bad flags.",
    after_help = "Scenarios (faults happen in a window starting with the writes; the settle \
                  point is the later of the last write and the end of the window):\n  \
                  spec           loss only\n  \
                  partition      the cluster splits in two halves for 6 rounds from the first \
                  write, then heals (window 8 rounds)\n  \
                  crash-restart  10% of the nodes crash once in an 8-round window, stay down \
                  1-3 rounds, restart empty\n  \
                  chaos          30% loss (datagrams and streams), 5% duplication, 0-200 ms \
                  jitter, clock skew up to ±3 s, writes over 3 rounds, 2 partitions of 3 rounds \
                  (20-50% split), 10% of nodes crash and restart empty; window 10 rounds\n  \
                  members        seed lists of 3 real nodes + 20 addresses that never answer; \
                  also checks every node ends knowing every live member (try --nodes 100)\n  \
                  long-outage    30% of the nodes cut off for 70 rounds from round 10, while \
                  the rest delete 20% of the keys; tombstones purged after 30 rounds; no \
                  deleted key may come back after the heal\n  \
                  hostile        authenticated gossip; 5 hostile senders x 20 datagrams a round \
                  (random bytes, replays, bit flips, forged writes): none may be accepted\n\n\
                  See docs/simulator.md for the event model and metric definitions."
)]
pub struct SimArgs {
    /// Number of nodes
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Peers contacted per gossip round (k)
    #[arg(long, short = 'k', default_value_t = 5)]
    pub fanout: usize,
    /// Probability that a datagram is lost [default: 0.1; chaos 0.3]
    #[arg(long)]
    pub loss: Option<f64>,
    /// Probability that a stream (bulk catch-up) message fails, as a broken connection
    /// [default: same as --loss]
    #[arg(long)]
    pub stream_loss: Option<f64>,
    /// Number of distinct keys
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Write slots (each a write, or a conflict group of 2-3 writes) [default: --keys]
    #[arg(long)]
    pub writes: Option<usize>,
    /// Key size in bytes
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Value size in bytes
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Share of write slots written concurrently at 2-3 nodes in the same virtual millisecond
    /// (true equal-timestamp ties)
    #[arg(long, default_value_t = 0.1)]
    pub conflict_rate: f64,
    /// Share of writes that are deletes (tombstones)
    #[arg(long, default_value_t = 0.05)]
    pub delete_rate: f64,
    /// Rounds the writes are spread over [default: 1 = a burst in one interval; chaos 3]
    #[arg(long)]
    pub write_rounds: Option<u32>,
    /// Master seed; every random choice derives from it
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Protocol: gossipkv's (gossip) or the whole-store baseline (naive)
    #[arg(long, value_enum, default_value_t = Protocol::Gossip)]
    pub protocol: Protocol,
    /// Fault scenario
    #[arg(long, value_enum, default_value_t = Scenario::Spec)]
    pub scenario: Scenario,
    /// Clock issuing timestamps
    #[arg(long, value_enum, default_value_t = ClockChoice::Hlc)]
    pub clock: ClockChoice,
    /// Print one JSON object instead of the summary
    #[arg(long)]
    pub json: bool,
    /// Write a plot of convergence and bytes per round (.svg or .png)
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// No progress bar (the summary or the JSON still goes to stdout)
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Milliseconds between gossip rounds
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Largest datagram, bytes
    #[arg(long, default_value_t = 1400)]
    pub mtu: usize,
    /// One-way network latency, ms
    #[arg(long, default_value_t = 5)]
    pub latency_ms: u64,
    /// Extra uniform random delay 0..=jitter per message, ms (reorders) [default: 5; chaos 200]
    #[arg(long)]
    pub jitter_ms: Option<u64>,
    /// Probability that a message is delivered twice [default: 0; chaos 0.05]
    #[arg(long)]
    pub dup_rate: Option<f64>,
    /// Maximum clock skew per node, ms (uniform in ±skew) [default: 0; chaos 3000]
    #[arg(long)]
    pub skew_ms: Option<u64>,
    /// Share of nodes that crash and restart empty in the fault window
    /// [default: crash-restart and chaos 0.1, else 0]
    #[arg(long)]
    pub crash_share: Option<f64>,
    /// Length of the fault window in rounds [default: partition and crash-restart 8, chaos 10]
    #[arg(long)]
    pub fault_rounds: Option<u32>,
    /// Give up this many rounds after the settle point
    #[arg(long, default_value_t = 200)]
    pub max_rounds: u32,
    /// Rounds of idle traffic measured after convergence (after the cooldown)
    #[arg(long, default_value_t = 5)]
    pub idle_rounds: u32,
    /// Rounds between convergence and the idle measurement [default: rumor rounds + 1]
    #[arg(long)]
    pub cooldown_rounds: Option<u32>,
    /// Digest tree depth, 16^depth leaves [default: 3, smaller for >= 10,000 nodes with
    /// few keys]
    #[arg(long)]
    pub tree_depth: Option<u32>,
    /// Peers each node knows [default: all others up to 10,000 nodes, else 256 random ones]
    #[arg(long)]
    pub view: Option<usize>,
    /// Concurrent values kept per key
    #[arg(long, default_value_t = 16)]
    pub max_concurrent: usize,
    /// Rounds a fresh version is advertised as a rumor [default: the core's, 3]
    #[arg(long)]
    pub rumor_rounds: Option<u32>,
    /// Digest-tree leaves reconciled per exchange [default: the core's]
    #[arg(long)]
    pub leaves_per_exchange: Option<usize>,
    /// Most bytes of leaf summaries one exchange sends [default: the core's]
    #[arg(long)]
    pub summary_bytes: Option<usize>,
    /// Reconcile by the digest tree only, without origin deltas (the protocol before them)
    #[arg(long)]
    pub no_deltas: bool,
    /// Fixed peer lists instead of membership (no discovery, no failure detection)
    #[arg(long)]
    pub no_membership: bool,
    /// With membership: most members a node keeps, a partial view [default: all up to 3,000
    /// nodes, else 10,000,000 / nodes, within 100..=1,000]
    #[arg(long)]
    pub member_view: Option<usize>,
    /// With membership: an unconfirmed suspicion lasts this many times the nominal timeout
    /// (Lifeguard; 1 turns the dynamic timeout off) [default: the core's, 6]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub suspicion_max_mult: Option<u32>,
    /// Real nodes in each node's seed list [default: all others; members 3]
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Never-answering addresses in each node's seed list [default: 0; members 20]
    #[arg(long)]
    pub phantom_seeds: Option<usize>,
    /// Tombstones are purged this many rounds after their timestamp; 0 keeps them
    /// [default: 0; long-outage 30]
    #[arg(long)]
    pub tombstone_grace_rounds: Option<u64>,
    /// Seal every gossip message with the authentication envelope [default: off; hostile on]
    #[arg(long)]
    pub auth: bool,
    /// Hostile senders (random bytes, replays, bit flips, forged writes) [default: 0; hostile 5]
    #[arg(long)]
    pub hostile: Option<usize>,
    /// Print one line per round to stderr (for long runs without a terminal)
    #[arg(long)]
    pub log_rounds: bool,
    /// (testing) inject a driver bug at node 0 to show the oracle catches it
    #[arg(long, value_enum, hide = true)]
    pub inject_bug: Option<InjectedBug>,
}

impl SimArgs {
    /// The run configuration these flags describe.
    pub fn config(&self) -> SimConfig {
        let mut c = SimConfig::new(self.scenario);
        c.nodes = self.nodes;
        c.gossip.fanout = self.fanout;
        c.gossip.interval_ms = self.interval_ms;
        c.membership = !self.no_membership;
        c.auth |= self.auth;
        if let Some(h) = self.hostile {
            c.hostile = h;
        }
        if let Some(s) = self.seeds {
            c.seeds = s;
        }
        if let Some(s) = self.phantom_seeds {
            c.phantom_seeds = s;
        }
        let default_grace = if self.scenario == Scenario::LongOutage { 30 } else { 0 };
        c.gossip.tombstone_grace_ms =
            self.tombstone_grace_rounds.unwrap_or(default_grace) * self.interval_ms;
        c.gossip.mtu = self.mtu;
        if let Some(m) = self.suspicion_max_mult {
            c.gossip.membership.suspicion_max_mult = m;
        }
        if let Some(r) = self.rumor_rounds {
            c.gossip.rumor_rounds = r;
        }
        if let Some(l) = self.leaves_per_exchange {
            c.gossip.leaves_per_exchange = l;
        }
        if let Some(b) = self.summary_bytes {
            c.gossip.summary_bytes_per_exchange = b;
        }
        c.gossip.origin_deltas = !self.no_deltas;
        if let Some(l) = self.loss {
            c.loss = l;
            c.stream_loss = l;
        }
        if let Some(l) = self.stream_loss {
            c.stream_loss = l;
        }
        c.keys = self.keys;
        c.writes = self.writes.unwrap_or(self.keys);
        c.key_size = self.key_size;
        c.value_size = self.value_size;
        c.conflict_rate = self.conflict_rate;
        if self.scenario != Scenario::LongOutage {
            c.delete_rate = self.delete_rate;
        }
        if let Some(w) = self.write_rounds {
            c.write_rounds = w;
        }
        c.seed = self.seed;
        c.protocol = self.protocol;
        c.clock = self.clock;
        c.latency_ms = self.latency_ms;
        if let Some(j) = self.jitter_ms {
            c.jitter_ms = j;
        }
        if let Some(d) = self.dup_rate {
            c.dup_rate = d;
        }
        if let Some(s) = self.skew_ms {
            c.faults.skew_ms = s;
        }
        if let Some(s) = self.crash_share {
            c.faults.crash_share = s;
            if c.faults.max_down_rounds == 0 {
                c.faults.max_down_rounds = 3;
            }
        }
        if let Some(f) = self.fault_rounds {
            c.faults.fault_rounds = f;
        } else if c.faults.crash_share > 0.0 && c.faults.fault_rounds == 0 {
            c.faults.fault_rounds = 8;
        }
        c.max_rounds = self.max_rounds;
        c.idle_rounds = self.idle_rounds;
        c.cooldown_rounds = self.cooldown_rounds;
        c.tree_depth = self.tree_depth.unwrap_or(0);
        c.view = self.view.unwrap_or(0);
        c.member_view = self.member_view.unwrap_or(0);
        c.max_concurrent = self.max_concurrent;
        c.bug = self.inject_bug;
        c
    }
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] round {pos} {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size of this process in KiB (Linux), for the summary.
fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// Current resident set size in KiB (Linux).
fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// Runs `gossipkv sim` with parsed flags: prints the summary (or JSON), writes the plot.
pub fn main(args: SimArgs) -> ExitCode {
    let cfg = args.config();
    if let Err(e) = cfg.validate() {
        eprintln!("gossipkv sim: {e}");
        return ExitCode::from(2);
    }
    let pb = progress_bar(args.quiet);
    let started = std::time::Instant::now();
    let log_rounds = args.log_rounds;
    let mut on_progress = |p: &Progress| {
        if log_rounds {
            eprintln!(
                "round {:>4} (settle {}) {:>8.1}s  {}/{} nodes equal the oracle, {:.1} MB sent, \
                 rss {:.0} MB",
                p.round,
                p.settle_round,
                started.elapsed().as_secs_f64(),
                p.nodes_converged,
                p.nodes,
                p.bytes_sent as f64 / 1e6,
                rss_kib().unwrap_or(0) as f64 / 1024.0
            );
        }
        pb.set_length(u64::from(p.last_round));
        pb.set_position(u64::from(p.round));
        let phase = if p.converged {
            "converged, measuring idle traffic"
        } else if p.round < p.settle_round {
            "writes / faults"
        } else {
            "converging"
        };
        pb.set_message(format!(
            "{}/{} nodes equal the oracle, {:.1} MB sent, {phase}",
            p.nodes_converged,
            p.nodes,
            p.bytes_sent as f64 / 1e6
        ));
    };
    let report: Report = match crate::sim::run_keeping_nodes(&cfg, &mut on_progress) {
        Ok((r, nodes)) => {
            // the process exits right after printing: freeing gigabytes of replicas first
            // would only delay that (the OS takes the memory back at once)
            std::mem::forget(nodes);
            r
        }
        Err(e) => {
            pb.finish_and_clear();
            eprintln!("gossipkv sim: {e}");
            return ExitCode::from(2);
        }
    };
    pb.finish_and_clear();
    if let Some(path) = &args.plot
        && let Err(e) = crate::plot::plot(&report, path)
    {
        eprintln!("gossipkv sim: plot: {e}");
        return ExitCode::from(2);
    }
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => emit(&format!("{s}\n")),
            Err(e) => {
                eprintln!("gossipkv sim: json: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let mut text = report.summary();
        if let Some(kib) = peak_rss_kib() {
            text += &format!("  peak memory   {:.1} MB resident\n", kib as f64 / 1024.0);
        }
        if let Some(path) = &args.plot {
            text += &format!("  plot          {}\n", path.display());
        }
        emit(&text);
    }
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Writes `text` to stdout. A reader that went away (`gossipkv sim | head`) is not an error:
/// the rest is dropped quietly instead of panicking as `println!` does on a broken pipe.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => eprintln!("gossipkv: stdout: {e}"),
        _ => {}
    }
}
