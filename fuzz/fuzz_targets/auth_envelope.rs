//! The authentication envelope (`gossipkv_core::gossip::auth`), the first code that reads
//! gossip bytes when a cluster key is set. Three senders (and one that reuses the receiver's
//! own id) seal messages with keys the receiver holds or not, restart with new or old
//! incarnations, and the fuzzer delivers their messages in any order, repeated, tampered with
//! (a byte changed, truncated, extended, other associated data, the other transport), or sends
//! raw bytes. Checked against a model of the replay guard:
//!
//! - `open` never panics (nor overflows: run.sh builds with debug assertions);
//! - nothing is accepted that was not sealed exactly so (same bytes, associated data and
//!   transport): no forgery, no tampering, and what opens is the message that was sealed;
//! - nothing is accepted twice (same sender, incarnation, transport and counter), nor from an
//!   incarnation older than one accepted, nor carrying the receiver's own id;
//! - a message delivered untampered and in order (counter above every one accepted from its
//!   sender on that transport, incarnation not older) under a key the receiver holds opens;
//! - every open is counted once, as opened or under exactly one rejection reason.

#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use bytes::Bytes;
use gossipkv_core::gossip::Transport;
use gossipkv_core::gossip::auth::{Auth, ClusterKey, Keyring, Limits, OVERHEAD, Reject};
use libfuzzer_sys::fuzz_target;

const RX_ID: u32 = 1;
/// Sender ids: three peers and one reflection of the receiver's own id.
const SENDER_IDS: [u32; 4] = [2, 3, 4, RX_ID];
const LIMITS: Limits = Limits { datagram: 256, stream: 2048 };

fn key(i: u8) -> ClusterKey {
    ClusterKey::new(&[0x40 + i; 32]).expect("32-byte key")
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// The receiver also holds key 1 (it always holds key 0; never key 2).
    rx_second_key: bool,
    /// Each sender's key (0, 1 or 2) and first incarnation.
    senders: [(u8, u8); 4],
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Seal { sender: u8, stream: bool, aad: Vec<u8>, msg: Vec<u8> },
    Deliver { pick: u8, tamper: Tamper },
    Raw { stream: bool, aad: Vec<u8>, bytes: Vec<u8> },
    Restart { sender: u8, incarnation: u8 },
}

#[derive(Arbitrary, Debug)]
enum Tamper {
    None,
    Flip(u16, u8),
    Truncate(u16),
    Append(u8),
    OtherAad(u8),
    OtherTransport,
}

struct Sealed {
    sender: u32,
    key: u8,
    incarnation: u64,
    counter: u64,
    stream: bool,
    aad: Vec<u8>,
    msg: Vec<u8>,
    bytes: Vec<u8>,
}

/// The replay guard's state per sender, as the documentation describes it.
#[derive(Default)]
struct Model {
    /// Newest incarnation accepted per sender.
    incarnation: HashMap<u32, u64>,
    /// Highest counter accepted per (sender, stream?) in that incarnation.
    top: HashMap<(u32, bool), u64>,
    /// Everything accepted: (sender, incarnation, stream?, counter).
    accepted: HashMap<(u32, u64, bool, u64), ()>,
}

fn transport(stream: bool) -> Transport {
    if stream { Transport::Stream } else { Transport::Datagram }
}

struct World {
    rx: Auth,
    rx_keys: Vec<u8>,
    tx: Vec<(Auth, u8)>,
    sealed: Vec<Sealed>,
    model: Model,
    opens: u64,
}

impl World {
    fn new(input: &Input) -> Self {
        let mut keys = vec![key(0)];
        let mut rx_keys = vec![0];
        if input.rx_second_key {
            keys.push(key(1));
            rx_keys.push(1);
        }
        let ring = Keyring::new("fuzz", keys).expect("keyring");
        let rx = Auth::new(ring, RX_ID, 1, LIMITS);
        let tx = SENDER_IDS
            .iter()
            .zip(input.senders)
            .map(|(&id, (k, inc))| (Self::sender(id, k % 3, u64::from(inc)), k % 3))
            .collect();
        Self { rx, rx_keys, tx, sealed: Vec::new(), model: Model::default(), opens: 0 }
    }

    fn sender(id: u32, k: u8, incarnation: u64) -> Auth {
        let ring = Keyring::new("fuzz", vec![key(k)]).expect("keyring");
        Auth::new(ring, id, incarnation, LIMITS)
    }

