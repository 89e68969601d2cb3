//! Authenticated gossip between real nodes on loopback sockets: nodes sharing a cluster name
//! and key converge; nodes of another cluster (name or key) or without a key never merge
//! their data; and forged, tampered, replayed, stale, oversized and other-cluster datagrams
//! and stream frames sent from raw sockets are every one rejected and counted by kind, while
//! the node keeps serving. Every wait is bounded.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use gossipkv_core::gossip::Transport;
use gossipkv_core::gossip::auth::{
    Auth, ClusterKey, ENVELOPE_VERSION, Keyring, Limits, OVERHEAD, Reject, WINDOW,
};
use gossipkv_node::{RunningNode, start};
use redis::{Commands, Connection};
use tokio::sync::watch;

const MTU: usize = 1400;

fn key(b: u8) -> ClusterKey {
    ClusterKey::new(&[b; 32]).expect("key")
}

fn ring(name: &str, keys: &[u8]) -> Keyring {
    Keyring::new(name, keys.iter().map(|&b| key(b)).collect()).expect("keyring")
}

struct Nodes {
    rt: tokio::runtime::Runtime,
    nodes: Vec<RunningNode>,
    stop: watch::Sender<bool>,
}

impl Nodes {
    /// One node per keyring, every node a potential peer of every other, 100 ms rounds.
    fn start(rings: Vec<Option<Keyring>>) -> Self {
        let rt = common::runtime(2);
        let (stop, stop_rx) = watch::channel(false);
        let nodes = rt.block_on(async {
            let bound = common::bind_all(rings.len()).await;
            let addrs: Vec<SocketAddr> = bound.iter().map(|b| b.gossip_addr).collect();
            bound
                .into_iter()
                .zip(rings)
                .enumerate()
                .map(|(i, (b, auth))| {
                    let mut spec = common::spec(i, &addrs, b.resp_addr);
                    spec.gossip.mtu = MTU;
                    spec.auth = auth;
                    start(b, spec, 7 + i as u64, stop_rx.clone())
                })
                .collect()
        });
        Self { rt, nodes, stop }
    }

    fn con(&self, i: usize) -> Connection {
        let client =
            redis::Client::open(format!("redis://{}/", self.nodes[i].resp_addr)).expect("client");
        client.get_connection().expect("connect")
    }

    fn get(&self, i: usize, k: &str) -> Option<String> {
        self.con(i).get(k).expect("GET")
    }

    fn set(&self, i: usize, k: &str, v: &str) {
        let _: () = self.con(i).set(k, v).expect("SET");
    }

    fn rejected(&self, i: usize, why: Reject) -> u64 {
        self.nodes[i].status.net.auth_rejected(why)
    }

    fn decode_errors(&self, i: usize) -> u64 {
        self.nodes[i].status.stats.lock().decode_errors
    }

    fn info_field(&self, i: usize, name: &str) -> String {
        common::info_gossip_field(&mut self.con(i), name)
            .unwrap_or_else(|| panic!("no {name} in INFO gossip at node {i}"))
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        common::stop_all(&self.rt, &self.stop, std::mem::take(&mut self.nodes));
    }
}

