//! The report of a run: what `--json` prints and what the summary shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{ClockChoice, Protocol, Scenario};
use crate::oracle::CheckResult;

/// Per-round series (one entry per checkpoint, every `interval_ms` of virtual time).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Series {
    /// Virtual ms since the start of the run at each checkpoint.
    pub t_ms: Vec<u64>,
    /// Live nodes whose digest root equals the oracle's.
    pub nodes_converged: Vec<u32>,
    /// Nodes up (not crashed).
    pub nodes_up: Vec<u32>,
    /// Bytes sent since the previous checkpoint (dropped messages included).
    pub bytes: Vec<u64>,
    /// Messages sent since the previous checkpoint.
    pub messages: Vec<u64>,
    /// Share of `(node, key)` pairs whose kept versions differ from the oracle's (down nodes
    /// count as stale for every key the oracle holds). Exact when `stale_exact`, otherwise over
    /// a fixed, evenly spaced sample of `stale_sample_keys` keys.
    pub stale_key_share: Vec<f64>,
    /// Whether `stale_key_share` covers every key.
    pub stale_exact: bool,
    /// Keys in the stale-share sample.
    pub stale_sample_keys: usize,
}

/// Wall-clock breakdown (not in the JSON: it is the only non-deterministic part).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Building nodes, workload and faults.
    pub setup_ms: u64,
    /// The event loop (including per-round checks).
    pub simulate_ms: u64,
    /// The final key-by-key check.
    pub check_ms: u64,
}

/// Everything a run measured. Same config and seed ⇒ the same report, except `wall_ms`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Peers contacted per round.
    pub fanout: usize,
    /// Datagram loss probability.
    pub loss: f64,
    /// Stream message failure probability.
    pub stream_loss: f64,
    /// Duplication probability.
    pub dup_rate: f64,
    /// Base latency, ms.
    pub latency_ms: u64,
    /// Jitter, ms.
    pub jitter_ms: u64,
    /// Gossip interval (one round), ms.
    pub interval_ms: u64,
    /// Datagram size limit, bytes.
    pub mtu: usize,
    /// Master seed.
    pub seed: u64,
    /// Protocol run.
    pub protocol: Protocol,
    /// Fault scenario.
    pub scenario: Scenario,
    /// Clock.
    pub clock: ClockChoice,
    /// Digest tree depth.
    pub tree_depth: u32,
    /// Peers each node knows.
    pub view: usize,
    /// With membership: most other members a node keeps (0: the whole table).
    pub member_view: usize,
    /// With membership: how many times the nominal timeout an unconfirmed suspicion lasts.
    pub suspicion_max_mult: u32,
    /// Key space.
    pub keys: usize,
    /// Write slots.
    pub writes: usize,
    /// Key size, bytes.
    pub key_size: usize,
    /// Value size, bytes.
    pub value_size: usize,
    /// Share of slots that were conflict groups.
    pub conflict_rate: f64,
    /// Share of writes that were deletes.
    pub delete_rate: f64,
    /// Client operations issued (a conflict group issues 2-3).
    pub ops_issued: usize,
    /// Deletes among them.
    pub deletes_issued: usize,
    /// Conflict groups.
    pub conflict_groups: usize,
    /// Keys the oracle ends with (written and not lost).
    pub keys_written: usize,
    /// Keys whose final state keeps several concurrent values (true equal-timestamp ties).
    pub keys_with_concurrent_values: usize,
    /// Every node equals the oracle, key by key, at the end.
    pub converged: bool,
    /// Rounds after the settle point (last write, or end of faults) until every node's digest
    /// equals the oracle's; `null` if that never happened within `max_rounds`.
    pub rounds_to_converge: Option<u32>,
    /// Checkpoint index of the settle point in the series.
    pub settle_round: u32,
    /// Checkpoints run.
    pub rounds_run: u32,
    /// Messages handed to the network by nodes.
    pub messages_sent: u64,
    /// Messages that never arrived (loss + partition + destination down).
    pub messages_dropped: u64,
    /// Dropped by random loss (datagrams) or connection failure (streams).
    pub dropped_loss: u64,
    /// Dropped because they crossed a partition.
    pub dropped_partition: u64,
    /// Dropped because the destination was down when they arrived.
    pub dropped_down: u64,
    /// Extra copies delivered by duplication.
    pub messages_duplicated: u64,
    /// Real encoded bytes of every message sent, dropped ones included.
    pub bytes_sent: u64,
    /// Bytes sent, by message kind.
    pub bytes_by_kind: BTreeMap<String, u64>,
    /// Stream (bulk path) messages sent.
    pub stream_messages: u64,
    /// Stream bytes sent (included in `bytes_sent`).
    pub stream_bytes: u64,
    /// Largest datagram sent.
    pub max_datagram_bytes: usize,
    /// `3 × (n − 1) × keys_written × (key_size + value_size)`: the brief's bound for a burst.
    pub bytes_bound: u64,
    /// Bytes sent from the start of the run up to the convergence checkpoint; `null` if the
    /// run did not converge.
    pub bytes_to_converge: Option<u64>,
    /// Bytes per node per round over the `idle_rounds` measured after convergence and cooldown.
    pub idle_bytes_per_node_per_round: Option<f64>,
    /// Bytes per node per round in the cooldown rounds right after convergence (rumors of
    /// the last versions still advertised).
    pub cooldown_bytes_per_node_per_round: Option<f64>,
    /// Receptions of the oracle's final kept versions (every concurrent value at the winning
    /// timestamp), divided by `nodes × number of such versions`: how many times, on average,
    /// a node received a version it ended up keeping. Exactly 1 minus 1/n is ideal.
    pub value_copies_per_node: f64,
    /// Every version received (winners, losers, duplicates) per node per written key.
    pub versions_received_per_node_per_key: f64,
    /// Node crashes.
    pub crashes: u64,
    /// Partition episodes.
    pub partitions: u32,
    /// Writes lost for good (every holder crashed before passing them on).
    pub lost_writes: usize,
    /// Times a write was found lost; a lost write received later again is revived.
    pub lost_events: u64,
    /// Times a lost write was revived by a message in flight.
    pub revived_writes: u64,
    /// Writes whose node (and every other node) was down: not issued.
    pub writes_skipped: u64,
    /// Bulk catch-ups started.
    pub bulk_started: u64,
    /// Protocol rounds run, all nodes.
    pub node_rounds: u64,
    /// Messages refused by decoders.
    pub decode_errors: u64,
    /// Versions never sent because one alone exceeds a stream message's limit (0 unless the
    /// limit was lowered below the longest write).
    pub oversize_versions: u64,
    /// Stream messages a node built over the limit and did not send (always 0: every list of
    /// entries is cut to fit).
    pub oversize_messages: u64,
    /// Well-formed messages that made no sense to their receiver.
    pub rejected: u64,
    /// Remote timestamps beyond the HLC's maximum drift (live incarnations).
    pub drift_events: u64,
    /// The final key-by-key check.
    pub check: CheckResult,
    /// The final membership check (with membership on).
    pub members: Option<MembersCheck>,
    /// Hostile senders and envelope rejections (with `auth` or hostile senders).
    pub hostile: Option<crate::hostile::HostileReport>,
    /// Wall-clock time of the whole run, ms (the only non-deterministic field).
    pub wall_ms: u64,
    /// Per-round series.
    pub series: Series,
    /// Wall-clock breakdown (summary only).
    #[serde(skip)]
    pub timings: Timings,
}

