//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT.
//!
//! - Only database 0 exists: `SELECT 0` is fine, any other index gets Redis's
//!   `-ERR DB index is out of range`.
//! - RESP3 is not spoken: `HELLO 3` gets `-NOPROTO unsupported protocol version`, which makes
//!   RESP3-capable clients fall back to RESP2, as Redis 5 did. `HELLO` / `HELLO 2` reply with
//!   the server description as a flat array (RESP2's encoding of a map).
//! - `CLIENT LIST` / `CLIENT INFO` describe the calling connection only.

use super::{Ctx, Flow, help, is, not_an_integer, syntax_error, unknown_subcommand, wrong_arity};
use crate::resp::parse::parse_integer;
use crate::resp::{Request, reply};

/// The Redis version reported to clients (the protocol and command behaviour emulated).
pub(crate) const REDIS_VERSION: &str = "7.0.0";

pub(crate) fn ping(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    match req.len() {
        1 => reply::simple(ctx.out, b"PONG"),
        2 => reply::bulk(ctx.out, req.arg(1)),
        _ => wrong_arity(ctx.out, "ping"),
    }
    Flow::Continue
}

pub(crate) fn echo(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    reply::bulk(ctx.out, req.arg(1));
    Flow::Continue
}

pub(crate) fn quit(ctx: &mut Ctx<'_>, _req: &Request<'_>) -> Flow {
    reply::ok(ctx.out);
    Flow::Close
}

pub(crate) fn select(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    match parse_integer(req.arg(1)) {
        None => not_an_integer(ctx.out),
        Some(0) => reply::ok(ctx.out),
        Some(_) => reply::error(ctx.out, b"ERR DB index is out of range"),
    }
    Flow::Continue
}

/// Checks `user`/`password` against `requirepass`; marks the client authenticated or writes
/// the error. Returns whether it succeeded. `user` is `None` for the one-argument `AUTH
/// password`. As in Redis: without `requirepass` the `default` user has no password (it
/// accepts any, named), the one-argument form is an error saying so, and any other user name
/// is a wrong pair.
fn check_password(ctx: &mut Ctx<'_>, user: Option<&[u8]>, password: &[u8]) -> bool {
    let ok = match (ctx.shared.config.requirepass.as_deref(), user) {
        (None, None) => {
            reply::error(
                ctx.out,
                b"ERR AUTH <password> called without any password configured for the default \
                  user. Are you sure your configuration is correct?",
            );
            return false;
        }
        (None, Some(user)) => user == b"default",
        (Some(expected), user) => {
            user.unwrap_or(b"default") == b"default"
                && constant_time_eq(password, expected.as_bytes())
        }
    };
    if ok {
        ctx.client.authenticated = true;
    } else {
        reply::error(ctx.out, b"WRONGPASS invalid username-password pair or user is disabled.");
    }
    ok
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

pub(crate) fn auth(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let ok = match req.len() {
        2 => check_password(ctx, None, req.arg(1)),
        3 => check_password(ctx, Some(req.arg(1)), req.arg(2)),
        _ => {
            syntax_error(ctx.out);
            return Flow::Continue;
        }
    };
    if ok {
        reply::ok(ctx.out);
    }
    Flow::Continue
}

/// Whether a client name or library string is acceptable (Redis: `!` to `~`, no spaces).
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> bool {
    if !valid_name(name) {
        reply::error(
            ctx.out,
            b"ERR Client names cannot contain spaces, newlines or special characters.",
        );
        return false;
    }
    ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
    true
}

pub(crate) fn hello(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let (mut i, mut proto) = (1, None);
    if req.len() >= 2 {
        match parse_integer(req.arg(1)) {
            Some(v @ (2 | 3)) => proto = Some(v == 3),
            Some(_) => {
                reply::error(ctx.out, b"NOPROTO unsupported protocol version");
                return Flow::Continue;
            }
            None => {
                reply::error(ctx.out, b"ERR Protocol version is not an integer or out of range");
                return Flow::Continue;
            }
        }
        i = 2;
    }
    let (mut auth, mut name) = (None, None);
    while i < req.len() {
        let opt = req.arg(i);
        let more = req.len() - i - 1;
        if is(opt, b"AUTH") && more >= 2 {
            auth = Some((req.arg(i + 1), req.arg(i + 2)));
            i += 3;
        } else if is(opt, b"SETNAME") && more >= 1 {
            name = Some(req.arg(i + 1));
            i += 2;
        } else {
            let opt = String::from_utf8_lossy(&opt[..opt.len().min(128)]);
            reply::error_fmt(ctx.out, format_args!("ERR Syntax error in HELLO option '{opt}'"));
            return Flow::Continue;
        }
    }
    if auth.is_some_and(|(user, pass)| !check_password(ctx, Some(user), pass)) {
        return Flow::Continue;
    }
    if !ctx.client.authenticated {
        reply::error(
            ctx.out,
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise the \
              HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
              select the RESP protocol version at the same time",
        );
        return Flow::Continue;
    }
    if name.is_some_and(|n| !set_name(ctx, n)) {
        return Flow::Continue;
    }
    // the answer, like every reply after it, in the protocol asked for
    if let Some(resp3) = proto {
        ctx.client.resp3 = resp3;
    }
    let (out, resp3) = (&mut *ctx.out, ctx.client.resp3);
    reply::map_len(out, 7, resp3);
    reply::bulk(out, b"server");
    reply::bulk(out, b"gossipkv");
    reply::bulk(out, b"version");
    reply::bulk(out, REDIS_VERSION.as_bytes());
    reply::bulk(out, b"proto");
    reply::integer(out, if resp3 { 3 } else { 2 });
    reply::bulk(out, b"id");
    reply::unsigned(out, ctx.client.id);
    reply::bulk(out, b"mode");
    reply::bulk(out, b"standalone");
    reply::bulk(out, b"role");
    reply::bulk(out, b"master");
    reply::bulk(out, b"modules");
    reply::array_len(out, 0);
    Flow::Continue
}

/// The `CLIENT LIST` line describing this connection.
fn client_line(ctx: &Ctx<'_>) -> Vec<u8> {
    let c = &*ctx.client;
    let show =
        |v: &Option<Vec<u8>>| String::from_utf8_lossy(v.as_deref().unwrap_or(b"")).into_owned();
    let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 multi=-1 \
         cmd=client|list user=default lib-name={} lib-ver={} resp={}\n",
        c.id,
        addr(c.peer),
        addr(c.local),
        show(&c.name),
        c.connected_at.elapsed().as_secs(),
        show(&c.lib_name),
        show(&c.lib_ver),
        if c.resp3 { 3 } else { 2 },
    )
    .into_bytes()
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ID",
    "    Return the ID of the current connection.",
    "GETNAME",
    "    Return the name of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client library name or version (shown by CLIENT LIST).",
    "LIST | INFO",
    "    Describe the current connection (gossipkv lists only the caller).",
    "HELP",
    "    Print this help.",
];

