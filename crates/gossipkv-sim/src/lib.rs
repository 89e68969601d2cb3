//! `gossipkv sim`: a deterministic discrete-event simulator of a whole gossipkv cluster in one
//! process.
//!
//! n protocol cores ([`gossipkv_core::gossip::Node`], or the naive baseline) run on a virtual
//! network with loss, latency and jitter, duplication, partitions, crashes that lose memory,
//! and per-node clock skew. One event queue orders everything by virtual time; every random
//! choice comes from a seeded [`gossipkv_core::rng::Rng`], so a seed reproduces a run exactly.
//! An oracle computes the LWW join of every surviving write and checks every node against it,
//! key by key and concurrent value by concurrent value.
//!
//! - [`config`]: what a run is ([`SimConfig`], scenarios).
//! - [`workload`]: keys, values, conflict groups and deletes.
//! - [`net`]: virtual addresses, the event queue, partitions.
//! - [`protocol`]: the node state machines driven (gossip, naive).
//! - [`oracle`]: the LWW join and the checks, lost-write accounting.
//! - [`sim`]: the run loop ([`run`]).
//! - [`report`]: the JSON report and the summary; [`plot`]: SVG/PNG plots.
//! - [`cli`]: the `gossipkv sim` flags.
//! - [`experiments`]: `gossipkv experiment` (Demers et al. 1987 Table 1, push-pull rounds).
//!
//! docs/simulator.md describes the model and every metric.

pub mod cli;
pub mod config;
pub mod experiments;
pub mod hostile;
pub mod net;
pub mod oracle;
pub mod plot;
pub mod protocol;
pub mod report;
pub mod sim;
pub mod workload;

pub use config::{ClockChoice, Faults, InjectedBug, Protocol, Scenario, SimConfig};
pub use report::Report;
pub use sim::{Progress, run};
