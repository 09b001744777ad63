//! Integration tests: the real binary, a temporary document root, raw HTTP over sockets.

// First, so that its macro is visible to the modules after it.
#[macro_use]
mod support;

mod cli;
mod connection;
mod demo_site;
mod freshness;
mod fuzz_corpus;
mod garbage;
mod limits;
mod lint;
mod listing;
mod operator;
mod precompressed;
mod protocol;
mod ranges;
mod resolver;
mod robustness;
mod scenarios;
mod traversal;
