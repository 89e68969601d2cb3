//! The replica store: every key's kept versions, sharded for concurrency, with an
//! incrementally maintained digest tree.
//!
//! **Concurrency.** The key space is split into `2^shards_log2` shards by the top bits of the
//! key's stable hash, each behind its own `RwLock` (the standard library's: see `ShardLock`).
//! A merge locks exactly one shard for a few hundred nanoseconds, so a merge is atomic per key
//! and there is no global lock on any path. No lock is held across anything but in-memory work
//! (no I/O, no await).
//!
//! **Layout (memory per key).** A shard keeps its entries in fixed-size chunks of 252 (so
//! growing never copies or transiently doubles them, and a chunk fits its allocator's 16 KiB
//! class), used as a pool of blocks of 4, and an index `HashTable<u32>` of positions (5 bytes
//! a slot), rather than a table of entries (which would leave up to half of its 64-byte slots
//! empty after a resize). An entry (64 bytes, one cache line) holds the winning version:
//! timestamp, origin, flags, and the key and value bytes (inside the entry up to 48 bytes
//! together, else in one allocation in the shard's spill table). Hashes are computed from the
//! bytes when needed, not cached. Concurrent values beyond the winner are rare and live in a
//! side table, in the slot their entry names.
//! docs/store.md has the measured bytes per key.
//!
//! **Digest.** Each shard owns a contiguous range of the tree's leaves (shards never exceed
//! leaves). Every change XORs version hashes in and out of its leaf hash and the shard's total,
//! O(1) per change; inner nodes are XORs computed on demand from those. Each leaf owns a chain
//! of blocks of entries, so a leaf is iterated without scanning the shard, reading runs of 4
//! contiguous entries.

use std::collections::BTreeMap;

use bytes::Bytes;
use hashbrown::{HashMap, HashTable};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::digest::{TREE_ARITY, TreeShape, key_hash, version_hash};
use crate::lww::{MergeOutcome, NodeId, Timestamp, Version, VersionRef, decide};

const TOMBSTONE: u32 = 1 << 31;
const HAS_EXTRAS: u32 = 1 << 30;
/// The entry's key and value bytes are in the shard's [`Spill`].
const SPILLED: u32 = 1 << 29;
/// A slot holding an entry (an unused slot is [`Entry::PLACEHOLDER`], all zero).
const USED: u32 = 1 << 28;
const KLEN_MASK: u32 = USED - 1;
/// Bits of an inline entry's `meta` for each of its key and value lengths (at most
/// [`INLINE`]).
const LEN_BITS: u32 = 6;
const LEN_MASK: u32 = (1 << LEN_BITS) - 1;
const _: () = assert!(INLINE as u32 <= LEN_MASK);
/// Where an inline entry's `meta` keeps the slot of its concurrent values in the shard's
/// [`ExtrasTable`]: bits 12 to 27, above the two lengths.
const XID_SHIFT: u32 = 2 * LEN_BITS;
/// The slot id that says "in the table's overflow map, by entry position": ids below it
/// name slots. A spilled entry keeps its id in bytes 4 to 7.
const XID_OVERFLOW: u32 = (1 << 16) - 1;
const _: () = assert!(XID_OVERFLOW << XID_SHIFT & !KLEN_MASK == 0);

/// Longest key the store accepts (bytes). Front ends enforce smaller limits.
pub const MAX_KEY_LEN: usize = KLEN_MASK as usize;

/// Store geometry and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// log2 of the shard count (each shard has its own lock).
    pub shards_log2: u32,
    /// The digest tree; must be the same on every node of a cluster.
    pub tree: TreeShape,
    /// How many concurrent values (versions at the winning timestamp) a key keeps.
    pub max_concurrent: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { shards_log2: 6, tree: TreeShape::new(3), max_concurrent: 16 }
    }
}

impl StoreConfig {
    fn normalized(mut self) -> Self {
        self.shards_log2 = self.shards_log2.min(self.tree.leaves_log2());
        // (a key's concurrent values are counted in 16 bits: `Extras`)
        self.max_concurrent = self.max_concurrent.clamp(1, usize::from(u16::MAX));
        self
    }
}

/// A shard's lock: the standard library's `RwLock` (on Linux a futex that spins briefly and
/// then sleeps until the holder wakes it), not `parking_lot`'s, whose contended path calls
/// `sched_yield` up to seven times before it sleeps. On a busy machine a yield hands the core
/// to another runnable thread for a whole scheduler slice (EEVDF pushes the yielder's
/// deadline back by one), so a client write that met the gossip thread reading the same
/// shard could stall for a millisecond: in a 3-node cluster under `redis-benchmark -t set`,
/// node 0 yielded about 450 times per 100,000 SETs, and the SET p99 was 1.6-2.1× Redis's
/// with `parking_lot`, 1.0-1.1× with this lock (docs/benchmarks.md, "Node, shard locks that
/// do not yield the core").
///
/// Poisoning is ignored, as `parking_lot` (which has none) did before: no input can make a
/// critical section panic (an allocation failure aborts the process instead).
#[derive(Debug)]
struct ShardLock(RwLock<Shard>);

impl ShardLock {
    fn read(&self) -> RwLockReadGuard<'_, Shard> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Shard> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Longest key + value an entry holds inside itself: what is left of its 64 bytes (one cache
/// line) beside the timestamp, origin and flags. A 16-byte key with a 32-byte value fits.
const INLINE: usize = 48;

/// Key + value blocks of the entries whose bytes do not fit [`INLINE`], by slot: such an
/// entry keeps its slot number in its first inline bytes. Slots of removed entries are reused.
#[derive(Debug, Default)]
struct Spill {
    blocks: Vec<Box<[u8]>>,
    free: Vec<u32>,
}

impl Spill {
    /// Stores `bytes` in a free slot; returns the slot.
    fn put(&mut self, bytes: Box<[u8]>) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                if let Some(b) = self.blocks.get_mut(slot as usize) {
                    *b = bytes;
                }
                slot
            }
            None => {
                self.blocks.push(bytes);
                (self.blocks.len() - 1) as u32
            }
        }
    }

    /// Frees `slot` (its bytes are dropped).
    fn take(&mut self, slot: u32) {
        if let Some(b) = self.blocks.get_mut(slot as usize) {
            *b = Box::default();
            self.free.push(slot);
        }
    }

    fn get(&self, slot: u32) -> &[u8] {
        self.blocks.get(slot as usize).map_or(&[], |b| b)
    }

    /// Puts `key` then `value` in `slot` (in place when its block has their length: an
    /// overwrite of the same length allocates nothing), or in a free slot if `slot` is
    /// `None`; returns the slot.
    fn write(&mut self, slot: Option<u32>, key: &[u8], value: &[u8]) -> u32 {
        if let Some(s) = slot
            && let Some(b) = self.blocks.get_mut(s as usize)
        {
            if b.len() == key.len() + value.len() {
                b[..key.len()].copy_from_slice(key);
                b[key.len()..].copy_from_slice(value);
            } else {
                *b = [key, value].concat().into_boxed_slice();
            }
            return s;
        }
        self.put([key, value].concat().into_boxed_slice())
    }

    /// Bytes allocated for blocks, at the allocator's size classes, and the slot table.
    fn heap_bytes(&self) -> usize {
        self.blocks.iter().map(|b| size_class(b.len())).sum::<usize>()
            + (self.blocks.capacity() * 16 + self.free.capacity() * 4)
    }
}

/// One key and its winning version in 64 bytes, one cache line: timestamp, origin, flags
/// and lengths, and the key's bytes followed by the value's ([`INLINE`] bytes at most, else
/// a [`Spill`] slot). Nothing cached that can be recomputed: the key's hash and the version's
/// hash are computed from the bytes where needed (a few nanoseconds for short keys), which
/// keeps the store a quarter smaller than with them cached (88 bytes an entry) and a probe to
/// one cache line miss.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Entry {
    ts: Timestamp,
    origin: u32,
    /// `USED`, `TOMBSTONE`, `HAS_EXTRAS` and `SPILLED` flags; inline, the key length in the
    /// low 6 bits, the value length in the next 6 and the concurrent values' slot id (if
    /// `HAS_EXTRAS`) in the 16 above them; spilled, the key length (`KLEN_MASK`).
    meta: u32,
    /// Key bytes then value bytes (none for a tombstone); spilled, the spill slot
    /// (little-endian `u32`) in the first four and the concurrent values' slot id in the next
    /// four.
    bytes: [u8; INLINE],
}

impl Entry {
    /// An unused slot of a block.
    const PLACEHOLDER: Entry = Entry { ts: 0, origin: 0, meta: 0, bytes: [0; INLINE] };

    #[cfg(test)]
    fn new(key: &[u8], v: VersionRef<'_>, spill: &mut Spill) -> Self {
        let mut e = Entry::PLACEHOLDER;
        e.set(key, v, spill);
        e
    }

    fn is_used(&self) -> bool {
        self.meta & USED != 0
    }

