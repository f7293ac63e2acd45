//! Real EAL: a pair of ring ports (`port::ring_pair`, the net_ring driver). Packets sent on
//! one arrive, byte for byte and in order, on the other; counters match; a full ring leaves
//! the unsent packets with the caller; a port does not stop while queue handles are out. Also
//! a `net_ring` vdev probed from devargs (one port looped onto itself). One EAL test per file
//! (see `eal_support`).

mod eal_support;

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::buf::{BulkFree, PacketBuf};
use aegis_dataplane::port::mempool::DEFAULT_DATA_ROOM;
use aegis_dataplane::port::{ring_pair, Mempool, Port, PortConfig, PortError};
use arrayvec::ArrayVec;

/// Ring size of the pair, and its usable slots (one is kept empty).
const RING_SIZE: u32 = 1024;
const RING_CAPACITY: usize = RING_SIZE as usize - 1;

#[test]
fn ring_pair_carries_bytes_in_order() {
    let Some(eal) = eal_support::eal_or_skip("eal_ring", &[]) else {
        return;
    };
    let pool = Mempool::new(&eal, "ring_pool", 4095, 32, DEFAULT_DATA_ROOM, None).unwrap();
    let (mut a, mut b) = ring_pair(&eal, "t", RING_SIZE).unwrap();
    assert_eq!(a.name(), "net_ring_t_a");
    assert_eq!(b.name(), "net_ring_t_b");
    assert_ne!(a.id(), b.id());
    assert_eq!(a.info().unwrap().driver, "net_ring");
    assert!(matches!(
        Port::open(&eal, a.id()),
        Err(PortError::AlreadyOpen { .. })
    ));

    let conf = PortConfig::default();
    for p in [&mut a, &mut b] {
        p.configure(&conf, &pool).unwrap();
        p.start().unwrap();
        assert!(p.is_started());
        p.mac().unwrap();
        assert!(p.link().unwrap().up, "net_ring links are up once started");
    }
    let mut tx = a.tx_queue(0).unwrap();
    assert!(a.tx_queue(0).is_none(), "a queue handle is handed out once");
    assert!(a.tx_queue(1).is_none(), "only one tx queue was configured");
    let mut rx = b.rx_queue(0).unwrap();

    // 100 packets of many sizes, sent in bursts of 32.
    let sent_bytes: Vec<Vec<u8>> = (0..100)
        .map(|i| eal_support::packet(i, 60 + (i * 37) % 1455))
        .collect();
    let mut burst: ArrayVec<Mbuf, 32> = ArrayVec::new();
    for chunk in sent_bytes.chunks(32) {
        for bytes in chunk {
            burst.push(eal_support::mbuf_with(&pool, bytes));
        }
        assert_eq!(tx.tx_burst(&mut burst), chunk.len());
        assert!(burst.is_empty(), "sent packets leave the burst");
    }

    let mut got: ArrayVec<Mbuf, 256> = ArrayVec::new();
    for _ in 0..1000 {
        if got.len() == sent_bytes.len() {
            break;
        }
        rx.rx_burst(&mut got, 32);
    }
    assert_eq!(got.len(), sent_bytes.len());
    for (i, (m, want)) in got.iter().zip(&sent_bytes).enumerate() {
        assert_eq!(m.data(), &want[..], "packet {i} differs");
        assert_eq!(m.nb_segs(), 1);
    }
    // net_ring counts packets, not bytes.
    let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
    assert_eq!((sa.opackets, sa.ipackets), (100, 0));
    assert_eq!((sb.ipackets, sb.opackets), (100, 0));
    Mbuf::free_bulk(got.drain(..));

    // Fill the ring without receiving: the driver takes RING_CAPACITY packets, the rest
    // stay with the caller, unchanged and in order.
    let mut accepted = 0;
    let mut left: ArrayVec<Mbuf, 256> = ArrayVec::new();
    let mut next = 0usize;
    while next < RING_CAPACITY + 77 {
        while !left.is_full() && next < RING_CAPACITY + 77 {
            left.push(eal_support::mbuf_with(
                &pool,
                &eal_support::packet(next, 64),
            ));
            next += 1;
        }
        accepted += tx.tx_burst(&mut left);
    }
    accepted += tx.tx_burst(&mut left);
    assert_eq!(accepted, RING_CAPACITY);
    assert_eq!(left.len(), 77);
    for (k, m) in left.iter().enumerate() {
        assert_eq!(m.data(), &eal_support::packet(RING_CAPACITY + k, 64)[..]);
    }
    Mbuf::free_bulk(left.drain(..));

    let mut drained = 0;
    loop {
        let n = rx.rx_burst(&mut got, 256);
        if n == 0 {
            break;
        }
        drained += n;
        Mbuf::free_bulk(got.drain(..));
    }
    assert_eq!(drained, RING_CAPACITY);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");

    // A port does not stop under live queue handles.
    assert!(matches!(
        a.stop(),
        Err(PortError::QueuesInUse { taken: 1, .. })
    ));
    drop(tx);
    drop(rx);
    a.stop().unwrap();
    b.stop().unwrap();
    assert!(!a.is_started());

    drop((a, b));

    // A net_ring vdev from devargs: one port whose rx and tx share a ring.
    let mut lo = Port::probe(&eal, "net_ring0").unwrap();
    assert_eq!(lo.name(), "net_ring0");
    assert!(matches!(
        Port::probe(&eal, "net_ring0"),
        Err(PortError::AlreadyOpen { .. })
    ));
    lo.configure(&conf, &pool).unwrap();
    lo.start().unwrap();
    let (mut lo_rx, mut lo_tx) = (lo.rx_queue(0).unwrap(), lo.tx_queue(0).unwrap());
    burst.push(eal_support::mbuf_with(&pool, &eal_support::packet(7, 99)));
    assert_eq!(lo_tx.tx_burst(&mut burst), 1);
    assert_eq!(lo_rx.rx_burst(&mut got, 32), 1);
    assert_eq!(got[0].data(), &eal_support::packet(7, 99)[..]);
    got.clear();
    drop((lo_rx, lo_tx, lo));

    drop(pool);
    eal.cleanup().unwrap();
}
