//! The poll thread: owns the listener, every waiting connection and every deadline.
//!
//! It reads top to bottom: wait for readiness or the earliest deadline; accept until
//! `WouldBlock`; hand ready connections to the pool; take back the ones the workers
//! return; expire what is due. It never parses or answers a request.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::deadline::{Deadline, DeadlineQueue};
use super::pool::{Done, Job, Notifier, Outcome, PoolConn, Work};
use crate::conn::{CloseReason, Conn, LINGER, Next};
use crate::handler::Site;
use crate::log::Actor;

/// The listener's token.
pub const LISTENER: Token = Token(usize::MAX);
/// The waker's token (one waker per `Poll`).
pub const WAKER: Token = Token(usize::MAX - 1);

/// Readiness events taken per `poll` call; more simply wait for the next turn.
const EVENTS_CAPACITY: usize = 1024;

/// How long the poll thread's deadlines are.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A connection with no request bytes.
    pub idle: Duration,
    /// A request head from its first byte to its end.
    pub head: Duration,
    /// A response that cannot make progress.
    pub send: Duration,
}

/// The kinds of waiting, each with its own deadline queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Idle,
    Head,
    Send,
    Linger,
}

/// Where a connection is.
#[derive(Debug)]
enum Place {
    /// Here, registered with the poller, waiting; `stamp` names this wait to its deadline.
    Waiting {
        conn: PoolConn,
        wait: Wait,
        stamp: u64,
    },
    /// With a worker. `ready` records readiness that arrived meanwhile, which edge
    /// triggering would not report again.
    AtWorker { ready: bool },
}

#[derive(Debug)]
struct Slot {
    place: Place,
    /// What the socket is registered for; changed only when the wait needs another.
    interest: Interest,
}

/// The poll thread's state.
pub struct PollLoop {
    poll: Poll,
    listener: TcpListener,
    slots: Slab<Slot>,
    jobs: Sender<Job>,
    done: Receiver<Done>,
    notifier: Arc<Notifier>,
    site: Arc<Site>,
    timeouts: Timeouts,
    idle: DeadlineQueue,
    head: DeadlineQueue,
    send: DeadlineQueue,
    linger: DeadlineQueue,
    next_stamp: u64,
    next_conn_id: u64,
    line: String,
}

