//! Push-pull anti-entropy: rounds for one update to reach all `n` nodes against fanout `k`
//! and message loss, by Monte-Carlo on the abstract model, beside theory, and optionally beside
//! gossipkv's real protocol run through the simulator ([`crate::run`]).
//!
//! The abstract model:
//!
//! - One update at one random node at round 0. Synchronous rounds: in every round each node
//!   starts an exchange with each of `k` distinct peers chosen uniformly among the other
//!   `n − 1`; what a node knows at the start of the round decides what it sends.
//! - An exchange between initiator `a` and peer `b` is three messages in
//!   [`Exchange::ThreeWay`] (classic push-pull anti-entropy, the model behind design.md §4's
//!   figures: `a`'s digest, `b`'s reply with its digest and the entries `a` lacks, then `a`'s
//!   entries that `b` lacks). Pull (`b` → `a`) needs the first two to arrive, push (`a` → `b`)
//!   all three. In [`Exchange::TwoWay`] the request carries `a`'s entries and the reply `b`'s:
//!   push needs one message, pull two. [`Exchange::Rumor`] is gossipkv's rumor path (ids
//!   first, values pulled): push needs 3 messages, pull 4.
//! - Every message is lost independently with probability `loss`.
//! - The figure is the first round at the end of which every node knows the update.
//!
//! Theory ([`theory`]): the leading term `log_{2k+1} n` (without loss, each round every node
//! takes part in about `2k` exchanges, so the informed set can grow `2k + 1`-fold), and a
//! mean-field recursion with the model's loss that predicts the mean and the p99.

use std::time::Instant;

use gossipkv_core::rng::Rng;
use serde::Serialize;

use super::stats::{Summary, derive_seed, par_map};
use crate::{Scenario, SimConfig};

/// How many messages an exchange takes, and which carry the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Exchange {
    /// Digest, digest + pulled entries, pushed entries (classic push-pull anti-entropy, the
    /// model of design.md §4): pull needs 2 messages, push 3.
    ThreeWay,
    /// Request with the initiator's entries, reply with the peer's: push needs 1 message,
    /// pull 2.
    TwoWay,
    /// gossipkv's rumor path (docs/protocol.md): `Sync` with the initiator's rumor ids,
    /// `SyncAck` with the wanted ids and the peer's rumor ids, then `Entries` to the peer
    /// (push: 3 messages) or `Want` and `Entries` back (pull: 4 messages).
    Rumor,
}

impl Exchange {
    /// Messages that must arrive for a push (initiator → peer) and for a pull (peer →
    /// initiator) to succeed.
    pub fn messages(self) -> (i32, i32) {
        match self {
            Exchange::ThreeWay => (3, 2),
            Exchange::TwoWay => (1, 2),
            Exchange::Rumor => (3, 4),
        }
    }
}

/// The figures design.md §4 quotes for 10% loss: `(k, mean, p99)` rounds to reach all 1,000
/// nodes by Monte-Carlo.
pub const DESIGN_10PCT: [(usize, f64, f64); 4] =
    [(1, 11.7, 14.0), (3, 6.0, 7.0), (5, 4.9, 5.0), (10, 4.0, 4.0)];

/// One push-pull experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PushPullConfig {
    /// Number of nodes `n`.
    pub nodes: usize,
    /// Fanouts `k` of the Monte-Carlo grid.
    pub fanouts: Vec<usize>,
    /// Message loss probabilities of the grid (each `< 1`).
    pub losses: Vec<f64>,
    /// Monte-Carlo trials per `(k, loss)`.
    pub trials: usize,
    /// Master seed; trial `t` of cell `(i, j)` uses a seed derived from `(seed, i, j, t)`.
    pub seed: u64,
    /// Exchange shape of the abstract model.
    pub exchange: Exchange,
    /// Simulator runs (seeds `1..=protocol_seeds`) of gossipkv's real protocol per
    /// `(k, loss)` in `protocol_fanouts × losses`; 0 skips them.
    pub protocol_seeds: u64,
    /// Fanouts at which the real protocol runs.
    pub protocol_fanouts: Vec<usize>,
    /// A Monte-Carlo trial that has not reached every node after this many rounds stops and
    /// counts this many (a guard; it never binds for loss well below 1).
    pub max_rounds: u32,
    /// Worker threads (0: the machine's parallelism). Does not change the results.
    #[serde(skip)]
    pub threads: usize,
}

