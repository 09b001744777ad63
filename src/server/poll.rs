//! The poll thread: owns the listener, every waiting connection and every deadline.
//!
//! It reads top to bottom: wait for readiness or the earliest deadline; accept until
//! `WouldBlock`; hand ready connections to the pool; take back the ones the workers
//! return; expire what is due; stop accepting, or start again, as descriptors allow. At
//! the connection limit it closes the longest-idle connection for a client that waits,
//! and stops accepting only when none is idle. It never parses or answers a request.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rustix::event::{PollFd, PollFlags, Timespec};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use super::Totals;
use super::deadline::{Deadline, DeadlineQueue};
use super::notifier::Notifier;
use super::pool::{Done, Job, Outcome, PoolConn, Work};
use super::spin::Spin;
use crate::conn::{self, CloseReason, Conn, Edges, Wait};
use crate::handler::Site;
use crate::log::Actor;
use crate::stats::{Gauges, Window};

/// The listener's token.
pub const LISTENER: Token = Token(usize::MAX);
/// The waker's token (one waker per `Poll`).
pub const WAKER: Token = Token(usize::MAX - 1);
/// The signal pipe's token.
pub const SIGNALS: Token = Token(usize::MAX - 2);

/// What connections are registered for, once, for their whole life. Edge-triggered write
/// readiness is reported only after a write has found the socket full, so a connection
/// that never fills it costs no extra events, and one that does needs no re-registration
/// (two `epoll_ctl` calls per large response) to learn when it drains.
const CONN_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// Readiness events taken per `poll` call; more simply wait for the next turn.
const EVENTS_CAPACITY: usize = 1024;

/// How long accepting stays paused after the process ran out of descriptors, unless a
/// connection closes first. Long enough not to spin on a full descriptor table, short
/// enough that a queued client barely notices.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How long connections may wait, and the shutdown grace.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A connection with no request bytes.
    pub idle: Duration,
    /// A request head from its first byte to its end.
    pub head: Duration,
    /// A response that cannot make progress.
    pub send: Duration,
    /// Responses in flight at SIGINT/SIGTERM.
    pub grace: Duration,
}

impl Timeouts {
    /// The connections' own timeouts, from which [`Conn::deadline`] decides.
    pub fn conn(&self) -> conn::Timeouts {
        conn::Timeouts {
            idle: self.idle,
            head: self.head,
            send: self.send,
        }
    }
}

/// The kinds of waiting, each with its own deadline queue.
const WAITS: [Wait; 4] = [Wait::Idle, Wait::Head, Wait::Send, Wait::Linger];

/// A kind of waiting's bit in [`Slot::queued`].
const fn bit(wait: Wait) -> u8 {
    1 << wait as u8
}

/// Where a connection is.
#[derive(Debug)]
enum Place {
    /// Here, registered with the poller, waiting until [`Slot::due`].
    Waiting { conn: PoolConn, wait: Wait },
    /// With a worker; readiness that arrives meanwhile, which edge triggering would not
    /// report again, gathers in [`Slot::seen`].
    AtWorker,
}

/// A connection's place in the slab.
///
/// Deadlines are cancelled lazily, yet each connection has at most one entry in each
/// queue: a connection that waits again while its entry is still queued only moves
/// `due`, and when the old entry comes up, it goes back into the queue at `due` instead of
/// expiring. So the queues hold no more entries than there are connections, however many
/// requests each one makes.
#[derive(Debug)]
struct Slot {
    place: Place,
    /// The connection's number; tells its queue entries from those of an earlier
    /// connection that used the same slot.
    id: u64,
    /// When the current wait ends.
    due: Instant,
    /// Which queues hold an entry for this connection, one [`bit`] each.
    queued: u8,
    /// Readiness reported since the connection was last handed to a worker, which goes
    /// with it the next time; edges are reported once, so none may be dropped.
    seen: Edges,
}

