//! A poolhttpd process started on port 0: the port is read from its banner, its stdout
//! lines and its stderr are collected as they come (so it never blocks on a full pipe), and
//! every wait on it is bounded. Dropping it kills the process, so a failing test or bench
//! leaves no server behind.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::procfs;

/// The banner line that gives the port: `Access Server at http://localhost:PORT/`.
const BANNER_PREFIX: &str = "Access Server at http://";
/// Lines of the banner, the last giving the port.
const BANNER_LINES: usize = 3;

/// How a server process ended: its exit code and everything it printed.
#[derive(Debug, Clone)]
pub struct Exit {
    /// `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

/// A server that printed no port: why, and what it printed to stderr.
#[derive(Debug, Clone)]
pub struct StartError {
    pub why: String,
    pub stderr: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; stderr: {}", self.why, self.stderr.trim_end())
    }
}

/// What the reader threads collect.
#[derive(Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    /// Notified at each new stdout line and when stdout ends.
    changed: Condvar,
    stdout_ended: Mutex<bool>,
    stderr: Mutex<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A reader thread that panicked left whole lines behind: keep using them.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running server process.
pub struct Server {
    child: Child,
    /// The port from the banner.
    pub port: u16,
    /// The banner's lines.
    pub banner: Vec<String>,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Runs `command` (poolhttpd and its arguments, with `--port 0` or a port of its
    /// choosing) and waits up to `limit` for the banner's port. A server that exits first,
    /// or stays silent, is an error holding what it printed to stderr.
    pub fn spawn(mut command: Command, limit: Duration) -> Result<Server, StartError> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| StartError {
                why: format!("cannot run {:?}: {err}", command.get_program()),
                stderr: String::new(),
            })?;
        let output = Arc::new(Output::default());
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            spawn_reader("server-stdout", Arc::clone(&output), move |output| {
                collect_lines(stdout, output)
            }),
            spawn_reader("server-stderr", Arc::clone(&output), move |output| {
                collect_text(stderr, output)
            }),
        ];
        let mut server = Server {
            child,
            port: 0,
            banner: Vec::new(),
            output,
            readers,
        };
        let Some(line) = server.wait_for_line(|line| line.starts_with(BANNER_PREFIX), limit) else {
            let exit = server.kill();
            return Err(StartError {
                why: match exit.code {
                    Some(_) => "it exited without printing its port".to_string(),
                    None => format!("no port printed within {limit:?}"),
                },
                stderr: exit.stderr,
            });
        };
        server.port = banner_port(&line).ok_or_else(|| StartError {
            why: format!("no port in the banner line {line:?}"),
            stderr: server.stderr(),
        })?;
        server.banner = server.log().into_iter().take(BANNER_LINES).collect();
        Ok(server)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for a stdout line that matches; the first one that does.
    pub fn wait_for_line(&self, wanted: impl Fn(&str) -> bool, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut lines = lock(&self.output.lines);
        loop {
            if let Some(line) = lines.iter().find(|line| wanted(line)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if *lock(&self.output.stdout_ended) {
                return None;
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Every stdout line so far.
    pub fn log(&self) -> Vec<String> {
        lock(&self.output.lines).clone()
    }

    /// What the server printed to stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.output.stderr).clone()
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: Signal) -> rustix::io::Result<()> {
        kill_process(Pid::from_child(&self.child), signal)
    }

    /// Waits up to `limit` for the server to exit by itself; `Err(self)` if it still runs.
    pub fn wait_exit(mut self, limit: Duration) -> Result<Exit, Server> {
        match wait_for_exit(&mut self.child, limit) {
            Ok(Some(status)) => Ok(self.collect(status)),
            _ => Err(self),
        }
    }

    /// Stops the server as an operator would: SIGTERM, then up to `limit` for it to exit.
    /// One that overruns is killed; the error says so, and holds what it printed.
    pub fn terminate(mut self, limit: Duration) -> Result<Exit, (String, Exit)> {
        match terminate(&mut self.child, limit) {
            Ok(status) => Ok(self.collect(status)),
            Err(why) => Err((why, self.kill())),
        }
    }

    /// Kills the server and returns everything it printed.
    pub fn kill(mut self) -> Exit {
        self.kill_now()
    }

    fn kill_now(&mut self) -> Exit {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => self.collect(status),
            Err(_) => self.collect_code(None),
        }
    }

    fn collect(&mut self, status: ExitStatus) -> Exit {
        self.collect_code(status.code())
    }

    /// Everything the exited process printed. Its pipes close when it exits (poolhttpd
    /// starts no processes of its own), which ends the reader threads.
    fn collect_code(&mut self, code: Option<i32>) -> Exit {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Exit {
            code,
            stdout: self.log(),
            stderr: self.stderr(),
        }
    }

    /// A number from the server's `/proc/PID/status`, such as `Threads` or `VmRSS`.
    /// Panics if the server cannot be read: for tests, where it must be running.
    pub fn status_field(&self, name: &str) -> u64 {
        procfs::status(self.pid())
            .unwrap_or_else(|err| panic!("/proc/{}/status: {err}", self.pid()))
            .value(name)
            .unwrap_or_else(|| panic!("no {name} in /proc/{}/status", self.pid()))
    }

    /// Descriptors the server has open. Panics if it cannot be read.
    pub fn fd_count(&self) -> usize {
        procfs::fd_count(self.pid()).unwrap_or_else(|err| panic!("/proc/{}/fd: {err}", self.pid()))
    }

    /// CPU time (user plus system) the server has used, in clock ticks. Panics if it
    /// cannot be read.
    pub fn cpu_ticks(&self) -> u64 {
        procfs::stat(self.pid())
            .unwrap_or_else(|err| panic!("/proc/{}/stat: {err}", self.pid()))
            .cpu_ticks
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The port of the banner line `Access Server at http://HOST:PORT/`.
fn banner_port(line: &str) -> Option<u16> {
    let url = line.strip_prefix(BANNER_PREFIX)?;
    let (_, port) = url.trim_end_matches('/').rsplit_once(':')?;
    port.parse().ok()
}

fn spawn_reader(
    name: &str,
    output: Arc<Output>,
    read: impl FnOnce(&Output) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || read(&output))
        .expect("spawn a reader thread")
}

fn collect_lines(stdout: impl Read, output: &Output) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        lock(&output.lines).push(line);
        output.changed.notify_all();
    }
    *lock(&output.stdout_ended) = true;
    // Taken so that no waiter sees the end flag unset and then misses this notification.
    drop(lock(&output.lines));
    output.changed.notify_all();
}

