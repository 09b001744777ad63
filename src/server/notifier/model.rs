//! An exhaustive check of the wake-up protocol of [`Notifier`](super::Notifier).
//!
//! The property (issue 9): no result is left in the done channel while the poll thread
//! sleeps past the moment it needs it. In every interleaving, each result a worker hands
//! back is taken in by one of the poll thread's drains before it sleeps, or wakes it, or is
//! a connection gone idle whose deadline is no earlier than the poll thread's planned
//! wake-up while the poll thread does not want every result.
//!
//! The model restates, one shared-memory access at a time, what `Notifier`'s methods and
//! their callers do (each step below names the line it stands for), and explores every
//! interleaving of the poll thread with one or two workers from the state `Notifier::new`
//! leaves, remembering the states it has explored. The poll thread runs its loop, not just
//! one sleep: it may spin once, it chooses a plan each time round (what it plans depends on
//! what it has learnt, so the model lets it plan anything), and one of its sleeps may end
//! without a worker (readiness, its timeout, a signal). A worker's result may come at any
//! point, before the first plan or after the last.
//!
//! It checks a model, not the compiled code: a change to the protocol has to be made in
//! both. The tests beside `Notifier` hold the code to the decisions the model's workers
//! make. The tests here also break the model in the ways the code could be broken, and
//! check that each breakage strands a result.
//!
//! # Memory
//! Memory is modelled as x86-TSO, the simplest model in which a missing fence shows: each
//! thread's stores wait in its own first-in, first-out buffer and reach memory at any
//! later step; `fence(SeqCst)` empties the buffer, and so does `swap`, a locked
//! instruction; the eventfd is written and polled through the kernel, so it is never
//! buffered. The channel is taken at its documented word and no more, as the notifier's
//! comments promise ("without relying on how the channel happens to synchronise"): a send
//! is an ordinary store that may wait in the sender's buffer, and a drain reads memory
//! without emptying the drainer's buffer. The notifier's seq-cst stores are buffered too,
//! which allows more than Rust does (a seq-cst store stays before a later seq-cst load), so
//! the model errs towards finding faults. It does not model the further reorderings ARM and
//! POWER allow (a load passing a load, stores seen in different orders by different
//! threads); in Rust's memory model the protocol rests on its seq-cst fences and loads, and
//! checking it there would take `loom`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// Model time. The poll thread plans to wake at [`SOON`] or never.
pub type Time = u64;

/// The planned wake-up in a plan that has one.
pub const SOON: Time = 10;

/// `sleeps_until` when the poll thread plans no wake-up: `plan(_, None)` stores `u64::MAX`.
pub const NEVER: Time = u64::MAX;

/// What a worker hands back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A result the poll thread needs now (`work` calls `notifier.notify()`).
    Now,
    /// A connection gone idle until the deadline given (`work` calls
    /// `notifier.notify_idle(due)`).
    Idle(Time),
}

/// Results of every kind: needed now, and idle until before the planned wake-up or until
/// it. (A deadline after it behaves as one at it: the code compares with `>`, the property
/// with `>=`, and the only other planned time is never.)
pub const KINDS: [Kind; 3] = [Kind::Now, Kind::Idle(SOON - 1), Kind::Idle(SOON)];

/// One worker with each kind of result, then two workers with each pair of kinds.
pub fn scenarios() -> Vec<Vec<Kind>> {
    let mut all: Vec<Vec<Kind>> = KINDS.iter().map(|&kind| vec![kind]).collect();
    for (i, &first) in KINDS.iter().enumerate() {
        for &second in &KINDS[i..] {
            all.push(vec![first, second]);
        }
    }
    all
}

/// What the poll thread publishes in `plan_sleep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub wants_all: bool,
    pub sleeps_until: Time,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wants = if self.wants_all {
            "every result"
        } else {
            "what it needs"
        };
        match self.sleeps_until {
            NEVER => write!(f, "plan: wants {wants}, wakes by itself never"),
            at => write!(f, "plan: wants {wants}, wakes by itself at {at}"),
        }
    }
}

