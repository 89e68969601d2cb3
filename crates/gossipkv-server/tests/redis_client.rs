//! The server driven by the `redis` crate, a client nobody here wrote: its connection
//! handshake (`CLIENT SETINFO`), typed replies, pipelines and SCAN iteration must all work.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{IO_TIMEOUT, TestServer};
use redis::{Commands, Connection, Value};

fn connect(server: &TestServer) -> Connection {
    let client = redis::Client::open(format!("redis://{}/", server.addr)).expect("client");
    let con = client.get_connection_with_timeout(IO_TIMEOUT).expect("connect");
    con.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con
}

#[test]
fn basic_commands() -> redis::RedisResult<()> {
    let server = TestServer::start();
    let mut con = connect(&server);
    let pong: String = redis::cmd("PING").query(&mut con)?;
    assert_eq!(pong, "PONG");
    let () = con.set("greeting", "hello")?;
    let v: String = con.get("greeting")?;
    assert_eq!(v, "hello");
    let missing: Option<String> = con.get("nope")?;
    assert_eq!(missing, None);
    let () = con.mset(&[("a", "1"), ("b", "2"), ("c", "3")])?;
    let vals: Vec<Option<String>> = con.mget(&["a", "nope", "c"])?;
    assert_eq!(vals, vec![Some("1".into()), None, Some("3".into())]);
    let n: usize = con.exists(&["a", "b", "nope"])?;
    assert_eq!(n, 2);
    let n: usize = con.del(&["a", "b", "nope"])?;
    assert_eq!(n, 2);
    let exists: bool = con.exists("a")?;
    assert!(!exists);
    let size: usize = redis::cmd("DBSIZE").query(&mut con)?;
    assert_eq!(size, 2);
    // binary-safe values through a real client
    let blob: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let () = con.set(b"bin\r\n\0key", &blob)?;
    let back: Vec<u8> = con.get(b"bin\r\n\0key")?;
    assert_eq!(back, blob);
    let err = con.set_options::<_, _, ()>(
        "k",
        "v",
        redis::SetOptions::default().with_expiration(redis::SetExpiry::EX(10)),
    );
    assert!(err.is_err(), "expiry is refused, not ignored");
    Ok(())
}

/// The `redis` crate's own helpers for the string and key-space commands a Redis user reaches
/// for, and its error type for the ones left out on purpose.
#[test]
fn redis_crate_helpers_for_everyday_commands() -> redis::RedisResult<()> {
    let server = TestServer::start();
    let mut con = connect(&server);
    let () = con.set("k", "hello world")?;
    let kind: String = con.key_type("k")?;
    assert_eq!(kind, "string");
    let ttl: i64 = con.ttl("k")?;
    assert_eq!(ttl, -1, "no time to live");
    let ttl: i64 = con.pttl("nope")?;
    assert_eq!(ttl, -2, "no key");
    let n: usize = con.strlen("k")?;
    assert_eq!(n, 11);
    let part: String = con.getrange("k", 0, 4)?;
    assert_eq!(part, "hello");
    let old: Option<String> = con.getset("k", "bye")?;
    assert_eq!(old.as_deref(), Some("hello world"));
    let gone: Option<String> = con.get_del("k")?;
    assert_eq!(gone.as_deref(), Some("bye"));
    let exists: bool = con.exists("k")?;
    assert!(!exists);
    let () = con.set("u", "1")?;
    let n: usize = con.unlink(&["u", "nope"])?;
    assert_eq!(n, 1);
    let none: Option<String> = redis::cmd("RANDOMKEY").query(&mut con)?;
    assert_eq!(none, None);
    let (secs, _micros): (u64, u64) = redis::cmd("TIME").query(&mut con)?;
    assert!(secs > 1_700_000_000);
    let err = con.incr::<_, _, i64>("n", 1).expect_err("INCR is refused");
    assert!(err.to_string().contains("not supported"), "{err}");
    let err = con.expire::<_, ()>("n", 10).expect_err("EXPIRE is refused");
    assert!(err.to_string().contains("do not expire"), "{err}");
    let exists: bool = con.exists("n")?;
    assert!(!exists, "the refused INCR wrote nothing");
    Ok(())
}

