//! RESP, the Redis wire protocol: the request parser, the reply writer (RESP2, and RESP3's
//! forms for a client that asked with `HELLO 3`) and a frame type that decodes both.
//!
//! This module owns every byte that crosses a client socket. It does no I/O itself: the
//! connection reads into a buffer, hands it to [`Parser::parse`], and writes the bytes the
//! [`reply`] functions appended to its output buffer.
//!
//! - [`parse`]: the incremental request parser ([`Parser`]), its [`Limits`] and its typed
//!   [`ProtocolError`].
//! - [`reply`]: functions that append one reply frame straight into an output buffer (the hot
//!   path: no intermediate value, no allocation).
//! - [`frame`]: a [`Frame`] value with an encoder and a (non-incremental) decoder, for tests,
//!   tools and replies that are easier to build as a tree.
//!
//! **Why hand-written.** The parser is small (RESP2 requests are arrays of bulk strings, plus
//! inline commands) and sits on the hottest path of the node, so we want exactly these
//! properties, which generic parser crates make hard to get at once:
//! - arguments are borrowed slices of the read buffer (zero copies, zero allocations per
//!   command in steady state);
//! - incremental: on partial input it returns "need more" and remembers where it stopped, so a
//!   64 MiB bulk string arriving in 16 KiB reads is never re-scanned (no quadratic blow-up);
//! - every length is checked against [`Limits`] *before* anything is reserved, and every
//!   violation is a typed error the connection answers with `-ERR Protocol error: ...`;
//! - it never panics, whatever the bytes: `tests/resp_props.rs` checks this, the
//!   encode-then-parse round trip, and that splitting the input at every byte boundary gives
//!   the same requests.

pub mod frame;
pub mod parse;
pub mod reply;

pub use frame::Frame;
pub use parse::{Limits, Parser, ProtocolError, Request};
