//! Object kinds: the kind of an object, and the names the CLI and messages use for them.

use aegis_api::controlplane::v1::{object::Spec, Kind, Object};

/// Every kind, in the order dependencies go (a kind only refers to kinds before it, except
/// security groups referring to each other), which is also the order of listings.
pub const ALL_KINDS: [Kind; 10] = [
    Kind::Host,
    Kind::Vpc,
    Kind::Subnet,
    Kind::SecurityGroup,
    Kind::Port,
    Kind::Route,
    Kind::ExternalNetwork,
    Kind::GatewayGroup,
    Kind::FloatingIp,
    Kind::SnatRule,
];

/// The kind of an object (`Unspecified` when it has no spec).
pub fn kind_of(object: &Object) -> Kind {
    match &object.spec {
        None => Kind::Unspecified,
        Some(Spec::Host(_)) => Kind::Host,
        Some(Spec::Vpc(_)) => Kind::Vpc,
        Some(Spec::Subnet(_)) => Kind::Subnet,
        Some(Spec::Port(_)) => Kind::Port,
        Some(Spec::Route(_)) => Kind::Route,
        Some(Spec::SecurityGroup(_)) => Kind::SecurityGroup,
        Some(Spec::ExternalNetwork(_)) => Kind::ExternalNetwork,
        Some(Spec::GatewayGroup(_)) => Kind::GatewayGroup,
        Some(Spec::FloatingIp(_)) => Kind::FloatingIp,
        Some(Spec::SnatRule(_)) => Kind::SnatRule,
    }
}

/// The short name of a kind, as the CLI and error messages spell it ("security-group").
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Unspecified => "object",
        Kind::Host => "host",
        Kind::Vpc => "vpc",
        Kind::Subnet => "subnet",
        Kind::Port => "port",
        Kind::Route => "route",
        Kind::SecurityGroup => "security-group",
        Kind::ExternalNetwork => "external-network",
        Kind::GatewayGroup => "gateway-group",
        Kind::FloatingIp => "floating-ip",
        Kind::SnatRule => "snat-rule",
    }
}

/// The kind a short name (or the protobuf enum name) stands for.
pub fn kind_from_name(name: &str) -> Option<Kind> {
    ALL_KINDS
        .into_iter()
        .find(|k| kind_name(*k) == name || k.as_str_name() == name)
}