#[test]
fn put_and_versions() -> redis::RedisResult<()> {
    let server = TestServer::start();
    let mut con = connect(&server);
    let t1: u64 = redis::cmd("PUT").arg("k").arg("v1").query(&mut con)?;
    let t2: u64 = redis::cmd("PUT").arg("k").arg("v2").query(&mut con)?;
    assert!(t2 > t1);
    let versions: Vec<(Option<String>, u64, u32)> =
        redis::cmd("VERSIONS").arg("k").query(&mut con)?;
    assert_eq!(versions, vec![(Some("v2".into()), t2, 3)]);
    let () = redis::cmd("DEL").arg("k").query::<i64>(&mut con).map(|_| ())?;
    let versions: Vec<(Option<String>, u64, u32)> =
        redis::cmd("VERSIONS").arg("k").query(&mut con)?;
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].0, None, "tombstone");
    assert!(versions[0].1 > t2);
    Ok(())
}

#[test]
fn scan_iterates_every_key_once() -> redis::RedisResult<()> {
    let server = TestServer::start();
    let mut con = connect(&server);
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.set(format!("item:{i}"), i).ignore();
    }
    pipe.set("unrelated", 0).ignore();
    let () = pipe.query(&mut con)?;
    let all: Vec<String> = con.scan_match("item:*")?.collect::<Result<_, _>>()?;
    assert_eq!(all.len(), 1000);
    let unique: BTreeSet<_> = all.into_iter().collect();
    assert_eq!(unique.len(), 1000);
    let everything: Vec<String> = con.scan()?.collect::<Result<_, _>>()?;
    assert_eq!(everything.len(), 1001);
    let keys: Vec<String> = con.keys("item:99*")?;
    assert_eq!(keys.len(), 11, "item:99 and item:990..999");
    Ok(())
}

#[test]
fn pipelines_of_mixed_commands() -> redis::RedisResult<()> {
    let server = TestServer::start();
    let mut con = connect(&server);
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.set(format!("p{i}"), format!("v{i}")).ignore();
    }
    for i in (0..2000).step_by(100) {
        pipe.get(format!("p{i}"));
    }
    pipe.cmd("PUT").arg("p0").arg("new");
    pipe.cmd("DBSIZE");
    let out: Vec<Value> = pipe.query(&mut con)?;
    assert_eq!(out.len(), 22);
    assert_eq!(out[0], Value::BulkString(b"v0".to_vec()));
    assert_eq!(out[19], Value::BulkString(b"v1900".to_vec()));
    assert!(matches!(out[20], Value::Int(t) if t > 0));
    assert_eq!(out[21], Value::Int(2000));
    // A failing command inside a pipeline fails only its own slot.
    let res: redis::RedisResult<Vec<Value>> =
        redis::pipe().get("p1").cmd("NOSUCHCMD").get("p2").query(&mut con);
    assert!(res.is_err());
    let v: String = con.get("p2")?;
    assert_eq!(v, "v2", "connection still usable after an error reply");
    Ok(())
}

#[test]
fn many_clients_at_once() {
    let server = TestServer::start();
    let addr = server.addr;
    let handles: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || -> redis::RedisResult<()> {
                let client = redis::Client::open(format!("redis://{addr}/"))?;
                let mut con = client.get_connection_with_timeout(Duration::from_secs(10))?;
                con.set_read_timeout(Some(Duration::from_secs(10)))?;
                for i in 0..250 {
                    let () = con.set(format!("c{t}:{i}"), i)?;
                    let v: i64 = con.get(format!("c{t}:{i}"))?;
                    assert_eq!(v, i);
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread").expect("commands succeed");
    }
    let mut con = connect(&server);
    let n: usize = redis::cmd("DBSIZE").query(&mut con).expect("dbsize");
    assert_eq!(n, 2000);
}
