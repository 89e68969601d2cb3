//! The RESP request parser (`gossipkv_server::resp::Parser`) fed arbitrary bytes, in arbitrary
//! splits, the way a connection feeds it (keep the unconsumed bytes, append each read, parse
//! again). Checks:
//!
//! - it never panics (nor overflows: run.sh builds with debug assertions);
//! - the frame-size limits hold: no request spans more bytes, arguments or bulk bytes than
//!   [`Limits`] allow, "need more" is never answered while more than the limits' worth of bytes
//!   is buffered, and `pending_len` never asks for more than `max_request_len`;
//! - however the input is split, the requests and the error are the same as when the parser
//!   sees it whole (the fast whole-request path and the incremental state machine agree);
//! - `Frame::decode` (the reply decoder used by tools) never panics, and what it decodes
//!   re-encodes to bytes that decode whole and encode to the same bytes again.
//!
//! Input layout: one byte picks the limits (the defaults, or small ones read from the input so
//! that every limit is reachable), then a few chunk sizes, then the stream itself.

#![no_main]

use arbitrary::Unstructured;
use gossipkv_server::resp::{Frame, Limits, Parser, ProtocolError};
use libfuzzer_sys::fuzz_target;

type Requests = Vec<(Vec<Vec<u8>>, bool)>;

/// Feeds `chunks` to a fresh parser like a connection does, checking the limits on every
/// answer. Returns the requests (arguments, inline?) and the error that stopped it.
fn feed<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    limits: Limits,
) -> (Requests, Option<ProtocolError>) {
    let mut p = Parser::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    // a request's bytes: a multibulk request is bounded by max_request_len (its `*N` header
    // alone by max_inline_len), an inline one by its line
    let max_consumed = limits.max_request_len.max(limits.max_inline_len.saturating_add(2));
    // waiting for more: at most a request so far, then `$` and a header line without its LF
    let max_buffered = max_consumed.saturating_add(limits.max_inline_len).saturating_add(2);
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match p.parse(&buf) {
                Ok(Some(r)) => {
                    let n = r.consumed();
                    assert!(n > 0 && n <= buf.len(), "consumed {n} of {}", buf.len());
                    assert!(n <= max_consumed, "request of {n} bytes, limits {limits:?}");
                    if r.is_inline() {
                        assert!(n <= limits.max_inline_len.saturating_add(1), "inline line {n}");
                    } else {
                        assert!(r.len() <= limits.max_array_len, "{} args", r.len());
                        for a in r.iter() {
                            assert!(a.len() <= limits.max_bulk_len, "bulk of {}", a.len());
                        }
                    }
                    out.push((r.to_vec(), r.is_inline()));
                    buf.drain(..n);
                }
                Ok(None) => {
                    assert!(
                        buf.len() <= max_buffered,
                        "needs more with {} bytes buffered, limits {limits:?}",
                        buf.len()
                    );
                    if let Some(need) = p.pending_len() {
                        assert!(need > buf.len(), "pending_len {need} <= {}", buf.len());
                        assert!(need <= limits.max_request_len, "pending_len {need}");
                    }
                    break;
                }
                Err(e) => {
                    assert!(!e.to_string().contains(['\r', '\n']), "error line {e}");
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

fn limits(u: &mut Unstructured<'_>) -> arbitrary::Result<Limits> {
    Ok(if u.arbitrary::<bool>()? {
        Limits::default()
    } else {
        Limits {
            max_bulk_len: u.int_in_range(0..=80)?,
            max_array_len: u.int_in_range(0..=10)?,
            max_inline_len: u.int_in_range(0..=80)?,
            max_request_len: u.int_in_range(0..=400)?,
        }
    })
}

fn run(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let limits = limits(&mut u)?;
    let n_sizes = u.int_in_range(0..=6)?;
    let mut sizes = Vec::with_capacity(n_sizes);
    for _ in 0..n_sizes {
        sizes.push(usize::from(u.int_in_range(1u8..=64)?));
    }
    let input = u.take_rest();

    let whole = feed([input], limits);
    if !sizes.is_empty() {
        let mut chunks = Vec::new();
        let mut rest = input;
        for &s in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at(s.min(rest.len()));
            chunks.push(a);
            rest = b;
        }
        let split = feed(chunks, limits);
        assert_eq!(whole, split, "split into {sizes:?}");
    }

    if let Ok(Some((frame, used))) = Frame::decode(input, &limits) {
        assert!(used > 0 && used <= input.len());
        // not quite a round trip: the encoder turns CR/LF inside simple strings and errors
        // into spaces; but from there on, encoding and decoding are inverse
        let enc = frame.to_vec();
        let (again, n) = Frame::decode(&enc, &Limits::default())
            .expect("an encoded frame decodes")
            .expect("an encoded frame is whole");
        assert_eq!(n, enc.len());
        assert_eq!(again.to_vec(), enc);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
