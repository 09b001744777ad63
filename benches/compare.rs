//! Compares poolhttpd's two threading models under the same load: `--model pool` (one mio
//! poll thread feeding a fixed worker pool) and `--model threads` (a thread per
//! connection).
//!
//! For every scenario and every model the bench starts a fresh release server on a free
//! loopback port, drives it with an event-driven load generator (mio on two client threads,
//! never a thread per connection) and samples the server's `/proc/PID/status` for its peak
//! thread count and resident memory. Only correct responses count: status 200, the file's
//! `Content-Length`, and the body compared with the generated file (byte for byte for the
//! small files; length and both ends for the 2 MiB one). Scenarios:
//!
//! - `small xN`: `GET /small.txt` (23 bytes) over N = 1, 16, 128, 512 keep-alive connections;
//! - `page x128`: a 41,000-byte HTML page; `big x16`: a 2 MiB file;
//! - `new-conn x32`: every request on a new connection (`Connection: close`);
//! - `idle5000 + small x32`: 5,000 idle keep-alive connections held open during the load;
//! - `slow64 + small x32`: 64 connections reading the 2 MiB file very slowly during the load.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench compare                                  # 4 s per run, under 5 min
//! POOLHTTPD_BENCH_QUICK=1 cargo bench --bench compare          # 0.3 s per run, a smoke test
//! cargo bench --bench compare -- --url http://127.0.0.1:8081   # also measure another server
//! ```
//!
//! With `--url`, serve `target/bench/root` with the other server first; the same scenarios
//! then also run against it. The bench prints a Markdown table on stdout and progress on
//! stderr, and writes `target/bench/report.json` and `target/bench/report.svg`.

use std::fs;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Measured time per run in the full bench: enough for a stable p99 (hundreds of thousands
/// of samples for small files), short enough that 18 runs (27 with `--url`) and their
/// set-up fit well inside five minutes on two cores.
const FULL_MEASURE: Duration = Duration::from_secs(4);
/// Warm-up before measuring: connections open, the page cache and the server's threads
/// settle, and the slow start of every fresh connection is left out.
const FULL_WARMUP: Duration = Duration::from_millis(500);
/// Quick mode only shows that everything works end to end, in a few seconds per model.
const QUICK_MEASURE: Duration = Duration::from_millis(300);
const QUICK_WARMUP: Duration = Duration::from_millis(100);
/// Set to anything but `0` for quick mode.
const QUICK_VAR: &str = "POOLHTTPD_BENCH_QUICK";

/// The server's keep-alive, in seconds: far beyond a run, so that no connection (the idle
/// ones above all) is closed by the server during the bench.
const SERVER_KEEP_ALIVE: &str = "60";
/// How long a fresh server may take to print its port.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM before it is killed. Its own grace
/// period is 5 s, and every client connection is closed before the signal.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How often the sampler reads `/proc/PID/status`: fine enough to catch the peak of a
/// 0.3 s quick run, cheap enough (one small file read) not to disturb the server.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(20);

/// Connections held idle, each after one request, in the `idle5000` scenario: enough to
/// show what an idle connection costs each model, within the 20,000 descriptors that
/// client and server share here.
const IDLE_CONNECTIONS: usize = 5_000;
/// Idle connections opened and sent their request before their responses are read, so that
/// setting up 5,000 of them takes a round trip per batch rather than per connection.
const IDLE_BATCH: usize = 250;
/// Longest the whole idle set-up may take; fewer idle connections are used after it.
const IDLE_SETUP_DEADLINE: Duration = Duration::from_secs(30);
/// Connections reading `big.bin` slowly in the `slow64` scenario.
const SLOW_READERS: usize = 64;
/// Each slow reader takes at most this much per period: 160 KiB/s, a hundredth of what a
/// fast client takes, so that what it asked for lasts far longer than any run.
const SLOW_CHUNK: usize = 16 * 1024;
const SLOW_PERIOD: Duration = Duration::from_millis(100);
/// Requests of `big.bin` each slow reader sends at once (the last with `Connection:
/// close`). Linux lets a loopback socket's send buffer grow to 4 MiB (`tcp_wmem`), which
/// swallows one 2 MiB response whole: the server would be done with the connection at
/// once. 8 MiB outstanding keeps it holding every slow connection for the whole run.
const SLOW_PIPELINE: usize = 4;
/// A slow reader's receive buffer. Without a cap, loopback autotuning would let megabytes
/// sit in the client's buffer and the server would never see a slow reader at all.
const SLOW_RECV_BUFFER: usize = 16 * 1024;
/// Bound on every blocking operation of the set-up code (idle and slow connections).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Load-generating threads: the machine has two cores, and more client threads would only
/// take CPU time from the server being measured.
const CLIENT_THREADS: usize = 2;
/// A response that makes no progress this long counts as an error and its connection is
/// reopened.
const STALL_LIMIT: Duration = Duration::from_secs(5);
/// How often each client thread looks for stalled connections.
const STALL_SWEEP: Duration = Duration::from_millis(100);
/// Pause before reopening a connection after an error, so that a server refusing
/// connections costs a bounded number of attempts instead of a busy loop.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// Readiness events taken per poll.
const EVENT_CAPACITY: usize = 1024;
/// Per-thread read buffer: large enough that a 2 MiB body takes a few dozen reads.
const READ_BUFFER: usize = 256 * 1024;
/// A response head longer than this is an error (poolhttpd's are about 300 bytes).
const MAX_HEAD: usize = 16 * 1024;
/// Most header fields parsed in a response head.
const MAX_FIELDS: usize = 64;
/// Latency histogram range and precision: 1 µs to 60 s, three significant digits.
const LATENCY_CEILING_US: u64 = 60_000_000;
const LATENCY_SIGFIGS: u8 = 3;

/// The small file's body: exactly 23 bytes.
const SMALL_BODY: &[u8] = b"A small file: 23 bytes\n";
const _: () = assert!(SMALL_BODY.len() == 23);
/// The HTML page's size: a typical article.
const PAGE_LEN: usize = 41_000;
/// The large file's size, and its generator's seed (any non-zero value).
const BIG_LEN: usize = 2 * 1024 * 1024;
const BIG_SEED: u64 = 0x5EED_CAFE_F00D_D00D;
/// Bytes compared at each end of the large file; its length is checked exactly. Comparing
/// all of it would make the client, not the server, the bottleneck.
const ENDS_CHECKED: usize = 64;

fn main() {
    let options = match Options::parse(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("compare: {message}");
            std::process::exit(2);
        }
    };
    raise_descriptor_limit();
    let timing = Timing::from_env();
    let out_dir = target_dir().join("bench");
    let root = DocRoot::generate(&out_dir.join("root"));
    announce(&options, &timing, &root);

    let started = Instant::now();
    let reports: Vec<report::ScenarioReport> = SCENARIOS
        .iter()
        .map(|scenario| run_scenario(scenario, &options, &root, &timing))
        .collect();

    println!("{}", report::table(&reports));
    let json_path = out_dir.join("report.json");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    fs::write(&json_path, report::json(&reports, &timing, cores))
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", json_path.display()));
    let svg_path = out_dir.join("report.svg");
    if let Err(err) = report::draw_chart(&svg_path, &reports) {
        eprintln!("[bench] could not draw {}: {err}", svg_path.display());
    }
    eprintln!("[bench] done in {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("[bench] wrote {}", json_path.display());
    eprintln!("[bench] wrote {}", svg_path.display());
}

fn announce(options: &Options, timing: &Timing, root: &DocRoot) {
    let mode = if timing.quick { "quick" } else { "full" };
    eprintln!(
        "[bench] {mode} mode: {} scenarios, {:.1} s warm-up + {:.1} s measured per run",
        SCENARIOS.len(),
        timing.warmup.as_secs_f64(),
        timing.measure.as_secs_f64()
    );
    if let Some(url) = &options.url {
        eprintln!(
            "[bench] also measuring {}: serve {} with that server",
            url.host,
            root.dir.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Command line and timing

/// What the bench's command line asks for.
struct Options {
    /// Another server to measure alongside the two models.
    url: Option<Endpoint>,
}

impl Options {
    /// Reads `--url URL` (or `--url=URL`). Anything else is ignored: `cargo bench` adds
    /// `--bench` to a harness-less bench, and may pass filters meant for other benches.
    fn parse(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Options, String> {
        let mut args = args.map(|arg| arg.to_string_lossy().into_owned());
        let mut url = None;
        while let Some(arg) = args.next() {
            let value = if arg == "--url" {
                Some(
                    args.next()
                        .ok_or("--url needs a value, like http://127.0.0.1:8081")?,
                )
            } else {
                arg.strip_prefix("--url=").map(str::to_string)
            };
            match value {
                Some(value) => url = Some(Endpoint::from_url(&value)?),
                None if arg == "--bench" => {}
                None => eprintln!("[bench] ignoring argument {arg:?}"),
            }
        }
        Ok(Options { url })
    }
}

/// How long each run lasts.
struct Timing {
    quick: bool,
    warmup: Duration,
    measure: Duration,
}

impl Timing {
    fn from_env() -> Timing {
        let quick =
            std::env::var_os(QUICK_VAR).is_some_and(|value| value != "0" && !value.is_empty());
        let (warmup, measure) = if quick {
            (QUICK_WARMUP, QUICK_MEASURE)
        } else {
            (FULL_WARMUP, FULL_MEASURE)
        };
        Timing {
            quick,
            warmup,
            measure,
        }
    }
}

/// Idle and slow connections need thousands of descriptors; the default soft limit is
/// often 1,024, so take what the hard limit allows (the server inherits it).
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            eprintln!("[bench] cannot raise the descriptor limit: {err}");
        }
    }
}

/// Cargo's target directory, where the document root and the reports go.
fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("CARGO_TARGET_DIR") {
        // Benches run from the package root, where a relative CARGO_TARGET_DIR is usually
        // meant to start; `join` leaves an absolute one as it is.
        Some(dir) => manifest.join(dir),
        None => manifest.join("target"),
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios

/// A file of the generated document root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    Small,
    Page,
    Big,
}

impl File {
    const ALL: [File; 3] = [File::Small, File::Page, File::Big];

    fn name(self) -> &'static str {
        match self {
            File::Small => "small.txt",
            File::Page => "page.html",
            File::Big => "big.bin",
        }
    }
}

/// Connections that load the server without being measured.
#[derive(Debug, Clone, Copy)]
enum Background {
    None,
    /// Keep-alive connections that made one request and then wait.
    Idle(usize),
    /// Connections reading `big.bin` slowly.
    SlowReaders(usize),
}

/// One line of the report.
#[derive(Debug)]
struct Scenario {
    name: &'static str,
    file: File,
    /// Measured connections (the background ones are not counted).
    connections: usize,
    /// Every request on a new connection, with `Connection: close`.
    new_connections: bool,
    background: Background,
}

impl Scenario {
    const fn keep_alive(name: &'static str, file: File, connections: usize) -> Scenario {
        Scenario {
            name,
            file,
            connections,
            new_connections: false,
            background: Background::None,
        }
    }

    const fn with(mut self, background: Background) -> Scenario {
        self.background = background;
        self
    }

    /// The `small xN` scenarios, which the chart draws against N.
    fn on_curve(&self) -> bool {
        self.file == File::Small
            && !self.new_connections
            && matches!(self.background, Background::None)
    }
}

const SCENARIOS: [Scenario; 9] = [
    Scenario::keep_alive("small x1", File::Small, 1),
    Scenario::keep_alive("small x16", File::Small, 16),
    Scenario::keep_alive("small x128", File::Small, 128),
    Scenario::keep_alive("small x512", File::Small, 512),
    Scenario::keep_alive("page x128", File::Page, 128),
    Scenario::keep_alive("big x16", File::Big, 16),
    Scenario {
        name: "new-conn x32",
        file: File::Small,
        connections: 32,
        new_connections: true,
        background: Background::None,
    },
    Scenario::keep_alive("idle5000 + small x32", File::Small, 32)
        .with(Background::Idle(IDLE_CONNECTIONS)),
    Scenario::keep_alive("slow64 + small x32", File::Small, 32)
        .with(Background::SlowReaders(SLOW_READERS)),
];

/// Which server a run measures.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// A fresh poolhttpd started with this `--model`.
    Model(&'static str),
    /// The server given with `--url`, already running.
    External(&'a Endpoint),
}

impl Target<'_> {
    fn label(&self) -> &'static str {
        match self {
            Target::Model(model) => model,
            Target::External(_) => "other",
        }
    }
}

