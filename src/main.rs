//! The `poolhttpd` command: parse the flags, build what the server needs, bind, print the
//! banner, serve.
//!
//! This is the one place that knows both sides: [`config`] knows only the command line,
//! and the server takes a finished [`Site`] and [`Options`], so it reads neither the
//! command line nor the environment.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use poolhttpd::config::{self, Command, Config};
use poolhttpd::files::DocRoot;
use poolhttpd::handler::Site;
use poolhttpd::log::Log;
use poolhttpd::pages::ErrorPages;
use poolhttpd::server::{Options, Server, ServerError, Timeouts};

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
    let site = site(&config).map_err(|err| err.to_string())?;
    let server = Server::bind(site, options(&config)).map_err(|err| err.to_string())?;
    banner(&config, &server);
    let totals = server.run().map_err(|err| err.to_string())?;
    println!("Server stopped: {totals}.");
    Ok(())
}

/// What is served: the root opened, the error pages read, and how to answer and log.
fn site(config: &Config) -> Result<Site, ServerError> {
    let root =
        DocRoot::open(&config.root).map_err(|err| ServerError::Root(config.root.clone(), err))?;
    let pages = ErrorPages::load(config.error_pages.as_deref()).map_err(ServerError::ErrorPages)?;
    Ok(Site {
        root,
        pages,
        keep_alive: config.keep_alive,
        log: Log::new(config.quiet),
        fault_injection: cfg!(debug_assertions) && std::env::var_os(FAULT_INJECTION_VAR).is_some(),
    })
}

/// How it is served.
fn options(config: &Config) -> Options {
    Options {
        addr: SocketAddr::new(config.bind, config.port),
        model: config.model,
        workers: config.workers,
        max_connections: config.max_connections,
        timeouts: Timeouts {
            idle: config.keep_alive,
            head: config.head_timeout,
            send: config.send_timeout,
            grace: config.grace,
        },
    }
}

/// The original's three lines, with the port actually bound.
fn banner(config: &Config, server: &Server) {
    let port = server.local_addr().port();
    let host = match config.bind {
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
}
