//! The harness: start the real binary on port 0 over a temporary document root, speak raw
//! HTTP to it, and read its log. Every wait is bounded by a deadline. What the bench also
//! needs (the process, `/proc`, limits, files, the response reader) is the test kit's
//! (`tests/testkit`); this module adds the tests' model switch, demo root and panics.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

pub use testkit::client::Response;
pub use testkit::server::Exit;

/// How long any single step may take before the test fails rather than hangs.
pub const STEP: Duration = Duration::from_secs(10);

thread_local! {
    /// The threading model this test's servers run (`--model`); each test runs on its own
    /// thread, so the two runs of a test never see each other's value.
    static MODEL: std::cell::Cell<&'static str> = const { std::cell::Cell::new("pool") };
}

/// The model the current test runs against.
pub fn model() -> &'static str {
    MODEL.with(|m| m.get())
}

/// Runs `test` with servers in `model`.
pub fn with_model(model: &'static str, test: fn()) {
    MODEL.with(|m| m.set(model));
    test();
}

/// Turns each named function into two tests, `NAME::pool` and `NAME::threads`, so every
/// integration test runs against both threading models. Attributes written before a name
/// (such as `#[cfg_attr(..., ignore = "why")]`) go on both tests.
#[macro_export]
macro_rules! both_models {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            $(#[$attr])*
            fn pool() {
                $crate::support::with_model("pool", super::$name)
            }
            #[test]
            $(#[$attr])*
            fn threads() {
                $crate::support::with_model("threads", super::$name)
            }
        }
    )*};
}

/// The crate's own folder (demo site, error pages).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped error page for `code`.
pub fn error_page(code: u16) -> Vec<u8> {
    std::fs::read(manifest_dir().join("error").join(format!("{code}.html")))
        .unwrap_or_else(|err| panic!("error/{code}.html: {err}"))
}

