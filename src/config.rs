//! The command line, in two stages: what the user typed (`Args`), then the validated
//! [`Config`] the server runs with.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// The document root served when none is given (the original's demo site).
pub const DEFAULT_ROOT: &str = "./scu";
/// The port used when none is given (the original's).
pub const DEFAULT_PORT: u16 = 8080;
/// Loopback by default: serving a folder to the network should be a decision.
pub const DEFAULT_BIND: &str = "127.0.0.1";
/// The original kept each connection alive for three seconds.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(3);
/// A request head must arrive within this time of its first byte.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A response that makes no progress for this long is abandoned.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections held at once unless told otherwise (and unless descriptors run short).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long responses in flight may take to finish after SIGINT or SIGTERM.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Where the error pages live unless told otherwise.
pub const DEFAULT_ERROR_PAGES: &str = "./error";
/// Highest `--max-connections`: far beyond what one process's descriptors allow anyway.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
/// More workers than this only adds contention on a static-file workload.
pub const MAX_WORKERS: usize = 1024;
/// Longest timeout accepted: beyond an hour a "timeout" no longer protects anything.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Shortest timeout accepted; below it timer granularity dominates.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);

/// The help text.
pub const HELP: &str = "\
poolhttpd — serve a folder over HTTP/1.1 with one poll thread and a fixed worker pool

USAGE:
    poolhttpd [OPTIONS]

OPTIONS:
    -r, --root DIR          document root [default: ./scu]  (also: -document_root DIR)
    -p, --port N            TCP port, 0 picks a free one [default: 8080]  (also: -port N)
        --bind ADDR         address to listen on [default: 127.0.0.1]
        --workers N         worker threads [default: available cores]
        --keep-alive SECS   close a connection idle this long [default: 3]
        --header-timeout SECS
                            answer 408 to a request head unfinished this long, or a
                            request body that makes no progress as long [default: 10]
        --send-timeout SECS close a response that makes no progress this long [default: 10]
        --max-connections N most connections held at once [default: 10000, fewer if the
                            descriptor limit requires]
        --grace SECS        after SIGINT/SIGTERM, time for responses in flight [default: 5]
        --model MODEL       pool (poll thread + worker pool) or threads (one thread per
                            connection, for comparison) [default: pool]
        --error-pages DIR   pages NNN.html for error statuses [default: ./error]
    -q, --quiet             no request or connection log
    -h, --help              print this help
    -V, --version           print the version
";

/// How connections are waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// One mio poll thread and a fixed pool of workers (the default).
    Pool,
    /// One thread per connection, as the original server did; for comparison.
    Threads,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Serve(Config),
    Help,
    Version,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The root as typed, for the banner.
    pub root: PathBuf,
    pub port: u16,
    pub bind: IpAddr,
    pub workers: NonZeroUsize,
    pub keep_alive: Duration,
    pub head_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
    pub grace: Duration,
    pub model: Model,
    /// `None` when the default directory does not exist: built-in pages only.
    pub error_pages: Option<PathBuf>,
    pub quiet: bool,
}

/// What the user typed, before validation.
#[derive(Debug, Default)]
struct Args {
    root: Option<PathBuf>,
    port: Option<String>,
    bind: Option<String>,
    workers: Option<String>,
    keep_alive: Option<String>,
    head_timeout: Option<String>,
    send_timeout: Option<String>,
    max_connections: Option<String>,
    grace: Option<String>,
    model: Option<String>,
    error_pages: Option<PathBuf>,
    quiet: bool,
}

