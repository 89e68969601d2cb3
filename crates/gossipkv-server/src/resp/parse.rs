//! The incremental RESP2 request parser: multibulk requests (`*N` arrays of `$len` bulk
//! strings, what every client library sends) and inline commands (`PING\r\n`, `SET a b\r\n`,
//! what telnet and `redis-cli` in a pipe send), with [`Limits`] on every length and a typed
//! [`ProtocolError`] for every violation.
//!
//! **Contract.** Call [`Parser::parse`] with the bytes not yet consumed, starting at the first
//! byte of the request in progress. On partial input it returns `Ok(None)` and remembers how
//! far it got; call it again with the same bytes plus whatever arrived since. On a complete
//! request it returns a [`Request`] whose arguments borrow the buffer; the caller then drops
//! [`Request::consumed`] bytes from the front. Nothing is re-scanned between calls, so parsing
//! costs O(bytes), however the input is split. Passing anything else (a shorter or unrelated
//! buffer) gives wrong requests or errors, never a panic.

use std::fmt;
use std::ops::Range;

/// Bounds on what one request may contain. Checked before anything is reserved, so a peer
/// cannot make the server allocate more than these allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (`$len`), like Redis's `proto-max-bulk-len` (512 MiB there).
    /// Default 64 MiB: the node keeps every value of every key in memory on every replica.
    pub max_bulk_len: usize,
    /// Most elements in one multibulk request (`*N`); Redis allows 1024 * 1024.
    pub max_array_len: usize,
    /// Longest inline command line, and longest `*`/`$` header line; Redis allows 64 KiB.
    pub max_inline_len: usize,
    /// Most bytes one request may span in total (Redis's `client-query-buffer-limit`, 1 GiB
    /// there). Default 512 MiB.
    pub max_request_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 64 << 20,
            max_array_len: 1 << 20,
            max_inline_len: 64 << 10,
            max_request_len: 512 << 20,
        }
    }
}

/// Why a request was refused. The connection answers `-ERR Protocol error: <this>` and then
/// closes (only that connection). The messages follow Redis's where Redis has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The `*N` count is not an integer or exceeds [`Limits::max_array_len`].
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$len` is not an integer, is negative, or exceeds [`Limits::max_bulk_len`].
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// An element of a multibulk request does not start with `$`.
    #[error("expected '$', got '{}'", Printable(*.0))]
    ExpectedBulk(u8),
    /// The bytes after a bulk string's payload are not `\r\n`.
    #[error("expected CRLF after bulk string")]
    MissingBulkTerminator,
    /// An inline command line is longer than [`Limits::max_inline_len`].
    #[error("too big inline request")]
    InlineTooBig,
    /// The `*N` header line is longer than [`Limits::max_inline_len`].
    #[error("too big mbulk count string")]
    MultibulkHeaderTooBig,
    /// A `$len` header line is longer than [`Limits::max_inline_len`].
    #[error("too big bulk count string")]
    BulkHeaderTooBig,
    /// An inline command has an unterminated quote, or a closing quote not followed by space.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// The request would span more than [`Limits::max_request_len`] bytes.
    #[error("request larger than {limit} bytes")]
    RequestTooBig {
        /// The limit in force.
        limit: usize,
    },
    /// [`Frame::decode`](super::Frame::decode) only: a frame starts with an unknown type byte.
    #[error("invalid frame type '{}'", Printable(*.0))]
    InvalidFrameType(u8),
    /// [`Frame::decode`](super::Frame::decode) only: an `:` integer or a line is malformed.
    #[error("invalid integer or line")]
    InvalidInteger,
    /// [`Frame::decode`](super::Frame::decode) only: a RESP3 double, boolean, big number or
    /// verbatim string whose body is not one (`,abc`, `#x`, `(1.5`, a verbatim string
    /// without its `xxx:` format).
    #[error("invalid RESP3 '{}' value", Printable(*.0))]
    InvalidValue(u8),
    /// [`Frame::decode`](super::Frame::decode) only: arrays nested deeper than the limit.
    #[error("frames nested deeper than {0}")]
    TooDeep(usize),
}

