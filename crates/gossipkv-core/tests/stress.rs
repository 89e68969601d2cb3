//! Threads put and merge overlapping versions at once; the final state must equal the
//! sequential fold of every version any thread wrote or merged. Bounded: a fixed op count.

use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use gossipkv_core::digest::TreeShape;
use gossipkv_core::{ClockKind, Replica, Store, StoreConfig, Version};

const THREADS: usize = 4;
const OPS: usize = 20_000;
const KEYS: u64 = 64;

fn cfg() -> StoreConfig {
    StoreConfig { shards_log2: 2, tree: TreeShape::new(2), max_concurrent: 4 }
}

#[test]
fn concurrent_puts_and_merges_equal_the_sequential_fold() {
    let replica = Arc::new(Replica::new(0, ClockKind::Lamport, cfg()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let r = Arc::clone(&replica);
            thread::spawn(move || {
                let mut applied: Vec<(Bytes, Version)> = Vec::with_capacity(OPS);
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
                for i in 0..OPS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = Bytes::from(format!("key-{}", x % KEYS));
                    match i % 4 {
                        // local PUT through the clock
                        0 => {
                            let v = r.put(&key, Bytes::from(format!("p{t}-{i}")), 0);
                            applied.push((key, v));
                        }
                        // local DEL
                        1 if x.is_multiple_of(7) => {
                            let (v, _) = r.delete(&key, 0);
                            applied.push((key, v));
                        }
                        // remote versions with colliding timestamps (ties across threads)
                        _ => {
                            let ts = (x >> 8) % 50;
                            let origin = 1 + (x >> 20) as u32 % 3;
                            let value = (!(x >> 30).is_multiple_of(3))
                                .then(|| Bytes::from(format!("r{}", (x >> 40) % 5)));
                            let v = Version { ts, origin, value };
                            r.merge_remote(&key, v.as_ref(), 0);
                            applied.push((key, v));
                        }
                    }
                }
                applied
            })
        })
        .collect();
    let sequential = Store::new(cfg());
    for h in handles {
        for (k, v) in h.join().expect("worker panicked") {
            sequential.merge(&k, v.as_ref());
        }
    }
    assert_eq!(replica.store().snapshot(), sequential.snapshot());
    assert_eq!(replica.store().root_hash(), sequential.root_hash());
    assert_eq!(replica.store().stats(), sequential.stats());
}

/// GETDEL's read-and-delete (`Replica::write_hashed_after`) is atomic per key: of threads
/// racing to take the same value, exactly one gets it, for every key.
#[test]
fn racing_swaps_hand_each_value_to_exactly_one_taker() {
    const ROUNDS: usize = 300;
    let replica = Arc::new(Replica::new(0, ClockKind::Hlc, cfg()));
    for round in 0..ROUNDS {
        let key = format!("take-{round}");
        replica.put(key.as_bytes(), Bytes::from(format!("v{round}")), 1);
        let barrier = Arc::new(std::sync::Barrier::new(THREADS));
        let takers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (r, key, barrier) = (Arc::clone(&replica), key.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    let (_, _, _, old) = r.write_hashed_after(key.as_bytes(), None, 2, |v| {
                        v.map(Bytes::copy_from_slice)
                    });
                    old
                })
            })
            .collect();
        let got: Vec<Bytes> =
            takers.into_iter().filter_map(|h| h.join().expect("taker panicked")).collect();
        assert_eq!(got, vec![Bytes::from(format!("v{round}"))], "round {round}");
        assert!(replica.get(key.as_bytes()).is_none(), "deleted");
    }
}
