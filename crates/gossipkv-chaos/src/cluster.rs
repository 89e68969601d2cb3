//! Real `gossipkv node` processes on loopback: start, kill -9, restart (without `--fresh`,
//! so the node gates writes), SIGSTOP / SIGCONT, and the per-node fault control file the
//! node's gossip driver polls (drop, dup, delay, blocked peers).
//!
//! Node `i` listens on `base_ip.(i + 1)` (a distinct 127.x.y.z address each, all on the
//! same two ports), so a run does not collide with other clusters on the machine as long
//! as its `base_ip` differs.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::ChaosError;

/// How the nodes are started.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The `gossipkv` binary.
    pub bin: PathBuf,
    /// Number of nodes.
    pub nodes: usize,
    /// First three bytes of the nodes' loopback addresses (`127.a.b`); node `i` is `.(i+1)`.
    pub base_ip: [u8; 3],
    /// RESP port of every node.
    pub resp_port: u16,
    /// Gossip port of every node.
    pub gossip_port: u16,
    /// Where logs and control files go.
    pub workdir: PathBuf,
    /// Clock skew of each node, ms (kept across restarts: a machine's clock is off, not a
    /// process's).
    pub skews_ms: Vec<i64>,
    /// Extra `gossipkv node` flags for every node (interval, fanout, grace, clock...).
    pub node_args: Vec<String>,
    /// Cluster key, handed to the nodes through `GOSSIPKV_CLUSTER_KEY` (not on the command
    /// line).
    pub cluster_key: Option<String>,
}

/// A node's fault settings, as written to its control file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Control {
    /// Drop probability (`None`: the node's own, 0).
    pub drop: Option<f64>,
    /// Duplication probability.
    pub dup: f64,
    /// Random delay bound, ms.
    pub delay_ms: u64,
    /// Nodes whose gossip this node drops, both ways.
    pub blocked: BTreeSet<usize>,
}

struct NodeProc {
    child: Option<Child>,
    paused: bool,
    control: Control,
    starts: u32,
}

/// A running cluster of node processes. Dropping it kills every node.
pub struct Cluster {
    spec: ClusterSpec,
    nodes: Vec<NodeProc>,
}

/// How long a node may take to listen after it is spawned.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);

impl Cluster {
    /// Starts every node with `--fresh` (a brand-new cluster) and waits until each listens.
    pub fn start(spec: ClusterSpec) -> Result<Self, ChaosError> {
        fs::create_dir_all(&spec.workdir)
            .map_err(|e| ChaosError::Io(format!("create {}", spec.workdir.display()), e))?;
        let nodes = (0..spec.nodes)
            .map(|_| NodeProc {
                child: None,
                paused: false,
                control: Control::default(),
                starts: 0,
            })
            .collect();
        let mut c = Self { spec, nodes };
        for i in 0..c.nodes.len() {
            c.write_control(i)?;
            c.spawn(i, true)?;
        }
        for i in 0..c.nodes.len() {
            c.wait_listening(i)?;
        }
        Ok(c)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s loopback address.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.spec.base_ip;
        Ipv4Addr::new(a, b, c, (i + 1) as u8)
    }

