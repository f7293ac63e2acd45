//! `GatewayStatus` answers from the members' dataplanes (sans-I/O). For one GatewayGroup and
//! what each member host's dataplane said (`DataplaneDiagnostics.GatewayStatus`, or why it
//! could not be asked):
//!
//! - a member's instances of the group are its VRRP instances with the group's VRID and
//!   those in their sync groups (the inside and outside instances fail over together); its
//!   state is theirs when they agree (MIXED when not, NONE without any, UNREACHABLE);
//! - its session sync counts when it follows one of those instances;
//! - the sync lag of a backup is what the master reports for it (the master's peer with the
//!   backup's sync address), the master's is the highest over its peers;
//! - once the leader has chosen the group's sync members (`sync_assignment`), each member
//!   is `master`, `standby` (chosen) or `spare` (not chosen: nobody streams to it, so an
//!   incomplete replica is no problem there);
//! - the group is **redundant** with exactly one master and at least one BACKUP whose session
//!   sync is complete (a chosen one, once there is a choice); `problems` says in words what
//!   keeps it from that (split brain, no master, unreachable members, backups not synced, no
//!   chosen standby) and what else is off (a member without the group's VRID, FAULT, a
//!   dataplane priority other than the object's, a FloatingIp or SnatRule the member leaves
//!   out for clashing with its host.toml `[nat]`).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use aegis_api::controlplane::v1::{GatewayGroup, GatewayGroupStatus, GatewayMemberStatus};
use aegis_api::dataplane::v1 as pb;

/// What one member host gave: its dataplane's gateway status, or why it could not be asked.
pub type MemberResult = Result<pb::GatewayStatusReply, String>;

/// VRRP state names, as the dataplane reports them.
pub const MASTER: &str = "MASTER";
/// A backup instance.
pub const BACKUP: &str = "BACKUP";
/// A faulted instance (a tracked port down).
pub const FAULT: &str = "FAULT";
/// A member whose instances of the group are not all in the same state.
pub const MIXED: &str = "MIXED";
/// A member running no instance with the group's VRID.
pub const NONE: &str = "NONE";
/// A member whose dataplane could not be asked.
pub const UNREACHABLE: &str = "UNREACHABLE";

/// The instances of `vrrp` that belong to the group with `vrid`: those with the VRID and
/// those in the sync groups of these, in configuration order.
pub fn group_instances(vrid: u32, vrrp: &pb::ShowVrrpReply) -> Vec<pb::VrrpInstance> {
    let sync_groups: BTreeSet<&str> = vrrp
        .instances
        .iter()
        .filter(|i| i.vrid == vrid && !i.sync_group.is_empty())
        .map(|i| i.sync_group.as_str())
        .collect();
    vrrp.instances
        .iter()
        .filter(|i| i.vrid == vrid || sync_groups.contains(i.sync_group.as_str()))
        .cloned()
        .collect()
}

