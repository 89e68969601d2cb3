//! Gossip: the node state machine ([`node`]) and the bytes it exchanges ([`wire`]).
//!
//! Sans-IO: a driver feeds in time and received messages and sends what the node emits.

pub mod auth;
pub mod members;
pub mod node;
pub mod wire;

pub use members::{
    ForgetError, MemberNews, MemberRecord, MemberStats, Membership, MembershipConfig, Status,
};
pub use node::{
    GossipConfig, MAX_STREAM_MESSAGE, MAX_WRITE_BYTES, Node, NodeStats, Transmit, Transport,
};
pub use wire::{Body, DecodeError, EntryList, Hello, Message, VersionId, WireEntry};
