//! What a simulation run is: cluster size, protocol tunables, the virtual network, the fault
//! scenario and the workload. [`SimConfig::new`] fills in a scenario's defaults; every field can
//! then be overridden (the CLI does that from its flags).

use gossipkv_core::ClockKind;
use gossipkv_core::gossip::GossipConfig;
use serde::Serialize;

/// With membership, every simulated node holds the whole member table up to this many
/// nodes (n² records in one process: 9 million at 3,000 nodes).
pub const FULL_TABLES_UP_TO: usize = 3_000;

/// Beyond [`FULL_TABLES_UP_TO`], the default partial view is this many records over all
/// nodes (about 2 GB), at least 100 and at most 1,000 a node.
const MEMBER_RECORDS: usize = 10_000_000;

/// Which gossip protocol the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// gossipkv's protocol core (`gossipkv_core::gossip::Node`): digests, rumors, repair.
    Gossip,
    /// The brief's literal baseline: every node sends its whole store to `k` random peers
    /// every round (`Entries` datagrams packed to the MTU); receivers merge.
    Naive,
}

/// A named fault mix. See docs/simulator.md for the exact timelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The brief's scenario: message loss only.
    Spec,
    /// The cluster splits into two halves for some rounds during and after the writes, then
    /// heals.
    Partition,
    /// Some nodes crash during or after the writes, lose their memory and restart empty.
    CrashRestart,
    /// 30% loss, duplication, reordering (big jitter), partitions, crashes with empty
    /// restarts and clock skew of seconds; partitions and crashes stop at a fixed round.
    Chaos,
    /// Membership discovery: every node's seed list names 3 other nodes and 20 addresses
    /// that never answer; the run also checks that every node learns every live member.
    Members,
    /// A 30% minority is cut off for longer than the tombstone purge horizon while the
    /// majority deletes keys and purges the tombstones; the minority must not bring the
    /// deleted keys back when the partition heals.
    LongOutage,
    /// Authenticated gossip, and 5 hostile senders each sending 20 datagrams a round: random
    /// bytes, replays and bit flips of overheard datagrams, forged writes sealed with a wrong
    /// key or not sealed. None may be accepted; the cluster must converge regardless.
    Hostile,
}

/// Which clock issues timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClockChoice {
    /// Hybrid logical clock (48-bit ms, 16-bit logical).
    Hlc,
    /// Lamport counter.
    Lamport,
}

impl ClockChoice {
    /// The core's clock kind.
    pub fn kind(self) -> ClockKind {
        match self {
            ClockChoice::Hlc => ClockKind::Hlc,
            ClockChoice::Lamport => ClockKind::Lamport,
        }
    }
}

/// A deliberate bug in the simulator's driver, to prove the oracle catches wrong merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InjectedBug {
    /// Node 0's driver silently drops every incoming version whose timestamp ties the winner
    /// it holds for that key (a node that mishandles equal-timestamp ties).
    DropTies,
    /// Node 0's driver drops an incoming version that ties its winner's timestamp *and would
    /// beat it* (smaller value), so the node keeps the larger value as the winner: a
    /// wrong tie-break. Versions that lose the tie are still merged.
    WrongTieBreak,
    /// Every node's driver clears the "away" flag of incoming `Sync` / `SyncAck`, so nodes
    /// back from beyond the purge horizon are not refused and do not reset: deleted keys
    /// whose tombstones were purged come back (the long-outage scenario must then fail).
    HideAway,
}

/// Faults of a scenario. Faults (partitions and crashes) all happen inside the fault window
/// `[write start, write start + fault_rounds × interval)`; network impairments (loss,
/// duplication, jitter) and clock skew are properties of the network and nodes and last the
/// whole run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Faults {
    /// Length of the fault window in rounds (0: no fault window).
    pub fault_rounds: u32,
    /// Number of partition episodes (non-overlapping, inside the window).
    pub partitions: u32,
    /// Rounds each partition lasts.
    pub partition_rounds: u32,
    /// Share of nodes on the smaller side of a split (0.5 = two halves). 0 picks a random
    /// share in 0.2..0.5 per episode.
    pub partition_share: f64,
    /// Share of nodes that crash once inside the window (at least one node if > 0).
    pub crash_share: f64,
    /// A crashed node stays down for 1..=max_down_rounds rounds, then restarts empty.
    pub max_down_rounds: u32,
    /// Each node's physical clock is off by a uniform skew in `[-skew_ms, +skew_ms]`.
    pub skew_ms: u64,
    /// Partitions start this many rounds into the fault window (after the writes settled).
    pub partition_delay_rounds: u32,
}