/// Every plan the poll thread may make, chosen anew each time round. A plan that wants
/// every result and never wakes by itself is left out: it only differs from the third
/// for a worker that reads `sleeps_until` after an older `wants_all` of false, and that
/// worker then wakes the poll thread, the safe way round. (With it the check explores 60%
/// more states and finds nothing more.) `Notifier::new` starts from that plan all the same.
pub const PLANS: [Plan; 3] = [
    Plan {
        wants_all: false,
        sleeps_until: SOON,
    },
    Plan {
        wants_all: false,
        sleeps_until: NEVER,
    },
    // Shutting down, or holding readiness for a connection still with a worker.
    Plan {
        wants_all: true,
        sleeps_until: SOON,
    },
];

/// The protocol as written, or broken in one way, to show what the check finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AsWritten,
    /// `notify` and `notify_idle` without their fences.
    NoWorkerFence,
    /// `plan` without its closing fence.
    NoPlanFence,
    /// `plan_sleep` drains first and plans afterwards.
    DrainThenPlan,
    /// `collect_done` never calls `rearm`: after the first wake-up no worker wakes it again.
    NoRearm,
    /// Only the `collect_done` in `plan_sleep` calls `rearm`, not the one after a poll.
    RearmInPlanOnly,
    /// `notify_idle` without the `wants_all` test.
    IdleIgnoresWantsAll,
    /// `collect_done` calls `rearm` after draining instead of before. Harmless.
    RearmAfterDrain,
    /// Only the `collect_done` after a poll calls `rearm`, not the one in `plan_sleep`.
    /// Harmless.
    RearmAfterPollOnly,
    /// `plan` stores `awake = false` before the plan instead of after it. Harmless.
    AsleepBeforePlan,
}

/// A poll thread's step, in `PollLoop::run`'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// The top of the loop: spin (poll with a zero timeout, no plan) or `plan_sleep`.
    Loop,
    StoreWantsAll,
    StoreSleepsUntil,
    StoreAsleep,
    Fence,
    Rearm,
    /// Only the poll thread receives, so the `try_recv` loop takes what the channel holds
    /// at its last, empty `try_recv`: one step.
    Drain,
    /// Returns at once when spinning, when `plan_sleep` took results in, or when the
    /// waker's eventfd has an edge; else sleeps.
    Poll,
    StoreAwake,
}

impl Op {
    /// The line of `poll.rs` or `notifier.rs` this step stands for.
    fn code(self) -> &'static str {
        match self {
            Op::Loop => "run: spinning, or plan_sleep",
            Op::StoreWantsAll => "plan: self.wants_all.store(wants_all, SeqCst)",
            Op::StoreSleepsUntil => "plan: self.sleeps_until.store(until, SeqCst)",
            Op::StoreAsleep => "plan: self.awake.store(false, SeqCst)",
            Op::Fence => "plan: fence(SeqCst)",
            Op::Rearm => "collect_done: rearm: self.pending.store(false, SeqCst)",
            Op::Drain => "collect_done: while let Ok(..) = self.done.try_recv()",
            Op::Poll => "run: self.poll.poll(&mut events, timeout)",
            Op::StoreAwake => "run: awake: self.awake.store(true, SeqCst)",
        }
    }
}

/// A worker's step, from `done.send` in `work` to the end of `notify_idle` or `notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerOp {
    Send,
    Fence,
    ReturnIfAwake,
    /// Goes straight to `notify` if the poll thread wants every result.
    NotifyIfWantsAll,
    ReturnUnlessSleepsPast,
    ReturnIfPending,
    Wake,
}

