//! Demers et al. 1987, "Epidemic Algorithms for Replicated Database Maintenance" (PODC '87),
//! Table 1: push rumor mongering with feedback and a counter, n = 1,000 sites, k = 1..5.
//!
//! The model, as §1.4 of the paper defines it:
//!
//! - One update, injected at one random site at time 0. A site is *susceptible* (does not know
//!   it), *infective* (knows it and spreads it) or *removed* (knows it, no longer spreads it).
//! - Synchronous cycles. In every cycle each site that is infective at the start of the cycle
//!   pushes the update to one site chosen uniformly among the other `n − 1`. Sites infected in
//!   a cycle start pushing in the next one.
//! - Feedback: the sender learns whether the recipient already knew the update. A contact is
//!   *unnecessary* if it did. Counter: the sender becomes removed after `k` unnecessary
//!   contacts; a necessary contact resets its count ("each unnecessary message was sent by a
//!   site that, within the last k cycles, sent a necessary message, or newly discovered the
//!   update", the paper's traffic bound).
//! - The epidemic ends when no site is infective.
//!
//! Two details the text leaves open are options ([`Judge`], [`DemersConfig::reset_on_necessary`]);
//! the defaults are the reading under which the simulation reproduces the paper's residue and
//! traffic (docs/experiments.md shows the alternatives beside it).
//!
//! [`Removal::BlindCoin`] runs the paper's Table 2 instead (blind and coin: lose interest with
//! probability 1/k after every contact), a control for the `t_ave` column: see
//! [`implied_new_site_arrival`] and docs/experiments.md.
//!
//! Measured per trial, as the paper's columns: residue `s` (share of sites still susceptible
//! at the end), traffic `m` (update messages sent ÷ n), `t_ave` (mean cycle at which a site
//! first received the update, over the sites that received it, the injecting site excluded)
//! and `t_last` (the cycle at which the last site that ever receives it did).

use std::time::Instant;

use gossipkv_core::rng::Rng;
use serde::Serialize;

use super::stats::{Summary, derive_seed, par_map};

/// One row of the paper's Table 1 ("feedback, counter") or Table 2 ("blind, coin"); push,
/// n = 1,000.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PaperRow {
    /// The counter `k`.
    pub k: u32,
    /// Residue `s`: share of sites that never receive the update.
    pub residue: f64,
    /// Traffic `m`: update messages per site.
    pub traffic: f64,
    /// Mean delay in cycles.
    pub t_ave: f64,
    /// Delay of the last site to receive the update, in cycles.
    pub t_last: f64,
}

/// Table 1 of Demers et al. 1987, as published (push, feedback, counter, n = 1,000); checked
/// against the CSL-89-1 version's scan (p. 10) and the PODC '87 errata, which retitle the table
/// "Performance of an epidemic on 1000 sites using feedback and counters".
pub const PAPER_TABLE1: [PaperRow; 5] = [
    PaperRow { k: 1, residue: 0.18, traffic: 1.7, t_ave: 11.0, t_last: 16.8 },
    PaperRow { k: 2, residue: 0.037, traffic: 3.3, t_ave: 12.1, t_last: 16.9 },
    PaperRow { k: 3, residue: 0.011, traffic: 4.5, t_ave: 12.5, t_last: 17.4 },
    PaperRow { k: 4, residue: 0.0036, traffic: 5.6, t_ave: 12.7, t_last: 17.5 },
    PaperRow { k: 5, residue: 0.0012, traffic: 6.7, t_ave: 12.8, t_last: 17.7 },
];

/// Table 2 of Demers et al. 1987, as published (push, blind, coin: after every contact the
/// sender loses interest with probability 1/k; n = 1,000). Checked against the CSL-89-1
/// scan, p. 10, like Table 1.
pub const PAPER_TABLE2: [PaperRow; 5] = [
    PaperRow { k: 1, residue: 0.96, traffic: 0.04, t_ave: 19.0, t_last: 38.0 },
    PaperRow { k: 2, residue: 0.20, traffic: 1.6, t_ave: 17.0, t_last: 33.0 },
    PaperRow { k: 3, residue: 0.060, traffic: 2.8, t_ave: 15.0, t_last: 32.0 },
    PaperRow { k: 4, residue: 0.021, traffic: 3.9, t_ave: 14.1, t_last: 32.0 },
    PaperRow { k: 5, residue: 0.008, traffic: 4.9, t_ave: 13.8, t_last: 32.0 },
];