impl Faults {
    /// No faults at all.
    pub const NONE: Faults = Faults {
        fault_rounds: 0,
        partitions: 0,
        partition_rounds: 0,
        partition_share: 0.5,
        crash_share: 0.0,
        max_down_rounds: 0,
        skew_ms: 0,
        partition_delay_rounds: 0,
    };
}

/// Everything that defines a run. Two runs with equal configs produce identical reports
/// (except `wall_ms`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Gossip tunables handed to every node (`record_receptions` is forced on).
    #[serde(skip)]
    pub gossip: GossipConfig,
    /// Which protocol the nodes run.
    pub protocol: Protocol,
    /// Which clock issues timestamps.
    pub clock: ClockChoice,
    /// Digest tree depth (16^depth leaves); 0 picks it from the key count (docs/simulator.md).
    pub tree_depth: u32,
    /// Concurrent values kept per key.
    pub max_concurrent: usize,
    /// Size of each node's peer list; 0 = every other node (capped for huge clusters,
    /// see docs/simulator.md).
    pub view: usize,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a stream (bulk) message fails (a broken connection).
    pub stream_loss: f64,
    /// Base one-way latency, ms.
    pub latency_ms: u64,
    /// Extra uniform random delay in `[0, jitter_ms]` per message (reorders messages).
    pub jitter_ms: u64,
    /// Probability that a delivered message is delivered twice (independent delays).
    pub dup_rate: f64,
    /// Stream bandwidth in bytes per ms (a stream message takes `len / this` ms more).
    pub stream_bytes_per_ms: u64,
    /// Scenario name (its faults are in `faults`).
    pub scenario: Scenario,
    /// Partitions, crashes and clock skew.
    pub faults: Faults,
    /// Size of the key space.
    pub keys: usize,
    /// Write slots: each is one write, or a conflict group of 2-3 writes of one key at
    /// different nodes in the same virtual millisecond.
    pub writes: usize,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// Share of write slots that are conflict groups.
    pub conflict_rate: f64,
    /// Share of writes that are deletes (tombstones).
    pub delete_rate: f64,
    /// Rounds the write phase is spread over.
    pub write_rounds: u32,
    /// Master seed.
    pub seed: u64,
    /// Give up this many rounds after the settle point if not converged.
    pub max_rounds: u32,
    /// Rounds between convergence and the idle measurement (lets rumors expire);
    /// `None` = the gossip config's `rumor_rounds + 1`.
    pub cooldown_rounds: Option<u32>,
    /// Rounds of idle traffic measured after the cooldown.
    pub idle_rounds: u32,
    /// Most (node, key) comparisons per round for the stale-key share (sampled keys above).
    pub stale_budget: usize,
    /// A deliberate driver bug (tests only).
    pub bug: Option<InjectedBug>,
    /// Nodes learn members through gossip and detect failures (otherwise every node gossips
    /// with a fixed peer list).
    pub membership: bool,
    /// With membership: most other members a node keeps (a partial view); 0 picks it from
    /// the node count (whole tables up to [`FULL_TABLES_UP_TO`] nodes).
    pub member_view: usize,
    /// Real nodes in each node's seed list; 0 = the whole view.
    pub seeds: usize,
    /// Addresses in each node's seed list that never answer.
    pub phantom_seeds: usize,
    /// Share of the written keys deleted during the partition (long-outage scenario).
    pub outage_deletes: f64,
    /// Seal and open every message with the authentication envelope (a key from the seed).
    pub auth: bool,
    /// Hostile senders.
    pub hostile: usize,
    /// Datagrams each hostile sender sends per round.
    pub hostile_rate: usize,
}

