//! A RESP frame as a value: build one, encode it, decode one. The server's hot path writes
//! replies with [`super::reply`] instead; this type serves tests, tools and clients (and is the
//! decoder the raw-protocol tests read replies with). It holds RESP2's kinds and the RESP3
//! kinds a server sends after `HELLO 3` (null, map, set, verbatim string, double, boolean, big
//! number, push), so one decoder reads either protocol. Not decoded (refused as an unknown
//! type): RESP3's blob errors (`!`), attributes (`|`) and streamed strings and aggregates
//! (`$?`, `*?`), none of which Redis sends for the commands a node serves.

use bytes::Bytes;

use super::parse::{Limits, ProtocolError, parse_integer};
use super::reply;

/// Nesting limit of [`Frame::decode`]: deeper arrays are refused rather than recursed into.
pub const MAX_DEPTH: usize = 32;

/// One RESP frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `+text` (one line).
    Simple(Bytes),
    /// `-CODE message` (one line).
    Error(Bytes),
    /// `:n`.
    Integer(i64),
    /// `$len` bytes (binary-safe).
    Bulk(Bytes),
    /// `$-1`, the null bulk string.
    Null,
    /// `*n` frames.
    Array(Vec<Frame>),
    /// `*-1`, the null array.
    NullArray,
    /// RESP3 `_`, the null.
    Nil,
    /// RESP3 `%n` key-value pairs.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~n` elements.
    Set(Vec<Frame>),
    /// RESP3 `>n` elements (out-of-band data).
    Push(Vec<Frame>),
    /// RESP3 `=len` bytes: a 3-letter format, `:`, then the text (`txt:...`).
    Verbatim(Bytes),
    /// RESP3 `,text`, a double as the server wrote it (`1.5`, `inf`, `nan`).
    Double(Bytes),
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `(digits`, an integer of any size.
    BigNumber(Bytes),
}

impl Frame {
    /// A request as clients send it: an array of bulk strings.
    pub fn command<I, A>(args: I) -> Frame
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Frame::Array(
            args.into_iter().map(|a| Frame::Bulk(Bytes::copy_from_slice(a.as_ref()))).collect(),
        )
    }

    /// Appends the encoding of this frame to `out`, each kind in its own form (a RESP3 kind
    /// in RESP3's). CR/LF inside simple strings and errors become spaces (see
    /// [`super::reply`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.write(out, None);
    }

    /// Like [`Frame::encode`], for a client of the given protocol (answers built as frames,
    /// such as `CLUSTER MEMBERS`, go out through here), at any depth. In RESP3 the RESP2
    /// nulls (`$-1`, `*-1`) become `_`. In RESP2 the RESP3 kinds take the forms Redis gives
    /// them there: the null `$-1`, a map its flat key-value array, a set or push an array, a
    /// verbatim string a bulk string without its format, a double or big number a bulk
    /// string, a boolean the integer 1 or 0.
    pub fn encode_for(&self, out: &mut Vec<u8>, resp3: bool) {
        self.write(out, Some(resp3));
    }

    /// The one writer behind both: `proto` is `None` for each kind's own form, or whether
    /// the client speaks RESP3.
    fn write(&self, out: &mut Vec<u8>, proto: Option<bool>) {
        let resp2 = proto == Some(false);
        match self {
            Frame::Simple(s) => reply::simple(out, s),
            Frame::Error(s) => reply::error(out, s),
            Frame::Integer(n) => reply::integer(out, *n),
            Frame::Bulk(b) => reply::bulk(out, b),
            Frame::Null | Frame::NullArray | Frame::Nil => {
                let resp3 = proto.unwrap_or(matches!(self, Frame::Nil));
                if matches!(self, Frame::NullArray) {
                    reply::null_array(out, resp3);
                } else {
                    reply::null(out, resp3);
                }
            }
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                match self {
                    Frame::Set(_) => reply::set_len(out, items.len(), !resp2),
                    Frame::Push(_) if !resp2 => reply::header(out, b'>', items.len()),
                    _ => reply::array_len(out, items.len()),
                }
                for f in items {
                    f.write(out, proto);
                }
            }
            Frame::Map(pairs) => {
                reply::map_len(out, pairs.len(), !resp2);
                for (k, v) in pairs {
                    k.write(out, proto);
                    v.write(out, proto);
                }
            }
            Frame::Verbatim(b) if resp2 => reply::bulk(out, b.get(4..).unwrap_or_default()),
            Frame::Verbatim(b) => {
                reply::header(out, b'=', b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Double(t) | Frame::BigNumber(t) if resp2 => reply::bulk(out, t),
            Frame::Double(t) | Frame::BigNumber(t) => {
                out.push(if matches!(self, Frame::Double(_)) { b',' } else { b'(' });
                reply::push_line(out, t);
            }
            Frame::Boolean(b) if resp2 => reply::integer(out, i64::from(*b)),
            Frame::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        }
    }

    /// The encoding of this frame.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one frame from the front of `buf`: `Ok(Some((frame, bytes used)))`, or
    /// `Ok(None)` if `buf` holds only part of one. Not incremental (a partial frame is parsed
    /// again from its start next time), which is fine for replies in tests and tools; the
    /// server parses requests with [`super::Parser`]. Lengths are bounded by `limits`,
    /// nesting by [`MAX_DEPTH`].
    pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
        decode_at(buf, 0, limits, 0)
    }
}

