//! The measured load: event-driven clients that keep every connection busy with one
//! request at a time and check every response with the test kit's strict reader.

mod conn;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use testkit::response::ResponseError;

use crate::docroot::Expected;
use crate::options::Timing;

/// Load-generating threads: the machine has two cores, and more client threads would only
/// take CPU time from the server being measured.
const CLIENT_THREADS: usize = 2;
/// A response that makes no progress this long counts as an error and its connection is
/// reopened.
pub const STALL_LIMIT: Duration = Duration::from_secs(5);
/// Latency histogram range and precision: 1 µs to 60 s, three significant digits.
const LATENCY_CEILING_US: u64 = 60_000_000;
const LATENCY_SIGFIGS: u8 = 3;

/// Why a response did not count.
#[derive(Debug)]
pub enum Failure {
    Connect(io::ErrorKind),
    Io(io::ErrorKind),
    /// The server closed before the response was complete.
    Eof,
    Status(u16),
    /// A `Content-Length` other than the file's length.
    Length,
    /// Not a correct response, as the strict reader sees it.
    Response(ResponseError),
    Mismatch,
    /// Bytes after the response, which asked for nothing more.
    ExtraBytes,
    Stalled,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(kind) => write!(f, "connect: {kind}"),
            Failure::Io(kind) => write!(f, "{kind}"),
            Failure::Eof => write!(f, "closed mid-response"),
            Failure::Status(code) => write!(f, "status {code}"),
            Failure::Length => write!(f, "wrong Content-Length"),
            Failure::Response(err) => write!(f, "{err}"),
            Failure::Mismatch => write!(f, "body mismatch"),
            Failure::ExtraBytes => write!(f, "bytes after the response"),
            Failure::Stalled => write!(f, "stalled > {} s", STALL_LIMIT.as_secs()),
        }
    }
}

/// What one run (or one client thread) counted.
pub struct Tally {
    /// Latency of every correct response in the measured window, in microseconds.
    pub latency: Histogram<u64>,
    pub responses: u64,
    /// Errors by kind, over the whole run: an error during warm-up is still an error.
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: Histogram::new_with_bounds(1, LATENCY_CEILING_US, LATENCY_SIGFIGS)
                .expect("valid histogram bounds"),
            responses: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Counts a correct response that finished at `now`, unless still warming up.
    fn record(&mut self, started: Instant, now: Instant, measure_from: Instant) {
        if now < measure_from {
            return;
        }
        self.responses += 1;
        let micros = u64::try_from(now.duration_since(started).as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros);
    }

    fn error(&mut self, failure: &Failure) {
        *self.errors.entry(failure.to_string()).or_default() += 1;
    }

    fn merge(&mut self, other: &Tally) {
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds add up");
        self.responses += other.responses;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
    }
}

/// What every connection of a run does, and when the run's phases end.
pub struct Plan<'a> {
    addr: SocketAddr,
    request: Vec<u8>,
    expected: &'a Expected,
    /// Each request asks for `Connection: close`: read to the end, then reconnect.
    close_each: bool,
    /// Responses finishing before this are warm-up.
    measure_from: Instant,
    end: Instant,
}

impl<'a> Plan<'a> {
    /// A plan whose warm-up starts now.
    pub fn new(
        addr: SocketAddr,
        request: Vec<u8>,
        expected: &'a Expected,
        close_each: bool,
        timing: Timing,
    ) -> Plan<'a> {
        let measure_from = Instant::now() + timing.warmup;
        Plan {
            addr,
            request,
            expected,
            close_each,
            measure_from,
            end: measure_from + timing.measure,
        }
    }

    /// The measured window: responses finishing in it are counted.
    pub fn window(&self) -> Range<Instant> {
        self.measure_from..self.end
    }
}

/// Runs `connections` connections until the plan's end, shared among the client threads,
/// while `during` runs on this thread, and adds up what they counted. The clients keep
/// their connections open until `during` has returned, so that it can look at the server
/// at the end of the window before they close.
pub fn run<T>(plan: &Plan<'_>, connections: usize, during: impl FnOnce() -> T) -> (Tally, T) {
    let threads = CLIENT_THREADS.min(connections).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                // An even split, the first threads taking one more if it is uneven.
                let share = connections / threads + usize::from(index < connections % threads);
                std::thread::Builder::new()
                    .name(format!("client-{index}"))
                    .spawn_scoped(scope, move || conn::Client::run(plan, share))
                    .expect("spawn a client thread")
            })
            .collect();
        let seen = during();
        let mut total = Tally::new();
        let mut clients = Vec::with_capacity(handles.len());
        for handle in handles {
            match handle.join() {
                Ok(client) => {
                    total.merge(client.tally());
                    clients.push(client);
                }
                Err(_) => eprintln!("[bench] a client thread panicked"),
            }
        }
        // Closes every connection.
        drop(clients);
        (total, seen)
    })
}
