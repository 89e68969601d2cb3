//! Stable hashes that cross the wire, and the geometry of the digest tree.
//!
//! Everything here is specified, not process-seeded: two nodes built from different binaries
//! must compute the same numbers (docs/protocol.md repeats these definitions).
//!
//! - `key_hash(key) = xxh3_64(key)`. Its top `leaves_log2` bits pick the key's **leaf** of the
//!   digest tree, so a key's leaf never changes and iterating a leaf is iterating a fixed slice
//!   of the key space.
//! - `version_hash(key_hash, version) = xxh3_64_with_seed(value, seed)` with
//!   `seed = mix(key_hash ^ mix(ts ^ mix(origin | tombstone << 32)))` and `mix` the SplitMix64
//!   finaliser. A tombstone hashes the empty value with the tombstone bit set.
//! - A leaf's hash is the XOR of the version hashes of every version it holds (winners and
//!   concurrent values); an inner node's hash is the XOR of its 16 children's. XOR makes every
//!   update O(1) (XOR the old version out, the new one in) and the hash independent of the
//!   order versions arrived in.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::lww::VersionRef;

/// Children per inner node of the digest tree.
pub const TREE_ARITY: usize = 16;
/// log2 of [`TREE_ARITY`].
pub const TREE_ARITY_LOG2: u32 = 4;

/// The stable hash of a key.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stable hash of one version of the key whose [`key_hash`] is `kh`.
#[inline]
pub fn version_hash(kh: u64, v: VersionRef<'_>) -> u64 {
    let tomb = u64::from(v.value.is_none()) << 32;
    let seed = mix(kh ^ mix(v.ts ^ mix(u64::from(v.origin) | tomb)));
    xxh3_64_with_seed(v.value.unwrap_or(&[]), seed)
}

/// A 32-bit fingerprint of a tree-node hash, salted per exchange. Descent messages carry
/// these instead of full hashes: half the bytes, and because the salt changes with every
/// exchange a collision (probability 2^-32 per comparison) can only delay a repair to the next
/// exchange, never hide a difference for good.
#[inline]
pub fn short_hash(h: u64, salt: u64) -> u32 {
    (mix(h ^ mix(salt ^ 0x5bd1_e995)) >> 32) as u32
}

/// Shape of the digest tree: `16^depth` leaves, keys assigned by the top bits of their hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeShape {
    depth: u32,
}

impl TreeShape {
    /// A tree with `16^depth` leaves (`depth` from 1 to 6).
    pub fn new(depth: u32) -> Self {
        Self { depth: depth.clamp(1, 6) }
    }

    /// Levels below the root; leaves are at level `depth`.
    pub fn depth(self) -> u32 {
        self.depth
    }

    /// log2 of the leaf count.
    pub fn leaves_log2(self) -> u32 {
        self.depth * TREE_ARITY_LOG2
    }

    /// Number of leaves.
    pub fn leaves(self) -> usize {
        1 << self.leaves_log2()
    }

    /// The leaf a key hash falls in.
    #[inline]
    pub fn leaf_of(self, kh: u64) -> usize {
        (kh >> (64 - self.leaves_log2())) as usize
    }

    /// Number of nodes at `level` (0 = root).
    pub fn nodes_at(self, level: u32) -> usize {
        1 << (level.min(self.depth) * TREE_ARITY_LOG2)
    }

    /// The half-open range of leaves under node `index` at `level`.
    pub fn leaf_range(self, level: u32, index: usize) -> std::ops::Range<usize> {
        let span = 1usize << ((self.depth - level.min(self.depth)) * TREE_ARITY_LOG2);
        index * span..(index + 1) * span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_builds() {
        // Pinned values: changing them is a wire-protocol change (docs/protocol.md).
        assert_eq!(key_hash(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(mix(0), 0);
        let a = version_hash(key_hash(b"k"), VersionRef { ts: 1, origin: 2, value: Some(b"v") });
        let b = version_hash(key_hash(b"k"), VersionRef { ts: 1, origin: 2, value: None });
        let c = version_hash(key_hash(b"k"), VersionRef { ts: 1, origin: 3, value: Some(b"v") });
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn tree_geometry() {
        let t = TreeShape::new(3);
        assert_eq!(t.leaves(), 4096);
        assert_eq!(t.leaf_of(u64::MAX), 4095);
        assert_eq!(t.leaf_of(0), 0);
        assert_eq!(t.leaf_range(0, 0), 0..4096);
        assert_eq!(t.leaf_range(1, 2), 512..768);
        assert_eq!(t.leaf_range(3, 7), 7..8);
        assert_eq!(t.nodes_at(2), 256);
    }
}
