//! The thread-per-connection model, the original server's design, kept so that the
//! benchmark can compare it with the pool honestly.
//!
//! The main thread accepts on a blocking listener and starts one named thread per
//! connection. That thread drives the same [`Conn`] state machine as a pool worker, over a
//! blocking socket whose read timeout is set, before every drive, to what is left of the
//! connection's deadline ([`Conn::deadline`]) and whose write timeout is the send timeout:
//! a `WouldBlock` here means a deadline passed. Only the waiting differs from the pool.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use signal_hook::consts::SIGINT;
use signal_hook::iterator::Signals;

use super::Totals;
use super::poll::{ACCEPT_RETRY, Timeouts, out_of_descriptors};
use crate::conn::{self, Buffers, CloseReason, Conn, Edges, Next, Wait};
use crate::handler::{Site, Workspace};
use crate::log::Actor;
use crate::stats::{Gauges, Window};

/// Stack for each connection thread. The state machine needs a few kilobytes (the largest
/// item is httparse's field array); the usual 2 MiB default would only reserve address
/// space that a thousand connections then multiply.
pub const THREAD_STACK: usize = 256 * 1024;

/// What the accepting thread, the connection threads and the signal thread share.
struct Shared {
    live: Mutex<Live>,
    /// Signalled whenever a connection ends.
    ended: Condvar,
    stopping: AtomicBool,
}

/// The connections now open, by id, with a share of their sockets so that shutdown can
/// stop them reading: a socket closes only when both its thread and this table have let
/// go of it, so every socket here is open.
#[derive(Default)]
struct Live {
    sockets: HashMap<u64, Arc<TcpStream>>,
    totals: Totals,
}

/// Shortest read timeout set: a zero timeout would mean none at all.
const MIN_READ_TIMEOUT: Duration = Duration::from_millis(1);

/// How far the read timeout may be from what is left of the deadline before it is set
/// again: keeps the keep-alive wait from costing a system call per request, and a late
/// close later than its deadline by no more than this.
const READ_TIMEOUT_SLACK: Duration = Duration::from_millis(10);

impl Shared {
    fn live(&self) -> MutexGuard<'_, Live> {
        // A poisoned lock only means a connection thread panicked while holding it; the
        // table itself is still consistent (every change is one insert or remove).
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves until SIGINT or SIGTERM (as caught by `signals`), then gives connections
/// `grace` to finish.
pub fn run(
    listener: TcpListener,
    site: Arc<Site>,
    timeouts: Timeouts,
    max_connections: usize,
    signals: Signals,
) -> io::Result<Totals> {
    listener.set_nonblocking(false)?;
    let listener = Arc::new(listener);
    let shared = Arc::new(Shared {
        live: Mutex::new(Live::default()),
        ended: Condvar::new(),
        stopping: AtomicBool::new(false),
    });
    watch_signals(
        signals,
        &shared,
        Arc::clone(&listener),
        &site,
        timeouts.grace,
    )?;
    if site.stats.is_some() {
        print_stats(&shared, &site)?;
    }
    let mut next_id = 0u64;
    let mut line = String::new();
    loop {
        if !wait_for_room(&shared, max_connections) {
            break;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let id = next_id;
                next_id += 1;
                site.log
                    .conn(&mut line, Actor::Accept, id, peer, format_args!("open"));
                start(stream, peer, id, &site, &shared, timeouts);
            }
            Err(_) if shared.stopping.load(Ordering::SeqCst) => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if out_of_descriptors(&err) => {
                site.log.note(
                    &mut line,
                    Actor::Accept,
                    format_args!("accept paused: {err}"),
                );
                // Back off until a connection ends or the retry time passes.
                let live = shared.live();
                let _ = shared.ended.wait_timeout(live, ACCEPT_RETRY);
            }
            // ECONNABORTED and the like concern one connection that is already gone.
            Err(_) => {}
        }
    }
    drop(listener);
    let deadline = Instant::now() + timeouts.grace;
    let mut live = shared.live();
    while !live.sockets.is_empty() {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        live = shared
            .ended
            .wait_timeout(live, left)
            .map_or_else(|e| e.into_inner().0, |r| r.0);
    }
    let mut totals = live.totals;
    totals.connections = next_id;
    Ok(totals)
}

