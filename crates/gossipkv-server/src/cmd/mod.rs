//! The command table and dispatch: look the name up (case-insensitively, without
//! allocating), check arity and authentication, call the handler. Handlers live one file per
//! family, as in mini-redis:
//!
//! - [`connection`]: PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT.
//! - [`strings`]: GET, SET, MGET, MSET, DEL and UNLINK, EXISTS and TOUCH, STRLEN, GETRANGE,
//!   GETDEL, GETSET, GETEX (Redis's string commands).
//! - [`lww`]: PUT and VERSIONS, gossipkv's own (timestamps and concurrent values).
//! - [`keyspace`]: DBSIZE, SCAN, KEYS, TYPE, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST,
//!   RANDOMKEY.
//! - [`server`]: INFO, CONFIG, COMMAND, CLUSTER, TIME.
//!
//! Errors follow Redis's wording (`-ERR unknown command 'foo', with args beginning with: ...`,
//! `-ERR wrong number of arguments for 'get' command`), so client libraries recognise them.
//!
//! Redis commands whose guarantee an eventually consistent LWW replica cannot give (a
//! conditional write, a read-modify-write, an expiry, a transaction, a flush) are not
//! "unknown": they get an error that says why ([`refusal`]), as `SET ... NX` does.

pub(crate) mod connection;
pub(crate) mod keyspace;
pub(crate) mod lww;
pub(crate) mod server;
pub(crate) mod strings;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gossipkv_core::gossip::MAX_WRITE_BYTES;
use gossipkv_core::{Timestamp, VersionRef};

use crate::resp::{Request, reply};
use crate::server::Shared;

/// Per-connection state commands can see and change.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) name: Option<Vec<u8>>,
    pub(crate) lib_name: Option<Vec<u8>>,
    pub(crate) lib_ver: Option<Vec<u8>>,
    pub(crate) authenticated: bool,
    /// The client switched to RESP3 with `HELLO 3` (RESP2 until then, and after `HELLO 2`).
    pub(crate) resp3: bool,
    pub(crate) connected_at: std::time::Instant,
    /// Physical time read once per batch of pipelined requests (see [`Ctx::now_ms`]).
    pub(crate) batch_now: Option<u64>,
    /// The answer a command returning [`Flow::Await`] waits for.
    pub(crate) pending: Option<Pending>,
}

/// An answer still to come ([`Flow::Await`]), and the metrics slot of the command it answers
/// (filled in by [`dispatch`], so a late error counts against that command).
pub(crate) struct Pending {
    pub(crate) answer: crate::hooks::AdminFuture,
    pub(crate) slot: usize,
}

impl Pending {
    /// The handler's side: the answer (the slot is [`dispatch`]'s to fill in).
    pub(crate) fn new(answer: crate::hooks::AdminFuture) -> Self {
        Self { answer, slot: ALL.len() }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Client {
    pub(crate) fn new(
        shared: &Shared,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Self {
        Self {
            id: shared.next_client_id(),
            peer,
            local,
            name: None,
            lib_name: None,
            lib_ver: None,
            authenticated: shared.config.requirepass.is_none(),
            resp3: false,
            connected_at: std::time::Instant::now(),
            batch_now: None,
            pending: None,
        }
    }
}

/// What a handler gets: the shared state, its client, and the output buffer to reply into.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) client: &'a mut Client,
    pub(crate) out: &'a mut Vec<u8>,
}

impl Ctx<'_> {
    /// Physical time for this batch's timestamps, read from the wall clock at most once per
    /// batch (the HLC still gives each write a distinct, increasing timestamp).
    pub(crate) fn now_ms(&mut self) -> u64 {
        let skew = self.shared.config.clock_skew_ms;
        *self.client.batch_now.get_or_insert_with(|| physical_us(skew) / 1_000)
    }
}

/// Whether the connection goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Flush the replies, then close (QUIT).
    Close,
    /// Flush the replies, wait for [`Client::pending`] and reply with its answer, then go on
    /// with the next command (`CLUSTER MEMBERS` / `FORGET`: the gossip driver answers).
    Await,
}

type Handler = fn(&mut Ctx<'_>, &Request<'_>) -> Flow;

/// One command: what `COMMAND` reports about it, and its handler.
pub(crate) struct Spec {
    /// Lower-case name, as Redis reports it.
    pub(crate) name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub(crate) arity: i32,
    pub(crate) flags: &'static [&'static str],
    /// First key argument, last key argument (-1: the last argument), step.
    pub(crate) keys: (i32, i32, i32),
    /// Allowed before AUTH when a password is set.
    pub(crate) no_auth: bool,
    pub(crate) handler: Handler,
}

