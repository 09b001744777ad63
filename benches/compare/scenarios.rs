//! The scenarios: sweeps that show how each server's cost grows with what it holds, and the
//! single points that stress one thing each.
//!
//! - `small xN`: `GET /small.txt` (23 bytes) over N keep-alive connections, N = 1, 2, 4 …
//!   1,024 (a quick run takes 1, 8, 32, 128, 512);
//! - `idleM + small x32`: M = 1,000, 5,000 and 10,000 idle keep-alive connections, each
//!   after one request, held open beside 32 busy ones (`small x32` is the point M = 0; a
//!   quick run takes 1,000 only);
//! - `page x128`: a 41,000-byte HTML page; `big x16`: a 2 MiB file;
//! - `new-conn x32`: every request on a new connection (`Connection: close`);
//! - `slow64 + small x32`: 64 connections reading the 2 MiB file very slowly meanwhile.

use crate::docroot::File;
use crate::options::Mode;

/// Keep-alive connections of the `small xN` sweep.
const SMALL_SWEEP: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const QUICK_SMALL_SWEEP: [usize; 5] = [1, 8, 32, 128, 512];
/// Idle connections of the idle sweep, beside [`IDLE_SWEEP_ACTIVE`] busy ones: enough to
/// show what an idle connection costs each model, within the descriptors a process has.
const IDLE_SWEEP: [usize; 3] = [1_000, 5_000, 10_000];
const QUICK_IDLE_SWEEP: [usize; 1] = [1_000];
/// Busy connections beside the idle and the slow ones.
pub const IDLE_SWEEP_ACTIVE: usize = 32;
/// Connections reading `big.bin` slowly in the `slow64` scenario.
const SLOW_READERS: usize = 64;

/// Connections that load the server without being measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    None,
    /// Keep-alive connections that made one request and then wait.
    Idle(usize),
    /// Connections reading `big.bin` slowly.
    SlowReaders(usize),
}

/// One scenario: a row of each table.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub file: File,
    /// Measured connections (the background ones are not counted).
    pub connections: usize,
    /// Every request on a new connection, with `Connection: close`.
    pub new_connections: bool,
    pub background: Background,
}

/// Where a scenario stands on the chart's sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// `small xN`: a point at N keep-alive connections.
    Connections(usize),
    /// A point at N idle connections beside [`IDLE_SWEEP_ACTIVE`] busy ones (`small x32`
    /// is the point at 0).
    Idle(usize),
}

impl Scenario {
    fn keep_alive(file: File, connections: usize) -> Scenario {
        let name = match file {
            File::Small => "small",
            File::Page => "page",
            File::Big => "big",
        };
        Scenario {
            name: format!("{name} x{connections}"),
            file,
            connections,
            new_connections: false,
            background: Background::None,
        }
    }

    fn beside(mut self, background: Background) -> Scenario {
        let what = match background {
            Background::None => return self,
            Background::Idle(count) => format!("idle{count}"),
            Background::SlowReaders(count) => format!("slow{count}"),
        };
        self.name = format!("{what} + {}", self.name);
        self.background = background;
        self
    }

    /// The sweeps this scenario is a point of: `small x32` is on both.
    pub fn sweeps(&self) -> Vec<Sweep> {
        if self.file != File::Small || self.new_connections {
            return Vec::new();
        }
        let mut sweeps = Vec::new();
        if self.background == Background::None {
            sweeps.push(Sweep::Connections(self.connections));
        }
        if self.connections == IDLE_SWEEP_ACTIVE {
            match self.background {
                Background::None => sweeps.push(Sweep::Idle(0)),
                Background::Idle(count) => sweeps.push(Sweep::Idle(count)),
                Background::SlowReaders(_) => {}
            }
        }
        sweeps
    }
}

/// Every scenario of a run in `mode`, in the tables' order.
pub fn all(mode: Mode) -> Vec<Scenario> {
    let (small, idle): (&[usize], &[usize]) = match mode {
        Mode::Full => (&SMALL_SWEEP, &IDLE_SWEEP),
        Mode::Quick => (&QUICK_SMALL_SWEEP, &QUICK_IDLE_SWEEP),
    };
    let mut scenarios: Vec<Scenario> = small
        .iter()
        .map(|&n| Scenario::keep_alive(File::Small, n))
        .collect();
    scenarios.extend(idle.iter().map(|&count| {
        Scenario::keep_alive(File::Small, IDLE_SWEEP_ACTIVE).beside(Background::Idle(count))
    }));
    scenarios.extend([
        Scenario::keep_alive(File::Page, 128),
        Scenario::keep_alive(File::Big, 16),
        Scenario {
            name: "new-conn x32".to_string(),
            new_connections: true,
            ..Scenario::keep_alive(File::Small, 32)
        },
        Scenario::keep_alive(File::Small, IDLE_SWEEP_ACTIVE)
            .beside(Background::SlowReaders(SLOW_READERS)),
    ]);
    scenarios
}
