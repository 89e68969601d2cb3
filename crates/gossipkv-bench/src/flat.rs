//! A store layout experiment for `burst_floor` (`STORE=flat`), not the product's store:
//! what merging into cold replicas would cost if a merge touched one cache line of entries
//! instead of the index slot, the entry and its leaf's block.
//!
//! The table is one array of 64-byte slots (the product's [`gossipkv_core::Store`] entry
//! size), addressed by the top bits of the key's stable hash and probed linearly, so that a
//! key's slot is found without an index and a digest leaf's keys sit next to each other. A
//! merge reads the slot its key's hash names and the ones after it up to the key or a free
//! slot: all in a row, not a chain of dependent loads (about 2.6 slots per insert into a
//! table presized for 100,000 keys, which ends 76% full; 6.2 when it grows by doubling at
//! 7/8 full, by a model of the probe sequence). It grows by doubling at 7/8 full. It keeps one version per key (the floor's workload has no
//! concurrent values), keys and values of at most 48 bytes together, and the per-leaf XOR
//! of version hashes the digest tree needs. Everything the product's store also does
//! (concurrent values, spilled keys, tombstone purges, the lock) is left out, so its time is
//! a bound on what such a layout could gain, not a measure of a finished one.

use std::fmt;

use gossipkv_core::digest::{key_hash, version_hash};
use gossipkv_core::lww::{VersionRef, beats};

/// Slot bytes for key and value together.
const INLINE: usize = 48;
/// `meta` bit of an occupied slot; the low 16 bits are the key and value lengths.
const USED: u32 = 1 << 31;
/// Leaves of the digest tree (16^3, the simulator's).
const LEAVES_LOG2: u32 = 12;

/// One key's winner. The same fields as the store's private `Entry`, on purpose: the
/// experiment changes where entries live, not what one holds, and the store does not export
/// its entry for a benchmark to use.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot {
    ts: u64,
    origin: u32,
    meta: u32,
    bytes: [u8; INLINE],
}

impl Slot {
    const EMPTY: Slot = Slot { ts: 0, origin: 0, meta: 0, bytes: [0; INLINE] };

    fn key(&self) -> &[u8] {
        &self.bytes[..(self.meta & 0xff) as usize]
    }

    fn version(&self) -> VersionRef<'_> {
        let k = (self.meta & 0xff) as usize;
        let v = ((self.meta >> 8) & 0xff) as usize;
        VersionRef { ts: self.ts, origin: self.origin, value: Some(&self.bytes[k..k + v]) }
    }

    fn write(&mut self, key: &[u8], v: VersionRef<'_>) {
        let value = v.value.unwrap_or(&[]);
        self.ts = v.ts;
        self.origin = v.origin;
        self.meta = USED | key.len() as u32 | (value.len() as u32) << 8;
        self.bytes[..key.len()].copy_from_slice(key);
        self.bytes[key.len()..key.len() + value.len()].copy_from_slice(value);
    }
}

/// A version the table cannot hold: a tombstone, or a key and value longer than 48 bytes
/// together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the flat table holds values of at most {INLINE} bytes with their key, no tombstones"
        )
    }
}

impl std::error::Error for Refused {}

/// One replica: slots addressed by hash, and the digest's leaf hashes.
pub struct FlatStore {
    slots: Vec<Slot>,
    bits: u32,
    len: usize,
    leaf_hash: Vec<u64>,
}

impl Default for FlatStore {
    fn default() -> Self {
        Self::new()
    }
}

impl FlatStore {
    /// An empty table of 16 slots.
    pub fn new() -> Self {
        Self::with_slots_log2(4)
    }