impl Spec {
    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let a = i64::from(self.arity);
        if a >= 0 { argc == a } else { argc >= -a }
    }
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    handler: Handler,
) -> Spec {
    Spec { name, arity, flags, keys, no_auth: false, handler }
}

const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
const ONE_KEY: (i32, i32, i32) = (1, 1, 1);
const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);
const RO: &[&str] = &["readonly", "fast"];
const WR: &[&str] = &["write", "denyoom"];
const ADMIN: &[&str] = &["loading", "stale"];
/// Redis 7 gives a command with subcommands no flags of its own (each subcommand has them).
const CONTAINER: &[&str] = &[];
const ANYTIME: &[&str] = &["loading", "stale", "fast"];
const HANDSHAKE: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"];

static PING: Spec = spec("ping", -1, &["fast"], NO_KEYS, connection::ping);
static ECHO: Spec = spec("echo", 2, ANYTIME, NO_KEYS, connection::echo);
static QUIT: Spec =
    Spec { no_auth: true, ..spec("quit", -1, HANDSHAKE, NO_KEYS, connection::quit) };
static SELECT: Spec = spec("select", 2, ANYTIME, NO_KEYS, connection::select);
static AUTH: Spec =
    Spec { no_auth: true, ..spec("auth", -2, HANDSHAKE, NO_KEYS, connection::auth) };
static HELLO: Spec =
    Spec { no_auth: true, ..spec("hello", -1, HANDSHAKE, NO_KEYS, connection::hello) };
static CLIENT: Spec = spec("client", -2, CONTAINER, NO_KEYS, connection::client);
static GET: Spec = spec("get", 2, RO, ONE_KEY, strings::get);
static SET: Spec = spec("set", -3, WR, ONE_KEY, strings::set);
static MGET: Spec = spec("mget", -2, RO, ALL_KEYS, strings::mget);
static MSET: Spec = spec("mset", -3, WR, (1, -1, 2), strings::mset);
static DEL: Spec = spec("del", -2, &["write"], ALL_KEYS, strings::del);
static EXISTS: Spec = spec("exists", -2, RO, ALL_KEYS, strings::exists);
static PUT: Spec = spec("put", 3, WR, ONE_KEY, lww::put);
static VERSIONS: Spec = spec("versions", 2, RO, ONE_KEY, lww::versions);
static DBSIZE: Spec = spec("dbsize", 1, RO, NO_KEYS, keyspace::dbsize);
static SCAN: Spec = spec("scan", -2, &["readonly"], NO_KEYS, keyspace::scan);
static KEYS: Spec = spec("keys", 2, &["readonly"], NO_KEYS, keyspace::keys);
static INFO: Spec = spec("info", -1, ADMIN, NO_KEYS, server::info);
static CONFIG: Spec = spec("config", -2, CONTAINER, NO_KEYS, server::config);
static COMMAND: Spec = spec("command", -1, ADMIN, NO_KEYS, server::command);
static CLUSTER: Spec = spec("cluster", -2, CONTAINER, NO_KEYS, server::cluster);
static MEMORY: Spec = spec("memory", -2, CONTAINER, NO_KEYS, server::memory);
static TIME: Spec = spec("time", 1, ANYTIME, NO_KEYS, server::time);
static STRLEN: Spec = spec("strlen", 2, RO, ONE_KEY, strings::strlen);
static GETRANGE: Spec = spec("getrange", 4, &["readonly"], ONE_KEY, strings::getrange);
static SUBSTR: Spec = spec("substr", 4, &["readonly"], ONE_KEY, strings::getrange);
static GETDEL: Spec = spec("getdel", 2, &["write", "fast"], ONE_KEY, strings::getdel);
static GETSET: Spec = spec("getset", 3, &["write", "denyoom", "fast"], ONE_KEY, strings::getset);
static GETEX: Spec = spec("getex", -2, &["write", "fast"], ONE_KEY, strings::getex);
static UNLINK: Spec = spec("unlink", -2, &["write", "fast"], ALL_KEYS, strings::del);
static TYPE: Spec = spec("type", 2, RO, ONE_KEY, keyspace::type_);
static TTL: Spec = spec("ttl", 2, RO, ONE_KEY, keyspace::ttl);
static PTTL: Spec = spec("pttl", 2, RO, ONE_KEY, keyspace::ttl);
static EXPIRETIME: Spec = spec("expiretime", 2, RO, ONE_KEY, keyspace::ttl);
static PEXPIRETIME: Spec = spec("pexpiretime", 2, RO, ONE_KEY, keyspace::ttl);
static PERSIST: Spec = spec("persist", 2, &["write", "fast"], ONE_KEY, keyspace::persist);
static TOUCH: Spec = spec("touch", -2, RO, ALL_KEYS, strings::exists);
static RANDOMKEY: Spec = spec("randomkey", 1, &["readonly"], NO_KEYS, keyspace::randomkey);

