//! Idle policy: `busy` polls forever; `adaptive` polls while traffic flows and backs off
//! to short sleeps when queues stay empty, so many dataplanes can idle on few cores.

use std::time::Duration;

/// How a worker waits for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Back off to sleeps when idle (default).
    #[default]
    Adaptive,
    /// Never sleep (benchmarks, production cores).
    Busy,
}

impl std::fmt::Display for PollMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PollMode::Adaptive => "adaptive",
            PollMode::Busy => "busy",
        })
    }
}

impl std::str::FromStr for PollMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adaptive" => Ok(PollMode::Adaptive),
            "busy" => Ok(PollMode::Busy),
            other => Err(format!(
                "poll mode {other:?}: expected \"adaptive\" or \"busy\""
            )),
        }
    }
}

/// Empty polls before the first sleep.
const SPIN_POLLS: u32 = 256;
/// First sleep.
const MIN_SLEEP: Duration = Duration::from_micros(10);
/// Longest sleep: bounds the latency an idle dataplane adds to the first packet.
const MAX_SLEEP: Duration = Duration::from_micros(1000);

/// Tracks consecutive empty polls and decides how long to sleep.
#[derive(Debug, Clone)]
pub struct Backoff {
    mode: PollMode,
    empty: u32,
    sleep: Duration,
}

impl Backoff {
    /// A backoff for `mode`.
    pub fn new(mode: PollMode) -> Self {
        Backoff {
            mode,
            empty: 0,
            sleep: MIN_SLEEP,
        }
    }

    /// Records one poll that received `got` packets; returns how long to sleep now.
    #[inline]
    pub fn after_poll(&mut self, got: usize) -> Option<Duration> {
        if got > 0 {
            self.empty = 0;
            self.sleep = MIN_SLEEP;
            return None;
        }
        if self.mode == PollMode::Busy {
            return None;
        }
        self.empty = self.empty.saturating_add(1);
        if self.empty < SPIN_POLLS {
            return None;
        }
        let s = self.sleep;
        self.sleep = (self.sleep * 2).min(MAX_SLEEP);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_spins_then_backs_off_exponentially_and_resets_on_traffic() {
        let mut b = Backoff::new(PollMode::Adaptive);
        for _ in 0..SPIN_POLLS - 1 {
            assert_eq!(b.after_poll(0), None);
        }
        assert_eq!(b.after_poll(0), Some(MIN_SLEEP));
        assert_eq!(b.after_poll(0), Some(MIN_SLEEP * 2));
        for _ in 0..20 {
            b.after_poll(0);
        }
        assert_eq!(b.after_poll(0), Some(MAX_SLEEP));
        assert_eq!(b.after_poll(5), None);
        assert_eq!(b.after_poll(0), None);
    }

    #[test]
    fn busy_never_sleeps() {
        let mut b = Backoff::new(PollMode::Busy);
        assert!((0..10_000).all(|_| b.after_poll(0).is_none()));
        assert_eq!("busy".parse::<PollMode>(), Ok(PollMode::Busy));
        assert!("lazy".parse::<PollMode>().is_err());
    }
}
