//! What the operator sees and sets (issue 11): the banner, the timestamps, the three log
//! formats, colour, live statistics, `--reuse-port`, socket activation, running installed
//! (no `scu/` or `error/` at hand), what ^C leaves on a terminal, and the new flags' bad
//! values. Each test starts the real binary and reads what an operator would read: its
//! stdout and stderr through pipes, or, where a terminal changes the answer, a
//! pseudo-terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use rustix::process::Signal;

use crate::support::{Client, Exit, STEP, Server, demo_root, error_page, manifest_dir, model};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_poolhttpd")
}

/// The arguments [`Server::command`] passes, with a port of our choosing, for commands
/// that start the binary themselves (a wrapper, a terminal).
fn server_args(root: &Path, port: u16, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "-document_root".into(),
        root.into(),
        "-port".into(),
        port.to_string().into(),
        "--error-pages".into(),
        manifest_dir().join("error").into(),
        "--model".into(),
        model().into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    args
}

/// The binary, run as [`Server::command`] runs it but on `port`.
fn command_on(root: &Path, port: u16, extra: &[&str]) -> Command {
    let mut command = Command::new(bin());
    command.args(server_args(root, port, extra));
    command
}

/// Runs `command` to its end with nothing on stdin, killing it if it outlives [`STEP`].
fn output_within(command: &mut Command) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + STEP;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not exit within {STEP:?}");
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
    child.wait_with_output()
}

/// Runs `command` to its end, as [`output_within`].
fn run_to_exit(mut command: Command) -> Output {
    output_within(&mut command).expect("run the command")
}

/// The process refused to start: status 2 and one line on stderr that mentions `mention`.
fn fails_clearly(output: &Output, mention: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("poolhttpd: "), "{stderr:?}");
    assert!(
        stderr.contains(mention),
        "{stderr:?} does not mention {mention:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

/// SIGTERM, then everything the server printed once it has exited.
fn stop(server: Server) -> Exit {
    server.signal(Signal::TERM);
    server.wait_exit(STEP)
}

/// The banner's fourth line, `Serving …`, which follows the three the harness waits for.
fn serving_line(server: &Server) -> String {
    let line = server
        .wait_for_log(|line| line.starts_with("Serving "))
        .expect("the banner's fourth line, Serving …");
    assert_eq!(server.log().get(3), Some(&line), "not the fourth line");
    line
}

/// How the fourth line names the threads, for `--workers N` in the current model.
fn runs_with(workers: usize) -> String {
    match (model(), workers) {
        ("pool", 1) => "a pool of 1 worker".to_string(),
        ("pool", n) => format!("a pool of {n} workers"),
        _ => "one thread per connection".to_string(),
    }
}

/// Splits a worker-format line into its timestamp, which must have the shape
/// `YYYY-MM-DD HH:MM:SS.mmm `, and the rest.
fn stamped(line: &str) -> (DateTime, &str) {
    let (stamp, rest) = crate::support::split_stamp(line);
    let time = DateTime::strptime("%Y-%m-%d %H:%M:%S%.f", &stamp[..23])
        .unwrap_or_else(|err| panic!("{line:?}: {err}"));
    (time, rest)
}

/// `at` lies in the span from `before` to `after`, give or take a second (stamps are
/// truncated to the millisecond or the second).
fn assert_between(at: Timestamp, before: Timestamp, after: Timestamp, line: &str) {
    let ms = at.as_millisecond();
    assert!(
        before.as_millisecond() - 1000 <= ms && ms <= after.as_millisecond() + 1000,
        "{at} is not between {before} and {after}: {line:?}"
    );
}

/// Sends raw bytes on a new connection and reads until the server closes it.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = crate::support::connect(port).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read to the close");
    answer
}

/// Sends one raw request on a new connection and reads its response.
fn raw(server: &Server, request: &[u8]) -> crate::support::Response {
    let mut client = server.client();
    client.send(request);
    client.response()
}

/// Lines on stdout that say something about a request (quoted request line).
fn request_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| line.contains('"'))
        .cloned()
        .collect()
}

/// Waits until `count` request lines are on stdout.
fn wait_for_requests(server: &Server, count: usize) {
    server.eventually(&format!("{count} request lines"), |s| {
        request_lines(&s.log()).len() >= count
    });
}

// ---------------------------------------------------------------------------------------
// 1. The banner

fn banner_is_the_originals_three_lines_then_what_runs() {
    let root = demo_root();
    let shown = root.path().display();
    let table: &[(&[&str], &str)] = if model() == "pool" {
        &[
            (&["--workers", "1"], "a pool of 1 worker"),
            (&["--workers", "3"], "a pool of 3 workers"),
        ]
    } else {
        &[(&["--workers", "3"], "one thread per connection")]
    };
    for (extra, threads) in table {
        let server = Server::start(root.path(), extra);
        let port = server.port;
        let serving = serving_line(&server);
        assert_eq!(
            server.log()[..4],
            [
                format!("Using directory {shown} and port {port} for server."),
                "Starting Server...".to_string(),
                format!("Access Server at http://localhost:{port}/"),
                format!("Serving {shown} with {threads} on 127.0.0.1:{port} (keep-alive 3s)"),
            ]
        );
        assert_eq!(serving, server.log()[3]);
    }
    let server = Server::start(root.path(), &["--keep-alive", "0.5", "--workers", "2"]);
    assert_eq!(
        serving_line(&server),
        format!(
            "Serving {shown} with {} on 127.0.0.1:{} (keep-alive 0.5s)",
            runs_with(2),
            server.port
        )
    );
}

