//! Where and how a run happened, for the report's `run` object: the date, the commit and
//! whether the tree differed from it, the kernel, the CPU and its cores, the load average
//! at both ends, the run mode, and the limits the servers ran under.

use std::process::Command;
use std::time::SystemTime;

use serde::Serialize;
use testkit::procfs;

use crate::options::{Mode, Timing};

/// The whole run, as `report.json`'s `run` object.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `full` or `quick`.
    pub mode: &'static str,
    /// `"smoke run, not for comparison"` for a quick run; absent for a full one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// When the run started, RFC 3339 in UTC.
    pub date: String,
    /// `git rev-parse --short HEAD`, or `unknown` without git.
    pub commit: String,
    /// Whether the work tree differed from the commit (`null`: unknown).
    pub dirty: Option<bool>,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// The CPU's model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Cores this process may use: the pool's workers and nginx's worker processes.
    pub cores: usize,
    /// 1, 5 and 15 minute load averages when the run started and when it ended.
    pub load_average: LoadAverage,
    pub warmup_s: f64,
    pub measure_s: f64,
    /// The descriptor limit this process and every server it started ran with.
    pub descriptor_limit: u64,
    /// The resolution of every CPU time reading.
    pub cpu_tick_ms: f64,
    /// The bench's arguments, as given after `--`.
    pub args: Vec<String>,
}

/// Load averages at both ends of a run: a busy machine makes figures move.
#[derive(Debug, Clone, Serialize)]
pub struct LoadAverage {
    pub start: [f64; 3],
    pub end: [f64; 3],
}

/// What is known when a run starts.
pub struct RunStart {
    mode: Mode,
    date: String,
    load: [f64; 3],
    pub descriptor_limit: u64,
}

impl RunStart {
    pub fn now(mode: Mode, descriptor_limit: u64) -> RunStart {
        RunStart {
            mode,
            date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            load: load_average(),
            descriptor_limit,
        }
    }

    /// Everything, once the run has ended.
    pub fn finish(self, timing: Timing) -> RunInfo {
        let (commit, dirty) = commit();
        RunInfo {
            mode: self.mode.name(),
            note: self.mode.note(),
            date: self.date,
            commit,
            dirty,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_average: LoadAverage {
                start: self.load,
                end: load_average(),
            },
            warmup_s: timing.warmup.as_secs_f64(),
            measure_s: timing.measure.as_secs_f64(),
            descriptor_limit: self.descriptor_limit,
            cpu_tick_ms: procfs::clock_tick().as_secs_f64() * 1000.0,
            // Less the `--bench` that cargo adds.
            args: std::env::args()
                .skip(1)
                .filter(|arg| arg != "--bench")
                .collect(),
        }
    }
}

/// The short commit hash and whether the tree is dirty; `unknown` without git.
fn commit() -> (String, Option<bool>) {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) => (hash, git(&["status", "--porcelain"]).map(|s| !s.is_empty())),
        None => ("unknown".to_string(), None),
    }
}

fn load_average() -> [f64; 3] {
    let text = read_trimmed("/proc/loadavg");
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(f64::NAN));
    [(); 3].map(|()| fields.next().unwrap_or(f64::NAN))
}

fn cpu_model() -> String {
    let text = read_trimmed("/proc/cpuinfo");
    text.lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or_else(
            || "unknown".to_string(),
            |(_, model)| model.trim().to_string(),
        )
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".to_string(), |t| t.trim().to_string())
}
