//! The client event loop's short busy-wait before it sleeps ([`IdleSpin`]).
//!
//! Why: without pipelining, a client waits for each reply, so the server's event loop runs
//! out of work between requests many thousand times a second and blocks in `epoll_wait`.
//! Every request that arrives while it sleeps costs a wake-up: on the sending side (the
//! client's `write` has to wake our thread; on a virtual machine waking an idle vCPU goes
//! through the hypervisor) and on ours (leaving the idle state). When
//! the gaps are a few microseconds, waiting them out awake is cheaper for both sides: the
//! data lands on a socket nobody sleeps on, and the next `epoll_wait` returns at once. This
//! is the idea of the guest `haltpoll` cpuidle driver and of polling reactors (Seastar,
//! DPDK), bounded: the loop spins at most the configured time per sleep, and only while the
//! previous idle period was short (at most [`IDLE_FACTOR`] times the spin). A node with
//! sparse traffic therefore spins once after a burst and then sleeps as usual; an idle
//! node costs nothing. Measured in docs/benchmarks.md ("Node, a short spin before the
//! event loop sleeps").
//!
//! The spin is not blind: it polls an epoll set of its own holding the listener and every
//! client socket of the event loop ([`watch`], called by the accept loop), with a zero
//! timeout, and ends as soon as one is readable; tokio's own `epoll_wait` then returns at
//! once. (A blind 20 µs wait cost a lone sequential client 8 µs a request.) Without that
//! epoll set (creating it failed) the loop does not spin at all.
//!
//! The policy is a pure state machine over nanosecond timestamps ([`IdleSpin::park`],
//! [`IdleSpin::unpark`]); [`IdleSpin::hooks`] wires it to the monotonic clock and the epoll
//! set for tokio's `on_thread_park` / `on_thread_unpark`. Only a `current_thread` runtime
//! spins ([`crate::ServerConfig::runtime`]): its one thread runs the accept loop, the
//! connections and the hooks, so the epoll set is found through a thread-local.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{Timespec, epoll};

thread_local! {
    /// The epoll set of the spinning event loop that runs on this thread, if any.
    static WATCHED: RefCell<Option<Arc<OwnedFd>>> = const { RefCell::new(None) };
}

/// Adds `socket` (a listener or a client connection) to the epoll set of the spinning event
/// loop running on this thread, so that data arriving on it ends a spin at once. Does
/// nothing on a thread without one. The kernel drops the socket from the set when it is
/// closed.
pub fn watch(socket: impl AsFd) {
    WATCHED.with(|w| {
        if let Some(set) = w.borrow().as_ref() {
            // best effort: an unwatched socket only makes a spin last its whole time
            let _ = epoll::add(
                set.as_fd(),
                socket,
                epoll::EventData::new_u64(0),
                epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
            );
        }
    });
}

/// Makes `set` the epoll set [`watch`] fills on this thread.
fn install(set: &Arc<OwnedFd>) {
    WATCHED.with(|w| {
        let mut w = w.borrow_mut();
        if w.as_ref().is_none_or(|cur| !Arc::ptr_eq(cur, set)) {
            *w = Some(Arc::clone(set));
        }
    });
}

/// True if a socket of `set` is readable now (a zero-timeout `epoll_wait`).
fn ready(set: &OwnedFd) -> bool {
    let mut events = [MaybeUninit::<epoll::Event>::uninit(); 1];
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    // an error (EINTR) ends the spin too: the loop then sleeps in tokio's own epoll_wait
    epoll::wait(set, &mut events, Some(&zero)).map_or(true, |(got, _)| !got.is_empty())
}

/// The loop spins before a sleep only if the previous idle period (spin included) lasted at
/// most this many times the spin: traffic dense enough that the spin is likely to cover the
/// next gap.
pub const IDLE_FACTOR: u64 = 2;

/// The spin policy of one event-loop thread: how long to spin, when the current idle period
/// began, and how long the previous one lasted. Lock-free so tokio's hooks (which must be
/// `Sync`) can share it; only one thread drives it.
#[derive(Debug)]
pub struct IdleSpin {
    spin_ns: u64,
    idle_since: AtomicU64,
    last_idle: AtomicU64,
}

impl IdleSpin {
    /// A policy that spins up to `spin` before sleeping (`Duration::ZERO`: never).
    pub fn new(spin: Duration) -> Self {
        Self {
            spin_ns: u64::try_from(spin.as_nanos()).unwrap_or(u64::MAX),
            idle_since: AtomicU64::new(0),
            // the first sleep after start spins: nothing is known yet and it costs one spin
            last_idle: AtomicU64::new(0),
        }
    }

    /// The event loop ran out of work at `now_ns`: returns until when (ns) it should spin
    /// before sleeping, or `None` to sleep at once.
    pub fn park(&self, now_ns: u64) -> Option<u64> {
        self.idle_since.store(now_ns, Ordering::Relaxed);
        let recent = self.last_idle.load(Ordering::Relaxed);
        (self.spin_ns > 0 && recent <= self.spin_ns.saturating_mul(IDLE_FACTOR))
            .then(|| now_ns.saturating_add(self.spin_ns))
    }

