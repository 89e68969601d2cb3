//! Authenticated gossip and hostile senders in the simulator (issue 5).
//!
//! With `auth` on, every node seals what it sends and opens what it receives with the same
//! envelope the real node uses (`gossipkv_core::gossip::auth`), so bytes and rejections are
//! the real ones. Hostile senders, at addresses that are not nodes, each send a few datagrams
//! to random nodes every round: random bytes, exact replays and bit-flipped copies of real
//! datagrams they overheard, and (with `auth`) well-formed `Entries` messages forging a write
//! with a huge timestamp, sealed with a wrong key or not sealed at all. If any forged write
//! were accepted it would win everywhere and the oracle would fail the run.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use gossipkv_core::Version;
use gossipkv_core::gossip::auth::{Auth, ClusterKey, Keyring, Limits, Reject};
use gossipkv_core::gossip::wire::{self, Body, Message, WireEntry};
use gossipkv_core::gossip::{Transport, auth};
use gossipkv_core::rng::Rng;
use serde::Serialize;

/// Bytes of a stream message the envelope accepts (the node's bulk limit).
const STREAM_LIMIT: usize = 64 * 1024 * 1024;

/// What hostile senders did and what became of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostileReport {
    /// Datagrams sent by hostile senders, by kind.
    pub sent: BTreeMap<String, u64>,
    /// Hostile datagrams a node accepted (opened, or decoded without auth).
    pub accepted: u64,
    /// Envelope rejections at nodes, by reason (hostile and real traffic alike).
    pub auth_rejected: BTreeMap<String, u64>,
}

/// The cluster's keyring: a key derived from the run's seed.
fn ring(seed: u64, salt: u64) -> Option<Keyring> {
    let mut r = Rng::new(seed ^ salt);
    let bytes: Vec<u8> = (0..32).map(|_| r.next_u64() as u8).collect();
    let key = ClusterKey::new(&bytes).ok()?;
    Keyring::new(auth::DEFAULT_CLUSTER_NAME, vec![key]).ok()
}

/// The envelope of node `id` in generation `generation`.
pub(crate) fn node_auth(seed: u64, id: u32, generation: u64, mtu: usize) -> Option<Auth> {
    let limits = Limits { datagram: mtu, stream: STREAM_LIMIT };
    ring(seed, 0x6b65_7921).map(|r| Auth::new(r, id, generation, limits))
}

/// The authenticated-data of a message: for streams, the sender's address (as the node does).
pub(crate) fn aad(stream: bool, from: std::net::SocketAddr) -> Vec<u8> {
    if stream { from.to_string().into_bytes() } else { Vec::new() }
}

/// The transport of a message.
pub(crate) fn transport(stream: bool) -> Transport {
    if stream { Transport::Stream } else { Transport::Datagram }
}

const KINDS: [&str; 5] = ["random_bytes", "replay", "bit_flip", "forged_wrong_key", "forged_plain"];

/// The hostile senders of a run.
pub(crate) struct Hostile {
    rng: Rng,
    captured: VecDeque<(u32, bool, Bytes)>,
    sent: [u64; 5],
    wrong: Option<Auth>,
    pub(crate) accepted: u64,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hostile").field("sent", &self.sent).finish()
    }
}

impl Hostile {
    pub(crate) fn new(seed: u64, mtu: usize) -> Self {
        let limits = Limits { datagram: mtu, stream: STREAM_LIMIT };
        let wrong = ring(seed, 0xbad_bad).map(|r| Auth::new(r, 7, 1, limits));
        Self {
            rng: Rng::new(seed ^ 0x0405_711e),
            captured: VecDeque::new(),
            sent: [0; 5],
            wrong,
            accepted: 0,
        }
    }

    /// Overhears a real message on its way to node `to` (keeps a sample of recent ones).
    pub(crate) fn overhear(&mut self, to: u32, stream: bool, payload: &Bytes) {
        if stream || !self.rng.chance(0.05) {
            return;
        }
        if self.captured.len() >= 256 {
            self.captured.pop_front();
        }
        self.captured.push_back((to, stream, payload.clone()));
    }

    /// One hostile sender's datagrams for this round: `(destination, payload)`. `forge` is
    /// the key bytes a forged write targets.
    pub(crate) fn attack(
        &mut self,
        nodes: usize,
        count: usize,
        forge: &[u8],
        sealed: bool,
    ) -> Vec<(u32, Bytes)> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let kinds = if sealed { 5 } else { 3 };
            let kind = self.rng.below(kinds) as usize;
            let random_to = self.rng.below(nodes as u64) as u32;
            let pick = (!self.captured.is_empty()).then(|| {
                self.captured[self.rng.below(self.captured.len() as u64) as usize].clone()
            });
            let msg = match (kind, pick) {
                (1, Some((to, _, p))) => Some((to, p)),
                (2, Some((to, _, p))) if !p.is_empty() => {
                    let mut v = p.to_vec();
                    let bit = self.rng.below(v.len() as u64 * 8) as usize;
                    v[bit / 8] ^= 1 << (bit % 8);
                    Some((to, Bytes::from(v)))
                }
                (3 | 4, _) => {
                    let entry = WireEntry {
                        key: Bytes::copy_from_slice(forge),
                        version: Version::put(u64::MAX / 2, 0, &b"FORGED"[..]),
                    };
                    let m = Message {
                        from: 0,
                        exchange: 1,
                        body: Body::Entries { entries: vec![entry].into() },
                    };
                    let plain = wire::encode(&m);
                    if kind == 3 {
                        self.wrong
                            .as_mut()
                            .and_then(|a| a.seal(Transport::Datagram, &[], &plain).ok())
                            .map(|s| (random_to, Bytes::from(s)))
                    } else {
                        Some((random_to, Bytes::from(plain)))
                    }
                }
                _ => None,
            };
            let (kind, msg) = match msg {
                Some(m) => (kind, m),
                None => {
                    let len = 1 + self.rng.below(1400) as usize;
                    let v: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
                    (0, (random_to, Bytes::from(v)))
                }
            };
            self.sent[kind] += 1;
            out.push(msg);
        }
        out
    }

    /// The report, given the nodes' envelope rejections by reason.
    pub(crate) fn report(&self, rejected: &[u64; Reject::COUNT]) -> HostileReport {
        HostileReport {
            sent: KINDS.iter().zip(self.sent).map(|(k, n)| ((*k).to_string(), n)).collect(),
            accepted: self.accepted,
            auth_rejected: Reject::ALL
                .iter()
                .map(|r| (r.name().to_string(), rejected[r.index()]))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}
