//! Live statistics (`--stats SECS`): what the server did in the last window, one line to
//! stderr per window.
//!
//! Each thread that answers counts into its own cache-line-aligned counters (requests,
//! bytes, a latency histogram), so counting costs an uncontended atomic add; the thread
//! that prints (the poll thread, or a thread of its own beside a thread per connection)
//! reads them all once per window and prints the difference. Without `--stats` nothing is
//! counted at all.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Histogram buckets per power of two of microseconds: a percentile read from it is within
/// an eighth of the true value.
const SUB_BUCKETS: u32 = 8;

/// Powers of two of microseconds covered: up to about 67 s; slower responses count in the
/// last bucket.
const POWERS: u32 = 26;

/// Buckets in each histogram.
const BUCKETS: usize = (SUB_BUCKETS * POWERS) as usize;

/// The histogram bucket of a duration in microseconds.
fn bucket(micros: u64) -> usize {
    if micros < u64::from(SUB_BUCKETS) {
        return micros as usize;
    }
    let power = 63 - micros.leading_zeros();
    let sub = (micros >> (power - SUB_BUCKETS.trailing_zeros())) & u64::from(SUB_BUCKETS - 1);
    let index = (power - SUB_BUCKETS.trailing_zeros() + 1) * SUB_BUCKETS + sub as u32;
    (index as usize).min(BUCKETS - 1)
}

/// The largest duration, in microseconds, that falls in bucket `index`.
fn bucket_top(index: usize) -> u64 {
    let index = index as u32;
    if index < SUB_BUCKETS {
        return u64::from(index);
    }
    let shift = index / SUB_BUCKETS - 1;
    let sub = u64::from(index % SUB_BUCKETS);
    ((u64::from(SUB_BUCKETS) + sub + 1) << shift) - 1
}

/// One answering thread's counters, on a cache line of its own.
#[derive(Debug)]
#[repr(align(64))]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
    /// A pool worker is driving a connection.
    busy: AtomicBool,
    latency: [AtomicU64; BUCKETS],
}

