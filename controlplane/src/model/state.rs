//! The revisioned desired state every control-plane node holds: objects by kind and name,
//! the cluster revision, and [`DesiredState::apply`], the one place a [`Command`] becomes a
//! [`Change`]. It is deterministic (no clock, no I/O), so every node that applies the same
//! Raft log reaches the same state.

use std::collections::BTreeMap;

use aegis_api::controlplane::v1::{object::Spec, Kind, Object};
use serde::{Deserialize, Serialize};

use super::kind::{kind_name, kind_of, ALL_KINDS};
use super::validate::{self, Lookup};
use super::ModelError;

/// A write to the desired state, as carried in the Raft log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Create an object whose name is free.
    Create {
        /// The object (revisions are ignored).
        object: Object,
    },
    /// Replace an existing object.
    Update {
        /// The object (revisions are ignored).
        object: Object,
        /// If non-zero, the object's modified revision must equal it.
        expected_revision: u64,
    },
    /// Delete an object nothing refers to.
    Delete {
        /// Its kind (`Kind as i32`).
        kind: i32,
        /// Its name.
        name: String,
        /// If non-zero, the object's modified revision must equal it.
        expected_revision: u64,
    },
}

/// Whether a change stored or removed an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeType {
    /// Created or replaced.
    Put,
    /// Removed.
    Delete,
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The cluster revision this change made.
    pub revision: u64,
    /// Put or delete.
    pub change_type: ChangeType,
    /// Put: the object as stored; delete: the object as it was.
    pub object: Object,
    /// Put of an existing name: the object it replaced.
    pub previous: Option<Object>,
}

/// The desired state at one revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Objects by kind (`Kind as i32`) and name.
    objects: BTreeMap<i32, BTreeMap<String, Object>>,
    /// Number of committed changes.
    revision: u64,
}

impl DesiredState {
    /// An empty state at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision of the last committed change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Object> {
        self.objects.get(&(kind as i32)).and_then(|m| m.get(name))
    }

    /// Every object of `kind` (every object for `Kind::Unspecified`), in listing order.
    pub fn list(&self, kind: Kind) -> Vec<&Object> {
        if kind == Kind::Unspecified {
            ALL_KINDS.iter().flat_map(|k| self.iter_kind(*k)).collect()
        } else {
            self.iter_kind(kind).collect()
        }
    }

    fn iter_kind(&self, kind: Kind) -> impl Iterator<Item = &Object> + '_ {
        self.objects
            .get(&(kind as i32))
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    /// Checks `command` against the state without changing anything.
    pub fn check(&self, command: &Command) -> Result<(), ModelError> {
        match command {
            Command::Create { object } => {
                let kind = kind_of(object);
                if kind != Kind::Unspecified && self.get(kind, &object.name).is_some() {
                    return Err(ModelError::exists(format!(
                        "{} {} already exists",
                        kind_name(kind),
                        object.name
                    )));
                }
                self.check_put(object)
            }
            Command::Update {
                object,
                expected_revision,
            } => {
                let kind = kind_of(object);
                let current = self.get(kind, &object.name).ok_or_else(|| {
                    ModelError::not_found(format!(
                        "{} {} does not exist",
                        kind_name(kind),
                        object.name
                    ))
                })?;
                check_expected(kind, current, *expected_revision)?;
                self.check_put(object)
            }
            Command::Delete {
                kind,
                name,
                expected_revision,
            } => {
                let kind = Kind::try_from(*kind)
                    .ok()
                    .filter(|k| *k != Kind::Unspecified)
                    .ok_or_else(|| {
                        ModelError::invalid(format!("kind {kind} is not an object kind"))
                    })?;
                let current = self.get(kind, name).ok_or_else(|| {
                    ModelError::not_found(format!("{} {name} does not exist", kind_name(kind)))
                })?;
                check_expected(kind, current, *expected_revision)?;
                let users = self.dependents(kind, name);
                if !users.is_empty() {
                    let list: Vec<String> = users
                        .iter()
                        .take(5)
                        .map(|o| format!("{} {}", kind_name(kind_of(o)), o.name))
                        .collect();
                    return Err(ModelError::precondition(format!(
                        "{} {name} is still referenced by {}{}",
                        kind_name(kind),
                        list.join(", "),
                        if users.len() > 5 {
                            format!(" and {} more", users.len() - 5)
                        } else {
                            String::new()
                        }
                    )));
                }
                Ok(())
            }
        }
    }

    /// Validates the object and every object that refers to it, as if it were stored.
    fn check_put(&self, object: &Object) -> Result<(), ModelError> {
        validate::object(self, object)?;
        let kind = kind_of(object);
        let overlay = Overlay {
            base: self,
            kind,
            object,
        };
        for user in self.dependents(kind, &object.name) {
            if user.name == object.name && kind_of(user) == kind {
                continue;
            }
            validate::object(&overlay, user).map_err(|e| ModelError {
                code: e.code,
                message: format!(
                    "{} {} cannot change that way: {}",
                    kind_name(kind),
                    object.name,
                    e.message
                ),
            })?;
        }
        Ok(())
    }

    /// Objects that refer to `kind`/`name`.
    pub fn dependents(&self, kind: Kind, name: &str) -> Vec<&Object> {
        ALL_KINDS
            .iter()
            .flat_map(|k| self.iter_kind(*k))
            .filter(|o| {
                validate::references(o)
                    .into_iter()
                    .any(|(k, n)| k == kind && n == name)
            })
            .collect()
    }

    /// Applies `command`: on success the revision goes up by one and the change is returned;
    /// on failure nothing changes.
    pub fn apply(&mut self, command: &Command) -> Result<Change, ModelError> {
        self.check(command)?;
        let revision = self.revision + 1;
        let change = match command {
            Command::Create { object } | Command::Update { object, .. } => {
                let kind = kind_of(object);
                let mut stored = object.clone();
                let previous = self.get(kind, &object.name).cloned();
                keep_sync_assignment(&mut stored, previous.as_ref());
                stored.created_revision =
                    previous.as_ref().map_or(revision, |p| p.created_revision);
                stored.modified_revision = revision;
                self.objects
                    .entry(kind as i32)
                    .or_default()
                    .insert(stored.name.clone(), stored.clone());
                Change {
                    revision,
                    change_type: ChangeType::Put,
                    object: stored,
                    previous,
                }
            }
            Command::Delete { kind, name, .. } => {
                let removed = self
                    .objects
                    .get_mut(kind)
                    .and_then(|m| m.remove(name))
                    .ok_or_else(|| ModelError::not_found(format!("{name} does not exist")))?;
                Change {
                    revision,
                    change_type: ChangeType::Delete,
                    object: removed,
                    previous: None,
                }
            }
        };
        self.revision = revision;
        Ok(change)
    }
}