/// A command line we cannot run with.
#[derive(Debug)]
pub enum ConfigError {
    /// pico-args' own complaint (missing value, bad UTF-8).
    Args(String),
    /// An argument no option takes.
    Unexpected(String),
    /// An option's value is out of range or of the wrong form.
    Invalid {
        flag: &'static str,
        value: String,
        why: &'static str,
    },
    /// `--error-pages` names something that is not a directory.
    ErrorPages(PathBuf),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Args(text) => write!(f, "{text}"),
            ConfigError::Unexpected(arg) => write!(f, "unexpected argument '{arg}'"),
            ConfigError::Invalid { flag, value, why } => {
                write!(f, "invalid value '{value}' for {flag}: {why}")
            }
            ConfigError::ErrorPages(path) => {
                write!(f, "--error-pages {}: not a directory", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Command, ConfigError> {
    let mut args = pico_args::Arguments::from_vec(original_spellings(args));
    if args.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Command::Version);
    }
    let typed = Args {
        root: args.opt_value_from_os_str(["-r", "--root"], to_path)?,
        port: args.opt_value_from_str(["-p", "--port"])?,
        bind: args.opt_value_from_str("--bind")?,
        workers: args.opt_value_from_str("--workers")?,
        keep_alive: args.opt_value_from_str("--keep-alive")?,
        head_timeout: args.opt_value_from_str("--header-timeout")?,
        send_timeout: args.opt_value_from_str("--send-timeout")?,
        max_connections: args.opt_value_from_str("--max-connections")?,
        grace: args.opt_value_from_str("--grace")?,
        model: args.opt_value_from_str("--model")?,
        error_pages: args.opt_value_from_os_str("--error-pages", to_path)?,
        quiet: args.contains(["-q", "--quiet"]),
    };
    if let Some(extra) = args.finish().into_iter().next() {
        return Err(ConfigError::Unexpected(
            extra.to_string_lossy().into_owned(),
        ));
    }
    validate(typed).map(Command::Serve)
}

/// Normalises spellings before pico-args sees them: the original's `-document_root` and
/// `-port` become the long options, and `--flag=value` becomes `--flag value` (pico-args
/// splits `=` only for UTF-8 values). Values themselves are never rewritten.
fn original_spellings(args: Vec<OsString>) -> Vec<OsString> {
    const TAKES_VALUE: [&str; 12] = [
        "-r",
        "--root",
        "-p",
        "--port",
        "--bind",
        "--workers",
        "--keep-alive",
        "--header-timeout",
        "--send-timeout",
        "--error-pages",
        "-document_root",
        "-port",
    ];
    let mut out = Vec::with_capacity(args.len());
    let mut value_next = false;
    for arg in args {
        if value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let text = arg.to_str().unwrap_or("");
        let (flag, inline_value) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") && TAKES_VALUE.contains(&flag) => {
                (flag, Some(value))
            }
            _ => (text, None),
        };
        let renamed = match flag {
            "-document_root" => "--root",
            "-port" => "--port",
            other => other,
        };
        if let Some(value) = inline_value {
            out.push(OsString::from(renamed));
            out.push(OsString::from(value));
        } else if TAKES_VALUE.contains(&flag) {
            out.push(OsString::from(renamed));
            value_next = true;
        } else {
            out.push(arg);
        }
    }
    out
}

fn to_path(value: &std::ffi::OsStr) -> Result<PathBuf, &'static str> {
    Ok(PathBuf::from(value))
}

impl From<pico_args::Error> for ConfigError {
    fn from(err: pico_args::Error) -> ConfigError {
        ConfigError::Args(err.to_string())
    }
}

fn validate(typed: Args) -> Result<Config, ConfigError> {
    let port = match typed.port {
        None => DEFAULT_PORT,
        Some(value) => value.parse().map_err(|_| ConfigError::Invalid {
            flag: "--port",
            value,
            why: "expected a number from 0 to 65535",
        })?,
    };
    let bind = typed.bind.unwrap_or_else(|| DEFAULT_BIND.to_string());
    let bind = bind.parse().map_err(|_| ConfigError::Invalid {
        flag: "--bind",
        value: bind,
        why: "expected an IPv4 or IPv6 address",
    })?;
    let workers = match typed.workers {
        None => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        Some(value) => value
            .parse::<NonZeroUsize>()
            .ok()
            .filter(|n| n.get() <= MAX_WORKERS)
            .ok_or(ConfigError::Invalid {
                flag: "--workers",
                value,
                why: "expected a number from 1 to 1024",
            })?,
    };
    let keep_alive = seconds("--keep-alive", typed.keep_alive, DEFAULT_KEEP_ALIVE)?;
    let head_timeout = seconds("--header-timeout", typed.head_timeout, DEFAULT_HEAD_TIMEOUT)?;
    let send_timeout = seconds("--send-timeout", typed.send_timeout, DEFAULT_SEND_TIMEOUT)?;
    let grace = seconds("--grace", typed.grace, DEFAULT_GRACE)?;
    let max_connections = match typed.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(value) => value
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_CONNECTIONS_LIMIT).contains(n))
            .ok_or(ConfigError::Invalid {
                flag: "--max-connections",
                value,
                why: "expected a number from 1 to 1000000",
            })?,
    };
    let model = match typed.model.as_deref() {
        None | Some("pool") => Model::Pool,
        Some("threads") => Model::Threads,
        Some(other) => {
            return Err(ConfigError::Invalid {
                flag: "--model",
                value: other.to_string(),
                why: "expected pool or threads",
            });
        }
    };
    let error_pages = match typed.error_pages {
        Some(dir) if dir.is_dir() => Some(dir),
        Some(dir) => return Err(ConfigError::ErrorPages(dir)),
        None => Some(PathBuf::from(DEFAULT_ERROR_PAGES)).filter(|dir| dir.is_dir()),
    };
    Ok(Config {
        root: typed.root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)),
        port,
        bind,
        workers,
        keep_alive,
        head_timeout,
        send_timeout,
        max_connections,
        grace,
        model,
        error_pages,
        quiet: typed.quiet,
    })
}