fn run_scenario(
    scenario: &'static Scenario,
    options: &Options,
    root: &DocRoot,
    timing: &Timing,
) -> report::ScenarioReport {
    let run = |target: Target<'_>| {
        let result = run_on(target, scenario, root, timing);
        eprintln!(
            "[bench] {} {}: {}",
            scenario.name,
            target.label(),
            result.summary()
        );
        result
    };
    report::ScenarioReport {
        scenario,
        pool: run(Target::Model("pool")),
        threads: run(Target::Model("threads")),
        other: options.url.as_ref().map(|url| run(Target::External(url))),
    }
}

/// One scenario against one server: a fresh server process for a model, so that the peaks
/// belong to this scenario alone.
fn run_on(
    target: Target<'_>,
    scenario: &Scenario,
    root: &DocRoot,
    timing: &Timing,
) -> report::RunResult {
    match target {
        Target::External(endpoint) => {
            let tally = drive(scenario, endpoint, root, timing);
            report::RunResult::new(&tally, timing.measure, None)
        }
        Target::Model(model) => {
            let server = server::ServerProcess::start(model, &root.dir)
                .unwrap_or_else(|err| panic!("cannot start poolhttpd --model {model}: {err}"));
            let sampler = server::Sampler::start(server.pid());
            let endpoint = Endpoint::loopback(server.port());
            let tally = drive(scenario, &endpoint, root, timing);
            let peaks = sampler.finish();
            if let Err(err) = server.stop() {
                eprintln!("[bench] poolhttpd --model {model}: {err}");
            }
            report::RunResult::new(&tally, timing.measure, Some(peaks))
        }
    }
}

/// Sets up the scenario's background connections, runs the measured load, and closes
/// everything it opened.
fn drive(scenario: &Scenario, endpoint: &Endpoint, root: &DocRoot, timing: &Timing) -> load::Tally {
    let background = background::Running::start(scenario.background, endpoint, root);
    let request = endpoint.request(scenario.file, scenario.new_connections);
    let plan = load::Plan::new(
        endpoint.addr,
        request,
        root.expected(scenario.file),
        scenario.new_connections,
        timing,
    );
    let tally = load::run(&plan, scenario.connections);
    background.finish();
    tally
}

// ---------------------------------------------------------------------------------------
// Where requests go

/// A server's address and how to name paths on it.
#[derive(Debug)]
struct Endpoint {
    addr: SocketAddr,
    /// The `Host` field.
    host: String,
    /// Path prefix from `--url`, without a trailing slash ("" for the root).
    prefix: String,
}

impl Endpoint {
    /// One of our own servers, bound to loopback.
    fn loopback(port: u16) -> Endpoint {
        Endpoint {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: "localhost".to_string(),
            prefix: String::new(),
        }
    }

