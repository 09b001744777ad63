//! Compares poolhttpd's two threading models under the same load: `--model pool` (one mio
//! poll thread feeding a fixed worker pool) and `--model threads` (a thread per
//! connection), and optionally nginx or another server.
//!
//! For every scenario and every model the bench starts a fresh release server on a free
//! loopback port, drives it with an event-driven load generator (mio on two client threads,
//! never a thread per connection) and samples the server's `/proc/PID/status` for its peak
//! thread count and resident memory. Over the measured window it also takes the server's
//! CPU time and context switches, per correct response. Only correct responses count: status
//! 200, the file's `Content-Length`, and the body compared with the generated file (byte for
//! byte for the small files; length and both ends for the 2 MiB one). Scenarios:
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
//! cargo bench --bench compare -- --nginx                       # also measure nginx
//! cargo bench --bench compare -- --url http://127.0.0.1:8081   # also measure another server
//! cargo bench --bench compare -- --nginx --only x16 --only page # scenarios named so
//! ```
//!
//! With `--nginx`, the bench starts nginx itself (`$POOLHTTPD_BENCH_NGINX`, else `nginx` on
//! `PATH`, else `/usr/sbin/nginx`), fresh for every scenario like the models, with as many
//! worker processes as the pool has worker threads and the tuning in [`nginx`]; it is
//! labelled `nginx (tuned)`. With `--url`, serve `target/bench/root` with the other server
//! first; the same scenarios then also run against it, labelled `other`. The two options
//! exclude each other. The bench prints a Markdown table and its notes on stdout and
//! progress on stderr, and writes `target/bench/report.json` and `target/bench/report.svg`.

use std::fs;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
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
    let out_dir = target_dir().join("bench");
    let scenarios: Vec<&'static Scenario> = SCENARIOS
        .iter()
        .filter(|s| options.only.is_empty() || options.only.iter().any(|o| s.name.contains(o)))
        .collect();
    let bench = Bench {
        third: options.third,
        root: DocRoot::generate(&out_dir.join("root")),
        timing: Timing::from_env(),
        workers: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
    };
    announce(&bench, scenarios.len());

    let started = Instant::now();
    let reports: Vec<report::ScenarioReport> = scenarios
        .into_iter()
        .map(|scenario| run_scenario(scenario, &bench))
        .collect();

    println!("{}", report::table(&reports));
    println!();
    println!("{}", report::notes(&reports, &bench));
    let json_path = out_dir.join("report.json");
    fs::write(&json_path, report::json(&reports, &bench))
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", json_path.display()));
    let svg_path = out_dir.join("report.svg");
    if let Err(err) = report::draw_chart(&svg_path, &reports) {
        eprintln!("[bench] could not draw {}: {err}", svg_path.display());
    }
    eprintln!("[bench] done in {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("[bench] wrote {}", json_path.display());
    eprintln!("[bench] wrote {}", svg_path.display());
}

