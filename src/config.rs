//! The command line, in two stages: what the user typed (`Args`), then the validated
//! [`Config`], from which `main` builds what the server runs with.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::log::Format;

use crate::server::Model;

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
/// Highest `--max-connections`: far beyond what one process's descriptors allow anyway.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
/// Highest `--max-age`: caches read any larger value as 2^31 seconds (RFC 9111 §1.2.2).
pub const MAX_AGE_LIMIT: u32 = 2_147_483_648;
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
    poolhttpd [OPTIONS] [DIR]

OPTIONS:
    -r, --root DIR          document root, also given as DIR alone [default: ./scu]
                            (also: -document_root DIR)
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
        --error-pages DIR   pages NNN.html for error statuses [default: the pages built in]
        --list-dirs         list a directory that has no index.html, instead of 403
    -q, --quiet             no request or connection log
        --log-format FORMAT worker (thread, client, request, status, bytes, time),
                            combined (NCSA, as nginx writes it) or json [default: worker]
        --color WHEN        colour the worker format: auto (on a terminal, unless
                            NO_COLOR is set), always or never [default: auto]
        --stats SECS        print a line of live statistics to stderr every SECS
        --reuse-port        let several processes listen on the same port
                            (SO_REUSEPORT), each with its own threads
        --no-precompressed  never send NAME.br or NAME.gz in place of NAME
        --max-age SECS      Cache-Control: public, max-age=SECS on files' 200, 206
                            and 304 responses [default: none]
    -h, --help              print this help
    -V, --version           print the version

A value follows its option after a space or '=': --port 8080 or --port=8080.
";

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
    /// No root was named: [`DEFAULT_ROOT`] is served, and a missing one says how to name one.
    pub root_is_default: bool,
    pub port: u16,
    pub bind: IpAddr,
    pub workers: NonZeroUsize,
    pub keep_alive: Duration,
    pub head_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
    pub grace: Duration,
    pub model: Model,
    /// `None`: the pages compiled in from the repository's `error/`.
    pub error_pages: Option<PathBuf>,
    pub quiet: bool,
    pub log_format: Format,
    pub colour: Colour,
    /// How often to print a line of live statistics to stderr; `None`: never.
    pub stats: Option<Duration>,
    /// Let other processes listen on the same port (`SO_REUSEPORT`).
    pub reuse_port: bool,
    /// Send a file's `.br` or `.gz` copy to clients that accept it.
    pub precompressed: bool,
    /// `Cache-Control: public, max-age=N` on files' responses; `None`: no such header.
    pub max_age: Option<u32>,
    /// List a directory that has no `index.html` (see [`crate::listing`]).
    pub list_dirs: bool,
}

/// When log lines are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    Always,
    Never,
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
    log_format: Option<String>,
    colour: Option<String>,
    stats: Option<String>,
    reuse_port: bool,
    no_precompressed: bool,
    max_age: Option<String>,
    list_dirs: bool,
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
///
/// pico-args takes every option with its value, whether written `--flag value` or
/// `--flag=value`, so a value is never mistaken for an option: `--root -port` serves a
/// folder named `-port`. Only then are the original's `-document_root` and `-port` looked
/// for, among the arguments no option took (pico-args accepts only one-letter short keys).
pub fn parse(args: Vec<OsString>) -> Result<Command, ConfigError> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Command::Version);
    }
    let mut typed = Args {
        root: opt_path(&mut args, ["-r", "--root"])?,
        port: args.opt_value_from_str(["-p", "--port"])?,
        bind: args.opt_value_from_str("--bind")?,
        workers: args.opt_value_from_str("--workers")?,
        keep_alive: args.opt_value_from_str("--keep-alive")?,
        head_timeout: args.opt_value_from_str("--header-timeout")?,
        send_timeout: args.opt_value_from_str("--send-timeout")?,
        max_connections: args.opt_value_from_str("--max-connections")?,
        grace: args.opt_value_from_str("--grace")?,
        model: args.opt_value_from_str("--model")?,
        error_pages: opt_path(&mut args, "--error-pages")?,
        quiet: args.contains(["-q", "--quiet"]),
        log_format: args.opt_value_from_str("--log-format")?,
        colour: args.opt_value_from_str("--color")?,
        stats: args.opt_value_from_str("--stats")?,
        reuse_port: args.contains("--reuse-port"),
        no_precompressed: args.contains("--no-precompressed"),
        max_age: args.opt_value_from_str("--max-age")?,
        list_dirs: args.contains("--list-dirs"),
    };
    let mut rest = pico_args::Arguments::from_vec(original_spellings(args.finish()));
    let root = opt_path(&mut rest, ["-r", "--root"])?;
    typed.root = at_most_once("--root", typed.root, root)?;
    let port = rest.opt_value_from_str(["-p", "--port"])?;
    typed.port = at_most_once("--port", typed.port, port)?;
    // What is left is free-standing: the root may be given so, as `poolhttpd DIR`.
    let mut free = rest.finish().into_iter();
    if let Some(first) = free.next() {
        let as_root = !first.to_string_lossy().starts_with('-') && typed.root.is_none();
        if !as_root {
            return Err(ConfigError::Unexpected(
                first.to_string_lossy().into_owned(),
            ));
        }
        typed.root = Some(PathBuf::from(first));
    }
    if let Some(extra) = free.next() {
        return Err(ConfigError::Unexpected(
            extra.to_string_lossy().into_owned(),
        ));
    }
    validate(typed).map(Command::Serve)
}