/// The paper's row for counter `k` under `removal`, if its table has one.
pub fn paper_row(removal: Removal, k: u32) -> Option<PaperRow> {
    let table = match removal {
        Removal::FeedbackCounter => &PAPER_TABLE1,
        Removal::BlindCoin => &PAPER_TABLE2,
    };
    table.iter().copied().find(|r| r.k == k)
}

/// The mean arrival cycle that the sites reached at `row.k` but not at `prev.k` would need
/// for both rows' `t_ave` to hold: `((1 − s)·t_ave − (1 − s')·t_ave') / (s' − s)`, primes for
/// `prev`. It rests on one premise: a more persistent epidemic (larger k) does not deliver
/// to the sites it shares with a less persistent one later, which holds when
/// every early contact is necessary and the counter only acts on unnecessary ones (our
/// spread curves, docs/experiments.md). A consistent table has this at or below `row.t_last`
/// (no site arrives after the last one); `None` if the residue did not fall.
pub fn implied_new_site_arrival(prev: &PaperRow, row: &PaperRow) -> Option<f64> {
    let gained = prev.residue - row.residue;
    (gained > 0.0)
        .then(|| ((1.0 - row.residue) * row.t_ave - (1.0 - prev.residue) * prev.t_ave) / gained)
}

/// When a contact counts as unnecessary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Judge {
    /// All contacts of a cycle are simultaneous: a contact is unnecessary iff the recipient
    /// knew the update at the start of the cycle (two senders that reach the same susceptible
    /// site in one cycle both made a necessary contact). The default: it reproduces Table 1.
    Synchronous,
    /// Contacts are delivered one at a time in site order: a recipient infected earlier in the
    /// same cycle already counts as knowing the update.
    Sequential,
}

/// How an infective site loses interest (the paper's "Blind vs. Feedback" and "Counter vs.
/// Coin" variations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Removal {
    /// Feedback and counter: removed after `k` unnecessary contacts (Table 1; the default).
    FeedbackCounter,
    /// Blind and coin: after every contact, necessary or not, removed with probability
    /// `1/k` (Table 2).
    BlindCoin,
}

/// One Demers experiment: a set of counters, each run for `trials` independent epidemics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemersConfig {
    /// Number of sites `n`.
    pub nodes: usize,
    /// The counters `k` to run (Table 1: 1..=5).
    pub ks: Vec<u32>,
    /// Independent epidemics per counter.
    pub trials: usize,
    /// Master seed; trial `t` of counter `k` uses a seed derived from `(seed, k, t)`.
    pub seed: u64,
    /// How a site loses interest (Table 1: feedback and counter; Table 2: blind and coin).
    pub removal: Removal,
    /// When a contact is unnecessary.
    pub judge: Judge,
    /// Whether a necessary contact resets the sender's count of unnecessary ones (the
    /// paper's reading, default) or the counter only ever grows.
    pub reset_on_necessary: bool,
    /// Worker threads (0: the machine's parallelism). Does not change the results.
    #[serde(skip)]
    pub threads: usize,
}

impl Default for DemersConfig {
    /// Table 1's setting: n = 1,000, k = 1..5, 10,000 trials per k, seed 1.
    fn default() -> Self {
        DemersConfig {
            nodes: 1000,
            ks: (1..=5).collect(),
            trials: 10_000,
            seed: 1,
            removal: Removal::FeedbackCounter,
            judge: Judge::Synchronous,
            reset_on_necessary: true,
            threads: 0,
        }
    }
}

impl DemersConfig {
    /// Checks the values the model cannot run.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 {
            return Err(format!("nodes must be at least 2, got {}", self.nodes));
        }
        if self.nodes > u32::MAX as usize {
            return Err("too many nodes".into());
        }
        if self.ks.is_empty() || self.ks.contains(&0) {
            return Err("counters k must be non-empty and each at least 1".into());
        }
        if self.trials == 0 {
            return Err("trials must be at least 1".into());
        }
        Ok(())
    }
}