impl WorkerOp {
    /// The line of `pool.rs` or `notifier.rs` this step stands for.
    fn code(self) -> &'static str {
        match self {
            WorkerOp::Send => "work: done.send(Done { token, outcome })",
            WorkerOp::Fence => "fence(SeqCst)",
            WorkerOp::ReturnIfAwake => "if self.awake.load(SeqCst) { return; }",
            WorkerOp::NotifyIfWantsAll => "notify_idle: if self.wants_all.load(SeqCst) { notify }",
            WorkerOp::ReturnUnlessSleepsPast => {
                "notify_idle: if self.sleeps_until.load(SeqCst) > self.nanos(due) { notify }"
            }
            WorkerOp::ReturnIfPending => "notify: if !self.pending.swap(true, SeqCst) { wake }",
            WorkerOp::Wake => "notify: self.waker.wake()",
        }
    }
}

/// The poll thread's steps under `code`; after the last it starts again at the first.
fn poll_program(code: Code) -> Vec<Op> {
    use Op::*;
    let collect = match code {
        Code::NoRearm => vec![Drain],
        Code::RearmAfterDrain => vec![Drain, Rearm],
        _ => vec![Rearm, Drain],
    };
    let (in_plan, after_poll) = match code {
        Code::RearmInPlanOnly => (collect, vec![Drain]),
        Code::RearmAfterPollOnly => (vec![Drain], collect),
        _ => (collect.clone(), collect),
    };
    let plan = match code {
        Code::NoPlanFence => vec![StoreWantsAll, StoreSleepsUntil, StoreAsleep],
        Code::AsleepBeforePlan => vec![StoreAsleep, StoreWantsAll, StoreSleepsUntil, Fence],
        _ => vec![StoreWantsAll, StoreSleepsUntil, StoreAsleep, Fence],
    };
    let plan_sleep = match code {
        Code::DrainThenPlan => [in_plan, plan].concat(),
        _ => [plan, in_plan].concat(),
    };
    [vec![Loop], plan_sleep, vec![Poll, StoreAwake], after_poll].concat()
}

/// A worker's steps under `code` for a result of `kind`, and where `NotifyIfWantsAll`
/// goes (the start of `notify`).
fn worker_program(code: Code, kind: Kind) -> (Vec<WorkerOp>, usize) {
    use WorkerOp::*;
    let fence: &[WorkerOp] = match code {
        Code::NoWorkerFence => &[],
        _ => &[Fence],
    };
    let notify = [fence, &[ReturnIfAwake, ReturnIfPending, Wake]].concat();
    let notify_idle = match code {
        Code::IdleIgnoresWantsAll => [fence, &[ReturnIfAwake, ReturnUnlessSleepsPast]].concat(),
        _ => [
            fence,
            &[ReturnIfAwake, NotifyIfWantsAll, ReturnUnlessSleepsPast],
        ]
        .concat(),
    };
    match kind {
        Kind::Now => ([&[Send], &notify[..]].concat(), 1),
        Kind::Idle(_) => (
            [&[Send], &notify_idle[..], &notify[..]].concat(),
            1 + notify_idle.len(),
        ),
    }
}

/// A store waiting in the poll thread's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Awake(bool),
    Pending(bool),
    WantsAll(bool),
    SleepsUntil(Time),
}

/// Stores the poll thread's buffer holds; a store into a full buffer waits for the oldest
/// to land. Eight is as many as the poll thread makes between two fences (after a poll, a
/// spin and a plan), so only a variant without the fence in `plan` fills it.
const BUFFER: usize = 8;

/// What has reached memory.
#[derive(Debug, Clone, Copy)]
struct Memory {
    awake: bool,
    pending: bool,
    wants_all: bool,
    sleeps_until: Time,
    /// Results in the done channel, one bit per worker.
    channel: u8,
    /// The waker's eventfd has an edge the poll thread's `Poll` has not reported.
    woken: bool,
}

