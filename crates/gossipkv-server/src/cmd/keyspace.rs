//! Key-space commands: DBSIZE, SCAN, KEYS.
//!
//! `SCAN`'s cursor is a digest-tree leaf index (`Store::scan`): a key's leaf never changes,
//! so a key present for the whole iteration is returned exactly once, whatever is written
//! meanwhile (Redis promises at least once). `COUNT` is a hint, as in Redis: a call returns the
//! live keys of whole leaves until at least `COUNT` were collected, before `MATCH` filtering.
//! `TYPE string` matches every key, any other type none. `KEYS` walks everything at once and,
//! as in Redis, is meant for debugging, not for production traffic.

use bytes::Bytes;

use super::{Ctx, Flow, is, not_an_integer, syntax_error};
use crate::glob;
use crate::resp::parse::parse_integer;
use crate::resp::{Request, reply};

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
