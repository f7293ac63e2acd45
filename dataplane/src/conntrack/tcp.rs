//! TCP flag constants and the TCP connection state machine of the conntrack table.
//!
//! The machine follows Linux `nf_conntrack_tcp` with `nf_conntrack_tcp_loose = 1`, without
//! sequence-number window tracking: a connection may be picked up mid-stream (after a restart),
//! retransmissions and stray SYNs on a live connection are accepted without a state change, and
//! which side sent FIN is remembered so that the ACK of a FIN is told apart from an ACK of data.
//!
//! | state \ packet   | SYN                     | SYN+ACK             | FIN+ACK              | ACK                    | RST    |
//! |------------------|-------------------------|---------------------|----------------------|------------------------|--------|
//! | syn_sent         | =; reply: syn_recv      | reply: syn_recv; =  | invalid              | orig: invalid; reply: = | closed |
//! | syn_recv         | =                       | =                   | fin_wait             | established            | closed |
//! | established      | =                       | =                   | fin_wait             | =                      | closed |
//! | fin_wait         | =                       | =                   | other side: last_ack | other side: close_wait | closed |
//! | close_wait       | =                       | =                   | other side: last_ack | =                      | closed |
//! | last_ack         | =                       | =                   | =                    | time_wait              | closed |
//! | time_wait        | orig: syn_sent (reopen) | =                   | =                    | =                      | closed |
//! | closed           | orig: syn_sent (reopen) | =                   | =                    | =                      | =      |
//!
//! `=` keeps the state (the packet passes and refreshes the timeout). Flag combinations that
//! no TCP stack sends ([`flags_valid`]) are invalid in every state.

use super::{ConnState, Dir};

/// FIN: no more data from the sender.
pub const FIN: u8 = 0x01;
/// SYN: synchronise sequence numbers (connection start).
pub const SYN: u8 = 0x02;
/// RST: reset the connection.
pub const RST: u8 = 0x04;
/// PSH: push (ignored by the state machine).
pub const PSH: u8 = 0x08;
/// ACK: the acknowledgement field is significant.
pub const ACK: u8 = 0x10;
/// URG: the urgent pointer is significant (ignored by the state machine).
pub const URG: u8 = 0x20;

/// A FIN was seen in the original direction (bit of the per-entry FIN set).
pub(super) const FIN_ORIG: u8 = 1 << 0;
/// A FIN was seen in the reply direction.
pub(super) const FIN_REPLY: u8 = 1 << 1;

/// What a packet's flags mean to the state machine (PSH, URG, ECE, CWR ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Syn,
    SynAck,
    Fin,
    Ack,
    Rst,
    /// A combination no stack sends: SYN+FIN, SYN+RST, FIN without ACK, no flags, ...
    Bad,
}

/// Whether `flags` is a combination a TCP stack sends: SYN, SYN+ACK, RST, RST+ACK, FIN+ACK or
/// ACK (PSH, URG, ECE and CWR aside), as Linux's `tcp_valid_flags`. A caller should drop a
/// first packet that fails this instead of inserting it.
pub const fn flags_valid(flags: u8) -> bool {
    !matches!(kind(flags), Kind::Bad)
}

/// The state and FIN set of a connection created by a packet with `flags` (original
/// direction): SYN starts a handshake; any other valid packet is a mid-stream pickup
/// (established, then the packet applied, so FIN+ACK gives fin_wait); RST or an invalid
/// combination gives a short-lived closed entry.
pub(super) fn initial(flags: u8) -> (ConnState, u8) {
    match kind(flags) {
        Kind::Syn => (ConnState::TcpSynSent, 0),
        Kind::Rst | Kind::Bad => (ConnState::TcpClosed, 0),
        Kind::SynAck | Kind::Ack => (ConnState::TcpEstablished, 0),
        Kind::Fin => (ConnState::TcpFinWait, FIN_ORIG),
    }
}

/// The next state and FIN set after a packet with `flags` in direction `dir`, or `None` when
/// the packet is invalid for the state (the entry must then be left unchanged).
pub(super) fn step(state: ConnState, fins: u8, dir: Dir, flags: u8) -> Option<(ConnState, u8)> {
    use ConnState::*;
    let orig = dir == Dir::Original;
    let (mine, theirs) = if orig {
        (FIN_ORIG, FIN_REPLY)
    } else {
        (FIN_REPLY, FIN_ORIG)
    };
    let next = match (kind(flags), state) {
        (_, UdpUnreplied | UdpReplied | Icmp | Other) | (Kind::Bad, _) => return None,
        (Kind::Rst, _) => TcpClosed,
        (Kind::Syn, TcpTimeWait | TcpClosed) if orig => return Some((TcpSynSent, 0)),
        (Kind::Syn, TcpSynSent) if !orig => TcpSynRecv,
        (Kind::Syn, _) => state,
        (Kind::SynAck, TcpSynSent) if !orig => TcpSynRecv,
        (Kind::SynAck, _) => state,
        (Kind::Fin, TcpSynSent) => return None,
        (Kind::Fin, TcpLastAck | TcpTimeWait | TcpClosed) => state,
        (Kind::Fin, TcpSynRecv | TcpEstablished | TcpFinWait | TcpCloseWait) => {
            let fins = fins | mine;
            let next = if fins == FIN_ORIG | FIN_REPLY {
                TcpLastAck
            } else if state == TcpCloseWait {
                TcpCloseWait
            } else {
                TcpFinWait
            };
            return Some((next, fins));
        }
        (Kind::Ack, TcpSynSent) if orig => return None,
        (Kind::Ack, TcpSynRecv) => TcpEstablished,
        (Kind::Ack, TcpFinWait) if fins & theirs != 0 => TcpCloseWait,
        (Kind::Ack, TcpLastAck) => TcpTimeWait,
        (Kind::Ack, _) => state,
    };
    Some((next, fins))
}

