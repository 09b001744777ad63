//! The fixed pool of worker threads.
//!
//! Workers take ready connections from the job channel, drive them until they must wait,
//! and hand them back on the done channel, waking the poll thread. A worker never waits on
//! a socket: everything it does on one is non-blocking. The pool exits when the job
//! channel's sender is dropped.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use mio::net::TcpStream;

use super::Totals;
use crate::conn::{self, Conn, Next};
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
    /// The request head deadline passed: answer 408 and close.
    HeadTimeout,
}

/// A connection moving from the poll thread to a worker.
#[derive(Debug)]
pub struct Job {
    pub token: usize,
    pub conn: PoolConn,
    pub work: Work,
}

/// What became of a job's connection.
#[derive(Debug)]
pub enum Outcome {
    /// Back to the poll thread, waiting for `Next::Read` or `Next::Write`.
    Wait(PoolConn, Next),
    /// Closed by the worker; the slot is free.
    Closed,
}

/// A connection (or its closing) moving back to the poll thread.
#[derive(Debug)]
pub struct Done {
    pub token: usize,
    pub outcome: Outcome,
}

/// Wakes the poll thread at most once per batch of results: a worker wakes it only if no
/// wake-up is already pending, and the poll thread re-arms before it drains the done
/// channel, so no result can be left unseen.
#[derive(Debug)]
pub struct Notifier {
    waker: Waker,
    pending: AtomicBool,
}

impl Notifier {
    /// Wraps the poll thread's one waker.
    pub fn new(waker: Waker) -> Notifier {
        Notifier {
            waker,
            pending: AtomicBool::new(false),
        }
    }

    /// Called by a worker after sending a result.
    pub fn notify(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            // A failed wake means the poll thread is gone; the result is moot.
            let _ = self.waker.wake();
        }
    }

    /// Called by the poll thread before it drains the done channel.
    pub fn rearm(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }
}

/// Starts `count` workers. Each returns what it counted when the job channel closes.
pub fn spawn(
    count: usize,
    site: &Arc<Site>,
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
                .spawn(move || work(id, &site, &jobs, &done, &notifier))
        })
        .collect()
}

fn work(
    id: usize,
    site: &Site,
    jobs: &Receiver<Job>,
    done: &Sender<Done>,
    notifier: &Notifier,
) -> Totals {
    let mut ws = Workspace::new(Actor::Worker(id));
    let mut totals = Totals::default();
    while let Ok(Job {
        token,
        mut conn,
        work,
    }) = jobs.recv()
    {
        let next = drive(&mut conn, work, site, &mut ws);
        let outcome = match next {
            Next::Close(reason) => {
                totals.retire(&conn);
                let (id, peer, served) = (conn.id(), conn.peer(), conn.served());
                drop(conn);
                site.log
                    .closed(&mut ws.line, ws.actor, id, peer, reason, served);
                Outcome::Closed
            }
            next => Outcome::Wait(conn, next),
        };
        match done.send(Done { token, outcome }) {
            Ok(()) => notifier.notify(),
            // The poll thread has finished shutting down: close what it can no longer take.
            Err(failed) => {
                if let Outcome::Wait(conn, _) = failed.0.outcome {
                    totals.retire(&conn);
                }
            }
        }
    }
    totals
}

/// Drives a connection as `work` asks, a panic costing the connection, never the worker.
fn drive(conn: &mut PoolConn, work: Work, site: &Site, ws: &mut Workspace) -> Next {
    conn::catching(conn, site, ws, |conn, ws| match work {
        Work::Drive => conn.drive(site, ws),
        Work::HeadTimeout => conn.expire_head(site, ws),
    })
}
