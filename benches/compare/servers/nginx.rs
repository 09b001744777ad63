//! nginx as the third server of `--nginx`: found on this machine and started by the bench
//! over the generated root, fresh for every scenario, with one fixed configuration in a
//! temporary directory. Its tuning is what a careful operator would set for static files
//! and nothing more: as many worker processes as the pool has worker threads, `sendfile`,
//! `tcp_nopush`, `tcp_nodelay`, no access log, the same 60 s keep-alive as poolhttpd here,
//! unlimited requests per connection and an open-file cache; the rest is what nginx needs
//! to run from a temporary directory. `report.json` keeps the configuration of its first
//! run (the later ones differ only in port and temporary paths).

use std::fs;
use std::io;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use testkit::client::Client;
use testkit::procfs;

use super::{STARTUP_DEADLINE, STOP_DEADLINE};
use crate::background::{self, IO_TIMEOUT, SetupFailure};
use crate::docroot::{DocRoot, File};
use crate::endpoint::Endpoint;

/// How nginx is named in the table, the progress lines, the report and the chart.
pub const LABEL: &str = "nginx (tuned)";
/// An nginx binary to use instead of looking for one; naming a file that does not
/// exist shows what the bench does without nginx.
const BINARY_VAR: &str = "POOLHTTPD_BENCH_NGINX";
/// Where Debian installs nginx, which is not on every user's `PATH`.
const SBIN_NGINX: &str = "/usr/sbin/nginx";
/// Connections per worker process: room for the 10,000 idle connections of the largest
/// scenario and the load on top even if they all land on one worker.
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
#[derive(Debug, Clone)]
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
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// nginx's command line, run from `dir`: its prefix, its configuration file there, and the
/// log it writes before it has read the configuration.
fn command_args(dir: &Path) -> Vec<String> {
    let dir = dir.display();
    ["-p", &format!("{dir}"), "-c", &format!("{dir}/nginx.conf")]
        .iter()
        .chain(&["-e", &format!("{dir}/error.log")])
        .map(|arg| arg.to_string())
        .collect()
}

/// nginx's command line as the report shows it: `DIR` is a new temporary directory for
/// each scenario.
pub fn args() -> Vec<String> {
    command_args(Path::new("DIR"))
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

/// Why a probe of a starting nginx failed.
enum Probe {
    /// Not listening yet.
    Connect,
    Failed(SetupFailure),
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
            .args(command_args(dir.path()))
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
                    Err(Probe::Connect) => {}
                    Err(Probe::Failed(failure)) => {
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
    fn probe(&self, root: &DocRoot) -> Result<(), Probe> {
        let endpoint = Endpoint::loopback(self.port);
        let mut client = Client::connect(endpoint.addr, IO_TIMEOUT).map_err(|_| Probe::Connect)?;
        let request = endpoint.request(File::Small, true);
        client
            .send(&request)
            .map_err(|err| Probe::Failed(SetupFailure::Wrong(err.to_string())))?;
        background::small_response(&mut client, root)
            .map(drop)
            .map_err(Probe::Failed)
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
        testkit::server::terminate(&mut self.master, STOP_DEADLINE).map(drop)
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
        "# Written by benches/compare for one scenario.\n\
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
