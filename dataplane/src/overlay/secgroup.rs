//! Security-group policy: compiles the security groups of one VM port into an immutable
//! [`RuleSet`] that workers evaluate per packet, and owns [`CounterSlots`], the stable
//! rule-name → counter-slot allocator that keeps per-worker counters attributed to the right
//! rule across recompiles.
//!
//! Semantics (the control plane's `SecurityGroup` / `SecurityRule`):
//! - A port has 0..n groups. The rules of all of them are merged and evaluated in the order
//!   (priority ascending, group name, rule id); the first matching rule decides.
//! - A rule matches when its direction, protocol (`None` = any), port range and remote match.
//! - The port range is inclusive and applies to the destination port of tcp/udp; 0/0 means all
//!   ports. With protocol "any", a range only lets tcp/udp packets match (a packet of another
//!   protocol never matches a rule with a range). With another numbered protocol (icmp...) the
//!   range is ignored. The control plane only accepts ranges with tcp/udp; the other cases are
//!   defined here so that a compiled rule never depends on validation having run.
//! - The remote is the packet's source address for ingress and its destination for egress (see
//!   [`Direction::remote`]): a CIDR, the addresses of the members of a group, or any address.
//! - No match: ingress is denied, egress allowed (also for a port without groups).
//!
//! Addresses are IPv4 as host-order `u32` (`u32::from(Ipv4Addr)`), ports are host order. The
//! module is stateless: letting replies of allowed connections through is conntrack's job.
//! Compiling allocates and hashes; [`RuleSet::evaluate`] does neither.

use std::collections::{HashMap, HashSet};

/// Number of counter slots; every slot handed out is below it, so a per-worker counter array
/// of this length never needs to grow.
pub const MAX_COUNTER_SLOTS: usize = 4096;
/// Slot of packets that no ingress rule matched (denied by default).
pub const SLOT_DEFAULT_INGRESS_DENY: u16 = 0;
/// Slot of packets that no egress rule matched (allowed by default).
pub const SLOT_DEFAULT_EGRESS_ALLOW: u16 = 1;
/// Slot shared by the rules that found no free slot ([`MAX_COUNTER_SLOTS`] reached).
pub const SLOT_OTHER: u16 = 2;

/// Names of the fixed slots, indexed by slot.
const FIXED_NAMES: [&str; 3] = ["default/ingress-deny", "default/egress-allow", "other"];
/// From this many slots in use on, [`CounterSlots::is_nearly_full`] asks for a `retain`.
const NEARLY_FULL: usize = MAX_COUNTER_SLOTS * 3 / 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Which way a packet crosses the port's security groups, seen from the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Towards the VM: the remote is the packet's source.
    Ingress,
    /// From the VM: the remote is the packet's destination.
    Egress,
}

/// One rule of a security group, as validated by the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// Unique within its group; names the rule's counter (`GROUP/RULE_ID`).
    pub id: String,
    /// Direction the rule applies to.
    pub direction: Direction,
    /// IP protocol number; `None` = any protocol.
    pub protocol: Option<u8>,
    /// First destination port of the inclusive range; 0/0 = all ports.
    pub port_min: u16,
    /// Last destination port of the inclusive range; 0/0 = all ports.
    pub port_max: u16,
    /// Addresses on the other side of the port.
    pub remote: RemoteSpec,
    /// Lower values are evaluated first.
    pub priority: u32,
    /// `true` = allow, `false` = deny.
    pub allow: bool,
}

/// The remote addresses a rule matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteSpec {
    /// Any address.
    Any,
    /// A prefix; host bits of `addr` are ignored, `len` above 32 counts as 32.
    Cidr {
        /// Network address (host order).
        addr: u32,
        /// Prefix length.
        len: u8,
    },
    /// The addresses of the ports that are members of the named group (in the evaluating
    /// port's VPC: the `group_members` callback of [`compile`] does the scoping).
    Group(String),
}

/// A security group: a name and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    /// Group name; orders rules of equal priority and names their counters.
    pub name: String,
    /// The group's rules, in any order.
    pub rules: Vec<RuleSpec>,
}

/// The merged, ordered rules of one port, split by direction. Immutable once compiled; the
/// default value is the rule set of a port without groups.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    ingress: Box<[Rule]>,
    egress: Box<[Rule]>,
    /// Sorted, deduplicated member addresses of the remote groups, indexed by `Remote::Set`.
    sets: Box<[Box<[u32]>]>,
}

/// The verdict on one packet and the counter slot of the rule (or default) that gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the packet may pass.
    pub allow: bool,
    /// Counter slot naming the deciding rule, see [`CounterSlots::name`].
    pub counter: u16,
}

