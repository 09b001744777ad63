//! The thread-per-connection model, the original server's design, kept so that the
//! benchmark can compare it with the pool honestly.
//!
//! The main thread accepts on a blocking listener and starts one named thread per
//! connection. That thread drives the same [`Conn`] state machine as a pool worker, over a
//! blocking socket whose read timeout is set, before every drive, to what is left of the
//! connection's deadline ([`Conn::deadline`]) and whose write timeout is the send timeout:
//! a `WouldBlock` here means a deadline passed. Only the waiting differs from the pool.
//!
//! At the connection limit the accepting thread, when a client is queued, closes the
//! connection that has waited longest for its next request, as the poll thread does. A
//! thread waiting for a request therefore waits in `poll` rather than in its read, so that
//! it can say whether it is taking up a request or has been evicted ([`Activity`]); its
//! read follows only once bytes are there.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::RecvFlags;
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
    /// Signalled whenever a connection ends, and, while [`Shared::awaiting_idle`] is set,
    /// whenever one begins to wait idle.
    ended: Condvar,
    stopping: AtomicBool,
    /// The accepting thread waits, at the limit with a client queued, for a connection to
    /// end or to begin to wait idle, so that it can close that one for the client.
    awaiting_idle: AtomicBool,
    /// What [`Activity::Idle`] times are counted from.
    epoch: Instant,
}

/// The connections now open, by id, with a share of their sockets so that shutdown and
/// eviction can stop them reading: a socket closes only when both its thread and this
/// table have let go of it, so every socket here is open.
#[derive(Default)]
struct Live {
    conns: HashMap<u64, Entry>,
    totals: Totals,
}

/// One open connection, as the other threads see it.
struct Entry {
    socket: Arc<TcpStream>,
    activity: Arc<ActivityCell>,
}

/// What a connection thread is doing, as the accepting thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Starting, or reading, answering or writing a request: never disturbed.
    Busy,
    /// Waiting for its next request (or its first) since then.
    Idle { since: Instant },
    /// Chosen to close for a new connection: its socket's reading side is shut down, and
    /// its thread closes it as it wakes.
    Evicted,
}

/// A connection's [`Activity`], shared by its thread and the accepting thread without a
/// lock, in one word: [`ActivityCell::BUSY`], [`ActivityCell::EVICTED`], or an idle
/// connection's `since` as nanoseconds after [`Shared::epoch`], plus [`ActivityCell::IDLE`].
///
/// The two threads hand the connection over by compare-and-swap from the same `Idle`
/// word: its thread, woken, takes up a request only by moving it to `Busy`, and the
/// accepting thread evicts only by moving it to `Evicted`. So a connection whose thread
/// has begun on a request is never evicted, and an evicted one reads nothing more.
struct ActivityCell(AtomicU64);

impl ActivityCell {
    const BUSY: u64 = 0;
    const EVICTED: u64 = 1;
    /// The first idle word: `since` at the epoch itself.
    const IDLE: u64 = 2;

    fn busy() -> ActivityCell {
        ActivityCell(AtomicU64::new(Self::BUSY))
    }

    fn encode(activity: Activity, epoch: Instant) -> u64 {
        match activity {
            Activity::Busy => Self::BUSY,
            Activity::Evicted => Self::EVICTED,
            Activity::Idle { since } => {
                let nanos = since.saturating_duration_since(epoch).as_nanos();
                u64::try_from(nanos).map_or(u64::MAX, |n| n.saturating_add(Self::IDLE))
            }
        }
    }

    fn decode(word: u64, epoch: Instant) -> Activity {
        match word {
            Self::BUSY => Activity::Busy,
            Self::EVICTED => Activity::Evicted,
            nanos => Activity::Idle {
                since: epoch + Duration::from_nanos(nanos - Self::IDLE),
            },
        }
    }

    fn get(&self, epoch: Instant) -> Activity {
        Self::decode(self.0.load(Ordering::SeqCst), epoch)
    }

    /// The connection's own thread begins to wait idle (it was busy: only it leaves
    /// `Busy`, and it stops at once when evicted).
    fn wait_idle(&self, since: Instant, epoch: Instant) {
        let word = Self::encode(Activity::Idle { since }, epoch);
        self.0.store(word, Ordering::SeqCst);
    }