    fn slot(&self) -> Option<u32> {
        (self.meta & SPILLED != 0).then(|| {
            u32::from_le_bytes([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
        })
    }

    /// The key's and value's bytes, and the key's length.
    #[inline]
    fn data<'a>(&'a self, spill: &'a Spill) -> (&'a [u8], usize) {
        match self.slot() {
            Some(slot) => (spill.get(slot), (self.meta & KLEN_MASK) as usize),
            None => {
                let k = (self.meta & LEN_MASK) as usize;
                let v = ((self.meta >> LEN_BITS) & LEN_MASK) as usize;
                (self.bytes.get(..k + v).unwrap_or(&[]), k)
            }
        }
    }

    #[inline]
    fn key<'a>(&'a self, spill: &'a Spill) -> &'a [u8] {
        let (d, k) = self.data(spill);
        d.get(..k).unwrap_or(d)
    }

    fn version<'a>(&'a self, spill: &'a Spill) -> VersionRef<'a> {
        let value = if self.meta & TOMBSTONE != 0 {
            None
        } else {
            let (d, k) = self.data(spill);
            Some(d.get(k..).unwrap_or(&[]))
        };
        VersionRef { ts: self.ts, origin: self.origin, value }
    }

    /// Makes `v` this entry's version; `key` is the entry's key (or, for a new entry, the
    /// key it gets). Moves the bytes in or out of `spill` as their length requires; an
    /// overwrite of the same length allocates nothing.
    fn set(&mut self, key: &[u8], v: VersionRef<'_>, spill: &mut Spill) {
        let (xid, old) = (self.xid(), self.slot());
        self.write(key, v, spill, xid, old);
    }

    /// [`Entry::set`] given what it keeps of the slot (its concurrent values' slot id and
    /// spill slot) instead of reading them: a placeholder is filled with `(None, None)`
    /// without a read, so a cold slot costs a store, not a load miss.
    fn write(
        &mut self,
        key: &[u8],
        v: VersionRef<'_>,
        spill: &mut Spill,
        xid: Option<u32>,
        old: Option<u32>,
    ) {
        let value = v.value.unwrap_or(&[]);
        let n = key.len() + value.len();
        let mut meta = USED;
        if v.value.is_none() {
            meta |= TOMBSTONE;
        }
        if n <= INLINE {
            if let Some(slot) = old {
                spill.take(slot);
            }
            self.bytes[..key.len()].copy_from_slice(key);
            self.bytes[key.len()..n].copy_from_slice(value);
            // both lengths are at most INLINE <= LEN_MASK
            meta |= key.len() as u32 | (value.len() as u32) << LEN_BITS;
        } else {
            let slot = spill.write(old, key, value);
            self.bytes[..4].copy_from_slice(&slot.to_le_bytes());
            // keys longer than MAX_KEY_LEN are refused before reaching here
            meta |= SPILLED | (key.len() as u32 & KLEN_MASK);
        }
        self.meta = meta;
        self.set_xid(xid);
        self.ts = v.ts;
        self.origin = v.origin;
    }

    /// Empties the slot, freeing its spilled bytes.
    fn release(&mut self, spill: &mut Spill) {
        if let Some(slot) = self.slot() {
            spill.take(slot);
        }
        *self = Entry::PLACEHOLDER;
    }

    /// Bytes allocated outside the entry for its key and value.
    fn spilled_len(&self, spill: &Spill) -> usize {
        self.slot().map_or(0, |s| spill.get(s).len())
    }

    /// The slot id of the entry's concurrent values in its shard's [`ExtrasTable`], if it has
    /// some.
    #[inline]
    fn xid(&self) -> Option<u32> {
        if self.meta & HAS_EXTRAS == 0 {
            None
        } else if self.meta & SPILLED != 0 {
            let b = &self.bytes;
            Some(u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
        } else {
            Some((self.meta >> XID_SHIFT) & XID_OVERFLOW)
        }
    }

    /// Records the slot id of the entry's concurrent values (`None`: it has none).
    fn set_xid(&mut self, xid: Option<u32>) {
        let spilled = self.meta & SPILLED != 0;
        self.meta &= !HAS_EXTRAS;
        if !spilled {
            self.meta &= !(XID_OVERFLOW << XID_SHIFT);
        }
        if let Some(x) = xid {
            let x = x.min(XID_OVERFLOW);
            self.meta |= HAS_EXTRAS;
            if spilled {
                self.bytes[4..8].copy_from_slice(&x.to_le_bytes());
            } else {
                self.meta |= x << XID_SHIFT;
            }
        }
    }

    /// `meta` without what says where the concurrent values are kept: equal for two entries
    /// of equal key and version (each store places its concurrent values where it can).
    fn form(&self) -> u32 {
        if self.meta & SPILLED != 0 {
            self.meta & !HAS_EXTRAS
        } else {
            self.meta & !(HAS_EXTRAS | XID_OVERFLOW << XID_SHIFT)
        }
    }
}

/// log2 of the positions a chunk of [`Entries`] spans.
const CHUNK_LOG2: u32 = 8;
/// Positions a chunk spans.
const CHUNK: usize = 1 << CHUNK_LOG2;
/// log2 of the entries in a block: a leaf's entries live in blocks of this many.
const BLOCK_LOG2: u32 = 2;
/// Entries in a block (256 bytes).
const BLOCK: usize = 1 << BLOCK_LOG2;
/// Entries a full chunk holds: its last block's positions are never used. An `Entry` is
/// 64-aligned, and mimalloc serves an alignment above 16 for a block this large by
/// over-allocating `align - 1` bytes: a chunk of exactly 16 KiB of entries would take a
/// 20 KiB block (a 64 KiB one an 80 KiB block, a quarter of the store's memory lost), while
/// 16,128 + 63 bytes still fit its 16 KiB class (docs/benchmarks.md, "Session 19").
const CHUNK_CAP: usize = CHUNK - BLOCK;
const _: () = assert!(
    CHUNK_CAP * std::mem::size_of::<Entry>() + std::mem::align_of::<Entry>() - 1
        <= CHUNK * std::mem::size_of::<Entry>()
);
/// No block.
const NONE: u32 = u32::MAX;

/// A shard's entries, numbered `0..` in chunks of [`CHUNK`] positions, [`CHUNK_CAP`] of them
/// used (as a pool of blocks of [`BLOCK`]
/// consecutive entries), grouped by digest leaf: each leaf owns a chain of blocks, newest
/// first, and every block of the chain but the newest is full. So iterating a leaf (gossip's
/// reconciliation, SCAN) reads runs of [`BLOCK`] entries in order, one dependent load per
/// block, instead of one per entry.
///
/// Chunks are allocated once at their full size (only the first grows like a `Vec`, so that
/// small stores, e.g. thousands of simulated nodes, stay small): growing never copies more
/// than one chunk, never holds old and new storage at once and never leaves freed blocks for
/// the allocator to hold on to. A leaf wastes the unused slots of its newest block (fewer
/// than [`BLOCK`]); emptied blocks are reused.
#[derive(Debug)]
struct Entries {
    chunks: Vec<Vec<Entry>>,
    /// Positions handed out (whole blocks; a full chunk's unused last block included).
    slots: usize,
    /// For each block: the next (older) block of its leaf, or `NONE`.
    next: Vec<u32>,
    /// Emptied blocks, for reuse.
    free: Vec<u32>,
    /// Newest block of each leaf this shard owns, or `NONE`.
    heads: Box<[u32]>,
    /// Keys per leaf.
    counts: Box<[u32]>,
    /// Keys in the shard.
    len: usize,
}

impl Entries {
    fn new(leaves: usize) -> Self {
        Self {
            chunks: Vec::new(),
            slots: 0,
            next: Vec::new(),
            free: Vec::new(),
            heads: vec![NONE; leaves].into_boxed_slice(),
            counts: vec![0; leaves].into_boxed_slice(),
            len: 0,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    /// Slots of the allocated blocks (all written when taken).
    fn written(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    fn alloc_block(&mut self) -> u32 {
        if let Some(b) = self.free.pop() {
            return b;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK_CAP) {
            if !self.chunks.is_empty() {
                // skip the previous chunk's unused last block: it has a link, never entries
                self.slots = self.chunks.len() << CHUNK_LOG2;
                self.next.resize(self.slots >> BLOCK_LOG2, NONE);
            }
            self.chunks.push(if self.chunks.is_empty() {
                Vec::new()
            } else {
                Vec::with_capacity(CHUNK_CAP)
            });
        }
        if let Some(last) = self.chunks.last_mut() {
            if last.len() == last.capacity() {
                // only the first chunk grows (so that small stores stay small), by doubling
                let cap = (last.capacity() * 2).clamp(BLOCK, CHUNK_CAP);
                last.reserve_exact(cap - last.len());
            }
            last.extend([Entry::PLACEHOLDER; BLOCK]);
        }
        let b = (self.slots >> BLOCK_LOG2) as u32;
        self.slots += BLOCK;
        self.next.push(NONE);
        b
    }

    /// Appends an entry to `leaf`, written in place by `fill` into a placeholder slot (built
    /// elsewhere and copied in, its 16-byte reads of fields just written by smaller stores
    /// cannot be forwarded and wait for the store buffer to drain); returns its position.
    fn push_with(&mut self, leaf: usize, fill: impl FnOnce(&mut Entry)) -> u32 {
        let pos = match self.next_slot(leaf) {
            Some(pos) => pos,
            None => {
                let b = self.alloc_block();
                self.next[b as usize] = self.heads[leaf];
                self.heads[leaf] = b;
                b << BLOCK_LOG2
            }
        };
        fill(&mut self[pos as usize]);
        self.counts[leaf] += 1;
        self.len += 1;
        pos
    }

    /// The slot the next entry of `leaf` takes, if its newest block has one free (else the
    /// next entry takes a new block).
    fn next_slot(&self, leaf: usize) -> Option<u32> {
        let slot = self.counts[leaf] as usize % BLOCK;
        (slot != 0).then(|| (self.heads[leaf] << BLOCK_LOG2) | slot as u32)
    }

    /// Reads a word of every entry of `leaf` before the leaf is read in order, so that the
    /// cache misses of its scattered blocks overlap instead of coming one block after
    /// another, each behind the work on the block before. It changes nothing but timing.
    fn warm_leaf(&self, leaf: usize) {
        let mut acc = 0u32;
        for pos in self.newest_first(leaf) {
            acc ^= self[pos as usize].meta;
        }
        std::hint::black_box(acc);
    }

    /// Positions of `leaf`'s entries, newest first.
    fn newest_first(&self, leaf: usize) -> LeafPositions<'_> {
        let count = self.counts[leaf] as usize;
        let fill = if count == 0 { 0 } else { (count - 1) % BLOCK + 1 };
        LeafPositions { next: &self.next, block: self.heads[leaf], left: fill }
    }

    /// Drops the newest entry of `leaf` (it must be a placeholder by now), freeing its block
    /// if that empties it.
    fn pop(&mut self, leaf: usize) {
        self.counts[leaf] -= 1;
        self.len -= 1;
        if (self.counts[leaf] as usize).is_multiple_of(BLOCK) {
            let b = self.heads[leaf];
            self.heads[leaf] = self.next[b as usize];
            self.next[b as usize] = NONE;
            self.free.push(b);
        }
    }
}

/// The positions of one leaf's entries, newest first.
struct LeafPositions<'a> {
    next: &'a [u32],
    block: u32,
    /// Entries of `block` not yet returned.
    left: usize,
}

impl Iterator for LeafPositions<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            if self.block == NONE {
                return None;
            }
            self.block = self.next[self.block as usize];
            if self.block == NONE {
                return None;
            }
            self.left = BLOCK;
        }
        self.left -= 1;
        Some((self.block << BLOCK_LOG2) | self.left as u32)
    }
}

impl Entries {
    /// Whether `f(position, entry)` holds for every used slot, read in memory order (stops at
    /// the first false).
    fn all_used(&self, mut f: impl FnMut(u32, &Entry) -> bool) -> bool {
        for (c, chunk) in self.chunks.iter().enumerate() {
            let base = (c << CHUNK_LOG2) as u32;
            for (i, e) in chunk.iter().enumerate() {
                if e.is_used() && !f(base + i as u32, e) {
                    return false;
                }
            }
        }
        true
    }
}

impl std::ops::Index<usize> for Entries {
    type Output = Entry;

    #[inline]
    fn index(&self, pos: usize) -> &Entry {
        &self.chunks[pos >> CHUNK_LOG2][pos & (CHUNK - 1)]
    }
}

impl std::ops::IndexMut<usize> for Entries {
    #[inline]
    fn index_mut(&mut self, pos: usize) -> &mut Entry {
        &mut self.chunks[pos >> CHUNK_LOG2][pos & (CHUNK - 1)]
    }
}

#[derive(Debug)]
struct Shard {
    index: HashTable<u32>,
    /// The entries of each leaf this shard owns.
    entries: Entries,
    /// Concurrent values other than the winner, best first, in the slot each entry names.
    extras: ExtrasTable,
    /// Key + value bytes of the entries whose bytes do not fit inside them.
    spill: Spill,
    leaf_hash: Box<[u64]>,
    total_hash: u64,
    tombstones: usize,
}

/// Bytes a hashbrown table that can hold `capacity` items of `slot` bytes takes: buckets a
/// power of two at most 7/8 full, each a slot and a control byte.
fn hash_table_bytes(capacity: usize, slot: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    (capacity * 8 / 7).next_power_of_two() * (slot + 1) + 16
}

/// Bytes an allocation of `n` bytes takes (mimalloc's size classes, approximately).
fn size_class(n: usize) -> usize {
    if n == 0 {
        0
    } else if n <= 64 {
        n.div_ceil(8) * 8
    } else {
        // four classes per power of two: 80, 96, 112, 128, 160, ...
        let step = ((n - 1).next_power_of_two() / 4).max(8);
        n.div_ceil(step) * step
    }
}

/// A key's concurrent values beside its winner, best first, packed:
/// `count u16 | (ts u64 | origin u32 | len u32, u32::MAX for a tombstone | value bytes)...`,
/// little-endian, in one 64-byte slot of the shard's [`ExtrasTable`] when the packing fits
/// [`EXTRAS_INLINE`] bytes (one concurrent value of up to 44 bytes), else in one allocation.
/// Where a `Vec<Version>` took a 48-byte version and a separate value allocation: the
/// simulator's 1,000 replicas hold millions of them. Packing is canonical, so two keys keep
/// the same versions iff their packed bytes are equal.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Extras(Packed);

/// Packed bytes of an [`Extras`].
#[derive(Clone, Debug)]
enum Packed {
    /// The first `len` bytes.
    Inline(u8, [u8; EXTRAS_INLINE]),
    Heap(Box<[u8]>),
}

/// Longest packing an [`Extras`] holds in its own 64 bytes.
const EXTRAS_INLINE: usize = 62;
const _: () = assert!(std::mem::size_of::<Extras>() == 64);

impl PartialEq for Extras {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Extras {}

const EXTRA_HEAD: usize = 16;

impl Extras {
    fn pack(vs: &[Version]) -> Self {
        let len = 2 + vs
            .iter()
            .map(|v| EXTRA_HEAD + v.value.as_ref().map_or(0, |b| b.len()))
            .sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&(vs.len() as u16).to_le_bytes());
        for v in vs {
            out.extend_from_slice(&v.ts.to_le_bytes());
            out.extend_from_slice(&v.origin.to_le_bytes());
            match &v.value {
                Some(b) => {
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(b);
                }
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
        }
        Extras::from_packed(&out)
    }

    /// No concurrent values (a free slot of the table).
    const EMPTY: Self = Extras(Packed::Inline(0, [0; EXTRAS_INLINE]));

    fn from_packed(b: &[u8]) -> Self {
        match u8::try_from(b.len()) {
            Ok(n) if b.len() <= EXTRAS_INLINE => {
                let mut a = [0; EXTRAS_INLINE];
                a[..b.len()].copy_from_slice(b);
                Extras(Packed::Inline(n, a))
            }
            _ => Extras(Packed::Heap(b.into())),
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Packed::Inline(n, a) => a.get(..usize::from(*n)).unwrap_or(a),
            Packed::Heap(b) => b,
        }
    }

    fn iter(&self) -> ExtrasIter<'_> {
        let b = self.bytes();
        let left = b.get(..2).map_or(0, |c| usize::from(u16::from_le_bytes([c[0], c[1]])));
        ExtrasIter { left, rest: b.get(2..).unwrap_or(&[]) }
    }

    fn len(&self) -> usize {
        self.iter().left
    }

    fn unpack(&self) -> Vec<Version> {
        self.iter().map(|v| v.to_owned()).collect()
    }

    /// Bytes allocated outside the slot, at the allocator's size class.
    fn heap_bytes(&self) -> usize {
        match &self.0 {
            Packed::Inline(..) => 0,
            Packed::Heap(b) => size_class(b.len()),
        }
    }
}

/// A shard's concurrent values, each key's in one [`Extras`], found from its entry without a
/// search: the entry keeps the slot's id ([`Entry::xid`]). Reading a key's kept versions
/// then costs one more cache line (the slot, which holds one concurrent value of a short
/// value itself), where a hash map by entry position cost three (control bytes, bucket, the
/// packed block): in the simulator's burst those misses were 6% of the CPU time, in merges
/// and in the store passes that answer large pulls (docs/benchmarks.md, "Session 25").
///
/// Ids fit 16 bits of an inline entry's `meta`: a shard's first 65,280 keys with concurrent
/// values get slots (255 of every 256 ids), and any more (over 4 million such keys in a
/// store of 64 shards) go to a hash map by entry position, as all of them did before.
#[derive(Debug, Default)]
struct ExtrasTable {
    /// Slots in chunks of [`XCHUNK_CAP`] (id `c << XCHUNK_LOG2 | i`: the `i`th slot of chunk
    /// `c`): only the newest chunk grows (by doubling, from 4 slots), so that growing never
    /// copies more than one chunk or leaves a doubled array behind.
    chunks: Vec<Vec<Extras>>,
    /// Ids handed out so far (the next new one, but for the unused last id of each chunk).
    next: u32,
    /// Ids of emptied slots, reused first.
    free: Vec<u32>,
    /// The concurrent values of entries whose id is [`XID_OVERFLOW`], by entry position.
    overflow: HashMap<u32, Extras>,
    /// Beside each chunk of slots, the origins of each slot's concurrent values (see
    /// [`origins_hint`]): a pass over the store that looks for some origins reads these 8
    /// bytes instead of the slot's line (a cache miss for each such key: a quarter of that
    /// pass's time in the burst). Chunked and grown like the slots, so that growing leaves
    /// no doubled array behind (a flat `Vec` added 0.17 GB to the burst's peak RSS).
    hints: Vec<Vec<[NodeId; 2]>>,
}

