//! The client workload: threads that PUT and DEL through the `redis` crate at random nodes
//! and record every write that may have taken effect ([`Op`]).
//!
//! A write answered `LOADING` (a restarted node catching up), refused, or whose connection
//! could not be opened was not applied: it is counted and retried at another node. A write
//! sent without an answer (timeout, connection lost: the node was killed or paused) is
//! indeterminate: it may take effect now, later (a paused node resumes) or never.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gossipkv_core::rng::Rng;
use redis::ErrorKind;

use crate::history::{ClientStats, KeyId, Op, Outcome, ValueId};

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Client threads.
    pub clients: usize,
    /// Hot keys every client writes (few keys: many conflicts).
    pub hot_keys: u32,
    /// Share of hot-key writes that are DELs.
    pub del_ratio: f64,
    /// Share of operations on churn keys: a client creates fresh keys and deletes each
    /// after a few more (tombstones that only purging bounds).
    pub churn: f64,
    /// Bytes per value.
    pub value_size: usize,
    /// Operations per second over all clients (0: as fast as the nodes answer).
    pub rate: f64,
    /// Connect and I/O timeout of one request.
    pub timeout: Duration,
    /// Seed of the clients' choices.
    pub seed: u64,
}

/// Churn keys a client keeps alive before deleting the oldest.
const CHURN_DEPTH: usize = 4;

/// Most operations one client sends (a bound on the loop besides the deadline).
const MAX_OPS_PER_CLIENT: u64 = 100_000_000;

/// What one client did.
#[derive(Debug, Default)]
pub struct ClientResult {
    /// Writes that took or may have taken effect.
    pub ops: Vec<Op>,
    /// Counts.
    pub stats: ClientStats,
    /// The first few unexpected error replies.
    pub errors: Vec<String>,
}

/// Milliseconds since the UNIX epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

enum Attempt {
    Acked(Option<u64>),
    NotApplied,
    Indeterminate,
}

struct Client<'a> {
    spec: &'a WorkloadSpec,
    nodes: &'a [SocketAddr],
    conns: Vec<Option<redis::Connection>>,
    res: ClientResult,
}

impl Client<'_> {
    fn conn(&mut self, node: usize) -> Option<&mut redis::Connection> {
        if self.conns[node].is_none() {
            let url = format!("redis://{}/", self.nodes[node]);
            let timeout = self.spec.timeout;
            let conn = redis::Client::open(url)
                .and_then(|c| c.get_connection_with_timeout(timeout))
                .and_then(|c| {
                    c.set_read_timeout(Some(timeout))?;
                    c.set_write_timeout(Some(timeout))?;
                    Ok(c)
                });
            match conn {
                Ok(c) => self.conns[node] = Some(c),
                Err(_) => {
                    // nothing of ours was sent: down, or paused during the handshake
                    self.res.stats.refused += 1;
                    return None;
                }
            }
        }
        self.conns[node].as_mut()
    }

    fn attempt(&mut self, node: usize, key: &str, value: Option<&[u8]>) -> Attempt {
        self.res.stats.attempts += 1;
        let Some(conn) = self.conn(node) else { return Attempt::NotApplied };
        let result = match value {
            Some(v) => redis::cmd("PUT").arg(key).arg(v).query::<u64>(conn).map(Some),
            None => redis::cmd("DEL").arg(key).query::<i64>(conn).map(|_| None),
        };
        match result {
            Ok(ts) => Attempt::Acked(ts),
            Err(e) if e.code() == Some("LOADING") => {
                self.res.stats.loading += 1;
                Attempt::NotApplied
            }
            Err(e) if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
                self.res.stats.errors += 1;
                if self.res.errors.len() < 5 {
                    self.res.errors.push(format!("node {node}: {e}"));
                }
                Attempt::NotApplied
            }
            Err(_) => {
                // sent, no answer: the reply may still come on this connection; drop it
                self.conns[node] = None;
                self.res.stats.indeterminate += 1;
                Attempt::Indeterminate
            }
        }
    }
}

/// Runs one client until `stop` is set or `deadline` passes. Each operation goes to a
/// random node; when that node does not apply it, the next nodes are tried in turn.
pub fn run_client(
    id: u16,
    spec: &WorkloadSpec,
    nodes: &[SocketAddr],
    stop: &AtomicBool,
    deadline: Instant,
) -> ClientResult {
    let mut c = Client {
        spec,
        nodes,
        conns: (0..nodes.len()).map(|_| None).collect(),
        res: ClientResult::default(),
    };
    let mut rng = Rng::new(spec.seed ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xc11e);
    let period =
        (spec.rate > 0.0).then(|| Duration::from_secs_f64(spec.clients as f64 / spec.rate));
    let mut next = Instant::now();
    let mut churn: VecDeque<u32> = VecDeque::new();
    let mut churn_next = 0u32;
    let mut seq = 0u32;
    let n = nodes.len().max(1);
    while !stop.load(Ordering::Relaxed)
        && Instant::now() < deadline
        && u64::from(seq) < MAX_OPS_PER_CLIENT
    {
        if let Some(p) = period {
            next += p;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > Duration::from_secs(1) {
                next = now; // fell behind (nodes down): do not burst to catch up
            }
        }
        seq = seq.wrapping_add(1);
        let (key, put) = if spec.churn > 0.0 && rng.chance(spec.churn) {
            if churn.len() >= CHURN_DEPTH {
                (KeyId::churn(id, churn[0]), false)
            } else {
                churn_next += 1;
                (KeyId::churn(id, churn_next), true)
            }
        } else {
            (
                KeyId::hot(rng.below(u64::from(spec.hot_keys.max(1))) as u32),
                !rng.chance(spec.del_ratio),
            )
        };
        let value_id = put.then_some(ValueId { client: id, seq });
        let value = value_id.map(|v| v.bytes(spec.value_size));
        let name = key.name();
        let first = rng.below(n as u64) as usize;
        let mut done = false;
        for t in 0..n {
            let node = (first + t) % n;
            let invoked_ms = wall_ms();
            let outcome = match c.attempt(node, &name, value.as_deref()) {
                Attempt::Acked(ts) => Outcome::Acked { ts },
                Attempt::Indeterminate => Outcome::Indeterminate,
                Attempt::NotApplied => continue,
            };
            let op = Op {
                key,
                put: value_id,
                node: node as u16,
                invoked_ms,
                done_ms: wall_ms(),
                outcome,
            };
            c.res.ops.push(op);
            if let Outcome::Acked { .. } = outcome {
                if put {
                    c.res.stats.acked_puts += 1;
                    if key.is_churn() {
                        churn.push_back(churn_next);
                    }
                } else {
                    c.res.stats.acked_dels += 1;
                    if key.is_churn() {
                        churn.pop_front();
                    }
                }
            }
            done = true;
            break;
        }
        if !done {
            c.res.stats.gave_up += 1;
            // every node refused: do not spin
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    c.res
}
