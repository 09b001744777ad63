//! The fixed pool of worker threads.
//!
//! Workers take ready connections from the job channel, drive them until they must wait,
//! and hand them back on the done channel, waking the poll thread. A worker never waits on
//! a socket: everything it does on one is non-blocking. The pool exits when the job
//! channel's sender is dropped.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::Waker;
use mio::net::TcpStream;

use super::Totals;
use super::spin::Spin;
use crate::conn::{self, Buffers, Conn, Edges, Next, Wait};
use crate::handler::{Site, Workspace};
use crate::log::Actor;

/// A connection as the pool model moves it between threads: boxed, so that handing it
/// over moves a pointer, not the whole state.
pub type PoolConn = Box<Conn<TcpStream>>;

/// What the poll thread asks of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// The socket is ready: drive the connection.
    Drive,
    /// The deadline of a request still arriving passed: answer 408 and close.
    Expire,
}

/// A connection moving from the poll thread to a worker.
#[derive(Debug)]
pub struct Job {
    pub token: usize,
    pub conn: PoolConn,
    pub work: Work,
    /// Readiness the poll thread saw since the connection last left a worker.
    pub seen: Edges,
}

/// What became of a job's connection.
#[derive(Debug)]
pub enum Outcome {
    /// Back to the poll thread, waiting as its deadline says ([`Conn::deadline`]).
    Wait(PoolConn),
    /// Closed by the worker; the slot is free.
    Closed,
}

/// A connection (or its closing) moving back to the poll thread.
#[derive(Debug)]
pub struct Done {
    pub token: usize,
    pub outcome: Outcome,
}

/// How workers wake the poll thread, and when they need not.
///
/// A result that needs the poll thread soon (a response waiting to be written, a
/// connection to close, one the poll thread already has readiness for) always wakes it,
/// at most once per batch: a worker wakes it only if no wake-up is pending, and the poll
/// thread re-arms before it drains the done channel. A connection that merely goes idle
/// does not: it needs the poll thread only at its idle deadline, or when its next request
/// arrives, which wakes the poll thread anyway. So it wakes the poll thread only if the
/// poll thread plans to sleep past that deadline, or has asked for every result.
///
/// Each side writes what it knows before it reads what the other wrote (the worker sends,
/// then reads the plan; the poll thread stores the plan, then drains the channel), all
/// sequentially consistent, so an idle result is either seen by that drain or wakes the
/// poll thread.
///
/// While the poll thread is awake (between returning from a poll and planning its next
/// sleep) no result wakes it: it takes every result in before it sleeps. That covers the
/// time it spends spinning (see [`super::spin`]), when waking it would only cost the
/// workers a system call.
#[derive(Debug)]
pub struct Notifier {
    waker: Waker,
    /// The poll thread has not yet planned its next sleep.
    awake: AtomicBool,
    pending: AtomicBool,
    /// The poll thread wants every result at once (it is shutting down, or holds readiness
    /// for a connection still with a worker).
    wants_all: AtomicBool,
    /// When the poll thread plans to wake on its own, in nanoseconds after `epoch`.
    sleeps_until: AtomicU64,
    epoch: Instant,
}

