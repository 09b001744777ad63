//! Serving: the listener, the poll thread and the worker pool, wired together.
//!
//! ```text
//!   clients ──► poll thread ──── Job { token, conn } ────► job channel ──► worker 0..N-1
//!    (mio)      listener, slab,                                               │
//!               deadlines      ◄── Done { token, outcome } + Waker::wake() ───┘
//! ```

pub(crate) mod deadline;
pub(crate) mod notifier;
pub(crate) mod poll;
pub(crate) mod pool;
pub(crate) mod spin;
pub(crate) mod threads;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mio::{Poll, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::files::RACY_WINDOW;
use crate::handler::Site;
use notifier::Notifier;
use poll::{PollLoop, WAKER};

pub use poll::Timeouts;

/// How connections are waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// One mio poll thread and a fixed pool of workers (the default).
    Pool,
    /// One thread per connection, as the original server did; for comparison.
    Threads,
}

/// How to serve: where, in which model, with how many threads and connections, and how
/// long to wait. What is served is the [`Site`].
#[derive(Debug)]
pub struct Options {
    pub listen: Listen,
    pub model: Model,
    /// Threads in the worker pool; the thread-per-connection model has none.
    pub workers: NonZeroUsize,
    /// Connections held at once, lowered by [`Server::bind`] if descriptors are short.
    pub max_connections: usize,
    pub timeouts: Timeouts,
    /// How often the poll thread (or, with a thread per connection, a thread of its own)
    /// prints a line of live statistics to stderr; `None`: never, and nothing is counted.
    pub stats: Option<Duration>,
}

/// Where connections come from.
#[derive(Debug)]
pub enum Listen {
    /// A socket bound here; port 0 lets the system choose. With `reuse_port`, other
    /// processes may listen on the same port (`SO_REUSEPORT`), the kernel spreading new
    /// connections among them.
    Address { addr: SocketAddr, reuse_port: bool },
    /// A listening socket handed over by a supervisor (systemd socket activation).
    Inherited(std::net::TcpListener),
}

/// Why the server could not start or stopped.
#[derive(Debug)]
pub enum ServerError {
    /// The document root cannot be opened as a directory (while building the [`Site`]).
    Root(PathBuf, io::Error),
    /// An error page exists but cannot be read (while building the [`Site`]).
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
pub fn plain(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Descriptors the process holds however many connections it serves. At start the pool
/// holds nine (counted in `/proc`): the standard streams (3), the listener, epoll, the
/// waker's eventfd, the signal handler's socket pair (2) and the document root; the
/// thread-per-connection model seven (no epoll, no waker). The rest is room for
/// descriptors a supervisor left open and for short-lived ones, such as the stats thread's
/// read of `/proc`. A fixed number rather than a share: these exist at any limit.
pub const FIXED_FDS: u64 = 16;

/// Descriptors one connection may hold at once: its socket, and a file being sent that the
/// cache does not hold open.
pub const FDS_PER_CONNECTION: u64 = 2;

/// How the process's descriptors are shared out, worked out once at start. Connections get
/// what is left after the fixed descriptors, the workers' inotify instances and the
/// cache's open files; since the cache's share shrinks with the limit
/// ([`crate::cache::descriptor_budget`]), a low limit such as 256 still leaves about a
/// hundred connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Files the cache may hold open.
    pub cache: usize,
    /// inotify instances: one per pool worker, at most [`crate::watch::MAX_INSTANCES`].
    pub watchers: usize,
    /// Connections held at once: what was asked for, or fewer if descriptors are short,
    /// but always at least one.
    pub connections: usize,
}

impl FdBudget {
    /// The shares of a limit of `descriptors` (`None`: unlimited) for `wanted` connections
    /// and `watchers` inotify instances.
    pub fn plan(descriptors: Option<u64>, wanted: usize, watchers: usize) -> FdBudget {
        let cache = crate::cache::descriptor_budget(descriptors);
        let connections = match descriptors {
            None => wanted,
            Some(limit) => {
                let reserved = FIXED_FDS + watchers as u64 + cache as u64;
                let allowed = limit.saturating_sub(reserved) / FDS_PER_CONNECTION;
                wanted.min(usize::try_from(allowed).unwrap_or(usize::MAX))
            }
        };
        FdBudget {
            cache,
            watchers,
            // A server that admits nobody is of no use; with one connection it serves, and
            // running out of descriptors anyway only pauses accepting.
            connections: connections.max(1),
        }
    }
}

/// What the server did, for the summary at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered.
    pub requests: u64,
    /// Bytes written to clients.
    pub bytes: u64,
}