    /// Where node `i` serves RESP.
    pub fn resp_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.ip(i), self.spec.resp_port))
    }

    /// Where node `i` gossips.
    pub fn gossip_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.ip(i), self.spec.gossip_port))
    }

    /// Node `i`'s clock skew.
    pub fn skew_ms(&self, i: usize) -> i64 {
        self.spec.skews_ms.get(i).copied().unwrap_or(0)
    }

    fn control_path(&self, i: usize) -> PathBuf {
        self.spec.workdir.join(format!("node-{i}.ctl"))
    }

    /// Node `i`'s log file (stdout and stderr of every start, appended).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.spec.workdir.join(format!("node-{i}.log"))
    }

    fn spawn(&mut self, i: usize, fresh: bool) -> Result<(), ChaosError> {
        let peers: Vec<String> =
            (0..self.len()).filter(|&j| j != i).map(|j| self.gossip_addr(j).to_string()).collect();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .map_err(|e| ChaosError::Io(format!("open {}", self.log_path(i).display()), e))?;
        let err = log.try_clone().map_err(|e| ChaosError::Io("clone log handle".into(), e))?;
        let mut cmd = Command::new(&self.spec.bin);
        cmd.arg("node")
            .args(["--id", &i.to_string()])
            .args(["--listen", &self.resp_addr(i).to_string()])
            .args(["--gossip", &self.gossip_addr(i).to_string()])
            .args(["--peers", &peers.join(",")])
            .arg(format!("--clock-skew-ms={}", self.skew_ms(i)))
            .arg("--chaos-file")
            .arg(self.control_path(i))
            .args(&self.spec.node_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // flags only: no GOSSIPKV_* setting from this environment reaches the nodes
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GOSSIPKV_") {
                cmd.env_remove(&k);
            }
        }
        match &self.spec.cluster_key {
            Some(k) => cmd.env("GOSSIPKV_CLUSTER_KEY", k),
            None => cmd.env_remove("GOSSIPKV_CLUSTER_KEY"),
        };
        if fresh {
            cmd.arg("--fresh");
        }
        let child = cmd.spawn().map_err(|source| ChaosError::Spawn { node: i, source })?;
        let n = &mut self.nodes[i];
        n.child = Some(child);
        n.paused = false;
        n.starts += 1;
        Ok(())
    }

    /// Waits (bounded) until node `i` accepts RESP connections.
    pub fn wait_listening(&mut self, i: usize) -> Result<(), ChaosError> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        let addr = self.resp_addr(i);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(Some(status)) =
                self.nodes[i].child.as_mut().map(|c| c.try_wait().ok().flatten())
            {
                return Err(ChaosError::NodeExited { node: i, status: status.to_string() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(ChaosError::NotListening { node: i, secs: LISTEN_TIMEOUT.as_secs() })
    }

    /// Whether node `i` has a process (killed nodes have none until restarted).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Whether node `i` is stopped with SIGSTOP.
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Times node `i` was started.
    pub fn starts(&self, i: usize) -> u32 {
        self.nodes[i].starts
    }

    /// SIGKILL: the process dies at once, its memory (the whole replica) with it.
    pub fn kill(&mut self, i: usize) -> Result<(), ChaosError> {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().map_err(|e| ChaosError::Io(format!("kill -9 node {i}"), e))?;
            c.wait().map_err(|e| ChaosError::Io(format!("wait for node {i}"), e))?;
        }
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Starts a killed node again, empty and without `--fresh` (it answers LOADING until it
    /// caught up), and waits until it listens.
    pub fn restart(&mut self, i: usize) -> Result<(), ChaosError> {
        if self.nodes[i].child.is_none() {
            self.spawn(i, false)?;
            self.wait_listening(i)?;
        }
        Ok(())
    }

    fn signal(&self, i: usize, sig: &str) -> Result<(), ChaosError> {
        let Some(pid) = self.pid(i) else { return Ok(()) };
        let out = Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| ChaosError::Io(format!("kill -s {sig} node {i}"), e))?;
        if out.success() {
            Ok(())
        } else {
            Err(ChaosError::Signal { node: i, signal: sig.to_string() })
        }
    }

    /// SIGSTOP: the process freezes (sockets stay open, requests queue up).
    pub fn pause(&mut self, i: usize) -> Result<(), ChaosError> {
        if self.is_running(i) && !self.nodes[i].paused {
            self.signal(i, "STOP")?;
            self.nodes[i].paused = true;
        }
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) -> Result<(), ChaosError> {
        if self.nodes[i].paused {
            self.signal(i, "CONT")?;
            self.nodes[i].paused = false;
        }
        Ok(())
    }

    /// Node `i`'s current fault settings.
    pub fn control(&self, i: usize) -> &Control {
        &self.nodes[i].control
    }

    /// Changes node `i`'s fault settings and writes its control file (atomically: the node
    /// never reads half a file).
    pub fn set_control(&mut self, i: usize, c: Control) -> Result<(), ChaosError> {
        if self.nodes[i].control != c {
            self.nodes[i].control = c;
            self.write_control(i)?;
        }
        Ok(())
    }

    fn write_control(&self, i: usize) -> Result<(), ChaosError> {
        let c = &self.nodes[i].control;
        let mut text = String::from("# written by gossipkv chaos\n");
        if let Some(p) = c.drop {
            text += &format!("drop {p}\n");
        }
        text += &format!("dup {}\ndelay {}\n", c.dup, c.delay_ms);
        let blocked: Vec<String> =
            c.blocked.iter().map(|&j| self.gossip_addr(j).to_string()).collect();
        text += &format!("block {}\n", blocked.join(","));
        let path = self.control_path(i);
        let tmp = path.with_extension("ctl.tmp");
        let io = |e| ChaosError::Io(format!("write {}", path.display()), e);
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io)
    }

    /// Nodes whose process ended without the harness killing it: `(node, status)`. They are
    /// marked down (a restart brings them back).
    pub fn reap_unexpected(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if let Some(c) = n.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                out.push((i, status));
                n.child = None;
                n.paused = false;
            }
        }
        out
    }

    /// Resident set size of node `i` in KiB (`VmRSS` in /proc/PID/status).
    pub fn rss_kib(&self, i: usize) -> Option<u64> {
        let pid = self.pid(i)?;
        read_vmrss(&Path::new("/proc").join(pid.to_string()).join("status"))
    }

    /// A connection to node `i` with the given I/O timeout.
    pub fn connect(&self, i: usize, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let url = format!("redis://{}/", self.resp_addr(i));
        let conn = redis::Client::open(url)?.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(conn)
    }

    /// `INFO gossip` of node `i` as `name -> value`.
    pub fn info(&self, i: usize, timeout: Duration) -> redis::RedisResult<HashMap<String, String>> {
        self.info_sections(i, &["gossip"], timeout)
    }

    /// Node `i`'s `INFO` fields of the given sections, in one request.
    pub fn info_sections(
        &self,
        i: usize,
        sections: &[&str],
        timeout: Duration,
    ) -> redis::RedisResult<HashMap<String, String>> {
        let mut conn = self.connect(i, timeout)?;
        let text: String = redis::cmd("INFO").arg(sections).query(&mut conn)?;
        Ok(parse_info(&text))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.resume(i);
            let _ = self.kill(i);
        }
    }
}

/// `INFO` text as `name -> value` (section headers and blank lines skipped).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `VmRSS` in KiB from a /proc status file.
pub fn read_vmrss(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether an I/O error means "nothing was sent" (the node is down).
pub fn refused(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionRefused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_parse() {
        let m = parse_info("# Gossip\r\nrounds:12\r\ndigest_root:00ff\r\n\r\n");
        assert_eq!(m.get("rounds").map(String::as_str), Some("12"));
        assert_eq!(m.get("digest_root").map(String::as_str), Some("00ff"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn own_rss_is_read() {
        let kib = read_vmrss(Path::new("/proc/self/status"));
        assert!(kib.is_some_and(|k| k > 0), "{kib:?}");
    }
}
