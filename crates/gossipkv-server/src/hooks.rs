//! The seams through which the rest of the node (the gossip layer, built separately) plugs
//! into the client-facing server: [`WriteObserver`] hears about every local write,
//! [`InfoSource`] adds lines to `INFO`, and [`ClusterAdmin`] answers `CLUSTER MEMBERS` and
//! `CLUSTER FORGET`.
//! They default to doing nothing (and to refusing the command).

use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use gossipkv_core::{Version, VersionRef};

use crate::resp::Frame;

/// Told about every write a client makes at this node (`SET`, `PUT`, `MSET`, `DEL`), after it
/// was merged into the local store, so the gossip layer can spread it as a fresh rumor.
///
/// Called on the connection's task, inline with the command: keep it short and never block
/// (push to a channel or a queue). The version is borrowed to keep the hot path free of
/// allocations when nobody listens; call [`VersionRef::to_owned`] to keep it.
pub trait WriteObserver: Send + Sync + 'static {
    /// `key` now has the local version `version` (a tombstone for `DEL`).
    fn on_local_write(&self, key: &[u8], version: VersionRef<'_>);

    /// [`WriteObserver::on_local_write`] with the hashes the store computed for the write
    /// (`kh = digest::key_hash(key)`, `vh = digest::version_hash(kh, version)`); this is what
    /// the server calls. The default ignores them; an observer that names versions by these
    /// hashes overrides it and saves hashing the key and the version again.
    fn on_local_write_hashed(&self, key: &[u8], version: VersionRef<'_>, kh: u64, vh: u64) {
        let _ = (kh, vh);
        self.on_local_write(key, version);
    }
}

/// The default observer: ignores every write.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl WriteObserver for NoopObserver {
    #[inline]
    fn on_local_write(&self, _key: &[u8], _version: VersionRef<'_>) {}
}

/// Any `Fn(key, version)` closure is an observer (handy in tests).
impl<F> WriteObserver for F
where
    F: Fn(&[u8], VersionRef<'_>) + Send + Sync + 'static,
{
    fn on_local_write(&self, key: &[u8], version: VersionRef<'_>) {
        self(key, version)
    }
}

/// An unbounded channel is an observer: each write is sent as an owned `(key, version)`. A
/// closed channel drops writes silently (the gossip layer is gone).
impl WriteObserver for tokio::sync::mpsc::UnboundedSender<(Bytes, Version)> {
    fn on_local_write(&self, key: &[u8], version: VersionRef<'_>) {
        let _ = self.send((Bytes::copy_from_slice(key), version.to_owned()));
    }
}

/// The answer to an administration command, ready later: the reply frame itself (an error
/// as [`Frame::Error`], whose text starts with its code, e.g. `ERR`).
pub type AdminFuture = Pin<Box<dyn Future<Output = Frame> + Send>>;

/// Carries out the cluster administration clients ask for (`CLUSTER MEMBERS`, `CLUSTER
/// FORGET id`). The connection waits for the answer before it executes the client's next
/// command (others' connections go on meanwhile).
pub trait ClusterAdmin: Send + Sync + 'static {
    /// Forgets member `id`, which must be believed dead: it stops counting against the
    /// majority the node needs (see `gossipkv_net::GossipStatus::forget_member`).
    fn forget(&self, id: u32) -> AdminFuture;

    /// The member table as this node sees it, one entry per member. Refused by default.
    fn members(&self) -> AdminFuture {
        no_membership()
    }
}

/// The default: no membership to administer; every request is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAdmin;

impl ClusterAdmin for NoAdmin {
    fn forget(&self, _id: u32) -> AdminFuture {
        no_membership()
    }
}

fn no_membership() -> AdminFuture {
    Box::pin(async {
        Frame::Error(Bytes::from_static(b"ERR this server has no cluster membership"))
    })
}

/// Adds fields to `INFO` (`INFO replication`, `INFO gossip`). Called on the connection's task
/// each time a client asks: keep it to reading counters.
pub trait InfoSource: Send + Sync + 'static {
    /// Extra lines for the `# Replication` section (after the node's own fields).
    fn replication(&self, _section: &mut InfoSection) {}

    /// Lines for the `# Gossip` section (peers, rounds, bytes, convergence...).
    fn gossip(&self, _section: &mut InfoSection) {}
}

/// The default info source: adds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoInfo;

impl InfoSource for NoInfo {}

/// One section of an `INFO` reply being built: `name:value` lines.
#[derive(Debug, Default)]
pub struct InfoSection {
    text: String,
}

impl InfoSection {
    /// An empty section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `name:value`. CR, LF (and `:` in the name) are replaced by spaces / `_` so a
    /// field can never break the reply's line structure.
    pub fn field(&mut self, name: &str, value: impl fmt::Display) {
        self.text.extend(name.chars().map(|c| match c {
            ':' | '\r' | '\n' => '_',
            c => c,
        }));
        let vstart = self.text.len() + 1;
        // Writing into a String cannot fail.
        let _ = write!(self.text, ":{value}");
        if self.text[vstart..].contains(['\r', '\n']) {
            let v = self.text[vstart..].replace(['\r', '\n'], " ");
            self.text.truncate(vstart);
            self.text.push_str(&v);
        }
        self.text.push_str("\r\n");
    }

    /// The lines so far, each ending in CRLF.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_stay_on_one_line() {
        let mut s = InfoSection::new();
        s.field("peers", 3);
        s.field("bad:name\r\n", "a\r\nb");
        assert_eq!(s.as_str(), "peers:3\r\nbad_name__:a  b\r\n");
    }
}
