//! One connection's state machine, shared by both threading models.
//!
//! # Ownership contract
//! A `Conn` is owned by exactly one thread at a time. In the pool model it rests in the poll
//! thread's slab while it waits for the client, and moves by value to a worker when its
//! socket is ready; the worker drives it and moves it back, or drops it, which closes the
//! socket. Nothing about a connection is shared or locked.
//!
//! # Driving rules
//! - [`Conn::drive`] reads until the socket is empty: until it says `WouldBlock`, or a read
//!   comes back short (readiness is edge-triggered: an undrained socket would never be
//!   reported again, while bytes arriving after a short read raise a new edge, which the
//!   owner passes on with [`Conn::saw`]). It answers every complete request in the buffer
//!   in order, and writes until done or `WouldBlock`.
//! - It never reads while a response is unsent, so a client that does not read its
//!   responses cannot make the server buffer more of them.
//! - It returns what the connection waits for next: [`Next::Read`], [`Next::Write`],
//!   [`Next::Linger`] (draining input before a close), or [`Next::Close`] with the reason.
//! - Buffers are borrowed from the driving thread's [`Workspace`] and given back whenever
//!   they are empty, so a connection waiting for its next request holds no buffer at all.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rustix::net::{RecvFlags, SendFlags};

use crate::handler::{self, Body, Site, Workspace};
use crate::http::body::{BodyError, BodyReader};
use crate::http::request::{self, BodyFraming, MAX_HEAD, Parsed, RequestError, Version};
use crate::http::response::Fate;

/// Response bytes queued from pipelined requests before they are written. Bounds the
/// output buffer while still answering a burst of small pipelined requests in one write.
pub const OUTPUT_BATCH: usize = 64 * 1024;

/// Every write: a peer that has gone must cost an error, never SIGPIPE.
const SEND: SendFlags = SendFlags::NOSIGNAL;

/// Largest `sendfile` call; the kernel caps one call near 2 GiB anyway.
const SENDFILE_CHUNK: u64 = 1 << 30;

/// How long a connection that is being closed with unread input keeps reading (and
/// discarding) it. Closing a socket with unread data makes the kernel send a reset, which
/// can destroy the response still on its way to the client; two seconds is enough for a
/// client on any real network to see the response and the half-close.
pub const LINGER: Duration = Duration::from_secs(2);

/// Buffers of each kind a workspace keeps for reuse; more are freed.
pub const SPARE_BUFFERS: usize = 64;

/// Largest output buffer kept for reuse: a full batch plus a copied body and its head.
/// Anything larger grew for an unusual response and is freed.
const MAX_SPARE_OUTPUT: usize = 2 * OUTPUT_BATCH + 4096;

/// What a connection waits for once its owner stops driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The next request, or the rest of one (see [`Conn::head_started`]).
    Read,
    /// Room in the socket's send buffer for an unfinished response.
    Write,
    /// The rest of what the client sends after a final response, to be discarded before
    /// closing (see [`LINGER`]); the connection closes at the deadline or on EOF.
    Linger,
    /// Blocking sockets only: the connection's deadline may have changed (a request began,
    /// progressed or was answered); the owner sets the read timeout again and drives on.
    Continue,
    /// Nothing: drop the connection.
    Close(CloseReason),
}

/// Readiness an owner has seen on a connection's socket since it last drove it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Edges {
    /// Bytes (or the end of the stream) may be waiting to be read.
    pub readable: bool,
    /// The send buffer has room again.
    pub writable: bool,
    /// The peer hung up or the socket failed: only reading to the end tells which.
    pub hangup: bool,
}

impl Edges {
    /// Whether anything was seen.
    pub fn any(self) -> bool {
        self.readable || self.writable || self.hangup
    }

    /// What `self` and `other` saw together.
    pub fn with(self, other: Edges) -> Edges {
        Edges {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
            hangup: self.hangup || other.hangup,
        }
    }
}