pub(crate) fn client(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let sub = req.arg(1);
    let argc = req.len();
    let arity = |n: usize| argc == n;
    if is(sub, b"ID") && arity(2) {
        reply::unsigned(ctx.out, ctx.client.id);
    } else if is(sub, b"GETNAME") && arity(2) {
        reply::bulk_or_null(ctx.out, ctx.client.name.as_deref(), ctx.client.resp3);
    } else if is(sub, b"SETNAME") && arity(3) {
        if set_name(ctx, req.arg(2)) {
            reply::ok(ctx.out);
        }
    } else if is(sub, b"SETINFO") && arity(4) {
        let (attr, value) = (req.arg(2), req.arg(3));
        let slot = if is(attr, b"LIB-NAME") {
            &mut ctx.client.lib_name
        } else if is(attr, b"LIB-VER") {
            &mut ctx.client.lib_ver
        } else {
            let attr = String::from_utf8_lossy(&attr[..attr.len().min(128)]);
            reply::error_fmt(ctx.out, format_args!("ERR Unrecognized option '{attr}'"));
            return Flow::Continue;
        };
        if valid_name(value) {
            *slot = (!value.is_empty()).then(|| value.to_vec());
            reply::ok(ctx.out);
        } else {
            let which = if is(attr, b"LIB-NAME") { "lib-name" } else { "lib-ver" };
            reply::error_fmt(
                ctx.out,
                format_args!("ERR {which} cannot contain spaces, newlines or special characters."),
            );
        }
    } else if (is(sub, b"LIST") || is(sub, b"INFO")) && argc >= 2 {
        let line = client_line(ctx);
        reply::verbatim(ctx.out, &line, ctx.client.resp3);
    } else if (is(sub, b"NO-EVICT") || is(sub, b"NO-TOUCH")) && arity(3) {
        reply::ok(ctx.out);
    } else if is(sub, b"HELP") && arity(2) {
        help(ctx.out, CLIENT_HELP);
    } else if [&b"ID"[..], b"GETNAME", b"SETNAME", b"SETINFO", b"NO-EVICT", b"NO-TOUCH", b"HELP"]
        .iter()
        .any(|s| is(sub, s))
    {
        let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
        wrong_arity(ctx.out, &format!("client|{lower}"));
    } else {
        unknown_subcommand(ctx.out, sub, "CLIENT");
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn password_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
