//! The checker: the final state of every node against the LWW winner of the acknowledged
//! writes (docs/reliability.md, "What is checked").
//!
//! A PUT's reply carries its timestamp and its origin is the node it was sent to, so each
//! acknowledged PUT is an exact [`Version`] and [`lww::rank`] (the order the store uses)
//! says whether the final state may be below it. A DEL's timestamp is not returned; what is
//! known about it is a window:
//!
//! - **lower bound**: the node issued it after the request was sent, from a clock reading
//!   at least `invoked + skew` (HLC: `ts ≥ (invoked + skew − margin) << 16`), and above every
//!   timestamp the same node (same process) had acknowledged before the DEL was sent;
//! - **upper bound** (HLC, acknowledged DELs): an HLC never runs ahead of the fastest
//!   physical clock in the cluster, so `ts ≤ (done + max skew + margin) << 16 | 0xffff`.
//!   Writes without an answer (indeterminate) may still be applied later (a paused node
//!   resumes): no upper bound.
//!
//! Then, per key, with `F` the final winner:
//!
//! - **lost**: an acknowledged PUT that ranks above `F` (or `F` is gone, and no DEL could
//!   have had a higher timestamp before its tombstone was purged);
//! - **resurrected**: `F` is a value whose timestamp is at most an acknowledged DEL's lower
//!   bound (that tombstone must beat it: a tombstone wins a timestamp tie);
//! - **stale**: a node whose state differs from the best node's after convergence (a
//!   tombstone and no version count as the same: purges run on each node's own clock);
//! - **unexplained**: a version no write made (a value no PUT wrote at that origin with
//!   that timestamp, a tombstone outside every DEL's window at that origin);
//! - **missing concurrent value**: an acknowledged PUT at `F`'s timestamp that is not in the
//!   kept set (while the set is not full);
//! - **GET mismatch**: `GET` disagrees with the node's own `VERSIONS` winner.
//!
//! gossipkv keeps data in memory only and acknowledges a write once it is in the local
//! replica: a node killed before it could gossip a write takes it with it. Such writes are
//! counted apart (**lost with a crashed node**, expected) when the node was killed less
//! than `crash_window_ms` of connected time (not paused, not partitioned) after the
//! acknowledgement; any other loss is a bug. The same holds for a DEL: its tombstone can
//! die with its node, and the value it deleted then stands (counted apart too). A node cut
//! off past the purge horizon right after a write is treated the same way: when it comes
//! back it resets, dropping every entry older than the horizon, its unspread writes too
//! (docs/protocol.md, "Deletes").

use std::collections::HashMap;

use gossipkv_core::clock::hlc_pack;
use gossipkv_core::lww::{self, Version};

use crate::history::{KeyId, Op, Outcome, ValueId};

/// What one node holds for one key at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRead {
    /// `VERSIONS key`: winner first, then the concurrent values.
    pub versions: Vec<Version>,
    /// `GET key`.
    pub get: Option<Vec<u8>>,
}

/// Fault history the checker needs, per node.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Wall-clock ms of each kill -9 (or unexpected exit) of node `i`.
    pub kills: Vec<Vec<u64>>,
    /// Intervals (wall ms) when node `i` was paused or in a partition.
    pub disconnected: Vec<Vec<(u64, u64)>>,
}

impl Timeline {
    /// An empty timeline for `n` nodes.
    pub fn new(n: usize) -> Self {
        Self { kills: vec![Vec::new(); n], disconnected: vec![Vec::new(); n] }
    }

    /// Milliseconds of `[from, to)` when node `i` was neither paused nor partitioned.
    pub fn connected_ms(&self, i: usize, from: u64, to: u64) -> u64 {
        let mut spans: Vec<(u64, u64)> = self
            .disconnected
            .get(i)
            .map(|d| {
                d.iter().map(|&(a, b)| (a.max(from), b.min(to))).filter(|(a, b)| a < b).collect()
            })
            .unwrap_or_default();
        spans.sort_unstable();
        let mut off = 0;
        let mut end = from;
        for (a, b) in spans {
            let a = a.max(end);
            if b > a {
                off += b - a;
                end = b;
            }
        }
        to.saturating_sub(from).saturating_sub(off)
    }