#[derive(Debug, Clone, Copy)]
struct PollThread {
    /// The next step, an index into [`poll_program`].
    pc: u8,
    /// The plan of this time round.
    plan: Plan,
    spinning: bool,
    /// The last drain took results in.
    took: bool,
    /// Results taken in so far, one bit per worker.
    taken: u8,
    spins_left: u8,
    /// How many more sleeps may end without a worker's wake-up. (Readiness that comes
    /// while the poll thread is awake only ends its next sleep at once, which this covers.)
    events_left: u8,
    buffer: [Option<Store>; BUFFER],
}

#[derive(Debug, Clone, Copy)]
struct Worker {
    /// The next step, an index into [`worker_program`]; its length once done.
    pc: u8,
    /// The send waits in this worker's store buffer.
    buffered: bool,
}

/// Workers a scenario may have.
const MAX_WORKERS: usize = 2;

#[derive(Debug, Clone, Copy)]
struct State {
    memory: Memory,
    poll: PollThread,
    workers: [Worker; MAX_WORKERS],
}

/// One step of one thread, as a counterexample shows it.
#[derive(Debug, Clone, Copy)]
enum Step {
    Spin,
    Plan(Plan),
    Poll(Op),
    /// A drain, with the results it took, one bit per worker.
    Drain(u8),
    /// The sleep ends without a worker: readiness, its timeout, a signal.
    Event,
    /// A worker's step, with the value it loaded or swapped out, if any.
    Worker(usize, WorkerOp, Option<bool>),
    /// The oldest store in the poll thread's buffer reaches memory.
    PollStoreLands(Store),
    /// A worker's buffered send reaches the channel.
    SendLands(usize),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Spin => write!(f, "poll:     run: spinning, poll with a zero timeout"),
            Step::Plan(plan) => write!(f, "poll:     run: plan_sleep, {plan}"),
            Step::Poll(op) => write!(f, "poll:     {}", op.code()),
            Step::Drain(taken) => write!(f, "poll:     {} took {taken:#b}", Op::Drain.code()),
            Step::Event => write!(f, "poll:     the sleep ends without a worker"),
            Step::Worker(index, op, None) => write!(f, "worker {index}: {}", op.code()),
            Step::Worker(index, op, Some(read)) => {
                write!(f, "worker {index}: {} (read {read})", op.code())
            }
            Step::PollStoreLands(store) => write!(f, "memory:   the poll thread's {store:?} lands"),
            Step::SendLands(index) => write!(f, "memory:   worker {index}'s send lands"),
        }
    }
}

/// What a check explored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Explored {
    /// Distinct states reached.
    pub states: usize,
    /// Complete interleavings: sequences of steps, buffered stores landing included, from
    /// the first state to one where nothing can move.
    pub interleavings: f64,
}

/// The shortest interleaving that ends with a result stranded while the poll thread sleeps.
pub struct Counterexample {
    steps: Vec<Step>,
    end: String,
}

impl fmt::Debug for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "  {step}")?;
        }
        write!(f, "  and then {}", self.end)
    }
}

/// Explores every interleaving of the poll thread with one worker for each of `kinds`
/// under `code`.
pub fn check(code: Code, kinds: &[Kind]) -> Result<Explored, Counterexample> {
    let model = Model::new(code, kinds);
    let mut explorer = Explorer {
        model: &model,
        seen: HashMap::default(),
    };
    match explorer.explore(model.start()) {
        Some(interleavings) => Ok(Explored {
            states: explorer.seen.len(),
            interleavings,
        }),
        None => Err(model.shortest_counterexample()),
    }
}

