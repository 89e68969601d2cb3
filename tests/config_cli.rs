//! `gossipkv node`'s settings as a user gives them: flags over GOSSIPKV_* variables over a TOML
//! file over the defaults, checked at start (`--print-config` shows the result and exits).

use std::path::PathBuf;
use std::process::{Command, Output};

fn gossipkv(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gossipkv"));
    cmd.args(args);
    // only the variables a test sets
    for (k, _) in std::env::vars() {
        if k.starts_with("GOSSIPKV_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("runs")
}

struct File(PathBuf);

impl File {
    fn new(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("gossipkv-cli-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or("")
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let f = File::new("prec", "fanout = 3\ninterval_ms = 400\nmtu = 1200\nfresh = true\n");
    let out = gossipkv(
        &["node", "--config", f.path(), "--fanout", "7", "--print-config"],
        &[("GOSSIPKV_FANOUT", "6"), ("GOSSIPKV_INTERVAL_MS", "500"), ("GOSSIPKV_ID", "9")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(line(&text, "fanout"), "fanout = 7  # --fanout", "{text}");
    assert_eq!(line(&text, "interval_ms"), "interval_ms = 500  # GOSSIPKV_INTERVAL_MS");
    assert_eq!(line(&text, "mtu"), "mtu = 1200  # config file");
    assert_eq!(line(&text, "id"), "id = 9  # GOSSIPKV_ID");
    assert_eq!(line(&text, "fresh"), "fresh = true  # config file");
    assert_eq!(line(&text, "tree_depth"), "tree_depth = 3  # default");

    // the file can also be named by GOSSIPKV_CONFIG, and a switch can come from the environment
    let out = gossipkv(
        &["node", "--print-config"],
        &[("GOSSIPKV_CONFIG", f.path()), ("GOSSIPKV_NO_MEMBERSHIP", "true")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(line(&text, "fanout"), "fanout = 3  # config file", "{text}");
    assert_eq!(line(&text, "no_membership"), "no_membership = true  # GOSSIPKV_NO_MEMBERSHIP");
}

#[test]
fn a_cluster_reads_a_file_too_and_refuses_node_only_settings() {
    let f = File::new("cluster", "nodes = 2\ninterval_ms = 250\nquiet = true\nfanout = 3\n");
    let out = gossipkv(
        &["cluster", "--config", f.path(), "--fanout", "4", "--print-config"],
        &[("GOSSIPKV_INTERVAL_MS", "300")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("# gossipkv cluster: settings in force"), "{text}");
    assert_eq!(line(&text, "nodes"), "nodes = 2  # config file", "{text}");
    assert_eq!(line(&text, "quiet"), "quiet = true  # config file");
    assert_eq!(line(&text, "fanout"), "fanout = 4  # --fanout");
    assert_eq!(line(&text, "interval_ms"), "interval_ms = 300  # GOSSIPKV_INTERVAL_MS");
    assert_eq!(line(&text, "base_port"), "base_port = 7000  # default");

    // a node's GOSSIPKV_CONFIG does not reach a cluster; GOSSIPKV_CLUSTER_CONFIG does
    let node_file = File::new("node-for-cluster", "id = 3\n");
    let out = gossipkv(&["cluster", "--print-config"], &[("GOSSIPKV_CONFIG", node_file.path())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = gossipkv(&["cluster", "--print-config"], &[("GOSSIPKV_CLUSTER_CONFIG", f.path())]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(line(&text, "nodes"), "nodes = 2  # config file", "{text}");

    let node_only = File::new("cluster-node-only", "peers = [\"127.0.0.1:7946\"]\n");
    let out = gossipkv(&["cluster", "--config", node_only.path()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown setting `peers`"), "{err}");
}

#[test]
fn bad_settings_stop_the_start_and_name_the_setting() {
    let f = File::new("bad", "fanout = 3\ntree_depht = 4\n");
    let out = gossipkv(&["node", "--config", f.path()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown setting `tree_depht`"), "{err}");

    let out = gossipkv(&["node", "--print-config"], &[("GOSSIPKV_DROP_RATE", "2")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("gossipkv: environment variable GOSSIPKV_DROP_RATE:"), "{err}");

    let out = gossipkv(&["node", "--mtu", "10"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mtu"));
}

#[test]
fn help_names_each_variable_and_default() {
    let out = gossipkv(&["node", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--config <FILE>",
        "[env: GOSSIPKV_CONFIG=]",
        "--metrics <HOST:PORT>",
        "[env: GOSSIPKV_FANOUT=]",
        "[default: 5]",
        "[default: 1400]",
        "--print-config",
    ] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
}

/// `THP_enabled` of a running `gossipkv node` started with `extra` flags (Linux reports the
/// process's transparent-huge-page flag in /proc/PID/status).
fn node_thp_enabled(extra: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gossipkv"))
        .args(["node", "--id", "0", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let status = format!("/proc/{}/status", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // the flag is set right after argument parsing: wait for the server to be up
    let mut value = None;
    while value.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        if text.contains("Threads:\t2") {
            value = text
                .lines()
                .find_map(|l| l.strip_prefix("THP_enabled:"))
                .map(|v| v.trim().to_string());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    value.expect("THP_enabled in /proc/PID/status once the node runs")
}

#[test]
fn a_node_turns_transparent_huge_pages_off_unless_asked() {
    assert_eq!(node_thp_enabled(&[]), "0", "THP off by default");
    assert_eq!(node_thp_enabled(&["--thp"]), "1", "--thp leaves the kernel's default");
}
