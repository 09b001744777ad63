//! How workers wake the poll thread, and when they need not.
//!
//! The poll thread sleeps in `epoll_wait`; a worker that hands a connection back must wake
//! it through the `mio::Waker` (an eventfd) when the poll thread needs the connection before
//! it would wake by itself, and should not wake it otherwise, since a wake-up costs both
//! threads a system call. The protocol that decides this lives here, apart from the worker
//! loop and the poll loop that call it, so that it can be read and checked on its own.
//!
//! It is checked by an exhaustive model (`notifier/model.rs`): every interleaving of the
//! poll thread's loop with one or two workers handing back each kind of result, on a memory
//! where stores may wait in per-thread buffers, never leaves a result behind while the poll
//! thread sleeps past the moment it needs it; and each of six ways of breaking the
//! protocol does (dropping either fence, draining before planning, never re-arming or
//! re-arming only in `plan_sleep`, ignoring `wants_all`). The model checks a restatement
//! of this code, step by step; the tests below hold the code's decisions to the model's.
//! Both run under `cargo test` (alone: `cargo test --lib notifier`).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::time::Instant;

use mio::Waker;

#[cfg(test)]
mod model;

/// How a worker wakes the poll thread: in the server, the `mio::Waker` registered with the
/// poll thread's `Poll`; in tests, whatever counts the wake-ups.
pub trait Wake {
    /// Wakes the poll thread; an error means it is gone.
    fn wake(&self) -> io::Result<()>;
}

impl Wake for Waker {
    fn wake(&self) -> io::Result<()> {
        Waker::wake(self)
    }
}

/// How workers wake the poll thread, and when they need not.
///
/// A result that needs the poll thread soon (a response waiting to be written, a
/// connection to close, one the poll thread already has readiness for) always wakes it,
/// at most once per batch: a worker wakes it only if no wake-up is pending. The poll
/// thread re-arms whenever a poll returns, before it takes results in, and the fence in
/// `plan` publishes that before it sleeps again. So a worker that finds a wake-up pending
/// either found it before that fence, having sent before it, and the drain after the
/// fence takes its result in; or found one that no poll has consumed yet, which ends the
/// next sleep at once. (The re-arm in `plan_sleep`'s own drain is not needed for this:
/// the model leaves no result behind without it.) A connection that merely goes idle does
/// not: it needs the poll thread only at its idle deadline, or when its next request
/// arrives, which wakes the poll thread anyway. So it wakes the poll thread only if the
/// poll thread plans to sleep past that deadline, or has asked for every result.
///
/// Each side writes what it knows before it reads what the other wrote (the worker sends,
/// then reads the plan; the poll thread stores the plan, then drains the channel), all
/// sequentially consistent, so an idle result is either seen by that drain or wakes the
/// poll thread.
///
/// While the poll thread is awake (between returning from a poll and planning its next
/// sleep) no result wakes it: it takes every result in before it sleeps. That covers the
/// time it spends spinning (see [`super::spin`]), when waking it would only cost the
/// workers a system call.
#[derive(Debug)]
pub struct Notifier<W: Wake = Waker> {
    waker: W,
    /// The poll thread has not yet planned its next sleep.
    awake: AtomicBool,
    pending: AtomicBool,
    /// The poll thread wants every result at once (it is shutting down, or holds readiness
    /// for a connection still with a worker).
    wants_all: AtomicBool,
    /// When the poll thread plans to wake on its own, in nanoseconds after `epoch`.
    sleeps_until: AtomicU64,
    epoch: Instant,
}

