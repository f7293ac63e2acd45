//! A classic BPF (cBPF) interpreter in safe Rust: the capture filters the workers run.
//!
//! Filters are written in tcpdump syntax and compiled to cBPF by libpcap outside the
//! workers (in `aegisctl`); the dataplane only receives the instructions, checks them once
//! with [`Program::new`] (every jump forward and inside the program, the program ends in a
//! `ret`, scratch-memory indices below 16, no division by a constant zero, known opcodes
//! only) and runs them per packet with [`Program::run`]. The semantics are those of the
//! kernel's and libpcap's `bpf_filter`: a load beyond the captured bytes rejects the packet
//! (returns 0), as does a division by a zero `X`; shifts by 32 or more give 0.
//!
//! Running a validated program cannot panic: every index is checked or bounded by
//! validation, and the loop ends because every jump goes forward.

use std::fmt;

/// Most instructions a program may have (the kernel's `BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Words of scratch memory (`BPF_MEMWORDS`).
pub const MEM_WORDS: usize = 16;

// Instruction classes (`code & 0x07`).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

// Load sizes (`code & 0x18`).
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;

// Load modes (`code & 0xe0`).
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;

// ALU operations and jump tests (`code & 0xf0`).
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;

// Operand source (`code & 0x08`): the constant `k` or the index register `X`.
const SRC_X: u16 = 0x08;

// Return value (`code & 0x18`).
const RET_K: u16 = 0x00;
const RET_X: u16 = 0x08;
const RET_A: u16 = 0x10;

// Miscellaneous (`code & 0xf8`).
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// One cBPF instruction, as `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Instructions skipped when a conditional jump's test holds.
    pub jt: u8,
    /// Instructions skipped when it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

/// A validated cBPF program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    insns: Box<[Insn]>,
}

/// Why a program was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// The program has no instruction.
    #[error("the filter program is empty")]
    Empty,
    /// More than [`MAX_INSNS`] instructions.
    #[error("the filter program has {0} instructions (at most {MAX_INSNS})")]
    TooLong(usize),
    /// An opcode this interpreter does not know (or an ancillary load).
    #[error("instruction {at}: unknown opcode {code:#06x}")]
    BadOpcode {
        /// Instruction index.
        at: usize,
        /// Its opcode.
        code: u16,
    },
    /// A jump past the end of the program.
    #[error("instruction {at}: jump out of the program")]
    BadJump {
        /// Instruction index.
        at: usize,
    },
    /// A scratch-memory index of 16 or more.
    #[error("instruction {at}: scratch memory index {k} (at most {})", MEM_WORDS - 1)]
    BadMemory {
        /// Instruction index.
        at: usize,
        /// The index.
        k: u32,
    },
    /// Division or modulo by the constant 0.
    #[error("instruction {at}: division by zero")]
    DivisionByZero {
        /// Instruction index.
        at: usize,
    },
    /// The last instruction is not a `ret`.
    #[error("the filter program does not end in a return")]
    NoReturn,
}

impl Insn {
    /// An instruction from its four fields.
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// Checks this instruction, at index `at` of a program of `len` instructions.
    fn validate(&self, at: usize, len: usize) -> Result<(), BpfError> {
        let bad_op = || BpfError::BadOpcode {
            at,
            code: self.code,
        };
        let mem = |k: u32| {
            if (k as usize) < MEM_WORDS {
                Ok(())
            } else {
                Err(BpfError::BadMemory { at, k })
            }
        };
        // The instruction after this one is `at + 1`; every target must be below `len`.
        let target_ok = |skip: u64| (at as u64 + 1 + skip) < len as u64;
        let c = self.code;
        if c > 0xff {
            return Err(bad_op());
        }
        match c & 0x07 {
            LD => match (c & 0xe0, c & 0x18) {
                (ABS | IND, W | H | B) => Ok(()),
                (IMM | LEN, W) => Ok(()),
                (MEM, W) => mem(self.k),
                _ => Err(bad_op()),
            },
            LDX => match (c & 0xe0, c & 0x18) {
                (IMM | LEN, W) => Ok(()),
                (MEM, W) => mem(self.k),
                (MSH, B) => Ok(()),
                _ => Err(bad_op()),
            },
            ST | STX => mem(self.k),
            ALU => match c & 0xf0 {
                NEG if c & SRC_X == 0 => Ok(()),
                DIV | MOD if c & SRC_X == 0 && self.k == 0 => Err(BpfError::DivisionByZero { at }),
                ADD | SUB | MUL | DIV | OR | AND | LSH | RSH | MOD | XOR => Ok(()),
                _ => Err(bad_op()),
            },
            JMP => match c & 0xf0 {
                JA if c & SRC_X == 0 => {
                    if target_ok(u64::from(self.k)) {
                        Ok(())
                    } else {
                        Err(BpfError::BadJump { at })
                    }
                }
                JEQ | JGT | JGE | JSET => {
                    if target_ok(u64::from(self.jt)) && target_ok(u64::from(self.jf)) {
                        Ok(())
                    } else {
                        Err(BpfError::BadJump { at })
                    }
                }
                _ => Err(bad_op()),
            },
            RET => match c & 0x18 {
                RET_K | RET_X | RET_A => Ok(()),
                _ => Err(bad_op()),
            },
            MISC => match c & 0xf8 {
                TAX | TXA => Ok(()),
                _ => Err(bad_op()),
            },
            _ => Err(bad_op()),
        }
    }
}

