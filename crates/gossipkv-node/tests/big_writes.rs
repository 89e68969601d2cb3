//! The longest writes a client may make, on real nodes. In a test binary of its own: moving
//! 150 MB between two nodes loads both cores for a second, and beside it the 50 ms rounds of
//! `real_nodes.rs`'s membership tests declared live members dead (2 failures in 6 runs).

mod common;

use common::Cluster;
use gossipkv_core::ClockKind;
use gossipkv_core::gossip::MAX_WRITE_BYTES;

/// The longest writes a client may make replicate: a 64 MiB value (the longest bulk string)
/// and an 80 MiB `MSET`. A key and value longer than any message may carry are refused, not
/// kept at one node for ever. (Before 2026-11-29 the 64 MiB value made a message over the
/// 64 MiB a node accepted: it never reached the other node, nor did 21 of the `MSET`'s keys.
/// Answers cut inside one millisecond of writes are tested on the sans-IO core, in
/// `gossipkv-core/tests/cluster.rs`, where time is ours to set.)
#[test]
fn the_longest_writes_replicate_and_longer_ones_are_refused() -> redis::RedisResult<()> {
    let c = Cluster::start(2, 0.0, ClockKind::Hlc, 100);
    let mut con = c.con(0);
    let big = vec![b'b'; 64 << 20];
    redis::cmd("SET").arg("big").arg(&big).query::<()>(&mut con)?;
    let mut mset = redis::cmd("MSET");
    let mib = vec![b'm'; 1 << 20];
    for i in 0..80 {
        mset.arg(format!("m{i:02}")).arg(&mib);
    }
    mset.query::<()>(&mut con)?;
    let key = vec![b'k'; MAX_WRITE_BYTES - big.len() + 1];
    let refused = redis::cmd("SET")
        .arg(&key)
        .arg(&big)
        .query::<()>(&mut con)
        .expect_err("a key and value over MAX_WRITE_BYTES are refused");
    assert!(refused.to_string().contains("exceeds maximum allowed size"), "{refused}");
    let refused = redis::cmd("MSET").arg("ok").arg("1").arg(&key).arg(&big).query::<()>(&mut con);
    assert!(refused.is_err());
    let exists: u64 = redis::cmd("EXISTS").arg("ok").query(&mut con)?;
    assert_eq!(exists, 0, "MSET is all or nothing");
    c.wait_all("the 64 MiB value and the 80 MiB MSET everywhere", |con| {
        let size: usize = redis::cmd("DBSIZE").query(con).unwrap_or(0);
        let len: usize = redis::cmd("STRLEN").arg("big").query(con).unwrap_or(0);
        let last: usize = redis::cmd("STRLEN").arg("m79").query(con).unwrap_or(0);
        size == 81 && len == 64 << 20 && last == 1 << 20
    });
    for i in 0..2 {
        let mut con = c.con(i);
        for field in ["oversize_messages", "oversize_versions"] {
            // (read as text: a field missing from INFO must fail here, not read as 0)
            let v = common::info_gossip_field(&mut con, field);
            assert_eq!(v.as_deref().map(str::trim), Some("0"), "{field} at node {i}");
        }
    }
    Ok(())
}