/// A gateway group written without a sync assignment (a client's update) keeps the one it
/// had, less the hosts that are no longer members: the assignment is the leader's choice.
fn keep_sync_assignment(stored: &mut Object, previous: Option<&Object>) {
    let (Some(Spec::GatewayGroup(g)), Some(Spec::GatewayGroup(p))) =
        (stored.spec.as_mut(), previous.and_then(|p| p.spec.as_ref()))
    else {
        return;
    };
    if g.sync_assignment.is_some() {
        return;
    }
    if let Some(mut a) = p.sync_assignment.clone() {
        a.members.retain(|h| g.members.iter().any(|m| &m.host == h));
        g.sync_assignment = Some(a);
    }
}

fn check_expected(kind: Kind, current: &Object, expected: u64) -> Result<(), ModelError> {
    if expected != 0 && current.modified_revision != expected {
        return Err(ModelError::aborted(format!(
            "{} {} is at revision {}, not the expected {expected}",
            kind_name(kind),
            current.name,
            current.modified_revision
        )));
    }
    Ok(())
}

impl Lookup for DesiredState {
    fn get(&self, kind: Kind, name: &str) -> Option<&Object> {
        DesiredState::get(self, kind, name)
    }

    fn all(&self, kind: Kind) -> Box<dyn Iterator<Item = &Object> + '_> {
        Box::new(self.iter_kind(kind))
    }
}

/// The state with one object replaced (or added): what validation of an update sees.
struct Overlay<'a> {
    base: &'a DesiredState,
    kind: Kind,
    object: &'a Object,
}

impl Lookup for Overlay<'_> {
    fn get(&self, kind: Kind, name: &str) -> Option<&Object> {
        if kind == self.kind && name == self.object.name {
            Some(self.object)
        } else {
            self.base.get(kind, name)
        }
    }

    fn all(&self, kind: Kind) -> Box<dyn Iterator<Item = &Object> + '_> {
        if kind != self.kind {
            return self.base.all(kind);
        }
        let replaced = self.base.get(kind, &self.object.name).is_some();
        let base = self.base.iter_kind(kind).map(move |o| {
            if o.name == self.object.name {
                self.object
            } else {
                o
            }
        });
        let added = (!replaced).then_some(self.object);
        Box::new(base.chain(added))
    }
}

