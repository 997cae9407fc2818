//! Capped exponential backoff with a failure window: when to retry, and when to give up on a node and restart its instance.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, attempt: 0 }
    }

    /// The delay before the next attempt: initial, 2×, 4×, … capped at `max`.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.initial.saturating_mul(1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// After a success that lasted: start again from `initial`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Counts failures in a sliding window: a node failing `limit` times within `window`
/// gets its whole instance restarted.
#[derive(Clone, Debug)]
pub struct FailureWindow {
    pub limit: usize,
    pub window: Duration,
    times: Vec<Duration>,
}

impl FailureWindow {
    pub fn new(limit: usize, window: Duration) -> Self {
        FailureWindow { limit, window, times: Vec::new() }
    }

    /// Records a failure at `now` (any monotonic origin); true when the limit is reached.
    pub fn record(&mut self, now: Duration) -> bool {
        self.times.retain(|t| now.saturating_sub(*t) < self.window);
        self.times.push(now);
        self.times.len() >= self.limit
    }

    pub fn clear(&mut self) {
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let d: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, [500, 1000, 2000, 4000, 4000, 4000]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 500);
        // No overflow however long it fails.
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(4));
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let mut w = FailureWindow::new(3, Duration::from_secs(60));
        assert!(!w.record(Duration::from_secs(0)));
        assert!(!w.record(Duration::from_secs(10)));
        assert!(!w.record(Duration::from_secs(70)), "the failures at 0 s and 10 s are outside the window");
        assert!(!w.record(Duration::from_secs(75)));
        assert!(w.record(Duration::from_secs(80)), "three within 60 s");
    }
}
