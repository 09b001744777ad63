//! The `poolhttpd` command: parse the flags, build what the server needs, bind, print the
//! banner, serve.
//!
//! This is the one place that knows both sides: [`config`] knows only the command line,
//! and the server takes a finished [`Site`] and [`Options`], so it reads neither the
//! command line nor the environment.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use poolhttpd::config::{self, Colour, Command, Config};
use poolhttpd::files::DocRoot;
use poolhttpd::handler::Site;
use poolhttpd::log::Log;
use poolhttpd::pages::ErrorPages;
use poolhttpd::server::{Listen, Model, Options, Server, ServerError, Timeouts};
use poolhttpd::stats::Stats;

/// Exit status for a command line or start-up we cannot run with.
const EXIT_USAGE: u8 = 2;

/// In debug builds only, and only when this variable is set, a request for
/// [`poolhttpd::handler::FAULT_TARGET`] panics its worker: how the tests prove a panic
/// costs one connection and no worker.
const FAULT_INJECTION_VAR: &str = "POOLHTTPD_FAULT_INJECTION";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("poolhttpd: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run() -> Result<(), String> {
    let args = std::env::args_os().skip(1).collect();
    let config = match config::parse(args).map_err(|err| format!("{err} (try --help)"))? {
        Command::Help => {
            print!("{}", config::HELP);
            return Ok(());
        }
        Command::Version => {
            println!("poolhttpd {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::Serve(config) => config,
    };
    let site = site(&config).map_err(|err| match err {
        ServerError::Root(_, err) if config.root_is_default => format!(
            "document root {}: {}; name the folder to serve: poolhttpd DIR",
            config.root.display(),
            poolhttpd::server::plain(&err)
        ),
        err => err.to_string(),
    })?;
    let options = options(&config)?;
    let inherited = matches!(options.listen, Listen::Inherited(_));
    let server = Server::bind(site, options).map_err(|err| err.to_string())?;
    banner(&config, &server, inherited);
    let totals = server.run().map_err(|err| err.to_string())?;
    println!("Server stopped: {totals}.");
    Ok(())
}

/// What is served: the root opened, the error pages read, and how to answer and log.
fn site(config: &Config) -> Result<Site, ServerError> {
    let root = DocRoot::open(&config.root)
        .map_err(|err| ServerError::Root(config.root.clone(), err))?
        .with_precompressed(config.precompressed);
    let pages = ErrorPages::load(config.error_pages.as_deref()).map_err(ServerError::ErrorPages)?;
    Ok(Site {
        root,
        pages,
        keep_alive: config.keep_alive,
        max_age: config.max_age,
        log: Log::new(config.quiet).styled(config.log_format, colour(config.colour)),
        fault_injection: cfg!(debug_assertions) && std::env::var_os(FAULT_INJECTION_VAR).is_some(),
        stats: config.stats.map(|every| {
            let answering = match config.model {
                Model::Pool => config.workers.get(),
                Model::Threads => 1,
            };
            Stats::new(every, answering)
        }),
        list_dirs: config.list_dirs,
    })
}

/// Whether log lines are coloured: `auto` colours only a terminal, and never when
/// `NO_COLOR` is set (<https://no-color.org>).
fn colour(choice: Colour) -> bool {
    match choice {
        Colour::Always => true,
        Colour::Never => false,
        Colour::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        }
    }
}

/// How it is served.
fn options(config: &Config) -> Result<Options, String> {
    Ok(Options {
        listen: match activated()? {
            Some(listener) => Listen::Inherited(listener),
            None => Listen::Address {
                addr: SocketAddr::new(config.bind, config.port),
                reuse_port: config.reuse_port,
            },
        },
        model: config.model,
        workers: config.workers,
        max_connections: config.max_connections,
        timeouts: Timeouts {
            idle: config.keep_alive,
            head: config.head_timeout,
            send: config.send_timeout,
            grace: config.grace,
        },
        stats: config.stats,
    })
}

/// The listening socket a supervisor passed on descriptor 3, by systemd's socket activation
/// protocol: `LISTEN_PID` names this process and `LISTEN_FDS` is 1. Read before any thread
/// starts, since the variables are removed so that children do not take them too.
fn activated() -> Result<Option<std::net::TcpListener>, String> {
    let for_us = std::env::var("LISTEN_PID").ok() == Some(std::process::id().to_string());
    if !for_us {
        return Ok(None);
    }
    match std::env::var("LISTEN_FDS").ok().as_deref() {
        Some("1") => {}
        other => {
            return Err(format!(
                "socket activation: LISTEN_FDS is {}, expected 1",
                other.unwrap_or("missing")
            ));
        }
    }
    let listener = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(|err| format!("socket activation: descriptor 3: {err}"))?;
    listener
        .map(Some)
        .ok_or_else(|| "socket activation: no socket on descriptor 3".to_string())
}

/// The original's three lines, with the port actually bound, and one more saying what
/// runs: the model, its threads, the real address and the keep-alive.
fn banner(config: &Config, server: &Server, inherited: bool) {
    let local = server.local_addr();
    let port = local.port();
    // A wildcard or loopback address is reached as localhost from this machine.
    let host = match local.ip() {
        ip if ip.is_loopback() || ip.is_unspecified() => "localhost".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    println!(
        "Using directory {} and port {port} for server.",
        config.root.display()
    );
    println!("Starting Server...");
    println!("Access Server at http://{host}:{port}/");
    let threads = match config.model {
        Model::Pool if config.workers.get() == 1 => "a pool of 1 worker".to_string(),
        Model::Pool => format!("a pool of {} workers", config.workers),
        Model::Threads => "one thread per connection".to_string(),
    };
    let how = if inherited {
        ", a socket passed by the supervisor (socket activation)"
    } else if config.reuse_port {
        ", shared with other processes (SO_REUSEPORT)"
    } else {
        ""
    };
    println!(
        "Serving {} with {threads} on {local}{how} (keep-alive {})",
        config.root.display(),
        seconds(config.keep_alive)
    );
}

/// A duration as the command line takes it: `3s`, `0.5s`.
fn seconds(duration: std::time::Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}
