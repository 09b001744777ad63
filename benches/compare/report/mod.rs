//! What a run found, as one set of types that `report.json` is written from, and that the
//! tables ([`table`]) and the chart ([`chart`]) read.
//!
//! # `report.json`, schema 2
//!
//! ```text
//! schema      2
//! run         where and how the run happened: mode ("full" or "quick"), note ("smoke run,
//!             not for comparison" on a quick run), date, commit, dirty, kernel, cpu, cores,
//!             load_average {start, end}, warmup_s, measure_s, descriptor_limit,
//!             cpu_tick_ms, args                                        (see meta::RunInfo)
//! servers     one per server: key ("pool", "threads", "nginx", "other"), label (as the
//!             chart's legend names it), program, version, args, config (nginx's file)
//! scenarios   one per scenario, in the tables' order: name, file, connections,
//!             new_connections, background {kind: "none" | "idle" | "slow_readers",
//!             count}, and results: one per server, in the order of `servers`
//! ```
//!
//! Each result ([`RunResult`]): `server` (a key), `requests_per_s`, `responses` (correct
//! ones in the measured window), `latency_ms` {p50, p99, p99_9, max}, `errors` and
//! `error_kinds` (over warm-up and window), `peak_threads`, `peak_rss_kb`,
//! `cpu_us_per_request`, `context_switches_per_request`, `cpu_s`, `context_switches`,
//! `context_switch_source` ("perf" or "living_threads") and `background_open` (idle or slow
//! connections actually open). A figure that was not measured (a server the bench did not
//! start, a run without a correct response) is `null`.

pub mod chart;
pub mod meta;
pub mod table;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use testkit::procfs::Sample;

use crate::load::Tally;
use crate::measure::usage::{SwitchSource, Usage};
use crate::scenarios::{Background, Scenario, Sweep};
use meta::RunInfo;

/// The version of `report.json`'s layout; 1 was the hand-written one before it.
const SCHEMA: u32 = 2;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: u32,
    pub run: RunInfo,
    pub servers: Vec<ServerInfo>,
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    pub fn new(run: RunInfo, servers: Vec<ServerInfo>, scenarios: Vec<ScenarioReport>) -> Report {
        Report {
            schema: SCHEMA,
            run,
            servers,
            scenarios,
        }
    }
}

/// A server as the report names it, and how it ran.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// `pool`, `threads`, `nginx` or `other`: the results' `server`.
    pub key: String,
    /// `pool (2 workers)`, `thread per connection`, `nginx (tuned)`, or the `--url`
    /// server's `Server` field.
    pub label: String,
    pub program: String,
    pub version: String,
    /// Its command-line arguments (nginx's `DIR` is a new temporary directory each time).
    pub args: Vec<String>,
    /// The configuration file the bench wrote for its first run (nginx's).
    pub config: Option<String>,
}

/// A scenario's results on every server.
#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub file: &'static str,
    pub connections: usize,
    pub new_connections: bool,
    pub background: BackgroundInfo,
    pub results: Vec<RunResult>,
    /// The chart's sweeps this scenario is a point of.
    #[serde(skip)]
    pub sweeps: Vec<Sweep>,
}

impl ScenarioReport {
    pub fn new(scenario: &Scenario, results: Vec<RunResult>) -> ScenarioReport {
        let (kind, count) = match scenario.background {
            Background::None => ("none", 0),
            Background::Idle(count) => ("idle", count),
            Background::SlowReaders(count) => ("slow_readers", count),
        };
        ScenarioReport {
            name: scenario.name.clone(),
            file: scenario.file.name(),
            connections: scenario.connections,
            new_connections: scenario.new_connections,
            background: BackgroundInfo { kind, count },
            results,
            sweeps: scenario.sweeps(),
        }
    }

    /// The result of the server with `key`.
    pub fn result(&self, key: &str) -> Option<&RunResult> {
        self.results.iter().find(|result| result.server == key)
    }
}

/// Connections held beside the measured ones.
#[derive(Debug, Serialize)]
pub struct BackgroundInfo {
    pub kind: &'static str,
    /// How many were asked for; the results say how many were open.
    pub count: usize,
}

