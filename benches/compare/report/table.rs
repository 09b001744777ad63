//! The Markdown the bench prints and saves: a heading that names the run, a summary with a
//! row per scenario, the full table with a row per scenario and server, and notes on how
//! the figures were taken. Columns are padded so that it also reads well as plain text.

use super::{Report, RunResult, ScenarioReport};
use crate::measure::usage::SwitchSource;

/// The whole Markdown text.
pub fn markdown(report: &Report) -> String {
    let run = &report.run;
    let dirty = if run.dirty == Some(true) {
        " (modified)"
    } else {
        ""
    };
    let mut heading = format!(
        "## poolhttpd benchmark: {} run, {}, commit {}{dirty}, {} cores, {}",
        run.mode, run.date, run.commit, run.cores, run.cpu
    );
    if let Some(note) = run.note {
        heading += &format!(" — {note}");
    }
    [
        heading,
        "### Summary".to_string(),
        render(&summary_rows(report)),
        "### Every server in every scenario".to_string(),
        render(&full_rows(report)),
        notes(report),
    ]
    .join("\n\n")
}

/// `-` where a figure is unknown.
fn cell<T>(value: Option<T>, format: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_string(), format)
}

/// One row per scenario: throughput and its ratios, then p99, CPU, threads and memory
/// per server, written `pool / threads / other`.
fn summary_rows(report: &Report) -> Vec<Vec<String>> {
    let keys: Vec<&str> = report.servers.iter().map(|s| s.key.as_str()).collect();
    let joined = keys.join(" / ");
    let mut header = vec!["scenario".to_string()];
    header.extend(keys.iter().map(|key| format!("{key} req/s")));
    header.extend(keys.iter().skip(1).map(|key| format!("pool / {key}")));
    header.extend([
        format!("p99 ms {joined}"),
        format!("CPU µs/req {joined}"),
        format!("peak threads {joined}"),
        format!("peak RSS MiB {joined}"),
        "errors".to_string(),
    ]);
    let mut rows = vec![header];
    for scenario in &report.scenarios {
        let per_server = |f: &dyn Fn(&RunResult) -> String| {
            let cells: Vec<String> = keys
                .iter()
                .map(|key| scenario.result(key).map_or("-".to_string(), f))
                .collect();
            cells.join(" / ")
        };
        let pool = scenario.result("pool").map_or(0.0, |r| r.requests_per_s);
        let mut row = vec![scenario.name.clone()];
        row.extend(scenario.results.iter().map(|r| thousands(r.requests_per_s)));
        row.extend(
            scenario
                .results
                .iter()
                .skip(1)
                .map(|r| ratio(pool, r.requests_per_s)),
        );
        row.extend([
            per_server(&|r| cell(r.latency_ms, |l| format!("{:.2}", l.p99))),
            per_server(&|r| cell(r.cpu_us_per_request, |cpu| format!("{cpu:.1}"))),
            per_server(&|r| cell(r.peak_threads, |threads| thousands(threads as f64))),
            per_server(&|r| cell(r.peak_rss_mib(), |mib| format!("{mib:.1}"))),
            scenario
                .results
                .iter()
                .map(|r| r.errors)
                .sum::<u64>()
                .to_string(),
        ]);
        rows.push(row);
    }
    rows
}

/// One row per scenario and server, with every figure.
fn full_rows(report: &Report) -> Vec<Vec<String>> {
    let header = [
        "scenario",
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "errors",
        "peak threads",
        "peak RSS MiB",
        "CPU µs/req",
        "csw/req",
        "background open",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for scenario in &report.scenarios {
        for (result, server) in scenario.results.iter().zip(&report.servers) {
            rows.push(full_row(scenario, server.label.as_str(), result));
        }
    }
    rows
}

fn full_row(scenario: &ScenarioReport, label: &str, r: &RunResult) -> Vec<String> {
    let ms = |pick: fn(&super::Latency) -> f64| {
        cell(r.latency_ms.as_ref(), |l| format!("{:.2}", pick(l)))
    };
    let switches = cell(r.context_switches_per_request, |csw| {
        let mark = match r.context_switch_source {
            Some(SwitchSource::LivingThreads) => "*",
            _ => "",
        };
        format!("{csw:.2}{mark}")
    });
    vec![
        scenario.name.clone(),
        label.to_string(),
        thousands(r.requests_per_s),
        ms(|l| l.p50),
        ms(|l| l.p99),
        ms(|l| l.p99_9),
        ms(|l| l.max),
        r.errors.to_string(),
        cell(r.peak_threads, |threads| threads.to_string()),
        cell(r.peak_rss_mib(), |mib| format!("{mib:.1}")),
        cell(r.cpu_us_per_request, |cpu| format!("{cpu:.1}")),
        switches,
        cell(r.background_open, |open| open.to_string()),
    ]
}

/// `pool / other` as a factor, `-` when the other served nothing.
fn ratio(pool: f64, other: f64) -> String {
    if other > 0.0 {
        format!("{:.2}", pool / other)
    } else {
        "-".to_string()
    }
}

/// A whole number with thousands separated by commas: 178,548.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// What the columns measure, and how, as a Markdown list.
fn notes(report: &Report) -> String {
    let run = &report.run;
    let mut notes = vec![format!(
        "- Each run: a fresh server, {:.1} s warm-up, {:.1} s measured; req/s and latency \
         count correct responses only (status 200, the file's length and bytes). Load \
         average {:.2} at the start, {:.2} at the end.",
        run.warmup_s, run.measure_s, run.load_average.start[0], run.load_average.end[0]
    )];
    notes.push(format!(
        "- CPU µs/req: user + system CPU time of all the server's threads and processes \
         (living or ended) over the measured window, from `/proc/PID/stat` in {:.0} ms \
         ticks, per correct response; it includes what the idle or slow background \
         connections cost the server.",
        run.cpu_tick_ms
    ));
    let sources: Vec<SwitchSource> = report
        .scenarios
        .iter()
        .flat_map(|s| &s.results)
        .filter_map(|r| r.context_switch_source)
        .collect();
    if sources.contains(&SwitchSource::Perf) {
        notes.push(
            "- csw/req: voluntary + involuntary context switches over the same window, per \
             correct response, from perf software counters opened on every thread of the \
             server before the load and inherited by every thread or process it creates."
                .to_string(),
        );
    }
    if sources.contains(&SwitchSource::LivingThreads) {
        notes.push(
            "- csw/req marked *: perf counters were not allowed, so only threads living at \
             the window's end were counted; threads that ended inside it are missing."
                .to_string(),
        );
    }
    if let Some(nginx) = report.servers.iter().find(|s| s.key == "nginx") {
        notes.push(format!(
            "- {}: {} started fresh for each scenario with as many worker processes as the \
             pool has workers; its threads and RSS add up the master and the workers \
             (memory they share counts once for each); its configuration is in the JSON.",
            nginx.label, nginx.version
        ));
    }
    notes.push(format!(
        "- background open: idle or slow connections actually held during the run (the \
         descriptor limit was {}).",
        run.descriptor_limit
    ));
    notes.join("\n")
}

fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    let pad = |row: &Vec<String>| {
        row.iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
    };
    let mut out = Vec::with_capacity(rows.len() + 1);
    if let Some((header, body)) = rows.split_first() {
        out.push(line(pad(header)));
        out.push(line(
            widths.iter().map(|&width| "-".repeat(width)).collect(),
        ));
        out.extend(body.iter().map(|row| line(pad(row))));
    }
    out.join("\n")
}
