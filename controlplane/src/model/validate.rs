//! The rules of the desired state: each object's own fields, its references to other objects,
//! and what must stay unique or disjoint across objects. Validation reads the rest of the
//! state through [`Lookup`], so an update can be checked against the state as it would be.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use aegis_api::controlplane::v1::{
    object::Spec, Direction, ExternalNetwork, FloatingIp, GatewayGroup, Host, HostRole, Kind,
    Object, Port, Route, RouteAction, RuleAction, SecurityGroup, SnatRule, Subnet, Vpc,
    VrrpTransport,
};
use ipnet::Ipv4Net;

use super::kind::{kind_name, kind_of};
use super::parse;
use super::ModelError;

/// Largest Geneve VNI (24 bits).
pub const MAX_VNI: u32 = 0xFF_FFFF;
/// A gateway group's VRRP advertisement interval when none is given, milliseconds.
pub const DEFAULT_ADVERT_INTERVAL_MS: u32 = 1000;
/// Longest VRRP preempt delay, milliseconds (keepalived's 1000 s).
pub const MAX_PREEMPT_DELAY_MS: u32 = 1_000_000;

/// Read access to the objects of a state.
pub trait Lookup {
    /// The object of `kind` named `name`.
    fn get(&self, kind: Kind, name: &str) -> Option<&Object>;
    /// Every object of `kind`, by name.
    fn all(&self, kind: Kind) -> Box<dyn Iterator<Item = &Object> + '_>;
}

/// Validates `object` as it would be stored, against the other objects in `state` (an
/// object of the same kind and name in `state` is the one being replaced and is ignored).
pub fn object(state: &dyn Lookup, object: &Object) -> Result<(), ModelError> {
    let kind = kind_of(object);
    if kind == Kind::Unspecified {
        return Err(ModelError::invalid(
            "the object has no spec: set one of host, vpc, subnet, port, route, security_group, external_network, gateway_group, floating_ip, snat_rule",
        ));
    }
    let what = kind_name(kind);
    parse::name(&format!("{what} name"), &object.name)?;
    let ctx = Ctx {
        state,
        name: &object.name,
        what,
    };
    match &object.spec {
        Some(Spec::Host(h)) => ctx.host(h),
        Some(Spec::Vpc(v)) => ctx.vpc(v),
        Some(Spec::Subnet(s)) => ctx.subnet(s),
        Some(Spec::Port(p)) => ctx.port(p),
        Some(Spec::Route(r)) => ctx.route(r),
        Some(Spec::SecurityGroup(g)) => ctx.security_group(g),
        Some(Spec::ExternalNetwork(e)) => ctx.external_network(e),
        Some(Spec::GatewayGroup(g)) => ctx.gateway_group(g),
        Some(Spec::FloatingIp(f)) => ctx.floating_ip(f),
        Some(Spec::SnatRule(s)) => ctx.snat_rule(s),
        None => unreachable_spec(),
    }
}

fn unreachable_spec() -> Result<(), ModelError> {
    Err(ModelError::invalid("the object has no spec"))
}

