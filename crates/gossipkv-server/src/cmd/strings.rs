//! Redis's string commands over the LWW store: GET, SET, MGET, MSET, DEL, EXISTS.
//!
//! Every write takes a fresh timestamp from the node's clock, so it wins at this node at once
//! and spreads by gossip; reads return this node's current winner.
//!
//! `SET` options, and why:
//! - `GET` is supported: the reply is the value this node held just before the write.
//! - `KEEPTTL` is accepted and does nothing (no key has a time to live).
//! - `NX` / `XX` are refused with `-ERR ... not supported`: a conditional write cannot be made
//!   atomic across eventually consistent replicas (two nodes can both see "absent" and both
//!   write), so honouring them would give users a guarantee (locks, "set once") that does not
//!   hold.
//! - `EX` / `PX` / `EXAT` / `PXAT` are refused with `-ERR ... expiry is not supported`: keys
//!   never expire. Accepting the option and ignoring it would silently keep data that the
//!   client expects to disappear.
//! - anything else (unknown option, `NX XX` together, `EX` without a number) is
//!   `-ERR syntax error`, as in Redis.
//!
//! `DEL` always writes a tombstone, even for a key this node never saw (another node may hold
//! it, and the delete must win there too); its reply counts the keys that were live here.

use super::{Ctx, Flow, is, not_an_integer, syntax_error, write_local, wrong_arity};
use crate::resp::parse::parse_integer;
use crate::resp::{Request, reply};

pub(crate) fn get(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let out = &mut *ctx.out;
    ctx.shared.replica.store().get_with(req.arg(1), |v| reply::bulk_or_null(out, v));
    Flow::Continue
}

pub(crate) fn set(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let (key, value) = (req.arg(1), req.arg(2));
    if req.len() > 3 {
        let (mut nx, mut xx, mut get, mut keepttl, mut expiry) =
            (false, false, false, false, false);
        let mut i = 3;
        while i < req.len() {
            let opt = req.arg(i);
            if is(opt, b"NX") && !xx {
                nx = true;
            } else if is(opt, b"XX") && !nx {
                xx = true;
            } else if is(opt, b"GET") {
                get = true;
            } else if is(opt, b"KEEPTTL") && !expiry {
                keepttl = true;
            } else if [&b"EX"[..], b"PX", b"EXAT", b"PXAT"].iter().any(|e| is(opt, e))
                && !expiry
                && !keepttl
                && i + 1 < req.len()
            {
                i += 1;
                match parse_integer(req.arg(i)) {
                    None => {
                        not_an_integer(ctx.out);
                        return Flow::Continue;
                    }
                    Some(n) if n <= 0 => {
                        reply::error(ctx.out, b"ERR invalid expire time in 'set' command");
                        return Flow::Continue;
                    }
                    Some(_) => expiry = true,
                }
            } else {
                syntax_error(ctx.out);
                return Flow::Continue;
            }
            i += 1;
        }
        if nx || xx {
            reply::error(
                ctx.out,
                b"ERR SET NX/XX is not supported: gossipkv replicas are eventually consistent, \
                  so a conditional write cannot be made atomic",
            );
            return Flow::Continue;
        }
        if expiry {
            reply::error(
                ctx.out,
                b"ERR SET EX/PX/EXAT/PXAT is not supported: gossipkv keys do not expire",
            );
            return Flow::Continue;
        }
        if get {
            let old = ctx.shared.replica.store().get(key);
            write_local(ctx, key, Some(value));
            reply::bulk_or_null(ctx.out, old.as_deref());
            return Flow::Continue;
        }
    }
    write_local(ctx, key, Some(value));
    reply::ok(ctx.out);
    Flow::Continue
}

pub(crate) fn mget(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let store = ctx.shared.replica.store();
    let out = &mut *ctx.out;
    reply::array_len(out, req.len() - 1);
    for key in req.iter().skip(1) {
        store.get_with(key, |v| reply::bulk_or_null(out, v));
    }
    Flow::Continue
}

pub(crate) fn mset(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    if req.len().is_multiple_of(2) {
        wrong_arity(ctx.out, "mset");
        return Flow::Continue;
    }
    let mut args = req.iter().skip(1);
    while let (Some(k), Some(v)) = (args.next(), args.next()) {
        write_local(ctx, k, Some(v));
    }
    reply::ok(ctx.out);
    Flow::Continue
}

pub(crate) fn del(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let store = ctx.shared.replica.store();
    let mut live = 0;
    for key in req.iter().skip(1) {
        live += i64::from(store.contains(key));
        write_local(ctx, key, None);
    }
    reply::integer(ctx.out, live);
    Flow::Continue
}

pub(crate) fn exists(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let store = ctx.shared.replica.store();
    let n = req.iter().skip(1).filter(|k| store.contains(k)).count();
    reply::integer(ctx.out, n as i64);
    Flow::Continue
}