/// Every command, in `COMMAND` order.
pub(crate) static ALL: &[&Spec] = &[
    &GET,
    &SET,
    &MGET,
    &MSET,
    &DEL,
    &EXISTS,
    &PUT,
    &VERSIONS,
    &DBSIZE,
    &SCAN,
    &KEYS,
    &PING,
    &ECHO,
    &QUIT,
    &SELECT,
    &AUTH,
    &HELLO,
    &CLIENT,
    &INFO,
    &CONFIG,
    &COMMAND,
    &CLUSTER,
    &TIME,
    &STRLEN,
    &GETRANGE,
    &SUBSTR,
    &GETDEL,
    &GETSET,
    &GETEX,
    &UNLINK,
    &TYPE,
    &TTL,
    &PTTL,
    &EXPIRETIME,
    &PEXPIRETIME,
    &PERSIST,
    &TOUCH,
    &RANDOMKEY,
    &MEMORY,
];

/// Finds a command by name, case-insensitively, without allocating.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    // longer than any name we know (`PEXPIRETIME`)
    let mut buf = [0u8; 16];
    let up = buf.get_mut(..name.len())?;
    up.copy_from_slice(name);
    up.make_ascii_uppercase();
    Some(match &*up {
        b"GET" => &GET,
        b"SET" => &SET,
        b"MGET" => &MGET,
        b"MSET" => &MSET,
        b"DEL" => &DEL,
        b"EXISTS" => &EXISTS,
        b"PUT" => &PUT,
        b"VERSIONS" => &VERSIONS,
        b"DBSIZE" => &DBSIZE,
        b"SCAN" => &SCAN,
        b"KEYS" => &KEYS,
        b"PING" => &PING,
        b"ECHO" => &ECHO,
        b"QUIT" => &QUIT,
        b"SELECT" => &SELECT,
        b"AUTH" => &AUTH,
        b"HELLO" => &HELLO,
        b"CLIENT" => &CLIENT,
        b"INFO" => &INFO,
        b"CONFIG" => &CONFIG,
        b"COMMAND" => &COMMAND,
        b"CLUSTER" => &CLUSTER,
        b"MEMORY" => &MEMORY,
        b"TIME" => &TIME,
        b"STRLEN" => &STRLEN,
        b"GETRANGE" => &GETRANGE,
        b"SUBSTR" => &SUBSTR,
        b"GETDEL" => &GETDEL,
        b"GETSET" => &GETSET,
        b"GETEX" => &GETEX,
        b"UNLINK" => &UNLINK,
        b"TYPE" => &TYPE,
        b"TTL" => &TTL,
        b"PTTL" => &PTTL,
        b"EXPIRETIME" => &EXPIRETIME,
        b"PEXPIRETIME" => &PEXPIRETIME,
        b"PERSIST" => &PERSIST,
        b"TOUCH" => &TOUCH,
        b"RANDOMKEY" => &RANDOMKEY,
        _ => return None,
    })
}

const CONDITIONAL: &str = "gossipkv replicas are eventually consistent, so a conditional write \
    cannot be made atomic (two nodes can both see the key absent and both write)";
const READ_MODIFY_WRITE: &str = "two replicas running it at once would each write a value \
    computed from the old one, and last-write-wins would keep only one of them (a lost \
    update); read, compute and SET instead";
const EXPIRY: &str = "gossipkv keys do not expire";
const TRANSACTION: &str = "gossipkv replicas are eventually consistent, so a group of \
    commands cannot be made atomic across them";
const FLUSH: &str = "a flush cannot reach the writes this node has not received yet; \
    delete keys by name (SCAN, then DEL)";
const WAIT: &str = "gossip replicates asynchronously and does not acknowledge writes; \
    INFO gossip and VERSIONS show what a node holds";

