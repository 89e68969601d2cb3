//! The server spoken to in raw RESP bytes over TCP: pipelining, inline commands, binary
//! values, protocol errors and limits, the command set's replies, auth, the connection limit,
//! the write hook and graceful shutdown. Every read is bounded by a timeout.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Conn, TestServer, bulk, error, is_error_starting, simple};
use gossipkv_core::VersionRef;
use gossipkv_server::resp::{Frame, Limits};
use gossipkv_server::{ServerConfig, ServerContext};

#[test]
fn pipelined_batch_gets_every_reply_in_order() {
    let server = TestServer::start();
    let mut c = server.connect();
    let mut batch = Vec::new();
    for i in 0..500 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        batch.extend(Frame::command(["SET", &k, &v]).to_vec());
        batch.extend(Frame::command(["GET", &k]).to_vec());
    }
    batch.extend(Frame::command(["DBSIZE"]).to_vec());
    c.send(&batch);
    for i in 0..500 {
        assert_eq!(c.reply(), simple("OK"), "SET #{i}");
        assert_eq!(c.reply(), bulk(format!("v{i}").as_bytes()), "GET #{i}");
    }
    assert_eq!(c.reply(), Frame::Integer(500));
}

#[test]
fn inline_commands_like_telnet() {
    let server = TestServer::start();
    let mut c = server.connect();
    c.send(
        b"PING\r\nSET a b\r\nGET a\r\n\r\nset \"sp ace\" 'it''s'\nGET \"sp ace\"\r\nping hi\r\n",
    );
    assert_eq!(c.reply(), simple("PONG"));
    assert_eq!(c.reply(), simple("OK"));
    assert_eq!(c.reply(), bulk(b"b"));
    // `'it''s'`: a closing quote followed by a non-space is unbalanced, as in Redis.
    assert_eq!(c.reply(), error("ERR Protocol error: unbalanced quotes in request"));
    assert!(c.is_closed());
    let mut c = server.connect();
    c.send(b"set \"sp ace\" \"x\\r\\ny\"\nGET \"sp ace\"\r\nping hi\r\n");
    assert_eq!(c.reply(), simple("OK"));
    assert_eq!(c.reply(), bulk(b"x\r\ny"));
    assert_eq!(c.reply(), bulk(b"hi"));
}

#[test]
fn binary_keys_and_values_round_trip() {
    let server = TestServer::start();
    let mut c = server.connect();
    let key: &[u8] = b"k\r\n\0\xff*1\r\n";
    let value: Vec<u8> = (0..=255u8).chain(b"\r\n$-1\r\n".iter().copied()).collect();
    assert_eq!(c.cmd(&[b"SET", key, &value]), simple("OK"));
    assert_eq!(c.cmd(&[b"GET", key]), bulk(&value));
    assert_eq!(c.cmd(&[b"EXISTS", key, b"other"]), Frame::Integer(1));
    let Frame::Array(vs) = c.cmd(&[b"VERSIONS", key]) else { panic!("array") };
    assert_eq!(vs.len(), 1);
    let Frame::Array(v) = &vs[0] else { panic!("array") };
    assert_eq!(v[0], bulk(&value));
    assert_eq!(v[2], Frame::Integer(3), "origin is the node id");
    assert_eq!(c.cmd(&[b"SET", b"", b""]), simple("OK"), "empty key and value");
    assert_eq!(c.cmd(&[b"GET", b""]), bulk(b""));
}

