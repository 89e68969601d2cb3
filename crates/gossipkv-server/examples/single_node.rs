//! A single gossipkv node serving the Redis protocol, no gossip: what
//! `bench/node_throughput.sh` benchmarks against redis-server.
//!
//! ```sh
//! cargo run --release -p gossipkv-server --example single_node -- 127.0.0.1:7379 [--threads N]
//! ```
//!
//! `--threads 1` (the default, see `ServerConfig::DEFAULT_WORKER_THREADS`) runs a
//! current-thread tokio runtime; more threads use the multi-threaded scheduler. Stops cleanly
//! on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use gossipkv_core::{ClockKind, Replica, StoreConfig};
use gossipkv_server::{ServerConfig, ServerContext, serve};

fn usage() -> ExitCode {
    eprintln!(
        "usage: single_node [ADDR (default 127.0.0.1:6379)] [--threads N] [--node-id N] \
         [--requirepass PASSWORD]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut config = ServerConfig::default();
    let mut node_id = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => config.worker_threads = n,
                None => return usage(),
            },
            "--node-id" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => node_id = n,
                None => return usage(),
            },
            "--requirepass" => match args.next() {
                Some(p) => config.requirepass = Some(p),
                None => return usage(),
            },
            addr => match addr.parse::<SocketAddr>() {
                Ok(addr) => config.listen = addr,
                Err(_) => return usage(),
            },
        }
    }
    let runtime = match config.runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        println!(
            "gossipkv node {node_id} listening on {} ({} worker thread(s))",
            listener.local_addr()?,
            config.worker_threads.max(1)
        );
        let replica = Arc::new(Replica::new(node_id, ClockKind::Hlc, StoreConfig::default()));
        serve(listener, replica, ServerContext::new(config), shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