impl Notifier {
    /// Wraps the poll thread's one waker.
    pub fn new(waker: Waker) -> Notifier {
        Notifier {
            waker,
            awake: AtomicBool::new(true),
            pending: AtomicBool::new(false),
            wants_all: AtomicBool::new(true),
            sleeps_until: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }

    /// Called by a worker after sending a result the poll thread needs now.
    pub fn notify(&self) {
        // Orders the send before the loads below without relying on how the channel
        // happens to synchronise.
        fence(Ordering::SeqCst);
        if self.awake.load(Ordering::SeqCst) {
            return;
        }
        if !self.pending.swap(true, Ordering::SeqCst) {
            // A failed wake means the poll thread is gone; the result is moot.
            let _ = self.waker.wake();
        }
    }

    /// Called by a worker after sending a connection that waits idle until `due`.
    pub fn notify_idle(&self, due: Instant) {
        // As in `notify`.
        fence(Ordering::SeqCst);
        if self.awake.load(Ordering::SeqCst) {
            return;
        }
        if self.wants_all.load(Ordering::SeqCst)
            || self.sleeps_until.load(Ordering::SeqCst) > self.nanos(due)
        {
            self.notify();
        }
    }

    /// Called by the poll thread as soon as a poll returns: until it plans its next sleep
    /// it takes results in without being woken.
    pub fn awake(&self) {
        self.awake.store(true, Ordering::SeqCst);
    }

    /// Called by the poll thread before it drains the done channel.
    pub fn rearm(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    /// Called by the poll thread before its last drain ahead of sleeping: whether it wants
    /// every result, and when it will wake by itself (`None`: not before an event).
    pub fn plan(&self, wants_all: bool, wake_at: Option<Instant>) {
        self.wants_all.store(wants_all, Ordering::SeqCst);
        let until = wake_at.map_or(u64::MAX, |at| self.nanos(at));
        self.sleeps_until.store(until, Ordering::SeqCst);
        self.awake.store(false, Ordering::SeqCst);
        // Orders the stores above before the drain that follows.
        fence(Ordering::SeqCst);
    }

    fn nanos(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }
}

/// Starts `count` workers. Each returns what it counted when the job channel closes.
pub fn spawn(
    count: usize,
    site: &Arc<Site>,
    timeouts: conn::Timeouts,
    jobs: &Receiver<Job>,
    done: &Sender<Done>,
    notifier: &Arc<Notifier>,
) -> io::Result<Vec<JoinHandle<Totals>>> {
    (0..count)
        .map(|id| {
            let site = Arc::clone(site);
            let jobs = jobs.clone();
            let done = done.clone();
            let notifier = Arc::clone(notifier);
            std::thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || work(id, &site, timeouts, &jobs, &done, &notifier))
        })
        .collect()
}

fn work(
    id: usize,
    site: &Site,
    timeouts: conn::Timeouts,
    jobs: &Receiver<Job>,
    done: &Sender<Done>,
    notifier: &Notifier,
) -> Totals {
    let mut ws = Workspace::new(Actor::Worker(id)).watching(site.root.watcher(id));
    let mut bufs = Buffers::default();
    let mut totals = Totals::default();
    let mut spin = Spin::new();
    while let Some(Job {
        token,
        mut conn,
        work,
        seen,
    }) = next_job(jobs, &mut spin)
    {
        conn.saw(seen);
        let mut next = drive(&mut conn, work, site, &mut ws, &mut bufs);
        // A read that filled the buffer may have left bytes whose edge was already seen.
        while next == Next::Read && conn.unread() {
            next = drive(&mut conn, Work::Drive, site, &mut ws, &mut bufs);
        }
        let outcome = match next {
            Next::Close(reason) => {
                totals.retire(&conn);
                conn.close(reason, &site.log, &mut ws.line, ws.actor);
                Outcome::Closed
            }
            Next::Read | Next::Write => Outcome::Wait(conn),
        };
        // Only a connection going idle can wait for the poll thread to notice it.
        let idle_until = match &outcome {
            Outcome::Wait(conn) => {
                let deadline = conn.deadline(&timeouts);
                (deadline.wait == Wait::Idle).then_some(deadline.at)
            }
            Outcome::Closed => None,
        };
        match done.send(Done { token, outcome }) {
            Ok(()) => match idle_until {
                Some(due) => notifier.notify_idle(due),
                None => notifier.notify(),
            },
            // The poll thread has finished shutting down: close what it can no longer take.
            Err(failed) => {
                if let Outcome::Wait(conn) = failed.0.outcome {
                    totals.retire(&conn);
                }
            }
        }
    }
    totals
}

/// The next job, looked for a little before sleeping (see [`super::spin`]); `None` once
/// the channel has closed.
fn next_job(jobs: &Receiver<Job>, spin: &mut Spin) -> Option<Job> {
    loop {
        let now = Instant::now();
        if !spin.spinning(now) {
            break;
        }
        match jobs.try_recv() {
            Ok(job) => {
                spin.found();
                return Some(job);
            }
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => spin.missed(now),
        }
    }
    let slept_from = Instant::now();
    let job = jobs.recv().ok();
    spin.slept(slept_from.elapsed());
    job
}

/// Drives a connection as `work` asks, a panic costing the connection, never the worker.
fn drive(
    conn: &mut PoolConn,
    work: Work,
    site: &Site,
    ws: &mut Workspace,
    bufs: &mut Buffers,
) -> Next {
    conn::catching(conn, site, ws, bufs, |conn, ws, bufs| match work {
        Work::Drive => conn.drive(site, ws, bufs),
        Work::Expire => conn.expire(site, ws, bufs),
    })
}
