//! Every kind of response passes httplint (a linter for HTTP messages, from PyPI) with no
//! BAD note. The test installs httplint into one virtual environment under the target
//! directory, the only one `cargo test` and `.ci/run` use, and fails, saying why, if it
//! cannot.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{STEP, Server, demo_root};

/// The release we lint with, pinned: a new release's new notes should arrive as a change
/// to this line, not as a failure of whatever commit happens to run next. Its version
/// names the environment, so changing it builds a fresh one.
const HTTPLINT_VERSION: &str = "2026.10.4";

/// How long making the environment may take: a `pip install` from PyPI on a slow link.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);

/// How long one run of the linter may take: a Python start on a machine whose cores are
/// all busy takes seconds, not minutes.
const LINT_LIMIT: Duration = Duration::from_secs(60);

/// What `httplint` itself runs (`httplint/cli/__init__.py`, `-n`), except for two things.
/// The time the exchange happened: `-n` takes the time the linter started, which on a busy
/// machine is seconds after the response left the server, and reports the server's clock
/// that far behind; here it is the time the test received the response, the first
/// argument. And the request's method, the second: the command cannot be told that a
/// response answers HEAD, reads its `Content-Length` as owed content, and, finding none,
/// says nothing at all. This reaches into the command's own module, which the pinned
/// version keeps still.
const LINT_SCRIPT: &str = "\
import sys
from argparse import Namespace
from httplint.cli.http_parser import HttpCliParser, modes
from httplint.i18n import set_locale
head = sys.argv[2] == 'HEAD'
class Parser(HttpCliParser):
    def input_start(self, *args):
        allows_body, is_final = HttpCliParser.input_start(self, *args)
        if head:
            self.linter.is_head_response = True
            allows_body = False
        return allows_body, is_final
with set_locale(None):
    parser = Parser(Namespace(mode=modes.RESPONSE), float(sys.argv[1]))
    parser.handle_input(sys.stdin.buffer.read())
sys.exit(1 if parser.failed else 0)
";

/// The one BAD note excused, and only on a multipart 206: httplint asks every 206 for a
/// `Content-Range` in its head, while RFC 9110 §15.3.7.2 says a server "MUST NOT generate a
/// Content-Range header field in the HTTP header section of a multiple part response"
/// (each part carries its own; `ranges.rs` checks them). nginx answers the same way.
const MULTIPART_MISREAD: &str = "This response is partial, but doesn't have a Content-Range";

/// Writes real brotli and gzip copies beside `path` with the environment's Python, which
/// has brotli because httplint decodes it: httplint reads what a coding says it holds,
/// so the copies must be genuine.
const COMPRESS_SCRIPT: &str = "\
import brotli, gzip, os, sys
path = sys.argv[1]
data = open(path, 'rb').read()
for suffix, packed in (('.br', brotli.compress(data)), ('.gz', gzip.compress(data))):
    with open(path + suffix, 'wb') as out:
        out.write(packed)
    os.chmod(path + suffix, 0o644)
";

/// The virtual environment's Python, with httplint installed; made on first use, once per
/// test process (both models' tests ask at once).
fn httplint_python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(make_venv) {
        Ok(python) => python,
        Err(why) => panic!("httplint is needed for this test and could not be installed: {why}"),
    }
}

/// Makes `target/tmp/httplint-VERSION` unless a finished one is there. A marker written
/// last tells a finished environment from one an interrupted run left half made, and a
/// lock file keeps two test processes sharing this target directory from making it at
/// the same time.
fn make_venv() -> Result<PathBuf, String> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let venv = tmp.join(format!("httplint-{HTTPLINT_VERSION}"));
    let python = venv.join("bin/python");
    let finished = venv.join("installed");
    std::fs::create_dir_all(&tmp).map_err(|err| format!("{}: {err}", tmp.display()))?;
    let lock_path = tmp.join(format!("httplint-{HTTPLINT_VERSION}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .map_err(|err| format!("{}: {err}", lock_path.display()))?;
    let deadline = Instant::now() + INSTALL_LIMIT;
    while lock.try_lock().is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "{} stayed locked for {INSTALL_LIMIT:?}",
                lock_path.display()
            ));
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    if finished.exists() {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|err| format!("{}: {err}", venv.display()))?;
    }
    let mut make = Command::new("python3");
    make.arg("-m").arg("venv").arg(&venv);
    succeeded(&mut make, b"", INSTALL_LIMIT)?;
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--quiet"])
        .arg(format!("httplint=={HTTPLINT_VERSION}"));
    succeeded(&mut pip, b"", INSTALL_LIMIT)?;
    std::fs::write(&finished, HTTPLINT_VERSION)
        .map_err(|err| format!("{}: {err}", finished.display()))?;
    Ok(python)
}

/// Runs `command` to completion, or kills it after `limit`; a failure to start or a
/// non-zero exit is an `Err` naming the command and holding its stderr.
fn succeeded(command: &mut Command, input: &[u8], limit: Duration) -> Result<Output, String> {
    let what = format!("{command:?}");
    let output = run_within(command, input, limit).map_err(|err| format!("{what}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output)
}

/// Runs `command` with `input` on its stdin, killing it if it outlives `limit`.
fn run_within(command: &mut Command, input: &[u8], limit: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Fed and drained on their own threads, so a child that stops reading or writing
    // cannot hold this one past the deadline.
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let Some(status) = testkit::server::wait_for_exit(&mut child, limit)? else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("still running after {limit:?}"),
        ));
    };
    // A child that exited without reading all its input is its own failure to report.
    let _ = feeder.join();
    Ok(Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    })
}