    /// An empty table of `2^bits` slots (at least 16).
    pub fn with_slots_log2(bits: u32) -> Self {
        let bits = bits.clamp(4, 40);
        FlatStore {
            slots: vec![Slot::EMPTY; 1 << bits],
            bits,
            len: 0,
            leaf_hash: vec![0; 1 << LEAVES_LOG2],
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn home(&self, kh: u64) -> usize {
        (kh >> (64 - self.bits)) as usize
    }

    /// `Ok(slot)` of `key`, or `Err(slot)`: the empty slot it would take.
    fn probe(&self, kh: u64, key: &[u8]) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(kh);
        loop {
            let s = &self.slots[i];
            if s.meta & USED == 0 {
                return Err(i);
            }
            if s.key() == key {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Reads the slot a merge of a key hashing to `kh` looks at first (to overlap misses).
    pub fn warm(&self, kh: u64) -> u32 {
        self.slots[self.home(kh)].meta
    }

    /// Joins `v` into `key` (LWW); whether it changed the table. Keys and values past 48
    /// bytes together and tombstones are outside this experiment: refused, table unchanged.
    pub fn merge(
        &mut self,
        kh: u64,
        vh: u64,
        key: &[u8],
        v: VersionRef<'_>,
    ) -> Result<bool, Refused> {
        let Some(value) = v.value else { return Err(Refused) };
        if key.len() + value.len() > INLINE {
            return Err(Refused);
        }
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        let leaf = (kh >> (64 - LEAVES_LOG2)) as usize;
        match self.probe(kh, key) {
            Ok(i) => {
                let old = self.slots[i].version();
                if !beats(v, old) {
                    return Ok(false);
                }
                self.leaf_hash[leaf] ^= version_hash(kh, old) ^ vh;
                self.slots[i].write(key, v);
                Ok(true)
            }
            Err(i) => {
                self.slots[i].write(key, v);
                self.leaf_hash[leaf] ^= vh;
                self.len += 1;
                Ok(true)
            }
        }
    }

    fn grow(&mut self) {
        let doubled = vec![Slot::EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.bits += 1;
        for s in old.iter().filter(|s| s.meta & USED != 0) {
            if let Err(i) = self.probe(key_hash(s.key()), s.key()) {
                self.slots[i] = *s;
            }
        }
    }

    /// Calls `f(key, version)` for every key, in slot order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], VersionRef<'_>) -> bool) -> bool {
        self.slots.iter().filter(|s| s.meta & USED != 0).all(|s| f(s.key(), s.version()))
    }

    /// XOR of every leaf hash (the digest root).
    pub fn root_hash(&self) -> u64 {
        self.leaf_hash.iter().fold(0, |a, h| a ^ h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts: u64, value: &[u8]) -> VersionRef<'_> {
        VersionRef { ts, origin: 1, value: Some(value) }
    }

    fn merge(t: &mut FlatStore, key: &[u8], v: VersionRef<'_>) -> Result<bool, Refused> {
        let kh = key_hash(key);
        t.merge(kh, version_hash(kh, v), key, v)
    }

    /// The table's contents, key by key, through `for_each`.
    fn contents(t: &FlatStore) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
        let mut out = Vec::new();
        t.for_each(|key, v| {
            out.push((key.to_vec(), v.ts, v.value.unwrap_or_default().to_vec()));
            true
        });
        out.sort();
        out
    }

    #[test]
    fn keeps_the_lww_winner_of_every_key_through_growth() {
        let mut t = FlatStore::new();
        let keys: Vec<[u8; 16]> = (0..5000u64)
            .map(|i| {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&i.to_le_bytes());
                k
            })
            .collect();
        let value = |i: usize| format!("new-{i:027}").into_bytes(); // 32 bytes
        let mut root = 0;
        let mut leaves = vec![0u64; 1 << LEAVES_LOG2];
        for (i, k) in keys.iter().enumerate() {
            let (w, l) = (value(i), b"old".to_vec());
            // the loser first, then the winner, then the loser again
            assert_eq!(merge(&mut t, k, v(5, &l)), Ok(true));
            assert_eq!(merge(&mut t, k, v(10 + i as u64, &w)), Ok(true));
            assert_eq!(merge(&mut t, k, v(5, &l)), Ok(false));
            let kh = key_hash(k);
            root ^= version_hash(kh, v(10 + i as u64, &w));
            leaves[(kh >> (64 - LEAVES_LOG2)) as usize] ^= version_hash(kh, v(10 + i as u64, &w));
        }
        assert_eq!(t.len(), keys.len());
        let mut want: Vec<_> =
            keys.iter().enumerate().map(|(i, k)| (k.to_vec(), 10 + i as u64, value(i))).collect();
        want.sort();
        assert_eq!(contents(&t), want);
        assert_eq!(t.root_hash(), root);
        assert_eq!(t.leaf_hash, leaves);
    }

    #[test]
    fn a_tie_goes_to_the_smaller_value() {
        let mut t = FlatStore::new();
        assert_eq!(merge(&mut t, b"k", v(7, b"b")), Ok(true));
        assert_eq!(merge(&mut t, b"k", v(7, b"a")), Ok(true));
        assert_eq!(merge(&mut t, b"k", v(7, b"b")), Ok(false));
        assert_eq!(contents(&t), vec![(b"k".to_vec(), 7, b"a".to_vec())]);
    }

    #[test]
    fn refuses_what_a_slot_cannot_hold_and_changes_nothing() {
        let mut t = FlatStore::new();
        let key = [1u8; 16];
        assert_eq!(merge(&mut t, &key, v(1, &[2u8; 32])), Ok(true)); // 48 bytes: fits
        let before = (contents(&t), t.root_hash());
        assert_eq!(merge(&mut t, &key, v(2, &[3u8; 33])), Err(Refused)); // 49 bytes
        let tombstone = VersionRef { ts: 3, origin: 1, value: None };
        assert_eq!(merge(&mut t, &key, tombstone), Err(Refused));
        assert_eq!((contents(&t), t.root_hash()), before);
        assert_eq!(t.len(), 1);
    }
}
