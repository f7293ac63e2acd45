//! Host liveness as the leader sees it (sans-I/O): the last heartbeat of each host's agent,
//! and whether it is recent enough to call the host alive.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aegis_api::controlplane::v1::{HeartbeatRequest, HostStatus};

/// Default time without a heartbeat after which a host is down.
pub const DEFAULT_DOWN_AFTER: Duration = Duration::from_secs(3);

/// Last heartbeats by host.
#[derive(Debug)]
pub struct Liveness {
    down_after: Duration,
    last: HashMap<String, (Instant, HeartbeatRequest)>,
}

impl Liveness {
    /// A table that declares a host down after `down_after` without a heartbeat.
    pub fn new(down_after: Duration) -> Self {
        Self {
            down_after,
            last: HashMap::new(),
        }
    }

    /// The detection time.
    pub fn down_after(&self) -> Duration {
        self.down_after
    }

    /// Records a heartbeat received at `now`.
    pub fn report(&mut self, now: Instant, beat: HeartbeatRequest) {
        self.last.insert(beat.host.clone(), (now, beat));
    }

    /// The applied revision last reported by `host`.
    pub fn applied_revision(&self, host: &str) -> Option<u64> {
        self.last.get(host).map(|(_, b)| b.applied_revision)
    }

    /// The status of host `name` (role `role`) at `now`.
    pub fn status(&self, now: Instant, name: &str, role: i32) -> HostStatus {
        match self.last.get(name) {
            None => HostStatus {
                name: name.to_owned(),
                role,
                alive: false,
                never_seen: true,
                ..HostStatus::default()
            },
            Some((at, beat)) => {
                let age = now.saturating_duration_since(*at);
                HostStatus {
                    name: name.to_owned(),
                    role,
                    alive: age < self.down_after,
                    never_seen: false,
                    last_seen_ms_ago: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                    agent: beat.agent.clone(),
                    applied_revision: beat.applied_revision,
                    apply_error: beat.apply_error.clone(),
                    cpu_percent: beat.cpu_percent,
                    memory_percent: beat.memory_percent,
                    links: beat.links.clone(),
                    diag_address: beat.diag_address.clone(),
                    warnings: beat.warnings.clone(),
                }
            }
        }
    }

    /// Heartbeats from hosts that are not (or no longer) in the desired state.
    pub fn forget_except(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.last.retain(|h, _| keep(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_until_heartbeats_stop() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(3));
        assert!(l.status(t0, "c1", 1).never_seen);
        l.report(
            t0,
            HeartbeatRequest {
                host: "c1".into(),
                applied_revision: 7,
                cpu_percent: 12.5,
                diag_address: "10.99.0.11:7401".into(),
                warnings: vec!["NAT conflict: floating IP fip1".into()],
                ..Default::default()
            },
        );
        let s = l.status(t0 + Duration::from_millis(2999), "c1", 1);
        assert!(s.alive && !s.never_seen);
        assert_eq!((s.applied_revision, s.cpu_percent), (7, 12.5));
        assert_eq!(s.last_seen_ms_ago, 2999);
        assert_eq!(s.diag_address, "10.99.0.11:7401");
        assert_eq!(s.warnings, ["NAT conflict: floating IP fip1"]);
        assert!(!l.status(t0 + Duration::from_secs(3), "c1", 1).alive);
        assert_eq!(l.applied_revision("c1"), Some(7));
        l.forget_except(&|h| h != "c1");
        assert!(l.status(t0, "c1", 1).never_seen);
    }
}
