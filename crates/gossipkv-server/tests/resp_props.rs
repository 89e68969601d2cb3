//! Property tests of the RESP code: no input makes the parser (or the frame decoder) panic;
//! encoding then parsing gives the arguments back; and however the input is split into reads
//! (every single split point, and random chunkings) the parser yields the same requests and
//! the same error as when it sees the input whole.

use gossipkv_server::glob;
use gossipkv_server::resp::{Frame, Limits, Parser, ProtocolError};
use proptest::prelude::*;

type Requests = Vec<Vec<Vec<u8>>>;

/// Feeds `chunks` to a parser the way a connection does (keeping unconsumed bytes, parsing
/// after every read); returns the requests and the error that stopped it, if any.
fn feed<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    limits: Limits,
) -> (Requests, Option<ProtocolError>) {
    let mut p = Parser::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match p.parse(&buf) {
                Ok(Some(r)) => {
                    let n = r.consumed();
                    assert!(n > 0 && n <= buf.len(), "consumed {n} of {}", buf.len());
                    if !r.is_empty() {
                        out.push(r.to_vec());
                    }
                    buf.drain(..n);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn small_limits() -> Limits {
    Limits { max_bulk_len: 64, max_array_len: 8, max_inline_len: 40, max_request_len: 300 }
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48),
        proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), Just(b'*'), Just(0u8)],
            0..8
        ),
    ]
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(arg(), 1..7)
}

/// Inline commands whose tokens need no quoting (and do not start with `*`).
fn inline_command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let byte = prop_oneof![b'a'..=b'z', b'0'..=b'9', Just(b':'), Just(b'-'), Just(b'_')];
    proptest::collection::vec(proptest::collection::vec(byte, 1..6), 1..4)
}

/// Input that is mostly RESP-shaped, with damage, so fuzzing reaches deep states.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        command().prop_map(|c| Frame::command(c.iter()).to_vec()),
        inline_command().prop_map(|c| [c.join(&b' '), b"\r\n".to_vec()].concat()),
        proptest::collection::vec(any::<u8>(), 0..16),
        prop_oneof![
            Just(b"*".to_vec()),
            Just(b"$".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"99".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"'".to_vec()),
            Just(b"\\x4".to_vec()),
        ],
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|ps| ps.concat())
}

fn frame() -> impl Strategy<Value = Frame> {
    let line = proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..16,
    );
    let leaf = prop_oneof![
        line.clone().prop_map(|s| Frame::Simple(s.into())),
        line.prop_map(|s| Frame::Error(s.into())),
        any::<i64>().prop_map(Frame::Integer),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(|b| Frame::Bulk(b.into())),
        Just(Frame::Null),
        Just(Frame::NullArray),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(Frame::Array)
    })
}

/// Splits `input` into chunks at the given cut points (sorted, deduplicated, in range).
fn chunks(input: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|c| *c %= input.len() + 1);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        out.push(&input[prev..c]);
        prev = c;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let _ = feed([&input[..]], Limits::default());
        let _ = feed(chunks(&input, cuts), small_limits());
        let _ = Frame::decode(&input, &Limits::default());
        let _ = Frame::decode(&input, &small_limits());
    }

    #[test]
    fn resp_shaped_input_never_panics_and_split_reads_agree(input in resp_ish(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        for limits in [Limits::default(), small_limits()] {
            let whole = feed([&input[..]], limits);
            let split = feed(chunks(&input, cuts.clone()), limits);
            prop_assert_eq!(&whole, &split);
            let bytewise = feed(input.chunks(1), limits);
            prop_assert_eq!(&whole, &bytewise);
        }
        let _ = Frame::decode(&input, &small_limits());
    }

    #[test]
    fn encode_then_parse_round_trips(cmds in proptest::collection::vec(command(), 1..6)) {
        let mut wire = Vec::new();
        for c in &cmds {
            Frame::command(c.iter()).encode(&mut wire);
        }
        let (got, err) = feed([&wire[..]], Limits::default());
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, cmds);
    }

    #[test]
    fn every_split_point_yields_the_same_requests(
        cmds in proptest::collection::vec(prop_oneof![command().prop_map(|c| (c, false)), inline_command().prop_map(|c| (c, true))], 1..5),
    ) {
        let mut wire = Vec::new();
        for (c, inline) in &cmds {
            if *inline {
                wire.extend(c.join(&b' '));
                wire.extend(b"\r\n");
            } else {
                Frame::command(c.iter()).encode(&mut wire);
            }
        }
        let expected: Requests = cmds.into_iter().map(|(c, _)| c).collect();
        for i in 0..=wire.len() {
            let (got, err) = feed([&wire[..i], &wire[i..]], Limits::default());
            prop_assert_eq!(err, None);
            prop_assert_eq!(&got, &expected, "split at {}", i);
        }
    }

    #[test]
    fn frames_round_trip(f in frame()) {
        let bytes = f.to_vec();
        let got = Frame::decode(&bytes, &Limits::default());
        prop_assert_eq!(got, Ok(Some((f, bytes.len()))));
        for cut in 0..bytes.len() {
            prop_assert_eq!(Frame::decode(&bytes[..cut], &Limits::default()), Ok(None));
        }
    }

    #[test]
    fn glob_agrees_with_a_backtracking_reference(
        pattern in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'*'), Just(b'?'), Just(b'['), Just(b']'), Just(b'^'), Just(b'-'), Just(b'\\')], 0..9),
        key in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(b'-'), Just(b'*')], 0..10),
    ) {
        prop_assert_eq!(glob::matches(&pattern, &key), reference(&pattern, &key));
    }
}

/// Exponential-time glob matcher, obviously right, for small inputs.
fn reference(p: &[u8], k: &[u8]) -> bool {
    match p.first() {
        None => k.is_empty(),
        Some(b'*') => (0..=k.len()).any(|i| reference(&p[1..], &k[i..])),
        Some(b'?') => !k.is_empty() && reference(&p[1..], &k[1..]),
        Some(b'[') => match k.first() {
            None => false,
            Some(&b) => {
                let (hit, used) = reference_class(&p[1..], b);
                hit && reference(&p[1 + used..], &k[1..])
            }
        },
        Some(b'\\') if p.len() >= 2 => k.first() == Some(&p[1]) && reference(&p[2..], &k[1..]),
        Some(&c) => k.first() == Some(&c) && reference(&p[1..], &k[1..]),
    }
}

/// Class semantics as in Redis: `^` negates, `\x` escapes, `a-z` ranges (either order), an
/// unterminated class runs to the end. Returns (matched, bytes of pattern used).
fn reference_class(p: &[u8], b: u8) -> (bool, usize) {
    let mut i = 0;
    let negate = p.first() == Some(&b'^');
    if negate {
        i = 1;
    }
    let mut hit = false;
    while i < p.len() {
        if p[i] == b']' {
            return (hit != negate, i + 1);
        }
        if p[i] == b'\\' && i + 1 < p.len() {
            hit |= p[i + 1] == b;
            i += 2;
        } else if i + 2 < p.len() && p[i + 1] == b'-' {
            let (lo, hi) = (p[i].min(p[i + 2]), p[i].max(p[i + 2]));
            hit |= lo <= b && b <= hi;
            i += 3;
        } else {
            hit |= p[i] == b;
            i += 1;
        }
    }
    (hit != negate, i)
}