impl Default for PushPullConfig {
    /// n = 1,000, k = 1..10, loss 0 / 10% / 30%, 1,000 trials, three-way exchanges, the real
    /// protocol at k = 3 and 5 over 20 seeds.
    fn default() -> Self {
        PushPullConfig {
            nodes: 1000,
            fanouts: (1..=10).collect(),
            losses: vec![0.0, 0.1, 0.3],
            trials: 1000,
            seed: 1,
            exchange: Exchange::ThreeWay,
            protocol_seeds: 20,
            protocol_fanouts: vec![3, 5],
            max_rounds: 10_000,
            threads: 0,
        }
    }
}

impl PushPullConfig {
    /// Checks the values the model cannot run.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 || self.nodes > u32::MAX as usize {
            return Err(format!("nodes must be within 2..=2^32-1, got {}", self.nodes));
        }
        if self.fanouts.is_empty() || self.fanouts.iter().any(|&k| k == 0 || k >= self.nodes) {
            return Err(format!("fanouts must be non-empty and within 1..{}", self.nodes));
        }
        if self.protocol_fanouts.iter().any(|&k| k == 0 || k >= self.nodes) {
            return Err(format!("protocol fanouts must be within 1..{}", self.nodes));
        }
        if self.losses.is_empty() || self.losses.iter().any(|l| !(0.0..1.0).contains(l)) {
            return Err("losses must be non-empty and each within 0..1 (1 excluded)".into());
        }
        if self.trials == 0 {
            return Err("trials must be at least 1".into());
        }
        if self.max_rounds == 0 {
            return Err("max rounds must be at least 1".into());
        }
        Ok(())
    }
}

/// Rounds until all `n` nodes know one update, in one Monte-Carlo trial (capped at
/// `max_rounds`).
pub fn trial(
    n: usize,
    k: usize,
    loss: f64,
    exchange: Exchange,
    max_rounds: u32,
    rng: &mut Rng,
) -> u32 {
    assert!(n >= 2 && (1..n).contains(&k), "n >= 2 and 1 <= k < n");
    // round at which a node learned the update; u32::MAX = not yet
    let mut learned = vec![u32::MAX; n];
    learned[rng.below(n as u64) as usize] = 0;
    let mut knowing = 1usize;
    let mut peers = Vec::with_capacity(k);
    let (push_msgs, pull_msgs) = exchange.messages();
    let mut round = 0u32;
    while knowing < n && round < max_rounds {
        round += 1;
        for a in 0..n {
            rng.sample_indices(n - 1, k, &mut peers);
            for &p in &peers {
                let b = if p >= a { p + 1 } else { p };
                // what each side knew at the start of the round
                let (ka, kb) = (learned[a] < round, learned[b] < round);
                if ka == kb {
                    continue;
                }
                let (msgs, to) = if ka { (push_msgs, b) } else { (pull_msgs, a) };
                if learned[to] != u32::MAX {
                    // already learned it this round from someone else; the exchange is
                    // still made, but its fate changes nothing
                    continue;
                }
                if (0..msgs).all(|_| !rng.chance(loss)) {
                    learned[to] = round;
                    knowing += 1;
                }
            }
        }
    }
    round
}

/// What theory says for `(n, k, loss)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Theory {
    /// `log_{2k+1} n`: the leading term of the rounds without loss.
    pub log_2k1_n: f64,
    /// Mean rounds predicted by the mean-field recursion (docs/experiments.md).
    pub mean_field_mean: f64,
    /// 99th percentile predicted by the mean-field recursion.
    pub mean_field_p99: u32,
}

/// The theory for `(n, k, loss)` under `exchange`.
///
/// Mean field: with `u_t` the share of nodes not yet informed after round `t` (`u_0 = 1 −
/// 1/n`), an uninformed node stays so through round `t + 1` if none of its own `k` exchanges
/// pulls the update (each reaches an informed peer with probability `1 − u_t` and succeeds
/// with `q_pull`) and none of the `(1 − u_t)·n` informed nodes pushes to it (each picks it
/// with probability `k / (n − 1)` and succeeds with `q_push`):
/// `u_{t+1} = u_t · (1 − (1 − u_t)·q_pull)^k · (1 − k·q_push/(n − 1))^{(1 − u_t)·n}`.
/// Treating the uninformed nodes as independent, `P(T ≤ t) ≈ exp(−n·u_t)`, so
/// `E[T] = Σ_t (1 − exp(−n·u_t))` and the p99 is the first `t` with `exp(−n·u_t) ≥ 0.99`.
pub fn theory(n: usize, k: usize, loss: f64, exchange: Exchange) -> Theory {
    let nf = n as f64;
    let (push_msgs, pull_msgs) = exchange.messages();
    let (q_push, q_pull) = ((1.0 - loss).powi(push_msgs), (1.0 - loss).powi(pull_msgs));
    let kf = k as f64;
    let mut u = 1.0 - 1.0 / nf;
    let (mut mean, mut p99, mut t) = (0.0, None, 0u32);
    loop {
        let done = (-nf * u).exp();
        if p99.is_none() && done >= 0.99 {
            p99 = Some(t);
        }
        mean += 1.0 - done;
        if 1.0 - done < 1e-12 || t >= 100_000 {
            break;
        }
        u *= (1.0 - (1.0 - u) * q_pull).powf(kf)
            * (1.0 - kf * q_push / (nf - 1.0)).powf((1.0 - u) * nf);
        t += 1;
    }
    Theory {
        log_2k1_n: nf.ln() / (2.0 * kf + 1.0).ln(),
        mean_field_mean: mean,
        mean_field_p99: p99.unwrap_or(t),
    }
}

