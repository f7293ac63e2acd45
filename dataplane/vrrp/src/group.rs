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
    started: bool,
    preempt_hold: bool,
}

impl Default for Router {
    /// No instance (instances come later with [`Router::add`]).
    fn default() -> Router {
        Router {
            instances: Vec::new(),
            groups: Vec::new(),
            group_of: Vec::new(),
            actions: VecDeque::new(),
            started: false,
            preempt_hold: false,
        }
    }
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
            started: false,
            preempt_hold: false,
        })
    }

    /// Adds an instance at run time (a gateway group's instance from the control plane);
    /// it starts at once if the others have started, and takes the preemption hold in
    /// force. Returns its index (the last).
    pub fn add(&mut self, now: Duration, config: Config) -> Result<usize, RouterError> {
        if self
            .instances
            .iter()
            .any(|i| i.config().name == config.name)
        {
            return Err(RouterError::DuplicateName(config.name));
        }
        let name = config.name.clone();
        let mut inst =
            Instance::new(config).map_err(|source| RouterError::Instance { name, source })?;
        inst.set_preempt_hold(self.preempt_hold);
        self.instances.push(inst);
        self.group_of.push(None);
        let i = self.instances.len() - 1;
        if self.started {
            self.instances[i].start(now);
            self.settle(now, i);
        }
        Ok(i)
    }

    /// Stops instance `i` before it is removed: a master sends priority 0 (its backups take
    /// over after the skew time) and the transition to INIT is queued. Carry out the
    /// actions, then [`Router::remove`] it.
    pub fn stop(&mut self, now: Duration, i: usize) {
        self.instances[i].shutdown(now);
        self.collect(i);
    }

    /// Removes instance `i` (stopped first with [`Router::stop`]); the instances after it
    /// move down by one index. Its queued actions are dropped: pop them all before.
    pub fn remove(&mut self, i: usize) -> Instance {
        self.actions.retain(|(x, _)| *x != i);
        for (x, _) in self.actions.iter_mut() {
            if *x > i {
                *x -= 1;
            }
        }
        for (_, members) in self.groups.iter_mut() {
            members.retain(|&m| m != i);
            for m in members.iter_mut() {
                if *m > i {
                    *m -= 1;
                }
            }
        }
        self.group_of.remove(i);
        self.instances.remove(i)
    }

    /// Makes `members` (indices) the sync group `name`, replacing a group of that name;
    /// an empty list removes it. A member of another group is refused.
    pub fn set_group(&mut self, name: &str, members: &[usize]) -> Result<(), RouterError> {
        let existing = self.groups.iter().position(|(n, _)| n == name);
        for &m in members {
            if m >= self.instances.len() {
                return Err(RouterError::UnknownMember {
                    group: name.to_owned(),
                    instance: format!("#{m}"),
                });
            }
            if self.group_of[m].is_some_and(|g| Some(g) != existing) {
                return Err(RouterError::TwoGroups(
                    self.instances[m].config().name.clone(),
                ));
            }
        }
        let g = match existing {
            Some(g) => g,
            None => {
                self.groups.push((name.to_owned(), Vec::new()));
                self.groups.len() - 1
            }
        };
        for slot in self.group_of.iter_mut() {
            if *slot == Some(g) {
                *slot = None;
            }
        }
        for &m in members {
            self.group_of[m] = Some(g);
        }
        self.groups[g].1 = members.to_vec();
        Ok(())
    }

    /// Changes instance `i`'s parameters in place, keeping its state
    /// ([`Instance::reconfigure`]).
    pub fn reconfigure(
        &mut self,
        now: Duration,
        i: usize,
        config: Config,
    ) -> Result<(), RouterError> {
        let name = self.instances[i].config().name.clone();
        self.instances[i]
            .reconfigure(now, config)
            .map_err(|source| RouterError::Instance { name, source })?;
        self.settle(now, i);
        Ok(())
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
        self.started = true;
        for i in 0..self.instances.len() {
            self.instances[i].start(now);
            self.settle(now, i);
        }
    }

    /// Stops every instance (masters send priority 0).
    pub fn shutdown(&mut self, now: Duration) {
        self.started = false;
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
        self.preempt_hold = hold;
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
    fn instances_added_at_run_time_start_and_join_a_group() {
        let mut r = Router::new(vec![cfg("other", 3, 100)], vec![]).unwrap();
        r.set_preempt_hold(true);
        r.start(Duration::ZERO);
        let t = Duration::from_millis(500);
        let ext = r.add(t, cfg("ext", 1, 100)).unwrap();
        let int = r.add(t, cfg("int", 2, 100)).unwrap();
        r.set_group("gw", &[ext, int]).unwrap();
        assert_eq!((ext, int), (1, 2));
        assert_eq!(r.group_of(2), Some("gw"));
        assert!(r.instances()[1].preempt_held(), "the hold in force applies");
        assert_eq!(states(&r)[1..], [State::Backup, State::Backup]);
        assert_eq!(
            r.add(t, cfg("ext", 9, 100)).unwrap_err(),
            RouterError::DuplicateName("ext".into())
        );
        assert_eq!(
            r.set_group("g2", &[ext]).unwrap_err(),
            RouterError::TwoGroups("ext".into())
        );
        // The group follows: one member yielding takes the other along.
        r.poll(Duration::from_secs(2));
        assert_eq!(states(&r), [State::Master; 3]);
        drain(&mut r);
        r.receive(
            Duration::from_secs(2),
            1,
            Ipv4Addr::new(10, 0, 1, 9),
            &advert(1, 200),
        )
        .unwrap();
        assert_eq!(states(&r), [State::Master, State::Backup, State::Backup]);
    }

    #[test]
    fn reconfigure_keeps_the_state_and_a_master_advertises_its_new_priority() {
        let mut r = router();
        r.start(Duration::ZERO);
        r.poll(Duration::from_secs(1));
        assert_eq!(states(&r), [State::Master; 3]);
        let before = r.instances()[0].stats().transitions;
        drain(&mut r);
        let mut c = r.instances()[0].config().clone();
        c.priority = 150;
        c.unicast_peers = vec![Ipv4Addr::new(10, 0, 1, 3)];
        r.reconfigure(Duration::from_millis(1010), 0, c).unwrap();
        assert_eq!(states(&r), [State::Master; 3]);
        assert_eq!(r.instances()[0].stats().transitions, before);
        assert_eq!(drain(&mut r), [(0, Action::Advertise { priority: 150 })]);
        assert_eq!(r.instances()[0].config().unicast_peers.len(), 1);
        // Unchanged: nothing happens.
        let same = r.instances()[0].config().clone();
        r.reconfigure(Duration::from_millis(1020), 0, same).unwrap();
        assert!(drain(&mut r).is_empty());
        // Another VRID is another virtual router.
        let mut c = r.instances()[0].config().clone();
        c.vrid = 9;
        assert!(r.reconfigure(Duration::from_secs(2), 0, c).is_err());
        // A backup raised above the master's priority preempts it when its timer runs out.
        let mut r = router();
        r.start(Duration::ZERO);
        let peer = Ipv4Addr::new(10, 0, 3, 9);
        r.receive(Duration::from_millis(10), 2, peer, &advert(3, 150))
            .unwrap();
        let mut c = r.instances()[2].config().clone();
        c.priority = 200;
        r.reconfigure(Duration::from_millis(20), 2, c).unwrap();
        assert_eq!(
            r.receive(Duration::from_millis(100), 2, peer, &advert(3, 150)),
            Err(Discard::Lower)
        );
        r.poll(Duration::from_millis(100 + 300 + 25));
        assert_eq!(r.instances()[2].state(), State::Master);
    }

    #[test]
    fn a_removed_instance_hands_over_and_the_others_move_down() {
        let mut r = router();
        r.start(Duration::ZERO);
        r.poll(Duration::from_secs(1));
        drain(&mut r);
        let t = Duration::from_secs(2);
        r.stop(t, 0);
        let acts = drain(&mut r);
        assert_eq!(acts[0], (0, Action::Advertise { priority: 0 }));
        assert!(matches!(
            acts[1],
            (
                0,
                Action::Transition {
                    to: State::Init,
                    ..
                }
            )
        ));
        // The group member stays where it is: INIT is not followed.
        assert_eq!(states(&r)[1..], [State::Master, State::Master]);
        let gone = r.remove(0);
        assert_eq!(gone.config().name, "ext");
        assert_eq!(r.instances().len(), 2);
        assert_eq!(r.group_of(0), Some("gw"));
        assert_eq!(r.group_of(1), None);
        assert_eq!(r.instances()[1].config().name, "other");
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
