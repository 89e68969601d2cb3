//! Authenticated gossip: the envelope that seals every gossip message (datagram or stream)
//! with a shared cluster key, and opens — or rejects, with a reason — every message received.
//!
//! This module owns the cluster's keyring (one primary key that seals, several that open, so
//! keys rotate without a flag day, like memberlist's keyring), the binding of the cluster name
//! into every MAC, and the replay guard (a sliding window per sender, over a bounded number of
//! senders). It is sans-IO like the rest of the core: the sender's incarnation is an input
//! (the node driver passes its boot time), and nothing here reads a clock or a global RNG.
//!
//! Without a keyring the envelope is off and a driver sends the node's bytes as they are
//! (that costs nothing: the driver holds an `Option<Auth>`).
//!
//! # Envelope (docs/protocol.md, "Authentication envelope")
//!
//! ```text
//! sealed := version u8 (0xA1) | key_id u8 | sender u32 | incarnation u64 | counter u64   (22 B)
//!           | message | tag (16 B)
//! tag    := HMAC-SHA256(K, header | transport u8 | aad_len u64 | aad | message)[..16]
//! K      := HMAC-SHA256(cluster_key, "gossipkv auth v1\0" | cluster_name)
//! key_id := SHA-256("gossipkv key id v1\0" | cluster_key)[0]
//! ```
//!
//! Integers are little-endian. `transport` is 0 for a datagram and 1 for a stream message,
//! and `aad` is data the receiver knows without it being in the envelope (the node driver
//! binds a stream message to the gossip address its frame claims). [`OVERHEAD`] = 38 bytes.
//!
//! # Opening, in order (the first failure is the reason)
//!
//! 1. size: larger than the transport's limit → [`Reject::TooLarge`]; shorter than the
//!    envelope, another version byte (an unsealed message starts with `g`), or a counter of
//!    `u64::MAX` → [`Reject::Malformed`];
//! 2. key id not in the keyring → [`Reject::UnknownKey`];
//! 3. MAC mismatch (forged, tampered, other cluster name or key) → [`Reject::BadMac`];
//! 4. only now, with the sender authenticated, the replay guard: an incarnation older than the
//!    sender's current one → [`Reject::StaleIncarnation`]; a counter already accepted, older
//!    than the window, or carrying our own sender id → [`Reject::Replayed`].
//!
//! Nothing about a sender is remembered before its MAC verified, so datagrams forged without
//! the key cannot grow memory. Authenticated senders are tracked up to `max_senders`; past it
//! the least recently heard one is forgotten (counted in [`AuthStats::evicted`]).

use bytes::Bytes;
use hashbrown::HashMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::gossip::node::Transport;
use crate::lww::NodeId;

type HmacSha256 = Hmac<Sha256>;

/// First byte of every sealed message (an unsealed gossip message starts with `g`, 0x67).
pub const ENVELOPE_VERSION: u8 = 0xA1;
/// Bytes before the message: version, key id, sender, incarnation, counter.
pub const HEADER_LEN: usize = 1 + 1 + 4 + 8 + 8;
/// Bytes of the (truncated) HMAC-SHA256 tag after the message.
pub const TAG_LEN: usize = 16;
/// Bytes the envelope adds to every message: 38.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Shortest cluster key accepted, in bytes (128 bits).
pub const MIN_KEY_LEN: usize = 16;
/// Longest cluster key accepted, in bytes (one SHA-256 block).
pub const MAX_KEY_LEN: usize = 64;
/// Most keys a keyring holds at once.
pub const MAX_KEYS: usize = 16;
/// Longest cluster name, in bytes.
pub const MAX_CLUSTER_NAME: usize = 255;
/// Cluster name used when a key is configured without a name.
pub const DEFAULT_CLUSTER_NAME: &str = "gossipkv";
/// Width of each sender's replay window, in counter values: a message may arrive up to this
/// many of its sender's messages late (messages to other peers count too) and still open.
pub const WINDOW: u64 = 1024;
/// Senders the replay guard tracks by default (about 300 bytes each).
pub const DEFAULT_MAX_SENDERS: usize = 4096;

const WINDOW_WORDS: usize = (WINDOW / 64) as usize;
const KDF_LABEL: &[u8] = b"gossipkv auth v1\0";
const KEY_ID_LABEL: &[u8] = b"gossipkv key id v1\0";

/// The largest message a node may hand to [`Auth::seal`] so that the sealed datagram still
/// fits in `mtu` bytes: the node driver configures the gossip node with this MTU.
pub const fn payload_mtu(mtu: usize) -> usize {
    mtu.saturating_sub(OVERHEAD)
}

/// Why a cluster key or keyring was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key's length is outside `MIN_KEY_LEN..=MAX_KEY_LEN` bytes.
    #[error("a cluster key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes, got {0}")]
    Length(usize),
    /// The key is not a string of hex digits of even length.
    #[error("a cluster key must be hex digits (two per byte): {0}")]
    Hex(&'static str),
    /// A keyring needs at least one key.
    #[error("no cluster key given")]
    Empty,
    /// More than `MAX_KEYS` keys.
    #[error("a keyring holds at most {MAX_KEYS} keys")]
    TooManyKeys,
    /// The cluster name is longer than `MAX_CLUSTER_NAME` bytes.
    #[error("a cluster name is at most {MAX_CLUSTER_NAME} bytes, got {0}")]
    ClusterName(usize),
    /// The key is not in the keyring.
    #[error("key {0:#04x} is not in the keyring")]
    NotInstalled(u8),
    /// The primary key cannot be removed (make another key primary first).
    #[error("key {0:#04x} is the primary key: make another key primary before removing it")]
    RemovePrimary(u8),
}

