//! Deadlines of one fixed length, kept in arrival order.
//!
//! Every deadline of a kind has the same length, so they arrive already sorted: a FIFO
//! gives O(1) insertion and expiry. Cancelling is lazy: the owner checks, when an entry
//! comes up, whether it still stands (see the poll thread's `Slot`).

use std::collections::VecDeque;
use std::time::Instant;

/// One pending deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    pub token: usize,
    /// The connection the entry was made for (a slot's token is reused).
    pub id: u64,
}

/// A FIFO of deadlines of one length.
#[derive(Debug, Default)]
pub struct DeadlineQueue {
    queue: VecDeque<Deadline>,
}

impl DeadlineQueue {
    /// Adds a deadline. One that would sort before the last is moved up to it: starts can
    /// reach the poll thread slightly out of order, and a deadline kept a moment late is
    /// better than a queue that is not sorted.
    pub fn push(&mut self, deadline: Deadline) {
        let at = match self.queue.back() {
            Some(last) if last.at > deadline.at => last.at,
            _ => deadline.at,
        };
        self.queue.push_back(Deadline { at, ..deadline });
    }

    /// The earliest deadline, stale or not.
    pub fn first(&self) -> Option<Instant> {
        self.queue.front().map(|d| d.at)
    }

    /// Removes and returns the earliest deadline if it has passed.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Deadline> {
        if self.queue.front()?.at <= now {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expires_in_order_and_only_when_due() {
        let base = Instant::now();
        let mut queue = DeadlineQueue::default();
        for (i, ms) in [10u64, 20, 30].into_iter().enumerate() {
            queue.push(Deadline {
                at: base + Duration::from_millis(ms),
                token: i,
                id: i as u64,
            });
        }
        assert_eq!(queue.first(), Some(base + Duration::from_millis(10)));
        assert_eq!(queue.pop_expired(base), None);
        let due = queue
            .pop_expired(base + Duration::from_millis(25))
            .map(|d| d.token);
        assert_eq!(due, Some(0));
        let due = queue
            .pop_expired(base + Duration::from_millis(25))
            .map(|d| d.token);
        assert_eq!(due, Some(1));
        assert_eq!(queue.pop_expired(base + Duration::from_millis(25)), None);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_late_push_never_sorts_before_the_last() {
        let base = Instant::now();
        let mut queue = DeadlineQueue::default();
        queue.push(Deadline {
            at: base + Duration::from_millis(20),
            token: 0,
            id: 0,
        });
        queue.push(Deadline {
            at: base + Duration::from_millis(10),
            token: 1,
            id: 1,
        });
        assert_eq!(queue.pop_expired(base + Duration::from_millis(15)), None);
        let order: Vec<usize> = std::iter::from_fn(|| {
            queue
                .pop_expired(base + Duration::from_millis(20))
                .map(|d| d.token)
        })
        .collect();
        assert_eq!(order, [0, 1]);
        assert!(queue.is_empty());
    }
}