/// The objects `object` refers to, as (kind, name).
pub fn references(object: &Object) -> Vec<(Kind, &str)> {
    let mut out = Vec::new();
    match &object.spec {
        Some(Spec::Subnet(s)) => out.push((Kind::Vpc, s.vpc.as_str())),
        Some(Spec::Port(p)) => {
            out.push((Kind::Vpc, p.vpc.as_str()));
            out.push((Kind::Subnet, p.subnet.as_str()));
            if !p.host.is_empty() {
                out.push((Kind::Host, p.host.as_str()));
            }
            out.extend(
                p.security_groups
                    .iter()
                    .map(|g| (Kind::SecurityGroup, g.as_str())),
            );
        }
        Some(Spec::Route(r)) => {
            if !r.vpc.is_empty() {
                out.push((Kind::Vpc, r.vpc.as_str()));
            }
            if !r.host.is_empty() {
                out.push((Kind::Host, r.host.as_str()));
            }
        }
        Some(Spec::SecurityGroup(g)) => out.extend(
            g.rules
                .iter()
                .filter(|r| !r.remote_group.is_empty() && r.remote_group != object.name)
                .map(|r| (Kind::SecurityGroup, r.remote_group.as_str())),
        ),
        Some(Spec::GatewayGroup(g)) => {
            out.push((Kind::ExternalNetwork, g.external_network.as_str()));
            out.extend(g.members.iter().map(|m| (Kind::Host, m.host.as_str())));
        }
        Some(Spec::FloatingIp(f)) => {
            out.push((Kind::ExternalNetwork, f.external_network.as_str()));
            out.push((Kind::Port, f.port.as_str()));
        }
        Some(Spec::SnatRule(s)) => {
            out.push((Kind::Vpc, s.vpc.as_str()));
            if !s.subnet.is_empty() {
                out.push((Kind::Subnet, s.subnet.as_str()));
            }
            out.push((Kind::GatewayGroup, s.gateway_group.as_str()));
        }
        Some(Spec::Host(_) | Spec::Vpc(_) | Spec::ExternalNetwork(_)) | None => {}
    }
    out
}

/// The context of one validation: the state and the object's name.
struct Ctx<'a> {
    state: &'a dyn Lookup,
    name: &'a str,
    what: &'static str,
}

