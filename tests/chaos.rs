//! The CI-sized chaos run (issue 6): 4 real `gossipkv node` processes under every kind of
//! fault for 20 s, then a check of every acknowledged write against LWW. The full run
//! (20+ nodes, minutes) is `bench/chaos.sh`; results in docs/reliability.md.

use gossipkv_chaos::nemesis::FaultKind;
use gossipkv_chaos::{ChaosArgs, run};

#[test]
fn four_nodes_under_every_fault_lose_nothing_acknowledged() {
    let mut args = ChaosArgs::defaults();
    args.bin = Some(env!("CARGO_BIN_EXE_gossipkv").into());
    args.nodes = 4;
    args.duration_s = 20;
    args.seed = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    args.rate = 1_500.0;
    args.fault_every_ms = 600;
    // long pauses of 2.75-4 s: past half the grace, so the paused node must reset
    args.tombstone_grace_ms = 5_000;
    args.quiet = true;
    let report = run(&args).unwrap_or_else(|e| panic!("the harness could not run: {e}"));
    println!("{report}");
    assert!(report.passed(), "chaos verdict FAIL (seed {}):\n{report}", args.seed);
    // it did test something: every kind of fault, and plenty of writes checked
    for kind in FaultKind::ALL {
        let n = report.faults.get(&kind).copied().unwrap_or(0);
        assert!(n >= 1, "no {kind} fault injected:\n{report}");
    }
    assert_eq!(report.restarts, report.faults.get(&FaultKind::Kill).copied().unwrap_or(0));
    assert!(report.check.acked_puts > 2_000 && report.check.acked_dels > 200, "{report}");
    assert!(report.check.keys >= 64, "{report}");
    assert!(report.converge_s.is_some_and(|s| s < 60.0), "{report}");
}
