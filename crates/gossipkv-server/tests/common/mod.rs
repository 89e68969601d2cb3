//! Test harness: a server on 127.0.0.1:0 with a fresh replica, on its own thread and tokio
//! runtime (so tests may use blocking clients), stopped and joined on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gossipkv_core::{ClockKind, Replica, StoreConfig};
use gossipkv_server::resp::{Frame, Limits};
use gossipkv_server::{ServerConfig, ServerContext, serve};
use tokio::sync::oneshot;

/// Every blocking read or write in the tests gives up after this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub replica: Arc<Replica>,
    pub ctx: ServerContext,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with_context(ServerContext::new(ServerConfig::default()))
    }

    pub fn with_config(config: ServerConfig) -> Self {
        Self::with_context(ServerContext::new(config))
    }

    pub fn with_context(ctx: ServerContext) -> Self {
        let replica = Arc::new(Replica::new(3, ClockKind::Hlc, StoreConfig::default()));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std_mpsc::channel();
        let (r, c) = (Arc::clone(&replica), ctx.clone());
        let thread = std::thread::spawn(move || {
            let rt = c.config().runtime()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?).expect("test thread is waiting");
                serve(listener, r, c, stop_rx).await
            })
        });
        let addr = addr_rx.recv_timeout(IO_TIMEOUT).expect("server started");
        Self { addr, replica, ctx, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn connect(&self) -> Conn {
        Conn::new(self.addr)
    }

    /// Stops the server and waits (bounded) for `serve` to return.
    pub fn stop(&mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let Some(t) = self.thread.take() else { return Ok(()) };
        let deadline = Instant::now() + IO_TIMEOUT;
        while !t.is_finished() {
            assert!(Instant::now() < deadline, "server did not shut down in time");
            std::thread::sleep(Duration::from_millis(5));
        }
        t.join().expect("server thread panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop().expect("server ended with an error");
        }
    }
}

/// A raw RESP connection with a reply decoder.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send_cmd(&mut self, args: &[&[u8]]) {
        let bytes = Frame::command(args.iter()).to_vec();
        self.send(&bytes);
    }

    /// Reads one reply frame; `None` if the server closed the connection first.
    pub fn read_frame(&mut self) -> Option<Frame> {
        match self.next_frame() {
            Ok(f) => f,
            Err(why) => panic!("{why}"),
        }
    }

    /// Like `send`, but a closed or reset connection is `false` instead of a panic.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Like `read_frame`, but a reset, a timeout, an invalid reply or a close mid-reply is
    /// `None` too.
    pub fn try_read_frame(&mut self) -> Option<Frame> {
        self.next_frame().ok().flatten()
    }

    /// One reply frame, `Ok(None)` on a clean close between frames, `Err` on anything else.
    fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        let limits = Limits { max_bulk_len: 1 << 30, ..Limits::default() };
        loop {
            match Frame::decode(&self.buf, &limits) {
                Ok(Some((f, n))) => {
                    self.buf.drain(..n);
                    return Ok(Some(f));
                }
                Ok(None) => {}
                Err(e) => return Err(format!("invalid reply: {e}")),
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).map_err(|e| format!("read (timed out?): {e}"))?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err("connection closed mid-reply".to_string())
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn reply(&mut self) -> Frame {
        self.read_frame().expect("a reply, not a closed connection")
    }

    pub fn cmd(&mut self, args: &[&[u8]]) -> Frame {
        self.send_cmd(args);
        self.reply()
    }

    /// Whether the server closed the connection (reads EOF, or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

pub fn bulk(b: &[u8]) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(b))
}

pub fn simple(s: &str) -> Frame {
    Frame::Simple(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

pub fn error(s: &str) -> Frame {
    Frame::Error(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

pub fn is_error_starting(f: &Frame, prefix: &str) -> bool {
    matches!(f, Frame::Error(e) if e.starts_with(prefix.as_bytes()))
}