    /// Parses `http://HOST:PORT[/PREFIX]`.
    fn from_url(url: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| {
            format!("malformed --url {url:?}: {why} (the form is http://HOST:PORT[/PREFIX])")
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs are supported"))?;
        if rest.contains(['?', '#', '@']) || rest.contains(char::is_whitespace) {
            return Err(bad("no user, query, fragment or spaces allowed"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("no HOST:PORT"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| bad("the port must be 1 to 65535"))?;
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|err| bad(&format!("cannot resolve {host}: {err}")))?
            .next()
            .ok_or_else(|| bad(&format!("{host} has no address")))?;
        Ok(Endpoint {
            addr,
            host: authority.to_string(),
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The request for `file`, asking to close the connection after it if `close`.
    fn request(&self, file: File, close: bool) -> Vec<u8> {
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!(
            "GET {}/{} HTTP/1.1\r\nHost: {}\r\n{connection}\r\n",
            self.prefix,
            file.name(),
            self.host
        )
        .into_bytes()
    }
}

/// `host:port` or `[v6]:port`, both parts non-empty.
fn split_host_port(authority: &str) -> Option<(&str, &str)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':')?)
        }
        None => authority
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':'))?,
    };
    (!host.is_empty() && !port.is_empty()).then_some((host, port))
}

// ---------------------------------------------------------------------------------------
// The document root

/// A generated file and what of it a response must match.
pub struct Expected {
    bytes: Vec<u8>,
    /// Ranges of the body compared byte for byte; the length is always checked.
    checked: Vec<Range<usize>>,
}

impl Expected {
    fn whole(bytes: Vec<u8>) -> Expected {
        let checked = std::iter::once(0..bytes.len()).collect();
        Expected { bytes, checked }
    }

    /// Checks only the first and last `n` bytes.
    fn ends(bytes: Vec<u8>, n: usize) -> Expected {
        let len = bytes.len();
        let checked = vec![0..n.min(len), len.saturating_sub(n)..len];
        Expected { bytes, checked }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether `chunk`, found at `offset` in the body, matches wherever it is checked.
    fn matches(&self, offset: usize, chunk: &[u8]) -> bool {
        let end = offset + chunk.len();
        self.checked.iter().all(|range| {
            let (from, to) = (range.start.max(offset), range.end.min(end));
            from >= to || chunk.get(from - offset..to - offset) == self.bytes.get(from..to)
        })
    }
}

/// The files every server is measured with, written under `target/bench/root`.
struct DocRoot {
    dir: PathBuf,
    small: Expected,
    page: Expected,
    big: Expected,
}

impl DocRoot {
    fn generate(dir: &Path) -> DocRoot {
        fs::create_dir_all(dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        // poolhttpd serves only world-readable files, whatever the umask says.
        make_public(dir, 0o755);
        let root = DocRoot {
            dir: dir.to_path_buf(),
            small: Expected::whole(SMALL_BODY.to_vec()),
            page: Expected::whole(page_html()),
            big: Expected::ends(pseudo_random(BIG_LEN, BIG_SEED), ENDS_CHECKED),
        };
        for file in File::ALL {
            let path = dir.join(file.name());
            // Rewriting identical files would only disturb a server already serving them.
            if fs::read(&path).ok().as_deref() != Some(root.expected(file).bytes.as_slice()) {
                fs::write(&path, &root.expected(file).bytes)
                    .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
            }
            make_public(&path, 0o644);
        }
        root
    }

    fn expected(&self, file: File) -> &Expected {
        match file {
            File::Small => &self.small,
            File::Page => &self.page,
            File::Big => &self.big,
        }
    }
}

fn make_public(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("cannot chmod {}: {err}", path.display()));
}

/// An HTML page of exactly [`PAGE_LEN`] bytes.
fn page_html() -> Vec<u8> {
    const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                        <title>poolhttpd benchmark page</title>\n</head>\n<body>\n<main>\n\
                        <h1>Benchmark page</h1>\n";
    const FOOT: &str = "</main>\n</body>\n</html>\n";
    let mut page = String::from(HEAD);
    for n in 1.. {
        let paragraph = format!(
            "<p>Paragraph {n}. A page of about forty kilobytes, like a typical article, \
             served again and again from the page cache.</p>\n"
        );
        if page.len() + paragraph.len() + FOOT.len() > PAGE_LEN {
            break;
        }
        page.push_str(&paragraph);
    }
    // Newlines between elements mean nothing in HTML: they pad the page to its exact size.
    page.push_str(&"\n".repeat(PAGE_LEN - page.len() - FOOT.len()));
    page.push_str(FOOT);
    assert_eq!(page.len(), PAGE_LEN);
    page.into_bytes()
}

/// `len` bytes from a xorshift64 generator: deterministic, so that every run (and any
/// other server given the same root) serves the same file, and incompressible.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

// ---------------------------------------------------------------------------------------

/// The measured load: event-driven clients that keep every connection busy with one request
/// at a time and check every response.
mod load {
    use std::collections::{BTreeMap, VecDeque};
    use std::fmt;
    use std::io::{self, Read, Write};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use hdrhistogram::Histogram;
    use mio::net::TcpStream;
    use mio::{Events, Interest, Poll, Registry, Token};

    use super::{
        CLIENT_THREADS, EVENT_CAPACITY, Expected, LATENCY_CEILING_US, LATENCY_SIGFIGS, MAX_FIELDS,
        MAX_HEAD, READ_BUFFER, RETRY_PAUSE, STALL_LIMIT, STALL_SWEEP, Timing,
    };