/// Whether the model's worker, handing back a result of `kind` while nothing else moves,
/// wakes a poll thread that is `awake` or has published `plan`, with a wake-up already
/// `pending` or not. The tests beside `Notifier` ask the code the same questions.
pub fn worker_wakes(kind: Kind, plan: Plan, awake: bool, pending: bool) -> bool {
    let model = Model::new(Code::AsWritten, &[kind]);
    let mut state = model.start();
    state.memory = Memory {
        awake,
        pending,
        wants_all: plan.wants_all,
        sleeps_until: plan.sleeps_until,
        channel: 0,
        woken: false,
    };
    let mut next = Vec::new();
    loop {
        next.clear();
        model.worker_step(&state, 0, &mut next);
        match next.pop() {
            Some((_, after)) => state = after,
            None => return state.memory.woken,
        }
    }
}

/// The two times a plan can hold, as a bit.
fn time_bit(at: Time) -> u64 {
    debug_assert!(at == SOON || at == NEVER);
    u64::from(at == NEVER)
}

impl State {
    /// The state in one word, for remembering millions of them.
    fn key(&self) -> u64 {
        let mut key = 0;
        let mut put = |value: u64, bits: u32| {
            debug_assert!(value < 1 << bits);
            key = key << bits | value;
        };
        let m = &self.memory;
        for flag in [m.awake, m.pending, m.wants_all, m.woken] {
            put(u64::from(flag), 1);
        }
        put(time_bit(m.sleeps_until), 1);
        put(u64::from(m.channel), 2);
        let p = &self.poll;
        put(u64::from(p.pc), 4);
        put(u64::from(p.plan.wants_all), 1);
        put(time_bit(p.plan.sleeps_until), 1);
        for flag in [p.spinning, p.took] {
            put(u64::from(flag), 1);
        }
        put(u64::from(p.taken), 2);
        put(u64::from(p.spins_left), 1);
        put(u64::from(p.events_left), 1);
        for store in p.buffer {
            let code = match store {
                None => 0,
                Some(Store::Awake(value)) => 2 | u64::from(value),
                Some(Store::Pending(value)) => 4 | u64::from(value),
                Some(Store::WantsAll(value)) => 6 | u64::from(value),
                Some(Store::SleepsUntil(at)) => 8 | time_bit(at),
            };
            put(code, 4);
        }
        for worker in self.workers {
            put(u64::from(worker.pc), 4);
            put(u64::from(worker.buffered), 1);
        }
        key
    }
}

/// A quick hash for one-word keys: SplitMix64's finaliser, which spreads every bit of the
/// key over the whole hash.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("keys are single words");
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Seen<V> = HashMap<u64, V, BuildHasherDefault<Mix>>;

/// The programs of one scenario, and what its steps do.
struct Model {
    kinds: Vec<Kind>,
    poll: Vec<Op>,
    workers: Vec<(Vec<WorkerOp>, usize)>,
}

impl Model {
    fn new(code: Code, kinds: &[Kind]) -> Model {
        assert!(!kinds.is_empty() && kinds.len() <= MAX_WORKERS);
        Model {
            kinds: kinds.to_vec(),
            poll: poll_program(code),
            workers: kinds
                .iter()
                .map(|&kind| worker_program(code, kind))
                .collect(),
        }
    }

    /// As `Notifier::new` leaves it, the poll thread at the top of its loop, and every
    /// worker about to send.
    fn start(&self) -> State {
        State {
            memory: Memory {
                awake: true,
                pending: false,
                wants_all: true,
                sleeps_until: NEVER,
                channel: 0,
                woken: false,
            },
            poll: PollThread {
                pc: 0,
                plan: PLANS[0],
                spinning: false,
                took: false,
                taken: 0,
                spins_left: 1,
                events_left: 1,
                buffer: [None; BUFFER],
            },
            workers: [Worker {
                pc: 0,
                buffered: false,
            }; MAX_WORKERS],
        }
    }