impl SimConfig {
    /// The defaults of `scenario`: the brief's cluster (1,000 nodes, fanout 5, 1,000 keys with
    /// 10% conflicts) with the scenario's network and faults.
    pub fn new(scenario: Scenario) -> Self {
        let gossip = GossipConfig { record_receptions: true, ..GossipConfig::default() };
        let mut c = SimConfig {
            nodes: 1000,
            gossip,
            protocol: Protocol::Gossip,
            clock: ClockChoice::Hlc,
            tree_depth: 0,
            max_concurrent: 16,
            view: 0,
            loss: 0.1,
            stream_loss: 0.1,
            latency_ms: 5,
            jitter_ms: 5,
            dup_rate: 0.0,
            stream_bytes_per_ms: 125_000,
            scenario,
            faults: Faults::NONE,
            keys: 1000,
            writes: 1000,
            key_size: 16,
            value_size: 32,
            conflict_rate: 0.1,
            delete_rate: 0.05,
            write_rounds: 1,
            seed: 1,
            max_rounds: 200,
            cooldown_rounds: None,
            idle_rounds: 5,
            stale_budget: 1_000_000,
            bug: None,
            membership: true,
            member_view: 0,
            seeds: 0,
            phantom_seeds: 0,
            outage_deletes: 0.0,
            auth: false,
            hostile: 0,
            hostile_rate: 20,
        };
        match scenario {
            Scenario::Spec => {}
            Scenario::Partition => {
                c.faults = Faults {
                    fault_rounds: 8,
                    partitions: 1,
                    partition_rounds: 6,
                    partition_share: 0.5,
                    ..Faults::NONE
                };
            }
            Scenario::CrashRestart => {
                c.faults = Faults {
                    fault_rounds: 8,
                    crash_share: 0.1,
                    max_down_rounds: 3,
                    ..Faults::NONE
                };
            }
            Scenario::Chaos => {
                c.loss = 0.3;
                c.stream_loss = 0.3;
                c.dup_rate = 0.05;
                c.jitter_ms = 200;
                c.write_rounds = 3;
                c.faults = Faults {
                    fault_rounds: 10,
                    partitions: 2,
                    partition_rounds: 3,
                    partition_share: 0.0,
                    crash_share: 0.1,
                    max_down_rounds: 3,
                    skew_ms: 3000,
                    partition_delay_rounds: 0,
                };
            }
            Scenario::Members => {
                c.seeds = 3;
                c.phantom_seeds = 20;
            }
            Scenario::Hostile => {
                c.auth = true;
                c.hostile = 5;
            }
            Scenario::LongOutage => {
                // horizon 30 rounds; the minority is away for 70 (> horizon, > half of it)
                c.gossip.tombstone_grace_ms = 30 * c.gossip.interval_ms;
                c.outage_deletes = 0.2;
                c.delete_rate = 0.0;
                c.max_rounds = 300;
                c.faults = Faults {
                    fault_rounds: 85,
                    partitions: 1,
                    partition_rounds: 70,
                    partition_share: 0.3,
                    partition_delay_rounds: 10,
                    ..Faults::NONE
                };
            }
        }
        c
    }

    /// The digest tree depth in force (resolves `tree_depth == 0`).
    pub fn effective_tree_depth(&self) -> u32 {
        if self.tree_depth != 0 {
            return self.tree_depth.clamp(1, 6);
        }
        // The production default (3, 4096 leaves) unless the cluster is huge and the key set
        // small: then the per-node fixed cost of the tree (12 bytes a leaf) is what limits the
        // simulation, and a tree with about 4 keys a leaf is enough.
        if self.nodes < 10_000 || self.keys > 4096 * 4 {
            return 3;
        }
        let mut d = 1;
        while d < 3 && (16usize.pow(d)) * 4 < self.keys {
            d += 1;
        }
        d
    }

    /// The partial-view size in force with membership (resolves `member_view == 0`); 0 when
    /// every node holds the whole member table.
    pub fn effective_member_view(&self) -> usize {
        let others = self.nodes.saturating_sub(1);
        if !self.membership {
            return 0;
        }
        let view = match self.member_view {
            0 if self.nodes <= FULL_TABLES_UP_TO => return 0,
            0 => (MEMBER_RECORDS / self.nodes).clamp(100, 1000),
            v => v,
        };
        if view >= others { 0 } else { view }
    }

