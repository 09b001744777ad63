//! Connections that weigh on the server during a run without being measured: idle
//! keep-alive connections, and slow readers of the 2 MiB file.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use testkit::client::Client;

use crate::docroot::{DocRoot, File};
use crate::endpoint::Endpoint;
use crate::scenarios::Background;

/// Idle connections opened and sent their request before their responses are read, so
/// that setting up thousands of them takes a round trip per batch rather than per
/// connection.
const IDLE_BATCH: usize = 250;
/// Longest the whole idle set-up may take; fewer idle connections are used after it.
const IDLE_SETUP_DEADLINE: Duration = Duration::from_secs(60);
/// Idle connections closed again when the server stops answering new ones (it holds all
/// it may), so that the measured connections find room.
const ROOM_FOR_LOAD: usize = 64;
/// Each slow reader takes at most this much per period: 160 KiB/s, a hundredth of what a
/// fast client takes, so that what it asked for lasts far longer than any run.
const SLOW_CHUNK: usize = 16 * 1024;
const SLOW_PERIOD: Duration = Duration::from_millis(100);
/// Requests of `big.bin` each slow reader sends at once (the last with `Connection:
/// close`). Linux lets a loopback socket's send buffer grow to 4 MiB (`tcp_wmem`), which
/// swallows one 2 MiB response whole: the server would be done with the connection at
/// once. 8 MiB outstanding keeps it holding every slow connection for the whole run.
const SLOW_PIPELINE: usize = 4;
/// A slow reader's receive buffer. Without a cap, loopback autotuning would let megabytes
/// sit in the client's buffer and the server would never see a slow reader at all.
const SLOW_RECV_BUFFER: usize = 16 * 1024;
/// Bound on every blocking operation of the set-up code.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A scenario's background connections, open until [`Running::finish`].
pub enum Running {
    None,
    Idle(Vec<Client>),
    Slow(SlowReaders),
}

impl Running {
    pub fn start(background: Background, endpoint: &Endpoint, root: &DocRoot) -> Running {
        match background {
            Background::None => Running::None,
            Background::Idle(count) => Running::Idle(open_idle(endpoint, root, count)),
            Background::SlowReaders(count) => Running::Slow(SlowReaders::start(endpoint, count)),
        }
    }

    /// How many background connections are open: for the report.
    pub fn open(&self) -> Option<usize> {
        match self {
            Running::None => None,
            Running::Idle(connections) => Some(connections.len()),
            Running::Slow(readers) => Some(readers.open),
        }
    }

    /// Closes every background connection (before the server is asked to stop, so that it
    /// has nothing left to wait for).
    pub fn finish(self) {
        match self {
            Running::None | Running::Idle(_) => {}
            Running::Slow(readers) => readers.finish(),
        }
    }
}

/// Why a set-up request got no correct response.
pub enum SetupFailure {
    /// No answer within [`IO_TIMEOUT`].
    TimedOut,
    Wrong(String),
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupFailure::TimedOut => write!(f, "no answer within {IO_TIMEOUT:?}"),
            SetupFailure::Wrong(why) => f.write_str(why),
        }
    }
}

/// One correct response to a request for the small file, read on a blocking client;
/// `Ok(true)` if the server closes the connection after it.
pub fn small_response(client: &mut Client, root: &DocRoot) -> Result<bool, SetupFailure> {
    let response = client.response().map_err(|err| match err {
        err if err.timed_out() => SetupFailure::TimedOut,
        err => SetupFailure::Wrong(err.to_string()),
    })?;
    let expected = root.expected(File::Small);
    let (status, len) = (response.status, response.body.len());
    if status != 200 || len != expected.len() || !expected.matches(0, &response.body) {
        let why = format!("status {status}, {len} bytes, not the small file");
        return Err(SetupFailure::Wrong(why));
    }
    Ok(response.close)
}