#[test]
fn requests_split_into_single_bytes_are_reassembled() {
    let server = TestServer::start();
    let mut c = server.connect();
    let req = Frame::command(["SET", "slow", "drip\r\nfed"]).to_vec();
    for b in &req {
        c.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(c.reply(), simple("OK"));
    assert_eq!(c.cmd(&[b"GET", b"slow"]), bulk(b"drip\r\nfed"));
}

#[test]
fn big_values_are_stored_and_returned_whole() {
    let server = TestServer::start();
    let mut c = server.connect();
    let value: Vec<u8> = (0..6 << 20).map(|i: u32| (i % 251) as u8).collect();
    assert_eq!(c.cmd(&[b"SET", b"big", &value]), simple("OK"));
    assert_eq!(c.cmd(&[b"GET", b"big"]), bulk(&value));
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let server = TestServer::start();
    let mut bystander = server.connect();
    assert_eq!(bystander.cmd(&[b"SET", b"k", b"v"]), simple("OK"));
    for (input, msg) in [
        (&b"*1\r\n:12\r\n"[..], "ERR Protocol error: expected '$', got ':'"),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nkXX", "ERR Protocol error: expected CRLF after bulk string"),
        (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n\x00",
            "ERR Protocol error: expected '$', got '\\x00'",
        ),
    ] {
        let mut c = server.connect();
        c.send(input);
        let mut got = c.reply();
        while got == simple("PONG") {
            got = c.reply();
        }
        assert_eq!(got, error(msg));
        assert!(c.is_closed(), "connection closed after {msg}");
    }
    // The server is still up, old and new connections work.
    assert_eq!(bystander.cmd(&[b"GET", b"k"]), bulk(b"v"));
    assert_eq!(server.connect().cmd(&[b"PING"]), simple("PONG"));
    let m = server.ctx.metrics().snapshot();
    assert_eq!(m.protocol_errors, 5);
}

#[test]
fn oversized_requests_are_refused_before_they_arrive() {
    let limits = Limits {
        max_bulk_len: 1024,
        max_array_len: 16,
        max_inline_len: 256,
        max_request_len: 4096,
    };
    let config = ServerConfig { limits, ..ServerConfig::default() };
    let server = TestServer::with_config(config);
    let cases: [(Vec<u8>, &str); 4] = [
        // Only the header is sent: the refusal must not wait for the payload.
        (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n".to_vec(), "invalid bulk length"),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999999999999\r\n".to_vec(),
            "invalid bulk length",
        ),
        (b"*17\r\n".to_vec(), "invalid multibulk length"),
        (vec![b'A'; 300], "too big inline request"),
    ];
    for (input, msg) in &cases {
        let mut c = server.connect();
        c.send(input);
        assert_eq!(c.reply(), error(&format!("ERR Protocol error: {msg}")));
        assert!(c.is_closed());
    }
    // A request spanning more than max_request_len is refused as well (two full MSETs of
    // ~2 KB fit, the third one's second value does not).
    let mut c = server.connect();
    let mset = |n: usize| -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.extend(
                Frame::command(["MSET", "a", &"x".repeat(1000), "b", &"y".repeat(1000)]).to_vec(),
            );
        }
        v
    };
    c.send(&mset(2));
    assert_eq!(c.reply(), simple("OK"));
    assert_eq!(c.reply(), simple("OK"));
    let huge = Frame::command([
        "MSET",
        "a",
        &"x".repeat(1000),
        "b",
        &"y".repeat(1000),
        "c",
        &"z".repeat(1000),
        "d",
        &"w".repeat(1000),
        "e",
        &"v".repeat(1000),
    ])
    .to_vec();
    c.send(&huge);
    assert_eq!(c.reply(), error("ERR Protocol error: request larger than 4096 bytes"));
    assert!(c.is_closed());
    assert_eq!(server.connect().cmd(&[b"PING"]), simple("PONG"));
}