    /// The peer-list size in force (resolves `view == 0`): with a partial member view, the
    /// seed list is no longer than it.
    pub fn effective_view(&self) -> usize {
        let others = self.nodes.saturating_sub(1);
        let view = self.effective_view_alone(others);
        match self.effective_member_view() {
            0 => view,
            m => view.min(m),
        }
    }

    fn effective_view_alone(&self, others: usize) -> usize {
        if self.view != 0 {
            return self.view.min(others);
        }
        // Every node knows every other one up to 10,000 nodes (the core keeps one peer list
        // per node: 32 bytes a peer, 3.2 GB at 10,000 nodes); beyond that a random partial
        // view of 256 peers, since O(n²) peer lists do not fit in memory at 100,000 nodes.
        if others < 10_000 { others } else { 256 }
    }

    /// Rounds between convergence and the idle measurement.
    pub fn effective_cooldown(&self) -> u32 {
        self.cooldown_rounds.unwrap_or(self.gossip.rumor_rounds + 1)
    }

    /// Checks the config for values the simulator cannot run.
    pub fn validate(&self) -> Result<(), String> {
        let p = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be within 0..=1, got {v}"))
            }
        };
        p("loss", self.loss)?;
        p("stream loss", self.stream_loss)?;
        p("dup rate", self.dup_rate)?;
        p("conflict rate", self.conflict_rate)?;
        p("delete rate", self.delete_rate)?;
        p("crash share", self.faults.crash_share)?;
        p("partition share", self.faults.partition_share)?;
        if self.nodes == 0 || self.nodes > 1 << 24 {
            return Err(format!("nodes must be within 1..=16777216, got {}", self.nodes));
        }
        if self.keys == 0 && self.writes > 0 {
            return Err("writes need at least one key".into());
        }
        if self.keys > u32::MAX as usize {
            return Err("too many keys".into());
        }
        let digits = crate::workload::digits(self.keys.saturating_sub(1));
        if self.key_size < digits + 1 {
            return Err(format!(
                "key size {} is too small for {} distinct keys (need at least {})",
                self.key_size,
                self.keys,
                digits + 1
            ));
        }
        if self.key_size + self.value_size > gossipkv_core::gossip::MAX_WRITE_BYTES {
            return Err(format!(
                "key size + value size must be at most {} bytes (the longest write a node \
                 accepts), got {}",
                gossipkv_core::gossip::MAX_WRITE_BYTES,
                self.key_size + self.value_size
            ));
        }
        if self.gossip.fanout == 0 {
            return Err("fanout must be at least 1 (with 0 no node ever gossips)".into());
        }
        if self.gossip.interval_ms == 0 {
            return Err("interval must be > 0 ms".into());
        }
        if self.gossip.mtu < 64 {
            return Err("mtu must be at least 64 bytes".into());
        }
        if self.gossip.max_stream_bytes < 4096 {
            return Err("stream message limit must be at least 4096 bytes".into());
        }
        if self.stream_bytes_per_ms == 0 {
            return Err("stream bandwidth must be > 0".into());
        }
        p("outage deletes", self.outage_deletes)?;
        if self.protocol == Protocol::Naive && (self.seeds > 0 || self.phantom_seeds > 0) {
            return Err("partial seed lists (scenario members) need the gossip protocol".into());
        }
        if self.write_rounds == 0 {
            return Err("write rounds must be >= 1".into());
        }
        Ok(())
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::new(Scenario::Spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_what_cannot_run_and_names_it() {
        assert_eq!(SimConfig::default().validate(), Ok(()));
        let refused = |edit: fn(&mut SimConfig), what: &str| {
            let mut cfg = SimConfig::default();
            edit(&mut cfg);
            let err = cfg.validate().expect_err(what);
            assert!(err.contains(what), "{err:?} should name {what}");
        };
        refused(|c| c.gossip.fanout = 0, "fanout");
        refused(|c| c.nodes = 0, "nodes");
        refused(|c| c.loss = 1.5, "loss");
        refused(|c| c.gossip.interval_ms = 0, "interval");
        refused(|c| c.gossip.mtu = 10, "mtu");
        refused(|c| c.gossip.max_stream_bytes = 100, "stream message limit");
        refused(|c| c.value_size = 65 << 20, "key size + value size");
    }
}
