//! tracing logs on stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=gossipkv_net=debug`). Each
//! command picks the level used when `RUST_LOG` is unset: `info` for `gossipkv node`, `warn`
//! for `gossipkv cluster` (many nodes in one process would otherwise repeat every event).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the process's log subscriber (once; later calls do nothing). `default` is the
/// filter used when `RUST_LOG` is unset; an invalid `RUST_LOG` is reported and `default` used.
pub fn init(default: &str) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(default), Some(format!("RUST_LOG={spec:?} ignored: {e}"))),
        },
        _ => (EnvFilter::new(default), None),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .is_ok();
    if let (true, Some(msg)) = (installed, bad) {
        tracing::warn!("{msg}");
    }
}