/// The outcome of one epidemic.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// Sites still susceptible at the end ÷ n.
    pub residue: f64,
    /// Update messages sent ÷ n.
    pub traffic: f64,
    /// Mean cycle of first reception over the sites that received the update (injecting site
    /// excluded); 0 if none did.
    pub t_ave: f64,
    /// Cycle of the last first reception (0 if no site received it).
    pub t_last: u32,
    /// Cycles until no site was infective.
    pub cycles: u32,
    /// Messages sent in total.
    pub messages: u64,
    /// Sites that know the update at the end (the injecting site included).
    pub knowing: u32,
    /// `knowing_by_cycle[c]`: sites that know the update at the end of cycle `c` (index 0:
    /// the injection).
    pub knowing_by_cycle: Vec<u32>,
}

const SUSCEPTIBLE: u8 = 0;
const INFECTIVE: u8 = 1;
const REMOVED: u8 = 2;

/// Runs one epidemic of push rumor mongering with feedback and counter `k` on `n` sites.
pub fn trial(n: usize, k: u32, judge: Judge, reset_on_necessary: bool, rng: &mut Rng) -> Trial {
    run_trial(n, k, Removal::FeedbackCounter, judge, reset_on_necessary, rng)
}

/// Runs one epidemic of push rumor mongering on `n` sites, sites losing interest as `removal`
/// says with parameter `k`. With [`Removal::FeedbackCounter`] it draws exactly what
/// [`trial`] draws.
pub fn run_trial(
    n: usize,
    k: u32,
    removal: Removal,
    judge: Judge,
    reset_on_necessary: bool,
    rng: &mut Rng,
) -> Trial {
    assert!(n >= 2 && k >= 1, "n >= 2 and k >= 1");
    let mut state = vec![SUSCEPTIBLE; n];
    let mut unnecessary = vec![0u32; n];
    // cycle of first reception; u32::MAX = never
    let mut received = vec![u32::MAX; n];
    let origin = rng.below(n as u64) as usize;
    state[origin] = INFECTIVE;
    received[origin] = 0;
    let mut infective = vec![origin as u32];
    let mut next = Vec::new();
    let mut newly = Vec::new();
    let mut knowing_by_cycle = vec![1u32];
    let mut knowing = 1u32;
    let (mut messages, mut cycle) = (0u64, 0u32);
    let (mut sum_t, mut t_last) = (0u64, 0u32);
    while !infective.is_empty() {
        cycle += 1;
        for &s in &infective {
            let s = s as usize;
            let mut d = rng.below(n as u64 - 1) as usize;
            if d >= s {
                d += 1;
            }
            messages += 1;
            let necessary = match judge {
                // susceptible at the start of this cycle: still susceptible, or infected in
                // this very cycle by another sender
                Judge::Synchronous => state[d] == SUSCEPTIBLE || received[d] == cycle,
                Judge::Sequential => state[d] == SUSCEPTIBLE,
            };
            if state[d] == SUSCEPTIBLE {
                state[d] = INFECTIVE;
                received[d] = cycle;
                newly.push(d as u32);
                knowing += 1;
                sum_t += u64::from(cycle);
                t_last = cycle;
            }
            if removal == Removal::BlindCoin {
                // blind: the recipient's answer is ignored; coin: lose interest w.p. 1/k
                if rng.below(u64::from(k)) == 0 {
                    unnecessary[s] = k;
                }
            } else if necessary {
                if reset_on_necessary {
                    unnecessary[s] = 0;
                }
            } else {
                unnecessary[s] += 1;
            }
        }
        next.clear();
        for &s in &infective {
            if unnecessary[s as usize] >= k {
                state[s as usize] = REMOVED;
            } else {
                next.push(s);
            }
        }
        next.append(&mut newly);
        std::mem::swap(&mut infective, &mut next);
        knowing_by_cycle.push(knowing);
    }
    let reached = knowing - 1;
    Trial {
        residue: f64::from(n as u32 - knowing) / n as f64,
        traffic: messages as f64 / n as f64,
        t_ave: if reached == 0 { 0.0 } else { sum_t as f64 / f64::from(reached) },
        t_last,
        cycles: cycle,
        messages,
        knowing,
        knowing_by_cycle,
    }
}

