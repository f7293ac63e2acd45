//! Heartbeats: every interval (1 s by default) an agent tells the control plane it is alive,
//! which revision it applied (or why it could not), the host's CPU and memory use, and the
//! link state of the host's networks.
//!
//! The networks are the `networks` of the host's `Host` object (name → interface), read from
//! the follower's latest [`Synced`] slice. An interface the agent itself drives (a dataplane
//! port: the kernel does not see it) is answered by the caller's [`PortLink`]; every other
//! one by [`link_state`](crate::sysinfo::link_state) over rtnetlink.

use std::sync::Arc;
use std::time::Duration;

use aegis_api::controlplane::v1::{
    agents_client::AgentsClient, object::Spec, HeartbeatRequest, HostNetwork, Kind, LinkStatus,
};
use tokio::sync::watch;

use crate::connect::Connector;
use crate::follow::Synced;
use crate::sysinfo::{link_state, HostSampler, LinkState};

/// Default heartbeat interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How long one heartbeat call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent applied last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedState {
    /// The last revision applied successfully (0: none yet).
    pub revision: u64,
    /// Why the latest revision could not be applied ("" = it was).
    pub error: String,
    /// What of the applied revision was left out, one line each (sent as the heartbeat's
    /// `warnings`).
    pub warnings: Vec<String>,
}

/// Link state of an interface the agent drives itself: `Some(up)` for its own ports,
/// `None` for interfaces it does not know (asked of the kernel instead).
pub type PortLink = Arc<dyn Fn(&str) -> Option<bool> + Send + Sync>;

/// A heartbeat loop's settings and inputs.
pub struct Heartbeat {
    /// The host's name (its `Host` object).
    pub host: String,
    /// The agent: "dataplane", "vmm", "storage".
    pub agent: String,
    /// Time between heartbeats.
    pub interval: Duration,
    /// The follower's latest slice (for the host's networks).
    pub slice: watch::Receiver<Option<Synced>>,
    /// What the agent applied.
    pub applied: watch::Receiver<AppliedState>,
    /// The agent's own ports.
    pub port_link: PortLink,
    /// Where the agent serves its diagnostics ("IP:PORT"; "" = it does not).
    pub diag_address: String,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("host", &self.host)
            .field("agent", &self.agent)
            .field("interval", &self.interval)
            .field("diag_address", &self.diag_address)
            .finish_non_exhaustive()
    }
}