/// The Redis commands a Redis user is likely to try that gossipkv leaves out on purpose, and
/// why (in [`refusal`]'s reply).
const REFUSED: &[(&str, &str)] = &[
    ("SETNX", CONDITIONAL),
    ("MSETNX", CONDITIONAL),
    ("RENAMENX", CONDITIONAL),
    ("INCR", READ_MODIFY_WRITE),
    ("DECR", READ_MODIFY_WRITE),
    ("INCRBY", READ_MODIFY_WRITE),
    ("DECRBY", READ_MODIFY_WRITE),
    ("INCRBYFLOAT", READ_MODIFY_WRITE),
    ("APPEND", READ_MODIFY_WRITE),
    ("SETRANGE", READ_MODIFY_WRITE),
    ("RENAME", READ_MODIFY_WRITE),
    ("COPY", READ_MODIFY_WRITE),
    ("EXPIRE", EXPIRY),
    ("PEXPIRE", EXPIRY),
    ("EXPIREAT", EXPIRY),
    ("PEXPIREAT", EXPIRY),
    ("SETEX", EXPIRY),
    ("PSETEX", EXPIRY),
    ("MULTI", TRANSACTION),
    ("EXEC", TRANSACTION),
    ("DISCARD", TRANSACTION),
    ("WATCH", TRANSACTION),
    ("UNWATCH", TRANSACTION),
    ("FLUSHALL", FLUSH),
    ("FLUSHDB", FLUSH),
    ("WAIT", WAIT),
    ("WAITAOF", WAIT),
];

/// If `name` is a command left out on purpose: `(its name as Redis spells it, why)`.
pub(crate) fn refusal(name: &[u8]) -> Option<(&'static str, &'static str)> {
    REFUSED.iter().copied().find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Runs one request and appends its reply to `ctx.out`; records its calls, error reply and
/// execution time in the server's per-command metrics.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let start = std::time::Instant::now();
    let mark = ctx.out.len();
    let spec = lookup(req.arg(0));
    let (flow, rejected) = match spec {
        Some(spec) => run(ctx, spec, req),
        None => {
            match refusal(req.arg(0)) {
                Some((name, why)) => {
                    reply::error_fmt(ctx.out, format_args!("ERR {name} is not supported: {why}"));
                }
                None => unknown_command(ctx.out, req),
            }
            (Flow::Continue, true)
        }
    };
    // unknown commands go to the slot past the table
    let slot = spec.and_then(|s| ALL.iter().position(|a| std::ptr::eq(*a, s)));
    let slot = slot.unwrap_or(ALL.len());
    let error = ctx.out.get(mark) == Some(&b'-');
    ctx.shared.metrics.command(slot, start.elapsed(), error, rejected);
    if flow == Flow::Await
        && let Some(p) = ctx.client.pending.as_mut()
    {
        p.slot = slot;
    }
    flow
}

/// Checks arity, authentication and the write gate, then calls the handler. The flag is
/// true if the command was refused before it ran (Redis's rejected calls).
fn run(ctx: &mut Ctx<'_>, spec: &'static Spec, req: &Request<'_>) -> (Flow, bool) {
    if !spec.arity_ok(req.len()) {
        wrong_arity(ctx.out, spec.name);
        return (Flow::Continue, true);
    }
    if !ctx.client.authenticated && !spec.no_auth {
        reply::error(ctx.out, b"NOAUTH Authentication required.");
        return (Flow::Continue, true);
    }
    if spec.flags.first() == Some(&"write") && !ctx.shared.replica.is_ready() {
        // a restarted node catching up: its timestamps could still be below the ones it
        // issued before the crash (Redis answers LOADING while it loads its dataset)
        reply::error(ctx.out, b"LOADING gossipkv is catching up with its peers after a start");
        return (Flow::Continue, true);
    }
    ((spec.handler)(ctx, req), false)
}