/// The line starting at `start`, without its CRLF, and the offset after the CRLF.
fn line<'a>(
    buf: &'a [u8],
    start: usize,
    limits: &Limits,
) -> Result<Option<(&'a [u8], usize)>, ProtocolError> {
    let hay = buf.get(start..).unwrap_or(&[]);
    match hay.iter().position(|&b| b == b'\r') {
        None if hay.len() > limits.max_inline_len => Err(ProtocolError::InlineTooBig),
        None => Ok(None),
        Some(i) => match hay.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&hay[..i], start + i + 2))),
            Some(_) => Err(ProtocolError::InvalidInteger),
        },
    }
}

/// A RESP3 double's text: a decimal or exponent form (`1.5`, `-2e10`), `inf`, `-inf` or `nan`.
fn is_double(text: &[u8]) -> bool {
    let t = std::str::from_utf8(text).unwrap_or("");
    matches!(t, "inf" | "-inf" | "nan")
        || (t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && t.bytes().any(|b| b.is_ascii_digit())
            && t.parse::<f64>().is_ok())
}

/// A RESP3 big number's text: an optional `-`, then digits.
fn is_big_number(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// The `n` bytes of a bulk (or verbatim) string starting at `at`, and where its CRLF ends.
fn bulk_body(
    buf: &[u8],
    at: usize,
    n: i64,
    limits: &Limits,
) -> Result<Option<(Bytes, usize)>, ProtocolError> {
    let len = usize::try_from(n)
        .ok()
        .filter(|&n| n <= limits.max_bulk_len)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    let end = at.saturating_add(len);
    let (Some(data), Some(term)) = (buf.get(at..end), buf.get(end..end.saturating_add(2))) else {
        return Ok(None);
    };
    if term != b"\r\n" {
        return Err(ProtocolError::MissingBulkTerminator);
    }
    Ok(Some((Bytes::copy_from_slice(data), end + 2)))
}

fn decode_at(
    buf: &[u8],
    at: usize,
    limits: &Limits,
    depth: usize,
) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let Some((text, next)) = line(buf, at + 1, limits)? else { return Ok(None) };
    let int = || parse_integer(text).ok_or(ProtocolError::InvalidInteger);
    let frame = match kind {
        b'+' => Frame::Simple(Bytes::copy_from_slice(text)),
        b'-' => Frame::Error(Bytes::copy_from_slice(text)),
        b':' => Frame::Integer(int()?),
        b'$' => {
            let n = int()?;
            if n == -1 {
                return Ok(Some((Frame::Null, next)));
            }
            let Some((data, end)) = bulk_body(buf, next, n, limits)? else { return Ok(None) };
            return Ok(Some((Frame::Bulk(data), end)));
        }
        b'=' => {
            let Some((data, end)) = bulk_body(buf, next, int()?, limits)? else { return Ok(None) };
            if data.get(3) != Some(&b':') {
                return Err(ProtocolError::InvalidValue(kind));
            }
            return Ok(Some((Frame::Verbatim(data), end)));
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = int()?;
            if n == -1 && kind == b'*' {
                return Ok(Some((Frame::NullArray, next)));
            }
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= limits.max_array_len)
                .ok_or(ProtocolError::InvalidMultibulkLength)?;
            if depth >= MAX_DEPTH {
                return Err(ProtocolError::TooDeep(MAX_DEPTH));
            }
            // a map's n pairs are 2n frames
            let frames = if kind == b'%' { n.saturating_mul(2) } else { n };
            let mut items = Vec::with_capacity(frames.min(1024));
            let mut pos = next;
            for _ in 0..frames {
                let Some((f, end)) = decode_at(buf, pos, limits, depth + 1)? else {
                    return Ok(None);
                };
                items.push(f);
                pos = end;
            }
            let frame = match kind {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                b'>' => Frame::Push(items),
                _ => {
                    let mut it = items.into_iter();
                    let mut pairs = Vec::with_capacity(n.min(1024));
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Frame::Map(pairs)
                }
            };
            return Ok(Some((frame, pos)));
        }
        b'_' if text.is_empty() => Frame::Nil,
        b',' if is_double(text) => Frame::Double(Bytes::copy_from_slice(text)),
        b'(' if is_big_number(text) => Frame::BigNumber(Bytes::copy_from_slice(text)),
        b'#' if text == b"t" || text == b"f" => Frame::Boolean(text == b"t"),
        b',' | b'(' | b'#' => return Err(ProtocolError::InvalidValue(kind)),
        other => return Err(ProtocolError::InvalidFrameType(other)),
    };
    Ok(Some((frame, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let f = Frame::Array(vec![
            Frame::Simple(Bytes::from_static(b"OK")),
            Frame::Error(Bytes::from_static(b"ERR x")),
            Frame::Integer(-7),
            Frame::Bulk(Bytes::from_static(b"\r\n\0")),
            Frame::Null,
            Frame::NullArray,
            Frame::Array(vec![]),
            Frame::Nil,
            Frame::Map(vec![(Frame::Bulk(Bytes::from_static(b"k")), Frame::Integer(1))]),
            Frame::Set(vec![Frame::Simple(Bytes::from_static(b"fast"))]),
            Frame::Push(vec![]),
            Frame::Verbatim(Bytes::from_static(b"txt:a\r\nb")),
            Frame::Double(Bytes::from_static(b"-1.5e3")),
            Frame::Boolean(true),
            Frame::Boolean(false),
            Frame::BigNumber(Bytes::from_static(b"123456789012345678901234567890")),
        ]);
        let bytes = f.to_vec();
        let (g, used) = Frame::decode(&bytes, &Limits::default()).expect("ok").expect("whole");
        assert_eq!((g, used), (f, bytes.len()));
        for cut in 0..bytes.len() {
            assert_eq!(Frame::decode(&bytes[..cut], &Limits::default()), Ok(None));
        }
    }

    #[test]
    fn encode_for_gives_each_protocol_its_forms() {
        let b = |s: &'static [u8]| Frame::Bulk(Bytes::from_static(s));
        let f = Frame::Array(vec![
            Frame::Map(vec![(b(b"k"), Frame::Null)]),
            Frame::Set(vec![Frame::NullArray, Frame::Boolean(true)]),
            Frame::Nil,
            Frame::Verbatim(Bytes::from_static(b"txt:hi")),
            Frame::Double(Bytes::from_static(b"1.5")),
        ]);
        let (mut two, mut three) = (Vec::new(), Vec::new());
        f.encode_for(&mut two, false);
        f.encode_for(&mut three, true);
        assert_eq!(
            String::from_utf8_lossy(&two),
            "*5\r\n*2\r\n$1\r\nk\r\n$-1\r\n*2\r\n*-1\r\n:1\r\n$-1\r\n$2\r\nhi\r\n$3\r\n1.5\r\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&three),
            "*5\r\n%1\r\n$1\r\nk\r\n_\r\n~2\r\n_\r\n#t\r\n_\r\n=6\r\ntxt:hi\r\n,1.5\r\n"
        );
    }

    #[test]
    fn malformed_resp3_values_are_refused() {
        for (bad, kind) in [
            (&b",\r\n"[..], b','),
            (b",abc\r\n", b','),
            (b"(\r\n", b'('),
            (b"(1.5\r\n", b'('),
            (b"#x\r\n", b'#'),
            (b"=3\r\nabc\r\n", b'='),
            (b"=0\r\n\r\n", b'='),
        ] {
            assert_eq!(
                Frame::decode(bad, &Limits::default()),
                Err(ProtocolError::InvalidValue(kind)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [&b",inf\r\n"[..], b",-1.5e-3\r\n", b",nan\r\n", b"(-12\r\n"] {
            assert!(matches!(Frame::decode(good, &Limits::default()), Ok(Some(_))));
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert_eq!(
            Frame::decode(&deep, &Limits::default()),
            Err(ProtocolError::TooDeep(MAX_DEPTH))
        );
    }
}