    /// If the poll thread sleeps with a result it needs left behind, which and why.
    ///
    /// A worker that has sent its result and returned from the notifier will not wake the
    /// poll thread; one still in the notifier may; one that has not sent yet may never send
    /// (its client may never write), so the others' results must not wait for it.
    fn stranded(&self, state: &State) -> Option<String> {
        let poll = &state.poll;
        let asleep = self.poll[usize::from(poll.pc)] == Op::Poll
            && !poll.spinning
            && !poll.took
            && !state.memory.woken;
        if !asleep {
            return None;
        }
        let mut stranded = Vec::new();
        for (index, &kind) in self.kinds.iter().enumerate() {
            let pc = usize::from(state.workers[index].pc);
            let done = pc == self.workers[index].0.len();
            if pc != 0 && !done {
                return None;
            }
            let may_wait = match kind {
                Kind::Now => false,
                Kind::Idle(due) => !poll.plan.wants_all && due >= poll.plan.sleeps_until,
            };
            if done && poll.taken & 1 << index == 0 && !may_wait {
                stranded.push(format!("worker {index}'s {kind:?}"));
            }
        }
        if stranded.is_empty() {
            return None;
        }
        Some(format!(
            "the poll thread sleeps ({}), leaving {} in the channel",
            poll.plan,
            stranded.join(" and ")
        ))
    }

    fn successors(&self, state: &State) -> Vec<(Step, State)> {
        let mut next = Vec::new();
        self.poll_steps(state, &mut next);
        for index in 0..self.kinds.len() {
            self.worker_step(state, index, &mut next);
        }
        if let Some(store) = state.poll.buffer[0] {
            let mut after = *state;
            after.poll.land_oldest(&mut after.memory);
            next.push((Step::PollStoreLands(store), after));
        }
        for index in 0..self.kinds.len() {
            if state.workers[index].buffered {
                let mut after = *state;
                after.workers[index].land_send(index, &mut after.memory);
                next.push((Step::SendLands(index), after));
            }
        }
        next
    }