impl Totals {
    /// Counts a connection's requests and bytes as it closes.
    pub fn retire<S: std::os::fd::AsFd>(&mut self, conn: &crate::conn::Conn<S>) {
        self.requests += u64::from(conn.served());
        self.bytes += conn.bytes_sent();
    }
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, other: Totals) {
        self.connections += other.connections;
        self.requests += other.requests;
        self.bytes += other.bytes;
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural =
            |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        write!(
            f,
            "{} {}, {} {}, {} {} sent",
            self.connections,
            plural(self.connections, "connection", "connections"),
            self.requests,
            plural(self.requests, "request", "requests"),
            self.bytes,
            plural(self.bytes, "byte", "bytes"),
        )
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: mio::net::TcpListener,
    local: SocketAddr,
    site: Arc<Site>,
    /// Also says the model: each waits for the signals its own way.
    signals: StopSignals,
    workers: usize,
    max_connections: usize,
    timeouts: Timeouts,
}

impl Server {
    /// Binds the listener for serving `site` as `options` say. The root's file cache is the
    /// server's to choose, since how it learns of changes depends on the model: this
    /// replaces any cache the root came with.
    pub fn bind(site: Site, options: Options) -> Result<Server, ServerError> {
        // Only pool workers watch for changes: a thread per connection would need an
        // inotify instance per connection.
        let watchers = match options.model {
            Model::Pool => options.workers.get().min(crate::watch::MAX_INSTANCES),
            Model::Threads => 0,
        };
        let budget = FdBudget::plan(descriptor_limit(), options.max_connections, watchers);
        let root = match options.model {
            Model::Pool => site
                .root
                .with_watched_cache(RACY_WINDOW, options.workers.get()),
            Model::Threads => site.root.with_cache(RACY_WINDOW),
        }
        .with_cache_descriptors(budget.cache);
        let site = Site { root, ..site };
        let listener = match options.listen {
            Listen::Address { addr, reuse_port } => {
                listen(addr, reuse_port).map_err(|err| ServerError::Bind(addr, err))?
            }
            Listen::Inherited(listener) => {
                listener
                    .set_nonblocking(true)
                    .map_err(ServerError::Runtime)?;
                mio::net::TcpListener::from_std(listener)
            }
        };
        let local = listener.local_addr().map_err(ServerError::Runtime)?;
        let signals = match options.model {
            Model::Pool => {
                signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM]).map(StopSignals::Pool)
            }
            Model::Threads => {
                signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map(StopSignals::Threads)
            }
        }
        .map_err(ServerError::Runtime)?;
        Ok(Server {
            listener,
            local,
            site: Arc::new(site),
            signals,
            workers: options.workers.get(),
            max_connections: budget.connections,
            timeouts: options.timeouts,
        })
    }

    /// Connections held at most: `--max-connections`, or fewer if descriptors are short.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The address actually bound (the port is chosen by the system for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves in the chosen model until SIGINT or SIGTERM has been handled, and returns
    /// what was served.
    pub fn run(self) -> Result<Totals, ServerError> {
        match self.signals {
            StopSignals::Pool(signals) => run_pool(
                self.listener,
                self.site,
                self.workers,
                self.max_connections,
                self.timeouts,
                signals,
            ),
            StopSignals::Threads(signals) => {
                let listener = std::net::TcpListener::from(self.listener);
                threads::run(
                    listener,
                    self.site,
                    self.timeouts,
                    self.max_connections,
                    signals,
                )
                .map_err(ServerError::Runtime)
            }
        }
    }
}

