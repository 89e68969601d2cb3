//! Real nodes on loopback sockets, gossiping over UDP, driven through the `redis` crate (a
//! client nobody here wrote). Every wait is bounded.

mod common;

use common::Cluster;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gossipkv_core::ClockKind;
use redis::{Commands, Connection, Value};

/// The `redis` crate's async clients, as most Rust services use it: a multiplexed connection
/// shared by concurrent tasks (with pipelines), and the reconnecting `ConnectionManager`.
/// And a client that asks for RESP3 (`?protocol=resp3`: HELLO 3) gets it.
#[test]
fn the_async_redis_clients_work_in_resp2_and_resp3() {
    let c = Cluster::start(2, 0.0, ClockKind::Hlc, 100);
    let url = |i: usize| format!("redis://{}/", c.nodes[i].resp_addr);
    let client0 = redis::Client::open(url(0)).expect("client");
    let client1 = redis::Client::open(url(1)).expect("client");
    c.rt.block_on(async {
        let con = client0.get_multiplexed_async_connection().await.expect("multiplexed");
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let mut con = con.clone();
                tokio::spawn(async move {
                    let mut pipe = redis::pipe();
                    for k in 0..20 {
                        pipe.cmd("SET").arg(format!("async:{t}:{k}")).arg(t * 100 + k).ignore();
                    }
                    pipe.cmd("GET").arg(format!("async:{t}:19"));
                    let (last,): (i64,) = pipe.query_async(&mut con).await.expect("pipeline");
                    assert_eq!(last, t * 100 + 19);
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let mut manager = redis::aio::ConnectionManager::new(client1).await.expect("manager");
        let ts: u64 = redis::cmd("PUT")
            .arg("async:put")
            .arg("v")
            .query_async(&mut manager)
            .await
            .expect("PUT");
        assert!(ts > 0);
        // 64 × 20 SETs at node 0 and a PUT at node 1 reach both nodes
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut con = con.clone();
        loop {
            let (a, b): (usize, usize) = (
                redis::cmd("DBSIZE").query_async(&mut con).await.expect("DBSIZE"),
                redis::cmd("DBSIZE").query_async(&mut manager).await.expect("DBSIZE"),
            );
            if a == 64 * 20 + 1 && b == a {
                break;
            }
            assert!(Instant::now() < deadline, "DBSIZE {a} / {b}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got: String =
            redis::cmd("GET").arg("async:put").query_async(&mut con).await.expect("GET");
        assert_eq!(got, "v");
    });
    // RESP3, as a client asks for it with HELLO 3: the client reads values and nulls (the
    // null's bytes, `_`, are checked by raw_resp.rs and the differential test)
    let resp3 = redis::Client::open(format!("{}?protocol=resp3", url(0))).expect("client");
    c.rt.block_on(async {
        let attempt = resp3.get_multiplexed_async_connection();
        let mut con = match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(con) => con.expect("a RESP3 connection"),
            Err(_) => panic!("asking for RESP3 hung"),
        };
        let got: Vec<Option<String>> = redis::cmd("MGET")
            .arg("async:put")
            .arg("absent")
            .query_async(&mut con)
            .await
            .expect("MGET over RESP3");
        assert_eq!(got, vec![Some("v".to_string()), None]);
        let proto: redis::Value = redis::cmd("HELLO").query_async(&mut con).await.expect("HELLO");
        assert!(matches!(proto, redis::Value::Map(_)), "RESP3 HELLO is a map: {proto:?}");
    });
}

#[test]
fn gossip_on_its_own_runtime_spreads_writes_and_stops_cleanly() -> redis::RedisResult<()> {
    let c = Cluster::start_with(3, 0.0, ClockKind::Hlc, 100, true);
    for i in 0..3 {
        let mut con = c.con(i);
        let _: () = con.set(format!("from-{i}"), i)?;
    }
    c.wait_all("every node's write at every node", |con| {
        let size: usize = redis::cmd("DBSIZE").query(con).unwrap_or(0);
        size == 3
    });
    let mut con = c.con(2);
    let v: i64 = con.get("from-0")?;
    assert_eq!(v, 0);
    let info: String = redis::cmd("INFO").arg("gossip").query(&mut con)?;
    assert!(info.contains("rounds:"), "{info}");
    Ok(())
}

#[test]
fn a_put_at_one_node_is_read_at_every_other_with_10_percent_drops() -> redis::RedisResult<()> {
    let c = Cluster::start(6, 0.1, ClockKind::Hlc, 100);
    let mut con = c.con(0);
    let ts: u64 = redis::cmd("PUT").arg("greeting").arg("hello").query(&mut con)?;
    assert!(ts > 0);
    // and a batch of keys written at several nodes, pipelined, some binary
    for i in 0..6 {
        let mut con = c.con(i);
        let mut pipe = redis::pipe();
        for j in 0..50 {
            pipe.set(format!("k{i}-{j}"), vec![0u8, b'\r', b'\n', i as u8, j as u8]).ignore();
        }
        pipe.query::<()>(&mut con)?;
    }
    c.wait_all("greeting and 300 keys everywhere", |con| {
        let g: Option<String> = con.get("greeting").unwrap_or(None);
        let size: usize = redis::cmd("DBSIZE").query(con).unwrap_or(0);
        g.as_deref() == Some("hello") && size == 301
    });
    let mut con = c.con(5);
    let v: Vec<u8> = con.get("k3-7")?;
    assert_eq!(v, vec![0u8, b'\r', b'\n', 3, 7]);
    let dropped: u64 = c
        .nodes
        .iter()
        .map(|n| n.status.net.dropped_send.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert!(dropped > 0, "the fault injector dropped nothing");
    Ok(())
}

#[test]
fn conflicting_puts_end_with_the_lww_winner_and_versions_list_the_tie() -> redis::RedisResult<()> {
    // Lamport clocks of fresh nodes issue the same first timestamp: a true tie. The interval
    // is long enough that both writes happen before the first round.
    let c = Cluster::start(4, 0.0, ClockKind::Lamport, 400);
    let mut a = c.con(1);
    let mut b = c.con(2);
    // Fresh Lamport clocks give a tie unless a gossip round slipped between the two writes;
    // then try a fresh key (bounded).
    let mut tie = None;
    for attempt in 0..5 {
        let key = format!("fruit{attempt}");
        let ta: u64 = redis::cmd("PUT").arg(&key).arg("banana").query(&mut a)?;
        let tb: u64 = redis::cmd("PUT").arg(&key).arg("apple").query(&mut b)?;
        if ta == tb {
            tie = Some((key, ta));
            break;
        }
    }
    let (key, ta) = tie.expect("expected an equal-timestamp tie within 5 attempts");
    c.wait_all("apple wins the tie everywhere", |con| {
        let v: Option<String> = con.get(&key).unwrap_or(None);
        v.as_deref() == Some("apple")
    });
    for i in 0..4 {
        let mut con = c.con(i);
        let vs: Vec<Value> = redis::cmd("VERSIONS").arg(&key).query(&mut con)?;
        let parsed: Vec<(String, u64, u64)> = vs
            .into_iter()
            .map(|v| redis::from_redis_value(v).expect("[value, ts, origin]"))
            .collect();
        assert_eq!(parsed, vec![("apple".into(), ta, 2), ("banana".into(), ta, 1)]);
    }
    // a later write at another node has a higher timestamp (receive rule) and wins
    let mut d = c.con(3);
    let td: u64 = redis::cmd("PUT").arg(&key).arg("zucchini").query(&mut d)?;
    assert!(td > ta);
    c.wait_all("the later write wins everywhere", |con| {
        let v: Option<String> = con.get(&key).unwrap_or(None);
        v.as_deref() == Some("zucchini")
    });
    Ok(())
}

#[test]
fn a_delete_wins_over_older_puts_everywhere() -> redis::RedisResult<()> {
    let c = Cluster::start(5, 0.1, ClockKind::Hlc, 100);
    let mut con = c.con(0);
    let () = con.set("doomed", "x")?;
    c.wait_all("doomed everywhere", |con| con.exists("doomed").unwrap_or(false));
    let mut other = c.con(3);
    let removed: i64 = other.del("doomed")?;
    assert_eq!(removed, 1);
    c.wait_all("doomed gone everywhere", |con| !con.exists::<_, bool>("doomed").unwrap_or(true));
    let mut con = c.con(4);
    let vs: Vec<Value> = redis::cmd("VERSIONS").arg("doomed").query(&mut con)?;
    assert_eq!(vs.len(), 1);
    let (value, _ts, origin): (Option<String>, u64, u64) = redis::from_redis_value(vs[0].clone())?;
    assert_eq!((value, origin), (None, 3), "the tombstone from node 3 is the winner");
    Ok(())
}

#[test]
fn malformed_input_gets_an_error_and_the_node_stays_up() {
    let c = Cluster::start(2, 0.0, ClockKind::Hlc, 100);
    let mut s = TcpStream::connect(c.nodes[0].resp_addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"*1\r\n$-5\r\n").expect("write");
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).expect("read");
    assert!(
        buf[..n].starts_with(b"-ERR Protocol error"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut con = c.con(0);
    let pong: String = redis::cmd("PING").query(&mut con).expect("ping after garbage");
    assert_eq!(pong, "PONG");
}

/// Reads the number `field` of `INFO gossip` (0 if absent).
fn info_field(con: &mut Connection, field: &str) -> u64 {
    common::info_gossip_field(con, field).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Three of five nodes crash for good (no leave): the two left see them dead, a majority
/// lost. `CLUSTER FORGET` at one node turns them into members that left, at every node,
/// and refuses what it must (a live member, the node itself, an unknown id, a non-number).
#[test]
fn cluster_forget_turns_crashed_members_into_left_ones_everywhere() -> redis::RedisResult<()> {
    let mut c = Cluster::start(5, 0.0, ClockKind::Hlc, 50);
    c.wait_all("five members alive everywhere", |con| info_field(con, "members_alive") == 5);
    for n in &c.nodes[2..] {
        // a crash: no leave is sent
        n.gossip.abort();
        n.server.abort();
    }
    let (mut a, mut b) = (c.con(0), c.con(1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut a, "members_dead") < 3 || info_field(&mut b, "members_dead") < 3 {
        assert!(Instant::now() < deadline, "the crashed members were not declared dead");
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = |r: redis::RedisResult<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let forget =
        |con: &mut Connection, id: &str| redis::cmd("CLUSTER").arg("FORGET").arg(id).query(con);
    assert!(err(forget(&mut a, "1")).contains("member 1 is alive, not dead"));
    assert!(err(forget(&mut a, "0")).contains("is this node"));
    assert!(err(forget(&mut a, "9")).contains("no member with id 9"));
    assert!(err(forget(&mut a, "x")).contains("Invalid node id"));
    for id in ["2", "3", "4"] {
        let () = forget(&mut a, id)?;
    }
    assert_eq!((info_field(&mut a, "members_dead"), info_field(&mut a, "members_left")), (0, 3));
    // the table over RESP: id, gossip address, status, generation
    let members: Vec<(u32, String, String, u64)> =
        redis::cmd("CLUSTER").arg("MEMBERS").query(&mut a)?;
    let statuses: Vec<(u32, &str)> = members.iter().map(|m| (m.0, m.2.as_str())).collect();
    assert_eq!(
        statuses,
        [(0, "alive"), (1, "alive"), (2, "left"), (3, "left"), (4, "left")],
        "{members:?}"
    );
    assert_eq!(members[0].1, c.nodes[0].gossip_addr.to_string());
    // pipelined behind the forget, in order: replies keep their places
    let (ok, pong): (String, String) =
        redis::pipe().cmd("CLUSTER").arg("FORGET").arg("2").cmd("PING").query(&mut a)?;
    assert_eq!((ok.as_str(), pong.as_str()), ("OK", "PONG"), "forgetting twice is harmless");
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut b, "members_left") < 3 || info_field(&mut b, "members_dead") > 0 {
        assert!(Instant::now() < deadline, "the forget did not reach node 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    // the events as counted: the forgets at node 0 (the repeat counts no more), the deaths
    // declared by the survivors
    assert_eq!(info_field(&mut a, "members_forgotten"), 3);
    assert_eq!(info_field(&mut b, "members_forgotten"), 0);
    assert!(info_field(&mut a, "member_deaths") + info_field(&mut b, "member_deaths") >= 3);
    assert!(
        info_field(&mut a, "member_probe_misses") + info_field(&mut b, "member_probe_misses") > 0
    );
    // the two survivors still replicate
    let () = a.set("after-forget", "yes")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b.exists::<_, bool>("after-forget")? {
        assert!(Instant::now() < deadline, "no replication after the forget");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.nodes.truncate(2);
    Ok(())
}
