//! `report.svg`: one canvas, a title that names the run, one legend, and five panels.
//!
//! - requests per second against keep-alive connections (the `small xN` sweep);
//! - p99 latency against the same connections;
//! - peak threads against idle connections held beside 32 busy ones (the idle sweep);
//! - peak resident memory against the same idle connections;
//! - server CPU time per request in every scenario, one bar per server.
//!
//! Connection counts and latencies span three decades, so their axes are logarithmic, as
//! are threads (3 against 10,000) and CPU time (6 µs for a small file, 700 µs for 2 MiB).

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Report;
use crate::scenarios::Sweep;

/// The canvas: a title band, two rows of two line panels, and the CPU panel across the
/// bottom, which needs a bar row per scenario.
const WIDTH: u32 = 1400;
const TITLE_HEIGHT: u32 = 120;
const ROW_HEIGHT: u32 = 430;
const CPU_ROW_PER_SCENARIO: u32 = 30;
const CPU_PANEL_EXTRA: u32 = 110;
/// Room left of the CPU panel for the scenarios' names.
const SCENARIO_LABEL_WIDTH: u32 = 190;
const FONT: &str = "sans-serif";

/// A panel's data: one line per server, in the server's color.
struct Series {
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// What a line panel shows.
struct LinePanel<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    series: Vec<Series>,
    y_format: fn(&f64) -> String,
    /// The unit written after the last point's value, if the panel labels it.
    end_label: Option<&'a str>,
}

/// Draws the report's chart to `path`.
pub fn draw(path: &Path, report: &Report) -> Result<(), String> {
    let scenarios = report.scenarios.len() as u32;
    let cpu_height = CPU_PANEL_EXTRA + CPU_ROW_PER_SCENARIO * scenarios.max(1);
    let height = TITLE_HEIGHT + 2 * ROW_HEIGHT + cpu_height;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(text)?;
    let (title, rest) = root.split_vertically(TITLE_HEIGHT);
    let (rows, cpu) = rest.split_vertically(2 * ROW_HEIGHT);
    let panels = rows.split_evenly((2, 2));
    draw_title(&title, report)?;

    let series = |value: &dyn Fn(&super::RunResult) -> Option<f64>,
                  sweep: fn(Sweep) -> Option<usize>| {
        sweep_series(report, value, sweep)
    };
    let connections = |s: Sweep| match s {
        Sweep::Connections(n) => Some(n),
        Sweep::Idle(_) => None,
    };
    let idle = |s: Sweep| match s {
        Sweep::Idle(n) => Some(n),
        Sweep::Connections(_) => None,
    };
    let max_connections = max_x(&series(&|r| Some(r.requests_per_s), connections));
    let log_connections = || (0.7..max_connections * 1.5).log_scale().base(2.0);
    let conn_desc = "keep-alive connections, GET of a 23-byte file (log scale)";
    draw_lines(
        &panels[0],
        &LinePanel {
            title: "Requests per second (higher is better)",
            x_desc: conn_desc,
            y_desc: "requests per second",
            series: series(&|r| Some(r.requests_per_s), connections),
            y_format: |v| thousands_k(*v),
            end_label: None,
        },
        log_connections(),
        |_, top| 0.0..top * 1.15,
    )?;
    draw_lines(
        &panels[1],
        &LinePanel {
            title: "p99 latency (lower is better)",
            x_desc: conn_desc,
            y_desc: "p99 latency, ms (log scale)",
            series: series(&|r| r.latency_ms.map(|l| l.p99), connections),
            y_format: |v| format!("{v}"),
            end_label: None,
        },
        log_connections(),
        |bottom, top| (bottom / 2.0..top * 2.0).log_scale(),
    )?;
    let idle_desc = "idle keep-alive connections beside 32 busy ones";
    let idle_threads = series(&|r| r.peak_threads.map(|t| t as f64), idle);
    let max_idle = max_x(&idle_threads).max(1.0);
    draw_lines(
        &panels[2],
        &LinePanel {
            title: "Peak threads of the server",
            x_desc: idle_desc,
            y_desc: "threads (log scale)",
            series: idle_threads,
            y_format: |v| format!("{v:.0}"),
            end_label: Some(" threads"),
        },
        0.0..max_idle * 1.05,
        |_, top| (1.0..top * 3.0).log_scale(),
    )?;
    draw_lines(
        &panels[3],
        &LinePanel {
            title: "Peak resident memory of the server",
            x_desc: idle_desc,
            y_desc: "RSS, MiB",
            series: series(&|r| r.peak_rss_mib(), idle),
            y_format: |v| format!("{v:.0}"),
            end_label: Some(" MiB"),
        },
        0.0..max_idle * 1.05,
        |_, top| 0.0..top * 1.15,
    )?;
    draw_cpu(&root, &cpu, report)?;
    root.present().map_err(text)
}

