//! Real EAL on two lcores: Rust closures launched on the worker lcore run there, receive from
//! a port while the main lcore sends, report panics, and refuse to double-launch; only real
//! worker lcores are accepted. One EAL test per file (see `eal_support`).

mod eal_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::buf::{BulkFree, PacketBuf};
use aegis_dataplane::port::clock::{cycles_to_ns, rdtsc};
use aegis_dataplane::port::mempool::DEFAULT_DATA_ROOM;
use aegis_dataplane::port::{ring_pair, Eal, EalError, Mempool, PortConfig};
use arrayvec::ArrayVec;

const PACKETS: usize = 10_000;

#[test]
fn closures_run_on_worker_lcores() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        assert!(
            !eal_support::in_ci(),
            "eal_launch needs two CPUs under CI=true"
        );
        eprintln!("!! SKIPPED eal_launch: needs two CPUs");
        return;
    }
    let Some(eal) = eal_support::eal_or_skip("eal_launch", &["-l", "0,1"]) else {
        return;
    };
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), &[1]);
    assert_eq!(Eal::current_lcore(), Some(0));
    assert!(eal.tsc_hz() > 0);

    // Only worker lcores.
    assert!(matches!(
        eal.launch(0, || {}),
        Err(EalError::NotAWorker { lcore: 0, .. })
    ));
    assert!(matches!(
        eal.launch(7, || {}),
        Err(EalError::NotAWorker { lcore: 7, .. })
    ));

    // The closure runs on lcore 1 and its captures come back.
    let (send, recv) = mpsc::channel();
    eal.launch(1, move || send.send(Eal::current_lcore()).unwrap())
        .unwrap();
    eal.wait(1).unwrap();
    assert_eq!(recv.recv().unwrap(), Some(1));

    // A busy lcore refuses a second launch.
    let release = Arc::new(AtomicBool::new(false));
    let flag = release.clone();
    eal.launch(1, move || {
        while !flag.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
    })
    .unwrap();
    assert!(matches!(
        eal.launch(1, || {}),
        Err(EalError::Busy { lcore: 1 })
    ));
    release.store(true, Ordering::Release);
    eal.wait_all().unwrap();

    // A panic is reported by the wait, and the lcore is usable again. The panic is expected:
    // silence the default hook meanwhile so the log shows no alarming message.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    eal.launch(1, || panic!("deliberate panic on the worker lcore"))
        .unwrap();
    let waited = eal.wait_all();
    std::panic::set_hook(default_hook);
    assert!(matches!(waited, Err(EalError::WorkerPanicked { lcore: 1 })));

    // A worker receives what the main lcore sends through a ring pair.
    let pool = Mempool::new(&eal, "launch_pool", 4095, 64, DEFAULT_DATA_ROOM, None).unwrap();
    let (mut a, mut b) = ring_pair(&eal, "l", 1024).unwrap();
    for p in [&mut a, &mut b] {
        p.configure(&PortConfig::default(), &pool).unwrap();
        p.start().unwrap();
    }
    let mut rx = b.rx_queue(0).unwrap();
    let (done_send, done_recv) = mpsc::channel();
    eal.launch(1, move || {
        let mut burst: ArrayVec<Mbuf, 64> = ArrayVec::new();
        let (mut count, mut bytes_ok) = (0usize, true);
        let deadline = Instant::now() + Duration::from_secs(20);
        while count < PACKETS && Instant::now() < deadline {
            rx.rx_burst(&mut burst, 64);
            for m in &burst {
                bytes_ok &= m.data() == &eal_support::packet(count, 64)[..];
                count += 1;
            }
            Mbuf::free_bulk(burst.drain(..));
        }
        done_send.send((count, bytes_ok)).unwrap();
        // `rx` drops here, on the worker lcore, giving the queue back.
    })
    .unwrap();
    let mut tx = a.tx_queue(0).unwrap();
    let mut burst: ArrayVec<Mbuf, 32> = ArrayVec::new();
    let start = rdtsc();
    let mut next = 0;
    while next < PACKETS || !burst.is_empty() {
        while !burst.is_full() && next < PACKETS {
            burst.push(eal_support::mbuf_with(
                &pool,
                &eal_support::packet(next, 64),
            ));
            next += 1;
        }
        tx.tx_burst(&mut burst);
    }
    eal.wait_all().unwrap();
    let elapsed_ns = cycles_to_ns(rdtsc() - start, eal.tsc_hz());
    assert_eq!(done_recv.recv().unwrap(), (PACKETS, true));
    assert!(elapsed_ns > 0);
    assert_eq!(b.stats().unwrap().ipackets, PACKETS as u64);

    drop(tx);
    b.stop().unwrap();
    drop((a, b, pool));
    eal.cleanup().unwrap();
}
