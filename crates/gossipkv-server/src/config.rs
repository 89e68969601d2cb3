//! How a server is set up: where it listens, how many clients it takes, the protocol limits,
//! an optional password, and the tokio runtime it runs on.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::resp::Limits;
use crate::spin::IdleSpin;

/// Server settings. `Default` listens on 127.0.0.1:6379 (the Redis port, since clients
/// expect it), takes 10,000 clients (Redis's `maxclients`), uses [`Limits::default`], no
/// password and [`ServerConfig::DEFAULT_WORKER_THREADS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on (callers that bind their own listener may ignore it).
    pub listen: SocketAddr,
    /// Most clients connected at once; one more gets `-ERR max number of clients reached`
    /// and is closed, like Redis.
    pub max_connections: usize,
    /// Request size limits ([`Limits::max_bulk_len`] is further capped by the store's
    /// [`MAX_KEY_LEN`](gossipkv_core::store::MAX_KEY_LEN)).
    pub limits: Limits,
    /// If set, clients must `AUTH <password>` (or `HELLO 2 AUTH default <password>`) first.
    pub requirepass: Option<String>,
    /// tokio worker threads: 1 runs everything on one thread (a `current_thread` runtime,
    /// Redis's model), more uses the multi-threaded scheduler.
    pub worker_threads: usize,
    /// With one worker thread: how long the event loop busy-waits for more work before it
    /// sleeps, while requests arrive in quick succession ([`crate::spin`]; zero: never).
    pub idle_spin: Duration,
    /// Added to the wall clock when timestamping writes (test-only fault injection: a node
    /// whose clock is off; the chaos harness sets it, docs/reliability.md). 0 in production.
    pub clock_skew_ms: i64,
}

impl ServerConfig {
    /// Default for [`ServerConfig::worker_threads`]. Measured with redis-benchmark on a
    /// 2-core machine that also runs the benchmark client (`THREADS="1 2"
    /// bench/node_throughput.sh`): one thread matched or beat two on throughput without
    /// pipelining and had the better p99 with `-P 16` (two threads: 0.94-0.97x redis at P1,
    /// p99 up to 1.7x redis's at P16), because the second core is busy generating load.
    pub const DEFAULT_WORKER_THREADS: usize = 1;

    /// Default for [`ServerConfig::idle_spin`] (docs/benchmarks.md, "Node, a short spin
    /// before the event loop sleeps").
    pub const DEFAULT_IDLE_SPIN: Duration = Duration::from_micros(20);

    /// Settings for `listen` and defaults for everything else.
    pub fn new(listen: SocketAddr) -> Self {
        Self { listen, ..Self::default() }
    }

    /// Builds the tokio runtime [`ServerConfig::worker_threads`] asks for.
    pub fn runtime(&self) -> io::Result<tokio::runtime::Runtime> {
        if self.worker_threads <= 1 {
            let mut b = tokio::runtime::Builder::new_current_thread();
            if !self.idle_spin.is_zero()
                && let Some((park, unpark)) = Arc::new(IdleSpin::new(self.idle_spin)).hooks()
            {
                b.on_thread_park(park).on_thread_unpark(unpark);
            }
            b.enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.worker_threads)
                .enable_all()
                .build()
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 6379)),
            max_connections: 10_000,
            limits: Limits::default(),
            requirepass: None,
            worker_threads: Self::DEFAULT_WORKER_THREADS,
            idle_spin: Self::DEFAULT_IDLE_SPIN,
            clock_skew_ms: 0,
        }
    }
}
