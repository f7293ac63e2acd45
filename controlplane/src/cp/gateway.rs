//! `aegisctl gateway status [GROUP]`: every gateway group (or one) as the control plane's
//! `Diagnostics.GatewayStatus` judges it from its members' dataplanes: per group whether it
//! is redundant and which member is MASTER, one row per member and VRRP instance (member
//! state, VRRP state and priorities, time in state, transitions, the master heard, session
//! sync with its lag, sessions, installs, resends and refusals), then the problems.

use std::io::Write;

use aegis_api::controlplane::v1::{
    GatewayGroupStatus, GatewayMemberStatus, GatewayStatusRequest, GatewayStatusResponse,
};
use aegis_api::dataplane::v1 as pb;
use clap::{Args, Subcommand};

use super::{render, Ctx, Output};
use crate::dp::render::{duration, vrrp_master, vrrp_priority};
use crate::error::CliError;
use crate::table::{Align, Table};

/// `gateway ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum GatewayCommand {
    /// Every gateway group (or GROUP): per member host its VRRP instances and session sync,
    /// which member is MASTER, and whether the group is redundant. Members that cannot be
    /// asked are listed.
    Status(GatewayStatusArgs),
}

/// `gateway status`.
#[derive(Debug, Clone, Args)]
pub struct GatewayStatusArgs {
    /// Only this gateway group (default: every group).
    pub group: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs a `gateway` command.
pub(super) async fn run(
    ctx: &Ctx,
    cmd: &GatewayCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let GatewayCommand::Status(a) = cmd;
    let req = GatewayStatusRequest {
        group: a.group.clone().unwrap_or_default(),
    };
    let r = ctx
        .call(|mut c| {
            let req = req.clone();
            async move { c.diagnostics.gateway_status(req).await }
        })
        .await?;
    match a.output {
        Output::Json => render::json(out, &r),
        Output::Table => status_table(out, &r),
    }
}

/// Each group: a title line with the verdict, the member table, the problems.
fn status_table(out: &mut dyn Write, r: &GatewayStatusResponse) -> Result<(), CliError> {
    if r.groups.is_empty() {
        writeln!(out, "no gateway groups")?;
    }
    for (n, g) in r.groups.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", title(g))?;
        writeln!(out, "{}", sync_line(g))?;
        member_table(g).write(out, 0)?;
        for p in &g.problems {
            writeln!(out, "  ! {p}")?;
        }
    }
    Ok(())
}

/// "gateway group gw-a (VRID 51, 203.0.113.10, tunnel 10.88.0.100): redundant, master gw1".
fn title(g: &GatewayGroupStatus) -> String {
    let mut what = vec![format!("VRID {}", g.vrid)];
    what.extend(g.external_addresses.iter().cloned());
    if !g.tunnel_address.is_empty() {
        what.push(format!("tunnel {}", g.tunnel_address));
    }
    let masters = match g.masters.len() {
        0 => "no master".to_owned(),
        1 => format!("master {}", g.masters.join("")),
        _ => format!("SPLIT BRAIN: masters {}", g.masters.join(", ")),
    };
    format!(
        "gateway group {} ({}): {}, {masters}",
        g.name,
        what.join(", "),
        if g.redundant {
            "redundant"
        } else {
            "NOT REDUNDANT"
        }
    )
}

/// "sync members g1, g3 (1 standby, generation 2: g2 stopped heartbeating; ...)".
fn sync_line(g: &GatewayGroupStatus) -> String {
    let standbys = match g.standby_count {
        0 | 1 => "1 standby".to_owned(),
        n => format!("{n} standbys"),
    };
    if g.sync_members.is_empty() {
        return format!(
            "  sync members not chosen yet ({standbys}): masters stream to their host.toml peers"
        );
    }
    format!(
        "  sync members {} ({standbys}, generation {}: {})",
        g.sync_members.join(", "),
        g.sync_generation,
        g.sync_reason
    )
}

