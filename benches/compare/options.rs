//! The command line, in two stages: what was typed, then what it asks for (a found nginx,
//! a resolved URL), and the run mode from the environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::servers::nginx;

/// Set to anything but `0` or nothing for a quick run.
pub const QUICK_VAR: &str = "POOLHTTPD_BENCH_QUICK";
/// What a quick run says of itself wherever its figures appear.
pub const SMOKE_NOTE: &str = "smoke run, not for comparison";

/// Measured time per run in a full run: enough for a stable p99 (hundreds of thousands of
/// samples for small files), short enough that the 54 runs of a full run with nginx and
/// their set-up take four and a half minutes on two cores.
const FULL_MEASURE: Duration = Duration::from_secs(4);
/// Warm-up before measuring: connections open, the page cache and the server's threads
/// settle, and the slow start of every fresh connection is left out.
const FULL_WARMUP: Duration = Duration::from_millis(500);
/// A quick run only shows that everything works end to end: its figures are noise.
const QUICK_MEASURE: Duration = Duration::from_millis(300);
const QUICK_WARMUP: Duration = Duration::from_millis(100);

/// A full run, or a quick one whose figures are not for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Quick,
}

impl Mode {
    fn from_env() -> Mode {
        match std::env::var_os(QUICK_VAR) {
            Some(value) if !value.is_empty() && value != "0" => Mode::Quick,
            _ => Mode::Full,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
        }
    }

    /// What the run says of itself beside its figures: nothing for a full run.
    pub fn note(self) -> Option<&'static str> {
        (self == Mode::Quick).then_some(SMOKE_NOTE)
    }

    /// Warm-up and measured time of each run.
    pub fn timing(self) -> Timing {
        match self {
            Mode::Full => Timing {
                warmup: FULL_WARMUP,
                measure: FULL_MEASURE,
            },
            Mode::Quick => Timing {
                warmup: QUICK_WARMUP,
                measure: QUICK_MEASURE,
            },
        }
    }
}

/// How long each run lasts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// A server measured beside the two models.
#[derive(Debug, Clone)]
pub enum Third {
    /// Given with `--url`, already running.
    Url(Endpoint),
    /// Started by the bench with `--nginx`, fresh for each scenario.
    Nginx(nginx::Installed),
}

/// What the command line asks for.
pub struct Options {
    pub mode: Mode,
    pub third: Option<Third>,
    /// `--only TEXT` (repeatable): only the scenarios whose names contain one of these.
    pub only: Vec<String>,
    /// `--save NAME`: write `benches/results/NAME.*` instead of `target/bench/report.*`.
    pub save: Option<String>,
}

impl Options {
    /// Reads `--nginx`, `--url URL`, `--only TEXT` and `--save NAME` (each also as
    /// `--flag=value`). Other arguments are ignored with a note: `cargo bench` adds
    /// `--bench` to a harness-less bench, and may pass filters meant for other benches.
    pub fn parse(args: impl Iterator<Item = OsString>) -> Result<Options, String> {
        let mut args = pico_args::Arguments::from_vec(args.collect());
        let nginx = args.contains("--nginx");
        let url: Option<String> = args
            .opt_value_from_str("--url")
            .map_err(|e| e.to_string())?;
        let only: Vec<String> = args.values_from_str("--only").map_err(|e| e.to_string())?;
        let save: Option<String> = args
            .opt_value_from_str("--save")
            .map_err(|e| e.to_string())?;
        args.contains("--bench");
        for arg in args.finish() {
            eprintln!("[bench] ignoring argument {arg:?}");
        }
        if let Some(name) = &save {
            check_save_name(name)?;
        }
        // One third server keeps one column of each kind in the tables.
        let third = match (url, nginx) {
            (Some(_), true) => return Err("--nginx and --url cannot be combined".to_string()),
            (Some(url), false) => Some(Third::Url(Endpoint::from_url(&url)?)),
            (None, true) => Some(Third::Nginx(nginx::Installed::find()?)),
            (None, false) => None,
        };
        Ok(Options {
            mode: Mode::from_env(),
            third,
            only,
            save,
        })
    }

    /// The folder and file stem the reports go to.
    pub fn output(&self) -> (PathBuf, String) {
        match &self.save {
            Some(name) => (manifest_dir().join("benches/results"), name.clone()),
            None => (target_dir().join("bench"), "report".to_string()),
        }
    }
}

/// A name for `benches/results/NAME.*`: letters, digits, `.`, `_` and `-`, not starting
/// with a dot, so that it names a file in that folder and nothing else.
fn check_save_name(name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.starts_with('.') || !name.chars().all(fine) {
        return Err(format!(
            "--save {name:?}: use letters, digits, '.', '_' and '-', like 2-core"
        ));
    }
    Ok(())
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory, where the document root and the default reports go.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        // Benches run from the package root, where a relative CARGO_TARGET_DIR is usually
        // meant to start; `join` leaves an absolute one as it is.
        Some(dir) => manifest_dir().join(dir),
        None => manifest_dir().join("target"),
    }
}
