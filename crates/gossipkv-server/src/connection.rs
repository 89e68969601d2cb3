//! One client connection: read into a buffer, execute every complete request in it (a
//! pipelined batch), append all the replies to one write buffer, write that once, read again.
//!
//! - Requests are parsed in place ([`Parser`]); arguments are slices of the read buffer and
//!   replies are written straight into the write buffer, so a command costs no allocation of
//!   its own in steady state.
//! - A protocol error is answered with `-ERR Protocol error: ...` and closes this connection
//!   only.
//! - Buffers grow for big requests/replies and shrink back when the connection goes quiet.
//! - On shutdown the connection stops between batches; a reply already being written gets a
//!   short grace period.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::cmd::{self, Client, Ctx, Flow};
use crate::resp::{Frame, Parser, reply};
use crate::server::Shared;

/// Read buffer growth step (Redis reads 16 KiB at a time too).
const READ_CHUNK: usize = 16 * 1024;
/// Largest single step when reserving for a big bulk string that is still arriving.
const MAX_RESERVE_STEP: usize = 8 << 20;
/// Write the replies so far once this many bytes are pending, even mid-batch.
const FLUSH_AT: usize = 1 << 20;
/// Buffers above this capacity are released when they are empty.
const SHRINK_ABOVE: usize = 1 << 20;
/// Bounds on draining a client's input after the final reply.
const LINGER_TIME: Duration = Duration::from_millis(250);
const LINGER_BYTES: usize = 1 << 20;
/// How long a command answered by the gossip layer (`CLUSTER MEMBERS` / `FORGET`) may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reply already being written may take once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What executing the buffered requests left to do.
enum Step {
    /// Everything complete was executed: flush, then read more.
    Read,
    /// Replies piled up past [`FLUSH_AT`]: flush, then execute the rest before reading.
    Flush,
    /// Flush, then close (QUIT, or a protocol error).
    Close,
    /// Flush, wait for the client's pending answer (`CLUSTER MEMBERS` / `FORGET`), reply, then execute
    /// the rest before reading.
    Await,
}