    /// The event loop has work again at `now_ns` (after spinning, sleeping, or both).
    pub fn unpark(&self, now_ns: u64) {
        let since = self.idle_since.load(Ordering::Relaxed);
        self.last_idle.store(now_ns.saturating_sub(since), Ordering::Relaxed);
    }

    /// The `(on_thread_park, on_thread_unpark)` hooks for a `current_thread` tokio runtime
    /// (the park hook also installs the epoll set on whichever thread drives the runtime, if
    /// not the one building it), or `None` if the epoll set cannot be created (then nothing
    /// spins).
    pub fn hooks(
        self: Arc<Self>,
    ) -> Option<(impl Fn() + Send + Sync + 'static, impl Fn() + Send + Sync + 'static)> {
        let set = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC).ok()?);
        install(&set);
        let base = Instant::now();
        let ns = move || u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let parker = Arc::clone(&self);
        let park = move || {
            install(&set);
            if let Some(until) = parker.park(ns()) {
                while ns() < until && !ready(&set) {
                    std::hint::spin_loop();
                }
            }
        };
        let unpark = move || self.unpark(ns());
        Some((park, unpark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    #[test]
    fn spins_while_gaps_are_short_and_stops_after_a_long_one() {
        let s = IdleSpin::new(Duration::from_micros(20));
        // first sleep: spins
        assert_eq!(s.park(0), Some(20 * US));
        // a request came during the spin: idle 15 us
        s.unpark(15 * US);
        assert_eq!(s.park(100 * US), Some(120 * US));
        // idle 40 us (spun 20, slept 20): still dense (<= 2 x 20)
        s.unpark(140 * US);
        assert_eq!(s.park(200 * US), Some(220 * US));
        // idle 5 ms: traffic went sparse, the next sleep does not spin
        s.unpark(5_200 * US);
        assert_eq!(s.park(5_300 * US), None);
        // and stays that way while gaps stay long
        s.unpark(9_300 * US);
        assert_eq!(s.park(9_400 * US), None);
        // a short gap (no spin, woken after 10 us) turns spinning back on
        s.unpark(9_410 * US);
        assert_eq!(s.park(9_500 * US), Some(9_520 * US));
    }

    #[test]
    fn the_boundary_is_inclusive_and_zero_never_spins() {
        let s = IdleSpin::new(Duration::from_micros(20));
        s.park(0);
        s.unpark(40 * US);
        assert!(s.park(50 * US).is_some(), "idle exactly 2 x spin still spins");
        s.unpark(50 * US + 40 * US + 1);
        assert!(s.park(100 * US).is_none(), "one nanosecond more does not");

        let off = IdleSpin::new(Duration::ZERO);
        assert_eq!(off.park(0), None);
        off.unpark(1);
        assert_eq!(off.park(2), None);
    }

    #[test]
    fn the_hooks_spin_in_a_real_runtime_and_record_the_idle_period() {
        let spin = Arc::new(IdleSpin::new(Duration::from_micros(200)));
        let (park, unpark) = Arc::clone(&spin).hooks().expect("epoll");
        let rt = tokio::runtime::Builder::new_current_thread()
            .on_thread_park(park)
            .on_thread_unpark(unpark)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        // each sleep parked the thread for about 2 ms: the last idle period was recorded,
        // longer than the spin, so spinning is off now
        let last = spin.last_idle.load(Ordering::Relaxed);
        assert!(last >= 1_000 * US, "last idle {last} ns");
        assert!(spin.park(u64::MAX / 2).is_none());
    }

    #[test]
    fn a_spin_ends_when_a_watched_socket_becomes_readable() {
        use std::io::{Read, Write};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        // the server's own runtime with a spin of 300 ms each time the loop runs out of
        // work: a blind one would make each of the round trips below last at least that long
        let config = crate::ServerConfig {
            idle_spin: Duration::from_millis(300),
            ..crate::ServerConfig::default()
        };
        let rt = config.runtime().expect("runtime");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            let started = Instant::now();
            let mut buf = [0u8; 4];
            for _ in 0..5 {
                c.write_all(b"ping").expect("write");
                c.read_exact(&mut buf).expect("read");
            }
            started.elapsed()
        });
        rt.block_on(async move {
            watch(&listener);
            let (mut s, _) = listener.accept().await.expect("accept");
            watch(&s);
            let mut buf = [0u8; 4];
            for _ in 0..5 {
                s.read_exact(&mut buf).await.expect("read");
                s.write_all(&buf).await.expect("write");
            }
        });
        let took = client.join().expect("client");
        assert!(took < Duration::from_millis(300), "5 round trips took {took:?}");
    }
}
