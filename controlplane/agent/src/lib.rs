//! `aegis-agent`: what an agent on a managed host (the dataplane, later the VM and storage
//! sidecars) uses to follow its host's slice of the control plane's desired state and to
//! report back.
//!
//! - [`connect`]: channels to a list of control-plane nodes (TLS, bearer token), failing over
//!   from one to the next.
//! - [`follow`]: a resumable follower of `DesiredState.Watch` for one host: a local replica of
//!   the host's objects and the revision it is complete up to, handed to the consumer on a
//!   `tokio::sync::watch` channel.
//! - [`heartbeat`]: `Agents.Heartbeat` every second with the applied revision, CPU, memory and
//!   the link state of the host's networks.
//! - [`sysinfo`]: CPU and memory from `/proc`, link state over rtnetlink.
#![deny(unsafe_code)]

pub mod connect;
pub mod follow;
pub mod heartbeat;
pub mod sysinfo;

pub use connect::{ConnectConfig, ConnectError, Connector};
pub use follow::{Follower, LinkInfo, Replica, Synced};
pub use heartbeat::{AppliedState, Heartbeat, PortLink};