/// Waits (bounded) for `check`.
fn wait(what: &str, secs: u64, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn same_key_nodes_converge_and_reject_nothing() {
    let c = Nodes::start(vec![Some(ring("prod", &[1])), Some(ring("prod", &[1]))]);
    c.set(0, "a", "from-0");
    c.set(1, "b", "from-1");
    wait("both keys at both nodes", 20, || {
        (0..2).all(|i| {
            c.get(i, "a").as_deref() == Some("from-0") && c.get(i, "b").as_deref() == Some("from-1")
        })
    });
    for i in 0..2 {
        let net = &c.nodes[i].status.net;
        assert!(net.auth_opened.load(std::sync::atomic::Ordering::Relaxed) > 0);
        assert_eq!(net.auth_rejected_total(), 0, "node {i} rejected its own cluster's gossip");
        assert_eq!(c.decode_errors(i), 0);
        assert!(c.nodes[i].status.stats.lock().max_datagram <= MTU - OVERHEAD);
        assert_eq!(c.info_field(i, "auth_enabled"), "1");
        assert_eq!(c.info_field(i, "auth_cluster"), "prod");
        assert_eq!(c.info_field(i, "auth_rejected"), "0");
    }
}

#[test]
fn nodes_mid_rotation_interoperate() {
    // A still seals with key 1 and accepts 2; B already seals with key 2 and accepts 1;
    // C only holds key 2 (key 1 removed): it refuses A's gossip and A refuses nothing.
    let c = Nodes::start(vec![
        Some(ring("prod", &[1, 2])),
        Some(ring("prod", &[2, 1])),
        Some(ring("prod", &[2])),
    ]);
    c.set(0, "a", "x");
    c.set(1, "b", "y");
    wait("A and B converge", 20, || {
        c.get(1, "a").as_deref() == Some("x") && c.get(0, "b").as_deref() == Some("y")
    });
    // C hears B's key-2 gossip, so it learns "a" through B, never from A directly
    wait("C learns both through B", 20, || {
        c.get(2, "a").as_deref() == Some("x") && c.get(2, "b").as_deref() == Some("y")
    });
    wait("C refuses A's key-1 gossip", 20, || c.rejected(2, Reject::UnknownKey) > 0);
    assert_eq!(c.nodes[0].status.net.auth_rejected_total(), 0);
    assert_eq!(c.nodes[1].status.net.auth_rejected_total(), 0);
    assert_eq!(c.rejected(2, Reject::BadMac), 0);
}

#[test]
fn other_cluster_other_key_or_no_key_never_merge() {
    // 0 and 1: cluster "prod", key 1. 2: "prod" with key 2. 3: "staging" with key 1.
    // 4: no key at all. Every node is a potential peer of every other.
    let c = Nodes::start(vec![
        Some(ring("prod", &[1])),
        Some(ring("prod", &[1])),
        Some(ring("prod", &[2])),
        Some(ring("staging", &[1])),
        None,
    ]);
    assert_ne!(key(1).id(), key(2).id());
    for i in 0..5 {
        c.set(i, &format!("from-{i}"), "v");
    }
    wait("0 and 1 converge", 20, || c.get(1, "from-0").is_some() && c.get(0, "from-1").is_some());
    wait("every foreign kind of gossip refused at node 0", 20, || {
        c.rejected(0, Reject::UnknownKey) > 0
            && c.rejected(0, Reject::BadMac) > 0
            && c.rejected(0, Reject::Malformed) > 0
    });
    // the plain node cannot read sealed datagrams either
    wait("node 4 cannot decode sealed gossip", 20, || c.decode_errors(4) > 0);
    // give the others many more rounds to (fail to) spread anything
    std::thread::sleep(Duration::from_millis(1500));
    let groups: [&[usize]; 4] = [&[0, 1], &[2], &[3], &[4]];
    for (g, members) in groups.iter().enumerate() {
        for (h, others) in groups.iter().enumerate() {
            for &i in *members {
                for &j in *others {
                    let has = c.get(i, &format!("from-{j}")).is_some();
                    assert_eq!(has, g == h, "node {i} holds node {j}'s key: {has}");
                }
            }
        }
    }
    // other kinds of refusal at node 0 are exactly zero: nothing was replayed or stale
    assert_eq!(c.rejected(0, Reject::Replayed), 0);
    assert_eq!(c.rejected(0, Reject::StaleIncarnation), 0);
    assert_eq!(c.rejected(0, Reject::TooLarge), 0);
    assert_eq!(c.info_field(4, "auth_enabled"), "0");
}

/// Sends a stream frame the way the driver does: `u32 len | u8 addr len | addr | message`.
fn send_frame(to: SocketAddr, claimed: &str, msg: &[u8]) {
    let mut conn = TcpStream::connect(to).expect("connect gossip stream");
    let mut frame = Vec::new();
    frame.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    frame.push(claimed.len() as u8);
    frame.extend_from_slice(claimed.as_bytes());
    frame.extend_from_slice(msg);
    conn.write_all(&frame).expect("write frame");
}

#[test]
fn hostile_datagrams_all_rejected_and_node_keeps_serving() {
    let c = Nodes::start(vec![Some(ring("prod", &[1])), Some(ring("prod", &[1]))]);
    c.set(0, "before", "1");
    wait("converged before the attack", 20, || c.get(1, "before").as_deref() == Some("1"));
    let target = c.nodes[0].gossip_addr;
    let sock = UdpSocket::bind("127.0.0.1:0").expect("attacker socket");
    let mut sent = 0u64;
    let mut send = |d: &[u8]| {
        sock.send_to(d, target).expect("send");
        sent += 1;
        if sent.is_multiple_of(16) {
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let base: Vec<u64> = Reject::ALL.iter().map(|&r| c.rejected(0, r)).collect();
    let decode0 = c.decode_errors(0);
    let mut expect = [0u64; Reject::COUNT];
    let limits = Limits { datagram: MTU, stream: 64 << 20 };
    let not_gossip = b"authentic, but not a gossip message";

    // 1. one authentic datagram from a key holder (the node opens it, then cannot decode it),
    //    then 50 replays of it.
    let mut holder = Auth::new(ring("prod", &[1]), 4242, 5, limits);
    let m1 = holder.seal(Transport::Datagram, b"", not_gossip).expect("seal");
    send(&m1);
    wait("the authentic datagram is opened", 10, || c.decode_errors(0) == decode0 + 1);
    for _ in 0..50 {
        send(&m1);
    }
    expect[Reject::Replayed.index()] += 50;

    // 2. 200 forgeries that look sealed with our key, from 200 distinct sender ids
    let mut rng = gossipkv_core::rng::Rng::new(99);
    for i in 0..200u32 {
        let mut d = vec![ENVELOPE_VERSION, key(1).id()];
        d.extend_from_slice(&(10_000 + i).to_le_bytes());
        let len = 16 + OVERHEAD + rng.below(300) as usize;
        d.extend((0..len).map(|_| rng.below(256) as u8));
        send(&d);
    }
    expect[Reject::BadMac.index()] += 200;

    // 3. 100 authentic datagrams each tampered by one bit flip after the key id
    for i in 0..100usize {
        let mut d = holder.seal(Transport::Datagram, b"", not_gossip).expect("seal");
        let bit = 16 + (i * 37) % ((d.len() - 2) * 8);
        d[bit / 8] ^= 1 << (bit % 8);
        send(&d);
    }
    expect[Reject::BadMac.index()] += 100;

    // 4. another cluster name with our key, and our cluster name with another key
    let mut staging = Auth::new(ring("staging", &[1]), 4300, 5, limits);
    let mut other_key = Auth::new(ring("prod", &[2]), 4301, 5, limits);
    for _ in 0..20 {
        send(&staging.seal(Transport::Datagram, b"", not_gossip).expect("seal"));
        send(&other_key.seal(Transport::Datagram, b"", not_gossip).expect("seal"));
    }
    expect[Reject::BadMac.index()] += 20;
    expect[Reject::UnknownKey.index()] += 20;

    // 5. unsealed gossip-looking datagrams, and datagrams over the MTU
    for _ in 0..20 {
        send(b"gK\x01\x01\x00\x00 an unsealed gossip datagram, longer than the envelope");
        send(&vec![ENVELOPE_VERSION; MTU + 1]);
    }
    expect[Reject::Malformed.index()] += 20;
    expect[Reject::TooLarge.index()] += 20;

    // 6. the same sender id from an older incarnation (a capture from before a restart)
    let mut previous_run = Auth::new(ring("prod", &[1]), 4242, 4, limits);
    for _ in 0..20 {
        send(&previous_run.seal(Transport::Datagram, b"", not_gossip).expect("seal"));
    }
    expect[Reject::StaleIncarnation.index()] += 20;

    // 7. a message older than the replay window, never seen before: the newest of a run of
    //    WINDOW + 1 opens, then the oldest is refused
    let mut late = Auth::new(ring("prod", &[1]), 4243, 5, limits);
    let run: Vec<Vec<u8>> = (0..=WINDOW)
        .map(|_| late.seal(Transport::Datagram, b"", not_gossip).expect("seal"))
        .collect();
    send(&run[run.len() - 1]);
    send(&run[0]);
    expect[Reject::Replayed.index()] += 1;
    let accepted_datagrams = 2;

    // 8. stream frames: a forgery, an authentic message and its replay, and the authentic
    //    message re-framed with another claimed address
    let claimed = "127.0.0.1:9";
    let mut forged = vec![ENVELOPE_VERSION, key(1).id()];
    forged.extend_from_slice(&[7u8; 60]);
    send_frame(target, claimed, &forged);
    let st = holder.seal(Transport::Stream, claimed.as_bytes(), not_gossip).expect("seal");
    send_frame(target, claimed, &st);
    send_frame(target, claimed, &st);
    send_frame(target, "127.0.0.1:10", &st);
    expect[Reject::BadMac.index()] += 2;
    expect[Reject::Replayed.index()] += 1;
    let accepted_total = accepted_datagrams + 1;

    let hostile: u64 = expect.iter().sum();
    let rejected_since = |c: &Nodes| -> u64 {
        Reject::ALL.iter().map(|&r| c.rejected(0, r) - base[r.index()]).sum()
    };
    wait("every hostile message counted", 20, || rejected_since(&c) >= hostile);
    // settle, then demand exact counts: every hostile message refused, for its reason
    std::thread::sleep(Duration::from_millis(300));
    for r in Reject::ALL {
        assert_eq!(
            c.rejected(0, r) - base[r.index()],
            expect[r.index()],
            "{} refusals (all: {:?})",
            r.name(),
            Reject::ALL.map(|r| c.rejected(0, r) - base[r.index()])
        );
    }
    assert_eq!(rejected_since(&c), hostile, "100% of hostile messages rejected");
    // and only the three authentic ones reached the decoder
    assert_eq!(c.decode_errors(0), decode0 + accepted_total);
    // forged sender ids cost no memory: the peer and the two key-holder senders only
    let tracked = c.nodes[0].status.net.auth_senders.load(std::sync::atomic::Ordering::Relaxed);
    assert!(tracked <= 3, "{tracked} senders tracked");
    assert_eq!(
        c.info_field(0, "auth_rejected_bad_mac").parse::<u64>().expect("number"),
        c.rejected(0, Reject::BadMac)
    );
    assert_eq!(sent as usize, 51 + 200 + 100 + 40 + 40 + 20 + 2);

    // the node kept serving and gossiping
    let pong: String = redis::cmd("PING").query(&mut c.con(0)).expect("PING");
    assert_eq!(pong, "PONG");
    c.set(0, "after", "2");
    c.set(1, "after-1", "3");
    wait("converged after the attack", 20, || {
        c.get(1, "after").as_deref() == Some("2") && c.get(0, "after-1").as_deref() == Some("3")
    });
}
