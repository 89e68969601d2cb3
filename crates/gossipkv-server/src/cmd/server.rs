//! Introspection commands: INFO, CONFIG, COMMAND, CLUSTER, TIME.
//!
//! - `INFO [section ...]`: `server`, `clients`, `memory`, `persistence`, `stats`,
//!   `replication`, `gossip` and `keyspace` (`db0:keys=N,expires=0,avg_ttl=0`, omitted when
//!   empty as in Redis); `commandstats` (Redis's `cmdstat_<name>:calls=..,usec=..` lines) only
//!   when asked for by name or with `all` / `everything`, as in Redis. `replication` and
//!   `gossip` carry the node's LWW state and whatever the
//!   [`InfoSource`](crate::hooks::InfoSource) adds. Memory figures are the process's resident
//!   set (the store does not count its allocations).
//! - `CONFIG GET pattern [pattern ...]`: a fixed, read-only table (enough for
//!   `redis-benchmark`, which asks for `save` and `appendonly`); `CONFIG RESETSTAT` zeroes the
//!   counters; `CONFIG SET` is refused (settings are fixed at start).
//! - `TIME`: the node's physical clock (the one its timestamps start from, configured skew
//!   included), as seconds and microseconds.
//! - `COMMAND`, `COMMAND COUNT`, `COMMAND LIST`, `COMMAND INFO name ...`, and
//!   `COMMAND DOCS` (an empty reply, which `redis-cli` accepts).

use std::fmt::Write as _;

use super::connection::REDIS_VERSION;
use super::{
    ALL, Ctx, Flow, Pending, Spec, help, is, lookup, not_an_integer, physical_us, syntax_error,
    unknown_subcommand, wrong_arity,
};
use crate::glob;
use crate::hooks::InfoSection;
use crate::resp::parse::parse_integer;
use crate::resp::{Request, reply};

const SECTIONS: [&str; 9] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "gossip",
    "keyspace",
    "commandstats",
];

/// Sections `INFO` and `INFO default` leave out (as Redis leaves out `commandstats`).
const NOT_DEFAULT: &[&str] = &["commandstats"];

/// Resident set size of this process in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return 0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2}{}", UNITS[u])
}

