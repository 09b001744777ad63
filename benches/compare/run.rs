//! One bench run: every scenario on every server in turn, each server fresh for each
//! scenario, and what each run measured.

use std::num::NonZeroUsize;
use std::ops::Range;
use std::time::Instant;

use testkit::client::Client;

use crate::background::{self, IO_TIMEOUT};
use crate::docroot::{DocRoot, File};
use crate::endpoint::Endpoint;
use crate::load::{self, Plan, Tally};
use crate::measure::Sampler;
use crate::measure::usage::{Meter, Usage};
use crate::options::{Mode, Options, Third, Timing, target_dir};
use crate::report::meta::RunStart;
use crate::report::{Report, RunResult, ScenarioReport, ServerInfo};
use crate::scenarios::{self, Scenario};
use crate::servers::{Model, Running, Target, nginx};

/// What every run of the bench shares.
pub struct Bench {
    pub mode: Mode,
    timing: Timing,
    third: Option<Third>,
    /// The `--url` server's name: its `Server` field, if it sends one.
    third_name: String,
    root: DocRoot,
    /// The pool's worker threads and nginx's worker processes: one per core.
    workers: NonZeroUsize,
    pub scenarios: Vec<Scenario>,
    start: RunStart,
}

impl Bench {
    pub fn new(options: &Options, descriptors: u64) -> Bench {
        let start = RunStart::now(options.mode, descriptors);
        let root = DocRoot::generate(&target_dir().join("bench/root"));
        let scenarios = scenarios::all(options.mode)
            .into_iter()
            .filter(|s| options.only.is_empty() || options.only.iter().any(|o| s.name.contains(o)))
            .collect();
        let third_name = match &options.third {
            Some(Third::Url(endpoint)) => server_name(endpoint),
            _ => String::new(),
        };
        Bench {
            mode: options.mode,
            timing: options.mode.timing(),
            third: options.third.clone(),
            third_name,
            root,
            workers: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            scenarios,
            start,
        }
    }

    fn targets(&self) -> Vec<Target<'_>> {
        let mut targets = vec![Target::Model(Model::Pool), Target::Model(Model::Threads)];
        match &self.third {
            None => {}
            Some(Third::Url(endpoint)) => {
                targets.push(Target::External(endpoint, &self.third_name))
            }
            Some(Third::Nginx(installed)) => targets.push(Target::Nginx(installed)),
        }
        targets
    }

    /// The progress line that opens the run.
    pub fn announce(&self) {
        let timing = &self.timing;
        eprintln!(
            "[bench] {} run{}: {} scenarios, {:.1} s warm-up + {:.1} s measured per run, {} \
             pool workers, {} descriptors",
            self.mode.name(),
            self.mode
                .note()
                .map_or(String::new(), |note| format!(" ({note})")),
            self.scenarios.len(),
            timing.warmup.as_secs_f64(),
            timing.measure.as_secs_f64(),
            self.workers,
            self.start.descriptor_limit,
        );
        match &self.third {
            None => {}
            Some(Third::Url(endpoint)) => eprintln!(
                "[bench] also measuring {} at {}: serve {} with it",
                self.third_name,
                endpoint.host,
                self.root.dir.display()
            ),
            Some(Third::Nginx(installed)) => eprintln!(
                "[bench] also measuring {}: {} ({}), {} worker processes running as {}, fresh \
                 per scenario",
                nginx::LABEL,
                installed.version,
                installed.path.display(),
                self.workers,
                nginx::workers_user_description(&self.root.dir)
            ),
        }
    }

    /// Every scenario on every server.
    pub fn run(self) -> Report {
        let targets = self.targets();
        let mut servers: Vec<ServerInfo> = targets
            .iter()
            .map(|target| target.describe(&self.root, self.workers))
            .collect();
        let scenarios = self
            .scenarios
            .iter()
            .map(|scenario| {
                let results = targets
                    .iter()
                    .zip(servers.iter_mut())
                    .map(|(&target, server)| self.run_on(target, scenario, server))
                    .collect();
                ScenarioReport::new(scenario, results)
            })
            .collect();
        Report::new(self.start.finish(self.timing), servers, scenarios)
    }

    /// One scenario against one server.
    fn run_on(
        &self,
        target: Target<'_>,
        scenario: &Scenario,
        server: &mut ServerInfo,
    ) -> RunResult {
        let window = self.timing.measure;
        let result = match Running::start(target, &self.root, self.workers) {
            None => {
                let Target::External(endpoint, _) = target else {
                    unreachable!("the bench starts every server but --url's");
                };
                let (tally, (), open) = self.drive(scenario, endpoint, |_| ());
                RunResult::new(target.key(), &tally, window, None, None, open)
            }
            Some(Err(why)) => panic!("cannot start {}: {why}", server.label),
            Some(Ok(running)) => {
                if server.config.is_none() {
                    server.config = running.config().map(str::to_string);
                }
                let pids = running.pids();
                // Attached while the server is still idle: see `Meter::attach`.
                let mut meter = Meter::attach(&pids);
                let sampler = Sampler::start(pids);
                let (tally, usage, open) = self.drive(scenario, &running.endpoint(), |window| {
                    meter.measure(window)
                });
                let peak = sampler.finish();
                if let Err(err) = running.stop() {
                    eprintln!("[bench] {}: {err}", server.label);
                }
                let usage: Option<Usage> = usage
                    .map_err(|err| {
                        eprintln!("[bench] {}: no CPU time or switches: {err}", server.label)
                    })
                    .ok();
                RunResult::new(target.key(), &tally, window, Some(peak), usage, open)
            }
        };
        eprintln!(
            "[bench] {} {}: {}",
            scenario.name,
            server.label,
            result.summary()
        );
        result
    }

    /// Sets up the scenario's background connections, runs the measured load while
    /// `during` runs on this thread with the measured window, and closes everything it
    /// opened. Also returns how many background connections were open.
    fn drive<T>(
        &self,
        scenario: &Scenario,
        endpoint: &Endpoint,
        during: impl FnOnce(Range<Instant>) -> T,
    ) -> (Tally, T, Option<usize>) {
        let background = background::Running::start(scenario.background, endpoint, &self.root);
        let open = background.open();
        let request = endpoint.request(scenario.file, scenario.new_connections);
        let plan = Plan::new(
            endpoint.addr,
            request,
            self.root.expected(scenario.file),
            scenario.new_connections,
            self.timing,
        );
        let window = plan.window();
        let (tally, seen) = load::run(&plan, scenario.connections, || during(window));
        background.finish();
        (tally, seen, open)
    }
}

/// What the `--url` server calls itself in its `Server` field, else where it is.
fn server_name(endpoint: &Endpoint) -> String {
    let asked = Client::connect(endpoint.addr, IO_TIMEOUT)
        .ok()
        .and_then(|mut client| {
            client.send(&endpoint.request(File::Small, true)).ok()?;
            let response = client.response().ok()?;
            response.header("server").map(str::to_string)
        });
    asked.unwrap_or_else(|| format!("server at {}", endpoint.host))
}
