//! A set of instances and their sync groups (keepalived `vrrp_sync_group`): when one member
//! changes state on its own — becomes master, yields to a higher priority, or faults — the
//! other members follow, so the external and internal sides of a gateway move together. A
//! group leaves FAULT only when none of its members is faulted.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::instance::{Action, Cause, Config, ConfigError, Discard, Instance, State};
use crate::wire::Repr;

/// Why a set of instances was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// An instance's own parameters.
    #[error("vrrp_instance {name}: {source}")]
    Instance {
        /// The instance.
        name: String,
        /// What is wrong.
        source: ConfigError,
    },
    /// Two instances with one name.
    #[error("vrrp_instance {0} is defined twice")]
    DuplicateName(String),
    /// A group names an instance that does not exist.
    #[error("vrrp_sync_group {group}: no vrrp_instance {instance}")]
    UnknownMember {
        /// The group.
        group: String,
        /// The missing instance.
        instance: String,
    },
    /// An instance in two groups.
    #[error("vrrp_instance {0} is in more than one vrrp_sync_group")]
    TwoGroups(String),
}

/// A sync group: a name and its members (by instance name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupConfig {
    /// Group name.
    pub name: String,
    /// Member instance names.
    pub members: Vec<String>,
}

/// Instances (by index, in configuration order) and their sync groups.
#[derive(Debug, Clone)]
pub struct Router {
    instances: Vec<Instance>,
    groups: Vec<(String, Vec<usize>)>,
    group_of: Vec<Option<usize>>,
    actions: VecDeque<(usize, Action)>,
}

impl Router {
    /// Validates every instance and group.
    pub fn new(configs: Vec<Config>, groups: Vec<SyncGroupConfig>) -> Result<Router, RouterError> {
        let mut instances = Vec::with_capacity(configs.len());
        for c in configs {
            if instances
                .iter()
                .any(|i: &Instance| i.config().name == c.name)
            {
                return Err(RouterError::DuplicateName(c.name));
            }
            let name = c.name.clone();
            instances
                .push(Instance::new(c).map_err(|source| RouterError::Instance { name, source })?);
        }
        let mut group_of = vec![None; instances.len()];
        let mut out = Vec::new();
        for (g, group) in groups.into_iter().enumerate() {
            let mut members = Vec::new();
            for m in &group.members {
                let Some(i) = instances.iter().position(|x| &x.config().name == m) else {
                    return Err(RouterError::UnknownMember {
                        group: group.name.clone(),
                        instance: m.clone(),
                    });
                };
                if group_of[i].is_some() {
                    return Err(RouterError::TwoGroups(m.clone()));
                }
                group_of[i] = Some(g);
                members.push(i);
            }
            out.push((group.name, members));
        }
        Ok(Router {
            instances,
            groups: out,
            group_of,
            actions: VecDeque::new(),
        })
    }

    /// The instances, in configuration order.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The sync group of instance `i`, by name.
    pub fn group_of(&self, i: usize) -> Option<&str> {
        self.group_of[i].map(|g| self.groups[g].0.as_str())
    }

    /// Starts every instance.
    pub fn start(&mut self, now: Duration) {
        for i in 0..self.instances.len() {
            self.instances[i].start(now);
            self.settle(now, i);
        }
    }

    /// Stops every instance (masters send priority 0).
    pub fn shutdown(&mut self, now: Duration) {
        for i in 0..self.instances.len() {
            self.instances[i].shutdown(now);
            self.collect(i);
        }
    }

    /// Runs every due timer.
    pub fn poll(&mut self, now: Duration) {
        for i in 0..self.instances.len() {
            self.instances[i].poll(now);
            self.settle(now, i);
        }
    }

    /// The earliest timer of any instance.
    pub fn poll_at(&self) -> Option<Duration> {
        self.instances.iter().filter_map(Instance::poll_at).min()
    }

    /// Feeds an advertisement to instance `i`.
    pub fn receive(
        &mut self,
        now: Duration,
        i: usize,
        src: Ipv4Addr,
        adv: &Repr,
    ) -> Result<(), Discard> {
        let r = self.instances[i].receive(now, src, adv);
        self.settle(now, i);
        r
    }

    /// Sets instance `i`'s tracking state: the priority adjustment and whether a tracked
    /// object without weight is down (FAULT).
    pub fn set_tracking(&mut self, now: Duration, i: usize, adjust: i32, fault: bool) {
        self.instances[i].set_priority_adjust(adjust);
        self.instances[i].set_fault(now, fault);
        self.settle(now, i);
        if !fault {
            self.recover_group(now, i);
        }
    }

    /// Holds or releases preemption on every instance (see
    /// [`Instance::set_preempt_hold`]).
    pub fn set_preempt_hold(&mut self, hold: bool) {
        for i in &mut self.instances {
            i.set_preempt_hold(hold);
        }
    }

    /// The next action: which instance, and what.
    pub fn pop_action(&mut self) -> Option<(usize, Action)> {
        self.actions.pop_front()
    }