/// A duration in seconds, fractions allowed, within [`MIN_TIMEOUT`, `MAX_TIMEOUT`].
fn seconds(
    flag: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let parsed = value
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| (MIN_TIMEOUT..=MAX_TIMEOUT).contains(d));
    parsed.ok_or(ConfigError::Invalid {
        flag,
        value,
        why: "expected seconds from 0.01 to 3600",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(line: &str) -> Config {
        match parse(line.split_whitespace().map(OsString::from).collect()) {
            Ok(Command::Serve(config)) => config,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn refused(line: &str) -> String {
        match parse(line.split_whitespace().map(OsString::from).collect()) {
            Err(err) => err.to_string(),
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let config = serve("");
        assert_eq!(config.root, PathBuf::from("./scu"));
        assert_eq!(config.port, 8080);
        assert_eq!(config.bind, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(config.keep_alive, Duration::from_secs(3));
        assert_eq!(config.head_timeout, Duration::from_secs(10));
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.grace, Duration::from_secs(5));
        assert_eq!(config.model, Model::Pool);
        assert!(!config.quiet);
    }

    #[test]
    fn every_spelling_of_root_and_port() {
        let table = [
            ("-document_root ./x -port 81", "./x", 81),
            ("--root ./x --port 82", "./x", 82),
            ("-r ./x -p 83", "./x", 83),
            ("--root=./x --port=84", "./x", 84),
            ("-port 0", "./scu", 0),
            ("--root -port", "-port", 8080),
        ];
        for (line, root, port) in table {
            let config = serve(line);
            assert_eq!(
                (config.root, config.port),
                (PathBuf::from(root), port),
                "{line}"
            );
        }
    }

    #[test]
    fn other_options() {
        let config = serve(
            "--bind ::1 --workers 3 --keep-alive 0.5 --header-timeout 2 --quiet \
             --max-connections 50 --grace 1.5 --send-timeout 4 --model threads",
        );
        assert_eq!(config.model, Model::Threads);
        assert_eq!(config.max_connections, 50);
        assert_eq!(config.grace, Duration::from_millis(1500));
        assert_eq!(config.send_timeout, Duration::from_secs(4));
        assert_eq!(config.bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(config.workers.get(), 3);
        assert_eq!(config.keep_alive, Duration::from_millis(500));
        assert_eq!(config.head_timeout, Duration::from_secs(2));
        assert!(config.quiet);
    }

    #[test]
    fn help_and_version() {
        for (line, help) in [
            ("--help", true),
            ("-h", true),
            ("--version", false),
            ("-V", false),
        ] {
            let parsed = parse(vec![OsString::from(line)]);
            match (parsed, help) {
                (Ok(Command::Help), true) | (Ok(Command::Version), false) => {}
                (other, _) => panic!("{line} gave {other:?}"),
            }
        }
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let table = [
            ("--port 70000", "--port"),
            ("--port http", "--port"),
            ("-port", "-port"),
            ("--bind localhost", "--bind"),
            ("--workers 0", "--workers"),
            ("--workers 5000", "--workers"),
            ("--keep-alive -1", "--keep-alive"),
            ("--keep-alive nan", "--keep-alive"),
            ("--keep-alive 0", "--keep-alive"),
            ("--keep-alive 99999", "--keep-alive"),
            ("--frobnicate", "--frobnicate"),
            ("stray", "stray"),
            ("--port 1 --port 2", "--port"),
            ("--error-pages /nonexistent/pages", "/nonexistent/pages"),
            ("--max-connections 0", "--max-connections"),
            ("--max-connections lots", "--max-connections"),
            ("--grace -2", "--grace"),
            ("--model fibers", "--model"),
        ];
        for (line, mention) in table {
            let text = refused(line);
            assert!(text.contains(mention), "{line:?} said {text:?}");
        }
    }
}
