//! Where gossip bytes hit the wire: a tokio driver of the sans-IO [`Node`].
//!
//! One task per node owns the `Node` (no lock around it) and loops on three inputs: a UDP
//! datagram, a message that arrived on the stream listener, and the node's timer. Local writes
//! the RESP server makes wait in a [`RumorRing`] that the driver empties into the node before
//! it handles each input: rumors only leave with a gossip round or an answer to a peer, so a
//! write never has to wake the driver. After each input it drains [`Node::poll_transmit`]:
//! datagrams go out on the UDP socket, stream messages on a short-lived TCP connection to the
//! peer's gossip address (same port number as its UDP socket). There is no protocol logic
//! here: this file only moves bytes and reads the clock.
//!
//! Fault injection (`drop_rate`): every datagram is dropped with that probability when sent
//! and again when received, and a stream message fails with that probability when sent, so
//! the brief's "10% of gossip lost" scenario runs on real sockets. Drops are counted.
//!
//! Test-only faults ([`Faults`], for the chaos harness `gossipkv chaos`, docs/reliability.md):
//! a constant clock skew added to every reading of the node's clock, and a control file the
//! driver re-reads every [`CONTROL_POLL_MS`] that can change at run time the drop rate, a
//! duplication rate, a random delay of each message, and a list of peers whose gossip is
//! dropped both ways (a partition). None of it costs anything when not configured.
//!
//! Stream framing: `u32 length (LE) | u8 address length | sender's gossip address (UTF-8) |
//! message`. The address lets the receiver answer to the gossip port, not the ephemeral one.
//!
//! Authentication (`NetConfig::auth`): with a keyring every message the node emits is sealed
//! by [`gossipkv_core::gossip::auth`] before it leaves (a stream message binds the address its
//! frame claims), and every message received is opened before the node sees it; refusals are
//! dropped and counted by kind in [`NetCounters::auth_rejected`]. The node is then given an
//! MTU of `mtu - auth::OVERHEAD`, so sealed datagrams still fit in `mtu`. Without a keyring
//! bytes pass through untouched, as before.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use gossipkv_core::Replica;
use gossipkv_core::gossip::auth::{self, Auth, Keyring, Limits, Reject};
use gossipkv_core::gossip::{
    ForgetError, GossipConfig, MemberRecord, MemberStats, Node, NodeStats, Status, Transmit,
    Transport, VersionId,
};
use gossipkv_core::lww::NodeId;
use gossipkv_core::rng::Rng;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

pub mod peers;

/// Largest stream message accepted: the protocol's limit, which every list of entries a
/// node sends is cut to fit (a bulk chunk is about `bulk_chunk_bytes`).
pub use gossipkv_core::gossip::MAX_STREAM_MESSAGE;

/// Stream connections read at once; further peers wait in the kernel's accept queue (a
/// hostile or stalled sender cannot make the node hold an unbounded number of them).
const MAX_STREAM_CONNECTIONS: usize = 64;

/// Longest a stream message may take to be sent, or to arrive once its connection is
/// accepted. A paused or hostile peer otherwise keeps its connection, its task and the
/// message buffer for ever.
const STREAM_IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A stream message's buffer grows as its bytes arrive, from at most this much: a header
/// that announces 64 MiB costs nothing until the bytes come.
const STREAM_FIRST_READ: usize = 256 * 1024;

/// Largest datagram read (anything larger than the MTU is refused by the node anyway).
const RECV_BUFFER: usize = 64 * 1024;

/// The local writes waiting to be advertised as rumors: the RESP server pushes each write's
/// 20-byte id, the gossip driver takes them all before it handles its next input (a datagram,
/// a stream message, its timer). Only the newest `capacity` ids are kept, which with
/// `capacity` = [`GossipConfig::max_hot`] is exactly what the node's own rumor list would
/// keep; an older id pushed out is counted in [`NetCounters::rumors_dropped`] (anti-entropy
/// still spreads that write).
///
/// Pushing never wakes the driver: with a channel, every client write scheduled the driver
/// task (often on the other worker thread: a futex wake-up) only to append to a list that is
/// read at the next round.
///
/// The lock is the standard library's, as the store's shard locks are: every client write
/// takes it, and `parking_lot`'s contended path yields the core (`ShardLock` in
/// `gossipkv_core::store` says what that cost).
#[derive(Debug)]
pub struct RumorRing {
    ids: std::sync::Mutex<VecDeque<(VersionId, bool)>>,
    capacity: usize,
}