pub(crate) struct Connection {
    stream: TcpStream,
    shared: Arc<Shared>,
    parser: Parser,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    client: Client,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, shared: Arc<Shared>, peer: SocketAddr) -> Self {
        let local = stream.local_addr().ok();
        let parser = Parser::new(shared.config.limits);
        let client = Client::new(&shared, Some(peer), local);
        Self {
            stream,
            shared,
            parser,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(READ_CHUNK),
            client,
        }
    }

    /// Serves the client until it closes, QUITs, errs, or `stop` turns true.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) -> io::Result<()> {
        // One shutdown future for the connection's whole life: a fresh one per read would
        // register (and unregister) a waiter, two lock round-trips per request.
        let stop_signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stop_signal);
        let mut stopping = false;
        loop {
            let step = self.execute_buffered();
            if !self.wbuf.is_empty() {
                self.flush(stop_signal.as_mut(), &mut stopping).await?;
            }
            match step {
                Step::Close => {
                    self.linger().await;
                    return Ok(());
                }
                Step::Await if !stopping => {
                    self.answer_pending(stop_signal.as_mut(), &mut stopping).await;
                    continue;
                }
                Step::Flush if !stopping => continue,
                Step::Flush | Step::Read | Step::Await => {}
            }
            if stopping {
                return Ok(());
            }
            if self.rbuf.is_empty() && self.rbuf.capacity() > SHRINK_ABOVE {
                self.rbuf = BytesMut::with_capacity(READ_CHUNK);
            }
            // Keep at least half a chunk free (a full chunk, or up to the rest of a big bulk
            // string, after growing), so small reads rarely need a reserve call.
            let (min_spare, want) = match self.parser.pending_len() {
                Some(need) => {
                    let want =
                        need.saturating_sub(self.rbuf.len()).clamp(READ_CHUNK, MAX_RESERVE_STEP);
                    (want, want)
                }
                None => (READ_CHUNK / 2, READ_CHUNK),
            };
            if self.rbuf.capacity() - self.rbuf.len() < min_spare {
                self.rbuf.reserve(want);
            }
            let n = tokio::select! {
                biased;
                () = &mut stop_signal => return Ok(()),
                r = self.stream.read_buf(&mut self.rbuf) => r?,
            };
            if n == 0 {
                return Ok(());
            }
            self.shared.metrics.bytes_in(n);
        }
    }

    /// Executes every complete request in the read buffer, replies into the write buffer.
    fn execute_buffered(&mut self) -> Step {
        let mut off = 0;
        let mut commands = 0u64;
        self.client.batch_now = None;
        let step = loop {
            let req = match self.parser.parse(&self.rbuf[off..]) {
                Ok(Some(req)) => req,
                Ok(None) => break Step::Read,
                Err(e) => {
                    reply::error_fmt(&mut self.wbuf, format_args!("ERR Protocol error: {e}"));
                    self.shared.metrics.protocol_error();
                    tracing::debug!(peer = ?self.client.peer, error = %e, "protocol error");
                    break Step::Close;
                }
            };
            off += req.consumed();
            if req.is_empty() {
                continue;
            }
            commands += 1;
            let mut ctx =
                Ctx { shared: &self.shared, client: &mut self.client, out: &mut self.wbuf };
            match cmd::dispatch(&mut ctx, &req) {
                Flow::Continue => {}
                Flow::Close => break Step::Close,
                Flow::Await => break Step::Await,
            }
            if self.wbuf.len() >= FLUSH_AT {
                break Step::Flush;
            }
        };
        self.rbuf.advance(off);
        self.shared.metrics.commands(commands);
        step
    }

    /// Waits (at most [`ADMIN_TIMEOUT`], or until shutdown) for the answer of the command
    /// that returned [`Flow::Await`] and writes it as the command's reply, so replies stay in
    /// request order.
    async fn answer_pending(
        &mut self,
        stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        stopping: &mut bool,
    ) {
        let Some(cmd::Pending { answer, slot }) = self.client.pending.take() else { return };
        let answer = tokio::select! {
            biased;
            () = stop => {
                *stopping = true;
                Frame::Error(Bytes::from_static(b"ERR the server is shutting down"))
            }
            r = tokio::time::timeout(ADMIN_TIMEOUT, answer) => r.unwrap_or_else(|_| {
                Frame::Error(Bytes::from_static(b"ERR no answer from the gossip layer in time"))
            }),
        };
        if matches!(answer, Frame::Error(_)) {
            self.shared.metrics.late_command_error(slot);
        }
        answer.encode_for(&mut self.wbuf, self.client.resp3);
    }

    /// Closes after a final reply (QUIT, protocol error) without losing it: send FIN, then
    /// read and discard what the client still sends for a bounded time. Closing with unread
    /// input would make the kernel send a reset, which can destroy the reply in flight.
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let drain = async {
            let mut scratch = [0u8; 4096];
            let mut left = LINGER_BYTES;
            while left > 0 {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }

    /// Writes the pending replies; once shutdown has begun, gives up after a grace period.
    /// `stop` completes when shutdown begins; `stopping` records that it has (it must not be
    /// polled again then).
    async fn flush(
        &mut self,
        stop: Pin<&mut impl Future<Output = ()>>,
        stopping: &mut bool,
    ) -> io::Result<()> {
        let n = self.wbuf.len();
        let grace = async {
            if !*stopping {
                stop.await;
                *stopping = true;
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            biased;
            r = self.stream.write_all(&self.wbuf) => r?,
            () = grace => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "shutdown: reply not written"));
            }
        }
        self.shared.metrics.bytes_out(n);
        self.wbuf.clear();
        if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf = Vec::with_capacity(READ_CHUNK);
        }
        Ok(())
    }
}
