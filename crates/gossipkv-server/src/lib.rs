//! The client-facing half of a gossipkv node: a Redis-protocol (RESP2, and RESP3 after `HELLO 3`)
//! server over the replica store, so `redis-cli`, `redis-benchmark` and every Redis client library
//! talk to a node unchanged.
//!
//! - [`resp`]: the hand-written, incremental, limit-checked RESP parser and reply writer.
//! - [`server`]: [`serve`]: the accept loop, the connection limit, graceful shutdown.
//! - `connection` (private): one client: buffered reads, pipelined execution, one write per
//!   batch.
//! - `cmd` (private): the commands, one file per family (connection, strings, lww, keyspace,
//!   server); `COMMAND LIST` on a running node lists them.
//! - [`spin`]: the event loop's short busy-wait before it sleeps.
//! - [`config`]: [`ServerConfig`]. [`hooks`]: [`WriteObserver`] and [`InfoSource`], where
//!   the gossip layer plugs in. [`metrics`]: counters. [`glob`]: Redis glob patterns.
//!
//! The store is synchronous and sharded ([`gossipkv_core::Replica`] is `Send + Sync`):
//! commands call it directly and no lock is ever held across an `.await`. The server reads the
//! wall clock (milliseconds since the UNIX epoch) and passes it to the core, which never reads
//! a clock itself.
//!
//! ```no_run
//! use std::sync::Arc;
//! use gossipkv_core::{ClockKind, Replica, StoreConfig};
//! use gossipkv_server::{ServerConfig, ServerContext, serve};
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = ServerConfig::default();
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! let replica = Arc::new(Replica::new(0, ClockKind::Hlc, StoreConfig::default()));
//! serve(listener, replica, ServerContext::new(config), tokio::signal::ctrl_c()).await
//! # }
//! ```

mod cmd;
pub mod config;
mod connection;
pub mod glob;
pub mod hooks;
pub mod metrics;
pub mod resp;
pub mod server;
pub mod spin;

pub use config::ServerConfig;
pub use hooks::{
    AdminFuture, ClusterAdmin, InfoSection, InfoSource, NoAdmin, NoInfo, NoopObserver,
    WriteObserver,
};
pub use metrics::{CommandStats, Metrics, MetricsSnapshot};
pub use server::{ServerContext, serve};