/// What a readiness event says; an error or hang-up allows both reading and writing, so
/// that the owner finds out by trying.
fn edges_of(event: &mio::event::Event) -> Edges {
    let failed = event.is_error() || event.is_read_closed() || event.is_write_closed();
    Edges {
        readable: event.is_readable() || failed,
        writable: event.is_writable() || failed,
        hangup: failed,
    }
}

/// Whether readiness `seen` lets a connection waiting as `wait` says make progress: a
/// connection writing reads again only after it has written, and one reading only writes
/// after it has read.
fn satisfied_by(wait: Wait, seen: Edges) -> bool {
    match wait {
        Wait::Send => seen.writable,
        Wait::Idle | Wait::Head | Wait::Linger => seen.readable,
    }
}

/// Whether the listener is being polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    Open,
    /// At `--max-connections` with a client waiting and no idle connection to close for
    /// it: resume when a connection closes or begins to wait idle.
    AtLimit,
    /// `accept` found no free descriptor: resume when a connection closes, or retry then.
    NoDescriptors {
        retry_at: Instant,
    },
    /// Shutting down: the listener is closed.
    Closed,
}

/// The poll thread's state.
pub struct PollLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: Signals,
    slots: Slab<Slot>,
    max_connections: usize,
    accepting: Accepting,
    /// After SIGINT/SIGTERM: when the grace period ends.
    draining: Option<Instant>,
    /// Connections with a worker that have had readiness meanwhile (their [`Slot::seen`]
    /// is not empty); while there are any, every result must wake this thread.
    ready_at_worker: usize,
    jobs: Sender<Job>,
    done: Receiver<Done>,
    notifier: Arc<Notifier>,
    site: Arc<Site>,
    timeouts: Timeouts,
    idle: DeadlineQueue,
    head: DeadlineQueue,
    send: DeadlineQueue,
    linger: DeadlineQueue,
    totals: Totals,
    line: String,
    spin: Spin,
    /// With `--stats`: the window whose line is printed next.
    stats: Option<Window>,
}