/// Stable allocator of counter slots for rule names (`GROUP/RULE_ID`, see [`counter_name`]).
///
/// A name keeps its slot until [`CounterSlots::retain`] drops it, so per-worker counter arrays
/// indexed by slot stay attributed to the same rule across recompiles. Slots 0..3 are fixed
/// ([`SLOT_DEFAULT_INGRESS_DENY`], [`SLOT_DEFAULT_EGRESS_ALLOW`], [`SLOT_OTHER`]) and are never
/// handed out for a rule name, not even for a rule whose name spells a fixed one.
#[derive(Clone, Debug)]
pub struct CounterSlots {
    /// Name of each slot ever handed out; `None` = released, waiting in `free`.
    names: Vec<Option<String>>,
    /// Rule names (never the fixed ones) to their slot.
    by_name: HashMap<String, u16>,
    /// Released slots, highest first so that `pop` reuses the lowest.
    free: Vec<u16>,
}

/// A compiled rule: everything a match needs, without strings.
#[derive(Clone, Copy, Debug)]
struct Rule {
    /// `None` = any protocol.
    proto: Option<u8>,
    /// Whether the port range restricts the match (only tcp/udp packets can then match).
    ported: bool,
    port_min: u16,
    port_max: u16,
    remote: Remote,
    allow: bool,
    counter: u16,
}

/// A compiled remote.
#[derive(Clone, Copy, Debug)]
enum Remote {
    Any,
    /// `net` has its host bits cleared.
    Cidr {
        net: u32,
        mask: u32,
    },
    /// Index into `RuleSet::sets`.
    Set(usize),
}

/// Compiles the groups of one port into its rule set.
///
/// `group_members(name)` returns the addresses of the ports of the evaluating port's VPC that
/// are members of group `name`, in any order; it is called once per distinct remote group.
/// Counter slots for new rule names are taken from `slots`. A group listed twice counts once.
pub fn compile(
    port_groups: &[&GroupSpec],
    group_members: &dyn Fn(&str) -> Vec<u32>,
    slots: &mut CounterSlots,
) -> RuleSet {
    let mut merged: Vec<(&str, &RuleSpec)> = port_groups
        .iter()
        .flat_map(|g| g.rules.iter().map(move |r| (g.name.as_str(), r)))
        .collect();
    merged.sort_by(|(ga, ra), (gb, rb)| {
        (ra.priority, *ga, ra.id.as_str()).cmp(&(rb.priority, *gb, rb.id.as_str()))
    });
    // Stable sort: the copy from the first listing of a duplicated group is kept.
    merged.dedup_by(|(gb, rb), (ga, ra)| ga == gb && ra.id == rb.id);

    let mut set_index: HashMap<&str, usize> = HashMap::new();
    let mut sets: Vec<Box<[u32]>> = Vec::new();
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    for (group, spec) in merged {
        let remote = match &spec.remote {
            RemoteSpec::Any | RemoteSpec::Cidr { len: 0, .. } => Remote::Any,
            RemoteSpec::Cidr { addr, len } => {
                let mask = prefix_mask(*len);
                Remote::Cidr {
                    net: addr & mask,
                    mask,
                }
            }
            RemoteSpec::Group(name) => {
                Remote::Set(*set_index.entry(name.as_str()).or_insert_with(|| {
                    let mut members = group_members(name);
                    members.sort_unstable();
                    members.dedup();
                    sets.push(members.into_boxed_slice());
                    sets.len() - 1
                }))
            }
        };
        let ported =
            (spec.port_min, spec.port_max) != (0, 0) && spec.protocol.is_none_or(has_ports);
        let (port_min, port_max) = if ported {
            (spec.port_min, spec.port_max)
        } else {
            (0, u16::MAX)
        };
        let rule = Rule {
            proto: spec.protocol,
            ported,
            port_min,
            port_max,
            remote,
            allow: spec.allow,
            counter: slots.slot(&counter_name(group, &spec.id)),
        };
        match spec.direction {
            Direction::Ingress => ingress.push(rule),
            Direction::Egress => egress.push(rule),
        }
    }
    RuleSet {
        ingress: ingress.into_boxed_slice(),
        egress: egress.into_boxed_slice(),
        sets: sets.into_boxed_slice(),
    }
}

/// The counter name of rule `rule_id` of group `group`: `GROUP/RULE_ID`. Rule ids cannot
/// contain `/`, so names of different rules never collide.
pub fn counter_name(group: &str, rule_id: &str) -> String {
    format!("{group}/{rule_id}")
}

/// One-line description of a decision for logs and traces, e.g. `deny by web/no-telnet`.
pub fn describe(decision: Decision, slots: &CounterSlots) -> String {
    let verb = if decision.allow { "allow" } else { "deny" };
    match slots.name(decision.counter) {
        Some(name) => format!("{verb} by {name}"),
        None => format!("{verb} by counter slot {} (released)", decision.counter),
    }
}

/// Mask of a prefix of `len` bits (`len` above 32 counts as 32).
fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

/// Whether packets of IP protocol `proto` have ports a rule's range applies to.
fn has_ports(proto: u8) -> bool {
    proto == PROTO_TCP || proto == PROTO_UDP
}