    /// The first kill of node `i` after `t`.
    pub fn next_kill(&self, i: usize, t: u64) -> Option<u64> {
        self.kills.get(i)?.iter().copied().filter(|&k| k >= t).min()
    }

    /// The last kill of node `i` at or before `t`.
    pub fn last_kill(&self, i: usize, t: u64) -> Option<u64> {
        self.kills.get(i)?.iter().copied().filter(|&k| k <= t).max()
    }
}

/// Settings of a check.
#[derive(Clone, Debug)]
pub struct CheckParams {
    /// Clock skew of each node, ms.
    pub skews_ms: Vec<i64>,
    /// Timestamps are HLC readings (the DEL windows use physical time); false: Lamport.
    pub hlc: bool,
    /// A loss is expected (no durability) when the acknowledging node was killed less than
    /// this much connected time after the acknowledgement.
    pub crash_window_ms: u64,
    /// Concurrent values a key keeps at most.
    pub max_concurrent: usize,
    /// Slack on wall-clock readings between the harness and the nodes, ms.
    pub margin_ms: u64,
    /// Anomalies described in full at most.
    pub max_examples: usize,
    /// A node cut off (paused, or in the smaller group of a partition) for this long after a
    /// write may drop it when it comes back (its horizon reset drops entries older than the
    /// tombstone grace): the grace less the skews, `None` without purging.
    pub reset_after_ms: Option<u64>,
    /// Length of every value the workload writes (values are compared byte for byte on a
    /// timestamp tie).
    pub value_size: usize,
}

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckResult {
    /// Keys checked.
    pub keys: u64,
    /// Acknowledged PUTs checked.
    pub acked_puts: u64,
    /// Acknowledged DELs checked.
    pub acked_dels: u64,
    /// Acknowledged PUTs lost (final state below them): a bug.
    pub lost: u64,
    /// Keys with at least one lost write.
    pub lost_keys: u64,
    /// Acknowledged PUTs lost because the node that took them was killed soon after
    /// (in-memory store, no durability), or cut off past the purge horizon before it could
    /// gossip them (its reset drops them): expected.
    pub lost_with_crash: u64,
    /// Keys whose value came back because every acknowledged DEL that beats it was taken
    /// by a node killed soon after (its tombstone died with it): expected.
    pub deletes_lost_with_crash: u64,
    /// (key, node) pairs whose state differs from the best node's.
    pub stale: u64,
    /// Keys whose value came back after an acknowledged DEL that must beat it.
    pub resurrected: u64,
    /// Versions no write made.
    pub unexplained: u64,
    /// Acknowledged concurrent values missing from the kept set.
    pub missing_concurrent: u64,
    /// (key, node) pairs where GET disagrees with VERSIONS.
    pub get_mismatch: u64,
    /// Longest connected time between an acknowledgement and the kill of its node among
    /// the writes lost with a crash, ms (short: they had not been gossiped yet).
    pub max_crash_gap_ms: u64,
    /// Final winners made by a write that got no answer (indeterminate, then applied).
    pub indeterminate_won: u64,
    /// Descriptions of the first anomalies.
    pub examples: Vec<String>,
}

impl CheckResult {
    /// No lost, stale, resurrected, unexplained or missing value, and GET agrees.
    pub fn valid(&self) -> bool {
        self.lost == 0
            && self.stale == 0
            && self.resurrected == 0
            && self.unexplained == 0
            && self.missing_concurrent == 0
            && self.get_mismatch == 0
    }

    fn example(&mut self, max: usize, text: impl FnOnce() -> String) {
        if self.examples.len() < max {
            self.examples.push(text());
        }
    }
}

