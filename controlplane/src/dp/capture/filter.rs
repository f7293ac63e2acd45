//! tcpdump filter expressions → classic BPF, compiled by libpcap (`pcap_compile` on a dead
//! Ethernet handle, as tcpdump compiles for an Ethernet interface). The dataplane only runs
//! the instructions; the expression never reaches a worker.

use aegis_api::dataplane::v1 as pb;

use crate::error::CliError;

/// Compiles `expr` (tcpdump syntax; empty = every packet) for Ethernet frames. A bad
/// expression is a usage error carrying libpcap's message.
pub fn compile(expr: &str) -> Result<Vec<pb::BpfInstruction>, CliError> {
    if expr.trim().is_empty() {
        return Ok(Vec::new());
    }
    let bad = |e: pcap::Error| CliError::Usage(format!("filter {expr:?}: {e}"));
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(bad)?;
    let program = dead.compile(expr, true).map_err(bad)?;
    program
        .get_instructions()
        .iter()
        .map(|i| parse(&i.to_string()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| CliError::Usage(format!("filter {expr:?}: unreadable libpcap program")))
}

/// One instruction from the `pcap` crate's rendering of it: "code jt jf k" (its fields
/// are not public).
fn parse(s: &str) -> Option<pb::BpfInstruction> {
    let mut it = s.split(' ').map(|n| n.parse::<u32>().ok());
    let insn = pb::BpfInstruction {
        code: it.next()??,
        jt: it.next()??,
        jf: it.next()??,
        k: it.next()??,
    };
    it.next().is_none().then_some(insn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_tcpdump_syntax() {
        let p = compile("icmp").unwrap();
        // ldh [12]; jeq #0x800; ldb [23]; jeq #1; ret; ret
        assert_eq!((p[0].code, p[0].k), (0x28, 12));
        assert_eq!((p[1].code, p[1].k), (0x15, 0x800));
        assert!(p.iter().any(|i| i.code == 0x15 && i.k == 1));
        assert_eq!(p.last().map(|i| i.code), Some(0x06));
        assert!(compile("  ").unwrap().is_empty());
    }

    #[test]
    fn a_bad_filter_carries_the_libpcap_message() {
        let e = compile("tcp prot 80").unwrap_err();
        assert!(matches!(e, CliError::Usage(_)), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("tcp prot 80") && msg.contains("syntax error"),
            "{msg}"
        );
    }
}