/// Whether host `host` needs `object`: everything but other hosts' underlay routes (a
/// compute host needs every host's underlay address and every port's location to reach them
/// over the overlay).
pub fn relevant_to_host(object: &Object, host: &str) -> bool {
    match &object.spec {
        Some(Spec::Route(r)) => r.host.is_empty() || r.host == host,
        Some(_) => true,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use aegis_api::controlplane::v1::{
        ExternalNetwork, FloatingIp, GatewayGroup, GatewayMember, Host, HostAddress, HostRole,
        Port, Route, RouteAction, SecurityGroup, SecurityRule, SnatRule, Subnet, Vpc,
    };

    use super::*;
    use crate::model::ErrorCode;

    fn obj(name: &str, spec: Spec) -> Object {
        Object {
            name: name.into(),
            spec: Some(spec),
            ..Object::default()
        }
    }

    fn create(s: &mut DesiredState, o: Object) -> Result<Change, ModelError> {
        s.apply(&Command::Create { object: o })
    }

    fn host(name: &str, role: HostRole, addr: &str) -> Object {
        obj(
            name,
            Spec::Host(Host {
                role: role as i32,
                underlay_address: String::new(),
                management_address: String::new(),
                addresses: vec![HostAddress {
                    port: "p0".into(),
                    address: addr.into(),
                }],
                networks: vec![],
            }),
        )
    }

    fn subnet(vpc: &str, cidr: &str, gw: &str) -> Spec {
        Spec::Subnet(Subnet {
            vpc: vpc.into(),
            cidr: cidr.into(),
            gateway_ip: gw.into(),
        })
    }

    fn port(vpc: &str, subnet: &str, mac: &str, ip: &str) -> Spec {
        Spec::Port(Port {
            vpc: vpc.into(),
            subnet: subnet.into(),
            mac: mac.into(),
            ips: vec![ip.into()],
            host: "c1".into(),
            device: "vm0".into(),
            security_groups: vec![],
        })
    }

    /// A small world: host c1 and gateway g1, vpcs blue and red with one subnet each, a
    /// port in blue.
    fn world() -> DesiredState {
        let mut s = DesiredState::new();
        create(&mut s, host("c1", HostRole::Compute, "10.0.1.1/24")).unwrap();
        create(&mut s, host("g1", HostRole::Gateway, "10.0.2.1/24")).unwrap();
        create(
            &mut s,
            obj(
                "blue",
                Spec::Vpc(Vpc {
                    vni: 100,
                    description: String::new(),
                }),
            ),
        )
        .unwrap();
        create(
            &mut s,
            obj(
                "red",
                Spec::Vpc(Vpc {
                    vni: 200,
                    description: String::new(),
                }),
            ),
        )
        .unwrap();
        create(
            &mut s,
            obj("blue-a", subnet("blue", "10.1.0.0/24", "10.1.0.1")),
        )
        .unwrap();
        // Red reuses the same prefix: VPCs are separate address spaces.
        create(
            &mut s,
            obj("red-a", subnet("red", "10.1.0.0/24", "10.1.0.1")),
        )
        .unwrap();
        create(
            &mut s,
            obj(
                "vm1",
                port("blue", "blue-a", "02:00:00:00:00:01", "10.1.0.5"),
            ),
        )
        .unwrap();
        s
    }

    /// Applies `command`, expects `code`, and checks nothing changed.
    fn rejected(s: &mut DesiredState, command: Command, code: ErrorCode) -> String {
        let before = s.clone();
        let e = s.apply(&command).unwrap_err();
        assert_eq!(e.code, code, "{e}");
        assert_eq!(*s, before, "a rejected command changed the state");
        e.message
    }

    #[test]
    fn revisions_count_committed_changes() {
        let mut s = world();
        assert_eq!(s.revision(), 7);
        assert_eq!(s.len(), 7);
        let vm1 = s.get(Kind::Port, "vm1").unwrap();
        assert_eq!((vm1.created_revision, vm1.modified_revision), (7, 7));
        let mut updated = vm1.clone();
        if let Some(Spec::Port(p)) = &mut updated.spec {
            p.ips = vec!["10.1.0.6".into()];
        }
        let c = s
            .apply(&Command::Update {
                object: updated,
                expected_revision: 7,
            })
            .unwrap();
        assert_eq!(
            (
                c.revision,
                c.object.created_revision,
                c.object.modified_revision
            ),
            (8, 7, 8)
        );
        assert_eq!(c.previous.unwrap().modified_revision, 7);
        let c = s
            .apply(&Command::Delete {
                kind: Kind::Port as i32,
                name: "vm1".into(),
                expected_revision: 0,
            })
            .unwrap();
        assert_eq!((c.revision, c.change_type), (9, ChangeType::Delete));
        assert!(s.get(Kind::Port, "vm1").is_none());
    }

    #[test]
    fn invalid_arguments() {
        let mut s = world();
        let cases = [
            obj("bad-cidr", subnet("blue", "10.2.0.0/33", "10.2.0.1")),
            obj("host-bits", subnet("blue", "10.2.0.1/24", "10.2.0.1")),
            obj("overlap", subnet("blue", "10.1.0.128/25", "10.1.0.129")),
            obj("gw-outside", subnet("blue", "10.2.0.0/24", "10.3.0.1")),
            obj(
                "vni0",
                Spec::Vpc(Vpc {
                    vni: 0,
                    description: String::new(),
                }),
            ),
            obj(
                "vni-big",
                Spec::Vpc(Vpc {
                    vni: 1 << 24,
                    description: String::new(),
                }),
            ),
            obj(
                "vni-dup",
                Spec::Vpc(Vpc {
                    vni: 100,
                    description: String::new(),
                }),
            ),
            obj(
                "bad-mac",
                port("blue", "blue-a", "02:00:00:00:01", "10.1.0.9"),
            ),
            obj(
                "mcast-mac",
                port("blue", "blue-a", "01:00:5e:00:00:01", "10.1.0.9"),
            ),
            obj(
                "dup-mac",
                port("blue", "blue-a", "02:00:00:00:00:01", "10.1.0.9"),
            ),
            obj(
                "dup-ip",
                port("blue", "blue-a", "02:00:00:00:00:09", "10.1.0.5"),
            ),
            obj(
                "ip-outside",
                port("blue", "blue-a", "02:00:00:00:00:09", "10.9.0.5"),
            ),
            obj(
                "ip-is-gw",
                port("blue", "blue-a", "02:00:00:00:00:09", "10.1.0.1"),
            ),
            obj(
                "wrong-vpc",
                port("red", "blue-a", "02:00:00:00:00:09", "10.1.0.9"),
            ),
            obj(
                "Bad Name",
                Spec::Vpc(Vpc {
                    vni: 9,
                    description: String::new(),
                }),
            ),
            host("c9", HostRole::Unspecified, "10.0.9.1/24"),
        ];
        for o in cases {
            let name = o.name.clone();
            let m = rejected(
                &mut s,
                Command::Create { object: o },
                ErrorCode::InvalidArgument,
            );
            assert!(!m.is_empty(), "{name}");
        }
        // The same IP in another VPC is fine.
        create(
            &mut s,
            obj(
                "vm-red",
                port("red", "red-a", "02:00:00:00:00:02", "10.1.0.5"),
            ),
        )
        .unwrap();
        // No spec at all.
        rejected(
            &mut s,
            Command::Create {
                object: Object {
                    name: "x".into(),
                    ..Object::default()
                },
            },
            ErrorCode::InvalidArgument,
        );
    }

    #[test]
    fn dangling_references_are_not_found() {
        let mut s = world();
        let m = rejected(
            &mut s,
            Command::Create {
                object: obj("s", subnet("green", "10.5.0.0/24", "10.5.0.1")),
            },
            ErrorCode::NotFound,
        );
        assert!(m.contains("green"), "{m}");
        let mut p = port("blue", "blue-a", "02:00:00:00:00:09", "10.1.0.9");
        if let Spec::Port(pp) = &mut p {
            pp.security_groups = vec!["web".into()];
        }
        rejected(
            &mut s,
            Command::Create {
                object: obj("p", p),
            },
            ErrorCode::NotFound,
        );
        rejected(
            &mut s,
            Command::Update {
                object: obj(
                    "nope",
                    Spec::Vpc(Vpc {
                        vni: 7,
                        description: String::new(),
                    }),
                ),
                expected_revision: 0,
            },
            ErrorCode::NotFound,
        );
        rejected(
            &mut s,
            Command::Delete {
                kind: Kind::Vpc as i32,
                name: "nope".into(),
                expected_revision: 0,
            },
            ErrorCode::NotFound,
        );
    }

    #[test]
    fn deleting_what_is_referenced_fails() {
        let mut s = world();
        for (kind, name) in [
            (Kind::Vpc, "blue"),
            (Kind::Subnet, "blue-a"),
            (Kind::Host, "c1"),
        ] {
            let m = rejected(
                &mut s,
                Command::Delete {
                    kind: kind as i32,
                    name: name.into(),
                    expected_revision: 0,
                },
                ErrorCode::FailedPrecondition,
            );
            assert!(m.contains("vm1"), "{m}");
        }
        // Once the port is gone, the rest can go, in order.
        for (kind, name) in [
            (Kind::Port, "vm1"),
            (Kind::Subnet, "blue-a"),
            (Kind::Vpc, "blue"),
            (Kind::Host, "c1"),
        ] {
            s.apply(&Command::Delete {
                kind: kind as i32,
                name: name.into(),
                expected_revision: 0,
            })
            .unwrap();
        }
    }

    #[test]
    fn create_of_existing_and_stale_expected_revision() {
        let mut s = world();
        rejected(
            &mut s,
            Command::Create {
                object: obj(
                    "blue",
                    Spec::Vpc(Vpc {
                        vni: 300,
                        description: String::new(),
                    }),
                ),
            },
            ErrorCode::AlreadyExists,
        );
        rejected(
            &mut s,
            Command::Update {
                object: obj(
                    "blue",
                    Spec::Vpc(Vpc {
                        vni: 300,
                        description: String::new(),
                    }),
                ),
                expected_revision: 2,
            },
            ErrorCode::Aborted,
        );
    }

    #[test]
    fn updates_keep_dependents_valid() {
        let mut s = world();
        // Shrinking blue-a so that vm1's address falls outside.
        rejected(
            &mut s,
            Command::Update {
                object: obj("blue-a", subnet("blue", "10.1.0.128/25", "10.1.0.129")),
                expected_revision: 0,
            },
            ErrorCode::FailedPrecondition,
        );
        // A host route needs its next hop on a connected prefix; removing the address fails.
        create(
            &mut s,
            obj(
                "r1",
                Spec::Route(Route {
                    vpc: String::new(),
                    host: "c1".into(),
                    prefix: "10.9.0.0/16".into(),
                    next_hop: "10.0.1.2".into(),
                    action: RouteAction::Forward as i32,
                }),
            ),
        )
        .unwrap();
        let m = rejected(
            &mut s,
            Command::Update {
                object: host("c1", HostRole::Compute, "10.0.7.1/24"),
                expected_revision: 0,
            },
            ErrorCode::InvalidArgument,
        );
        assert!(m.contains("r1"), "{m}");
        // Two routes with one prefix in one scope.
        rejected(
            &mut s,
            Command::Create {
                object: obj(
                    "r2",
                    Spec::Route(Route {
                        vpc: String::new(),
                        host: "c1".into(),
                        prefix: "10.9.0.0/16".into(),
                        next_hop: String::new(),
                        action: RouteAction::Blackhole as i32,
                    }),
                ),
            },
            ErrorCode::InvalidArgument,
        );
    }

    #[test]
    fn security_groups_and_north_south_objects() {
        let mut s = world();
        let rule = |id: &str, proto: &str, lo: u32, hi: u32| SecurityRule {
            id: id.into(),
            direction: aegis_api::controlplane::v1::Direction::Ingress as i32,
            protocol: proto.into(),
            port_min: lo,
            port_max: hi,
            remote_cidr: "0.0.0.0/0".into(),
            ..SecurityRule::default()
        };
        let sg = |rules| {
            Spec::SecurityGroup(SecurityGroup {
                rules,
                description: String::new(),
            })
        };
        create(&mut s, obj("web", sg(vec![rule("http", "tcp", 80, 80)]))).unwrap();
        for bad in [
            vec![rule("a", "icmp", 80, 80)],
            vec![rule("a", "tcp", 90, 80)],
            vec![rule("a", "tcp", 1, 70000)],
            vec![rule("a", "bogus", 0, 0)],
            vec![rule("a", "tcp", 80, 80), rule("a", "udp", 53, 53)],
        ] {
            rejected(
                &mut s,
                Command::Create {
                    object: obj("bad", sg(bad)),
                },
                ErrorCode::InvalidArgument,
            );
        }
        let ext = Spec::ExternalNetwork(ExternalNetwork {
            cidr: "203.0.113.0/24".into(),
            gateway_ip: "203.0.113.1".into(),
            vlan: 0,
        });
        create(&mut s, obj("internet", ext)).unwrap();
        let group = |hosts: Vec<&str>, vrid| {
            Spec::GatewayGroup(GatewayGroup {
                external_network: "internet".into(),
                members: hosts
                    .into_iter()
                    .map(|h| GatewayMember {
                        host: h.into(),
                        priority: 100,
                    })
                    .collect(),
                external_addresses: vec!["203.0.113.10".into()],
                vrid,
                tunnel_address: String::new(),
                ..Default::default()
            })
        };
        // c1 is a compute host.
        rejected(
            &mut s,
            Command::Create {
                object: obj("gw", group(vec!["c1"], 10)),
            },
            ErrorCode::InvalidArgument,
        );
        create(&mut s, obj("gw", group(vec!["g1"], 10))).unwrap();
        let fip = |addr: &str| {
            Spec::FloatingIp(FloatingIp {
                external_network: "internet".into(),
                address: addr.into(),
                port: "vm1".into(),
                fixed_ip: String::new(),
            })
        };
        // The group's address is taken.
        rejected(
            &mut s,
            Command::Create {
                object: obj("f1", fip("203.0.113.10")),
            },
            ErrorCode::InvalidArgument,
        );
        create(&mut s, obj("f1", fip("203.0.113.20"))).unwrap();
        let snat = |addr: &str| {
            Spec::SnatRule(SnatRule {
                vpc: "blue".into(),
                subnet: "blue-a".into(),
                gateway_group: "gw".into(),
                external_address: addr.into(),
            })
        };
        rejected(
            &mut s,
            Command::Create {
                object: obj("sn", snat("203.0.113.11")),
            },
            ErrorCode::InvalidArgument,
        );
        create(&mut s, obj("sn", snat("203.0.113.10"))).unwrap();
        rejected(
            &mut s,
            Command::Delete {
                kind: Kind::GatewayGroup as i32,
                name: "gw".into(),
                expected_revision: 0,
            },
            ErrorCode::FailedPrecondition,
        );
        rejected(
            &mut s,
            Command::Delete {
                kind: Kind::Port as i32,
                name: "vm1".into(),
                expected_revision: 0,
            },
            ErrorCode::FailedPrecondition,
        );
    }

    #[test]
    fn a_groups_vrrp_settings_are_validated_with_clear_errors() {
        use aegis_api::controlplane::v1::VrrpTransport;
        let mut s = world();
        let ext = Spec::ExternalNetwork(ExternalNetwork {
            cidr: "203.0.113.0/24".into(),
            gateway_ip: "203.0.113.1".into(),
            vlan: 0,
        });
        create(&mut s, obj("internet", ext)).unwrap();
        let group = |vrid: u32, set: &dyn Fn(&mut GatewayGroup)| {
            let mut g = GatewayGroup {
                external_network: "internet".into(),
                members: vec![GatewayMember {
                    host: "g1".into(),
                    priority: 200,
                }],
                external_addresses: vec!["203.0.113.10".into()],
                vrid,
                ..Default::default()
            };
            set(&mut g);
            Command::Create {
                object: obj("gw", Spec::GatewayGroup(g)),
            }
        };
        let invalid = |s: &mut DesiredState, set: &dyn Fn(&mut GatewayGroup)| {
            rejected(s, group(10, set), ErrorCode::InvalidArgument)
        };
        assert_eq!(
            invalid(&mut s, &|g| g.vrid = 0),
            "gateway-group gw: vrid 0 is outside 1..255"
        );
        assert_eq!(
            invalid(&mut s, &|g| g.vrid = 256),
            "gateway-group gw: vrid 256 is outside 1..255"
        );
        assert_eq!(
            invalid(&mut s, &|g| g.advert_interval_ms = 5),
            "gateway-group gw: advert_interval_ms 5: VRRPv3 advertises every 10..40950 ms, in \
             steps of 10"
        );
        assert!(invalid(&mut s, &|g| g.advert_interval_ms = 105).contains("in steps of 10"));
        assert!(invalid(&mut s, &|g| g.advert_interval_ms = 41_000).contains("10..40950"));
        assert_eq!(
            invalid(&mut s, &|g| {
                g.vrrp_version = 2;
                g.advert_interval_ms = 100;
            }),
            "gateway-group gw: advert_interval_ms 100: VRRPv2 advertises every 1..255 whole \
             seconds (1000..255000 ms); sub-second intervals need vrrp_version 3"
        );
        assert_eq!(
            invalid(&mut s, &|g| g.vrrp_version = 4),
            "gateway-group gw: vrrp_version 4: 2 or 3 (0 = 3)"
        );
        assert!(invalid(&mut s, &|g| g.preempt_delay_ms = 1_000_001).contains("at most 1000000"));
        assert!(invalid(&mut s, &|g| {
            g.no_preempt = true;
            g.preempt_delay_ms = 10;
        })
        .contains("no effect with no_preempt"));
        assert!(invalid(&mut s, &|g| g.vrrp_transport = 7).contains("vrrp_transport 7"));
        // Unicast needs each member's addresses on both links: g1 has no underlay address
        // and no address on the external network.
        assert_eq!(
            invalid(&mut s, &|g| g.vrrp_transport =
                VrrpTransport::Unicast as i32),
            "gateway-group gw: member g1: unicast VRRP needs its underlay_address (host \
             --underlay)"
        );
        let mut g1 = host("g1", HostRole::Gateway, "10.0.2.1/24");
        if let Some(Spec::Host(h)) = &mut g1.spec {
            h.underlay_address = "10.0.2.1".into();
        }
        s.apply(&Command::Update {
            object: g1.clone(),
            expected_revision: 0,
        })
        .unwrap();
        assert!(invalid(&mut s, &|g| g.vrrp_transport = VrrpTransport::Unicast as i32)
            .contains("member g1: unicast VRRP on external network internet (203.0.113.0/24) needs g1's own address there"));
        if let Some(Spec::Host(h)) = &mut g1.spec {
            h.addresses.push(HostAddress {
                port: "ext0".into(),
                address: "203.0.113.2/24".into(),
            });
        }
        s.apply(&Command::Update {
            object: g1.clone(),
            expected_revision: 0,
        })
        .unwrap();
        // Valid: v3 at 100 ms, unicast, a preempt delay; v2 at 3 s.
        s.apply(&group(10, &|g| {
            g.advert_interval_ms = 100;
            g.vrrp_transport = VrrpTransport::Unicast as i32;
            g.preempt_delay_ms = 5_000;
        }))
        .unwrap();
        // The member cannot lose its external address while the group is unicast.
        let mut lost = g1.clone();
        if let Some(Spec::Host(h)) = &mut lost.spec {
            h.addresses.pop();
        }
        let m = rejected(
            &mut s,
            Command::Update {
                object: lost,
                expected_revision: 0,
            },
            ErrorCode::InvalidArgument,
        );
        assert!(
            m.starts_with(
                "host g1 cannot change that way: gateway-group gw: member g1: unicast VRRP"
            ),
            "{m}"
        );
        // A second group on the same VRID is refused, whatever its network.
        let mut other = match group(10, &|g| {
            g.vrrp_version = 2;
            g.advert_interval_ms = 3_000;
            g.external_addresses = vec!["203.0.113.11".into()];
        }) {
            Command::Create { object } => object,
            _ => unreachable!(),
        };
        other.name = "gw2".into();
        let m = rejected(
            &mut s,
            Command::Create {
                object: other.clone(),
            },
            ErrorCode::InvalidArgument,
        );
        assert!(m.contains("vrid 10 is already gateway-group gw's"), "{m}");
        if let Some(Spec::GatewayGroup(g)) = &mut other.spec {
            g.vrid = 11;
        }
        create(&mut s, other).unwrap();
    }

    #[test]
    fn a_groups_sync_assignment_is_validated_and_kept_across_client_updates() {
        use aegis_api::controlplane::v1::SyncAssignment;
        let mut s = world();
        for g in ["g2", "g3"] {
            create(&mut s, host(g, HostRole::Gateway, "10.0.2.9/24")).unwrap();
        }
        let ext = Spec::ExternalNetwork(ExternalNetwork {
            cidr: "203.0.113.0/24".into(),
            gateway_ip: "203.0.113.1".into(),
            vlan: 0,
        });
        create(&mut s, obj("internet", ext)).unwrap();
        let group = |hosts: &[&str], standbys: u32, chosen: Option<&[&str]>| {
            let mut g = GatewayGroup {
                external_network: "internet".into(),
                members: hosts
                    .iter()
                    .map(|h| GatewayMember {
                        host: (*h).into(),
                        priority: 100,
                    })
                    .collect(),
                external_addresses: vec!["203.0.113.10".into()],
                vrid: 10,
                standby_count: standbys,
                ..Default::default()
            };
            g.sync_assignment = chosen.map(|c| SyncAssignment {
                members: c.iter().map(|h| h.to_string()).collect(),
                generation: 7,
                reason: "test".into(),
            });
            obj("gw", Spec::GatewayGroup(g))
        };
        let three = ["g1", "g2", "g3"];
        for (bad, why) in [
            (group(&three, 3, None), "at most 2 standbys"),
            (group(&three, 1, Some(&["g1", "c1"])), "c1 is not a member"),
            (group(&three, 1, Some(&["g1", "g1"])), "g1 is listed twice"),
        ] {
            let m = rejected(
                &mut s,
                Command::Create { object: bad },
                ErrorCode::InvalidArgument,
            );
            assert!(m.contains(why), "{m}");
        }
        create(&mut s, group(&three, 2, Some(&["g1", "g2", "g3"]))).unwrap();
        // An operator's update without the assignment keeps it, less a removed member.
        s.apply(&Command::Update {
            object: group(&["g1", "g3"], 1, None),
            expected_revision: 0,
        })
        .unwrap();
        let Some(Spec::GatewayGroup(g)) = &s.get(Kind::GatewayGroup, "gw").unwrap().spec else {
            panic!("no group");
        };
        let a = g.sync_assignment.as_ref().expect("kept");
        assert_eq!(
            (a.members.as_slice(), a.generation),
            (&["g1".to_string(), "g3".to_string()][..], 7)
        );
        // The leader's update replaces it.
        s.apply(&Command::Update {
            object: group(&["g1", "g3"], 1, Some(&["g3"])),
            expected_revision: 0,
        })
        .unwrap();
        let Some(Spec::GatewayGroup(g)) = &s.get(Kind::GatewayGroup, "gw").unwrap().spec else {
            panic!("no group");
        };
        assert_eq!(g.sync_assignment.as_ref().unwrap().members, ["g3"]);
    }

    #[test]
    fn host_slices() {
        let route = |host: &str| {
            obj(
                "r",
                Spec::Route(Route {
                    vpc: String::new(),
                    host: host.into(),
                    prefix: "10.9.0.0/16".into(),
                    next_hop: "10.0.1.2".into(),
                    action: 0,
                }),
            )
        };
        assert!(relevant_to_host(&route("c1"), "c1"));
        assert!(!relevant_to_host(&route("c2"), "c1"));
        assert!(relevant_to_host(
            &host("c2", HostRole::Compute, "10.0.1.1/24"),
            "c1"
        ));
    }

    #[test]
    fn survives_a_json_round_trip() {
        let s = world();
        let back: DesiredState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}

/// Random commands (deterministic): `apply` never panics, a rejection never changes the
/// state, and an accepted change bumps the revision by exactly one.
#[cfg(test)]
mod random {
    use aegis_api::controlplane::v1::{
        ExternalNetwork, FloatingIp, GatewayGroup, GatewayMember, Host, HostAddress, Port, Route,
        SecurityGroup, SecurityRule, SnatRule, Subnet, Vpc,
    };

    use super::*;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
            v[(self.next() % v.len() as u64) as usize]
        }
        fn num(&mut self, n: u64) -> u32 {
            (self.next() % n) as u32
        }
    }

    const NAMES: &[&str] = &["a", "b", "c", "", "Bad Name", "x.y-z"];
    const IPS: &[&str] = &[
        "10.0.0.1",
        "10.0.0.5",
        "10.0.1.1",
        "10.0.0.0",
        "10.0.0.255",
        "203.0.113.5",
        "bogus",
        "",
        "300.1.1.1",
    ];
    const NETS: &[&str] = &[
        "10.0.0.0/24",
        "10.0.0.0/25",
        "10.0.0.1/24",
        "10.0.1.0/24",
        "203.0.113.0/24",
        "0.0.0.0/0",
        "10.0.0.0/33",
        "x/8",
        "",
    ];
    const MACS: &[&str] = &[
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
        "01:00:00:00:00:01",
        "zz",
        "",
    ];

    fn object(r: &mut Rng) -> Object {
        let name = r.pick(NAMES).to_owned();
        let spec = match r.num(11) {
            0 => Spec::Host(Host {
                role: r.num(4) as i32,
                underlay_address: r.pick(IPS).into(),
                management_address: r.pick(IPS).into(),
                addresses: vec![HostAddress {
                    port: r.pick(NAMES).into(),
                    address: r.pick(NETS).into(),
                }],
                networks: vec![],
            }),
            1 => Spec::Vpc(Vpc {
                vni: r.num(4) * 5_000_000,
                description: String::new(),
            }),
            2 => Spec::Subnet(Subnet {
                vpc: r.pick(NAMES).into(),
                cidr: r.pick(NETS).into(),
                gateway_ip: r.pick(IPS).into(),
            }),
            3 => Spec::Port(Port {
                vpc: r.pick(NAMES).into(),
                subnet: r.pick(NAMES).into(),
                mac: r.pick(MACS).into(),
                ips: vec![r.pick(IPS).into()],
                host: r.pick(NAMES).into(),
                device: String::new(),
                security_groups: vec![r.pick(NAMES).into()],
            }),
            4 => Spec::Route(Route {
                vpc: r.pick(NAMES).into(),
                host: r.pick(NAMES).into(),
                prefix: r.pick(NETS).into(),
                next_hop: r.pick(IPS).into(),
                action: r.num(5) as i32,
            }),
            5 => Spec::SecurityGroup(SecurityGroup {
                rules: vec![SecurityRule {
                    id: r.pick(NAMES).into(),
                    direction: r.num(3) as i32,
                    protocol: r.pick(&["tcp", "udp", "any", "icmp", "300", "17"]).into(),
                    port_min: r.num(70_000),
                    port_max: r.num(70_000),
                    remote_cidr: r.pick(NETS).into(),
                    remote_group: r.pick(NAMES).into(),
                    priority: r.num(10),
                    action: r.num(4) as i32,
                }],
                description: String::new(),
            }),
            6 => Spec::ExternalNetwork(ExternalNetwork {
                cidr: r.pick(NETS).into(),
                gateway_ip: r.pick(IPS).into(),
                vlan: r.num(5000),
            }),
            7 => Spec::GatewayGroup(GatewayGroup {
                external_network: r.pick(NAMES).into(),
                members: vec![GatewayMember {
                    host: r.pick(NAMES).into(),
                    priority: r.num(300),
                }],
                external_addresses: vec![r.pick(IPS).into()],
                vrid: r.num(300),
                tunnel_address: r.pick(IPS).into(),
                ..Default::default()
            }),
            8 => Spec::FloatingIp(FloatingIp {
                external_network: r.pick(NAMES).into(),
                address: r.pick(IPS).into(),
                port: r.pick(NAMES).into(),
                fixed_ip: r.pick(IPS).into(),
            }),
            9 => Spec::SnatRule(SnatRule {
                vpc: r.pick(NAMES).into(),
                subnet: r.pick(NAMES).into(),
                gateway_group: r.pick(NAMES).into(),
                external_address: r.pick(IPS).into(),
            }),
            _ => {
                return Object {
                    name,
                    ..Object::default()
                }
            }
        };
        Object {
            name,
            spec: Some(spec),
            ..Object::default()
        }
    }

    #[test]
    fn random_commands_keep_the_invariants() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let mut s = DesiredState::new();
        let mut accepted = 0;
        for _ in 0..20_000 {
            let command = match r.num(4) {
                0 | 1 => Command::Create {
                    object: object(&mut r),
                },
                2 => Command::Update {
                    object: object(&mut r),
                    expected_revision: u64::from(r.num(3)),
                },
                _ => Command::Delete {
                    kind: r.num(12) as i32,
                    name: r.pick(NAMES).into(),
                    expected_revision: 0,
                },
            };
            let before = s.clone();
            match s.apply(&command) {
                Ok(c) => {
                    accepted += 1;
                    assert_eq!(c.revision, before.revision() + 1);
                    assert_eq!(s.revision(), c.revision);
                }
                Err(_) => assert_eq!(s, before),
            }
            // Whatever is stored is valid and its references resolve.
            if accepted > 0 && r.num(50) == 0 {
                for o in s.list(Kind::Unspecified) {
                    validate::object(&s, o)
                        .unwrap_or_else(|e| panic!("stored {} is invalid: {e}", o.name));
                }
            }
        }
        assert!(
            accepted > 50,
            "the generator should produce some valid commands ({accepted})"
        );
    }
}
