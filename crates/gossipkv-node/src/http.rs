//! A node's HTTP endpoint (hyper, HTTP/1.1), off unless asked for (`gossipkv node --metrics
//! HOST:PORT`, `gossipkv cluster --metrics-base-port P`):
//!
//! | path | what |
//! | --- | --- |
//! | `/metrics` | Prometheus metrics: OpenMetrics text when the scraper asks for it (Prometheus does), the 0.0.4 text format otherwise (curl) |
//! | `/health` | `200` and a JSON body while the node runs: `state` is `serving`, `loading` (writes refused until caught up) or `away` |
//! | `/status.json` | what the live view shows: members, their digest roots and key counts, counters |
//! | `/` | the live view: one static page that polls `/status.json` |
//!
//! GET and HEAD only; at most [`MAX_CONNECTIONS`] connections at once, each with a header
//! timeout, so a slow or idle client cannot hold the node's workers.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::metrics::{self, NodeView, OPENMETRICS_TYPE, PROMETHEUS_TYPE};

/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The live view (docs/operations.md, "Live view").
const PAGE: &str = include_str!("webview.html");

/// A running HTTP endpoint.
#[derive(Debug)]
pub struct HttpServer {
    /// Where it listens (with port 0 asked, the port the kernel chose).
    pub addr: SocketAddr,
    /// The accept loop; ends when the shutdown signal turns true.
    pub task: JoinHandle<()>,
}

/// Binds the endpoint's listener (port 0 picks a free port); [`serve`] then serves on it.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `view` on `listener` until `shutdown` turns true (or its sender is dropped).
pub fn serve(
    listener: TcpListener,
    view: Arc<NodeView>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<HttpServer> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, view, shutdown));
    Ok(HttpServer { addr, task })
}

async fn accept_loop(listener: TcpListener, view: Arc<NodeView>, shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut stop = shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            () = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // e.g. out of file descriptors: back off instead of spinning
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            debug!(%peer, "metrics endpoint busy; connection closed");
            continue;
        };
        let view = Arc::clone(&view);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req: Request<Incoming>| {
                let view = Arc::clone(&view);
                async move {
                    if req.uri().path() == "/status.json" {
                        view.fresh_members().await;
                    }
                    Ok::<_, Infallible>(respond(&view, &req))
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(%peer, error = %e, "metrics connection ended with an error");
                    }
                }
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}

/// Completes when the shutdown signal turns true (or its sender is dropped).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The response to one request (never fails: errors are responses too).
pub fn respond<B>(view: &NodeView, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
            match view.render(openmetrics) {
                Ok(body) => with_type(
                    StatusCode::OK,
                    if openmetrics { OPENMETRICS_TYPE } else { PROMETHEUS_TYPE },
                    body,
                ),
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded\n"),
            }
        }
        "/health" => json(&view.health()),
        "/status.json" => json(&view.status()),
        "/" | "/index.html" => with_type(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /health, /status.json or /\n"),
    }
}

fn json(v: &impl serde::Serialize) -> Response<Full<Bytes>> {
    with_type(StatusCode::OK, "application/json", metrics::to_json(v))
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
