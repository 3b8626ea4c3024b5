//! [`Rotation`]: which of the client's server addresses to connect to next, and how long to
//! wait first (pure: no clock, no randomness; the client adds the jitter).
//!
//! Addresses are tried round robin from the one that last worked. A failed attempt moves to the
//! next address at once; only when every address has failed in a row (a full round) does the
//! client back off, doubling the wait each round up to [`MAX_BACKOFF`]. A lost connection moves
//! to the next address too, after the shortest wait, so the node that just died is tried last.

use std::time::Duration;

use crate::client::{MAX_BACKOFF, MIN_BACKOFF};

/// Round robin over `count` addresses with back-off per failed round. Owns the back-off.
#[derive(Clone, Debug)]
pub(crate) struct Rotation {
    /// How many addresses (at least 1).
    count: usize,
    /// The address in use, or being tried.
    at: usize,
    /// Attempts failed in a row since the round began (a round is `count` attempts).
    failed: usize,
    /// The wait before the next round, before jitter; doubled by each failed round.
    backoff: Duration,
}

impl Rotation {
    /// Starts at address 0 with the shortest back-off.
    pub(crate) fn new(count: usize) -> Self {
        Self {
            count: count.max(1),
            at: 0,
            failed: 0,
            backoff: MIN_BACKOFF,
        }
    }

    /// The address in use or being tried (an index into the client's addresses).
    pub(crate) fn at(&self) -> usize {
        self.at
    }

    /// Whether no round has failed yet since the last success (or ever).
    pub(crate) fn first_round(&self) -> bool {
        self.backoff == MIN_BACKOFF
    }

    /// A connection was welcomed: the next round (after a loss) starts from the shortest wait.
    pub(crate) fn connected(&mut self) {
        self.failed = 0;
        self.backoff = MIN_BACKOFF;
    }

    /// The attempt at [`at`](Self::at) failed: moves to the next address. Returns the wait
    /// before the next attempt (before jitter): none within a round, the doubled back-off
    /// once the round is complete.
    pub(crate) fn failed(&mut self) -> Duration {
        self.at = (self.at + 1) % self.count;
        self.failed += 1;
        if self.failed < self.count {
            return Duration::ZERO;
        }
        self.failed = 0;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.backoff
    }

    /// The connection that was up at [`at`](Self::at) was lost: a new round starts at the next
    /// address (the lost one comes last). Returns the wait before it (before jitter).
    pub(crate) fn lost(&mut self) -> Duration {
        self.at = (self.at + 1) % self.count;
        self.failed = 0;
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_backs_off_on_every_failure() {
        let mut r = Rotation::new(1);
        assert_eq!(r.at(), 0);
        assert_eq!(r.failed(), MIN_BACKOFF * 2);
        assert_eq!(r.failed(), MIN_BACKOFF * 4);
        assert_eq!(r.at(), 0);
        r.connected();
        assert_eq!(r.lost(), MIN_BACKOFF);
        assert_eq!(r.at(), 0);
    }

    #[test]
    fn failures_move_on_at_once_and_back_off_once_per_round() {
        let mut r = Rotation::new(3);
        let mut seen = Vec::new();
        for _ in 0..9 {
            let wait = r.failed();
            seen.push((r.at(), wait));
        }
        let z = Duration::ZERO;
        assert_eq!(
            seen,
            [
                (1, z),
                (2, z),
                (0, MIN_BACKOFF * 2),
                (1, z),
                (2, z),
                (0, MIN_BACKOFF * 4),
                (1, z),
                (2, z),
                (0, MIN_BACKOFF * 8),
            ]
        );
    }

    #[test]
    fn the_back_off_stops_growing_at_its_maximum() {
        let mut r = Rotation::new(2);
        let waits: Vec<Duration> = (0..40).map(|_| r.failed()).collect();
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
        assert_eq!(waits.last(), Some(&MAX_BACKOFF));
    }

    #[test]
    fn a_lost_connection_starts_a_round_at_the_next_address() {
        let mut r = Rotation::new(3);
        assert_eq!(r.failed(), Duration::ZERO);
        r.connected();
        assert_eq!(r.at(), 1, "address 1 worked");
        assert_eq!(r.lost(), MIN_BACKOFF);
        assert_eq!(r.at(), 2);
        assert_eq!(r.failed(), Duration::ZERO);
        assert_eq!(r.at(), 0);
        // The one that was lost comes last in the round, then the round backs off.
        assert_eq!(r.failed(), Duration::ZERO);
        assert_eq!(r.at(), 1);
        assert_eq!(r.failed(), MIN_BACKOFF * 2);
        assert_eq!(r.at(), 2);
    }

    #[test]
    fn success_resets_the_back_off_and_the_round() {
        let mut r = Rotation::new(2);
        r.failed();
        r.failed();
        assert!(!r.first_round());
        r.connected();
        assert!(r.first_round());
        assert_eq!(r.failed(), Duration::ZERO, "a new round after a success");
    }
}
