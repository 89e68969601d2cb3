//! A node killed with SIGKILL and restarted empty, as real processes (issue 5): it catches up
//! in bulk within a few gossip rounds, and its next PUTs win over the ones it made before the
//! crash, even with a Lamport clock (which restarts at zero).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INTERVAL_MS: u64 = 200;
const KEYS: usize = 20_000;

struct Cluster {
    ip: Ipv4Addr,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn resp(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.ip, 16_000 + i as u16))
    }

    fn gossip(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.ip, 17_000 + i as u16))
    }

    fn spawn(&mut self, i: usize, fresh: bool) {
        let n = self.children.len();
        let peers: Vec<String> =
            (0..n).filter(|&j| j != i).map(|j| self.gossip(j).to_string()).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gossipkv"));
        cmd.args(["node", "--id", &i.to_string(), "--clock", "lamport", "--threads", "1"])
            .args(["--listen", &self.resp(i).to_string(), "--gossip", &self.gossip(i).to_string()])
            .args(["--peers", &peers.join(","), "--interval-ms", &INTERVAL_MS.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if fresh {
            cmd.arg("--fresh");
        }
        self.children[i] = Some(cmd.spawn().expect("gossipkv node starts"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.resp(i)).is_err() {
            assert!(Instant::now() < deadline, "node {i} never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        }
    }

    fn conn(&self, i: usize) -> redis::Connection {
        let url = format!("redis://{}/", self.resp(i));
        redis::Client::open(url).and_then(|c| c.get_connection()).expect("connects")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
    }
}

fn dbsize(c: &mut redis::Connection) -> usize {
    redis::cmd("DBSIZE").query(c).unwrap_or(0)
}

/// PUT with retries while the node answers LOADING; returns the timestamp.
fn put(c: &mut redis::Connection, key: &str, value: &str) -> (u64, u32) {
    let mut loading = 0;
    loop {
        match redis::cmd("PUT").arg(key).arg(value).query::<u64>(c) {
            Ok(ts) => return (ts, loading),
            Err(e) if e.to_string().contains("BusyLoading") && loading < 200 => {
                loading += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("PUT failed: {e}"),
        }
    }
}

#[test]
fn a_node_killed_and_restarted_empty_catches_up_and_its_next_put_wins() {
    let ip = Ipv4Addr::new(127, 81, (std::process::id() % 250) as u8, 1);
    let mut cl = Cluster { ip, children: (0..3).map(|_| None).collect() };
    for i in 0..3 {
        cl.spawn(i, true);
    }
    let mut c0 = cl.conn(0);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("SET").arg(format!("key:{k:08}")).arg(format!("value:{k:024}")).ignore();
        }
        p.query::<()>(&mut c0).expect("pipelined SETs");
    }
    // node 2 writes one key many times: its Lamport clock runs far ahead
    let mut c2 = cl.conn(2);
    let mut before = 0;
    for i in 0..500 {
        before = put(&mut c2, "contested", &format!("before-{i}")).0;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..3).any(|i| dbsize(&mut cl.conn(i)) != KEYS + 1) {
        assert!(Instant::now() < deadline, "initial load did not spread");
        std::thread::sleep(Duration::from_millis(100));
    }

    cl.kill9(2);
    cl.spawn(2, false);
    let t0 = Instant::now();
    let mut c2 = cl.conn(2);
    let (after, loading_replies) = put(&mut c2, "contested", "after");
    assert!(after > before, "the new PUT's timestamp {after} must beat {before}");
    while dbsize(&mut c2) != KEYS + 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no catch-up: {} keys", dbsize(&mut c2));
        std::thread::sleep(Duration::from_millis(20));
    }
    let rounds = t0.elapsed().as_millis() as f64 / INTERVAL_MS as f64;
    assert!(rounds <= 10.0, "catch-up took {rounds:.1} rounds");
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..3 {
        let mut c = cl.conn(i);
        loop {
            let v: Option<String> = redis::cmd("GET").arg("contested").query(&mut c).ok();
            if v.as_deref() == Some("after") {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} still reads {v:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let info: String = redis::cmd("INFO").arg("gossip").query(&mut c2).expect("INFO");
    let bulk = info.lines().find(|l| l.starts_with("bulk_catchups:")).unwrap_or_default();
    assert_ne!(bulk, "bulk_catchups:0", "the restarted node caught up in bulk: {bulk}");
    eprintln!(
        "restart: {KEYS} keys back in {rounds:.1} rounds ({} ms), {loading_replies} LOADING \
         replies before the first PUT was taken, {bulk}",
        t0.elapsed().as_millis()
    );
}