/// Opens `count` keep-alive connections that each complete one request, in batches. Stops
/// early, and closes a few again, when the server holds all the connections it may.
fn open_idle(endpoint: &Endpoint, root: &DocRoot, count: usize) -> Vec<Client> {
    let started = Instant::now();
    let deadline = started + IDLE_SETUP_DEADLINE;
    let request = endpoint.request(File::Small, false);
    let (mut idle, mut failed, mut full) = (Vec::with_capacity(count), 0, false);
    while idle.len() + failed < count && !full && Instant::now() < deadline {
        let batch = IDLE_BATCH.min(count - idle.len() - failed);
        let sent: Vec<Client> = (0..batch)
            .filter_map(|_| {
                let mut client = Client::connect(endpoint.addr, IO_TIMEOUT).ok()?;
                client.send(&request).ok().map(|()| client)
            })
            .collect();
        failed += batch - sent.len();
        for mut client in sent {
            // Past the server's limit, connections wait in its accept queue unanswered;
            // the rest of the batch would wait as long.
            if full {
                break;
            }
            match small_response(&mut client, root) {
                Ok(false) => idle.push(client),
                Ok(true) => failed += 1,
                Err(why) => {
                    full = matches!(why, SetupFailure::TimedOut);
                    failed += 1;
                }
            }
        }
    }
    if full {
        idle.truncate(idle.len().saturating_sub(ROOM_FOR_LOAD));
    }
    eprintln!(
        "[bench]   {} of {count} idle connections open in {:.1} s{}{}",
        idle.len(),
        started.elapsed().as_secs_f64(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        },
        if full {
            " (the server took no more)"
        } else {
            ""
        },
    );
    idle
}

/// Connections that each take [`SLOW_CHUNK`] of `big.bin` every [`SLOW_PERIOD`], all
/// served by one helper thread.
pub struct SlowReaders {
    stop: Sender<()>,
    thread: JoinHandle<SlowStats>,
    open: usize,
}

#[derive(Default)]
struct SlowStats {
    bytes: u64,
    /// Connections reopened after ending (a complete response) or failing.
    reopened: u64,
}

impl SlowReaders {
    /// Opens every reader before returning, so that they all weigh on the run.
    fn start(endpoint: &Endpoint, count: usize) -> SlowReaders {
        // Each reader asks for the file several times at once, the last time asking the
        // server to close, and reconnects when it has read everything.
        let mut request = endpoint.request(File::Big, false).repeat(SLOW_PIPELINE - 1);
        request.extend(endpoint.request(File::Big, true));
        let readers: Vec<Option<TcpStream>> = (0..count)
            .map(|_| slow_connect(endpoint.addr, &request).ok())
            .collect();
        let open = readers.iter().flatten().count();
        eprintln!("[bench]   {open} of {count} slow readers open");
        let (stop, stopped) = mpsc::channel();
        let addr = endpoint.addr;
        let thread = std::thread::Builder::new()
            .name("slow-readers".to_string())
            .spawn(move || {
                let mut readers = readers;
                let mut stats = SlowStats::default();
                let mut buffer = vec![0; SLOW_CHUNK];
                let mut tick = Instant::now();
                loop {
                    for slot in &mut readers {
                        sip_or_reopen(slot, addr, &request, &mut buffer, &mut stats);
                    }
                    tick += SLOW_PERIOD;
                    let wait = tick.saturating_duration_since(Instant::now());
                    if stopped.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                        return stats;
                    }
                }
            })
            .expect("spawn the slow-reader thread");
        SlowReaders { stop, thread, open }
    }

    fn finish(self) {
        drop(self.stop);
        match self.thread.join() {
            Ok(stats) => eprintln!(
                "[bench]   slow readers took {:.1} MiB, reopened {} times",
                stats.bytes as f64 / (1024.0 * 1024.0),
                stats.reopened
            ),
            Err(_) => eprintln!("[bench] the slow-reader thread panicked"),
        }
    }
}

/// One reader's turn: take up to a chunk without waiting, or reopen a finished one.
fn sip_or_reopen(
    slot: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &[u8],
    buffer: &mut [u8],
    stats: &mut SlowStats,
) {
    let Some(stream) = slot else {
        *slot = slow_connect(addr, request).ok();
        stats.reopened += 1;
        return;
    };
    let mut taken = 0;
    while taken < buffer.len() {
        match stream.read(&mut buffer[taken..]) {
            Ok(0) => {
                *slot = None;
                break;
            }
            Ok(n) => taken += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                *slot = None;
                break;
            }
        }
    }
    stats.bytes += taken as u64;
}

/// A connection with a small receive buffer whose request is sent; reads are then
/// non-blocking, so that one thread can serve every reader on time.
fn slow_connect(addr: SocketAddr, request: &[u8]) -> io::Result<TcpStream> {
    let mut stream = testkit::client::connect(addr, IO_TIMEOUT)?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    // Set after connecting (std offers no bounded connect on a prepared socket): the
    // buffer, and so the window, is capped from then on, which is all that matters.
    rustix::net::sockopt::set_socket_recv_buffer_size(&stream, SLOW_RECV_BUFFER)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}