/// A shared cluster secret. Its `Debug` shows only its key id, never the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey {
    bytes: Box<[u8]>,
}

impl ClusterKey {
    /// A key from raw bytes (`MIN_KEY_LEN..=MAX_KEY_LEN` of them; 32 random bytes is usual).
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            return Err(KeyError::Length(bytes.len()));
        }
        Ok(Self { bytes: bytes.into() })
    }

    /// A key from hex digits (e.g. the output of `openssl rand -hex 32`); surrounding
    /// whitespace is ignored.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        let hex = hex.trim().as_bytes();
        if !hex.len().is_multiple_of(2) {
            return Err(KeyError::Hex("odd number of digits"));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(KeyError::Hex("not a hex digit")),
        };
        let bytes = hex
            .chunks_exact(2)
            .map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?))
            .collect::<Result<Vec<u8>, KeyError>>()?;
        Self::new(&bytes)
    }

    /// The key's one-byte id, sent in clear so a receiver knows which key to try:
    /// `SHA-256("gossipkv key id v1\0" | key)[0]`. Two keys may share an id (then both are
    /// tried); the id says nothing useful about the key.
    pub fn id(&self) -> u8 {
        let mut h = Sha256::new();
        h.update(KEY_ID_LABEL);
        h.update(&self.bytes);
        h.finalize()[0]
    }

    /// The key's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a key has at least `MIN_KEY_LEN` bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey(id {:#04x}, {} bytes)", self.id(), self.len())
    }
}

/// Parses a comma-separated list of hex keys (the first is the primary).
pub fn parse_keys(list: &str) -> Result<Vec<ClusterKey>, KeyError> {
    list.split(',').map(ClusterKey::from_hex).collect()
}

#[derive(Clone)]
struct Slot {
    key: ClusterKey,
    id: u8,
    /// HMAC keyed with this key's MAC key for the cluster name, ready to be cloned per
    /// message (saves the two key-block compressions of HMAC on every message).
    mac: HmacSha256,
}

impl Slot {
    fn new(key: ClusterKey, cluster: &str) -> Result<Self, KeyError> {
        let mut kdf =
            HmacSha256::new_from_slice(&key.bytes).map_err(|_| KeyError::Length(key.len()))?;
        kdf.update(KDF_LABEL);
        kdf.update(cluster.as_bytes());
        let derived = kdf.finalize().into_bytes();
        let mac = HmacSha256::new_from_slice(&derived).map_err(|_| KeyError::Length(key.len()))?;
        Ok(Self { id: key.id(), key, mac })
    }
}

/// The cluster name and the keys: the first (primary) seals, every key opens.
///
/// Rotation, as with memberlist: [`install`](Self::install) the new key on every node, then
/// [`use_key`](Self::use_key) it on every node, then [`remove`](Self::remove) the old one.
/// Between the steps every node opens what any other seals.
#[derive(Clone)]
pub struct Keyring {
    cluster: String,
    slots: Vec<Slot>,
}