fn section(ctx: &Ctx<'_>, name: &str, s: &mut InfoSection) {
    let shared = ctx.shared;
    let m = shared.metrics.snapshot();
    let replica = &*shared.replica;
    match name {
        "server" => {
            let up = shared.started.elapsed().as_secs();
            s.field("redis_version", REDIS_VERSION);
            s.field("gossipkv_version", env!("CARGO_PKG_VERSION"));
            s.field("redis_mode", "standalone");
            s.field("os", std::env::consts::OS);
            s.field("arch_bits", usize::BITS);
            s.field("process_id", std::process::id());
            s.field("tcp_port", shared.local_addr.map_or(0, |a| a.port()));
            s.field("uptime_in_seconds", up);
            s.field("uptime_in_days", up / 86_400);
            s.field("worker_threads", shared.config.worker_threads);
        }
        "clients" => {
            s.field("connected_clients", m.connections_current);
            s.field("maxclients", shared.config.max_connections);
            s.field("blocked_clients", 0);
        }
        "memory" => {
            let rss = rss_bytes();
            s.field("used_memory", rss);
            s.field("used_memory_human", human(rss));
            s.field("used_memory_rss", rss);
            s.field("used_memory_rss_human", human(rss));
            // what the store itself holds (Redis: the data set without overhead)
            s.field("used_memory_dataset", replica.store().memory_estimate());
            s.field("maxmemory", 0);
            s.field("maxmemory_policy", "noeviction");
        }
        "persistence" => {
            s.field("loading", 0);
            s.field("rdb_changes_since_last_save", 0);
            s.field("aof_enabled", 0);
        }
        "stats" => {
            s.field("total_connections_received", m.connections_received);
            s.field("total_commands_processed", m.commands_processed);
            s.field("total_net_input_bytes", m.net_input_bytes);
            s.field("total_net_output_bytes", m.net_output_bytes);
            s.field("rejected_connections", m.connections_rejected);
            // every error reply, protocol errors included, as Redis counts them
            let errors: u64 = shared.metrics.commands_snapshot().iter().map(|c| c.errors).sum();
            s.field("total_error_replies", errors + m.protocol_errors);
            s.field("protocol_errors", m.protocol_errors);
            s.field("expired_keys", 0);
            s.field("evicted_keys", 0);
        }
        "replication" => {
            let st = replica.store().stats();
            s.field("role", "master");
            s.field("connected_slaves", 0);
            s.field("node_id", replica.id());
            s.field("clock", format!("{:?}", replica.clock().kind()).to_ascii_lowercase());
            s.field("last_timestamp", replica.last_timestamp());
            s.field("clock_drift_events", replica.clock().drift_events());
            s.field("live_keys", st.live_keys);
            s.field("tombstones", st.tombstones);
            s.field("concurrent_versions", st.extra_versions);
            s.field("root_hash", format!("{:016x}", replica.store().root_hash()));
            shared.info.replication(s);
        }
        "gossip" => shared.info.gossip(s),
        "commandstats" => {
            // Redis's format: calls that ran (rejected ones, refused before running, apart)
            for c in shared.metrics.commands_snapshot() {
                if c.calls == 0 || c.name == "unknown" {
                    continue;
                }
                let ran = c.calls.saturating_sub(c.rejected);
                let usec = c.total_ns / 1_000;
                s.field(
                    &format!("cmdstat_{}", c.name),
                    format!(
                        "calls={ran},usec={usec},usec_per_call={:.2},rejected_calls={},\
                         failed_calls={}",
                        c.total_ns as f64 / 1_000.0 / ran.max(1) as f64,
                        c.rejected,
                        c.errors.saturating_sub(c.rejected)
                    ),
                );
            }
        }
        "keyspace" => {
            let n = replica.store().len();
            if n > 0 {
                s.field("db0", format!("keys={n},expires=0,avg_ttl=0"));
            }
        }
        _ => {}
    }
}

pub(crate) fn info(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let default = SECTIONS.map(|s| !NOT_DEFAULT.contains(&s));
    let mut wanted = if req.len() == 1 { default } else { [false; SECTIONS.len()] };
    for arg in req.iter().skip(1) {
        if is(arg, b"ALL") || is(arg, b"EVERYTHING") {
            wanted = [true; SECTIONS.len()];
        } else if is(arg, b"DEFAULT") {
            wanted.iter_mut().zip(default).for_each(|(w, d)| *w |= d);
        } else if let Some(i) = SECTIONS.iter().position(|s| is(arg, s.as_bytes())) {
            wanted[i] = true;
        }
    }
    let mut text = String::new();
    for (name, _) in SECTIONS.iter().zip(wanted).filter(|(_, w)| *w) {
        let mut s = InfoSection::new();
        section(ctx, name, &mut s);
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let mut title = name.to_string();
        title[..1].make_ascii_uppercase();
        let _ = write!(text, "# {title}\r\n{}", s.as_str());
    }
    reply::verbatim(ctx.out, text.as_bytes(), ctx.client.resp3);
    Flow::Continue
}

/// The read-only configuration table `CONFIG GET` answers from.
fn config_table(ctx: &Ctx<'_>) -> Vec<(&'static str, String)> {
    let c = &ctx.shared.config;
    let addr = ctx.shared.local_addr.unwrap_or(c.listen);
    vec![
        ("appendonly", "no".into()),
        ("bind", addr.ip().to_string()),
        ("client-query-buffer-limit", c.limits.max_request_len.to_string()),
        ("databases", "1".into()),
        ("io-threads", c.worker_threads.to_string()),
        ("maxclients", c.max_connections.to_string()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "noeviction".into()),
        ("port", addr.port().to_string()),
        ("proto-max-bulk-len", c.limits.max_bulk_len.to_string()),
        ("save", String::new()),
        ("timeout", "0".into()),
    ]
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern> [<pattern> ...]",
    "    Return parameters matching the glob-like <pattern>s and their values.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "HELP",
    "    Print this help.",
];

