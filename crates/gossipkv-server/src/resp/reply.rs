//! Reply writers: each function appends one frame to an output buffer. Commands reply
//! through these straight into the connection's write buffer, so a reply costs no allocation
//! beyond the buffer's own growth.
//!
//! RESP2 is the default; a client that sent `HELLO 3` gets RESP3, and the few writers whose
//! frame differs between the two take `resp3`: the null (`$-1` / `*-1` against `_`), maps
//! (`*2n` flat pairs against `%n`), sets (`*n` against `~n`) and verbatim text such as INFO
//! (a bulk string against `=len txt:...`). Everything else is the same bytes in both.
//!
//! Simple strings and errors are one line by definition: CR and LF inside them are replaced
//! by spaces (as Redis does for error replies), so a reply can never break the framing.

use std::io::Write as _;

/// `+OK\r\n`.
#[inline]
pub fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// A simple string, `+s\r\n` (CR/LF inside become spaces).
pub fn simple(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'+');
    push_line(out, s);
}

/// An error, `-msg\r\n`. `msg` starts with the error code (`ERR ...`, `WRONGTYPE ...`).
pub fn error(out: &mut Vec<u8>, msg: &[u8]) {
    out.push(b'-');
    push_line(out, msg);
}

/// An error built with `format_args!`, e.g.
/// `error_fmt(out, format_args!("ERR unknown subcommand '{name}'"))`.
pub fn error_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    out.push(b'-');
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = out.write_fmt(args);
    sanitize(&mut out[start..]);
    out.extend_from_slice(b"\r\n");
}

/// An integer, `:n\r\n`.
#[inline]
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    if n < 0 {
        out.push(b'-');
    }
    push_decimal(out, n.unsigned_abs());
    out.extend_from_slice(b"\r\n");
}

/// An unsigned integer as a RESP integer (timestamps). RESP integers are signed 64-bit; every
/// timestamp the clocks issue today is far below `i64::MAX`.
#[inline]
pub fn unsigned(out: &mut Vec<u8>, n: u64) {
    out.push(b':');
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string, `$len\r\nbytes\r\n` (binary-safe).
#[inline]
pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() + 16);
    out.push(b'$');
    push_decimal(out, b.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string holding the decimal digits of `n` (e.g. SCAN's cursor).
pub fn bulk_decimal(out: &mut Vec<u8>, n: u64) {
    let mut tmp = [0u8; 20];
    let digits = format_decimal(&mut tmp, n);
    bulk(out, digits);
}

/// The null reply (GET of a missing key): the null bulk string `$-1\r\n` in RESP2, `_\r\n`
/// in RESP3.
#[inline]
pub fn null(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// A bulk string, or the null reply for `None`.
#[inline]
pub fn bulk_or_null(out: &mut Vec<u8>, v: Option<&[u8]>, resp3: bool) {
    match v {
        Some(b) => bulk(out, b),
        None => null(out, resp3),
    }
}

/// The header of a map of `n` key-value pairs: `%n\r\n` in RESP3, an array of `2n`
/// alternating keys and values in RESP2 (as Redis sends HELLO's and CONFIG GET's answers).
pub fn map_len(out: &mut Vec<u8>, n: usize, resp3: bool) {
    if resp3 { header(out, b'%', n) } else { array_len(out, 2 * n) }
}

/// The header of a set of `n` elements: `~n\r\n` in RESP3, an array in RESP2.
pub fn set_len(out: &mut Vec<u8>, n: usize, resp3: bool) {
    header(out, if resp3 { b'~' } else { b'*' }, n);
}

/// Text for a human (INFO, CLIENT LIST): a verbatim string of format `txt` in RESP3
/// (`=len\r\ntxt:text\r\n`), a bulk string in RESP2.
pub fn verbatim(out: &mut Vec<u8>, text: &[u8], resp3: bool) {
    if resp3 {
        header(out, b'=', text.len() + 4);
        out.extend_from_slice(b"txt:");
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text);
    }
}

/// The header of an array of `n` elements, `*n\r\n`; the caller writes the elements next.
#[inline]
pub fn array_len(out: &mut Vec<u8>, n: usize) {
    header(out, b'*', n);
}

/// A length header, `{tag}n\r\n` (`*` array, `%` map, `~` set, `>` push, `$` bulk, `=`
/// verbatim).
#[inline]
pub(crate) fn header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    push_decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// The null array: `*-1\r\n` in RESP2, `_\r\n` in RESP3.
pub fn null_array(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" });
}

/// `s` and CRLF, CR and LF inside `s` replaced by spaces (the body of a one-line frame).
pub(crate) fn push_line(out: &mut Vec<u8>, s: &[u8]) {
    let start = out.len();
    out.extend_from_slice(s);
    sanitize(&mut out[start..]);
    out.extend_from_slice(b"\r\n");
}

fn sanitize(line: &mut [u8]) {
    for b in line {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
}

/// Writes the decimal digits of `n` into the end of `tmp` and returns them.
fn format_decimal(tmp: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &tmp[i..]
}

#[inline]
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut tmp = [0u8; 20];
    out.extend_from_slice(format_decimal(&mut tmp, n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mut out = Vec::new();
        ok(&mut out);
        integer(&mut out, -42);
        integer(&mut out, i64::MIN);
        unsigned(&mut out, u64::MAX);
        bulk(&mut out, b"a\r\nb");
        null(&mut out, false);
        array_len(&mut out, 2);
        null_array(&mut out, false);
        error(&mut out, b"ERR bad\r\nthing");
        error_fmt(&mut out, format_args!("ERR {}", "x\ny"));
        bulk_decimal(&mut out, 1234);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "+OK\r\n:-42\r\n:-9223372036854775808\r\n:18446744073709551615\r\n$4\r\na\r\nb\r\n\
             $-1\r\n*2\r\n*-1\r\n-ERR bad  thing\r\n-ERR x y\r\n$4\r\n1234\r\n"
        );
    }

    #[test]
    fn resp3_frames_and_their_resp2_forms() {
        for (resp3, want) in [
            (false, "$-1\r\n*-1\r\n*4\r\n*2\r\n$4\r\nx\r\ny\r\n"),
            (true, "_\r\n_\r\n%2\r\n~2\r\n=8\r\ntxt:x\r\ny\r\n"),
        ] {
            let mut out = Vec::new();
            null(&mut out, resp3);
            null_array(&mut out, resp3);
            map_len(&mut out, 2, resp3);
            set_len(&mut out, 2, resp3);
            verbatim(&mut out, b"x\r\ny", resp3);
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }
}
