//! Measures how long a PUT at node 0 of a running `gossipkv cluster` takes to be visible at
//! every node, through the Redis protocol (the `redis` crate).
//!
//! ```sh
//! gossipkv cluster --nodes 1000 --base-port 20000 --drop-rate 0.1 --quiet &
//! cargo run --release -p gossipkv-node --example spread_probe -- 20000 1000 1000
//! #                                                        base-port nodes interval-ms
//! ```
//!
//! Prints when 50%, 90%, 99% and 100% of nodes saw the value, in ms and in gossip intervals.
//! Bounded: gives up after 60 s.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use redis::Commands;

fn main() -> ExitCode {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (base, n, interval) = match args.as_slice() {
        [b, n, i] => (*b, *n as usize, *i),
        [b, n] => (*b, *n as usize, 1000),
        _ => {
            eprintln!("usage: spread_probe BASE_PORT NODES [INTERVAL_MS]");
            return ExitCode::from(2);
        }
    };
    let mut cons = Vec::with_capacity(n);
    for i in 0..n {
        let url = format!("redis://127.0.0.1:{}/", base + i as u64);
        match redis::Client::open(url).and_then(|c| c.get_connection()) {
            Ok(c) => cons.push(c),
            Err(e) => {
                eprintln!("node {i}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let key = format!("probe-{}", std::process::id());
    let start = Instant::now();
    let ts: redis::RedisResult<u64> = redis::cmd("PUT").arg(&key).arg("here").query(&mut cons[0]);
    if let Err(e) = ts {
        eprintln!("PUT failed: {e}");
        return ExitCode::FAILURE;
    }
    let mut seen_at: Vec<Option<Duration>> = vec![None; n];
    let deadline = start + Duration::from_secs(60);
    while seen_at.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, con) in cons.iter_mut().enumerate() {
            if seen_at[i].is_none() {
                let v: Option<String> = con.get(&key).unwrap_or(None);
                if v.is_some() {
                    seen_at[i] = Some(start.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut times: Vec<Duration> = seen_at.iter().flatten().copied().collect();
    times.sort();
    let seen = times.len();
    let at = |q: f64| times.get(((seen as f64 * q).ceil() as usize).saturating_sub(1)).copied();
    println!("nodes {n}, saw the PUT: {seen}");
    for (label, q) in [("50%", 0.5), ("90%", 0.9), ("99%", 0.99), ("100%", 1.0)] {
        if let Some(t) = at(q) {
            let ms = t.as_secs_f64() * 1000.0;
            println!("{label:>5} of nodes by {ms:8.0} ms = {:5.2} intervals", ms / interval as f64);
        }
    }
    if seen == n { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