/// One cell of the Monte-Carlo grid.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    /// Fanout.
    pub k: usize,
    /// Message loss probability.
    pub loss: f64,
    /// Rounds to reach every node, over trials.
    pub rounds: Summary,
    /// Trials stopped by `max_rounds`.
    pub capped: usize,
    /// Theory for this cell.
    pub theory: Theory,
    /// design.md §4's `(mean, p99)` for this cell, if it quotes one.
    pub design: Option<(f64, f64)>,
}

/// gossipkv's real protocol (the simulator, one write) at one `(k, loss)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProtocolCell {
    /// Fanout.
    pub k: usize,
    /// Datagram (and stream) loss probability.
    pub loss: f64,
    /// Seeds run (`1..=seeds`).
    pub seeds: u64,
    /// `rounds_to_converge` over the seeds that converged.
    pub rounds: Summary,
    /// Seeds that did not converge within the simulator's `max_rounds`.
    pub not_converged: u64,
}

/// A whole push-pull experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PushPullReport {
    /// Always `"push-pull"`.
    pub experiment: &'static str,
    /// What was run.
    pub config: PushPullConfig,
    /// The Monte-Carlo grid, fanout-major (all losses of `fanouts[0]` first).
    pub cells: Vec<Cell>,
    /// The real protocol's runs, fanout-major.
    pub protocol: Vec<ProtocolCell>,
    /// Wall-clock time of the run; the only figure that is not a function of the config.
    pub wall_ms: u64,
}

/// The simulator configuration of one real-protocol run: `n` nodes, one write of one key, no
/// conflicts or deletes, fanout `k`, datagram and stream loss `loss`, the spec scenario's
/// network otherwise (5 ms latency, 0-5 ms jitter, 1 s interval); no cooldown or idle rounds.
pub fn protocol_config(n: usize, k: usize, loss: f64, seed: u64) -> SimConfig {
    let mut c = SimConfig::new(Scenario::Spec);
    c.nodes = n;
    c.keys = 1;
    c.writes = 1;
    c.conflict_rate = 0.0;
    c.delete_rate = 0.0;
    c.loss = loss;
    c.stream_loss = loss;
    c.gossip.fanout = k;
    c.seed = seed;
    c.cooldown_rounds = Some(0);
    c.idle_rounds = 0;
    c
}

/// Runs the Monte-Carlo grid and, if `protocol_seeds > 0`, the real protocol.
/// `progress` is called with a line of text after each cell.
pub fn run(cfg: &PushPullConfig, progress: &mut dyn FnMut(&str)) -> Result<PushPullReport, String> {
    cfg.validate()?;
    let started = Instant::now();
    let mut cells = Vec::new();
    for (i, &k) in cfg.fanouts.iter().enumerate() {
        for (j, &loss) in cfg.losses.iter().enumerate() {
            let rounds = par_map(cfg.trials, cfg.threads, |t| {
                let seed = derive_seed(cfg.seed, &[0x9_9a11, i as u64, j as u64, t as u64]);
                trial(cfg.nodes, k, loss, cfg.exchange, cfg.max_rounds, &mut Rng::new(seed))
            });
            let capped = rounds.iter().filter(|&&r| r >= cfg.max_rounds).count();
            let rounds: Vec<f64> = rounds.into_iter().map(f64::from).collect();
            let design = (cfg.nodes == 1000 && (loss - 0.1).abs() < 1e-9)
                .then(|| DESIGN_10PCT.iter().find(|d| d.0 == k).map(|d| (d.1, d.2)))
                .flatten();
            let cell = Cell {
                k,
                loss,
                rounds: Summary::of(&rounds),
                capped,
                theory: theory(cfg.nodes, k, loss, cfg.exchange),
                design,
            };
            progress(&format!(
                "push-pull model k={k} loss={loss}: mean {:.2} p99 {}",
                cell.rounds.mean, cell.rounds.p99
            ));
            cells.push(cell);
        }
    }
    let mut protocol = Vec::new();
    if cfg.protocol_seeds > 0 {
        for &k in &cfg.protocol_fanouts {
            for &loss in &cfg.losses {
                let seeds = cfg.protocol_seeds;
                let runs = par_map(seeds as usize, cfg.threads, |s| {
                    crate::run(&protocol_config(cfg.nodes, k, loss, s as u64 + 1), &mut |_| {})
                        .map(|r| if r.converged { r.rounds_to_converge } else { None })
                });
                let mut rounds = Vec::new();
                for r in runs {
                    if let Some(x) = r? {
                        rounds.push(f64::from(x));
                    }
                }
                let cell = ProtocolCell {
                    k,
                    loss,
                    seeds,
                    not_converged: seeds - rounds.len() as u64,
                    rounds: Summary::of(&rounds),
                };
                progress(&format!(
                    "gossipkv protocol k={k} loss={loss}: mean {:.2} max {} over {} seeds",
                    cell.rounds.mean, cell.rounds.max, seeds
                ));
                protocol.push(cell);
            }
        }
    }
    Ok(PushPullReport {
        experiment: "push-pull",
        config: cfg.clone(),
        cells,
        protocol,
        wall_ms: started.elapsed().as_millis() as u64,
    })
}

