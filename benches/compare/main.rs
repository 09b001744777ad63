//! Compares poolhttpd's two threading models under the same load: `--model pool` (one mio
//! poll thread feeding a fixed worker pool) and `--model threads` (a thread per
//! connection), and optionally tuned nginx or another server.
//!
//! For every scenario and every server the bench starts a fresh server on a free loopback
//! port, drives it with an event-driven load generator (mio on two client threads, never a
//! thread per connection) and watches the server's processes: their peak threads and
//! resident memory throughout, and their CPU time and context switches over the measured
//! window, per correct response. Only correct responses count: status 200, the file's
//! `Content-Length`, and the body compared with the generated file. The scenarios are
//! sweeps that show how cost grows ([`scenarios`]): keep-alive connections from 1 to 1,024,
//! idle connections from 0 to 10,000 beside 32 busy ones, and a 41 KB page, 2 MiB files, a
//! new connection per request and slow readers.
//!
//! ```text
//! cargo bench --bench compare -- --nginx                       # about 4.5 minutes
//! POOLHTTPD_BENCH_QUICK=1 cargo bench --bench compare          # a smoke run, under 30 s
//! cargo bench --bench compare -- --nginx --only x16 --only page # scenarios named so
//! cargo bench --bench compare -- --url http://127.0.0.1:8081   # another server you started
//! cargo bench --bench compare -- --nginx --save 2-core         # benches/results/2-core.*
//! ```
//!
//! It prints the tables on stdout and progress on stderr, and writes `report.md`,
//! `report.json` (its schema: [`report`]) and `report.svg` (panels: [`report::chart`])
//! under `target/bench/`, or under `benches/results/NAME.*` with `--save NAME`.

mod background;
mod docroot;
mod endpoint;
mod load;
mod measure;
mod options;
mod report;
mod run;
mod scenarios;
mod servers;

use std::time::Instant;

use options::Options;

/// Descriptors asked for, for this process and (inherited) every server it starts: the
/// largest scenario holds 10,032 connections, and poolhttpd counts two descriptors per
/// connection (its socket and a file being sent) beside a few hundred of its own. Raising
/// the hard limit needs root; without it the bench uses what the hard limit gives, and the
/// idle sweep reports how many connections it reached.
const DESCRIPTORS_WANTED: u64 = 32_768;

fn main() {
    let options = match Options::parse(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("compare: {message}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let descriptors = testkit::limits::raise_descriptor_limit(DESCRIPTORS_WANTED);
    let bench = run::Bench::new(&options, descriptors);
    if bench.scenarios.is_empty() {
        eprintln!(
            "compare: no scenario of the {} run matches --only",
            bench.mode.name()
        );
        std::process::exit(2);
    }
    bench.announce();
    let report = bench.run();

    let markdown = report::table::markdown(&report);
    println!("{markdown}");
    let (dir, stem) = options.output();
    if let Err(err) = report::write_all(&report, &markdown, &dir, &stem) {
        eprintln!("compare: {err}");
        std::process::exit(1);
    }
    eprintln!(
        "[bench] done in {:.1} s; wrote {}.{{md,json,svg}}",
        started.elapsed().as_secs_f64(),
        dir.join(stem).display()
    );
}
