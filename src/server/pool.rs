//! The fixed pool of worker threads.
//!
//! Workers take ready connections from the job channel, drive them until they must wait,
//! and hand them back on the done channel, waking the poll thread. A worker never waits on
//! a socket: everything it does on one is non-blocking. The pool exits when the job
//! channel's sender is dropped.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::TcpStream;

use super::Totals;
use super::notifier::Notifier;
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
        if let Some(stats) = &site.stats {
            stats.busy(id, true);
        }
        conn.saw(seen);
        let mut next = drive(&mut conn, work, site, &mut ws, &mut bufs);
        // A read that filled the buffer may have left bytes whose edge was already seen.
        while next == Next::Read && conn.unread() {
            next = drive(&mut conn, Work::Drive, site, &mut ws, &mut bufs);
        }
        if let Some(stats) = &site.stats {
            stats.busy(id, false);
        }
        let outcome = match next {
            Next::Close(reason) => {
                totals.retire(&conn);
                conn.close(reason, site, &mut ws.line, ws.actor);
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