pub(crate) fn config(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let sub = req.arg(1);
    if is(sub, b"GET") {
        if req.len() < 3 {
            wrong_arity(ctx.out, "config|get");
            return Flow::Continue;
        }
        let table = config_table(ctx);
        // As Redis 7: a name without glob characters is looked up and answered under the name
        // as given (`CONFIG GET Save` answers `Save`), a pattern under the parameters' own
        // names; matching ignores case, and each parameter comes once.
        let mut hits: Vec<(&[u8], usize)> = Vec::new();
        for arg in req.iter().skip(2) {
            let lower = arg.to_ascii_lowercase();
            let glob = arg.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
            for (i, (name, _)) in table.iter().enumerate() {
                let hit = if glob {
                    glob::matches(&lower, name.as_bytes())
                } else {
                    lower == name.as_bytes()
                };
                if hit && !hits.iter().any(|&(_, j)| j == i) {
                    hits.push((if glob { name.as_bytes() } else { arg }, i));
                }
            }
        }
        reply::map_len(ctx.out, hits.len(), ctx.client.resp3);
        for (name, i) in hits {
            reply::bulk(ctx.out, name);
            reply::bulk(ctx.out, table[i].1.as_bytes());
        }
    } else if is(sub, b"RESETSTAT") && req.len() == 2 {
        ctx.shared.metrics.reset();
        reply::ok(ctx.out);
    } else if is(sub, b"SET") {
        reply::error(
            ctx.out,
            b"ERR CONFIG SET is not supported by gossipkv: settings are fixed when the node starts",
        );
    } else if is(sub, b"HELP") && req.len() == 2 {
        help(ctx.out, CONFIG_HELP);
    } else if is(sub, b"RESETSTAT") || is(sub, b"HELP") {
        let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
        wrong_arity(ctx.out, &format!("config|{lower}"));
    } else {
        unknown_subcommand(ctx.out, sub, "CONFIG");
    }
    Flow::Continue
}

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value (its entry, index slot and",
    "    concurrent values; SAMPLES is accepted and ignored: a value is never nested).",
    "HELP",
    "    Prints this help.",
];

/// `MEMORY USAGE key [SAMPLES n]` (the bytes the store holds for a key, or nil) and `MEMORY
/// HELP`; redis-cli's `--memkeys` reads the first. Arguments are checked as Redis 7 checks
/// them. The allocator's reports (STATS, DOCTOR, MALLOC-STATS, PURGE) are not served: INFO
/// memory and the metrics have the node's figures.
pub(crate) fn memory(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let sub = req.arg(1);
    if is(sub, b"USAGE") {
        if req.len() < 3 {
            wrong_arity(ctx.out, "memory|usage");
            return Flow::Continue;
        }
        let mut rest = req.iter().skip(3);
        while let Some(opt) = rest.next() {
            match (is(opt, b"SAMPLES"), rest.next()) {
                (true, Some(n)) => match parse_integer(n) {
                    Some(n) if n >= 0 => {}
                    Some(_) => {
                        syntax_error(ctx.out);
                        return Flow::Continue;
                    }
                    None => {
                        not_an_integer(ctx.out);
                        return Flow::Continue;
                    }
                },
                _ => {
                    syntax_error(ctx.out);
                    return Flow::Continue;
                }
            }
        }
        match ctx.shared.replica.store().key_memory(req.arg(2)) {
            Some(n) => reply::integer(ctx.out, i64::try_from(n).unwrap_or(i64::MAX)),
            None => reply::null(ctx.out, ctx.client.resp3),
        }
    } else if is(sub, b"HELP") && req.len() == 2 {
        help(ctx.out, MEMORY_HELP);
    } else if is(sub, b"HELP") {
        wrong_arity(ctx.out, "memory|help");
    } else {
        unknown_subcommand(ctx.out, sub, "MEMORY");
    }
    Flow::Continue
}

