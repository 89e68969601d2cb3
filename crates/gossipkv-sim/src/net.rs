//! The virtual network: addresses, the single event queue, and partitions.
//!
//! Every node `i` has the virtual gossip address `127.a.b.c:7000` with `a.b.c` the 24 bits of
//! `i`; it is never used for real I/O, only to name peers the way a real node does.

use std::collections::{BTreeMap, VecDeque, btree_map};
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

/// The one event queue of a run: one FIFO bucket per virtual millisecond that has events.
///
/// Events pop in `(time, scheduling order)` order, which makes the run deterministic: ties in
/// time are broken by the order in which they were scheduled, because a bucket is appended
/// to in scheduling order. (A bucket per millisecond instead of a binary heap of every event:
/// a push is an append, a pop takes from the front, and the ordered map only holds the few
/// thousand milliseconds that have events.)
#[derive(Debug, Default)]
pub(crate) struct Queue {
    buckets: BTreeMap<u64, VecDeque<Event>>,
    /// Emptied buckets, kept for reuse (their capacity).
    spare: Vec<VecDeque<Event>>,
}

impl Queue {
    pub(crate) fn push(&mut self, t: u64, ev: Event) {
        match self.buckets.entry(t) {
            btree_map::Entry::Occupied(mut b) => b.get_mut().push_back(ev),
            btree_map::Entry::Vacant(v) => {
                let mut b = self.spare.pop().unwrap_or_default();
                b.push_back(ev);
                v.insert(b);
            }
        }
    }

    pub(crate) fn peek_time(&self) -> Option<u64> {
        self.buckets.first_key_value().map(|(t, _)| *t)
    }

    /// The earliest event, without removing it.
    pub(crate) fn peek(&self) -> Option<(u64, &Event)> {
        let (t, b) = self.buckets.first_key_value()?;
        b.front().map(|ev| (*t, ev))
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Event)> {
        let mut first = self.buckets.first_entry()?;
        let t = *first.key();
        let ev = first.get_mut().pop_front();
        if first.get().is_empty() {
            let b = first.remove();
            if self.spare.len() < 64 && b.capacity() <= 4096 {
                self.spare.push(b);
            }
        }
        ev.map(|ev| (t, ev))
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