    fn poll_steps(&self, state: &State, next: &mut Vec<(Step, State)>) {
        let op = self.poll[usize::from(state.poll.pc)];
        let mut after = *state;
        let (poll, memory) = (&mut after.poll, &mut after.memory);
        poll.pc = ((usize::from(poll.pc) + 1) % self.poll.len()) as u8;
        let store = match op {
            Op::Loop => {
                poll.took = false;
                poll.spinning = false;
                if poll.spins_left > 0 {
                    let mut spin = after;
                    spin.poll.spins_left -= 1;
                    spin.poll.spinning = true;
                    let at = self.poll.iter().position(|&op| op == Op::Poll);
                    spin.poll.pc = at.expect("the loop polls") as u8;
                    next.push((Step::Spin, spin));
                }
                for plan in PLANS {
                    let mut planned = after;
                    planned.poll.plan = plan;
                    next.push((Step::Plan(plan), planned));
                }
                return;
            }
            Op::StoreWantsAll => Store::WantsAll(poll.plan.wants_all),
            Op::StoreSleepsUntil => Store::SleepsUntil(poll.plan.sleeps_until),
            Op::StoreAsleep => Store::Awake(false),
            Op::StoreAwake => Store::Awake(true),
            Op::Rearm => Store::Pending(false),
            Op::Fence => {
                while poll.buffer[0].is_some() {
                    poll.land_oldest(memory);
                }
                next.push((Step::Poll(op), after));
                return;
            }
            Op::Drain => {
                let taken = memory.channel;
                poll.took = taken != 0;
                poll.taken |= taken;
                memory.channel = 0;
                next.push((Step::Drain(taken), after));
                return;
            }
            Op::Poll => {
                if poll.spinning || poll.took || memory.woken {
                    memory.woken = false;
                    next.push((Step::Poll(op), after));
                } else if poll.events_left > 0 {
                    poll.events_left -= 1;
                    next.push((Step::Event, after));
                }
                // Otherwise asleep until a worker wakes it.
                return;
            }
        };
        if let Some(slot) = poll.buffer.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(store);
            next.push((Step::Poll(op), after));
        }
    }

    fn worker_step(&self, state: &State, index: usize, next: &mut Vec<(Step, State)>) {
        let (program, notify) = &self.workers[index];
        let Some(&op) = program.get(usize::from(state.workers[index].pc)) else {
            return;
        };
        let done = program.len() as u8;
        let mut after = *state;
        let (worker, memory) = (&mut after.workers[index], &mut after.memory);
        worker.pc += 1;
        let read = match op {
            WorkerOp::Send => {
                worker.buffered = true;
                None
            }
            WorkerOp::Fence => {
                worker.land_send(index, memory);
                None
            }
            WorkerOp::ReturnIfAwake => {
                if memory.awake {
                    worker.pc = done;
                }
                Some(memory.awake)
            }
            WorkerOp::NotifyIfWantsAll => {
                if memory.wants_all {
                    worker.pc = *notify as u8;
                }
                Some(memory.wants_all)
            }
            WorkerOp::ReturnUnlessSleepsPast => {
                let Kind::Idle(due) = self.kinds[index] else {
                    unreachable!("only notify_idle compares deadlines");
                };
                let past = memory.sleeps_until > due;
                if !past {
                    worker.pc = done;
                }
                Some(past)
            }
            WorkerOp::ReturnIfPending => {
                worker.land_send(index, memory);
                let pending = std::mem::replace(&mut memory.pending, true);
                if pending {
                    worker.pc = done;
                }
                Some(pending)
            }
            WorkerOp::Wake => {
                memory.woken = true;
                None
            }
        };
        next.push((Step::Worker(index, op, read), after));
    }

    /// A breadth-first search for the fewest steps that strand a result.
    fn shortest_counterexample(&self) -> Counterexample {
        let start = self.start();
        let mut came_from: Seen<Option<(u64, Step)>> = HashMap::default();
        came_from.insert(start.key(), None);
        let mut queue = VecDeque::from([start]);
        while let Some(state) = queue.pop_front() {
            if let Some(end) = self.stranded(&state) {
                let mut steps = Vec::new();
                let mut key = state.key();
                while let Some(&Some((before, step))) = came_from.get(&key) {
                    steps.push(step);
                    key = before;
                }
                steps.reverse();
                return Counterexample { steps, end };
            }
            for (step, after) in self.successors(&state) {
                if let Entry::Vacant(entry) = came_from.entry(after.key()) {
                    entry.insert(Some((state.key(), step)));
                    queue.push_back(after);
                }
            }
        }
        unreachable!("the depth-first search found a stranded result");
    }
}

impl PollThread {
    fn land_oldest(&mut self, memory: &mut Memory) {
        let Some(store) = self.buffer[0] else {
            return;
        };
        self.buffer.rotate_left(1);
        self.buffer[BUFFER - 1] = None;
        match store {
            Store::Awake(value) => memory.awake = value,
            Store::Pending(value) => memory.pending = value,
            Store::WantsAll(value) => memory.wants_all = value,
            Store::SleepsUntil(value) => memory.sleeps_until = value,
        }
    }
}

impl Worker {
    fn land_send(&mut self, index: usize, memory: &mut Memory) {
        if self.buffered {
            self.buffered = false;
            memory.channel |= 1 << index;
        }
    }
}

/// The depth-first search, counting interleavings.
struct Explorer<'a> {
    model: &'a Model,
    /// Interleavings from each state explored, by [`State::key`]; NaN while its
    /// successors are being explored.
    seen: Seen<f64>,
}

