//! The leader lease that decides who may hold the cluster IP (sans-I/O: time is an argument).
//!
//! A leader holds the lease for `duration` after the *send* time of a heartbeat round that a
//! quorum acknowledged. Followers that acknowledged it refuse to vote for anyone else for
//! openraft's leader lease (the maximum election timeout) after receiving it, so no other
//! node can become leader before the lease runs out as long as `duration` is at most the
//! minimum election timeout. Leadership is never taken from a lock or a flag alone.

use std::time::{Duration, Instant};

/// The lease state of one node.
#[derive(Debug, Clone)]
pub struct Lease {
    duration: Duration,
    valid_until: Option<Instant>,
    term: u64,
}

impl Lease {
    /// A lease of `duration` per confirmation.
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            valid_until: None,
            term: 0,
        }
    }

    /// A quorum acknowledged leadership in `term` for a round sent at `sent_at`.
    pub fn confirm(&mut self, term: u64, sent_at: Instant) {
        if term != self.term {
            self.term = term;
            self.valid_until = None;
        }
        let until = sent_at + self.duration;
        if self.valid_until.is_none_or(|v| until > v) {
            self.valid_until = Some(until);
        }
    }

    /// Leadership was lost (another term, or this node is no longer leader): drop at once.
    pub fn revoke(&mut self) {
        self.valid_until = None;
    }

    /// Whether the lease is held at `now`.
    pub fn held(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|v| now < v)
    }

    /// When the lease runs out, if held.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }

    /// The term of the last confirmation.
    pub fn term(&self) -> u64 {
        self.term
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_from_confirmation_until_expiry() {
        let t0 = Instant::now();
        let mut l = Lease::new(Duration::from_millis(300));
        assert!(!l.held(t0));
        l.confirm(3, t0);
        assert!(l.held(t0 + Duration::from_millis(299)));
        assert!(!l.held(t0 + Duration::from_millis(300)));
        // A later round extends; an older (late) answer does not shorten it.
        l.confirm(3, t0 + Duration::from_millis(100));
        l.confirm(3, t0 + Duration::from_millis(50));
        assert_eq!(l.valid_until(), Some(t0 + Duration::from_millis(400)));
    }

    #[test]
    fn revoke_and_new_term_reset() {
        let t0 = Instant::now();
        let mut l = Lease::new(Duration::from_millis(300));
        l.confirm(3, t0 + Duration::from_millis(200));
        l.revoke();
        assert!(!l.held(t0 + Duration::from_millis(201)));
        l.confirm(3, t0 + Duration::from_millis(250));
        // A confirmation in a new term replaces the old lease even if it ends earlier.
        l.confirm(4, t0);
        assert_eq!(l.term(), 4);
        assert_eq!(l.valid_until(), Some(t0 + Duration::from_millis(300)));
    }
}
