//! gossipkv's own commands, which expose what Redis has no words for:
//!
//! - `PUT key value`: like `SET`, but replies with the timestamp the write was given (an
//!   integer: an HLC reading, or a Lamport counter), so a client can reason about order.
//! - `VERSIONS key`: every version the key keeps, winner first, then the concurrent values
//!   (versions that share the winning timestamp). Each is a 3-element array
//!   `[value or nil for a tombstone, timestamp, origin node id]`. A key never seen here gives
//!   an empty array; a deleted key gives its tombstone(s).

use super::{Ctx, Flow, refuse_oversize, write_local};
use crate::resp::{Request, reply};

pub(crate) fn put(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    if refuse_oversize(ctx.out, req.arg(1), req.arg(2)) {
        return Flow::Continue;
    }
    let ts = write_local(ctx, req.arg(1), Some(req.arg(2)));
    reply::unsigned(ctx.out, ts);
    Flow::Continue
}

pub(crate) fn versions(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Flow {
    let versions = ctx.shared.replica.store().versions(req.arg(1));
    let (out, resp3) = (&mut *ctx.out, ctx.client.resp3);
    reply::array_len(out, versions.len());
    for v in &versions {
        reply::array_len(out, 3);
        reply::bulk_or_null(out, v.value.as_deref(), resp3);
        reply::unsigned(out, v.ts);
        reply::unsigned(out, u64::from(v.origin));
    }
    Flow::Continue
}
