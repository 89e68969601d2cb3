//! Bench-only helpers for gossipkv: measures the replica store's memory per key as the
//! process's resident set size (VmRSS in `/proc/self/status`), in a release binary, under the
//! global allocator the binary was built with.
//!
//! Two binaries share this code and differ only in their `#[global_allocator]`:
//! `store_rss_glibc` (the system allocator, glibc malloc) and `store_rss_mimalloc`.
//! `bench/store_memory.sh` runs both next to redis-server and prints the ratios.
//!
//! Modes (`--mode`):
//! - `store` (default): `N` keys `k:%014d` (16 bytes) with values `v:%030d` (32 bytes), the
//!   same keys and values `bench/redis_memory.sh` loads into redis-server, each written through
//!   [`Replica::put`] (HLC timestamp and origin included) into a store with
//!   [`StoreConfig::default`] (or `--shards-log2`).
//! - `boxes`: `N` heap allocations of exactly `--box-bytes` bytes (default 48, the size of one
//!   entry's key+value block), held in a pre-sized `Vec`: what the allocator charges for the
//!   one per-key allocation the store makes.
//!
//! Output: human-readable lines, then one machine-readable line starting with `gossipkv `.
//!
//! [`flat`] is a store layout experiment that `burst_floor` measures against the product's
//! store (`STORE=flat`).

pub mod flat;

use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipkv_core::{ClockKind, Replica, StoreConfig};

/// Options parsed from the command line.
#[derive(Clone, Debug)]
struct Opts {
    keys: u64,
    mode: String,
    shards_log2: Option<u32>,
    box_bytes: usize,
    settle_ms: u64,
    ops: u64,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        keys: 1_000_000,
        mode: "store".into(),
        shards_log2: None,
        box_bytes: 48,
        settle_ms: 0,
        ops: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--keys" => o.keys = val("--keys")?.parse().map_err(|e| format!("--keys: {e}"))?,
            "--mode" => o.mode = val("--mode")?,
            "--shards-log2" => {
                o.shards_log2 =
                    Some(val("--shards-log2")?.parse().map_err(|e| format!("--shards-log2: {e}"))?)
            }
            "--box-bytes" => {
                o.box_bytes =
                    val("--box-bytes")?.parse().map_err(|e| format!("--box-bytes: {e}"))?
            }
            "--settle-ms" => {
                o.settle_ms =
                    val("--settle-ms")?.parse().map_err(|e| format!("--settle-ms: {e}"))?
            }
            "--ops" => o.ops = val("--ops")?.parse().map_err(|e| format!("--ops: {e}"))?,
            "-h" | "--help" => {
                return Err("usage: store_rss_<allocator> [--keys N] [--mode store|boxes] \
                            [--shards-log2 S] [--box-bytes B] [--settle-ms MS] [--ops M]"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(o)
}

/// `AnonHugePages` of `/proc/self/smaps_rollup` in kB (memory backed by transparent huge
/// pages), or 0 if unreadable.
pub fn anon_huge_kb() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/smaps_rollup") else { return 0 };
    s.lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A field of `/proc/self/status` in kB (`VmRSS`, `VmHWM`), or 0 if unreadable.
pub fn proc_status_kb(field: &str) -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else { return 0 };
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Writes `prefix` followed by `i` in decimal, zero-padded to fill `out` (like
/// `printf("k:%014d")` for a 16-byte `out` and prefix `b"k:"`), without allocating.
pub fn format_padded(prefix: &[u8], mut i: u64, out: &mut [u8]) {
    out[..prefix.len()].copy_from_slice(prefix);
    for b in out[prefix.len()..].iter_mut().rev() {
        *b = b'0' + (i % 10) as u8;
        i /= 10;
    }
}

/// Key `i` of the memory benchmark: `k:%014d`, 16 bytes (as in `bench/redis_memory.sh`).
pub fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    format_padded(b"k:", i, &mut k);
    k
}

/// Value `i` of the memory benchmark: `v:%030d`, 32 bytes (as in `bench/redis_memory.sh`).
pub fn value(i: u64) -> [u8; 32] {
    let mut v = [0u8; 32];
    format_padded(b"v:", i, &mut v);
    v
}

fn per_key(delta_kb: u64, n: u64) -> f64 {
    delta_kb as f64 * 1024.0 / n.max(1) as f64
}

fn settle(ms: u64) {
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn run_store(alloc: &str, o: &Opts) -> Result<(), String> {
    let mut cfg = StoreConfig::default();
    if let Some(s) = o.shards_log2 {
        cfg.shards_log2 = s;
    }
    let rss0 = proc_status_kb("VmRSS");
    let replica = Replica::new(1, ClockKind::Hlc, cfg);
    let phys_ms = 1_700_000_000_000;
    let t0 = Instant::now();
    for i in 0..o.keys {
        replica.put(&key(i), Bytes::copy_from_slice(&value(i)), phys_ms);
    }
    let load = t0.elapsed();
    let rss1 = proc_status_kb("VmRSS");
    settle(o.settle_ms);
    let rss2 = proc_status_kb("VmRSS");
    let hwm = proc_status_kb("VmHWM");
    let huge = anon_huge_kb();
    let store = replica.store();
    if store.len() as u64 != o.keys {
        return Err(format!("store holds {} keys, expected {}", store.len(), o.keys));
    }
    let probe = o.keys / 2;
    if store.get(&key(probe)).as_deref() != Some(&value(probe)[..]) {
        return Err(format!("key {probe} does not read back"));
    }
    let cfg = store.config();
    let shards = 1u64 << cfg.shards_log2;
    let ns_per_put = load.as_nanos() as f64 / o.keys.max(1) as f64;
    println!(
        "store: allocator={alloc} shards={shards} leaves={} keys={} load={:.2}s ({ns_per_put:.0} ns/put)",
        cfg.tree.leaves(),
        o.keys,
        load.as_secs_f64()
    );
    println!(
        "VmRSS (kB): before={rss0} after_load={rss1} after_settle({}ms)={rss2} VmHWM={hwm} \
         AnonHugePages={huge}",
        o.settle_ms
    );
    println!(
        "gossipkv allocator={alloc} keys={} key_len=16 val_len=32 shards={shards} rss_per_key={:.1} \
         rss_delta={} settled_rss_per_key={:.1} hwm_per_key={:.1} ns_per_put={ns_per_put:.0}",
        o.keys,
        per_key(rss1.saturating_sub(rss0), o.keys),
        rss1.saturating_sub(rss0) * 1024,
        per_key(rss2.saturating_sub(rss0), o.keys),
        per_key(hwm.saturating_sub(rss0), o.keys),
    );
    if o.ops > 0 {
        time_ops(alloc, &replica, o);
    }
    // Keep the store alive until after the measurements.
    drop(replica);
    Ok(())
}

/// Times `--ops` GETs (copying the value out, as `Replica::get` does) and as many overwriting
/// PUTs, in a pseudo-random key order over the whole store: the allocator-sensitive paths, for
/// comparing allocators in one run. Keys are prepared before the clock starts.
fn time_ops(alloc: &str, replica: &Replica, o: &Opts) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let keys: Vec<[u8; 16]> = (0..o.ops)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key(x % o.keys.max(1))
        })
        .collect();
    let t = Instant::now();
    let mut bytes = 0usize;
    for k in &keys {
        bytes += replica.get(k).map_or(0, |v| v.len());
    }
    let get_ns = t.elapsed().as_nanos() as f64 / o.ops as f64;
    let val = Bytes::from_static(b"v:overwrite-overwrite-overwrite!");
    let t = Instant::now();
    for k in &keys {
        replica.put(k, val.clone(), 1_700_000_000_001);
    }
    let put_ns = t.elapsed().as_nanos() as f64 / o.ops as f64;
    let rss = proc_status_kb("VmRSS");
    println!(
        "gossipkv-ops allocator={alloc} ops={} get_ns={get_ns:.0} put_ns={put_ns:.0} \
         rss_after_ops_kb={rss} (read {bytes} bytes)",
        o.ops
    );
}