    /// The connection's own thread, woken, takes up what arrived; false if it has been
    /// evicted meanwhile.
    fn take_up(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                (word != Self::EVICTED).then_some(Self::BUSY)
            })
            .is_ok()
    }

    /// The accepting thread evicts the connection if it still waits idle as it was seen
    /// to: since `since`.
    fn evict(&self, since: Instant, epoch: Instant) -> bool {
        let idle = Self::encode(Activity::Idle { since }, epoch);
        self.0
            .compare_exchange(idle, Self::EVICTED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
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
        awaiting_idle: AtomicBool::new(false),
        epoch: Instant::now(),
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
    // An eviction freed a descriptor and `accept` still found none: something else holds
    // them, and closing more idle connections would not help.
    let mut evicted_for_descriptor = false;
    loop {
        if !wait_for_room(&shared, &listener, max_connections) {
            break;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                evicted_for_descriptor = false;
                let id = next_id;
                next_id += 1;
                site.log
                    .conn(&mut line, Actor::Accept, id, peer, format_args!("open"));
                start(stream, peer, id, &site, &shared, timeouts);
            }
            Err(_) if shared.stopping.load(Ordering::SeqCst) => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if out_of_descriptors(&err) => {
                // `accept` takes a descriptor before it looks at the queue, so it fails so
                // with nobody waiting too: room is made for a client that waits.
                wait_for_client(&listener);
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let live = shared.live();
                if !evicted_for_descriptor && evict_longest_idle(&live, shared.epoch) {
                    // Its descriptor is free once its thread has closed it.
                    evicted_for_descriptor = true;
                    drop(wait_for_evicted(&shared, live));
                    continue;
                }
                evicted_for_descriptor = false;
                drop(live);
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
    while !live.conns.is_empty() {
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

/// Blocks until a connection may be accepted: below `max_connections`, or at it with a
/// client queued and the longest-idle connection closed for it. With no idle connection
/// the client stays queued until a connection ends or begins to wait idle. Returns false
/// once shutdown has begun.
fn wait_for_room(shared: &Shared, listener: &TcpListener, max_connections: usize) -> bool {
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        if shared.live().conns.len() < max_connections {
            return true;
        }
        // At the limit, room is made for a client that waits, never in advance. Shutting
        // the listener down at a signal ends this wait too.
        wait_for_client(listener);
        let mut live = shared.live();
        loop {
            if shared.stopping.load(Ordering::SeqCst) {
                return false;
            }
            if live.conns.len() < max_connections {
                shared.awaiting_idle.store(false, Ordering::SeqCst);
                break;
            }
            let leaving = live
                .conns
                .values()
                .any(|entry| entry.activity.get(shared.epoch) == Activity::Evicted);
            if !leaving {
                // Set before looking, so that a thread that begins to wait idle after the
                // look sees it and signals (see `await_request`).
                shared.awaiting_idle.store(true, Ordering::SeqCst);
                if evict_longest_idle(&live, shared.epoch) {
                    shared.awaiting_idle.store(false, Ordering::SeqCst);
                }
            }
            live = shared
                .ended
                .wait(live)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Blocks until a client waits in the listener's queue, or the listener has been shut down.
fn wait_for_client(listener: &TcpListener) {
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    while let Err(rustix::io::Errno::INTR) = rustix::event::poll(&mut fds, None) {}
}

/// Closes the connection that has waited longest for its next request, to make room for a
/// new one: marks it evicted and shuts its reading side down, which wakes its thread to
/// close it. False if no connection waits idle. Its descriptor is free once its thread has
/// ended ([`wait_for_evicted`]).
fn evict_longest_idle(live: &Live, epoch: Instant) -> bool {
    // Connections seen idle that could not be evicted: their threads took up a request.
    let mut passed: Vec<u64> = Vec::new();
    loop {
        let longest = live
            .conns
            .iter()
            .filter(|(id, _)| !passed.contains(id))
            .filter_map(|(id, entry)| match entry.activity.get(epoch) {
                Activity::Idle { since } => Some((since, *id, entry)),
                Activity::Busy | Activity::Evicted => None,
            })
            .min_by_key(|(since, ..)| *since);
        let Some((since, id, entry)) = longest else {
            return false;
        };
        // A request already in the socket: its thread is about to take it up.
        let mut byte = [0u8; 1];
        let peek = RecvFlags::PEEK | RecvFlags::DONTWAIT;
        let request = matches!(
            rustix::net::recv(&*entry.socket, &mut byte, peek),
            Ok((_, n)) if n > 0
        );
        if !request && entry.activity.evict(since, epoch) {
            let _ = rustix::net::shutdown(&*entry.socket, rustix::net::Shutdown::Read);
            return true;
        }
        passed.push(id);
    }
}

/// Waits until every evicted connection's thread has closed it and left the table.
fn wait_for_evicted<'a>(
    shared: &'a Shared,
    mut live: MutexGuard<'a, Live>,
) -> MutexGuard<'a, Live> {
    let evicted = |live: &Live| {
        live.conns
            .values()
            .any(|entry| entry.activity.get(shared.epoch) == Activity::Evicted)
    };
    while evicted(&live) && !shared.stopping.load(Ordering::SeqCst) {
        live = shared
            .ended
            .wait(live)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    live
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
                for entry in live.conns.values() {
                    let _ = rustix::net::shutdown(&*entry.socket, rustix::net::Shutdown::Read);
                }
                let open = live.conns.len();
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
                    open: shared.live().conns.len(),
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
    let activity = Arc::new(ActivityCell::busy());
    let entry = Entry {
        socket: Arc::clone(&stream),
        activity: Arc::clone(&activity),
    };
    shared.live().conns.insert(id, entry);
    let conn = Conn::new(stream, peer, id);
    let (site, shared_for_thread) = (Arc::clone(site), Arc::clone(shared));
    let spawned = std::thread::Builder::new()
        .name(format!("conn-{id}"))
        .stack_size(THREAD_STACK)
        .spawn(move || serve(conn, &activity, &site, &shared_for_thread, timeouts.conn()));
    if spawned.is_err() {
        // The thread's share of the socket went with the closure; the table's closes it.
        shared.live().conns.remove(&id);
        shared.ended.notify_all();
    }
}

/// One connection's thread: wait for a request in `poll` while idle, drive with a read
/// timeout of what is left of the deadline, and once the deadline has passed, let the
/// connection end as its phase says.
fn serve(
    mut conn: Conn<Arc<TcpStream>>,
    activity: &ActivityCell,
    site: &Site,
    shared: &Shared,
    timeouts: conn::Timeouts,
) {
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
                if let Some(since) = conn.idle_since() {
                    match await_request(&conn, since, left, activity, shared) {
                        Awaited::Request => {}
                        // The deadline, most likely, which the loop finds passed.
                        Awaited::Nothing => continue,
                        Awaited::Evicted => break CloseReason::Evicted,
                    }
                }
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
        live.conns.remove(&id);
    }
    shared.ended.notify_all();
}

/// How waiting for a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    /// Bytes, or the end of the client's input, are there to read: the connection is busy.
    Request,
    /// Nothing arrived within the time given (or the wait was interrupted).
    Nothing,
    /// The accepting thread closed the connection for a new one.
    Evicted,
}

/// Waits up to `left` for the client's next request on an idle connection, idle since
/// `since`, where the accepting thread may evict it (see [`ActivityCell`]).
fn await_request(
    conn: &Conn<Arc<TcpStream>>,
    since: Instant,
    left: Duration,
    activity: &ActivityCell,
    shared: &Shared,
) -> Awaited {
    activity.wait_idle(since, shared.epoch);
    if shared.awaiting_idle.load(Ordering::SeqCst) {
        // The accepting thread waits for a connection it may close: this one. Taking the
        // lock first means it is either still to look (and will see this one idle) or
        // already waiting for the signal.
        drop(shared.live());
        shared.ended.notify_all();
    }
    let mut fds = [PollFd::new(&**conn.socket(), PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    let polled = rustix::event::poll(&mut fds, Some(&timeout));
    if !activity.take_up() {
        return Awaited::Evicted;
    }
    match polled {
        Ok(0) | Err(rustix::io::Errno::INTR) => Awaited::Nothing,
        // Readable, hung up or failed: the read tells which.
        _ => Awaited::Request,
    }
}
