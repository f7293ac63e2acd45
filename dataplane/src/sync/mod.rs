//! Session-sync plumbing between the NAT workers and the control thread (gateways with a
//! `[sync]` section). Everything crosses through one [`SyncChannel`] of bounded lock-free
//! queues shared by every worker, allocated at start-up:
//!
//! - workers → control: the sync datagrams `ip4-local` received on the sync UDP port
//!   (copied into fixed-size [`SyncDatagram`]s: no allocation on a worker), and the session
//!   events of every worker's NAT table (one multi-producer queue: a session's events all
//!   come from its one owner, in order), which the master streams to its backups;
//! - control → worker: the sessions a backup learns from its master ([`Install`]), one
//!   queue per worker: each goes to the worker that owns it ([`crate::nat::owner`]), is
//!   applied to that worker's table between bursts, and counted
//!   ([`SyncChannel::installed`], summed over the workers) so the control thread can tell
//!   when every one of them is in place (commit before claim).
//!
//! The protocol itself (`aegis-sessionsync`) and the roles run on the control thread
//! ([`crate::daemon::sync`]).

pub mod config;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use aegis_sessionsync::{Record, SessionKey};
use crossbeam_queue::ArrayQueue;

pub use config::SyncConfig;

/// Default UDP port of the sync transport.
pub const DEFAULT_UDP_PORT: u16 = 6082;
/// Largest sync payload a worker hands over: a full UDP payload of a 1500-byte IPv4 packet.
pub const DATAGRAM_CAP: usize = 1472;
/// Datagrams the worker → control queue holds.
pub const DATAGRAM_QUEUE: usize = 512;
/// Session events the worker → control queue holds (more are counted as lost and the
/// backups are resynced in bulk).
pub const EVENT_QUEUE: usize = 1 << 16;
/// Installs each control → worker queue holds.
pub const INSTALL_QUEUE: usize = 1 << 16;
/// Installs a worker applies per poll at most (the rest wait for the next poll).
pub const INSTALLS_PER_POLL: usize = 4096;

/// A sync datagram as a worker received it: the sender's address and the UDP payload.
#[derive(Clone)]
pub struct SyncDatagram {
    /// Source IPv4 address.
    pub src: u32,
    len: u16,
    bytes: [u8; DATAGRAM_CAP],
}

impl SyncDatagram {
    /// A copy of `payload` from `src`, or `None` if it is longer than [`DATAGRAM_CAP`].
    #[inline]
    pub fn new(src: u32, payload: &[u8]) -> Option<SyncDatagram> {
        let mut bytes = [0u8; DATAGRAM_CAP];
        bytes.get_mut(..payload.len())?.copy_from_slice(payload);
        Some(SyncDatagram {
            src,
            len: payload.len() as u16,
            bytes,
        })
    }

    /// The UDP payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for SyncDatagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDatagram")
            .field("src", &std::net::Ipv4Addr::from(self.src))
            .field("len", &self.len)
            .finish()
    }
}

/// A change a backup makes to its worker's NAT table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Install (or replace) this session, with its remaining timeout.
    Upsert(Record),
    /// Remove this session.
    Remove(SessionKey),
}

/// The queues between the NAT workers and the control thread.
#[derive(Debug)]
pub struct SyncChannel {
    /// UDP port of the sync transport (to any of our addresses).
    pub udp_port: u16,
    /// Datagrams received (any worker → control).
    pub datagrams: ArrayQueue<SyncDatagram>,
    /// NAT session events (every worker → control).
    pub events: ArrayQueue<Record>,
    /// Sessions to install or remove (control → worker), one queue per worker.
    pub installs: Box<[ArrayQueue<Install>]>,
    /// Installs the workers have applied (or refused), since start, all workers together.
    pub installed: AtomicU64,
    /// Installs a worker refused (table full, no port, another worker's slice): counted
    /// in `installed` too.
    pub install_failed: AtomicU64,
    /// Events a worker could not queue (the queue was full).
    pub events_lost: AtomicU64,
    /// Times this gateway claimed mastership after committing its synced sessions
    /// ([`SyncChannel::claimed`]). Each claim makes every worker check its sessions against
    /// its own NAT configuration: a session the master still had but this gateway's
    /// configuration no longer grants (a floating IP or rule removed while the old master
    /// had not yet seen the change) is revoked, not served until it times out.
    pub claims: AtomicU64,
}

impl SyncChannel {
    /// Empty queues for the sync transport on `udp_port`, for `workers` NAT workers.
    pub fn new(udp_port: u16, workers: usize) -> SyncChannel {
        SyncChannel {
            udp_port,
            datagrams: ArrayQueue::new(DATAGRAM_QUEUE),
            events: ArrayQueue::new(EVENT_QUEUE),
            installs: (0..workers.max(1))
                .map(|_| ArrayQueue::new(INSTALL_QUEUE))
                .collect(),
            installed: AtomicU64::new(0),
            install_failed: AtomicU64::new(0),
            events_lost: AtomicU64::new(0),
            claims: AtomicU64::new(0),
        }
    }