impl RumorRing {
    /// A ring that keeps the newest `capacity` ids (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { ids: std::sync::Mutex::new(VecDeque::with_capacity(capacity)), capacity }
    }

    /// The queue (a poisoned lock is used as it is: pushing and swapping cannot panic
    /// half-way through).
    fn ids(&self) -> std::sync::MutexGuard<'_, VecDeque<(VersionId, bool)>> {
        self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `id` (`delete`: the write was a DEL). Returns `false` when the ring was full and
    /// the oldest id was dropped.
    pub fn push(&self, id: VersionId, delete: bool) -> bool {
        let mut ids = self.ids();
        let room = ids.len() < self.capacity;
        if !room {
            ids.pop_front();
        }
        ids.push_back((id, delete));
        room
    }

    /// Ids queued now.
    pub fn len(&self) -> usize {
        self.ids().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every queued id into `out` (emptied first), oldest first, without allocating
    /// when `out` has room: the lock is held for a swap only.
    pub fn take_all(&self, out: &mut VecDeque<(VersionId, bool)>) {
        out.clear();
        std::mem::swap(&mut *self.ids(), out);
    }
}

/// How one node's gossip runs.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Gossip address: UDP socket and TCP stream listener share it.
    pub gossip_addr: SocketAddr,
    /// Potential peers' gossip addresses (some may never answer).
    pub peers: Vec<SocketAddr>,
    /// Protocol tunables.
    pub gossip: GossipConfig,
    /// Probability of dropping each datagram on send and again on receive.
    pub drop_rate: f64,
    /// Seed for the node's protocol randomness and the fault injector.
    pub seed: u64,
    /// Cluster name and keys: when set, every gossip message is sealed and opened
    /// (authenticated gossip); `None` sends and accepts plain messages.
    pub auth: Option<Keyring>,
    /// Learn members through gossip and detect failures (the peers are then seeds);
    /// otherwise gossip with the fixed peer list.
    pub membership: bool,
    /// Refuse client writes until caught up with peers (a node that may have run before).
    pub gate_writes: bool,
    /// Test-only fault injection (clock skew, control file); `Faults::default()` is none.
    pub faults: Faults,
}

/// Test-only faults for the chaos harness (docs/reliability.md). Not for production use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added to every reading of the physical clock by this node (negative: behind).
    pub clock_skew_ms: i64,
    /// A file re-read every [`CONTROL_POLL_MS`]: one setting per line, `drop P`, `dup P`,
    /// `delay MS` (each message waits a uniform 0..=MS first) and `block ADDR,ADDR,...`
    /// (gossip to and from those addresses is dropped). A missing file or setting means
    /// none (the drop rate then is [`NetConfig::drop_rate`]).
    pub control_file: Option<PathBuf>,
}

/// How often the control file of [`Faults`] is re-read.
pub const CONTROL_POLL_MS: u64 = 100;

/// The settings of a control file (see [`Faults::control_file`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Control {
    /// Drop probability of each datagram and stream message (on send, and again on receive
    /// for datagrams); `None`: [`NetConfig::drop_rate`].
    pub drop_rate: Option<f64>,
    /// Probability that a message is sent twice.
    pub dup_rate: f64,
    /// Each message is held for a uniform random 0..=`delay_ms` before it is sent.
    pub delay_ms: u64,
    /// Gossip addresses whose messages are dropped, both ways.
    pub blocked: Vec<SocketAddr>,
}

/// A control file did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("control file line {line}: {why}")]
pub struct ControlError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub why: String,
}

impl Control {
    /// Parses a control file's text (blank lines and `#` comments are ignored).
    pub fn parse(text: &str) -> Result<Self, ControlError> {
        let mut c = Control::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |why: String| ControlError { line: i + 1, why };
            let l = raw.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            let v = v.trim();
            let rate = |v: &str| match v.parse::<f64>() {
                Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                _ => Err(err(format!("{k} wants a probability in [0, 1], got {v:?}"))),
            };
            match k {
                "drop" => c.drop_rate = Some(rate(v)?),
                "dup" => c.dup_rate = rate(v)?,
                "delay" => {
                    c.delay_ms = v.parse().map_err(|_| err(format!("bad delay {v:?}")))?;
                }
                "block" => {
                    for a in v.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                        c.blocked.push(a.parse().map_err(|_| err(format!("bad address {a:?}")))?);
                    }
                }
                _ => return Err(err(format!("unknown setting {k:?}"))),
            }
        }
        Ok(c)
    }
}