fn pct(loss: f64) -> String {
    format!("{}%", (loss * 1000.0).round() / 10.0)
}

/// The tables (Markdown): the Monte-Carlo grid beside theory and design.md, then the real
/// protocol beside the model.
pub fn table(r: &PushPullReport) -> String {
    let c = &r.config;
    let mut out = format!(
        "Push-pull anti-entropy, one update, n = {}: rounds until every node has it\n\
         model: synchronous rounds, {} exchanges, {} trials per cell, seed {}; \
         ours: mean ± std, p99, max; theory: log_(2k+1) n and the mean-field mean / p99\n\n",
        c.nodes,
        super::value_name(&c.exchange),
        c.trials,
        c.seed,
    );
    out.push_str(
        "| k | loss | model mean ± std | p99 | max | mean-field mean / p99 | log_(2k+1) n | \
         design.md mean / p99 |\n|---|---|---|---|---|---|---|---|\n",
    );
    for cell in &r.cells {
        out.push_str(&format!(
            "| {} | {} | {:.2} ± {:.2} | {} | {} | {:.2} / {} | {:.2} | {} |\n",
            cell.k,
            pct(cell.loss),
            cell.rounds.mean,
            cell.rounds.std,
            cell.rounds.p99,
            cell.rounds.max,
            cell.theory.mean_field_mean,
            cell.theory.mean_field_p99,
            cell.theory.log_2k1_n,
            cell.design.map_or("–".to_string(), |(m, p)| format!("{m:.1} / {p}")),
        ));
    }
    if !r.protocol.is_empty() {
        out.push_str(&format!(
            "\ngossipkv's protocol (`gossipkv sim`, one write, spec network: 5 ms + 0-5 ms \
             jitter, unsynchronised 1 s rounds), seeds 1..={}: rounds_to_converge beside the \
             model\n\n\
             | k | loss | ours mean ± std | max | not converged | model mean / p99 |\n\
             |---|---|---|---|---|---|\n",
            c.protocol_seeds
        ));
        for p in &r.protocol {
            let model = r
                .cells
                .iter()
                .find(|m| m.k == p.k && m.loss == p.loss)
                .map_or("–".to_string(), |m| format!("{:.2} / {}", m.rounds.mean, m.rounds.p99));
            out.push_str(&format!(
                "| {} | {} | {:.2} ± {:.2} | {} | {} | {} |\n",
                p.k,
                pct(p.loss),
                p.rounds.mean,
                p.rounds.std,
                p.rounds.max,
                p.not_converged,
                model
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theory_without_loss_is_near_the_log() {
        let t = theory(1000, 3, 0.0, Exchange::ThreeWay);
        assert!((t.log_2k1_n - 1000f64.ln() / 7f64.ln()).abs() < 1e-12);
        assert!(t.mean_field_mean > t.log_2k1_n && t.mean_field_mean < t.log_2k1_n + 3.0);
        assert!(f64::from(t.mean_field_p99) >= t.mean_field_mean - 1.0);
    }

    #[test]
    fn a_trial_reaches_everyone() {
        let mut rng = Rng::new(9);
        let r = trial(200, 2, 0.2, Exchange::TwoWay, 1000, &mut rng);
        assert!((3..40).contains(&r), "{r}");
        assert_eq!(pct(0.1), "10%");
    }
}