impl Ctx<'_> {
    /// `"<kind> <name>: <message>"`.
    fn msg(&self, message: impl std::fmt::Display) -> String {
        format!("{} {}: {message}", self.what, self.name)
    }

    fn invalid(&self, message: impl std::fmt::Display) -> ModelError {
        ModelError::invalid(self.msg(message))
    }

    /// Other objects of `kind` (not the one being validated).
    fn others(&self, kind: Kind) -> impl Iterator<Item = &Object> + '_ {
        let own = self.name;
        self.state.all(kind).filter(move |o| o.name != own)
    }

    fn field<T>(&self, r: Result<T, ModelError>) -> Result<T, ModelError> {
        r.map_err(|e| ModelError {
            code: e.code,
            message: self.msg(e.message),
        })
    }

    /// The referenced object, or NotFound naming the field.
    fn need(&self, field: &str, kind: Kind, name: &str) -> Result<&Object, ModelError> {
        if name.is_empty() {
            return Err(self.invalid(format!("{field} is required")));
        }
        self.state.get(kind, name).ok_or_else(|| {
            ModelError::not_found(self.msg(format!(
                "{field}: {} {name:?} does not exist",
                kind_name(kind)
            )))
        })
    }

    fn host(&self, h: &Host) -> Result<(), ModelError> {
        if !matches!(
            HostRole::try_from(h.role),
            Ok(HostRole::Compute | HostRole::Gateway)
        ) {
            return Err(self.invalid("role must be compute or gateway"));
        }
        if !h.underlay_address.is_empty() {
            let addr = self.field(parse::ipv4("underlay_address", &h.underlay_address))?;
            for other in self.others(Kind::Host) {
                if let Some(Spec::Host(o)) = &other.spec {
                    if o.underlay_address.parse::<Ipv4Addr>().ok() == Some(addr) {
                        return Err(self.invalid(format!(
                            "underlay_address {addr} is already host {}'s",
                            other.name
                        )));
                    }
                }
            }
        }
        if !h.management_address.is_empty() {
            self.field(parse::ipv4("management_address", &h.management_address))?;
        }
        let mut nets: Vec<(&str, Ipv4Net)> = Vec::new();
        for a in &h.addresses {
            if a.port.is_empty() {
                return Err(self.invalid(format!("address {:?}: port is required", a.address)));
            }
            let net = self.field(parse::interface_address("address", &a.address))?;
            if let Some((port, _)) = nets
                .iter()
                .find(|(_, n)| n.contains(&net.network()) || net.contains(&n.network()))
            {
                return Err(self.invalid(format!(
                    "address {net} on port {} overlaps the address on port {port}",
                    a.port
                )));
            }
            nets.push((&a.port, net));
        }
        let mut seen = HashSet::new();
        for n in &h.networks {
            if n.name.is_empty() || n.interface.is_empty() {
                return Err(self.invalid("every network needs a name and an interface"));
            }
            if !seen.insert(n.name.as_str()) {
                return Err(self.invalid(format!("network {:?} is listed twice", n.name)));
            }
        }
        Ok(())
    }

    fn vpc(&self, v: &Vpc) -> Result<(), ModelError> {
        if v.vni == 0 || v.vni > MAX_VNI {
            return Err(self.invalid(format!("vni {} is outside 1..{MAX_VNI}", v.vni)));
        }
        for other in self.others(Kind::Vpc) {
            if let Some(Spec::Vpc(o)) = &other.spec {
                if o.vni == v.vni {
                    return Err(
                        self.invalid(format!("vni {} is already vpc {}'s", v.vni, other.name))
                    );
                }
            }
        }
        Ok(())
    }

    fn subnet(&self, s: &Subnet) -> Result<(), ModelError> {
        self.need("vpc", Kind::Vpc, &s.vpc)?;
        let cidr = self.field(parse::prefix("cidr", &s.cidr))?;
        if cidr.prefix_len() > 30 {
            return Err(self.invalid(format!("cidr {cidr} is too small (at most /30)")));
        }
        let gw = self.field(parse::ipv4("gateway_ip", &s.gateway_ip))?;
        if !parse::is_host_of(&cidr, gw) {
            return Err(self.invalid(format!("gateway_ip {gw} is not a host address of {cidr}")));
        }
        for other in self.others(Kind::Subnet) {
            if let Some(Spec::Subnet(o)) = &other.spec {
                if o.vpc != s.vpc {
                    continue;
                }
                if let Ok(net) = o.cidr.parse::<Ipv4Net>() {
                    if net.contains(&cidr.network()) || cidr.contains(&net.network()) {
                        return Err(self.invalid(format!(
                            "cidr {cidr} overlaps subnet {} ({net}) in vpc {}",
                            other.name, s.vpc
                        )));
                    }
                }
            }
        }
        // Ports already in this subnet must still fit (an update that shrinks it).
        for port in self.state.all(Kind::Port) {
            if let Some(Spec::Port(p)) = &port.spec {
                if p.subnet != self.name {
                    continue;
                }
                if p.vpc != s.vpc {
                    return Err(ModelError::precondition(self.msg(format!(
                        "port {} of vpc {} is in this subnet; the subnet cannot move to vpc {}",
                        port.name, p.vpc, s.vpc
                    ))));
                }
                for ip in &p.ips {
                    if let Ok(ip) = ip.parse::<Ipv4Addr>() {
                        if !parse::is_host_of(&cidr, ip) || ip == gw {
                            return Err(ModelError::precondition(self.msg(format!(
                                "port {} has address {ip}, which would not be a free host address of {cidr}",
                                port.name
                            ))));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn port(&self, p: &Port) -> Result<(), ModelError> {
        self.need("vpc", Kind::Vpc, &p.vpc)?;
        let subnet = self.need("subnet", Kind::Subnet, &p.subnet)?;
        let Some(Spec::Subnet(subnet)) = &subnet.spec else {
            return unreachable_spec();
        };
        if subnet.vpc != p.vpc {
            return Err(self.invalid(format!(
                "subnet {} belongs to vpc {}, not vpc {}",
                p.subnet, subnet.vpc, p.vpc
            )));
        }
        let cidr: Ipv4Net = self.field(parse::prefix("subnet cidr", &subnet.cidr))?;
        let gw: Ipv4Addr = self.field(parse::ipv4("subnet gateway_ip", &subnet.gateway_ip))?;
        let mac = self.field(parse::mac("mac", &p.mac))?;
        if p.ips.is_empty() {
            return Err(self.invalid("ips: at least one address is required"));
        }
        let mut ips = Vec::new();
        for ip in &p.ips {
            let addr = self.field(parse::ipv4("ip", ip))?;
            if !parse::is_host_of(&cidr, addr) {
                return Err(self.invalid(format!(
                    "ip {addr} is not a host address of subnet {} ({cidr})",
                    p.subnet
                )));
            }
            if addr == gw {
                return Err(self.invalid(format!("ip {addr} is the subnet's gateway address")));
            }
            if ips.contains(&addr) {
                return Err(self.invalid(format!("ip {addr} is listed twice")));
            }
            ips.push(addr);
        }
        for other in self.others(Kind::Port) {
            let Some(Spec::Port(o)) = &other.spec else {
                continue;
            };
            if parse::mac("mac", &o.mac).ok() == Some(mac) {
                return Err(self.invalid(format!("mac {} is already port {}'s", p.mac, other.name)));
            }
            if o.vpc == p.vpc {
                for ip in &o.ips {
                    if let Ok(ip) = ip.parse::<Ipv4Addr>() {
                        if ips.contains(&ip) {
                            return Err(self.invalid(format!(
                                "ip {ip} is already port {}'s in vpc {}",
                                other.name, p.vpc
                            )));
                        }
                    }
                }
            }
        }
        if !p.host.is_empty() {
            self.need("host", Kind::Host, &p.host)?;
        }
        let mut groups = HashSet::new();
        for g in &p.security_groups {
            self.need("security_groups", Kind::SecurityGroup, g)?;
            if !groups.insert(g) {
                return Err(self.invalid(format!("security group {g} is listed twice")));
            }
        }
        // Floating IPs bound to one of this port's addresses must keep it.
        for fip in self.state.all(Kind::FloatingIp) {
            if let Some(Spec::FloatingIp(f)) = &fip.spec {
                if f.port == self.name && !f.fixed_ip.is_empty() && !p.ips.contains(&f.fixed_ip) {
                    return Err(ModelError::precondition(self.msg(format!(
                        "floating-ip {} maps to {}, which the port would no longer have",
                        fip.name, f.fixed_ip
                    ))));
                }
            }
        }
        Ok(())
    }

    fn route(&self, r: &Route) -> Result<(), ModelError> {
        let prefix = self.field(parse::prefix("prefix", &r.prefix))?;
        let action = RouteAction::try_from(r.action)
            .map_err(|_| self.invalid(format!("action {} is not a route action", r.action)))?;
        let forward = matches!(action, RouteAction::Unspecified | RouteAction::Forward);
        let next_hop = if forward {
            if r.next_hop.is_empty() {
                return Err(self.invalid("next_hop is required for a forward route"));
            }
            Some(self.field(parse::ipv4("next_hop", &r.next_hop))?)
        } else {
            if !r.next_hop.is_empty() {
                return Err(self.invalid("a blackhole or unreachable route has no next_hop"));
            }
            None
        };
        match (r.vpc.is_empty(), r.host.is_empty()) {
            (false, true) => {
                self.need("vpc", Kind::Vpc, &r.vpc)?;
                if let Some(nh) = next_hop {
                    let on_link = self.state.all(Kind::Subnet).any(|s| match &s.spec {
                        Some(Spec::Subnet(s)) => {
                            s.vpc == r.vpc
                                && s.cidr
                                    .parse::<Ipv4Net>()
                                    .is_ok_and(|n| parse::is_host_of(&n, nh))
                        }
                        _ => false,
                    });
                    if !on_link {
                        return Err(self.invalid(format!(
                            "next_hop {nh} is not inside a subnet of vpc {}",
                            r.vpc
                        )));
                    }
                }
            }
            (true, false) => {
                let host = self.need("host", Kind::Host, &r.host)?;
                let Some(Spec::Host(host)) = &host.spec else {
                    return unreachable_spec();
                };
                if let Some(nh) = next_hop {
                    let nets: Vec<Ipv4Net> = host
                        .addresses
                        .iter()
                        .filter_map(|a| a.address.parse().ok())
                        .collect();
                    if nets.iter().any(|n| n.addr() == nh) {
                        return Err(
                            self.invalid(format!("next_hop {nh} is the host's own address"))
                        );
                    }
                    if !nets.iter().any(|n| n.trunc().contains(&nh)) {
                        return Err(self.invalid(format!(
                            "next_hop {nh} is not on a connected prefix of host {} (its addresses: {})",
                            r.host,
                            if nets.is_empty() {
                                "none".to_owned()
                            } else {
                                nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                            }
                        )));
                    }
                }
            }
            _ => {
                return Err(
                    self.invalid("set exactly one of vpc (a VPC route) and host (a host route)")
                )
            }
        }
        for other in self.others(Kind::Route) {
            if let Some(Spec::Route(o)) = &other.spec {
                if o.vpc == r.vpc
                    && o.host == r.host
                    && o.prefix.parse::<Ipv4Net>().ok() == Some(prefix)
                {
                    return Err(self.invalid(format!(
                        "route {} already has prefix {prefix} in the same {}",
                        other.name,
                        if r.vpc.is_empty() { "host" } else { "vpc" }
                    )));
                }
            }
        }
        Ok(())
    }

    fn security_group(&self, g: &SecurityGroup) -> Result<(), ModelError> {
        let mut ids = HashSet::new();
        for rule in &g.rules {
            let id = &rule.id;
            if id.is_empty() {
                return Err(self.invalid("every rule needs an id"));
            }
            parse::name("rule id", id).map_err(|e| self.invalid(e.message))?;
            if !ids.insert(id) {
                return Err(self.invalid(format!("rule id {id} is used twice")));
            }
            let rule_msg = |m: String| self.invalid(format!("rule {id}: {m}"));
            if !matches!(
                Direction::try_from(rule.direction),
                Ok(Direction::Ingress | Direction::Egress)
            ) {
                return Err(rule_msg("direction must be ingress or egress".into()));
            }
            RuleAction::try_from(rule.action)
                .map_err(|_| rule_msg(format!("action {} is not allow or deny", rule.action)))?;
            let proto = parse_protocol(&rule.protocol).ok_or_else(|| {
                rule_msg(format!(
                    "protocol {:?} is not any, tcp, udp, icmp or a number 0..255",
                    rule.protocol
                ))
            })?;
            let ported = matches!(proto, Some(6 | 17));
            if rule.port_min != 0 || rule.port_max != 0 {
                if !ported {
                    return Err(rule_msg("a port range needs protocol tcp or udp".into()));
                }
                if rule.port_min > rule.port_max || rule.port_max > 65535 || rule.port_min == 0 {
                    return Err(rule_msg(format!(
                        "port range {}-{} is not 1 <= min <= max <= 65535",
                        rule.port_min, rule.port_max
                    )));
                }
            }
            if !rule.remote_cidr.is_empty() && !rule.remote_group.is_empty() {
                return Err(rule_msg(
                    "set at most one of remote_cidr and remote_group".into(),
                ));
            }
            if !rule.remote_cidr.is_empty() {
                parse::prefix("remote_cidr", &rule.remote_cidr).map_err(|e| rule_msg(e.message))?;
            }
            if !rule.remote_group.is_empty() && rule.remote_group != self.name {
                self.need(
                    &format!("rule {id} remote_group"),
                    Kind::SecurityGroup,
                    &rule.remote_group,
                )?;
            }
        }
        Ok(())
    }

    fn external_network(&self, e: &ExternalNetwork) -> Result<(), ModelError> {
        let cidr = self.field(parse::prefix("cidr", &e.cidr))?;
        let gw = self.field(parse::ipv4("gateway_ip", &e.gateway_ip))?;
        if !parse::is_host_of(&cidr, gw) {
            return Err(self.invalid(format!("gateway_ip {gw} is not a host address of {cidr}")));
        }
        if e.vlan > 4094 {
            return Err(self.invalid(format!("vlan {} is outside 0..4094", e.vlan)));
        }
        for other in self.others(Kind::ExternalNetwork) {
            if let Some(Spec::ExternalNetwork(o)) = &other.spec {
                if let Ok(net) = o.cidr.parse::<Ipv4Net>() {
                    if net.contains(&cidr.network()) || cidr.contains(&net.network()) {
                        return Err(self.invalid(format!(
                            "cidr {cidr} overlaps external-network {} ({net})",
                            other.name
                        )));
                    }
                }
            }
        }
        // Addresses already handed out from this network must stay inside it.
        for (kind, addrs) in self.addresses_in_network() {
            for (owner, addr) in addrs {
                if !parse::is_host_of(&cidr, addr) || addr == gw {
                    return Err(ModelError::precondition(self.msg(format!(
                        "{} {owner} uses {addr}, which would not be a free host address of {cidr}",
                        kind_name(kind)
                    ))));
                }
            }
        }
        Ok(())
    }

    /// External addresses taken from the network being validated, by gateway groups and
    /// floating IPs.
    fn addresses_in_network(&self) -> Vec<(Kind, Vec<(String, Ipv4Addr)>)> {
        let mut groups = Vec::new();
        for g in self.state.all(Kind::GatewayGroup) {
            if let Some(Spec::GatewayGroup(gg)) = &g.spec {
                if gg.external_network == self.name {
                    groups.extend(
                        gg.external_addresses
                            .iter()
                            .filter_map(|a| a.parse().ok())
                            .map(|a| (g.name.clone(), a)),
                    );
                }
            }
        }
        let mut fips = Vec::new();
        for f in self.state.all(Kind::FloatingIp) {
            if let Some(Spec::FloatingIp(ff)) = &f.spec {
                if ff.external_network == self.name {
                    if let Ok(a) = ff.address.parse() {
                        fips.push((f.name.clone(), a));
                    }
                }
            }
        }
        vec![(Kind::GatewayGroup, groups), (Kind::FloatingIp, fips)]
    }

    /// The external network's prefix and gateway address.
    fn external_cidr(&self, network: &str) -> Result<(Ipv4Net, Ipv4Addr), ModelError> {
        let net = self.need("external_network", Kind::ExternalNetwork, network)?;
        let Some(Spec::ExternalNetwork(e)) = &net.spec else {
            return Err(ModelError::invalid("external network without spec"));
        };
        Ok((
            self.field(parse::prefix("external network cidr", &e.cidr))?,
            self.field(parse::ipv4("external network gateway_ip", &e.gateway_ip))?,
        ))
    }

    /// Every external address in use by another gateway group or floating IP.
    fn external_addresses_taken(&self) -> Vec<(String, Ipv4Addr)> {
        let mut out = Vec::new();
        for g in self.state.all(Kind::GatewayGroup) {
            if let Some(Spec::GatewayGroup(gg)) = &g.spec {
                if !(self.what == "gateway-group" && g.name == self.name) {
                    out.extend(
                        gg.external_addresses
                            .iter()
                            .filter_map(|a| a.parse().ok())
                            .map(|a| (format!("gateway-group {}", g.name), a)),
                    );
                }
            }
        }
        for f in self.state.all(Kind::FloatingIp) {
            if let Some(Spec::FloatingIp(ff)) = &f.spec {
                if !(self.what == "floating-ip" && f.name == self.name) {
                    if let Ok(a) = ff.address.parse() {
                        out.push((format!("floating-ip {}", f.name), a));
                    }
                }
            }
        }
        out
    }

    fn gateway_group(&self, g: &GatewayGroup) -> Result<(), ModelError> {
        let (cidr, gw) = self.external_cidr(&g.external_network)?;
        if g.members.is_empty() {
            return Err(self.invalid("members: at least one gateway host is required"));
        }
        let transport = VrrpTransport::try_from(g.vrrp_transport).map_err(|_| {
            self.invalid(format!(
                "vrrp_transport {} is not one of 0 (auto), 1 (unicast), 2 (multicast)",
                g.vrrp_transport
            ))
        })?;
        let mut hosts = HashSet::new();
        for m in &g.members {
            let host = self.need("members host", Kind::Host, &m.host)?;
            if let Some(Spec::Host(h)) = &host.spec {
                if h.role != HostRole::Gateway as i32 {
                    return Err(self.invalid(format!("host {} is not a gateway host", m.host)));
                }
                if transport == VrrpTransport::Unicast {
                    self.unicast_reachable(&m.host, h, &g.external_network, cidr)?;
                }
            }
            if m.priority == 0 || m.priority > 254 {
                return Err(self.invalid(format!(
                    "member {}: priority {} is outside 1..254",
                    m.host, m.priority
                )));
            }
            if !hosts.insert(&m.host) {
                return Err(self.invalid(format!("host {} is listed twice", m.host)));
            }
        }
        if g.external_addresses.is_empty() {
            return Err(self.invalid("external_addresses: at least one address is required"));
        }
        let taken = self.external_addresses_taken();
        let mut own = Vec::new();
        for a in &g.external_addresses {
            let addr = self.field(parse::ipv4("external_addresses", a))?;
            if !parse::is_host_of(&cidr, addr) || addr == gw {
                return Err(self.invalid(format!(
                    "external address {addr} is not a free host address of external network {} ({cidr})",
                    g.external_network
                )));
            }
            if let Some((owner, _)) = taken.iter().find(|(_, t)| *t == addr) {
                return Err(self.invalid(format!("external address {addr} is already {owner}'s")));
            }
            if own.contains(&addr) {
                return Err(self.invalid(format!("external address {addr} is listed twice")));
            }
            own.push(addr);
        }
        if g.vrid == 0 || g.vrid > 255 {
            return Err(self.invalid(format!("vrid {} is outside 1..255", g.vrid)));
        }
        for other in self.others(Kind::GatewayGroup) {
            if let Some(Spec::GatewayGroup(o)) = &other.spec {
                if o.vrid == g.vrid {
                    return Err(self.invalid(format!(
                        "vrid {} is already gateway-group {}'s (every group's members share \
                         the underlay, where a VRID names one virtual router)",
                        g.vrid, other.name
                    )));
                }
            }
        }
        self.vrrp_timers(g)?;
        if !g.tunnel_address.is_empty() {
            self.field(parse::ipv4("tunnel_address", &g.tunnel_address))?;
        }
        if g.standby_count as usize >= g.members.len().max(2) {
            return Err(self.invalid(format!(
                "standby_count {}: a group of {} members has at most {} standbys",
                g.standby_count,
                g.members.len(),
                g.members.len().saturating_sub(1).max(1)
            )));
        }
        if let Some(a) = &g.sync_assignment {
            let mut seen = HashSet::new();
            for h in &a.members {
                if !hosts.contains(h) {
                    return Err(
                        self.invalid(format!("sync_assignment: {h} is not a member of the group"))
                    );
                }
                if !seen.insert(h) {
                    return Err(self.invalid(format!("sync_assignment: {h} is listed twice")));
                }
            }
        }
        // SNAT rules using this group's addresses must keep them.
        for rule in self.state.all(Kind::SnatRule) {
            if let Some(Spec::SnatRule(s)) = &rule.spec {
                if s.gateway_group == self.name
                    && !g.external_addresses.contains(&s.external_address)
                {
                    return Err(ModelError::precondition(self.msg(format!(
                        "snat-rule {} uses {}, which the group would no longer own",
                        rule.name, s.external_address
                    ))));
                }
            }
        }
        Ok(())
    }

    /// The VRRP version, advertisement interval and preemption of a gateway group.
    fn vrrp_timers(&self, g: &GatewayGroup) -> Result<(), ModelError> {
        let interval = match g.advert_interval_ms {
            0 => DEFAULT_ADVERT_INTERVAL_MS,
            ms => ms,
        };
        match g.vrrp_version {
            0 | 3 => {
                if !(10..=40_950).contains(&interval) || interval % 10 != 0 {
                    return Err(self.invalid(format!(
                        "advert_interval_ms {interval}: VRRPv3 advertises every 10..40950 ms, \
                         in steps of 10"
                    )));
                }
            }
            2 => {
                if !(1_000..=255_000).contains(&interval) || interval % 1_000 != 0 {
                    return Err(self.invalid(format!(
                        "advert_interval_ms {interval}: VRRPv2 advertises every 1..255 whole \
                         seconds (1000..255000 ms); sub-second intervals need vrrp_version 3"
                    )));
                }
            }
            v => return Err(self.invalid(format!("vrrp_version {v}: 2 or 3 (0 = 3)"))),
        }
        if g.preempt_delay_ms > MAX_PREEMPT_DELAY_MS {
            return Err(self.invalid(format!(
                "preempt_delay_ms {}: at most {MAX_PREEMPT_DELAY_MS} (1000 s)",
                g.preempt_delay_ms
            )));
        }
        if g.no_preempt && g.preempt_delay_ms > 0 {
            return Err(self.invalid(
                "preempt_delay_ms has no effect with no_preempt (a member never preempts)",
            ));
        }
        Ok(())
    }

    /// With unicast VRRP a member needs an address on each link the group's instances run
    /// on: its underlay address, and a Host address inside the external network.
    fn unicast_reachable(
        &self,
        name: &str,
        h: &Host,
        network: &str,
        cidr: Ipv4Net,
    ) -> Result<(), ModelError> {
        if h.underlay_address.is_empty() {
            return Err(self.invalid(format!(
                "member {name}: unicast VRRP needs its underlay_address (host --underlay)"
            )));
        }
        let on_net = h.addresses.iter().any(|a| {
            a.address
                .split('/')
                .next()
                .and_then(|x| x.parse::<Ipv4Addr>().ok())
                .is_some_and(|x| cidr.contains(&x))
        });
        if !on_net {
            return Err(self.invalid(format!(
                "member {name}: unicast VRRP on external network {network} ({cidr}) needs \
                 {name}'s own address there among its Host addresses (host --address \
                 PORT=A.B.C.D/N), or vrrp_transport auto or multicast"
            )));
        }
        Ok(())
    }

    fn floating_ip(&self, f: &FloatingIp) -> Result<(), ModelError> {
        let (cidr, gw) = self.external_cidr(&f.external_network)?;
        let addr = self.field(parse::ipv4("address", &f.address))?;
        if !parse::is_host_of(&cidr, addr) || addr == gw {
            return Err(self.invalid(format!(
                "address {addr} is not a free host address of external network {} ({cidr})",
                f.external_network
            )));
        }
        if let Some((owner, _)) = self
            .external_addresses_taken()
            .iter()
            .find(|(_, t)| *t == addr)
        {
            return Err(self.invalid(format!("address {addr} is already {owner}'s")));
        }
        let port = self.need("port", Kind::Port, &f.port)?;
        let Some(Spec::Port(p)) = &port.spec else {
            return unreachable_spec();
        };
        if !f.fixed_ip.is_empty() && !p.ips.contains(&f.fixed_ip) {
            return Err(self.invalid(format!(
                "fixed_ip {} is not an address of port {} ({})",
                f.fixed_ip,
                f.port,
                p.ips.join(", ")
            )));
        }
        Ok(())
    }

    fn snat_rule(&self, s: &SnatRule) -> Result<(), ModelError> {
        self.need("vpc", Kind::Vpc, &s.vpc)?;
        if !s.subnet.is_empty() {
            let subnet = self.need("subnet", Kind::Subnet, &s.subnet)?;
            if let Some(Spec::Subnet(sn)) = &subnet.spec {
                if sn.vpc != s.vpc {
                    return Err(self.invalid(format!(
                        "subnet {} belongs to vpc {}, not vpc {}",
                        s.subnet, sn.vpc, s.vpc
                    )));
                }
            }
        }
        let group = self.need("gateway_group", Kind::GatewayGroup, &s.gateway_group)?;
        if let Some(Spec::GatewayGroup(g)) = &group.spec {
            if !g.external_addresses.contains(&s.external_address) {
                return Err(self.invalid(format!(
                    "external_address {:?} is not one of gateway-group {}'s addresses ({})",
                    s.external_address,
                    s.gateway_group,
                    g.external_addresses.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Parses a rule protocol: `None` = any, `Some(n)` = IP protocol n.
pub fn parse_protocol(s: &str) -> Option<Option<u8>> {
    match s {
        "" | "any" => Some(None),
        "tcp" => Some(Some(6)),
        "udp" => Some(Some(17)),
        "icmp" => Some(Some(1)),
        n => n.parse::<u8>().ok().map(Some),
    }
}
