//! The HTTP endpoint as Prometheus and an operator use it: real nodes, metrics on port 0 (the
//! bound address is read back), plain HTTP/1.1 requests over a socket. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use gossipkv_node::http::{self, HttpServer};
use gossipkv_node::metrics::sample;
use gossipkv_node::{RunningNode, start};
use redis::Commands;
use tokio::sync::watch;

struct Cluster {
    rt: tokio::runtime::Runtime,
    nodes: Vec<RunningNode>,
    http: Vec<HttpServer>,
    stop: watch::Sender<bool>,
}

impl Cluster {
    fn start(n: usize) -> Self {
        let rt = common::runtime(2);
        let (stop, stop_rx) = watch::channel(false);
        let (nodes, http) = rt.block_on(async {
            let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let bound = common::bind_all(n).await;
            let mut listeners = Vec::new();
            for _ in 0..n {
                listeners.push(http::bind(any).await.expect("bind metrics"));
            }
            let addrs: Vec<SocketAddr> = bound.iter().map(|b| b.gossip_addr).collect();
            let nodes: Vec<RunningNode> = bound
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    let spec = common::spec(i, &addrs, b.resp_addr);
                    start(b, spec, 7 + i as u64, stop_rx.clone())
                })
                .collect();
            let http = nodes
                .iter()
                .zip(listeners)
                .map(|(node, l)| {
                    http::serve(l, std::sync::Arc::clone(&node.view), stop_rx.clone())
                        .expect("serve")
                })
                .collect();
            (nodes, http)
        });
        Self { rt, nodes, http, stop }
    }

    fn scrape(&self, i: usize) -> String {
        let (status, _, body) = get(self.http[i].addr, "/metrics", "");
        assert_eq!(status, 200);
        body
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let nodes = std::mem::take(&mut self.nodes);
        let http = std::mem::take(&mut self.http);
        self.rt.block_on(async {
            for n in nodes {
                let _ = n.server.await;
                let _ = n.gossip.await;
            }
            for h in http {
                let _ = h.task.await;
            }
        });
    }
}

/// One HTTP/1.1 GET (connection closed after): status, headers, body.
fn get(addr: SocketAddr, path: &str, extra_headers: &str) -> (u16, String, String) {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}\r\n")
        .expect("send");
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, head.to_string(), body.to_string())
}

#[test]
fn metrics_and_health_over_http_and_convergence_in_the_numbers() {
    let c = Cluster::start(3);
    assert_ne!(c.http[0].addr.port(), 0, "the bound port is exposed");

    let (status, head, body) = get(c.http[0].addr, "/health", "");
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["state"], "serving");
    assert_eq!(health["node_id"], 0);

    let text = c.scrape(0);
    assert!(text.contains("# TYPE gossipkv_gossip_rounds_total counter"), "{text}");
    assert_eq!(sample(&text, "gossipkv_keys", ""), Some(0.0));

    // Prometheus asks for OpenMetrics and gets it
    let (_, head, body) =
        get(c.http[1].addr, "/metrics", "Accept: application/openmetrics-text;version=1.0.0\r\n");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"));

    // writes at node 0 reach every node; the metrics say so
    let client = redis::Client::open(format!("redis://{}/", c.nodes[0].resp_addr)).expect("url");
    let mut con = client.get_connection().expect("connect");
    for i in 0..200 {
        let () = con.set(format!("k{i}"), i).expect("SET");
    }
    let text = c.scrape(0);
    assert_eq!(sample(&text, "gossipkv_client_commands_total", "{command=\"set\"}"), Some(200.0));
    assert_eq!(sample(&text, "gossipkv_keys", ""), Some(200.0));

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrapes: Vec<String> = (0..3).map(|i| c.scrape(i)).collect();
        let fingerprint = |t: &String| sample(t, "gossipkv_digest_root_fingerprint", "");
        let converged = scrapes.iter().all(|t| {
            sample(t, "gossipkv_keys", "") == Some(200.0)
                && sample(t, "gossipkv_digest_agreement_ratio", "") == Some(1.0)
                && sample(t, "gossipkv_peers_heard", "") == Some(2.0)
                && sample(t, "gossipkv_keys_behind", "") == Some(0.0)
                && fingerprint(t) == fingerprint(&scrapes[0])
        });
        if converged {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence in the metrics:\n{}", c.scrape(2));
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = c.scrape(1);
    assert!(sample(&t, "gossipkv_gossip_versions_applied_total", "").unwrap_or(0.0) >= 200.0);
    assert_eq!(sample(&t, "gossipkv_members", "{status=\"alive\"}"), Some(3.0));
    assert_eq!(sample(&t, "gossipkv_member_events_total", "{event=\"forgotten\"}"), Some(0.0));

    // the live view and its data
    let (status, head, body) = get(c.http[2].addr, "/", "");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    assert!(body.contains("/status.json"));
    let (_, _, body) = get(c.http[2].addr, "/status.json", "");
    let s: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(s["members"].as_array().map(Vec::len), Some(3));
    // from the member table (a first read waits for the driver to copy it), not the fallback
    // of configured and heard-from peers, whose rows say "heard"
    let statuses: Vec<&str> = s["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["status"].as_str())
        .collect();
    assert_eq!(statuses, ["alive"; 3], "{body}");
    assert_eq!(s["keys"], 200);

    // anything else
    assert_eq!(get(c.http[0].addr, "/nope", "").0, 404);
    let mut conn = TcpStream::connect(c.http[0].addr).expect("connect");
    conn.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    let mut raw = String::new();
    let _ = conn.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
}