/// Shows a byte the way an error line can carry it: printable ASCII as is, else `\xHH`.
struct Printable(u8);

impl fmt::Display for Printable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() || self.0 == b' ' {
            write!(f, "{}", self.0 as char)
        } else {
            write!(f, "\\x{:02x}", self.0)
        }
    }
}

/// One complete request: its arguments (command name first) borrowed from the read buffer
/// (or, for an inline command, from the parser's unescape buffer).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    data: &'a [u8],
    args: &'a [Range<usize>],
    consumed: usize,
    inline: bool,
}

impl<'a> Request<'a> {
    /// How many bytes of the buffer this request spans; drop them before the next call.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Number of arguments, the command name included. Zero for an empty request (`*0`, an
    /// empty inline line), which Redis ignores without a reply.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether the request has no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Whether it came as an inline command rather than a multibulk array.
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// Argument `i` (0 is the command name), if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.args.get(i).and_then(|r| self.data.get(r.clone()))
    }

    /// Argument `i`, or an empty slice if there is none (for callers that checked arity).
    #[inline]
    pub fn arg(&self, i: usize) -> &'a [u8] {
        self.get(i).unwrap_or(&[])
    }

    /// Every argument in order, the command name first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + use<'a> {
        let data = self.data;
        self.args.iter().map(move |r| data.get(r.clone()).unwrap_or(&[]))
    }

    /// Copies the arguments out (tests and tools).
    pub fn to_vec(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests.
    Start,
    /// Inside a multibulk request, expecting `remaining` more `$len` headers.
    Array { remaining: usize },
    /// A `$len` header was read; waiting for `len` payload bytes plus CRLF.
    Bulk { remaining: usize, len: usize },
}

/// The incremental request parser. One per connection; see the module docs for the calling
/// contract.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// Offset in the caller's buffer up to which the current request has been parsed.
    pos: usize,
    /// Where to resume looking for a line end (nothing before it matched).
    scan: usize,
    /// Argument ranges of the current request: into the caller's buffer, or into `inline`.
    args: Vec<Range<usize>>,
    /// Unescaped bytes of an inline command's arguments.
    inline: Vec<u8>,
    inline_mode: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// Argument vectors above this capacity are released after use, so one huge request does not
/// pin memory for the connection's lifetime.
const KEEP_ARGS_CAPACITY: usize = 1024;

