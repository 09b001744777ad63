//! No input may panic a thread or stop the server: generated requests, from well-formed to
//! garbage, each on its own connection, then a normal request that must still be served.

use std::io::{Read, Write};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::{STEP, Server, demo_root};

/// Generated inputs thrown per model.
const INPUTS: u32 = 400;

/// Pieces of request heads, right and wrong, that generated inputs are built from.
const PIECES: &[&str] = &[
    "GET ",
    "HEAD ",
    "POST ",
    "OPTIONS ",
    "BREW ",
    "/",
    "/file.txt",
    "/index.html",
    "/gif.gif",
    "/..",
    "%2e",
    "%00",
    "%",
    "*",
    "http://h/",
    " HTTP/1.1",
    " HTTP/1.0",
    " HTTP/2.0",
    "\r\n",
    "\n",
    "\r",
    " ",
    ":",
    "Host: a\r\n",
    "Host: a\r\n",
    "Content-Length: 5\r\n",
    "Content-Length: -1\r\n",
    "Content-Length: 99999999999999999999\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip\r\n",
    "Expect: 100-continue\r\n",
    "Range: bytes=0-1\r\n",
    "Range: bytes=-0\r\n",
    "Range: bytes=5-1\r\n",
    "Range: bytes=99999999999999999999-\r\n",
    "If-None-Match: *\r\n",
    "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    "If-Range: \"x\"\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive\r\n",
    "0\r\n\r\n",
    "5\r\nhello\r\n",
    "fffffffffffffffffff\r\n",
    "\u{0}",
    "\u{7f}",
    "é",
    "\t",
];

fn input() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec());
    let noise = prop::collection::vec(any::<u8>(), 0..8);
    let part = prop_oneof![4 => piece, 1 => noise];
    prop::collection::vec(part, 0..24).prop_map(|parts| parts.concat())
}

/// Sends `bytes`, closes our side, and reads whatever comes back until the server closes
/// (or a short while passes: a kept-alive connection waits for more).
fn throw(port: u16, bytes: &[u8]) {
    let Ok(mut stream) = crate::support::connect(port) else {
        panic!("the server stopped accepting");
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
}

fn generated_input_never_panics_the_server() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--workers", "2", "--quiet"]);
    let mut runner = TestRunner::new(Config::with_cases(INPUTS));
    runner
        .run(&input(), |bytes| {
            throw(server.port, &bytes);
            Ok(())
        })
        .expect("every input was thrown");
    assert_eq!(server.client().get("/file.txt").status, 200);
    // The server took every input as a connection of its own (one more for the request
    // above), and after them all still shuts down cleanly when asked.
    server.signal(rustix::process::Signal::TERM);
    let exit = server.wait_exit(STEP);
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    let summary = exit.stdout.last().cloned().unwrap_or_default();
    let connections = format!("Server stopped: {} connections, ", INPUTS + 1);
    assert!(summary.starts_with(&connections), "{summary}");
    // Read once the server has exited, so no panic message can still be on its way.
    assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
}

crate::both_models!(generated_input_never_panics_the_server);