impl Keyring {
    /// A keyring for cluster `cluster_name` holding `keys`; the first is the primary.
    pub fn new(cluster_name: &str, keys: Vec<ClusterKey>) -> Result<Self, KeyError> {
        if cluster_name.len() > MAX_CLUSTER_NAME {
            return Err(KeyError::ClusterName(cluster_name.len()));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut ring = Self { cluster: cluster_name.to_string(), slots: Vec::new() };
        for k in keys {
            ring.install(k)?;
        }
        Ok(ring)
    }

    /// The cluster name bound into every MAC.
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// The primary key (the one that seals).
    pub fn primary(&self) -> Option<&ClusterKey> {
        self.slots.first().map(|s| &s.key)
    }

    /// Ids of the keys held, primary first.
    pub fn key_ids(&self) -> Vec<u8> {
        self.slots.iter().map(|s| s.id).collect()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the keyring holds no key (never true for a keyring built by [`Self::new`]).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `key` is in the keyring.
    pub fn contains(&self, key: &ClusterKey) -> bool {
        self.slots.iter().any(|s| s.key == *key)
    }

    /// Adds `key` as a secondary key (accepted to open); the primary of an empty keyring.
    /// Installing a key already held changes nothing.
    pub fn install(&mut self, key: ClusterKey) -> Result<(), KeyError> {
        if self.contains(&key) {
            return Ok(());
        }
        if self.slots.len() >= MAX_KEYS {
            return Err(KeyError::TooManyKeys);
        }
        self.slots.push(Slot::new(key, &self.cluster)?);
        Ok(())
    }

    /// Makes an installed key the primary: from now on it seals.
    pub fn use_key(&mut self, key: &ClusterKey) -> Result<(), KeyError> {
        let i = self
            .slots
            .iter()
            .position(|s| s.key == *key)
            .ok_or_else(|| KeyError::NotInstalled(key.id()))?;
        let slot = self.slots.remove(i);
        self.slots.insert(0, slot);
        Ok(())
    }

    /// Removes a secondary key: messages sealed with it no longer open.
    pub fn remove(&mut self, key: &ClusterKey) -> Result<(), KeyError> {
        match self.slots.iter().position(|s| s.key == *key) {
            None => Err(KeyError::NotInstalled(key.id())),
            Some(0) => Err(KeyError::RemovePrimary(key.id())),
            Some(i) => {
                self.slots.remove(i);
                Ok(())
            }
        }
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("cluster", &self.cluster)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// The kinds of rejection, each with its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Not a sealed message: too short, wrong version byte, counter out of range.
    Malformed,
    /// Larger than the transport's limit (checked before any MAC work).
    TooLarge,
    /// Sealed with a key id the keyring does not hold (another cluster, or a removed key).
    UnknownKey,
    /// The MAC did not verify: forged, tampered, or from another cluster (name or key).
    BadMac,
    /// Authentic but from an older incarnation of its sender than one already heard from.
    StaleIncarnation,
    /// Authentic but already accepted, older than the window, or carrying our own sender id.
    Replayed,
}

impl Reject {
    /// Number of kinds.
    pub const COUNT: usize = 6;
    /// Every kind, in counter-index order.
    pub const ALL: [Reject; Self::COUNT] = [
        Reject::Malformed,
        Reject::TooLarge,
        Reject::UnknownKey,
        Reject::BadMac,
        Reject::StaleIncarnation,
        Reject::Replayed,
    ];

    /// The kind's index into counter arrays ([`AuthStats::rejected`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// A snake_case name for counters and INFO fields.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::TooLarge => "too_large",
            Reject::UnknownKey => "unknown_key",
            Reject::BadMac => "bad_mac",
            Reject::StaleIncarnation => "stale_incarnation",
            Reject::Replayed => "replayed",
        }
    }
}

/// Why a received message was refused by [`Auth::open`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    /// Not a sealed message.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// Larger than the transport's limit.
    #[error("sealed message of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit for its transport.
        limit: usize,
    },
    /// Key id not in the keyring.
    #[error("sealed with key id {0:#04x}, which is not in the keyring")]
    UnknownKey(u8),
    /// The MAC did not verify.
    #[error("bad MAC: forged, tampered, or from another cluster (name or key)")]
    BadMac,
    /// An older incarnation of a sender than one already heard from.
    #[error("sender {sender}: incarnation {got} is older than its current {current}")]
    StaleIncarnation {
        /// Sender id.
        sender: NodeId,
        /// Incarnation in the message.
        got: u64,
        /// Newest incarnation accepted from that sender.
        current: u64,
    },
    /// A counter already accepted or older than the window.
    #[error("sender {sender}: counter {counter} replayed or older than the window")]
    Replayed {
        /// Sender id.
        sender: NodeId,
        /// Counter in the message.
        counter: u64,
    },
    /// Carries our own sender id: our own traffic reflected back (or a node configured with
    /// our id).
    #[error("carries our own sender id {0}: a reflection of our own traffic")]
    OwnSender(NodeId),
}

impl AuthError {
    /// The counter this rejection goes to.
    pub fn reason(&self) -> Reject {
        match self {
            AuthError::Malformed(_) => Reject::Malformed,
            AuthError::TooLarge { .. } => Reject::TooLarge,
            AuthError::UnknownKey(_) => Reject::UnknownKey,
            AuthError::BadMac => Reject::BadMac,
            AuthError::StaleIncarnation { .. } => Reject::StaleIncarnation,
            AuthError::Replayed { .. } | AuthError::OwnSender(_) => Reject::Replayed,
        }
    }
}

/// Why [`Auth::seal`] could not seal a message (a bug of the caller, not an attack).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SealError {
    /// The sealed message would exceed the transport's limit.
    #[error("sealed message of {len} bytes would exceed the {limit}-byte limit")]
    TooLarge {
        /// Bytes the sealed message would take.
        len: usize,
        /// The limit for its transport.
        limit: usize,
    },
    /// This incarnation sent 2^64 - 1 messages on the transport: restart with a new one.
    #[error("message counter exhausted: start a new incarnation")]
    Exhausted,
    /// The keyring holds no key.
    #[error("no key to seal with")]
    NoKey,
}

/// Largest sealed message per transport, checked when sealing and when opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Datagrams: the MTU (a sealed datagram never exceeds it).
    pub datagram: usize,
    /// Stream messages.
    pub stream: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { datagram: 1400, stream: 64 * 1024 * 1024 }
    }
}

impl Limits {
    fn of(&self, t: Transport) -> usize {
        match t {
            Transport::Datagram => self.datagram,
            Transport::Stream => self.stream,
        }
    }
}

/// Counters of the envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Messages sealed.
    pub sealed: u64,
    /// Messages opened (authentic and fresh).
    pub opened: u64,
    /// Messages refused, by [`Reject::index`].
    pub rejected: [u64; Reject::COUNT],
    /// Senders forgotten to keep the replay guard within `max_senders`.
    pub evicted: u64,
}

impl AuthStats {
    /// Messages refused for `why`.
    pub fn rejected(&self, why: Reject) -> u64 {
        self.rejected[why.index()]
    }