impl Direction {
    /// The address a rule's remote is matched against: the source for ingress, the
    /// destination for egress.
    pub fn remote(self, src: u32, dst: u32) -> u32 {
        match self {
            Direction::Ingress => src,
            Direction::Egress => dst,
        }
    }
}

impl RuleSet {
    /// Decides on a packet: `proto` is its IP protocol, `remote` the address chosen by
    /// [`Direction::remote`], `dport` its destination port (ignored unless tcp/udp).
    pub fn evaluate(&self, dir: Direction, proto: u8, remote: u32, dport: u16) -> Decision {
        let rules = match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        };
        rules
            .iter()
            .find(|r| r.matches(proto, remote, dport, &self.sets))
            .map_or(Decision::default_for(dir), |r| Decision {
                allow: r.allow,
                counter: r.counter,
            })
    }

    /// Whether the set has no rules (every packet gets the default decision).
    pub fn is_empty(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }
}

impl Rule {
    /// Cheap tests first, the remote group's binary search last.
    fn matches(&self, proto: u8, remote: u32, dport: u16, sets: &[Box<[u32]>]) -> bool {
        if self.proto.is_some_and(|p| p != proto) {
            return false;
        }
        if self.ported && !(has_ports(proto) && self.port_min <= dport && dport <= self.port_max) {
            return false;
        }
        match self.remote {
            Remote::Any => true,
            Remote::Cidr { net, mask } => remote & mask == net,
            Remote::Set(i) => sets
                .get(i)
                .is_some_and(|members| members.binary_search(&remote).is_ok()),
        }
    }
}

impl Decision {
    /// The decision when no rule matches: ingress denied, egress allowed.
    pub const fn default_for(dir: Direction) -> Decision {
        match dir {
            Direction::Ingress => Decision {
                allow: false,
                counter: SLOT_DEFAULT_INGRESS_DENY,
            },
            Direction::Egress => Decision {
                allow: true,
                counter: SLOT_DEFAULT_EGRESS_ALLOW,
            },
        }
    }
}

impl CounterSlots {
    /// An allocator holding only the fixed slots.
    pub fn new() -> CounterSlots {
        CounterSlots {
            names: FIXED_NAMES.iter().map(|n| Some((*n).to_owned())).collect(),
            by_name: HashMap::new(),
            free: Vec::new(),
        }
    }

    /// The slot of rule name `name`, allocated on first use and the same on every later call
    /// until [`CounterSlots::retain`] drops the name. When all [`MAX_COUNTER_SLOTS`] are taken
    /// it returns [`SLOT_OTHER`] without remembering the name.
    pub fn slot(&mut self, name: &str) -> u16 {
        if let Some(&slot) = self.by_name.get(name) {
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.names.len() < MAX_COUNTER_SLOTS => {
                let Ok(slot) = u16::try_from(self.names.len()) else {
                    return SLOT_OTHER;
                };
                self.names.push(None);
                slot
            }
            None => return SLOT_OTHER,
        };
        if let Some(entry) = self.names.get_mut(usize::from(slot)) {
            *entry = Some(name.to_owned());
        }
        self.by_name.insert(name.to_owned(), slot);
        slot
    }

    /// The slot of rule name `name` if it has one (never a fixed slot).
    pub fn get(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }

    /// The name of `slot`: a rule name, a fixed slot's name, or `None` if free.
    pub fn name(&self, slot: u16) -> Option<&str> {
        self.names.get(usize::from(slot))?.as_deref()
    }

    /// Number of slots in use, the fixed ones included.
    pub fn len(&self) -> usize {
        FIXED_NAMES.len() + self.by_name.len()
    }

    /// Always `false`: the fixed slots are always in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether three quarters of the slots are in use: time to [`CounterSlots::retain`].
    /// Retaining only then keeps the slots of rules that come and go stable.
    pub fn is_nearly_full(&self) -> bool {
        self.len() >= NEARLY_FULL
    }

    /// Keeps the slots of the rule names in `live` (and the fixed slots), releases the others
    /// for reuse and returns them, ascending. The caller must zero the per-worker counters of
    /// the returned slots (and recompile rule sets still using them) before a new name gets
    /// one.
    pub fn retain<'a>(&mut self, live: impl IntoIterator<Item = &'a str>) -> Vec<u16> {
        let live: HashSet<&str> = live.into_iter().collect();
        let mut released = Vec::new();
        self.by_name.retain(|name, slot| {
            let keep = live.contains(name.as_str());
            if !keep {
                released.push(*slot);
            }
            keep
        });
        released.sort_unstable();
        for &slot in &released {
            if let Some(entry) = self.names.get_mut(usize::from(slot)) {
                *entry = None;
            }
        }
        self.free.extend_from_slice(&released);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        released
    }
}