/// A temporary copy of the demo site `scu/`.
pub fn demo_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_tree(&manifest_dir().join("scu"), dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read scu/") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("create directory");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// How long after its last change a file is first kept by the cache (the server's
/// `RACY_WINDOW`), with a margin.
const SETTLED: Duration = Duration::from_millis(2300);

/// Waits until every file under `dir` was last changed at least [`SETTLED`] ago, so that
/// the server keeps them (its cache, and the descriptors of large files, from then on).
pub fn settle(dir: &Path, names: &[&str]) {
    use std::os::unix::fs::MetadataExt;
    let changed = names
        .iter()
        .map(|name| {
            let meta = std::fs::metadata(dir.join(name)).expect("metadata");
            SystemTime::UNIX_EPOCH + Duration::new(meta.ctime() as u64, meta.ctime_nsec() as u32)
        })
        .max()
        .expect("names");
    let settled = testkit::until(STEP, || SystemTime::now() >= changed + SETTLED);
    assert!(settled, "clock does not advance");
}

/// Splits a log line into its leading timestamp, which must be the local time to the
/// millisecond (`2026-11-27 21:05:03.123 `, 24 bytes with the space), and the rest.
pub fn split_stamp(line: &str) -> (&str, &str) {
    let (stamp, rest) = line
        .split_at_checked(24)
        .unwrap_or_else(|| panic!("too short for a timestamp: {line:?}"));
    let shape = stamp.bytes().enumerate().all(|(at, byte)| match at {
        4 | 7 => byte == b'-',
        10 | 23 => byte == b' ',
        13 | 16 => byte == b':',
        19 => byte == b'.',
        _ => byte.is_ascii_digit(),
    });
    assert!(
        shape,
        "no timestamp YYYY-MM-DD HH:MM:SS.mmm at the start of {line:?}"
    );
    (stamp, rest)
}

/// Sets a file's mode bits.
pub fn chmod(path: &Path, mode: u32) {
    testkit::files::set_mode(path, mode).expect("chmod");
}

/// Writes `len` bytes of a fixed pseudo-random sequence, so corruption anywhere shows.
pub fn big_file(path: &Path, len: usize) -> Vec<u8> {
    let bytes = testkit::files::pseudo_random(len, 0x9E37_79B9_7F4A_7C15);
    testkit::files::write(path, &bytes, 0o644).expect("write big file");
    bytes
}

/// Raises this test process's descriptor limit, for tests that open thousands of sockets.
pub fn raise_fd_limit(needed: u64) {
    let now = testkit::limits::raise_descriptor_limit(needed);
    assert!(
        now >= needed,
        "need {needed} descriptors, the limit is {now}"
    );
}

/// The loopback address of `port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A TCP connection to the server on loopback, given up after [`STEP`].
pub fn connect(port: u16) -> std::io::Result<TcpStream> {
    testkit::client::connect(loopback(port), STEP)
}

/// A running server process, killed when dropped: the test kit's, started the tests' way,
/// with the checks that a test makes of it turned into panics.
pub struct Server(testkit::server::Server);

impl std::ops::Deref for Server {
    type Target = testkit::server::Server;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Server {
    /// Starts the server over `root` with the shipped error pages and `extra` flags.
    pub fn start(root: &Path, extra: &[&str]) -> Server {
        Server::spawn(Server::command(root, extra))
    }

    /// The command [`Server::start`] runs, for tests that add to it.
    pub fn command(root: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_poolhttpd"));
        command
            .arg("-document_root")
            .arg(root)
            .args(["-port", "0", "--error-pages"])
            .arg(manifest_dir().join("error"))
            .args(["--model", model()])
            .args(extra);
        command
    }

    /// Starts the server as `command` says, and waits for its banner.
    pub fn spawn(command: Command) -> Server {
        Server::try_spawn(command)
            .unwrap_or_else(|stderr| panic!("no banner from poolhttpd; stderr: {stderr}"))
    }

    /// Like [`Server::spawn`], but a server that exits (or stays silent for [`STEP`])
    /// without printing its banner is an `Err` holding what it printed to stderr.
    pub fn try_spawn(command: Command) -> Result<Server, String> {
        testkit::server::Server::spawn(command, STEP)
            .map(Server)
            .map_err(|err| err.stderr)
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// One request on a new connection: `METHOD target` with a Host header and `fields`
    /// (each ending in CRLF); a HEAD's answer is read as a head only.
    pub fn ask(&self, method: &str, target: &str, fields: &str) -> Response {
        let mut client = self.client();
        client.send(format!("{method} {target} HTTP/1.1\r\nHost: a\r\n{fields}\r\n").as_bytes());
        if method == "HEAD" {
            client.head_response()
        } else {
            client.response()
        }
    }

    /// Waits until a log line matches, up to [`STEP`].
    pub fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        self.0.wait_for_line(wanted, STEP)
    }

    /// Polls `check` every few milliseconds until it holds or [`STEP`] passes.
    pub fn eventually(&self, what: &str, check: impl Fn(&Server) -> bool) {
        let held = testkit::until(STEP, || check(self));
        assert!(held, "timed out waiting for {what}");
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: rustix::process::Signal) {
        self.0.signal(signal).expect("kill");
    }

    /// Waits up to `limit` for the server to exit, and returns its exit code and all it
    /// printed.
    pub fn wait_exit(self, limit: Duration) -> Exit {
        match self.0.wait_exit(limit) {
            Ok(exit) => exit,
            Err(_still_running) => panic!("server still running after {limit:?}"),
        }
    }

    /// Kills the server and returns everything it printed to stdout.
    pub fn stop(self) -> Vec<String> {
        self.0.kill().stdout
    }
}

/// A raw HTTP/1.1 client over one connection: the test kit's, with every failure a panic.
pub struct Client(testkit::client::Client);

impl Client {
    /// Connects to the server on loopback.
    pub fn connect(port: u16) -> Client {
        Client(testkit::client::Client::connect(loopback(port), STEP).expect("connect"))
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        self.0.stream()
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.0.send(bytes).expect("send request");
    }

    /// Sends raw bytes, reporting whether the server still accepted them.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.0.send(bytes).is_ok()
    }

    /// Reads a response if its first byte arrives within `wait`.
    pub fn response_within(&mut self, wait: Duration) -> Option<Response> {
        self.0
            .response_within(wait)
            .unwrap_or_else(|err| panic!("reading a response: {err}"))
    }

    /// Sends `GET path` with a Host header and reads the response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        self.response()
    }

    /// Reads one response, its body framed by Content-Length.
    pub fn response(&mut self) -> Response {
        self.0
            .response()
            .unwrap_or_else(|err| panic!("reading a response: {err}"))
    }

    /// Reads one response's head only: the answer to HEAD, or a head whose body
    /// [`Client::read_body`] reads.
    pub fn head_response(&mut self) -> Response {
        self.0
            .head_response()
            .unwrap_or_else(|err| panic!("reading a response head: {err}"))
    }

    /// Reads `len` body bytes, for a response whose head was read with
    /// [`Client::head_response`].
    pub fn read_body(&mut self, len: usize) -> Vec<u8> {
        self.0.read_body(len).expect("body")
    }

    /// Reads until the server closes the connection, or a read fails or times out.
    pub fn read_until_close(&mut self) -> Vec<u8> {
        self.0.read_to_end().unwrap_or_default()
    }

    /// Waits for the server to close the connection, returning how long that took.
    /// Fails if any byte arrives instead, or if it stays open past `limit`.
    pub fn expect_close(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        match self.0.end_of_stream(limit) {
            Ok(None) => started.elapsed(),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => started.elapsed(),
            Ok(Some(byte)) => panic!("unexpected byte {:?} instead of close", byte as char),
            Err(err) => panic!("connection still open after {:?}: {err}", started.elapsed()),
        }
    }

    /// Like [`Client::expect_close`], but a reset fails: the server must have shut down its
    /// side cleanly (FIN), having read what we sent.
    pub fn expect_clean_close(&mut self, limit: Duration) {
        match self.0.end_of_stream(limit) {
            Ok(None) => {}
            Ok(Some(byte)) => panic!("unexpected byte {:?} instead of close", byte as char),
            Err(err) => panic!("no clean close: {err}"),
        }
    }

    /// The local port of this connection, as the server's log shows it.
    pub fn local_port(&self) -> u16 {
        self.0.local_port().expect("local address")
    }

    /// Closes our sending side.
    pub fn shutdown_write(&mut self) {
        let _ = self.0.shutdown_write();
    }
}