impl Counters {
    fn new() -> Counters {
        Counters {
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The counters of every answering thread, and how often they are printed.
#[derive(Debug)]
pub struct Stats {
    /// How often a line is printed.
    pub every: Duration,
    /// One per pool worker; one for all the threads of the thread-per-connection model.
    counters: Vec<Counters>,
}

impl Stats {
    /// Counters for `threads` answering threads, printed every `every`.
    pub fn new(every: Duration, threads: usize) -> Stats {
        Stats {
            every,
            counters: (0..threads.max(1)).map(|_| Counters::new()).collect(),
        }
    }

    /// A response of `bytes` body bytes, answered by thread `index`, finished `took` after
    /// its request began.
    pub fn record(&self, index: usize, bytes: u64, took: Duration) {
        let Some(counters) = self.counters.get(index % self.counters.len()) else {
            return;
        };
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        counters.latency[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// Pool worker `index` starts or stops driving a connection.
    pub fn busy(&self, index: usize, busy: bool) {
        if let Some(counters) = self.counters.get(index) {
            counters.busy.store(busy, Ordering::Relaxed);
        }
    }

    /// Everything counted so far.
    fn read(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            at: Instant::now(),
            requests: Vec::with_capacity(self.counters.len()),
            bytes: 0,
            busy: 0,
            latency: vec![0; BUCKETS],
        };
        for counters in &self.counters {
            snapshot
                .requests
                .push(counters.requests.load(Ordering::Relaxed));
            snapshot.bytes += counters.bytes.load(Ordering::Relaxed);
            snapshot.busy += usize::from(counters.busy.load(Ordering::Relaxed));
            for (total, count) in snapshot.latency.iter_mut().zip(&counters.latency) {
                *total += count.load(Ordering::Relaxed);
            }
        }
        snapshot
    }
}

/// The counters at one instant.
#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    /// Per answering thread.
    requests: Vec<u64>,
    bytes: u64,
    busy: usize,
    latency: Vec<u64>,
}

/// What the printing thread knows that the counters do not.
#[derive(Debug, Clone, Copy)]
pub enum Gauges {
    /// The pool: connections open and idle, and jobs waiting for a worker.
    Pool {
        open: usize,
        idle: usize,
        queued: usize,
    },
    /// A thread per connection: connections open, and the process's threads.
    Threads { open: usize, threads: usize },
}

/// The printing side: the last snapshot, to print the difference from.
#[derive(Debug)]
pub struct Window {
    last: Snapshot,
    /// When the next line is due.
    pub due: Instant,
}

impl Window {
    /// A window starting now.
    pub fn new(stats: &Stats) -> Window {
        let last = stats.read();
        Window {
            due: last.at + stats.every,
            last,
        }
    }

    /// The line for the window ending now, written into `line`; the next window starts.
    pub fn close(&mut self, stats: &Stats, gauges: Gauges, line: &mut String) {
        let now = stats.read();
        let seconds = now.at.duration_since(self.last.at).as_secs_f64().max(1e-9);
        let requests: Vec<u64> = now
            .requests
            .iter()
            .zip(&self.last.requests)
            .map(|(now, then)| now - then)
            .collect();
        let total: u64 = requests.iter().sum();
        let bytes = now.bytes - self.last.bytes;
        let latency: Vec<u64> = now
            .latency
            .iter()
            .zip(&self.last.latency)
            .map(|(now, then)| now - then)
            .collect();
        let _ = write!(
            line,
            "{:.0} req/s, {:.1} MB/s",
            total as f64 / seconds,
            bytes as f64 / seconds / 1e6
        );
        match gauges {
            Gauges::Pool { open, idle, queued } => {
                let workers = requests.len();
                let _ = write!(
                    line,
                    "; {open} open, {idle} idle; busy workers {}/{workers}, queue {queued}",
                    now.busy
                );
            }
            Gauges::Threads { open, threads } => {
                let _ = write!(line, "; {open} open; {threads} threads");
            }
        }
        match percentile(&latency, 0.99) {
            Some(micros) => {
                let _ = write!(line, "; p99 {:.2}ms", micros as f64 / 1000.0);
            }
            None => line.push_str("; p99 -"),
        }
        if matches!(gauges, Gauges::Pool { .. }) {
            line.push(';');
            for (index, count) in requests.iter().enumerate() {
                let share = if total == 0 {
                    0.0
                } else {
                    *count as f64 * 100.0 / total as f64
                };
                let _ = write!(line, " w{index} {share:.0}%");
            }
        }
        self.due = now.at + stats.every;
        self.last = now;
    }
}

/// The duration, in microseconds, under which `quantile` of the counted ones fall (the top
/// of its bucket); `None` when nothing was counted.
fn percentile(latency: &[u64], quantile: f64) -> Option<u64> {
    let total: u64 = latency.iter().sum();
    if total == 0 {
        return None;
    }
    let wanted = ((total as f64) * quantile).ceil() as u64;
    let mut seen = 0;
    for (index, count) in latency.iter().enumerate() {
        seen += count;
        if seen >= wanted {
            return Some(bucket_top(index));
        }
    }
    Some(bucket_top(latency.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_durations_within_an_eighth() {
        let mut last = 0;
        for micros in (0..5_000).chain([65_535, 65_536, 1_000_000, 60_000_000]) {
            let index = bucket(micros);
            assert!(index >= last || micros < 5_000 && index == last, "{micros}");
            last = index.max(last);
            let top = bucket_top(index);
            assert!(top >= micros, "{micros} above its bucket's top {top}");
            assert!(
                top as f64 <= micros as f64 * 1.125 + 1.0,
                "{micros}: top {top}"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn a_window_says_rates_shares_and_p99() {
        let stats = Stats::new(Duration::from_secs(1), 2);
        let mut window = Window::new(&stats);
        for _ in 0..99 {
            stats.record(0, 100, Duration::from_micros(200));
        }
        stats.record(1, 100, Duration::from_millis(50));
        stats.busy(1, true);
        let mut line = String::new();
        let gauges = Gauges::Pool {
            open: 12,
            idle: 10,
            queued: 0,
        };
        window.close(&stats, gauges, &mut line);
        assert!(
            line.contains("; 12 open, 10 idle; busy workers 1/2, queue 0"),
            "{line}"
        );
        assert!(line.contains("; p99 0.2"), "{line}");
        assert!(line.ends_with("; w0 99% w1 1%"), "{line}");
        // The next window starts from here: nothing new, nothing counted.
        let mut next = String::new();
        window.close(&stats, gauges, &mut next);
        assert!(next.starts_with("0 req/s, 0.0 MB/s"), "{next}");
        assert!(next.contains("; p99 -"), "{next}");
    }
}