fn text(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// The title band: what was measured, when, on what, and how; then the legend.
fn draw_title(area: &DrawingArea<SVGBackend<'_>, Shift>, report: &Report) -> Result<(), String> {
    let run = &report.run;
    let names: Vec<&str> = report.servers.iter().map(|s| s.label.as_str()).collect();
    let headline = format!("poolhttpd benchmark: {}", names.join(", "));
    let dirty = if run.dirty == Some(true) {
        " (modified)"
    } else {
        ""
    };
    let date = run.date.get(..10).unwrap_or(&run.date);
    let details = format!(
        "{date} · commit {}{dirty} · {} cores, {} · Linux {} · {} run, {:.1} s measured per point",
        run.commit, run.cores, run.cpu, run.kernel, run.mode, run.measure_s
    );
    let left = |size| (FONT, size).into_font().color(&BLACK);
    let bold = (FONT, 26).into_font().style(FontStyle::Bold).color(&BLACK);
    area.draw(&Text::new(headline, (20, 14), bold))
        .map_err(text)?;
    area.draw(&Text::new(details, (20, 50), left(17)))
        .map_err(text)?;
    let mut x = 20;
    for (index, server) in report.servers.iter().enumerate() {
        let color = color_of(index);
        let y = 94;
        area.draw(&PathElement::new(
            [(x, y), (x + 34, y)],
            color.stroke_width(3),
        ))
        .map_err(text)?;
        area.draw(&Circle::new((x + 17, y), 5, color.filled()))
            .map_err(text)?;
        let label = Text::new(
            server.label.clone(),
            (x + 44, y),
            left(18).pos(Pos::new(HPos::Left, VPos::Center)),
        );
        area.draw(&label).map_err(text)?;
        x += 70 + 10 * server.label.chars().count() as i32;
    }
    if let Some(note) = run.note {
        let warning = (FONT, 22).into_font().style(FontStyle::Bold).color(&RED);
        let pos = Pos::new(HPos::Right, VPos::Center);
        let at = (WIDTH as i32 - 20, 94);
        area.draw(&Text::new(note.to_uppercase(), at, warning.pos(pos)))
            .map_err(text)?;
    }
    Ok(())
}

/// One series per server of `value` at the points of a sweep.
fn sweep_series(
    report: &Report,
    value: &dyn Fn(&super::RunResult) -> Option<f64>,
    sweep: fn(Sweep) -> Option<usize>,
) -> Vec<Series> {
    report
        .servers
        .iter()
        .enumerate()
        .map(|(index, server)| {
            let points = report
                .scenarios
                .iter()
                .filter_map(|scenario| {
                    let x = scenario.sweeps.iter().find_map(|&s| sweep(s))?;
                    let result = scenario.result(&server.key)?;
                    // An idle point stands where the idle connections really were.
                    let x = match (x, result.background_open) {
                        (0, _) | (_, None) => x,
                        (_, Some(open)) => open,
                    };
                    Some((x as f64, value(result)?))
                })
                .collect();
            Series {
                color: color_of(index),
                points,
            }
        })
        .filter(|series| !series.points.is_empty())
        .collect()
}

fn max_x(series: &[Series]) -> f64 {
    let points = series.iter().flat_map(|s| &s.points);
    points.map(|p| p.0).fold(1.0, f64::max)
}

/// A line panel with the x axis `x_spec` and a y axis made from the highest value.
fn draw_lines<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &LinePanel<'_>,
    x_spec: X,
    y_spec: impl Fn(f64, f64) -> Y,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let values = || panel.series.iter().flat_map(|s| &s.points).map(|p| p.1);
    // Any range at all when nothing was measured.
    let top = values().fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let bottom = values().filter(|&v| v > 0.0).fold(top, f64::min);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 21))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(78)
        .build_cartesian_2d(x_spec, y_spec(bottom, top))
        .map_err(text)?;
    chart
        .configure_mesh()
        // The minor grid lines of a log axis are dense: keep them faint.
        .light_line_style(RGBColor(240, 240, 240))
        .x_desc(panel.x_desc)
        .y_desc(panel.y_desc)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .x_label_formatter(&|x| thousands_k(*x))
        .y_label_formatter(&panel.y_format)
        .draw()
        .map_err(text)?;
    // Each server's line is narrower than the one before, so that equal values (the
    // pool's and nginx's three threads) still show both colors.
    for (index, series) in panel.series.iter().enumerate() {
        let (width, radius) = (6 - 2 * index.min(2) as u32, 7 - index.min(2) as i32);
        let color = series.color;
        let points = series.points.iter().copied();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(width)))
            .map_err(text)?;
        let dots = series
            .points
            .iter()
            .map(|&p| Circle::new(p, radius, color.filled()));
        chart.draw_series(dots).map_err(text)?;
        // A value an earlier line already labelled (three threads) is not written twice.
        let labelled_before = panel.series[..index]
            .iter()
            .any(|earlier| earlier.points.last().map(|p| p.1) == series.points.last().map(|p| p.1));
        if let (Some(unit), Some(&last), false) =
            (panel.end_label, series.points.last(), labelled_before)
        {
            let style = (FONT, 15).into_font().color(&color);
            let style = style.pos(Pos::new(HPos::Right, VPos::Bottom));
            let label = format!("{}{unit}", (panel.y_format)(&last.1));
            let element = EmptyElement::at(last) + Text::new(label, (-10, -6), style);
            chart.draw_series([element]).map_err(text)?;
        }
    }
    Ok(())
}