/// A slot's [`ExtrasTable::hints`] when it holds more than two concurrent values, or values
/// at a timestamp other than their winner's (or is free): read the slot. A known hint is
/// sorted, so it is never this.
const HINT_UNKNOWN: [NodeId; 2] = [1, 0];

/// The origins of `extras`, concurrent values of a winner at timestamp `ts`, in a hint: both
/// of two, or the one twice; [`HINT_UNKNOWN`] for more, or for a timestamp other than `ts`.
fn origins_hint(ts: Timestamp, extras: &[Version]) -> [NodeId; 2] {
    match extras {
        [a] if a.ts == ts => [a.origin, a.origin],
        [a, b] if a.ts == ts && b.ts == ts => [a.origin.min(b.origin), a.origin.max(b.origin)],
        _ => HINT_UNKNOWN,
    }
}

/// The item of id `xid` in chunks of [`ExtrasTable`] ids (slots, or their hints).
fn in_chunks<T>(chunks: &[Vec<T>], xid: u32) -> Option<&T> {
    chunks.get((xid >> XCHUNK_LOG2) as usize)?.get((xid & XCHUNK_CAP as u32) as usize)
}

fn in_chunks_mut<T>(chunks: &mut [Vec<T>], xid: u32) -> Option<&mut T> {
    chunks.get_mut((xid >> XCHUNK_LOG2) as usize)?.get_mut((xid & XCHUNK_CAP as u32) as usize)
}

/// log2 of the ids a chunk of [`ExtrasTable`] spans.
const XCHUNK_LOG2: u32 = 8;
/// Slots a chunk holds: its last id is never used, so that a chunk (64-aligned, which
/// mimalloc serves by over-allocating 63 bytes) fits the allocator's 16 KiB class.
const XCHUNK_CAP: usize = (1 << XCHUNK_LOG2) - 1;
const _: () = assert!(XCHUNK_CAP * std::mem::size_of::<Extras>() + 63 <= 16 << 10);
// the overflow id is a chunk's last, so it never names a slot
const _: () = assert!(XID_OVERFLOW & XCHUNK_CAP as u32 == XCHUNK_CAP as u32);

impl ExtrasTable {
    /// The concurrent values of the entry at `pos`, whose id is `xid`.
    #[inline]
    fn get(&self, pos: u32, xid: u32) -> Option<&Extras> {
        if xid == XID_OVERFLOW { self.overflow.get(&pos) } else { self.slot(xid) }
    }

    fn slot(&self, xid: u32) -> Option<&Extras> {
        in_chunks(&self.chunks, xid)
    }

    fn slot_mut(&mut self, xid: u32) -> Option<&mut Extras> {
        in_chunks_mut(&mut self.chunks, xid)
    }

    /// The hint of slot `xid` (none for [`XID_OVERFLOW`]: a chunk's last id is never used).
    fn hint(&self, xid: u32) -> Option<&[NodeId; 2]> {
        in_chunks(&self.hints, xid)
    }

    fn hint_mut(&mut self, xid: u32) -> Option<&mut [NodeId; 2]> {
        in_chunks_mut(&mut self.hints, xid)
    }

    /// Whether one of the concurrent values in slot `xid` (which share their winner's
    /// timestamp `ts`) may satisfy `wanted(origin, ts)`: false only when the hint shows none
    /// does, without reading the slot.
    #[inline]
    fn may_want(
        &self,
        xid: u32,
        ts: Timestamp,
        mut wanted: impl FnMut(NodeId, Timestamp) -> bool,
    ) -> bool {
        match self.hint(xid) {
            Some(&[a, b]) if a <= b => wanted(a, ts) || (b != a && wanted(b, ts)),
            _ => true,
        }
    }

    /// A new slot's id, or [`XID_OVERFLOW`] once every id is taken.
    fn take_id(&mut self) -> u32 {
        if let Some(id) = self.free.pop() {
            return id;
        }
        if self.next & XCHUNK_CAP as u32 == XCHUNK_CAP as u32 {
            self.next += 1;
        }
        if self.next >= XID_OVERFLOW {
            return XID_OVERFLOW;
        }
        let id = self.next;
        self.next += 1;
        if (id >> XCHUNK_LOG2) as usize == self.chunks.len() {
            self.chunks.push(Vec::new());
            self.hints.push(Vec::new());
        }
        if let (Some(last), Some(hints)) = (self.chunks.last_mut(), self.hints.last_mut()) {
            // the newest chunk grows by doubling to its full size, so that a store with a
            // few concurrent values does not hold 16 KiB for them
            if last.len() == last.capacity() {
                let cap = (last.capacity() * 2).clamp(4, XCHUNK_CAP);
                last.reserve_exact(cap - last.len());
                hints.reserve_exact(cap - hints.len());
            }
            last.push(Extras::EMPTY);
            hints.push(HINT_UNKNOWN);
        }
        id
    }

    /// Stores `extras` as the concurrent values of the entry at `pos`, whose winner's
    /// timestamp is `ts`, in its slot `xid` if it has one; returns the id the entry keeps.
    fn put(&mut self, pos: u32, xid: Option<u32>, ts: Timestamp, extras: &[Version]) -> u32 {
        let id = match xid {
            Some(id) => id,
            None => self.take_id(),
        };
        let x = Extras::pack(extras);
        // (no slot has the id XID_OVERFLOW: a chunk's last id is never used)
        match self.slot_mut(id) {
            Some(slot) => {
                *slot = x;
                if let Some(hint) = self.hint_mut(id) {
                    *hint = origins_hint(ts, extras);
                }
            }
            None => {
                self.overflow.insert(pos, x);
            }
        }
        id
    }

    /// Frees the concurrent values of the entry at `pos`, whose id is `xid`.
    fn remove(&mut self, pos: u32, xid: u32) {
        match self.slot_mut(xid) {
            Some(slot) => {
                *slot = Extras::EMPTY;
                if let Some(hint) = self.hint_mut(xid) {
                    *hint = HINT_UNKNOWN;
                }
                self.free.push(xid);
            }
            None => {
                self.overflow.remove(&pos);
            }
        }
    }

    /// The entry whose id is `xid` moved from position `from` to `to`.
    fn moved(&mut self, from: u32, to: u32, xid: u32) {
        if xid == XID_OVERFLOW
            && let Some(x) = self.overflow.remove(&from)
        {
            self.overflow.insert(to, x);
        }
    }

    /// Every key's concurrent values (free slots are empty).
    fn values(&self) -> impl Iterator<Item = &Extras> {
        self.chunks.iter().flat_map(|c| c.iter()).chain(self.overflow.values())
    }

    /// Heap bytes of the table: slots, free ids, the overflow map, packings too long for a
    /// slot.
    fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>() * std::mem::size_of::<Extras>()
            + self.chunks.capacity() * 24
            + self.free.capacity() * 4
            + self.hints.iter().map(Vec::capacity).sum::<usize>() * 8
            + self.hints.capacity() * 24
            + hash_table_bytes(self.overflow.capacity(), 4 + std::mem::size_of::<Extras>())
            + self.values().map(Extras::heap_bytes).sum::<usize>()
    }
}

/// The versions of an [`Extras`] blob, best first.
#[derive(Clone, Debug)]
struct ExtrasIter<'a> {
    left: usize,
    rest: &'a [u8],
}

impl ExtrasIter<'_> {
    /// No concurrent values.
    const EMPTY: Self = ExtrasIter { left: 0, rest: &[] };
}

impl<'a> Iterator for ExtrasIter<'a> {
    type Item = VersionRef<'a>;

