//! The harness: start the real binary on port 0 over a temporary document root, speak raw
//! HTTP to it, and read its log. Every wait is bounded by a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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
    let deadline = Instant::now() + STEP;
    while SystemTime::now() < changed + SETTLED {
        assert!(Instant::now() < deadline, "clock does not advance");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Sets a file's mode bits.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A running server process, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub banner: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
    new_line: Mutex<Receiver<()>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

/// How a server process ended: its exit code and everything it printed.
pub struct Exit {
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: String,
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
    pub fn try_spawn(mut command: Command) -> Result<Server, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start poolhttpd");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let reader = read_lines(stdout, Arc::clone(&log), tx);
        // Drained so that the server never blocks on a full stderr pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let collected = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                collected.lock().expect("stderr").clone_from(&text);
            }
        });
        let server = Server {
            child,
            port: 0,
            banner: Vec::new(),
            log,
            new_line: Mutex::new(rx),
            reader: Some(reader),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        server.with_banner()
    }

    fn with_banner(mut self) -> Result<Server, String> {
        let line = self.wait_for_log(|line| line.starts_with("Access Server at "));
        let Some(line) = line else {
            return Err(self.stop_and_collect().stderr);
        };
        let port = line
            .trim_start_matches("Access Server at http://")
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in banner");
        self.port = port;
        self.banner = self
            .log
            .lock()
            .expect("log")
            .iter()
            .take(3)
            .cloned()
            .collect();
        Ok(self)
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// Waits until a log line matches, up to [`STEP`].
    pub fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + STEP;
        let rx = self.new_line.lock().expect("receiver");
        loop {
            if let Some(line) = self.log.lock().expect("log").iter().find(|l| wanted(l)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            // A new line or the end of output; either way, look again (or give up).
            if let Err(mpsc::RecvTimeoutError::Disconnected) = rx.recv_timeout(left) {
                return self
                    .log
                    .lock()
                    .expect("log")
                    .iter()
                    .find(|l| wanted(l))
                    .cloned();
            }
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// What the server printed to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// A line of `/proc/PID/status`, such as `Threads` or `VmRSS`, as a number.
    pub fn status_field(&self, name: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc status"))
    }

    /// Open descriptors of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("fd dir")
            .count()
    }

    /// CPU time (user + system) the server has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let field = |n: usize| {
            fields
                .get(n)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
        field(11) + field(12)
    }

    /// Polls `check` every few milliseconds until it holds or [`STEP`] passes.
    pub fn eventually(&self, what: &str, check: impl Fn(&Server) -> bool) {
        let deadline = Instant::now() + STEP;
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Waits up to `limit` for the server to exit, and returns its exit code and all it
    /// printed.
    pub fn wait_exit(mut self, limit: Duration) -> Exit {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "server still running after {limit:?}"
            );
            std::thread::park_timeout(Duration::from_millis(10));
        };
        self.collect(status.code())
    }

    /// Kills the server and returns everything it printed to stdout.
    pub fn stop(mut self) -> Vec<String> {
        self.stop_and_collect().stdout
    }

    fn stop_and_collect(&mut self) -> Exit {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for poolhttpd");
        self.collect(status.code())
    }

    /// Everything the exited process printed. Its pipes are closed once it has exited
    /// (it starts no processes of its own), so the readers end.
    fn collect(&mut self, code: Option<i32>) -> Exit {
        for reader in [self.reader.take(), self.stderr_reader.take()]
            .into_iter()
            .flatten()
        {
            let _ = reader.join();
        }
        Exit {
            code,
            stdout: self.log(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(
    stdout: ChildStdout,
    log: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            log.lock().expect("log").push(line);
            let _ = tx.send(());
        }
    })
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times a header appears.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A TCP connection to the server on loopback, given up after [`STEP`] (a full accept
/// queue drops handshakes, and the kernel alone would retry them for minutes).
pub fn connect(port: u16) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), STEP)
}

/// A raw HTTP/1.1 client over one connection.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to the server on loopback.
    pub fn connect(port: u16) -> Client {
        let stream = connect(port).expect("connect");
        stream.set_read_timeout(Some(STEP)).expect("read timeout");
        stream.set_write_timeout(Some(STEP)).expect("write timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("send request");
    }

    /// Sends raw bytes, reporting whether the server still accepted them.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.reader.get_mut().write_all(bytes).is_ok()
    }

    /// Reads a response if its first byte arrives within `wait`.
    pub fn response_within(&mut self, wait: Duration) -> Option<Response> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(wait))
            .expect("read timeout");
        let arrived = match self.reader.fill_buf() {
            Ok(buffered) => !buffered.is_empty(),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(err) => panic!("reading a response: {err}"),
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(STEP))
            .expect("read timeout");
        arrived.then(|| self.response())
    }

    /// Sends `GET path` with a Host header and reads the response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        self.response()
    }

    /// Reads one response whose body length is given by Content-Length (absent: none).
    pub fn response(&mut self) -> Response {
        self.read_response(true)
    }

    /// Reads one response to HEAD: its head only.
    pub fn head_response(&mut self) -> Response {
        self.read_response(false)
    }

    fn read_response(&mut self, with_body: bool) -> Response {
        let mut status_line = String::new();
        self.reader
            .read_line(&mut status_line)
            .expect("status line");
        assert!(status_line.ends_with("\r\n"), "status line {status_line:?}");
        let mut parts = status_line.trim_end().splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let reason = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            assert!(line.ends_with("\r\n"), "header line {line:?}");
            if line == "\r\n" {
                break;
            }
            let (name, value) = line.trim_end().split_once(':').expect("header colon");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut response = Response {
            status,
            reason,
            version,
            headers,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .map(|v| v.parse().expect("numeric Content-Length"))
            .unwrap_or(0);
        if with_body {
            response.body = vec![0; length];
            self.reader.read_exact(&mut response.body).expect("body");
        }
        response
    }

    /// Reads `len` body bytes, for a response whose head was read with
    /// [`Client::head_response`].
    pub fn read_body(&mut self, len: usize) -> Vec<u8> {
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).expect("body");
        body
    }

    /// Waits for the server to close the connection, returning how long that took.
    /// Fails if any byte arrives instead, or if it stays open past `limit`.
    pub fn expect_close(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        match self.end_of_stream(limit) {
            Ok(()) => started.elapsed(),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => started.elapsed(),
            Err(err) => panic!("connection still open after {:?}: {err}", started.elapsed()),
        }
    }

    /// Like [`Client::expect_close`], but a reset fails: the server must have shut down its
    /// side cleanly (FIN), having read what we sent.
    pub fn expect_clean_close(&mut self, limit: Duration) {
        if let Err(err) = self.end_of_stream(limit) {
            panic!("no clean close: {err}");
        }
    }

    /// Reads one byte expecting the end of the stream within `limit`.
    fn end_of_stream(&mut self, limit: Duration) -> std::io::Result<()> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(limit))
            .expect("read timeout");
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte)? {
            0 => Ok(()),
            _ => panic!("unexpected byte {:?} instead of close", byte[0] as char),
        }
    }

    /// The local port of this connection, as the server's log shows it.
    pub fn local_port(&self) -> u16 {
        self.reader
            .get_ref()
            .local_addr()
            .expect("local address")
            .port()
    }

    /// Closes our sending side.
    pub fn shutdown_write(&mut self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Write);
    }
}