fn run_boxes(alloc: &str, o: &Opts) -> Result<(), String> {
    let n = usize::try_from(o.keys).map_err(|e| e.to_string())?;
    let mut v: Vec<Box<[u8]>> = Vec::with_capacity(n);
    // Touch the Vec's pages first so that only the boxes count.
    v.extend((0..n).map(|_| Box::<[u8]>::from(&[][..])));
    v.clear();
    let rss0 = proc_status_kb("VmRSS");
    for i in 0..n {
        v.push(vec![i as u8; o.box_bytes].into_boxed_slice());
    }
    let rss1 = proc_status_kb("VmRSS");
    let checksum: u64 = v.iter().map(|b| u64::from(b[0])).sum();
    println!("boxes: allocator={alloc} n={n} size={} checksum={checksum}", o.box_bytes);
    println!(
        "gossipkv-boxes allocator={alloc} n={n} box_bytes={} rss_per_box={:.1}",
        o.box_bytes,
        per_key(rss1.saturating_sub(rss0), o.keys)
    );
    Ok(())
}

/// Entry point of the `store_rss_*` binaries; `alloc` names the binary's global allocator.
/// Returns the process exit code.
pub fn main_with_allocator(alloc: &str) -> i32 {
    let res = parse_args().and_then(|o| match o.mode.as_str() {
        "store" => run_store(alloc, &o),
        "boxes" => run_boxes(alloc, &o),
        m => Err(format!("unknown mode {m:?}")),
    });
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_match_the_redis_script() {
        assert_eq!(&key(42), b"k:00000000000042");
        assert_eq!(&value(7), b"v:000000000000000000000000000007");
        assert!(proc_status_kb("VmRSS") > 0);
    }
}
