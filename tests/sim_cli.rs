//! `gossipkv sim` as a user runs it: JSON determinism across processes, plots, exit codes.

use std::process::{Command, Output};

fn gossipkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gossipkv")).args(args).output().expect("runs")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = gossipkv(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

const SMALL: [&str; 8] = ["sim", "--nodes", "25", "--keys", "100", "--json", "--quiet", "--seed"];

#[test]
fn same_seed_gives_the_same_json_in_another_process() {
    let strip = |mut v: serde_json::Value| {
        v.as_object_mut().expect("object").remove("wall_ms");
        v
    };
    let run = |seed: &str, scenario: &str| {
        let mut args = SMALL.to_vec();
        args.extend([seed, "--scenario", scenario]);
        strip(json(&args))
    };
    let a = run("5", "chaos");
    assert_eq!(a, run("5", "chaos"));
    assert_ne!(a, run("6", "chaos"));
    for key in [
        "nodes",
        "fanout",
        "loss",
        "seed",
        "writes",
        "converged",
        "rounds_to_converge",
        "messages_sent",
        "messages_dropped",
        "bytes_sent",
        "max_datagram_bytes",
        "idle_bytes_per_node_per_round",
        "value_copies_per_node",
    ] {
        assert!(a.get(key).is_some(), "{key} missing");
    }
    assert_eq!(a["converged"], true);
    assert_eq!(
        a["series"]["nodes_converged"].as_array().map(Vec::len),
        a["rounds_run"].as_u64().map(|r| r as usize)
    );
}

#[test]
fn plots_are_written_as_svg_and_png() {
    let dir = std::env::temp_dir().join(format!("gossipkv-sim-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for ext in ["svg", "png"] {
        let path = dir.join(format!("run.{ext}"));
        let p = path.to_str().expect("utf-8 path");
        let mut args = SMALL.to_vec();
        args.extend(["1", "--plot", p]);
        json(&args);
        let bytes = std::fs::read(&path).expect("plot written");
        match ext {
            "svg" => assert!(String::from_utf8_lossy(&bytes).contains("nodes equal to the oracle")),
            _ => assert_eq!(&bytes[1..4], b"PNG"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn summary_help_and_exit_codes() {
    let out = gossipkv(&["sim", "--nodes", "10", "--keys", "20", "--quiet"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict       PASS"), "{text}");
    let help = gossipkv(&["sim", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in
        ["--nodes", "--fanout", "--loss", "--conflict-rate", "--scenario", "--plot", "--json"]
    {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert_eq!(gossipkv(&["sim", "--loss", "2"]).status.code(), Some(2));
    // an injected tie-breaking bug makes the run fail
    let bad = gossipkv(&[
        "sim",
        "--nodes",
        "12",
        "--keys",
        "60",
        "--conflict-rate",
        "0.5",
        "--loss",
        "0",
        "--max-rounds",
        "15",
        "--inject-bug",
        "drop-ties",
        "--quiet",
        "--seed",
        "3",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", String::from_utf8_lossy(&bad.stdout));
}
