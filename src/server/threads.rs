//! The thread-per-connection model, the original server's design, kept so that the
//! benchmark can compare it with the pool honestly.
//!
//! The main thread accepts on a blocking listener and starts one named thread per
//! connection. That thread drives the same [`Conn`] state machine as a pool worker, over a
//! blocking socket whose read timeout is the current deadline (keep-alive, the rest of the
//! request head's time, or the linger time) and whose write timeout is the send timeout:
//! a `WouldBlock` here means a deadline passed. Only the waiting differs from the pool.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::Totals;
use super::poll::{ACCEPT_RETRY, Timeouts, out_of_descriptors};
use crate::conn::{self, CloseReason, Conn, LINGER, Next};
use crate::handler::{Site, Workspace};
use crate::log::Actor;

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

/// The connections now open, by id, with their socket descriptors so that shutdown can
/// stop them reading. A connection leaves this table before its socket is closed, so
/// every descriptor here is open.
#[derive(Default)]
struct Live {
    sockets: HashMap<u64, RawFd>,
    totals: Totals,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, Live> {
        // A poisoned lock only means a connection thread panicked while holding it; the
        // table itself is still consistent (every change is one insert or remove).
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves until SIGINT or SIGTERM, then gives connections `grace` to finish.
pub fn run(
    listener: TcpListener,
    site: Arc<Site>,
    timeouts: Timeouts,
    max_connections: usize,
) -> io::Result<Totals> {
    listener.set_nonblocking(false)?;
    let shared = Arc::new(Shared {
        live: Mutex::new(Live::default()),
        ended: Condvar::new(),
        stopping: AtomicBool::new(false),
    });
    watch_signals(&shared, listener.as_raw_fd(), &site, timeouts.grace)?;
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
    shared: &Arc<Shared>,
    listener: RawFd,
    site: &Arc<Site>,
    grace: Duration,
) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let shared = Arc::clone(shared);
    let site = Arc::clone(site);
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            for _ in signals.forever() {
                if shared.stopping.swap(true, Ordering::SeqCst) {
                    std::process::exit(0);
                }
                // The listener stays open until `accept` fails, which this shutdown causes;
                // the sockets in the table stay open while the lock is held.
                let live = shared.live();
                let _ = shutdown_read(listener);
                for &fd in live.sockets.values() {
                    let _ = shutdown_read(fd);
                }
                let open = live.sockets.len();
                drop(live);
                shared.ended.notify_all();
                let grace = grace.as_secs_f64();
                let what = format_args!(
                    "shutting down: listener closed, {open} connections get {grace}s to finish"
                );
                site.log.note(&mut String::new(), Actor::Signals, what);
            }
        })?;
    Ok(())
}

/// `shutdown(fd, SHUT_RD)` on a descriptor we know to be open.
fn shutdown_read(fd: RawFd) -> rustix::io::Result<()> {
    // SAFETY: callers pass descriptors that stay open for the duration of this call (see
    // `watch_signals`); the borrow does not outlive it.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::net::shutdown(fd, rustix::net::Shutdown::Read)
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
    shared.live().sockets.insert(id, stream.as_raw_fd());
    let conn = Conn::new(stream, peer, id).blocking();
    let (site, shared_for_thread) = (Arc::clone(site), Arc::clone(shared));
    let spawned = std::thread::Builder::new()
        .name(format!("conn-{id}"))
        .stack_size(THREAD_STACK)
        .spawn(move || serve(conn, &site, &shared_for_thread, timeouts));
    if spawned.is_err() {
        // The connection went down with the closure; only the table entry is left.
        shared.live().sockets.remove(&id);
        shared.ended.notify_all();
    }
}

/// One connection's thread: drive, and when the socket says `WouldBlock`, a deadline has
/// passed; decide what that deadline was.
fn serve(mut conn: Conn<TcpStream>, site: &Site, shared: &Shared, timeouts: Timeouts) {
    let mut ws = Workspace::new(Actor::Thread(conn.id()));
    let mut read_timeout = None;
    let reason = loop {
        let now = Instant::now();
        let (wait, expired) = match (conn.lingering_since(), conn.head_started()) {
            (Some(since), _) => remaining(since + LINGER, now),
            (None, Some(started)) => remaining(started + timeouts.head, now),
            (None, None) => (timeouts.idle, false),
        };
        let next = if expired {
            if conn.lingering_since().is_some() {
                break CloseReason::LingerDone;
            }
            conn::catching(&mut conn, site, &mut ws, |conn, ws| {
                conn.expire_head(site, ws)
            })
        } else {
            if read_timeout != Some(wait) {
                let _ = conn.socket().set_read_timeout(Some(wait));
                read_timeout = Some(wait);
            }
            conn::catching(&mut conn, site, &mut ws, |conn, ws| conn.drive(site, ws))
        };
        match next {
            Next::Close(reason) => break reason,
            // The write timeout passed with no progress.
            Next::Write => break CloseReason::SendTimeout,
            // A read timed out: idle, or the head or linger time is checked above.
            Next::Read if conn.head_started().is_none() => break CloseReason::IdleTimeout,
            Next::Read | Next::Linger | Next::Continue => {}
        }
    };
    let reason = if reason == CloseReason::PeerClosed && shared.stopping.load(Ordering::SeqCst) {
        CloseReason::Shutdown
    } else {
        reason
    };
    let (id, peer, served) = (conn.id(), conn.peer(), conn.served());
    // Logged before the connection leaves the table, so that the shutdown summary, printed
    // once the table is empty, always comes after it.
    site.log
        .closed(&mut ws.line, ws.actor, id, peer, reason, served);
    {
        let mut live = shared.live();
        live.sockets.remove(&id);
        live.totals.retire(&conn);
    }
    drop(conn);
    shared.ended.notify_all();
}

/// Time left until `deadline`, at least a millisecond (a zero read timeout means none).
fn remaining(deadline: Instant, now: Instant) -> (Duration, bool) {
    match deadline.checked_duration_since(now) {
        Some(left) if !left.is_zero() => (left.max(Duration::from_millis(1)), false),
        _ => (Duration::ZERO, true),
    }
}