impl PollLoop {
    /// Sets up the loop; `poll` already has the waker behind `notifier` registered.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        mut listener: TcpListener,
        jobs: Sender<Job>,
        done: Receiver<Done>,
        notifier: Arc<Notifier>,
        site: Arc<Site>,
        timeouts: Timeouts,
    ) -> io::Result<PollLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(PollLoop {
            poll,
            listener,
            slots: Slab::new(),
            jobs,
            done,
            notifier,
            site,
            timeouts,
            idle: DeadlineQueue::default(),
            head: DeadlineQueue::default(),
            send: DeadlineQueue::default(),
            linger: DeadlineQueue::default(),
            next_stamp: 0,
            next_conn_id: 0,
            line: String::new(),
        })
    }

    /// Runs until polling itself fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.next_timeout(Instant::now());
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    // Results are collected below, woken or not.
                    WAKER => {}
                    Token(token) => self.ready(token),
                }
            }
            self.collect_done();
            self.expire(Instant::now());
        }
    }

    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        [
            self.idle.first(),
            self.head.first(),
            self.send.first(),
            self.linger.first(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now))
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    // ECONNABORTED and friends concern one connection; EMFILE leaves the
                    // connection queued until the next one arrives.
                    self.line.clear();
                    if self.site.log.enabled() {
                        use std::fmt::Write as _;
                        let _ = write!(self.line, "{} accept failed: {err}", Actor::Poll);
                        self.site.log.emit(&mut self.line);
                    }
                    return;
                }
            }
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
            .register(&mut stream, Token(token), Interest::READABLE)
            .is_err()
        {
            return;
        }
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        entry.insert(Slot {
            place: Place::Waiting {
                conn: Box::new(Conn::new(stream, peer, id)),
                wait: Wait::Idle,
                stamp,
            },
            interest: Interest::READABLE,
        });
        self.idle.push(Deadline {
            at: Instant::now() + self.timeouts.idle,
            token,
            stamp,
        });
        self.site
            .log
            .conn(&mut self.line, Actor::Poll, id, peer, format_args!("open"));
    }

    /// Readiness for a connection: hand it to a worker, or remember it for when the worker
    /// gives it back. Unknown tokens are skipped (sporadic events happen).
    fn ready(&mut self, token: usize) {
        let Some(slot) = self.slots.get_mut(token) else {
            return;
        };
        match &mut slot.place {
            Place::AtWorker { ready } => *ready = true,
            Place::Waiting { .. } => self.dispatch(token, Work::Drive),
        }
    }

    /// Moves a waiting connection to the pool.
    fn dispatch(&mut self, token: usize, work: Work) {
        let Some(slot) = self.slots.get_mut(token) else {
            return;
        };
        let place = std::mem::replace(&mut slot.place, Place::AtWorker { ready: false });
        let Place::Waiting { conn, .. } = place else {
            slot.place = place;
            return;
        };
        if self.jobs.send(Job { token, conn, work }).is_err() {
            // The pool is gone: the connection was dropped with the job.
            self.slots.remove(token);
        }
    }

    fn collect_done(&mut self) {
        self.notifier.rearm();
        while let Ok(Done { token, outcome }) = self.done.try_recv() {
            match outcome {
                Outcome::Closed => {
                    if self.slots.contains(token) {
                        self.slots.remove(token);
                    }
                }
                Outcome::Wait(conn, next) => self.wait(token, conn, next),
            }
        }
    }

    /// A connection is back from a worker and waits for `next`.
    fn wait(&mut self, token: usize, mut conn: PoolConn, next: Next) {
        let Some(slot) = self.slots.get_mut(token) else {
            return;
        };
        let ready = matches!(slot.place, Place::AtWorker { ready: true });
        let (wanted, wait) = match next {
            Next::Write => (Interest::WRITABLE, Wait::Send),
            Next::Linger => (Interest::READABLE, Wait::Linger),
            _ if conn.head_started().is_some() => (Interest::READABLE, Wait::Head),
            _ => (Interest::READABLE, Wait::Idle),
        };
        // Re-registering re-arms the edge, so readiness present now is reported again.
        let rearmed = wanted != slot.interest;
        if rearmed {
            if self
                .poll
                .registry()
                .reregister(conn.socket_mut(), Token(token), wanted)
                .is_err()
            {
                self.slots.remove(token);
                return;
            }
            slot.interest = wanted;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let now = Instant::now();
        let deadline = |at| Deadline { at, token, stamp };
        match wait {
            Wait::Idle => self.idle.push(deadline(now + self.timeouts.idle)),
            Wait::Head => {
                let started = conn.head_started().unwrap_or(now);
                self.head.push(deadline(started + self.timeouts.head));
            }
            Wait::Send => self.send.push(deadline(now + self.timeouts.send)),
            Wait::Linger => {
                let since = conn.lingering_since().unwrap_or(now);
                self.linger.push(deadline(since + LINGER));
            }
        }
        slot.place = Place::Waiting { conn, wait, stamp };
        if ready && !rearmed {
            self.dispatch(token, Work::Drive);
        }
    }

    fn expire(&mut self, now: Instant) {
        for wait in [Wait::Idle, Wait::Head, Wait::Send, Wait::Linger] {
            loop {
                let queue = match wait {
                    Wait::Idle => &mut self.idle,
                    Wait::Head => &mut self.head,
                    Wait::Send => &mut self.send,
                    Wait::Linger => &mut self.linger,
                };
                let Some(due) = queue.pop_expired(now) else {
                    break;
                };
                let current = matches!(
                    self.slots.get(due.token),
                    Some(Slot { place: Place::Waiting { wait: w, stamp, .. }, .. })
                        if *w == wait && *stamp == due.stamp
                );
                if !current {
                    continue;
                }
                match wait {
                    Wait::Idle => self.close(due.token, CloseReason::IdleTimeout),
                    Wait::Head => self.dispatch(due.token, Work::HeadTimeout),
                    Wait::Send => self.close(due.token, CloseReason::SendTimeout),
                    Wait::Linger => self.close(due.token, CloseReason::LingerDone),
                }
            }
        }
    }

    /// Closes a waiting connection here, without a worker.
    fn close(&mut self, token: usize, reason: CloseReason) {
        let slot = self.slots.remove(token);
        if let Place::Waiting { conn, .. } = slot.place {
            let (id, peer, served) = (conn.id(), conn.peer(), conn.served());
            drop(conn);
            self.site.log.conn(
                &mut self.line,
                Actor::Poll,
                id,
                peer,
                format_args!("closed ({reason}) after {served} requests"),
            );
        }
    }
}