    fn next(&mut self) -> Option<VersionRef<'a>> {
        if self.left == 0 || self.rest.len() < EXTRA_HEAD {
            return None;
        }
        let (head, tail) = self.rest.split_at(EXTRA_HEAD);
        let word = |r: std::ops::Range<usize>| head.get(r).unwrap_or(&[]);
        let ts = u64::from_le_bytes(word(0..8).try_into().ok()?);
        let origin = u32::from_le_bytes(word(8..12).try_into().ok()?);
        let len = u32::from_le_bytes(word(12..16).try_into().ok()?);
        let (value, rest) = if len == u32::MAX {
            (None, tail)
        } else {
            let (v, r) = tail.split_at_checked(len as usize)?;
            (Some(v), r)
        };
        self.rest = rest;
        self.left -= 1;
        Some(VersionRef { ts, origin, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ExtrasIter<'_> {}

/// The bits of the stable key hash the in-memory index uses: its top half. Its first bits
/// pick the shard (at most 16 of them), and the rest vary, so a shard's index sees at least
/// 2^16 distinct values, enough to spread any shard's keys, whose exact hash the probe then
/// compares. Gossip's origin logs keep just these 32 bits of a key's hash
/// ([`Store::for_each_with_hash_hi`]).
#[inline]
fn index_bits(kh: u64) -> u32 {
    (kh >> 32) as u32
}

/// The index hash of the entry at `pos`, from its key (what the index needs when it grows).
fn rehash(entries: &Entries, spill: &Spill, pos: u32) -> u64 {
    index_hash(index_bits(key_hash(entries[pos as usize].key(spill))))
}

/// The hash hashbrown sees: the index bits spread over 64 bits (hashbrown picks the bucket
/// from the low bits and the tag byte from the top 7). When the index resizes it is computed
/// again from each entry's key ([`rehash`]).
#[inline]
fn index_hash(ibits: u32) -> u64 {
    u64::from(ibits).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Shard {
    fn new(leaves: usize) -> Self {
        Self {
            index: HashTable::new(),
            entries: Entries::new(leaves),
            extras: ExtrasTable::default(),
            spill: Spill::default(),
            leaf_hash: vec![0; leaves].into_boxed_slice(),
            total_hash: 0,
            tombstones: 0,
        }
    }

    fn find(&self, kh: u64, key: &[u8]) -> Option<u32> {
        self.index
            .find(index_hash(index_bits(kh)), |&i| {
                // (no hash is kept in the entry: the index's tag byte filters, the key decides)
                self.entries[i as usize].key(&self.spill) == key
            })
            .copied()
    }

    /// Whether entry `pa` here and entry `pb` of `b` hold the same key and the same
    /// versions.
    fn entry_equals(&self, pa: u32, b: &Shard, pb: u32) -> bool {
        let (ea, eb) = (&self.entries[pa as usize], &b.entries[pb as usize]);
        // spilled or not depends on the lengths only, and the form holds them (and the
        // tombstone flag): equal forms and equal bytes, equal key and value
        (ea.ts, ea.origin) == (eb.ts, eb.origin)
            && ea.form() == eb.form()
            && ea.data(&self.spill).0 == eb.data(&b.spill).0
            && match (ea.xid(), eb.xid()) {
                (None, None) => true,
                (Some(xa), Some(xb)) => self.extras.get(pa, xa) == b.extras.get(pb, xb),
                _ => false,
            }
    }

    /// Reads what a merge of `key` reads or writes first: its index slot and entry, or the
    /// slot a new entry of its leaf takes. Called for a batch of keys before merging them,
    /// so that their cache misses overlap instead of coming one merge after another.
    fn warm(&self, kh: u64, leaf: usize, key: &[u8]) -> u32 {
        match self.find(kh, key) {
            Some(pos) => self.entries[pos as usize].meta,
            None => self.entries.next_slot(leaf).map_or(0, |pos| self.entries[pos as usize].meta),
        }
    }

    /// Reads ahead for a lookup of `kh`: the position of the first key whose index bits are
    /// `kh`'s (almost always the key whose hash is `kh`, if present), one index probe, and a
    /// word of its entry (for the caller's `black_box`), which brings the entry into the
    /// cache. No key is compared.
    #[inline]
    fn warm_candidate(&self, kh: u64) -> Option<(u32, u32)> {
        let pos = *self.index.iter_hash(index_hash(index_bits(kh))).next()?;
        Some((pos, self.entries[pos as usize].meta))
    }

    /// The position of the key whose stable hash is `kh`, by hash alone (gossip names keys
    /// by hash: see [`Store::get_by_hash`]).
    fn find_by_hash(&self, kh: u64) -> Option<u32> {
        self.index
            .find(index_hash(index_bits(kh)), |&i| {
                key_hash(self.entries[i as usize].key(&self.spill)) == kh
            })
            .copied()
    }

    fn xor_leaf(&mut self, local_leaf: usize, h: u64) {
        self.leaf_hash[local_leaf] ^= h;
        self.total_hash ^= h;
    }

    /// Kept versions of entry `pos`, best first.
    fn kept(&self, pos: u32) -> Kept<'_> {
        let e = &self.entries[pos as usize];
        let rest = self.extras_of(pos, e);
        Kept { first: Some(e.version(&self.spill)), key: e.key(&self.spill), kh: None, rest }
    }

    /// The concurrent values of entry `e`, at `pos`.
    #[inline]
    fn extras_of(&self, pos: u32, e: &Entry) -> ExtrasIter<'_> {
        match e.xid() {
            Some(x) => self.extras.get(pos, x).map_or(ExtrasIter::EMPTY, Extras::iter),
            None => ExtrasIter::EMPTY,
        }
    }

    /// [`Shard::kept`] for a caller that knows the key's hash.
    fn kept_hashed(&self, pos: u32, kh: u64) -> Kept<'_> {
        Kept { kh: Some(kh), ..self.kept(pos) }
    }

    /// Joins `incoming` (whose key hash is `kh` and version hash `vh`) into `key`'s versions.
    fn merge(
        &mut self,
        (kh, vh): (u64, u64),
        local_leaf: usize,
        key: &[u8],
        incoming: VersionRef<'_>,
        limit: usize,
    ) -> MergeOutcome {
        let Some(pos) = self.find(kh, key) else {
            let spill = &mut self.spill;
            let pos =
                self.entries.push_with(local_leaf, |e| e.write(key, incoming, spill, None, None));
            let (entries, spill) = (&self.entries, &self.spill);
            self.index
                .insert_unique(index_hash(index_bits(kh)), pos, |&i| rehash(entries, spill, i));
            if incoming.value.is_none() {
                self.tombstones += 1;
            }
            self.xor_leaf(local_leaf, vh);
            return MergeOutcome::Inserted;
        };
        let (outcome, at) = decide(self.kept(pos), incoming, limit);
        match outcome {
            MergeOutcome::Ignored | MergeOutcome::Inserted => {}
            MergeOutcome::Replaced => {
                let mut delta = 0;
                for (_, h) in self.kept_hashed(pos, kh).hashed() {
                    delta ^= h;
                }
                delta ^= vh;
                let e = &mut self.entries[pos as usize];
                let was_tomb = e.meta & TOMBSTONE != 0;
                if let Some(x) = e.xid() {
                    self.extras.remove(pos, x);
                }
                e.set_xid(None);
                e.set(key, incoming, &mut self.spill);
                self.tombstones =
                    self.tombstones + usize::from(incoming.value.is_none()) - usize::from(was_tomb);
                self.xor_leaf(local_leaf, delta);
            }
            MergeOutcome::Concurrent => {
                let mut delta = vh;
                let e = &mut self.entries[pos as usize];
                let xid = e.xid();
                let mut extras = xid
                    .and_then(|x| self.extras.get(pos, x))
                    .map(Extras::unpack)
                    .unwrap_or_default();
                if at == 0 {
                    let old = e.version(&self.spill).to_owned();
                    let was_tomb = e.meta & TOMBSTONE != 0;
                    extras.insert(0, old);
                    e.set(key, incoming, &mut self.spill);
                    self.tombstones = self.tombstones + usize::from(incoming.value.is_none())
                        - usize::from(was_tomb);
                } else {
                    extras.insert(at - 1, incoming.to_owned());
                }
                while extras.len() + 1 > limit {
                    if let Some(evicted) = extras.pop() {
                        delta ^= version_hash(kh, evicted.as_ref());
                    }
                }
                if !extras.is_empty() {
                    let id = self.extras.put(pos, xid, e.ts, &extras);
                    e.set_xid(Some(id));
                } else {
                    if let Some(x) = xid {
                        self.extras.remove(pos, x);
                    }
                    e.set_xid(None);
                }
                self.xor_leaf(local_leaf, delta);
            }
        }
        outcome
    }

    /// Removes, in one local leaf, every entry `doomed` picks, with everything it keeps;
    /// the others keep their order. Returns how many were removed.
    fn remove_where(
        &mut self,
        leaf: usize,
        mut doomed: impl FnMut(&Entry, &Spill) -> bool,
    ) -> usize {
        let mut order: Vec<u32> = self.entries.newest_first(leaf).collect();
        order.reverse();
        let mut removed = 0;
        let mut to = 0;
        for from in 0..order.len() {
            let pos = order[from];
            if doomed(&self.entries[pos as usize], &self.spill) {
                removed += 1;
                let e = &self.entries[pos as usize];
                let (kh, tomb) = (key_hash(e.key(&self.spill)), e.meta & TOMBSTONE != 0);
                let mut delta = 0;
                for (_, h) in self.kept_hashed(pos, kh).hashed() {
                    delta ^= h;
                }
                self.xor_leaf(leaf, delta);
                if tomb {
                    self.tombstones -= 1;
                }
                if let Ok(slot) = self.index.find_entry(index_hash(index_bits(kh)), |&i| i == pos) {
                    slot.remove();
                }
                if let Some(x) = self.entries[pos as usize].xid() {
                    self.extras.remove(pos, x);
                }
                self.entries[pos as usize].release(&mut self.spill);
                continue;
            }
            if from != to {
                // move it down to the slot vacated before it (oldest first, so the order
                // holds), and repoint the index (and the overflow map of concurrent values)
                let new = order[to];
                let e = std::mem::replace(&mut self.entries[pos as usize], Entry::PLACEHOLDER);
                let kh = key_hash(e.key(&self.spill));
                self.entries[new as usize] = e;
                if let Some(slot) = self.index.find_mut(index_hash(index_bits(kh)), |&i| i == pos) {
                    *slot = new;
                }
                if let Some(x) = self.entries[new as usize].xid() {
                    self.extras.moved(pos, new, x);
                }
            }
            to += 1;
        }
        for _ in 0..removed {
            self.entries.pop(leaf);
        }
        removed
    }
}

/// Merges into a run of one shard that a [`MergeRun`] makes under one hold of its lock.
const MERGE_RUN: usize = 256;

/// Lookups [`Store::equals`] starts together, so that their cache misses overlap.
const LOOKAHEAD: usize = 16;

/// Merges one after another, each exactly as [`Store::merge_hashed`], but keeping the write
/// lock of the last shard merged into while the next merge is into the same shard (up to
/// [`MERGE_RUN`] merges, a few tens of microseconds). Each lock and unlock is an atomic
/// read-modify-write, which on x86 waits for every earlier store to reach the cache: taken
/// once per merge, it made the cache misses of consecutive merges (a new entry, a leaf hash)
/// wait for each other, and was a tenth of the simulator's CPU time in a profile. A merge is
/// still atomic per key; readers of that shard wait at most one run.
///
/// While a run holds a lock, the same thread must not call the store otherwise (it would
/// wait for itself): drop the run first. Dropping it releases the lock.
#[derive(Debug)]
pub struct MergeRun<'s> {
    store: &'s Store,
    held: Option<(usize, RwLockWriteGuard<'s, Shard>)>,
    merges: usize,
}

impl MergeRun<'_> {
    /// [`Store::merge_hashed`] within the run.
    pub fn merge_hashed(
        &mut self,
        kh: u64,
        vh: u64,
        key: &[u8],
        v: VersionRef<'_>,
    ) -> MergeOutcome {
        debug_assert_eq!((kh, vh), (key_hash(key), version_hash(kh, v)));
        let (s, leaf) = self.store.locate(kh);
        if self.merges >= MERGE_RUN || self.held.as_ref().is_none_or(|(held, _)| *held != s) {
            self.hold(s);
        }
        self.merges += 1;
        let limit = self.store.cfg.max_concurrent;
        match self.held.as_mut() {
            Some((_, shard)) => shard.merge((kh, vh), leaf, key, v, limit),
            None => self.store.merge_hashed(kh, vh, key, v),
        }
    }

    /// Takes shard `s`'s write lock for the run's next merges, releasing the one held first
    /// (never two shard locks at once).
    fn hold(&mut self, s: usize) {
        self.held = None;
        self.held = Some((s, self.store.shards[s].write()));
        self.merges = 0;
    }

    /// Brings what merging `key` will touch into the cache, if its shard is the one this run
    /// holds (or takes it when none is held): call it for the next few keys, then merge them.
    /// It changes nothing but timing.
    pub fn warm(&mut self, kh: u64, key: &[u8]) {
        let (s, leaf) = self.store.locate(kh);
        if self.held.is_none() {
            self.hold(s);
        }
        if let Some((held, shard)) = &self.held
            && *held == s
        {
            std::hint::black_box(shard.warm(kh, leaf, key));
        }
    }
}

/// The kept versions of one key, winner first, borrowed from the store (no allocation;
/// `Clone` to go over them again).
#[derive(Clone, Debug)]
pub struct Kept<'a> {
    first: Option<VersionRef<'a>>,
    key: &'a [u8],
    /// The key's hash, when the store's caller had it.
    kh: Option<u64>,
    rest: ExtrasIter<'a>,
}

impl<'a> Kept<'a> {
    /// The versions with their [`version_hash`]es (computed: the store keeps no hashes).
    pub fn hashed(self) -> impl Iterator<Item = (VersionRef<'a>, u64)> {
        let Kept { first, key, kh, rest } = self;
        let kh = kh.unwrap_or_else(|| key_hash(key));
        first.into_iter().chain(rest).map(move |v| (v, version_hash(kh, v)))
    }
}

impl<'a> Iterator for Kept<'a> {
    type Item = VersionRef<'a>;

    fn next(&mut self) -> Option<VersionRef<'a>> {
        self.first.take().or_else(|| self.rest.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.first.is_some()) + self.rest.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Kept<'_> {}

/// A thread-safe replica of the whole key space. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    shards: Box<[ShardLock]>,
}

/// Counts of what a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys whose winner is a value.
    pub live_keys: usize,
    /// Keys whose winner is a tombstone.
    pub tombstones: usize,
    /// Versions kept beyond the winners (concurrent values).
    pub extra_versions: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(StoreConfig::default())
    }
}

impl Store {
    /// An empty store.
    pub fn new(cfg: StoreConfig) -> Self {
        let cfg = cfg.normalized();
        let leaves_per_shard = cfg.tree.leaves() >> cfg.shards_log2;
        let shards = (0..1usize << cfg.shards_log2)
            .map(|_| ShardLock(RwLock::new(Shard::new(leaves_per_shard))))
            .collect();
        Self { cfg, shards }
    }

    /// The configuration in force.
    pub fn config(&self) -> StoreConfig {
        self.cfg
    }

    /// The digest tree's shape.
    pub fn tree(&self) -> TreeShape {
        self.cfg.tree
    }

    #[inline]
    fn locate(&self, kh: u64) -> (usize, usize) {
        let leaf = self.cfg.tree.leaf_of(kh);
        let per_shard_log2 = self.cfg.tree.leaves_log2() - self.cfg.shards_log2;
        (leaf >> per_shard_log2, leaf & ((1 << per_shard_log2) - 1))
    }

    fn shard_of_leaf(&self, leaf: usize) -> (usize, usize) {
        let per_shard_log2 = self.cfg.tree.leaves_log2() - self.cfg.shards_log2;
        (leaf >> per_shard_log2, leaf & ((1 << per_shard_log2) - 1))
    }

