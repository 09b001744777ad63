//! One connection's state machine, shared by both threading models.
//!
//! # Ownership contract
//! A `Conn` is owned by exactly one thread at a time. In the pool model it rests in the poll
//! thread's slab while it waits for the client, and moves by value to a worker when its
//! socket is ready; the worker drives it and moves it back, or closes it. Nothing about a
//! connection is shared or locked.
//!
//! # Phases
//! A connection is in exactly one [`Phase`], which holds what that phase needs and is
//! replaced whole on every transition: idle between requests, reading a request head,
//! discarding a request body, writing responses, or lingering before a close. The phase
//! alone says what the connection waits for and until when ([`Conn::deadline`]).
//!
//! # Driving rules
//! - [`Conn::drive`] writes what is queued, answers every complete request in the input in
//!   order, and reads **at most once**, then returns what it waits for ([`Next`]). Reading
//!   once lets the owner set a blocking socket's timeout to the current deadline before
//!   every read; a non-blocking owner drives again at once while [`Conn::unread`] says the
//!   socket may hold more.
//! - With edge-triggered readiness a read that comes back short has emptied the socket, and
//!   later bytes raise a new edge, which the owner passes on with [`Conn::saw`]; so the read
//!   that would only confirm `WouldBlock` is skipped.
//! - It never reads while a response is unsent, so a client that does not read its
//!   responses cannot make the server buffer more of them.
//! - Every response is logged once, when its last byte is written or when the connection
//!   ends before that, with the bytes actually sent.
//! - Buffers come from the driving thread's [`Buffers`] and go back to it whenever they
//!   are empty, so a connection waiting for its next request holds no buffer at all.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rustix::net::{RecvFlags, SendFlags};

use crate::handler::{self, Answer, Body, Site, Workspace};
use crate::http::Status;
use crate::http::body::{BodyError, BodyReader};
use crate::http::request::{self, BodyFraming, MAX_HEAD, Parsed, RequestError, Version};
use crate::http::response::Fate;
use crate::log::{Actor, Log, RequestLine};

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

/// Buffers of each kind a thread keeps for reuse; more are freed.
pub const SPARE_BUFFERS: usize = 64;

/// Largest output buffer kept for reuse: a full batch plus a copied body and its head.
/// Anything larger grew for an unusual response and is freed.
const MAX_SPARE_OUTPUT: usize = 2 * OUTPUT_BATCH + 4096;

/// The interim response sent before reading a body when the client asks for it.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How long each kind of waiting may last.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A connection with no request bytes.
    pub idle: Duration,
    /// A request head from its first byte to its end, and a request body between bytes.
    pub head: Duration,
    /// A response that cannot make progress.
    pub send: Duration,
}

/// What a connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The next request; the connection closes quietly at the deadline.
    Idle,
    /// The rest of a request (head or body); 408 at the deadline.
    Head,
    /// Room to write; the connection closes at the deadline.
    Send,
    /// The end of the client's input before closing; closes at the deadline.
    Linger,
}

/// What a connection waits for, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub wait: Wait,
    pub at: Instant,
}

/// What a connection needs once its owner stops driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Bytes from the client (its next request, the rest of one, or the end of its input).
    Read,
    /// Room in the socket's send buffer.
    Write,
    /// Nothing: the connection is over; close it (see [`Conn::close`]).
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
    /// The socket failed: a reset, a broken pipe.
    Reset,
    /// The response said `Connection: close` (HTTP/1.0, `Connection: close`, or the
    /// per-connection request limit).
    Done,
    /// The request was refused with an error status.
    BadRequest,
    /// No request within the keep-alive time.
    IdleTimeout,
    /// A request that did not arrive in time.
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
            CloseReason::Reset => "reset",
            CloseReason::Done => "connection: close",
            CloseReason::BadRequest => "bad request",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::HeadTimeout => "request timeout",
            CloseReason::SendTimeout => "send timeout",
            CloseReason::FileShrank => "file shrank while sending",
            CloseReason::LingerDone => "closed after lingering",
            CloseReason::Panic => "panic while answering",
            CloseReason::Shutdown => "server shutdown",
        })
    }
}

