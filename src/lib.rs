//! poolhttpd: a static-file HTTP/1.1 server built as one mio poll thread feeding a fixed
//! pool of worker threads.
//!
//! ```text
//!   clients ──► poll thread ──── Job { token, conn } ────► job channel ──► worker 0..N-1
//!    (mio)      listener, slab,                                               │
//!               deadlines      ◄── Done { token, outcome } + Waker::wake() ───┘
//! ```
//!
//! # Ownership contract
//! - A connection ([`conn::Conn`]) is owned by exactly one thread at a time. While it waits
//!   for its client it lives in the poll thread's slab, registered with mio, with a
//!   deadline. When its socket is ready the poll thread moves it into a
//!   [`server::pool::Job`]; the worker that receives it owns it until it sends it back in a
//!   [`server::pool::Done`] (waking the poll thread) or drops it, closing the socket.
//! - Nothing else is shared but the channels, the waker (with the notifier's plan of when
//!   the poll thread needs waking, [`server::notifier::Notifier`]), read-only `Arc`s
//!   ([`handler::Site`]: the document root, error pages and settings), the file cache,
//!   built for sharing ([`cache`]), and its change watch ([`watch`]). There is no lock
//!   around a connection.
//! - Workers never block on a socket: sockets are non-blocking, and a worker drives a
//!   connection only until it must wait ([`conn::Next`]).
//! - Readiness is edge-triggered: whoever owns a socket reads it until a read comes back
//!   short (the socket is then empty, and new bytes raise a new edge) before it waits;
//!   readiness that arrives while a worker holds the connection is remembered by the poll
//!   thread and handed over with the connection when it next goes to a worker.
//! - Pool threads look for work briefly before they sleep ([`server::spin`]): waking a
//!   sleeping thread costs more than looking again.
//!
//! # Modules
//! [`config`] reads the command line; [`server`] runs the poll thread ([`server::poll`])
//! and the pool ([`server::pool`]); [`conn`] is one connection's state machine; [`handler`]
//! decides each answer; [`http`] parses requests and writes response heads; [`files`] maps
//! targets to files under the root with every refusal, and [`listing`] lists a directory
//! without an index when asked to; [`cache`] keeps files ready to serve and [`watch`]
//! tells it of changes on disk; [`log`] prints who served whom.
//! [`server::threads`] is the thread-per-connection model, kept for comparison.

#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub(crate) mod conn;
pub mod files;
#[doc(hidden)]
pub mod fuzz;
pub mod handler;
pub(crate) mod http;
pub mod listing;
pub mod log;
pub mod pages;
pub mod server;
pub mod stats;
pub(crate) mod watch;
