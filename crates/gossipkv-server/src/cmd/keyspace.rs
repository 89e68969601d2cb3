//! Key-space commands: DBSIZE, SCAN, KEYS, RANDOMKEY, TYPE, and the expiry queries.
//!
//! `SCAN`'s cursor is a digest-tree leaf index (`Store::scan`): a key's leaf never changes,
//! so a key present for the whole iteration is returned exactly once, whatever is written
//! meanwhile (Redis promises at least once). `COUNT` is a hint, as in Redis: a call returns the
//! live keys of whole leaves until at least `COUNT` were collected, before `MATCH` filtering.
//! `TYPE string` matches every key, any other type none. `KEYS` walks everything at once and,
//! as in Redis, is meant for debugging, not for production traffic. `RANDOMKEY` takes the
//! first live leaf from a random one on (every key is not equally likely: a key alone in its
//! leaf is picked more often than one of many).
//!
//! Keys never expire, so the expiry queries answer as Redis does for a key without a time to
//! live: `TTL`, `PTTL`, `EXPIRETIME` and `PEXPIRETIME` give -1 for a live key and -2 for a
//! missing one, `PERSIST` gives 0. `TYPE` is `string` or `none`.

use bytes::Bytes;

use super::{Ctx, Flow, is, not_an_integer, physical_us, syntax_error};
use crate::glob;
use crate::resp::parse::parse_integer;
use crate::resp::{Request, reply};

pub(crate) fn type_(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let live = ctx.shared.replica.store().contains(req.arg(1));
    reply::simple(ctx.out, if live { b"string" } else { b"none" });
    Flow::Continue
}

pub(crate) fn ttl(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let live = ctx.shared.replica.store().contains(req.arg(1));
    reply::integer(ctx.out, if live { -1 } else { -2 });
    Flow::Continue
}

pub(crate) fn persist(ctx: &mut Ctx<'_>, _req: &Request<'_>) -> Flow {
    reply::integer(ctx.out, 0);
    Flow::Continue
}

pub(crate) fn randomkey(ctx: &mut Ctx<'_>, _req: &Request<'_>) -> Flow {
    let store = ctx.shared.replica.store();
    let leaves = store.tree().leaves();
    let seed = physical_us(0) ^ ctx.client.id.rotate_left(32);
    let mut rng = gossipkv_core::rng::Rng::new(seed);
    let from = rng.below(leaves as u64) as usize;
    let mut keys: Vec<Bytes> = Vec::new();
    // the first live leaf from the random one on, else from the start
    store.scan(from, 1, &mut keys);
    if keys.is_empty() && from > 0 {
        store.scan(0, 1, &mut keys);
    }
    let pick = (!keys.is_empty()).then(|| rng.below(keys.len() as u64) as usize);
    reply::bulk_or_null(ctx.out, pick.and_then(|i| keys.get(i)).map(|k| &k[..]), ctx.client.resp3);
    Flow::Continue
}

pub(crate) fn dbsize(ctx: &mut Ctx<'_>, _req: &Request<'_>) -> Flow {
    reply::integer(ctx.out, ctx.shared.replica.store().len() as i64);
    Flow::Continue
}

/// Parses an unsigned decimal cursor.
fn parse_cursor(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

pub(crate) fn scan(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let Some(cursor) = parse_cursor(req.arg(1)) else {
        reply::error(ctx.out, b"ERR invalid cursor");
        return Flow::Continue;
    };
    let (mut pattern, mut count, mut type_ok) = (None, 10usize, true);
    let mut i = 2;
    while i < req.len() {
        let (opt, value) = (req.arg(i), req.get(i + 1));
        match value {
            Some(p) if is(opt, b"MATCH") => pattern = Some(p).filter(|p| *p != b"*"),
            Some(n) if is(opt, b"COUNT") => match parse_integer(n) {
                None => {
                    not_an_integer(ctx.out);
                    return Flow::Continue;
                }
                Some(n) if n < 1 => {
                    syntax_error(ctx.out);
                    return Flow::Continue;
                }
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            },
            Some(t) if is(opt, b"TYPE") => type_ok = is(t, b"STRING"),
            _ => {
                syntax_error(ctx.out);
                return Flow::Continue;
            }
        }
        i += 2;
    }
    let store = ctx.shared.replica.store();
    let mut keys: Vec<Bytes> = Vec::new();
    let start = usize::try_from(cursor).unwrap_or(usize::MAX);
    let next = store.scan(start, count, &mut keys);
    if !type_ok {
        keys.clear();
    }
    if let Some(p) = pattern {
        keys.retain(|k| glob::matches(p, k));
    }
    let out = &mut *ctx.out;
    reply::array_len(out, 2);
    reply::bulk_decimal(out, next as u64);
    reply::array_len(out, keys.len());
    for k in &keys {
        reply::bulk(out, k);
    }
    Flow::Continue
}

pub(crate) fn keys(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let pattern = req.arg(1);
    let store = ctx.shared.replica.store();
    let mut keys: Vec<Bytes> = Vec::new();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut cursor = 0;
    loop {
        batch.clear();
        cursor = store.scan(cursor, 4096, &mut batch);
        keys.extend(batch.drain(..).filter(|k| pattern == b"*" || glob::matches(pattern, k)));
        if cursor == 0 {
            break;
        }
    }
    let out = &mut *ctx.out;
    reply::array_len(out, keys.len());
    for k in &keys {
        reply::bulk(out, k);
    }
    Flow::Continue
}