/// Where a connection is in its life; replaced whole on every transition.
#[derive(Debug)]
enum Phase {
    /// Between requests: nothing of the next one has arrived since `since`.
    Idle { since: Instant },
    /// Part of a request head has arrived, the first byte at `started`.
    Head { started: Instant },
    /// The head at the front of the input announced a body, read and discarded before the
    /// head is answered.
    Body {
        discard: Discard,
        /// The request's first byte.
        started: Instant,
        /// The last time body bytes arrived: a body is timed by its progress.
        progress: Instant,
    },
    /// Responses being written.
    Writing {
        out: Box<Output>,
        /// The last time bytes left.
        progress: Instant,
        then: Then,
    },
    /// The last response is out and the write side shut: the client's input is read and
    /// discarded until it ends or [`LINGER`] has passed `since`.
    Lingering { reason: CloseReason, since: Instant },
}

impl Phase {
    /// The output to queue responses into: the one being written, or a fresh one.
    fn writing(&mut self, bufs: &mut Buffers) -> &mut Output {
        if !matches!(self, Phase::Writing { .. }) {
            *self = Phase::Writing {
                out: bufs.output(),
                progress: Instant::now(),
                then: Then::Read,
            };
        }
        match self {
            Phase::Writing { out, .. } => out,
            // Made just above.
            _ => unreachable!("the phase was set to Writing"),
        }
    }

    /// Sets what follows the responses being written.
    fn then(&mut self, next: Then) {
        if let Phase::Writing { then, .. } = self {
            *then = next;
        }
    }

    /// Records the response the handler just appended to the output, from `mark` on.
    fn queued(
        &mut self,
        mark: usize,
        answer: Answer,
        line: String,
        started: Instant,
        actor: Actor,
    ) {
        let Phase::Writing { out, .. } = self else {
            return;
        };
        let appended = (out.buf.len() - mark) as u64;
        // A copied body is part of what was appended; a file body follows the buffer.
        let head_len = match answer.body {
            Some(_) => appended,
            None => appended - answer.body_len,
        };
        let body_start = out.queued + head_len;
        out.queued += appended
            + answer
                .body
                .as_ref()
                .map_or(0, |body| body.end - body.offset);
        out.records.push(Record {
            line,
            status: answer.status,
            body_start,
            end: body_start + answer.body_len,
            started,
            actor,
        });
        out.body = answer.body;
    }
}

/// What follows the responses being written.
#[derive(Debug)]
enum Then {
    /// The next request, from what is buffered or yet to come.
    Read,
    /// The body of the head at the front of the input (after `100 Continue`).
    Body { discard: Discard, started: Instant },
    /// The end: closed at once, or after lingering when the client may still be sending.
    Close(CloseReason),
}

/// A body being discarded. Its head stays at the front of the input, and body bytes are
/// taken out from behind it as they arrive, so the head can be answered (or refused with
/// 413 or 400) once the whole request has been seen.
#[derive(Debug, Clone, Copy)]
struct Discard {
    head_len: usize,
    reader: BodyReader,
}