/// One row per member and instance of the group; the member and sync columns on its first.
fn member_table(g: &GatewayGroupStatus) -> Table {
    let mut t = Table::new(&[
        ("HOST", Align::Left),
        ("PRIO", Align::Right),
        ("STATE", Align::Left),
        ("INSTANCE", Align::Left),
        ("VRRP", Align::Left),
        ("VRRP PRIO", Align::Right),
        ("SINCE", Align::Right),
        ("TRANS", Align::Right),
        ("MASTER", Align::Left),
        ("SYNC", Align::Left),
        ("LAG", Align::Right),
        ("SESSIONS", Align::Right),
        ("INSTALLED", Align::Right),
        ("RESENDS", Align::Right),
        ("AUTH/TRUNC", Align::Right),
        ("PEERS", Align::Right),
    ]);
    for m in &g.members {
        let mut first = vec![m.host.clone(), m.priority.to_string(), m.state.clone()];
        if m.instances.is_empty() {
            first.extend(std::iter::repeat_n("-".to_owned(), 6));
            first.extend(sync_cells(m));
            t.row(first);
            continue;
        }
        for (k, i) in m.instances.iter().enumerate() {
            let mut row = if k == 0 {
                first.clone()
            } else {
                vec![String::new(); 3]
            };
            row.extend(instance_cells(i));
            if k == 0 {
                row.extend(sync_cells(m));
            }
            t.row(row);
        }
    }
    t
}

/// INSTANCE .. MASTER of one VRRP instance (the master only when another one is).
fn instance_cells(i: &pb::VrrpInstance) -> Vec<String> {
    let master = if i.state == "MASTER" || i.master.is_empty() {
        "-".to_owned()
    } else {
        vrrp_master(Some(&i.master), i.master_priority)
    };
    vec![
        i.name.clone(),
        i.state.clone(),
        vrrp_priority(i.priority, i.effective_priority),
        duration(i.in_state_ms as f64 / 1000.0),
        i.transitions.to_string(),
        master,
    ]
}