/// Counters of the transport, readable while the node runs.
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Datagrams dropped on purpose when sending.
    pub dropped_send: AtomicU64,
    /// Datagrams dropped on purpose when receiving.
    pub dropped_recv: AtomicU64,
    /// Stream messages failed on purpose.
    pub dropped_stream: AtomicU64,
    /// Real send or connect errors.
    pub io_errors: AtomicU64,
    /// Stream frames refused (too large, bad address).
    pub bad_frames: AtomicU64,
    /// Local writes not advertised as rumors because the queue to the driver was full
    /// (anti-entropy still spreads them).
    pub rumors_dropped: AtomicU64,
    /// Received gossip messages refused by the authentication envelope, indexed by
    /// [`Reject::index`] (malformed, too large, unknown key, bad MAC, stale incarnation,
    /// replayed).
    pub auth_rejected: [AtomicU64; Reject::COUNT],
    /// Received gossip messages that opened (authentic and fresh).
    pub auth_opened: AtomicU64,
    /// Outgoing messages that could not be sealed (larger than the limit): dropped.
    pub auth_seal_errors: AtomicU64,
    /// Senders the replay guard currently tracks.
    pub auth_senders: AtomicU64,
    /// Messages dropped because their peer is blocked by the control file (a partition).
    pub chaos_blocked: AtomicU64,
    /// Messages sent twice on purpose (control file `dup`).
    pub chaos_duplicated: AtomicU64,
    /// Messages held back on purpose before sending (control file `delay`).
    pub chaos_delayed: AtomicU64,
    /// Control files that did not parse (the previous settings stay).
    pub chaos_control_errors: AtomicU64,
}

impl NetCounters {
    /// Received gossip messages refused for `why`.
    pub fn auth_rejected(&self, why: Reject) -> u64 {
        self.auth_rejected[why.index()].load(Ordering::Relaxed)
    }

    /// Received gossip messages refused by the envelope, all kinds.
    pub fn auth_rejected_total(&self) -> u64 {
        self.auth_rejected.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// What the running driver shares with the rest of the node (INFO, metrics).
#[derive(Debug, Default)]
pub struct GossipStatus {
    /// The protocol's counters, refreshed after every input.
    pub stats: Mutex<NodeStats>,
    /// Membership as this node sees it, refreshed after every input.
    pub members: Mutex<MemberCounts>,
    /// Transport counters.
    pub net: NetCounters,
    /// Peers' last reported digest roots and key counts, and the member list ([`peers`]).
    pub peers: Mutex<peers::PeerView>,
    /// Where operators' requests reach the running driver ([`GossipStatus::forget_member`]);
    /// set by [`run`] for its lifetime.
    admin: Mutex<Option<mpsc::UnboundedSender<Admin>>>,
}

/// An operator's request to the running driver, answered on `reply`.
#[derive(Debug)]
enum Admin {
    /// [`Node::forget_member`].
    Forget { id: NodeId, reply: oneshot::Sender<Result<MemberRecord, AdminError>> },
    /// Every record of the member table, this node's included, by id.
    Members { reply: oneshot::Sender<Result<Vec<MemberRecord>, AdminError>> },
}

/// Why an operator's request to the gossip driver failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The gossip driver is not running (not started yet, or stopped).
    #[error("gossip is not running")]
    NotRunning,
    /// The node runs without membership (no member table to change).
    #[error("membership is off on this node")]
    NoMembership,
    /// The member table refused: see [`ForgetError`].
    #[error(transparent)]
    Forget(#[from] ForgetError),
}

impl GossipStatus {
    /// Forgets member `id`, which this node must believe dead: its record becomes `Left` and
    /// spreads, so it no longer counts against the majority that tombstone purging (and
    /// staying out of the away state) needs. Answered by the driver after its current input.
    pub async fn forget_member(&self, id: NodeId) -> Result<MemberRecord, AdminError> {
        self.ask(|reply| Admin::Forget { id, reply }).await
    }

    /// The member table as the driver sees it now, this node included, sorted by id.
    pub async fn member_records(&self) -> Result<Vec<MemberRecord>, AdminError> {
        self.ask(|reply| Admin::Members { reply }).await
    }

    /// Sends the driver the request `make` builds around a reply channel and waits for the
    /// answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, AdminError>>) -> Admin,
    ) -> Result<T, AdminError> {
        let (reply, answer) = oneshot::channel();
        let tx = self.admin.lock().clone().ok_or(AdminError::NotRunning)?;
        tx.send(make(reply)).map_err(|_| AdminError::NotRunning)?;
        answer.await.map_err(|_| AdminError::NotRunning)?
    }
}

/// How many members a node knows, by status (itself counted alive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Members known, this node included.
    pub known: usize,
    /// Alive (this node included).
    pub alive: usize,
    /// Suspected.
    pub suspect: usize,
    /// Declared dead.
    pub dead: usize,
    /// Left on purpose.
    pub left: usize,
    /// Away from a majority beyond half the purge horizon.
    pub away: bool,
    /// This node's generation (its start time, ms).
    pub generation: u64,
    /// Membership events counted by this node (suspicions, deaths, refutations, ...).
    pub events: MemberStats,
}

