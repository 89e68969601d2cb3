//! Property tests of the LWW join: the store must equal an independent model (the join of every
//! version), whatever the delivery order, batching and duplication, with ties and tombstones,
//! and the digest must agree whenever the states agree.

use std::collections::BTreeMap;

use bytes::Bytes;
use gossipkv_core::digest::TreeShape;
use gossipkv_core::lww::{Version, rank};
use gossipkv_core::{Store, StoreConfig};
use proptest::prelude::*;

const LIMIT: usize = 3;

fn cfg() -> StoreConfig {
    StoreConfig { shards_log2: 2, tree: TreeShape::new(1), max_concurrent: LIMIT }
}

/// Two values too long to sit inside a store entry (key + value over 54 bytes), of the same
/// length, so merges also move a key between its inline and allocated forms, both ways, and
/// overwrite an allocation in place.
const LONG_L: &str = "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL";
const LONG_M: &str = "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLM";

/// Small domains so ties, duplicates and tombstones are frequent.
fn version() -> impl Strategy<Value = (Bytes, Version)> {
    (
        prop::sample::select(vec!["a", "b", "c", "key-d"]),
        0u64..4,
        0u32..3,
        prop::option::weighted(
            0.8,
            prop::sample::select(vec!["", "x", "y", "xy", "Y", "zz", LONG_L, LONG_M]),
        ),
    )
        .prop_map(|(k, ts, origin, val)| {
            let v = Version { ts, origin, value: val.map(|s| Bytes::from(s.as_bytes().to_vec())) };
            (Bytes::from(k.as_bytes().to_vec()), v)
        })
}

/// The model: for each key, the distinct versions at the maximum timestamp, best first,
/// truncated to LIMIT. Written from the definition, independently of `lww::decide`.
fn model(versions: &[(Bytes, Version)]) -> BTreeMap<Bytes, Vec<Version>> {
    let mut by_key: BTreeMap<Bytes, Vec<Version>> = BTreeMap::new();
    for (k, v) in versions {
        by_key.entry(k.clone()).or_default().push(v.clone());
    }
    by_key
        .into_iter()
        .map(|(k, mut vs)| {
            let max = vs.iter().map(|v| v.ts).max().unwrap_or(0);
            vs.retain(|v| v.ts == max);
            vs.sort_by(|a, b| {
                // tombstone first, then value bytes, then origin
                let ka = (a.value.is_some(), a.value.clone(), a.origin);
                let kb = (b.value.is_some(), b.value.clone(), b.origin);
                ka.cmp(&kb)
            });
            vs.dedup();
            vs.truncate(LIMIT);
            (k, vs)
        })
        .collect()
}

fn load(versions: &[(Bytes, Version)]) -> Store {
    let s = Store::new(cfg());
    for (k, v) in versions {
        s.merge(k, v.as_ref());
    }
    s
}

/// Merges every version `src` keeps into `dst` (a full anti-entropy exchange).
fn merge_store(dst: &Store, src: &Store) {
    for (k, vs) in src.snapshot() {
        for v in vs {
            dst.merge(&k, v.as_ref());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn store_equals_the_join_in_any_order(
        vs in prop::collection::vec(version(), 0..40),
        perm_seed in any::<u64>(),
    ) {
        let expected = model(&vs);
        let a = load(&vs);
        prop_assert_eq!(a.snapshot(), expected.clone());
        // GET returns the winner's value (None for a tombstone winner)
        for (k, kept) in &expected {
            prop_assert_eq!(a.get(k), kept[0].value.clone());
        }
        // any permutation with duplicates gives the identical state and digest
        let mut shuffled = vs.clone();
        let mut rng = perm_seed;
        for i in (1..shuffled.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let dupes: Vec<_> = shuffled.iter().step_by(2).cloned().collect();
        shuffled.extend(dupes);
        let b = load(&shuffled);
        prop_assert_eq!(b.snapshot(), expected);
        prop_assert_eq!(a.root_hash(), b.root_hash());
        prop_assert_eq!(a.root_and_keys(), (a.root_hash(), a.keys_held()));
        for leaf in 0..a.tree().leaves() {
            prop_assert_eq!(a.leaf_hash(leaf), b.leaf_hash(leaf));
        }
    }

    /// The per-shard tombstone counts (which let a purge pass skip shards without any) match
    /// the state, and a purge removes exactly the tombstones older than its bound, leaving
    /// every live key as it was.
    #[test]
    fn tombstone_counts_and_purge_match_the_model(
        vs in prop::collection::vec(version(), 0..40),
        bound in 0u64..5,
    ) {
        let expected = model(&vs);
        let s = load(&vs);
        let tombs = expected.values().filter(|kept| kept[0].value.is_none()).count();
        prop_assert_eq!(s.stats().tombstones, tombs);
        prop_assert_eq!(s.stats().live_keys, expected.len() - tombs);
        let doomed = expected
            .values()
            .filter(|kept| kept[0].value.is_none() && kept[0].ts < bound)
            .count();
        prop_assert_eq!(s.purge_tombstones(bound), doomed);
        let mut left = expected;
        left.retain(|_, kept| kept[0].value.is_some() || kept[0].ts >= bound);
        prop_assert_eq!(s.snapshot(), left);
        prop_assert_eq!(s.stats().tombstones, tombs - doomed);
        prop_assert_eq!(s.purge_tombstones(bound), 0);
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(
        x in prop::collection::vec(version(), 0..15),
        y in prop::collection::vec(version(), 0..15),
        z in prop::collection::vec(version(), 0..15),
    ) {
        let (sx, sy, sz) = (load(&x), load(&y), load(&z));
        // commutative: x ⊔ y == y ⊔ x
        let xy = load(&x);
        merge_store(&xy, &sy);
        let yx = load(&y);
        merge_store(&yx, &sx);
        prop_assert_eq!(xy.snapshot(), yx.snapshot());
        prop_assert_eq!(xy.root_hash(), yx.root_hash());
        // associative: (x ⊔ y) ⊔ z == x ⊔ (y ⊔ z)
        merge_store(&xy, &sz);
        let yz = load(&y);
        merge_store(&yz, &sz);
        let x_yz = load(&x);
        merge_store(&x_yz, &yz);
        prop_assert_eq!(xy.snapshot(), x_yz.snapshot());
        prop_assert_eq!(xy.root_hash(), x_yz.root_hash());
        // idempotent: s ⊔ s == s
        let before = xy.snapshot();
        let h = xy.root_hash();
        let copy = load(&[]);
        merge_store(&copy, &xy);
        merge_store(&xy, &copy);
        prop_assert_eq!(xy.snapshot(), before);
        prop_assert_eq!(xy.root_hash(), h);
    }

    #[test]
    fn rank_is_a_total_order(a in version(), b in version(), c in version()) {
        let (a, b, c) = (a.1.as_ref(), b.1.as_ref(), c.1.as_ref());
        prop_assert_eq!(rank(a, b), rank(b, a).reverse());
        prop_assert_eq!(rank(a, b) == std::cmp::Ordering::Equal, a == b);
        if rank(a, b).is_le() && rank(b, c).is_le() {
            prop_assert!(rank(a, c).is_le());
        }
    }

    #[test]
    fn digest_differs_when_states_differ(
        x in prop::collection::vec(version(), 1..15),
        y in prop::collection::vec(version(), 1..15),
    ) {
        let (sx, sy) = (load(&x), load(&y));
        if sx.snapshot() != sy.snapshot() {
            prop_assert_ne!(sx.root_hash(), sy.root_hash());
        } else {
            prop_assert_eq!(sx.root_hash(), sy.root_hash());
        }
    }
}
