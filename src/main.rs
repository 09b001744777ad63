//! The `poolhttpd` command: parse the flags, bind, print the banner, serve.

use std::net::IpAddr;
use std::process::ExitCode;

use poolhttpd::config::{self, Command, Config};
use poolhttpd::server::Server;

/// Exit status for a command line or start-up we cannot run with.
const EXIT_USAGE: u8 = 2;

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
    let server = Server::bind(&config).map_err(|err| err.to_string())?;
    banner(&config, &server);
    let totals = server.run().map_err(|err| err.to_string())?;
    println!("Server stopped: {totals}.");
    Ok(())
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