/// The value found by either pass. Found by both, it was given twice (`--port 1 -port 2`,
/// or `--port 1 --port 2`, whose second half the first pass left over), and is refused as
/// any other repeated option is.
fn at_most_once<T>(
    flag: &str,
    first: Option<T>,
    second: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match (first, second) {
        (Some(_), Some(_)) => Err(ConfigError::Unexpected(flag.to_string())),
        (first, second) => Ok(first.or(second)),
    }
}

/// A path option. pico-args splits `--flag=value` only when the whole argument is UTF-8,
/// so `--flag value` is read first, as raw bytes: a path need not be UTF-8.
fn opt_path<K: Into<pico_args::Keys> + Copy>(
    args: &mut pico_args::Arguments,
    keys: K,
) -> Result<Option<PathBuf>, pico_args::Error> {
    match args.opt_value_from_os_str(keys, to_path)? {
        Some(path) => Ok(Some(path)),
        None => args.opt_value_from_str(keys),
    }
}

/// Renames the original's single-dash options to their long forms, with or without `=`.
/// Their own values pass unchanged: the argument after `-document_root` or `-port` is the
/// value even if it looks like the other alias.
fn original_spellings(args: Vec<OsString>) -> Vec<OsString> {
    const ALIASES: [(&str, &str); 2] = [("-document_root", "--root"), ("-port", "--port")];
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_str().unwrap_or("");
        let renamed = ALIASES.iter().find_map(|&(alias, long)| {
            let after = text.strip_prefix(alias)?;
            (after.is_empty() || after.starts_with('=')).then_some((long, after))
        });
        match renamed {
            Some((long, "")) => {
                out.push(OsString::from(long));
                out.extend(args.next());
            }
            Some((long, with_value)) => out.push(OsString::from(format!("{long}{with_value}"))),
            None => out.push(arg),
        }
    }
    out
}

