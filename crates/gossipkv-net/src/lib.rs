//! Where gossip bytes hit the wire: a tokio driver of the sans-IO [`Node`].
//!
//! One task per node owns the `Node` (no lock around it) and loops on four inputs: a UDP
//! datagram, a message that arrived on the stream listener, a local write reported by the
//! RESP server, and the node's timer. After each input it drains [`Node::poll_transmit`]:
//! datagrams go out on the UDP socket, stream messages on a short-lived TCP connection to the
//! peer's gossip address (same port number as its UDP socket). There is no protocol logic
//! here: this file only moves bytes and reads the clock.
//!
//! Fault injection (`drop_rate`): every datagram is dropped with that probability when sent
//! and again when received, and a stream message fails with that probability when sent, so
//! the brief's "10% of gossip lost" scenario runs on real sockets. Drops are counted.
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

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use gossipkv_core::Replica;
use gossipkv_core::gossip::auth::{self, Auth, Keyring, Limits, Reject};
use gossipkv_core::gossip::{
    GossipConfig, Node, NodeStats, Status, Transmit, Transport, VersionId,
};
use gossipkv_core::rng::Rng;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

pub mod peers;

/// Largest stream message accepted (a bulk chunk is about `bulk_chunk_bytes`).
pub const MAX_STREAM_MESSAGE: usize = 64 * 1024 * 1024;

/// Largest datagram read (anything larger than the MTU is refused by the node anyway).
const RECV_BUFFER: usize = 64 * 1024;

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
}

/// Milliseconds since the UNIX epoch: the physical time handed to the protocol core.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// Runs one node's gossip until `shutdown` resolves. `writes` carries the ids of the local
/// writes the RESP server made (so they spread as rumors); it is drained whole at each wake-up
/// so a write burst never builds a backlog behind the driver.
pub async fn run(
    replica: Arc<Replica>,
    cfg: NetConfig,
    udp: UdpSocket,
    stream: TcpListener,
    mut writes: mpsc::Receiver<VersionId>,
    status: Arc<GossipStatus>,
    shutdown: impl std::future::Future,
) -> io::Result<()> {
    let udp = Arc::new(udp);
    let me = cfg.gossip_addr;
    let start = now_ms();
    let mut faults = Rng::new(cfg.seed ^ 0xfa17_fa17);
    // spread nodes' rounds over the interval
    let phase = faults.below(cfg.gossip.interval_ms.max(1));
    let mut gossip = cfg.gossip;
    let mut auth = cfg.auth.clone().map(|ring| {
        // the incarnation is the start time: it grows across restarts of this node id
        let limits = Limits { datagram: cfg.gossip.mtu, stream: MAX_STREAM_MESSAGE };
        Auth::new(ring, replica.id(), start, limits)
    });
    if auth.is_some() {
        gossip.mtu = auth::payload_mtu(cfg.gossip.mtu);
    }
    status.peers.lock().attach(Arc::clone(&replica));
    let mut node = Node::new(replica, gossip, cfg.peers.clone(), cfg.seed, start + phase);
    if cfg.membership {
        // the generation is the start time, like the envelope's incarnation
        node.enable_membership(me, start, start);
    }
    if cfg.gate_writes {
        node.gate_writes(start);
    }
    let (stream_tx, mut stream_rx) = mpsc::channel::<(SocketAddr, Bytes)>(1024);
    let acceptor = tokio::spawn(accept_streams(stream, stream_tx, Arc::clone(&status)));
    let mut buf = vec![0u8; RECV_BUFFER];
    tokio::pin!(shutdown);
    loop {
        let wait = node.next_timeout().saturating_sub(now_ms());
        tokio::select! {
            _ = &mut shutdown => break,
            r = udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if faults.chance(cfg.drop_rate) {
                        status.net.dropped_recv.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let raw = Bytes::copy_from_slice(&buf[..n]);
                        if let Some(msg) = open(&mut auth, Transport::Datagram, from, raw, &status) {
                            node.handle_datagram(now_ms(), from, msg);
                        }
                    }
                }
                Err(e) => {
                    // e.g. ICMP port unreachable surfacing on Linux: a peer is down
                    debug!(error = %e, "udp receive error");
                    status.net.io_errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            Some((from, raw)) = stream_rx.recv() => {
                if let Some(msg) = open(&mut auth, Transport::Stream, from, raw, &status) {
                    node.handle_datagram(now_ms(), from, msg);
                }
            }
            Some(id) = writes.recv() => {
                let now = now_ms();
                node.note_rumor(id, now);
                while let Ok(id) = writes.try_recv() {
                    node.note_rumor(id, now);
                }
            }
            () = tokio::time::sleep(Duration::from_millis(wait)) => node.handle_timeout(now_ms()),
        }
        while let Some(mut t) = node.poll_transmit() {
            if let Some(a) = auth.as_mut() {
                let Some(sealed) = seal(a, me, &t, &status) else { continue };
                t.payload = sealed;
            }
            send(&udp, me, t, &mut faults, cfg.drop_rate, &status);
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
            };
            let key = m.digest() ^ (m.count(Status::Suspect) as u64).rotate_left(48);
            status.peers.lock().refresh_members(now_ms(), key, || m.records());
        }
        if let Some(a) = &auth {
            status.net.auth_senders.store(a.tracked_senders() as u64, Ordering::Relaxed);
        }
    }
    acceptor.abort();
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
    faults: &mut Rng,
    drop_rate: f64,
    status: &Arc<GossipStatus>,
) {
    match t.transport {
        Transport::Datagram => {
            if faults.chance(drop_rate) {
                status.net.dropped_send.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Non-blocking: a full socket buffer is a lost datagram, like any other loss.
            if udp.try_send_to(&t.payload, t.to).is_err() {
                status.net.io_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        Transport::Stream => {
            if faults.chance(drop_rate) {
                status.net.dropped_stream.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let status = Arc::clone(status);
            tokio::spawn(async move {
                if let Err(e) = send_stream(me, t.to, &t.payload).await {
                    debug!(peer = %t.to, error = %e, "stream send failed");
                    status.net.io_errors.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
}

async fn send_stream(me: SocketAddr, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
    let addr = me.to_string();
    let mut conn = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "stream connect timed out"))??;
    let mut frame = BytesMut::with_capacity(5 + addr.len() + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&[addr.len() as u8]);
    frame.extend_from_slice(addr.as_bytes());
    frame.extend_from_slice(payload);
    conn.write_all(&frame).await?;
    conn.shutdown().await
}

async fn accept_streams(
    listener: TcpListener,
    tx: mpsc::Sender<(SocketAddr, Bytes)>,
    status: Arc<GossipStatus>,
) {
    loop {
        let Ok((conn, _)) = listener.accept().await else { continue };
        let tx = tx.clone();
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            if let Err(e) = read_stream(conn, &tx).await {
                debug!(error = %e, "bad stream frame");
                status.net.bad_frames.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

async fn read_stream(
    mut conn: TcpStream,
    tx: &mpsc::Sender<(SocketAddr, Bytes)>,
) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    loop {
        let mut head = [0u8; 5];
        match conn.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
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
        let mut msg = vec![0u8; len];
        conn.read_exact(&mut msg).await?;
        if tx.send((from, Bytes::from(msg))).await.is_err() {
            warn!("gossip driver gone; dropping stream message");
            return Ok(());
        }
    }
}