/// Why a connection ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side.
    PeerClosed,
    /// The socket failed (reset, broken pipe).
    PeerError,
    /// The response said `Connection: close` (HTTP/1.0, `Connection: close`, or the
    /// per-connection request limit).
    Done,
    /// The request head was refused with an error status.
    BadRequest,
    /// No request within the keep-alive time.
    IdleTimeout,
    /// A request head that did not finish in time.
    HeadTimeout,
    /// A response that made no progress in time.
    SendTimeout,
    /// The file being sent shrank under us; the response cannot be completed.
    FileShrank,
    /// A refused request's remaining input was drained for as long as we linger.
    LingerDone,
    /// Handling a request panicked.
    Panic,
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::PeerClosed => "client closed",
            CloseReason::PeerError => "connection error",
            CloseReason::Done => "connection: close",
            CloseReason::BadRequest => "bad request",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::HeadTimeout => "request head timeout",
            CloseReason::SendTimeout => "send timeout",
            CloseReason::FileShrank => "file shrank while sending",
            CloseReason::LingerDone => "closed after lingering",
            CloseReason::Panic => "panic while answering",
            CloseReason::Shutdown => "server shutdown",
        })
    }
}

/// Whether the connection takes more requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Send what is queued, then close for this reason.
    Closing(CloseReason),
    /// Sent, write side shut down; discarding input until EOF or the linger deadline.
    Lingering(CloseReason, Instant),
}

/// One client connection over a socket `S` (non-blocking in the pool model, blocking with
/// timeouts in the thread-per-connection model).
#[derive(Debug)]
pub struct Conn<S> {
    socket: S,
    peer: SocketAddr,
    id: u64,
    /// Request bytes; `input[start..end]` is unparsed. Empty (no capacity) while idle.
    input: Vec<u8>,
    start: usize,
    end: usize,
    /// Response bytes; `output[sent..]` is unsent. Empty (no capacity) while idle.
    output: Vec<u8>,
    sent: usize,
    /// A body to send after `output`: from a file, or from memory together with it.
    body: Option<Body>,
    served: u32,
    state: State,
    head_started: Option<Instant>,
    /// A request body being read and discarded before its head is answered.
    discard: Option<Discard>,
    /// The head at the front of the input has had its body discarded: answer it now.
    body_read: bool,
    /// Where the response being built starts in `output`, while the handler runs; lets a
    /// panic in the handler be answered with 500 if nothing of it has been sent.
    answering: Option<usize>,
    /// Bytes written to the socket, for the shutdown summary.
    bytes_sent: u64,
    /// Blocking sockets only: return after a read that leaves a request unfinished, so the
    /// owner can shorten the read timeout to the request's deadline (see [`Conn::blocking`]).
    blocking: bool,
    /// Non-blocking sockets only: whether the socket may hold bytes not yet read. A read
    /// that comes back short has emptied the socket, and with edge-triggered readiness any
    /// byte that arrives later is reported anew (see [`Conn::saw`]), so the read that
    /// would only confirm `WouldBlock` is skipped.
    unread: bool,
    /// The peer's hang-up was reported: its end of stream only shows to a read that
    /// returns nothing, so every read is tried until then.
    hung_up: bool,
}

/// A body being discarded. Its head stays at `input[start..start + head_len]`, and body
/// bytes are taken out from behind it as they arrive, so the head can be answered (and
/// refused with 413 or 400) once the whole request has been seen.
#[derive(Debug)]
struct Discard {
    head_len: usize,
    reader: BodyReader,
}

/// The interim response sent before reading a body when the client asks for it.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

enum Flushed {
    All,
    Blocked,
}

enum Filled {
    Bytes,
    Blocked,
}

impl<S: AsFd> Conn<S> {
    /// A new connection, numbered `id` for the log.
    pub fn new(socket: S, peer: SocketAddr, id: u64) -> Conn<S> {
        Conn {
            socket,
            peer,
            id,
            input: Vec::new(),
            start: 0,
            end: 0,
            output: Vec::new(),
            sent: 0,
            body: None,
            served: 0,
            state: State::Open,
            head_started: None,
            discard: None,
            body_read: false,
            answering: None,
            bytes_sent: 0,
            blocking: false,
            unread: true,
            hung_up: false,
        }
    }

    /// Tells the connection what its owner saw on the socket since it last drove it.
    pub fn saw(&mut self, edges: Edges) {
        self.unread |= edges.readable || edges.hangup;
        self.hung_up |= edges.hangup;
    }