fn to_path(value: &std::ffi::OsStr) -> Result<PathBuf, std::convert::Infallible> {
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
        None => None,
    };
    let log_format = match typed.log_format.as_deref() {
        None | Some("worker") => Format::Worker,
        Some("combined") => Format::Combined,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(ConfigError::Invalid {
                flag: "--log-format",
                value: other.to_string(),
                why: "expected worker, combined or json",
            });
        }
    };
    let colour = match typed.colour.as_deref() {
        None | Some("auto") => Colour::Auto,
        Some("always") => Colour::Always,
        Some("never") => Colour::Never,
        Some(other) => {
            return Err(ConfigError::Invalid {
                flag: "--color",
                value: other.to_string(),
                why: "expected auto, always or never",
            });
        }
    };
    let stats = match typed.stats {
        None => None,
        Some(value) => Some(seconds("--stats", Some(value), Duration::ZERO)?),
    };
    let max_age = match typed.max_age {
        None => None,
        Some(value) => Some(
            value
                .parse::<u32>()
                .ok()
                .filter(|&n| n <= MAX_AGE_LIMIT)
                .ok_or(ConfigError::Invalid {
                    flag: "--max-age",
                    value,
                    why: "expected whole seconds from 0 to 2147483648",
                })?,
        ),
    };
    Ok(Config {
        root_is_default: typed.root.is_none(),
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
        log_format,
        colour,
        stats,
        reuse_port: typed.reuse_port,
        precompressed: !typed.no_precompressed,
        max_age,
        list_dirs: typed.list_dirs,
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
            ("-document_root=./x -port=85", "./x", 85),
            ("-r=./x -p=86", "./x", 86),
            ("-port 0", "./scu", 0),
            // A value is never taken for an option, nor renamed.
            ("--root -port", "-port", 8080),
            ("--root=-port", "-port", 8080),
            ("-document_root -port", "-port", 8080),
            ("-port 87 --root -document_root", "-document_root", 87),
            // pico-args splits at the first `=` only, and takes off one pair of quotes.
            ("--root=a=b", "a=b", 8080),
            ("--root='./x' --port=\"88\"", "./x", 88),
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

    /// Every option that takes a value, spelled `--flag value` and `--flag=value`: the value
    /// and how the configuration shows it again.
    #[test]
    fn every_value_option_takes_a_space_or_an_equals_sign() {
        fn secs(d: Duration) -> String {
            d.as_secs_f64().to_string()
        }
        type Shown = fn(&Config) -> String;
        let table: [(&str, &str, Shown); 15] = [
            ("--root", "./x", |c| c.root.display().to_string()),
            ("-r", "./x", |c| c.root.display().to_string()),
            ("-document_root", "./x", |c| c.root.display().to_string()),
            ("--port", "81", |c| c.port.to_string()),
            ("-p", "81", |c| c.port.to_string()),
            ("-port", "81", |c| c.port.to_string()),
            ("--bind", "::1", |c| c.bind.to_string()),
            ("--workers", "3", |c| c.workers.to_string()),
            ("--keep-alive", "0.5", |c| secs(c.keep_alive)),
            ("--header-timeout", "2", |c| secs(c.head_timeout)),
            ("--send-timeout", "4", |c| secs(c.send_timeout)),
            ("--max-connections", "50", |c| c.max_connections.to_string()),
            ("--grace", "1.5", |c| secs(c.grace)),
            ("--model", "threads", |c| {
                format!("{:?}", c.model).to_lowercase()
            }),
            // Unit tests run in the crate's folder, where `src` is a directory.
            ("--error-pages", "src", |c| {
                c.error_pages
                    .as_deref()
                    .map_or(String::new(), |p| p.display().to_string())
            }),
        ];
        for (flag, value, shown) in table {
            for line in [format!("{flag} {value}"), format!("{flag}={value}")] {
                assert_eq!(shown(&serve(&line)), value, "{line}");
            }
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

    /// pico-args splits `--flag=value` only when the whole argument is UTF-8; a path after a
    /// space may be any bytes.
    #[test]
    fn paths_need_not_be_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(b"./\xff".to_vec());
        for flag in ["--root", "-r", "-document_root"] {
            match parse(vec![OsString::from(flag), raw.clone()]) {
                Ok(Command::Serve(config)) => assert_eq!(config.root.as_os_str(), raw, "{flag}"),
                other => panic!("{flag} gave {other:?}"),
            }
        }
        let mut joined = b"--root=".to_vec();
        joined.extend_from_slice(raw.as_encoded_bytes());
        let text = parse(vec![OsString::from_vec(joined)])
            .expect_err("a non-UTF-8 --root= is refused")
            .to_string();
        assert!(text.starts_with("unexpected argument '--root="), "{text}");
    }

    #[test]
    fn the_root_may_stand_alone() {
        let table = [
            ("./site", "./site", false),
            ("./site -p 81", "./site", false),
            ("-p 81 ./site", "./site", false),
            ("", "./scu", true),
        ];
        for (line, root, default) in table {
            let config = serve(line);
            assert_eq!(
                (config.root, config.root_is_default),
                (PathBuf::from(root), default),
                "{line}"
            );
        }
    }

    #[test]
    fn listing_is_off_unless_asked_for() {
        let table = [
            ("", false),
            ("--list-dirs", true),
            ("./site --list-dirs", true),
            ("--list-dirs -p 81", true),
        ];
        for (line, list_dirs) in table {
            assert_eq!(serve(line).list_dirs, list_dirs, "{line}");
        }
    }

    #[test]
    fn operator_options() {
        let config = serve("--log-format combined --color never --stats 2.5 --reuse-port");
        assert_eq!(config.log_format, Format::Combined);
        assert_eq!(config.colour, Colour::Never);
        assert_eq!(config.stats, Some(Duration::from_millis(2500)));
        assert!(config.reuse_port);
        let defaults = serve("");
        assert_eq!(
            (
                defaults.log_format,
                defaults.colour,
                defaults.stats,
                defaults.reuse_port
            ),
            (Format::Worker, Colour::Auto, None, false)
        );
        for (line, format) in [
            ("--log-format=json", Format::Json),
            ("--log-format worker", Format::Worker),
        ] {
            assert_eq!(serve(line).log_format, format, "{line}");
        }
        for (line, colour) in [
            ("--color=always", Colour::Always),
            ("--color auto", Colour::Auto),
        ] {
            assert_eq!(serve(line).colour, colour, "{line}");
        }
    }

    #[test]
    fn serving_options() {
        let defaults = serve("");
        assert_eq!((defaults.precompressed, defaults.max_age), (true, None));
        let table = [
            ("--no-precompressed", false, None),
            ("--max-age 600", true, Some(600)),
            ("--max-age=0", true, Some(0)),
            (
                "--max-age 2147483648 --no-precompressed",
                false,
                Some(MAX_AGE_LIMIT),
            ),
        ];
        for (line, precompressed, max_age) in table {
            let config = serve(line);
            assert_eq!(
                (config.precompressed, config.max_age),
                (precompressed, max_age),
                "{line}"
            );
        }
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
            ("one two", "two"),
            ("--root x stray", "stray"),
            ("-x", "-x"),
            ("--log-format apache", "--log-format"),
            ("--color sometimes", "--color"),
            ("--stats 0", "--stats"),
            ("--stats often", "--stats"),
            ("--reuse-port=yes", "--reuse-port"),
            ("--no-precompressed=no", "--no-precompressed"),
            ("--max-age -1", "--max-age"),
            ("--max-age 1.5", "--max-age"),
            ("--max-age 2147483649", "--max-age"),
            ("--max-age=week", "invalid value 'week' for --max-age"),
            ("--list-dirs=yes", "--list-dirs"),
            ("--list-dirs --list-dirs", "--list-dirs"),
            ("--port 1 --port 2", "--port"),
            ("--error-pages /nonexistent/pages", "/nonexistent/pages"),
            ("--max-connections 0", "--max-connections"),
            ("--max-connections lots", "--max-connections"),
            ("--grace -2", "--grace"),
            ("--model fibers", "--model"),
            // Each refusal again with `=`, and what only `=` can spell.
            ("--grace=abc", "invalid value 'abc' for --grace"),
            ("--port=70000", "invalid value '70000' for --port"),
            ("-p=http", "invalid value 'http' for --port"),
            ("-port=http", "invalid value 'http' for --port"),
            ("--bind=localhost", "invalid value 'localhost' for --bind"),
            ("--workers=0", "invalid value '0' for --workers"),
            ("--keep-alive=nan", "invalid value 'nan' for --keep-alive"),
            (
                "--header-timeout=0",
                "invalid value '0' for --header-timeout",
            ),
            ("--send-timeout=-1", "invalid value '-1' for --send-timeout"),
            (
                "--max-connections=lots",
                "invalid value 'lots' for --max-connections",
            ),
            ("--model=fibers", "invalid value 'fibers' for --model"),
            ("--error-pages=/nonexistent/pages", "/nonexistent/pages"),
            (
                "--port=",
                "'--port' option doesn't have an associated value",
            ),
            (
                "--root=",
                "'--root' option doesn't have an associated value",
            ),
            (
                "--root='x",
                "'--root' option doesn't have an associated value",
            ),
            ("--quiet=yes", "unexpected argument '--quiet=yes'"),
            ("-p80", "unexpected argument '-p80'"),
            ("--port=1 --port 2", "--port"),
            ("--port 1 -port 2", "unexpected argument '--port'"),
            ("-port 1 -port 2", "unexpected argument '--port'"),
            ("-document_root a --root b", "unexpected argument '--root'"),
            ("--grace 1 --grace=2", "unexpected argument '--grace=2'"),
        ];
        for (line, mention) in table {
            let text = refused(line);
            assert!(text.contains(mention), "{line:?} said {text:?}");
        }
    }
}
