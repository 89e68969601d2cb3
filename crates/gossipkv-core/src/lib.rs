//! gossipkv's protocol core: everything that decides, nothing that does I/O.
//!
//! - [`lww`]: the one total order that decides every conflict (start here).
//! - [`clock`]: HLC and Lamport timestamp sources, with injected physical time.
//! - [`digest`]: the stable hashes and the digest-tree geometry shared with the wire.
//! - [`store`]: the sharded, thread-safe replica store and its incremental digest.
//! - [`replica`]: a node's store and clock together: PUT/GET/DEL and remote merges.
//! - [`gossip`]: the per-node gossip state machine and its wire format.
//! - [`rng`]: the seeded PRNG the core takes as input.
//!
//! No module here reads a clock, opens a socket or uses a global RNG: time and randomness are
//! inputs, so the simulator and the network node drive the same code.

pub mod clock;
pub mod digest;
pub mod gossip;
pub mod lww;
pub mod replica;
pub mod rng;
pub mod store;

pub use clock::{Clock, ClockKind};
pub use lww::{ConcurrentSet, MergeOutcome, NodeId, Timestamp, Version, VersionRef};
pub use replica::Replica;
pub use store::{Store, StoreConfig, StoreStats};