impl Parser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Start,
            pos: 0,
            scan: 0,
            args: Vec::with_capacity(8),
            inline: Vec::new(),
            inline_mode: false,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the limits; they apply from the next header parsed.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// If the request in progress is waiting for a bulk payload, the total buffer length (from
    /// the request's first byte) needed to complete that payload; lets the caller reserve the
    /// space in one step.
    pub fn pending_len(&self) -> Option<usize> {
        match self.state {
            State::Bulk { len, .. } => Some(self.pos.saturating_add(len).saturating_add(2)),
            _ => None,
        }
    }

    /// Whether the parser is between requests (nothing partial remembered).
    pub fn is_idle(&self) -> bool {
        self.state == State::Start && self.pos == 0
    }

    /// Forgets any partial request.
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.pos = 0;
        self.scan = 0;
        self.inline_mode = false;
    }

    /// Parses the next request from `buf` (which starts at the first unconsumed byte).
    /// `Ok(None)`: need more bytes. After an error the parser is reset, but the stream is
    /// out of sync: the connection should answer and close.
    pub fn parse<'p>(&'p mut self, buf: &'p [u8]) -> Result<Option<Request<'p>>, ProtocolError> {
        match self.advance(buf) {
            Ok(true) => {
                let consumed = self.pos;
                let inline = self.inline_mode;
                self.reset();
                let data: &[u8] =
                    if inline { &self.inline } else { buf.get(..consumed).unwrap_or(&[]) };
                Ok(Some(Request { data, args: &self.args, consumed, inline }))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                self.reset();
                self.args.clear();
                Err(e)
            }
        }
    }

    /// Runs the state machine as far as `buf` allows; `Ok(true)` when a request is complete
    /// (it then spans `buf[..self.pos]`).
    fn advance(&mut self, buf: &[u8]) -> Result<bool, ProtocolError> {
        loop {
            match self.state {
                State::Start => {
                    let Some(&first) = buf.first() else { return Ok(false) };
                    if self.args.capacity() > KEEP_ARGS_CAPACITY {
                        self.args = Vec::with_capacity(8);
                    }
                    self.args.clear();
                    if first != b'*' {
                        return self.inline_command(buf);
                    }
                    if let Some(end) = self.whole_multibulk(buf) {
                        self.pos = end;
                        return Ok(true);
                    }
                    self.args.clear();
                    let Some(cr) = self.find_byte(buf, 1, b'\r') else {
                        if buf.len() > self.limits.max_inline_len {
                            return Err(ProtocolError::MultibulkHeaderTooBig);
                        }
                        return Ok(false);
                    };
                    if cr > self.limits.max_inline_len {
                        return Err(ProtocolError::MultibulkHeaderTooBig);
                    }
                    match buf.get(cr + 1) {
                        None => return Ok(false),
                        Some(b'\n') => {}
                        Some(_) => return Err(ProtocolError::InvalidMultibulkLength),
                    }
                    let n = buf
                        .get(1..cr)
                        .and_then(parse_integer)
                        .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    self.pos = cr + 2;
                    if n <= 0 {
                        // `*0` / `*-1`: an empty request, ignored like Redis does.
                        return Ok(true);
                    }
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= self.limits.max_array_len)
                        .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    self.state = State::Array { remaining: n };
                }
                State::Array { remaining: 0 } => return Ok(true),
                State::Array { remaining } => {
                    let Some(&b) = buf.get(self.pos) else { return Ok(false) };
                    if b != b'$' {
                        return Err(ProtocolError::ExpectedBulk(b));
                    }
                    let start = self.pos + 1;
                    let Some(cr) = self.find_byte(buf, start, b'\r') else {
                        if buf.len() - start > self.limits.max_inline_len {
                            return Err(ProtocolError::BulkHeaderTooBig);
                        }
                        return Ok(false);
                    };
                    if cr - start > self.limits.max_inline_len {
                        return Err(ProtocolError::BulkHeaderTooBig);
                    }
                    match buf.get(cr + 1) {
                        None => return Ok(false),
                        Some(b'\n') => {}
                        Some(_) => return Err(ProtocolError::InvalidBulkLength),
                    }
                    let len = buf
                        .get(start..cr)
                        .and_then(parse_integer)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n <= self.limits.max_bulk_len)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    let next = cr + 2;
                    if next.saturating_add(len).saturating_add(2) > self.limits.max_request_len {
                        return Err(ProtocolError::RequestTooBig {
                            limit: self.limits.max_request_len,
                        });
                    }
                    self.pos = next;
                    self.state = State::Bulk { remaining: remaining - 1, len };
                }
                State::Bulk { remaining, len } => {
                    let end = self.pos.saturating_add(len);
                    let Some(term) = buf.get(end..end.saturating_add(2)) else {
                        return Ok(false);
                    };
                    if term != b"\r\n" {
                        return Err(ProtocolError::MissingBulkTerminator);
                    }
                    self.args.push(self.pos..end);
                    self.pos = end + 2;
                    self.state = State::Array { remaining };
                }
            }
        }
    }

    /// The fast path: parses a multibulk request that is entirely in `buf` and well-formed in
    /// one pass, without state transitions, and returns its end. On anything else (partial
    /// input, `*0`, any error) it returns `None` and the general state machine parses the
    /// request from its start, reporting errors and remembering partial progress; so the
    /// fast path scans a given request at most once, and only changes speed, never results
    /// (tests/resp_props.rs checks whole and split input give the same requests and errors).
    #[inline]
    fn whole_multibulk(&mut self, buf: &[u8]) -> Option<usize> {
        let limits = self.limits;
        let (n, mut pos) = header_number(buf, 1)?;
        if n == 0 || n > limits.max_array_len || pos - 2 > limits.max_inline_len {
            return None;
        }
        for _ in 0..n {
            if *buf.get(pos)? != b'$' {
                return None;
            }
            let (len, next) = header_number(buf, pos + 1)?;
            if len > limits.max_bulk_len || next - 2 - (pos + 1) > limits.max_inline_len {
                return None;
            }
            let end = next.checked_add(len)?;
            if end.checked_add(2)? > limits.max_request_len || buf.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            self.args.push(next..end);
            pos = end + 2;
        }
        Some(pos)
    }

    /// An inline command: one line, split like Redis's `sdssplitargs`.
    fn inline_command(&mut self, buf: &[u8]) -> Result<bool, ProtocolError> {
        let Some(nl) = self.find_byte(buf, 0, b'\n') else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::InlineTooBig);
            }
            return Ok(false);
        };
        if nl > self.limits.max_inline_len {
            return Err(ProtocolError::InlineTooBig);
        }
        let mut line = buf.get(..nl).unwrap_or(&[]);
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        self.inline.clear();
        split_inline(line, &mut self.inline, &mut self.args)?;
        self.pos = nl + 1;
        self.inline_mode = true;
        Ok(true)
    }

    /// Finds `byte` at or after `start`, resuming where the previous unsuccessful search of
    /// the same line stopped.
    fn find_byte(&mut self, buf: &[u8], start: usize, byte: u8) -> Option<usize> {
        let from = self.scan.max(start);
        let hay = buf.get(from..)?;
        match hay.iter().position(|&b| b == byte) {
            Some(i) => {
                self.scan = 0;
                Some(from + i)
            }
            None => {
                self.scan = buf.len();
                None
            }
        }
    }
}

