//! One client thread of the load: its connections, each in a slot whose index is its mio
//! token, moved along by readiness. A connection carries one request at a time and feeds
//! each response to the test kit's reader, comparing the body as it passes.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use testkit::response::{Expect, Head, ResponseReader};

use super::{Failure, Plan, STALL_LIMIT, Tally};

/// How often each client thread looks for stalled connections.
const STALL_SWEEP: Duration = Duration::from_millis(100);
/// Pause before reopening a connection after an error, so that a server refusing
/// connections costs a bounded number of attempts instead of a busy loop.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// Readiness events taken per poll.
const EVENT_CAPACITY: usize = 1024;
/// Per-thread read buffer: large enough that a 2 MiB body takes a few dozen reads.
const READ_BUFFER: usize = 256 * 1024;

/// One client thread's connections and what they counted.
pub struct Client<'p> {
    plan: &'p Plan<'p>,
    poll: Poll,
    /// `None` while the slot waits in `paused` to reconnect.
    slots: Vec<Option<Conn>>,
    /// Slots to reopen, in the order their pauses end (all pauses are equally long).
    paused: VecDeque<(Instant, usize)>,
    buffer: Vec<u8>,
    tally: Tally,
}

impl<'p> Client<'p> {
    /// Drives `connections` connections until the plan's end and returns them, still open.
    pub fn run(plan: &'p Plan<'p>, connections: usize) -> Client<'p> {
        let mut client = Client {
            plan,
            poll: Poll::new().expect("create a mio Poll"),
            slots: (0..connections).map(|_| None).collect(),
            paused: VecDeque::new(),
            buffer: vec![0; READ_BUFFER],
            tally: Tally::new(),
        };
        client.drive_all();
        client
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    fn drive_all(&mut self) {
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        for slot in 0..self.slots.len() {
            self.reopen(slot);
        }
        let mut next_sweep = Instant::now() + STALL_SWEEP;
        loop {
            let now = Instant::now();
            if now >= self.plan.end {
                break;
            }
            if now >= next_sweep {
                self.fail_stalled(now);
                next_sweep = now + STALL_SWEEP;
            }
            self.resume_paused(now);
            let wake = self.next_wake(next_sweep);
            match self
                .poll
                .poll(&mut events, Some(wake.saturating_duration_since(now)))
            {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    eprintln!("[bench] poll failed, ending this client early: {err}");
                    break;
                }
            }
            for event in &events {
                self.drive(event.token().0);
            }
        }
    }

    /// The earliest of the run's end, the next stall sweep and the next reconnection.
    fn next_wake(&self, next_sweep: Instant) -> Instant {
        let wake = self.plan.end.min(next_sweep);
        self.paused.front().map_or(wake, |&(at, _)| wake.min(at))
    }

    /// Moves the slot's connection as far as its socket allows.
    fn drive(&mut self, slot: usize) {
        // A slot without a connection got an event its old socket left behind.
        let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut io = Io {
            plan: self.plan,
            buffer: &mut self.buffer,
            tally: &mut self.tally,
        };
        match conn.advance(&mut io) {
            Ok(Advance::Waiting) => {}
            Ok(Advance::Closed) => self.reopen(slot),
            Err(failure) => self.fail(slot, &failure),
        }
    }

    fn reopen(&mut self, slot: usize) {
        match Conn::open(self.plan.addr, self.poll.registry(), Token(slot)) {
            Ok(conn) => self.slots[slot] = Some(conn),
            Err(err) => self.fail(slot, &Failure::Connect(err.kind())),
        }
    }

    /// Counts the error, closes the connection and reopens it after a short pause.
    fn fail(&mut self, slot: usize, failure: &Failure) {
        self.tally.error(failure);
        self.slots[slot] = None;
        self.paused.push_back((Instant::now() + RETRY_PAUSE, slot));
    }

    fn resume_paused(&mut self, now: Instant) {
        while let Some(&(at, slot)) = self.paused.front() {
            if at > now {
                break;
            }
            self.paused.pop_front();
            self.reopen(slot);
        }
    }

    fn fail_stalled(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            if let Some(conn) = &self.slots[slot]
                && now.duration_since(conn.progress) > STALL_LIMIT
            {
                self.fail(slot, &Failure::Stalled);
            }
        }
    }
}

/// What a connection needs from its client thread while it runs.
struct Io<'a> {
    plan: &'a Plan<'a>,
    buffer: &'a mut [u8],
    tally: &'a mut Tally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The non-blocking connect is in progress.
    Connecting,
    Writing,
    Reading,
    /// The response is complete and the server is to close: read to the end.
    Draining,
}

/// What `Conn::advance` leaves the connection doing.
enum Advance {
    /// Waiting for its socket to be ready.
    Waiting,
    /// Closed cleanly after its last response: open another.
    Closed,
}

