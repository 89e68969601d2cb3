//! `gossipkv experiment`: classic gossip results reproduced by one command, beside the
//! published numbers, with tables, JSON and plots.
//!
//! - [`demers`]: Demers et al. 1987, Table 1 (push rumor mongering with feedback and counter,
//!   n = 1,000, k = 1..5: residue, traffic, t_ave, t_last) on the paper's abstract model.
//! - [`push_pull`]: rounds for one update to reach every node under push-pull anti-entropy
//!   against fanout and loss, beside theory, design.md's figures and gossipkv's real protocol
//!   (through the simulator).
//! - [`plot`]: their SVG/PNG figures; [`stats`]: summaries, seeds, the parallel trial loop.
//!
//! Everything is a function of the flags: each trial has its own seeded
//! [`gossipkv_core::rng::Rng`] and results are gathered in trial order, so the output (JSON
//! minus `wall_ms`) is the same for a seed whatever the thread count. docs/experiments.md has
//! the measured tables and plots.

pub mod demers;
pub mod plot;
pub mod push_pull;
pub mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cli::emit;
use demers::{DemersConfig, DemersReport, DemersRow, Judge, Removal};
use push_pull::{Exchange, PushPullConfig};

/// Flags of `gossipkv experiment`: which experiment to run.
#[derive(Args, Clone, Debug)]
#[command(
    about = "Reproduce classic gossip results (Demers et al. 1987 Table 1; push-pull rounds)",
    long_about = "Runs an experiment on an abstract gossip model by Monte-Carlo, with seeded \
                  randomness, and prints a table beside the published numbers (--json: one JSON \
                  object). See docs/experiments.md."
)]
pub struct ExperimentArgs {
    /// The experiment.
    #[command(subcommand)]
    pub which: Experiment,
}

/// The experiments.
#[derive(Subcommand, Clone, Debug)]
pub enum Experiment {
    /// Demers et al. 1987, Table 1: push rumor mongering with feedback and counter
    Demers(DemersArgs),
    /// Push-pull anti-entropy: rounds to reach all nodes against fanout and loss, beside theory
    PushPull(PushPullArgs),
}

/// Flags of `gossipkv experiment demers`.
#[derive(Args, Clone, Debug)]
#[command(
    long_about = "Push rumor mongering with feedback and counter (Demers et al. 1987, §1.4, \
                  Table 1): synchronous cycles, every infective site pushes the update to one \
                  random other site per cycle, and loses interest after k unnecessary contacts \
                  (contacts with a site that already knew it). Prints residue s, traffic m, \
                  t_ave and t_last as mean ± std over trials beside the paper's Table 1. \
                  Exit status: 0, or with --check 1 if s, m or t_last is outside the paper's \
                  noise; 2 for invalid flags."
)]
pub struct DemersArgs {
    /// Number of sites n
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Counters k to run, comma-separated
    #[arg(long, short = 'k', value_delimiter = ',', default_value = "1,2,3,4,5")]
    pub k: Vec<u32>,
    /// Independent epidemics per k
    #[arg(long, default_value_t = 10_000)]
    pub trials: usize,
    /// Master seed (trial t of counter k draws from a seed derived from seed, k and t)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// When a contact is unnecessary: synchronous = the recipient knew the update at the
    /// start of the cycle (the paper's numbers); sequential = at the moment of the contact,
    /// contacts taken in site order
    #[arg(long, value_enum, default_value_t = Judge::Synchronous)]
    pub judge: Judge,
    /// How a site loses interest: feedback-counter = after k unnecessary contacts (Table 1);
    /// blind-coin = with probability 1/k after every contact (Table 2, printed beside it)
    #[arg(long, value_enum, default_value_t = Removal::FeedbackCounter)]
    pub removal: Removal,
    /// The counter only ever grows (default: a necessary contact resets it, as the paper's
    /// traffic bound describes)
    #[arg(long)]
    pub no_reset: bool,
    /// Worker threads (0: all cores); the results do not depend on it
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON object to this file
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Write the Table 1 figure (four panels against k) to this .svg or .png file
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write the mean share of sites knowing the update per cycle, per k, to this .svg or .png
    #[arg(long)]
    pub plot_spread: Option<PathBuf>,
    /// Exit with status 1 unless residue, traffic and t_last are within the paper's noise
    #[arg(long)]
    pub check: bool,
}

/// Flags of `gossipkv experiment push-pull`.
#[derive(Args, Clone, Debug)]
#[command(long_about = "Rounds until one update reaches every node under push-pull anti-entropy: \
                  synchronous rounds, every node exchanges with k random peers per round, each \
                  message lost independently. Monte-Carlo over a fanout × loss grid, beside \
                  log_(2k+1) n, a mean-field prediction and design.md §4's figures; with \
                  --protocol-seeds > 0 also gossipkv's real protocol (the simulator, one write) \
                  at --protocol-fanouts. Exit status: 0, 2 for invalid flags.")]
pub struct PushPullArgs {
    /// Number of nodes n
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Fanouts k of the grid, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6,7,8,9,10")]
    pub fanouts: Vec<usize>,
    /// Message loss probabilities of the grid, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.3")]
    pub losses: Vec<f64>,
    /// Monte-Carlo trials per (k, loss)
    #[arg(long, default_value_t = 1000)]
    pub trials: usize,
    /// Master seed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exchange shape: three-way = digest, digest + pulled entries, pushed entries (pull needs
    /// 2 messages, push 3); two-way = request and reply both carry entries (push 1, pull 2);
    /// rumor = gossipkv's rumor path, ids first (push 3, pull 4)
    #[arg(long, value_enum, default_value_t = Exchange::ThreeWay)]
    pub exchange: Exchange,
    /// Simulator runs of gossipkv's protocol (seeds 1..=N) per protocol fanout and loss; 0
    /// skips them
    #[arg(long, default_value_t = 20)]
    pub protocol_seeds: u64,
    /// Fanouts at which gossipkv's protocol runs, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    pub protocol_fanouts: Vec<usize>,
    /// Worker threads (0: all cores); the results do not depend on it
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object instead of the tables
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON object to this file
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Write the rounds-against-fanout figure (one panel per loss) to this .svg or .png file
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress lines on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The kebab-case name clap shows for a value of a `ValueEnum`.
pub(crate) fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value().map_or_else(String::new, |p| p.get_name().to_string())
}

