//! The cluster IP's kernel side: adding, removing and looking up the IPv4 address on the
//! management interface through rtnetlink, and announcing it with gratuitous ARP.
//!
//! Every operation opens a fresh rtnetlink socket, whose connection task runs on the
//! caller's tokio runtime and is stopped when the operation returns. Sockets (the netlink
//! one and the packet socket of the announcements) belong to the network namespace of the
//! thread that calls the operation, so a [`ClusterIp`] acts on the namespace its caller is
//! in. The runtime must have its IO driver enabled (`enable_io`/`enable_all`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use rtnetlink::Handle;

use super::garp;

/// errno: no such device (an unknown interface name).
const ENODEV: i32 = 19;
/// errno: the address is already on the interface.
const EEXIST: i32 = 17;
/// errno: the address is not on the interface (deleting twice).
const EADDRNOTAVAIL: i32 = 99;
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Why a cluster IP operation failed. Every message names the interface and the address.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    /// The operation was called outside a tokio runtime.
    #[error("cluster IP {address} on {interface}: must be called from within a tokio runtime")]
    NoRuntime {
        /// Interface of the cluster IP.
        interface: String,
        /// The cluster IP.
        address: Ipv4Addr,
    },
    /// The prefix length is larger than 32.
    #[error("cluster IP {address}/{prefix_len} on {interface}: invalid prefix length (0..=32)")]
    InvalidPrefix {
        /// Interface of the cluster IP.
        interface: String,
        /// The cluster IP.
        address: Ipv4Addr,
        /// The rejected prefix length.
        prefix_len: u8,
    },
    /// No interface of that name exists in the caller's network namespace.
    #[error("interface {interface} not found (cluster IP {address})")]
    InterfaceNotFound {
        /// The missing interface.
        interface: String,
        /// The cluster IP.
        address: Ipv4Addr,
    },
    /// The rtnetlink socket could not be opened.
    #[error("cluster IP {address} on {interface}: cannot open a netlink socket: {cause}")]
    Socket {
        /// Interface of the cluster IP.
        interface: String,
        /// The cluster IP.
        address: Ipv4Addr,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The kernel refused or failed a netlink request.
    #[error("cluster IP {address}/{prefix_len} on {interface}: {action} failed: {cause}")]
    Netlink {
        /// What was being done ("adding the address", ...).
        action: &'static str,
        /// Interface of the cluster IP.
        interface: String,
        /// The cluster IP.
        address: Ipv4Addr,
        /// Its prefix length.
        prefix_len: u8,
        /// The underlying error.
        cause: rtnetlink::Error,
    },
    /// Sending the gratuitous ARP failed (for instance because the interface is down). An
    /// address added by [`ClusterIp::acquire`] stays on the interface.
    #[error("gratuitous ARP for {address} on {interface} failed: {cause}")]
    Announce {
        /// Interface of the cluster IP.
        interface: String,
        /// The cluster IP.
        address: Ipv4Addr,
        /// The underlying error.
        cause: std::io::Error,
    },
}

/// A cluster IP: an IPv4 address with prefix length on a kernel interface (in the caller's
/// network namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIp {
    interface: String,
    address: Ipv4Addr,
    prefix_len: u8,
}

impl fmt::Display for ClusterIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on {}",
            self.address, self.prefix_len, self.interface
        )
    }
}

/// What the announcement needs to know of the interface.
struct Link {
    index: u32,
    /// The Ethernet address, or `None` when the interface has no Ethernet link layer
    /// (a tun device, for instance), where ARP makes no sense.
    mac: Option<[u8; 6]>,
}

/// One rtnetlink connection whose task is stopped on drop.
struct Connection {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ClusterIp {
    /// The cluster IP `address/prefix_len` on `interface`. Nothing is checked until used.
    pub fn new(interface: String, address: Ipv4Addr, prefix_len: u8) -> Self {
        ClusterIp {
            interface,
            address,
            prefix_len,
        }
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Adds the address to the interface (idempotent: already present is Ok), with the
    /// broadcast address of its prefix, then sends gratuitous ARP (request and reply form,
    /// broadcast). Returns after the first announcement is sent. If only the announcement
    /// fails ([`VipError::Announce`]), the address stays on the interface.
    pub async fn acquire(&self) -> Result<(), VipError> {
        if self.prefix_len > 32 {
            return Err(VipError::InvalidPrefix {
                interface: self.interface.clone(),
                address: self.address,
                prefix_len: self.prefix_len,
            });
        }
        let conn = self.connect()?;
        let link = self.link(&conn).await?;
        let added = conn
            .handle
            .address()
            .add(link.index, IpAddr::V4(self.address), self.prefix_len)
            .execute()
            .await;
        match added {
            Ok(()) => tracing::info!(cluster_ip = %self, "cluster IP added"),
            Err(e) if errno(&e) == Some(EEXIST) => {
                tracing::debug!(cluster_ip = %self, "cluster IP already present")
            }
            Err(e) => return Err(self.netlink_error("adding the address", e)),
        }
        drop(conn);
        self.send_garp(&link)
    }

    /// Sends one more gratuitous ARP (the holder calls this a few times after acquiring,
    /// like keepalived's garp refresh). Does not check that the address is present.
    pub async fn announce(&self) -> Result<(), VipError> {
        let conn = self.connect()?;
        let link = self.link(&conn).await?;
        drop(conn);
        self.send_garp(&link)
    }

    /// Removes the address from the interface, whatever prefix length it was added with
    /// (idempotent: absent is Ok).
    pub async fn release(&self) -> Result<(), VipError> {
        let conn = self.connect()?;
        let link = self.link(&conn).await?;
        let found = self.find(&conn, link.index).await?;
        for message in found {
            match conn.handle.address().del(message).execute().await {
                Ok(()) => tracing::info!(cluster_ip = %self, "cluster IP removed"),
                Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => {}
                Err(e) => return Err(self.netlink_error("removing the address", e)),
            }
        }
        Ok(())
    }

    /// Whether the address is currently on the interface (with any prefix length).
    pub async fn is_present(&self) -> Result<bool, VipError> {
        let conn = self.connect()?;
        let link = self.link(&conn).await?;
        Ok(!self.find(&conn, link.index).await?.is_empty())
    }

    fn connect(&self) -> Result<Connection, VipError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| VipError::NoRuntime {
            interface: self.interface.clone(),
            address: self.address,
        })?;
        let (connection, handle, _messages) =
            rtnetlink::new_connection().map_err(|cause| VipError::Socket {
                interface: self.interface.clone(),
                address: self.address,
                cause,
            })?;
        let task = runtime.spawn(connection);
        Ok(Connection { handle, task })
    }