    /// Why a response did not count.
    #[derive(Debug)]
    pub enum Failure {
        Connect(io::ErrorKind),
        Io(io::ErrorKind),
        /// The server closed before the response was complete.
        Eof,
        Status(Option<u16>),
        /// No usable `Content-Length` (missing, repeated, or with `Transfer-Encoding`).
        Framing,
        /// A `Content-Length` other than the file's length.
        Length,
        BadHead,
        HeadTooLarge,
        Mismatch,
        /// Bytes after the response, which asked for nothing more.
        ExtraBytes,
        Stalled,
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Failure::Connect(kind) => write!(f, "connect: {kind}"),
                Failure::Io(kind) => write!(f, "{kind}"),
                Failure::Eof => write!(f, "closed mid-response"),
                Failure::Status(Some(code)) => write!(f, "status {code}"),
                Failure::Status(None) => write!(f, "no status"),
                Failure::Framing => write!(f, "no usable Content-Length"),
                Failure::Length => write!(f, "wrong Content-Length"),
                Failure::BadHead => write!(f, "malformed head"),
                Failure::HeadTooLarge => write!(f, "head too large"),
                Failure::Mismatch => write!(f, "body mismatch"),
                Failure::ExtraBytes => write!(f, "bytes after the response"),
                Failure::Stalled => write!(f, "stalled > {} s", STALL_LIMIT.as_secs()),
            }
        }
    }

    impl Failure {
        fn io(err: &io::Error) -> Failure {
            Failure::Io(err.kind())
        }
    }

    /// What one run (or one client thread) counted.
    pub struct Tally {
        /// Latency of every correct response in the measured window, in microseconds.
        pub latency: Histogram<u64>,
        pub responses: u64,
        /// Errors by kind, over the whole run: an error during warm-up is still an error.
        pub errors: BTreeMap<String, u64>,
    }

    impl Tally {
        fn new() -> Tally {
            Tally {
                latency: Histogram::new_with_bounds(1, LATENCY_CEILING_US, LATENCY_SIGFIGS)
                    .expect("valid histogram bounds"),
                responses: 0,
                errors: BTreeMap::new(),
            }
        }

        /// Counts a correct response that finished at `now`, unless still warming up.
        fn record(&mut self, started: Instant, now: Instant, measure_from: Instant) {
            if now < measure_from {
                return;
            }
            self.responses += 1;
            let micros = u64::try_from(now.duration_since(started).as_micros()).unwrap_or(u64::MAX);
            self.latency.saturating_record(micros);
        }

        fn error(&mut self, failure: &Failure) {
            *self.errors.entry(failure.to_string()).or_default() += 1;
        }

        pub fn error_total(&self) -> u64 {
            self.errors.values().sum()
        }

        fn merge(&mut self, other: Tally) {
            self.latency
                .add(&other.latency)
                .expect("histograms with the same bounds add up");
            self.responses += other.responses;
            for (kind, count) in other.errors {
                *self.errors.entry(kind).or_default() += count;
            }
        }
    }

    /// What every connection of a run does, and when the run's phases end.
    pub struct Plan<'a> {
        addr: SocketAddr,
        request: Vec<u8>,
        expected: &'a Expected,
        /// Each request asks for `Connection: close`: read to the end, then reconnect.
        close_each: bool,
        /// Responses finishing before this are warm-up.
        measure_from: Instant,
        end: Instant,
    }

    impl<'a> Plan<'a> {
        /// A plan whose warm-up starts now.
        pub fn new(
            addr: SocketAddr,
            request: Vec<u8>,
            expected: &'a Expected,
            close_each: bool,
            timing: &Timing,
        ) -> Plan<'a> {
            let measure_from = Instant::now() + timing.warmup;
            Plan {
                addr,
                request,
                expected,
                close_each,
                measure_from,
                end: measure_from + timing.measure,
            }
        }
    }

    /// Runs `connections` connections until the plan's end, shared among the client
    /// threads, and adds up what they counted.
    pub fn run(plan: &Plan<'_>, connections: usize) -> Tally {
        let threads = CLIENT_THREADS.min(connections).max(1);
        std::thread::scope(|scope| {
            let clients: Vec<_> = (0..threads)
                .map(|index| {
                    // An even split, the first threads taking one more if it is uneven.
                    let share = connections / threads + usize::from(index < connections % threads);
                    std::thread::Builder::new()
                        .name(format!("client-{index}"))
                        .spawn_scoped(scope, move || Client::new(plan, share).run())
                        .expect("spawn a client thread")
                })
                .collect();
            let mut total = Tally::new();
            for client in clients {
                match client.join() {
                    Ok(tally) => total.merge(tally),
                    Err(_) => eprintln!("[bench] a client thread panicked"),
                }
            }
            total
        })
    }

    /// One client thread: its connections, each in a slot whose index is its token.
    struct Client<'p> {
        plan: &'p Plan<'p>,
        poll: Poll,
        /// `None` while the slot waits in `paused` to reconnect.
        slots: Vec<Option<Conn>>,
        /// Slots to reopen, in the order their pauses end (all pauses are equally long).
        paused: VecDeque<(Instant, usize)>,
        buffer: Vec<u8>,
        tally: Tally,
    }

    impl<'p> Client<'p> {
        fn new(plan: &'p Plan<'p>, connections: usize) -> Client<'p> {
            Client {
                plan,
                poll: Poll::new().expect("create a mio Poll"),
                slots: (0..connections).map(|_| None).collect(),
                paused: VecDeque::new(),
                buffer: vec![0; READ_BUFFER],
                tally: Tally::new(),
            }
        }

        fn run(mut self) -> Tally {
            let mut events = Events::with_capacity(EVENT_CAPACITY);
            for slot in 0..self.slots.len() {
                self.reopen(slot);
            }
            let mut next_sweep = Instant::now() + STALL_SWEEP;
            loop {
                let now = Instant::now();
                if now >= self.plan.end {
                    break;
                }
                if now >= next_sweep {
                    self.fail_stalled(now);
                    next_sweep = now + STALL_SWEEP;
                }
                self.resume_paused(now);
                let wake = self.next_wake(next_sweep);
                match self
                    .poll
                    .poll(&mut events, Some(wake.saturating_duration_since(now)))
                {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        eprintln!("[bench] poll failed, ending this client early: {err}");
                        break;
                    }
                }
                for event in &events {
                    self.drive(event.token().0);
                }
            }
            self.tally
        }

        /// The earliest of the run's end, the next stall sweep and the next reconnection.
        fn next_wake(&self, next_sweep: Instant) -> Instant {
            let wake = self.plan.end.min(next_sweep);
            self.paused.front().map_or(wake, |&(at, _)| wake.min(at))
        }

        /// Moves the slot's connection as far as its socket allows.
        fn drive(&mut self, slot: usize) {
            // A slot without a connection got an event its old socket left behind.
            let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let mut io = Io {
                plan: self.plan,
                buffer: &mut self.buffer,
                tally: &mut self.tally,
            };
            match conn.advance(&mut io) {
                Ok(Advance::Waiting) => {}
                Ok(Advance::Closed) => self.reopen(slot),
                Err(failure) => self.fail(slot, &failure),
            }
        }

        fn reopen(&mut self, slot: usize) {
            match Conn::open(self.plan.addr, self.poll.registry(), Token(slot)) {
                Ok(conn) => self.slots[slot] = Some(conn),
                Err(err) => self.fail(slot, &Failure::Connect(err.kind())),
            }
        }

        /// Counts the error, closes the connection and reopens it after a short pause.
        fn fail(&mut self, slot: usize, failure: &Failure) {
            self.tally.error(failure);
            self.slots[slot] = None;
            self.paused.push_back((Instant::now() + RETRY_PAUSE, slot));
        }

        fn resume_paused(&mut self, now: Instant) {
            while let Some(&(at, slot)) = self.paused.front() {
                if at > now {
                    break;
                }
                self.paused.pop_front();
                self.reopen(slot);
            }
        }

        fn fail_stalled(&mut self, now: Instant) {
            for slot in 0..self.slots.len() {
                if let Some(conn) = &self.slots[slot]
                    && now.duration_since(conn.progress) > STALL_LIMIT
                {
                    self.fail(slot, &Failure::Stalled);
                }
            }
        }
    }

    /// What a connection needs from its client thread while it runs.
    struct Io<'a> {
        plan: &'a Plan<'a>,
        buffer: &'a mut [u8],
        tally: &'a mut Tally,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Phase {
        /// The non-blocking connect is in progress.
        Connecting,
        Writing,
        Reading,
        /// The response is complete and the server is to close: read to the end.
        Draining,
    }

    /// What `Conn::advance` leaves the connection doing.
    enum Advance {
        /// Waiting for its socket to be ready.
        Waiting,
        /// Closed cleanly after its last response: open another.
        Closed,
    }

    /// What one step of a phase did.
    enum Step {
        /// The phase changed: go on with the new one.
        Continue,
        /// The socket would block.
        Wait,
        Closed,
    }

    /// One client connection, carrying one request at a time.
    struct Conn {
        stream: TcpStream,
        phase: Phase,
        reader: ResponseReader,
        /// Bytes of the current request written so far.
        written: usize,
        /// When the current request began to be written: latency starts here.
        started: Instant,
        /// When the connection last moved a byte (or began connecting), for stalls.
        progress: Instant,
    }

    impl Conn {
        /// Starts a non-blocking connect; the connection is ready once it is writable.
        fn open(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<Conn> {
            let mut stream = TcpStream::connect(addr)?;
            // One write per request already; this keeps Nagle from ever delaying one.
            stream.set_nodelay(true)?;
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
            let now = Instant::now();
            Ok(Conn {
                stream,
                phase: Phase::Connecting,
                reader: ResponseReader::default(),
                written: 0,
                started: now,
                progress: now,
            })
        }

        /// Runs phases until the socket would block (readiness is edge-triggered, so
        /// stopping earlier could wait forever) or the connection closes.
        fn advance(&mut self, io: &mut Io<'_>) -> Result<Advance, Failure> {
            loop {
                let step = match self.phase {
                    Phase::Connecting => self.finish_connect()?,
                    Phase::Writing => self.write(&io.plan.request)?,
                    Phase::Reading => self.read(io)?,
                    Phase::Draining => self.drain(io.buffer)?,
                };
                match step {
                    Step::Continue => {}
                    Step::Wait => return Ok(Advance::Waiting),
                    Step::Closed => return Ok(Advance::Closed),
                }
            }
        }

        fn begin_request(&mut self) {
            let now = Instant::now();
            self.phase = Phase::Writing;
            self.written = 0;
            self.started = now;
            self.progress = now;
        }

        /// A writable (or error) event after `connect`: connected, refused, or spurious.
        fn finish_connect(&mut self) -> Result<Step, Failure> {
            if let Some(err) = self.stream.take_error().map_err(|err| Failure::io(&err))? {
                return Err(Failure::Connect(err.kind()));
            }
            match self.stream.peer_addr() {
                Ok(_) => {
                    self.begin_request();
                    Ok(Step::Continue)
                }
                Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(Step::Wait),
                Err(err) => Err(Failure::Connect(err.kind())),
            }
        }

        fn write(&mut self, request: &[u8]) -> Result<Step, Failure> {
            while self.written < request.len() {
                match self.stream.write(&request[self.written..]) {
                    Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero)),
                    Ok(n) => {
                        self.written += n;
                        self.progress = Instant::now();
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Wait),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(Failure::io(&err)),
                }
            }
            self.phase = Phase::Reading;
            Ok(Step::Continue)
        }

        fn read(&mut self, io: &mut Io<'_>) -> Result<Step, Failure> {
            loop {
                let n = match self.stream.read(io.buffer) {
                    Ok(0) => return Err(Failure::Eof),
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Wait),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(Failure::io(&err)),
                };
                let now = Instant::now();
                self.progress = now;
                let plan = io.plan;
                if let Progress::Complete { close } =
                    self.reader.feed(plan.expected, &io.buffer[..n])?
                {
                    io.tally.record(self.started, now, plan.measure_from);
                    if close || plan.close_each {
                        self.phase = Phase::Draining;
                    } else {
                        self.begin_request();
                    }
                    return Ok(Step::Continue);
                }
            }
        }

        /// After a response that ends the connection: anything but the end is an error.
        fn drain(&mut self, buffer: &mut [u8]) -> Result<Step, Failure> {
            loop {
                match self.stream.read(buffer) {
                    Ok(0) => return Ok(Step::Closed),
                    Ok(_) => return Err(Failure::ExtraBytes),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Wait),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(Failure::io(&err)),
                }
            }
        }
    }

    /// How far the current response has come.
    pub enum Progress {
        Partial,
        /// The response is complete and correct; `close` if the server ends the connection.
        Complete {
            close: bool,
        },
    }

    /// Checks one response at a time as its bytes arrive, without keeping the body.
    #[derive(Default)]
    pub struct ResponseReader {
        /// The head so far, when it arrived in more than one read.
        head: Vec<u8>,
        /// Set once the head is parsed.
        body: Option<Body>,
    }

    struct Body {
        received: usize,
        close: bool,
    }

    impl ResponseReader {
        /// Takes the next bytes of the response. Bytes beyond its end are an error: the
        /// client never has more than one request outstanding.
        pub fn feed(&mut self, expected: &Expected, bytes: &[u8]) -> Result<Progress, Failure> {
            let (mut body, rest) = match self.body.take() {
                Some(body) => (body, bytes),
                None => match self.head(expected, bytes)? {
                    Some(found) => found,
                    None => return Ok(Progress::Partial),
                },
            };
            let (chunk, extra) = rest.split_at(rest.len().min(expected.len() - body.received));
            if !expected.matches(body.received, chunk) {
                return Err(Failure::Mismatch);
            }
            if !extra.is_empty() {
                return Err(Failure::ExtraBytes);
            }
            body.received += chunk.len();
            if body.received == expected.len() {
                Ok(Progress::Complete { close: body.close })
            } else {
                self.body = Some(body);
                Ok(Progress::Partial)
            }
        }

        /// Looks for the end of the head; returns the body's start and the bytes after it.
        fn head<'b>(
            &mut self,
            expected: &Expected,
            bytes: &'b [u8],
        ) -> Result<Option<(Body, &'b [u8])>, Failure> {
            // The head almost always arrives in one read: parse it in place then.
            let before = self.head.len();
            let parsed = if before == 0 {
                parse_head(bytes, expected.len())?
            } else {
                self.head.extend_from_slice(bytes);
                parse_head(&self.head, expected.len())?
            };
            let Some(head) = parsed else {
                if before == 0 {
                    self.head.extend_from_slice(bytes);
                }
                return if self.head.len() > MAX_HEAD {
                    Err(Failure::HeadTooLarge)
                } else {
                    Ok(None)
                };
            };
            self.head.clear();
            // The earlier bytes held no complete head, so this one ends within `bytes`.
            let rest = head
                .len
                .checked_sub(before)
                .and_then(|at| bytes.get(at..))
                .ok_or(Failure::BadHead)?;
            let body = Body {
                received: 0,
                close: head.close,
            };
            Ok(Some((body, rest)))
        }
    }

    /// What matters in a response head.
    struct Head {
        len: usize,
        close: bool,
    }

    /// Parses a complete head, requiring 200 and a `Content-Length` of `body_len`.
    fn parse_head(buf: &[u8], body_len: usize) -> Result<Option<Head>, Failure> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut response = httparse::Response::new(&mut fields);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Failure::BadHead),
        };
        if response.code != Some(200) {
            return Err(Failure::Status(response.code));
        }
        // HTTP/1.0 closes unless it says otherwise.
        let mut close = response.version == Some(0);
        let mut length: Option<usize> = None;
        for field in response.headers.iter() {
            let name = field.name;
            if name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(field.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                if length.is_some() || value.is_none() {
                    return Err(Failure::Framing);
                }
                length = value;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Failure::Framing);
            } else if name.eq_ignore_ascii_case("connection") {
                for token in String::from_utf8_lossy(field.value).split(',') {
                    match token.trim() {
                        t if t.eq_ignore_ascii_case("close") => close = true,
                        t if t.eq_ignore_ascii_case("keep-alive") => close = false,
                        _ => {}
                    }
                }
            }
        }
        match length {
            None => Err(Failure::Framing),
            Some(length) if length != body_len => Err(Failure::Length),
            Some(_) => Ok(Some(Head { len, close })),
        }
    }

    /// Reads one response on a blocking socket (with a read timeout): for the set-up code.
    pub fn read_response(
        stream: &mut std::net::TcpStream,
        expected: &Expected,
        buffer: &mut [u8],
    ) -> Result<Progress, Failure> {
        let mut reader = ResponseReader::default();
        loop {
            let n = match stream.read(buffer) {
                Ok(0) => return Err(Failure::Eof),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Failure::Stalled);
                }
                Err(err) => return Err(Failure::io(&err)),
            };
            if let done @ Progress::Complete { .. } = reader.feed(expected, &buffer[..n])? {
                return Ok(done);
            }
        }
    }

    /// Latency of a histogram quantile in milliseconds.
    pub fn quantile_ms(latency: &Histogram<u64>, quantile: f64) -> f64 {
        micros_to_ms(latency.value_at_quantile(quantile))
    }

    pub fn micros_to_ms(micros: u64) -> f64 {
        Duration::from_micros(micros).as_secs_f64() * 1000.0
    }
}

