//! Standby selection for gateway groups (sans-I/O): which members hold a group's NAT
//! sessions. The leader keeps, per GatewayGroup, the master and `standby_count` standbys
//! (at least one) in its `sync_assignment`: whichever of them is the VRRP master streams
//! its sessions to the others, and the remaining members are spares.
//!
//! - The first choice takes the live members by priority (highest first, ties by name).
//! - A chosen member stays chosen while its host heartbeats: nothing changes when nothing
//!   died, and a member that comes back (a higher priority included) does not take the
//!   role from a live one; it is a spare until a chosen member dies.
//! - A chosen member whose host stopped heartbeating is replaced by the live spare with the
//!   highest priority; with no live spare it is dropped.
//! - With no live member at all the choice stays as it is (nobody could act on another).
//! - A changed `standby_count`: the best live spares are added, or the lowest priorities
//!   dropped.

use std::cmp::Reverse;

use aegis_api::controlplane::v1::{GatewayGroup, SyncAssignment};

/// A new choice for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The chosen members, highest priority first.
    pub members: Vec<String>,
    /// Members dropped (their hosts stopped heartbeating, or are no longer members).
    pub dropped: Vec<String>,
    /// Members added.
    pub added: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

impl Selection {
    /// The assignment to store: `previous`'s generation plus one.
    pub fn assignment(&self, previous: Option<&SyncAssignment>) -> SyncAssignment {
        SyncAssignment {
            members: self.members.clone(),
            generation: previous.map_or(0, |p| p.generation) + 1,
            reason: self.reason.clone(),
        }
    }
}

/// How many members the group keeps synced: the master and its standbys.
pub fn wanted(g: &GatewayGroup) -> usize {
    (g.standby_count.max(1) as usize + 1).min(g.members.len())
}