impl Explorer<'_> {
    /// The interleavings from `state`, or `None` if one of them strands a result.
    fn explore(&mut self, state: State) -> Option<f64> {
        let key = state.key();
        if let Some(&count) = self.seen.get(&key) {
            assert!(!count.is_nan(), "the model loops");
            return Some(count);
        }
        if self.model.stranded(&state).is_some() {
            return None;
        }
        self.seen.insert(key, f64::NAN);
        let next = self.model.successors(&state);
        let mut count = if next.is_empty() { 1.0 } else { 0.0 };
        for (_, after) in next {
            count += self.explore(after)?;
        }
        self.seen.insert(key, count);
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Checks every scenario under `code`, on as many threads as there are CPUs; returns
    /// the totals, or the first scenario (in [`scenarios`] order) that strands a result.
    fn check_all(code: Code) -> Result<Explored, (Vec<Kind>, Counterexample)> {
        let queue = Mutex::new(scenarios().into_iter().enumerate());
        let results = Mutex::new(Vec::new());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let Some((order, kinds)) = queue.lock().unwrap().next() else {
                            break;
                        };
                        let result = check(code, &kinds);
                        results.lock().unwrap().push((order, kinds, result));
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|(order, ..)| *order);
        let mut total = Explored::default();
        for (_, kinds, result) in results {
            let explored = result.map_err(|found| (kinds, found))?;
            total.states += explored.states;
            total.interleavings += explored.interleavings;
        }
        Ok(total)
    }

    #[test]
    fn no_result_is_stranded_while_the_poll_thread_sleeps() {
        match check_all(Code::AsWritten) {
            Ok(explored) => eprintln!(
                "notifier model: {} scenarios, {} states, {:.1e} interleavings",
                scenarios().len(),
                explored.states,
                explored.interleavings
            ),
            Err((kinds, found)) => panic!("results {kinds:?}:\n{found:?}"),
        }
    }

    /// The check can fail: each of these breakages strands a result in some interleaving.
    #[test]
    fn each_deliberate_breakage_strands_a_result() {
        for code in [
            Code::NoWorkerFence,
            Code::NoPlanFence,
            Code::DrainThenPlan,
            Code::NoRearm,
            Code::RearmInPlanOnly,
            Code::IdleIgnoresWantsAll,
        ] {
            let found = scenarios()
                .into_iter()
                .find_map(|kinds| check(code, &kinds).err().map(|found| (kinds, found)));
            match found {
                Some((kinds, found)) => eprintln!("{code:?} strands, with {kinds:?}:\n{found:?}"),
                None => panic!("{code:?} strands no result"),
            }
        }
    }

    /// Changes the check shows to be harmless; slow in a debug build, so run on demand
    /// (`cargo test --release --lib notifier -- --ignored`).
    #[test]
    #[ignore = "slow in a debug build; run with cargo test --release --lib notifier -- --ignored"]
    fn harmless_changes_strand_nothing() {
        for code in [
            Code::RearmAfterDrain,
            Code::RearmAfterPollOnly,
            Code::AsleepBeforePlan,
        ] {
            if let Err((kinds, found)) = check_all(code) {
                panic!("{code:?} strands, with {kinds:?}:\n{found:?}");
            }
        }
    }

    #[test]
    fn the_programs_are_the_code_as_written() {
        use Op::*;
        use WorkerOp::*;
        assert_eq!(
            poll_program(Code::AsWritten),
            [
                Loop,
                StoreWantsAll,
                StoreSleepsUntil,
                StoreAsleep,
                Op::Fence,
                Rearm,
                Drain,
                Poll,
                StoreAwake,
                Rearm,
                Drain
            ]
        );
        let notify = [Send, WorkerOp::Fence, ReturnIfAwake, ReturnIfPending, Wake];
        assert_eq!(
            worker_program(Code::AsWritten, Kind::Now),
            (notify.to_vec(), 1)
        );
        let idle = [
            Send,
            WorkerOp::Fence,
            ReturnIfAwake,
            NotifyIfWantsAll,
            ReturnUnlessSleepsPast,
            WorkerOp::Fence,
            ReturnIfAwake,
            ReturnIfPending,
            Wake,
        ];
        assert_eq!(
            worker_program(Code::AsWritten, Kind::Idle(SOON)),
            (idle.to_vec(), 5)
        );
    }
}