    /// Marks the socket as blocking, with read timeouts as deadlines. A blocking read only
    /// returns when bytes arrive or its timeout passes, so a client sending one byte a
    /// second would never let the owner check the request deadline; in this mode `drive`
    /// returns [`Next::Continue`] (or [`Next::Linger`]) after every read that leaves a
    /// request unfinished and after every answer, and the owner sets the next timeout
    /// before driving again. [`Next::Read`] then always means a read timed out.
    pub fn blocking(mut self) -> Conn<S> {
        self.blocking = true;
        self
    }

    /// Bytes written to the socket so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// After a panic while driving this connection: answer 500 in place of the response
    /// that was being built, if none of it has been sent, and close.
    pub fn recover_from_panic(&mut self, site: &Site, ws: &mut Workspace) -> Next {
        self.discard = None;
        self.start = 0;
        self.end = 0;
        match self.answering.take() {
            Some(mark) if self.sent <= mark && self.body.is_none() => {
                self.output.truncate(mark);
                handler::fail(site, ws, &mut self.output);
            }
            // Part of a response is already out: nothing valid can follow it.
            _ => {
                self.output.clear();
                self.sent = 0;
                self.body = None;
            }
        }
        self.state = State::Closing(CloseReason::Panic);
        self.drive(site, ws)
    }

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.socket
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The connection's number in the log.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Requests answered so far.
    pub fn served(&self) -> u32 {
        self.served
    }

    /// When the unfinished request head now buffered began to arrive; `None` when the
    /// connection is idle between requests.
    pub fn head_started(&self) -> Option<Instant> {
        self.head_started
    }

    /// Runs the connection until it must wait; see the module's driving rules.
    pub fn drive(&mut self, site: &Site, ws: &mut Workspace) -> Next {
        let next = self.step(site, ws);
        self.release_buffers(ws);
        next
    }

    /// The request head deadline passed: answer 408 (as far as the socket takes it) and
    /// close.
    pub fn expire_head(&mut self, site: &Site, ws: &mut Workspace) -> Next {
        self.start = 0;
        self.end = 0;
        self.head_started = None;
        self.take_output(ws);
        handler::time_out(site, ws, &mut self.output, self.peer);
        self.state = State::Closing(CloseReason::HeadTimeout);
        self.drive(site, ws)
    }

