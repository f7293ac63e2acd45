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
        self.objects.get(&(kind as i32)).into_iter().flat_map(BTreeMap::values)
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
                    .ok_or_else(|| ModelError::invalid(format!("kind {kind} is not an object kind")))?;
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
                stored.created_revision = previous.as_ref().map_or(revision, |p| p.created_revision);
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