    /// Messages refused, all kinds.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

fn transport_index(t: Transport) -> usize {
    match t {
        Transport::Datagram => 0,
        Transport::Stream => 1,
    }
}

/// The counters of one sender's messages on one transport accepted within the window.
#[derive(Clone, Debug)]
struct Window {
    /// One past the highest counter accepted (0: none yet).
    top: u64,
    /// Bit `c % WINDOW` is set when counter `c` (within the window) was accepted.
    bits: [u64; WINDOW_WORDS],
}

impl Window {
    const EMPTY: Window = Window { top: 0, bits: [0; WINDOW_WORDS] };

    fn slot(c: u64) -> (usize, u64) {
        let i = c % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Whether counter `c` may be accepted.
    fn fresh(&self, c: u64) -> bool {
        if c >= self.top {
            return true;
        }
        if self.top - c > WINDOW {
            return false;
        }
        let (w, b) = Self::slot(c);
        self.bits.get(w).is_some_and(|word| word & b == 0)
    }

    /// Records counter `c` (which [`Self::fresh`] accepted; `c < u64::MAX`).
    fn accept(&mut self, c: u64) {
        if c >= self.top {
            let advance = c - self.top + 1;
            if advance >= WINDOW {
                self.bits = [0; WINDOW_WORDS];
            } else {
                // the counters entering the window reuse the bits of those leaving it
                for k in self.top..=c {
                    let (w, b) = Self::slot(k);
                    if let Some(word) = self.bits.get_mut(w) {
                        *word &= !b;
                    }
                }
            }
            self.top = c + 1;
        }
        let (w, b) = Self::slot(c);
        if let Some(word) = self.bits.get_mut(w) {
            *word |= b;
        }
    }
}

#[derive(Clone, Debug)]
struct SenderState {
    incarnation: u64,
    /// Logical time of the last message accepted from it (for eviction).
    last_used: u64,
    windows: [Window; 2],
}

/// One node's envelope: seals what it sends, opens what it receives. Owned by the driver
/// next to the gossip `Node`.
pub struct Auth {
    ring: Keyring,
    sender: NodeId,
    incarnation: u64,
    /// Next counter per transport.
    next: [u64; 2],
    limits: Limits,
    senders: HashMap<NodeId, SenderState>,
    max_senders: usize,
    tick: u64,
    stats: AuthStats,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("ring", &self.ring)
            .field("sender", &self.sender)
            .field("incarnation", &self.incarnation)
            .field("tracked_senders", &self.senders.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Auth {
    /// An envelope for node `sender` in its `incarnation`. The incarnation must grow across
    /// restarts of the same node id (the node driver uses its start time in milliseconds):
    /// peers reject an older incarnation than one they heard, which is what stops replays of
    /// a previous run's messages. Tracks up to [`DEFAULT_MAX_SENDERS`] senders.
    pub fn new(ring: Keyring, sender: NodeId, incarnation: u64, limits: Limits) -> Self {
        Self {
            ring,
            sender,
            incarnation,
            next: [0; 2],
            limits,
            senders: HashMap::new(),
            max_senders: DEFAULT_MAX_SENDERS,
            tick: 0,
            stats: AuthStats::default(),
        }
    }

    /// Sets how many senders the replay guard tracks at most (at least 1).
    pub fn with_max_senders(mut self, max: usize) -> Self {
        self.max_senders = max.max(1);
        self
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.ring
    }

    /// The keyring, to rotate keys while running.
    pub fn keyring_mut(&mut self) -> &mut Keyring {
        &mut self.ring
    }

    /// The counters.
    pub fn stats(&self) -> &AuthStats {
        &self.stats
    }

    /// Senders the replay guard currently remembers.
    pub fn tracked_senders(&self) -> usize {
        self.senders.len()
    }

    /// This node's sender id.
    pub fn sender(&self) -> NodeId {
        self.sender
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The size limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn mac(
        mac: &HmacSha256,
        header: &[u8],
        transport: Transport,
        aad: &[u8],
        message: &[u8],
    ) -> HmacSha256 {
        let mut m = mac.clone();
        m.update(header);
        m.update(&[transport_index(transport) as u8]);
        m.update(&(aad.len() as u64).to_le_bytes());
        m.update(aad);
        m.update(message);
        m
    }

    /// Seals `message` for `transport` with the primary key, binding `aad` (which the
    /// receiver must pass to [`Self::open`] too; empty for datagrams).
    pub fn seal(
        &mut self,
        transport: Transport,
        aad: &[u8],
        message: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let len = message.len().saturating_add(OVERHEAD);
        let limit = self.limits.of(transport);
        if len > limit {
            return Err(SealError::TooLarge { len, limit });
        }
        let t = transport_index(transport);
        let counter = self.next[t];
        if counter == u64::MAX {
            return Err(SealError::Exhausted);
        }
        let slot = self.ring.slots.first().ok_or(SealError::NoKey)?;
        let mut out = Vec::with_capacity(len);
        out.push(ENVELOPE_VERSION);
        out.push(slot.id);
        out.extend_from_slice(&self.sender.to_le_bytes());
        out.extend_from_slice(&self.incarnation.to_le_bytes());
        out.extend_from_slice(&counter.to_le_bytes());
        let tag = Self::mac(&slot.mac, &out, transport, aad, message).finalize().into_bytes();
        out.extend_from_slice(message);
        out.extend_from_slice(&tag[..TAG_LEN]);
        self.next[t] = counter + 1;
        self.stats.sealed += 1;
        Ok(out)
    }

    /// Opens a sealed message received on `transport` with `aad` (as given to
    /// [`Self::seal`]); returns the message inside (a slice of `sealed`, no copy). Every
    /// refusal is counted by kind.
    pub fn open(
        &mut self,
        transport: Transport,
        aad: &[u8],
        sealed: &Bytes,
    ) -> Result<Bytes, AuthError> {
        let r = self.open_inner(transport, aad, sealed);
        match &r {
            Ok(_) => self.stats.opened += 1,
            Err(e) => self.stats.rejected[e.reason().index()] += 1,
        }
        r
    }

    fn open_inner(
        &mut self,
        transport: Transport,
        aad: &[u8],
        sealed: &Bytes,
    ) -> Result<Bytes, AuthError> {
        let len = sealed.len();
        let limit = self.limits.of(transport);
        if len > limit {
            return Err(AuthError::TooLarge { len, limit });
        }
        if len < OVERHEAD {
            return Err(AuthError::Malformed("shorter than the envelope"));
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (message, tag) = rest.split_at(rest.len() - TAG_LEN);
        let field = |range: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            if let (Some(dst), Some(src)) = (b.get_mut(..range.len()), header.get(range)) {
                dst.copy_from_slice(src);
            }
            u64::from_le_bytes(b)
        };
        if header[0] != ENVELOPE_VERSION {
            return Err(AuthError::Malformed("not a sealed message (version byte)"));
        }
        let key_id = header[1];
        let sender = field(2..6) as NodeId;
        let incarnation = field(6..14);
        let counter = field(14..22);
        if counter == u64::MAX {
            return Err(AuthError::Malformed("counter out of range"));
        }
        let mut known = false;
        let mut verified = false;
        for slot in self.ring.slots.iter().filter(|s| s.id == key_id) {
            known = true;
            if Self::mac(&slot.mac, header, transport, aad, message)
                .verify_truncated_left(tag)
                .is_ok()
            {
                verified = true;
                break;
            }
        }
        if !known {
            return Err(AuthError::UnknownKey(key_id));
        }
        if !verified {
            return Err(AuthError::BadMac);
        }
        // Authentic from here on: only now may the sender cost memory.
        self.check_fresh(transport, sender, incarnation, counter)?;
        Ok(sealed.slice(HEADER_LEN..len - TAG_LEN))
    }

    fn check_fresh(
        &mut self,
        transport: Transport,
        sender: NodeId,
        incarnation: u64,
        counter: u64,
    ) -> Result<(), AuthError> {
        if sender == self.sender {
            return Err(AuthError::OwnSender(sender));
        }
        let t = transport_index(transport);
        self.tick += 1;
        let tick = self.tick;
        if let Some(s) = self.senders.get_mut(&sender) {
            if incarnation < s.incarnation {
                return Err(AuthError::StaleIncarnation {
                    sender,
                    got: incarnation,
                    current: s.incarnation,
                });
            }
            if incarnation > s.incarnation {
                // the sender restarted: a new counter space
                s.incarnation = incarnation;
                s.windows = [Window::EMPTY, Window::EMPTY];
            }
            if !s.windows[t].fresh(counter) {
                return Err(AuthError::Replayed { sender, counter });
            }
            s.windows[t].accept(counter);
            s.last_used = tick;
            return Ok(());
        }
        if self.senders.len() >= self.max_senders {
            let oldest = self.senders.iter().min_by_key(|(_, s)| s.last_used).map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.senders.remove(&id);
                self.stats.evicted += 1;
            }
        }
        let mut s =
            SenderState { incarnation, last_used: tick, windows: [Window::EMPTY, Window::EMPTY] };
        s.windows[t].accept(counter);
        self.senders.insert(sender, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: Transport = Transport::Datagram;
    const S: Transport = Transport::Stream;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::new(&[b; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ring(name: &str, keys: &[u8]) -> Keyring {
        Keyring::new(name, keys.iter().map(|&b| key(b)).collect()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn auth(id: NodeId, keys: &[u8]) -> Auth {
        Auth::new(ring("prod", keys), id, 1_000, Limits::default())
    }

    fn seal(a: &mut Auth, t: Transport, msg: &[u8]) -> Bytes {
        Bytes::from(a.seal(t, b"", msg).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn round_trip_datagram_and_stream() {
        let mut a = auth(1, &[7]);
        let mut b = auth(2, &[7]);
        let msg = b"gK\x01\x01hello";
        let s = seal(&mut a, D, msg);
        assert_eq!(s.len(), msg.len() + OVERHEAD);
        assert_eq!(b.open(D, b"", &s).as_deref(), Ok(&msg[..]));
        let s = Bytes::from(a.seal(S, b"127.0.0.1:1", msg).unwrap_or_default());
        assert_eq!(b.open(S, b"127.0.0.1:1", &s).as_deref(), Ok(&msg[..]));
        // the empty message seals too
        let s = seal(&mut a, D, b"");
        assert_eq!(b.open(D, b"", &s).as_deref(), Ok(&b""[..]));
        assert_eq!(b.stats().opened, 3);
        assert_eq!(a.stats().sealed, 3);
        assert_eq!(OVERHEAD, 38);
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let mut a = auth(1, &[7, 8]);
        let s = seal(&mut a, D, b"a gossip message of some length");
        for bit in 0..s.len() * 8 {
            let mut b = auth(2, &[7, 8]);
            let mut v = s.to_vec();
            v[bit / 8] ^= 1 << (bit % 8);
            assert!(b.open(D, b"", &Bytes::from(v)).is_err(), "bit {bit} accepted");
            assert_eq!(b.tracked_senders(), 0);
        }
        // and the original still opens
        let mut b = auth(2, &[7, 8]);
        assert!(b.open(D, b"", &s).is_ok());
    }

    #[test]
    fn wrong_key_and_wrong_cluster_rejected() {
        let mut a = auth(1, &[7]);
        let s = seal(&mut a, D, b"hello");
        let mut other_key = auth(2, &[9]);
        assert_eq!(other_key.open(D, b"", &s).map_err(|e| e.reason()), Err(Reject::UnknownKey));
        let mut other_cluster = Auth::new(ring("staging", &[7]), 2, 5, Limits::default());
        assert_eq!(other_cluster.open(D, b"", &s), Err(AuthError::BadMac));
        assert_eq!(other_cluster.stats().rejected(Reject::BadMac), 1);
        // the same bytes on the other transport, or with another aad, do not open either
        let mut b = auth(2, &[7]);
        assert_eq!(b.open(S, b"", &s), Err(AuthError::BadMac));
        assert_eq!(b.open(D, b"x", &s), Err(AuthError::BadMac));
        assert_eq!(b.open(D, b"", &s).map(|m| m.len()), Ok(5));
    }

    #[test]
    fn replay_of_an_accepted_message_is_rejected() {
        let mut a = auth(1, &[7]);
        let mut b = auth(2, &[7]);
        let s1 = seal(&mut a, D, b"one");
        let s2 = seal(&mut a, D, b"two");
        // out of order within the window: both accepted, once
        assert!(b.open(D, b"", &s2).is_ok());
        assert!(b.open(D, b"", &s1).is_ok());
        assert_eq!(b.open(D, b"", &s1), Err(AuthError::Replayed { sender: 1, counter: 0 }));
        assert_eq!(b.open(D, b"", &s2), Err(AuthError::Replayed { sender: 1, counter: 1 }));
        assert_eq!(b.open(D, b"", &s1), Err(AuthError::Replayed { sender: 1, counter: 0 }));
        assert_eq!(b.stats().rejected(Reject::Replayed), 3);
        // datagram and stream counters are separate spaces
        let st = Bytes::from(a.seal(S, b"", b"bulk").unwrap_or_default());
        assert!(b.open(S, b"", &st).is_ok());
        assert!(b.open(S, b"", &st).is_err());
    }

    #[test]
    fn replay_outside_the_window_is_rejected() {
        let mut a = auth(1, &[7]);
        let mut b = auth(2, &[7]);
        let old = seal(&mut a, D, b"old");
        let late = (1..WINDOW).map(|_| seal(&mut a, D, b"x")).collect::<Vec<_>>();
        let newest = seal(&mut a, D, b"newest");
        // newest first: `old` is now WINDOW behind, outside the window, never seen
        assert!(b.open(D, b"", &newest).is_ok());
        assert_eq!(b.open(D, b"", &old), Err(AuthError::Replayed { sender: 1, counter: 0 }));
        // the others are exactly inside the window: accepted once each
        for s in &late {
            assert!(b.open(D, b"", s).is_ok());
        }
        for s in &late {
            assert!(b.open(D, b"", s).is_err());
        }
        assert_eq!(b.stats().opened, WINDOW);
    }

    #[test]
    fn window_slides_and_forgets_correctly() {
        let mut w = Window::EMPTY;
        for c in [0u64, 5, 3, 1500, 1499, 700] {
            assert!(w.fresh(c), "{c}");
            w.accept(c);
            assert!(!w.fresh(c), "{c} twice");
        }
        // the window is [top - WINDOW, top) = [477, 1501)
        assert!(!w.fresh(5), "far behind the top");
        assert!(w.fresh(477), "inside the window, not seen");
        assert!(!w.fresh(476), "just outside");
        // 1724 reuses 700's bit: 700 leaves the window as 1724 enters
        w.accept(1724);
        assert!(!w.fresh(700) && !w.fresh(1724));
        assert!(w.fresh(1723) && w.fresh(701));
    }

    #[test]
    fn older_incarnation_is_rejected_newer_resets() {
        let mut b = auth(2, &[7]);
        let mut old = Auth::new(ring("prod", &[7]), 1, 100, Limits::default());
        let mut new = Auth::new(ring("prod", &[7]), 1, 200, Limits::default());
        let o = seal(&mut old, D, b"before restart");
        let n = seal(&mut new, D, b"after restart");
        assert!(b.open(D, b"", &o).is_ok());
        // counter 0 again, newer incarnation: accepted
        assert!(b.open(D, b"", &n).is_ok());
        let o2 = seal(&mut old, D, b"before restart 2");
        assert_eq!(
            b.open(D, b"", &o2),
            Err(AuthError::StaleIncarnation { sender: 1, got: 100, current: 200 })
        );
        assert_eq!(b.open(D, b"", &o).map_err(|e| e.reason()), Err(Reject::StaleIncarnation));
    }

    #[test]
    fn own_sender_id_rejected() {
        let mut a = auth(1, &[7]);
        let s = seal(&mut a, D, b"me");
        assert_eq!(a.open(D, b"", &s), Err(AuthError::OwnSender(1)));
        assert_eq!(a.stats().rejected(Reject::Replayed), 1);
    }

    #[test]
    fn key_rotation() {
        let mut old_node = auth(1, &[7]);
        let sealed_old = seal(&mut old_node, D, b"sealed with the old key");
        let mut b = auth(2, &[7]);
        // step 1: install the new key everywhere; still seals with the old
        b.keyring_mut().install(key(8)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.keyring().key_ids(), vec![key(7).id(), key(8).id()]);
        // step 2: make the new key primary; old messages still open
        b.keyring_mut().use_key(&key(8)).unwrap_or_else(|e| panic!("{e}"));
        assert!(b.open(D, b"", &sealed_old).is_ok());
        let mut c = auth(3, &[7]);
        let s = seal(&mut b, D, b"sealed with the new key");
        assert_eq!(c.open(D, b"", &s).map_err(|e| e.reason()), Err(Reject::UnknownKey));
        c.keyring_mut().install(key(8)).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.open(D, b"", &s).is_ok());
        // step 3: remove the old key: a fresh message sealed with it no longer opens
        assert_eq!(b.keyring_mut().remove(&key(8)), Err(KeyError::RemovePrimary(key(8).id())));
        b.keyring_mut().remove(&key(7)).unwrap_or_else(|e| panic!("{e}"));
        let late_old = seal(&mut old_node, D, b"still the old key");
        assert_eq!(b.open(D, b"", &late_old), Err(AuthError::UnknownKey(key(7).id())));
        assert_eq!(b.keyring_mut().remove(&key(7)), Err(KeyError::NotInstalled(key(7).id())));
    }

    #[test]
    fn keys_sharing_an_id_are_both_tried() {
        // find two keys with the same one-byte id
        let mut by_id: HashMap<u8, u8> = HashMap::new();
        let (k1, k2) = (0..=255u8)
            .find_map(|b| by_id.insert(key(b).id(), b).map(|prev| (prev, b)))
            .unwrap_or_else(|| panic!("256 keys over 256 ids: the pigeonhole says otherwise"));
        let mut a = auth(1, &[k2]);
        let s = seal(&mut a, D, b"x");
        let mut b = auth(2, &[k1, k2]);
        assert!(b.open(D, b"", &s).is_ok());
        let mut c = auth(3, &[k1]);
        assert_eq!(c.open(D, b"", &s), Err(AuthError::BadMac));
    }

    #[test]
    fn size_limits() {
        let limits = Limits { datagram: 100, stream: 200 };
        let mut a = Auth::new(ring("prod", &[7]), 1, 1, limits);
        let mut b = Auth::new(ring("prod", &[7]), 2, 1, limits);
        let fits = vec![0u8; payload_mtu(100)];
        let s = seal(&mut a, D, &fits);
        assert_eq!(s.len(), 100);
        assert!(b.open(D, b"", &s).is_ok());
        assert_eq!(a.seal(D, b"", &[0u8; 63]), Err(SealError::TooLarge { len: 101, limit: 100 }));
        let big = Bytes::from(vec![ENVELOPE_VERSION; 101]);
        assert_eq!(b.open(D, b"", &big), Err(AuthError::TooLarge { len: 101, limit: 100 }));
        assert!(a.seal(S, b"", &[0u8; 150]).is_ok());
        assert_eq!(payload_mtu(10), 0);
    }

    #[test]
    fn malformed_inputs() {
        let mut b = auth(2, &[7]);
        for bad in [
            &b""[..],
            b"\xa1",
            &[0u8; OVERHEAD - 1],
            b"gK\x01\x01 an unsealed message of 38+ bytes",
        ] {
            assert_eq!(
                b.open(D, b"", &Bytes::copy_from_slice(bad)).map_err(|e| e.reason()),
                Err(Reject::Malformed)
            );
        }
        let mut s = vec![ENVELOPE_VERSION, key(7).id()];
        s.extend_from_slice(&[0; 12]);
        s.extend_from_slice(&u64::MAX.to_le_bytes());
        s.extend_from_slice(&[0; TAG_LEN]);
        assert_eq!(
            b.open(D, b"", &Bytes::from(s)),
            Err(AuthError::Malformed("counter out of range"))
        );
        assert_eq!(b.stats().rejected(Reject::Malformed), 5);
    }

    #[test]
    fn forged_flood_of_distinct_senders_costs_no_memory() {
        let mut b = auth(2, &[7]);
        let id = key(7).id();
        for sender in 0..100_000u32 {
            let mut v = vec![ENVELOPE_VERSION, id];
            v.extend_from_slice(&sender.to_le_bytes());
            v.extend_from_slice(&[0; 16]);
            v.extend_from_slice(b"forged");
            v.extend_from_slice(&[0; TAG_LEN]);
            assert_eq!(b.open(D, b"", &Bytes::from(v)), Err(AuthError::BadMac));
        }
        assert_eq!(b.tracked_senders(), 0);
        assert_eq!(b.stats().rejected(Reject::BadMac), 100_000);
    }

    #[test]
    fn authentic_senders_past_the_bound_are_evicted_oldest_first() {
        let mut b = auth(2, &[7]).with_max_senders(64);
        let mut keep = auth(1, &[7]);
        for sender in 1000..11_000u32 {
            let mut a = Auth::new(ring("prod", &[7]), sender, 1, Limits::default());
            let s = seal(&mut a, D, b"hi");
            assert!(b.open(D, b"", &s).is_ok());
            assert!(b.tracked_senders() <= 64);
            // a sender heard all the time is never the oldest
            let k = seal(&mut keep, D, b"alive");
            assert!(b.open(D, b"", &k).is_ok());
        }
        assert_eq!(b.tracked_senders(), 64);
        assert_eq!(b.stats().evicted, 10_000 + 1 - 64);
        assert!(b.senders.contains_key(&1));
    }

    #[test]
    fn keys_and_keyrings_refuse_bad_input() {
        assert_eq!(ClusterKey::new(&[1; 15]), Err(KeyError::Length(15)));
        assert_eq!(ClusterKey::new(&[1; 65]), Err(KeyError::Length(65)));
        assert!(ClusterKey::from_hex("zz").is_err());
        assert!(ClusterKey::from_hex("abc").is_err());
        assert!(ClusterKey::from_hex("é").is_err());
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        assert_eq!(ClusterKey::from_hex(&format!(" {hex}\n")).map(|k| k.len()), Ok(32));
        let keys = parse_keys(&format!("{hex},{}", &hex[..32])).unwrap_or_default();
        assert_eq!(keys.len(), 2);
        assert!(parse_keys(&format!("{hex},")).is_err());
        assert_eq!(Keyring::new("x", vec![]).map(|_| ()), Err(KeyError::Empty));
        assert!(Keyring::new(&"n".repeat(256), vec![key(1)]).is_err());
        assert!(Keyring::new("x", (0..17).map(key).collect()).is_err());
        // Debug never shows the key bytes
        let shown = format!("{:?} {:?}", key(0xab), ring("c", &[0xab]));
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("abab"), "{shown}");
    }

    proptest! {
        #[test]
        fn prop_window_matches_a_set_model(steps in proptest::collection::vec((any::<bool>(), 0u64..3000), 1..400)) {
            let mut w = Window::EMPTY;
            let mut seen = std::collections::BTreeSet::new();
            let mut base = 0u64;
            for (jump, d) in steps {
                // mostly counters near the top, sometimes a jump ahead
                let c = if jump { base + d } else { base.saturating_sub(d % 1200) + d % 64 };
                let top = seen.last().map_or(0, |&m: &u64| m + 1);
                let model = c >= top || (top - c <= WINDOW && !seen.contains(&c));
                prop_assert_eq!(w.fresh(c), model, "counter {} top {}", c, top);
                if model {
                    w.accept(c);
                    seen.insert(c);
                    base = base.max(c);
                }
            }
        }

        #[test]
        fn prop_round_trip(msg in proptest::collection::vec(any::<u8>(), 0..1400 - OVERHEAD),
                           aad in proptest::collection::vec(any::<u8>(), 0..40),
                           sender in 0u32..10, inc in any::<u64>(), stream in any::<bool>()) {
            let t = if stream { S } else { D };
            let mut a = Auth::new(ring("prod", &[7, 8]), sender, inc, Limits::default());
            let mut b = Auth::new(ring("prod", &[8, 7]), 99, 0, Limits::default());
            let s = Bytes::from(a.seal(t, &aad, &msg).unwrap_or_default());
            let opened = b.open(t, &aad, &s);
            prop_assert_eq!(opened.as_deref(), Ok(&msg[..]));
            prop_assert!(b.open(t, &aad, &s).is_err());
        }

        #[test]
        fn prop_any_bit_flip_rejected(msg in proptest::collection::vec(any::<u8>(), 0..200),
                                      bit in any::<prop::sample::Index>()) {
            let mut a = auth(1, &[7]);
            let mut b = auth(2, &[7]);
            let s = seal(&mut a, D, &msg);
            let mut v = s.to_vec();
            let i = bit.index(v.len() * 8);
            v[i / 8] ^= 1 << (i % 8);
            prop_assert!(b.open(D, b"", &Bytes::from(v)).is_err());
            prop_assert_eq!(b.tracked_senders(), 0);
            prop_assert_eq!(b.stats().rejected_total(), 1);
        }

        #[test]
        fn prop_truncated_or_extended_rejected(msg in proptest::collection::vec(any::<u8>(), 0..200),
                                               cut in any::<prop::sample::Index>(),
                                               extra in proptest::collection::vec(any::<u8>(), 1..8)) {
            let mut a = auth(1, &[7]);
            let mut b = auth(2, &[7]);
            let s = seal(&mut a, D, &msg);
            let n = cut.index(s.len());
            prop_assert!(b.open(D, b"", &s.slice(..n)).is_err());
            let mut longer = s.to_vec();
            longer.extend_from_slice(&extra);
            prop_assert!(b.open(D, b"", &Bytes::from(longer)).is_err());
            prop_assert_eq!(b.stats().opened, 0);
        }

        #[test]
        fn prop_arbitrary_bytes_never_open_nor_panic(v in proptest::collection::vec(any::<u8>(), 0..2000),
                                                     head in any::<bool>(), stream in any::<bool>()) {
            let mut b = auth(2, &[7]);
            let mut v = v;
            if head && v.len() >= 2 {
                // looks like an envelope sealed with a key we hold
                v[0] = ENVELOPE_VERSION;
                v[1] = key(7).id();
            }
            let t = if stream { S } else { D };
            prop_assert!(b.open(t, b"", &Bytes::from(v)).is_err());
            prop_assert_eq!(b.tracked_senders(), 0);
        }
    }
}