/// What one step of a phase did.
enum Step {
    /// The phase changed: go on with the new one.
    Continue,
    /// The socket would block.
    Wait,
    Closed,
}

/// One client connection, carrying one request at a time.
struct Conn {
    stream: TcpStream,
    phase: Phase,
    reader: ResponseReader,
    /// Body bytes of the current response received so far.
    received: usize,
    /// Bytes of the current request written so far.
    written: usize,
    /// When the current request began to be written: latency starts here.
    started: Instant,
    /// When the connection last moved a byte (or began connecting), for stalls.
    progress: Instant,
}

impl Conn {
    /// Starts a non-blocking connect; the connection is ready once it is writable.
    fn open(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<Conn> {
        let mut stream = TcpStream::connect(addr)?;
        // One write per request already; this keeps Nagle from ever delaying one.
        stream.set_nodelay(true)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let now = Instant::now();
        Ok(Conn {
            stream,
            phase: Phase::Connecting,
            reader: ResponseReader::new(Expect::Body),
            received: 0,
            written: 0,
            started: now,
            progress: now,
        })
    }

    /// Runs phases until the socket would block (readiness is edge-triggered, so stopping
    /// earlier could wait forever) or the connection closes.
    fn advance(&mut self, io: &mut Io<'_>) -> Result<Advance, Failure> {
        loop {
            let step = match self.phase {
                Phase::Connecting => self.finish_connect()?,
                Phase::Writing => self.write(&io.plan.request)?,
                Phase::Reading => self.read(io)?,
                Phase::Draining => self.drain(io.buffer)?,
            };
            match step {
                Step::Continue => {}
                Step::Wait => return Ok(Advance::Waiting),
                Step::Closed => return Ok(Advance::Closed),
            }
        }
    }

    fn begin_request(&mut self) {
        let now = Instant::now();
        self.phase = Phase::Writing;
        self.reader.reset(Expect::Body);
        self.received = 0;
        self.written = 0;
        self.started = now;
        self.progress = now;
    }

    /// A writable (or error) event after `connect`: connected, refused, or spurious.
    fn finish_connect(&mut self) -> Result<Step, Failure> {
        if let Some(err) = self
            .stream
            .take_error()
            .map_err(|err| Failure::Io(err.kind()))?
        {
            return Err(Failure::Connect(err.kind()));
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.begin_request();
                Ok(Step::Continue)
            }
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(Step::Wait),
            Err(err) => Err(Failure::Connect(err.kind())),
        }
    }

    fn write(&mut self, request: &[u8]) -> Result<Step, Failure> {
        while self.written < request.len() {
            match self.stream.write(&request[self.written..]) {
                Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.written += n;
                    self.progress = Instant::now();
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Wait),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Failure::Io(err.kind())),
            }
        }
        self.phase = Phase::Reading;
        Ok(Step::Continue)
    }

    fn read(&mut self, io: &mut Io<'_>) -> Result<Step, Failure> {
        let plan = io.plan;
        loop {
            let n = match self.stream.read(io.buffer) {
                Ok(0) => return Err(Failure::Eof),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Wait),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(Failure::Io(err.kind())),
            };
            let now = Instant::now();
            self.progress = now;
            let bytes = &io.buffer[..n];
            let fed = self.reader.feed(bytes).map_err(Failure::Response)?;
            let head = self.reader.head();
            if fed.head_done {
                check_head(head.expect("a done head"), plan.expected.len())?;
            }
            if !plan
                .expected
                .matches(self.received, &bytes[fed.body.clone()])
            {
                return Err(Failure::Mismatch);
            }
            self.received += fed.body.len();
            if fed.complete {
                // The client never has more than one request outstanding.
                if fed.used < n {
                    return Err(Failure::ExtraBytes);
                }
                io.tally.record(self.started, now, plan.measure_from);
                if head.is_some_and(|head| head.close) || plan.close_each {
                    self.phase = Phase::Draining;
                } else {
                    self.begin_request();
                }
                return Ok(Step::Continue);
            }
        }
    }

    /// After a response that ends the connection: anything but the end is an error.
    fn drain(&mut self, buffer: &mut [u8]) -> Result<Step, Failure> {
        loop {
            match self.stream.read(buffer) {
                Ok(0) => return Ok(Step::Closed),
                Ok(_) => return Err(Failure::ExtraBytes),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Wait),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Failure::Io(err.kind())),
            }
        }
    }
}

/// A head that counts: status 200 and the file's length.
fn check_head(head: &Head, length: usize) -> Result<(), Failure> {
    if head.status != 200 {
        return Err(Failure::Status(head.status));
    }
    if head.content_length != Some(length as u64) {
        return Err(Failure::Length);
    }
    Ok(())
}
