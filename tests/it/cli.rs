//! The command line: the original's spellings, defaults, and clear failures with status 2.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{STEP, Server, demo_root};

/// Runs the binary to completion, killing it if it outlives [`STEP`].
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolhttpd"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start poolhttpd");
    let exited = testkit::server::wait_for_exit(&mut child, STEP).expect("wait");
    if exited.is_none() {
        let _ = child.kill();
        panic!("poolhttpd {args:?} did not exit");
    }
    child.wait_with_output().expect("output")
}

fn fails_clearly(args: &[&str], mention: &str) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("poolhttpd: "), "{args:?}: {stderr}");
    assert!(stderr.contains(mention), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    fails_clearly(&["--frobnicate"], "--frobnicate");
    fails_clearly(&["-port", "eighty"], "--port");
    fails_clearly(&["--workers", "0"], "--workers");
    fails_clearly(&["--keep-alive", "forever"], "--keep-alive");
    fails_clearly(&["--bind", "not-an-ip"], "--bind");
}

#[test]
fn bad_values_after_equals_signs_exit_2_with_one_line() {
    fails_clearly(&["--grace=abc"], "invalid value 'abc' for --grace");
    fails_clearly(&["--max-connections=0"], "for --max-connections");
    fails_clearly(&["--model=fibers"], "for --model");
    fails_clearly(&["-port=eighty"], "for --port");
    fails_clearly(&["--port="], "--port");
}

#[test]
fn missing_root_exits_2() {
    fails_clearly(
        &[
            "-document_root",
            "/nonexistent/poolhttpd-root",
            "-port",
            "0",
        ],
        "/nonexistent/poolhttpd-root",
    );
}

#[test]
fn root_that_is_a_file_exits_2() {
    let root = demo_root();
    let file = root.path().join("file.txt");
    fails_clearly(
        &["--root", file.to_str().expect("UTF-8 path"), "--port", "0"],
        "file.txt",
    );
}

#[test]
fn port_in_use_exits_2() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let root = demo_root();
    let root = root.path().to_str().expect("UTF-8 path");
    fails_clearly(&["-document_root", root, "-port", &port], &port);
}

#[test]
fn help_and_version_exit_0() {
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--root",
        "-document_root",
        "--port",
        "--bind",
        "--workers",
        "--keep-alive",
        "--quiet",
        "--list-dirs",
    ] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("poolhttpd "));
}

fn conventional_spellings_serve_too() {
    let root = demo_root();
    let root_arg = root.path().to_str().expect("UTF-8 path");
    let mut command = Command::new(env!("CARGO_BIN_EXE_poolhttpd"));
    command.args([
        "--root",
        root_arg,
        "-p",
        "0",
        "--bind",
        "127.0.0.1",
        "--workers",
        "1",
    ]);
    let server = Server::spawn(command);
    assert_eq!(server.client().get("/file.txt").status, 200);
}

fn equals_signs_serve_too() {
    let root = demo_root();
    let root_arg = format!(
        "-document_root={}",
        root.path().to_str().expect("UTF-8 path")
    );
    let pages = crate::support::manifest_dir().join("error");
    let pages_arg = format!("--error-pages={}", pages.to_str().expect("UTF-8 path"));
    let model_arg = format!("--model={}", crate::support::model());
    let mut command = Command::new(env!("CARGO_BIN_EXE_poolhttpd"));
    command.args([
        root_arg.as_str(),
        "-port=0",
        "--bind=127.0.0.1",
        "--workers=1",
        "--keep-alive=2",
        "--header-timeout=2",
        "--send-timeout=2",
        "--max-connections=10",
        "--grace=1",
        &pages_arg,
        &model_arg,
    ]);
    let server = Server::spawn(command);
    assert_eq!(server.client().get("/file.txt").status, 200);
    let missing = server.client().get("/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, crate::support::error_page(404));
}

/// Held by the tests that need port 8080, which run concurrently in the two models.
static PORT_8080: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long port 8080 may stay taken before the test that needs it fails. Other test runs
/// on this machine (another checkout's `cargo test`) hold it for a second or two at a time;
/// a server someone left running holds it for good.
const PORT_8080_WAIT: Duration = Duration::from_secs(60);

/// Starts `command`, a server that binds port 8080, once the port is free. Fails, saying
/// so, if the port stays taken: the test cannot check the default port on a port it
/// cannot have.
fn spawn_on_8080(mut command: impl FnMut() -> Command) -> Server {
    let deadline = Instant::now() + PORT_8080_WAIT;
    loop {
        // Another process may take the port between this check and the server's bind, so
        // a refused bind is only another reason to wait.
        let refused = if TcpListener::bind("127.0.0.1:8080").is_ok() {
            match Server::try_spawn(command()) {
                Ok(server) => return server,
                Err(stderr) if stderr.contains("Address already in use") => stderr,
                Err(stderr) => panic!("no banner from poolhttpd; stderr: {stderr}"),
            }
        } else {
            "port 8080 is in use".to_string()
        };
        assert!(
            Instant::now() < deadline,
            "port 8080 stayed in use for {PORT_8080_WAIT:?}, and this test needs it \
             (is a server running on it?); last: {refused}"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn no_arguments_serves_scu_on_8080() {
    let _port = PORT_8080
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Run from a folder holding a copy of the demo site, as a user would from a checkout.
    let work = tempfile::tempdir().expect("temporary directory");
    let site = demo_root();
    std::fs::rename(site.path(), work.path().join("scu")).expect("move demo site");
    let server = spawn_on_8080(|| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_poolhttpd"));
        command.current_dir(work.path());
        if crate::support::model() != "pool" {
            command.args(["--model", crate::support::model()]);
        }
        command
    });
    assert_eq!(server.port, 8080);
    assert_eq!(
        server.banner[0],
        "Using directory ./scu and port 8080 for server."
    );
    let response = server.client().get("/file.txt");
    assert_eq!(response.status, 200);
    // No ./error here: the built-in pages stand in.
    let missing = server.client().get("/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("404 Not Found"));
}

crate::both_models!(
    conventional_spellings_serve_too,
    equals_signs_serve_too,
    no_arguments_serves_scu_on_8080
);
