//! Every kind of response passes httplint (a linter for HTTP messages, from PyPI) with no
//! BAD note. `.ci/run` installs it; elsewhere the test installs it into a virtual
//! environment under the target directory, or says why it skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{STEP, Server, demo_root};

/// Finds httplint: `POOLHTTPD_HTTPLINT`, then `PATH`, then a virtual environment of our own
/// (created on first use).
fn httplint() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("POOLHTTPD_HTTPLINT") {
        return Ok(PathBuf::from(path));
    }
    if Command::new("httplint")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(PathBuf::from("httplint"));
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("httplint-venv");
    let linter = venv.join("bin/httplint");
    if !linter.exists() {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .output();
        if !made.as_ref().is_ok_and(|o| o.status.success()) {
            return Err(format!("python3 -m venv failed: {made:?}"));
        }
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "httplint"])
            .output();
        if !pip.as_ref().is_ok_and(|o| o.status.success()) {
            return Err(format!("pip install httplint failed: {pip:?}"));
        }
    }
    Ok(linter)
}

/// The raw bytes of the response to `request` (which asks the server to close).
fn raw_response(port: u16, request: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read to close");
    bytes
}

fn lint(linter: &PathBuf, response: &[u8]) -> String {
    let mut child = Command::new(linter)
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run httplint");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(response)
        .expect("feed httplint");
    let output = child.wait_with_output().expect("httplint output");
    assert!(output.status.success(), "httplint failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn every_kind_of_response_passes_httplint() {
    let linter = match httplint() {
        Ok(linter) => linter,
        Err(why) => {
            eprintln!("skipped: httplint unavailable: {why}");
            return;
        }
    };
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let etag = server
        .client()
        .get("/file.txt")
        .header("etag")
        .expect("ETag")
        .to_string();
    let cases = [
        (200, "GET /file.txt", String::new()),
        (200, "GET /traverse.jpg", String::new()),
        (206, "GET /gif.gif", "Range: bytes=0-99\r\n".to_string()),
        (304, "GET /file.txt", format!("If-None-Match: {etag}\r\n")),
        (301, "GET /media", String::new()),
        (404, "GET /nope", String::new()),
        (405, "DELETE /file.txt", String::new()),
        (412, "GET /file.txt", "If-Match: \"nope\"\r\n".to_string()),
        (416, "GET /file.txt", "Range: bytes=100-\r\n".to_string()),
        (204, "OPTIONS *", String::new()),
        (501, "BREW /", String::new()),
    ];
    for (status, request_line, fields) in cases {
        let request = format!(
            "{request_line} HTTP/1.1\r\nHost: localhost\r\n{fields}Connection: close\r\n\r\n"
        );
        let response = raw_response(server.port, &request);
        let status_line = format!("HTTP/1.1 {status} ");
        assert!(
            response.starts_with(status_line.as_bytes()),
            "{request_line}: {status}"
        );
        let notes = lint(&linter, &response);
        let bad: Vec<&str> = notes.lines().filter(|l| l.contains("[BAD]")).collect();
        assert!(
            bad.is_empty(),
            "{request_line} ({status}): {bad:?}\n{notes}"
        );
        eprintln!(
            "{status} {request_line}: no BAD ({} notes)",
            notes.lines().filter(|l| l.starts_with("* [")).count()
        );
    }
}

crate::both_models!(every_kind_of_response_passes_httplint,);
