//! The cluster IP holder: confirms leadership with a quorum every heartbeat interval (one
//! heartbeat round, like a ReadIndex read), keeps the [`Lease`](super::lease::Lease) that
//! gives, and holds the cluster IP exactly while the lease is held: added with rtnetlink and
//! announced with gratuitous ARP on gaining it, removed at once when leadership is lost or the
//! lease runs out (a leader cut off from the majority drops it within one lease).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio::sync::{watch, Notify};

use super::node::{lock, Node};
use crate::vip::ClusterIp;

/// Gratuitous ARP refreshes after acquiring (besides the first), and their spacing.
const GARP_REFRESHES: u32 = 3;
const GARP_SPACING: Duration = Duration::from_millis(500);
/// How often the holder re-checks the address while it holds it (someone may remove it).
const RECHECK: Duration = Duration::from_secs(2);

/// Runs the lease confirmation loop until `stop` turns true.
pub async fn confirm_leadership(
    node: Arc<Node>,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut metrics = node.raft.metrics();
    let mut tick = tokio::time::interval(node.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = metrics.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let (state, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term)
        };
        if state != ServerState::Leader {
            let was = lock(&node.lease).held(Instant::now());
            lock(&node.lease).revoke();
            if was {
                changed.notify_one();
            }
            continue;
        }
        let sent = Instant::now();
        let confirmed =
            tokio::time::timeout(node.config.lease(), node.raft.get_read_log_id()).await;
        if matches!(confirmed, Ok(Ok(_))) {
            let was = lock(&node.lease).held(Instant::now());
            lock(&node.lease).confirm(term, sent);
            if !was {
                changed.notify_one();
            }
        }
    }
}

/// Holds `vip` while `node`'s lease is held, until `stop`; releases it on the way out.
pub async fn hold_cluster_ip(
    node: Arc<Node>,
    vip: ClusterIp,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut held = false;
    let mut refreshes_left = 0;
    let mut next_refresh = Instant::now();
    let mut next_check = Instant::now();
    // A previous run may have left the address behind (SIGKILL): start without it.
    if let Err(e) = vip.release().await {
        tracing::warn!(error = %e, "cannot clear the cluster IP at start");
    }
    loop {
        let now = Instant::now();
        let want = node.is_leader() && lock(&node.lease).held(now);
        if want && !held {
            match vip.acquire().await {
                Ok(()) => {
                    held = true;
                    node.vip_held.store(true, Ordering::Relaxed);
                    node.counters.vip_acquired.fetch_add(1, Ordering::Relaxed);
                    refreshes_left = GARP_REFRESHES;
                    next_refresh = Instant::now() + GARP_SPACING;
                    next_check = Instant::now() + RECHECK;
                    tracing::info!(address = %vip.address(), interface = vip.interface(), "cluster IP acquired");
                }
                Err(e) => tracing::error!(error = %e, "cannot add the cluster IP"),
            }
        } else if !want && held {
            match vip.release().await {
                Ok(()) => tracing::info!(address = %vip.address(), "cluster IP released"),
                Err(e) => tracing::error!(error = %e, "cannot remove the cluster IP"),
            }
            held = false;
            node.vip_held.store(false, Ordering::Relaxed);
            node.counters.vip_released.fetch_add(1, Ordering::Relaxed);
        } else if held && refreshes_left > 0 && now >= next_refresh {
            if let Err(e) = vip.announce().await {
                tracing::warn!(error = %e, "gratuitous ARP refresh failed");
            }
            refreshes_left -= 1;
            next_refresh = now + GARP_SPACING;
        } else if held && now >= next_check {
            next_check = now + RECHECK;
            if matches!(vip.is_present().await, Ok(false)) {
                tracing::warn!(address = %vip.address(), "the cluster IP was removed behind our back; adding it again");
                held = false;
                node.vip_held.store(false, Ordering::Relaxed);
                continue;
            }
        }
        // Wake at the lease's end, at the next refresh or check, or when something changes.
        let mut wake = Instant::now() + Duration::from_millis(100);
        if held {
            if let Some(until) = lock(&node.lease).valid_until() {
                wake = wake.min(until);
            }
            if refreshes_left > 0 {
                wake = wake.min(next_refresh);
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = changed.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    if held {
        if let Err(e) = vip.release().await {
            tracing::error!(error = %e, "cannot remove the cluster IP on shutdown");
        }
        node.vip_held.store(false, Ordering::Relaxed);
    }
}