/// How one row of ours compares with the paper's Table 1.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// The counter.
    pub k: u32,
    /// Residue within 20% of the paper's, plus 3 standard errors of ours.
    pub residue: bool,
    /// Traffic within 5% of the paper's, plus 3 standard errors of ours.
    pub traffic: bool,
    /// `t_ave` within 0.5 cycles of the paper's, plus 3 standard errors of ours.
    pub t_ave: bool,
    /// `t_last` within 0.5 cycles of the paper's, plus 3 standard errors of ours.
    pub t_last: bool,
}

impl Agreement {
    /// Whether the columns the model pins down (residue, traffic, `t_last`) agree.
    /// `t_ave` is reported but not required: docs/experiments.md explains why.
    pub fn reproduced(&self) -> bool {
        self.residue && self.traffic && self.t_last
    }
}

/// Compares a row with the paper's ("within the paper's noise": the paper gives no error
/// bars, so the tolerance is its rounding plus a margin: residue ±20%, traffic ±5%, times
/// ±0.5 cycles, each widened by 3 standard errors of our mean). `None` if the paper has no
/// row for this `k` (or the run was not at n = 1,000).
pub fn agreement(row: &DemersRow) -> Option<Agreement> {
    let p = row.paper?;
    let ok = |ours: &stats::Summary, paper: f64, tol: f64| {
        (ours.mean - paper).abs() <= tol + 3.0 * ours.sem()
    };
    Some(Agreement {
        k: row.k,
        residue: ok(&row.residue, p.residue, 0.2 * p.residue),
        traffic: ok(&row.traffic, p.traffic, 0.05 * p.traffic),
        t_ave: ok(&row.t_ave, p.t_ave, 0.5),
        t_last: ok(&row.t_last, p.t_last, 0.5),
    })
}

fn agreement_text(r: &DemersReport) -> String {
    let mark = |b: bool| if b { "yes" } else { "NO" };
    let mut out = String::from(
        "\nwithin the paper's noise (s ±20%, m ±5%, t_ave and t_last ±0.5 cycles, each plus 3 \
         standard errors of ours):\n",
    );
    for a in r.rows.iter().filter_map(agreement) {
        out.push_str(&format!(
            "  k={}: s {}, m {}, t_ave {}, t_last {}\n",
            a.k,
            mark(a.residue),
            mark(a.traffic),
            mark(a.t_ave),
            mark(a.t_last)
        ));
    }
    out
}

/// Runs `gossipkv experiment …` and returns the process exit status.
pub fn main(args: ExperimentArgs) -> ExitCode {
    let result = match args.which {
        Experiment::Demers(a) => demers_main(a),
        Experiment::PushPull(a) => push_pull_main(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gossipkv experiment: {e}");
            ExitCode::from(2)
        }
    }
}

fn write_json(path: &std::path::Path, json: &str) -> Result<(), String> {
    std::fs::write(path, format!("{json}\n")).map_err(|e| format!("{}: {e}", path.display()))
}

fn demers_main(a: DemersArgs) -> Result<ExitCode, String> {
    let cfg = DemersConfig {
        nodes: a.nodes,
        ks: a.k,
        trials: a.trials,
        seed: a.seed,
        removal: a.removal,
        judge: a.judge,
        reset_on_necessary: !a.no_reset,
        threads: a.threads,
    };
    let report = demers::run(&cfg)?;
    #[derive(serde::Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        report: &'a DemersReport,
        agreement: Vec<Agreement>,
    }
    let out =
        Out { report: &report, agreement: report.rows.iter().filter_map(agreement).collect() };
    let json = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
    if let Some(p) = &a.json_out {
        write_json(p, &json)?;
    }
    if a.json {
        emit(&format!("{json}\n"));
    } else {
        emit(&format!(
            "{}{}({} ms)\n",
            demers::table(&report),
            agreement_text(&report),
            report.wall_ms
        ));
    }
    if let Some(p) = &a.plot {
        plot::plot_demers(&report, p)?;
    }
    if let Some(p) = &a.plot_spread {
        plot::plot_demers_spread(&report, p)?;
    }
    let failed = report.rows.iter().filter_map(agreement).any(|a| !a.reproduced());
    Ok(if a.check && failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn push_pull_main(a: PushPullArgs) -> Result<ExitCode, String> {
    let cfg = PushPullConfig {
        nodes: a.nodes,
        fanouts: a.fanouts,
        losses: a.losses,
        trials: a.trials,
        seed: a.seed,
        exchange: a.exchange,
        protocol_seeds: a.protocol_seeds,
        protocol_fanouts: a.protocol_fanouts,
        threads: a.threads,
        ..PushPullConfig::default()
    };
    let quiet = a.quiet;
    let report = push_pull::run(&cfg, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    if let Some(p) = &a.json_out {
        write_json(p, &json)?;
    }
    if a.json {
        emit(&format!("{json}\n"));
    } else {
        emit(&format!("{}({} ms)\n", push_pull::table(&report), report.wall_ms));
    }
    if let Some(p) = &a.plot {
        plot::plot_push_pull(&report, p)?;
    }
    Ok(ExitCode::SUCCESS)
}