/// How well the live nodes know each other at the end of a run, and what membership and the
/// purge horizon did during it (live incarnations only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MembersCheck {
    /// Live nodes.
    pub live: usize,
    /// Rounds after the settle point until every live node knew every live member as up
    /// (checked once the data converged); `null` if never.
    pub rounds_to_agree: Option<u32>,
    /// Fewest live nodes (itself included) a live node knows as alive or suspect.
    pub min_known: usize,
    /// Most live nodes (itself included) a live node knows as alive or suspect (with
    /// partial views: at most the view plus itself).
    pub max_known: usize,
    /// `(node, live member)` pairs where the node does not know the member as up.
    pub missing: u64,
    /// `(node, live member)` pairs where the node believes the member dead or left.
    pub gone_marked_up: u64,
    /// Suspicions raised after failed probes.
    pub suspicions: u64,
    /// Members declared dead.
    pub deaths: u64,
    /// Suspicions or deaths refuted by the member itself.
    pub refutes: u64,
    /// Suspicions confirmed by a further, independent suspector (Lifeguard).
    pub confirmations: u64,
    /// Member-table pulls.
    pub member_pulls: u64,
    /// Tombstones purged after the grace period.
    pub tombstones_purged: u64,
    /// Nodes that came back from beyond half the purge horizon and reset old entries.
    pub horizon_resets: u64,
    /// Exchanges refused because the peer was away.
    pub away_refused: u64,
    /// Nodes that stopped being away without a reset (no majority anywhere meanwhile).
    pub away_cleared: u64,
}

fn bytes(b: f64) -> String {
    const U: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < U.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{v:.0} {}", U[u]) } else { format!("{v:.2} {}", U[u]) }
}

impl Report {
    /// Whether the run passed: converged, and no datagram over the MTU.
    pub fn passed(&self) -> bool {
        self.converged && self.max_datagram_bytes <= self.mtu
    }

