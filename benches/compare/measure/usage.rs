//! What a server spends in the measured window: its CPU time and its context switches,
//! over every thread and process it has, including those that start or end inside the
//! window.
//!
//! CPU time is the user plus system time of `/proc/PID/stat`, which a process keeps for
//! all its threads, living or ended; for nginx the master's and the workers' are added up.
//! Context switches come from perf software counters (`PERF_COUNT_SW_CONTEXT_SWITCHES`),
//! one opened with `inherit` on every task of the server while it is idle: a thread or
//! process it creates later inherits its creator's counter, and the kernel adds its count
//! to that counter when it ends, so the threads of thread per connection are all counted.
//! Where perf is not allowed, the living threads' `/proc` counts stand in, and the threads
//! that end inside the window are missing.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Once;
use std::time::{Duration, Instant};

use perf_event::events::Software;
use perf_event::{Builder, Counter};
use serde::Serialize;
use testkit::procfs;

/// Listings of the server's tasks tried before giving up on perf counters. A server still
/// starting its threads (poolhttpd prints its banner before starting them) may add some
/// between two listings, and each change costs an attempt; a server at rest settles at
/// once.
const ATTACH_ATTEMPTS: usize = 20;

/// Where a context-switch count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchSource {
    /// Perf counters inherited by every task the server creates.
    Perf,
    /// The server's living threads at both ends of the window.
    LivingThreads,
}

/// What a server spent in the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system CPU time of all its threads and processes.
    pub cpu: Duration,
    /// Voluntary plus involuntary context switches.
    pub switches: u64,
    pub source: SwitchSource,
}

/// Watches a server's processes from the moment it is attached.
pub struct Meter {
    /// One for poolhttpd; nginx's master and workers.
    processes: Vec<u32>,
    /// A counter per task of the server at attach time, by task id; `None` if perf is not
    /// allowed here.
    counters: Option<Vec<(u32, Counter)>>,
}

/// One look at the server.
struct Reading {
    cpu_ticks: u64,
    /// Context switches so far, by counter (perf) or by living thread.
    switches: HashMap<u32, u64>,
}

impl Meter {
    /// Attaches to a server's processes. Call it while the server has no connection: a
    /// thread that one of its threads creates after this inherits that thread's counter,
    /// so the server must not create threads while the counters are opened (see
    /// [`open_counters`]).
    pub fn attach(processes: &[u32]) -> Meter {
        let counters = open_counters(processes)
            .map_err(|why| {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    eprintln!("[bench] context switches of living threads only: {why}");
                });
            })
            .ok();
        Meter {
            processes: processes.to_vec(),
            counters,
        }
    }

    /// Waits for the window's start, looks at the server, waits for its end and looks
    /// again: what the server spent in between.
    pub fn measure(&mut self, window: Range<Instant>) -> Result<Usage, String> {
        wait_until(window.start);
        let before = self.read()?;
        wait_until(window.end);
        let after = self.read()?;
        let switches = after
            .switches
            .iter()
            .map(|(task, &count)| {
                // A thread born inside the window counts from zero.
                count.saturating_sub(before.switches.get(task).copied().unwrap_or(0))
            })
            .sum();
        let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
        Ok(Usage {
            cpu: procfs::clock_tick() * u32::try_from(ticks).unwrap_or(u32::MAX),
            switches,
            source: if self.counters.is_some() {
                SwitchSource::Perf
            } else {
                SwitchSource::LivingThreads
            },
        })
    }

    fn read(&mut self) -> Result<Reading, String> {
        let cpu_ticks = procfs::cpu_ticks(&self.processes)
            .map_err(|err| format!("cannot read the server's /proc/PID/stat: {err}"))?;
        let switches = match &mut self.counters {
            Some(counters) => counters
                .iter_mut()
                .map(|(task, counter)| {
                    let count = counter
                        .read()
                        .map_err(|err| format!("cannot read the counter of {task}: {err}"))?;
                    Ok((*task, count))
                })
                .collect::<Result<_, String>>()?,
            None => procfs::living_switches(&self.processes),
        };
        Ok(Reading {
            cpu_ticks,
            switches,
        })
    }
}

/// Sleeps until `at`, an instant of the load's schedule.
fn wait_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// An enabled, inherited context-switch counter on every task of `processes`.
///
/// A task created after its creator's counter is open inherits it, and would be counted
/// twice if it got one of its own too; one created before, but after the listing, would get
/// none. So the tasks are listed again once every counter is open, and only a listing that
/// has not changed proves that each task is counted exactly once.
fn open_counters(processes: &[u32]) -> Result<Vec<(u32, Counter)>, String> {
    for _ in 0..ATTACH_ATTEMPTS {
        let tasks = all_tasks(processes)?;
        let mut counters = Vec::with_capacity(tasks.len());
        for &task in &tasks {
            match open_counter(task) {
                Ok(counter) => counters.push((task, counter)),
                // The task has ended since the listing: list again.
                Err(err) if err.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => {
                    break;
                }
                Err(err) => return Err(format!("perf_event_open on task {task}: {err}")),
            }
        }
        if counters.len() == tasks.len() && all_tasks(processes)? == tasks {
            return Ok(counters);
        }
    }
    Err(format!(
        "the server's tasks kept changing over {ATTACH_ATTEMPTS} listings"
    ))
}

fn open_counter(task: u32) -> std::io::Result<Counter> {
    let pid = i32::try_from(task).map_err(std::io::Error::other)?;
    let mut counter = Builder::new(Software::CONTEXT_SWITCHES)
        .observe_pid(pid)
        .any_cpu()
        .inherit(true)
        // Context switches happen in the kernel: excluding it (the crate's default) would
        // count none.
        .include_kernel()
        .build()?;
    counter.enable()?;
    Ok(counter)
}

/// Every task of every process, in order.
fn all_tasks(processes: &[u32]) -> Result<Vec<u32>, String> {
    let mut tasks = Vec::new();
    for &pid in processes {
        let listed =
            procfs::tasks(pid).map_err(|err| format!("cannot list /proc/{pid}/task: {err}"))?;
        tasks.extend(listed);
    }
    Ok(tasks)
}
