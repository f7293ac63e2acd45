//! Real EAL: `net_pcap`. Packets sent on a `tx_pcap=` port land in the pcap file byte for
//! byte (checked with an independent pcap reader), and an `rx_pcap=` port reads the same
//! bytes back; byte counters match. One EAL test per file (see `eal_support`).

mod eal_support;

use std::fs::File;

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::buf::{BulkFree, PacketBuf};
use aegis_dataplane::port::mempool::DEFAULT_DATA_ROOM;
use aegis_dataplane::port::{Mempool, Port, PortConfig};
use arrayvec::ArrayVec;
use pcap_file::pcap::PcapReader;

const PACKETS: usize = 50;

#[test]
fn pcap_written_and_read_back() {
    let Some(eal) = eal_support::eal_or_skip("eal_pcap", &[]) else {
        return;
    };
    let dir = eal_support::TempDir::new("eal-pcap");
    let file = dir.path().join("out.pcap");
    let pool = Mempool::new(&eal, "pcap_pool", 1023, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let want: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| eal_support::packet(i, 60 + i * 29))
        .collect();
    let total: u64 = want.iter().map(|p| p.len() as u64).sum();
    let conf = PortConfig::default();

    // Write.
    let mut w = Port::probe(&eal, &format!("net_pcap0,tx_pcap={}", file.display())).unwrap();
    assert_eq!(w.info().unwrap().driver, "net_pcap");
    w.configure(&conf, &pool).unwrap();
    w.start().unwrap();
    let mut tx = w.tx_queue(0).unwrap();
    let mut burst: ArrayVec<Mbuf, 64> = ArrayVec::new();
    for p in &want {
        burst.push(eal_support::mbuf_with(&pool, p));
    }
    assert_eq!(tx.tx_burst(&mut burst), PACKETS);
    let s = w.stats().unwrap();
    assert_eq!(
        (s.opackets, s.obytes, s.oerrors),
        (PACKETS as u64, total, 0)
    );
    drop(tx);
    w.stop().unwrap();
    drop(w);

    // The file, read independently.
    let mut reader = PcapReader::new(File::open(&file).unwrap()).unwrap();
    let mut in_file = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        in_file.push(pkt.unwrap().data.into_owned());
    }
    assert_eq!(in_file, want, "the pcap holds exactly the packets sent");

    // Read back through DPDK.
    let mut r = Port::probe(&eal, &format!("net_pcap1,rx_pcap={}", file.display())).unwrap();
    r.configure(&conf, &pool).unwrap();
    r.start().unwrap();
    let mut rx = r.rx_queue(0).unwrap();
    let mut got: ArrayVec<Mbuf, 256> = ArrayVec::new();
    for _ in 0..1000 {
        if got.len() >= PACKETS {
            break;
        }
        rx.rx_burst(&mut got, 32);
    }
    assert_eq!(got.len(), PACKETS);
    for (i, (m, p)) in got.iter().zip(&want).enumerate() {
        assert_eq!(m.data(), &p[..], "packet {i} read back differs");
    }
    assert_eq!(rx.rx_burst(&mut got, 32), 0, "end of file, no infinite_rx");
    let s = r.stats().unwrap();
    assert_eq!((s.ipackets, s.ibytes), (PACKETS as u64, total));
    Mbuf::free_bulk(got.drain(..));

    drop(rx);
    drop((r, pool));
    eal.cleanup().unwrap();
}