impl Default for CounterSlots {
    fn default() -> CounterSlots {
        CounterSlots::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::net::Ipv4Addr;
    use Direction::{Egress, Ingress};

    const ICMP: u8 = 1;
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const GRE: u8 = 47;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from(Ipv4Addr::new(a, b, c, d))
    }

    /// A rule matching every packet of `direction`.
    fn rule(id: &str, direction: Direction, priority: u32, allow: bool) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            direction,
            protocol: None,
            port_min: 0,
            port_max: 0,
            remote: RemoteSpec::Any,
            priority,
            allow,
        }
    }

    fn ports(protocol: Option<u8>, min: u16, max: u16, r: RuleSpec) -> RuleSpec {
        RuleSpec {
            protocol,
            port_min: min,
            port_max: max,
            ..r
        }
    }

    fn from(remote: RemoteSpec, r: RuleSpec) -> RuleSpec {
        RuleSpec { remote, ..r }
    }

    fn cidr(a: u32, len: u8) -> RemoteSpec {
        RemoteSpec::Cidr { addr: a, len }
    }

    fn group(name: &str, rules: Vec<RuleSpec>) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            rules,
        }
    }

    fn no_members(_: &str) -> Vec<u32> {
        Vec::new()
    }

    fn build(groups: &[&GroupSpec]) -> (RuleSet, CounterSlots) {
        let mut slots = CounterSlots::new();
        let set = compile(groups, &no_members, &mut slots);
        (set, slots)
    }

    fn decided_by(slots: &CounterSlots, allow: bool, name: &str) -> Decision {
        Decision {
            allow,
            counter: slots.get(name).expect("rule has a slot"),
        }
    }

    const DENY_IN: Decision = Decision::default_for(Ingress);
    const ALLOW_OUT: Decision = Decision::default_for(Egress);

    #[test]
    fn a_port_without_groups_denies_ingress_and_allows_egress() {
        let (set, slots) = build(&[]);
        assert!(set.is_empty());
        for set in [&set, &RuleSet::default()] {
            assert_eq!(set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 22), DENY_IN);
            assert_eq!(set.evaluate(Egress, UDP, ip(8, 8, 8, 8), 53), ALLOW_OUT);
        }
        assert_eq!(
            DENY_IN,
            Decision {
                allow: false,
                counter: 0
            }
        );
        assert_eq!(
            ALLOW_OUT,
            Decision {
                allow: true,
                counter: 1
            }
        );
        assert_eq!(slots.len(), 3);
        let empty = group("empty", vec![]);
        assert!(build(&[&empty]).0.is_empty());
    }

    #[test]
    fn unmatched_packets_get_the_default_of_their_direction() {
        let web = group(
            "web",
            vec![
                ports(Some(TCP), 22, 22, rule("ssh", Ingress, 100, true)),
                from(
                    cidr(ip(192, 0, 2, 0), 24),
                    rule("no-doc", Egress, 100, false),
                ),
            ],
        );
        let (set, slots) = build(&[&web]);
        assert!(!set.is_empty());
        assert_eq!(
            set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 22),
            decided_by(&slots, true, "web/ssh")
        );
        assert_eq!(set.evaluate(Ingress, UDP, ip(10, 0, 0, 1), 22), DENY_IN);
        assert_eq!(set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 23), DENY_IN);
        assert_eq!(set.evaluate(Egress, TCP, ip(10, 0, 0, 1), 22), ALLOW_OUT);
        assert_eq!(
            set.evaluate(Egress, TCP, ip(192, 0, 2, 7), 443),
            decided_by(&slots, false, "web/no-doc")
        );
    }

    #[test]
    fn rules_only_apply_to_their_direction() {
        let g = group(
            "g",
            vec![
                rule("in-allow", Ingress, 1, true),
                rule("out-deny", Egress, 1, false),
            ],
        );
        let (set, slots) = build(&[&g]);
        assert_eq!(
            set.evaluate(Ingress, TCP, ip(1, 2, 3, 4), 80),
            decided_by(&slots, true, "g/in-allow")
        );
        assert_eq!(
            set.evaluate(Egress, TCP, ip(1, 2, 3, 4), 80),
            decided_by(&slots, false, "g/out-deny")
        );
    }

    #[test]
    fn priority_orders_rules_across_groups() {
        let a = group("a", vec![rule("allow-all", Ingress, 200, true)]);
        let b = group("b", vec![rule("deny-all", Ingress, 100, false)]);
        let (set, slots) = build(&[&a, &b]);
        let deny = decided_by(&slots, false, "b/deny-all");
        assert_eq!(set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 80), deny);
        let (set, _) = build(&[&b, &a]);
        assert_eq!(set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 80), deny);

        let a = group("a", vec![rule("allow-all", Ingress, 50, true)]);
        let (set, slots) = build(&[&a, &b]);
        assert_eq!(
            set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 80),
            decided_by(&slots, true, "a/allow-all")
        );
    }

    #[test]
    fn equal_priorities_are_ordered_by_group_name_then_rule_id() {
        let zeta = group("zeta", vec![rule("allow", Ingress, 10, true)]);
        let alpha = group("alpha", vec![rule("deny", Ingress, 10, false)]);
        let (set, slots) = build(&[&zeta, &alpha]);
        assert_eq!(
            set.evaluate(Ingress, UDP, ip(10, 0, 0, 1), 53),
            decided_by(&slots, false, "alpha/deny")
        );

        let g = group(
            "g",
            vec![
                rule("b-allow", Ingress, 10, true),
                rule("a-deny", Ingress, 10, false),
            ],
        );
        let (set, slots) = build(&[&g]);
        assert_eq!(
            set.evaluate(Ingress, UDP, ip(10, 0, 0, 1), 53),
            decided_by(&slots, false, "g/a-deny")
        );
    }

    #[test]
    fn a_deny_of_lower_priority_value_wins_over_a_later_allow() {
        let bad = ip(10, 0, 0, 66);
        let g = group(
            "g",
            vec![
                rule("allow-all", Ingress, 20, true),
                from(cidr(bad, 32), rule("block-66", Ingress, 10, false)),
                from(
                    cidr(ip(10, 0, 0, 67), 32),
                    rule("late-deny", Ingress, 30, false),
                ),
            ],
        );
        let (set, slots) = build(&[&g]);
        assert_eq!(
            set.evaluate(Ingress, TCP, bad, 443),
            decided_by(&slots, false, "g/block-66")
        );
        // A deny after an allow-all never decides.
        assert_eq!(
            set.evaluate(Ingress, TCP, ip(10, 0, 0, 67), 443),
            decided_by(&slots, true, "g/allow-all")
        );
    }

    #[test]
    fn port_ranges_are_inclusive_and_per_protocol() {
        let g = group(
            "g",
            vec![ports(Some(TCP), 8000, 8080, rule("web", Ingress, 1, true))],
        );
        let (set, slots) = build(&[&g]);
        let allow = decided_by(&slots, true, "g/web");
        let src = ip(10, 0, 0, 1);
        assert_eq!(set.evaluate(Ingress, TCP, src, 7999), DENY_IN);
        assert_eq!(set.evaluate(Ingress, TCP, src, 8000), allow);
        assert_eq!(set.evaluate(Ingress, TCP, src, 8042), allow);
        assert_eq!(set.evaluate(Ingress, TCP, src, 8080), allow);
        assert_eq!(set.evaluate(Ingress, TCP, src, 8081), DENY_IN);
        assert_eq!(set.evaluate(Ingress, UDP, src, 8000), DENY_IN);

        let g = group(
            "g",
            vec![ports(
                Some(UDP),
                65535,
                65535,
                rule("top", Ingress, 1, true),
            )],
        );
        let (set, _) = build(&[&g]);
        assert!(set.evaluate(Ingress, UDP, src, 65535).allow);
        assert!(!set.evaluate(Ingress, UDP, src, 65534).allow);
    }

    #[test]
    fn a_zero_range_means_all_ports() {
        let g = group(
            "g",
            vec![ports(Some(TCP), 0, 0, rule("tcp", Ingress, 1, true))],
        );
        let (set, _) = build(&[&g]);
        for port in [0, 1, 80, 65535] {
            assert!(set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), port).allow);
        }
        assert!(!set.evaluate(Ingress, UDP, ip(10, 0, 0, 1), 80).allow);
    }

    #[test]
    fn protocol_any_matches_all_and_a_number_only_itself() {
        let any = group("g", vec![rule("any", Ingress, 1, true)]);
        let (set, _) = build(&[&any]);
        for proto in [0, ICMP, TCP, UDP, GRE, 255] {
            assert!(set.evaluate(Ingress, proto, ip(10, 0, 0, 1), 0).allow);
        }
        let gre = group(
            "g",
            vec![RuleSpec {
                protocol: Some(GRE),
                ..rule("gre", Ingress, 1, true)
            }],
        );
        let (set, _) = build(&[&gre]);
        assert!(set.evaluate(Ingress, GRE, ip(10, 0, 0, 1), 0).allow);
        for proto in [0, ICMP, TCP, UDP, 48] {
            assert!(!set.evaluate(Ingress, proto, ip(10, 0, 0, 1), 0).allow);
        }
    }

    #[test]
    fn a_range_with_protocol_any_only_lets_tcp_and_udp_match() {
        let g = group(
            "g",
            vec![ports(None, 53, 53, rule("dns", Ingress, 1, true))],
        );
        let (set, _) = build(&[&g]);
        let src = ip(10, 0, 0, 1);
        assert!(set.evaluate(Ingress, TCP, src, 53).allow);
        assert!(set.evaluate(Ingress, UDP, src, 53).allow);
        assert!(!set.evaluate(Ingress, UDP, src, 54).allow);
        // Whatever dport the caller passes for them, other protocols do not match.
        assert!(!set.evaluate(Ingress, ICMP, src, 53).allow);
        assert!(!set.evaluate(Ingress, GRE, src, 0).allow);
    }

    #[test]
    fn a_range_is_ignored_for_a_protocol_without_ports() {
        let g = group(
            "g",
            vec![ports(Some(ICMP), 1, 1, rule("icmp", Ingress, 1, true))],
        );
        let (set, _) = build(&[&g]);
        for dport in [0, 1, 2048] {
            assert!(set.evaluate(Ingress, ICMP, ip(10, 0, 0, 1), dport).allow);
        }
        assert!(!set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 1).allow);
    }

    #[test]
    fn remote_cidr_matches_its_prefix() {
        let g = group(
            "g",
            vec![
                from(cidr(ip(10, 1, 0, 0), 16), rule("net", Ingress, 1, true)),
                from(cidr(ip(192, 0, 2, 9), 32), rule("host", Ingress, 2, true)),
                // Host bits set: treated as 172.16.0.0/12.
                from(
                    cidr(ip(172, 16, 5, 5), 12),
                    rule("sloppy", Ingress, 3, true),
                ),
            ],
        );
        let (set, slots) = build(&[&g]);
        let eval = |a| set.evaluate(Ingress, TCP, a, 80);
        let net = decided_by(&slots, true, "g/net");
        assert_eq!(eval(ip(10, 1, 0, 0)), net);
        assert_eq!(eval(ip(10, 1, 255, 255)), net);
        assert_eq!(eval(ip(10, 0, 255, 255)), DENY_IN);
        assert_eq!(eval(ip(10, 2, 0, 0)), DENY_IN);
        assert_eq!(eval(ip(192, 0, 2, 9)), decided_by(&slots, true, "g/host"));
        assert_eq!(eval(ip(192, 0, 2, 8)), DENY_IN);
        let sloppy = decided_by(&slots, true, "g/sloppy");
        assert_eq!(eval(ip(172, 16, 0, 0)), sloppy);
        assert_eq!(eval(ip(172, 31, 255, 255)), sloppy);
        assert_eq!(eval(ip(172, 32, 0, 0)), DENY_IN);

        let all = group(
            "g",
            vec![from(
                cidr(ip(10, 9, 9, 9), 0),
                rule("all", Ingress, 1, true),
            )],
        );
        let (set, _) = build(&[&all]);
        for a in [0, ip(10, 0, 0, 1), u32::MAX] {
            assert!(set.evaluate(Ingress, TCP, a, 80).allow);
        }
    }

    #[test]
    fn remote_group_matches_exactly_its_members() {
        let g = group(
            "app",
            vec![from(
                RemoteSpec::Group("web".into()),
                rule("from-web", Ingress, 1, true),
            )],
        );
        let members = |name: &str| match name {
            "web" => vec![
                ip(10, 0, 0, 9),
                ip(10, 0, 0, 3),
                ip(10, 0, 0, 9),
                ip(10, 0, 0, 5),
            ],
            _ => Vec::new(),
        };
        let mut slots = CounterSlots::new();
        let set = compile(&[&g], &members, &mut slots);
        for a in [ip(10, 0, 0, 3), ip(10, 0, 0, 5), ip(10, 0, 0, 9)] {
            assert!(set.evaluate(Ingress, TCP, a, 80).allow, "{a:x}");
        }
        for a in [0, ip(10, 0, 0, 4), ip(10, 0, 0, 10), u32::MAX] {
            assert_eq!(set.evaluate(Ingress, TCP, a, 80), DENY_IN, "{a:x}");
        }

        // A big group: every member and none of the addresses between them.
        let big = |_: &str| {
            (0..5000u32)
                .rev()
                .map(|i| ip(10, 8, 0, 0) + 2 * i)
                .collect()
        };
        let set = compile(&[&g], &big, &mut slots);
        for i in 0..5000u32 {
            let a = ip(10, 8, 0, 0) + 2 * i;
            assert!(set.evaluate(Ingress, TCP, a, 80).allow);
            assert!(!set.evaluate(Ingress, TCP, a + 1, 80).allow);
        }
    }

    #[test]
    fn an_empty_remote_group_matches_nothing() {
        let g = group(
            "g",
            vec![from(
                RemoteSpec::Group("nobody".into()),
                rule("deny-nobody", Ingress, 1, false),
            )],
        );
        let all = group("h", vec![rule("allow-all", Ingress, 2, true)]);
        let (set, slots) = build(&[&g, &all]);
        assert_eq!(
            set.evaluate(Ingress, TCP, ip(10, 0, 0, 1), 80),
            decided_by(&slots, true, "h/allow-all")
        );
    }

    #[test]
    fn group_members_is_asked_once_per_remote_group() {
        let asked = RefCell::new(Vec::new());
        let members = |name: &str| {
            asked.borrow_mut().push(name.to_owned());
            vec![ip(10, 0, 0, 1)]
        };
        let g = group(
            "g",
            vec![
                from(RemoteSpec::Group("web".into()), rule("a", Ingress, 1, true)),
                from(RemoteSpec::Group("db".into()), rule("b", Ingress, 2, true)),
                from(RemoteSpec::Group("web".into()), rule("c", Egress, 3, false)),
            ],
        );
        let set = compile(&[&g], &members, &mut CounterSlots::new());
        let mut asked = asked.into_inner();
        asked.sort();
        assert_eq!(asked, ["db", "web"]);
        assert!(!set.evaluate(Egress, TCP, ip(10, 0, 0, 1), 80).allow);
    }

    #[test]
    fn ingress_matches_the_source_and_egress_the_destination() {
        let (vm, peer, other) = (ip(10, 0, 0, 2), ip(10, 0, 0, 1), ip(10, 0, 0, 3));
        assert_eq!(Ingress.remote(peer, vm), peer);
        assert_eq!(Egress.remote(vm, peer), peer);
        let g = group(
            "g",
            vec![
                from(cidr(peer, 32), rule("from-peer", Ingress, 1, true)),
                from(cidr(peer, 32), rule("to-peer", Egress, 1, false)),
            ],
        );
        let (set, slots) = build(&[&g]);
        let check = |dir: Direction, src, dst| set.evaluate(dir, TCP, dir.remote(src, dst), 80);
        // Ingress: peer -> vm matches, vm's own address as destination does not matter.
        assert_eq!(
            check(Ingress, peer, vm),
            decided_by(&slots, true, "g/from-peer")
        );
        assert_eq!(check(Ingress, other, peer), DENY_IN);
        // Egress: vm -> peer matches; a packet *from* peer's address to another does not.
        assert_eq!(
            check(Egress, vm, peer),
            decided_by(&slots, false, "g/to-peer")
        );
        assert_eq!(check(Egress, peer, other), ALLOW_OUT);
    }

    #[test]
    fn every_rule_has_its_own_named_slot() {
        let web = group(
            "web",
            vec![
                rule("a", Ingress, 1, true),
                rule("b", Egress, 1, true),
                rule("c", Ingress, 5, false),
            ],
        );
        let db = group("db", vec![rule("a", Ingress, 1, true)]);
        let (set, slots) = build(&[&web, &db]);
        let names = ["web/a", "web/b", "web/c", "db/a"];
        let mut seen: Vec<u16> = names.iter().map(|n| slots.get(n).unwrap()).collect();
        for (name, slot) in names.iter().zip(&seen) {
            assert_eq!(slots.name(*slot), Some(*name));
            assert!(*slot > SLOT_OTHER);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), names.len());
        assert_eq!(slots.len(), 3 + names.len());
        // Ordering is db/a (priority 1) before web/a.
        assert_eq!(
            set.evaluate(Ingress, TCP, 1, 1),
            decided_by(&slots, true, "db/a")
        );
    }

    #[test]
    fn slots_are_stable_across_recompiles_and_ports() {
        let mut slots = CounterSlots::new();
        let web = group(
            "web",
            vec![
                rule("ssh", Ingress, 10, true),
                rule("http", Ingress, 20, true),
            ],
        );
        compile(&[&web], &no_members, &mut slots);
        let ssh = slots.get("web/ssh").unwrap();
        let http = slots.get("web/http").unwrap();

        // The group changes: a new first rule, priorities swapped, another group joins.
        let web = group(
            "web",
            vec![
                rule("new", Ingress, 1, false),
                rule("ssh", Ingress, 30, true),
                rule("http", Ingress, 5, true),
            ],
        );
        let db = group("db", vec![rule("sql", Ingress, 1, true)]);
        let set = compile(&[&db, &web], &no_members, &mut slots);
        assert_eq!(slots.get("web/ssh"), Some(ssh));
        assert_eq!(slots.get("web/http"), Some(http));
        let new = slots.get("web/new").unwrap();
        assert!(![ssh, http].contains(&new));
        assert_eq!(
            set.evaluate(Ingress, TCP, 1, 22).counter,
            slots.get("db/sql").unwrap()
        );

        // Another port with the same group shares its slots.
        let other = compile(&[&web], &no_members, &mut slots);
        assert_eq!(other.evaluate(Ingress, TCP, 1, 22).counter, new);
        assert_eq!(slots.len(), 3 + 4);
    }

    #[test]
    fn fixed_slots_are_never_given_to_rules() {
        let slots = CounterSlots::default();
        assert_eq!(
            slots.name(SLOT_DEFAULT_INGRESS_DENY),
            Some("default/ingress-deny")
        );
        assert_eq!(
            slots.name(SLOT_DEFAULT_EGRESS_ALLOW),
            Some("default/egress-allow")
        );
        assert_eq!(slots.name(SLOT_OTHER), Some("other"));
        assert_eq!(slots.name(3), None);
        assert_eq!(slots.name(u16::MAX), None);
        assert_eq!(slots.len(), 3);
        assert!(!slots.is_empty());

        // A group named "default" with a rule "ingress-deny" gets a slot of its own.
        let g = group("default", vec![rule("ingress-deny", Ingress, 1, true)]);
        let (set, slots) = build(&[&g]);
        let counter = set.evaluate(Ingress, TCP, 1, 1).counter;
        assert!(counter > SLOT_OTHER);
        assert_eq!(slots.name(counter), Some("default/ingress-deny"));
        assert_eq!(slots.get("other"), None);
    }

    #[test]
    fn slots_beyond_the_maximum_fall_back_to_other() {
        let mut slots = CounterSlots::new();
        for i in 0..MAX_COUNTER_SLOTS - 3 {
            let slot = slots.slot(&format!("g/r{i}"));
            assert_eq!(usize::from(slot), i + 3);
        }
        assert_eq!(slots.len(), MAX_COUNTER_SLOTS);
        assert!(slots.is_nearly_full());
        assert_eq!(slots.slot("late/one"), SLOT_OTHER);
        assert_eq!(slots.get("late/one"), None);
        assert_eq!(slots.len(), MAX_COUNTER_SLOTS);
        assert_eq!(slots.slot("g/r0"), 3);

        let late = group("late", vec![rule("one", Ingress, 1, false)]);
        let set = compile(&[&late], &no_members, &mut slots);
        let decision = set.evaluate(Ingress, TCP, 1, 1);
        assert_eq!(
            decision,
            Decision {
                allow: false,
                counter: SLOT_OTHER
            }
        );
        assert_eq!(describe(decision, &slots), "deny by other");

        // Releasing unused names makes room; the late rule gets a real slot on recompile.
        let keep: Vec<String> = (0..100).map(|i| format!("g/r{i}")).collect();
        let released = slots.retain(keep.iter().map(String::as_str));
        assert_eq!(released.len(), MAX_COUNTER_SLOTS - 3 - 100);
        assert!(!slots.is_nearly_full());
        let set = compile(&[&late], &no_members, &mut slots);
        assert_eq!(set.evaluate(Ingress, TCP, 1, 1).counter, 103);
    }

    #[test]
    fn retain_releases_unused_slots_for_reuse() {
        let mut slots = CounterSlots::new();
        let a = slots.slot("g/a");
        let b = slots.slot("g/b");
        let c = slots.slot("g/c");
        let d = slots.slot("g/d");
        assert!(!slots.is_nearly_full());

        let released = slots.retain(["g/a", "g/c", "g/unknown"]);
        assert_eq!(released, [b, d]);
        assert_eq!(slots.len(), 5);
        assert_eq!(slots.name(b), None);
        assert_eq!(slots.get("g/b"), None);
        assert_eq!((slots.get("g/a"), slots.get("g/c")), (Some(a), Some(c)));
        // The fixed slots survive without being listed.
        assert_eq!(
            slots.name(SLOT_DEFAULT_EGRESS_ALLOW),
            Some("default/egress-allow")
        );

        // Released slots are reused lowest first, then the table grows again.
        assert_eq!(slots.slot("h/x"), b);
        assert_eq!(slots.slot("h/y"), d);
        assert_eq!(slots.slot("h/z"), d + 1);
        assert_eq!(slots.name(b), Some("h/x"));
        assert_eq!(slots.slot("g/a"), a);
        assert_eq!(slots.retain([]).len(), 5);
        assert_eq!(slots.len(), 3);
    }

    #[test]
    fn describe_names_the_deciding_rule() {
        let g = group(
            "web",
            vec![ports(
                Some(TCP),
                23,
                23,
                rule("no-telnet", Ingress, 1, false),
            )],
        );
        let (set, mut slots) = build(&[&g]);
        let telnet = set.evaluate(Ingress, TCP, 1, 23);
        assert_eq!(describe(telnet, &slots), "deny by web/no-telnet");
        assert_eq!(
            describe(set.evaluate(Ingress, TCP, 1, 22), &slots),
            "deny by default/ingress-deny"
        );
        assert_eq!(
            describe(set.evaluate(Egress, TCP, 1, 22), &slots),
            "allow by default/egress-allow"
        );
        slots.retain([]);
        assert_eq!(
            describe(telnet, &slots),
            format!("deny by counter slot {} (released)", telnet.counter)
        );
    }

    #[test]
    fn a_group_listed_twice_counts_once() {
        let g = group(
            "g",
            vec![rule("a", Ingress, 1, true), rule("b", Egress, 1, true)],
        );
        let (set, slots) = build(&[&g, &g]);
        assert_eq!((set.ingress.len(), set.egress.len()), (1, 1));
        assert_eq!(slots.len(), 5);
    }
}