// ---------------------------------------------------------------------------------------

/// Connections that weigh on the server during a run without being measured.
mod background {
    use std::io::{self, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::mpsc::{self, RecvTimeoutError, Sender};
    use std::thread::JoinHandle;
    use std::time::Instant;

    use super::load::{self, Progress};
    use super::{
        Background, DocRoot, Endpoint, File, IDLE_BATCH, IDLE_SETUP_DEADLINE, IO_TIMEOUT,
        SLOW_CHUNK, SLOW_PERIOD, SLOW_PIPELINE, SLOW_RECV_BUFFER,
    };

    /// A scenario's background connections, open until [`Running::finish`].
    pub enum Running {
        None,
        Idle(Vec<TcpStream>),
        Slow(SlowReaders),
    }

    impl Running {
        pub fn start(background: Background, endpoint: &Endpoint, root: &DocRoot) -> Running {
            match background {
                Background::None => Running::None,
                Background::Idle(count) => Running::Idle(open_idle(endpoint, root, count)),
                Background::SlowReaders(count) => {
                    Running::Slow(SlowReaders::start(endpoint, count))
                }
            }
        }

        /// Closes every background connection (before the server is asked to stop, so
        /// that it has nothing left to wait for).
        pub fn finish(self) {
            match self {
                Running::None => {}
                Running::Idle(connections) => drop(connections),
                Running::Slow(readers) => readers.finish(),
            }
        }
    }

    /// Opens `count` keep-alive connections that each complete one request, in batches.
    fn open_idle(endpoint: &Endpoint, root: &DocRoot, count: usize) -> Vec<TcpStream> {
        let started = Instant::now();
        let deadline = started + IDLE_SETUP_DEADLINE;
        let request = endpoint.request(File::Small, false);
        let expected = root.expected(File::Small);
        let mut buffer = vec![0; 4096];
        let (mut idle, mut failed) = (Vec::with_capacity(count), 0);
        while idle.len() + failed < count && Instant::now() < deadline {
            let batch = IDLE_BATCH.min(count - idle.len() - failed);
            let sent: Vec<TcpStream> = (0..batch)
                .filter_map(|_| connect_and_send(endpoint.addr, &request).ok())
                .collect();
            failed += batch - sent.len();
            for mut stream in sent {
                match load::read_response(&mut stream, expected, &mut buffer) {
                    Ok(Progress::Complete { close: false }) => idle.push(stream),
                    _ => failed += 1,
                }
            }
        }
        eprintln!(
            "[bench]   {} of {count} idle connections open in {:.1} s{}",
            idle.len(),
            started.elapsed().as_secs_f64(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
        idle
    }

    /// A blocking connection with every wait bounded, its request sent.
    fn connect_and_send(addr: SocketAddr, request: &[u8]) -> io::Result<TcpStream> {
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(request)?;
        Ok(stream)
    }

    /// Connections that each take [`SLOW_CHUNK`] of `big.bin` every [`SLOW_PERIOD`], all
    /// served by one helper thread.
    pub struct SlowReaders {
        stop: Sender<()>,
        thread: JoinHandle<SlowStats>,
    }

    #[derive(Default)]
    struct SlowStats {
        bytes: u64,
        /// Connections reopened after ending (a complete response) or failing.
        reopened: u64,
    }

    impl SlowReaders {
        /// Opens every reader before returning, so that they all weigh on the run.
        fn start(endpoint: &Endpoint, count: usize) -> SlowReaders {
            // Each reader asks for the file several times at once, the last time asking the
            // server to close, and reconnects when it has read everything.
            let mut request = endpoint.request(File::Big, false).repeat(SLOW_PIPELINE - 1);
            request.extend(endpoint.request(File::Big, true));
            let readers: Vec<Option<TcpStream>> = (0..count)
                .map(|_| slow_connect(endpoint.addr, &request).ok())
                .collect();
            let open = readers.iter().flatten().count();
            eprintln!("[bench]   {open} of {count} slow readers open");
            let (stop, stopped) = mpsc::channel();
            let addr = endpoint.addr;
            let thread = std::thread::Builder::new()
                .name("slow-readers".to_string())
                .spawn(move || {
                    let mut readers = readers;
                    let mut stats = SlowStats::default();
                    let mut buffer = vec![0; SLOW_CHUNK];
                    let mut tick = Instant::now();
                    loop {
                        for slot in &mut readers {
                            sip_or_reopen(slot, addr, &request, &mut buffer, &mut stats);
                        }
                        tick += SLOW_PERIOD;
                        let wait = tick.saturating_duration_since(Instant::now());
                        if stopped.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                            return stats;
                        }
                    }
                })
                .expect("spawn the slow-reader thread");
            SlowReaders { stop, thread }
        }

        fn finish(self) {
            drop(self.stop);
            match self.thread.join() {
                Ok(stats) => eprintln!(
                    "[bench]   slow readers took {:.1} MiB, reopened {} times",
                    stats.bytes as f64 / (1024.0 * 1024.0),
                    stats.reopened
                ),
                Err(_) => eprintln!("[bench] the slow-reader thread panicked"),
            }
        }
    }

    /// One reader's turn: take up to a chunk without waiting, or reopen a finished one.
    fn sip_or_reopen(
        slot: &mut Option<TcpStream>,
        addr: SocketAddr,
        request: &[u8],
        buffer: &mut [u8],
        stats: &mut SlowStats,
    ) {
        let Some(stream) = slot else {
            *slot = slow_connect(addr, request).ok();
            stats.reopened += 1;
            return;
        };
        let mut taken = 0;
        while taken < buffer.len() {
            match stream.read(&mut buffer[taken..]) {
                Ok(0) => {
                    *slot = None;
                    break;
                }
                Ok(n) => taken += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    *slot = None;
                    break;
                }
            }
        }
        stats.bytes += taken as u64;
    }

    /// A connection with a small receive buffer whose request is sent; reads are then
    /// non-blocking, so that one thread can serve every reader on time.
    fn slow_connect(addr: SocketAddr, request: &[u8]) -> io::Result<TcpStream> {
        let stream = connect_and_send(addr, request)?;
        // Set after connecting (std offers no bounded connect on a prepared socket): the
        // buffer, and so the window, is capped from then on, which is all that matters.
        rustix::net::sockopt::set_socket_recv_buffer_size(&stream, SLOW_RECV_BUFFER)?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    }
}

// ---------------------------------------------------------------------------------------

/// The server under test: its process and its resource use.
mod server {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use rustix::process::{Pid, Signal, kill_process};