/// Classifies `flags` by the four flags that matter.
const fn kind(flags: u8) -> Kind {
    const SYN_ACK: u8 = SYN | ACK;
    const RST_ACK: u8 = RST | ACK;
    const FIN_ACK: u8 = FIN | ACK;
    match flags & (FIN | SYN | RST | ACK) {
        SYN => Kind::Syn,
        SYN_ACK => Kind::SynAck,
        RST | RST_ACK => Kind::Rst,
        FIN_ACK => Kind::Fin,
        ACK => Kind::Ack,
        _ => Kind::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnState::*;
    use Dir::{Original as O, Reply as R};

    /// Runs `packets` from `start` (as created by `first`) and returns the states after each.
    fn run(first: u8, packets: &[(Dir, u8)]) -> Vec<Option<ConnState>> {
        let (mut state, mut fins) = initial(first);
        let mut out = vec![Some(state)];
        for &(dir, flags) in packets {
            match step(state, fins, dir, flags) {
                Some((s, f)) => {
                    (state, fins) = (s, f);
                    out.push(Some(s));
                }
                None => out.push(None),
            }
        }
        out
    }

    #[test]
    fn handshake_and_active_close() {
        let got = run(
            SYN,
            &[
                (R, SYN | ACK),
                (O, ACK),
                (O, ACK | PSH),
                (O, FIN | ACK),
                (R, ACK),
                (R, FIN | ACK),
                (O, ACK),
            ],
        );
        let want = [
            TcpSynSent,
            TcpSynRecv,
            TcpEstablished,
            TcpEstablished,
            TcpFinWait,
            TcpCloseWait,
            TcpLastAck,
            TcpTimeWait,
        ];
        assert_eq!(got, want.map(Some));
    }

    #[test]
    fn combined_fin_ack_close_from_the_responder() {
        let got = run(
            SYN,
            &[
                (R, SYN | ACK),
                (O, ACK),
                (R, FIN | ACK),
                (R, FIN | ACK), // retransmitted FIN stays fin_wait
                (R, ACK),       // data ACK from the FIN sender does not ack its own FIN
                (O, FIN | ACK),
                (R, ACK),
            ],
        );
        let want = [
            TcpSynSent,
            TcpSynRecv,
            TcpEstablished,
            TcpFinWait,
            TcpFinWait,
            TcpFinWait,
            TcpLastAck,
            TcpTimeWait,
        ];
        assert_eq!(got, want.map(Some));
    }

    #[test]
    fn rst_closes_from_any_state_and_syn_reopens() {
        for first in [SYN, ACK] {
            let got = run(first, &[(R, RST | ACK), (R, ACK), (O, SYN)]);
            assert_eq!(
                got[1..],
                [Some(TcpClosed), Some(TcpClosed), Some(TcpSynSent)]
            );
        }
        let got = run(SYN, &[(R, SYN | ACK), (O, ACK), (O, RST)]);
        assert_eq!(got[3], Some(TcpClosed));
    }

    #[test]
    fn mid_stream_pickup_and_simultaneous_open() {
        assert_eq!(initial(ACK), (TcpEstablished, 0));
        assert_eq!(initial(ACK | PSH), (TcpEstablished, 0));
        assert_eq!(initial(SYN | ACK), (TcpEstablished, 0));
        assert_eq!(initial(FIN | ACK), (TcpFinWait, FIN_ORIG));
        assert_eq!(initial(RST), (TcpClosed, 0));
        let got = run(SYN, &[(R, SYN), (O, SYN | ACK), (R, SYN | ACK), (O, ACK)]);
        let want = [
            TcpSynSent,
            TcpSynRecv,
            TcpSynRecv,
            TcpSynRecv,
            TcpEstablished,
        ];
        assert_eq!(got, want.map(Some));
    }

    #[test]
    fn invalid_packets() {
        for bad in [0, FIN, SYN | FIN, SYN | RST, FIN | RST | ACK, PSH, URG] {
            assert!(!flags_valid(bad), "{bad:#x}");
            assert_eq!(step(TcpEstablished, 0, O, bad), None, "{bad:#x}");
        }
        for good in [
            SYN,
            SYN | ACK,
            RST,
            RST | ACK,
            FIN | ACK,
            ACK,
            ACK | PSH | URG,
        ] {
            assert!(flags_valid(good), "{good:#x}");
        }
        // Before the responder answered, the originator cannot ACK or FIN.
        assert_eq!(step(TcpSynSent, 0, O, ACK), None);
        assert_eq!(step(TcpSynSent, 0, O, FIN | ACK), None);
        assert_eq!(step(TcpSynSent, 0, R, ACK), Some((TcpSynSent, 0)));
        // Non-TCP states never take TCP steps.
        assert_eq!(step(UdpReplied, 0, O, ACK), None);
    }
}
