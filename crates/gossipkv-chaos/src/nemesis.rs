//! The nemesis: starts a random fault every so often and ends each after a random time.
//!
//! | fault | how | how long |
//! | --- | --- | --- |
//! | `kill` | SIGKILL, then a restart without `--fresh` (the node gates writes until caught up) | down 0.2-3 s |
//! | `pause` | SIGSTOP, then SIGCONT | 0.3-4 s (at most 0.4 × grace) |
//! | `long-pause` | SIGSTOP past half the tombstone grace: the node must find itself away and reset | 0.55-0.8 × grace |
//! | `partition` | a random group of 1..n/2 nodes and the rest drop each other's gossip (control file `block`) | 1-5 s (at most 0.4 × grace) |
//! | `drop` | one node drops a share of its gossip, 5% to `max_drop` | 1-6 s |
//! | `dup` | one node sends 10-50% of its messages twice | 1-6 s |
//! | `delay` | one node holds each message a random 0-10..300 ms | 1-6 s |
//! | `skew` | each node's clock is off by up to ±`max_skew_ms`, for the whole run | whole run |
//!
//! At most `max_down` nodes are killed or paused at once, so the clients always find a node.

use std::collections::BTreeMap;
use std::fmt;

use clap::ValueEnum;
use gossipkv_core::rng::Rng;

use crate::ChaosError;
use crate::checker::Timeline;
use crate::cluster::{Cluster, Control};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum FaultKind {
    /// kill -9, then restart.
    Kill,
    /// SIGSTOP / SIGCONT.
    Pause,
    /// A pause past half the tombstone grace period.
    LongPause,
    /// Two groups that drop each other's gossip.
    Partition,
    /// Gossip loss at one node.
    Drop,
    /// Duplicated messages at one node.
    Dup,
    /// Delayed messages at one node.
    Delay,
    /// Clock skew per node (whole run).
    Skew,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::LongPause,
        FaultKind::Partition,
        FaultKind::Drop,
        FaultKind::Dup,
        FaultKind::Delay,
        FaultKind::Skew,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
        f.write_str(&s)
    }
}

/// How faults are chosen.
#[derive(Clone, Debug)]
pub struct NemesisSpec {
    /// Kinds to inject (`skew` is applied at start, the others during the run).
    pub kinds: Vec<FaultKind>,
    /// Mean milliseconds between two fault starts.
    pub every_ms: u64,
    /// Most nodes killed or paused at once.
    pub max_down: usize,
    /// Nodes `0..never_kill` are never killed (their memory can be followed across a soak).
    pub never_kill: usize,
    /// Highest drop rate a `drop` fault sets.
    pub max_drop: f64,
    /// The nodes' tombstone grace period, ms (0: none; `long-pause` is then skipped).
    pub grace_ms: u64,
    /// Seed of the nemesis's choices.
    pub seed: u64,
}

#[derive(Clone, Copy, Debug)]
enum End {
    Restart(usize),
    Resume(usize),
    Heal(u64),
    Drop(usize),
    Dup(usize),
    Delay(usize),
}

#[derive(Clone, Debug)]
struct Partition {
    id: u64,
    side: Vec<bool>,
    since: u64,
}

/// The nemesis's state: active faults, what was injected, when nodes were disconnected.
pub struct Nemesis {
    spec: NemesisSpec,
    rng: Rng,
    active: Vec<(u64, End)>,
    partitions: Vec<Partition>,
    next_partition: u64,
    next_fault_ms: u64,
    paused_since: Vec<Option<u64>>,
    long_pause: Option<usize>,
    counts: BTreeMap<FaultKind, u64>,
    restarts: u64,
    timeline: Timeline,
    log: Vec<(u64, String)>,
    bag: Vec<FaultKind>,
}

impl Nemesis {
    /// A nemesis for `n` nodes; the first fault starts about `every_ms` after `now`.
    pub fn new(spec: NemesisSpec, n: usize, now: u64) -> Self {
        let mut rng = Rng::new(spec.seed ^ 0x4e4e_4e4e);
        let first = now + spec.every_ms / 2 + rng.below(spec.every_ms.max(1));
        Self {
            spec,
            rng,
            active: Vec::new(),
            partitions: Vec::new(),
            next_partition: 1,
            next_fault_ms: first,
            paused_since: vec![None; n],
            long_pause: None,
            counts: BTreeMap::new(),
            restarts: 0,
            timeline: Timeline::new(n),
            log: Vec::new(),
            bag: Vec::new(),
        }
    }

    /// Faults injected so far, by kind.
    pub fn counts(&self) -> &BTreeMap<FaultKind, u64> {
        &self.counts
    }

    /// Restarts after kills (and after unexpected exits).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Kill times and disconnected intervals so far.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// What was done when: `(wall ms, event)`.
    pub fn log(&self) -> &[(u64, String)] {
        &self.log
    }