    use super::{SAMPLE_INTERVAL, SERVER_KEEP_ALIVE, STARTUP_DEADLINE, STOP_DEADLINE};

    /// How often to look whether a stopping server has exited.
    const EXIT_POLL: Duration = Duration::from_millis(20);

    /// A running `poolhttpd` on a free loopback port. Dropping it kills the process, so a
    /// panicking bench leaves no server behind.
    pub struct ServerProcess {
        child: Child,
        port: u16,
        stdout: Option<JoinHandle<()>>,
    }

    impl ServerProcess {
        /// Starts the release binary in `model` and waits for the port in its banner.
        pub fn start(model: &str, root: &Path) -> Result<ServerProcess, String> {
            let mut child = Command::new(env!("CARGO_BIN_EXE_poolhttpd"))
                .arg("--root")
                .arg(root)
                .args(["--port", "0", "--bind", "127.0.0.1", "--quiet"])
                .args(["--keep-alive", SERVER_KEEP_ALIVE, "--model", model])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|err| format!("cannot run it: {err}"))?;
            let stdout = child.stdout.take().ok_or("its stdout is not piped")?;
            let (lines_tx, lines) = mpsc::channel();
            let mut server = ServerProcess {
                child,
                port: 0,
                stdout: Some(std::thread::spawn(move || drain_lines(stdout, &lines_tx))),
            };
            server.port = wait_for_port(&lines)?;
            Ok(server)
        }

        pub fn port(&self) -> u16 {
            self.port
        }

        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// SIGTERM, then a bounded wait for the exit; kills the server if it overruns.
        pub fn stop(mut self) -> Result<(), String> {
            kill_process(Pid::from_child(&self.child), Signal::TERM)
                .map_err(|err| format!("cannot send SIGTERM: {err}"))?;
            let deadline = Instant::now() + STOP_DEADLINE;
            let result = loop {
                match self.child.try_wait() {
                    Ok(Some(status)) if status.success() => break Ok(()),
                    Ok(Some(status)) => break Err(format!("exited with {status}")),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
                    Ok(None) => {
                        break Err(format!(
                            "still running {} s after SIGTERM; killed",
                            STOP_DEADLINE.as_secs()
                        ));
                    }
                    Err(err) => break Err(format!("cannot wait for it: {err}")),
                }
            };
            self.kill();
            result
        }

        /// Kills the process if it still runs, reaps it, and ends the stdout thread.
        fn kill(&mut self) {
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
            if let Some(thread) = self.stdout.take() {
                // The pipe closes with the process, which ends the thread.
                let _ = thread.join();
            }
        }
    }

    impl Drop for ServerProcess {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// Forwards the server's stdout lines while anyone listens, and keeps reading after,
    /// so that the server never blocks on a full pipe.
    fn drain_lines(stdout: impl std::io::Read, lines: &Sender<String>) {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    }