/// Blocks while `max_connections` are open. Returns false once shutdown has begun.
fn wait_for_room(shared: &Shared, max_connections: usize) -> bool {
    let mut live = shared.live();
    while live.sockets.len() >= max_connections && !shared.stopping.load(Ordering::SeqCst) {
        live = shared
            .ended
            .wait(live)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    !shared.stopping.load(Ordering::SeqCst)
}

/// On SIGINT or SIGTERM: stop accepting (shutting the listener down wakes the blocked
/// `accept`) and stop every connection reading, so idle ones close at once and busy ones
/// close after the response they are sending. A second signal exits at once.
fn watch_signals(
    mut signals: Signals,
    shared: &Arc<Shared>,
    listener: Arc<TcpListener>,
    site: &Arc<Site>,
    grace: Duration,
) -> io::Result<()> {
    let shared = Arc::clone(shared);
    let site = Arc::clone(site);
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                // Held until the shutdown note is out: the accepting thread, once it sees
                // `stopping`, needs this lock before it can print the summary and end the
                // process, so the note cannot come after the summary or be lost.
                let live = shared.live();
                if shared.stopping.swap(true, Ordering::SeqCst) {
                    std::process::exit(0);
                }
                if signal == SIGINT {
                    crate::log::after_interrupt();
                }
                // Shutting the listener down makes the blocked `accept` fail and refuses new
                // connections; connections reading see the end of their input.
                let _ = rustix::net::shutdown(&*listener, rustix::net::Shutdown::Read);
                for socket in live.sockets.values() {
                    let _ = rustix::net::shutdown(&**socket, rustix::net::Shutdown::Read);
                }
                let open = live.sockets.len();
                let grace = grace.as_secs_f64();
                let what = format_args!(
                    "shutting down: listener closed, {open} connections get {grace}s to finish"
                );
                site.log.note(&mut String::new(), Actor::Signals, what);
                drop(live);
                shared.ended.notify_all();
            }
        })?;
    Ok(())
}

/// With `--stats`: a thread that prints a line of statistics every window. A thread per
/// connection has no loop of its own to print from, so this model gets one more thread.
fn print_stats(shared: &Arc<Shared>, site: &Arc<Site>) -> io::Result<()> {
    let (shared, site) = (Arc::clone(shared), Arc::clone(site));
    std::thread::Builder::new()
        .name("stats".to_string())
        .spawn(move || {
            let Some(stats) = &site.stats else {
                return;
            };
            let mut window = Window::new(stats);
            let (mut line, mut what) = (String::new(), String::new());
            while !shared.stopping.load(Ordering::SeqCst) {
                let left = window.due.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    std::thread::park_timeout(left);
                    continue;
                }
                let gauges = Gauges::Threads {
                    open: shared.live().sockets.len(),
                    threads: process_threads(),
                };
                window.close(stats, gauges, &mut what);
                site.log.stats(&mut line, &what);
                what.clear();
            }
        })?;
    Ok(())
}

/// The threads of this process, from `/proc/self/status` (0 if it cannot be read).
fn process_threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|count| count.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn start(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    site: &Arc<Site>,
    shared: &Arc<Shared>,
    timeouts: Timeouts,
) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(timeouts.send));
    let stream = Arc::new(stream);
    shared.live().sockets.insert(id, Arc::clone(&stream));
    let conn = Conn::new(stream, peer, id);
    let (site, shared_for_thread) = (Arc::clone(site), Arc::clone(shared));
    let spawned = std::thread::Builder::new()
        .name(format!("conn-{id}"))
        .stack_size(THREAD_STACK)
        .spawn(move || serve(conn, &site, &shared_for_thread, timeouts.conn()));
    if spawned.is_err() {
        // The thread's share of the socket went with the closure; the table's closes it.
        shared.live().sockets.remove(&id);
        shared.ended.notify_all();
    }
}

/// One connection's thread: drive with a read timeout of what is left of the deadline, and
/// once the deadline has passed, let the connection end as its phase says.
fn serve(mut conn: Conn<Arc<TcpStream>>, site: &Site, shared: &Shared, timeouts: conn::Timeouts) {
    let mut ws = Workspace::new(Actor::Thread(conn.id()));
    let mut bufs = Buffers::default();
    let mut read_timeout = None;
    let reason = loop {
        let deadline = conn.deadline(&timeouts);
        let left = deadline
            .at
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero());
        let next = match left {
            None => conn::catching(&mut conn, site, &mut ws, &mut bufs, |conn, ws, bufs| {
                conn.expire(site, ws, bufs)
            }),
            Some(left) => {
                let left = left.max(MIN_READ_TIMEOUT);
                let stale = read_timeout
                    .is_none_or(|set: Duration| set.abs_diff(left) > READ_TIMEOUT_SLACK);
                if deadline.wait != Wait::Send && stale {
                    let _ = conn.socket().set_read_timeout(Some(left));
                    read_timeout = Some(left);
                }
                // A blocking read waits for bytes itself.
                conn.saw(Edges {
                    readable: true,
                    ..Edges::default()
                });
                conn::catching(&mut conn, site, &mut ws, &mut bufs, |conn, ws, bufs| {
                    conn.drive(site, ws, bufs)
                })
            }
        };
        if let Next::Close(reason) = next {
            break reason;
        }
    };
    let reason = if reason == CloseReason::PeerClosed && shared.stopping.load(Ordering::SeqCst) {
        CloseReason::Shutdown
    } else {
        reason
    };
    let id = conn.id();
    let mut counted = Totals::default();
    counted.retire(&conn);
    // Logged before the connection leaves the table, so that the shutdown summary, printed
    // once the table is empty, always comes after it.
    conn.close(reason, site, &mut ws.line, ws.actor);
    {
        let mut live = shared.live();
        live.totals += counted;
        live.sockets.remove(&id);
    }
    shared.ended.notify_all();
}