    /// Records that `n` nodes run with a skewed clock.
    pub fn note_skew(&mut self, n: u64) {
        if n > 0 {
            *self.counts.entry(FaultKind::Skew).or_default() += n;
        }
    }

    /// A node exited on its own: record it like a kill and restart it soon.
    pub fn note_exit(&mut self, node: usize, now: u64) {
        self.log.push((now, format!("node {node} exited on its own")));
        self.timeline.kills[node].push(now);
        self.close_pause(node, now);
        self.active.push((now + 500, End::Restart(node)));
    }

    fn down(&self, c: &Cluster) -> usize {
        (0..c.len()).filter(|&i| !c.is_running(i) || c.is_paused(i)).count()
    }

    fn span(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.rng.below(hi.saturating_sub(lo).max(1))
    }

    fn pick(&mut self, candidates: &[usize]) -> Option<usize> {
        (!candidates.is_empty())
            .then(|| candidates[self.rng.below(candidates.len() as u64) as usize])
    }

    /// Ends the faults that are due and starts a new one when it is time.
    pub fn step(&mut self, c: &mut Cluster, now: u64) -> Result<(), ChaosError> {
        let mut due = Vec::new();
        self.active.retain(|&(t, e)| {
            if t <= now {
                due.push(e);
                false
            } else {
                true
            }
        });
        for e in due {
            self.end(c, e, now)?;
        }
        if now >= self.next_fault_ms {
            let gap = self.span(self.spec.every_ms / 2, self.spec.every_ms * 3 / 2);
            self.next_fault_ms = now + gap.max(1);
            // kinds come from a shuffled bag, so every kind shows up early in a short run; when
            // no kind left in the bag can start now, a fresh bag is added behind it
            for attempt in 0..2 {
                if self.bag.is_empty() || attempt == 1 {
                    self.refill_bag();
                }
                let mut started = None;
                for idx in (0..self.bag.len()).rev() {
                    let kind = self.bag[idx];
                    if self.start(c, kind, now)? {
                        started = Some(idx);
                        break;
                    }
                }
                if let Some(idx) = started {
                    let kind = self.bag.remove(idx);
                    *self.counts.entry(kind).or_default() += 1;
                    break;
                }
            }
        }
        Ok(())
    }

    fn refill_bag(&mut self) {
        let grace = self.spec.grace_ms;
        let mut fresh: Vec<FaultKind> = self
            .spec
            .kinds
            .iter()
            .copied()
            .filter(|k| *k != FaultKind::Skew && (*k != FaultKind::LongPause || grace > 0))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        for i in (1..fresh.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            fresh.swap(i, j);
        }
        if self.bag.len() > 4 * FaultKind::ALL.len() {
            self.bag.clear();
        }
        // the fresh bag goes behind the old one (taken from the end)
        fresh.append(&mut self.bag);
        self.bag = fresh;
    }

    /// Ends every active fault: restarts killed nodes, resumes paused ones, heals partitions
    /// and clears every control file.
    pub fn heal(&mut self, c: &mut Cluster, now: u64) -> Result<(), ChaosError> {
        let all: Vec<End> = self.active.drain(..).map(|(_, e)| e).collect();
        for e in all {
            self.end(c, e, now)?;
        }
        for i in 0..c.len() {
            if !c.is_running(i) {
                c.restart(i)?;
                self.restarts += 1;
            }
            c.resume(i)?;
            self.close_pause(i, now);
            c.set_control(i, Control::default())?;
        }
        Ok(())
    }

    fn close_pause(&mut self, i: usize, now: u64) {
        if let Some(since) = self.paused_since[i].take() {
            self.timeline.disconnected[i].push((since, now));
        }
        if self.long_pause == Some(i) {
            self.long_pause = None;
        }
    }

    fn end(&mut self, c: &mut Cluster, e: End, now: u64) -> Result<(), ChaosError> {
        self.log.push((now, format!("end {e:?}")));
        match e {
            End::Restart(i) => {
                if !c.is_running(i) {
                    c.restart(i)?;
                    self.restarts += 1;
                }
            }
            End::Resume(i) => {
                c.resume(i)?;
                self.close_pause(i, now);
            }
            End::Heal(id) => {
                if let Some(k) = self.partitions.iter().position(|p| p.id == id) {
                    let p = self.partitions.remove(k);
                    // the smaller group is the one cut off
                    for (i, _) in p.side.iter().enumerate().filter(|(_, s)| **s) {
                        self.timeline.disconnected[i].push((p.since, now));
                    }
                    self.apply_blocks(c)?;
                }
            }
            End::Drop(i) => c.set_control(i, Control { drop: None, ..c.control(i).clone() })?,
            End::Dup(i) => c.set_control(i, Control { dup: 0.0, ..c.control(i).clone() })?,
            End::Delay(i) => c.set_control(i, Control { delay_ms: 0, ..c.control(i).clone() })?,
        }
        Ok(())
    }