    fn not_found(&self) -> VipError {
        VipError::InterfaceNotFound {
            interface: self.interface.clone(),
            address: self.address,
        }
    }

    fn netlink_error(&self, action: &'static str, cause: rtnetlink::Error) -> VipError {
        VipError::Netlink {
            action,
            interface: self.interface.clone(),
            address: self.address,
            prefix_len: self.prefix_len,
            cause,
        }
    }

    /// Looks the interface up by name.
    async fn link(&self, conn: &Connection) -> Result<Link, VipError> {
        let name = self.interface.as_str();
        if name.is_empty() || name.len() > MAX_IFNAME_LEN {
            return Err(self.not_found());
        }
        let message: Option<LinkMessage> = match conn
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await
        {
            Ok(message) => message,
            Err(e) if errno(&e) == Some(ENODEV) => return Err(self.not_found()),
            Err(e) => return Err(self.netlink_error("looking up the interface", e)),
        };
        let message = message.ok_or_else(|| self.not_found())?;
        let mac = if message.header.link_layer_type == LinkLayerType::Ether {
            message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                    _ => None,
                })
        } else {
            None
        };
        Ok(Link {
            index: message.header.index,
            mac,
        })
    }

    /// The address messages of this address on interface `index`.
    async fn find(&self, conn: &Connection, index: u32) -> Result<Vec<AddressMessage>, VipError> {
        let wanted = IpAddr::V4(self.address);
        conn.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_filter(|message| {
                let matches = message.attributes.iter().any(
                    |attribute| matches!(attribute, AddressAttribute::Local(a) if *a == wanted),
                );
                futures::future::ready(matches)
            })
            .try_collect()
            .await
            .map_err(|e| self.netlink_error("listing the interface's addresses", e))
    }

    fn send_garp(&self, link: &Link) -> Result<(), VipError> {
        let Some(mac) = link.mac else {
            tracing::debug!(cluster_ip = %self, "no Ethernet address: no gratuitous ARP");
            return Ok(());
        };
        let request = garp::gratuitous_arp(mac, self.address);
        let reply = garp::gratuitous_arp_reply(mac, self.address);
        garp::send_frames(&self.interface, link.index, mac, &[&request, &reply]).map_err(
            |cause| VipError::Announce {
                interface: self.interface.clone(),
                address: self.address,
                cause,
            },
        )?;
        tracing::debug!(cluster_ip = %self, "gratuitous ARP sent");
        Ok(())
    }
}

/// The errno of a netlink error answer, as a positive number.
fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| code.get().abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_accessors() {
        let ip = ClusterIp::new("eth0".into(), Ipv4Addr::new(10, 0, 0, 5), 24);
        assert_eq!(ip.to_string(), "10.0.0.5/24 on eth0");
        assert_eq!(ip.interface(), "eth0");
        assert_eq!(ip.address(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(ip.prefix_len(), 24);
    }

    #[test]
    fn error_messages_name_interface_and_address() {
        let e = VipError::InterfaceNotFound {
            interface: "eth9".into(),
            address: Ipv4Addr::new(10, 0, 0, 5),
        };
        assert_eq!(
            e.to_string(),
            "interface eth9 not found (cluster IP 10.0.0.5)"
        );
    }

    #[test]
    fn outside_a_runtime_is_an_error() {
        let ip = ClusterIp::new("lo".into(), Ipv4Addr::new(127, 0, 0, 9), 8);
        let result = futures::executor::block_on(ip.is_present());
        assert!(
            matches!(result, Err(VipError::NoRuntime { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn invalid_prefix_is_rejected() {
        let ip = ClusterIp::new("lo".into(), Ipv4Addr::new(127, 0, 0, 9), 33);
        let result = ip.acquire().await;
        assert!(
            matches!(result, Err(VipError::InvalidPrefix { prefix_len: 33, .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn overlong_interface_name_is_not_found() {
        let ip = ClusterIp::new("x".repeat(40), Ipv4Addr::new(127, 0, 0, 9), 8);
        let result = ip.is_present().await;
        assert!(
            matches!(result, Err(VipError::InterfaceNotFound { .. })),
            "{result:?}"
        );
    }
}
