//! The hold queue: packets parked while their next hop's MAC is being resolved (like
//! Linux's `unres_qlen`). Bounded in total and per next hop; entries expire.

use arrayvec::ArrayVec;

use super::frame::Pkt;

/// Packets held per worker in total.
pub const HOLD_CAP: usize = 64;
/// Packets held per unresolved next hop.
pub const HOLD_PER_NEXTHOP: usize = 4;
/// How long a packet waits for resolution (ARP retries 3 × 1 s).
pub const HOLD_TIMEOUT_NS: u64 = 3_000_000_000;

struct Held<B> {
    pkt: Pkt<B>,
    port: u16,
    ip: u32,
    deadline_ns: u64,
}

/// Packets waiting for a neighbour.
pub struct HoldQueue<B> {
    held: ArrayVec<Held<B>, HOLD_CAP>,
}

impl<B> Default for HoldQueue<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> HoldQueue<B> {
    /// An empty queue.
    pub fn new() -> Self {
        HoldQueue {
            held: ArrayVec::new(),
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Number of held packets.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds `pkt` for `(port, ip)`. `Ok(true)` if it is the first packet for that next
    /// hop (the caller should ask for resolution), `Err(pkt)` when full.
    pub fn push(&mut self, pkt: Pkt<B>, port: u16, ip: u32, now_ns: u64) -> Result<bool, Pkt<B>> {
        let same = self
            .held
            .iter()
            .filter(|h| h.port == port && h.ip == ip)
            .count();
        if same >= HOLD_PER_NEXTHOP || self.held.is_full() {
            return Err(pkt);
        }
        self.held.push(Held {
            pkt,
            port,
            ip,
            deadline_ns: now_ns + HOLD_TIMEOUT_NS,
        });
        Ok(same == 0)
    }

    /// Hands resolved packets to `ready` (in arrival order) and expired ones to `expired`.
    pub fn release(
        &mut self,
        now_ns: u64,
        resolved: impl Fn(u16, u32) -> bool,
        mut ready: impl FnMut(Pkt<B>),
        mut expired: impl FnMut(Pkt<B>),
    ) {
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            if resolved(h.port, h.ip) {
                ready(self.held.remove(i).pkt);
            } else if now_ns >= h.deadline_ns {
                expired(self.held.remove(i).pkt);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Meta;

    fn pkt(n: u8) -> Pkt<u8> {
        Pkt {
            buf: n,
            meta: Meta::default(),
        }
    }

    #[test]
    fn bounded_per_next_hop_and_released_in_order() {
        let mut q = HoldQueue::new();
        assert_eq!(q.push(pkt(1), 0, 7, 0).ok(), Some(true));
        for n in 2..=HOLD_PER_NEXTHOP as u8 {
            assert_eq!(q.push(pkt(n), 0, 7, 0).ok(), Some(false));
        }
        assert!(q.push(pkt(99), 0, 7, 0).is_err());
        assert_eq!(q.push(pkt(50), 1, 7, 0).ok(), Some(true));
        let mut out = vec![];
        q.release(
            1,
            |p, _| p == 0,
            |p| out.push(p.buf),
            |_| panic!("none expired"),
        );
        assert_eq!(out, vec![1, 2, 3, 4]);
        assert_eq!(q.len(), 1);
        let mut gone = vec![];
        q.release(
            HOLD_TIMEOUT_NS,
            |_, _| false,
            |_| panic!(),
            |p| gone.push(p.buf),
        );
        assert_eq!(gone, vec![50]);
        assert!(q.is_empty());
    }
}
