//! The interpreter against libpcap: filters compiled by `pcap_compile` (through the `pcap`
//! crate, as `aegisctl` compiles them) must give the same verdict in [`Program::run`] as in
//! libpcap's own `pcap_offline_filter`, over hand-made frames and random mutations of them.
//! Then validation: what [`Program::new`] refuses.

use super::*;
use crate::testkit::overlay::{echo, tcp, vm_frame};
use crate::testkit::Rng;

const FILTERS: &[&str] = &[
    "tcp port 80",
    "icmp",
    "udp and dst port 6081",
    "host 10.0.0.1 and not arp",
    "vlan and tcp",
    "ip[8] < 5",
    "tcp[tcpflags] & tcp-syn != 0",
    "ether src 02:00:00:00:00:01",
    "",
    "net 10.0.0.0/8 and (tcp or udp) and greater 60",
    "ip and ip[6:2] & 0x1fff != 0",
    "tcp and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    "ip[2:2] / 4 > 10 and ip[2:2] % 3 = 1",
    "len - 14 >= 40 and ip[1] * 2 = 0 or ip[8] ^ 1 = 65 or ip[8] | 1 = 65",
    "icmp[icmptype] == icmp-echo and ip[8] << 1 > 100 and ip[8] >> 1 < 40",
    "vlan 100 and host 10.0.0.1",
    "arp or (udp portrange 1000-2000)",
    "ip proto 47 or ip6",
];

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Compiles `filter` with libpcap for Ethernet: its program as our instructions, and
/// libpcap's own handle on it.
pub(crate) fn compile(filter: &str) -> (Program, pcap::BpfProgram) {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("pcap_open_dead");
    let bpf = dead.compile(filter, true).expect("pcap_compile");
    let insns = bpf
        .get_instructions()
        .iter()
        .map(|i| {
            // pcap's BpfInstruction shows its fields as "code jt jf k".
            let f: Vec<u32> = i
                .to_string()
                .split(' ')
                .map(|n| n.parse().expect("number"))
                .collect();
            Insn::new(f[0] as u16, f[1] as u8, f[2] as u8, f[3])
        })
        .collect();
    (
        Program::new(insns).expect("libpcap's program validates"),
        bpf,
    )
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = vec![0u8; 8 + 12];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&20u16.to_be_bytes());
    u
}

fn vlan(mut f: Vec<u8>, id: u16) -> Vec<u8> {
    let tag = [0x81, 0x00, (id >> 8) as u8, id as u8];
    f.splice(12..12, tag);
    f
}

fn arp(sender: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xffu8; 6];
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 9]);
    f
}

