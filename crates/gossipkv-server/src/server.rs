//! The accept loop: [`serve`] takes a bound listener and a replica, runs one task per client
//! (at most [`ServerConfig::max_connections`] at once, counted by a semaphore) and shuts down
//! gracefully when the `shutdown` future completes: stop accepting, tell every connection
//! (a `watch` channel acts as the broadcast), wait until all have finished.
//!
//! This follows tokio's mini-redis, with two differences: a client over the limit gets
//! Redis's `-ERR max number of clients reached` at once instead of waiting in the accept
//! queue, and accept errors (e.g. out of file descriptors) back off and retry instead of
//! ending the server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gossipkv_core::Replica;
use gossipkv_core::store::MAX_KEY_LEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::ServerConfig;
use crate::connection::Connection;
use crate::hooks::{ClusterAdmin, InfoSource, NoAdmin, NoInfo, NoopObserver, WriteObserver};
use crate::metrics::Metrics;

/// Everything [`serve`] needs besides the listener and the replica: the settings, the hooks
/// the gossip layer plugs in, and the counters.
#[derive(Clone)]
pub struct ServerContext {
    config: ServerConfig,
    observer: Arc<dyn WriteObserver>,
    info: Arc<dyn InfoSource>,
    admin: Arc<dyn ClusterAdmin>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ServerContext {
    /// A context with no-op hooks and fresh counters.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            observer: Arc::new(NoopObserver),
            info: Arc::new(NoInfo),
            admin: Arc::new(NoAdmin),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Sets the observer told about every local write.
    pub fn with_write_observer(mut self, observer: Arc<dyn WriteObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Sets the source of extra `INFO` fields.
    pub fn with_info_source(mut self, info: Arc<dyn InfoSource>) -> Self {
        self.info = info;
        self
    }

    /// Sets what carries out `CLUSTER FORGET` (refused by default).
    pub fn with_cluster_admin(mut self, admin: Arc<dyn ClusterAdmin>) -> Self {
        self.admin = admin;
        self
    }

    /// Uses `metrics` (e.g. shared with an exporter) instead of fresh counters.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters the server will update.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }
}

/// State every connection shares (read-only apart from atomics).
pub(crate) struct Shared {
    pub(crate) replica: Arc<Replica>,
    pub(crate) observer: Arc<dyn WriteObserver>,
    pub(crate) info: Arc<dyn InfoSource>,
    pub(crate) admin: Arc<dyn ClusterAdmin>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: ServerConfig,
    /// The address actually bound (the configured one may say port 0).
    pub(crate) local_addr: Option<SocketAddr>,
    pub(crate) started: Instant,
    next_client_id: AtomicU64,
}

impl Shared {
    pub(crate) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Serves Redis-protocol clients on `listener` against `replica` until `shutdown` completes,
/// then closes every connection (each finishes the batch it is executing) and returns once
/// all are gone. Runs on whatever tokio runtime polls it (see [`ServerConfig::runtime`]).
pub async fn serve(
    listener: TcpListener,
    replica: Arc<Replica>,
    ctx: ServerContext,
    shutdown: impl Future,
) -> io::Result<()> {
    let mut config = ctx.config;
    config.limits.max_bulk_len = config.limits.max_bulk_len.min(MAX_KEY_LEN);
    let shared = Arc::new(Shared {
        replica,
        observer: ctx.observer,
        info: ctx.info,
        admin: ctx.admin,
        metrics: ctx.metrics,
        local_addr: listener.local_addr().ok(),
        config,
        started: Instant::now(),
        next_client_id: AtomicU64::new(1),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every task holds a clone of `done_tx`; `recv` returns `None` once all have dropped it.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let permits = shared.config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let limit = Arc::new(Semaphore::new(permits));
    info!(addr = ?shared.local_addr, "serving RESP clients");
    crate::spin::watch(&listener);

    tokio::select! {
        () = accept_loop(&listener, &shared, &limit, &stop_rx, &done_tx) => {}
        _ = shutdown => info!("shutdown requested"),
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
    info!("all connections closed");
    Ok(())
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    limit: &Arc<Semaphore>,
    stop: &watch::Receiver<bool>,
    done: &mpsc::Sender<()>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Usually EMFILE/ENFILE or a connection reset before accept: wait and retry.
                warn!(error = %e, ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        let done = done.clone();
        let Ok(permit) = Arc::clone(limit).try_acquire_owned() else {
            shared.metrics.connection_rejected();
            tokio::spawn(reject(stream, done));
            continue;
        };
        crate::spin::watch(&stream);
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "set_nodelay failed");
        }
        shared.metrics.connection_opened();
        let guard = ConnectionGuard { shared: Arc::clone(shared), _permit: permit, _done: done };
        let conn = Connection::new(stream, Arc::clone(shared), peer);
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.run(stop).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(guard);
        });
    }
}

/// Releases a connection's slot and counts it closed even if its task panics.
struct ConnectionGuard {
    shared: Arc<Shared>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _done: mpsc::Sender<()>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared.metrics.connection_closed();
    }
}

/// Tells a client over the limit why it is being closed, like Redis (bounded in time).
async fn reject(mut stream: TcpStream, _done: mpsc::Sender<()>) {
    let msg = b"-ERR max number of clients reached\r\n";
    let close = async {
        stream.write_all(msg).await?;
        stream.shutdown().await?;
        // Drain what the client already sent, so closing does not reset the connection and
        // destroy the error reply in flight.
        let mut scratch = [0u8; 1024];
        while stream.read(&mut scratch).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), close).await;
}