/// SIGINT and SIGTERM, caught from [`Server::bind`] on, before the banner says the server
/// is up: one that arrives before the model's loop runs waits for it there, instead of
/// ending the process where it stands, without its summary.
enum StopSignals {
    /// Registered with the poll thread's `Poll`.
    Pool(signal_hook_mio::v1_0::Signals),
    /// Read by a thread of their own.
    Threads(signal_hook::iterator::Signals),
}

/// The pool model: workers, and the poll loop on this thread.
fn run_pool(
    listener: mio::net::TcpListener,
    site: Arc<Site>,
    workers: usize,
    max_connections: usize,
    timeouts: Timeouts,
    signals: signal_hook_mio::v1_0::Signals,
) -> Result<Totals, ServerError> {
    let poll = Poll::new().map_err(ServerError::Runtime)?;
    let waker = Waker::new(poll.registry(), WAKER).map_err(ServerError::Runtime)?;
    let notifier = Arc::new(Notifier::new(waker));
    // Unbounded: the poll thread must never block handing work over, and the number of
    // jobs in flight is bounded by the number of connections anyway.
    let (job_tx, job_rx) = crossbeam_channel::unbounded();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let workers = pool::spawn(
        workers,
        &site,
        timeouts.conn(),
        &job_rx,
        &done_tx,
        &notifier,
    )
    .map_err(ServerError::Runtime)?;
    drop((job_rx, done_tx));
    let result = PollLoop::new(
        poll,
        listener,
        signals,
        max_connections,
        job_tx,
        done_rx,
        notifier,
        site,
        timeouts,
    )
    .and_then(PollLoop::run)
    .map_err(ServerError::Runtime);
    // The loop owned the job sender; with it gone the workers see the channel close.
    let mut totals = Totals::default();
    for worker in workers {
        if let Ok(counted) = worker.join() {
            totals += counted;
        }
    }
    result.map(|counted| {
        totals += counted;
        totals
    })
}

/// Connections the kernel may queue before we accept them. The usual default of 128
/// overflows under a burst of new connections, and an overflowing queue drops handshakes
/// that clients then retry a second later; the kernel caps this at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listening socket with [`LISTEN_BACKLOG`] (mio's own `bind` uses 128),
/// shared with other processes if `reuse_port`.
fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<mio::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let socket = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    sockopt::set_socket_reuseaddr(&socket, true)?;
    if reuse_port {
        sockopt::set_socket_reuseport(&socket, true)?;
    }
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, LISTEN_BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(
        std::net::TcpListener::from(socket),
    ))
}

/// The process's limit on open descriptors (`None`: unlimited), after raising the soft
/// limit to the hard one, as servers do, since the default soft limit (often 1024) is far
/// below what a server needs.
fn descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 12): at `ulimit -n 256` the reservations took every descriptor
    /// (64 fixed, 32 inotify instances, 256 for the cache) and left one connection.
    #[test]
    fn descriptors_are_shared_out_in_proportion() {
        // (limit, asked for, inotify instances) → (cache, connections)
        let table: [(Option<u64>, usize, usize, usize, usize); 10] = [
            (Some(256), 10_000, 2, 32, 103),
            (Some(256), 10_000, 0, 32, 104),
            (Some(256), 10_000, 32, 32, 88),
            (Some(256), 50, 2, 32, 50),
            (Some(1024), 10_000, 2, 128, 439),
            (Some(1024), 10_000, 0, 128, 440),
            (Some(4096), 10_000, 2, 256, 1911),
            (Some(20_000), 10_000, 2, 256, 9863),
            (Some(16), 10_000, 2, 2, 1),
            (None, 10_000, 2, 256, 10_000),
        ];
        for (limit, wanted, watchers, cache, connections) in table {
            let budget = FdBudget::plan(limit, wanted, watchers);
            let expected = FdBudget {
                cache,
                watchers,
                connections,
            };
            assert_eq!(budget, expected, "limit {limit:?}, {wanted} asked for");
            if let Some(limit) = limit.filter(|_| connections > 1) {
                let used = FIXED_FDS
                    + watchers as u64
                    + cache as u64
                    + connections as u64 * FDS_PER_CONNECTION;
                assert!(used <= limit, "{used} descriptors of {limit}");
            }
        }
    }
}