    /// The port from the banner line `Access Server at http://localhost:PORT/`.
    fn wait_for_port(lines: &Receiver<String>) -> Result<u16, String> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = banner_port(&line) {
                        return Ok(port);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no port announced within {} s",
                        STARTUP_DEADLINE.as_secs()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("it exited before announcing its port".to_string());
                }
            }
        }
    }

    fn banner_port(line: &str) -> Option<u16> {
        let url = line.strip_prefix("Access Server at http://")?;
        let (_, port) = url.trim_end_matches('/').rsplit_once(':')?;
        port.parse().ok()
    }

    /// The most a server used at any sample.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Peaks {
        pub threads: u64,
        pub rss_kb: u64,
    }

    impl Peaks {
        /// Takes the `Threads:` and `VmRSS:` lines of a `/proc/PID/status`.
        fn update(&mut self, status: &str) {
            for line in status.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                let number = || value.split_whitespace().next()?.parse::<u64>().ok();
                match key {
                    "Threads" => self.threads = self.threads.max(number().unwrap_or(0)),
                    "VmRSS" => self.rss_kb = self.rss_kb.max(number().unwrap_or(0)),
                    _ => {}
                }
            }
        }
    }

    /// A thread that samples a process until [`Sampler::finish`].
    pub struct Sampler {
        stop: Sender<()>,
        thread: JoinHandle<Peaks>,
    }

    impl Sampler {
        pub fn start(pid: u32) -> Sampler {
            let (stop, stopped) = mpsc::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("sampler".to_string())
                .spawn(move || {
                    let path = format!("/proc/{pid}/status");
                    let mut peaks = Peaks::default();
                    loop {
                        if let Ok(status) = std::fs::read_to_string(&path) {
                            peaks.update(&status);
                        }
                        // The stop channel doubles as the sampling clock.
                        if stopped.recv_timeout(SAMPLE_INTERVAL) != Err(RecvTimeoutError::Timeout) {
                            return peaks;
                        }
                    }
                })
                .expect("spawn the sampler thread");
            Sampler { stop, thread }
        }

        pub fn finish(self) -> Peaks {
            drop(self.stop);
            self.thread.join().unwrap_or_default()
        }
    }
}

// ---------------------------------------------------------------------------------------

/// The Markdown table, the JSON report and the chart.
mod report {
    use std::path::Path;
    use std::time::Duration;

    use plotters::coord::Shift;
    use plotters::coord::combinators::IntoLogRange;
    use plotters::prelude::{
        BLACK, ChartBuilder, Color, DrawingArea, IntoDrawingArea, LineSeries, PathElement,
        RGBColor, SVGBackend, SeriesLabelPosition, WHITE,
    };

    use super::load::{self, Tally};
    use super::server::Peaks;
    use super::{Scenario, Timing};

    /// Chart size: two panels of 500 × 450 side by side.
    const SVG_SIZE: (u32, u32) = (1000, 450);
    /// The chart's x range, a little wider than 1..512 so the end points are not clipped.
    const X_RANGE: Range = 0.7..768.0;
    type Range = std::ops::Range<f64>;

    /// One run, summed up.
    pub struct RunResult {
        pub responses: u64,
        pub requests_per_s: f64,
        pub p50_ms: f64,
        pub p99_ms: f64,
        pub max_ms: f64,
        pub errors: u64,
        /// Error kinds and counts, for the progress line.
        error_kinds: String,
        /// Unknown for a server that is not ours.
        pub peaks: Option<Peaks>,
    }

    impl RunResult {
        pub fn new(tally: &Tally, window: Duration, peaks: Option<Peaks>) -> RunResult {
            let error_kinds = tally
                .errors
                .iter()
                .map(|(kind, count)| format!("{kind}: {count}"))
                .collect::<Vec<_>>()
                .join(", ");
            RunResult {
                responses: tally.responses,
                requests_per_s: tally.responses as f64 / window.as_secs_f64(),
                p50_ms: load::quantile_ms(&tally.latency, 0.5),
                p99_ms: load::quantile_ms(&tally.latency, 0.99),
                max_ms: load::micros_to_ms(tally.latency.max()),
                errors: tally.error_total(),
                error_kinds,
                peaks,
            }
        }

        /// The progress line's text.
        pub fn summary(&self) -> String {
            let p99 = if self.responses > 0 {
                format!("{:.2} ms", self.p99_ms)
            } else {
                "-".to_string()
            };
            let mut text = format!(
                "{:.0} req/s, p99 {p99}, {} errors",
                self.requests_per_s, self.errors
            );
            if self.errors > 0 {
                text += &format!(" ({})", self.error_kinds);
            }
            if let Some(peaks) = self.peaks {
                text += &format!(
                    ", peak {} threads, {:.1} MiB",
                    peaks.threads,
                    mib(peaks.rss_kb)
                );
            }
            text
        }

        fn latencies(&self) -> String {
            if self.responses == 0 {
                return "- / - / -".to_string();
            }
            format!(
                "{:.2} / {:.2} / {:.2}",
                self.p50_ms, self.p99_ms, self.max_ms
            )
        }
    }

    fn mib(kb: u64) -> f64 {
        kb as f64 / 1024.0
    }

    /// A scenario's results on every server measured.
    pub struct ScenarioReport {
        pub scenario: &'static Scenario,
        pub pool: RunResult,
        pub threads: RunResult,
        pub other: Option<RunResult>,
    }

    impl ScenarioReport {
        fn runs(&self) -> impl Iterator<Item = (&'static str, &RunResult)> {
            [("pool", &self.pool), ("threads", &self.threads)]
                .into_iter()
                .chain(self.other.as_ref().map(|other| ("other", other)))
        }

        /// "pool / threads[ / other]" of one value per server, `-` where unknown.
        fn per_server(&self, cell: impl Fn(&RunResult) -> Option<String>) -> String {
            self.runs()
                .map(|(_, run)| cell(run).unwrap_or_else(|| "-".to_string()))
                .collect::<Vec<_>>()
                .join(" / ")
        }
    }

    /// The Markdown table, its columns padded so that it also reads well as plain text.
    pub fn table(reports: &[ScenarioReport]) -> String {
        let has_other = reports.iter().any(|report| report.other.is_some());
        let servers = if has_other {
            "pool / threads / other"
        } else {
            "pool / threads"
        };
        let mut header = vec![
            "scenario".to_string(),
            "pool req/s".to_string(),
            "threads req/s".to_string(),
            "pool/threads".to_string(),
            "pool p50 / p99 / max (ms)".to_string(),
            "threads p50 / p99 / max (ms)".to_string(),
            format!("errors {servers}"),
            format!("peak threads {servers}"),
            format!("peak RSS MiB {servers}"),
        ];
        if has_other {
            header.extend(["other req/s".to_string(), "other p99 (ms)".to_string()]);
        }
        let mut rows = vec![header];
        rows.extend(reports.iter().map(|report| row(report, has_other)));
        render_markdown(&rows)
    }

    fn row(report: &ScenarioReport, has_other: bool) -> Vec<String> {
        let (pool, threads) = (&report.pool, &report.threads);
        let ratio = if threads.requests_per_s > 0.0 {
            format!("{:.2}x", pool.requests_per_s / threads.requests_per_s)
        } else {
            "-".to_string()
        };
        let mut cells = vec![
            report.scenario.name.to_string(),
            format!("{:.0}", pool.requests_per_s),
            format!("{:.0}", threads.requests_per_s),
            ratio,
            pool.latencies(),
            threads.latencies(),
            report.per_server(|run| Some(run.errors.to_string())),
            report.per_server(|run| run.peaks.map(|peaks| peaks.threads.to_string())),
            report.per_server(|run| run.peaks.map(|peaks| format!("{:.1}", mib(peaks.rss_kb)))),
        ];
        if has_other {
            let other = report.other.as_ref();
            cells.push(other.map_or("-".to_string(), |run| format!("{:.0}", run.requests_per_s)));
            cells.push(
                other
                    .filter(|run| run.responses > 0)
                    .map_or("-".to_string(), |run| format!("{:.2}", run.p99_ms)),
            );
        }
        cells
    }