/// Our figures for one counter `k`, beside the paper's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemersRow {
    /// The counter.
    pub k: u32,
    /// Residue `s` over trials.
    pub residue: Summary,
    /// Traffic `m` over trials.
    pub traffic: Summary,
    /// `t_ave` over trials.
    pub t_ave: Summary,
    /// `t_last` over trials.
    pub t_last: Summary,
    /// Cycles until quiescence (no infective site) over trials.
    pub cycles: Summary,
    /// Trials whose traffic broke the counter's lower bound `(k + 1)·m − 1` messages for `m`
    /// sites that know the update (must be 0; not checked for blind and coin).
    pub bound_violations: usize,
    /// Mean share of sites that know the update at the end of each cycle (index 0: the
    /// injection), a trial that already ended counting with its final share.
    pub knowing_share_by_cycle: Vec<f64>,
    /// The paper's row (Table 1, or Table 2 for blind and coin), if it has one for this `k`.
    pub paper: Option<PaperRow>,
}

/// A whole Demers experiment: the configuration echoed and one row per counter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemersReport {
    /// Always `"demers"`.
    pub experiment: &'static str,
    /// What was run.
    pub config: DemersConfig,
    /// One row per counter, in the order of `config.ks`.
    pub rows: Vec<DemersRow>,
    /// Wall-clock time of the run; the only figure that is not a function of the config.
    pub wall_ms: u64,
}

/// Runs every counter of `cfg` for `cfg.trials` epidemics.
pub fn run(cfg: &DemersConfig) -> Result<DemersReport, String> {
    cfg.validate()?;
    let started = Instant::now();
    let mut rows = Vec::with_capacity(cfg.ks.len());
    for &k in &cfg.ks {
        let trials = par_map(cfg.trials, cfg.threads, |t| {
            let mut rng = Rng::new(derive_seed(cfg.seed, &[0xde3e5, u64::from(k), t as u64]));
            run_trial(cfg.nodes, k, cfg.removal, cfg.judge, cfg.reset_on_necessary, &mut rng)
        });
        let col =
            |f: &dyn Fn(&Trial) -> f64| Summary::of(&trials.iter().map(f).collect::<Vec<_>>());
        // the counter's bound; a coin has none (a site may stop after one necessary contact)
        let bound_violations = match cfg.removal {
            Removal::FeedbackCounter => trials
                .iter()
                .filter(|t| t.messages + 1 < u64::from(k + 1) * u64::from(t.knowing))
                .count(),
            Removal::BlindCoin => 0,
        };
        let longest = trials.iter().map(|t| t.knowing_by_cycle.len()).max().unwrap_or(1);
        let knowing_share_by_cycle = (0..longest)
            .map(|c| {
                let sum: u64 = trials
                    .iter()
                    .map(|t| {
                        let v = &t.knowing_by_cycle;
                        u64::from(v.get(c).or(v.last()).copied().unwrap_or(0))
                    })
                    .sum();
                sum as f64 / (trials.len() as f64 * cfg.nodes as f64)
            })
            .collect();
        rows.push(DemersRow {
            k,
            residue: col(&|t| t.residue),
            traffic: col(&|t| t.traffic),
            t_ave: col(&|t| t.t_ave),
            t_last: col(&|t| f64::from(t.t_last)),
            cycles: col(&|t| f64::from(t.cycles)),
            bound_violations,
            knowing_share_by_cycle,
            paper: if cfg.nodes == 1000 { paper_row(cfg.removal, k) } else { None },
        });
    }
    Ok(DemersReport {
        experiment: "demers",
        config: cfg.clone(),
        rows,
        wall_ms: started.elapsed().as_millis() as u64,
    })
}