/// Request bytes; `buf[start..end]` is unparsed. Empty (no capacity) while idle.
#[derive(Debug, Default)]
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn unparsed(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

/// Responses on their way out: `buf[sent..]`, then any file body.
#[derive(Debug, Default)]
pub struct Output {
    buf: Vec<u8>,
    sent: usize,
    /// A file body to send after `buf`; nothing is queued behind it.
    body: Option<Body>,
    /// Bytes of this output written so far, body included.
    written: u64,
    /// Bytes queued so far, body included.
    queued: u64,
    /// The responses queued, oldest first; each is logged once written.
    records: Vec<Record>,
    /// How many of `records` have been logged.
    logged: usize,
    /// While the handler builds a response: where it starts in `buf`, so that a panic can
    /// be answered with 500 if nothing of it has been sent.
    answering: Option<usize>,
}

/// One response as the log will tell it.
#[derive(Debug)]
struct Record {
    /// The request line, escaped for the log (empty when the log is off).
    line: String,
    status: Status,
    /// Where its body starts and where it ends, in bytes of the output.
    body_start: u64,
    end: u64,
    /// The request's first byte.
    started: Instant,
    /// The thread that answered.
    actor: Actor,
}

impl Output {
    fn is_flushed(&self) -> bool {
        self.sent == self.buf.len() && self.body.is_none()
    }

    /// Body bytes of `record` written so far.
    fn body_sent(&self, record: &Record) -> u64 {
        self.written
            .clamp(record.body_start, record.end)
            .saturating_sub(record.body_start)
    }

    /// Logs every record whose last byte has been written.
    fn log_finished(&mut self, log: &Log, line: &mut String, peer: SocketAddr, now: Instant) {
        while let Some(record) = self.records.get(self.logged) {
            if record.end > self.written {
                break;
            }
            let sent = record.end - record.body_start;
            log_record(log, line, peer, record, sent, now, None);
            self.logged += 1;
        }
    }
}

fn log_record(
    log: &Log,
    line: &mut String,
    peer: SocketAddr,
    record: &Record,
    sent: u64,
    now: Instant,
    ended: Option<(u64, CloseReason)>,
) {
    let took = now.saturating_duration_since(record.started);
    let request = RequestLine::Escaped(&record.line);
    log.request(
        line,
        record.actor,
        peer,
        request,
        record.status.code(),
        sent,
        ended,
        took,
    );
}

/// A thread's reusable buffers, lent to the connections it drives. Outputs stay boxed, as
/// a connection holds them, so that lending one moves a pointer.
#[derive(Debug, Default)]
#[allow(clippy::vec_box)]
pub struct Buffers {
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Box<Output>>,
}

impl Buffers {
    fn input(&mut self) -> Vec<u8> {
        self.inputs.pop().unwrap_or_else(|| vec![0; MAX_HEAD])
    }

    fn output(&mut self) -> Box<Output> {
        self.outputs.pop().unwrap_or_default()
    }

    fn give_back_output(&mut self, mut out: Box<Output>) {
        if self.outputs.len() < SPARE_BUFFERS && out.buf.capacity() <= MAX_SPARE_OUTPUT {
            let (mut buf, mut records) = (
                std::mem::take(&mut out.buf),
                std::mem::take(&mut out.records),
            );
            buf.clear();
            records.clear();
            *out = Output {
                buf,
                records,
                ..Output::default()
            };
            self.outputs.push(out);
        }
    }
}

/// How a read went.
enum Filled {
    Bytes,
    Blocked,
}

/// How a write went.
enum Flushed {
    All,
    Blocked,
}

/// One client connection over a socket `S`, non-blocking or blocking with timeouts: the
/// state machine does not depend on which (see the driving rules above).
#[derive(Debug)]
pub struct Conn<S> {
    socket: S,
    peer: SocketAddr,
    id: u64,
    input: Input,
    phase: Phase,
    served: u32,
    /// Bytes written to the socket, for the shutdown summary.
    bytes_sent: u64,
    /// Whether the socket may hold bytes not yet read (see the driving rules).
    unread: bool,
    /// The peer's hang-up was reported: its end of stream only shows to a read that
    /// returns nothing, so every read is tried until then.
    hung_up: bool,
}

impl<S: AsFd> Conn<S> {
    /// A new connection, numbered `id` for the log.
    pub fn new(socket: S, peer: SocketAddr, id: u64) -> Conn<S> {
        Conn {
            socket,
            peer,
            id,
            input: Input::default(),
            phase: Phase::Idle {
                since: Instant::now(),
            },
            served: 0,
            bytes_sent: 0,
            unread: true,
            hung_up: false,
        }
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

    /// Bytes written to the socket so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Whether the socket may hold bytes not yet read: a non-blocking owner drives again
    /// rather than waiting for readiness that will not be reported.
    pub fn unread(&self) -> bool {
        self.unread
    }

    /// Tells the connection what its owner saw on the socket since it last drove it. A
    /// blocking owner says `readable` before every drive: its read waits for the bytes.
    pub fn saw(&mut self, edges: Edges) {
        self.unread |= edges.readable || edges.hangup;
        self.hung_up |= edges.hangup;
    }

    /// What the connection waits for and until when: the one place a deadline is decided.
    pub fn deadline(&self, timeouts: &Timeouts) -> Deadline {
        let (wait, at) = match &self.phase {
            Phase::Idle { since } => (Wait::Idle, *since + timeouts.idle),
            Phase::Head { started } => (Wait::Head, *started + timeouts.head),
            Phase::Body { progress, .. } => (Wait::Head, *progress + timeouts.head),
            Phase::Writing { progress, .. } => (Wait::Send, *progress + timeouts.send),
            Phase::Lingering { since, .. } => (Wait::Linger, *since + LINGER),
        };
        Deadline { wait, at }
    }

    /// Runs the connection until it must wait; see the module's driving rules.
    pub fn drive(&mut self, site: &Site, ws: &mut Workspace, bufs: &mut Buffers) -> Next {
        let next = self.step(site, ws, bufs);
        self.release(bufs);
        next
    }

    /// The deadline passed: a request still arriving is answered 408 (as far as the socket
    /// takes it) and the connection closes; any other wait simply ends it.
    pub fn expire(&mut self, site: &Site, ws: &mut Workspace, bufs: &mut Buffers) -> Next {
        let reason = match &self.phase {
            Phase::Head { .. } | Phase::Body { .. } => None,
            Phase::Idle { .. } => Some(CloseReason::IdleTimeout),
            Phase::Writing { .. } => Some(CloseReason::SendTimeout),
            Phase::Lingering { .. } => Some(CloseReason::LingerDone),
        };
        if let Some(reason) = reason {
            return Next::Close(reason);
        }
        let started = self.request_started();
        self.input = Input::default();
        self.queue_closing(
            handler::time_out,
            RequestLine::Refused("request timed out"),
            started,
            CloseReason::HeadTimeout,
            site,
            ws,
            bufs,
        );
        self.drive(site, ws, bufs)
    }

    /// Ends the connection: logs every response it had not finished sending, with the
    /// bytes that left and why it ended, and the connection's own close line.
    pub fn close(self, reason: CloseReason, log: &Log, line: &mut String, actor: Actor) {
        if let Phase::Writing { out, .. } = &self.phase {
            let now = Instant::now();
            for record in &out.records[out.logged..] {
                let sent = out.body_sent(record);
                let ended = Some((record.end - record.body_start, reason));
                log_record(log, line, self.peer, record, sent, now, ended);
            }
        }
        log.closed(line, actor, self.id, self.peer, reason, self.served);
    }

    /// After a panic while driving this connection: answer 500 in place of the response
    /// that was being built, if none of it has been sent, and close.
    pub fn recover_from_panic(
        &mut self,
        site: &Site,
        ws: &mut Workspace,
        bufs: &mut Buffers,
    ) -> Next {
        self.input = Input::default();
        let started = self.request_started();
        let phase = std::mem::replace(&mut self.phase, Phase::Idle { since: started });
        let mut out = match phase {
            Phase::Writing { out, .. } => out,
            _ => bufs.output(),
        };
        match out.answering.take() {
            Some(mark) if out.sent <= mark && out.body.is_none() => {
                out.buf.truncate(mark);
                out.queued = out.written + (out.buf.len() - out.sent) as u64;
                self.phase = Phase::Writing {
                    out,
                    progress: Instant::now(),
                    then: Then::Read,
                };
                self.queue_closing(
                    handler::fail,
                    RequestLine::Refused("panic while answering"),
                    started,
                    CloseReason::Panic,
                    site,
                    ws,
                    bufs,
                );
            }
            // Part of a response is already out: nothing valid can follow it.
            _ => {
                bufs.give_back_output(out);
                return Next::Close(CloseReason::Panic);
            }
        }
        self.drive(site, ws, bufs)
    }

    fn step(&mut self, site: &Site, ws: &mut Workspace, bufs: &mut Buffers) -> Next {
        let mut read = false;
        loop {
            if let Phase::Writing { .. } = self.phase {
                match self.flush(site, ws) {
                    Ok(Flushed::All) => {
                        if let Some(next) = self.written(bufs) {
                            return next;
                        }
                    }
                    Ok(Flushed::Blocked) => return Next::Write,
                    Err(reason) => return Next::Close(reason),
                }
            }
            if !matches!(self.phase, Phase::Lingering { .. })
                && self.answer_buffered(site, ws, bufs)
            {
                continue;
            }
            if read || !self.unread {
                return Next::Read;
            }
            if let Phase::Lingering { reason, .. } = self.phase {
                // Whatever is buffered is discarded unread; the buffer may even be full, and
                // a read into no room would look like the end of the stream.
                self.input.start = 0;
                self.input.end = 0;
                return match self.fill(ws, bufs) {
                    Ok(_) => Next::Read,
                    Err(_) => Next::Close(reason),
                };
            }
            match self.fill(ws, bufs) {
                Ok(Filled::Bytes) => read = true,
                Ok(Filled::Blocked) => return Next::Read,
                Err(reason) => return Next::Close(reason),
            }
        }
    }

    /// Everything queued has been written: moves on to what follows. `Some` when the
    /// connection must stop here.
    fn written(&mut self, bufs: &mut Buffers) -> Option<Next> {
        let now = Instant::now();
        let phase = std::mem::replace(&mut self.phase, Phase::Idle { since: now });
        let Phase::Writing { out, then, .. } = phase else {
            self.phase = phase;
            return None;
        };
        bufs.give_back_output(out);
        match then {
            Then::Read => {
                self.phase = if self.input.is_empty() {
                    Phase::Idle { since: now }
                } else {
                    Phase::Head { started: now }
                };
                None
            }
            Then::Body { discard, started } => {
                self.phase = Phase::Body {
                    discard,
                    started,
                    progress: now,
                };
                None
            }
            Then::Close(reason) => {
                // Input the client may still be sending (a refused body, pipelined
                // requests, the rest of a late request) must be drained, or closing resets
                // the connection.
                let unread_likely =
                    matches!(reason, CloseReason::BadRequest | CloseReason::HeadTimeout);
                if !unread_likely && self.input.is_empty() {
                    return Some(Next::Close(reason));
                }
                let _ = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Write);
                self.input.start = 0;
                self.input.end = 0;
                self.phase = Phase::Lingering { reason, since: now };
                None
            }
        }
    }

    /// When the request being read or answered began to arrive.
    fn request_started(&self) -> Instant {
        match &self.phase {
            Phase::Head { started } | Phase::Body { started, .. } => *started,
            Phase::Writing {
                then: Then::Body { started, .. },
                ..
            } => *started,
            _ => Instant::now(),
        }
    }

    /// Answers the complete requests at the front of the input, in order, discarding any
    /// request body first. Returns whether anything was queued for sending.
    fn answer_buffered(&mut self, site: &Site, ws: &mut Workspace, bufs: &mut Buffers) -> bool {
        let mut queued = false;
        loop {
            // Another response may join those queued only while they are small and the
            // connection goes on reading after them.
            if let Phase::Writing { out, then, .. } = &self.phase
                && !(matches!(then, Then::Read)
                    && out.body.is_none()
                    && out.buf.len() < OUTPUT_BATCH)
            {
                return queued;
            }
            if self.input.is_empty() {
                return queued;
            }
            let mut body_done = false;
            if let Phase::Body {
                mut discard,
                started,
                ..
            } = self.phase
            {
                let body_start = self.input.start + discard.head_len;
                match discard
                    .reader
                    .consume(&self.input.buf[body_start..self.input.end])
                {
                    Ok((used, done)) => {
                        self.input
                            .buf
                            .copy_within(body_start + used..self.input.end, body_start);
                        self.input.end -= used;
                        let progress = Instant::now();
                        self.phase = Phase::Body {
                            discard,
                            started,
                            progress,
                        };
                        if !done {
                            return queued;
                        }
                        body_done = true;
                    }
                    Err(error) => {
                        let error = match error {
                            BodyError::TooLarge => RequestError::BodyTooLarge,
                            BodyError::Malformed => RequestError::MalformedBody,
                        };
                        self.refuse(error, started, site, ws, bufs);
                        return true;
                    }
                }
            }
            let started = match &self.phase {
                Phase::Head { started } | Phase::Body { started, .. } => *started,
                // The rest of the input arrived with earlier requests: timed from now.
                _ => Instant::now(),
            };
            match request::parse(self.input.unparsed()) {
                Ok(Parsed::Partial) => {
                    if let Phase::Idle { .. } = self.phase {
                        self.phase = Phase::Head { started };
                    }
                    return queued;
                }
                Ok(Parsed::Complete(req)) if req.body != BodyFraming::None && !body_done => {
                    let discard = match BodyReader::new(req.body) {
                        Ok(reader) => Discard {
                            head_len: req.head_len,
                            reader,
                        },
                        Err(_) => {
                            self.refuse(RequestError::BodyTooLarge, started, site, ws, bufs);
                            return true;
                        }
                    };
                    // A client waiting for 100 Continue sends its body only after it (RFC
                    // 9110 §10.1.1); HTTP/1.0 clients cannot ask for it.
                    if req.expect_continue && req.version == Version::Http11 {
                        let out = self.phase.writing(bufs);
                        out.buf.extend_from_slice(CONTINUE);
                        out.queued += CONTINUE.len() as u64;
                        self.phase.then(Then::Body { discard, started });
                        return true;
                    }
                    if let Phase::Writing { .. } = self.phase {
                        self.phase.then(Then::Body { discard, started });
                        return queued;
                    }
                    self.phase = Phase::Body {
                        discard,
                        started,
                        progress: Instant::now(),
                    };
                }
                Ok(Parsed::Complete(req)) => {
                    let line = if site.log.enabled() {
                        RequestLine::Request {
                            method: req.method_token,
                            target: req.target,
                            version: match req.version {
                                Version::Http10 => "HTTP/1.0",
                                Version::Http11 => "HTTP/1.1",
                            },
                        }
                        .to_string()
                    } else {
                        String::new()
                    };
                    let served = self.served;
                    let out = self.phase.writing(bufs);
                    let mark = out.buf.len();
                    out.answering = Some(mark);
                    let answer = handler::answer(&req, site, ws, &mut out.buf, served);
                    out.answering = None;
                    let close = answer.fate == Fate::Close;
                    self.phase.queued(mark, answer, line, started, ws.actor);
                    self.input.start += req.head_len;
                    if self.input.is_empty() {
                        self.input.start = 0;
                        self.input.end = 0;
                    }
                    self.served += 1;
                    queued = true;
                    if close {
                        self.phase.then(Then::Close(CloseReason::Done));
                        return true;
                    }
                }
                Err(error) => {
                    self.refuse(error, started, site, ws, bufs);
                    return true;
                }
            }
        }
    }

    /// Answers a request we will not serve with its error status; the connection closes
    /// once that is sent, since what follows in the input cannot be trusted to be a request.
    fn refuse(
        &mut self,
        error: RequestError,
        started: Instant,
        site: &Site,
        ws: &mut Workspace,
        bufs: &mut Buffers,
    ) {
        self.queue_closing(
            |site, ws, out| handler::refuse(error, site, ws, out),
            RequestLine::Refused(error.message()),
            started,
            CloseReason::BadRequest,
            site,
            ws,
            bufs,
        );
    }

    /// Queues a final error response made by `answer` (behind anything already queued),
    /// after which the connection closes for `reason`.
    #[allow(clippy::too_many_arguments)]
    fn queue_closing(
        &mut self,
        answer: impl FnOnce(&Site, &mut Workspace, &mut Vec<u8>) -> Answer,
        what: RequestLine<'_>,
        started: Instant,
        reason: CloseReason,
        site: &Site,
        ws: &mut Workspace,
        bufs: &mut Buffers,
    ) {
        let line = if site.log.enabled() {
            what.to_string()
        } else {
            String::new()
        };
        let out = self.phase.writing(bufs);
        let mark = out.buf.len();
        let answer = answer(site, ws, &mut out.buf);
        self.phase.queued(mark, answer, line, started, ws.actor);
        // Answered, if not served: it counts among the connection's requests.
        self.served += 1;
        self.phase.then(Then::Close(reason));
    }

    /// Reads once into the input buffer.
    fn fill(&mut self, ws: &mut Workspace, bufs: &mut Buffers) -> Result<Filled, CloseReason> {
        let input = &mut self.input;
        if input.buf.is_empty() {
            input.buf = bufs.input();
        }
        if input.start > 0 {
            input.buf.copy_within(input.start..input.end, 0);
            input.end -= input.start;
            input.start = 0;
        }
        // The parser refuses any head that fills the buffer, so there is always room here.
        debug_assert!(input.end < input.buf.len());
        loop {
            let room = input.buf.len() - input.end;
            match rustix::net::recv(
                &self.socket,
                &mut input.buf[input.end..],
                RecvFlags::empty(),
            ) {
                Ok((0, _)) => return Err(CloseReason::PeerClosed),
                Ok((n, _)) => {
                    self.unread = n == room || self.hung_up;
                    if let Some(watcher) = &mut ws.watcher {
                        watcher.received();
                    }
                    if input.end == 0
                        && let Phase::Idle { .. } = self.phase
                    {
                        self.phase = Phase::Head {
                            started: Instant::now(),
                        };
                    }
                    input.end += n;
                    return Ok(Filled::Bytes);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => {
                    self.unread = false;
                    return Ok(Filled::Blocked);
                }
                Err(_) => return Err(CloseReason::Reset),
            }
        }
    }

    /// Writes queued output, then any file body by `sendfile`, logging each response as
    /// its last byte leaves.
    fn flush(&mut self, site: &Site, ws: &mut Workspace) -> Result<Flushed, CloseReason> {
        let Phase::Writing { out, progress, .. } = &mut self.phase else {
            return Ok(Flushed::All);
        };
        loop {
            let head = &out.buf[out.sent..];
            let written = if !head.is_empty() {
                // MSG_MORE keeps a head in the socket until the file body joins it, so the
                // two leave in one segment even with TCP_NODELAY.
                let more = if out.body.is_some() {
                    SendFlags::MORE
                } else {
                    SendFlags::empty()
                };
                let sent = rustix::net::send(&self.socket, head, SEND | more);
                if let Ok(n) = sent {
                    out.sent += n;
                }
                sent
            } else if let Some(Body { file, offset, end }) = &mut out.body {
                let count = (*end - *offset).min(SENDFILE_CHUNK) as usize;
                match rustix::fs::sendfile(&self.socket, &**file, Some(offset), count) {
                    Ok(0) => return Err(CloseReason::FileShrank),
                    other => other,
                }
            } else {
                return Ok(Flushed::All);
            };
            match written {
                Ok(n) => {
                    self.bytes_sent += n as u64;
                    out.written += n as u64;
                    let now = Instant::now();
                    *progress = now;
                    out.log_finished(&site.log, &mut ws.line, self.peer, now);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(Flushed::Blocked),
                Err(_) => return Err(CloseReason::Reset),
            }
            if out
                .body
                .as_ref()
                .is_some_and(|body| body.offset == body.end)
            {
                out.body = None;
            }
            if out.is_flushed() {
                return Ok(Flushed::All);
            }
        }
    }

    /// Gives empty buffers back, so that waiting costs no buffer.
    fn release(&mut self, bufs: &mut Buffers) {
        if self.input.is_empty() && !self.input.buf.is_empty() {
            let buf = std::mem::take(&mut self.input.buf);
            self.input = Input::default();
            if bufs.inputs.len() < SPARE_BUFFERS {
                bufs.inputs.push(buf);
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
    bufs: &mut Buffers,
    step: impl FnOnce(&mut Conn<S>, &mut Workspace, &mut Buffers) -> Next,
) -> Next {
    match panic::catch_unwind(AssertUnwindSafe(|| step(conn, ws, bufs))) {
        Ok(next) => next,
        Err(_) => {
            ws.line.clear();
            let what = format_args!("panicked while answering; answering 500 if it still can");
            site.log
                .conn(&mut ws.line, ws.actor, conn.id(), conn.peer(), what);
            panic::catch_unwind(AssertUnwindSafe(|| conn.recover_from_panic(site, ws, bufs)))
                .unwrap_or(Next::Close(CloseReason::Panic))
        }
    }
}