    fn render_markdown(rows: &[Vec<String>]) -> String {
        let columns = rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                rows.iter()
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
        let pad = |row: &Vec<String>| {
            row.iter()
                .zip(&widths)
                .map(|(cell, &width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
        };
        let mut out = Vec::with_capacity(rows.len() + 1);
        if let Some((header, body)) = rows.split_first() {
            out.push(line(pad(header)));
            out.push(line(
                widths.iter().map(|&width| "-".repeat(width)).collect(),
            ));
            out.extend(body.iter().map(|row| line(pad(row))));
        }
        out.join("\n")
    }

    /// A JSON value, enough for the report (written by hand: no serde in this crate).
    enum Json {
        Null,
        Bool(bool),
        Int(u64),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(&'static str, Json)>),
    }

    impl Json {
        fn render(&self) -> String {
            let mut out = String::new();
            self.write(&mut out, 0);
            out.push('\n');
            out
        }

        fn write(&self, out: &mut String, depth: usize) {
            match self {
                Json::Null => out.push_str("null"),
                Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
                Json::Int(value) => out.push_str(&value.to_string()),
                Json::Num(value) if value.is_finite() => out.push_str(&format!("{value:.3}")),
                Json::Num(_) => out.push_str("null"),
                Json::Str(text) => write_string(out, text),
                Json::Arr(items) => {
                    write_members(
                        out,
                        depth,
                        ('[', ']'),
                        items.iter().map(|item| (None, item)),
                    );
                }
                Json::Obj(fields) => write_members(
                    out,
                    depth,
                    ('{', '}'),
                    fields.iter().map(|(key, value)| (Some(*key), value)),
                ),
            }
        }
    }

    /// An array or object, one member per line, indented two spaces per level.
    fn write_members<'a>(
        out: &mut String,
        depth: usize,
        (open, close): (char, char),
        members: impl ExactSizeIterator<Item = (Option<&'a str>, &'a Json)>,
    ) {
        out.push(open);
        let count = members.len();
        for (index, (key, value)) in members.enumerate() {
            out.push('\n');
            out.push_str(&"  ".repeat(depth + 1));
            if let Some(key) = key {
                write_string(out, key);
                out.push_str(": ");
            }
            value.write(out, depth + 1);
            if index + 1 < count {
                out.push(',');
            }
        }
        if count > 0 {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
        out.push(close);
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    fn write_string(out: &mut String, text: &str) {
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c < ' ' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
    }

    /// `report.json`: the machine, the timing, and every run of every scenario.
    pub fn json(reports: &[ScenarioReport], timing: &Timing, cores: usize) -> String {
        let scenarios = reports
            .iter()
            .map(|report| {
                let results = report
                    .runs()
                    .map(|(label, run)| (label, run_json(run)))
                    .collect();
                Json::Obj(vec![
                    ("name", Json::Str(report.scenario.name.to_string())),
                    ("connections", Json::Int(report.scenario.connections as u64)),
                    ("results", Json::Obj(results)),
                ])
            })
            .collect();
        Json::Obj(vec![
            (
                "machine",
                Json::Obj(vec![("cores", Json::Int(cores as u64))]),
            ),
            ("quick", Json::Bool(timing.quick)),
            ("duration_s", Json::Num(timing.measure.as_secs_f64())),
            ("warmup_s", Json::Num(timing.warmup.as_secs_f64())),
            ("scenarios", Json::Arr(scenarios)),
        ])
        .render()
    }

    fn run_json(run: &RunResult) -> Json {
        // Latencies of a run without a single correct response are unknown, not zero.
        let latency = |ms: f64| {
            if run.responses > 0 {
                Json::Num(ms)
            } else {
                Json::Null
            }
        };
        let peak = |value: fn(&Peaks) -> u64| {
            run.peaks
                .as_ref()
                .map_or(Json::Null, |p| Json::Int(value(p)))
        };
        Json::Obj(vec![
            ("requests_per_s", Json::Num(run.requests_per_s)),
            ("p50_ms", latency(run.p50_ms)),
            ("p99_ms", latency(run.p99_ms)),
            ("max_ms", latency(run.max_ms)),
            ("errors", Json::Int(run.errors)),
            ("peak_threads", peak(|p| p.threads)),
            ("peak_rss_kb", peak(|p| p.rss_kb)),
        ])
    }

    /// One server's `small xN` results, for the chart.
    struct Curve {
        label: &'static str,
        color: RGBColor,
        /// (connections, req/s, p99 ms)
        points: Vec<(f64, f64, f64)>,
    }

    fn curves(reports: &[ScenarioReport]) -> Vec<Curve> {
        let mut curves: Vec<Curve> = Vec::new();
        for report in reports.iter().filter(|report| report.scenario.on_curve()) {
            for (label, run) in report.runs() {
                let point = (
                    report.scenario.connections as f64,
                    run.requests_per_s,
                    run.p99_ms,
                );
                match curves.iter_mut().find(|curve| curve.label == label) {
                    Some(curve) => curve.points.push(point),
                    None => curves.push(Curve {
                        label,
                        color: color_of(label),
                        points: vec![point],
                    }),
                }
            }
        }
        curves
    }

    fn color_of(label: &str) -> RGBColor {
        match label {
            "pool" => RGBColor(31, 119, 180),
            "threads" => RGBColor(214, 39, 40),
            _ => RGBColor(44, 160, 44),
        }
    }

    /// What one panel of the chart shows.
    struct Panel {
        title: &'static str,
        y_desc: &'static str,
        /// Where the legend hides the fewest points: throughput rises to the right,
        /// latency too.
        legend: SeriesLabelPosition,
        value: fn(&(f64, f64, f64)) -> f64,
        y_format: fn(&f64) -> String,
    }

    /// `report.svg`: req/s (left) and p99 latency (right) against the number of keep-alive
    /// connections, one line per server.
    pub fn draw_chart(path: &Path, reports: &[ScenarioReport]) -> Result<(), String> {
        let curves = curves(reports);
        let area = SVGBackend::new(path, SVG_SIZE).into_drawing_area();
        area.fill(&WHITE).map_err(|err| err.to_string())?;
        let (left, right) = area.split_horizontally(SVG_SIZE.0 / 2);
        let throughput = Panel {
            title: "Throughput, GET /small.txt",
            y_desc: "requests per second",
            legend: SeriesLabelPosition::LowerRight,
            value: |point| point.1,
            y_format: |value| format!("{value:.0}"),
        };
        let latency = Panel {
            title: "p99 latency, GET /small.txt",
            y_desc: "p99 latency (ms)",
            legend: SeriesLabelPosition::UpperLeft,
            value: |point| point.2,
            y_format: |value| format!("{value:.1}"),
        };
        draw_panel(&left, &throughput, &curves)?;
        draw_panel(&right, &latency, &curves)?;
        area.present().map_err(|err| err.to_string())
    }

    fn draw_panel(
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        panel: &Panel,
        curves: &[Curve],
    ) -> Result<(), String> {
        let err = |err: plotters::drawing::DrawingAreaErrorKind<_>| err.to_string();
        let top = curves
            .iter()
            .flat_map(|curve| curve.points.iter().map(panel.value))
            .fold(0.0, f64::max);
        // Headroom above the highest point; any range at all when nothing was measured.
        let y_max = if top > 0.0 { top * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(X_RANGE.log_scale().base(2.0), 0.0..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            // The minor grid lines of a log axis are dense: keep them faint.
            .light_line_style(RGBColor(242, 242, 242))
            .x_desc("keep-alive connections (log scale)")
            .y_desc(panel.y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&panel.y_format)
            .draw()
            .map_err(err)?;
        for curve in curves {
            let color = curve.color;
            let points = curve
                .points
                .iter()
                .map(|point| (point.0, (panel.value)(point)));
            chart
                .draw_series(LineSeries::new(points, color.filled().stroke_width(2)).point_size(4))
                .map_err(err)?
                .label(curve.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 24, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(panel.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)
    }
}