fn collect_text(mut stderr: impl Read, output: &Output) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut chunk) {
        if n == 0 {
            break;
        }
        lock(&output.stderr).push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

/// Waits up to `limit` for `child` to exit: `Ok(None)` if it still runs then.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let mut status = None;
    let mut failed = None;
    crate::until(limit, || match child.try_wait() {
        Ok(Some(exited)) => {
            status = Some(exited);
            true
        }
        Ok(None) => false,
        Err(err) => {
            failed = Some(err);
            true
        }
    });
    match failed {
        Some(err) => Err(err),
        None => Ok(status),
    }
}

/// SIGTERM to `child`, then up to `limit` for it to exit with status 0. One that
/// overruns is killed; any other outcome is an error saying what happened.
pub fn terminate(child: &mut Child, limit: Duration) -> Result<ExitStatus, String> {
    let result = match kill_process(Pid::from_child(child), Signal::TERM) {
        Err(err) => Err(format!("cannot send SIGTERM: {err}; killed")),
        Ok(()) => match wait_for_exit(child, limit) {
            Ok(Some(status)) if status.success() => Ok(status),
            Ok(Some(status)) => Err(format!("exited with {status}")),
            Ok(None) => Err(format!("still running {limit:?} after SIGTERM; killed")),
            Err(err) => Err(format!("cannot wait for it: {err}; killed")),
        },
    };
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_port_comes_from_the_banner_line() {
        let port = |line| super::banner_port(line);
        assert_eq!(port("Access Server at http://localhost:8080/"), Some(8080));
        assert_eq!(port("Access Server at http://[::1]:443/"), Some(443));
        assert_eq!(port("Starting Server..."), None);
        assert_eq!(port("Access Server at http://localhost/"), None);
    }
}
