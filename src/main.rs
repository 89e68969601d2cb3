//! `gossipkv`: the command-line entry point. Each subcommand's flags live in the crate that
//! implements it (`gossipkv_sim::cli::SimArgs` for `sim`, `gossipkv_node::cli` for `node` and `cluster`); this file only lists them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc: `gossipkv sim --keys 10000` (1,000 replicas, hundreds of millions of small
// allocations in one thread) ran in 64 s instead of 88 s with glibc malloc, for 14% more peak
// memory (1.95 GB instead of 1.71 GB); the report is identical either way.
// `--features system-alloc` keeps glibc malloc (for heap profilers that hook malloc).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// gossipkv: an eventually consistent, fully replicated LWW key-value store.
#[derive(Parser, Debug)]
#[command(name = "gossipkv", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the deterministic cluster simulator (virtual time, lossy network, LWW oracle)
    Sim(gossipkv_sim::cli::SimArgs),
    /// Run one node: Redis-protocol server plus gossip with its peers
    Node(gossipkv_node::cli::NodeArgs),
    /// Run N nodes in this process on 127.0.0.1 (node i serves RESP on base-port + i)
    Cluster(gossipkv_node::cli::ClusterArgs),
    /// Reproduce classic gossip results beside the published numbers (docs/experiments.md)
    Experiment(gossipkv_sim::experiments::ExperimentArgs),
    /// Chaos test against real node processes: faults, workload, LWW check (docs/reliability.md)
    Chaos(gossipkv_chaos::ChaosArgs),
}

fn main() -> ExitCode {
    // `Cli::parse()`, plus `gossipkv node`'s config file and GOSSIPKV_* variables
    let cli: Cli = gossipkv_node::config::parse_cli();
    match cli.command {
        Command::Sim(args) => gossipkv_sim::cli::main(args),
        Command::Node(args) => gossipkv_node::cli::node_main(args),
        Command::Cluster(args) => gossipkv_node::cli::cluster_main(args),
        Command::Experiment(args) => gossipkv_sim::experiments::main(args),
        Command::Chaos(args) => gossipkv_chaos::main(args),
    }
}