/// One member as its dataplane reports it (`result` `None`: it was not asked, as it is no
/// host), and the problems it shows on its own.
fn member(
    host: &str,
    priority: u32,
    vrid: u32,
    result: Option<&MemberResult>,
) -> (GatewayMemberStatus, Vec<String>) {
    let mut m = GatewayMemberStatus {
        host: host.to_owned(),
        priority,
        ..GatewayMemberStatus::default()
    };
    let reply = match result {
        Some(Ok(reply)) => reply,
        Some(Err(e)) => {
            m.state = UNREACHABLE.into();
            m.error = e.clone();
            return (m, vec![format!("{host} unreachable: {e}")]);
        }
        None => {
            m.state = UNREACHABLE.into();
            m.error = "no such host".into();
            return (m, vec![format!("{host} unreachable: no such host")]);
        }
    };
    let mut problems = Vec::new();
    let vrrp = reply.vrrp.clone().unwrap_or_default();
    m.instances = group_instances(vrid, &vrrp);
    let states: BTreeSet<&str> = m.instances.iter().map(|i| i.state.as_str()).collect();
    m.state = match states.len() {
        0 => {
            problems.push(if vrrp.instances.is_empty() {
                format!("{host} runs no VRRP (no [vrrp] in its host.toml, and no instance of the group built yet)")
            } else {
                format!("{host} runs no VRRP instance with VRID {vrid}")
            });
            NONE.into()
        }
        1 => states.iter().next().map_or(NONE, |s| s).to_owned(),
        _ => {
            let each: Vec<String> = m
                .instances
                .iter()
                .map(|i| format!("{} {}", i.name, i.state))
                .collect();
            problems.push(format!(
                "{host}: its instances of the group disagree ({})",
                each.join(", ")
            ));
            MIXED.into()
        }
    };
    // What the member's dataplane says keeps the group's VRRP from running as declared
    // there (its keepalived.conf winning over the group, a peer left out...).
    problems.extend(vrrp.problems.iter().map(|p| format!("{host}: {p}")));
    // Control-plane NAT objects the member does not serve (host.toml's [nat] wins).
    problems.extend(
        reply
            .nat_conflicts
            .iter()
            .map(|c| format!("{host}: NAT conflict {c}")),
    );
    for i in m.instances.iter().filter(|i| i.state == FAULT) {
        problems.push(format!("{host}: {} is in FAULT ({})", i.name, i.last_cause));
    }
    for i in m
        .instances
        .iter()
        .filter(|i| i.vrid == vrid && i.priority != priority)
    {
        problems.push(format!(
            "{host}: priority {priority} in the group, {} configured in its instance {}",
            i.priority, i.name
        ));
    }
    m.sync = reply
        .sync
        .as_ref()
        .filter(|s| s.configured && m.instances.iter().any(|i| i.name == s.vrrp_instance))
        .cloned();
    (m, problems)
}

/// A member with an instance of the group in MASTER (a MIXED one counts).
fn is_master(m: &GatewayMemberStatus) -> bool {
    m.instances.iter().any(|i| i.state == MASTER)
}

/// Sets the sync lag of the masters (the highest over their peers) and of the members that
/// some master streams to (its peer entry for their sync address).
fn fill_lag(members: &mut [GatewayMemberStatus]) {
    let peers: Vec<pb::SyncPeer> = members
        .iter()
        .filter(|m| is_master(m))
        .filter_map(|m| m.sync.as_ref())
        .flat_map(|s| s.peers.iter().cloned())
        .collect();
    for m in members.iter_mut() {
        let Some(sync) = &m.sync else { continue };
        if is_master(m) {
            if let Some(worst) = sync
                .peers
                .iter()
                .max_by_key(|p| (p.lag, p.oldest_unacked_ms))
            {
                m.has_sync_lag = true;
                m.sync_lag = worst.lag;
                m.sync_oldest_unacked_ms = worst.oldest_unacked_ms;
            }
        } else if let Some(p) = peers.iter().find(|p| p.address == sync.address) {
            m.has_sync_lag = true;
            m.sync_lag = p.lag;
            m.sync_oldest_unacked_ms = p.oldest_unacked_ms;
        }
    }
}