/// The networks of `host` in `slice`.
pub fn host_networks(slice: Option<&Synced>, host: &str) -> Vec<HostNetwork> {
    slice
        .and_then(|s| s.objects.get(&(Kind::Host as i32, host.to_owned())))
        .and_then(|o| match &o.spec {
            Some(Spec::Host(h)) => Some(h.networks.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The link status of each network: the agent's own port if `port_link` knows the
/// interface, else the kernel's view (a query that fails counts as down, and is logged).
pub async fn link_statuses(networks: &[HostNetwork], port_link: &PortLink) -> Vec<LinkStatus> {
    let mut out = Vec::with_capacity(networks.len());
    for n in networks {
        let (present, up) = match port_link(&n.interface) {
            Some(up) => (true, up),
            None => match link_state(&n.interface).await {
                Ok(LinkState::Up) => (true, true),
                Ok(LinkState::Down) => (true, false),
                Ok(LinkState::Missing) => (false, false),
                Err(e) => {
                    tracing::debug!(network = %n.name, error = %e, "link state unknown");
                    (true, false)
                }
            },
        };
        out.push(LinkStatus {
            network: n.name.clone(),
            interface: n.interface.clone(),
            up,
            present,
        });
    }
    out
}

impl Heartbeat {
    /// Sends heartbeats until the slice channel closes (the follower is gone). Failures are
    /// logged (once per kind of failure) and retried at the next beat, on the next node.
    pub async fn run(self, mut connector: Connector) {
        let mut sampler = HostSampler::new();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error: Option<String> = None;
        loop {
            tick.tick().await;
            if self.slice.has_changed().is_err() {
                return;
            }
            let request = self.request(&mut sampler).await;
            let result = match connector.channel().await {
                Ok(ch) => {
                    tokio::time::timeout(CALL_TIMEOUT, AgentsClient::new(ch).heartbeat(request))
                        .await
                        .unwrap_or_else(|_| {
                            Err(tonic::Status::unavailable(format!(
                                "no answer within {CALL_TIMEOUT:?}"
                            )))
                        })
                        .map(|_| ())
                        .map_err(|s| {
                            let unreachable = s.code() == tonic::Code::Unavailable;
                            (
                                format!("Heartbeat: {}: {}", s.code(), s.message()),
                                unreachable,
                            )
                        })
                }
                Err(e) => Err((e.to_string(), true)),
            };
            match result {
                Ok(()) => {
                    if last_error.take().is_some() {
                        tracing::info!(host = %self.host, "heartbeats accepted again");
                    }
                }
                Err((e, unreachable)) => {
                    if unreachable {
                        connector.failed();
                    }
                    if last_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(host = %self.host, error = %e, "heartbeat not delivered");
                        last_error = Some(e);
                    }
                }
            }
        }
    }

    /// The next heartbeat.
    async fn request(&self, sampler: &mut HostSampler) -> HeartbeatRequest {
        let applied = self.applied.borrow().clone();
        let networks = host_networks(self.slice.borrow().as_ref(), &self.host);
        let (cpu_percent, memory_percent) = match sampler.sample() {
            Ok(s) => (s.cpu_percent, s.memory_percent),
            Err(e) => {
                tracing::debug!(error = %e, "no host sample");
                (0.0, 0.0)
            }
        };
        HeartbeatRequest {
            host: self.host.clone(),
            agent: self.agent.clone(),
            applied_revision: applied.revision,
            apply_error: applied.error,
            warnings: applied.warnings,
            cpu_percent,
            memory_percent,
            links: link_statuses(&networks, &self.port_link).await,
            diag_address: self.diag_address.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use aegis_api::controlplane::v1::{Host, Object};

    fn slice_with(networks: Vec<HostNetwork>) -> Synced {
        let host = Object {
            name: "h1".into(),
            spec: Some(Spec::Host(Host {
                networks,
                ..Host::default()
            })),
            ..Object::default()
        };
        Synced {
            revision: 3,
            objects: Arc::new(BTreeMap::from([((Kind::Host as i32, "h1".into()), host)])),
        }
    }

    fn net(name: &str, interface: &str) -> HostNetwork {
        HostNetwork {
            name: name.into(),
            interface: interface.into(),
        }
    }

    #[test]
    fn networks_come_from_the_host_object() {
        let s = slice_with(vec![net("management", "lo")]);
        assert_eq!(host_networks(Some(&s), "h1"), vec![net("management", "lo")]);
        assert!(host_networks(Some(&s), "other").is_empty());
        assert!(host_networks(None, "h1").is_empty());
    }

    #[tokio::test]
    async fn ports_are_asked_of_the_agent_and_the_rest_of_the_kernel() {
        let port_link: PortLink = Arc::new(|name| (name == "p0").then_some(false));
        let links = link_statuses(
            &[
                net("business", "p0"),
                net("management", "lo"),
                net("storage", "aegis-none9"),
            ],
            &port_link,
        )
        .await;
        assert_eq!(links.len(), 3);
        assert_eq!((links[0].present, links[0].up), (true, false));
        assert_eq!(links[1].interface, "lo");
        assert!(links[1].present);
        assert_eq!((links[2].present, links[2].up), (false, false));
        assert_eq!(links[2].network, "storage");
    }

    /// A heartbeat says what the agent applied: revision, error and warnings, as they are
    /// when it is sent, with the host's links and the diagnostics address.
    #[tokio::test]
    async fn the_request_carries_the_applied_state_and_its_warnings() {
        let (_slice_tx, slice) = watch::channel(Some(slice_with(vec![net("business", "p0")])));
        let (applied_tx, applied) = watch::channel(AppliedState::default());
        let beat = Heartbeat {
            host: "h1".into(),
            agent: "dataplane".into(),
            interval: INTERVAL,
            slice,
            applied,
            port_link: Arc::new(|name| (name == "p0").then_some(true)),
            diag_address: "10.99.0.11:7401".into(),
        };
        let mut sampler = HostSampler::new();
        let first = beat.request(&mut sampler).await;
        assert_eq!((first.applied_revision, first.warnings.len()), (0, 0));
        applied_tx
            .send(AppliedState {
                revision: 12,
                error: String::new(),
                warnings: vec!["NAT conflict floating IP 203.0.113.20 clashes".into()],
            })
            .unwrap();
        let r = beat.request(&mut sampler).await;
        assert_eq!((r.host.as_str(), r.agent.as_str()), ("h1", "dataplane"));
        assert_eq!((r.applied_revision, r.apply_error.as_str()), (12, ""));
        assert_eq!(
            r.warnings,
            ["NAT conflict floating IP 203.0.113.20 clashes"]
        );
        assert_eq!(r.diag_address, "10.99.0.11:7401");
        assert_eq!(r.links.len(), 1);
        assert!(r.links[0].up && r.links[0].present);
    }
}
