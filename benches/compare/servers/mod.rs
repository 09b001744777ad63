//! The servers under test: poolhttpd in either model and nginx, each started fresh for
//! every scenario so that its peaks and counters belong to that scenario alone, or a
//! server given with `--url` that the bench only talks to.

pub mod nginx;
mod poolhttpd;

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::docroot::DocRoot;
use crate::endpoint::Endpoint;
use crate::report::ServerInfo;

/// How long a fresh server may take to serve.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM before it is killed. poolhttpd's own
/// grace period is 5 s, and every client connection is closed before the signal.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A poolhttpd threading model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Pool,
    Threads,
}

/// A server a scenario runs against.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Model(Model),
    Nginx(&'a nginx::Installed),
    /// Given with `--url`, already running; named by its `Server` field if it sends one.
    External(&'a Endpoint, &'a str),
}

impl Target<'_> {
    /// The short name of the tables' columns and the JSON's `server` keys.
    pub fn key(&self) -> &'static str {
        match self {
            Target::Model(Model::Pool) => "pool",
            Target::Model(Model::Threads) => "threads",
            Target::Nginx(_) => "nginx",
            Target::External(..) => "other",
        }
    }

    /// What the report says the server is, and how it was started.
    pub fn describe(&self, root: &DocRoot, workers: NonZeroUsize) -> ServerInfo {
        let (label, program, version, args) = match *self {
            Target::Model(model) => (
                match model {
                    Model::Pool => format!("pool ({workers} workers)"),
                    Model::Threads => "thread per connection".to_string(),
                },
                env!("CARGO_BIN_EXE_poolhttpd").to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
                poolhttpd::args(model, root, workers),
            ),
            Target::Nginx(installed) => (
                nginx::LABEL.to_string(),
                installed.path.display().to_string(),
                installed.version.clone(),
                nginx::args(),
            ),
            Target::External(endpoint, name) => (
                name.to_string(),
                endpoint.url.clone().unwrap_or_default(),
                String::new(),
                Vec::new(),
            ),
        };
        ServerInfo {
            key: self.key().to_string(),
            label,
            program,
            version,
            args,
            config: None,
        }
    }
}

/// A server the bench started for one scenario.
pub enum Running {
    Poolhttpd(poolhttpd::Running),
    Nginx(nginx::Running),
}

impl Running {
    /// Starts `target` fresh over `root`; `None` for a server the bench does not start.
    pub fn start(
        target: Target<'_>,
        root: &DocRoot,
        workers: NonZeroUsize,
    ) -> Option<Result<Running, String>> {
        Some(match target {
            Target::Model(model) => {
                poolhttpd::Running::start(model, root, workers).map(Running::Poolhttpd)
            }
            Target::Nginx(installed) => {
                nginx::Running::start(installed, root, workers).map(Running::Nginx)
            }
            Target::External(..) => return None,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::loopback(match self {
            Running::Poolhttpd(server) => server.port(),
            Running::Nginx(server) => server.port(),
        })
    }

    /// Every process of the server: poolhttpd's one, nginx's master and workers.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Running::Poolhttpd(server) => vec![server.pid()],
            Running::Nginx(server) => server.pids(),
        }
    }

    /// The configuration file the bench wrote for it (nginx's).
    pub fn config(&self) -> Option<&str> {
        match self {
            Running::Poolhttpd(_) => None,
            Running::Nginx(server) => Some(server.config()),
        }
    }

    /// Stops it as an operator would, within [`STOP_DEADLINE`]; an error says what went
    /// wrong (it is killed then).
    pub fn stop(self) -> Result<(), String> {
        match self {
            Running::Poolhttpd(server) => server.stop(),
            Running::Nginx(server) => server.stop(),
        }
    }
}
