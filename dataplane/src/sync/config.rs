//! The `[sync]` section of host.toml, validated: where the gateway's session-sync
//! transport runs (port, own address, UDP port), who its peers are, the group and its
//! key, and which VRRP instance decides whether this gateway streams (MASTER) or listens.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::state::PortConfig;

/// Fewest bytes of the HMAC key.
pub const MIN_KEY_LEN: usize = 16;

/// A validated `[sync]` section.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Index of the dataplane port the datagrams use.
    pub port: u16,
    /// Its name.
    pub port_name: String,
    /// Our address on it (the datagrams' source).
    pub address: Ipv4Addr,
    /// The other gateways of the group, on that port's subnets.
    pub peers: Vec<Ipv4Addr>,
    /// UDP port (both ends).
    pub udp_port: u16,
    /// Gateway group id (both ends).
    pub group: u32,
    /// Where the key came from.
    pub key_file: PathBuf,
    /// The HMAC-SHA256 key.
    pub key: Vec<u8>,
    /// The VRRP instance whose MASTER state makes this gateway the one that streams
    /// (default: the gateway group's external instance, `gw-external`).
    pub vrrp_instance: String,
}

impl std::fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConfig")
            .field("port", &self.port_name)
            .field("address", &self.address)
            .field("peers", &self.peers)
            .field("udp_port", &self.udp_port)
            .field("group", &self.group)
            .field("key_file", &self.key_file)
            .field("vrrp_instance", &self.vrrp_instance)
            .finish_non_exhaustive()
    }
}

/// The raw values of the section (strings as written), for [`validate`].
#[derive(Debug, Default)]
pub struct RawSync {
    /// `port`.
    pub port: Option<String>,
    /// `address`.
    pub address: Option<String>,
    /// `peers`.
    pub peers: Vec<String>,
    /// `udp_port`.
    pub udp_port: Option<i64>,
    /// `group`.
    pub group: Option<i64>,
    /// `key_file`.
    pub key_file: Option<String>,
    /// `vrrp_instance`.
    pub vrrp_instance: Option<String>,
}

/// A refused `[sync]` value: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfigError {
    /// `sync.peers[1]`...
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SyncConfigError {
    SyncConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates the section against the host's ports, its VRRP instance names and whether
/// NAT is on; `base` is the folder relative key files are read from.
pub fn validate(
    raw: RawSync,
    base: &Path,
    ports: &[PortConfig],
    vrrp_instances: &[&str],
    nat_enabled: bool,
) -> Result<SyncConfig, SyncConfigError> {
    if !nat_enabled {
        return Err(err(
            "sync",
            "session sync needs [nat] (it replicates the NAT sessions)",
        ));
    }
    let port_name = raw
        .port
        .ok_or_else(|| err("sync.port", "missing (the port towards the other gateways)"))?;
    let port = ports
        .iter()
        .position(|p| p.name == port_name)
        .ok_or_else(|| err("sync.port", format!("no [[port]] named {port_name:?}")))?;
    let pc = &ports[port];
    let address = match raw.address {
        Some(a) => {
            let ip: Ipv4Addr = a
                .parse()
                .map_err(|_| err("sync.address", format!("{a:?} is not an IPv4 address")))?;
            if !pc.addresses.iter().any(|x| x.addr == ip) {
                return Err(err(
                    "sync.address",
                    format!("{ip} is not an address of port {port_name}"),
                ));
            }
            ip
        }
        None => pc.addresses.first().map(|a| a.addr).ok_or_else(|| {
            err(
                "sync.address",
                format!("port {port_name} has no address to send from"),
            )
        })?,
    };
    if raw.peers.is_empty() {
        return Err(err("sync.peers", "missing (the other gateways' addresses)"));
    }
    let mut peers = Vec::new();
    for (i, p) in raw.peers.iter().enumerate() {
        let f = format!("sync.peers[{i}]");
        let ip: Ipv4Addr = p
            .parse()
            .map_err(|_| err(&f, format!("{p:?} is not an IPv4 address")))?;
        let on_link = pc.addresses.iter().any(|a| {
            let mask = if a.len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(a.len))
            };
            u32::from(a.addr) & mask == u32::from(ip) & mask
        });
        if !on_link {
            return Err(err(
                &f,
                format!("{ip} is not on a subnet of port {port_name}"),
            ));
        }
        if ip == address || peers.contains(&ip) {
            return Err(err(&f, format!("{ip} is ourselves or listed twice")));
        }
        peers.push(ip);
    }
    let udp_port = match raw.udp_port {
        None => super::DEFAULT_UDP_PORT,
        Some(v) => u16::try_from(v)
            .ok()
            .filter(|&p| p != 0 && p != crate::wire::geneve::UDP_PORT)
            .ok_or_else(|| {
                err(
                    "sync.udp_port",
                    format!("{v} is not a UDP port (1..=65535, not Geneve's 6081)"),
                )
            })?,
    };
    let group = match raw.group {
        None => 1,
        Some(v) => u32::try_from(v)
            .map_err(|_| err("sync.group", format!("{v} is not in 0..=4294967295")))?,
    };
    let key_name = raw.key_file.ok_or_else(|| {
        err(
            "sync.key_file",
            "missing (a file holding the group's shared secret)",
        )
    })?;
    let key_file = base.join(&key_name);
    let text = std::fs::read(&key_file)
        .map_err(|e| err("sync.key_file", format!("{}: {e}", key_file.display())))?;
    let key = text.trim_ascii().to_vec();
    if key.len() < MIN_KEY_LEN {
        return Err(err(
            "sync.key_file",
            format!(
                "{}: the key has {} bytes, at least {MIN_KEY_LEN} are needed",
                key_file.display(),
                key.len()
            ),
        ));
    }
    // Not given: the external instance this host builds for its gateway group (control
    // plane), whose name is fixed.
    let vrrp_instance = raw
        .vrrp_instance
        .unwrap_or_else(|| crate::overlay::gateway::EXTERNAL_INSTANCE.to_owned());
    if vrrp_instance != crate::overlay::gateway::EXTERNAL_INSTANCE
        && !vrrp_instances.contains(&vrrp_instance.as_str())
    {
        return Err(err(
            "sync.vrrp_instance",
            format!(
                "no vrrp_instance {vrrp_instance:?} in [vrrp]'s keepalived.conf (leave it out \
                 to follow the gateway group's external instance, {:?})",
                crate::overlay::gateway::EXTERNAL_INSTANCE
            ),
        ));
    }
    Ok(SyncConfig {
        port: port as u16,
        port_name,
        address,
        peers,
        udp_port,
        group,
        key_file,
        key,
        vrrp_instance,
    })
}