/// Latency quantiles of correct responses, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// One scenario on one server.
#[derive(Debug, Serialize)]
pub struct RunResult {
    pub server: &'static str,
    pub requests_per_s: f64,
    pub responses: u64,
    /// `None` without a single correct response.
    pub latency_ms: Option<Latency>,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub peak_threads: Option<u64>,
    pub peak_rss_kb: Option<u64>,
    pub cpu_us_per_request: Option<f64>,
    pub context_switches_per_request: Option<f64>,
    pub cpu_s: Option<f64>,
    pub context_switches: Option<u64>,
    pub context_switch_source: Option<SwitchSource>,
    pub background_open: Option<usize>,
}

impl RunResult {
    /// Sums up a run: what the clients counted over `window`, and what was seen of the
    /// server if the bench started it.
    pub fn new(
        server: &'static str,
        tally: &Tally,
        window: Duration,
        peak: Option<Sample>,
        usage: Option<Usage>,
        background_open: Option<usize>,
    ) -> RunResult {
        let responses = tally.responses;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let quantile = |q: f64| ms(tally.latency.value_at_quantile(q));
        let latency_ms = (responses > 0).then(|| Latency {
            p50: quantile(0.5),
            p99: quantile(0.99),
            p99_9: quantile(0.999),
            max: ms(tally.latency.max()),
        });
        // Spent per correct response: unknown without one.
        let usage = usage.filter(|_| responses > 0);
        let per_request = |total: f64| total / responses as f64;
        RunResult {
            server,
            requests_per_s: responses as f64 / window.as_secs_f64(),
            responses,
            latency_ms,
            errors: tally.errors.values().sum(),
            error_kinds: tally.errors.clone(),
            peak_threads: peak.map(|p| p.threads),
            peak_rss_kb: peak.map(|p| p.rss_kb),
            cpu_us_per_request: usage.map(|u| per_request(u.cpu.as_secs_f64() * 1e6)),
            context_switches_per_request: usage.map(|u| per_request(u.switches as f64)),
            cpu_s: usage.map(|u| u.cpu.as_secs_f64()),
            context_switches: usage.map(|u| u.switches),
            context_switch_source: usage.map(|u| u.source),
            background_open,
        }
    }

    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.peak_rss_kb.map(|kb| kb as f64 / 1024.0)
    }

    /// The progress line's text.
    pub fn summary(&self) -> String {
        let p99 = self
            .latency_ms
            .map_or("-".to_string(), |l| format!("{:.2} ms", l.p99));
        let mut text = format!(
            "{:.0} req/s, p99 {p99}, {} errors",
            self.requests_per_s, self.errors
        );
        if self.errors > 0 {
            let kinds: Vec<String> = self
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            text += &format!(" ({})", kinds.join(", "));
        }
        if let (Some(threads), Some(rss)) = (self.peak_threads, self.peak_rss_mib()) {
            text += &format!(", peak {threads} threads, {rss:.1} MiB");
        }
        if let (Some(cpu), Some(csw)) = (self.cpu_us_per_request, self.context_switches_per_request)
        {
            text += &format!(", {cpu:.1} µs CPU/req, {csw:.2} csw/req");
        }
        text
    }
}

/// Writes `DIR/STEM.md` (the tables as printed), `DIR/STEM.json` and `DIR/STEM.svg`.
pub fn write_all(report: &Report, markdown: &str, dir: &Path, stem: &str) -> Result<(), String> {
    let path = |ext: &str| dir.join(format!("{stem}.{ext}"));
    let write = |ext: &str, text: &str| {
        std::fs::write(path(ext), text)
            .map_err(|err| format!("cannot write {}: {err}", path(ext).display()))
    };
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    write("md", &format!("{markdown}\n"))?;
    let json = serde_json::to_string_pretty(report).map_err(|err| err.to_string())?;
    write("json", &format!("{json}\n"))?;
    chart::draw(&path("svg"), report)
        .map_err(|err| format!("cannot draw {}: {err}", path("svg").display()))
}