#[test]
fn errors_worded_like_redis() {
    let server = TestServer::start();
    let mut c = server.connect();
    assert_eq!(
        c.cmd(&[b"FOO", b"a", b"b\r\nc"]),
        error("ERR unknown command 'FOO', with args beginning with: 'a' 'b  c' ")
    );
    assert_eq!(c.cmd(&[b"get"]), error("ERR wrong number of arguments for 'get' command"));
    assert_eq!(
        c.cmd(&[b"GET", b"a", b"b"]),
        error("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(c.cmd(&[b"MSET", b"a"]), error("ERR wrong number of arguments for 'mset' command"));
    assert_eq!(
        c.cmd(&[b"MSET", b"a", b"1", b"b"]),
        error("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(
        c.cmd(&[b"PING", b"a", b"b"]),
        error("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(c.cmd(&[b"SET", b"a", b"1", b"BOGUS"]), error("ERR syntax error"));
    assert_eq!(c.cmd(&[b"SET", b"a", b"1", b"NX", b"XX"]), error("ERR syntax error"));
    assert_eq!(c.cmd(&[b"SET", b"a", b"1", b"EX"]), error("ERR syntax error"));
    assert_eq!(
        c.cmd(&[b"SET", b"a", b"1", b"EX", b"x"]),
        error("ERR value is not an integer or out of range")
    );
    assert!(is_error_starting(
        &c.cmd(&[b"SET", b"a", b"1", b"EX", b"10"]),
        "ERR SET EX/PX/EXAT/PXAT is not supported"
    ));
    assert!(is_error_starting(
        &c.cmd(&[b"SET", b"a", b"1", b"nx"]),
        "ERR SET NX/XX is not supported"
    ));
    assert_eq!(c.cmd(&[b"GET", b"a"]), Frame::Null, "refused SETs wrote nothing");
    assert_eq!(c.cmd(&[b"SET", b"a", b"1", b"KEEPTTL"]), simple("OK"));
    assert_eq!(c.cmd(&[b"SET", b"a", b"2", b"GET"]), bulk(b"1"));
    assert_eq!(c.cmd(&[b"SET", b"fresh", b"2", b"GET"]), Frame::Null);
    assert_eq!(c.cmd(&[b"SELECT", b"0"]), simple("OK"));
    assert_eq!(c.cmd(&[b"SELECT", b"1"]), error("ERR DB index is out of range"));
    assert_eq!(c.cmd(&[b"SELECT", b"x"]), error("ERR value is not an integer or out of range"));
    assert_eq!(c.cmd(&[b"SCAN", b"x"]), error("ERR invalid cursor"));
    assert_eq!(c.cmd(&[b"SCAN", b"0", b"COUNT", b"0"]), error("ERR syntax error"));
    assert_eq!(
        c.cmd(&[b"CLIENT", b"BOGUS"]),
        error("ERR unknown subcommand 'BOGUS'. Try CLIENT HELP.")
    );
    assert_eq!(c.cmd(&[b"AUTH", b"x"]), auth_without_password());
    // without a password the default user is Redis's "nopass" user: any password, named
    assert_eq!(c.cmd(&[b"AUTH", b"default", b"any"]), simple("OK"));
    assert_eq!(
        c.cmd(&[b"AUTH", b"someone", b"any"]),
        error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.cmd(&[b"QUIT"]), simple("OK"));
    assert!(c.is_closed());
}

fn auth_without_password() -> Frame {
    error(
        "ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?",
    )
}

#[test]
fn redis_tool_handshakes() {
    let server = TestServer::start();
    let mut c = server.connect();
    // redis-benchmark
    assert_eq!(c.cmd(&[b"CONFIG", b"GET", b"save"]), Frame::Array(vec![bulk(b"save"), bulk(b"")]));
    assert_eq!(
        c.cmd(&[b"CONFIG", b"GET", b"appendonly"]),
        Frame::Array(vec![bulk(b"appendonly"), bulk(b"no")])
    );
    assert_eq!(c.cmd(&[b"CONFIG", b"GET", b"nothing*"]), Frame::Array(vec![]));
    // redis-cli
    assert_eq!(c.cmd(&[b"COMMAND", b"DOCS"]), Frame::Array(vec![]));
    let Frame::Integer(n) = c.cmd(&[b"COMMAND", b"COUNT"]) else { panic!("integer") };
    let Frame::Array(all) = c.cmd(&[b"COMMAND"]) else { panic!("array") };
    assert_eq!(all.len() as i64, n);
    let Frame::Array(info) = c.cmd(&[b"COMMAND", b"INFO", b"get"]) else { panic!("array") };
    let Frame::Array(get) = &info[0] else { panic!("array") };
    assert_eq!(get[..2], [bulk(b"get"), Frame::Integer(2)]);
    // RESP3 on HELLO 3: a map, and nulls, maps, sets and verbatim text in RESP3 form until
    // HELLO 2; other versions are refused with NOPROTO
    assert_eq!(c.cmd(&[b"HELLO", b"4"]), error("NOPROTO unsupported protocol version"));
    let Frame::Map(hello) = c.cmd(&[b"HELLO", b"3"]) else { panic!("a RESP3 map") };
    assert_eq!(hello[2], (bulk(b"proto"), Frame::Integer(3)));
    assert_eq!(c.cmd(&[b"GET", b"nothing"]), Frame::Nil);
    assert_eq!(c.cmd(&[b"MGET", b"nothing"]), Frame::Array(vec![Frame::Nil]));
    assert_eq!(c.cmd(&[b"CONFIG", b"GET", b"save"]), Frame::Map(vec![(bulk(b"save"), bulk(b""))]));
    assert!(
        matches!(c.cmd(&[b"INFO", b"keyspace"]), Frame::Verbatim(t) if t.starts_with(b"txt:# Keyspace"))
    );
    let Frame::Array(info) = c.cmd(&[b"COMMAND", b"INFO", b"get", b"nothing"]) else { panic!() };
    assert!(matches!(&info[0], Frame::Array(f) if matches!(&f[2], Frame::Set(_))));
    assert_eq!(info[1], Frame::Nil);
    let Frame::Array(_) = c.cmd(&[b"HELLO", b"2"]) else { panic!("back to RESP2: an array") };
    assert_eq!(c.cmd(&[b"GET", b"nothing"]), Frame::Null);
    for hello in [&[&b"HELLO"[..]][..], &[b"HELLO", b"2"], &[b"HELLO", b"2", b"SETNAME", b"me"]] {
        let Frame::Array(map) = c.cmd(hello) else { panic!("array") };
        assert_eq!(map.len(), 14);
        assert_eq!(map[4..6], [bulk(b"proto"), Frame::Integer(2)]);
    }
    assert_eq!(c.cmd(&[b"CLIENT", b"GETNAME"]), bulk(b"me"));
    assert_eq!(c.cmd(&[b"CLIENT", b"SETNAME", b"bench"]), simple("OK"));
    assert_eq!(c.cmd(&[b"CLIENT", b"GETNAME"]), bulk(b"bench"));
    assert!(is_error_starting(&c.cmd(&[b"CLIENT", b"SETNAME", b"a b"]), "ERR Client names cannot"));
    assert_eq!(c.cmd(&[b"CLIENT", b"SETINFO", b"LIB-NAME", b"x"]), simple("OK"));
    assert!(matches!(c.cmd(&[b"CLIENT", b"ID"]), Frame::Integer(n) if n > 0));
    let Frame::Bulk(list) = c.cmd(&[b"CLIENT", b"LIST"]) else { panic!("bulk") };
    assert!(list.windows(10).any(|w| w == b"name=bench"));
    assert_eq!(c.cmd(&[b"ECHO", b"hi"]), bulk(b"hi"));
}

#[test]
fn memory_usage_counts_a_key_and_its_value() {
    let server = TestServer::start();
    let mut c = server.connect();
    let usage = |c: &mut common::Conn, key: &[u8]| match c.cmd(&[b"MEMORY", b"USAGE", key]) {
        Frame::Integer(n) => Some(n),
        Frame::Null => None,
        other => panic!("MEMORY USAGE: {other:?}"),
    };
    assert_eq!(usage(&mut c, b"absent"), None);
    c.cmd(&[b"SET", b"small", b"v"]);
    c.cmd(&[b"SET", b"large", &[b'x'; 1000]]);
    let (small, large) =
        (usage(&mut c, b"small").expect("live"), usage(&mut c, b"large").expect("live"));
    // an entry (64 bytes) and an index slot; the large value adds its own allocation
    assert!((64..200).contains(&small), "small: {small}");
    assert!(large >= small + 1000, "large: {large}, small: {small}");
    c.cmd(&[b"DEL", b"small"]);
    assert_eq!(usage(&mut c, b"small"), None, "a deleted key uses nothing, as in Redis");
    assert_eq!(c.cmd(&[b"MEMORY", b"USAGE", b"large", b"SAMPLES", b"0"]), Frame::Integer(large));
}

#[test]
fn info_sections_and_keyspace() {
    let server = TestServer::start();
    let mut c = server.connect();
    let Frame::Bulk(empty) = c.cmd(&[b"INFO", b"keyspace"]) else { panic!("bulk") };
    assert_eq!(&empty[..], b"# Keyspace\r\n");
    c.cmd(&[b"MSET", b"a", b"1", b"b", b"2"]);
    c.cmd(&[b"DEL", b"b"]);
    let Frame::Bulk(ks) = c.cmd(&[b"INFO", b"KEYSPACE"]) else { panic!("bulk") };
    assert_eq!(&ks[..], b"# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
    let Frame::Bulk(all) = c.cmd(&[b"INFO"]) else { panic!("bulk") };
    let text = String::from_utf8(all.to_vec()).expect("utf-8");
    for needle in [
        "# Server\r\n",
        "redis_version:",
        "# Clients\r\nconnected_clients:1\r\n",
        "# Memory\r\nused_memory:",
        "total_commands_processed:",
        "# Replication\r\nrole:master\r\n",
        "node_id:3\r\n",
        "tombstones:1\r\n",
        "# Gossip\r\n",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    assert!(!text.contains("# Commandstats"), "not a default section, as in Redis");
    // per-command counters, in Redis's format: refused before running (arity) is a rejected
    // call, an error from the command itself a failed one
    c.cmd(&[b"GET", b"a"]);
    c.cmd(&[b"GET", b"a", b"extra"]);
    c.cmd(&[b"GETRANGE", b"a", b"x", b"1"]);
    c.cmd(&[b"NOSUCHCOMMAND"]);
    let Frame::Bulk(stats) = c.cmd(&[b"INFO", b"commandstats"]) else { panic!("bulk") };
    let stats = String::from_utf8(stats.to_vec()).expect("utf-8");
    assert!(stats.starts_with("# Commandstats\r\n"), "{stats}");
    assert!(stats.contains("cmdstat_mset:calls=1,usec="), "{stats}");
    assert!(stats.contains("cmdstat_del:calls=1,"), "{stats}");
    let line = |name: &str| {
        let prefix = format!("cmdstat_{name}:");
        stats.lines().find(|l| l.starts_with(&prefix)).map(str::to_owned).unwrap_or_default()
    };
    assert!(line("get").starts_with("cmdstat_get:calls=1,"), "{stats}");
    assert!(line("get").ends_with(",rejected_calls=1,failed_calls=0"), "{stats}");
    assert!(line("getrange").starts_with("cmdstat_getrange:calls=1,"), "{stats}");
    assert!(line("getrange").ends_with(",rejected_calls=0,failed_calls=1"), "{stats}");
    assert!(!stats.contains("cmdstat_ping"), "only commands called: {stats}");
    let Frame::Bulk(everything) = c.cmd(&[b"INFO", b"everything"]) else { panic!("bulk") };
    assert!(String::from_utf8_lossy(&everything).contains("# Commandstats\r\ncmdstat_"));
    let Frame::Bulk(st) = c.cmd(&[b"INFO", b"stats"]) else { panic!("bulk") };
    assert!(
        String::from_utf8_lossy(&st).contains("total_error_replies:3\r\n"),
        "the arity error, the bad integer and the unknown command: {st:?}"
    );
    assert_eq!(c.cmd(&[b"INFO", b"nosuchsection"]), bulk(b""));
}

#[test]
fn del_exists_dbsize_scan_keys() {
    let server = TestServer::start();
    let mut c = server.connect();
    for i in 0..300 {
        c.cmd(&[b"SET", format!("user:{i}").as_bytes(), b"x"]);
    }
    c.cmd(&[b"SET", b"other", b"y"]);
    assert_eq!(c.cmd(&[b"DBSIZE"]), Frame::Integer(301));
    assert_eq!(c.cmd(&[b"EXISTS", b"user:1", b"user:1", b"nope"]), Frame::Integer(2));
    assert_eq!(c.cmd(&[b"DEL", b"user:1", b"user:2", b"nope"]), Frame::Integer(2));
    assert_eq!(c.cmd(&[b"DEL", b"user:1"]), Frame::Integer(0));
    assert_eq!(c.cmd(&[b"DBSIZE"]), Frame::Integer(299));
    let Frame::Array(keys) = c.cmd(&[b"KEYS", b"user:2?"]) else { panic!("array") };
    let mut keys: Vec<Frame> = keys;
    keys.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(keys.len(), 10, "user:20..29");
    // SCAN: every live key exactly once, MATCH filters, cursor ends at 0.
    let mut seen = Vec::new();
    let mut cursor = b"0".to_vec();
    loop {
        let Frame::Array(r) = c.cmd(&[b"SCAN", &cursor, b"MATCH", b"user:*", b"COUNT", b"7"])
        else {
            panic!("array")
        };
        let [Frame::Bulk(next), Frame::Array(batch)] = &r[..] else { panic!("shape {r:?}") };
        seen.extend(batch.iter().cloned());
        cursor = next.to_vec();
        if cursor == b"0" {
            break;
        }
    }
    assert_eq!(seen.len(), 298);
    seen.sort_by_key(|f| format!("{f:?}"));
    seen.dedup();
    assert_eq!(seen.len(), 298);
    let Frame::Array(r) = c.cmd(&[b"SCAN", b"0", b"TYPE", b"hash", b"COUNT", b"1000000"]) else {
        panic!("array")
    };
    assert_eq!(r[1], Frame::Array(vec![]));
}

#[test]
fn string_and_keyspace_commands_redis_users_reach_for() {
    let server = TestServer::start();
    let mut c = server.connect();
    assert_eq!(c.cmd(&[b"RANDOMKEY"]), Frame::Null, "empty store");
    c.cmd(&[b"SET", b"s", b"This is a string"]);
    // TYPE and the expiry queries: a key without a time to live, or none
    assert_eq!(c.cmd(&[b"TYPE", b"s"]), simple("string"));
    assert_eq!(c.cmd(&[b"type", b"nope"]), simple("none"));
    for q in [&b"TTL"[..], b"PTTL", b"EXPIRETIME", b"PEXPIRETIME"] {
        assert_eq!(c.cmd(&[q, b"s"]), Frame::Integer(-1), "{q:?} of a live key");
        assert_eq!(c.cmd(&[q, b"nope"]), Frame::Integer(-2), "{q:?} of a missing key");
    }
    assert_eq!(c.cmd(&[b"PERSIST", b"s"]), Frame::Integer(0));
    assert_eq!(c.cmd(&[b"TOUCH", b"s", b"s", b"nope"]), Frame::Integer(2));
    // reads of part of a value
    assert_eq!(c.cmd(&[b"STRLEN", b"s"]), Frame::Integer(16));
    assert_eq!(c.cmd(&[b"STRLEN", b"nope"]), Frame::Integer(0));
    assert_eq!(c.cmd(&[b"GETRANGE", b"s", b"0", b"3"]), bulk(b"This"));
    assert_eq!(c.cmd(&[b"GETRANGE", b"s", b"-3", b"-1"]), bulk(b"ing"));
    assert_eq!(c.cmd(&[b"SUBSTR", b"s", b"10", b"100"]), bulk(b"string"));
    assert_eq!(c.cmd(&[b"GETRANGE", b"nope", b"0", b"-1"]), bulk(b""));
    assert_eq!(
        c.cmd(&[b"GETRANGE", b"s", b"x", b"1"]),
        error("ERR value is not an integer or out of range")
    );
    // GETEX reads; it cannot set an expiry
    assert_eq!(c.cmd(&[b"GETEX", b"s"]), bulk(b"This is a string"));
    assert_eq!(c.cmd(&[b"GETEX", b"s", b"PERSIST"]), bulk(b"This is a string"));
    assert!(is_error_starting(
        &c.cmd(&[b"GETEX", b"s", b"EX", b"10"]),
        "ERR GETEX EX/PX/EXAT/PXAT is not supported"
    ));
    assert_eq!(c.cmd(&[b"GETEX", b"s", b"BOGUS"]), error("ERR syntax error"));
    // swaps
    assert_eq!(c.cmd(&[b"GETSET", b"s", b"two"]), bulk(b"This is a string"));
    assert_eq!(c.cmd(&[b"GETSET", b"fresh", b"one"]), Frame::Null);
    assert_eq!(c.cmd(&[b"GET", b"fresh"]), bulk(b"one"));
    assert_eq!(c.cmd(&[b"GETDEL", b"s"]), bulk(b"two"));
    assert_eq!(c.cmd(&[b"GET", b"s"]), Frame::Null);
    assert_eq!(c.cmd(&[b"TYPE", b"s"]), simple("none"));
    // GETDEL of a key this node does not hold still deletes it (as DEL does): a tombstone
    assert_eq!(c.cmd(&[b"GETDEL", b"elsewhere"]), Frame::Null);
    let Frame::Array(v) = c.cmd(&[b"VERSIONS", b"elsewhere"]) else { panic!("array") };
    assert_eq!(v.len(), 1, "one version: the tombstone {v:?}");
    assert_eq!(c.cmd(&[b"UNLINK", b"fresh", b"nope"]), Frame::Integer(1));
    assert_eq!(c.cmd(&[b"DBSIZE"]), Frame::Integer(0));
    // RANDOMKEY: one of the live keys, never a deleted one
    for i in 0..50 {
        c.cmd(&[b"SET", format!("k{i}").as_bytes(), b"v"]);
    }
    c.cmd(&[b"DEL", b"k7"]);
    for _ in 0..20 {
        let Frame::Bulk(k) = c.cmd(&[b"RANDOMKEY"]) else { panic!("a key") };
        let i: usize = std::str::from_utf8(&k[1..]).expect("utf8").parse().expect("k<n>");
        assert!(i < 50 && i != 7, "{k:?}");
    }
    // TIME: seconds and microseconds of the node's clock
    let Frame::Array(t) = c.cmd(&[b"TIME"]) else { panic!("array") };
    let [Frame::Bulk(secs), Frame::Bulk(us)] = &t[..] else { panic!("shape {t:?}") };
    let secs: u64 = std::str::from_utf8(secs).expect("utf8").parse().expect("secs");
    let us: u64 = std::str::from_utf8(us).expect("utf8").parse().expect("micros");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(secs.abs_diff(now) <= 2 && us < 1_000_000, "{secs} {us} against {now}");
}

#[test]
fn commands_left_out_on_purpose_say_why_and_write_nothing() {
    let server = TestServer::start();
    let mut c = server.connect();
    c.cmd(&[b"SET", b"n", b"1"]);
    let refused: [(&[&[u8]], &str); 8] = [
        (&[b"INCR", b"n"], "ERR INCR is not supported: two replicas running it at once"),
        (&[b"incrby", b"n", b"5"], "ERR INCRBY is not supported: two replicas"),
        (&[b"APPEND", b"n", b"x"], "ERR APPEND is not supported: two replicas"),
        (&[b"SETNX", b"m", b"1"], "ERR SETNX is not supported: gossipkv replicas are"),
        (&[b"EXPIRE", b"n", b"10"], "ERR EXPIRE is not supported: gossipkv keys do not expire"),
        (&[b"SETEX", b"m", b"10", b"v"], "ERR SETEX is not supported: gossipkv keys do not"),
        (&[b"MULTI"], "ERR MULTI is not supported: gossipkv replicas are eventually consistent"),
        (&[b"FLUSHALL"], "ERR FLUSHALL is not supported: a flush cannot reach"),
    ];
    for (args, prefix) in refused {
        let r = c.cmd(args);
        assert!(is_error_starting(&r, prefix), "{args:?}: {r:?}");
    }
    assert_eq!(c.cmd(&[b"GET", b"n"]), bulk(b"1"), "refused writes wrote nothing");
    assert_eq!(c.cmd(&[b"EXISTS", b"m"]), Frame::Integer(0));
    assert_eq!(c.cmd(&[b"DBSIZE"]), Frame::Integer(1));
    // a command nobody offers is still unknown, worded as Redis does
    assert_eq!(
        c.cmd(&[b"LPUSH", b"l", b"x"]),
        error("ERR unknown command 'LPUSH', with args beginning with: 'l' 'x' ")
    );
    // and the connection goes on
    assert_eq!(c.cmd(&[b"PING"]), simple("PONG"));
}

#[test]
fn put_and_versions_expose_timestamps() {
    let server = TestServer::start();
    let mut c = server.connect();
    let Frame::Integer(t1) = c.cmd(&[b"PUT", b"k", b"one"]) else { panic!("integer") };
    let Frame::Integer(t2) = c.cmd(&[b"PUT", b"k", b"two"]) else { panic!("integer") };
    assert!(t2 > t1, "a later PUT gets a larger timestamp");
    assert_eq!(
        c.cmd(&[b"VERSIONS", b"k"]),
        Frame::Array(vec![Frame::Array(vec![bulk(b"two"), Frame::Integer(t2), Frame::Integer(3)])])
    );
    // A concurrent write from another node, same timestamp, smaller value: it wins the tie
    // and both are listed, winner first.
    let remote = gossipkv_core::Version::put(t2 as u64, 9, Bytes::from_static(b"aaa"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    server.replica.merge_remote(b"k", remote.as_ref(), now);
    assert_eq!(c.cmd(&[b"GET", b"k"]), bulk(b"aaa"));
    assert_eq!(
        c.cmd(&[b"VERSIONS", b"k"]),
        Frame::Array(vec![
            Frame::Array(vec![bulk(b"aaa"), Frame::Integer(t2), Frame::Integer(9)]),
            Frame::Array(vec![bulk(b"two"), Frame::Integer(t2), Frame::Integer(3)]),
        ])
    );
    c.cmd(&[b"DEL", b"k"]);
    let Frame::Array(vs) = c.cmd(&[b"VERSIONS", b"k"]) else { panic!("array") };
    let Frame::Array(tomb) = &vs[0] else { panic!("array") };
    assert_eq!(tomb[0], Frame::Null, "a tombstone has no value");
    assert_eq!(c.cmd(&[b"VERSIONS", b"never"]), Frame::Array(vec![]));
}

#[test]
fn write_observer_hears_every_local_write() {
    type Log = Arc<Mutex<Vec<(Vec<u8>, Option<Vec<u8>>, u64)>>>;
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let observer = move |key: &[u8], v: VersionRef<'_>| {
        sink.lock().expect("lock").push((key.to_vec(), v.value.map(<[u8]>::to_vec), v.ts));
    };
    let ctx = ServerContext::new(ServerConfig::default()).with_write_observer(Arc::new(observer));
    let server = TestServer::with_context(ctx);
    let mut c = server.connect();
    c.cmd(&[b"SET", b"a", b"1"]);
    let Frame::Integer(ts) = c.cmd(&[b"PUT", b"b", b"2"]) else { panic!("integer") };
    c.cmd(&[b"MSET", b"c", b"3", b"d", b"4"]);
    c.cmd(&[b"DEL", b"a", b"zz"]);
    c.cmd(&[b"GET", b"a"]);
    let log = log.lock().expect("lock").clone();
    let keys: Vec<(&[u8], Option<&[u8]>)> =
        log.iter().map(|(k, v, _)| (&k[..], v.as_deref())).collect();
    assert_eq!(
        keys,
        vec![
            (&b"a"[..], Some(&b"1"[..])),
            (b"b", Some(b"2")),
            (b"c", Some(b"3")),
            (b"d", Some(b"4")),
            (b"a", None),
            (b"zz", None),
        ]
    );
    assert_eq!(log[1].2, ts as u64);
    assert!(log.windows(2).all(|w| w[0].2 < w[1].2), "timestamps increase");
}

#[test]
fn requirepass_gates_commands() {
    let config = ServerConfig { requirepass: Some("s3cret".into()), ..ServerConfig::default() };
    let server = TestServer::with_config(config);
    let mut c = server.connect();
    assert_eq!(c.cmd(&[b"GET", b"a"]), error("NOAUTH Authentication required."));
    assert!(is_error_starting(&c.cmd(&[b"HELLO", b"2"]), "NOAUTH HELLO must be called"));
    assert_eq!(
        c.cmd(&[b"AUTH", b"wrong"]),
        error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.cmd(&[b"AUTH", b"s3cret"]), simple("OK"));
    assert_eq!(c.cmd(&[b"GET", b"a"]), Frame::Null);
    let mut d = server.connect();
    let Frame::Array(_) = d.cmd(&[b"HELLO", b"2", b"AUTH", b"default", b"s3cret"]) else {
        panic!("hello map")
    };
    assert_eq!(d.cmd(&[b"PING"]), simple("PONG"));
}

#[test]
fn connection_limit_refuses_extra_clients_like_redis() {
    let config = ServerConfig { max_connections: 2, ..ServerConfig::default() };
    let server = TestServer::with_config(config);
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(a.cmd(&[b"PING"]), simple("PONG"));
    assert_eq!(b.cmd(&[b"PING"]), simple("PONG"));
    let mut extra = server.connect();
    assert_eq!(extra.reply(), error("ERR max number of clients reached"));
    assert!(extra.is_closed());
    drop(a);
    // The slot frees once the server notices the close; retry for a bounded time. A refused
    // attempt may also see its connection reset, so any I/O error counts as "not yet".
    let ping = |addr| -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(&buf[..n] == b"+PONG\r\n")
    };
    let mut ok = false;
    for _ in 0..200 {
        if ping(server.addr).unwrap_or(false) {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ok, "a slot was freed");
    assert!(server.ctx.metrics().snapshot().connections_rejected >= 1);
}

#[test]
fn graceful_shutdown_closes_idle_and_busy_connections() {
    let mut server = TestServer::start();
    let mut idle = server.connect();
    assert_eq!(idle.cmd(&[b"PING"]), simple("PONG"));
    let mut half = server.connect();
    half.send(b"*2\r\n$3\r\nGET\r\n"); // a request in progress
    std::thread::sleep(Duration::from_millis(50));
    server.stop().expect("clean stop");
    assert!(idle.is_closed());
    assert!(half.is_closed());
    assert!(std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_err());
}

#[test]
fn multi_threaded_runtime_serves_too() {
    let config = ServerConfig { worker_threads: 2, ..ServerConfig::default() };
    let server = TestServer::with_config(config);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut c = Conn::new(addr);
                for i in 0..200 {
                    let k = format!("t{t}:{i}");
                    assert_eq!(c.cmd(&[b"SET", k.as_bytes(), b"v"]), simple("OK"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(server.connect().cmd(&[b"DBSIZE"]), Frame::Integer(800));
}

/// An admin hook that answers after `delay`: forgets ids below 10, refuses the others.
struct SlowAdmin {
    delay: Duration,
    asked: Arc<Mutex<Vec<u32>>>,
}

impl gossipkv_server::ClusterAdmin for SlowAdmin {
    fn forget(&self, id: u32) -> gossipkv_server::AdminFuture {
        self.asked.lock().expect("lock").push(id);
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if id < 10 {
                Frame::Simple(Bytes::from_static(b"OK"))
            } else {
                Frame::Error(Bytes::from(format!("ERR no member with id {id} is known")))
            }
        })
    }
}

#[test]
fn cluster_forget_waits_for_its_answer_and_keeps_replies_in_order() {
    // without membership: refused, like any command the server cannot carry out
    let plain = TestServer::start();
    let mut c = plain.connect();
    assert!(is_error_starting(&c.cmd(&[b"CLUSTER", b"FORGET", b"3"]), "ERR this server has no"));
    assert!(is_error_starting(&c.cmd(&[b"CLUSTER", b"MEMBERS"]), "ERR this server has no"));
    assert!(is_error_starting(&c.cmd(&[b"CLUSTER", b"NODES"]), "ERR unknown subcommand 'NODES'"));
    assert!(is_error_starting(&c.cmd(&[b"CLUSTER", b"FORGET"]), "ERR wrong number of arguments"));
    let Frame::Array(help) = c.cmd(&[b"CLUSTER", b"HELP"]) else { panic!("help") };
    assert!(help.len() > 2);

    let asked = Arc::default();
    let admin = SlowAdmin { delay: Duration::from_millis(300), asked: Arc::clone(&asked) };
    let ctx = ServerContext::new(ServerConfig::default()).with_cluster_admin(Arc::new(admin));
    let server = TestServer::with_context(ctx);
    let mut c = server.connect();
    let mut other = server.connect();
    // a pipeline around two slow answers: every reply in request order
    let mut batch = Vec::new();
    for args in [
        &["SET", "k", "1"][..],
        &["CLUSTER", "FORGET", "3"],
        &["GET", "k"],
        &["CLUSTER", "FORGET", "12"],
        &["CLUSTER", "FORGET", "-1"],
        &["PING"],
    ] {
        batch.extend(Frame::command(args.iter().copied()).to_vec());
    }
    let started = std::time::Instant::now();
    c.send(&batch);
    // meanwhile another connection is served at once
    assert_eq!(other.cmd(&[b"PING"]), simple("PONG"));
    assert!(started.elapsed() < Duration::from_millis(250), "blocked behind the other client");
    assert_eq!(c.reply(), simple("OK"));
    assert_eq!(c.reply(), simple("OK"), "the forget's own answer");
    assert_eq!(c.reply(), bulk(b"1"));
    assert_eq!(c.reply(), error("ERR no member with id 12 is known"));
    assert!(is_error_starting(&c.reply(), "ERR Invalid node id"));
    assert_eq!(c.reply(), simple("PONG"));
    assert!(started.elapsed() >= Duration::from_millis(600), "both answers were waited for");
    assert_eq!(*asked.lock().expect("lock"), vec![3, 12]);
    // the refusals count as errors of the command, the late one included
    let stats = server.ctx.metrics().commands_snapshot();
    let cluster = stats.iter().find(|c| c.name == "cluster").expect("cluster stats");
    assert_eq!((cluster.calls, cluster.errors), (3, 2));
}
