//! Waiting with a deadline: poll a condition until it holds, give up with the last reason it
//! did not, or stop at once on a fatal error (a daemon that died).
//!
//! Deadlines do not count time the machine stood still ([`Deadline`]): a command stopped
//! with the whole machine (a paused VM) has not hung. Stalls where user processes keep
//! running are not pauses and still count (docs/lab.md, "Known machine stalls").

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// One look at a condition.
#[derive(Debug)]
pub enum Poll<T> {
    /// It holds; stop waiting.
    Ready(T),
    /// Not yet, and why (reported if the deadline passes).
    Pending(String),
    /// It never will; stop waiting with this error.
    Fail(LabError),
}

/// A sleep this much longer than asked means the machine stood still (say, a paused VM),
/// not that it was busy: a loaded 2-CPU machine oversleeps by milliseconds to a few hundred.
pub const PAUSE_THRESHOLD: Duration = Duration::from_secs(1);

/// A time limit that does not count the machine's pauses: each [`Deadline::sleep`] that
/// takes more than [`PAUSE_THRESHOLD`] longer than asked adds the excess to the limit.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    limit: Duration,
    paused: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub fn new(limit: Duration) -> Deadline {
        Deadline {
            started: Instant::now(),
            limit,
            paused: Duration::ZERO,
        }
    }

    /// Sleeps `d`, and counts an oversleep beyond [`PAUSE_THRESHOLD`] as a pause.
    pub fn sleep(&mut self, d: Duration) {
        let t = Instant::now();
        thread::sleep(d);
        self.note_gap(t.elapsed(), d);
    }

    /// Counts `took - asked` as a pause when it is beyond [`PAUSE_THRESHOLD`].
    pub fn note_gap(&mut self, took: Duration, asked: Duration) {
        let over = took.saturating_sub(asked);
        if over > PAUSE_THRESHOLD {
            self.paused += over;
        }
    }

    /// Whether the limit has passed, pauses not counted.
    pub fn expired(&self) -> bool {
        self.started.elapsed() >= self.limit + self.paused
    }

    /// Time since the start, pauses included.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The pauses seen so far.
    pub fn paused(&self) -> Duration {
        self.paused
    }

    /// For a timeout message: how long the machine stood still, if it did.
    pub fn pause_note(&self) -> String {
        if self.paused.is_zero() {
            String::new()
        } else {
            format!(
                " (plus {:?} the machine stood still, not counted)",
                self.paused
            )
        }
    }
}

/// Polls `check` every `interval` until it is ready, fails, or `limit` passes (the
/// machine's pauses not counted: [`Deadline`]).
pub fn until<T>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Poll<T>,
) -> Result<T> {
    let mut deadline = Deadline::new(limit);
    loop {
        let detail = match check() {
            Poll::Ready(v) => return Ok(v),
            Poll::Fail(e) => return Err(e),
            Poll::Pending(d) => d,
        };
        if deadline.expired() {
            return Err(LabError::Timeout {
                what: format!("{what}{}", deadline.pause_note()),
                waited: deadline.elapsed(),
                detail,
            });
        }
        deadline.sleep(interval);
    }
}

/// Whether a unix stream socket at `path` accepts connections right now.
pub fn socket_accepts(path: &Path) -> std::result::Result<(), String> {
    if !path.exists() {
        return Err(format!("{} does not exist yet", path.display()));
    }
    UnixStream::connect(path)
        .map(drop)
        .map_err(|e| format!("connect {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_deadline_does_not_count_the_machine_s_pauses() {
        let mut d = Deadline::new(Duration::from_millis(30));
        // Oversleeping by a scheduling delay is time spent, not a pause.
        d.note_gap(Duration::from_millis(400), Duration::from_millis(5));
        assert_eq!(d.paused(), Duration::ZERO);
        assert_eq!(d.pause_note(), "");
        // A 5 ms sleep that took 5 s: the machine stood still for 4.995 s.
        d.note_gap(Duration::from_secs(5), Duration::from_millis(5));
        assert_eq!(d.paused(), Duration::from_millis(4995));
        assert!(d.pause_note().contains("4.995s"), "{}", d.pause_note());
        thread::sleep(Duration::from_millis(40));
        assert!(!d.expired(), "the pause extends the limit");
        let mut plain = Deadline::new(Duration::from_millis(30));
        plain.sleep(Duration::from_millis(40));
        assert!(plain.expired());
        assert_eq!(plain.paused(), Duration::ZERO);
    }

    #[test]
    fn until_returns_when_ready() {
        let mut n = 0;
        let v = until(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                if n == 3 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending(format!("n={n}"))
                }
            },
        )
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn until_times_out_with_last_detail() {
        let err = until::<()>(
            "never",
            Duration::from_millis(50),
            Duration::from_millis(5),
            || Poll::Pending("still no".into()),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("never") && text.contains("still no"),
            "{text}"
        );
    }

    #[test]
    fn until_stops_on_failure() {
        let started = Instant::now();
        let err = until::<()>(
            "x",
            Duration::from_secs(10),
            Duration::from_millis(5),
            || Poll::Fail(LabError::UnknownHost("gone".into())),
        )
        .unwrap_err();
        assert!(matches!(err, LabError::UnknownHost(_)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn socket_accepts_only_a_listening_socket() {
        let dir = std::env::temp_dir().join(format!("aegis-lab-wait-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        assert!(socket_accepts(&path)
            .unwrap_err()
            .contains("does not exist"));
        let listener = UnixListener::bind(&path).unwrap();
        assert!(socket_accepts(&path).is_ok());
        drop(listener);
        // The file stays but nobody listens.
        assert!(socket_accepts(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
