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
use crate::log::{Actor, Entry, Said};

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
    /// Closed while waiting for its next request, the longest-idle connection, to admit a
    /// new one at the connection or descriptor limit (as nginx reuses idle keep-alive
    /// connections when it runs out).
    Evicted,
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
            CloseReason::Evicted => "evicted for a new connection",
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
    fn queued(&mut self, mark: usize, answer: Answer, said: Said, started: Instant, actor: Actor) {
        let Phase::Writing { out, .. } = self else {
            return;
        };
        let appended = (out.buf.len() - mark) as u64;
        // The body may be partly behind the head already (copied, or a multipart body's
        // first framing); the rest follows from the file.
        let head_len = appended - answer.copied;
        let body_start = out.queued + head_len;
        out.queued = body_start + answer.body_len;
        out.records.push(Record {
            said,
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

    /// Drops the empty lines a client may send before a request line (RFC 9112 §2.2 says
    /// to ignore them), so that they neither start a request nor hold its timer.
    fn skip_empty_lines(&mut self) {
        let unparsed = self.unparsed();
        let mut skip = 0;
        loop {
            match &unparsed[skip..] {
                [b'\n', ..] => skip += 1,
                [b'\r', b'\n', ..] => skip += 2,
                _ => break,
            }
        }
        self.start += skip;
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether a request has begun to arrive: anything but the first half of an empty line.
    fn request_begun(&self) -> bool {
        !self.is_empty() && self.unparsed() != b"\r"
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
    /// What the log says of the request (nothing when the log is off).
    said: Said,
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

    /// The file range being sent is done: the next part of a multipart body goes out
    /// behind its framing, or after the last the closing framing; a plain body is over.
    fn next_part(&mut self) {
        let Some(body) = &mut self.body else {
            return;
        };
        let Some(more) = &mut body.more else {
            self.body = None;
            return;
        };
        // Only a fully written buffer lets the file's bytes go, so it is empty here.
        self.buf.clear();
        self.sent = 0;
        match more.parts.next() {
            Some((framing, start, end)) => {
                self.buf.extend_from_slice(&framing);
                (body.offset, body.end) = (start, end);
            }
            None => {
                self.buf.extend_from_slice(&more.close);
                self.body = None;
            }
        }
    }

    /// Body bytes of `record` written so far.
    fn body_sent(&self, record: &Record) -> u64 {
        self.written
            .clamp(record.body_start, record.end)
            .saturating_sub(record.body_start)
    }

    /// Logs (and counts) every record whose last byte has been written.
    fn log_finished(
        &mut self,
        site: &Site,
        line: &mut String,
        conn: (u64, SocketAddr),
        now: Instant,
    ) {
        while let Some(record) = self.records.get(self.logged) {
            if record.end > self.written {
                break;
            }
            let sent = record.end - record.body_start;
            finished(site, line, conn, record, sent, now, None);
            self.logged += 1;
        }
    }
}

/// A response is over: logs and counts it, with `sent` body bytes written, and if it was
/// cut short, the body's length and why.
fn finished(
    site: &Site,
    line: &mut String,
    (conn, peer): (u64, SocketAddr),
    record: &Record,
    sent: u64,
    now: Instant,
    ended: Option<(u64, CloseReason)>,
) {
    let took = now.saturating_duration_since(record.started);
    if let Some(stats) = &site.stats {
        let index = match record.actor {
            Actor::Worker(index) => index,
            _ => 0,
        };
        stats.record(index, sent, took);
    }
    let log = &site.log;
    if !log.enabled() {
        return;
    }
    let why = ended.map(|(_, reason)| reason.to_string());
    let entry = Entry {
        actor: record.actor,
        conn,
        peer,
        said: &record.said,
        status: record.status.code(),
        sent,
        ended: ended.zip(why.as_deref()).map(|((of, _), why)| (of, why)),
        took,
    };
    log.request(line, &entry);
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

    /// Since when the connection has waited for its next request (or its first), if that
    /// is what it waits for: such a connection holds nothing of a request, so it is the
    /// one closed to make room, the longest-idle first.
    pub fn idle_since(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle { since } => Some(since),
            _ => None,
        }
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
            "request timed out",
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
    pub fn close(self, reason: CloseReason, site: &Site, line: &mut String, actor: Actor) {
        if let Phase::Writing { out, .. } = &self.phase {
            let now = Instant::now();
            for record in &out.records[out.logged..] {
                let sent = out.body_sent(record);
                let ended = Some((record.end - record.body_start, reason));
                finished(site, line, (self.id, self.peer), record, sent, now, ended);
            }
        }
        site.log
            .closed(line, actor, self.id, self.peer, reason, self.served);
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
                    "panic while answering",
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
                self.input.skip_empty_lines();
                self.phase = if self.input.request_begun() {
                    Phase::Head { started: now }
                } else {
                    Phase::Idle { since: now }
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
                progress,
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
                        // A body is timed from the last bytes of it that arrived.
                        let progress = if used > 0 { Instant::now() } else { progress };
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
            if !body_done {
                self.input.skip_empty_lines();
                if !self.input.request_begun() {
                    return queued;
                }
            }
            let started = match &self.phase {
                Phase::Head { started } | Phase::Body { started, .. } => *started,
                // The rest of the input arrived with earlier requests, or this one has just
                // begun: timed from now.
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
                    let said = if site.log.enabled() {
                        let version = match req.version {
                            Version::Http10 => "HTTP/1.0",
                            Version::Http11 => "HTTP/1.1",
                        };
                        Said::request(
                            req.method_token,
                            req.target,
                            version,
                            req.user_agent,
                            req.referer,
                        )
                    } else {
                        Said::default()
                    };
                    let served = self.served;
                    let out = self.phase.writing(bufs);
                    let mark = out.buf.len();
                    out.answering = Some(mark);
                    let answer = handler::answer(&req, site, ws, &mut out.buf, served);
                    out.answering = None;
                    let close = answer.fate == Fate::Close;
                    self.phase.queued(mark, answer, said, started, ws.actor);
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
            error.message(),
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
        what: &'static str,
        started: Instant,
        reason: CloseReason,
        site: &Site,
        ws: &mut Workspace,
        bufs: &mut Buffers,
    ) {
        let said = if site.log.enabled() {
            Said::refused(what)
        } else {
            Said::default()
        };
        let out = self.phase.writing(bufs);
        let mark = out.buf.len();
        let answer = answer(site, ws, &mut out.buf);
        self.phase.queued(mark, answer, said, started, ws.actor);
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
            } else if let Some(Body {
                file, offset, end, ..
            }) = &mut out.body
            {
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
                    out.log_finished(site, &mut ws.line, (self.id, self.peer), now);
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
                out.next_part();
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

#[cfg(test)]
mod tests {
    //! `Conn` over `UnixStream::pair()`: the server end is driven here the way each owner
    //! drives it, and everything is checked on the client end: status lines, headers, body
    //! bytes, and what `drive` says it waits for. Nothing sleeps: after a `drive` returns,
    //! whatever it wrote is already in the client's receive queue, and every client read
    //! has a timeout so that a missing response fails the test instead of hanging it.

    use std::io::{ErrorKind, Read, Write};
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;

    use rustix::io::Errno;

    use super::*;
    use crate::files::DocRoot;
    use crate::http::request::MAX_REQUEST_LINE;
    use crate::log::Log;
    use crate::pages::ErrorPages;

    /// Long enough never to pass during a test: deadlines are checked, never waited for.
    const TIMEOUTS: Timeouts = Timeouts {
        idle: Duration::from_secs(60),
        head: Duration::from_secs(30),
        send: Duration::from_secs(45),
    };

    /// How long a client read waits before the test fails rather than hangs.
    const CLIENT_WAIT: Duration = Duration::from_secs(5);

    /// Thread mode: the longest a server read blocks. The thread model sets the read
    /// timeout to what is left of the deadline and simply drives again when it wakes
    /// early, so a shorter one changes nothing but how long a test waits for bytes that
    /// will not come.
    const THREAD_READ_WAIT: Duration = Duration::from_millis(100);

    /// Thread mode: how long a blocking send waits for room, standing in for the send
    /// timeout. Without it a full socket would stall the test's only thread for good,
    /// since the client reads on that same thread; with it a full socket shows as
    /// `Next::Write`, as it does in the pool model.
    const THREAD_SEND_WAIT: Duration = Duration::from_millis(1);

    /// A file kept in memory and copied behind its head.
    const SMALL: &str = "small.txt";
    /// The largest file still copied (see `cache::BYTES_MAX`).
    const MEDIUM: &str = "medium.bin";
    const MEDIUM_LEN: usize = crate::cache::BYTES_MAX as usize;
    /// A file sent with `sendfile`.
    const LARGE: &str = "large.bin";
    const LARGE_LEN: usize = 40_000;
    /// Far larger than a Unix socket's send buffer (about 200 KiB by default).
    const HUGE: &str = "huge.bin";
    const HUGE_LEN: usize = 4 << 20;

    /// How the server end of the pair is driven.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        /// Non-blocking, driven like a pool worker: on an edge, drive, and drive again
        /// while the connection may hold unread bytes.
        Pool,
        /// Blocking with timeouts, driven like a connection's thread: set the read timeout
        /// from the deadline, say readable, drive once.
        Thread,
    }

    /// Turns each named function into two tests, `NAME::pool` and `NAME::thread`.
    macro_rules! both_modes {
        ($($name:ident),* $(,)?) => {$(
            mod $name {
                #[test]
                fn pool() {
                    super::$name(super::Mode::Pool)
                }
                #[test]
                fn thread() {
                    super::$name(super::Mode::Thread)
                }
            }
        )*};
    }

    /// Deterministic bytes that look random, so that a stretch dropped, repeated or sent
    /// out of order does not compare equal.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ seed)
            .collect()
    }

    /// A document root in its own temporary directory, and the site over it.
    struct Fixture {
        dir: tempfile::TempDir,
        site: Site,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(SMALL), b"a small file, copied\n").unwrap();
            std::fs::write(dir.path().join(MEDIUM), pattern(MEDIUM_LEN, 7)).unwrap();
            std::fs::write(dir.path().join(LARGE), pattern(LARGE_LEN, 3)).unwrap();
            let site = Site {
                root: DocRoot::open(dir.path()).unwrap(),
                pages: ErrorPages::load(None).unwrap(),
                keep_alive: Duration::from_secs(5),
                log: Log::new(true),
                fault_injection: false,
                stats: None,
                max_age: None,
                list_dirs: false,
            };
            Fixture { dir, site }
        }

        /// Adds the file too large for any socket buffer.
        fn with_huge(self) -> Fixture {
            std::fs::write(self.dir.path().join(HUGE), pattern(HUGE_LEN, 5)).unwrap();
            self
        }

        fn file(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.dir.path().join(name)).unwrap()
        }

        /// The body `want` stands for.
        fn body(&self, want: Want) -> Vec<u8> {
            match want {
                Want::File(name) => self.file(name),
                Want::Page(status) => self.site.pages.get(status).to_vec(),
                Want::Nothing => Vec::new(),
            }
        }
    }

    /// The body a response should carry.
    #[derive(Debug, Clone, Copy)]
    enum Want {
        File(&'static str),
        Page(Status),
        Nothing,
    }

    /// A response a test waits for.
    #[derive(Debug, Clone, Copy)]
    struct Expected {
        status: u16,
        body: Want,
        /// It answers HEAD: its length is announced, its body not sent.
        head_only: bool,
    }

    /// 200 with the file `name`.
    fn file(name: &'static str) -> Expected {
        Expected {
            status: 200,
            body: Want::File(name),
            head_only: false,
        }
    }

    /// `status` with its error page.
    fn page(status: Status) -> Expected {
        Expected {
            status: status.code(),
            body: Want::Page(status),
            head_only: false,
        }
    }

    /// `status` without a body (HEAD, or a status that has none).
    fn bare(status: u16, head_only: bool) -> Expected {
        Expected {
            status,
            body: Want::Nothing,
            head_only,
        }
    }

    /// What the client could read right now without waiting.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Pending {
        Nothing,
        Bytes,
        /// The server shut its side down.
        End,
    }

    /// One response as the client read it.
    #[derive(Debug)]
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn closes(&self) -> bool {
            self.header("connection") == Some("close")
        }
    }

    /// A connection over one end of a socket pair and a client on the other.
    struct Pair<'s> {
        site: &'s Site,
        mode: Mode,
        conn: Conn<UnixStream>,
        client: UnixStream,
        ws: Workspace,
        bufs: Buffers,
        /// Read by the client but not yet taken as a response.
        received: Vec<u8>,
        /// Bytes the client has read in all.
        got: u64,
    }

    impl<'s> Pair<'s> {
        fn new(site: &'s Site, mode: Mode) -> Pair<'s> {
            let (server, client) = UnixStream::pair().unwrap();
            match mode {
                Mode::Pool => server.set_nonblocking(true).unwrap(),
                Mode::Thread => {
                    server.set_read_timeout(Some(THREAD_READ_WAIT)).unwrap();
                    server.set_write_timeout(Some(THREAD_SEND_WAIT)).unwrap();
                }
            }
            client.set_read_timeout(Some(CLIENT_WAIT)).unwrap();
            client.set_write_timeout(Some(CLIENT_WAIT)).unwrap();
            let peer = SocketAddr::from(([127, 0, 0, 1], 1));
            Pair {
                site,
                mode,
                conn: Conn::new(server, peer, 1),
                client,
                ws: Workspace::new(Actor::Worker(0)),
                bufs: Buffers::default(),
                received: Vec::new(),
                got: 0,
            }
        }

        /// The client sends `bytes`.
        fn send(&mut self, bytes: &[u8]) {
            self.client.write_all(bytes).unwrap();
        }

        /// The client ends its input.
        fn end_input(&mut self) {
            self.client.shutdown(Shutdown::Write).unwrap();
        }

        /// One `drive`, nothing else.
        fn drive(&mut self) -> Next {
            self.conn.drive(self.site, &mut self.ws, &mut self.bufs)
        }

        /// What the owner does once the socket shows `edges`.
        fn react(&mut self, edges: Edges) -> Next {
            match self.mode {
                Mode::Pool => {
                    self.conn.saw(edges);
                    let mut next = self.drive();
                    while next == Next::Read && self.conn.unread() {
                        next = self.drive();
                    }
                    next
                }
                Mode::Thread => {
                    let deadline = self.conn.deadline(&TIMEOUTS);
                    if deadline.wait != Wait::Send {
                        let left = deadline.at.saturating_duration_since(Instant::now());
                        let left = left.clamp(Duration::from_millis(1), THREAD_READ_WAIT);
                        self.conn.socket().set_read_timeout(Some(left)).unwrap();
                    }
                    self.conn.saw(READABLE);
                    self.drive()
                }
            }
        }

        /// After the client sent something.
        fn readable(&mut self) -> Next {
            self.react(READABLE)
        }

        /// After the client made room by reading.
        fn writable(&mut self) -> Next {
            self.react(Edges {
                writable: true,
                ..Edges::default()
            })
        }

        fn expire(&mut self) -> Next {
            self.conn.expire(self.site, &mut self.ws, &mut self.bufs)
        }

        fn deadline(&self) -> Deadline {
            self.conn.deadline(&TIMEOUTS)
        }

        fn wait(&self) -> Wait {
            self.deadline().wait
        }

        /// One read of at most `max` bytes; 0 at the end of the stream.
        fn read_some(&mut self, max: usize) -> usize {
            let mut buf = vec![0; max];
            let n = match self.client.read(&mut buf) {
                Ok(n) => n,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("the client waited {CLIENT_WAIT:?} for bytes that never came")
                }
                Err(err) => panic!("client read: {err}"),
            };
            self.received.extend_from_slice(&buf[..n]);
            self.got += n as u64;
            n
        }

        /// Reads the next response; `head_only` when it answers HEAD.
        fn response(&mut self, head_only: bool) -> Response {
            let (status, headers, head_len) = loop {
                let mut fields = [httparse::EMPTY_HEADER; 32];
                let mut parsed = httparse::Response::new(&mut fields);
                match parsed.parse(&self.received) {
                    Ok(httparse::Status::Complete(len)) => {
                        let headers = parsed
                            .headers
                            .iter()
                            .map(|f| {
                                let value = String::from_utf8_lossy(f.value).into_owned();
                                (f.name.to_string(), value)
                            })
                            .collect::<Vec<_>>();
                        break (parsed.code.unwrap(), headers, len);
                    }
                    Ok(httparse::Status::Partial) => {
                        let what = String::from_utf8_lossy(&self.received).into_owned();
                        assert!(
                            self.read_some(64 * 1024) > 0,
                            "ended within a head: {what:?}"
                        );
                    }
                    Err(err) => panic!("bad response head ({err}): {:?}", self.received),
                }
            };
            let mut response = Response {
                status,
                headers,
                body: Vec::new(),
            };
            let bodiless = head_only || matches!(status, 100..=199 | 204 | 304);
            let len = match response.header("content-length") {
                Some(len) if !bodiless => len.parse::<usize>().unwrap(),
                _ => 0,
            };
            while self.received.len() < head_len + len {
                let have = self.received.len() - head_len;
                assert!(
                    self.read_some(256 * 1024) > 0,
                    "ended {have} bytes into a {len}-byte body"
                );
            }
            response.body = self.received[head_len..head_len + len].to_vec();
            self.received.drain(..head_len + len);
            response
        }

        /// Reads the next response and checks its status and body.
        fn expect(&mut self, fixture: &Fixture, expected: Expected) -> Response {
            let response = self.response(expected.head_only);
            assert_eq!(response.status, expected.status, "{response:?}");
            let body = fixture.body(expected.body);
            assert!(response.body == body, "the body of {expected:?}");
            response
        }

        /// Reads whatever the socket holds, without waiting for more.
        fn read_available(&mut self) {
            while self.unread_by_client() == Pending::Bytes {
                self.read_some(256 * 1024);
            }
        }

        /// What the client could read now.
        fn pending(&self) -> Pending {
            if !self.received.is_empty() {
                return Pending::Bytes;
            }
            self.unread_by_client()
        }

        /// What the socket holds for the client.
        fn unread_by_client(&self) -> Pending {
            let mut byte = [0];
            let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
            match rustix::net::recv(&self.client, &mut byte, flags) {
                Ok((0, _)) => Pending::End,
                Ok(_) => Pending::Bytes,
                Err(Errno::AGAIN) => Pending::Nothing,
                Err(err) => panic!("client peek: {err}"),
            }
        }
    }

    const READABLE: Edges = Edges {
        readable: true,
        writable: false,
        hangup: false,
    };

    /// How a connection goes on after the response being checked.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum After {
        /// It waits for the next request.
        Idle,
        /// It has shut its write side and drains the client's input, then closes.
        Linger(CloseReason),
        /// It is over at once.
        Close(CloseReason),
    }

    /// Checks that the connection goes on as `after` says, given what the last drive
    /// returned, and takes it to its end.
    fn finish(pair: &mut Pair<'_>, next: Next, after: After) {
        match after {
            After::Idle => {
                assert_eq!(next, Next::Read);
                assert_eq!(pair.wait(), Wait::Idle);
                assert_eq!(pair.pending(), Pending::Nothing, "answered more than once");
                pair.end_input();
                assert_eq!(pair.readable(), Next::Close(CloseReason::PeerClosed));
            }
            After::Linger(reason) => {
                assert_eq!(next, Next::Read);
                assert_eq!(pair.wait(), Wait::Linger);
                assert_eq!(pair.pending(), Pending::End, "the write side is still open");
                // Whatever else the client sends is read and dropped, unanswered.
                pair.send(&[b'x'; 1000]);
                assert_eq!(pair.readable(), Next::Read);
                assert_eq!(pair.wait(), Wait::Linger);
                pair.end_input();
                assert_eq!(pair.readable(), Next::Close(reason));
                assert_eq!(pair.pending(), Pending::End);
            }
            After::Close(reason) => {
                assert_eq!(next, Next::Close(reason));
                assert_eq!(pair.pending(), Pending::Nothing, "answered more than once");
            }
        }
        assert_eq!(
            pair.conn.bytes_sent(),
            pair.got,
            "bytes sent and received differ"
        );
    }

    /// Sends the first `whole` of `bytes` in one write and the rest one byte at a time,
    /// driving after each write, and checks that nothing is answered and the connection
    /// waits for the rest of a request until the last byte; returns what the drive after
    /// the last byte returned.
    fn feed_bytewise(pair: &mut Pair<'_>, bytes: &[u8], whole: usize) -> Next {
        let served = pair.conn.served();
        let (last, most) = bytes.split_last().unwrap();
        let (first, most) = most.split_at(whole);
        if !first.is_empty() {
            pair.send(first);
            assert_eq!(pair.readable(), Next::Read);
            assert_eq!(pair.wait(), Wait::Head);
            assert_eq!(pair.pending(), Pending::Nothing, "answered early");
        }
        for (i, byte) in (whole..).zip(most) {
            pair.send(&[*byte]);
            let next = pair.readable();
            assert_eq!(next, Next::Read, "after byte {i}");
            assert_eq!(pair.wait(), Wait::Head, "after byte {i}");
            assert_eq!(pair.pending(), Pending::Nothing, "answered at byte {i}");
            assert_eq!(pair.conn.served(), served, "after byte {i}");
        }
        pair.send(&[*last]);
        pair.readable()
    }

    fn get(target: &str) -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
    }

    fn head(target: &str) -> Vec<u8> {
        format!("HEAD {target} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
    }

    /// A request whose head is refused when its limit is crossed: a request line one byte
    /// over `MAX_REQUEST_LINE` without its end, or a head of `MAX_HEAD` bytes.
    fn oversized(line: bool) -> Vec<u8> {
        if line {
            let mut request = b"GET /".to_vec();
            request.resize(MAX_REQUEST_LINE + 1, b'a');
            return request;
        }
        let mut request = b"GET / HTTP/1.1\r\nHost: test\r\n".to_vec();
        let mut n = 0;
        while request.len() < MAX_HEAD {
            request.extend_from_slice(format!("X-Pad-{n}: ").as_bytes());
            request.extend_from_slice(&[b'p'; 2000]);
            request.extend_from_slice(b"\r\n");
            n += 1;
        }
        request.truncate(MAX_HEAD);
        request
    }

    /// A request head fed one byte per drive is answered once, at its last byte (for a
    /// refused head: at the byte that makes it wrong, or crosses a limit).
    fn heads_fed_byte_at_a_time_are_answered_once_at_their_last_byte(mode: Mode) {
        let fixture = Fixture::new();
        let refused = After::Linger(CloseReason::BadRequest);
        let done = After::Close(CloseReason::Done);
        #[rustfmt::skip]
        let table: [(&str, Vec<u8>, Expected, After); 13] = [
            ("small file, copied", get("/small.txt"), file(SMALL), After::Idle),
            ("large file, sendfile", get("/large.bin"), file(LARGE), After::Idle),
            ("HEAD", head("/large.bin"), bare(200, true), After::Idle),
            ("missing file", get("/missing.txt"), page(Status::NotFound), After::Idle),
            ("HTTP/1.0 closes", b"GET /small.txt HTTP/1.0\r\n\r\n".to_vec(), file(SMALL), done),
            ("connection: close",
                b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
                file(SMALL), done),
            ("missing Host, known at the end", b"GET / HTTP/1.1\r\n\r\n".to_vec(),
                page(Status::BadRequest), refused),
            ("space in a field name", b"GET / HTTP/1.1\r\nHo ".to_vec(), page(Status::BadRequest),
                refused),
            ("HTTP/1.2", b"GET / HTTP/1.2".to_vec(), page(Status::VersionNotSupported), refused),
            ("HTTP/2, known at its major digit", b"GET / HTTP/2".to_vec(),
                page(Status::VersionNotSupported), refused),
            ("unknown transfer coding",
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
                page(Status::NotImplemented), refused),
            ("request line too long", oversized(true), page(Status::UriTooLong), refused),
            ("head too large", oversized(false), page(Status::HeaderFieldsTooLarge), refused),
        ];
        for (name, request, expected, after) in table {
            let mut pair = Pair::new(&fixture.site, mode);
            // Re-parsing a head of many kilobytes after every byte costs seconds; the end
            // of an oversized head is what matters, and its first bytes go in one write.
            let whole = request.len().saturating_sub(64);
            let whole = if whole > 1024 { whole } else { 0 };
            let next = feed_bytewise(&mut pair, &request, whole);
            let response = pair.expect(&fixture, expected);
            assert_eq!(pair.conn.served(), 1, "{name}");
            assert_eq!(
                response.closes(),
                after != After::Idle,
                "{name}: {response:?}"
            );
            if expected.head_only {
                let length = LARGE_LEN.to_string();
                assert_eq!(
                    response.header("content-length"),
                    Some(&length[..]),
                    "{name}"
                );
            }
            finish(&mut pair, next, after);
        }
    }

    /// How a request is cut into writes.
    #[derive(Debug, Clone, Copy)]
    enum Cut {
        Whole,
        /// The head, then the body.
        HeadThenBody,
        /// In the middle.
        Halves,
        /// One byte per write.
        Bytes,
    }

    /// Where `bytes` are cut for `cut`: the end of each write.
    fn cut_ends(bytes: &[u8], cut: Cut) -> Vec<usize> {
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        match cut {
            Cut::Whole => vec![bytes.len()],
            Cut::HeadThenBody => vec![head_end, bytes.len()],
            Cut::Halves => vec![bytes.len() / 2, bytes.len()],
            Cut::Bytes => (1..=bytes.len()).collect(),
        }
    }

    /// A request with `framing` fields and `body` behind them.
    fn with_body(request_line: &str, framing: &str, body: &str) -> Vec<u8> {
        format!("{request_line}\r\nHost: test\r\n{framing}\r\n{body}").into_bytes()
    }

    /// `Content-Length` for `body`.
    fn length_of(body: &str) -> String {
        format!("Content-Length: {}\r\n", body.len())
    }

    const CHUNKED: &str = "Transfer-Encoding: chunked\r\n";

    /// A body, however it arrives, is read and dropped before its request is answered,
    /// and the next request on the connection parses.
    fn bodies_in_pieces_are_discarded_and_the_next_request_parses(mode: Mode) {
        let fixture = Fixture::new();
        let post = "POST /small.txt HTTP/1.1";
        let not_allowed = page(Status::MethodNotAllowed);
        let smuggled = "GET /missing.txt HTTP/1.1\r\nHost: x\r\n\r\n";
        let chunks = "3;name=v\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: y\r\n\r\n";
        #[rustfmt::skip]
        let table: [(&str, Vec<u8>, Expected); 6] = [
            ("length", with_body(post, &length_of("0123456789"), "0123456789"), not_allowed),
            ("GET with a body",
                with_body("GET /small.txt HTTP/1.1", &length_of("hello"), "hello"), file(SMALL)),
            ("OPTIONS with a body", with_body("OPTIONS * HTTP/1.1", &length_of("abc"), "abc"),
                bare(204, false)),
            ("chunked", with_body(post, CHUNKED, "5\r\nhello\r\n0\r\n\r\n"), not_allowed),
            ("chunked, extension and trailer", with_body(post, CHUNKED, chunks), not_allowed),
            ("a body that looks like a request", with_body(post, &length_of(smuggled), smuggled),
                not_allowed),
        ];
        for (name, request, expected) in &table {
            for cut in [Cut::Whole, Cut::HeadThenBody, Cut::Halves, Cut::Bytes] {
                let mut pair = Pair::new(&fixture.site, mode);
                let ends = cut_ends(request, cut);
                let mut start = 0;
                let mut next = Next::Read;
                for (i, &end) in ends.iter().enumerate() {
                    pair.send(&request[start..end]);
                    start = end;
                    next = pair.readable();
                    if i + 1 < ends.len() {
                        assert_eq!(next, Next::Read, "{name}, {cut:?}, write {i}");
                        assert_eq!(pair.wait(), Wait::Head, "{name}, {cut:?}, write {i}");
                        let pending = pair.pending();
                        assert_eq!(pending, Pending::Nothing, "{name}, {cut:?}: early");
                    }
                }
                assert_eq!(next, Next::Read, "{name}, {cut:?}");
                let response = pair.expect(&fixture, *expected);
                assert!(!response.closes(), "{name}, {cut:?}: {response:?}");
                assert_eq!(pair.wait(), Wait::Idle, "{name}, {cut:?}");
                pair.send(&get("/small.txt"));
                let next = pair.readable();
                pair.expect(&fixture, file(SMALL));
                assert_eq!(pair.conn.served(), 2, "{name}, {cut:?}");
                finish(&mut pair, next, After::Idle);
            }
        }
    }

    /// A client that asks for `100 Continue` gets it before its body is read, and the
    /// final response once the body is in; a client that cannot ask, or need not wait,
    /// gets no interim response.
    fn expect_100_continue_comes_before_the_body_is_read(mode: Mode) {
        let fixture = Fixture::new();
        let expect = "Expect: 100-continue\r\n";
        let post = "POST /small.txt HTTP/1.1";
        let not_allowed = page(Status::MethodNotAllowed);
        let chunks = "5\r\nhello\r\n0\r\n\r\n";
        /// Name, head, body, whether `100 Continue` comes, the response, what follows.
        type Row<'a> = (&'a str, Vec<u8>, &'a str, bool, Expected, After);
        #[rustfmt::skip]
        let table: [Row; 5] = [
            ("length", with_body(post, &format!("{expect}{}", length_of("hello")), ""), "hello",
                true, not_allowed, After::Idle),
            ("chunked", with_body(post, &format!("{expect}{CHUNKED}"), ""), chunks, true,
                not_allowed, After::Idle),
            ("GET with a body",
                with_body("GET /small.txt HTTP/1.1", &format!("{expect}{}", length_of("hello")), ""),
                "hello", true, file(SMALL), After::Idle),
            ("HTTP/1.0 cannot ask",
                with_body("POST /small.txt HTTP/1.0", &format!("{expect}{}", length_of("hello")), ""),
                "hello", false, not_allowed, After::Close(CloseReason::Done)),
            ("no body to wait for", with_body("GET /small.txt HTTP/1.1", expect, ""), "", false,
                file(SMALL), After::Idle),
        ];
        for (name, head, body, interim, expected, after) in table {
            let mut pair = Pair::new(&fixture.site, mode);
            pair.send(&head);
            let mut next = pair.readable();
            if interim {
                assert_eq!(next, Next::Read, "{name}");
                let mut got = [0; CONTINUE.len()];
                pair.client.read_exact(&mut got).unwrap();
                pair.got += got.len() as u64;
                assert_eq!(&got[..], CONTINUE, "{name}");
            }
            if !body.is_empty() {
                assert_eq!(next, Next::Read, "{name}");
                assert_eq!(pair.wait(), Wait::Head, "{name}: waits for the body");
                assert_eq!(pair.pending(), Pending::Nothing, "{name}: answered early");
                next = feed_bytewise(&mut pair, body.as_bytes(), 0);
            }
            pair.expect(&fixture, expected);
            assert_eq!(pair.conn.served(), 1, "{name}");
            finish(&mut pair, next, after);
        }
    }

    /// A body we will not read (too large, or framed wrongly) is refused once its head or
    /// the offending byte is in, and the connection drains the client's input before
    /// closing, so that the refusal is not lost to a reset.
    fn refused_bodies_are_answered_then_the_connection_lingers(mode: Mode) {
        let fixture = Fixture::new();
        let post = "POST /small.txt HTTP/1.1";
        let max = crate::http::body::MAX_BODY;
        let too_long = format!("Content-Length: {}\r\n", max + 1);
        let too_large = page(Status::ContentTooLarge);
        let bad = page(Status::BadRequest);
        #[rustfmt::skip]
        let table: [(&str, Vec<u8>, Expected); 5] = [
            ("length over the limit", with_body(post, &too_long, ""), too_large),
            ("length over the limit, expecting 100",
                with_body(post, &format!("Expect: 100-continue\r\n{too_long}"), ""), too_large),
            ("chunk over the limit", with_body(post, CHUNKED, &format!("{:x}\r\n", max + 1)),
                too_large),
            ("chunk size not hex", with_body(post, CHUNKED, "5\r\nhello\r\nz"), bad),
            ("length and chunked", with_body(post, &format!("{CHUNKED}{}", length_of("hello")), ""),
                bad),
        ];
        for (name, request, expected) in table {
            let mut pair = Pair::new(&fixture.site, mode);
            let start = Instant::now();
            let next = feed_bytewise(&mut pair, &request, 0);
            let refused = Instant::now();
            let response = pair.expect(&fixture, expected);
            assert!(response.closes(), "{name}: {response:?}");
            assert_eq!(pair.conn.served(), 1, "{name}");
            let lingering = pair.deadline().at;
            let from = start + LINGER..=refused + LINGER;
            assert!(
                from.contains(&lingering),
                "{name}: lingers from the refusal"
            );
            finish(&mut pair, next, After::Linger(CloseReason::BadRequest));
        }
    }

    /// Requests written back to back, with the responses they get.
    fn pipeline(requests: &[(Vec<u8>, Expected)]) -> Vec<u8> {
        requests
            .iter()
            .flat_map(|(r, _)| r.iter().copied())
            .collect()
    }

    /// Several requests in one write are answered in order, each once.
    fn pipelined_requests_are_answered_in_order(mode: Mode) {
        let fixture = Fixture::new();
        let post = "POST /small.txt HTTP/1.1";
        let requests = [
            (get("/small.txt"), file(SMALL)),
            (head("/large.bin"), bare(200, true)),
            (get("/missing.txt"), page(Status::NotFound)),
            // A file body ends a batch; the requests behind it wait for it to be sent.
            (get("/large.bin"), file(LARGE)),
            (with_body("OPTIONS * HTTP/1.1", "", ""), bare(204, false)),
            (
                with_body(post, &length_of("hello"), "hello"),
                page(Status::MethodNotAllowed),
            ),
            (get("/medium.bin"), file(MEDIUM)),
            (
                with_body(post, CHUNKED, "5\r\nhello\r\n0\r\n\r\n"),
                page(Status::MethodNotAllowed),
            ),
            (get("/small.txt"), file(SMALL)),
        ];
        let mut pair = Pair::new(&fixture.site, mode);
        pair.send(&pipeline(&requests));
        let next = pair.readable();
        for (i, (_, expected)) in requests.iter().enumerate() {
            let response = pair.expect(&fixture, *expected);
            assert!(!response.closes(), "response {i}: {response:?}");
        }
        assert_eq!(pair.conn.served(), requests.len() as u32);
        finish(&mut pair, next, After::Idle);
    }

    /// Pipelines cut at every byte boundary, and three requests also at two boundaries,
    /// are answered exactly once each, in order.
    fn pipelines_split_anywhere_are_answered_once_each(mode: Mode) {
        let fixture = Fixture::new();
        let post = "POST /small.txt HTTP/1.1";
        let not_allowed = page(Status::MethodNotAllowed);
        let table = [
            vec![
                (get("/small.txt"), file(SMALL)),
                (
                    with_body(post, CHUNKED, "3\r\nabc\r\n0\r\n\r\n"),
                    not_allowed,
                ),
            ],
            vec![
                (get("/small.txt"), file(SMALL)),
                (with_body(post, &length_of("hello"), "hello"), not_allowed),
                (head("/large.bin"), bare(200, true)),
            ],
        ];
        for requests in &table {
            let bytes = pipeline(requests);
            let len = bytes.len();
            let mut cuts: Vec<Vec<usize>> = (1..len).map(|i| vec![i, len]).collect();
            if requests.len() == 3 {
                // Every pair would be ten thousand connections; the first cut every few
                // bytes still lands in each part of each request.
                for i in (1..len).step_by(7) {
                    cuts.extend((i + 1..len).map(|j| vec![i, j, len]));
                }
            }
            for ends in cuts {
                let mut pair = Pair::new(&fixture.site, mode);
                let mut start = 0;
                for &end in &ends {
                    pair.send(&bytes[start..end]);
                    start = end;
                    assert_eq!(pair.readable(), Next::Read, "cut at {ends:?}");
                }
                for (_, expected) in requests {
                    pair.expect(&fixture, *expected);
                }
                assert_eq!(pair.conn.served(), requests.len() as u32, "cut at {ends:?}");
                assert_eq!(pair.wait(), Wait::Idle, "cut at {ends:?}");
                assert_eq!(pair.pending(), Pending::Nothing, "cut at {ends:?}");
                assert_eq!(pair.conn.bytes_sent(), pair.got, "cut at {ends:?}");
            }
        }
    }

    /// A response that says `Connection: close` is the last: nothing behind it in the
    /// pipeline is answered, and input still buffered is drained before the close.
    fn a_close_in_a_pipeline_is_the_last_answer(mode: Mode) {
        let fixture = Fixture::new();
        let closing = b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec();
        let old = b"GET /small.txt HTTP/1.0\r\n\r\n".to_vec();
        let done = CloseReason::Done;
        #[rustfmt::skip]
        let table: [(&str, Vec<Vec<u8>>, usize, After); 4] = [
            ("close in the middle", vec![get("/small.txt"), closing.clone(), get("/large.bin")],
                2, After::Linger(done)),
            ("close last in its write", vec![get("/small.txt"), closing.clone()], 2,
                After::Close(done)),
            ("HTTP/1.0 first", vec![old, get("/small.txt")], 1, After::Linger(done)),
            ("close, then a partial head", vec![closing, b"GET /lar".to_vec()], 1,
                After::Linger(done)),
        ];
        for (name, requests, answered, after) in table {
            let mut pair = Pair::new(&fixture.site, mode);
            pair.send(&requests.concat());
            let next = pair.readable();
            for i in 0..answered {
                let response = pair.expect(&fixture, file(SMALL));
                assert_eq!(response.closes(), i + 1 == answered, "{name}: {response:?}");
            }
            assert_eq!(pair.conn.served(), answered as u32, "{name}");
            finish(&mut pair, next, after);
        }
    }

    /// Most client reads while a response is blocked: each makes some room, so a response
    /// that needs more has stopped making progress.
    const MAX_ROUNDS: usize = 10_000;

    /// Responses larger than the room in the socket are written as the client makes room,
    /// byte for byte, and the requests pipelined behind them are answered after them.
    fn responses_larger_than_the_socket_buffer_are_written_as_room_appears(mode: Mode) {
        let fixture = Fixture::new().with_huge();
        // More than one batch of output (`OUTPUT_BATCH`), all of it copied.
        let mut copied: Vec<_> = (0..6).map(|_| (get("/medium.bin"), file(MEDIUM))).collect();
        copied.push((get("/small.txt"), file(SMALL)));
        let behind = (get("/small.txt"), file(SMALL));
        /// Name, requests and their responses, the server's send buffer.
        type Row<'a> = (&'a str, Vec<(Vec<u8>, Expected)>, Option<usize>);
        #[rustfmt::skip]
        let table: [Row; 3] = [
            ("4 MiB by sendfile", vec![(get("/huge.bin"), file(HUGE)), behind.clone()], None),
            ("sendfile, small send buffer", vec![(get("/large.bin"), file(LARGE)), behind],
                Some(4096)),
            ("copied bodies, small send buffer", copied, Some(4096)),
        ];
        for (name, requests, send_buffer) in table {
            let mut pair = Pair::new(&fixture.site, mode);
            if let Some(size) = send_buffer {
                rustix::net::sockopt::set_socket_send_buffer_size(pair.conn.socket(), size)
                    .unwrap();
            }
            let start = Instant::now();
            pair.send(&pipeline(&requests));
            assert_eq!(pair.readable(), Next::Write, "{name}");
            let deadline = pair.deadline();
            assert_eq!(deadline.wait, Wait::Send, "{name}");
            let from = start + TIMEOUTS.send..=Instant::now() + TIMEOUTS.send;
            assert!(from.contains(&deadline.at), "{name}: {deadline:?}");
            // A file body ends a batch: nothing behind it is answered until it is out.
            let batch_ends = !matches!(requests[0].1.body, Want::File(MEDIUM));
            let first_body = fixture.body(requests[0].1.body).len() as u64;
            // No room, no progress, and no harm in being asked again.
            let sent = pair.conn.bytes_sent();
            assert_eq!(pair.writable(), Next::Write, "{name}");
            assert_eq!(pair.conn.bytes_sent(), sent, "{name}");
            let mut next = Next::Write;
            for _ in 0..MAX_ROUNDS {
                if batch_ends && pair.conn.bytes_sent() < first_body {
                    assert_eq!(pair.conn.served(), 1, "{name}: answered behind a file");
                }
                assert!(pair.read_some(256 * 1024) > 0, "{name}");
                next = pair.writable();
                assert!(pair.conn.bytes_sent() >= pair.got, "{name}");
                if next != Next::Write {
                    break;
                }
                assert_eq!(pair.wait(), Wait::Send, "{name}");
            }
            assert_eq!(next, Next::Read, "{name}: never finished");
            assert_eq!(pair.wait(), Wait::Idle, "{name}");
            for (_, expected) in &requests {
                pair.expect(&fixture, *expected);
            }
            assert_eq!(pair.conn.served(), requests.len() as u32, "{name}");
            finish(&mut pair, next, After::Idle);
        }
    }

    /// A file that shrinks while it is sent cannot complete its response: the connection
    /// ends, having sent only bytes of the file as it was.
    fn a_file_that_shrinks_while_sent_ends_the_connection(mode: Mode) {
        const KEPT: usize = 1 << 20;
        let fixture = Fixture::new().with_huge();
        let mut pair = Pair::new(&fixture.site, mode);
        pair.send(&get("/huge.bin"));
        assert_eq!(pair.readable(), Next::Write);
        let path = fixture.dir.path().join(HUGE);
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(KEPT as u64).unwrap();
        let mut next = Next::Write;
        for _ in 0..MAX_ROUNDS {
            assert!(pair.read_some(256 * 1024) > 0);
            next = pair.writable();
            if next != Next::Write {
                break;
            }
        }
        assert_eq!(next, Next::Close(CloseReason::FileShrank));
        pair.read_available();
        let head_end = pair.received.windows(4).position(|w| w == b"\r\n\r\n");
        let body = &pair.received[head_end.unwrap() + 4..];
        assert!(body.len() < HUGE_LEN, "{} bytes of the body", body.len());
        // Below the new end the file is as it was; above it, bytes already queued may
        // have been read before or after the truncation.
        let whole = pattern(HUGE_LEN, 5);
        let checked = body.len().min(KEPT);
        assert!(
            body[..checked] == whole[..checked],
            "bytes that were never the file's"
        );
        assert_eq!(pair.conn.bytes_sent(), pair.got);
    }

    /// What a deadline is counted from.
    #[derive(Debug, Clone, Copy)]
    enum Counted {
        /// This write (or the drive after it), plus the given timeout.
        FromNow(Duration),
        /// The same instant as after the step before.
        AsBefore,
    }

    /// The deadline follows the phase: idle from the last response, a head from its first
    /// byte however many follow, a body from its last bytes.
    fn deadlines_follow_the_phase(mode: Mode) {
        let fixture = Fixture::new();
        let (head, idle) = (TIMEOUTS.head, TIMEOUTS.idle);
        let created = Instant::now();
        let mut pair = Pair::new(&fixture.site, mode);
        let deadline = pair.deadline();
        assert_eq!(deadline.wait, Wait::Idle);
        let range = created + idle..=Instant::now() + idle;
        assert!(
            range.contains(&deadline.at),
            "a new connection: {deadline:?}"
        );
        #[rustfmt::skip]
        let table: [(&str, &[u8], Wait, Counted, usize); 15] = [
            // Empty lines before a request are ignored (RFC 9112 §2.2): still idle, and
            // the idle timer runs on from the connection's start.
            ("empty lines first", b"\r\n\n", Wait::Idle, Counted::AsBefore, 0),
            ("first byte", b"G", Wait::Head, Counted::FromNow(head), 0),
            ("more of the head", b"ET /small.txt HTTP/1.1\r\n", Wait::Head, Counted::AsBefore, 0),
            ("a field", b"Host: t\r\n", Wait::Head, Counted::AsBefore, 0),
            ("its end", b"\r\n", Wait::Idle, Counted::FromNow(idle), 1),
            ("a request and the start of the next",
                b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\nGE", Wait::Head, Counted::FromNow(head), 1),
            ("more of that head", b"T /small.txt HTTP/1.1\r\n", Wait::Head, Counted::AsBefore, 0),
            ("its end and some body", b"Host: t\r\nContent-Length: 4\r\n\r\nab", Wait::Head,
                Counted::FromNow(head), 0),
            ("more body", b"c", Wait::Head, Counted::FromNow(head), 0),
            // Regression: a drive that found no body bytes moved the body's deadline on.
            ("a drive with no new bytes", b"", Wait::Head, Counted::AsBefore, 0),
            ("the end of the body", b"d", Wait::Idle, Counted::FromNow(idle), 1),
            ("an empty line after it", b"\r\n", Wait::Idle, Counted::AsBefore, 0),
            ("half of another", b"\r", Wait::Idle, Counted::AsBefore, 0),
            ("its other half and a bare one", b"\n\n", Wait::Idle, Counted::AsBefore, 0),
            ("a request with one behind it",
                b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n\r\n", Wait::Idle,
                Counted::FromNow(idle), 1),
        ];
        let mut last = deadline;
        for (name, bytes, wait, counted, answered) in table {
            let before = Instant::now();
            pair.send(bytes);
            assert_eq!(pair.readable(), Next::Read, "{name}");
            let after = Instant::now();
            let deadline = pair.deadline();
            assert_eq!(deadline.wait, wait, "{name}");
            match counted {
                Counted::FromNow(timeout) => {
                    let range = before + timeout..=after + timeout;
                    assert!(range.contains(&deadline.at), "{name}: {deadline:?}");
                }
                Counted::AsBefore => assert_eq!(deadline.at, last.at, "{name}"),
            }
            for _ in 0..answered {
                pair.expect(&fixture, file(SMALL));
            }
            assert_eq!(pair.pending(), Pending::Nothing, "{name}");
            last = deadline;
        }
        finish(&mut pair, Next::Read, After::Idle);
    }

    /// How a connection ends when its deadline passes.
    #[derive(Debug, Clone, Copy)]
    enum Expiry {
        /// A request still arriving is answered 408, and the connection lingers.
        Answered,
        /// Anything else simply ends.
        Closed(CloseReason),
    }

    /// Each phase ends as its deadline says: a request still arriving gets 408 and a
    /// lingering close; an idle, stuck or lingering connection just closes.
    fn expiry_ends_each_phase_as_it_should(mode: Mode) {
        let fixture = Fixture::new().with_huge();
        let post = "POST /small.txt HTTP/1.1";
        let expect = format!("Expect: 100-continue\r\n{}", length_of("hello"));
        let interim = bare(100, false);
        #[rustfmt::skip]
        let table: [(&str, Vec<u8>, Vec<Expected>, Expiry); 7] = [
            ("new", Vec::new(), vec![], Expiry::Closed(CloseReason::IdleTimeout)),
            ("idle after a response", get("/small.txt"), vec![file(SMALL)],
                Expiry::Closed(CloseReason::IdleTimeout)),
            ("partial head", b"GET /small.txt HTTP/1.1\r\nHo".to_vec(), vec![], Expiry::Answered),
            ("partial body", with_body(post, &length_of("0123456789"), "012"), vec![],
                Expiry::Answered),
            ("body after 100 Continue", with_body(post, &expect, ""), vec![interim],
                Expiry::Answered),
            ("a response the client does not read", get("/huge.bin"), vec![],
                Expiry::Closed(CloseReason::SendTimeout)),
            ("lingering", b"GET / HTTP/1.1\r\n\r\n".to_vec(), vec![page(Status::BadRequest)],
                Expiry::Closed(CloseReason::LingerDone)),
        ];
        for (name, sent, first, expiry) in table {
            let mut pair = Pair::new(&fixture.site, mode);
            if !sent.is_empty() {
                pair.send(&sent);
                pair.readable();
            }
            for expected in &first {
                pair.expect(&fixture, *expected);
            }
            let served = pair.conn.served();
            let next = pair.expire();
            match expiry {
                Expiry::Answered => {
                    let response = pair.expect(&fixture, page(Status::RequestTimeout));
                    assert!(response.closes(), "{name}: {response:?}");
                    assert_eq!(pair.conn.served(), served + 1, "{name}");
                    finish(&mut pair, next, After::Linger(CloseReason::HeadTimeout));
                }
                Expiry::Closed(reason) => {
                    assert_eq!(next, Next::Close(reason), "{name}");
                    assert_eq!(pair.conn.served(), served, "{name}");
                    if reason == CloseReason::IdleTimeout {
                        assert_eq!(pair.pending(), Pending::Nothing, "{name}");
                    }
                }
            }
        }
    }

    /// A request of exactly `len` bytes (at least 64).
    fn padded(target: &str, len: usize) -> Vec<u8> {
        let mut request = format!("GET {target} HTTP/1.1\r\nHost: t\r\nX-Pad: ").into_bytes();
        request.resize(len - 4, b'p');
        request.extend_from_slice(b"\r\n\r\n");
        request
    }

    /// After a read that came back short the socket is known to be empty: the connection
    /// does not read again until an edge says there is more. After a read that filled the
    /// input buffer, or once the peer has hung up, it may have more and reads again.
    fn a_short_read_is_not_repeated_until_an_edge(mode: Mode) {
        let fixture = Fixture::new();
        // Sixteen of these fill the input buffer exactly; the seventeenth stays behind.
        let requests = MAX_HEAD / 1024 + 1;
        let filling = padded("/small.txt", 1024).repeat(requests);
        let hangup = Edges {
            hangup: true,
            ..READABLE
        };
        let closed = Next::Close(CloseReason::PeerClosed);
        /// Name, bytes sent, edges seen; after one drive: whether the socket may hold
        /// more, requests answered; then what the next drive returns, requests answered.
        type Row<'a> = (&'a str, Vec<u8>, Edges, bool, usize, Next, usize);
        #[rustfmt::skip]
        let table: [Row; 3] = [
            ("short read", get("/small.txt"), READABLE, false, 1, Next::Read, 1),
            ("read that fills the buffer", filling, READABLE, true, requests - 1, Next::Read,
                requests),
            ("short read after a hang-up", get("/small.txt"), hangup, true, 1, closed, 1),
        ];
        for (name, sent, edges, unread, served, then, finally) in table {
            let mut pair = Pair::new(&fixture.site, mode);
            assert!(
                pair.conn.unread(),
                "{name}: a new connection may have bytes"
            );
            pair.send(&sent);
            if edges.hangup {
                pair.end_input();
            }
            pair.conn.saw(edges);
            assert_eq!(pair.drive(), Next::Read, "{name}");
            assert_eq!(pair.conn.unread(), unread, "{name}");
            assert_eq!(pair.conn.served() as usize, served, "{name}");
            // The next drive, with no edge seen in between.
            assert_eq!(pair.drive(), then, "{name}");
            assert_eq!(pair.conn.served() as usize, finally, "{name}");
            for _ in 0..finally {
                pair.expect(&fixture, file(SMALL));
            }
            assert_eq!(pair.conn.bytes_sent(), pair.got, "{name}");
        }

        // Bytes that come after a short read wait for their edge.
        let mut pair = Pair::new(&fixture.site, mode);
        pair.send(&get("/small.txt"));
        pair.conn.saw(READABLE);
        assert_eq!(pair.drive(), Next::Read);
        pair.expect(&fixture, file(SMALL));
        assert!(!pair.conn.unread());
        pair.send(b"GET /sm");
        assert_eq!(pair.drive(), Next::Read);
        assert_eq!(pair.wait(), Wait::Idle, "read without an edge");
        pair.conn.saw(READABLE);
        assert!(pair.conn.unread());
        assert_eq!(pair.drive(), Next::Read);
        assert_eq!(pair.wait(), Wait::Head, "not read after the edge");
        assert!(!pair.conn.unread());
        pair.send(b"all.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        pair.conn.saw(READABLE);
        let next = pair.drive();
        pair.expect(&fixture, file(SMALL));
        finish(&mut pair, next, After::Idle);
    }

    both_modes!(
        heads_fed_byte_at_a_time_are_answered_once_at_their_last_byte,
        bodies_in_pieces_are_discarded_and_the_next_request_parses,
        expect_100_continue_comes_before_the_body_is_read,
        refused_bodies_are_answered_then_the_connection_lingers,
        pipelined_requests_are_answered_in_order,
        pipelines_split_anywhere_are_answered_once_each,
        a_close_in_a_pipeline_is_the_last_answer,
        responses_larger_than_the_socket_buffer_are_written_as_room_appears,
        a_file_that_shrinks_while_sent_ends_the_connection,
        deadlines_follow_the_phase,
        expiry_ends_each_phase_as_it_should,
        a_short_read_is_not_repeated_until_an_edge,
    );
}
