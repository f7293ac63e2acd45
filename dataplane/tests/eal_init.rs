//! Real EAL: initialisation adds a unique `--file-prefix`, exposes lcores, the TSC rate and
//! the runtime directory with its telemetry socket, refuses a second init, counts live
//! objects and refuses cleanup while one is left (successful cleanup, which removes the
//! runtime directory, ends the other `eal_*` tests). One EAL test per file (see
//! `eal_support`).

mod eal_support;

use aegis_dataplane::port::mempool::DEFAULT_DATA_ROOM;
use aegis_dataplane::port::{Eal, EalError, Mempool};

#[test]
fn init_once_with_generated_prefix() {
    let Some(eal) = eal_support::eal_or_skip("eal_init", &["-l", "0"]) else {
        return;
    };
    let prefix = format!("aegis-{}-", std::process::id());
    assert!(
        eal.file_prefix().starts_with(&prefix),
        "{} should start with {prefix}",
        eal.file_prefix()
    );
    assert!(eal.runtime_dir().ends_with(eal.file_prefix()));
    assert!(
        eal.runtime_dir().join("dpdk_telemetry.v2").exists(),
        "telemetry socket in {}",
        eal.runtime_dir().display()
    );
    assert_eq!(eal.main_lcore(), 0);
    assert!(eal.worker_lcores().is_empty());
    assert!(eal.tsc_hz() > 1_000_000);
    assert!(!eal.has_hugepages(), "--no-huge");
    assert!(
        Eal::version().starts_with("DPDK 22.11"),
        "{}",
        Eal::version()
    );
    assert_eq!(Eal::current_lcore(), Some(0));
    assert_eq!(
        std::thread::spawn(Eal::current_lcore).join().unwrap(),
        None,
        "plain threads are not lcores"
    );
    // Launch and wait belong to the main lcore's thread; the handle cannot even move to
    // another thread (it is !Send), so only the lcore checks are exercised here.
    assert!(matches!(
        eal.launch(1, || {}),
        Err(EalError::NotAWorker { .. })
    ));

    assert!(matches!(
        Eal::init(&["--no-huge".to_owned()]),
        Err(EalError::AlreadyInitialised)
    ));

    // Objects made under the EAL are counted; cleanup needs none left.
    assert_eq!(eal.live_objects(), 0);
    let pool = Mempool::new(&eal, "init_pool", 63, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let second = pool.clone();
    assert_eq!(eal.live_objects(), 1, "clones share one pool");
    let m = pool.alloc().unwrap();
    drop((pool, second));
    assert_eq!(
        eal.live_objects(),
        1,
        "a pool with an mbuf out is kept (and so is the EAL)"
    );
    drop(m);
    let dir = eal.runtime_dir().to_owned();
    let err = eal.cleanup().unwrap_err();
    assert!(matches!(err, EalError::InUse { holders: 1 }), "{err}");
    assert!(dir.exists(), "no cleanup while objects are alive");
    // The EAL stays up until the process exits; do not leave its directory behind.
    let _ = std::fs::remove_dir_all(&dir);
}
