//! Deadlines of one kind, earliest first.
//!
//! Each connection keeps at most one entry per kind, however many times it waits: waiting
//! again only moves the connection's own deadline, and when its entry comes up early the
//! owner pushes it back at the moved time (see the poll thread's `Slot`). That bounds the
//! queue by the number of connections, but entries come back out of order, so a min-heap
//! keeps them sorted: O(log n) per push and pop, exact to the instant. (A FIFO would be
//! O(1) only if every wait pushed an entry, and would hold one stale entry per request for
//! a whole keep-alive period.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One pending deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    pub at: Instant,
    pub token: usize,
    /// The connection the entry was made for (a slot's token is reused).
    pub id: u64,
}

/// The deadlines of one kind.
#[derive(Debug, Default)]
pub struct DeadlineQueue {
    heap: BinaryHeap<Reverse<Deadline>>,
}

impl DeadlineQueue {
    /// Adds a deadline.
    pub fn push(&mut self, deadline: Deadline) {
        self.heap.push(Reverse(deadline));
    }

    /// The earliest deadline, stale or not.
    pub fn first(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at)
    }

    /// Whether no deadline, stale or not, is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Removes and returns the earliest deadline, due or not: among idle connections,
    /// the one idle longest.
    pub fn pop_first(&mut self) -> Option<Deadline> {
        self.heap.pop().map(|Reverse(d)| d)
    }

    /// Removes and returns the earliest deadline if it has passed.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Deadline> {
        if self.first()? <= now {
            self.heap.pop().map(|Reverse(d)| d)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(base: Instant, ms: u64, token: usize) -> Deadline {
        Deadline {
            at: base + Duration::from_millis(ms),
            token,
            id: token as u64,
        }
    }

    #[test]
    fn expires_in_order_and_only_when_due() {
        let base = Instant::now();
        let mut queue = DeadlineQueue::default();
        for (token, ms) in [10u64, 20, 30].into_iter().enumerate() {
            queue.push(at(base, ms, token));
        }
        assert_eq!(queue.first(), Some(base + Duration::from_millis(10)));
        assert_eq!(queue.pop_expired(base), None);
        let due = |q: &mut DeadlineQueue| q.pop_expired(base + Duration::from_millis(25));
        assert_eq!(due(&mut queue).map(|d| d.token), Some(0));
        assert_eq!(due(&mut queue).map(|d| d.token), Some(1));
        assert_eq!(due(&mut queue), None);
        assert_eq!(queue.first(), Some(base + Duration::from_millis(30)));
    }

    /// Regression: an entry pushed back at its connection's moved deadline was queued
    /// behind later ones and fired up to a whole timeout late.
    #[test]
    fn an_entry_pushed_back_fires_at_its_own_time() {
        let base = Instant::now();
        let mut queue = DeadlineQueue::default();
        queue.push(at(base, 3000, 1));
        queue.push(at(base, 5900, 2));
        // Connection 1's entry comes up, but it had waited again: back at 3500 ms.
        let early = queue.pop_expired(base + Duration::from_millis(3000));
        assert_eq!(early.map(|d| d.token), Some(1));
        queue.push(at(base, 3500, 1));
        let due = queue.pop_expired(base + Duration::from_millis(3500));
        assert_eq!(due.map(|d| d.token), Some(1));
        assert_eq!(queue.first(), Some(base + Duration::from_millis(5900)));
    }
}