/// `x` with `digits` significant digits (the paper prints residues with two).
fn sig(x: f64, digits: i32) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let decimals = (digits - 1 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// The side-by-side table (Markdown): ours as mean ± standard deviation over trials, the
/// paper's value beside each column.
pub fn table(r: &DemersReport) -> String {
    let c = &r.config;
    let title = match c.removal {
        Removal::FeedbackCounter => "Table 1: push rumor mongering, feedback, counter",
        Removal::BlindCoin => "Table 2: push rumor mongering, blind, coin",
    };
    let mut out = format!(
        "Demers et al. 1987, {title}; n = {}, {} trials per k, seed {}, judge {}, counter reset \
         on a necessary contact: {}\n\
         ours: mean ± std over trials; paper: as published\n\n",
        c.nodes,
        c.trials,
        c.seed,
        super::value_name(&c.judge),
        if c.reset_on_necessary { "yes" } else { "no" },
    );
    out.push_str(
        "| k | residue s (ours) | s (paper) | traffic m (ours) | m (paper) | t_ave (ours) | \
         t_ave (paper) | t_last (ours) | t_last (paper) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        let p = |f: fn(&PaperRow) -> String| row.paper.as_ref().map_or("–".to_string(), f);
        out.push_str(&format!(
            "| {} | {} ± {} | {} | {:.2} ± {:.2} | {} | {:.2} ± {:.2} | {} | {:.2} ± {:.2} | {} |\n",
            row.k,
            sig(row.residue.mean, 3),
            sig(row.residue.std, 2),
            p(|p| sig(p.residue, 2)),
            row.traffic.mean,
            row.traffic.std,
            p(|p| sig(p.traffic, 2)),
            row.t_ave.mean,
            row.t_ave.std,
            p(|p| format!("{:.1}", p.t_ave)),
            row.t_last.mean,
            row.t_last.std,
            p(|p| format!("{:.1}", p.t_last)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_prints_like_the_paper() {
        assert_eq!(sig(0.18, 2), "0.18");
        assert_eq!(sig(0.037, 2), "0.037");
        assert_eq!(sig(0.0012, 2), "0.0012");
        assert_eq!(sig(1.7, 2), "1.7");
        assert_eq!(sig(0.17449, 3), "0.174");
    }

    #[test]
    fn small_epidemic_accounts_for_every_site() {
        let mut rng = Rng::new(3);
        for judge in [Judge::Synchronous, Judge::Sequential] {
            let t = trial(50, 2, judge, true, &mut rng);
            assert_eq!(*t.knowing_by_cycle.last().unwrap_or(&0), t.knowing);
            assert_eq!(t.knowing_by_cycle.len(), t.cycles as usize + 1);
            assert!(t.messages + 1 >= 3 * u64::from(t.knowing));
            assert!(t.t_last <= t.cycles);
        }
    }

    #[test]
    fn blind_coin_with_k_1_is_a_chain() {
        // every site pushes once and stops: one message per site that knows, delivered one
        // cycle after another, until a push lands on a site that already knew
        let mut rng = Rng::new(5);
        for _ in 0..50 {
            let t = run_trial(200, 1, Removal::BlindCoin, Judge::Synchronous, true, &mut rng);
            assert_eq!(t.messages, u64::from(t.knowing));
            assert_eq!(t.t_last, t.knowing - 1);
            assert_eq!(t.cycles, t.knowing);
            let chain_mean = f64::from(t.knowing) / 2.0; // mean of 1..=knowing-1
            assert!((t.t_ave - chain_mean).abs() < 1e-9 || t.knowing == 1);
        }
    }

    #[test]
    fn implied_arrival_of_the_new_sites() {
        let prev = PaperRow { k: 1, residue: 0.5, traffic: 1.0, t_ave: 10.0, t_last: 15.0 };
        let row = PaperRow { k: 2, residue: 0.0, traffic: 2.0, t_ave: 11.0, t_last: 15.0 };
        // half the sites at 10 on average, so the other half must average 12
        assert_eq!(implied_new_site_arrival(&prev, &row), Some(12.0));
        assert_eq!(implied_new_site_arrival(&row, &prev), None);
    }
}
