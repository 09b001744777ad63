//! What poolhttpd's integration tests (`tests/it`) and its benchmark (`benches/compare`)
//! share, so that each exists once: starting the binary and reading its port from the
//! banner ([`server`]), reading a process's threads, memory, CPU time and context switches
//! from `/proc` ([`procfs`]), raising the descriptor limit ([`limits`]), generating files
//! ([`files`]), and reading responses strictly ([`response`], and the blocking
//! [`client`] built on it; the bench's non-blocking load generator uses the same reader).
//!
//! Nothing here knows where the binary is: `CARGO_BIN_EXE_poolhttpd` exists only in the
//! root package's tests and benches, so callers build the command and pass it in. Every
//! wait is bounded by a limit the caller gives.

pub mod client;
pub mod files;
pub mod limits;
pub mod procfs;
pub mod response;
pub mod server;

use std::time::{Duration, Instant};

/// How often [`until`] looks again: short against any limit a test sets, long enough not to
/// load the machine it measures.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Polls `check` every [`POLL_INTERVAL`] until it holds (`true`) or `limit` passes
/// (`false`). Tests never sleep to synchronise: they wait for a condition, bounded.
pub fn until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(POLL_INTERVAL);
    }
}
