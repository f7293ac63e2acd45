//! Object kinds: the kind of an object, and the names the CLI and messages use for them.

use aegis_api::controlplane::v1::Kind;

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

/// The kind of an object (`Unspecified` when it has no spec): the agents' function, so the
/// control plane and its agents can never disagree.
pub use aegis_agent::follow::kind_of;

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
