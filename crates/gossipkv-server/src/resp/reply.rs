//! Reply writers: each function appends one RESP2 frame to an output buffer. Commands reply
//! through these straight into the connection's write buffer, so a reply costs no allocation
//! beyond the buffer's own growth.
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

/// The null bulk string, `$-1\r\n` (GET of a missing key).
#[inline]
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// A bulk string, or the null bulk string for `None`.
#[inline]
pub fn bulk_or_null(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(b) => bulk(out, b),
        None => null(out),
    }
}

/// The header of an array of `n` elements, `*n\r\n`; the caller writes the elements next.
#[inline]
pub fn array_len(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// The null array, `*-1\r\n`.
pub fn null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

fn push_line(out: &mut Vec<u8>, s: &[u8]) {
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
        null(&mut out);
        array_len(&mut out, 2);
        null_array(&mut out);
        error(&mut out, b"ERR bad\r\nthing");
        error_fmt(&mut out, format_args!("ERR {}", "x\ny"));
        bulk_decimal(&mut out, 1234);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "+OK\r\n:-42\r\n:-9223372036854775808\r\n:18446744073709551615\r\n$4\r\na\r\nb\r\n\
             $-1\r\n*2\r\n*-1\r\n-ERR bad  thing\r\n-ERR x y\r\n$4\r\n1234\r\n"
        );
    }
}