/// Milliseconds since the UNIX epoch: the physical time handed to the protocol core.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// [`now_ms`] moved by `skew_ms` (a node whose clock is off, for fault injection).
pub fn skewed_now_ms(skew_ms: i64) -> u64 {
    now_ms().saturating_add_signed(skew_ms)
}

/// Decides each message's fate under the configured faults. Without a control file it is
/// just the constant drop rate, as before.
struct Injector {
    rng: Rng,
    drop_rate: f64,
    live: Option<Arc<Mutex<Control>>>,
}

/// What to do with one outgoing message.
struct Plan {
    drop: bool,
    blocked: bool,
    copies: u32,
    delay: [Duration; 2],
}

impl Injector {
    fn drop_recv(&mut self, from: SocketAddr, status: &GossipStatus) -> bool {
        let rate = match &self.live {
            None => self.drop_rate,
            Some(live) => {
                let c = live.lock();
                if c.blocked.contains(&from) {
                    status.net.chaos_blocked.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                c.drop_rate.unwrap_or(self.drop_rate)
            }
        };
        if self.rng.chance(rate) {
            status.net.dropped_recv.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn plan_send(&mut self, to: SocketAddr) -> Plan {
        let mut plan = Plan { drop: false, blocked: false, copies: 1, delay: [Duration::ZERO; 2] };
        let Some(live) = &self.live else {
            plan.drop = self.rng.chance(self.drop_rate);
            return plan;
        };
        let c = live.lock();
        if c.blocked.contains(&to) {
            plan.blocked = true;
            return plan;
        }
        plan.drop = self.rng.chance(c.drop_rate.unwrap_or(self.drop_rate));
        if self.rng.chance(c.dup_rate) {
            plan.copies = 2;
        }
        if c.delay_ms > 0 {
            for d in &mut plan.delay {
                *d = Duration::from_millis(self.rng.below(c.delay_ms + 1));
            }
        }
        drop(c);
        plan
    }
}

/// Re-reads the control file every [`CONTROL_POLL_MS`] into `live` (runs until aborted).
async fn poll_control(path: PathBuf, live: Arc<Mutex<Control>>, status: Arc<GossipStatus>) {
    let mut last: Option<String> = None;
    loop {
        // a missing file is "no faults"; the file is tiny, a blocking read is fine
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if last.as_deref() != Some(text.as_str()) {
            match Control::parse(&text) {
                Ok(c) => *live.lock() = c,
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "chaos control file ignored");
                    status.net.chaos_control_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            last = Some(text);
        }
        tokio::time::sleep(Duration::from_millis(CONTROL_POLL_MS)).await;
    }
}

/// Binds the UDP socket (with a large receive buffer, so bursts are not lost in the kernel)
/// and the TCP stream listener on `addr`. With port 0 the kernel picks a UDP port; if that
/// port number is taken for TCP, it tries again with another (a few times).
pub async fn bind(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free port pair");
    for _ in 0..attempts {
        let udp = bind_udp(addr)?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // best effort: the kernel caps it at net.core.rmem_max
    let _ = sock.set_recv_buffer_size(4 * 1024 * 1024);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// One input of the driver loop.
enum Input {
    Shutdown,
    Admin(Admin),
    Datagram(io::Result<(usize, SocketAddr)>),
    Stream(SocketAddr, Bytes),
    Timer,
}

/// Runs one node's gossip until `shutdown` resolves. `writes` holds the ids of the local
/// writes the RESP server made (so they spread as rumors); it is emptied into the node before
/// each input is handled.
pub async fn run(
    replica: Arc<Replica>,
    cfg: NetConfig,
    udp: UdpSocket,
    stream: TcpListener,
    writes: Arc<RumorRing>,
    status: Arc<GossipStatus>,
    shutdown: impl std::future::Future,
) -> io::Result<()> {
    let udp = Arc::new(udp);
    let me = cfg.gossip_addr;
    let skew = cfg.faults.clock_skew_ms;
    let clock = move || skewed_now_ms(skew);
    let start = clock();
    let live = cfg.faults.control_file.as_ref().map(|path| {
        // apply the file before the first message (a node restarted inside a partition)
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Arc::new(Mutex::new(Control::parse(&text).unwrap_or_default()))
    });
    let poller = match (&cfg.faults.control_file, &live) {
        (Some(path), Some(live)) => {
            Some(tokio::spawn(poll_control(path.clone(), Arc::clone(live), Arc::clone(&status))))
        }
        _ => None,
    };
    let mut faults =
        Injector { rng: Rng::new(cfg.seed ^ 0xfa17_fa17), drop_rate: cfg.drop_rate, live };
    // spread nodes' rounds over the interval
    let phase = faults.rng.below(cfg.gossip.interval_ms.max(1));
    let mut gossip = cfg.gossip;
    let mut auth = cfg.auth.clone().map(|ring| {
        // the incarnation is the start time: it grows across restarts of this node id
        let limits = Limits { datagram: cfg.gossip.mtu, stream: MAX_STREAM_MESSAGE };
        Auth::new(ring, replica.id(), start, limits)
    });
    if auth.is_some() {
        gossip.mtu = auth::payload_mtu(cfg.gossip.mtu);
    }
    status.peers.lock().attach(Arc::clone(&replica), cfg.membership);
    let mut node = Node::new(replica, gossip, cfg.peers.clone(), cfg.seed, start + phase);
    if cfg.membership {
        // the generation is the start time, like the envelope's incarnation
        node.enable_membership(me, start, start);
    }
    if cfg.gate_writes {
        node.gate_writes(start);
    }
    let (admin_tx, mut admin_rx) = mpsc::unbounded_channel();
    *status.admin.lock() = Some(admin_tx);
    let (stream_tx, mut stream_rx) = mpsc::channel::<(SocketAddr, Bytes)>(1024);
    let acceptor = tokio::spawn(accept_streams(stream, stream_tx, Arc::clone(&status)));
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut rumors = VecDeque::new();
    tokio::pin!(shutdown);
    // one timer for the driver's life, moved when the node's deadline moves
    let mut deadline = node.next_timeout();
    let timer = tokio::time::sleep(Duration::from_millis(deadline.saturating_sub(clock())));
    tokio::pin!(timer);
    let mut leaving = false;
    loop {
        if node.next_timeout() != deadline {
            deadline = node.next_timeout();
            let wait = Duration::from_millis(deadline.saturating_sub(clock()));
            timer.as_mut().reset(tokio::time::Instant::now() + wait);
        }
        let input = tokio::select! {
            // a clean stop: tell members we leave (sent below), then stop
            _ = &mut shutdown, if !leaving => Input::Shutdown,
            r = udp.recv_from(&mut buf) => Input::Datagram(r),
            Some((from, raw)) = stream_rx.recv() => Input::Stream(from, raw),
            Some(req) = admin_rx.recv() => Input::Admin(req),
            () = &mut timer => Input::Timer,
        };
        let now = clock();
        writes.take_all(&mut rumors);
        for (id, delete) in rumors.drain(..) {
            node.note_local_rumor(id, delete, now);
        }
        match input {
            Input::Shutdown => {
                node.leave(now);
                leaving = true;
            }
            Input::Admin(Admin::Forget { id, reply }) => {
                let done = match node.forget_member(id, now) {
                    None => Err(AdminError::NoMembership),
                    Some(r) => r.map_err(AdminError::from),
                };
                // the requester may have gone: nothing to tell then
                let _ = reply.send(done);
            }
            Input::Admin(Admin::Members { reply }) => {
                let recs = node.membership().map(|m| m.records()).ok_or(AdminError::NoMembership);
                let _ = reply.send(recs);
            }
            Input::Datagram(Ok((n, from))) => {
                if !faults.drop_recv(from, &status) {
                    let raw = Bytes::copy_from_slice(&buf[..n]);
                    if let Some(msg) = open(&mut auth, Transport::Datagram, from, raw, &status) {
                        node.handle_datagram(now, from, msg);
                    }
                }
            }
            Input::Datagram(Err(e)) => {
                // e.g. ICMP port unreachable surfacing on Linux: a peer is down
                debug!(error = %e, "udp receive error");
                status.net.io_errors.fetch_add(1, Ordering::Relaxed);
            }
            Input::Stream(from, raw) => {
                if let Some(msg) = open(&mut auth, Transport::Stream, from, raw, &status) {
                    node.handle_datagram(now, from, msg);
                }
            }
            Input::Timer => {
                node.handle_timeout(now);
                if node.next_timeout() == deadline {
                    // not due yet by the node's clock (a skewed or coarse one): look again soon
                    let wait = Duration::from_millis(deadline.saturating_sub(clock()).max(1));
                    timer.as_mut().reset(tokio::time::Instant::now() + wait);
                }
            }
        }
        while let Some(mut t) = node.poll_transmit() {
            if let Some(a) = auth.as_mut() {
                let Some(sealed) = seal(a, me, &t, &status) else { continue };
                t.payload = sealed;
            }
            send(&udp, me, t, &mut faults, &status);
        }
        if leaving {
            break;
        }
        *status.stats.lock() = node.stats().clone();
        if let Some(m) = node.membership() {
            *status.members.lock() = MemberCounts {
                known: m.len(),
                alive: m.count(Status::Alive) + 1,
                suspect: m.count(Status::Suspect),
                dead: m.count(Status::Dead),
                left: m.count(Status::Left),
                away: node.is_away(),
                generation: m.me().generation,
                events: *m.stats(),
            };
            let key = m.digest() ^ (m.count(Status::Suspect) as u64).rotate_left(48);
            status.peers.lock().refresh_members(now_ms(), key, || m.records());
        }
        if let Some(a) = &auth {
            status.net.auth_senders.store(a.tracked_senders() as u64, Ordering::Relaxed);
        }
    }
    *status.admin.lock() = None;
    acceptor.abort();
    if let Some(p) = poller {
        p.abort();
    }
    Ok(())
}

/// What a stream message's MAC binds besides the message: the gossip address its frame
/// claims (the receiver answers there), as the sender writes it.
fn stream_aad(transport: Transport, addr: SocketAddr) -> Vec<u8> {
    match transport {
        Transport::Datagram => Vec::new(),
        Transport::Stream => addr.to_string().into_bytes(),
    }
}

/// Opens a received message, or passes it through when authentication is off, and notes the
/// digest it carries ([`peers::PeerView`]). A refusal is counted by kind and yields `None`.
fn open(
    auth: &mut Option<Auth>,
    transport: Transport,
    from: SocketAddr,
    raw: Bytes,
    status: &GossipStatus,
) -> Option<Bytes> {
    let msg = match auth.as_mut() {
        None => raw,
        Some(a) => match a.open(transport, &stream_aad(transport, from), &raw) {
            Ok(msg) => {
                status.net.auth_opened.fetch_add(1, Ordering::Relaxed);
                msg
            }
            Err(e) => {
                debug!(peer = %from, error = %e, "gossip message rejected");
                status.net.auth_rejected[e.reason().index()].fetch_add(1, Ordering::Relaxed);
                return None;
            }
        },
    };
    status.peers.lock().observe(from, &msg, now_ms());
    Some(msg)
}

/// Seals an outgoing message; `None` (counted) when it cannot be.
fn seal(a: &mut Auth, me: SocketAddr, t: &Transmit, status: &GossipStatus) -> Option<Vec<u8>> {
    match a.seal(t.transport, &stream_aad(t.transport, me), &t.payload) {
        Ok(sealed) => Some(sealed),
        Err(e) => {
            warn!(peer = %t.to, error = %e, "gossip message not sealed; dropped");
            status.net.auth_seal_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn send(
    udp: &Arc<UdpSocket>,
    me: SocketAddr,
    t: Transmit,
    faults: &mut Injector,
    status: &Arc<GossipStatus>,
) {
    let plan = faults.plan_send(t.to);
    if plan.blocked {
        status.net.chaos_blocked.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if plan.drop {
        let c = match t.transport {
            Transport::Datagram => &status.net.dropped_send,
            Transport::Stream => &status.net.dropped_stream,
        };
        c.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if plan.copies > 1 {
        status.net.chaos_duplicated.fetch_add(1, Ordering::Relaxed);
    }
    if plan.delay.iter().any(|d| !d.is_zero()) {
        status.net.chaos_delayed.fetch_add(1, Ordering::Relaxed);
    }
    if plan.copies == 1 && plan.delay[0].is_zero() && t.transport == Transport::Datagram {
        // the common case, no copy: non-blocking, a full socket buffer is a lost datagram
        if udp.try_send_to(&t.payload, t.to).is_err() {
            status.net.io_errors.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let payload = Arc::new(t.payload);
    for &delay in plan.delay.iter().take(plan.copies as usize) {
        let (udp, payload, status) = (Arc::clone(udp), Arc::clone(&payload), Arc::clone(status));
        let to = t.to;
        match t.transport {
            Transport::Datagram if delay.is_zero() => {
                if udp.try_send_to(&payload, to).is_err() {
                    status.net.io_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Transport::Datagram => {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if udp.try_send_to(&payload, to).is_err() {
                        status.net.io_errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Transport::Stream => {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let sent =
                        tokio::time::timeout(STREAM_IO_TIMEOUT, send_stream(me, to, &payload));
                    let sent = sent.await.unwrap_or_else(|_| Err(timed_out("stream send")));
                    if let Err(e) = sent {
                        debug!(peer = %to, error = %e, "stream send failed");
                        status.net.io_errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }
    }
}

async fn send_stream(me: SocketAddr, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
    let addr = me.to_string();
    let mut conn = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to))
        .await
        .map_err(|_| timed_out("stream connect"))??;
    let mut frame = BytesMut::with_capacity(5 + addr.len() + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&[addr.len() as u8]);
    frame.extend_from_slice(addr.as_bytes());
    frame.extend_from_slice(payload);
    conn.write_all(&frame).await?;
    conn.shutdown().await
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

async fn accept_streams(
    listener: TcpListener,
    tx: mpsc::Sender<(SocketAddr, Bytes)>,
    status: Arc<GossipStatus>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_STREAM_CONNECTIONS));
    loop {
        // a free slot first: beyond the limit, connections wait in the accept queue
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let Ok((conn, _)) = listener.accept().await else { continue };
        let tx = tx.clone();
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            if let Err(e) = read_stream(conn, &tx, STREAM_IO_TIMEOUT).await {
                debug!(error = %e, "bad stream frame");
                status.net.bad_frames.fetch_add(1, Ordering::Relaxed);
            }
            drop(slot);
        });
    }
}

/// Reads framed stream messages (`len: u32 LE, addr_len: u8, addr, payload`) until the peer
/// closes, handing each to the driver. Each message must arrive within `timeout`; its buffer
/// grows with the bytes received, never to more than [`MAX_STREAM_MESSAGE`].
async fn read_stream(
    mut conn: TcpStream,
    tx: &mpsc::Sender<(SocketAddr, Bytes)>,
    timeout: Duration,
) -> io::Result<()> {
    loop {
        let next = tokio::time::timeout(timeout, read_stream_message(&mut conn));
        let Some((from, msg)) = next.await.map_err(|_| timed_out("stream message"))?? else {
            return Ok(());
        };
        if tx.send((from, msg)).await.is_err() {
            warn!("gossip driver gone; dropping stream message");
            return Ok(());
        }
    }
}

/// One framed message, or `None` when the peer closed the stream between messages.
async fn read_stream_message(conn: &mut TcpStream) -> io::Result<Option<(SocketAddr, Bytes)>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut head = [0u8; 5];
    match conn.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_STREAM_MESSAGE {
        return Err(bad("stream message too large"));
    }
    let mut addr = vec![0u8; usize::from(head[4])];
    conn.read_exact(&mut addr).await?;
    let from: SocketAddr = std::str::from_utf8(&addr)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad sender address"))?;
    let mut msg = Vec::with_capacity(len.min(STREAM_FIRST_READ));
    (&mut *conn).take(len as u64).read_to_end(&mut msg).await?;
    if msg.len() != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream message cut short"));
    }
    Ok(Some((from, Bytes::from(msg))))
}

#[cfg(test)]
mod ring_tests {
    use gossipkv_core::VersionRef;

    use super::*;

    fn id(i: u64) -> VersionId {
        VersionId::of(
            &i.to_le_bytes(),
            VersionRef { ts: Default::default(), origin: 0, value: None },
        )
    }

    #[test]
    fn ring_keeps_the_newest_and_says_when_it_drops() {
        let ring = RumorRing::new(3);
        assert!(ring.is_empty());
        assert!((0..3).all(|i| ring.push(id(i), false)));
        assert!(!ring.push(id(3), true), "full: the oldest goes");
        assert!(!ring.push(id(4), false));
        assert_eq!(ring.len(), 3);
        let mut out = VecDeque::from([(id(99), false)]);
        ring.take_all(&mut out);
        assert_eq!(Vec::from(out.clone()), vec![(id(2), false), (id(3), true), (id(4), false)]);
        assert!(ring.is_empty());
        // room again, and a second take leaves `out` empty
        assert!(ring.push(id(5), true));
        ring.take_all(&mut out);
        assert_eq!(Vec::from(out.clone()), vec![(id(5), true)]);
        ring.take_all(&mut out);
        assert!(out.is_empty());
        assert!(RumorRing::new(0).push(id(0), false), "capacity is at least one");
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    fn frame(from: &str, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_le_bytes().to_vec();
        f.push(from.len() as u8);
        f.extend_from_slice(from.as_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A connected (client, server side) pair on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.expect("connect"), s.expect("accept").0)
    }

    #[tokio::test]
    async fn messages_arrive_whole_and_in_order() {
        let (mut c, s) = pair().await;
        let (tx, mut rx) = mpsc::channel(8);
        let big = vec![7u8; 3 * STREAM_FIRST_READ + 5];
        let mut bytes = frame("127.0.0.9:7946", b"first");
        bytes.extend(frame("127.0.0.9:7946", &big));
        let writer = tokio::spawn(async move {
            c.write_all(&bytes).await.expect("write");
            c.shutdown().await.expect("shutdown");
        });
        read_stream(s, &tx, Duration::from_secs(5)).await.expect("clean end");
        writer.await.expect("writer");
        let from: SocketAddr = "127.0.0.9:7946".parse().expect("addr");
        assert_eq!(rx.recv().await, Some((from, Bytes::from_static(b"first"))));
        assert_eq!(rx.recv().await, Some((from, Bytes::from(big))));
    }

    #[tokio::test]
    async fn a_stalled_or_lying_sender_is_cut_off() {
        // announces 64 MiB, sends ten bytes, then stalls: refused after the timeout
        let (mut c, s) = pair().await;
        let (tx, mut rx) = mpsc::channel(8);
        let mut f = frame("127.0.0.9:7946", &[]);
        f[..4].copy_from_slice(&(MAX_STREAM_MESSAGE as u32).to_le_bytes());
        f.extend_from_slice(&[1; 10]);
        c.write_all(&f).await.expect("write");
        let e = read_stream(s, &tx, Duration::from_millis(200)).await.expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // over the limit: refused at once; cut short: an error, nothing delivered
        let (mut c, s) = pair().await;
        let mut f = frame("127.0.0.9:7946", &[]);
        f[..4].copy_from_slice(&(MAX_STREAM_MESSAGE as u32 + 1).to_le_bytes());
        c.write_all(&f).await.expect("write");
        let e = read_stream(s, &tx, Duration::from_secs(5)).await.expect_err("too large");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let (mut c, s) = pair().await;
        let f = frame("127.0.0.9:7946", b"0123456789");
        c.write_all(&f[..f.len() - 3]).await.expect("write");
        c.shutdown().await.expect("shutdown");
        let e = read_stream(s, &tx, Duration::from_secs(5)).await.expect_err("cut short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        drop(c);
        assert!(rx.try_recv().is_err(), "nothing delivered");
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;

    #[test]
    fn control_file_parses_every_setting_and_rejects_nonsense() {
        let c = Control::parse(
            "# partition\ndrop 0.25\ndup 0.5\n\ndelay 40\nblock 127.0.0.2:7946, 127.0.0.3:7946\n",
        );
        let want = Control {
            drop_rate: Some(0.25),
            dup_rate: 0.5,
            delay_ms: 40,
            blocked: vec!["127.0.0.2:7946".parse().ok(), "127.0.0.3:7946".parse().ok()]
                .into_iter()
                .flatten()
                .collect(),
        };
        assert_eq!(c, Ok(want));
        assert_eq!(Control::parse(""), Ok(Control::default()));
        assert_eq!(Control::parse("block\n"), Ok(Control::default()));
        for bad in ["drop 1.5", "dup -1", "delay x", "block nowhere", "speed 3"] {
            assert_eq!(Control::parse(bad).map_err(|e| e.line), Err(1), "{bad}");
        }
    }

    #[test]
    fn skew_moves_the_clock_both_ways() {
        let now = now_ms();
        assert!(skewed_now_ms(60_000) >= now + 60_000);
        assert!(skewed_now_ms(-60_000) <= now_ms() - 60_000);
        assert_eq!(skewed_now_ms(i64::MIN), 0);
    }
}