    /// Opens `bytes` at the receiver and checks the answer against the model. `original` is
    /// the sealed message these bytes are, untampered, if they are one.
    fn open(&mut self, stream: bool, aad: &[u8], bytes: &[u8], original: Option<usize>) {
        self.opens += 1;
        let got = self.rx.open(transport(stream), aad, &Bytes::copy_from_slice(bytes));
        let st = self.rx.stats();
        let counted = st.opened + Reject::ALL.iter().map(|r| st.rejected(*r)).sum::<u64>();
        assert_eq!(counted, self.opens, "every open is counted once");
        if bytes.len() > if stream { LIMITS.stream } else { LIMITS.datagram } {
            assert!(matches!(got, Err(ref e) if e.reason() == Reject::TooLarge), "{got:?}");
        }
        let Some(i) = original else {
            assert!(got.is_err(), "accepted bytes that were never sealed so: {bytes:?}");
            return;
        };
        let s = &self.sealed[i];
        let key = (s.sender, s.incarnation, s.stream, s.counter);
        let current = self.model.incarnation.get(&s.sender).copied();
        let top = if current == Some(s.incarnation) {
            self.model.top.get(&(s.sender, s.stream)).copied()
        } else {
            None
        };
        let must_refuse = s.sender == RX_ID
            || !self.rx_keys.contains(&s.key)
            || self.model.accepted.contains_key(&key)
            || current.is_some_and(|c| s.incarnation < c);
        let must_open = !must_refuse && top.is_none_or(|t| s.counter > t);
        match &got {
            Ok(msg) => {
                assert!(!must_refuse, "accepted a message it must refuse: {got:?}");
                assert_eq!(&msg[..], &s.msg[..], "opened to another message");
                self.model.accepted.insert(key, ());
                if current != Some(s.incarnation) {
                    self.model.incarnation.insert(s.sender, s.incarnation);
                    self.model.top.retain(|(id, _), _| *id != s.sender);
                }
                let t = self.model.top.entry((s.sender, s.stream)).or_insert(s.counter);
                *t = (*t).max(s.counter);
            }
            Err(e) => assert!(!must_open, "refused an in-order message: {e}"),
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Seal { sender, stream, aad, msg } => {
                let i = usize::from(*sender) % self.tx.len();
                let (tx, k) = &mut self.tx[i];
                let limit = if *stream { LIMITS.stream } else { LIMITS.datagram };
                match tx.seal(transport(*stream), aad, msg) {
                    Ok(bytes) => {
                        assert_eq!(bytes.len(), msg.len() + OVERHEAD);
                        let mut c = [0u8; 8];
                        c.copy_from_slice(&bytes[14..22]);
                        self.sealed.push(Sealed {
                            sender: tx.sender(),
                            key: *k,
                            incarnation: tx.incarnation(),
                            counter: u64::from_le_bytes(c),
                            stream: *stream,
                            aad: aad.clone(),
                            msg: msg.clone(),
                            bytes,
                        });
                    }
                    Err(e) => assert!(msg.len() + OVERHEAD > limit, "seal failed: {e}"),
                }
            }
            Step::Deliver { pick, tamper } => {
                if self.sealed.is_empty() {
                    return;
                }
                let i = usize::from(*pick) % self.sealed.len();
                let s = &self.sealed[i];
                let (mut bytes, mut aad, mut stream) = (s.bytes.clone(), s.aad.clone(), s.stream);
                match tamper {
                    Tamper::None => {}
                    Tamper::Flip(at, x) => {
                        let at = usize::from(*at) % bytes.len();
                        bytes[at] ^= x.max(&1);
                    }
                    Tamper::Truncate(n) => bytes.truncate(usize::from(*n) % bytes.len()),
                    Tamper::Append(b) => bytes.push(*b),
                    Tamper::OtherAad(b) => aad.push(*b),
                    Tamper::OtherTransport => stream = !stream,
                }
                let untampered = matches!(tamper, Tamper::None);
                self.open(stream, &aad, &bytes, untampered.then_some(i));
            }
            Step::Raw { stream, aad, bytes } => {
                // the fuzzer cannot know a MAC; but if these happen to be sealed bytes, say so
                let same = self
                    .sealed
                    .iter()
                    .position(|s| s.bytes == *bytes && s.aad == *aad && s.stream == *stream);
                self.open(*stream, aad, bytes, same);
            }
            Step::Restart { sender, incarnation } => {
                let i = usize::from(*sender) % self.tx.len();
                let (old, k) = &self.tx[i];
                let fresh = Self::sender(old.sender(), *k, u64::from(*incarnation));
                self.tx[i].0 = fresh;
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mut w = World::new(&input);
    for s in input.steps.iter().take(300) {
        w.step(s);
    }
});