/// The new choice for `g`, or `None` when the current one stands. `alive` says whether a
/// member's host heartbeats.
pub fn select(g: &GatewayGroup, alive: &dyn Fn(&str) -> bool) -> Option<Selection> {
    let priority = |h: &str| {
        g.members
            .iter()
            .find(|m| m.host == h)
            .map_or(0, |m| m.priority)
    };
    let current: Vec<&str> = g
        .sync_assignment
        .as_ref()
        .map(|a| a.members.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut keep: Vec<&str> = current
        .iter()
        .copied()
        .filter(|h| g.members.iter().any(|m| m.host == *h) && alive(h))
        .collect();
    let mut spares: Vec<(u32, &str)> = g
        .members
        .iter()
        .filter(|m| !keep.contains(&m.host.as_str()) && alive(&m.host))
        .map(|m| (m.priority, m.host.as_str()))
        .collect();
    spares.sort_by(|a, b| (Reverse(a.0), a.1).cmp(&(Reverse(b.0), b.1)));
    let want = wanted(g);
    // Fewer standbys wanted than chosen (standby_count lowered): the lowest priorities go.
    keep.sort_by(|a, b| (Reverse(priority(a)), *a).cmp(&(Reverse(priority(b)), *b)));
    keep.truncate(want);
    for (_, h) in spares {
        if keep.len() >= want {
            break;
        }
        keep.push(h);
    }
    if keep.is_empty() {
        return None;
    }
    keep.sort_by(|a, b| (Reverse(priority(a)), *a).cmp(&(Reverse(priority(b)), *b)));
    if keep == current {
        return None;
    }
    let dropped: Vec<String> = current
        .iter()
        .filter(|h| !keep.contains(h))
        .map(|h| h.to_string())
        .collect();
    let added: Vec<String> = keep
        .iter()
        .filter(|h| !current.contains(h))
        .map(|h| h.to_string())
        .collect();
    let reason = if g.sync_assignment.is_none() {
        format!(
            "first choice: {} by priority among the live members",
            keep.join(", ")
        )
    } else {
        let mut r = Vec::new();
        let dead: Vec<&str> = dropped
            .iter()
            .map(String::as_str)
            .filter(|h| !g.members.iter().any(|m| m.host == *h) || !alive(h))
            .collect();
        let surplus: Vec<&str> = dropped
            .iter()
            .map(String::as_str)
            .filter(|h| !dead.contains(h))
            .collect();
        if !dead.is_empty() {
            r.push(format!(
                "{} stopped heartbeating or left the group",
                dead.join(", ")
            ));
        }
        if !surplus.is_empty() {
            r.push(format!(
                "{} no longer needed (fewer standbys)",
                surplus.join(", ")
            ));
        }
        if !added.is_empty() {
            r.push(format!(
                "{} chosen by priority among the live spares",
                added.join(", ")
            ));
        } else if keep.len() < want {
            r.push("no live spare to replace it".to_owned());
        }
        r.join("; ")
    };
    Some(Selection {
        members: keep.into_iter().map(str::to_owned).collect(),
        dropped,
        added,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use aegis_api::controlplane::v1::GatewayMember;

    use super::*;

    fn group(members: &[(&str, u32)], standbys: u32, chosen: Option<&[&str]>) -> GatewayGroup {
        GatewayGroup {
            members: members
                .iter()
                .map(|(h, p)| GatewayMember {
                    host: (*h).into(),
                    priority: *p,
                })
                .collect(),
            standby_count: standbys,
            sync_assignment: chosen.map(|c| SyncAssignment {
                members: c.iter().map(|h| h.to_string()).collect(),
                generation: 4,
                reason: String::new(),
            }),
            ..GatewayGroup::default()
        }
    }

    const THREE: &[(&str, u32)] = &[("g3", 100), ("g1", 200), ("g2", 150)];

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn the_first_choice_is_the_live_members_by_priority() {
        let s = select(&group(THREE, 0, None), &all).expect("a choice");
        assert_eq!(s.members, ["g1", "g2"]);
        assert_eq!(s.added, ["g1", "g2"]);
        assert!(s.reason.starts_with("first choice"), "{}", s.reason);
        assert_eq!(s.assignment(None).generation, 1);
        // A dead member is skipped; two standbys take all three.
        let s = select(&group(THREE, 0, None), &|h| h != "g1").unwrap();
        assert_eq!(s.members, ["g2", "g3"]);
        let s = select(&group(THREE, 2, None), &all).unwrap();
        assert_eq!(s.members, ["g1", "g2", "g3"]);
        // Equal priorities: by name.
        let s = select(&group(&[("b", 5), ("a", 5), ("c", 5)], 1, None), &all).unwrap();
        assert_eq!(s.members, ["a", "b"]);
    }

    #[test]
    fn nothing_changes_while_the_chosen_members_live() {
        assert_eq!(select(&group(THREE, 0, Some(&["g1", "g2"])), &all), None);
        // Even when the choice is not the priority order (g2 came back after g3 was chosen).
        assert_eq!(select(&group(THREE, 1, Some(&["g1", "g3"])), &all), None);
        // A dead spare changes nothing either.
        assert_eq!(
            select(&group(THREE, 1, Some(&["g1", "g2"])), &|h| h != "g3"),
            None
        );
    }

    #[test]
    fn a_dead_standby_is_replaced_by_the_best_live_spare() {
        let g = group(THREE, 1, Some(&["g1", "g2"]));
        let s = select(&g, &|h| h != "g2").expect("re-selection");
        assert_eq!(s.members, ["g1", "g3"]);
        assert_eq!(
            (s.dropped.as_slice(), s.added.as_slice()),
            (&["g2".to_string()][..], &["g3".to_string()][..])
        );
        assert!(s.reason.contains("g2 stopped heartbeating"), "{}", s.reason);
        assert_eq!(s.assignment(g.sync_assignment.as_ref()).generation, 5);
        // The master's death is the same: the survivors hold the sessions.
        let s = select(&g, &|h| h != "g1").unwrap();
        assert_eq!(s.members, ["g2", "g3"]);
    }

    #[test]
    fn a_returning_member_does_not_take_the_role_from_a_live_one() {
        // g2 died, g3 was chosen; g2 is back: it stays a spare.
        assert_eq!(select(&group(THREE, 1, Some(&["g1", "g3"])), &all), None);
        // ...until a chosen member dies: then it is the best spare.
        let s = select(&group(THREE, 1, Some(&["g1", "g3"])), &|h| h != "g3").unwrap();
        assert_eq!(s.members, ["g1", "g2"]);
    }

    #[test]
    fn without_a_live_spare_the_dead_member_is_dropped_and_nobody_alive_changes_nothing() {
        let g = group(THREE, 1, Some(&["g1", "g2"]));
        let s = select(&g, &|h| h == "g1").unwrap();
        assert_eq!(s.members, ["g1"]);
        assert!(s.reason.contains("no live spare"), "{}", s.reason);
        assert_eq!(select(&g, &|_| false), None);
        // A member that came back fills the gap.
        let s = select(&group(THREE, 1, Some(&["g1"])), &all).unwrap();
        assert_eq!(s.members, ["g1", "g2"]);
    }

    #[test]
    fn more_or_fewer_standbys_change_the_choice_by_priority() {
        let s = select(&group(THREE, 2, Some(&["g1", "g3"])), &all).unwrap();
        assert_eq!(s.members, ["g1", "g2", "g3"]);
        assert_eq!(s.added, ["g2"]);
        let s = select(&group(THREE, 1, Some(&["g1", "g2", "g3"])), &all).unwrap();
        assert_eq!(s.members, ["g1", "g2"]);
        assert_eq!(s.dropped, ["g3"]);
        assert!(s.reason.contains("g3 no longer needed"), "{}", s.reason);
    }

    #[test]
    fn members_removed_from_the_group_leave_the_choice() {
        let g = group(&[("g1", 200), ("g3", 100)], 1, Some(&["g1", "g2"]));
        let s = select(&g, &all).unwrap();
        assert_eq!(s.members, ["g1", "g3"]);
        assert_eq!(s.dropped, ["g2"]);
        // A one-member group: just that member.
        let s = select(&group(&[("g1", 200)], 0, None), &all).unwrap();
        assert_eq!(s.members, ["g1"]);
    }
}