impl<W: Wake> Notifier<W> {
    /// Wraps the poll thread's one waker.
    pub fn new(waker: W) -> Notifier<W> {
        Notifier {
            waker,
            awake: AtomicBool::new(true),
            pending: AtomicBool::new(false),
            wants_all: AtomicBool::new(true),
            sleeps_until: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }

    /// Called by a worker after sending a result the poll thread needs now.
    pub fn notify(&self) {
        // Orders the send before the loads below without relying on how the channel
        // happens to synchronise.
        fence(Ordering::SeqCst);
        if self.awake.load(Ordering::SeqCst) {
            return;
        }
        if !self.pending.swap(true, Ordering::SeqCst) {
            // A failed wake means the poll thread is gone; the result is moot.
            let _ = self.waker.wake();
        }
    }

    /// Called by a worker after sending a connection that waits idle until `due`.
    pub fn notify_idle(&self, due: Instant) {
        // As in `notify`.
        fence(Ordering::SeqCst);
        if self.awake.load(Ordering::SeqCst) {
            return;
        }
        if self.wants_all.load(Ordering::SeqCst)
            || self.sleeps_until.load(Ordering::SeqCst) > self.nanos(due)
        {
            self.notify();
        }
    }

    /// Called by the poll thread as soon as a poll returns: until it plans its next sleep
    /// it takes results in without being woken.
    pub fn awake(&self) {
        self.awake.store(true, Ordering::SeqCst);
    }

    /// Called by the poll thread before it drains the done channel.
    pub fn rearm(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    /// Called by the poll thread before its last drain ahead of sleeping: whether it wants
    /// every result, and when it will wake by itself (`None`: not before an event).
    pub fn plan(&self, wants_all: bool, wake_at: Option<Instant>) {
        self.wants_all.store(wants_all, Ordering::SeqCst);
        let until = wake_at.map_or(u64::MAX, |at| self.nanos(at));
        self.sleeps_until.store(until, Ordering::SeqCst);
        self.awake.store(false, Ordering::SeqCst);
        // Orders the stores above before the drain that follows.
        fence(Ordering::SeqCst);
    }

    fn nanos(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::model::{self, Kind, NEVER, Plan, SOON};
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    /// Counts wake-ups instead of writing to an eventfd.
    #[derive(Debug, Default)]
    struct Count(Cell<usize>);

    impl Wake for Count {
        fn wake(&self) -> io::Result<()> {
            self.0.set(self.0.get() + 1);
            Ok(())
        }
    }

    fn wakes(notifier: &Notifier<Count>) -> usize {
        notifier.waker.0.get()
    }

    #[test]
    fn nothing_wakes_a_poll_thread_that_has_not_planned_its_sleep() {
        let notifier = Notifier::new(Count::default());
        notifier.notify();
        notifier.notify_idle(Instant::now());
        // It slept, and a poll returned.
        notifier.plan(false, None);
        notifier.awake();
        notifier.rearm();
        notifier.notify();
        notifier.notify_idle(Instant::now());
        assert_eq!(wakes(&notifier), 0);
    }

    #[test]
    fn one_wake_up_per_sleep_however_many_results() {
        let notifier = Notifier::new(Count::default());
        notifier.plan(false, None);
        notifier.rearm();
        notifier.notify();
        notifier.notify();
        notifier.notify_idle(Instant::now());
        assert_eq!(wakes(&notifier), 1);
        // The wake-up ends the poll; the poll thread takes the results in and sleeps again.
        notifier.awake();
        notifier.rearm();
        notifier.plan(false, None);
        notifier.rearm();
        notifier.notify();
        assert_eq!(wakes(&notifier), 2);
    }

    /// The code decides as the model's workers do, for every kind of result, every plan and
    /// every state of the flags, one worker at a time.
    #[test]
    fn workers_decide_as_in_the_model() {
        let plans = [
            (false, Some(SOON)),
            (false, None),
            (true, Some(SOON)),
            (true, None),
        ];
        let kinds = [
            Kind::Now,
            Kind::Idle(SOON - 1),
            Kind::Idle(SOON),
            Kind::Idle(SOON + 1),
        ];
        for (wants_all, wake_at) in plans {
            for kind in kinds {
                for awake in [false, true] {
                    for pending in [false, true] {
                        let notifier = Notifier::new(Count::default());
                        // Model time is in milliseconds from here.
                        let at = |time| notifier.epoch + Duration::from_millis(1000 + time);
                        notifier.plan(wants_all, wake_at.map(at));
                        notifier.rearm();
                        if pending {
                            notifier.notify();
                        }
                        if awake {
                            notifier.awake();
                        }
                        let before = wakes(&notifier);
                        match kind {
                            Kind::Now => notifier.notify(),
                            Kind::Idle(due) => notifier.notify_idle(at(due)),
                        }
                        let woke = wakes(&notifier) > before;
                        let plan = Plan {
                            wants_all,
                            sleeps_until: wake_at.unwrap_or(NEVER),
                        };
                        assert_eq!(
                            woke,
                            model::worker_wakes(kind, plan, awake, pending),
                            "{kind:?} with {plan:?}, awake {awake}, pending {pending}"
                        );
                    }
                }
            }
        }
    }
}