/// Parses a decimal integer the way Redis's `string2ll` does: an optional `-`, then digits
/// without leading zeros (`0` alone is fine, `-0` is not), within `i64`.
pub fn parse_integer(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        // 19 digits always fit in a u64
        v = v * 10 + u64::from(c - b'0');
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// A non-negative header number at `start` (`0` or digits without a leading zero, at most
/// 18 of them) followed by CRLF: `(value, offset after the CRLF)`. `None` for anything else,
/// including input that ends too early.
#[inline]
fn header_number(buf: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut i = start;
    let mut v: usize = 0;
    loop {
        let c = *buf.get(i)?;
        if c.is_ascii_digit() {
            if (c == b'0' && i == start && buf.get(i + 1) != Some(&b'\r')) || i - start >= 18 {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(usize::from(c - b'0'))?;
            i += 1;
        } else if c == b'\r' && i > start && buf.get(i + 1) == Some(&b'\n') {
            return Some((v, i + 2));
        } else {
            return None;
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`: whitespace separates;
/// `"..."` allows `\n \r \t \b \a \\ \" \xHH` escapes; `'...'` allows `\'`; a closing quote
/// must be followed by whitespace or the end. Unlike Redis, a NUL byte is an ordinary byte.
fn split_inline(
    line: &[u8],
    out: &mut Vec<u8>,
    args: &mut Vec<Range<usize>>,
) -> Result<(), ProtocolError> {
    let n = line.len();
    let mut i = 0;
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Ok(());
        }
        let start = out.len();
        let (mut dq, mut sq) = (false, false);
        loop {
            let Some(&c) = line.get(i) else {
                if dq || sq {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                break;
            };
            let next = line.get(i + 1).copied();
            if dq {
                if c == b'\\' && next == Some(b'x') {
                    let hi = line.get(i + 2).copied().and_then(hex_value);
                    let lo = line.get(i + 3).copied().and_then(hex_value);
                    if let (Some(hi), Some(lo)) = (hi, lo) {
                        out.push(hi << 4 | lo);
                        i += 4;
                        continue;
                    }
                }
                match (c, next) {
                    (b'\\', Some(e)) => {
                        out.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    }
                    (b'"', next) => {
                        if next.is_some_and(|b| !is_space(b)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    _ => {
                        out.push(c);
                        i += 1;
                    }
                }
            } else if sq {
                match (c, next) {
                    (b'\\', Some(b'\'')) => {
                        out.push(b'\'');
                        i += 2;
                    }
                    (b'\'', next) => {
                        if next.is_some_and(|b| !is_space(b)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    _ => {
                        out.push(c);
                        i += 1;
                    }
                }
            } else {
                match c {
                    b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => break,
                    b'"' => dq = true,
                    b'\'' => sq = true,
                    _ => out.push(c),
                }
                i += 1;
            }
        }
        args.push(start..out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser, mut buf: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut out = Vec::new();
        while let Some(r) = p.parse(buf)? {
            let n = r.consumed();
            if !r.is_empty() {
                out.push(r.to_vec());
            }
            buf = &buf[n..];
        }
        Ok(out)
    }

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_pipelining() {
        let mut p = Parser::default();
        let got =
            all(&mut p, b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\n*0\r\n")
                .expect("valid");
        assert_eq!(got, vec![v(&["PING"]), v(&["SET", "a", ""])]);
    }

    #[test]
    fn inline_commands_and_quotes() {
        let mut p = Parser::default();
        let got = all(&mut p, b"PING\r\n\r\n  set a  \"b c\\x41\\n\" 'it\\'s'\nget\t''\r\n")
            .expect("valid");
        assert_eq!(got, vec![v(&["PING"]), v(&["set", "a", "b cA\n", "it's"]), v(&["get", ""])]);
        assert_eq!(all(&mut p, b"set \"a\"b\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(all(&mut p, b"set \"ab\r\n"), Err(ProtocolError::UnbalancedQuotes));
    }

    #[test]
    fn partial_input_needs_more_and_reports_pending_len() {
        let mut p = Parser::default();
        let full = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
        for cut in 0..full.len() {
            assert!(p.parse(&full[..cut]).expect("prefix is fine").is_none(), "cut {cut}");
        }
        assert_eq!(p.pending_len(), Some(full.len()));
        let r = p.parse(full).expect("ok").expect("complete");
        assert_eq!(r.to_vec(), v(&["GET", "0123456789"]));
        assert_eq!(r.consumed(), full.len());
        assert!(p.is_idle());
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_bulk_len: 4,
            max_array_len: 2,
            max_inline_len: 8,
            max_request_len: 1 << 20,
        };
        let mut p = Parser::new(limits);
        assert_eq!(all(&mut p, b"*1\r\n$5\r\nhello\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(all(&mut p, b"*3\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(all(&mut p, b"PING PING PING\r\n"), Err(ProtocolError::InlineTooBig));
        assert_eq!(all(&mut p, b"PINGPINGPING"), Err(ProtocolError::InlineTooBig));
        assert_eq!(all(&mut p, b"*1\r\n$-1\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(all(&mut p, b"*1\r\n:1\r\n"), Err(ProtocolError::ExpectedBulk(b':')));
        assert_eq!(all(&mut p, b"*1\r\n$1\r\naXY"), Err(ProtocolError::MissingBulkTerminator));
        assert_eq!(all(&mut p, b"*x\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(all(&mut p, b"*1\r\n$000000000"), Err(ProtocolError::BulkHeaderTooBig));
        let mut p = Parser::new(Limits { max_request_len: 16, ..Limits::default() });
        assert_eq!(all(&mut p, b"*1\r\n$20\r\n"), Err(ProtocolError::RequestTooBig { limit: 16 }));
    }

    #[test]
    fn error_messages_are_single_lines() {
        let e = ProtocolError::ExpectedBulk(b'\n').to_string();
        assert_eq!(e, "expected '$', got '\\x0a'");
    }

    #[test]
    fn integers_like_string2ll() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"-12"), Some(-12));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"01", b"-0", b"+1", b" 1", b"1 ", b"9223372036854775808"] {
            assert_eq!(parse_integer(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
