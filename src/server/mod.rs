//! Serving: the listener, the poll thread and the worker pool, wired together.
//!
//! ```text
//!   clients ──► poll thread ──── Job { token, conn } ────► job channel ──► worker 0..N-1
//!    (mio)      listener, slab,                                               │
//!               deadlines      ◄── Done { token, outcome } + Waker::wake() ───┘
//! ```

pub mod deadline;
pub mod poll;
pub mod pool;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mio::{Poll, Waker};

use crate::config::Config;
use crate::files::DocRoot;
use crate::handler::Site;
use crate::log::Log;
use crate::pages::ErrorPages;
use poll::{PollLoop, Timeouts, WAKER};
use pool::Notifier;

/// Why the server could not start or stopped.
#[derive(Debug)]
pub enum ServerError {
    /// The document root cannot be opened as a directory.
    Root(PathBuf, io::Error),
    /// An error page exists but cannot be read.
    ErrorPages(io::Error),
    /// The address cannot be bound.
    Bind(SocketAddr, io::Error),
    /// Polling, waking or thread creation failed.
    Runtime(io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Root(path, err) => {
                write!(f, "document root {}: {}", path.display(), plain(err))
            }
            ServerError::ErrorPages(err) => write!(f, "error pages: {}", plain(err)),
            ServerError::Bind(addr, err) => write!(f, "cannot listen on {addr}: {}", plain(err)),
            ServerError::Runtime(err) => write!(f, "{}", plain(err)),
        }
    }
}

impl std::error::Error for ServerError {}

/// An I/O error's message without Rust's `(os error N)` suffix.
fn plain(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: mio::net::TcpListener,
    local: SocketAddr,
    site: Arc<Site>,
    workers: usize,
    timeouts: Timeouts,
}

impl Server {
    /// Opens the root, loads the error pages and binds the listener.
    pub fn bind(config: &Config) -> Result<Server, ServerError> {
        let root = DocRoot::open(&config.root)
            .map_err(|err| ServerError::Root(config.root.clone(), err))?;
        let pages =
            ErrorPages::load(config.error_pages.as_deref()).map_err(ServerError::ErrorPages)?;
        let addr = SocketAddr::new(config.bind, config.port);
        let listener =
            mio::net::TcpListener::bind(addr).map_err(|err| ServerError::Bind(addr, err))?;
        let local = listener
            .local_addr()
            .map_err(|err| ServerError::Bind(addr, err))?;
        Ok(Server {
            listener,
            local,
            site: Arc::new(Site {
                root,
                pages,
                keep_alive: config.keep_alive,
                log: Log::new(config.quiet),
            }),
            workers: config.workers.get(),
            timeouts: Timeouts {
                idle: config.keep_alive,
                head: config.head_timeout,
                send: config.send_timeout,
            },
        })
    }

    /// The address actually bound (the port is chosen by the system for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts the pool and runs the poll loop on this thread.
    pub fn run(self) -> Result<(), ServerError> {
        let poll = Poll::new().map_err(ServerError::Runtime)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(ServerError::Runtime)?;
        let notifier = Arc::new(Notifier::new(waker));
        // Unbounded: the poll thread must never block handing work over, and the number of
        // jobs in flight is bounded by the number of connections anyway.
        let (job_tx, job_rx) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let workers = pool::spawn(self.workers, &self.site, &job_rx, &done_tx, &notifier)
            .map_err(ServerError::Runtime)?;
        drop((job_rx, done_tx));
        let result = PollLoop::new(
            poll,
            self.listener,
            job_tx,
            done_rx,
            notifier,
            self.site,
            self.timeouts,
        )
        .and_then(PollLoop::run)
        .map_err(ServerError::Runtime);
        // The loop owned the job sender; with it gone the workers see the channel close.
        for worker in workers {
            let _ = worker.join();
        }
        result
    }
}