    fn apply_blocks(&mut self, c: &mut Cluster) -> Result<(), ChaosError> {
        for i in 0..c.len() {
            let mut ctl = c.control(i).clone();
            ctl.blocked.clear();
            for p in &self.partitions {
                for (j, &side) in p.side.iter().enumerate() {
                    if side != p.side[i] {
                        ctl.blocked.insert(j);
                    }
                }
            }
            c.set_control(i, ctl)?;
        }
        Ok(())
    }

    /// Starts one fault of `kind`; false when no node can take it now.
    fn start(&mut self, c: &mut Cluster, kind: FaultKind, now: u64) -> Result<bool, ChaosError> {
        let n = c.len();
        let up: Vec<usize> = (0..n).filter(|&i| c.is_running(i) && !c.is_paused(i)).collect();
        let can_down = self.down(c) < self.spec.max_down;
        let quarter_grace =
            if self.spec.grace_ms > 0 { self.spec.grace_ms * 2 / 5 } else { u64::MAX };
        match kind {
            FaultKind::Kill => {
                let cands: Vec<usize> =
                    up.iter().copied().filter(|&i| i >= self.spec.never_kill).collect();
                let Some(i) = can_down.then(|| self.pick(&cands)).flatten() else {
                    return Ok(false);
                };
                c.kill(i)?;
                self.timeline.kills[i].push(now);
                let d = self.span(200, 3_000);
                self.active.push((now + d, End::Restart(i)));
            }
            FaultKind::Pause | FaultKind::LongPause => {
                let long = kind == FaultKind::LongPause;
                if long && (self.spec.grace_ms == 0 || self.long_pause.is_some()) {
                    return Ok(false);
                }
                let Some(i) = can_down.then(|| self.pick(&up)).flatten() else { return Ok(false) };
                let d = if long {
                    self.span(self.spec.grace_ms * 11 / 20, self.spec.grace_ms * 4 / 5)
                } else {
                    self.span(300, 4_000.min(quarter_grace).max(301))
                };
                c.pause(i)?;
                self.paused_since[i] = Some(now);
                if long {
                    self.long_pause = Some(i);
                }
                self.active.push((now + d, End::Resume(i)));
            }
            FaultKind::Partition => {
                if n < 2 {
                    return Ok(false);
                }
                let size = 1 + self.rng.below((n / 2) as u64) as usize;
                let mut side = vec![false; n];
                let mut idx = Vec::new();
                self.rng.sample_indices(n, size, &mut idx);
                for &i in &idx {
                    side[i] = true;
                }
                let id = self.next_partition;
                self.next_partition += 1;
                self.partitions.push(Partition { id, side, since: now });
                self.apply_blocks(c)?;
                let d = self.span(1_000, 5_000.min(quarter_grace).max(1_001));
                self.active.push((now + d, End::Heal(id)));
            }
            FaultKind::Drop | FaultKind::Dup | FaultKind::Delay => {
                let cands: Vec<usize> = (0..n)
                    .filter(|&i| {
                        let ctl = c.control(i);
                        match kind {
                            FaultKind::Drop => ctl.drop.is_none(),
                            FaultKind::Dup => ctl.dup == 0.0,
                            _ => ctl.delay_ms == 0,
                        }
                    })
                    .collect();
                let Some(i) = self.pick(&cands) else { return Ok(false) };
                let mut ctl = c.control(i).clone();
                let end = match kind {
                    FaultKind::Drop => {
                        let hi = (self.spec.max_drop * 1000.0) as u64;
                        ctl.drop = Some(self.span(50.min(hi), hi.max(1)) as f64 / 1000.0);
                        End::Drop(i)
                    }
                    FaultKind::Dup => {
                        ctl.dup = self.span(100, 500) as f64 / 1000.0;
                        End::Dup(i)
                    }
                    _ => {
                        ctl.delay_ms = self.span(10, 300);
                        End::Delay(i)
                    }
                };
                c.set_control(i, ctl)?;
                let d = self.span(1_000, 6_000);
                self.active.push((now + d, end));
            }
            FaultKind::Skew => return Ok(false),
        }
        let what = match self.active.last() {
            Some((end, e)) => format!("start {kind} -> {e:?} at +{} ms", end - now),
            None => format!("start {kind}"),
        };
        let detail = match kind {
            FaultKind::Partition => format!(" side {:?}", self.partitions.last().map(|p| &p.side)),
            FaultKind::Drop | FaultKind::Dup | FaultKind::Delay => {
                let i = match self.active.last() {
                    Some((_, End::Drop(i) | End::Dup(i) | End::Delay(i))) => *i,
                    _ => 0,
                };
                format!(" {:?}", c.control(i))
            }
            _ => String::new(),
        };
        self.log.push((now, what + &detail));
        Ok(true)
    }
}