impl Program {
    /// Validates `insns` (see the module documentation).
    pub fn new(insns: Vec<Insn>) -> Result<Program, BpfError> {
        let len = insns.len();
        if len == 0 {
            return Err(BpfError::Empty);
        }
        if len > MAX_INSNS {
            return Err(BpfError::TooLong(len));
        }
        for (at, insn) in insns.iter().enumerate() {
            insn.validate(at, len)?;
        }
        if insns[len - 1].code & 0x07 != RET {
            return Err(BpfError::NoReturn);
        }
        Ok(Program {
            insns: insns.into_boxed_slice(),
        })
    }

    /// A program accepting every packet whole (`ret #262144`, as libpcap compiles "").
    pub fn accept_all() -> Program {
        Program {
            insns: Box::new([Insn::new(RET | RET_K, 0, 0, 262_144)]),
        }
    }

    /// The instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Runs the program over `pkt` (the captured bytes) of a packet `wire_len` bytes long;
    /// returns how many bytes to keep, 0 to reject.
    pub fn run(&self, pkt: &[u8], wire_len: u32) -> u32 {
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut mem = [0u32; MEM_WORDS];
        let mut pc = 0usize;
        // Loads return None when out of bounds: the packet is rejected.
        let load = |off: u32, size: usize| -> Option<u32> {
            let start = off as usize;
            let bytes = pkt.get(start..start.checked_add(size)?)?;
            Some(bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
        };
        while let Some(insn) = self.insns.get(pc) {
            pc += 1;
            let k = insn.k;
            let c = insn.code;
            match c & 0x07 {
                LD => {
                    let size = match c & 0x18 {
                        H => 2,
                        B => 1,
                        _ => 4,
                    };
                    a = match c & 0xe0 {
                        ABS => match load(k, size) {
                            Some(v) => v,
                            None => return 0,
                        },
                        IND => match x.checked_add(k).and_then(|off| load(off, size)) {
                            Some(v) => v,
                            None => return 0,
                        },
                        MEM => mem[(k as usize) % MEM_WORDS],
                        LEN => wire_len,
                        _ => k,
                    };
                }
                LDX => {
                    x = match c & 0xe0 {
                        MEM => mem[(k as usize) % MEM_WORDS],
                        LEN => wire_len,
                        MSH => match load(k, 1) {
                            Some(v) => (v & 0xf) << 2,
                            None => return 0,
                        },
                        _ => k,
                    };
                }
                ST => mem[(k as usize) % MEM_WORDS] = a,
                STX => mem[(k as usize) % MEM_WORDS] = x,
                ALU => {
                    let v = if c & SRC_X != 0 { x } else { k };
                    a = match c & 0xf0 {
                        ADD => a.wrapping_add(v),
                        SUB => a.wrapping_sub(v),
                        MUL => a.wrapping_mul(v),
                        DIV => match a.checked_div(v) {
                            Some(q) => q,
                            None => return 0,
                        },
                        MOD => match a.checked_rem(v) {
                            Some(r) => r,
                            None => return 0,
                        },
                        OR => a | v,
                        AND => a & v,
                        XOR => a ^ v,
                        LSH => a.checked_shl(v).unwrap_or(0),
                        RSH => a.checked_shr(v).unwrap_or(0),
                        _ => a.wrapping_neg(),
                    };
                }
                JMP => {
                    let op = c & 0xf0;
                    if op == JA {
                        pc = pc.saturating_add(k as usize);
                        continue;
                    }
                    let v = if c & SRC_X != 0 { x } else { k };
                    let hit = match op {
                        JEQ => a == v,
                        JGT => a > v,
                        JGE => a >= v,
                        _ => a & v != 0,
                    };
                    pc += usize::from(if hit { insn.jt } else { insn.jf });
                }
                RET => {
                    return match c & 0x18 {
                        RET_A => a,
                        RET_X => x,
                        _ => k,
                    }
                }
                _ => {
                    if c & 0xf8 == TXA {
                        a = x;
                    } else {
                        x = a;
                    }
                }
            }
        }
        // Unreachable for a validated program (it ends in a return); reject.
        0
    }
}

impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{ {:#06x}, {}, {}, {:#010x} }}",
            self.code, self.jt, self.jf, self.k
        )
    }
}

#[cfg(test)]
pub(crate) mod tests;
