//! The workload: which key is written where and when, generated up front from the seed.
//!
//! - Key `i` is `"k"` followed by `i` in decimal, left-padded with zeros to `key_size` bytes.
//! - `writes` write slots are spread evenly over the write phase (`write_rounds` intervals).
//!   The first `min(writes, keys)` slots write distinct keys (a random permutation), so every
//!   key is written when `writes >= keys`; further slots overwrite random keys.
//! - A slot is a *conflict group* with probability `conflict_rate`: the same key written at 2
//!   or 3 distinct random nodes in the same virtual millisecond. With the HLC and no skew, nodes
//!   that have not issued or seen a timestamp in that millisecond issue *identical*
//!   timestamps, so these are true equal-timestamp ties (the report counts how many keys end
//!   with several concurrent values). A quarter of the groups write the same value at every
//!   member, so the tie is decided by origin id alone.
//! - Every write is a delete (tombstone) with probability `delete_rate`.
//! - Values are `value_size` lowercase letters drawn from a per-write seed.

use gossipkv_core::rng::Rng;

/// One client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// Virtual time, ms.
    pub t: u64,
    /// Node it is issued at (rerouted to the next live node if that one is down).
    pub node: u32,
    /// Key index.
    pub key: u32,
    /// `Some(seed of the value bytes)` for a PUT, `None` for a DEL.
    pub value: Option<u64>,
}

/// The generated workload.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    /// Operations in time order.
    pub ops: Vec<Op>,
    /// Number of conflict groups.
    pub conflict_groups: usize,
    /// Time of the last operation (or the phase start if there is none).
    pub last_t: u64,
}

/// Number of decimal digits of `x`.
pub fn digits(x: usize) -> usize {
    x.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Writes key `i` (`"k000…i"`, exactly `size` bytes) into `out`.
pub fn key_bytes(i: usize, size: usize, out: &mut Vec<u8>) {
    out.clear();
    let d = digits(i);
    out.push(b'k');
    out.resize(size.saturating_sub(d).max(1), b'0');
    out.extend_from_slice(i.to_string().as_bytes());
}

/// The value bytes of a PUT whose value seed is `seed`.
pub fn value_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let mut x = r.next_u64();
        for _ in 0..8 {
            if out.len() == size {
                break;
            }
            out.push(b'a' + (x % 26) as u8);
            x /= 26;
        }
    }
    out
}

/// Parameters of [`generate`].
#[derive(Clone, Copy, Debug)]
pub struct WorkloadSpec {
    /// Cluster size.
    pub nodes: usize,
    /// Key space.
    pub keys: usize,
    /// Write slots.
    pub writes: usize,
    /// Share of slots that are conflict groups.
    pub conflict_rate: f64,
    /// Share of writes that are deletes.
    pub delete_rate: f64,
    /// Start of the write phase, ms.
    pub start: u64,
    /// Length of the write phase, ms.
    pub span: u64,
}

/// Generates the workload from `rng`.
pub fn generate(spec: &WorkloadSpec, rng: &mut Rng) -> Workload {
    let mut w = Workload { last_t: spec.start, ..Workload::default() };
    if spec.writes == 0 || spec.keys == 0 || spec.nodes == 0 {
        return w;
    }
    // a random permutation of the keys for the first slots
    let distinct = spec.writes.min(spec.keys);
    let mut perm: Vec<u32> = (0..spec.keys as u32).collect();
    for i in 0..distinct {
        let j = i + rng.below((spec.keys - i) as u64) as usize;
        perm.swap(i, j);
    }
    let mut members = Vec::new();
    w.ops.reserve(spec.writes + spec.writes / 8);
    for slot in 0..spec.writes {
        let t = spec.start + (slot as u64 * spec.span) / spec.writes as u64;
        let key = match perm.get(slot).filter(|_| slot < distinct) {
            Some(&k) => k,
            None => rng.below(spec.keys as u64) as u32,
        };
        let conflict = spec.nodes >= 2 && rng.chance(spec.conflict_rate);
        let size = if conflict { 2 + rng.below(2) as usize } else { 1 };
        rng.sample_indices(spec.nodes, size, &mut members);
        let shared_value = conflict && rng.chance(0.25);
        let group_seed = rng.next_u64();
        if conflict {
            w.conflict_groups += 1;
        }
        for (m, &node) in members.iter().enumerate() {
            let value_seed = if shared_value { group_seed } else { group_seed ^ (m as u64 + 1) };
            let value = if rng.chance(spec.delete_rate) { None } else { Some(value_seed) };
            w.ops.push(Op { t, node: node as u32, key, value });
        }
        w.last_t = t;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_exact_size_and_are_distinct() {
        let mut a = Vec::new();
        key_bytes(0, 16, &mut a);
        assert_eq!(a, b"k000000000000000");
        key_bytes(12345, 16, &mut a);
        assert_eq!(a, b"k000000000012345");
        key_bytes(9, 2, &mut a);
        assert_eq!(a, b"k9");
        assert_eq!(digits(0), 1);
        assert_eq!(digits(99_999), 5);
        assert_eq!(value_bytes(7, 32).len(), 32);
        assert_eq!(value_bytes(7, 32), value_bytes(7, 32));
    }

    #[test]
    fn every_key_is_written_and_conflicts_are_distinct_nodes() {
        let spec = WorkloadSpec {
            nodes: 10,
            keys: 100,
            writes: 100,
            conflict_rate: 0.5,
            delete_rate: 0.1,
            start: 1000,
            span: 1000,
        };
        let w = generate(&spec, &mut Rng::new(3));
        let mut keys: Vec<u32> = w.ops.iter().map(|o| o.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 100);
        assert!(w.conflict_groups > 20);
        assert!(w.ops.windows(2).all(|p| p[0].t <= p[1].t));
        for p in w.ops.windows(2) {
            if p[0].key == p[1].key && p[0].t == p[1].t {
                assert_ne!(p[0].node, p[1].node);
            }
        }
    }
}
