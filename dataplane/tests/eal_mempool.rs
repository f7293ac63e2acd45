//! Real EAL: mempool exhaustion and creation errors. Allocation from an empty pool answers
//! `None`/`false` without touching anything, a port on an empty pool receives nothing, and
//! freed buffers can be taken again; bad pool or port parameters are clear errors. One EAL
//! test per file (see `eal_support`).

mod eal_support;

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::buf::BulkFree;
use aegis_dataplane::port::mempool::DEFAULT_DATA_ROOM;
use aegis_dataplane::port::{Mempool, MempoolError, Port, PortConfig, PortError};
use arrayvec::ArrayVec;

const POOL: u32 = 64;

#[test]
fn exhausted_pool_is_handled_without_panic() {
    let Some(eal) = eal_support::eal_or_skip("eal_mempool", &[]) else {
        return;
    };
    // Creation errors name the problem.
    let long = "x".repeat(40);
    assert!(matches!(
        Mempool::new(&eal, &long, 64, 0, DEFAULT_DATA_ROOM, None),
        Err(MempoolError::BadName { .. })
    ));
    assert!(matches!(
        Mempool::new(&eal, "tiny", 64, 0, 100, None),
        Err(MempoolError::DataRoomTooSmall { .. })
    ));
    let err = Mempool::new(&eal, "bigcache", 64, 4096, DEFAULT_DATA_ROOM, None).unwrap_err();
    assert!(matches!(err, MempoolError::Create { .. }), "{err}");
    assert!(err.to_string().contains("bigcache"), "{err}");

    let pool = Mempool::new(&eal, "small", POOL, 0, DEFAULT_DATA_ROOM, None).unwrap();
    assert!(
        Mempool::new(&eal, "small", POOL, 0, DEFAULT_DATA_ROOM, None).is_err(),
        "names are unique"
    );
    assert_eq!(
        (pool.size(), pool.available(), pool.in_use()),
        (POOL, POOL, 0)
    );

    // Drain it one by one.
    let mut held: Vec<Mbuf> = Vec::new();
    while let Some(m) = pool.alloc() {
        held.push(m);
        assert!(
            held.len() <= POOL as usize,
            "more mbufs than the pool holds"
        );
    }
    assert_eq!(held.len(), POOL as usize);
    assert_eq!(pool.available(), 0);
    let mut bulk: ArrayVec<Mbuf, 32> = ArrayVec::new();
    assert!(!pool.alloc_bulk(&mut bulk, 1), "empty pool");
    assert!(bulk.is_empty());

    // A port whose rx pool is empty receives nothing and does not crash.
    let mut port = Port::probe(&eal, "net_null0,size=64").unwrap();
    port.configure(&PortConfig::default(), &pool).unwrap();
    port.start().unwrap();
    let mut rx = port.rx_queue(0).unwrap();
    let mut got: ArrayVec<Mbuf, 64> = ArrayVec::new();
    for _ in 0..10 {
        assert_eq!(rx.rx_burst(&mut got, 32), 0);
    }

    // Give some back: allocation works again, bulk is all or nothing.
    Mbuf::free_bulk(held.drain(..10));
    assert_eq!(pool.available(), 10);
    assert!(
        !pool.alloc_bulk(&mut bulk, 11),
        "only 10 free: nothing taken"
    );
    assert!(bulk.is_empty());
    assert_eq!(pool.available(), 10);
    assert!(pool.alloc_bulk(&mut bulk, 4));
    assert_eq!((bulk.len(), pool.available()), (4, 6));
    assert!(
        !pool.alloc_bulk(&mut bulk, 29),
        "more than the spare capacity"
    );
    let n = rx.rx_burst(&mut got, 32);
    assert!(n <= 6, "at most the free mbufs arrive");
    drop(got);
    drop(bulk);
    drop(held);
    assert_eq!(pool.in_use(), 0);

    // An MTU that does not fit one mbuf is refused (multi-segment packets are unsupported).
    let small_room = Mempool::new(&eal, "smallroom", 63, 0, 128 + 1024, None).unwrap();
    let mut p2 = Port::probe(&eal, "net_null1").unwrap();
    let err = p2
        .configure(&PortConfig::default(), &small_room)
        .unwrap_err();
    assert!(
        matches!(err, PortError::BadConfig { field: "mtu", .. }),
        "{err}"
    );
    let conf = PortConfig {
        rx_queues: 0,
        ..PortConfig::default()
    };
    assert!(matches!(
        p2.configure(&conf, &small_room),
        Err(PortError::BadConfig {
            field: "rx_queues",
            ..
        })
    ));
    assert!(matches!(p2.start(), Err(PortError::NotConfigured { .. })));

    drop(rx);
    drop((port, p2, pool, small_room));
    eal.cleanup().unwrap();
}
