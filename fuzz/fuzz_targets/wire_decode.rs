//! The gossip datagram decoder (`gossipkv_core::gossip::wire::decode`) fed arbitrary bytes.
//! Checks:
//!
//! - it never panics (nor overflows: run.sh builds with debug assertions) and never allocates
//!   more than the input justifies (libFuzzer's `-rss_limit_mb` / `-malloc_limit_mb`);
//! - when it decodes, encoding the message and decoding that gives the same message, the
//!   encoding is canonical (encoding again gives the same bytes) and never longer than the
//!   input (varints minimal, the `Leaf` base the smallest timestamp);
//! - the format is prefix-free: a valid message less its last byte does not decode.

#![no_main]

use bytes::Bytes;
use gossipkv_core::gossip::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = Bytes::copy_from_slice(data);
    let Ok(msg) = wire::decode(&src) else { return };
    let enc = wire::encode(&msg);
    assert!(enc.len() <= data.len(), "re-encoding grew {} -> {}", data.len(), enc.len());
    let again = wire::decode(&Bytes::from(enc.clone())).expect("a re-encoded message decodes");
    assert_eq!(again, msg);
    assert_eq!(wire::encode(&again), enc, "encoding is not canonical");
    assert!(wire::decode(&src.slice(..src.len() - 1)).is_err(), "a proper prefix decoded");
});