    fn collect(&mut self, i: usize) -> Vec<State> {
        let mut moved = Vec::new();
        while let Some(a) = self.instances[i].pop_action() {
            if let Action::Transition { to, cause, .. } = a {
                if cause != Cause::SyncGroup {
                    moved.push(to);
                }
            }
            self.actions.push_back((i, a));
        }
        moved
    }

    /// Queues `i`'s actions, and makes its group follow a state change of its own.
    fn settle(&mut self, now: Duration, i: usize) {
        let moved = self.collect(i);
        let Some(g) = self.group_of[i] else { return };
        for to in moved {
            if to == State::Init {
                continue;
            }
            for m in self.groups[g].1.clone() {
                if m != i {
                    self.instances[m].follow(now, to);
                    self.collect(m);
                }
            }
        }
    }

    /// When `i`'s fault clears, members held in FAULT by the group leave it if no member is
    /// faulted any more.
    fn recover_group(&mut self, now: Duration, i: usize) {
        let Some(g) = self.group_of[i] else { return };
        let members = self.groups[g].1.clone();
        if members.iter().any(|&m| self.instances[m].faulted()) {
            return;
        }
        let target = if members
            .iter()
            .any(|&m| self.instances[m].state() == State::Master)
        {
            State::Master
        } else {
            State::Backup
        };
        for m in members {
            if self.instances[m].state() == State::Fault {
                self.instances[m].follow(now, target);
                self.collect(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Version;

    fn cfg(name: &str, vrid: u8, prio: u8) -> Config {
        let mut c = Config::new(
            name,
            vrid,
            Ipv4Addr::new(10, 0, vrid, 2),
            vec![Ipv4Addr::new(10, 0, vrid, 100)],
        );
        c.priority = prio;
        c.version = Version::V3;
        c.interval_cs = 10;
        c
    }

    fn router() -> Router {
        Router::new(
            vec![cfg("ext", 1, 100), cfg("int", 2, 100), cfg("other", 3, 100)],
            vec![SyncGroupConfig {
                name: "gw".into(),
                members: vec!["ext".into(), "int".into()],
            }],
        )
        .unwrap()
    }

    fn states(r: &Router) -> Vec<State> {
        r.instances().iter().map(Instance::state).collect()
    }

    fn drain(r: &mut Router) -> Vec<(usize, Action)> {
        std::iter::from_fn(|| r.pop_action()).collect()
    }

    fn advert(vrid: u8, prio: u8) -> Repr {
        Repr {
            version: Version::V3,
            vrid,
            priority: prio,
            interval_cs: 10,
            auth_type: crate::wire::AuthType::None,
            auth_data: [0; 8],
            addresses: vec![Ipv4Addr::new(10, 0, vrid, 100)],
        }
    }

    #[test]
    fn a_member_that_yields_takes_its_group_along_and_others_stay() {
        let mut r = router();
        let t0 = Duration::ZERO;
        r.start(t0);
        let t1 = Duration::from_secs(1);
        r.poll(t1);
        assert_eq!(states(&r), [State::Master; 3]);
        drain(&mut r);
        let peer = Ipv4Addr::new(10, 0, 1, 9);
        r.receive(t1, 0, peer, &advert(1, 200)).unwrap();
        assert_eq!(states(&r), [State::Backup, State::Backup, State::Master]);
        let acts = drain(&mut r);
        assert!(acts.contains(&(
            1,
            Action::Transition {
                from: State::Master,
                to: State::Backup,
                cause: Cause::SyncGroup
            }
        )));
    }

    #[test]
    fn a_fault_holds_the_whole_group_until_it_clears() {
        let mut r = router();
        r.start(Duration::ZERO);
        r.poll(Duration::from_secs(1));
        let t = Duration::from_secs(2);
        r.set_tracking(t, 1, 0, true);
        assert_eq!(states(&r), [State::Fault, State::Fault, State::Master]);
        // The member faulted only through the group does not time out of FAULT.
        r.poll(Duration::from_secs(10));
        assert_eq!(states(&r), [State::Fault, State::Fault, State::Master]);
        r.set_tracking(Duration::from_secs(11), 1, 0, false);
        assert_eq!(states(&r)[..2], [State::Backup, State::Backup]);
        r.poll(Duration::from_secs(12));
        assert_eq!(states(&r), [State::Master; 3]);
    }

    #[test]
    fn bad_groups_are_refused_by_name() {
        let e = Router::new(
            vec![cfg("a", 1, 100)],
            vec![SyncGroupConfig {
                name: "g".into(),
                members: vec!["b".into()],
            }],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "vrrp_sync_group g: no vrrp_instance b");
        let e = Router::new(vec![cfg("a", 1, 100), cfg("a", 2, 100)], vec![]).unwrap_err();
        assert_eq!(e, RouterError::DuplicateName("a".into()));
        let e = Router::new(vec![cfg("a", 0, 100)], vec![]).unwrap_err();
        assert!(e.to_string().contains("virtual_router_id"), "{e}");
    }
}