/// Redis's reply to an unknown command, arguments quoted and cut at about 128 bytes.
fn unknown_command(out: &mut Vec<u8>, req: &Request<'_>) {
    let name = req.arg(0);
    out.extend_from_slice(b"-ERR unknown command '");
    let start = out.len();
    out.extend_from_slice(&name[..name.len().min(128)]);
    out.extend_from_slice(b"', with args beginning with: ");
    let args_start = out.len();
    for a in req.iter().skip(1) {
        let used = out.len() - args_start;
        if used >= 128 {
            break;
        }
        out.push(b'\'');
        out.extend_from_slice(&a[..a.len().min(128 - used)]);
        out.extend_from_slice(b"' ");
    }
    for b in &mut out[start..] {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `-ERR wrong number of arguments for 'name' command`.
pub(crate) fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    reply::error_fmt(out, format_args!("ERR wrong number of arguments for '{name}' command"));
}

/// `-ERR syntax error`.
pub(crate) fn syntax_error(out: &mut Vec<u8>) {
    reply::error(out, b"ERR syntax error");
}

/// `-ERR value is not an integer or out of range`.
pub(crate) fn not_an_integer(out: &mut Vec<u8>) {
    reply::error(out, b"ERR value is not an integer or out of range");
}

/// A `HELP` subcommand's reply: one simple string per line, as Redis sends them.
pub(crate) fn help(out: &mut Vec<u8>, lines: &[&str]) {
    reply::array_len(out, lines.len());
    for line in lines {
        reply::simple(out, line.as_bytes());
    }
}

/// `-ERR unknown subcommand 'x'. Try NAME HELP.`
pub(crate) fn unknown_subcommand(out: &mut Vec<u8>, sub: &[u8], cmd: &str) {
    let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]);
    reply::error_fmt(out, format_args!("ERR unknown subcommand '{sub}'. Try {cmd} HELP."));
}

/// This node's physical time: microseconds since the UNIX epoch (0 if the clock is before
/// it; the HLC stays monotonic regardless), shifted by the configured skew in ms (tests).
/// Timestamps start from it ([`Ctx::now_ms`]) and `TIME` reports it.
pub(crate) fn physical_us(skew_ms: i64) -> u64 {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    us.saturating_add_signed(skew_ms.saturating_mul(1_000))
}

/// Replies with an error and returns true if `key` with `value` is longer than any write
/// may be ([`MAX_WRITE_BYTES`]: every version must fit one gossip stream message, or it
/// would never reach the other replicas).
pub(crate) fn refuse_oversize(out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> bool {
    let over = key.len() + value.len() > MAX_WRITE_BYTES;
    if over {
        reply::error_fmt(
            out,
            format_args!(
                "ERR string exceeds maximum allowed size (key and value together over \
                 {MAX_WRITE_BYTES} bytes cannot be replicated)"
            ),
        );
    }
    over
}

/// A local write (`Replica::write`: fresh timestamp, merged, value copied once), then told to
/// the observer.
pub(crate) fn write_local(ctx: &mut Ctx<'_>, key: &[u8], value: Option<&[u8]>) -> Timestamp {
    let now = ctx.now_ms();
    let (ts, kh, vh) = ctx.shared.replica.write_hashed(key, value, now);
    told(ctx, key, value, ts, kh, vh);
    ts
}

/// [`write_local`] that also returns (a copy of) the value the key had here, read atomically
/// with the write: GETSET, GETDEL, `SET ... GET`.
pub(crate) fn swap_local(ctx: &mut Ctx<'_>, key: &[u8], value: Option<&[u8]>) -> Option<Bytes> {
    let now = ctx.now_ms();
    let (ts, kh, vh, old) =
        ctx.shared.replica.write_hashed_after(key, value, now, |v| v.map(Bytes::copy_from_slice));
    told(ctx, key, value, ts, kh, vh);
    old
}

/// Tells the observer (gossip) of a local write.
fn told(ctx: &Ctx<'_>, key: &[u8], value: Option<&[u8]>, ts: Timestamp, kh: u64, vh: u64) {
    let replica = &*ctx.shared.replica;
    ctx.shared.observer.on_local_write_hashed(
        key,
        VersionRef { ts, origin: replica.id(), value },
        kh,
        vh,
    );
}

/// Whether `a` equals `b` ignoring ASCII case (`b` upper-case).
#[inline]
pub(crate) fn is(a: &[u8], upper: &[u8]) -> bool {
    a.eq_ignore_ascii_case(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_found_by_its_name_in_any_case() {
        for s in ALL {
            let found = lookup(s.name.as_bytes()).map(|f| f.name);
            assert_eq!(found, Some(s.name));
            let up = s.name.to_ascii_uppercase();
            assert_eq!(lookup(up.as_bytes()).map(|f| f.name), Some(s.name));
        }
        assert!(lookup(b"nope").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(b"a-very-long-command-name").is_none());
    }
}
