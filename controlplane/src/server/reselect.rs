//! The leader's standby re-selection task: every [`PERIOD`], for each GatewayGroup, asks
//! [`standby::select`](super::standby::select) with the hosts' liveness and writes a new
//! `sync_assignment` through Raft (an ordinary revisioned update, compare-and-set on the
//! group's revision, so a concurrent operator's write wins and the next round decides
//! again). The gateways' dataplanes follow it from their feed.
//!
//! A new leader knows no heartbeats: it waits one detection time (`down_after`) after it
//! got its lease before deciding anything, so live hosts are not taken for dead.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_api::controlplane::v1::{object::Spec, Kind, Object};
use tokio::sync::watch;

use super::node::{lock, Node};
use super::standby;
use crate::model::Command;

/// How often the leader looks.
pub const PERIOD: Duration = Duration::from_millis(250);

/// Runs until `stop` turns true.
pub async fn reselect_standbys(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        if !node.has_quorum() {
            leading_since = None;
            continue;
        }
        let now = Instant::now();
        let since = *leading_since.get_or_insert(now);
        let down_after = lock(&node.liveness).down_after();
        if now.saturating_duration_since(since) < down_after {
            continue;
        }
        round(&node, now).await;
    }
}

/// One look at every group.
async fn round(node: &Node, now: Instant) {
    let groups: Vec<Object> = node
        .machine
        .read()
        .state
        .list(Kind::GatewayGroup)
        .into_iter()
        .cloned()
        .collect();
    for o in groups {
        let Some(Spec::GatewayGroup(g)) = &o.spec else {
            continue;
        };
        let choice = {
            let live = lock(&node.liveness);
            standby::select(g, &|h| live.status(now, h, 0).alive)
        };
        let Some(choice) = choice else { continue };
        let old = g
            .sync_assignment
            .as_ref()
            .map(|a| a.members.clone())
            .unwrap_or_default();
        let mut next = g.clone();
        next.sync_assignment = Some(choice.assignment(g.sync_assignment.as_ref()));
        let command = Command::Update {
            object: Object {
                name: o.name.clone(),
                spec: Some(Spec::GatewayGroup(next)),
                ..Object::default()
            },
            expected_revision: o.modified_revision,
        };
        match node.write(command, false).await {
            Ok(change) => {
                node.counters
                    .standby_reselections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    group = %o.name,
                    old = ?old,
                    new = ?choice.members,
                    dropped = ?choice.dropped,
                    added = ?choice.added,
                    reason = %choice.reason,
                    revision = change.revision,
                    "gateway group: sync members re-selected"
                );
            }
            Err(e) => {
                node.counters
                    .standby_reselect_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(group = %o.name, error = %e, "gateway group: cannot store the new sync members; retrying");
            }
        }
    }
}