fn frames() -> Vec<Vec<u8>> {
    let mut get = tcp(40000, 80, 0x18);
    get.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let mut low_ttl = vm_frame(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", 1, &echo(1));
    low_ttl[14 + 8] = 3;
    let mut fragment = vm_frame(MAC_B, MAC_A, "10.1.0.1", "10.0.0.1", 17, &udp(5, 1500));
    fragment[14 + 6..14 + 8].copy_from_slice(&0x2010u16.to_be_bytes());
    let mut options = vm_frame(MAC_A, MAC_B, "10.0.0.1", "10.0.0.3", 6, &[0; 4]);
    options[14] = 0x46; // IHL 6: the TCP header starts 4 bytes later
    options.extend_from_slice(&tcp(1, 80, 0x02));
    let mut ip6 = vec![0u8; 54];
    ip6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    ip6[14] = 0x60;
    vec![
        vm_frame(
            MAC_A,
            MAC_B,
            "10.0.0.1",
            "10.0.0.2",
            6,
            &tcp(40000, 80, 0x02),
        ),
        vm_frame(
            MAC_B,
            MAC_A,
            "10.0.0.2",
            "10.0.0.1",
            6,
            &tcp(80, 40000, 0x12),
        ),
        vm_frame(MAC_B, MAC_A, "10.0.0.2", "10.0.0.1", 6, &get),
        vm_frame(
            MAC_B,
            MAC_A,
            "10.0.0.7",
            "10.0.0.8",
            6,
            &tcp(22, 5555, 0x10),
        ),
        vm_frame(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", 1, &echo(7)),
        vm_frame(MAC_B, MAC_A, "192.168.1.1", "10.0.0.2", 1, &echo(8)),
        vm_frame(MAC_A, MAC_B, "10.0.0.5", "10.0.0.6", 17, &udp(3333, 6081)),
        vm_frame(MAC_A, MAC_B, "10.0.0.6", "10.0.0.5", 17, &udp(6081, 3333)),
        vm_frame(MAC_B, MAC_A, "10.0.0.1", "10.0.0.6", 17, &udp(1000, 2000)),
        vm_frame(MAC_B, MAC_A, "10.0.0.1", "10.0.0.6", 47, &[0; 8]),
        vlan(
            vm_frame(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", 6, &tcp(1, 80, 0x02)),
            100,
        ),
        vlan(
            vm_frame(MAC_A, MAC_B, "10.0.0.3", "10.0.0.2", 17, &udp(1, 2)),
            200,
        ),
        arp([10, 0, 0, 1]),
        arp([10, 0, 0, 3]),
        low_ttl,
        fragment,
        options,
        ip6,
        // Truncated frames: loads past the end reject.
        vm_frame(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", 6, &tcp(1, 80, 2))[..40].to_vec(),
        vm_frame(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", 6, &tcp(1, 80, 2))[..20].to_vec(),
        MAC_A.to_vec(),
        Vec::new(),
    ]
}

#[test]
fn same_verdicts_as_libpcap() {
    let frames = frames();
    let mut accepted = 0;
    for filter in FILTERS {
        let (ours, theirs) = compile(filter);
        for (i, f) in frames.iter().enumerate() {
            let want = theirs.filter(f);
            let got = ours.run(f, f.len() as u32) != 0;
            assert_eq!(got, want, "filter {filter:?}, frame {i}: {f:02x?}");
            accepted += usize::from(got);
        }
    }
    // The frames are meant to exercise both verdicts of most filters.
    assert!(accepted > FILTERS.len() * 2, "only {accepted} accepted");
}

#[test]
fn same_verdicts_as_libpcap_on_mutated_frames() {
    let base = frames();
    let programs: Vec<_> = FILTERS.iter().map(|f| compile(f)).collect();
    let mut rng = Rng(0x5eed_cafe);
    for _ in 0..4000 {
        let mut f = base[rng.below(base.len())].clone();
        for _ in 0..1 + rng.below(4) {
            if f.is_empty() {
                break;
            }
            let at = rng.below(f.len());
            f[at] = rng.next_u32() as u8;
        }
        if rng.below(4) == 0 {
            f.truncate(rng.below(f.len() + 1));
        }
        for (filter, (ours, theirs)) in FILTERS.iter().zip(&programs) {
            assert_eq!(
                ours.run(&f, f.len() as u32) != 0,
                theirs.filter(&f),
                "filter {filter:?} on {f:02x?}"
            );
        }
    }
}

#[test]
fn every_alu_op_with_k_and_x_and_the_other_opcodes() {
    // Hand-written programs for the forms libpcap's compiler rarely emits, against the
    // semantics of the kernel's and libpcap's bpf_filter:
    // A = (P[14] op K) and A = (P[14] op X) with X = P[15], then ret A.
    let ops = [ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOD, XOR];
    let frame: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37)).collect();
    for op in ops {
        for src in [0, SRC_X] {
            let prog = Program::new(vec![
                Insn::new(LDX | MSH | B, 0, 0, 15),
                Insn::new(LD | ABS | B, 0, 0, 14),
                Insn::new(ALU | op | src, 0, 0, 3),
                Insn::new(RET | RET_A, 0, 0, 0),
            ])
            .unwrap();
            let a = u32::from(frame[14]);
            let v = if src == SRC_X {
                (u32::from(frame[15]) & 0xf) << 2
            } else {
                3
            };
            let want = match op {
                ADD => a + v,
                SUB => a.wrapping_sub(v),
                MUL => a * v,
                DIV => a / v,
                OR => a | v,
                AND => a & v,
                LSH => a.checked_shl(v).unwrap_or(0),
                RSH => a.checked_shr(v).unwrap_or(0),
                MOD => a % v,
                _ => a ^ v,
            };
            assert_eq!(prog.run(&frame, 64), want, "op {op:#x} src {src:#x}");
        }
    }
    // Division by a zero X rejects; shifts of 32 or more give 0; neg; tax/txa; scratch.
    let div_x0 = Program::new(vec![
        Insn::new(LDX | IMM, 0, 0, 0),
        Insn::new(LD | IMM, 0, 0, 7),
        Insn::new(ALU | DIV | SRC_X, 0, 0, 0),
        Insn::new(RET | RET_K, 0, 0, 1),
    ])
    .unwrap();
    assert_eq!(div_x0.run(&frame, 64), 0);
    let shift = Program::new(vec![
        Insn::new(LD | IMM, 0, 0, 7),
        Insn::new(ALU | LSH, 0, 0, 32),
        Insn::new(RET | RET_A, 0, 0, 0),
    ])
    .unwrap();
    assert_eq!(shift.run(&frame, 64), 0);
    let misc = Program::new(vec![
        Insn::new(LD | IMM, 0, 0, 5),
        Insn::new(ALU | NEG, 0, 0, 0),
        Insn::new(ST, 0, 0, 15),
        Insn::new(MISC | TAX, 0, 0, 0),
        Insn::new(LD | IMM, 0, 0, 0),
        Insn::new(STX, 0, 0, 3),
        Insn::new(LD | MEM, 0, 0, 3),
        Insn::new(LDX | MEM, 0, 0, 15),
        Insn::new(JMP | JEQ | SRC_X, 1, 0, 0),
        Insn::new(RET | RET_K, 0, 0, 0),
        Insn::new(MISC | TXA, 0, 0, 0),
        Insn::new(JMP | JA, 0, 0, 1),
        Insn::new(RET | RET_K, 0, 0, 0),
        Insn::new(LD | LEN, 0, 0, 0),
        Insn::new(JMP | JGT, 0, 1, 63),
        Insn::new(RET | RET_X, 0, 0, 0),
        Insn::new(RET | RET_K, 0, 0, 9),
    ])
    .unwrap();
    assert_eq!(misc.run(&frame, 64), 5u32.wrapping_neg());
    assert_eq!(misc.run(&frame, 63), 9);
}

#[test]
fn out_of_bounds_loads_reject() {
    let word = Program::new(vec![
        Insn::new(LD | W | ABS, 0, 0, 60),
        Insn::new(RET | RET_K, 0, 0, 1),
    ])
    .unwrap();
    assert_eq!(word.run(&[0; 64], 64), 1);
    assert_eq!(word.run(&[0; 63], 64), 0);
    let ind = Program::new(vec![
        Insn::new(LDX | IMM, 0, 0, u32::MAX),
        Insn::new(LD | B | IND, 0, 0, 2),
        Insn::new(RET | RET_K, 0, 0, 1),
    ])
    .unwrap();
    assert_eq!(ind.run(&[0; 64], 64), 0, "X + k overflows");
    let msh = Program::new(vec![
        Insn::new(LDX | MSH | B, 0, 0, 64),
        Insn::new(RET | RET_K, 0, 0, 1),
    ])
    .unwrap();
    assert_eq!(msh.run(&[0; 64], 64), 0);
}

#[test]
fn validation_refuses_bad_programs() {
    let ret = Insn::new(RET | RET_K, 0, 0, 1);
    assert_eq!(Program::new(vec![]), Err(BpfError::Empty));
    assert_eq!(
        Program::new(vec![ret; MAX_INSNS + 1]),
        Err(BpfError::TooLong(MAX_INSNS + 1))
    );
    assert_eq!(
        Program::new(vec![Insn::new(LD | IMM, 0, 0, 1)]),
        Err(BpfError::NoReturn)
    );
    assert_eq!(
        Program::new(vec![Insn::new(JMP | JA, 0, 0, 1), ret]),
        Err(BpfError::BadJump { at: 0 })
    );
    assert_eq!(
        Program::new(vec![Insn::new(JMP | JEQ, 0, 1, 0), ret]),
        Err(BpfError::BadJump { at: 0 })
    );
    assert_eq!(
        Program::new(vec![Insn::new(JMP | JA, 0, 0, u32::MAX), ret]),
        Err(BpfError::BadJump { at: 0 })
    );
    assert_eq!(
        Program::new(vec![Insn::new(ST, 0, 0, 16), ret]),
        Err(BpfError::BadMemory { at: 0, k: 16 })
    );
    assert_eq!(
        Program::new(vec![Insn::new(LD | MEM, 0, 0, 99), ret]),
        Err(BpfError::BadMemory { at: 0, k: 99 })
    );
    assert_eq!(
        Program::new(vec![Insn::new(ALU | MOD, 0, 0, 0), ret]),
        Err(BpfError::DivisionByZero { at: 0 })
    );
    for code in [0x18u16, 0xc0, 0xe5, 0x1ff, 0xf4, 0x0f, 0x1e] {
        assert_eq!(
            Program::new(vec![Insn::new(code, 0, 0, 0), ret]),
            Err(BpfError::BadOpcode { at: 0, code }),
            "{code:#x}"
        );
    }
    assert!(Program::new(vec![Insn::new(JMP | JEQ, 0, 0, 0), ret]).is_ok());
}