/// One `COMMAND INFO` entry, in Redis 7's 10-element shape (in RESP3 its lists are sets).
fn command_info(out: &mut Vec<u8>, s: &Spec, resp3: bool) {
    reply::array_len(out, 10);
    reply::bulk(out, s.name.as_bytes());
    reply::integer(out, i64::from(s.arity));
    reply::set_len(out, s.flags.len(), resp3);
    for f in s.flags {
        reply::simple(out, f.as_bytes());
    }
    reply::integer(out, i64::from(s.keys.0));
    reply::integer(out, i64::from(s.keys.1));
    reply::integer(out, i64::from(s.keys.2));
    for _ in 0..4 {
        // ACL categories, tips, key specs, subcommands
        reply::set_len(out, 0, resp3);
    }
}

pub(crate) fn command(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let (out, resp3) = (&mut *ctx.out, ctx.client.resp3);
    if req.len() == 1 {
        reply::array_len(out, ALL.len());
        for s in ALL {
            command_info(out, s, resp3);
        }
        return Flow::Continue;
    }
    let sub = req.arg(1);
    if is(sub, b"COUNT") && req.len() == 2 {
        reply::integer(out, ALL.len() as i64);
    } else if is(sub, b"LIST") && req.len() == 2 {
        reply::array_len(out, ALL.len());
        for s in ALL {
            reply::bulk(out, s.name.as_bytes());
        }
    } else if is(sub, b"DOCS") {
        reply::map_len(out, 0, resp3);
    } else if is(sub, b"INFO") {
        let names: Vec<&[u8]> = req.iter().skip(2).collect();
        if names.is_empty() {
            reply::array_len(out, ALL.len());
            for s in ALL {
                command_info(out, s, resp3);
            }
        } else {
            reply::array_len(out, names.len());
            for n in names {
                match lookup(n) {
                    Some(s) => command_info(out, s, resp3),
                    None => reply::null_array(out, resp3),
                }
            }
        }
    } else if is(sub, b"COUNT") || is(sub, b"LIST") {
        let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
        wrong_arity(out, &format!("command|{lower}"));
    } else {
        unknown_subcommand(out, sub, "COMMAND");
    }
    Flow::Continue
}

const CLUSTER_HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "MEMBERS",
    "    The member table as this node sees it: per member its node id, gossip address,",
    "    status (alive, suspect, dead, left) and generation, this node included.",
    "FORGET <node-id>",
    "    Forget a member this node believes dead (crashed for good): it then counts as having",
    "    left, here and, as the record spreads, on every node, so it no longer counts against",
    "    the majority needed to purge tombstones. A member still alive refutes and comes back.",
    "HELP",
    "    Print this help.",
];

/// `CLUSTER MEMBERS` and `CLUSTER FORGET id` (answered by the gossip layer: [`Flow::Await`])
/// and `CLUSTER HELP`.
pub(crate) fn cluster(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let sub = req.arg(1);
    if is(sub, b"MEMBERS") {
        if req.len() != 2 {
            wrong_arity(ctx.out, "cluster|members");
            return Flow::Continue;
        }
        ctx.client.pending = Some(Pending::new(ctx.shared.admin.members()));
        Flow::Await
    } else if is(sub, b"FORGET") {
        if req.len() != 3 {
            wrong_arity(ctx.out, "cluster|forget");
            return Flow::Continue;
        }
        let id = std::str::from_utf8(req.arg(2)).ok().and_then(|t| t.parse::<u32>().ok());
        let Some(id) = id else {
            reply::error(ctx.out, b"ERR Invalid node id: expected a member's numeric id");
            return Flow::Continue;
        };
        ctx.client.pending = Some(Pending::new(ctx.shared.admin.forget(id)));
        Flow::Await
    } else if is(sub, b"HELP") && req.len() == 2 {
        help(ctx.out, CLUSTER_HELP);
        Flow::Continue
    } else {
        unknown_subcommand(ctx.out, sub, "CLUSTER");
        Flow::Continue
    }
}

pub(crate) fn time(ctx: &mut Ctx<'_>, _req: &Request<'_>) -> Flow {
    let micros = physical_us(ctx.shared.config.clock_skew_ms);
    reply::array_len(ctx.out, 2);
    reply::bulk_decimal(ctx.out, micros / 1_000_000);
    reply::bulk_decimal(ctx.out, micros % 1_000_000);
    Flow::Continue
}