/// The status of group `name` from its members' results (by host name).
pub fn group_status(
    name: &str,
    g: &GatewayGroup,
    results: &HashMap<String, MemberResult>,
) -> GatewayGroupStatus {
    let mut order: Vec<_> = g.members.iter().collect();
    order.sort_by(|a, b| (Reverse(a.priority), &a.host).cmp(&(Reverse(b.priority), &b.host)));
    let mut members = Vec::with_capacity(order.len());
    let mut own = Vec::new();
    for x in order {
        let (m, p) = member(&x.host, x.priority, g.vrid, results.get(&x.host));
        members.push(m);
        own.extend(p);
    }
    fill_lag(&mut members);
    let chosen: Option<&[String]> = g.sync_assignment.as_ref().map(|a| a.members.as_slice());
    if let Some(chosen) = chosen {
        for m in members.iter_mut() {
            m.sync_role = if is_master(m) {
                "master"
            } else if chosen.contains(&m.host) {
                "standby"
            } else {
                "spare"
            }
            .into();
        }
    }
    let counts = |m: &GatewayMemberStatus| chosen.is_none_or(|c| c.contains(&m.host));
    let masters: Vec<String> = members
        .iter()
        .filter(|m| is_master(m))
        .map(|m| m.host.clone())
        .collect();
    let mut problems = Vec::new();
    match masters.len() {
        0 if members.iter().any(|m| m.state == UNREACHABLE) => {
            problems.push("no master among the members that answered".to_owned());
        }
        0 => problems.push("no master".to_owned()),
        1 => {}
        _ => problems.push(format!("split brain: {} are MASTER", masters.join(", "))),
    }
    let backups: Vec<&GatewayMemberStatus> = members
        .iter()
        .filter(|m| m.state == BACKUP && counts(m))
        .collect();
    for b in &backups {
        match &b.sync {
            None => problems.push(format!(
                "{}: no session sync following its instance of the group",
                b.host
            )),
            Some(s) if !s.synced => problems.push(format!(
                "{}: session sync not complete (bulk resync not done)",
                b.host
            )),
            Some(_) => {}
        }
    }
    let synced_backup = backups
        .iter()
        .any(|b| b.sync.as_ref().is_some_and(|s| s.synced));
    if backups.is_empty() && chosen.is_some() {
        problems.push("no chosen standby is BACKUP".to_owned());
    } else if backups.is_empty() {
        problems.push("no backup".to_owned());
    } else if !synced_backup {
        problems.push("no backup with complete session sync".to_owned());
    }
    problems.extend(own);
    GatewayGroupStatus {
        name: name.to_owned(),
        vrid: g.vrid,
        external_addresses: g.external_addresses.clone(),
        tunnel_address: g.tunnel_address.clone(),
        redundant: masters.len() == 1 && synced_backup,
        masters,
        sync_members: chosen.map(<[String]>::to_vec).unwrap_or_default(),
        sync_generation: g.sync_assignment.as_ref().map_or(0, |a| a.generation),
        sync_reason: g
            .sync_assignment
            .as_ref()
            .map(|a| a.reason.clone())
            .unwrap_or_default(),
        standby_count: g.standby_count.max(1),
        members,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use aegis_api::controlplane::v1::GatewayMember;

    use super::*;

    fn instance(name: &str, vrid: u32, state: &str, priority: u32) -> pb::VrrpInstance {
        pb::VrrpInstance {
            name: name.into(),
            port: "ext0".into(),
            vrid,
            version: 3,
            state: state.into(),
            priority,
            effective_priority: priority,
            ..pb::VrrpInstance::default()
        }
    }

    fn sync(role: &str, address: &str, synced: bool, peers: &[(&str, u64)]) -> pb::ShowSyncReply {
        pb::ShowSyncReply {
            configured: true,
            role: role.into(),
            address: address.into(),
            vrrp_instance: "VI_EXT".into(),
            synced,
            peers: peers
                .iter()
                .map(|(a, lag)| pb::SyncPeer {
                    address: (*a).into(),
                    lag: *lag,
                    oldest_unacked_ms: lag * 10,
                    ..pb::SyncPeer::default()
                })
                .collect(),
            ..pb::ShowSyncReply::default()
        }
    }

    fn reply(instances: Vec<pb::VrrpInstance>, sync: Option<pb::ShowSyncReply>) -> MemberResult {
        Ok(pb::GatewayStatusReply {
            gateway: true,
            vrrp: Some(pb::ShowVrrpReply {
                instances,
                ..pb::ShowVrrpReply::default()
            }),
            sync,
            nat_conflicts: Vec::new(),
        })
    }

    /// gw1 (200) master, gw2 (100) backup, gw3 (150) backup, all VRID 51.
    fn group() -> GatewayGroup {
        GatewayGroup {
            external_network: "ext".into(),
            members: [("gw2", 100), ("gw1", 200), ("gw3", 150)]
                .into_iter()
                .map(|(h, p)| GatewayMember {
                    host: h.into(),
                    priority: p,
                })
                .collect(),
            external_addresses: vec!["203.0.113.10".into()],
            vrid: 51,
            tunnel_address: String::new(),
            ..Default::default()
        }
    }

    fn master(host: &str, priority: u32) -> (String, MemberResult) {
        (
            host.into(),
            reply(
                vec![instance("VI_EXT", 51, MASTER, priority)],
                Some(sync(
                    "master",
                    "10.0.0.1",
                    true,
                    &[("10.0.0.2", 3), ("10.0.0.3", 40)],
                )),
            ),
        )
    }

    fn backup(host: &str, priority: u32, address: &str, synced: bool) -> (String, MemberResult) {
        (
            host.into(),
            reply(
                vec![instance("VI_EXT", 51, BACKUP, priority)],
                Some(sync("backup", address, synced, &[])),
            ),
        )
    }

    fn states(s: &GatewayGroupStatus) -> Vec<(&str, u32, &str)> {
        s.members
            .iter()
            .map(|m| (m.host.as_str(), m.priority, m.state.as_str()))
            .collect()
    }

    #[test]
    fn one_master_and_a_synced_backup_is_redundant() {
        let results = HashMap::from([
            master("gw1", 200),
            backup("gw2", 100, "10.0.0.2", true),
            backup("gw3", 150, "10.0.0.3", false),
        ]);
        let s = group_status("gw-a", &group(), &results);
        assert_eq!(
            states(&s),
            [
                ("gw1", 200, MASTER),
                ("gw3", 150, BACKUP),
                ("gw2", 100, BACKUP)
            ]
        );
        assert_eq!(s.masters, ["gw1"]);
        assert!(s.redundant, "{:?}", s.problems);
        assert_eq!(
            s.problems,
            ["gw3: session sync not complete (bulk resync not done)"]
        );
        let lag: Vec<(bool, u64, u64)> = s
            .members
            .iter()
            .map(|m| (m.has_sync_lag, m.sync_lag, m.sync_oldest_unacked_ms))
            .collect();
        assert_eq!(lag, [(true, 40, 400), (true, 40, 400), (true, 3, 30)]);
        assert_eq!((s.vrid, s.external_addresses.len()), (51, 1));
    }

    #[test]
    fn two_masters_are_a_split_brain() {
        let results = HashMap::from([
            master("gw1", 200),
            master("gw3", 150),
            backup("gw2", 100, "10.0.0.2", true),
        ]);
        let s = group_status("gw-a", &group(), &results);
        assert_eq!(s.masters, ["gw1", "gw3"]);
        assert!(!s.redundant);
        assert_eq!(s.problems[0], "split brain: gw1, gw3 are MASTER");
    }

    #[test]
    fn no_master_is_flagged() {
        let results = HashMap::from([
            backup("gw1", 200, "10.0.0.1", true),
            backup("gw2", 100, "10.0.0.2", true),
            backup("gw3", 150, "10.0.0.3", true),
        ]);
        let s = group_status("gw-a", &group(), &results);
        assert!(s.masters.is_empty());
        assert!(!s.redundant);
        assert_eq!(s.problems, ["no master"]);
        assert!(s.members.iter().all(|m| !m.has_sync_lag));
    }

    #[test]
    fn an_unreachable_member_is_listed_not_fatal() {
        let results = HashMap::from([
            master("gw1", 200),
            backup("gw2", 100, "10.0.0.2", true),
            ("gw3".into(), Err("down: last heartbeat 7.2s ago".into())),
        ]);
        let s = group_status("gw-a", &group(), &results);
        assert_eq!(s.members[1].state, UNREACHABLE);
        assert_eq!(s.members[1].error, "down: last heartbeat 7.2s ago");
        assert!(s.members[1].instances.is_empty());
        assert!(s.redundant, "the master and a synced backup answered");
        assert_eq!(
            s.problems,
            ["gw3 unreachable: down: last heartbeat 7.2s ago"]
        );

        // The master unreachable: no master among those that answered; a member that is
        // no host at all is unreachable too.
        let results = HashMap::from([
            ("gw1".into(), Err("no answer".into())),
            backup("gw2", 100, "10.0.0.2", true),
        ]);
        let s = group_status("gw-a", &group(), &results);
        assert!(!s.redundant);
        assert_eq!(
            s.problems,
            [
                "no master among the members that answered",
                "gw1 unreachable: no answer",
                "gw3 unreachable: no such host",
            ]
        );
    }

    #[test]
    fn with_chosen_sync_members_only_a_synced_standby_counts_and_spares_are_no_problem() {
        use aegis_api::controlplane::v1::SyncAssignment;
        let mut g = group();
        g.sync_assignment = Some(SyncAssignment {
            members: vec!["gw1".into(), "gw2".into()],
            generation: 3,
            reason: "gw3 stopped heartbeating".into(),
        });
        // gw2 (chosen) still resyncing, gw3 (spare) synced from an old stream: not redundant.
        let results = HashMap::from([
            master("gw1", 200),
            backup("gw2", 100, "10.0.0.2", false),
            backup("gw3", 150, "10.0.0.3", true),
        ]);
        let s = group_status("gw-a", &g, &results);
        assert!(!s.redundant, "{:?}", s.problems);
        let roles: Vec<(&str, &str)> = s
            .members
            .iter()
            .map(|m| (m.host.as_str(), m.sync_role.as_str()))
            .collect();
        assert_eq!(
            roles,
            [("gw1", "master"), ("gw3", "spare"), ("gw2", "standby")]
        );
        assert_eq!(
            s.problems,
            [
                "gw2: session sync not complete (bulk resync not done)",
                "no backup with complete session sync"
            ]
        );
        assert_eq!(
            (
                s.sync_members.as_slice(),
                s.sync_generation,
                s.standby_count
            ),
            (&["gw1".to_string(), "gw2".to_string()][..], 3, 1)
        );
        // gw2 synced, gw3 a spare without a replica: redundant, nothing to say about gw3.
        let results = HashMap::from([
            master("gw1", 200),
            backup("gw2", 100, "10.0.0.2", true),
            backup("gw3", 150, "10.0.0.3", false),
        ]);
        let s = group_status("gw-a", &g, &results);
        assert!(s.redundant, "{:?}", s.problems);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn backups_without_complete_sync_do_not_make_it_redundant() {
        let mut results =
            HashMap::from([master("gw1", 200), backup("gw2", 100, "10.0.0.2", false)]);
        results.insert(
            "gw3".into(),
            reply(vec![instance("VI_EXT", 51, BACKUP, 150)], None),
        );
        let s = group_status("gw-a", &group(), &results);
        assert!(!s.redundant);
        assert_eq!(
            s.problems,
            [
                "gw3: no session sync following its instance of the group",
                "gw2: session sync not complete (bulk resync not done)",
                "no backup with complete session sync",
            ]
        );
    }

    #[test]
    fn members_without_the_vrid_faults_mixed_states_and_priority_mismatches() {
        let mut inside = instance("VI_INT", 52, MASTER, 200);
        inside.sync_group = "G".into();
        let mut outside = instance("VI_EXT", 51, BACKUP, 190);
        outside.sync_group = "G".into();
        let mut faulted = instance("VI_EXT", 51, FAULT, 100);
        faulted.last_cause = "tracked port int0 down".into();
        let results = HashMap::from([
            (
                "gw1".into(),
                reply(
                    vec![inside, instance("VI_OTHER", 9, MASTER, 10), outside],
                    None,
                ),
            ),
            ("gw2".into(), reply(vec![faulted], None)),
            (
                "gw3".into(),
                reply(vec![instance("VI_X", 7, BACKUP, 150)], None),
            ),
        ]);
        let s = group_status("gw-a", &group(), &results);
        assert_eq!(
            states(&s),
            [("gw1", 200, MIXED), ("gw3", 150, NONE), ("gw2", 100, FAULT)]
        );
        let gw1: Vec<&str> = s.members[0]
            .instances
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(gw1, ["VI_INT", "VI_EXT"], "its sync group, not VI_OTHER");
        assert_eq!(s.masters, ["gw1"]);
        assert_eq!(
            s.problems,
            [
                "no backup",
                "gw1: its instances of the group disagree (VI_INT MASTER, VI_EXT BACKUP)",
                "gw1: priority 200 in the group, 190 configured in its instance VI_EXT",
                "gw3 runs no VRRP instance with VRID 51",
                "gw2: VI_EXT is in FAULT (tracked port int0 down)",
            ]
        );

        let results = HashMap::from([("gw1".into(), reply(Vec::new(), None))]);
        let s = group_status("gw-a", &group(), &results);
        assert_eq!(s.members[0].state, NONE);
        assert!(s
            .problems
            .contains(&"gw1 runs no VRRP (no [vrrp] in its host.toml, and no instance of the group built yet)".to_owned()));
    }

    #[test]
    fn what_a_member_says_about_its_group_vrrp_is_a_problem() {
        let mut said = reply(vec![instance("VI_EXT", 51, BACKUP, 100)], None);
        if let Ok(r) = &mut said {
            if let Some(v) = &mut r.vrrp {
                v.problems = vec!["keepalived.conf's vrrp_instance VI_EXT (VRID 51) serves \
                                   gateway group gw-a (VRID 51): ..."
                    .into()];
            }
        }
        let results = HashMap::from([master("gw1", 200), ("gw2".into(), said)]);
        let s = group_status("gw-a", &group(), &results);
        assert!(
            s.problems.iter().any(|p| p.starts_with(
                "gw2: keepalived.conf's vrrp_instance VI_EXT (VRID 51) serves gateway group"
            )),
            "{:?}",
            s.problems
        );
    }

    /// A member that leaves out a control-plane NAT object (host.toml's `[nat]` owns the
    /// address) says so, and the group shows it as that member's problem; the group's
    /// redundancy does not depend on it.
    #[test]
    fn a_members_nat_conflicts_are_problems_of_the_group() {
        let mut said = reply(
            vec![instance("VI_EXT", 51, BACKUP, 100)],
            Some(sync("backup", "10.0.0.2", true, &[])),
        );
        if let Ok(r) = &mut said {
            r.nat_conflicts =
                vec!["the control plane's floating IP 203.0.113.20 clashes with host.toml".into()];
        }
        let results = HashMap::from([master("gw1", 200), ("gw2".into(), said)]);
        let s = group_status("gw-a", &group(), &results);
        assert!(
            s.problems.contains(
                &"gw2: NAT conflict the control plane's floating IP 203.0.113.20 clashes with host.toml"
                    .to_owned()
            ),
            "{:?}",
            s.problems
        );
        assert!(
            !s.problems.iter().any(|p| p.starts_with("gw1:")),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn sync_following_another_instance_is_not_the_groups() {
        let mut other = sync("backup", "10.0.0.2", true, &[]);
        other.vrrp_instance = "VI_OTHER".into();
        let results = HashMap::from([
            master("gw1", 200),
            (
                "gw2".into(),
                reply(vec![instance("VI_EXT", 51, BACKUP, 100)], Some(other)),
            ),
        ]);
        let s = group_status("gw-a", &group(), &results);
        assert!(s.members[2].sync.is_none());
        assert!(!s.redundant);
    }
}