/// What is known about a DEL's timestamp.
#[derive(Clone, Copy, Debug)]
struct DelWindow {
    node: u32,
    lo: u64,
    hi: u64,
    acked: bool,
    /// Acknowledged by a node killed this soon after (its tombstone may be gone with it).
    gap: Option<u64>,
}

fn skewed(ms: u64, skew: i64) -> u64 {
    ms.saturating_add_signed(skew)
}

/// Checks the final reads of every node (`finals[node]`, keys absent from a map count as
/// holding nothing) against the history.
pub fn check(
    ops: &[Op],
    finals: &[HashMap<KeyId, NodeRead>],
    timeline: &Timeline,
    p: &CheckParams,
) -> CheckResult {
    let mut r = CheckResult::default();
    let max_skew = p.skews_ms.iter().copied().max().unwrap_or(0);
    let skew = |n: u16| p.skews_ms.get(usize::from(n)).copied().unwrap_or(0);

    // lower bound from the node's own earlier acknowledged PUTs (same process only)
    let mut by_node: HashMap<u16, Vec<(u64, u64)>> = HashMap::new();
    for op in ops {
        if let (Some(_), Some(ts)) = (op.put, op.ts()) {
            by_node.entry(op.node).or_default().push((op.done_ms, ts));
        }
    }
    for v in by_node.values_mut() {
        v.sort_unstable();
    }
    let same_node_floor = |node: u16, invoked: u64| -> u64 {
        let Some(v) = by_node.get(&node) else { return 0 };
        let since = timeline.last_kill(usize::from(node), invoked).unwrap_or(0);
        let end = v.partition_point(|&(done, _)| done < invoked);
        v[..end]
            .iter()
            .rev()
            .take_while(|&&(done, _)| done > since)
            .map(|&(_, ts)| ts.saturating_add(1))
            .max()
            .unwrap_or(0)
    };

    let mut keys: HashMap<KeyId, Vec<&Op>> = HashMap::new();
    let mut puts: HashMap<ValueId, &Op> = HashMap::new();
    for op in ops {
        keys.entry(op.key).or_default().push(op);
        if let Some(v) = op.put {
            puts.insert(v, op);
        }
    }
    // connected ms between the acknowledgement and the next kill of its node, or the end of
    // a disconnection that lasted past the purge horizon (the node then resets, dropping
    // its entries older than the horizon), if under the crash window
    let crash_gap = |op: &Op| -> Option<u64> {
        let i = usize::from(op.node);
        let gap = |end: u64| {
            Some(timeline.connected_ms(i, op.done_ms, end)).filter(|&g| g < p.crash_window_ms)
        };
        let kill = timeline.next_kill(i, op.done_ms).and_then(gap);
        let reset = p.reset_after_ms.and_then(|after| {
            let spans = timeline.disconnected.get(i)?;
            spans
                .iter()
                .map(|&(_, end)| end)
                .filter(|&e| e >= op.done_ms + after)
                .filter_map(gap)
                .min()
        });
        kill.into_iter().chain(reset).min()
    };
    let excused = |op: &Op| crash_gap(op).is_some();

    let mut sorted: Vec<_> = keys.into_iter().collect();
    sorted.sort_unstable_by_key(|(k, _)| *k);
    let empty = NodeRead::default();
    for (key, kops) in sorted {
        r.keys += 1;
        let dels: Vec<DelWindow> = kops
            .iter()
            .filter(|o| o.put.is_none())
            .map(|o| {
                let acked = o.acked();
                let phys = if p.hlc {
                    hlc_pack(skewed(o.invoked_ms, skew(o.node)).saturating_sub(p.margin_ms), 0)
                } else {
                    0
                };
                let lo = if acked { phys.max(same_node_floor(o.node, o.invoked_ms)) } else { phys };
                let hi = if p.hlc && acked {
                    hlc_pack(skewed(o.done_ms, max_skew) + p.margin_ms, u16::MAX)
                } else {
                    u64::MAX
                };
                let gap = if acked { crash_gap(o) } else { None };
                DelWindow { node: u32::from(o.node), lo, hi, acked, gap }
            })
            .collect();
        r.acked_dels += dels.iter().filter(|d| d.acked).count() as u64;
        let reads: Vec<&NodeRead> = finals.iter().map(|f| f.get(&key).unwrap_or(&empty)).collect();

        // the best state: the node whose winner ranks highest
        let best = reads
            .iter()
            .copied()
            .max_by(|a, b| match (a.versions.first(), b.versions.first()) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => lww::rank(y.as_ref(), x.as_ref()),
            })
            .unwrap_or(&empty);
        let deleted = |s: &NodeRead| s.versions.iter().all(Version::is_tombstone);
        for (n, s) in reads.iter().enumerate() {
            let same = if deleted(best) { deleted(s) } else { s.versions == best.versions };
            if !same {
                r.stale += 1;
                r.example(p.max_examples, || {
                    format!(
                        "stale: {key} at node {n}: {:?}, best node holds {:?}",
                        s.versions, best.versions
                    )
                });
            }
            let want = s.versions.first().and_then(|v| v.value.as_deref());
            if s.get.as_deref() != want {
                r.get_mismatch += 1;
                r.example(p.max_examples, || {
                    format!("GET mismatch: {key} at node {n}: GET {:?}, VERSIONS {want:?}", s.get)
                });
            }
        }
        let fin = best.versions.first();

        // every kept version must come from a write
        for v in &best.versions {
            let explained = match &v.value {
                Some(bytes) => {
                    ValueId::parse(bytes).and_then(|id| puts.get(&id)).is_some_and(|o| {
                        o.key == key
                            && u32::from(o.node) == v.origin
                            && match o.outcome {
                                Outcome::Acked { ts } => ts == Some(v.ts),
                                Outcome::Indeterminate => true,
                            }
                    })
                }
                None => dels.iter().any(|d| d.node == v.origin && d.lo <= v.ts && v.ts <= d.hi),
            };
            if !explained {
                r.unexplained += 1;
                r.example(p.max_examples, || {
                    format!("unexplained: {key} holds {v:?}, which no write made")
                });
            }
        }
        if let Some(f) = fin
            && let Some(id) = f.value.as_deref().and_then(ValueId::parse)
            && puts.get(&id).is_some_and(|o| o.outcome == Outcome::Indeterminate)
        {
            r.indeterminate_won += 1;
        }

        // acknowledged PUTs: none may rank above the final winner
        let mut key_lost = false;
        for o in kops.iter().filter(|o| o.put.is_some()) {
            let (Some(ts), Some(id)) = (o.ts(), o.put) else { continue };
            r.acked_puts += 1;
            let w = Version::put(ts, u32::from(o.node), id.bytes(p.value_size));
            let below = match fin {
                Some(f) => lww::beats(w.as_ref(), f.as_ref()),
                // everything purged: fine if some DEL may have beaten it
                None => !dels.iter().any(|d| d.hi >= ts),
            };
            // a kept concurrent value at the winning timestamp is not lost
            let kept = best.versions.contains(&w);
            if below && !kept {
                if let Some(gap) = crash_gap(o) {
                    r.lost_with_crash += 1;
                    r.max_crash_gap_ms = r.max_crash_gap_ms.max(gap);
                } else {
                    r.lost += 1;
                    key_lost = true;
                    r.example(p.max_examples, || {
                        format!(
                            "lost: {key} PUT {id:?} ts {ts} at node {} acked at {} ms; final {fin:?}",
                            o.node, o.done_ms
                        )
                    });
                }
            }
            if let Some(f) = fin
                && f.ts == ts
                && !kept
                && !excused(o)
                && best.versions.len() < p.max_concurrent
            {
                r.missing_concurrent += 1;
                r.example(p.max_examples, || {
                    format!("missing concurrent value: {key} PUT {id:?} ts {ts} at node {}", o.node)
                });
            }
        }
        if key_lost {
            r.lost_keys += 1;
        }

        // acknowledged DELs: a value at or below a DEL's lower bound must not win
        let beaten_by =
            |d: &&DelWindow| d.acked && fin.is_some_and(|f| !f.is_tombstone() && f.ts <= d.lo);
        if dels.iter().filter(beaten_by).all(|d| d.gap.is_some())
            && dels.iter().any(|d| beaten_by(&d))
        {
            r.deletes_lost_with_crash += 1;
            let gap = dels.iter().filter(beaten_by).filter_map(|d| d.gap).min().unwrap_or(0);
            r.max_crash_gap_ms = r.max_crash_gap_ms.max(gap);
        }
        if let Some(f) = fin
            && let Some(d) = dels.iter().filter(beaten_by).find(|d| d.gap.is_none())
        {
            r.resurrected += 1;
            r.example(p.max_examples, || {
                format!(
                    "resurrected: {key} holds {f:?} but a DEL at node {} has ts >= {}",
                    d.node, d.lo
                )
            });
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 3;

    fn params(hlc: bool) -> CheckParams {
        CheckParams {
            skews_ms: vec![0; N],
            hlc,
            crash_window_ms: 1_000,
            max_concurrent: 16,
            margin_ms: 0,
            max_examples: 10,
            value_size: 16,
            reset_after_ms: Some(10_000),
        }
    }

    fn put(key: u32, seq: u32, node: u16, at: u64, ts: Option<u64>) -> Op {
        Op {
            key: KeyId::hot(key),
            put: Some(ValueId { client: 0, seq }),
            node,
            invoked_ms: at,
            done_ms: at + 1,
            outcome: match ts {
                Some(ts) => Outcome::Acked { ts: Some(ts) },
                None => Outcome::Indeterminate,
            },
        }
    }

    fn del(key: u32, node: u16, at: u64) -> Op {
        Op {
            key: KeyId::hot(key),
            put: None,
            node,
            invoked_ms: at,
            done_ms: at + 1,
            outcome: Outcome::Acked { ts: None },
        }
    }

    fn value(seq: u32, node: u16, ts: u64) -> Version {
        Version::put(ts, u32::from(node), ValueId { client: 0, seq }.bytes(16))
    }

    /// Every node holds `versions` for key 0 (GET agreeing).
    fn everywhere(versions: Vec<Version>) -> Vec<HashMap<KeyId, NodeRead>> {
        let get = versions.first().and_then(|v| v.value.as_deref().map(<[u8]>::to_vec));
        let read = NodeRead { versions, get };
        (0..N).map(|_| HashMap::from([(KeyId::hot(0), read.clone())])).collect()
    }

    fn run(ops: &[Op], finals: &[HashMap<KeyId, NodeRead>], t: &Timeline) -> CheckResult {
        check(ops, finals, t, &params(false))
    }

    #[test]
    fn the_lww_winner_everywhere_is_valid() {
        let ops = [put(0, 1, 0, 10, Some(5)), put(0, 2, 1, 20, Some(7))];
        let r = run(&ops, &everywhere(vec![value(2, 1, 7)]), &Timeline::new(N));
        assert!(r.valid(), "{r:?}");
        assert_eq!((r.keys, r.acked_puts, r.lost), (1, 2, 0));
    }

    #[test]
    fn a_superseded_winner_is_a_lost_write() {
        let ops = [put(0, 1, 0, 10, Some(5)), put(0, 2, 1, 20, Some(7))];
        let r = run(&ops, &everywhere(vec![value(1, 0, 5)]), &Timeline::new(N));
        assert_eq!((r.lost, r.lost_keys, r.lost_with_crash), (1, 1, 0));
        assert!(!r.valid());
    }

    #[test]
    fn a_loss_right_before_a_kill_is_blamed_on_the_crash_but_not_one_long_before() {
        let ops = [put(0, 1, 0, 10, Some(5)), put(0, 2, 1, 20, Some(7))];
        let finals = everywhere(vec![value(1, 0, 5)]);
        let mut t = Timeline::new(N);
        t.kills[1] = vec![300];
        let r = run(&ops, &finals, &t);
        assert_eq!((r.lost, r.lost_with_crash, r.max_crash_gap_ms), (0, 1, 279));
        assert!(r.valid());
        // killed 5 s later: it had time to gossip
        t.kills[1] = vec![5_000];
        assert_eq!(run(&ops, &finals, &t).lost, 1);
        // ... unless it was cut off most of that time
        t.disconnected[1] = vec![(100, 3_000), (2_500, 4_800)];
        assert_eq!(t.connected_ms(1, 21, 5_000), 79 + 200);
        assert_eq!(run(&ops, &finals, &t).lost_with_crash, 1);
    }

    #[test]
    fn a_loss_by_a_node_cut_off_past_the_horizon_right_after_is_expected() {
        let ops = [put(0, 1, 0, 10, Some(5)), put(0, 2, 1, 20, Some(7))];
        let finals = everywhere(vec![value(1, 0, 5)]);
        let mut t = Timeline::new(N);
        // paused 100 ms after the acknowledgement, back 12 s later (> the 10 s horizon)
        t.disconnected[1] = vec![(121, 12_121)];
        let r = run(&ops, &finals, &t);
        assert_eq!((r.lost, r.lost_with_crash, r.max_crash_gap_ms), (0, 1, 100));
        // back within the horizon: it keeps the write, which must not be lost
        t.disconnected[1] = vec![(121, 8_000)];
        assert_eq!(run(&ops, &finals, &t).lost, 1);
    }

    #[test]
    fn a_node_behind_is_stale_and_get_must_agree_with_versions() {
        let ops = [put(0, 1, 0, 10, Some(5)), put(0, 2, 1, 20, Some(7))];
        let mut finals = everywhere(vec![value(2, 1, 7)]);
        finals[2].insert(
            KeyId::hot(0),
            NodeRead { versions: vec![value(1, 0, 5)], get: Some(b"wrong".to_vec()) },
        );
        let r = run(&ops, &finals, &Timeline::new(N));
        assert_eq!((r.stale, r.lost, r.get_mismatch), (1, 0, 1));
        assert!(!r.valid());
    }

    #[test]
    fn a_value_back_after_a_later_delete_at_the_same_node_is_a_resurrection() {
        // node 0 acknowledged ts 9 (another key) before the DEL: the tombstone is above 9
        let ops = [put(0, 1, 1, 10, Some(5)), put(1, 2, 0, 20, Some(9)), del(0, 0, 30)];
        let mut finals = everywhere(vec![value(1, 1, 5)]);
        for f in &mut finals {
            f.insert(KeyId::hot(1), NodeRead { versions: vec![value(2, 0, 9)], get: None });
            if let Some(r) = f.get_mut(&KeyId::hot(1)) {
                r.get = Some(ValueId { client: 0, seq: 2 }.bytes(16));
            }
        }
        let r = run(&ops, &finals, &Timeline::new(N));
        assert_eq!(r.resurrected, 1, "{r:?}");
        // the DEL's node died right after: its tombstone may have died with it
        let mut t = Timeline::new(N);
        t.kills[0] = vec![100];
        let r = run(&ops, &finals, &t);
        assert_eq!((r.resurrected, r.deletes_lost_with_crash), (0, 1));
        // a value written above the DEL's bound may win
        let finals = everywhere(vec![value(1, 1, 11)]);
        let ops2 = [put(0, 1, 1, 10, Some(11)), put(1, 2, 0, 20, Some(9)), del(0, 0, 30)];
        let r = run(&ops2, &finals, &Timeline::new(N));
        assert_eq!(r.resurrected, 0);
    }

    #[test]
    fn hlc_deletes_are_bounded_by_physical_time() {
        let ms = 1_800_000_000_000;
        let ops = [put(0, 1, 1, ms, Some(hlc_pack(ms, 3))), del(0, 2, ms + 500)];
        // the DEL was sent 500 ms after the PUT: its tombstone is above (ms + 500) << 16
        let r = check(
            &ops,
            &everywhere(vec![value(1, 1, hlc_pack(ms, 3))]),
            &Timeline::new(N),
            &params(true),
        );
        assert_eq!(r.resurrected, 1);
        // its tombstone, inside its window, explains an empty or deleted final state
        let tomb = Version::tombstone(hlc_pack(ms + 500, 0), 2);
        let r = check(&ops, &everywhere(vec![tomb]), &Timeline::new(N), &params(true));
        assert!(r.valid(), "{r:?}");
        let r = check(&ops, &everywhere(vec![]), &Timeline::new(N), &params(true));
        assert!(r.valid(), "{r:?}");
        // a tombstone from before the DEL was sent was made by nobody
        let early = Version::tombstone(hlc_pack(ms - 10_000, 0), 2);
        let r = check(&ops, &everywhere(vec![early]), &Timeline::new(N), &params(true));
        assert_eq!((r.unexplained, r.lost), (1, 1));
        // nothing left, and the only DEL finished long before the PUT: the PUT is lost
        let ops = [del(0, 2, ms - 60_000), put(0, 1, 1, ms, Some(hlc_pack(ms, 3)))];
        let r = check(&ops, &everywhere(vec![]), &Timeline::new(N), &params(true));
        assert_eq!(r.lost, 1);
    }

    #[test]
    fn values_no_write_made_are_unexplained_and_indeterminate_writes_may_win() {
        let ops = [put(0, 1, 0, 10, Some(5)), put(0, 2, 1, 20, None)];
        // the unanswered PUT took effect later, with a higher timestamp
        let r = run(&ops, &everywhere(vec![value(2, 1, 50)]), &Timeline::new(N));
        assert!(r.valid(), "{r:?}");
        assert_eq!(r.indeterminate_won, 1);
        // a value with the acknowledged id but another timestamp, or from another node
        for bogus in [value(1, 0, 6), value(1, 2, 5), value(9, 0, 99)] {
            let r = run(&ops, &everywhere(vec![bogus.clone()]), &Timeline::new(N));
            assert_eq!(r.unexplained, 1, "{bogus:?}");
        }
    }

    #[test]
    fn every_acknowledged_concurrent_value_is_kept() {
        let ops = [put(0, 1, 0, 10, Some(7)), put(0, 2, 1, 20, Some(7))];
        let (a, b) = (value(1, 0, 7), value(2, 1, 7));
        let (best, other) = if lww::beats(a.as_ref(), b.as_ref()) { (a, b) } else { (b, a) };
        let r = run(&ops, &everywhere(vec![best.clone(), other]), &Timeline::new(N));
        assert!(r.valid(), "{r:?}");
        let r = run(&ops, &everywhere(vec![best]), &Timeline::new(N));
        assert_eq!((r.missing_concurrent, r.lost), (1, 0));
    }

    #[test]
    fn connected_time_merges_overlapping_gaps() {
        let mut t = Timeline::new(1);
        t.disconnected[0] = vec![(10, 20), (15, 30), (50, 60), (100, 200)];
        assert_eq!(t.connected_ms(0, 0, 100), 100 - 20 - 10);
        assert_eq!(t.connected_ms(0, 25, 55), 30 - 5 - 5);
        assert_eq!(t.connected_ms(0, 60, 50), 0);
        t.kills[0] = vec![5, 40];
        assert_eq!(
            (t.next_kill(0, 6), t.last_kill(0, 39), t.next_kill(0, 41)),
            (Some(40), Some(5), None)
        );
    }
}