fn banner_shows_the_real_ipv6_address() {
    let root = demo_root();
    let shown = root.path().display();
    for (bind, address) in [("::1", "[::1]"), ("::", "[::]")] {
        let server = Server::start(root.path(), &["--bind", bind, "--workers", "2"]);
        let port = server.port;
        assert_eq!(
            server.banner[2],
            format!("Access Server at http://localhost:{port}/")
        );
        assert_eq!(
            serving_line(&server),
            format!(
                "Serving {shown} with {} on {address}:{port} (keep-alive 3s)",
                runs_with(2)
            )
        );
        // Answered over IPv6 loopback.
        let peer = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&peer, STEP).expect("connect over IPv6");
        stream.set_read_timeout(Some(STEP)).expect("timeout");
        stream
            .write_all(b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("response");
        assert!(
            answer.starts_with(b"HTTP/1.1 200 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Timestamps

/// Every line after the banner but the summary is stamped with the local time: checked
/// against the clock in UTC, and in a zone 5:30 east of it (a POSIX `TZ`, which needs no
/// time zone database), so that a stamp in UTC regardless of `TZ` fails.
fn every_worker_format_line_starts_with_the_local_time() {
    let root = demo_root();
    for (tz, east) in [("UTC", 0), ("XYZ-05:30", 5 * 3600 + 30 * 60)] {
        let offset = Offset::from_seconds(east).expect("offset");
        let before = Timestamp::now();
        let mut command = Server::command(root.path(), &["--workers", "2", "--color", "never"]);
        command.env("TZ", tz);
        let server = Server::spawn(command);
        let mut client = server.client();
        assert_eq!(client.get("/file.txt").status, 200);
        assert_eq!(client.get("/nope").status, 404);
        drop(client);
        server.eventually("the connection's close line", |s| {
            s.log().iter().any(|line| line.contains(" closed ("))
        });
        let exit = stop(server);
        let after = Timestamp::now();
        let (summary, lines) = exit.stdout[4..].split_last().expect("lines");
        assert!(summary.starts_with("Server stopped: "), "{summary}");
        for kind in [
            "\"GET /file.txt ",
            "\"GET /nope ",
            " open",
            " closed (",
            "shutting down",
        ] {
            assert!(
                lines.iter().any(|line| line.contains(kind)),
                "no {kind:?} line in {lines:#?}"
            );
        }
        for line in lines {
            let (local, _) = stamped(line);
            let at = offset.to_timestamp(local).expect("timestamp");
            assert_between(at, before, after, &format!("TZ={tz}: {line}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. --log-format combined

/// `goaccess FILE --log-format=COMBINED -o report.json`: its count of valid and failed
/// requests. goaccess is a Debian package (`.ci/run` installs it); without it the test
/// fails, saying so.
fn goaccess_counts(log: &Path) -> (u64, u64, u64) {
    let dir = log.parent().expect("folder");
    let report = dir.join("report.json");
    let mut command = Command::new("goaccess");
    command
        .current_dir(dir)
        .arg(log)
        .args([
            "--no-global-config",
            "--log-format=COMBINED",
            "--no-progress",
        ])
        .arg("-o")
        .arg(&report);
    let output = match output_within(&mut command) {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "goaccess is not installed, and this test checks the combined log with it: \
             apt-get install -y goaccess (.ci/run does)"
        ),
        Err(err) => panic!("goaccess: {err}"),
    };
    assert!(
        output.status.success(),
        "goaccess failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report.json")).expect("JSON");
    let count = |key: &str| {
        report["general"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no general.{key} in goaccess's report"))
    };
    (
        count("total_requests"),
        count("valid_requests"),
        count("failed_requests"),
    )
}

fn combined_is_nginxs_format_and_goaccess_reads_it() {
    let root = demo_root();
    let before = Timestamp::now();
    // Colour is for the worker format only: asking for it must not reach these lines.
    let mut command = Server::command(
        root.path(),
        &["--log-format", "combined", "--color", "always"],
    );
    command.env("TZ", "XYZ-05:30");
    let server = Server::spawn(command);
    let mut client = server.client();
    client.send(
        b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test/1.0 (operator)\r\n\
          Referer: http://localhost/index.html\r\n\r\n",
    );
    assert_eq!(client.response().status, 200);
    client.send(b"HEAD /file.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(client.head_response().status, 200);
    assert_eq!(server.client().get("/nope").status, 404);
    assert_eq!(server.client().get("/assets").status, 301);
    let agent = b"GET /file.txt HTTP/1.0\r\nUser-Agent: tab\there \"quoted\"\r\n\r\n";
    assert_eq!(raw(&server, agent).status, 200);
    assert_eq!(
        raw(&server, b"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n").status,
        400
    );
    let want = [
        "\"GET /file.txt HTTP/1.1\" 200 22 \"http://localhost/index.html\" \"test/1.0 (operator)\""
            .to_string(),
        "\"HEAD /file.txt HTTP/1.1\" 200 0 \"-\" \"-\"".to_string(),
        format!(
            "\"GET /nope HTTP/1.1\" 404 {} \"-\" \"-\"",
            error_page(404).len()
        ),
        "\"GET /assets HTTP/1.1\" 301 0 \"-\" \"-\"".to_string(),
        "\"GET /file.txt HTTP/1.0\" 200 22 \"-\" \"tab\\x09here \\x22quoted\\x22\"".to_string(),
        format!(
            "\"- malformed request head\" 400 {} \"-\" \"-\"",
            error_page(400).len()
        ),
    ];
    wait_for_requests(&server, want.len());
    let exit = stop(server);
    let after = Timestamp::now();

    // stdout: the banner, the request lines, the summary; nothing else.
    assert_eq!(exit.stdout.len(), 4 + want.len() + 1, "{:#?}", exit.stdout);
    assert!(exit.stdout[3].starts_with("Serving "), "{:#?}", exit.stdout);
    let (summary, lines) = exit.stdout[4..].split_last().expect("lines");
    assert!(summary.starts_with("Server stopped: "), "{summary}");
    let mut tails = Vec::new();
    for line in lines {
        // 127.0.0.1 - - [27/Nov/2026:21:05:03 +0530] "GET / HTTP/1.1" 200 …
        let rest = line
            .strip_prefix("127.0.0.1 - - [")
            .unwrap_or_else(|| panic!("{line:?}"));
        let (time, tail) = rest.split_once("] ").unwrap_or_else(|| panic!("{line:?}"));
        assert!(time.ends_with(" +0530"), "not local time: {line:?}");
        let at = Timestamp::strptime("%d/%b/%Y:%H:%M:%S %z", time)
            .unwrap_or_else(|err| panic!("{line:?}: {err}"));
        assert_between(at, before, after, line);
        tails.push(tail.to_string());
    }
    // Lines are written as responses finish, which need not be the order they were sent.
    let mut want = want.to_vec();
    want.sort();
    tails.sort();
    assert_eq!(tails, want);

    // Connection lines and notes go to stderr.
    assert!(
        exit.stderr.contains(" conn 0 127.0.0.1:"),
        "{}",
        exit.stderr
    );
    assert!(exit.stderr.contains("shutting down"), "{}", exit.stderr);
    assert!(!exit.stderr.contains("\"GET"), "{}", exit.stderr);

    let dir = tempfile::tempdir().expect("temporary directory");
    let log = dir.path().join("access.log");
    std::fs::write(&log, lines.join("\n") + "\n").expect("write access.log");
    let n = lines.len() as u64;
    assert_eq!(goaccess_counts(&log), (n, n, 0), "total, valid, failed");
}

// ---------------------------------------------------------------------------------------
// 4. --log-format json, and what reaches the worker format

fn json_is_one_object_per_request() {
    let root = demo_root();
    let before = Timestamp::now();
    let mut command = Server::command(root.path(), &["--log-format", "json", "--workers", "2"]);
    command.env("TZ", "UTC");
    let server = Server::spawn(command);
    let mut kept = server.client();
    kept.send(b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test/2.0\r\n\r\n");
    assert_eq!(kept.response().status, 200);
    assert_eq!(kept.get("/nope").status, 404);
    let mut other = server.client();
    assert_eq!(other.get("/a%1b").status, 404);
    let mut refused = server.client();
    refused.send(b"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused.response().status, 400);
    wait_for_requests(&server, 4);
    let exit = stop(server);
    let after = Timestamp::now();

    let (summary, lines) = exit.stdout[4..].split_last().expect("lines");
    assert!(summary.starts_with("Server stopped: "), "{summary}");
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let actor = if model() == "pool" {
        "worker"
    } else {
        "thread"
    };
    let mut by_target = BTreeMap::new();
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?}: {err}"));
        let keys: BTreeSet<&str> = value
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"))
            .keys()
            .map(String::as_str)
            .collect();
        let want: BTreeSet<&str> = [
            "ts",
            actor,
            "conn",
            "peer",
            "method",
            "target",
            "version",
            "status",
            "bytes",
            "duration_us",
            "user_agent",
        ]
        .into();
        assert_eq!(keys, want, "{line}");
        let ts = value["ts"].as_str().expect("ts");
        assert!(ts.ends_with("+00:00"), "not local time (TZ=UTC): {line}");
        let at: Timestamp = ts.parse().unwrap_or_else(|err| panic!("{line}: {err}"));
        assert_between(at, before, after, line);
        assert!(value["duration_us"].is_u64(), "{line}");
        let target = value["target"].as_str().expect("target").to_string();
        by_target.insert(target, value);
    }
    let peer = |client: &Client| format!("127.0.0.1:{}", client.local_port());
    let table = [
        (
            "/file.txt",
            "GET",
            "HTTP/1.1",
            200,
            22,
            Some("test/2.0"),
            peer(&kept),
        ),
        (
            "/nope",
            "GET",
            "HTTP/1.1",
            404,
            error_page(404).len(),
            None,
            peer(&kept),
        ),
        (
            "/a%1b",
            "GET",
            "HTTP/1.1",
            404,
            error_page(404).len(),
            None,
            peer(&other),
        ),
        // Refused before it was a request: what it was, in place of the target.
        (
            "malformed request head",
            "-",
            "",
            400,
            error_page(400).len(),
            None,
            peer(&refused),
        ),
    ];
    for (target, method, version, status, bytes, agent, peer) in table {
        let value = by_target
            .get(target)
            .unwrap_or_else(|| panic!("no line for {target}: {lines:#?}"));
        let want = serde_json::json!({
            "method": method,
            "version": version,
            "status": status,
            "bytes": bytes,
            "user_agent": agent,
            "peer": peer,
        });
        for (key, expected) in want.as_object().expect("object") {
            assert_eq!(&value[key], expected, "{key} of {target}: {value}");
        }
    }
    // Two requests on one connection share its number; another connection has another.
    let conn = |target: &str| by_target[target]["conn"].as_u64().expect("conn");
    assert_eq!(conn("/file.txt"), conn("/nope"));
    assert_ne!(conn("/file.txt"), conn("/a%1b"));
    for value in by_target.values() {
        let number = value[actor].as_u64().expect("worker or thread number");
        if model() == "pool" {
            assert!(number < 2, "{value}");
        } else {
            assert_eq!(number, value["conn"].as_u64().expect("conn"), "{value}");
        }
    }
    // Connection lines go to stderr.
    assert!(exit.stderr.contains(" open"), "{}", exit.stderr);
}

/// Request text reaches the worker format as sent, except that bytes a terminal would act
/// on, quotes and backslashes are written `\xHH`; a percent-encoded target stays encoded; a
/// refusal says what it was, with its spaces.
fn worker_lines_escape_request_text_but_not_spaces() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--color", "never"]);
    let table: [(&[u8], u16, &str); 6] = [
        (
            b"GET /a%1b HTTP/1.1\r\nHost: x\r\n\r\n",
            404,
            "\"GET /a%1b HTTP/1.1\" 404 ",
        ),
        // A raw control byte in the request line: the parser refuses the head.
        (
            b"GET /a\x1b HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "\"- malformed request head\" 400 ",
        ),
        (
            b"GET /a\"b\\c HTTP/1.1\r\nHost: x\r\n\r\n",
            404,
            "\"GET /a\\x22b\\x5Cc HTTP/1.1\" 404 ",
        ),
        (
            "GET /é HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes(),
            404,
            "\"GET /\\xC3\\xA9 HTTP/1.1\" 404 ",
        ),
        (
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            505,
            "\"- unsupported HTTP version\" 505 ",
        ),
        (
            b"FOO /x HTTP/1.1\r\nHost: x\r\n\r\n",
            501,
            "\"FOO /x HTTP/1.1\" 501 ",
        ),
    ];
    for (request, status, shown) in table {
        assert_eq!(raw(&server, request).status, status, "{shown}");
        server
            .wait_for_log(|line| line.contains(shown))
            .unwrap_or_else(|| panic!("no line with {shown:?}: {:#?}", server.log()));
    }
    let log = server.stop();
    for line in &log {
        assert!(
            !line.bytes().any(|byte| byte < b' ' || byte == 0x7f),
            "control byte in {line:?}"
        );
        assert!(!line.contains("\\x20"), "escaped space in {line:?}");
    }
}

// ---------------------------------------------------------------------------------------
// 5. --color

/// The SGR sequence (`\x1b[32m`) that ends right before `at` in `line`.
fn colour_before(line: &str, at: usize) -> Option<&str> {
    let head = &line[..at];
    let start = head.rfind("\x1b[")?;
    let code = &head[start..];
    code.ends_with('m').then_some(code)
}

/// The thread named in a line, `[worker 1]` or `[thread conn-3]`, its number and where
/// the name starts.
fn actor_in(line: &str) -> Option<(&str, u64, usize)> {
    ["[worker ", "[thread conn-"].iter().find_map(|prefix| {
        let start = line.find(prefix)?;
        let end = start + line[start..].find(']')? + 1;
        let number = line[start + prefix.len()..end - 1].parse().ok()?;
        Some((&line[start..end], number, start))
    })
}

/// Requests with a 2xx, 3xx, 4xx and 5xx answer, each on its own connection.
fn one_of_each_class(server: &Server) {
    assert_eq!(server.client().get("/file.txt").status, 200);
    assert_eq!(server.client().get("/assets").status, 301);
    assert_eq!(server.client().get("/nope").status, 404);
    assert_eq!(
        raw(server, b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n").status,
        501
    );
}

fn colour_always_marks_status_classes_and_threads() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--color", "always", "--workers", "2"]);
    one_of_each_class(&server);
    wait_for_requests(&server, 4);
    // Two threads must have answered to compare their colours: in the pool, new connections
    // until both workers have.
    let answered = |s: &Server| {
        request_lines(&s.log())
            .iter()
            .filter_map(|line| actor_in(line).map(|(_, n, _)| n))
            .collect::<BTreeSet<u64>>()
    };
    for attempt in 0.. {
        if answered(&server).len() >= 2 {
            break;
        }
        assert!(attempt < 200, "one thread answered everything");
        assert_eq!(server.client().get("/file.txt").status, 200);
        wait_for_requests(&server, 5 + attempt);
    }
    let log = server.stop();

    let mut by_class: BTreeMap<char, BTreeSet<String>> = BTreeMap::new();
    let mut by_actor: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for line in request_lines(&log) {
        // … "GET / HTTP/1.1" \x1b[32m200 22 0.10ms\x1b[0m
        let at = line.rfind("\" ").expect("request line") + 2;
        let tail = &line[at..];
        let code = tail
            .strip_prefix("\x1b[")
            .and_then(|sgr| sgr.find('m'))
            .map(|end| &tail[..end + 3])
            .unwrap_or_else(|| panic!("status not coloured: {line:?}"));
        let class = line[at + code.len()..].chars().next().expect("status");
        assert!(line.ends_with("\x1b[0m"), "colour not reset: {line:?}");
        by_class.entry(class).or_default().insert(code.to_string());
        let (name, number, start) =
            actor_in(&line).unwrap_or_else(|| panic!("no thread in {line:?}"));
        let tint =
            colour_before(&line, start).unwrap_or_else(|| panic!("{name} not coloured: {line:?}"));
        assert!(
            line[start + name.len()..].starts_with("\x1b[0m"),
            "{name}'s colour not reset: {line:?}"
        );
        by_actor.entry(number).or_default().insert(tint.to_string());
    }
    assert_eq!(by_class.keys().collect::<String>(), "2345", "{by_class:?}");
    for (class, codes) in &by_class {
        assert_eq!(codes.len(), 1, "{class}xx in several colours: {codes:?}");
    }
    for (thread, codes) in &by_actor {
        assert_eq!(
            codes.len(),
            1,
            "thread {thread} in several colours: {codes:?}"
        );
    }
    let classes: BTreeSet<_> = by_class.values().flatten().collect();
    assert_eq!(
        classes.len(),
        4,
        "status classes share colours: {by_class:?}"
    );
    // The first six threads each have a colour of their own.
    let first: Vec<_> = by_actor.range(0..6).flat_map(|(_, c)| c).collect();
    assert!(first.len() >= 2, "{by_actor:?}");
    assert_eq!(
        first.iter().collect::<BTreeSet<_>>().len(),
        first.len(),
        "threads share colours: {by_actor:?}"
    );
}

fn no_colour_when_told_or_not_on_a_terminal() {
    let root = demo_root();
    for extra in [["--color", "never"], ["--color", "auto"]] {
        let mut command = Server::command(root.path(), &extra);
        command.env_remove("NO_COLOR");
        let server = Server::spawn(command);
        one_of_each_class(&server);
        wait_for_requests(&server, 4);
        let exit = stop(server);
        let coloured = exit.stdout.iter().find(|line| line.contains('\x1b'));
        assert!(coloured.is_none(), "{extra:?}: {coloured:?}");
        assert!(!exit.stderr.contains('\x1b'), "{extra:?}: {}", exit.stderr);
    }
}

fn colour_auto_on_a_terminal_unless_no_color() {
    let root = demo_root();
    // NO_COLOR set to anything but the empty string turns colour off (no-color.org).
    for (no_color, coloured) in [(None, true), (Some("1"), false), (Some(""), true)] {
        let args = server_args(root.path(), 0, &["--color", "auto"]);
        let terminal = Terminal::start(args, no_color);
        let port = terminal.port();
        assert_eq!(Client::connect(port).get("/file.txt").status, 200);
        let text = terminal.wait_for("the request line", |text| {
            text.split_once("\"GET /file.txt HTTP/1.1\" ")
                .is_some_and(|(_, after)| after.contains("\r\n"))
        });
        let status = text
            .split_once("\"GET /file.txt HTTP/1.1\" ")
            .map(|(_, after)| after)
            .unwrap_or_default();
        if coloured {
            assert!(
                status.starts_with("\x1b[32m200 22 "),
                "NO_COLOR={no_color:?}: {text:?}"
            );
        } else {
            assert!(!text.contains('\x1b'), "NO_COLOR={no_color:?}: {text:?}");
            assert!(status.starts_with("200 22 "), "{text:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. --stats

/// One `[stats]` line, read back.
#[derive(Debug)]
struct StatsLine {
    requests: f64,
    megabytes: f64,
    open: u64,
    p99_ms: Option<f64>,
    gauges: Gauges,
}

#[derive(Debug)]
enum Gauges {
    Pool {
        idle: u64,
        busy: u64,
        workers: u64,
        queue: u64,
        shares: Vec<u64>,
    },
    Threads {
        threads: u64,
    },
}

/// `… [stats] 5 req/s, 1.2 MB/s; 1 open, 0 idle; busy workers 0/2, queue 0; p99 3.58ms;
/// w0 60% w1 40%` in the pool, `… [stats] 5 req/s, 1.2 MB/s; 1 open; 3 threads; p99 -`
/// with a thread per connection.
fn parse_stats(line: &str) -> Option<StatsLine> {
    let (_, rest) = stamped(line);
    let parts: Vec<&str> = rest.strip_prefix("[stats] ")?.split("; ").collect();
    let (requests, megabytes) = parts.first()?.split_once(" req/s, ")?;
    let megabytes = megabytes.strip_suffix(" MB/s")?;
    let p99 = |part: &str| -> Option<Option<f64>> {
        match part.strip_prefix("p99 ")? {
            "-" => Some(None),
            ms => ms.strip_suffix("ms")?.parse().ok().map(Some),
        }
    };
    let (open, p99_ms, gauges) = match parts[..] {
        [_, connections, pool, latency, shares] => {
            let (open, idle) = connections.split_once(" open, ")?;
            let (busy, queue) = pool.strip_prefix("busy workers ")?.split_once(", queue ")?;
            let (busy, workers) = busy.split_once('/')?;
            let mut parsed = Vec::new();
            for (index, share) in shares.split(' ').collect::<Vec<_>>().chunks(2).enumerate() {
                let [name, percent] = share else { return None };
                if *name != format!("w{index}") {
                    return None;
                }
                parsed.push(percent.strip_suffix('%')?.parse().ok()?);
            }
            let gauges = Gauges::Pool {
                idle: idle.strip_suffix(" idle")?.parse().ok()?,
                busy: busy.parse().ok()?,
                workers: workers.parse().ok()?,
                queue: queue.parse().ok()?,
                shares: parsed,
            };
            (open, p99(latency)?, gauges)
        }
        [_, open, threads, latency] => {
            let threads = threads.strip_suffix(" threads")?.parse().ok()?;
            let open = open.strip_suffix(" open")?;
            (open, p99(latency)?, Gauges::Threads { threads })
        }
        _ => return None,
    };
    Some(StatsLine {
        requests: requests.parse().ok()?,
        megabytes: megabytes.parse().ok()?,
        open: open.parse().ok()?,
        p99_ms,
        gauges,
    })
}

/// Every `[stats]` line on stderr, each checked against its model's shape.
fn stats_lines(stderr: &str, workers: u64) -> Vec<StatsLine> {
    stderr
        .lines()
        .filter(|line| line.contains("[stats]"))
        .map(|line| {
            let parsed = parse_stats(line).unwrap_or_else(|| panic!("not a stats line: {line:?}"));
            match (&parsed.gauges, model()) {
                (
                    Gauges::Pool {
                        idle,
                        busy,
                        workers: n,
                        queue,
                        shares,
                    },
                    "pool",
                ) => {
                    assert_eq!(*n, workers, "{line}");
                    // Idle and queued connections are open ones.
                    assert!(busy <= n && idle + queue <= parsed.open, "{line}");
                    assert_eq!(shares.len() as u64, workers, "{line}");
                }
                // The accepting thread, the signal thread and this one at least.
                (Gauges::Threads { threads }, "threads") => assert!(*threads >= 3, "{line}"),
                _ => panic!("the other model's stats line: {line}"),
            }
            parsed
        })
        .collect()
}

/// A window that saw requests: its rates are not zero and its shares add up.
fn busy_window(line: &StatsLine) -> bool {
    let shares_add_up = match &line.gauges {
        Gauges::Pool { shares, .. } => (99..=101).contains(&shares.iter().sum::<u64>()),
        Gauges::Threads { .. } => true,
    };
    line.requests > 0.0 && line.megabytes > 0.0 && line.p99_ms.is_some() && shares_add_up
}

/// Fetches the demo site's 1.4 MB GIF on new connections until a stats line shows them.
fn load_until_a_busy_window(server: &Server, workers: u64) {
    let deadline = Instant::now() + STEP;
    while !stats_lines(&server.stderr(), workers)
        .iter()
        .any(busy_window)
    {
        assert!(
            Instant::now() < deadline,
            "no stats line with requests: {}",
            server.stderr()
        );
        let response = server.client().get("/gif.gif");
        assert_eq!(response.status, 200);
    }
}

fn stats_report_rates_gauges_and_shares() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--stats", "0.2", "--workers", "2"]);
    load_until_a_busy_window(&server, 2);
    // Lines keep coming, window after window.
    let count = server.stderr().matches("[stats]").count();
    server.eventually("the next stats line", |s| {
        s.stderr().matches("[stats]").count() > count
    });
    let exit = stop(server);
    stats_lines(&exit.stderr, 2);
    // Stats go to stderr only.
    assert!(!exit.stdout.iter().any(|line| line.contains("[stats]")));
}

fn quiet_stats_still_print() {
    let root = demo_root();
    let server = Server::start(
        root.path(),
        &["--quiet", "--stats", "0.2", "--workers", "2"],
    );
    load_until_a_busy_window(&server, 2);
    let exit = stop(server);
    let (summary, rest) = exit.stdout[4..].split_last().expect("summary");
    assert!(rest.is_empty(), "quiet, yet: {rest:#?}");
    assert!(summary.starts_with("Server stopped: "), "{summary}");
    assert!(
        !exit.stderr.lines().any(|line| !line.contains("[stats]")),
        "quiet, yet: {}",
        exit.stderr
    );
}

/// No stats line without `--stats`: watched while a server beside it, with `--stats 0.2`,
/// prints three.
fn no_stats_unless_asked() {
    let root = demo_root();
    let watched = Server::start(root.path(), &["--workers", "2"]);
    let clock = Server::start(root.path(), &["--stats", "0.2", "--quiet"]);
    assert_eq!(watched.client().get("/file.txt").status, 200);
    clock.eventually("three stats lines", |s| {
        s.stderr().matches("[stats]").count() >= 3
    });
    assert_eq!(watched.client().get("/gif.gif").status, 200);
    let exit = stop(watched);
    assert!(!exit.stderr.contains("[stats]"), "{}", exit.stderr);
    assert!(!exit.stdout.iter().any(|line| line.contains("[stats]")));
}

// ---------------------------------------------------------------------------------------
// 7. --reuse-port

fn reuse_port_lets_two_processes_serve_one_port() {
    let root = demo_root();
    let first = Server::start(root.path(), &["--reuse-port"]);
    let port = first.port;
    let second = Server::spawn(command_on(root.path(), port, &["--reuse-port"]));
    assert_eq!(second.port, port);
    for server in [&first, &second] {
        let serving = serving_line(server);
        assert!(
            serving.contains(&format!(
                "on 127.0.0.1:{port}, shared with other processes (SO_REUSEPORT)"
            )),
            "{serving}"
        );
    }
    // The kernel spreads new connections by a hash of their addresses: open new ones until
    // each process has answered one.
    let answered = |server: &Server| {
        server
            .log()
            .iter()
            .any(|line| line.contains("\"GET /file.txt HTTP/1.1\" 200 "))
    };
    for attempt in 0.. {
        if answered(&first) && answered(&second) {
            break;
        }
        assert!(
            attempt < 500,
            "one process answered everything; first: {:#?}; second: {:#?}",
            first.log(),
            second.log()
        );
        assert_eq!(Client::connect(port).get("/file.txt").status, 200);
    }
}

fn without_reuse_port_a_second_server_cannot_bind() {
    let root = demo_root();
    let alone = Server::start(root.path(), &[]);
    let sharing = Server::start(root.path(), &["--reuse-port"]);
    // Both must ask: neither a second without the flag nor one that asks beside a first
    // that did not may bind.
    for (port, extra) in [
        (alone.port, &[][..]),
        (alone.port, &["--reuse-port"][..]),
        (sharing.port, &[][..]),
    ] {
        let output = run_to_exit(command_on(root.path(), port, extra));
        fails_clearly(&output, &format!("cannot listen on 127.0.0.1:{port}"));
    }
    for server in [&alone, &sharing] {
        assert_eq!(server.client().get("/file.txt").status, 200);
    }
}

// ---------------------------------------------------------------------------------------
// 8. Socket activation

/// A supervisor in the manner of systemd: binds a listener on a free loopback port, puts
/// it on descriptor 3, writes its port to `$ACTIVATION_PORT_FILE`, sets `LISTEN_FDS`
/// (`$ACTIVATION_FDS`, else 1) and `LISTEN_PID` (its own pid, which the server keeps, or
/// with `ACTIVATION_PID=parent` another process's), and runs the server in its place.
const ACTIVATE: &str = r#"
import os, socket, sys
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(128)
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
with open(os.environ["ACTIVATION_PORT_FILE"], "w") as report:
    report.write(str(listener.getsockname()[1]))
os.environ["LISTEN_FDS"] = os.environ.get("ACTIVATION_FDS", "1")
pid = os.getppid() if os.environ.get("ACTIVATION_PID") == "parent" else os.getpid()
os.environ["LISTEN_PID"] = str(pid)
os.execv(sys.argv[1], sys.argv[1:])
"#;

/// The server, started by [`ACTIVATE`] with `env`, and where the supervisor reports the
/// port it bound.
fn activated(root: &Path, port: u16, env: &[(&str, &str)]) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(ACTIVATE)
        .arg(bin())
        .args(server_args(root, port, &["--workers", "2"]))
        .env("ACTIVATION_PORT_FILE", dir.path().join("port"))
        .envs(env.iter().copied());
    (command, dir)
}

fn inherited_port(dir: &tempfile::TempDir) -> u16 {
    let text = std::fs::read_to_string(dir.path().join("port")).expect("the supervisor's port");
    text.parse().expect("port number")
}

fn a_socket_passed_on_descriptor_3_is_served() {
    let root = demo_root();
    let shown = root.path().display();
    // Held so that binding -port would fail: only the inherited socket can serve.
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_port = busy.local_addr().expect("address").port();
    let (command, dir) = activated(root.path(), busy_port, &[]);
    let server = Server::spawn(command);
    let port = inherited_port(&dir);
    assert_ne!(port, busy_port);
    assert_eq!(server.port, port);
    assert_eq!(
        server.banner[0],
        format!("Using directory {shown} and port {port} for server.")
    );
    assert_eq!(
        serving_line(&server),
        format!(
            "Serving {shown} with {} on 127.0.0.1:{port}, a socket passed by the supervisor \
             (socket activation) (keep-alive 3s)",
            runs_with(2)
        )
    );
    let mut client = server.client();
    assert_eq!(client.get("/file.txt").status, 200);
    assert_eq!(client.get("/nope").status, 404);
}

fn activation_meant_for_another_process_is_ignored() {
    let root = demo_root();
    let (command, dir) = activated(root.path(), 0, &[("ACTIVATION_PID", "parent")]);
    let server = Server::spawn(command);
    assert_ne!(server.port, inherited_port(&dir), "took the socket anyway");
    let serving = serving_line(&server);
    assert!(!serving.contains("activation"), "{serving}");
    assert!(
        serving.contains(&format!("on 127.0.0.1:{} (", server.port)),
        "{serving}"
    );
    assert_eq!(server.client().get("/file.txt").status, 200);
}

fn activation_with_two_sockets_is_refused() {
    let root = demo_root();
    let (command, _dir) = activated(root.path(), 0, &[("ACTIVATION_FDS", "2")]);
    fails_clearly(&run_to_exit(command), "LISTEN_FDS");
}

// ---------------------------------------------------------------------------------------
// 9. Installed: run from a folder with no scu/ and no error/

fn installed_serves_a_named_folder_with_the_compiled_in_pages() {
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let root = demo_root();
    let mut command = Command::new(bin());
    command
        .current_dir(elsewhere.path())
        .arg(root.path())
        .args(["-p", "0", "--model", model()]);
    let server = Server::spawn(command);
    assert_eq!(
        server.banner[0],
        format!(
            "Using directory {} and port {} for server.",
            root.path().display(),
            server.port
        )
    );
    let file = server.client().get("/file.txt");
    assert_eq!(file.status, 200);
    assert_eq!(
        file.body,
        std::fs::read(root.path().join("file.txt")).expect("file.txt")
    );
    let missing = server.client().get("/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        error_page(404),
        "not the repository's error/404.html"
    );
    let refused = raw(&server, b"\x01\r\n\r\n");
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body, error_page(400));
}

fn installed_without_a_root_says_how_to_name_one() {
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(bin());
    command
        .current_dir(elsewhere.path())
        .args(["-p", "0", "--model", model()]);
    fails_clearly(&run_to_exit(command), "poolhttpd DIR");
}

fn installed_error_pages_flag_still_overrides() {
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let pages = tempfile::tempdir().expect("temporary directory");
    std::fs::write(pages.path().join("404.html"), "<p>not here</p>\n").expect("write page");
    let root = demo_root();
    let mut command = Command::new(bin());
    command
        .current_dir(elsewhere.path())
        .arg(root.path())
        .args(["-p", "0", "--model", model(), "--error-pages"])
        .arg(pages.path());
    let server = Server::spawn(command);
    let missing = server.client().get("/nope");
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (404, "<p>not here</p>\n")
    );
    // A page the folder lacks is the compiled-in one.
    assert_eq!(raw(&server, b"\x01\r\n\r\n").body, error_page(400));
}

// ---------------------------------------------------------------------------------------
// 10. Shutdown

/// Runs the server on a pseudo-terminal (the Python standard library's `pty`): what is
/// written to the relay's stdin is typed at the terminal, and what the terminal shows comes
/// out of its stdout byte for byte (`\r\n` line ends, the echoed `^C`). The relay exits
/// with the server's status. Dropping a `Terminal` kills the relay; the server, whose
/// controlling terminal that was, then gets SIGHUP.
struct Terminal {
    relay: Child,
    keys: Option<ChildStdin>,
    screen: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

const PTY_RELAY: &str = r#"
import os, pty, select, sys
pid, master = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
inputs = [master, 0]
while True:
    ready = select.select(inputs, [], [])[0]
    if 0 in ready:
        keys = os.read(0, 1024)
        if keys:
            os.write(master, keys)
        else:
            inputs.remove(0)
    if master in ready:
        try:
            shown = os.read(master, 65536)
        except OSError:
            shown = b""
        if not shown:
            break
        while shown:
            shown = shown[os.write(1, shown):]
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"#;

impl Terminal {
    /// The binary with `args` on a new terminal; `NO_COLOR` unset, or set to `no_color`.
    fn start(args: Vec<OsString>, no_color: Option<&str>) -> Terminal {
        let mut command = Command::new("python3");
        command
            .arg("-c")
            .arg(PTY_RELAY)
            .arg(bin())
            .args(args)
            .env_remove("NO_COLOR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let mut relay = command
            .spawn()
            .expect("start python3, the pseudo-terminal relay");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let stdout = relay.stdout.take().expect("stdout");
        let stderr = relay.stderr.take().expect("stderr");
        let readers = [
            Box::new(stdout) as Box<dyn Read + Send>,
            Box::new(stderr) as Box<dyn Read + Send>,
        ]
        .into_iter()
        .map(|mut pipe| {
            let screen = Arc::clone(&screen);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    screen
                        .lock()
                        .expect("screen")
                        .extend_from_slice(&chunk[..n]);
                }
            })
        })
        .collect();
        Terminal {
            keys: relay.stdin.take(),
            relay,
            screen,
            readers,
        }
    }

    /// Everything the terminal has shown so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().expect("screen")).into_owned()
    }

    /// Waits up to [`STEP`] until what the terminal shows satisfies `check`.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let text = self.text();
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the terminal shows {text:?}"
            );
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }

    /// The port the banner names.
    fn port(&self) -> u16 {
        let prefix = "Access Server at http://localhost:";
        let text = self.wait_for("the banner", |text| {
            text.split_once(prefix)
                .is_some_and(|(_, rest)| rest.contains('/'))
        });
        let (_, rest) = text.split_once(prefix).expect("banner");
        rest.split('/')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("port")
    }

    /// Types `keys` at the terminal.
    fn type_keys(&mut self, keys: &[u8]) {
        let input = self.keys.as_mut().expect("terminal input");
        input.write_all(keys).expect("type");
        input.flush().expect("type");
    }

    /// Waits up to [`STEP`] for the server to exit: its status, and all the terminal showed.
    fn wait_exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + STEP;
        let status = loop {
            if let Some(status) = self.relay.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {STEP:?}; the terminal shows {:?}",
                self.text()
            );
            std::thread::park_timeout(Duration::from_millis(10));
        };
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        (status.code(), self.text())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.relay.kill();
        let _ = self.relay.wait();
    }
}

/// After ^C on a terminal, which echoes `^C` where the cursor is, what is printed next
/// starts on a line of its own; the summary counts in correct plurals.
fn interrupt_on_a_terminal_ends_its_line_and_sums_up() {
    let root = demo_root();
    let mut terminal = Terminal::start(server_args(root.path(), 0, &["--color", "never"]), None);
    let port = terminal.port();
    let answer = exchange(
        port,
        b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{answer:?}");
    // ^C flushes what the terminal has not shown yet: wait for the last line first.
    terminal.wait_for("the connection's close line", |text| {
        text.split_once(" closed (")
            .is_some_and(|(_, rest)| rest.contains("after 1 request\r\n"))
    });
    terminal.type_keys(b"\x03");
    let (code, text) = terminal.wait_exit();
    assert_eq!(code, Some(0), "{text:?}");
    let (_, after) = text.split_once("^C").expect("^C echoed");
    let next = after
        .strip_prefix("\r\n")
        .unwrap_or_else(|| panic!("no line break after ^C: {text:?}"));
    let (note, _) = next.split_once("\r\n").expect("a whole line");
    let (_, note) = stamped(note);
    assert!(note.contains("] shutting down: "), "{text:?}");
    let summary = format!(
        "\r\nServer stopped: 1 connection, 1 request, {} bytes sent.\r\n",
        answer.len()
    );
    assert!(
        text.ends_with(&summary),
        "{text:?} does not end {summary:?}"
    );
}

/// Regression: SIGINT and SIGTERM were caught only once the model's loop ran, after the
/// banner, so a signal sent on seeing the banner ended the process without its shutdown
/// (exit by signal, no summary); and with a thread per connection the shutdown note could
/// follow the summary, or be lost as the process ended. Now: the note, then the summary,
/// in plurals for nothing served; and no blank line for a ^C that no terminal echoed.
fn a_signal_right_after_the_banner_shuts_down_in_order() {
    let root = demo_root();
    for signal in [Signal::INT, Signal::TERM] {
        let server = Server::start(root.path(), &[]);
        server.signal(signal);
        let exit = server.wait_exit(STEP);
        assert_eq!(exit.code, Some(0), "{signal:?}: {}", exit.stderr);
        let [.., note, summary] = &exit.stdout[..] else {
            panic!("{signal:?}: {:#?}", exit.stdout);
        };
        let (_, note) = stamped(note);
        assert!(note.contains("] shutting down: "), "{signal:?}: {note}");
        assert_eq!(
            summary, "Server stopped: 0 connections, 0 requests, 0 bytes sent.",
            "{signal:?}"
        );
        assert!(
            !exit.stdout.iter().any(String::is_empty),
            "{:#?}",
            exit.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------
// 11. Every new flag in both models, and bad values

fn every_operator_flag_is_accepted() {
    let root = demo_root();
    let table: [&[&str]; 9] = [
        &["--log-format", "worker"],
        &["--log-format", "combined"],
        &["--log-format", "json"],
        &["--color", "always"],
        &["--color", "never"],
        &["--color", "auto"],
        &["--stats", "0.5"],
        &["--reuse-port"],
        &[
            "--log-format=json",
            "--color=always",
            "--stats=0.5",
            "--reuse-port",
        ],
    ];
    for extra in table {
        let server = Server::start(root.path(), extra);
        assert_eq!(server.client().get("/file.txt").status, 200, "{extra:?}");
        let exit = stop(server);
        assert_eq!(exit.code, Some(0), "{extra:?}: {}", exit.stderr);
    }
}

fn bad_operator_values_exit_2_with_one_line() {
    let root = demo_root();
    let table: [(&[&str], &str); 6] = [
        (&["--log-format", "x"], "--log-format"),
        (&["--color", "x"], "--color"),
        (&["--stats", "0"], "--stats"),
        (&["--stats", "x"], "--stats"),
        (&["--stats=-1"], "--stats"),
        (&["--log-format"], "--log-format"),
    ];
    for (extra, flag) in table {
        let mut command = Command::new(bin());
        command
            .arg(root.path())
            .args(["-p", "0", "--model", model()])
            .args(extra);
        fails_clearly(&run_to_exit(command), flag);
    }
}

crate::both_models!(
    banner_is_the_originals_three_lines_then_what_runs,
    banner_shows_the_real_ipv6_address,
    every_worker_format_line_starts_with_the_local_time,
    combined_is_nginxs_format_and_goaccess_reads_it,
    json_is_one_object_per_request,
    worker_lines_escape_request_text_but_not_spaces,
    colour_always_marks_status_classes_and_threads,
    no_colour_when_told_or_not_on_a_terminal,
    colour_auto_on_a_terminal_unless_no_color,
    stats_report_rates_gauges_and_shares,
    quiet_stats_still_print,
    no_stats_unless_asked,
    reuse_port_lets_two_processes_serve_one_port,
    without_reuse_port_a_second_server_cannot_bind,
    a_socket_passed_on_descriptor_3_is_served,
    activation_meant_for_another_process_is_ignored,
    activation_with_two_sockets_is_refused,
    installed_serves_a_named_folder_with_the_compiled_in_pages,
    installed_without_a_root_says_how_to_name_one,
    installed_error_pages_flag_still_overrides,
    interrupt_on_a_terminal_ends_its_line_and_sums_up,
    a_signal_right_after_the_banner_shuts_down_in_order,
    every_operator_flag_is_accepted,
    bad_operator_values_exit_2_with_one_line,
);