/// The bottom panel: CPU µs per correct response, a row per scenario, a bar per server,
/// on a log axis. The scenarios' names are drawn on `root`, left of the bars.
fn draw_cpu(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &Report,
) -> Result<(), String> {
    let rows = report.scenarios.len().max(1) as f64;
    let servers = report.servers.len().max(1) as f64;
    let values = report.scenarios.iter().flat_map(|s| &s.results);
    let top = values
        .filter_map(|r| r.cpu_us_per_request)
        .fold(1.0, f64::max);
    let floor = 1.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Server CPU time per request, every scenario (lower is better)",
            (FONT, 21),
        )
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(SCENARIO_LABEL_WIDTH)
        .build_cartesian_2d((floor..top * 2.0).log_scale(), rows..0.0)
        .map_err(text)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .light_line_style(RGBColor(240, 240, 240))
        .x_desc("CPU µs per correct response, all the server's threads and processes (log scale)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .x_label_formatter(&|x| format!("{x}"))
        .draw()
        .map_err(text)?;
    let band: Range<f64> = 0.15..0.85;
    let bar = (band.end - band.start) / servers;
    for (row, scenario) in report.scenarios.iter().enumerate() {
        let y = row as f64;
        for (index, result) in scenario.results.iter().enumerate() {
            let Some(cpu) = result.cpu_us_per_request else {
                continue;
            };
            let from = y + band.start + bar * index as f64;
            let color = color_of(index);
            chart
                .draw_series([Rectangle::new(
                    [(floor, from), (cpu, from + bar * 0.9)],
                    color.filled(),
                )])
                .map_err(text)?;
        }
        let (_, middle) = chart.backend_coord(&(floor, y + 0.5));
        let (left, _) = chart.backend_coord(&(floor, 0.0));
        let style = (FONT, 15)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(scenario.name.clone(), (left - 8, middle), style))
            .map_err(text)?;
    }
    Ok(())
}

/// 178k, 1.5k, 5k, 12, 0.5: axis labels that stay short.
fn thousands_k(value: f64) -> String {
    let k = value / 1000.0;
    if value >= 10_000.0 || (value >= 1000.0 && k.fract() == 0.0) {
        format!("{k:.0}k")
    } else if value >= 1000.0 {
        format!("{k:.1}k")
    } else if value >= 1.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// The same color for a server on every panel, in the order of the report's servers:
/// pool, thread per connection, the third server.
fn color_of(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 4] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    COLORS[index % COLORS.len()]
}
