//! Redis's string commands over the LWW store: GET, SET, MGET, MSET, DEL (and UNLINK),
//! EXISTS (and TOUCH), STRLEN, GETRANGE (and SUBSTR), GETDEL, GETSET, GETEX.
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
//! `GETDEL` does the same (a nil reply still deletes the key everywhere). `GETEX` without an
//! option or with `PERSIST` is `GET` (no key has a time to live); with `EX`/`PX`/`EXAT`/`PXAT`
//! it is refused as `SET`'s expiry options are. `GETSET` is `SET key value GET`. `TOUCH` counts
//! the live keys, as `EXISTS` (there is no access time to update).

use super::{
    Ctx, Flow, is, not_an_integer, refuse_oversize, swap_local, syntax_error, write_local,
    wrong_arity,
};
use crate::resp::parse::parse_integer;
use crate::resp::{Request, reply};

pub(crate) fn get(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let (out, resp3) = (&mut *ctx.out, ctx.client.resp3);
    ctx.shared.replica.store().get_with(req.arg(1), |v| reply::bulk_or_null(out, v, resp3));
    Flow::Continue
}

pub(crate) fn set(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let (key, value) = (req.arg(1), req.arg(2));
    if refuse_oversize(ctx.out, key, value) {
        return Flow::Continue;
    }
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
            return swap(ctx, key, Some(value));
        }
    }
    write_local(ctx, key, Some(value));
    reply::ok(ctx.out);
    Flow::Continue
}

/// Writes `value` (`None`: a tombstone) and replies with the value this node held just
/// before, read atomically with the write (of two racing `GETDEL`s one gets the value):
/// `SET ... GET`, `GETSET`, `GETDEL`.
fn swap(ctx: &mut Ctx<'_>, key: &[u8], value: Option<&[u8]>) -> Flow {
    let old = swap_local(ctx, key, value);
    reply::bulk_or_null(ctx.out, old.as_deref(), ctx.client.resp3);
    Flow::Continue
}

pub(crate) fn getset(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    if refuse_oversize(ctx.out, req.arg(1), req.arg(2)) {
        return Flow::Continue;
    }
    swap(ctx, req.arg(1), Some(req.arg(2)))
}

pub(crate) fn getdel(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    swap(ctx, req.arg(1), None)
}

pub(crate) fn getex(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    match req.len() {
        2 => return get(ctx, req),
        3 if is(req.arg(2), b"PERSIST") => return get(ctx, req),
        4 if [&b"EX"[..], b"PX", b"EXAT", b"PXAT"].iter().any(|e| is(req.arg(2), e)) => {
            match parse_integer(req.arg(3)) {
                None => not_an_integer(ctx.out),
                Some(n) if n <= 0 => {
                    reply::error(ctx.out, b"ERR invalid expire time in 'getex' command");
                }
                Some(_) => reply::error(
                    ctx.out,
                    b"ERR GETEX EX/PX/EXAT/PXAT is not supported: gossipkv keys do not expire",
                ),
            }
        }
        _ => syntax_error(ctx.out),
    }
    Flow::Continue
}

pub(crate) fn strlen(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let n = ctx.shared.replica.store().get_with(req.arg(1), |v| v.map_or(0, <[u8]>::len));
    reply::integer(ctx.out, i64::try_from(n).unwrap_or(i64::MAX));
    Flow::Continue
}

/// The byte range `GETRANGE` returns for a value of `len` bytes: Redis's rules (inclusive
/// ends, negative offsets count from the end, clamped to the value).
fn byte_range(start: i64, end: i64, len: usize) -> Option<std::ops::Range<usize>> {
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return None;
    }
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let from_end = |i: i64| if i < 0 { len.saturating_add(i).max(0) } else { i };
    let (start, end) = (from_end(start), from_end(end).min(len - 1));
    if start > end {
        return None;
    }
    // 0 <= start <= end < len
    Some(usize::try_from(start).ok()?..usize::try_from(end).ok()? + 1)
}

pub(crate) fn getrange(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let (Some(start), Some(end)) = (parse_integer(req.arg(2)), parse_integer(req.arg(3))) else {
        not_an_integer(ctx.out);
        return Flow::Continue;
    };
    let out = &mut *ctx.out;
    ctx.shared.replica.store().get_with(req.arg(1), |v| {
        let v = v.unwrap_or_default();
        let part = byte_range(start, end, v.len()).and_then(|r| v.get(r));
        reply::bulk(out, part.unwrap_or_default());
    });
    Flow::Continue
}

pub(crate) fn mget(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let store = ctx.shared.replica.store();
    let (out, resp3) = (&mut *ctx.out, ctx.client.resp3);
    reply::array_len(out, req.len() - 1);
    for key in req.iter().skip(1) {
        store.get_with(key, |v| reply::bulk_or_null(out, v, resp3));
    }
    Flow::Continue
}

pub(crate) fn mset(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    if req.len().is_multiple_of(2) {
        wrong_arity(ctx.out, "mset");
        return Flow::Continue;
    }
    // all or nothing: no pair is written if one is too long
    let mut args = req.iter().skip(1);
    while let (Some(k), Some(v)) = (args.next(), args.next()) {
        if refuse_oversize(ctx.out, k, v) {
            return Flow::Continue;
        }
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

#[cfg(test)]
mod tests {
    use super::byte_range;

    /// Redis's own examples (`SET mykey "This is a string"`) and the edges of its rules.
    #[test]
    fn getrange_follows_redis_rules() {
        let v = b"This is a string";
        let cut = |s, e| byte_range(s, e, v.len()).map(|r| &v[r]);
        assert_eq!(cut(0, 3), Some(&b"This"[..]));
        assert_eq!(cut(-3, -1), Some(&b"ing"[..]));
        assert_eq!(cut(0, -1), Some(&v[..]));
        assert_eq!(cut(10, 100), Some(&b"string"[..]));
        assert_eq!(cut(-100, 2), Some(&b"Thi"[..]));
        assert_eq!(cut(5, 2), None);
        assert_eq!(cut(-1, -3), None);
        assert_eq!(cut(16, 20), None);
        assert_eq!(cut(i64::MIN, i64::MAX), Some(&v[..]));
        assert_eq!(byte_range(0, 0, 0), None);
    }
}