fn announce(bench: &Bench, scenarios: usize) {
    let timing = &bench.timing;
    let mode = if timing.quick { "quick" } else { "full" };
    eprintln!(
        "[bench] {mode} mode: {} scenarios, {:.1} s warm-up + {:.1} s measured per run, \
         {} pool workers",
        scenarios,
        timing.warmup.as_secs_f64(),
        timing.measure.as_secs_f64(),
        bench.workers
    );
    match &bench.third {
        None => {}
        Some(Third::Url(url)) => eprintln!(
            "[bench] also measuring {}: serve {} with that server",
            url.host,
            bench.root.dir.display()
        ),
        Some(Third::Nginx(installed)) => {
            eprintln!(
                "[bench] also measuring {}: {} ({}), {} worker processes running as {}, fresh \
                 per scenario",
                nginx::LABEL,
                installed.version,
                installed.path.display(),
                bench.workers,
                nginx::workers_user_description(&bench.root.dir)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Command line and timing

/// What the bench's command line asks for.
struct Options {
    /// A server to measure alongside the two models.
    third: Option<Third>,
    /// `--only TEXT` (repeatable): run only the scenarios whose names contain one of these.
    only: Vec<String>,
}

/// A server measured alongside the two models.
enum Third {
    /// Given with `--url`, already running.
    Url(Endpoint),
    /// Started by the bench with `--nginx`, fresh for each scenario.
    Nginx(nginx::Installed),
}

impl Options {
    /// Reads `--url URL` (or `--url=URL`) and `--nginx`, and finds nginx for `--nginx`.
    /// Anything else is ignored: `cargo bench` adds `--bench` to a harness-less bench, and
    /// may pass filters meant for other benches.
    fn parse(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Options, String> {
        let mut args = args.map(|arg| arg.to_string_lossy().into_owned());
        let (mut url, mut nginx, mut only) = (None, false, Vec::new());
        while let Some(arg) = args.next() {
            if arg == "--only" {
                only.push(
                    args.next()
                        .ok_or("--only needs a value, like \"small x16\"")?,
                );
                continue;
            }
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
                None if arg == "--nginx" => nginx = true,
                None if arg == "--bench" => {}
                None => eprintln!("[bench] ignoring argument {arg:?}"),
            }
        }
        // One third server keeps one column of each kind in the table.
        let third = match (url, nginx) {
            (Some(_), true) => return Err("--nginx and --url cannot be combined".to_string()),
            (Some(url), false) => Some(Third::Url(url)),
            (None, true) => Some(Third::Nginx(nginx::Installed::find()?)),
            (None, false) => None,
        };
        Ok(Options { third, only })
    }
}

/// What every run of the bench shares.
struct Bench {
    third: Option<Third>,
    root: DocRoot,
    timing: Timing,
    /// The pool's worker threads and nginx's worker processes: one per core, as the pool
    /// would choose by itself, but given to both explicitly so that they provably match.
    workers: NonZeroUsize,
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
    /// A fresh nginx started by the bench.
    Nginx(&'a nginx::Installed),
}

impl Target<'_> {
    fn label(&self) -> &'static str {
        match self {
            Target::Model(model) => model,
            Target::External(_) => "other",
            Target::Nginx(_) => nginx::LABEL,
        }
    }
}

fn run_scenario(scenario: &'static Scenario, bench: &Bench) -> report::ScenarioReport {
    let run = |target: Target<'_>| {
        let result = run_on(target, scenario, bench);
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
        third: bench.third.as_ref().map(|third| match third {
            Third::Url(url) => run(Target::External(url)),
            Third::Nginx(installed) => run(Target::Nginx(installed)),
        }),
    }
}

/// One scenario against one server: a fresh server process for a model or nginx, so that
/// the peaks and counters belong to this scenario alone.
fn run_on(target: Target<'_>, scenario: &Scenario, bench: &Bench) -> report::RunResult {
    let label = target.label();
    let window = bench.timing.measure;
    match target {
        Target::External(endpoint) => {
            let (tally, ()) = drive(scenario, endpoint, bench, |_| ());
            report::RunResult::new(label, &tally, window, None)
        }
        Target::Model(model) => {
            let server = server::ServerProcess::start(model, &bench.root.dir, bench.workers)
                .unwrap_or_else(|err| panic!("cannot start poolhttpd --model {model}: {err}"));
            let (tally, observed) = observe(label, &[server.pid()], server.port(), scenario, bench);
            if let Err(err) = server.stop() {
                eprintln!("[bench] poolhttpd --model {model}: {err}");
            }
            report::RunResult::new(label, &tally, window, Some(observed))
        }
        Target::Nginx(installed) => {
            let server = nginx::Running::start(installed, &bench.root, bench.workers)
                .unwrap_or_else(|err| panic!("cannot start nginx: {err}"));
            let (tally, mut observed) =
                observe(label, &server.pids(), server.port(), scenario, bench);
            observed.config = Some(server.config().to_string());
            if let Err(err) = server.stop() {
                eprintln!("[bench] nginx: {err}");
            }
            report::RunResult::new(label, &tally, window, Some(observed))
        }
    }
}

/// Runs the scenario against a server the bench started, whose processes are `pids`:
/// samples its peaks throughout, and its CPU time and context switches at both ends of the
/// measured window.
fn observe(
    label: &str,
    pids: &[u32],
    port: u16,
    scenario: &Scenario,
    bench: &Bench,
) -> (load::Tally, report::Observed) {
    // Attached while the server is still idle: see `usage::Meter::attach`.
    let mut meter = usage::Meter::attach(pids);
    let sampler = server::Sampler::start(pids.to_vec());
    let endpoint = Endpoint::loopback(port);
    let (tally, usage) = drive(scenario, &endpoint, bench, |window| meter.measure(window));
    let peaks = sampler.finish();
    let usage = usage
        .map_err(|err| eprintln!("[bench] {label}: no CPU time or context switches: {err}"))
        .ok();
    let observed = report::Observed {
        peaks,
        usage,
        config: None,
    };
    (tally, observed)
}

/// Sets up the scenario's background connections, runs the measured load while `during`
/// runs on this thread with the measured window, and closes everything it opened.
fn drive<T>(
    scenario: &Scenario,
    endpoint: &Endpoint,
    bench: &Bench,
    during: impl FnOnce(Range<Instant>) -> T,
) -> (load::Tally, T) {
    let root = &bench.root;
    let background = background::Running::start(scenario.background, endpoint, root);
    let request = endpoint.request(scenario.file, scenario.new_connections);
    let plan = load::Plan::new(
        endpoint.addr,
        request,
        root.expected(scenario.file),
        scenario.new_connections,
        &bench.timing,
    );
    let window = plan.window();
    let result = load::run(&plan, scenario.connections, || during(window));
    background.finish();
    result
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
    use std::ops::Range;
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

        fn merge(&mut self, other: &Tally) {
            self.latency
                .add(&other.latency)
                .expect("histograms with the same bounds add up");
            self.responses += other.responses;
            for (kind, count) in &other.errors {
                *self.errors.entry(kind.clone()).or_default() += count;
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

        /// The measured window: responses finishing in it are counted.
        pub fn window(&self) -> Range<Instant> {
            self.measure_from..self.end
        }
    }

    /// Runs `connections` connections until the plan's end, shared among the client
    /// threads, while `during` runs on this thread, and adds up what they counted. The
    /// clients keep their connections open until `during` has returned, so that it can look
    /// at the server at the end of the window before they close.
    pub fn run<T>(plan: &Plan<'_>, connections: usize, during: impl FnOnce() -> T) -> (Tally, T) {
        let threads = CLIENT_THREADS.min(connections).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|index| {
                    // An even split, the first threads taking one more if it is uneven.
                    let share = connections / threads + usize::from(index < connections % threads);
                    std::thread::Builder::new()
                        .name(format!("client-{index}"))
                        .spawn_scoped(scope, move || {
                            let mut client = Client::new(plan, share);
                            client.run();
                            client
                        })
                        .expect("spawn a client thread")
                })
                .collect();
            let seen = during();
            let mut total = Tally::new();
            let mut clients = Vec::with_capacity(handles.len());
            for handle in handles {
                match handle.join() {
                    Ok(client) => {
                        total.merge(&client.tally);
                        clients.push(client);
                    }
                    Err(_) => eprintln!("[bench] a client thread panicked"),
                }
            }
            // Closes every connection.
            drop(clients);
            (total, seen)
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

        /// Drives the connections until the plan's end, leaving them open.
        fn run(&mut self) {
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
    pub fn connect_and_send(addr: SocketAddr, request: &[u8]) -> io::Result<TcpStream> {
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
    use std::num::NonZeroUsize;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use rustix::process::{Pid, Signal, kill_process};

    use super::procfs;
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
        /// Starts the release binary in `model` and waits for the port in its banner. The
        /// pool gets `workers` worker threads.
        pub fn start(
            model: &str,
            root: &Path,
            workers: NonZeroUsize,
        ) -> Result<ServerProcess, String> {
            let mut command = Command::new(env!("CARGO_BIN_EXE_poolhttpd"));
            command
                .arg("--root")
                .arg(root)
                .args(["--port", "0", "--bind", "127.0.0.1", "--quiet"])
                .args(["--keep-alive", SERVER_KEEP_ALIVE, "--model", model]);
            if model == "pool" {
                command.arg("--workers").arg(workers.to_string());
            }
            let mut child = command
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

    /// The most a server used at any sample, its processes added up.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Peaks {
        pub threads: u64,
        pub rss_kb: u64,
    }

    impl Peaks {
        /// Keeps the highest of the `Threads:` and `VmRSS:` lines of one sample of every
        /// process's `/proc/PID/status`, each added up over the processes.
        fn update(&mut self, statuses: &[String]) {
            let sum = |key| -> u64 {
                statuses
                    .iter()
                    .filter_map(|status| procfs::status_value(status, key))
                    .sum()
            };
            self.threads = self.threads.max(sum("Threads"));
            self.rss_kb = self.rss_kb.max(sum("VmRSS"));
        }
    }

    /// A thread that samples a server's processes until [`Sampler::finish`].
    pub struct Sampler {
        stop: Sender<()>,
        thread: JoinHandle<Peaks>,
    }

    impl Sampler {
        pub fn start(pids: Vec<u32>) -> Sampler {
            let (stop, stopped) = mpsc::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("sampler".to_string())
                .spawn(move || {
                    let paths: Vec<String> = pids
                        .iter()
                        .map(|pid| format!("/proc/{pid}/status"))
                        .collect();
                    let mut peaks = Peaks::default();
                    loop {
                        let statuses: Vec<String> = paths
                            .iter()
                            .filter_map(|path| std::fs::read_to_string(path).ok())
                            .collect();
                        peaks.update(&statuses);
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

/// What `/proc` says about the processes of a server under test.
mod procfs {
    use std::fs;
    use std::io;

    /// The fields of `/proc/PID/stat` the bench uses.
    pub struct Stat {
        /// `R`, `S`, `Z` (ended, not yet reaped)…
        pub state: char,
        pub parent: u32,
        /// User plus system time of every thread of the process, living or ended, in clock
        /// ticks.
        pub cpu_ticks: u64,
        /// When the process started, in clock ticks since boot: with the pid, it names one
        /// process for good, even once the pid is reused.
        pub start_ticks: u64,
    }

    pub fn stat(pid: u32) -> io::Result<Stat> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        parse_stat(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat"))
    }

    fn parse_stat(text: &str) -> Option<Stat> {
        // Field 2, the command name in parentheses, may itself hold spaces and parentheses.
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Numbered as in proc(5): the first field after the name is field 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            state: fields.first()?.chars().next()?,
            parent: u32::try_from(field(4)?).ok()?,
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
        })
    }

    /// The thread ids of a process, in order.
    pub fn tasks(pid: u32) -> io::Result<Vec<u32>> {
        let mut tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        Ok(tids)
    }

    /// The living processes whose parent is `pid`, in order. Every process is looked at:
    /// `/proc/PID/task/TID/children` needs `CONFIG_PROC_CHILDREN`, which not every kernel
    /// has (this VM's has not).
    pub fn children(pid: u32) -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut children: Vec<u32> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&child| stat(child).is_ok_and(|s| s.parent == pid && s.state != 'Z'))
            .collect();
        children.sort_unstable();
        children
    }

    /// The number on the `key:` line of a `/proc/.../status` file.
    pub fn status_value(status: &str, key: &str) -> Option<u64> {
        status.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            if name != key {
                return None;
            }
            value.split_whitespace().next()?.parse().ok()
        })
    }
}

// ---------------------------------------------------------------------------------------

/// What a server spends in the measured window: its CPU time and its context switches, over
/// every thread and process it has, including those that start or end inside the window.
///
/// CPU time is the user plus system time of `/proc/PID/stat`, which a process keeps for all
/// its threads, living or ended; for nginx the master's and the workers' are added up.
/// Context switches come from perf software counters (`PERF_COUNT_SW_CONTEXT_SWITCHES`),
/// one opened with `inherit` on every task of the server while it is idle: a thread or
/// process it creates later inherits its creator's counter, and the kernel adds its count
/// to that counter when it ends, so the threads of thread per connection are all counted.
/// Where perf is not allowed, the living threads' `/proc` counts stand in, and the threads
/// that end inside the window are missing.
mod usage {
    use std::collections::HashMap;
    use std::ops::Range;
    use std::sync::Once;
    use std::time::{Duration, Instant};

    use perf_event::events::Software;
    use perf_event::{Builder, Counter};

    use super::procfs;

    /// Listings of the server's tasks tried before giving up on perf counters. A server
    /// still starting its threads (poolhttpd prints its banner before starting them) may
    /// add some between two listings, and each change costs an attempt; a server at rest
    /// settles at once.
    const ATTACH_ATTEMPTS: usize = 20;

    /// Where a context-switch count comes from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum SwitchSource {
        /// Perf counters inherited by every task the server creates.
        Perf,
        /// The server's living threads at both ends of the window.
        LivingThreads,
    }

    impl SwitchSource {
        pub fn name(self) -> &'static str {
            match self {
                SwitchSource::Perf => "perf",
                SwitchSource::LivingThreads => "living threads",
            }
        }
    }

    /// What a server spent in the measured window.
    #[derive(Debug, Clone, Copy)]
    pub struct Usage {
        /// User plus system CPU time of all its threads and processes.
        pub cpu: Duration,
        /// Voluntary plus involuntary context switches.
        pub switches: u64,
        pub source: SwitchSource,
    }

    /// How long one clock tick of `/proc/PID/stat` is: the resolution of each CPU reading.
    pub fn tick() -> Duration {
        Duration::from_secs(1) / rustix::param::clock_ticks_per_second().max(1) as u32
    }

    /// Watches a server's processes from the moment it is attached.
    pub struct Meter {
        /// One for poolhttpd; nginx's master and workers.
        processes: Vec<u32>,
        /// A counter per task of the server at attach time, by task id; `None` if perf is
        /// not allowed here.
        counters: Option<Vec<(u32, Counter)>>,
    }

    /// One look at the server.
    struct Reading {
        cpu_ticks: u64,
        /// Context switches so far, by counter (perf) or by living thread.
        switches: HashMap<u32, u64>,
    }

    impl Meter {
        /// Attaches to a server's processes. Call it while the server has no connection:
        /// a thread that one of its threads creates after this inherits that thread's
        /// counter, so the server must not create threads while the counters are opened
        /// (see [`open_counters`]).
        pub fn attach(processes: &[u32]) -> Meter {
            let counters = open_counters(processes)
                .map_err(|why| {
                    static WARNED: Once = Once::new();
                    WARNED.call_once(|| {
                        eprintln!("[bench] context switches of living threads only: {why}");
                    });
                })
                .ok();
            Meter {
                processes: processes.to_vec(),
                counters,
            }
        }

        /// Waits for the window's start, looks at the server, waits for its end and looks
        /// again: what the server spent in between.
        pub fn measure(&mut self, window: Range<Instant>) -> Result<Usage, String> {
            wait_until(window.start);
            let before = self.read()?;
            wait_until(window.end);
            let after = self.read()?;
            let switches = after
                .switches
                .iter()
                .map(|(task, &count)| {
                    // A thread born inside the window counts from zero.
                    count.saturating_sub(before.switches.get(task).copied().unwrap_or(0))
                })
                .sum();
            let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
            Ok(Usage {
                cpu: tick() * u32::try_from(ticks).unwrap_or(u32::MAX),
                switches,
                source: if self.counters.is_some() {
                    SwitchSource::Perf
                } else {
                    SwitchSource::LivingThreads
                },
            })
        }

        fn read(&mut self) -> Result<Reading, String> {
            let mut cpu_ticks = 0;
            for &pid in &self.processes {
                let stat = procfs::stat(pid)
                    .map_err(|err| format!("cannot read /proc/{pid}/stat: {err}"))?;
                cpu_ticks += stat.cpu_ticks;
            }
            let switches = match &mut self.counters {
                Some(counters) => counters
                    .iter_mut()
                    .map(|(task, counter)| {
                        let count = counter
                            .read()
                            .map_err(|err| format!("cannot read the counter of {task}: {err}"))?;
                        Ok((*task, count))
                    })
                    .collect::<Result<_, String>>()?,
                None => living_switches(&self.processes),
            };
            Ok(Reading {
                cpu_ticks,
                switches,
            })
        }
    }

    /// Sleeps until `at`, an instant of the load's schedule.
    fn wait_until(at: Instant) {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
    }

    /// An enabled, inherited context-switch counter on every task of `processes`.
    ///
    /// A task created after its creator's counter is open inherits it, and would be counted
    /// twice if it got one of its own too; one created before, but after the listing, would
    /// get none. So the tasks are listed again once every counter is open, and only a
    /// listing that has not changed proves that each task is counted exactly once.
    fn open_counters(processes: &[u32]) -> Result<Vec<(u32, Counter)>, String> {
        for _ in 0..ATTACH_ATTEMPTS {
            let tasks = all_tasks(processes)?;
            let mut counters = Vec::with_capacity(tasks.len());
            for &task in &tasks {
                match open_counter(task) {
                    Ok(counter) => counters.push((task, counter)),
                    // The task has ended since the listing: list again.
                    Err(err)
                        if err.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) =>
                    {
                        break;
                    }
                    Err(err) => return Err(format!("perf_event_open on task {task}: {err}")),
                }
            }
            if counters.len() == tasks.len() && all_tasks(processes)? == tasks {
                return Ok(counters);
            }
        }
        Err(format!(
            "the server's tasks kept changing over {ATTACH_ATTEMPTS} listings"
        ))
    }

    fn open_counter(task: u32) -> std::io::Result<Counter> {
        let pid = i32::try_from(task).map_err(std::io::Error::other)?;
        let mut counter = Builder::new(Software::CONTEXT_SWITCHES)
            .observe_pid(pid)
            .any_cpu()
            .inherit(true)
            // Context switches happen in the kernel: excluding it (the crate's default)
            // would count none.
            .include_kernel()
            .build()?;
        counter.enable()?;
        Ok(counter)
    }

    /// Every task of every process, in order.
    fn all_tasks(processes: &[u32]) -> Result<Vec<u32>, String> {
        let mut tasks = Vec::new();
        for &pid in processes {
            let listed =
                procfs::tasks(pid).map_err(|err| format!("cannot list /proc/{pid}/task: {err}"))?;
            tasks.extend(listed);
        }
        Ok(tasks)
    }

    /// Voluntary plus involuntary context switches of every living thread, by thread id.
    fn living_switches(processes: &[u32]) -> HashMap<u32, u64> {
        let mut switches = HashMap::new();
        for &pid in processes {
            for task in procfs::tasks(pid).unwrap_or_default() {
                // A thread that ended since the listing has nothing to say.
                let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/task/{task}/status"))
                else {
                    continue;
                };
                let count = ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
                    .iter()
                    .filter_map(|key| procfs::status_value(&status, key))
                    .sum();
                switches.insert(task, count);
            }
        }
        switches
    }
}

// ---------------------------------------------------------------------------------------

/// nginx as the third server of `--nginx`: found on this machine and started by the bench
/// over the generated root, fresh for every scenario, with one fixed configuration in a
/// temporary directory. Its tuning is what a careful operator would set for static files
/// and nothing more: as many worker processes as the pool has worker threads, `sendfile`,
/// `tcp_nopush`, `tcp_nodelay`, no access log, the same 60 s keep-alive as poolhttpd here,
/// unlimited requests per connection and an open-file cache; the rest is what nginx needs
/// to run from a temporary directory. `report.json` keeps each configuration it ran with.
mod nginx {
    use std::fs;
    use std::io;
    use std::net::TcpListener;
    use std::num::NonZeroUsize;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use rustix::process::{Pid, Signal, kill_process};

    use super::load::{self, Failure};
    use super::{DocRoot, Endpoint, File, STARTUP_DEADLINE, STOP_DEADLINE, background, procfs};

    /// How nginx is named in the table, the progress lines, the report and the chart.
    pub const LABEL: &str = "nginx (tuned)";
    /// An nginx binary to use instead of looking for one; naming a file that does not
    /// exist shows what the bench does without nginx.
    const BINARY_VAR: &str = "POOLHTTPD_BENCH_NGINX";
    /// Where Debian installs nginx, which is not on every user's `PATH`.
    const SBIN_NGINX: &str = "/usr/sbin/nginx";
    /// Connections per worker process: room for the 5,000 idle connections and the load
    /// on top even if they all land on one worker.
    const WORKER_CONNECTIONS: u32 = 20_000;
    /// Descriptors per worker process, to match: one per connection, since the few files
    /// served stay open in the open-file cache.
    const WORKER_RLIMIT_NOFILE: u32 = WORKER_CONNECTIONS;
    /// Attempts at starting nginx. Its port is found free by binding and releasing it, so
    /// another process may take it first; nginx then exits saying so and another port is
    /// tried.
    const START_ATTEMPTS: usize = 3;
    /// How often to look whether nginx is ready, or has exited.
    const POLL: Duration = Duration::from_millis(20);

    /// An nginx binary and its version.
    pub struct Installed {
        pub path: PathBuf,
        /// As `nginx -v` says it, like `nginx/1.22.1`.
        pub version: String,
    }

    impl Installed {
        /// `$POOLHTTPD_BENCH_NGINX` if set, else `nginx` on `PATH`, else `/usr/sbin/nginx`.
        pub fn find() -> Result<Installed, String> {
            let path = match std::env::var_os(BINARY_VAR) {
                Some(path) => Some(PathBuf::from(path)).filter(|path| is_executable(path)),
                None => std::env::var_os("PATH")
                    .and_then(|dirs| {
                        std::env::split_paths(&dirs)
                            .map(|dir| dir.join("nginx"))
                            .find(|path| is_executable(path))
                    })
                    .or_else(|| Some(PathBuf::from(SBIN_NGINX)).filter(|path| is_executable(path))),
            };
            let path = path.ok_or_else(|| match std::env::var_os(BINARY_VAR) {
                Some(path) => format!(
                    "--nginx: nginx is not installed: {BINARY_VAR} names {}, not an executable",
                    Path::new(&path).display()
                ),
                None => {
                    format!("--nginx: nginx is not installed (not on PATH, not at {SBIN_NGINX})")
                }
            })?;
            let output = Command::new(&path)
                .arg("-v")
                .stdin(Stdio::null())
                .output()
                .map_err(|err| format!("--nginx: cannot run {} -v: {err}", path.display()))?;
            // nginx prints `nginx version: nginx/1.22.1` on stderr.
            let printed = String::from_utf8_lossy(&output.stderr);
            let version = printed
                .trim()
                .strip_prefix("nginx version: ")
                .ok_or_else(|| format!("--nginx: {} -v printed no version", path.display()))?
                .to_string();
            Ok(Installed { path, version })
        }
    }

    fn is_executable(path: &Path) -> bool {
        fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    }

    /// `Some("root")` when nginx, run by root, would switch its workers to `nobody` and a
    /// directory on the way to `root` does not let others through, so that `nobody` could
    /// not read the files; `None` leaves the workers' user to nginx (`nobody` under root,
    /// else the bench's own user).
    pub fn worker_user(root: &Path) -> Option<&'static str> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let passable =
            |dir: &Path| fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0);
        (!root.ancestors().all(passable)).then_some("root")
    }

    /// Who nginx's workers run as, for the progress line.
    pub fn workers_user_description(root: &Path) -> String {
        match worker_user(root) {
            Some(user) => format!("{user} (others cannot reach {})", root.display()),
            None if rustix::process::geteuid().is_root() => "nobody".to_string(),
            None => "the bench's user".to_string(),
        }
    }

    /// A running nginx: its master, its workers and its directory. Dropping it stops every
    /// process of it (see [`Running::shut_down`]), so a panicking bench leaves no nginx
    /// behind.
    pub struct Running {
        master: Child,
        workers: Vec<Worker>,
        port: u16,
        config: String,
        /// The configuration, pid file, logs and temporary files; removed after the
        /// processes are gone (fields drop after `Drop::drop`).
        dir: tempfile::TempDir,
    }

    /// A worker process, named by its pid and start time so that a reused pid is never
    /// signalled.
    #[derive(Debug, Clone, Copy)]
    struct Worker {
        pid: u32,
        start_ticks: u64,
    }

    impl Worker {
        fn alive(self) -> bool {
            procfs::stat(self.pid)
                .is_ok_and(|stat| stat.start_ticks == self.start_ticks && stat.state != 'Z')
        }
    }

    /// Why a start failed.
    enum StartError {
        /// Another process took the port first.
        PortTaken(String),
        Failed(String),
    }

    impl Running {
        /// Starts nginx with `workers` worker processes over `root` on a free loopback port,
        /// and waits until every worker runs and `/small.txt` is served correctly.
        pub fn start(
            installed: &Installed,
            root: &DocRoot,
            workers: NonZeroUsize,
        ) -> Result<Running, String> {
            let mut attempt = 1;
            loop {
                match Running::start_once(installed, root, workers) {
                    Err(StartError::PortTaken(_)) if attempt < START_ATTEMPTS => attempt += 1,
                    Err(StartError::PortTaken(why) | StartError::Failed(why)) => return Err(why),
                    Ok(running) => return Ok(running),
                }
            }
        }

        fn start_once(
            installed: &Installed,
            root: &DocRoot,
            workers: NonZeroUsize,
        ) -> Result<Running, StartError> {
            let failed = |what: &str, err: io::Error| StartError::Failed(format!("{what}: {err}"));
            let dir = tempfile::Builder::new()
                .prefix("poolhttpd-bench-nginx-")
                .tempdir()
                .map_err(|err| failed("cannot create its directory", err))?;
            let port = TcpListener::bind(("127.0.0.1", 0))
                .and_then(|listener| listener.local_addr())
                .map_err(|err| failed("cannot find a free port", err))?
                .port();
            let root_dir = root
                .dir
                .canonicalize()
                .map_err(|err| failed("cannot resolve the root", err))?;
            let config = config_text(workers, port, &root_dir, dir.path(), worker_user(&root_dir))
                .map_err(StartError::Failed)?;
            let config_path = dir.path().join("nginx.conf");
            fs::write(&config_path, &config)
                .map_err(|err| failed("cannot write its configuration", err))?;
            // Startup errors go to stderr as well as to the log: keep them for the message
            // rather than among the bench's progress lines.
            let stderr = fs::File::create(dir.path().join("stderr.log"))
                .map_err(|err| failed("cannot create its stderr file", err))?;
            let master = Command::new(&installed.path)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&config_path)
                // The log nginx writes before it has read the configuration.
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|err| failed("cannot run it", err))?;
            let mut running = Running {
                master,
                workers: Vec::new(),
                port,
                config,
                dir,
            };
            running.wait_ready(root, workers)?;
            Ok(running)
        }

        /// Polls until every worker runs and answers, nginx exits, or the deadline passes.
        fn wait_ready(&mut self, root: &DocRoot, workers: NonZeroUsize) -> Result<(), StartError> {
            let deadline = Instant::now() + STARTUP_DEADLINE;
            loop {
                match self.master.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        let why = format!("it exited with {status}: {}", self.last_complaint());
                        return Err(if why.contains("Address already in use") {
                            StartError::PortTaken(why)
                        } else {
                            StartError::Failed(why)
                        });
                    }
                    Err(err) => {
                        return Err(StartError::Failed(format!("cannot wait for it: {err}")));
                    }
                }
                // Known at once, so that dropping `self` kills them whatever happens next.
                self.workers = procfs::children(self.master.id())
                    .into_iter()
                    .filter_map(|pid| {
                        let start_ticks = procfs::stat(pid).ok()?.start_ticks;
                        Some(Worker { pid, start_ticks })
                    })
                    .collect();
                if self.workers.len() == workers.get() {
                    match self.probe(root) {
                        Ok(()) => return Ok(()),
                        // Not listening yet.
                        Err(Failure::Connect(_)) => {}
                        Err(failure) => {
                            return Err(StartError::Failed(format!(
                                "GET /small.txt failed ({failure}): {}",
                                self.last_complaint()
                            )));
                        }
                    }
                }
                if Instant::now() >= deadline {
                    return Err(StartError::Failed(format!(
                        "not serving with {workers} workers within {} s: {}",
                        STARTUP_DEADLINE.as_secs(),
                        self.last_complaint()
                    )));
                }
                std::thread::sleep(POLL);
            }
        }

        /// One correct response to `GET /small.txt`.
        fn probe(&self, root: &DocRoot) -> Result<(), Failure> {
            let endpoint = Endpoint::loopback(self.port);
            let mut stream =
                background::connect_and_send(endpoint.addr, &endpoint.request(File::Small, true))
                    .map_err(|err| Failure::Connect(err.kind()))?;
            let mut buffer = vec![0; 4096];
            load::read_response(&mut stream, root.expected(File::Small), &mut buffer).map(drop)
        }

        /// The last line nginx logged, or printed on stderr, to explain a failure.
        fn last_complaint(&self) -> String {
            ["error.log", "stderr.log"]
                .iter()
                .filter_map(|name| fs::read_to_string(self.dir.path().join(name)).ok())
                .find_map(|text| {
                    text.lines()
                        .rev()
                        .find(|line| !line.trim().is_empty())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "nothing logged".to_string())
        }

        pub fn port(&self) -> u16 {
            self.port
        }

        /// The master's pid and the workers'.
        pub fn pids(&self) -> Vec<u32> {
            std::iter::once(self.master.id())
                .chain(self.workers.iter().map(|worker| worker.pid))
                .collect()
        }

        /// The configuration file it runs with.
        pub fn config(&self) -> &str {
            &self.config
        }

        /// Stops nginx; see [`Running::shut_down`].
        pub fn stop(mut self) -> Result<(), String> {
            self.shut_down()
        }

        /// SIGTERM to the master (nginx's fast shutdown: it stops its workers, reaps them
        /// and exits) and a bounded wait, then SIGKILL to whatever is left: the master
        /// first, since it would replace a worker that dies. Does nothing once nginx is gone.
        fn shut_down(&mut self) -> Result<(), String> {
            let result = match self.master.try_wait() {
                Ok(None) => self.terminate_master(),
                _ => Ok(()),
            };
            let mut left = 0;
            for worker in self.workers.iter().filter(|worker| worker.alive()) {
                let pid = i32::try_from(worker.pid).ok().and_then(Pid::from_raw);
                if let Some(pid) = pid
                    && kill_process(pid, Signal::KILL).is_ok()
                {
                    left += 1;
                }
            }
            match left {
                0 => result,
                left => result.and(Err(format!("{left} workers outlived the master; killed"))),
            }
        }

        fn terminate_master(&mut self) -> Result<(), String> {
            let deadline = Instant::now() + STOP_DEADLINE;
            let result = match kill_process(Pid::from_child(&self.master), Signal::TERM) {
                Err(err) => Err(format!("cannot send SIGTERM: {err}; killed")),
                Ok(()) => loop {
                    match self.master.try_wait() {
                        Ok(Some(status)) if status.success() => break Ok(()),
                        Ok(Some(status)) => break Err(format!("exited with {status}")),
                        Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                        Ok(None) => {
                            break Err(format!(
                                "still running {} s after SIGTERM; killed",
                                STOP_DEADLINE.as_secs()
                            ));
                        }
                        Err(err) => break Err(format!("cannot wait for it: {err}; killed")),
                    }
                },
            };
            if matches!(self.master.try_wait(), Ok(None)) {
                let _ = self.master.kill();
                let _ = self.master.wait();
            }
            result
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Err(err) = self.shut_down() {
                eprintln!("[bench] nginx: {err}");
            }
        }
    }

    /// The configuration file: the tuning described on this module, and the paths nginx
    /// needs to run from `dir`.
    fn config_text(
        workers: NonZeroUsize,
        port: u16,
        root: &Path,
        dir: &Path,
        user: Option<&str>,
    ) -> Result<String, String> {
        let root = quoted(root)?;
        let path = |name: &str| quoted(&dir.join(name));
        let (pid, error_log) = (path("nginx.pid")?, path("error.log")?);
        let temp_paths = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|kind| {
                Ok(format!(
                    "    {kind}_temp_path {};\n",
                    path(&format!("{kind}_temp"))?
                ))
            })
            .collect::<Result<String, String>>()?;
        let user = user.map_or(String::new(), |user| {
            format!("# Others cannot reach the root, so the workers stay root.\nuser {user};\n")
        });
        Ok(format!(
            "# Written by benches/compare.rs for one scenario.\n\
             {user}\
             worker_processes {workers};\n\
             worker_rlimit_nofile {WORKER_RLIMIT_NOFILE};\n\
             daemon off;\n\
             pid {pid};\n\
             error_log {error_log} warn;\n\
             \n\
             events {{\n    \
                 worker_connections {WORKER_CONNECTIONS};\n\
             }}\n\
             \n\
             http {{\n    \
                 access_log off;\n    \
                 sendfile on;\n    \
                 tcp_nopush on;\n    \
                 tcp_nodelay on;\n    \
                 keepalive_timeout 60s;\n    \
                 keepalive_requests 1000000;\n    \
                 open_file_cache max=1000 inactive=20s;\n    \
                 open_file_cache_valid 30s;\n    \
                 default_type application/octet-stream;\n\
             {temp_paths}\
             \n    \
                 server {{\n        \
                     listen 127.0.0.1:{port};\n        \
                     root {root};\n    \
                 }}\n\
             }}\n"
        ))
    }

    /// A path as a quoted nginx string. Paths nginx would read differently (`$` starts a
    /// variable) or that need escapes are refused.
    fn quoted(path: &Path) -> Result<String, String> {
        path.to_str()
            .filter(|text| !text.contains(['"', '\\', '$']) && !text.contains(char::is_control))
            .map(|text| format!("\"{text}\""))
            .ok_or_else(|| format!("nginx cannot be given the path {}", path.display()))
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
    use super::usage::{self, SwitchSource, Usage};
    use super::{Bench, Scenario, Third, nginx};

    /// Chart size: two panels of 500 × 450 side by side.
    const SVG_SIZE: (u32, u32) = (1000, 450);
    /// The chart's x range, a little wider than 1..512 so the end points are not clipped.
    const X_RANGE: Range = 0.7..768.0;
    type Range = std::ops::Range<f64>;

    /// One run, summed up.
    pub struct RunResult {
        /// The server's name in the report: `pool`, `threads`, `other`, `nginx (tuned)`.
        pub label: &'static str,
        pub responses: u64,
        pub requests_per_s: f64,
        pub p50_ms: f64,
        pub p99_ms: f64,
        pub max_ms: f64,
        pub errors: u64,
        /// Error kinds and counts, for the progress line.
        error_kinds: String,
        /// Unknown for a server that the bench did not start.
        pub observed: Option<Observed>,
    }

    /// What the bench saw of a server it started itself.
    pub struct Observed {
        pub peaks: Peaks,
        /// Over the measured window; `None` if the server could not be read at its ends.
        pub usage: Option<Usage>,
        /// The configuration file the bench wrote for it (nginx's).
        pub config: Option<String>,
    }

    impl RunResult {
        pub fn new(
            label: &'static str,
            tally: &Tally,
            window: Duration,
            observed: Option<Observed>,
        ) -> RunResult {
            let error_kinds = tally
                .errors
                .iter()
                .map(|(kind, count)| format!("{kind}: {count}"))
                .collect::<Vec<_>>()
                .join(", ");
            RunResult {
                label,
                responses: tally.responses,
                requests_per_s: tally.responses as f64 / window.as_secs_f64(),
                p50_ms: load::quantile_ms(&tally.latency, 0.5),
                p99_ms: load::quantile_ms(&tally.latency, 0.99),
                max_ms: load::micros_to_ms(tally.latency.max()),
                errors: tally.error_total(),
                error_kinds,
                observed,
            }
        }

        /// Peak threads and memory, for a server the bench started.
        pub fn peaks(&self) -> Option<Peaks> {
            self.observed.as_ref().map(|observed| observed.peaks)
        }

        /// What the server spent in the window, if it was measured and answered at all.
        fn usage(&self) -> Option<Usage> {
            let usage = self.observed.as_ref()?.usage?;
            (self.responses > 0).then_some(usage)
        }

        /// CPU time per correct response, in microseconds.
        fn cpu_us_per_request(&self) -> Option<f64> {
            let usage = self.usage()?;
            Some(usage.cpu.as_secs_f64() * 1e6 / self.responses as f64)
        }

        /// Context switches per correct response.
        fn switches_per_request(&self) -> Option<f64> {
            let usage = self.usage()?;
            Some(usage.switches as f64 / self.responses as f64)
        }

        /// `csw/req` as the table shows it: marked `*` where only living threads counted.
        fn switches_cell(&self) -> Option<String> {
            let per_request = self.switches_per_request()?;
            let mark = match self.usage()?.source {
                SwitchSource::Perf => "",
                SwitchSource::LivingThreads => "*",
            };
            Some(format!("{per_request:.2}{mark}"))
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
            if let Some(peaks) = self.peaks() {
                text += &format!(
                    ", peak {} threads, {:.1} MiB",
                    peaks.threads,
                    mib(peaks.rss_kb)
                );
            }
            if let (Some(cpu), Some(switches)) = (self.cpu_us_per_request(), self.switches_cell()) {
                text += &format!(", {cpu:.1} µs CPU/req, {switches} csw/req");
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
        /// The server given with `--url` or started with `--nginx`.
        pub third: Option<RunResult>,
    }

    impl ScenarioReport {
        fn runs(&self) -> impl Iterator<Item = &RunResult> {
            [&self.pool, &self.threads]
                .into_iter()
                .chain(self.third.as_ref())
        }

        /// "pool / threads[ / third]" of one value per server, `-` where unknown.
        fn per_server(&self, cell: impl Fn(&RunResult) -> Option<String>) -> String {
            self.runs()
                .map(|run| cell(run).unwrap_or_else(|| "-".to_string()))
                .collect::<Vec<_>>()
                .join(" / ")
        }
    }

    /// The third server's label, if any report has one.
    fn third_label(reports: &[ScenarioReport]) -> Option<&'static str> {
        reports
            .iter()
            .find_map(|report| report.third.as_ref().map(|run| run.label))
    }

    /// The Markdown table, its columns padded so that it also reads well as plain text.
    pub fn table(reports: &[ScenarioReport]) -> String {
        let third = third_label(reports);
        let servers = match third {
            Some(label) => format!("pool / threads / {label}"),
            None => "pool / threads".to_string(),
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
            format!("CPU µs/req {servers}"),
            format!("csw/req {servers}"),
        ];
        if let Some(label) = third {
            header.extend([format!("{label} req/s"), format!("{label} p99 (ms)")]);
        }
        let mut rows = vec![header];
        rows.extend(reports.iter().map(|report| row(report, third.is_some())));
        render_markdown(&rows)
    }

    fn row(report: &ScenarioReport, has_third: bool) -> Vec<String> {
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
            report.per_server(|run| run.peaks().map(|peaks| peaks.threads.to_string())),
            report.per_server(|run| run.peaks().map(|peaks| format!("{:.1}", mib(peaks.rss_kb)))),
            report.per_server(|run| run.cpu_us_per_request().map(|cpu| format!("{cpu:.1}"))),
            report.per_server(RunResult::switches_cell),
        ];
        if has_third {
            let third = report.third.as_ref();
            cells.push(third.map_or("-".to_string(), |run| format!("{:.0}", run.requests_per_s)));
            cells.push(
                third
                    .filter(|run| run.responses > 0)
                    .map_or("-".to_string(), |run| format!("{:.2}", run.p99_ms)),
            );
        }
        cells
    }

    /// What the table's columns measure, and how, as a Markdown list.
    pub fn notes(reports: &[ScenarioReport], bench: &Bench) -> String {
        let tick_ms = usage::tick().as_secs_f64() * 1000.0;
        let mut notes = vec![format!(
            "- CPU µs/req: user + system CPU time of all the server's threads and processes \
             (living or ended) over the measured window, from `/proc/PID/stat` in {tick_ms:.0} ms \
             ticks, divided by the correct responses counted in that window. It includes what \
             the idle or slow background connections cost the server."
        )];
        let runs = || reports.iter().flat_map(ScenarioReport::runs);
        let sources: Vec<SwitchSource> = runs()
            .filter_map(|run| run.usage())
            .map(|u| u.source)
            .collect();
        if sources.contains(&SwitchSource::Perf) {
            notes.push(
                "- csw/req: voluntary + involuntary context switches over the same window, per \
                 correct response, from perf software counters opened on every thread of the \
                 server before the load and inherited by every thread or process it creates, so \
                 that threads ending inside the window count too (against `getrusage`, perf \
                 came out about 0.1 switch short per thread that ended)."
                    .to_string(),
            );
        }
        if sources.contains(&SwitchSource::LivingThreads) {
            notes.push(
                "- csw/req marked *: perf counters were not allowed, so only threads living at \
                 the window's end were counted; threads that ended inside it are missing, which \
                 undercounts thread per connection, in `new-conn` above all."
                    .to_string(),
            );
        }
        if let Some(Third::Nginx(installed)) = &bench.third {
            notes.push(format!(
                "- {}: {} started fresh for each scenario with {} worker processes (the pool's \
                 worker threads); its peak threads and RSS add up the master and the workers \
                 (memory they share counts once for each); its configuration is in report.json.",
                nginx::LABEL,
                installed.version,
                bench.workers
            ));
        }
        if runs().any(|run| run.observed.is_none()) {
            notes.push(
                "- `-`: not measured, for a server the bench did not start (`other`), or a run \
                 without a correct response."
                    .to_string(),
            );
        }
        notes.join("\n")
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

    /// `report.json`: the machine, the timing, nginx if measured, and every run of every
    /// scenario.
    pub fn json(reports: &[ScenarioReport], bench: &Bench) -> String {
        let timing = &bench.timing;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let scenarios = reports
            .iter()
            .map(|report| {
                let results = report
                    .runs()
                    .map(|run| (run.label, run_json(run)))
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
            // The pool's `--workers` and nginx's `worker_processes`.
            ("workers", Json::Int(bench.workers.get() as u64)),
            (
                "cpu_tick_ms",
                Json::Num(usage::tick().as_secs_f64() * 1000.0),
            ),
            ("nginx", nginx_json(bench)),
            ("scenarios", Json::Arr(scenarios)),
        ])
        .render()
    }

    fn nginx_json(bench: &Bench) -> Json {
        match &bench.third {
            Some(Third::Nginx(installed)) => Json::Obj(vec![
                ("label", Json::Str(nginx::LABEL.to_string())),
                ("binary", Json::Str(installed.path.display().to_string())),
                ("version", Json::Str(installed.version.clone())),
            ]),
            _ => Json::Null,
        }
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
            run.peaks()
                .as_ref()
                .map_or(Json::Null, |p| Json::Int(value(p)))
        };
        let number = |value: Option<f64>| value.map_or(Json::Null, Json::Num);
        let usage = run.observed.as_ref().and_then(|observed| observed.usage);
        let mut fields = vec![
            ("requests_per_s", Json::Num(run.requests_per_s)),
            ("responses", Json::Int(run.responses)),
            ("p50_ms", latency(run.p50_ms)),
            ("p99_ms", latency(run.p99_ms)),
            ("max_ms", latency(run.max_ms)),
            ("errors", Json::Int(run.errors)),
            ("peak_threads", peak(|p| p.threads)),
            ("peak_rss_kb", peak(|p| p.rss_kb)),
            ("cpu_us_per_req", number(run.cpu_us_per_request())),
            ("csw_per_req", number(run.switches_per_request())),
            ("cpu_s", number(usage.map(|u| u.cpu.as_secs_f64()))),
            (
                "context_switches",
                usage.map_or(Json::Null, |u| Json::Int(u.switches)),
            ),
            (
                "context_switch_source",
                usage.map_or(Json::Null, |u| Json::Str(u.source.name().to_string())),
            ),
        ];
        if let Some(config) = run.observed.as_ref().and_then(|o| o.config.as_ref()) {
            fields.push(("config", Json::Str(config.clone())));
        }
        Json::Obj(fields)
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
            for run in report.runs() {
                let label = run.label;
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
