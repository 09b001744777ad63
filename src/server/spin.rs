//! Looking for work a little longer before sleeping.
//!
//! A pool thread that runs out of work would sleep, and the next request would have to
//! wake it. Waking a thread costs little when its CPU is busy with something else, but a
//! CPU with nothing to run halts, and waking a halted CPU is dear: on the 2-core virtual
//! machine this server is measured on, two threads passing a futex back and forth cost
//! 20 µs of CPU per round trip across two CPUs and 1.6 µs on one. Under load the next
//! request is usually a few microseconds away, so the poll thread and the workers first
//! look again for a short while, yielding the CPU to any other thread that wants it
//! between looks, and only then sleep.
//!
//! The window adapts as `haltpoll` does for a virtual CPU: a sleep that ended soon after
//! it began means a slightly longer look would have found the work, so the window grows;
//! a sleep longer than the largest window means the server is idle, so it shrinks. An
//! idle server therefore soon stops spinning altogether, and a lightly loaded one spins
//! only while requests come closer together than [`MAX_SPIN`].

use std::time::{Duration, Instant};

/// Longest a thread looks for work before it sleeps: longer than the gap between a
/// response and a busy client's next request on loopback (a few to a few tens of
/// microseconds), far shorter than a scheduler's time slice, so that a waiting client
/// thread loses nothing, and short enough that a server between bursts soon sleeps.
pub const MAX_SPIN: Duration = Duration::from_micros(50);

/// Smallest window worth spinning for; a window that shrinks below it becomes zero.
const MIN_SPIN: Duration = Duration::from_micros(5);

/// One thread's spinning state.
#[derive(Debug)]
pub struct Spin {
    /// How long to keep looking; zero while the thread is idle enough to sleep at once.
    window: Duration,
    /// When the current run of fruitless looks began.
    since: Option<Instant>,
}

impl Default for Spin {
    fn default() -> Self {
        Spin::new()
    }
}

impl Spin {
    /// A thread about to serve expects work: it starts with the largest window.
    pub fn new() -> Spin {
        Spin {
            window: MAX_SPIN,
            since: None,
        }
    }

    /// Whether the thread should look again (without sleeping) rather than sleep.
    pub fn spinning(&self, now: Instant) -> bool {
        match self.since {
            None => !self.window.is_zero(),
            Some(since) => now.saturating_duration_since(since) < self.window,
        }
    }

    /// The thread found work: its next run of looks starts afresh.
    pub fn found(&mut self) {
        self.since = None;
    }

    /// A look found nothing: yields the CPU to whatever else is runnable on it, so that
    /// spinning never takes time a client thread could use.
    pub fn missed(&mut self, now: Instant) {
        self.since.get_or_insert(now);
        std::thread::yield_now();
    }

    /// The thread slept for `slept` before work came: adapt the window.
    pub fn slept(&mut self, slept: Duration) {
        self.since = None;
        self.window = if slept <= MAX_SPIN {
            (self.window * 2).clamp(MIN_SPIN, MAX_SPIN)
        } else if self.window / 2 < MIN_SPIN {
            Duration::ZERO
        } else {
            self.window / 2
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_for_the_window_then_sleeps() {
        let base = Instant::now();
        let mut spin = Spin::new();
        assert!(spin.spinning(base));
        spin.missed(base);
        assert!(spin.spinning(base + MAX_SPIN / 2));
        assert!(!spin.spinning(base + MAX_SPIN));
        spin.found();
        assert!(
            spin.spinning(base + MAX_SPIN * 10),
            "work restarts the window"
        );
    }

    #[test]
    fn the_window_adapts_to_how_long_sleeps_last() {
        let mut spin = Spin::new();
        let long = MAX_SPIN * 100;
        let mut steps = 0;
        while spin.spinning(Instant::now()) {
            spin.slept(long);
            steps += 1;
            assert!(steps < 10, "an idle thread must stop spinning");
        }
        assert_eq!(spin.window, Duration::ZERO);
        // Work that comes right after each sleep brings the window back, up to its cap.
        for _ in 0..10 {
            spin.slept(MAX_SPIN / 10);
        }
        assert_eq!(spin.window, MAX_SPIN);
        let table = [
            (MAX_SPIN, MAX_SPIN),
            (MAX_SPIN + Duration::from_micros(1), MAX_SPIN / 2),
        ];
        for (slept, window) in table {
            let mut spin = Spin::new();
            spin.slept(slept);
            assert_eq!(spin.window, window, "after sleeping {slept:?}");
        }
    }
}