    /// Records a claim of mastership (see [`SyncChannel::claims`]); called once the synced
    /// sessions are installed, before the gateway starts forwarding.
    pub fn claimed(&self) {
        // Release: a worker that sees the new count sees the installs queued before it.
        self.claims
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// The number of workers the installs are spread over.
    pub fn workers(&self) -> usize {
        self.installs.len()
    }

    /// Worker `worker`'s side: queues its NAT table's new events and applies up to
    /// [`INSTALLS_PER_POLL`] of its installs. Never blocks.
    pub fn serve(&self, worker: usize, nat: &mut crate::nat::NatTable, now_ns: u64) {
        let mut lost = 0;
        for r in nat.take_events() {
            if self.events.push(r).is_err() {
                lost += 1;
            }
        }
        if lost > 0 {
            self.events_lost.fetch_add(lost, Relaxed);
        }
        let Some(installs) = self.installs.get(worker) else {
            return;
        };
        let mut done = 0;
        let mut failed = 0;
        while done < INSTALLS_PER_POLL {
            let Some(i) = installs.pop() else {
                break;
            };
            match i {
                Install::Upsert(r) => {
                    if nat.install(&r, now_ns).is_err() {
                        failed += 1;
                    }
                }
                Install::Remove(k) => {
                    nat.remove_key(&k, now_ns);
                }
            }
            done += 1;
        }
        if failed > 0 {
            self.install_failed.fetch_add(failed, Relaxed);
        }
        if done > 0 {
            self.installed.fetch_add(done as u64, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use aegis_sessionsync::{NatKind, Op};

    use super::*;
    use crate::nat::{InsideKey, NatTable, NatTimeouts, Translation};

    fn record(port: u16) -> Record {
        Record {
            op: Op::Add,
            key: SessionKey {
                vpc: 0,
                proto: 17,
                inside_ip: Ipv4Addr::new(10, 0, 0, 5),
                inside_port: 4000 + port,
                remote_ip: Ipv4Addr::new(192, 0, 2, 9),
                remote_port: 53,
            },
            nat: NatKind::SnatEndpointDependent,
            outside_ip: Ipv4Addr::new(198, 51, 100, 1),
            outside_port: 20000 + port,
            state: 0,
            expires_in_ms: 30_000,
        }
    }

    #[test]
    fn datagrams_longer_than_the_buffer_are_refused() {
        assert!(SyncDatagram::new(1, &[0; DATAGRAM_CAP]).is_some());
        assert!(SyncDatagram::new(1, &[0; DATAGRAM_CAP + 1]).is_none());
        let d = SyncDatagram::new(7, b"abc").unwrap();
        assert_eq!((d.src, d.payload()), (7, &b"abc"[..]));
    }

    #[test]
    fn serve_installs_removes_and_counts() {
        let ch = SyncChannel::new(DEFAULT_UDP_PORT, 1);
        let mut nat = NatTable::new(16, 0, 1, NatTimeouts::default());
        for p in 0..3 {
            ch.installs[0].push(Install::Upsert(record(p))).unwrap();
        }
        ch.installs[0].push(Install::Remove(record(1).key)).unwrap();
        ch.serve(0, &mut nat, 1_000);
        assert_eq!(ch.installed.load(Relaxed), 4);
        assert_eq!(nat.len(), 2);
        // The installs' own events go to the control thread at the next poll (a backup
        // ignores them).
        assert!(ch.events.is_empty());
        ch.serve(0, &mut nat, 1_500);
        assert!(!ch.events.is_empty());
        assert_eq!(ch.installed.load(Relaxed), 4, "nothing installed twice");
        assert!(nat
            .get_inside(
                &InsideKey {
                    vpc: 0,
                    proto: 17,
                    inside_ip: u32::from(Ipv4Addr::new(10, 0, 0, 5)),
                    inside_port: 4002,
                    remote_ip: u32::from(Ipv4Addr::new(192, 0, 2, 9)),
                    remote_port: 53,
                },
                2_000
            )
            .is_some_and(|s| s.outside_port == 20002));
    }

    #[test]
    fn a_full_event_queue_counts_what_it_loses() {
        let ch = SyncChannel::new(DEFAULT_UDP_PORT, 1);
        let mut nat = NatTable::new(EVENT_QUEUE + 8192, 0, 1, NatTimeouts::default());
        let tr = Translation::Snat {
            ip: u32::from(Ipv4Addr::new(198, 51, 100, 1)),
            endpoint_dependent: true,
        };
        let mut made = 0u64;
        // Fill the queue without the control thread reading it.
        for round in 0..(EVENT_QUEUE / 2048 + 2) {
            for i in 0..2048u32 {
                let k = InsideKey {
                    vpc: 0,
                    proto: 17,
                    inside_ip: 0x0a00_0001,
                    inside_port: 1000,
                    remote_ip: 0xc000_0000 + (round as u32) * 4096 + i,
                    remote_port: 53,
                };
                if nat.outbound(&k, tr, 1).is_ok() {
                    made += 1;
                }
            }
            ch.serve(0, &mut nat, 1);
        }
        assert_eq!(
            ch.events.len() as u64 + ch.events_lost.load(Relaxed),
            made + nat.events_lost
        );
        assert_eq!(made, ((EVENT_QUEUE / 2048 + 2) * 2048) as u64);
        assert_eq!(ch.events_lost.load(Relaxed), made - EVENT_QUEUE as u64);
    }
}
