//! Integration tests: the real binary, a temporary document root, raw HTTP over sockets.

mod cli;
mod connection;
mod lint;
mod protocol;
mod resolver;
mod robustness;
mod scenarios;
mod support;
mod traversal;
