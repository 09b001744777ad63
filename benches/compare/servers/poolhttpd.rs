//! poolhttpd itself, in either model, started from the release build through the test
//! kit, which reads its port from the banner.

use std::num::NonZeroUsize;
use std::process::Command;

use testkit::server::Server;

use super::{Model, STARTUP_DEADLINE, STOP_DEADLINE};
use crate::docroot::DocRoot;

/// The server's keep-alive, in seconds: far beyond a run, so that no connection (the idle
/// ones above all) is closed by the server during the bench.
const KEEP_ALIVE_SECS: &str = "60";

/// The flags each model runs with: quiet, on loopback, port 0, the long keep-alive, and
/// for the pool as many workers as nginx gets worker processes (one per core, as the pool
/// would choose by itself, but given explicitly so that they provably match).
pub fn args(model: Model, root: &DocRoot, workers: NonZeroUsize) -> Vec<String> {
    let mut args: Vec<String> = ["--root", &root.dir.display().to_string()]
        .iter()
        .chain(&["--port", "0", "--bind", "127.0.0.1", "--quiet"])
        .chain(&["--keep-alive", KEEP_ALIVE_SECS])
        .map(|arg| arg.to_string())
        .collect();
    args.extend(match model {
        Model::Pool => ["--model", "pool", "--workers", &workers.to_string()]
            .map(String::from)
            .to_vec(),
        Model::Threads => ["--model", "threads"].map(String::from).to_vec(),
    });
    args
}

/// A poolhttpd process on a free loopback port; dropping it kills it.
pub struct Running(Server);

impl Running {
    pub fn start(model: Model, root: &DocRoot, workers: NonZeroUsize) -> Result<Running, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_poolhttpd"));
        command.args(args(model, root, workers));
        Server::spawn(command, STARTUP_DEADLINE)
            .map(Running)
            .map_err(|err| err.to_string())
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// SIGTERM and a bounded wait; what it printed to stderr is passed on.
    pub fn stop(self) -> Result<(), String> {
        let (result, exit) = match self.0.terminate(STOP_DEADLINE) {
            Ok(exit) => (Ok(()), exit),
            Err((why, exit)) => (Err(why), exit),
        };
        if !exit.stderr.is_empty() {
            eprint!("[poolhttpd] {}", exit.stderr);
        }
        result
    }
}