    /// The human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "gossipkv sim: {} nodes, fanout {}, {:.0}% loss, protocol {}, scenario {}, seed {}",
            self.nodes,
            self.fanout,
            self.loss * 100.0,
            name(&self.protocol),
            name(&self.scenario),
            self.seed
        );
        let _ = writeln!(
            s,
            "  workload      {} keys, {} writes ({} ops, {} deletes, {} conflict groups), \
             {} B keys, {} B values",
            self.keys,
            self.writes,
            self.ops_issued,
            self.deletes_issued,
            self.conflict_groups,
            self.key_size,
            self.value_size
        );
        let _ = writeln!(
            s,
            "  final state   {} keys, {} with concurrent values (equal-timestamp ties)",
            self.keys_written, self.keys_with_concurrent_values
        );
        if self.crashes > 0 || self.partitions > 0 {
            let _ = writeln!(
                s,
                "  faults        {} partitions, {} crashes, {} writes lost with their nodes, \
                 {} revived from flight",
                self.partitions, self.crashes, self.lost_writes, self.revived_writes
            );
        }
        match self.rounds_to_converge {
            Some(r) => {
                let _ = writeln!(s, "  converged     yes, {r} rounds after the settle point");
            }
            None => {
                let _ = writeln!(s, "  converged     NO within {} rounds", self.rounds_run);
            }
        }
        if let Some(h) = &self.hostile {
            let sent: u64 = h.sent.values().sum();
            let rejected: Vec<String> =
                h.auth_rejected.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let _ = writeln!(
                s,
                "  hostile       {sent} datagrams from hostile senders, {} accepted; envelope \
                 rejections: {}",
                h.accepted,
                if rejected.is_empty() { "none".to_string() } else { rejected.join(", ") }
            );
        }
        if let Some(m) = &self.members {
            let agree = match m.rounds_to_agree {
                Some(r) => format!("all agree {r} rounds after the settle point"),
                None => format!("NOT all agree ({} node-member pairs missing)", m.missing),
            };
            let view = match self.member_view {
                0 => "whole tables".to_string(),
                v => format!("partial views of {v}"),
            };
            let _ = writeln!(
                s,
                "  membership    {agree}; {view}; {} live, each knows >= {}; {} suspicions, \
                 {} confirmations, {} deaths, {} refuted; {} table pulls",
                m.live,
                m.min_known,
                m.suspicions,
                m.confirmations,
                m.deaths,
                m.refutes,
                m.member_pulls
            );
            if m.tombstones_purged > 0 || m.horizon_resets > 0 {
                let _ = writeln!(
                    s,
                    "  purge         {} tombstones purged after the grace period; {} nodes back \
                     from beyond the horizon reset; {} exchanges with away nodes refused",
                    m.tombstones_purged, m.horizon_resets, m.away_refused
                );
            }
        }
        let _ = writeln!(
            s,
            "  messages      {} sent, {} dropped ({} loss, {} partition, {} to down nodes), \
             {} duplicated",
            self.messages_sent,
            self.messages_dropped,
            self.dropped_loss,
            self.dropped_partition,
            self.dropped_down,
            self.messages_duplicated
        );
        let _ = writeln!(
            s,
            "  bytes         {} sent ({} on the bulk stream), {:.1}% of the 3(n-1)·keys·(k+v) \
             bound {}",
            bytes(self.bytes_sent as f64),
            bytes(self.stream_bytes as f64),
            if self.bytes_bound > 0 {
                self.bytes_sent as f64 * 100.0 / self.bytes_bound as f64
            } else {
                0.0
            },
            bytes(self.bytes_bound as f64)
        );
        if let Some(idle) = self.idle_bytes_per_node_per_round {
            let _ = writeln!(
                s,
                "  idle          {} per node per round (bound k × MTU = {})",
                bytes(idle),
                bytes((self.fanout * self.mtu) as f64)
            );
        }
        let _ = writeln!(
            s,
            "  value copies  {:.3} receptions per kept version per node ({:.3} versions \
             received per node per key)",
            self.value_copies_per_node, self.versions_received_per_node_per_key
        );
        let _ =
            writeln!(s, "  datagrams     largest {} B (MTU {})", self.max_datagram_bytes, self.mtu);
        let t = self.timings;
        let _ = writeln!(
            s,
            "  wall time     {} ms (setup {} ms, simulation {} ms, final check {} ms)",
            self.wall_ms, t.setup_ms, t.simulate_ms, t.check_ms
        );
        if self.check.stale_pairs > 0 {
            let _ = writeln!(
                s,
                "  check         {} nodes differ from the oracle at {} (node, key) pairs",
                self.check.mismatched_nodes, self.check.stale_pairs
            );
            for m in &self.check.examples {
                let _ = writeln!(
                    s,
                    "    node {} key {}: expected {:?}, has {:?}",
                    m.node, m.key, m.expected, m.actual
                );
            }
        }
        let verdict = if self.passed() {
            format!(
                "PASS: every node equals the LWW oracle key by key ({} rounds to converge)",
                self.rounds_to_converge.map_or("?".into(), |r| r.to_string())
            )
        } else if !self.converged {
            "FAIL: some node differs from the oracle".to_string()
        } else {
            "FAIL: a datagram exceeded the MTU".to_string()
        };
        let _ = writeln!(s, "  verdict       {verdict}");
        s
    }
}

/// The command-line name of a value enum (`crash-restart`, `naive`, ...).
pub(crate) fn name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value().map_or_else(String::new, |p| p.get_name().to_string())
}