/// SYNC .. PEERS of a member: "-" throughout without session sync.
fn sync_cells(m: &GatewayMemberStatus) -> Vec<String> {
    let Some(s) = &m.sync else {
        return vec!["-".to_owned(); 7];
    };
    let role = match (m.sync_role.as_str(), s.synced) {
        ("spare", _) => "spare".to_owned(),
        (_, true) => s.role.clone(),
        (_, false) => format!("{} (not synced)", s.role),
    };
    let lag = if m.has_sync_lag {
        m.sync_lag.to_string()
    } else {
        "-".to_owned()
    };
    let rejected = |reason: &str| {
        s.rejected
            .iter()
            .find(|n| n.name == reason)
            .map_or(0, |n| n.count)
    };
    let (resends, peers) = if s.role == "master" {
        (
            s.peers.iter().map(|p| p.resends).sum::<u64>().to_string(),
            s.peers.len().to_string(),
        )
    } else {
        ("-".to_owned(), "-".to_owned())
    };
    vec![
        role,
        lag,
        s.sessions.to_string(),
        s.installs_done.to_string(),
        resends,
        format!("{}/{}", rejected("auth"), rejected("truncated")),
        peers,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, state: &str, prio: u32, effective: u32) -> pb::VrrpInstance {
        pb::VrrpInstance {
            name: name.into(),
            vrid: 51,
            state: state.into(),
            priority: prio,
            effective_priority: effective,
            in_state_ms: 303_000,
            transitions: 3,
            master: if state == "MASTER" {
                "203.0.113.2".into()
            } else {
                "203.0.113.3".into()
            },
            master_priority: 200,
            ..pb::VrrpInstance::default()
        }
    }

    fn named(counts: &[(&str, u64)]) -> Vec<pb::NamedCount> {
        counts
            .iter()
            .map(|(n, c)| pb::NamedCount {
                name: (*n).into(),
                count: *c,
            })
            .collect()
    }

    fn response() -> GatewayStatusResponse {
        let master_sync = pb::ShowSyncReply {
            configured: true,
            role: "master".into(),
            synced: true,
            sessions: 203,
            installs_done: 0,
            peers: vec![
                pb::SyncPeer {
                    address: "10.0.0.3".into(),
                    lag: 4,
                    resends: 10,
                    ..pb::SyncPeer::default()
                },
                pb::SyncPeer {
                    address: "10.0.0.4".into(),
                    resends: 2,
                    ..pb::SyncPeer::default()
                },
            ],
            rejected: named(&[("auth", 0), ("truncated", 1)]),
            ..pb::ShowSyncReply::default()
        };
        let backup_sync = pb::ShowSyncReply {
            configured: true,
            role: "backup".into(),
            synced: false,
            sessions: 150,
            installs_done: 150,
            rejected: named(&[("auth", 3)]),
            ..pb::ShowSyncReply::default()
        };
        GatewayStatusResponse {
            groups: vec![GatewayGroupStatus {
                name: "gw-a".into(),
                vrid: 51,
                external_addresses: vec!["203.0.113.10".into()],
                tunnel_address: "10.88.0.100".into(),
                members: vec![
                    GatewayMemberStatus {
                        host: "gw1".into(),
                        priority: 200,
                        state: "MASTER".into(),
                        instances: vec![
                            instance("VI_EXT", "MASTER", 200, 200),
                            instance("VI_INT", "MASTER", 200, 200),
                        ],
                        sync: Some(master_sync),
                        has_sync_lag: true,
                        sync_lag: 4,
                        ..GatewayMemberStatus::default()
                    },
                    GatewayMemberStatus {
                        host: "gw2".into(),
                        priority: 150,
                        state: "BACKUP".into(),
                        instances: vec![instance("VI_EXT", "BACKUP", 150, 90)],
                        sync: Some(backup_sync),
                        has_sync_lag: true,
                        sync_lag: 4,
                        ..GatewayMemberStatus::default()
                    },
                    GatewayMemberStatus {
                        host: "gw3".into(),
                        priority: 100,
                        state: "UNREACHABLE".into(),
                        error: "down: last heartbeat 7.2s ago".into(),
                        ..GatewayMemberStatus::default()
                    },
                ],
                masters: vec!["gw1".into()],
                redundant: false,
                problems: vec![
                    "gw2: session sync not complete (bulk resync not done)".into(),
                    "no backup with complete session sync".into(),
                    "gw3 unreachable: down: last heartbeat 7.2s ago".into(),
                ],
                ..GatewayGroupStatus::default()
            }],
        }
    }

    #[test]
    fn the_table_shows_members_instances_sync_and_problems() {
        let mut out = Vec::new();
        status_table(&mut out, &response()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = "\
gateway group gw-a (VRID 51, 203.0.113.10, tunnel 10.88.0.100): NOT REDUNDANT, master gw1
  sync members not chosen yet (1 standby): masters stream to their host.toml peers
HOST  PRIO  STATE        INSTANCE  VRRP    VRRP PRIO  SINCE  TRANS  MASTER             SYNC                 LAG  SESSIONS  INSTALLED  RESENDS  AUTH/TRUNC  PEERS
gw1    200  MASTER       VI_EXT    MASTER        200  5m03s      3  -                  master                 4       203          0       12         0/1      2
                         VI_INT    MASTER        200  5m03s      3  -
gw2    150  BACKUP       VI_EXT    BACKUP   90 (150)  5m03s      3  203.0.113.3 (200)  backup (not synced)    4       150        150        -         3/0      -
gw3    100  UNREACHABLE  -         -               -      -      -  -                  -                      -         -          -        -           -      -
  ! gw2: session sync not complete (bulk resync not done)
  ! no backup with complete session sync
  ! gw3 unreachable: down: last heartbeat 7.2s ago
";
        assert_eq!(text, expected);
    }

    #[test]
    fn the_chosen_sync_members_and_spares_are_shown() {
        let mut r = response();
        let g = &mut r.groups[0];
        g.sync_members = vec!["gw1".into(), "gw3".into()];
        g.sync_generation = 2;
        g.sync_reason = "gw2 stopped heartbeating".into();
        g.members[0].sync_role = "master".into();
        g.members[1].sync_role = "spare".into();
        let mut out = Vec::new();
        status_table(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "  sync members gw1, gw3 (1 standby, generation 2: gw2 stopped heartbeating)"
        );
        assert!(
            lines[5].starts_with("gw2 ") && lines[5].contains(" spare "),
            "{}",
            lines[5]
        );
        r.groups[0].standby_count = 2;
        assert!(sync_line(&r.groups[0]).contains("(2 standbys, generation 2"));
    }

    #[test]
    fn split_brain_and_no_groups_are_said() {
        let mut r = response();
        r.groups[0].masters = vec!["gw1".into(), "gw2".into()];
        assert!(title(&r.groups[0]).ends_with("NOT REDUNDANT, SPLIT BRAIN: masters gw1, gw2"));
        r.groups[0].masters.clear();
        r.groups[0].tunnel_address.clear();
        assert_eq!(
            title(&r.groups[0]),
            "gateway group gw-a (VRID 51, 203.0.113.10): NOT REDUNDANT, no master"
        );
        let mut out = Vec::new();
        status_table(&mut out, &GatewayStatusResponse::default()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "no gateway groups\n");
    }

    #[test]
    fn json_is_the_response_message() {
        let mut out = Vec::new();
        render::json(&mut out, &response()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let gw1 = &v["groups"][0]["members"][0];
        assert_eq!(gw1["state"], "MASTER");
        assert_eq!(gw1["instances"][0]["effective_priority"], 200);
        assert_eq!(gw1["sync"]["peers"][0]["resends"], 10);
        assert_eq!(
            v["groups"][0]["members"][2]["sync"],
            serde_json::Value::Null
        );
        assert_eq!(v["groups"][0]["redundant"], false);
    }
}
