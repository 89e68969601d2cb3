//! The virtual network: addresses, the single event queue, and partitions.
//!
//! Every node `i` has the virtual gossip address `127.a.b.c:7000` with `a.b.c` the 24 bits of
//! `i`; it is never used for real I/O, only to name peers the way a real node does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;

/// The virtual gossip address of node `i`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, (i >> 16) as u8, (i >> 8) as u8, i as u8), 7000))
}

/// The node index behind a virtual address (`None` for anything the simulator never made).
pub fn index(a: &SocketAddr) -> Option<usize> {
    match a {
        SocketAddr::V4(v4) if v4.port() == 7000 => {
            let o = v4.ip().octets();
            (o[0] == 127)
                .then(|| (usize::from(o[1]) << 16) | (usize::from(o[2]) << 8) | usize::from(o[3]))
        }
        _ => None,
    }
}

/// Something that happens at a virtual instant.
#[derive(Debug)]
pub(crate) enum Event {
    /// A node's gossip timer (ignored if the node restarted since: `inc` is its incarnation).
    Timer { node: u32, inc: u32 },
    /// A message arrives (`from` may be a hostile sender's index, past the last node).
    Deliver { from: u32, to: u32, stream: bool, payload: Bytes },
    /// Hostile sender `h` sends its datagrams of this round.
    Attack { h: u32 },
    /// A client operation (index into the workload).
    Write { op: u32 },
    /// A node crashes and loses its memory.
    Crash { node: u32 },
    /// A crashed node restarts, empty.
    Restart { node: u32 },
    /// Partition episode `episode` begins.
    Split { episode: u32 },
    /// The current partition heals.
    Heal,
}

#[derive(Debug)]
struct Scheduled {
    t: u64,
    seq: u64,
    ev: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.t, self.seq) == (other.t, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the `BinaryHeap` pops the earliest `(time, sequence)` first: ties in time
    /// are broken by scheduling order, which makes the run deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.t, other.seq).cmp(&(self.t, self.seq))
    }
}

/// The one event queue of a run.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
}

impl Queue {
    pub(crate) fn push(&mut self, t: u64, ev: Event) {
        self.seq += 1;
        self.heap.push(Scheduled { t, seq: self.seq, ev });
    }

    pub(crate) fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|s| s.t)
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Event)> {
        self.heap.pop().map(|s| (s.t, s.ev))
    }
}

/// Which side of the current split each node is on.
#[derive(Debug, Default)]
pub(crate) struct Partition {
    active: bool,
    side: Vec<bool>,
}

impl Partition {
    pub(crate) fn split(&mut self, side: Vec<bool>) {
        self.side = side;
        self.active = true;
    }

    pub(crate) fn heal(&mut self) {
        self.active = false;
    }

    /// Whether a message from `a` to `b` crosses the cut.
    pub(crate) fn cut(&self, a: usize, b: usize) -> bool {
        self.active && self.side.get(a) != self.side.get(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_roundtrip() {
        for i in [0usize, 1, 255, 256, 65_535, 100_000, (1 << 24) - 1] {
            assert_eq!(index(&addr(i)), Some(i));
        }
        assert_eq!(index(&"10.0.0.1:7000".parse().expect("addr")), None);
    }

    #[test]
    fn queue_orders_by_time_then_sequence() {
        let mut q = Queue::default();
        q.push(5, Event::Heal);
        q.push(3, Event::Write { op: 1 });
        q.push(5, Event::Write { op: 2 });
        q.push(3, Event::Write { op: 3 });
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop()).map(|(t, e)| format!("{t}:{e:?}")).collect();
        assert_eq!(
            order,
            ["3:Write { op: 1 }", "3:Write { op: 3 }", "5:Heal", "5:Write { op: 2 }"]
        );
    }
}