impl PollLoop {
    /// Sets up the loop; `poll` already has the waker behind `notifier` registered, and
    /// `signals` has caught SIGINT and SIGTERM since the listener was bound.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        mut listener: TcpListener,
        mut signals: Signals,
        max_connections: usize,
        jobs: Sender<Job>,
        done: Receiver<Done>,
        notifier: Arc<Notifier>,
        site: Arc<Site>,
        timeouts: Timeouts,
    ) -> io::Result<PollLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let stats = site.stats.as_ref().map(Window::new);
        Ok(PollLoop {
            poll,
            listener: Some(listener),
            signals,
            slots: Slab::new(),
            max_connections,
            accepting: Accepting::Open,
            draining: None,
            ready_at_worker: 0,
            jobs,
            done,
            notifier,
            site,
            timeouts,
            idle: DeadlineQueue::default(),
            head: DeadlineQueue::default(),
            send: DeadlineQueue::default(),
            linger: DeadlineQueue::default(),
            totals: Totals::default(),
            line: String::new(),
            spin: Spin::new(),
            stats,
        })
    }

    /// Runs until shutdown completes (or polling itself fails), and returns what the poll
    /// thread counted: connections accepted, and the requests and bytes of the connections
    /// it closed itself.
    pub fn run(mut self) -> io::Result<Totals> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let now = Instant::now();
            if let Some(until) = self.draining
                && (self.slots.is_empty() || now >= until)
            {
                break;
            }
            // Spinning, the loop only looks; otherwise it sleeps until an event or the
            // earliest deadline, having told the workers when to wake it.
            let spinning = self.spin.spinning(now);
            let timeout = if spinning || self.plan_sleep() > 0 {
                // Results taken in while planning may free a slot or ask for a dispatch,
                // and the loop acts on them before it sleeps.
                Some(Duration::ZERO)
            } else {
                self.next_wake()
                    .map(|at| at.saturating_duration_since(Instant::now()))
            };
            let slept_from = Instant::now();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
            self.notifier.awake();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    // Results are collected below, woken or not.
                    WAKER => {}
                    SIGNALS => self.on_signals(),
                    Token(token) => self.ready(token, edges_of(event)),
                }
            }
            let collected = self.collect_done();
            let now = Instant::now();
            match (spinning, !events.is_empty() || collected > 0) {
                (_, false) if spinning => self.spin.missed(now),
                (true, _) => self.spin.found(),
                (false, true) => self.spin.slept(now.saturating_duration_since(slept_from)),
                // A deadline woke the loop: nothing says how soon work will come.
                (false, false) => {}
            }
            self.expire(now);
            self.resume_accepting(now);
            self.print_stats(now);
        }
        // At the end of shutdown: whatever still waits.
        self.close_waiting(|_| true);
        Ok(self.totals)
    }

    /// Tells the workers which results must wake this thread, then takes in the results
    /// already sent (see [`Notifier`] for why in this order); returns how many it took.
    fn plan_sleep(&mut self) -> usize {
        let wants_all = self.draining.is_some() || self.ready_at_worker > 0;
        self.notifier.plan(wants_all, self.next_wake());
        self.collect_done()
    }

    /// When this thread must wake by itself: the earliest deadline (perhaps a stale one,
    /// which only wakes it early), an accept retry, or the end of the grace period.
    fn next_wake(&self) -> Option<Instant> {
        let retry = match self.accepting {
            Accepting::NoDescriptors { retry_at } => Some(retry_at),
            _ => None,
        };
        [
            self.idle.first(),
            self.head.first(),
            self.send.first(),
            self.linger.first(),
            retry,
            self.draining,
            self.stats.as_ref().map(|window| window.due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Accepts until `WouldBlock`. At the connection limit, or out of descriptors, the
    /// longest-idle connection is closed to admit a waiting client, and accepting pauses
    /// only when no connection is idle.
    fn accept(&mut self) {
        // At most one eviction a pass for want of descriptors. If `accept` still finds
        // none, something else holds them and closing more would not help; and since a
        // connection that has not sent a byte yet counts as idle, a flood of silent
        // clients would otherwise close one another as fast as they were accepted. The
        // rest wait for `ACCEPT_RETRY`.
        let mut evicted_for_descriptor = false;
        loop {
            if self.accepting != Accepting::Open {
                return;
            }
            if self.slots.len() >= self.max_connections {
                // Room is made for a client that waits, never in advance. With nobody
                // waiting the listener stays polled, to report the next one.
                if !self.client_waiting() {
                    return;
                }
                if !self.evict_longest_idle() {
                    self.pause(Accepting::AtLimit);
                    return;
                }
            }
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if out_of_descriptors(&err) => {
                    // `accept` takes a descriptor before it looks at the queue, so it
                    // fails so with nobody waiting too; the next client is reported.
                    if !self.client_waiting() {
                        return;
                    }
                    if !evicted_for_descriptor && self.evict_longest_idle() {
                        evicted_for_descriptor = true;
                        continue;
                    }
                    self.note(format_args!("accept paused: {err}"));
                    let retry_at = Instant::now() + ACCEPT_RETRY;
                    self.pause(Accepting::NoDescriptors { retry_at });
                    return;
                }
                // ECONNABORTED and the like concern one connection that is already gone.
                Err(_) => {}
            }
        }
    }

    /// Whether a client waits in the listener's queue, found without taking it.
    fn client_waiting(&self) -> bool {
        let Some(listener) = &self.listener else {
            return false;
        };
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // A failed look counts as a client waiting: at worst an idle connection closes
        // early, where the other mistake would leave a client queued.
        rustix::event::poll(&mut fds, Some(&now)).map_or(true, |ready| ready > 0)
    }

    /// Closes the connection that has waited longest for its next request, to make room
    /// for a new one; false if none waits for one. Connections reading or answering a
    /// request, or writing, are never chosen.
    ///
    /// The earliest idle deadline is the longest-idle connection's, since every idle
    /// deadline is the same keep-alive time after the wait began. Entries are checked as
    /// [`PollLoop::expire`] checks them: one of an earlier connection, or of a connection
    /// no longer waiting idle, is dropped; one whose connection waited again is queued
    /// again at its own time.
    fn evict_longest_idle(&mut self) -> bool {
        while let Some(entry) = self.idle.pop_first() {
            let Some(slot) = self.slots.get_mut(entry.token) else {
                continue;
            };
            if slot.id != entry.id {
                continue;
            }
            slot.queued &= !bit(Wait::Idle);
            let Place::Waiting {
                conn,
                wait: Wait::Idle,
            } = &slot.place
            else {
                continue;
            };
            if slot.due > entry.at {
                slot.queued |= bit(Wait::Idle);
                let later = Deadline {
                    at: slot.due,
                    ..entry
                };
                self.idle.push(later);
                continue;
            }
            // Its next request may have arrived, its readiness not yet taken in (it may be
            // further on in this very batch of events): such a connection is not idle.
            let peeked = conn.socket().peek(&mut [0u8; 1]);
            let reason = match peeked {
                Ok(0) => CloseReason::PeerClosed,
                Ok(_) => {
                    slot.seen = slot.seen.with(Edges {
                        readable: true,
                        ..Edges::default()
                    });
                    self.dispatch(entry.token, Work::Drive);
                    continue;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => CloseReason::Evicted,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => CloseReason::Evicted,
                Err(_) => CloseReason::Reset,
            };
            self.close(entry.token, reason);
            return true;
        }
        false
    }

    /// Stops polling the listener; new connections wait in the kernel's backlog.
    fn pause(&mut self, why: Accepting) {
        if let Some(listener) = &mut self.listener {
            let _ = self.poll.registry().deregister(listener);
        }
        self.accepting = why;
    }

    /// Polls the listener again once the reason for pausing has passed. Registering anew
    /// reports connections already queued, so none waits for another to arrive.
    fn resume_accepting(&mut self, now: Instant) {
        let below_limit = self.slots.len() < self.max_connections;
        let resume = match self.accepting {
            Accepting::Open | Accepting::Closed => false,
            // The eviction that found no idle connection emptied the idle queue, so an
            // entry now means a connection has begun to wait idle since: one to close
            // for the client waiting.
            Accepting::AtLimit => below_limit || !self.idle.is_empty(),
            Accepting::NoDescriptors { retry_at } => below_limit && now >= retry_at,
        };
        if !resume {
            return;
        }
        let Some(listener) = &mut self.listener else {
            return;
        };
        if self
            .poll
            .registry()
            .register(listener, LISTENER, Interest::READABLE)
            .is_ok()
        {
            self.accepting = Accepting::Open;
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: std::net::SocketAddr) {
        // Responses are written whole; Nagle's algorithm would only delay their last segment.
        let _ = stream.set_nodelay(true);
        let entry = self.slots.vacant_entry();
        let token = entry.key();
        if self
            .poll
            .registry()
            .register(&mut stream, Token(token), CONN_INTEREST)
            .is_err()
        {
            return;
        }
        let id = self.totals.connections;
        self.totals.connections += 1;
        let conn = Box::new(Conn::new(stream, peer, id));
        let deadline = conn.deadline(&self.timeouts.conn());
        entry.insert(Slot {
            place: Place::Waiting {
                conn,
                wait: deadline.wait,
            },
            id,
            due: deadline.at,
            queued: bit(deadline.wait),
            seen: Edges::default(),
        });
        self.queue(deadline.wait).push(Deadline {
            at: deadline.at,
            token,
            id,
        });
        self.site
            .log
            .conn(&mut self.line, Actor::Poll, id, peer, format_args!("open"));
    }

    /// Readiness for a connection: remember it, and hand the connection to a worker if it
    /// waits for what arrived. Unknown tokens are skipped (sporadic events happen).
    fn ready(&mut self, token: usize, edges: Edges) {
        let Some(slot) = self.slots.get_mut(token) else {
            return;
        };
        let first = !slot.seen.any();
        slot.seen = slot.seen.with(edges);
        match slot.place {
            Place::AtWorker if first => self.ready_at_worker += 1,
            Place::AtWorker => {}
            Place::Waiting { wait, .. } if satisfied_by(wait, slot.seen) => {
                self.dispatch(token, Work::Drive);
            }
            Place::Waiting { .. } => {}
        }
    }

    /// Moves a waiting connection to the pool, with the readiness seen for it.
    fn dispatch(&mut self, token: usize, work: Work) {
        let Some(slot) = self.slots.get_mut(token) else {
            return;
        };
        let place = std::mem::replace(&mut slot.place, Place::AtWorker);
        let Place::Waiting { conn, .. } = place else {
            slot.place = place;
            return;
        };
        let seen = std::mem::take(&mut slot.seen);
        if let Err(failed) = self.jobs.send(Job {
            token,
            conn,
            work,
            seen,
        }) {
            // The pool is gone: the connection closes with the job.
            self.totals.retire(&failed.0.conn);
            self.slots.remove(token);
        }
    }

    /// Takes in every result the workers have sent; returns how many there were.
    fn collect_done(&mut self) -> usize {
        self.notifier.rearm();
        let mut collected = 0;
        while let Ok(Done { token, outcome }) = self.done.try_recv() {
            collected += 1;
            if let Some(slot) = self.slots.get(token)
                && matches!(slot.place, Place::AtWorker)
                && slot.seen.any()
            {
                self.ready_at_worker -= 1;
            }
            match outcome {
                Outcome::Closed => {
                    if self.slots.contains(token) {
                        self.slots.remove(token);
                    }
                }
                Outcome::Wait(conn) => self.wait(token, conn),
            }
        }
        collected
    }

    /// A connection is back from a worker, waiting as its deadline says.
    fn wait(&mut self, token: usize, conn: PoolConn) {
        if !self.slots.contains(token) {
            return;
        }
        let deadline = conn.deadline(&self.timeouts.conn());
        let wait = deadline.wait;
        if self.draining.is_some() && wait != Wait::Send {
            // Shutting down: only responses still being written are waited for.
            self.slots.remove(token);
            self.retire(conn, CloseReason::Shutdown);
            return;
        }
        let slot = &mut self.slots[token];
        slot.due = deadline.at;
        slot.place = Place::Waiting { conn, wait };
        let ready = satisfied_by(wait, slot.seen);
        // An entry already queued for this kind comes due no later than this wait, and
        // will be queued again at `due` when it does.
        if slot.queued & bit(wait) == 0 {
            slot.queued |= bit(wait);
            let entry = Deadline {
                at: slot.due,
                token,
                id: slot.id,
            };
            self.queue(wait).push(entry);
        }
        if ready {
            self.dispatch(token, Work::Drive);
        }
    }

    fn queue(&mut self, wait: Wait) -> &mut DeadlineQueue {
        match wait {
            Wait::Idle => &mut self.idle,
            Wait::Head => &mut self.head,
            Wait::Send => &mut self.send,
            Wait::Linger => &mut self.linger,
        }
    }

    fn expire(&mut self, now: Instant) {
        for wait in WAITS {
            while let Some(entry) = self.queue(wait).pop_expired(now) {
                let Some(slot) = self.slots.get_mut(entry.token) else {
                    continue;
                };
                if slot.id != entry.id {
                    // An earlier connection's entry; this one's bits are its own.
                    continue;
                }
                slot.queued &= !bit(wait);
                if !matches!(slot.place, Place::Waiting { wait: w, .. } if w == wait) {
                    continue;
                }
                if slot.due > now {
                    // The connection waited again since this entry was queued.
                    slot.queued |= bit(wait);
                    let later = Deadline {
                        at: slot.due,
                        ..entry
                    };
                    self.queue(wait).push(later);
                    continue;
                }
                match wait {
                    Wait::Idle => self.close(entry.token, CloseReason::IdleTimeout),
                    Wait::Head => self.dispatch(entry.token, Work::Expire),
                    Wait::Send => self.close(entry.token, CloseReason::SendTimeout),
                    Wait::Linger => self.close(entry.token, CloseReason::LingerDone),
                }
            }
        }
    }

    fn on_signals(&mut self) {
        let (mut stop, mut interrupted) = (false, false);
        for signal in self.signals.pending() {
            stop |= signal == SIGINT || signal == SIGTERM;
            interrupted |= signal == SIGINT;
        }
        if !stop {
            return;
        }
        if interrupted {
            crate::log::after_interrupt();
        }
        let now = Instant::now();
        if self.draining.is_some() {
            // A second signal: stop waiting for the responses in flight.
            self.draining = Some(now);
            return;
        }
        self.draining = Some(now + self.timeouts.grace);
        // Closing the listener makes new connections fail at once instead of queueing.
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accepting = Accepting::Closed;
        // Responses still being written get the grace period.
        self.close_waiting(|wait| wait != Wait::Send);
        let grace = self.timeouts.grace.as_secs_f64();
        let left = self.slots.len();
        self.note(format_args!(
            "shutting down: listener closed, {left} responses in flight get {grace}s"
        ));
    }

    /// Closes a waiting connection here, without a worker.
    fn close(&mut self, token: usize, reason: CloseReason) {
        if let Place::Waiting { conn, .. } = self.slots.remove(token).place {
            self.retire(conn, reason);
        }
    }

    /// Counts, closes and logs a connection that has left its slot.
    fn retire(&mut self, conn: PoolConn, reason: CloseReason) {
        self.totals.retire(&conn);
        conn.close(reason, &self.site, &mut self.line, Actor::Poll);
    }

    /// Closes, for shutdown, every connection waiting here for a kind of wait that `close`
    /// accepts. Connections still with a worker are closed by that worker.
    fn close_waiting(&mut self, close: impl Fn(Wait) -> bool) {
        let waiting: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, slot)| matches!(slot.place, Place::Waiting { wait, .. } if close(wait)))
            .map(|(token, _)| token)
            .collect();
        for token in waiting {
            self.close(token, CloseReason::Shutdown);
        }
    }

    /// With `--stats`, the line for the window that ended, if one did.
    fn print_stats(&mut self, now: Instant) {
        let (Some(window), Some(stats)) = (&mut self.stats, &self.site.stats) else {
            return;
        };
        if now < window.due {
            return;
        }
        let idle = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                matches!(
                    slot.place,
                    Place::Waiting {
                        wait: Wait::Idle,
                        ..
                    }
                )
            })
            .count();
        let gauges = Gauges::Pool {
            open: self.slots.len(),
            idle,
            queued: self.jobs.len(),
        };
        let mut what = String::new();
        window.close(stats, gauges, &mut what);
        self.site.log.stats(&mut self.line, &what);
    }

    /// A line about the poll thread itself.
    fn note(&mut self, what: std::fmt::Arguments<'_>) {
        self.site.log.note(&mut self.line, Actor::Poll, what);
    }
}

/// EMFILE, ENFILE and their kin: the process or system has no descriptor (or memory) to
/// give the new connection, which stays queued in the kernel.
pub(crate) fn out_of_descriptors(err: &io::Error) -> bool {
    use rustix::io::Errno;
    err.raw_os_error().is_some_and(|code| {
        let errno = Errno::from_raw_os_error(code);
        errno == Errno::MFILE
            || errno == Errno::NFILE
            || errno == Errno::NOBUFS
            || errno == Errno::NOMEM
    })
}
