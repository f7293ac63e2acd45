//! Waiting with a deadline: poll a condition until it holds, give up with the last reason it
//! did not, or stop at once on a fatal error (a daemon that died).

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

/// Polls `check` every `interval` until it is ready, fails, or `limit` passes.
pub fn until<T>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Poll<T>,
) -> Result<T> {
    let started = Instant::now();
    loop {
        let detail = match check() {
            Poll::Ready(v) => return Ok(v),
            Poll::Fail(e) => return Err(e),
            Poll::Pending(d) => d,
        };
        if started.elapsed() >= limit {
            return Err(LabError::Timeout {
                what: what.to_string(),
                waited: started.elapsed(),
                detail,
            });
        }
        thread::sleep(interval);
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