    fn step(&mut self, site: &Site, ws: &mut Workspace) -> Next {
        let mut read_once = false;
        loop {
            match self.flush() {
                Ok(Flushed::All) => {}
                Ok(Flushed::Blocked) => return Next::Write,
                Err(reason) => return Next::Close(reason),
            }
            match self.state {
                State::Open => {}
                State::Closing(reason) => {
                    // Input the client may still be sending (a refused body, pipelined
                    // requests, the rest of a late request) must be drained, or closing
                    // resets the connection.
                    let unread_likely =
                        matches!(reason, CloseReason::BadRequest | CloseReason::HeadTimeout);
                    if !unread_likely && self.start == self.end {
                        return Next::Close(reason);
                    }
                    let _ = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Write);
                    self.state = State::Lingering(reason, Instant::now());
                    return self.linger(ws);
                }
                State::Lingering(..) => return self.linger(ws),
            }
            if self.answer_buffered(site, ws) {
                if self.blocking {
                    // The owner's read timeout may still be a request's; after an answer it
                    // must become the idle one (or the next request's) before reading on.
                    return match self.flush() {
                        Ok(Flushed::All) => Next::Continue,
                        Ok(Flushed::Blocked) => Next::Write,
                        Err(reason) => Next::Close(reason),
                    };
                }
                continue;
            }
            if self.blocking && read_once && self.start < self.end {
                return Next::Continue;
            }
            if !self.blocking && !self.unread {
                return Next::Read;
            }
            match self.fill(ws) {
                Ok(Filled::Bytes) => read_once = true,
                Ok(Filled::Blocked) => return Next::Read,
                Err(reason) => return Next::Close(reason),
            }
        }
    }

    /// Answers the complete requests at the front of the input, in order, discarding any
    /// request body first. Returns whether anything was queued for sending.
    fn answer_buffered(&mut self, site: &Site, ws: &mut Workspace) -> bool {
        let mut queued = false;
        while self.state == State::Open
            && self.body.is_none()
            && self.output.len() < OUTPUT_BATCH
            && self.start < self.end
        {
            if !queued {
                self.take_output(ws);
            }
            if let Some(discard) = &mut self.discard {
                let body_start = self.start + discard.head_len;
                match discard.reader.consume(&self.input[body_start..self.end]) {
                    Ok((used, done)) => {
                        self.input
                            .copy_within(body_start + used..self.end, body_start);
                        self.end -= used;
                        if used > 0 {
                            // A body is timed by its progress, not from its head's first byte.
                            self.head_started = Some(Instant::now());
                        }
                        if !done {
                            break;
                        }
                        self.discard = None;
                        self.body_read = true;
                    }
                    Err(error) => {
                        let error = match error {
                            BodyError::TooLarge => RequestError::BodyTooLarge,
                            BodyError::Malformed => RequestError::MalformedBody,
                        };
                        self.refuse(error, site, ws);
                        queued = true;
                        continue;
                    }
                }
            }
            match request::parse(&self.input[self.start..self.end]) {
                Ok(Parsed::Partial) => break,
                Ok(Parsed::Complete(req)) if req.body != BodyFraming::None && !self.body_read => {
                    match BodyReader::new(req.body) {
                        Ok(reader) => {
                            // A client waiting for 100 Continue sends its body only after it
                            // (RFC 9110 §10.1.1); HTTP/1.0 clients cannot ask for it.
                            if req.expect_continue && req.version == Version::Http11 {
                                self.output.extend_from_slice(CONTINUE);
                                queued = true;
                            }
                            self.discard = Some(Discard {
                                head_len: req.head_len,
                                reader,
                            });
                        }
                        Err(_) => {
                            self.refuse(RequestError::BodyTooLarge, site, ws);
                            queued = true;
                        }
                    }
                    continue;
                }
                Ok(Parsed::Complete(req)) => {
                    self.answering = Some(self.output.len());
                    let answer =
                        handler::answer(&req, site, ws, &mut self.output, self.served, self.peer);
                    self.answering = None;
                    self.start += req.head_len;
                    self.served += 1;
                    self.body_read = false;
                    self.body = answer.body;
                    if answer.fate == Fate::Close {
                        self.state = State::Closing(CloseReason::Done);
                    }
                }
                Err(error) => self.refuse(error, site, ws),
            }
            queued = true;
            self.head_started = (self.start < self.end).then(Instant::now);
        }
        queued
    }

    /// Answers a request we will not serve with its error status; the connection closes
    /// once that is sent, since what follows in the input cannot be trusted to be a request.
    fn refuse(&mut self, error: RequestError, site: &Site, ws: &mut Workspace) {
        handler::refuse(error, site, ws, &mut self.output, self.peer);
        // Answered, if not served: it counts among the connection's requests.
        self.served += 1;
        self.discard = None;
        self.state = State::Closing(CloseReason::BadRequest);
    }

    /// Reads and discards input until the socket would block (wait for more) or ends.
    fn linger(&mut self, ws: &mut Workspace) -> Next {
        let State::Lingering(reason, _) = self.state else {
            return Next::Close(CloseReason::PeerError);
        };
        loop {
            // Whatever is buffered is discarded unread; the buffer may even be full, and a
            // read into no room would look like the end of the stream.
            self.start = 0;
            self.end = 0;
            self.head_started = None;
            if !self.blocking && !self.unread {
                return Next::Linger;
            }
            let filled = self.fill(ws);
            match filled {
                Ok(Filled::Bytes) if self.blocking => return Next::Linger,
                Ok(Filled::Bytes) => {}
                Ok(Filled::Blocked) => return Next::Linger,
                Err(_) => return Next::Close(reason),
            }
        }
    }

    /// When lingering began, if it has.
    pub fn lingering_since(&self) -> Option<Instant> {
        match self.state {
            State::Lingering(_, since) => Some(since),
            _ => None,
        }
    }

    /// Reads once into the input buffer.
    fn fill(&mut self, ws: &mut Workspace) -> Result<Filled, CloseReason> {
        if self.input.is_empty() {
            self.input = ws.spare_inputs.pop().unwrap_or_else(|| vec![0; MAX_HEAD]);
        }
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // The parser refuses any head that fills the buffer, so there is always room here.
        debug_assert!(self.end < self.input.len());
        loop {
            let room = self.input.len() - self.end;
            match rustix::net::recv(
                &self.socket,
                &mut self.input[self.end..],
                RecvFlags::empty(),
            ) {
                Ok((0, _)) => return Err(CloseReason::PeerClosed),
                Ok((n, _)) => {
                    self.unread = n == room || self.hung_up;
                    if let Some(watcher) = &mut ws.watcher {
                        watcher.received();
                    }
                    if self.end == 0 {
                        self.head_started = Some(Instant::now());
                    }
                    self.end += n;
                    return Ok(Filled::Bytes);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => {
                    self.unread = false;
                    return Ok(Filled::Blocked);
                }
                Err(_) => return Err(CloseReason::PeerError),
            }
        }
    }

    /// Writes queued output, then any body: from memory in the same vectored write as the
    /// head, from a file by `sendfile` after it.
    fn flush(&mut self) -> Result<Flushed, CloseReason> {
        loop {
            let head = &self.output[self.sent..];
            let written = match &mut self.body {
                _ if !head.is_empty() => {
                    // MSG_MORE keeps a head in the socket until the file body joins it, so
                    // the two leave in one segment even with TCP_NODELAY.
                    let more = if self.body.is_some() {
                        SendFlags::MORE
                    } else {
                        SendFlags::empty()
                    };
                    let sent = rustix::net::send(&self.socket, head, SEND | more);
                    if let Ok(n) = sent {
                        self.sent += n;
                    }
                    sent
                }
                Some(Body { file, offset, end }) => {
                    let count = (*end - *offset).min(SENDFILE_CHUNK) as usize;
                    match rustix::fs::sendfile(&self.socket, &**file, Some(offset), count) {
                        Ok(0) => return Err(CloseReason::FileShrank),
                        other => other,
                    }
                }
                None => break,
            };
            match written {
                Ok(n) => self.bytes_sent += n as u64,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(Flushed::Blocked),
                Err(_) => return Err(CloseReason::PeerError),
            }
            if self.sent == self.output.len() {
                self.output.clear();
                self.sent = 0;
            }
            if self
                .body
                .as_ref()
                .is_some_and(|body| body.offset == body.end)
            {
                self.body = None;
            }
        }
        Ok(Flushed::All)
    }

    fn take_output(&mut self, ws: &mut Workspace) {
        if self.output.capacity() == 0 {
            self.output = ws.spare_outputs.pop().unwrap_or_default();
        }
    }

    /// Gives empty buffers back to the workspace, so that waiting costs no buffer.
    fn release_buffers(&mut self, ws: &mut Workspace) {
        if self.start == self.end && !self.input.is_empty() {
            let input = std::mem::take(&mut self.input);
            self.start = 0;
            self.end = 0;
            if ws.spare_inputs.len() < SPARE_BUFFERS {
                ws.spare_inputs.push(input);
            }
        }
        if self.output.is_empty() && self.output.capacity() > 0 {
            let output = std::mem::take(&mut self.output);
            if ws.spare_outputs.len() < SPARE_BUFFERS && output.capacity() <= MAX_SPARE_OUTPUT {
                ws.spare_outputs.push(output);
            }
        }
    }
}

/// Runs one step of a connection, turning a panic into a 500 (if none of the response has
/// been sent) and a close, so that one bad request costs its connection and never a thread.
pub fn catching<S: AsFd>(
    conn: &mut Conn<S>,
    site: &Site,
    ws: &mut Workspace,
    step: impl FnOnce(&mut Conn<S>, &mut Workspace) -> Next,
) -> Next {
    match panic::catch_unwind(AssertUnwindSafe(|| step(conn, ws))) {
        Ok(next) => next,
        Err(_) => {
            ws.line.clear();
            let what = format_args!("panicked while answering; answering 500 if it still can");
            site.log
                .conn(&mut ws.line, ws.actor, conn.id(), conn.peer(), what);
            panic::catch_unwind(AssertUnwindSafe(|| conn.recover_from_panic(site, ws)))
                .unwrap_or(Next::Close(CloseReason::Panic))
        }
    }
}
