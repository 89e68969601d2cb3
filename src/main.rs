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
        Command::Sim(args) => {
            keep_freed_memory();
            gossipkv_sim::cli::main(args)
        }
        Command::Node(args) => gossipkv_node::cli::node_main(args),
        Command::Cluster(args) => gossipkv_node::cli::cluster_main(args),
        Command::Experiment(args) => {
            keep_freed_memory();
            gossipkv_sim::experiments::main(args)
        }
        Command::Chaos(args) => gossipkv_chaos::main(args),
    }
}

/// mimalloc 3's `mi_option_purge_delay` (its include/mimalloc.h: the 16th `mi_option_e`);
/// libmimalloc-sys names the options around it (14 and 16) but not this one. The test below
/// checks that the option at this index has the purge delay's default, so that a mimalloc
/// whose options moved fails CI instead of having some other option set.
#[cfg(not(feature = "system-alloc"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed memory to the kernel, for a simulation: its memory
/// only grows until it ends, and its message buffers, freed as each delivery is merged, are
/// better reused than given back and faulted in again (on dev-2c a fresh page costs a host
/// fault; docs/benchmarks.md, "Session 24", has the burst with and without). A node keeps
/// mimalloc's default (purge a second after a free), so that its memory shrinks after
/// deletes.
fn keep_freed_memory() {
    #[cfg(not(feature = "system-alloc"))]
    // SAFETY: `mi_option_set` takes plain integers and only stores the value in mimalloc's
    // option table; -1 means "never purge".
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

#[cfg(all(test, not(feature = "system-alloc")))]
mod tests {
    #[test]
    fn the_purge_delay_option_is_where_keep_freed_memory_sets_it() {
        // mimalloc 3's default purge delay is 1,000 ms (src/options.c), unless the
        // environment sets it
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer from mimalloc's option table
            #[allow(unsafe_code)]
            let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(delay, 1000, "option 15 is not mimalloc's purge delay");
        }
        super::keep_freed_memory();
        // SAFETY: as above
        #[allow(unsafe_code)]
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, -1);
    }
}