/// The raw bytes of the response to `request` (which asks the server to close), and the
/// time its last byte arrived.
fn raw_response(port: u16, request: &str) -> (Vec<u8>, SystemTime) {
    let mut stream = crate::support::connect(port).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read to close");
    (bytes, SystemTime::now())
}

/// httplint's notes on `response` to a `method` request, judging its dates against
/// `received`.
fn lint(response: &[u8], method: &str, received: SystemTime) -> String {
    let received = received
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let mut command = Command::new(httplint_python());
    command
        .args(["-c", LINT_SCRIPT])
        .arg(format!("{received:.3}"))
        .arg(method);
    let output = run_within(&mut command, response, LINT_LIMIT).expect("run httplint");
    assert!(output.status.success(), "httplint failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn every_kind_of_response_passes_httplint() {
    // Before the server starts: the first run may spend minutes installing.
    let python = httplint_python();
    let root = demo_root();
    let mut compress = Command::new(python);
    compress
        .args(["-c", COMPRESS_SCRIPT])
        .arg(root.path().join("assets/css/main.css"));
    succeeded(&mut compress, b"", LINT_LIMIT).expect("make the precompressed copies");
    let br = "Accept-Encoding: br\r\n";
    let gzip = "Accept-Encoding: gzip, deflate\r\n";
    // Listings on, so that a directory without an index (`/media/`) is linted too; then
    // with `--max-age` the answers that carry it.
    for max_age in [false, true] {
        let mut flags = vec!["--list-dirs"];
        if max_age {
            flags.extend(["--max-age", "600"]);
        }
        let server = Server::start(root.path(), &flags);
        let etag_of = |target: &str, fields: &str| {
            let response = server.ask("GET", target, fields);
            let etag = response.header("etag");
            etag.unwrap_or_else(|| panic!("no ETag for {target}"))
                .to_string()
        };
        let etag = etag_of("/file.txt", "");
        let listing_etag = etag_of("/media/", "");
        let gzip_etag = etag_of("/assets/css/main.css", gzip);
        let cases = [
            (200, "GET /file.txt", String::new()),
            (200, "GET /traverse.jpg", String::new()),
            (206, "GET /gif.gif", "Range: bytes=0-99\r\n".to_string()),
            (206, "HEAD /gif.gif", "Range: bytes=0-99\r\n".to_string()),
            (
                206,
                "GET /gif.gif",
                "Range: bytes=0-9,100-199,-5\r\n".to_string(),
            ),
            (206, "HEAD /gif.gif", "Range: bytes=0-9,-5\r\n".to_string()),
            (200, "GET /assets/css/main.css", br.to_string()),
            (200, "GET /assets/css/main.css", gzip.to_string()),
            (200, "HEAD /assets/css/main.css", gzip.to_string()),
            (200, "GET /assets/css/main.css", String::new()),
            (
                304,
                "GET /assets/css/main.css",
                format!("{gzip}If-None-Match: {gzip_etag}\r\n"),
            ),
            (304, "GET /file.txt", format!("If-None-Match: {etag}\r\n")),
            (301, "GET /media", String::new()),
            (200, "GET /media/", String::new()),
            (200, "HEAD /media/", String::new()),
            (
                304,
                "GET /media/",
                format!("If-None-Match: {listing_etag}\r\n"),
            ),
            (404, "GET /nope", String::new()),
            (405, "DELETE /file.txt", String::new()),
            (412, "GET /file.txt", "If-Match: \"nope\"\r\n".to_string()),
            (416, "GET /file.txt", "Range: bytes=100-\r\n".to_string()),
            (204, "OPTIONS *", String::new()),
            (501, "BREW /", String::new()),
        ];
        for (status, request_line, fields) in cases {
            if max_age && !matches!(status, 200 | 206 | 304) {
                continue;
            }
            let request = format!(
                "{request_line} HTTP/1.1\r\nHost: localhost\r\n{fields}Connection: close\r\n\r\n"
            );
            let (response, received) = raw_response(server.port, &request);
            let status_line = format!("HTTP/1.1 {status} ");
            assert!(
                response.starts_with(status_line.as_bytes()),
                "{request_line} {fields:?}: not {status}"
            );
            let method = request_line.split(' ').next().unwrap_or_default();
            let notes = lint(&response, method, received);
            let what = format!("{request_line} {fields:?} ({status}, {flags:?})");
            // The date was judged at all: with no time to judge it against, httplint says
            // nothing about the clock, and a wrong Date would pass unseen.
            assert!(
                notes.contains("The server's clock"),
                "{what}: no note on Date\n{notes}"
            );
            let head = String::from_utf8_lossy(&response);
            let head = head.split("\r\n\r\n").next().unwrap_or_default();
            let multipart = head.contains("\r\nContent-Type: multipart/byteranges;");
            if multipart {
                assert!(!head.contains("\r\nContent-Range:"), "{what}: {head}");
            }
            let bad: Vec<&str> = notes
                .lines()
                .filter(|l| l.contains("[BAD]"))
                .filter(|l| !(multipart && l.contains(MULTIPART_MISREAD)))
                .collect();
            assert!(bad.is_empty(), "{what}: {bad:?}\n{notes}");
            eprintln!(
                "{what}: no BAD ({} notes)",
                notes.lines().filter(|l| l.starts_with("* [")).count()
            );
        }
    }
}

crate::both_models!(every_kind_of_response_passes_httplint,);