    /// Calls `f` with the winning value of `key` (`None` if absent or deleted), under the
    /// shard's read lock; lets a server copy the value straight into its output buffer.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let kh = key_hash(key);
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        match shard.find(kh, key) {
            Some(pos) => f(shard.entries[pos as usize].version(&shard.spill).value),
            None => f(None),
        }
    }

    /// The winning value of `key`, or `None` if absent or deleted.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.get_with(key, |v| v.map(Bytes::copy_from_slice))
    }

    /// Whether `key` has a live (non-deleted) winner.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get_with(key, |v| v.is_some())
    }

    /// Every kept version of `key`, winner first (tombstones included); empty if never seen.
    pub fn versions(&self, key: &[u8]) -> Vec<Version> {
        let kh = key_hash(key);
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        match shard.find(kh, key) {
            Some(pos) => shard.kept(pos).map(|v| v.to_owned()).collect(),
            None => Vec::new(),
        }
    }

    /// Bytes `key` holds in this store (Redis `MEMORY USAGE`), or `None` if absent or
    /// deleted: its entry, its share of the index (a 5-byte slot at 7/8 load), its key+value
    /// block if outside the entry, at the allocator's size class, and its concurrent values.
    /// Counted as [`Store::memory_estimate`] counts the whole store.
    pub fn key_memory(&self, key: &[u8]) -> Option<usize> {
        let kh = key_hash(key);
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        let pos = shard.find(kh, key)?;
        let e = &shard.entries[pos as usize];
        e.version(&shard.spill).value?;
        let mut bytes = std::mem::size_of::<Entry>()
            + (5 * 8usize).div_ceil(7)
            + size_class(e.spilled_len(&shard.spill));
        if let Some(x) = e.xid().and_then(|x| shard.extras.get(pos, x)) {
            bytes += std::mem::size_of::<Extras>() + x.heap_bytes();
        }
        Some(bytes)
    }

    /// The winning version of `key` (tombstones included).
    pub fn winner(&self, key: &[u8]) -> Option<Version> {
        let kh = key_hash(key);
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        shard.find(kh, key).map(|pos| shard.entries[pos as usize].version(&shard.spill).to_owned())
    }

    /// The key whose stable hash is `kh`, with its kept versions (winner first), if the store
    /// holds one. Gossip names keys by hash; a 64-bit collision between two live keys is
    /// treated as impossible (probability about n²/2⁶⁵).
    pub fn get_by_hash(&self, kh: u64) -> Option<(Bytes, Vec<Version>)> {
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        let pos = shard.find_by_hash(kh)?;
        let key = Bytes::copy_from_slice(shard.entries[pos as usize].key(&shard.spill));
        Some((key, shard.kept(pos).map(|v| v.to_owned()).collect()))
    }

    /// Calls `f` with the kept versions of the key whose stable hash is `kh` (empty iterator
    /// if absent), under the shard's read lock, without copying.
    pub fn with_versions_by_hash<R>(
        &self,
        kh: u64,
        f: impl FnOnce(&mut dyn Iterator<Item = VersionRef<'_>>) -> R,
    ) -> R {
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        match shard.find_by_hash(kh) {
            Some(pos) => f(&mut shard.kept_hashed(pos, kh)),
            None => f(&mut std::iter::empty()),
        }
    }

    /// Calls `f` with the key whose stable hash is `kh` and its kept versions (`None` if
    /// absent), under the shard's read lock, without copying.
    pub fn with_key_by_hash<R>(
        &self,
        kh: u64,
        f: impl FnOnce(Option<(&[u8], Kept<'_>)>) -> R,
    ) -> R {
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        match shard.find_by_hash(kh) {
            Some(pos) => {
                f(Some((shard.entries[pos as usize].key(&shard.spill), shard.kept_hashed(pos, kh))))
            }
            None => f(None),
        }
    }

    /// Calls `f(key, kept versions)` for every key one of whose kept versions satisfies
    /// `wanted(origin, ts)` (`f` sees them all), reading the entries in memory order, shard by
    /// shard under its read lock (a key with concurrent values: one more line, its slot):
    /// a pass over the whole store at streaming speed (gossip's answer to a large pull), with
    /// no index probe and no walk of the leaves' block lists.
    pub fn for_each_matching(
        &self,
        mut wanted: impl FnMut(NodeId, Timestamp) -> bool,
        mut f: impl FnMut(&[u8], Kept<'_>),
    ) {
        for shard in &self.shards {
            let shard = shard.read();
            shard.entries.all_used(|p, e| {
                // a key's concurrent values: their origins' hint first, the slot only if some
                // may be wanted
                let winner = wanted(e.origin, e.ts);
                if winner || e.xid().is_some_and(|x| shard.extras.may_want(x, e.ts, &mut wanted)) {
                    let rest = shard.extras_of(p, e);
                    if winner || rest.clone().any(|v| wanted(v.origin, v.ts)) {
                        let (first, key) = (Some(e.version(&shard.spill)), e.key(&shard.spill));
                        f(key, Kept { first, key, kh: None, rest });
                    }
                }
                true
            });
        }
    }

    /// Brings into the cache what [`Store::for_each_with_hash_hi`] will read for each of
    /// `his` (the index slot and the entry of the first key each names), so that the misses
    /// of a batch of lookups overlap. It changes nothing but timing.
    pub fn warm_hash_hi(&self, his: impl IntoIterator<Item = u32>) {
        let mut held: Option<(usize, RwLockReadGuard<'_, Shard>)> = None;
        let mut acc = 0u32;
        for hi in his {
            let (s, _) = self.locate(u64::from(hi) << 32);
            if held.as_ref().is_none_or(|(h, _)| *h != s) {
                held = Some((s, self.shards[s].read()));
            }
            if let Some((_, shard)) = &held
                && let Some((_, word)) = shard.warm_candidate(u64::from(hi) << 32)
            {
                acc ^= word;
            }
        }
        std::hint::black_box(acc);
    }

    /// Calls `f(key, kept versions)` for every key whose stable hash has `kh_hi` as its top 32
    /// bits (almost always at most one key), under the shard's read lock: a lookup by the part
    /// of the hash that gossip's origin logs keep.
    pub fn for_each_with_hash_hi(&self, kh_hi: u32, mut f: impl FnMut(&[u8], Kept<'_>)) {
        let (s, _) = self.locate(u64::from(kh_hi) << 32);
        let shard = self.shards[s].read();
        for &pos in shard.index.iter_hash(index_hash(kh_hi)) {
            let key = shard.entries[pos as usize].key(&shard.spill);
            let kh = key_hash(key);
            if index_bits(kh) == kh_hi {
                f(key, shard.kept_hashed(pos, kh));
            }
        }
    }

    /// Whether both stores hold exactly the same keys with exactly the same kept versions
    /// (keys and values compared byte for byte); `other` must have the same tree: the
    /// simulator's final check. With the same number of keys on both sides (and the same
    /// root hash, a cheap first test), finding each of ours in `other`, equal, means the
    /// stores are equal.
    pub fn equals(&self, other: &Store) -> bool {
        std::ptr::eq(self, other) || (self.same_summary(other) && self.entries_in(other))
    }

    /// Whether `other` holds each of our keys with the same kept versions, compared byte
    /// for byte. Reads this store in memory order, shard by shard, and looks each key up in
    /// `other`, holding every read lock of `other` for the pass.
    fn entries_in(&self, other: &Store) -> bool {
        let theirs: Vec<_> = other.shards.iter().map(ShardLock::read).collect();
        self.shards.iter().all(|shard| {
            let a = shard.read();
            // Our entries stream past in memory order; each lookup in `other` is a few
            // dependent cache misses (index slot, then entry). So the keys go in windows:
            // touch every key's slot and entry in `other` first, so that the window's misses
            // overlap, then compare them one by one, from the cache. The entry touched is
            // almost always the key's, and then equal entries need no second probe.
            let check = |window: &[(u32, u64)]| {
                let mut touched = [NONE; LOOKAHEAD];
                let mut acc = 0u32;
                for (t, &(_, kh)) in touched.iter_mut().zip(window) {
                    if let Some((pos, word)) = theirs[other.locate(kh).0].warm_candidate(kh) {
                        (*t, acc) = (pos, acc ^ word);
                    }
                }
                std::hint::black_box(acc);
                window.iter().zip(touched).all(|(&(pa, kh), t)| {
                    let b = &theirs[other.locate(kh).0];
                    (t != NONE && a.entry_equals(pa, b, t))
                        || b.find(kh, a.entries[pa as usize].key(&a.spill))
                            .is_some_and(|pb| a.entry_equals(pa, b, pb))
                })
            };
            let mut window = [(0u32, 0u64); LOOKAHEAD];
            let mut n = 0;
            a.entries.all_used(|pa, ea| {
                window[n] = (pa, key_hash(ea.key(&a.spill)));
                n += 1;
                n < LOOKAHEAD || {
                    n = 0;
                    check(&window)
                }
            }) && check(&window[..n])
        })
    }

    /// Same tree, same number of keys, same root hash: what equal stores must share.
    fn same_summary(&self, other: &Store) -> bool {
        self.cfg.tree == other.cfg.tree
            && self.keys_held() == other.keys_held()
            && self.root_hash() == other.root_hash()
    }

    /// Whether the kept versions of `key` are exactly `expected` (winner first); lets an
    /// oracle compare without allocating.
    pub fn versions_equal(&self, key: &[u8], expected: &[Version]) -> bool {
        let kh = key_hash(key);
        let (s, _) = self.locate(kh);
        let shard = self.shards[s].read();
        match shard.find(kh, key) {
            Some(pos) => shard.kept(pos).eq(expected.iter().map(Version::as_ref)),
            None => expected.is_empty(),
        }
    }

    /// Joins one version of `key` into the store, atomically for that key.
    pub fn merge(&self, key: &[u8], v: VersionRef<'_>) -> MergeOutcome {
        let kh = key_hash(key);
        self.merge_hashed(kh, version_hash(kh, v), key, v)
    }

    /// [`Store::merge`] for a caller that already computed `kh = key_hash(key)` and
    /// `vh = version_hash(kh, v)` (gossip does, for its own bookkeeping).
    pub fn merge_hashed(&self, kh: u64, vh: u64, key: &[u8], v: VersionRef<'_>) -> MergeOutcome {
        debug_assert_eq!((kh, vh), (key_hash(key), version_hash(kh, v)));
        let (s, leaf) = self.locate(kh);
        self.shards[s].write().merge((kh, vh), leaf, key, v, self.cfg.max_concurrent)
    }

    /// [`Store::merge_hashed`], first calling `before` with the key's winning value (`None` if
    /// absent or deleted) under the same write lock, so no other write of the key comes
    /// between the read and the merge (GETSET, GETDEL: exactly one of two racing callers sees
    /// the old value).
    pub fn merge_hashed_after<R>(
        &self,
        kh: u64,
        vh: u64,
        key: &[u8],
        v: VersionRef<'_>,
        before: impl FnOnce(Option<&[u8]>) -> R,
    ) -> (MergeOutcome, R) {
        debug_assert_eq!((kh, vh), (key_hash(key), version_hash(kh, v)));
        let (s, leaf) = self.locate(kh);
        let mut shard = self.shards[s].write();
        let r = match shard.find(kh, key) {
            Some(pos) => before(shard.entries[pos as usize].version(&shard.spill).value),
            None => before(None),
        };
        (shard.merge((kh, vh), leaf, key, v, self.cfg.max_concurrent), r)
    }

    /// A run of merges that keeps a shard's write lock between consecutive merges into that
    /// shard (see [`MergeRun`]).
    pub fn merge_run(&self) -> MergeRun<'_> {
        MergeRun { store: self, held: None, merges: 0 }
    }

    /// Merges a batch and appends to `changed` the index (within the batch) of every version
    /// that changed the store, so gossip can forward exactly the fresh ones.
    pub fn merge_batch<'a>(
        &self,
        batch: impl IntoIterator<Item = (&'a [u8], VersionRef<'a>)>,
        changed: &mut Vec<usize>,
    ) {
        for (i, (key, v)) in batch.into_iter().enumerate() {
            if self.merge(key, v).changed() {
                changed.push(i);
            }
        }
    }

    /// Counts of live keys, tombstones and concurrent values.
    pub fn stats(&self) -> StoreStats {
        let mut st = StoreStats::default();
        for s in self.shards.iter() {
            let s = s.read();
            st.tombstones += s.tombstones;
            st.live_keys += s.entries.len() - s.tombstones;
            st.extra_versions += s.extras.values().map(Extras::len).sum::<usize>();
        }
        st
    }

    /// An estimate of the heap bytes this store holds: entries, index slots, key+value blocks
    /// at the allocator's size class (mimalloc's: 8-byte steps to 64, then four classes per
    /// doubling), the per-leaf arrays and the concurrent values' side table. It walks every entry
    /// (one shard's read lock at a time; about 1 ms per million keys), so call it for a scrape,
    /// not per request. docs/store.md compares the parts with the measured RSS per key.
    pub fn memory_estimate(&self) -> usize {
        let entry = std::mem::size_of::<Entry>();
        let mut bytes = std::mem::size_of::<Self>();
        for s in self.shards.iter() {
            let s = s.read();
            // chunk pages are resident only where written (without transparent huge pages):
            // count allocated blocks' slots (every slot of a block is written when the block
            // is taken), not capacity
            bytes += s.entries.written() * entry;
            bytes += s.entries.chunks.capacity() * std::mem::size_of::<Vec<Entry>>();
            bytes += (s.entries.next.capacity() + s.entries.free.capacity()) * 4;
            // a 4-byte slot per bucket
            bytes += hash_table_bytes(s.index.capacity(), 4);
            bytes += s.spill.heap_bytes();
            // per leaf: newest block, key count, leaf hash
            bytes += s.entries.heads.len() * (4 + 4 + 8);
            bytes += s.extras.heap_bytes();
        }
        bytes
    }

    /// Number of live keys (Redis DBSIZE).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.read();
                s.entries.len() - s.tombstones
            })
            .sum()
    }

    /// Number of keys held, tombstones included (what gossip compares to spot a node far
    /// behind). Unlike [`Store::stats`] it does not walk the concurrent values.
    pub fn keys_held(&self) -> usize {
        self.shards.iter().map(|s| s.read().entries.len()).sum()
    }

    /// Whether no key has a live value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hash of one leaf.
    pub fn leaf_hash(&self, leaf: usize) -> u64 {
        let (s, l) = self.shard_of_leaf(leaf);
        self.shards[s].read().leaf_hash[l]
    }

    /// Number of keys (tombstones included) in one leaf.
    pub fn leaf_len(&self, leaf: usize) -> u32 {
        let (s, l) = self.shard_of_leaf(leaf);
        self.shards[s].read().entries.counts[l]
    }

    /// Hash of the tree node `index` at `level` (0 = root): XOR of its leaves' hashes.
    pub fn node_hash(&self, level: u32, index: usize) -> u64 {
        let range = self.cfg.tree.leaf_range(level, index);
        let per_shard = self.cfg.tree.leaves() >> self.cfg.shards_log2;
        if range.len() >= per_shard {
            // whole shards
            (range.start / per_shard..range.end / per_shard)
                .fold(0, |acc, s| acc ^ self.shards[s].read().total_hash)
        } else {
            let (s, l) = self.shard_of_leaf(range.start);
            let shard = self.shards[s].read();
            shard.leaf_hash[l..l + range.len()].iter().fold(0, |a, h| a ^ h)
        }
    }

    /// The hash of the whole store (the tree's root).
    pub fn root_hash(&self) -> u64 {
        self.node_hash(0, 0)
    }

    /// [`Self::root_hash`] and [`Self::keys_held`] together, taking each shard's lock once
    /// (every `Sync` and `SyncAck` carries both).
    pub fn root_and_keys(&self) -> (u64, usize) {
        self.shards.iter().fold((0, 0), |(root, keys), s| {
            let s = s.read();
            (root ^ s.total_hash, keys + s.entries.len())
        })
    }

    /// Hashes of the 16 children of node `index` at `level`.
    pub fn children_hashes(&self, level: u32, index: usize) -> [u64; TREE_ARITY] {
        let mut out = [0; TREE_ARITY];
        let range = self.cfg.tree.leaf_range(level, index);
        let per_shard = self.cfg.tree.leaves() >> self.cfg.shards_log2;
        if range.len() > per_shard {
            for (c, h) in out.iter_mut().enumerate() {
                *h = self.node_hash(level + 1, index * TREE_ARITY + c);
            }
        } else {
            // all in one shard: one lock, 16 runs of leaf hashes
            let (s, l) = self.shard_of_leaf(range.start);
            let span = range.len() / TREE_ARITY;
            let shard = self.shards[s].read();
            for (c, h) in out.iter_mut().enumerate() {
                let start = l + c * span;
                *h = shard.leaf_hash[start..start + span].iter().fold(0, |a, x| a ^ x);
            }
        }
        out
    }

    /// Key counts of the 16 children of node `index` at `level`, which must be the level
    /// just above the leaves.
    pub fn children_leaf_lens(&self, level: u32, index: usize) -> [u32; TREE_ARITY] {
        let mut out = [0; TREE_ARITY];
        let range = self.cfg.tree.leaf_range(level, index);
        let (s, l) = self.shard_of_leaf(range.start);
        let (s_last, _) = self.shard_of_leaf(range.end - 1);
        if range.len() != TREE_ARITY || s != s_last {
            for (c, n) in out.iter_mut().enumerate() {
                *n = self.leaf_len(range.start + c);
            }
        } else {
            let shard = self.shards[s].read();
            out.copy_from_slice(&shard.entries.counts[l..l + TREE_ARITY]);
        }
        out
    }

    /// Calls `f(key, kept versions)` for every key in `leaf`, newest key first, under the
    /// shard's read lock.
    pub fn for_each_in_leaf(
        &self,
        leaf: usize,
        mut f: impl FnMut(&[u8], &mut dyn Iterator<Item = VersionRef<'_>>),
    ) {
        // (no key hash: a caller that does not need it does not pay for it)
        let (s, l) = self.shard_of_leaf(leaf);
        let shard = self.shards[s].read();
        for pos in shard.entries.newest_first(l) {
            f(shard.entries[pos as usize].key(&shard.spill), &mut shard.kept(pos));
        }
    }

    /// Calls `f(key hash, key, kept versions)` for every key in `leaf`, newest key first,
    /// under the shard's read lock. The store keeps no hashes: each key is hashed here, once.
    pub fn for_each_in_leaf_hashed(&self, leaf: usize, mut f: impl FnMut(u64, &[u8], Kept<'_>)) {
        let (s, l) = self.shard_of_leaf(leaf);
        let shard = self.shards[s].read();
        shard.entries.warm_leaf(l);
        for pos in shard.entries.newest_first(l) {
            let key = shard.entries[pos as usize].key(&shard.spill);
            let kh = key_hash(key);
            f(kh, key, shard.kept_hashed(pos, kh));
        }
    }

    /// Keys with a live value in leaves `[cursor, cursor + ..)`, leaf by leaf, until at least
    /// `count` keys were collected. Returns the next cursor (0 when done). A key present for
    /// the whole scan is returned exactly once, whatever writes happen meanwhile (Redis SCAN's
    /// guarantee), because a key's leaf never changes.
    pub fn scan(&self, cursor: usize, count: usize, out: &mut Vec<Bytes>) -> usize {
        let leaves = self.cfg.tree.leaves();
        let mut leaf = cursor.min(leaves);
        let start = out.len();
        while leaf < leaves && out.len() - start < count.max(1) {
            self.for_each_in_leaf(leaf, |k, vs| {
                if vs.next().is_some_and(|w| w.value.is_some()) {
                    out.push(Bytes::copy_from_slice(k));
                }
            });
            leaf += 1;
        }
        if leaf >= leaves { 0 } else { leaf }
    }

    /// Removes tombstones with timestamps below `before` (and nothing else). The caller
    /// decides when that is safe (see docs/store.md); returns how many were purged.
    pub fn purge_tombstones(&self, before: Timestamp) -> usize {
        self.purge(before, true)
    }

    /// Removes keys whose winning version is older than `before`: only tombstones when
    /// `tombstones_only`, every key otherwise (a node back from beyond the purge horizon).
    /// Returns how many keys were removed.
    pub fn purge(&self, before: Timestamp, tombstones_only: bool) -> usize {
        self.purge_with(before, tombstones_only, |_, _| {})
    }

    /// [`Store::purge`], calling `removed(key, winner)` for each key removed (under its
    /// shard's lock: keep it short).
    pub fn purge_with(
        &self,
        before: Timestamp,
        tombstones_only: bool,
        mut removed: impl FnMut(&[u8], VersionRef<'_>),
    ) -> usize {
        let mut purged = 0;
        for s in self.shards.iter() {
            let mut shard = s.write();
            if tombstones_only && shard.tombstones == 0 {
                // nothing to purge (the common case): no walk over the shard's leaves
                continue;
            }
            for leaf in 0..shard.entries.heads.len() {
                purged += shard.remove_where(leaf, |e, spill| {
                    let doomed = (!tombstones_only || e.meta & TOMBSTONE != 0) && e.ts < before;
                    if doomed {
                        removed(e.key(spill), e.version(spill));
                    }
                    doomed
                });
            }
        }
        purged
    }

    /// Makes room in the index for `keys` keys in all (spread over the shards), so that a
    /// store expected to grow to that size does not rehash its index on the way: the
    /// simulator knows its workload's key count.
    pub fn reserve(&self, keys: usize) {
        let per_shard = keys.div_ceil(self.shards.len());
        for s in self.shards.iter() {
            let mut shard = s.write();
            let Shard { index, entries, spill, .. } = &mut *shard;
            let more = per_shard.saturating_sub(index.len());
            index.reserve(more, |&i| rehash(entries, spill, i));
        }
    }

    /// Drops everything (a node restarting empty).
    pub fn clear(&self) {
        let per_shard = self.cfg.tree.leaves() >> self.cfg.shards_log2;
        for s in self.shards.iter() {
            *s.write() = Shard::new(per_shard);
        }
    }

    /// Every key with its kept versions, sorted by key. For tests and the simulator's oracle;
    /// O(store size).
    pub fn snapshot(&self) -> BTreeMap<Bytes, Vec<Version>> {
        let mut out = BTreeMap::new();
        for s in self.shards.iter() {
            let s = s.read();
            for leaf in 0..s.entries.heads.len() {
                for pos in s.entries.newest_first(leaf) {
                    let e = &s.entries[pos as usize];
                    out.insert(
                        Bytes::copy_from_slice(e.key(&s.spill)),
                        s.kept(pos).map(|v| v.to_owned()).collect(),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_concurrent_values_read_back_as_packed() {
        let vs = vec![
            Version::put(7, 1, &b"apple"[..]),
            Version::tombstone(7, 2),
            Version::put(7, 3, &b""[..]),
        ];
        let x = Extras::pack(&vs);
        assert_eq!(x.len(), 3);
        assert_eq!(
            x.iter().collect::<Vec<_>>(),
            vs.iter().map(Version::as_ref).collect::<Vec<_>>()
        );
        assert_eq!(x.unpack(), vs);
        assert_eq!(x, Extras::pack(&x.unpack()), "packing is canonical");
        assert_eq!(x.bytes().len(), 2 + 3 * EXTRA_HEAD + 5);
        assert_eq!(x.heap_bytes(), 0, "55 bytes fit the slot");
        assert_eq!(Extras::pack(&[]).iter().count(), 0);
        // one byte past the slot goes to the heap, and reads back the same
        let long = vec![Version::put(7, 1, vec![b'v'; EXTRAS_INLINE - 2 - EXTRA_HEAD + 1])];
        let y = Extras::pack(&long);
        assert_eq!(y.heap_bytes(), size_class(EXTRAS_INLINE + 1));
        assert_eq!(y.unpack(), long);
        assert_ne!(x, y);
    }

    /// Past the first `XID_OVERFLOW` keys with concurrent values in a shard, the rest live in
    /// the overflow map: both kinds read back, compare equal across stores that placed them
    /// differently, survive a purge that moves entries, and free slots are reused.
    #[test]
    fn concurrent_values_past_the_slot_ids_go_to_the_overflow_map() {
        let cfg = StoreConfig { shards_log2: 0, ..StoreConfig::default() };
        // ids a shard hands out before the overflow map: all but each chunk's last
        let slots =
            (0..XID_OVERFLOW).filter(|i| i & XCHUNK_CAP as u32 != XCHUNK_CAP as u32).count();
        let n = slots + 900;
        let key = |i: usize| format!("key-{i:05}").into_bytes();
        // even keys at ts 5 (purged below), odd at ts 9; two concurrent values each, one of
        // them long enough to leave the slot for every tenth key
        let versions = |i: usize| {
            let ts = if i.is_multiple_of(2) { 5 } else { 9 };
            let long = if i.is_multiple_of(10) { 80 } else { 4 };
            vec![
                Version::put(ts, 1, format!("a{i}").into_bytes()),
                Version::put(ts, 2, vec![b'b'; long]),
                Version::put(ts, 3, format!("c{i}").into_bytes()),
            ]
        };
        let a = Store::new(cfg);
        let b = Store::new(cfg);
        for i in 0..n {
            for v in versions(i) {
                a.merge(&key(i), v.as_ref());
            }
        }
        for i in (0..n).rev() {
            for v in versions(i).into_iter().rev() {
                b.merge(&key(i), v.as_ref());
            }
        }
        let overflowed = a.shards[0].read().extras.overflow.len();
        assert_eq!(overflowed, n - slots);
        assert_eq!(a.stats().extra_versions, 2 * n);
        let expected = |i: usize| {
            let mut vs = versions(i);
            vs.sort_by(|x, y| crate::lww::rank(x.as_ref(), y.as_ref()));
            vs
        };
        for i in 0..n {
            assert_eq!(a.versions(&key(i)), expected(i), "key {i}");
            assert_eq!(b.versions(&key(i)), expected(i), "key {i}");
        }
        assert!(a.equals(&b) && b.equals(&a));
        // one concurrent value less at one key: no longer equal
        let c = Store::new(cfg);
        for i in 0..n {
            for v in versions(i).into_iter().take(if i == n - 1 { 2 } else { 3 }) {
                c.merge(&key(i), v.as_ref());
            }
        }
        assert!(!a.equals(&c) && !c.equals(&a));
        // the purge removes the even keys and moves the odd ones down their leaves' blocks
        assert_eq!(a.purge(7, false), n.div_ceil(2));
        assert_eq!(a.stats().extra_versions, 2 * (n / 2));
        for i in 0..n {
            let want = if i.is_multiple_of(2) { Vec::new() } else { expected(i) };
            assert_eq!(a.versions(&key(i)), want, "key {i} after the purge");
        }
        // freed slots are taken again by new keys
        for i in n..n + 100 {
            for v in versions(i) {
                a.merge(&key(i), v.as_ref());
            }
            assert_eq!(a.versions(&key(i)), expected(i));
        }
        let shard = a.shards[0].read();
        assert_eq!(shard.extras.chunks.len(), 256, "no chunk added");
        // the odd half of the 900 that overflowed is left; the 100 new keys took freed slots
        assert_eq!(shard.extras.overflow.len(), 450);
    }

    fn put(ts: u64, origin: u32, v: &str) -> Version {
        Version::put(ts, origin, v.as_bytes().to_vec())
    }

    fn small() -> Store {
        Store::new(StoreConfig { shards_log2: 2, tree: TreeShape::new(1), max_concurrent: 3 })
    }

    #[test]
    fn a_merge_run_equals_merges_one_by_one() {
        // 4 shards; runs of one shard longer than MERGE_RUN, shard changes, ties, tombstones
        // and repeats, each outcome compared with a plain merge into another store
        let (a, b) = (small(), small());
        let mut versions = Vec::new();
        for i in 0..(3 * MERGE_RUN as u64) {
            let key = format!("k{}", i % 700);
            let v = match i % 5 {
                0 => Version::tombstone(i / 3, 1),
                1 => put(i / 3, 2, "tie"),
                _ => put(i / 2, (i % 3) as u32, &"v".repeat((i % 70) as usize)),
            };
            versions.push((key, v));
        }
        // a long run of keys of one shard
        let first = key_hash(b"k0");
        let same: Vec<_> = (0..2000)
            .map(|i| format!("s{i}"))
            .filter(|k| a.locate(key_hash(k.as_bytes())).0 == a.locate(first).0)
            .collect();
        assert!(same.len() > MERGE_RUN);
        versions.extend(same.into_iter().map(|k| (k, put(9, 9, "same"))));
        // merged in windows, each warmed first as gossip does (`MergeRun::warm`: it reads,
        // and must change nothing)
        let mut run = a.merge_run();
        for window in versions.chunks(16) {
            for (key, _) in window {
                run.warm(key_hash(key.as_bytes()), key.as_bytes());
            }
            for (key, v) in window {
                let kh = key_hash(key.as_bytes());
                let vh = version_hash(kh, v.as_ref());
                let got = run.merge_hashed(kh, vh, key.as_bytes(), v.as_ref());
                assert_eq!(got, b.merge(key.as_bytes(), v.as_ref()), "{key}");
            }
        }
        drop(run);
        // the locks are released, and the stores are the same
        assert!(a.equals(&b));
        assert_eq!(a.snapshot(), b.snapshot());
        assert_eq!(a.root_hash(), b.root_hash());
    }

    #[test]
    fn get_put_delete_and_versions() {
        let s = small();
        assert_eq!(s.get(b"a"), None);
        assert_eq!(s.merge(b"a", put(1, 0, "x").as_ref()), MergeOutcome::Inserted);
        assert_eq!(s.get(b"a").as_deref(), Some(&b"x"[..]));
        assert_eq!(s.merge(b"a", put(2, 1, "y").as_ref()), MergeOutcome::Replaced);
        assert_eq!(s.merge(b"a", put(2, 2, "b").as_ref()), MergeOutcome::Concurrent);
        assert_eq!(s.get(b"a").as_deref(), Some(&b"b"[..]));
        let vs = s.versions(b"a");
        assert_eq!(vs, vec![put(2, 2, "b"), put(2, 1, "y")]);
        assert_eq!(s.merge(b"a", Version::tombstone(2, 9).as_ref()), MergeOutcome::Concurrent);
        assert_eq!(s.get(b"a"), None, "a tombstone wins a tie");
        assert_eq!(s.stats(), StoreStats { live_keys: 0, tombstones: 1, extra_versions: 2 });
        assert_eq!(s.keys_held(), 1);
        assert_eq!(s.merge(b"a", put(3, 0, "z").as_ref()), MergeOutcome::Replaced);
        assert_eq!(s.stats(), StoreStats { live_keys: 1, tombstones: 0, extra_versions: 0 });
    }

    #[test]
    fn memory_estimate_follows_the_layout() {
        assert_eq!(
            (size_class(1), size_class(48), size_class(65), size_class(129)),
            (8, 48, 80, 160)
        );
        let s = Store::default();
        let empty = s.memory_estimate();
        for i in 0..20_000u32 {
            let key = format!("k:{i:014}");
            let value = format!("v:{i:030}");
            s.merge(key.as_bytes(), put(1, 0, &value).as_ref());
        }
        // docs/store.md: 64 per entry slot (whole blocks of 4 per leaf: at 20,000 keys in
        // 4,096 leaves many slots are the free ones of a leaf's newest block), the 16 + 32
        // bytes inside it, + 5.7 to 11.4 (index) per key, + a 4-byte link per block
        let slots: usize = s.shards.iter().map(|sh| sh.read().entries.written()).sum();
        let entries = (slots * std::mem::size_of::<Entry>()) as f64 / 20_000.0;
        let per_key = (s.memory_estimate() - empty) as f64 / 20_000.0 - entries;
        assert!((5.0..=14.0).contains(&per_key), "{per_key} bytes per key beside the entries");
        s.merge(b"k:00000000000000", put(1, 1, "tie").as_ref());
        assert!(s.memory_estimate() > empty + 20_000 * (64 + 5));
        // a key + value past INLINE bytes costs its allocation on top, and a slot of the
        // shard's spill table (whose first growth takes room for four)
        let before = s.memory_estimate();
        s.merge(b"k:00000000000001", put(2, 0, &"x".repeat(100)).as_ref());
        let grown = s.memory_estimate() - before;
        assert!((size_class(16 + 100)..=size_class(16 + 100) + 4 * 16).contains(&grown), "{grown}");
    }

    #[test]
    fn entry_bytes_inline_and_spilled_round_trip_through_every_transition() {
        let mut spill = Spill::default();
        let mut e = Entry::PLACEHOLDER;
        assert!(!e.is_used());
        let long = vec![7u8; 200];
        // inline -> inline (same and other lengths), inline -> spilled, spilled -> spilled
        // (same length: in place; other length), spilled -> inline, a tombstone, the empty
        // value
        let steps: [(&[u8], Option<&[u8]>); 9] = [
            (b"key", Some(b"value")),
            (b"key", Some(b"other")),
            (b"key", Some(b"much longer value")),
            (b"key", Some(&long)),
            (b"key", Some(&long[..])),
            (b"key", Some(&long[..150])),
            (b"key", Some(b"short again")),
            (b"key", None),
            (b"key", Some(b"")),
        ];
        for (i, (key, value)) in steps.into_iter().enumerate() {
            let v = VersionRef { ts: i as u64 + 1, origin: 9, value };
            e.set(key, v, &mut spill);
            assert!(e.is_used());
            assert_eq!(e.key(&spill), key);
            assert_eq!(e.version(&spill), v);
            let n = key.len() + value.map_or(0, <[u8]>::len);
            assert_eq!(e.spilled_len(&spill), if n <= INLINE { 0 } else { n });
            // one slot at most, reused or freed as the length moves
            let held = spill.blocks.len() - spill.free.len();
            assert_eq!(held, usize::from(n > INLINE), "step {i}");
        }
        // exactly INLINE bytes stay inline; one more goes to the spill
        let edge = vec![1u8; INLINE - 3];
        e.set(b"key", VersionRef { ts: 20, origin: 1, value: Some(&edge) }, &mut spill);
        assert_eq!(
            (e.spilled_len(&spill), e.version(&spill).value.map(<[u8]>::len)),
            (0, Some(45))
        );
        let over = [edge.as_slice(), b"!"].concat();
        e.set(b"key", VersionRef { ts: 21, origin: 1, value: Some(&over) }, &mut spill);
        assert_eq!(e.spilled_len(&spill), INLINE + 1);
        assert_eq!(e.key(&spill), b"key");
        // released: the slot goes back to the spill's free list and is taken next
        e.release(&mut spill);
        assert!(!e.is_used());
        assert_eq!(spill.free.len(), spill.blocks.len());
        let mut f =
            Entry::new(b"k2", VersionRef { ts: 1, origin: 2, value: Some(&long) }, &mut spill);
        assert_eq!(spill.blocks.len(), 1);
        assert_eq!(f.version(&spill).value, Some(&long[..]));
        f.release(&mut spill);
    }

    #[test]
    fn digest_is_order_independent_and_tracks_removal() {
        let a = small();
        let b = small();
        let vs: Vec<(&[u8], Version)> = vec![
            (b"k1", put(1, 0, "a")),
            (b"k2", put(1, 0, "b")),
            (b"k1", put(1, 1, "a")),
            (b"k3", Version::tombstone(4, 2)),
        ];
        for (k, v) in &vs {
            a.merge(k, v.as_ref());
        }
        for (k, v) in vs.iter().rev() {
            b.merge(k, v.as_ref());
        }
        assert_eq!(a.root_hash(), b.root_hash());
        assert_ne!(a.root_hash(), 0);
        assert_eq!(a.purge_tombstones(5), 1);
        assert_ne!(a.root_hash(), b.root_hash());
        let c = small();
        for (k, v) in &vs[..3] {
            c.merge(k, v.as_ref());
        }
        assert_eq!(a.root_hash(), c.root_hash());
        assert_eq!(a.snapshot(), c.snapshot());
    }

    /// A store with one key with concurrent values holds a few slots for it, not a chunk.
    #[test]
    fn a_few_concurrent_values_take_a_few_slots() {
        let s = Store::new(StoreConfig { shards_log2: 0, ..StoreConfig::default() });
        s.merge(b"k", Version::put(5, 1, &b"a"[..]).as_ref());
        s.merge(b"k", Version::put(5, 2, &b"b"[..]).as_ref());
        let shard = s.shards[0].read();
        assert_eq!(shard.extras.chunks.iter().map(Vec::capacity).sum::<usize>(), 4);
        assert!(shard.extras.heap_bytes() < 512, "{}", shard.extras.heap_bytes());
    }

    /// The read-ahead helpers change no answer, on any shard, present key or absent.
    #[test]
    fn warming_reads_changes_no_answer() {
        let s = Store::new(StoreConfig::default());
        for i in 0..500u32 {
            s.merge(
                format!("k{i}").as_bytes(),
                Version::put(u64::from(i) + 1, 1, vec![1]).as_ref(),
            );
        }
        let his: Vec<u32> =
            (0..600u32).map(|i| index_bits(key_hash(format!("k{i}").as_bytes()))).collect();
        let read = |hi: u32| {
            let mut out = Vec::new();
            s.for_each_with_hash_hi(hi, |k, vs| out.push((k.to_vec(), vs.count())));
            out
        };
        let before: Vec<_> = his.iter().map(|&h| read(h)).collect();
        s.warm_hash_hi(his.iter().copied());
        s.warm_hash_hi(std::iter::empty());
        let after: Vec<_> = his.iter().map(|&h| read(h)).collect();
        assert_eq!(before, after);
        assert_eq!(after.iter().filter(|v| !v.is_empty()).count(), 500);
        let mut keys = 0;
        for leaf in 0..s.cfg.tree.leaves() {
            s.for_each_in_leaf_hashed(leaf, |kh, k, _| {
                assert_eq!(kh, key_hash(k));
                keys += 1;
            });
        }
        assert_eq!(keys, 500);
    }

    #[test]
    fn purge_keeps_index_and_leaf_blocks_consistent() {
        let s =
            Store::new(StoreConfig { shards_log2: 0, tree: TreeShape::new(1), max_concurrent: 4 });
        for i in 0..200u32 {
            let k = format!("key{i}");
            if i % 3 == 0 {
                s.merge(k.as_bytes(), Version::tombstone(u64::from(i), 1).as_ref());
            } else {
                s.merge(k.as_bytes(), put(u64::from(i), 1, "v").as_ref());
                s.merge(k.as_bytes(), put(u64::from(i), 2, "w").as_ref());
            }
        }
        assert_eq!(s.purge_tombstones(u64::MAX), 67);
        for i in 0..200u32 {
            let k = format!("key{i}");
            assert_eq!(s.versions(k.as_bytes()).len(), if i % 3 == 0 { 0 } else { 2 }, "{k}");
        }
        let mut seen = 0;
        let counted: u32 = (0..s.tree().leaves()).map(|l| s.leaf_len(l)).sum();
        assert_eq!(counted, 133);
        for leaf in 0..s.tree().leaves() {
            s.for_each_in_leaf(leaf, |_, vs| {
                assert_eq!(vs.count(), 2);
                seen += 1;
            });
        }
        assert_eq!(seen, 133);
    }

    #[test]
    fn entry_is_one_cache_line() {
        // docs/store.md's bytes-per-key breakdown relies on this.
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        assert_eq!(std::mem::align_of::<Entry>(), 64);
    }

    #[test]
    fn children_hashes_and_counts_match_node_by_node() {
        for (shards_log2, depth) in [(0, 2), (2, 2), (6, 3), (8, 2), (0, 3)] {
            let cfg = StoreConfig { shards_log2, tree: TreeShape::new(depth), max_concurrent: 2 };
            let s = Store::new(cfg);
            for i in 0..3000u32 {
                s.merge(format!("k{i}").as_bytes(), put(u64::from(i), 1, "v").as_ref());
            }
            let t = s.tree();
            for level in 0..depth {
                for idx in 0..t.nodes_at(level) {
                    let hs = s.children_hashes(level, idx);
                    for (c, h) in hs.iter().enumerate() {
                        assert_eq!(*h, s.node_hash(level + 1, idx * TREE_ARITY + c));
                    }
                    if level + 1 == depth {
                        let lens = s.children_leaf_lens(level, idx);
                        for (c, n) in lens.iter().enumerate() {
                            assert_eq!(*n, s.leaf_len(idx * TREE_ARITY + c));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn for_each_matching_finds_every_key_with_a_wanted_version() {
        // keys with one version and keys with one, two or three concurrent values (extras:
        // the pass reads their origins' hint, or the slot when the hint cannot tell), some
        // overwritten (a winner replaced drops its extras), some whose concurrent values
        // were all dropped again, read with wanted sets that hit winners only, extras only
        // (the first, the second or the third one), both, and nothing
        for max_concurrent in 2..=4 {
            let s =
                Store::new(StoreConfig { shards_log2: 2, tree: TreeShape::new(1), max_concurrent });
            for i in 0..3000u64 {
                let k = format!("k{i}");
                let origin = (i % 13) as u32;
                s.merge(k.as_bytes(), put(i % 50, origin, "a").as_ref());
                if i % 5 == 0 {
                    s.merge(k.as_bytes(), put(i % 50, origin + 20, "b").as_ref());
                }
                if i % 3 == 0 {
                    s.merge(k.as_bytes(), put(i % 50, origin + 60, "0").as_ref());
                }
                if i % 7 == 0 {
                    s.merge(k.as_bytes(), put(i % 50, origin + 80, "c").as_ref());
                }
                if i % 11 == 0 {
                    s.merge(k.as_bytes(), put(i % 50 + 1, origin + 40, "c").as_ref());
                }
            }
            for_each_matching_agrees_with_the_leaves(&s);
        }
    }

    fn for_each_matching_agrees_with_the_leaves(s: &Store) {
        let checks: [&dyn Fn(NodeId, Timestamp) -> bool; 7] = [
            &|o, ts| o < 13 && ts > 10 && ts <= 30,
            &|o, _| (20..33).contains(&o),
            &|o, _| (60..73).contains(&o),
            &|o, ts| (80..93).contains(&o) && ts % 2 == 0,
            &|o, _| o == 25 || o == 85,
            &|o, ts| o % 3 == 0 && ts % 2 == 1,
            &|_, _| false,
        ];
        for (c, wanted) in checks.into_iter().enumerate() {
            let mut expected = Vec::new();
            for leaf in 0..s.tree().leaves() {
                s.for_each_in_leaf(leaf, |key, versions| {
                    let vs: Vec<Version> = versions.map(|v| v.to_owned()).collect();
                    if vs.iter().any(|v| wanted(v.origin, v.ts)) {
                        expected.push((key.to_vec(), vs));
                    }
                });
            }
            let mut got = Vec::new();
            s.for_each_matching(wanted, |key, versions| {
                got.push((key.to_vec(), versions.map(|v| v.to_owned()).collect::<Vec<_>>()));
            });
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            got.sort_by(|a, b| a.0.cmp(&b.0));
            // every predicate but the last matches some keys
            assert_eq!(expected.is_empty(), c == 6);
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn the_key_by_key_check_sees_every_difference() {
        // two keys of one length whose hashes share the 32 bits the index keeps: a lookup of
        // the second may meet the first (found by search: the first pair comes after about
        // 80,000 keys on average, and these keys are fixed)
        let mut seen = HashMap::new();
        let (x, y) = (100_000..1_000_000u32)
            .map(|i| format!("c{i}"))
            .find_map(|k| {
                let bits = index_bits(key_hash(k.as_bytes()));
                seen.insert(bits, k.clone()).map(|first| (first, k))
            })
            .expect("a pair of keys with the same index bits");
        let long = "L".repeat(100);
        let base: Vec<(String, Version)> = (0..500u32)
            .map(|i| {
                (format!("k{i}"), put(u64::from(i) + 10, 1, "thirty-two bytes of value here."))
            })
            .chain([
                ("spilled".to_string(), put(7, 1, &long)),
                ("dead".to_string(), Version::tombstone(9, 2)),
                ("empty".to_string(), put(9, 2, "")),
                ("tie".to_string(), put(5, 1, "a")),
                ("tie".to_string(), put(5, 2, "b")),
                // the same version under both: only the key tells them apart
                (x.clone(), put(3, 1, "xy")),
                (y.clone(), put(3, 1, "xy")),
            ])
            .collect();
        let cfg = StoreConfig { shards_log2: 1, tree: TreeShape::new(2), max_concurrent: 4 };
        let build = |items: &[(String, Version)], reversed: bool| {
            let s = Store::new(cfg);
            let mut order: Vec<_> = items.iter().collect();
            if reversed {
                order.reverse();
            }
            for (k, v) in order {
                s.merge(k.as_bytes(), v.as_ref());
            }
            s
        };
        let a = build(&base, false);
        let b = build(&base, true);
        assert!(a.entries_in(&b) && b.entries_in(&a));
        let changes: Vec<(usize, (String, Version))> = vec![
            (3, ("k3".into(), put(13, 1, "thirty-two bytes of value HERE."))),
            (3, ("k3".into(), put(13, 1, "shorter"))),
            (3, ("k3".into(), put(14, 1, "thirty-two bytes of value here."))),
            (3, ("k3".into(), put(13, 2, "thirty-two bytes of value here."))),
            (3, ("k3x".into(), put(13, 1, "thirty-two bytes of value here."))),
            (500, ("spilled".into(), put(7, 1, &format!("{}M", &long[1..])))),
            (501, ("dead".into(), put(9, 2, ""))),
            (502, ("empty".into(), Version::tombstone(9, 2))),
            (504, ("tie".into(), put(5, 2, "c"))),
            (505, (x.clone(), put(3, 1, "XY"))),
            (506, (y.clone(), put(3, 1, "XY"))),
            // where `y` was, another key with its version: `y`'s lookup meets `x` first
            (506, (format!("{y}z"), put(3, 1, "xy"))),
        ];
        for (at, change) in changes {
            let mut items = base.clone();
            items[at] = change.clone();
            let c = build(&items, true);
            assert_eq!(c.keys_held(), a.keys_held(), "{change:?}");
            assert!(!a.entries_in(&c) && !c.entries_in(&a), "{change:?} went unseen");
        }
    }

    #[test]
    fn stores_compare_equal_exactly() {
        let cfg = StoreConfig { shards_log2: 1, tree: TreeShape::new(2), max_concurrent: 3 };
        let (a, b) = (Store::new(cfg), Store::new(cfg));
        for i in 0..2000u32 {
            let k = format!("k{i}");
            a.merge(k.as_bytes(), put(u64::from(i), 1, "v").as_ref());
            if i % 7 == 0 {
                a.merge(k.as_bytes(), put(u64::from(i), 2, "w").as_ref());
            }
        }
        for i in (0..2000u32).rev() {
            let k = format!("k{i}");
            if i % 7 == 0 {
                b.merge(k.as_bytes(), put(u64::from(i), 2, "w").as_ref());
            }
            b.merge(k.as_bytes(), put(u64::from(i), 1, "v").as_ref());
        }
        assert!(a.equals(&b) && b.equals(&a));
        // one concurrent value more on one side
        b.merge(b"k14", put(14, 3, "x").as_ref());
        assert!(!a.equals(&b));
        a.merge(b"k14", put(14, 3, "x").as_ref());
        assert!(a.equals(&b));
        // a key only one side has
        a.merge(b"extra", put(1, 1, "v").as_ref());
        assert!(!a.equals(&b) && !b.equals(&a));
        let other_tree = Store::new(StoreConfig { tree: TreeShape::new(1), ..cfg });
        assert!(!Store::new(cfg).equals(&other_tree));
        assert!(Store::new(cfg).equals(&Store::new(cfg)));
    }

    #[test]
    fn leaf_iteration_is_newest_first_and_purge_keeps_the_order() {
        let s =
            Store::new(StoreConfig { shards_log2: 0, tree: TreeShape::new(1), max_concurrent: 3 });
        let keys: Vec<String> = (0..500).map(|i| format!("key{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            let ts = i as u64 + 1;
            if i % 4 == 0 {
                s.merge(k.as_bytes(), Version::tombstone(ts, 1).as_ref());
            } else {
                s.merge(k.as_bytes(), put(ts, 1, "v").as_ref());
                if i % 3 == 0 {
                    s.merge(k.as_bytes(), put(ts, 2, "w").as_ref());
                }
            }
        }
        let order = |s: &Store| -> Vec<Vec<Vec<u8>>> {
            (0..s.tree().leaves())
                .map(|l| {
                    let mut v = Vec::new();
                    s.for_each_in_leaf(l, |k, _| v.push(k.to_vec()));
                    v
                })
                .collect()
        };
        let expected = |purged: bool| -> Vec<Vec<Vec<u8>>> {
            let mut by_leaf = vec![Vec::new(); s.tree().leaves()];
            for (i, k) in keys.iter().enumerate().rev() {
                if purged && i % 4 == 0 {
                    continue;
                }
                by_leaf[s.tree().leaf_of(key_hash(k.as_bytes()))].push(k.as_bytes().to_vec());
            }
            by_leaf
        };
        assert_eq!(order(&s), expected(false));
        let before = s.root_hash();
        assert_eq!(s.purge_tombstones(u64::MAX), 125);
        assert_eq!(order(&s), expected(true));
        assert_ne!(s.root_hash(), before);
        for (i, k) in keys.iter().enumerate() {
            let n = s.versions(k.as_bytes()).len();
            assert_eq!(
                n,
                if i % 4 == 0 {
                    0
                } else if i % 3 == 0 {
                    2
                } else {
                    1
                },
                "{k}"
            );
            assert_eq!(s.get_by_hash(key_hash(k.as_bytes())).is_some(), i % 4 != 0, "{k}");
        }
        // freed blocks are reused, and the digest matches a store built without the tombstones
        let t = Store::new(s.config());
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 4 != 0) {
            t.merge(k.as_bytes(), put(i as u64 + 1, 1, "v").as_ref());
            if i % 3 == 0 {
                t.merge(k.as_bytes(), put(i as u64 + 1, 2, "w").as_ref());
            }
        }
        assert_eq!(s.root_hash(), t.root_hash());
        assert!(s.equals(&t) && t.equals(&s));
        for k in keys.iter().step_by(4) {
            s.merge(k.as_bytes(), put(1000, 3, "again").as_ref());
        }
        assert_eq!(s.len(), 500);
        assert!(!s.equals(&t));
    }

    #[test]
    fn entries_across_chunks_survive_overwrites_purges_and_reinserts() {
        let s =
            Store::new(StoreConfig { shards_log2: 0, tree: TreeShape::new(1), max_concurrent: 2 });
        let n = 3 * CHUNK as u32 + 17;
        let key = |i: u32| format!("key{i}");
        for i in 0..n {
            let v = if i % 3 == 0 { Version::tombstone(1, 1) } else { put(1, 1, "val") };
            assert_eq!(s.merge(key(i).as_bytes(), v.as_ref()), MergeOutcome::Inserted);
        }
        for i in (0..n).filter(|i| i % 3 != 0) {
            // same length (reuses the allocation), then a longer value, then a concurrent one
            assert_eq!(
                s.merge(key(i).as_bytes(), put(2, 1, "abc").as_ref()),
                MergeOutcome::Replaced
            );
            if i % 3 == 2 {
                s.merge(key(i).as_bytes(), put(3, 1, "longer value").as_ref());
                s.merge(key(i).as_bytes(), put(3, 2, "a").as_ref());
            }
        }
        {
            // a full chunk holds CHUNK_CAP entries at the most, and no entry sits in the
            // unused last block of a chunk
            let shard = s.shards[0].read();
            assert!(shard.entries.chunks.len() > 3);
            assert!(shard.entries.chunks.iter().all(|c| c.capacity() <= CHUNK_CAP));
            let mut used = 0;
            assert!(shard.entries.all_used(|pos, _| {
                used += 1;
                (pos as usize) % CHUNK < CHUNK_CAP
            }));
            assert_eq!(used, n as usize);
        }
        let tombs = (0..n).filter(|i| i % 3 == 0).count();
        assert_eq!(s.stats().tombstones, tombs);
        assert_eq!(s.purge_tombstones(2), tombs);
        let check = |s: &Store| {
            for i in 0..n {
                let k = key(i);
                let want: Vec<Version> = match i % 3 {
                    0 => vec![],
                    1 => vec![put(2, 1, "abc")],
                    _ => vec![put(3, 2, "a"), put(3, 1, "longer value")],
                };
                assert_eq!(s.versions(k.as_bytes()), want, "{k}");
                let by_hash = s.get_by_hash(key_hash(k.as_bytes()));
                assert_eq!(by_hash.map(|(_, vs)| vs).unwrap_or_default(), want, "{k}");
            }
            let mut seen = 0;
            for leaf in 0..s.tree().leaves() {
                s.for_each_in_leaf(leaf, |_, _| seen += 1);
            }
            assert_eq!(seen, n as usize - tombs);
        };
        check(&s);
        // Rebuilt in another order, the digest agrees.
        let t =
            Store::new(StoreConfig { shards_log2: 0, tree: TreeShape::new(1), max_concurrent: 2 });
        for (k, vs) in s.snapshot().iter().rev() {
            for v in vs {
                t.merge(k, v.as_ref());
            }
        }
        assert_eq!(s.root_hash(), t.root_hash());
        // Delete and purge everything, then insert again.
        for i in (0..n).filter(|i| i % 3 != 0) {
            s.merge(key(i).as_bytes(), Version::tombstone(9, 1).as_ref());
        }
        assert_eq!(s.purge_tombstones(10), n as usize - tombs);
        assert_eq!(s.stats(), StoreStats::default());
        assert_eq!(s.root_hash(), 0);
        for i in 0..n {
            s.merge(key(i).as_bytes(), put(1, 1, "x").as_ref());
        }
        assert_eq!(s.len(), n as usize);
        assert_eq!(s.get(key(n - 1).as_bytes()).as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn lookups_by_hash_and_equality() {
        let s = small();
        s.merge(b"k", put(3, 1, "b").as_ref());
        s.merge(b"k", put(3, 2, "a").as_ref());
        let kh = key_hash(b"k");
        let (key, vs) = s.get_by_hash(kh).expect("present");
        assert_eq!(&key[..], b"k");
        assert_eq!(vs, vec![put(3, 2, "a"), put(3, 1, "b")]);
        assert_eq!(s.with_versions_by_hash(kh, |it| it.count()), 2);
        assert_eq!(s.with_versions_by_hash(key_hash(b"nope"), |it| it.count()), 0);
        assert!(s.get_by_hash(key_hash(b"nope")).is_none());
        assert!(s.versions_equal(b"k", &vs));
        assert!(!s.versions_equal(b"k", &vs[..1]));
        assert!(s.versions_equal(b"nope", &[]));
    }

    #[test]
    fn scan_returns_each_live_key_once() {
        let s = Store::default();
        for i in 0..1000u32 {
            s.merge(format!("k{i}").as_bytes(), put(1, 0, "v").as_ref());
        }
        s.merge(b"k5", Version::tombstone(2, 0).as_ref());
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            cursor = s.scan(cursor, 10, &mut out);
            if cursor == 0 {
                break;
            }
        }
        out.sort();
        out.dedup();
        assert_eq!(out.len(), 999);
        assert!(!out.contains(&Bytes::from_static(b"k5")));
    }
}
