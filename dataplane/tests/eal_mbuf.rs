//! Real EAL: `Mbuf` as a `PacketBuf` on real DPDK buffers — headroom, tailroom and the
//! prepend/adj/append/trim bounds, writes through `data_mut`, raw round trips and bulk free.
//! One EAL test per file (see `eal_support`).

mod eal_support;

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::buf::{BulkFree, PacketBuf};
use aegis_dataplane::port::mempool::{DEFAULT_DATA_ROOM, HEADROOM};
use aegis_dataplane::port::Mempool;
use arrayvec::ArrayVec;

#[test]
fn mbuf_behaves_as_a_packet_buffer() {
    let Some(eal) = eal_support::eal_or_skip("eal_mbuf", &[]) else {
        return;
    };
    let pool = Mempool::new(&eal, "mbuf_pool", 511, 16, DEFAULT_DATA_ROOM, None).unwrap();
    let room = usize::from(DEFAULT_DATA_ROOM - HEADROOM);

    let mut m = pool.alloc().unwrap();
    assert!(m.is_empty());
    assert_eq!(m.headroom(), usize::from(HEADROOM));
    assert_eq!(m.tailroom(), room);
    assert_eq!(m.nb_segs(), 1);

    assert!(m.extend_from_slice(&[1, 2, 3, 4]));
    assert_eq!(m.data(), &[1, 2, 3, 4]);
    m.data_mut()[0] = 9;
    assert_eq!(m.data(), &[9, 2, 3, 4]);

    // Front.
    assert!(
        !m.prepend(usize::from(HEADROOM) + 1),
        "more than the headroom"
    );
    assert_eq!(m.len(), 4);
    assert!(m.prepend(14));
    assert_eq!((m.len(), m.headroom()), (18, usize::from(HEADROOM) - 14));
    assert_eq!(&m.data()[14..], &[9, 2, 3, 4]);
    assert!(m.adj(14));
    assert_eq!(m.data(), &[9, 2, 3, 4]);
    assert!(!m.adj(5), "more than the length");
    assert_eq!(m.len(), 4);

    // Back.
    assert!(!m.append(room - 4 + 1), "more than the tailroom");
    assert!(m.append(room - 4));
    assert_eq!((m.len(), m.tailroom()), (room, 0));
    assert!(!m.extend_from_slice(&[0]));
    assert!(m.trim(room - 4));
    assert!(!m.trim(5));
    assert_eq!(m.data(), &[9, 2, 3, 4]);
    m.prefetch();
    assert!(format!("{m:?}").contains("4 bytes"));

    // Raw round trip keeps the buffer.
    let raw = m.into_raw();
    assert_eq!(pool.in_use(), 1);
    // SAFETY: `raw` came from `into_raw` just above and nothing else holds it.
    #[allow(unsafe_code)]
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.data(), &[9, 2, 3, 4]);
    drop(m);
    assert_eq!(pool.in_use(), 0, "drop returns the mbuf");

    // Bulk free over more than one internal chunk.
    let mut many: Vec<Mbuf> = (0..200).map(|_| pool.alloc().unwrap()).collect();
    assert_eq!(pool.in_use(), 200);
    Mbuf::free_bulk(many.drain(..));
    assert_eq!(pool.in_use(), 0);
    let mut bulk: ArrayVec<Mbuf, 256> = ArrayVec::new();
    assert!(pool.alloc_bulk(&mut bulk, 256));
    assert!(bulk
        .iter()
        .all(|m| m.is_empty() && m.headroom() == usize::from(HEADROOM)));
    Mbuf::free_bulk(bulk.drain(..));
    assert_eq!(pool.in_use(), 0);

    // Mbufs move between threads.
    let m = eal_support::mbuf_with(&pool, b"cross-thread");
    let back = std::thread::spawn(move || {
        assert_eq!(m.data(), b"cross-thread");
        m
    })
    .join()
    .unwrap();
    drop(back);
    assert_eq!(pool.in_use(), 0);

    drop(pool);
    eal.cleanup().unwrap();
}
