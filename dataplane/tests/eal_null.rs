//! Real EAL: a `net_null` port probed from devargs. Received packets have the configured size
//! and the rx/tx counters follow the bursts; the link, MAC and driver info are readable; a
//! closed device can be probed again.
//! One EAL test per file (see `eal_support`).

mod eal_support;

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::buf::{BulkFree, PacketBuf};
use aegis_dataplane::port::mempool::DEFAULT_DATA_ROOM;
use aegis_dataplane::port::{Mempool, Port, PortConfig, PortStats};
use arrayvec::ArrayVec;

#[test]
fn null_port_counts_rx_and_tx() {
    let Some(eal) = eal_support::eal_or_skip("eal_null", &[]) else {
        return;
    };
    let pool = Mempool::new(&eal, "null_pool", 2047, 32, DEFAULT_DATA_ROOM, None).unwrap();
    let mut port = Port::probe(&eal, "net_null0,size=64,copy=1").unwrap();
    assert_eq!(port.name(), "net_null0");
    let info = port.info().unwrap();
    assert_eq!(info.driver, "net_null");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);

    let conf = PortConfig {
        rx_ring: 512,
        tx_ring: 512,
        ..PortConfig::default()
    };
    assert!(port.rx_queue(0).is_none(), "no queues before configure");
    port.configure(&conf, &pool).unwrap();
    assert!(
        port.configure(&conf, &pool).is_err(),
        "a port is configured once"
    );
    port.start().unwrap();
    assert!(port.link().unwrap().up);
    assert_eq!(port.mac().unwrap().len(), 6);
    // net_null has promiscuous mode or says it has not; either answer is fine, no panic.
    let _ = port.promiscuous(true);
    port.reset_stats().unwrap();

    let mut rx = port.rx_queue(0).unwrap();
    let mut tx = port.tx_queue(0).unwrap();
    let mut burst: ArrayVec<Mbuf, 256> = ArrayVec::new();
    let mut received = 0u64;
    let mut sent = 0u64;
    for round in 0..50 {
        let n = rx.rx_burst(&mut burst, 32);
        assert_eq!(n, 32, "net_null always has a full burst (round {round})");
        assert!(burst.iter().all(|m| m.len() == 64 && m.nb_segs() == 1));
        received += n as u64;
        sent += tx.tx_burst(&mut burst) as u64;
        // Whatever the driver did not take is ours to free.
        Mbuf::free_bulk(burst.drain(..));
    }
    // A burst never exceeds the spare capacity of the output.
    let mut small: ArrayVec<Mbuf, 8> = ArrayVec::new();
    assert_eq!(rx.rx_burst(&mut small, 32), 8);
    assert_eq!(rx.rx_burst(&mut small, 32), 0, "no room left");
    received += 8;
    drop(small);

    // net_null counts packets only (no bytes).
    let stats = port.stats().unwrap();
    assert_eq!(
        stats,
        PortStats {
            ipackets: received,
            opackets: sent,
            ..PortStats::default()
        }
    );
    assert_eq!(sent, 50 * 32);
    port.reset_stats().unwrap();
    assert_eq!(port.stats().unwrap().ipackets, 0);

    drop((rx, tx));
    port.stop().unwrap();
    drop((port, pool));
    // Closing the last port of a device detaches it, so it can be probed again.
    let again = Port::probe(&eal, "net_null0,size=128").unwrap();
    assert_eq!(again.name(), "net_null0");
    drop(again);
    let dir = eal.runtime_dir().to_owned();
    assert!(dir.exists());
    eal.cleanup().unwrap();
    assert!(
        !dir.exists(),
        "cleanup removes the runtime dir {}",
        dir.display()
    );
}
