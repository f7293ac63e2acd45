//! The `aegis-dataplane` daemon: brings up the EAL, mempool and ports from host.toml,
//! builds the tables, starts one worker per lcore, and serves the admin API, metrics and
//! the control loop (and, with `--controlplane`, the control-plane [`feed`]) on a separate
//! thread until SIGTERM/SIGINT, then stops the workers, the ports and the EAL in that order.

pub mod backend;
pub mod control;
pub mod counters;
pub mod feed;
pub mod persist;
pub mod sync;
pub mod vrrp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::HostConfig;
use crate::ctl;
use crate::port::{clock, Eal, Mempool, Port, PortConfig};
use crate::state::{SnapshotCell, Tables};
use crate::worker::dpdk::DpdkQueues;
use crate::worker::{Clock, Worker, WorkerConfig, WorkerHandle};

use backend::DaemonBackend;
use counters::Baseline;
use feed::{Feed, FeedOptions};
use persist::RuntimeLog;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// EAL initialisation or lcore handling failed.
    #[error("EAL: {0}")]
    Eal(#[from] crate::port::EalError),
    /// The mempool could not be created.
    #[error("mempool: {0}")]
    Mempool(#[from] crate::port::MempoolError),
    /// A port could not be probed, configured or started.
    #[error("port {port}: {source}")]
    Port {
        /// Port name from the configuration.
        port: String,
        /// What DPDK said.
        source: crate::port::PortError,
    },
    /// The configuration does not fit the ports DPDK found.
    #[error("{0}")]
    Setup(String),
    /// The tables refused the configuration.
    #[error("configuration: {0}")]
    State(#[from] crate::state::StateError),
    /// I/O (admin socket, journal, threads).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Sets the stop flag when dropped, so every way out of [`run`] (an error included) stops
/// the workers before the EAL waits for them.
struct StopOnExit(Arc<AtomicBool>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the daemon until a termination signal arrives.
pub fn run(cfg: HostConfig) -> Result<(), DaemonError> {
    run_with(cfg, None)
}

/// [`run`], fed by the control plane when `feed` is given (see [`feed`]).
pub fn run_with(cfg: HostConfig, feed: Option<FeedOptions>) -> Result<(), DaemonError> {
    let mut runtime_dir = None;
    let result = run_until_stopped(&cfg, feed, &mut runtime_dir);
    // The EAL is gone by now, whatever happened. A prefix we chose is ours to remove; one
    // the operator chose is left alone.
    let own_prefix = !cfg.eal.args.iter().any(|a| a.starts_with("--file-prefix"));
    if let (true, Some(dir)) = (own_prefix, runtime_dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn run_until_stopped(
    cfg: &HostConfig,
    feed_options: Option<FeedOptions>,
    runtime_dir: &mut Option<std::path::PathBuf>,
) -> Result<(), DaemonError> {
    let started = Instant::now();
    let argv = cfg.eal_argv(
        "aegis-dataplane",
        &format!("aegis-dp-{}", std::process::id()),
    );
    let eal = Eal::init(&argv[1..])?;
    *runtime_dir = Some(eal.runtime_dir().to_path_buf());
    let stop = Arc::new(AtomicBool::new(false));
    // Declared after `eal`, so it is dropped first: workers stop before the EAL waits.
    let _stop_on_exit = StopOnExit(stop.clone());
    tracing::info!(
        file_prefix = eal.file_prefix(),
        hugepages = eal.has_hugepages(),
        version = %Eal::version(),
        "EAL initialised"
    );

    // One worker per lcore: the main lcore works only when no worker lcore is configured.
    let worker_lcores: Vec<u32> = if eal.worker_lcores().is_empty() {
        vec![eal.main_lcore()]
    } else {
        eal.worker_lcores().to_vec()
    };
    let n_workers = worker_lcores.len() as u16;

    // Buffers big enough for the largest configured MTU (plus Ethernet, VLAN and FCS).
    let max_mtu = cfg
        .forwarding
        .ports
        .iter()
        .map(|p| p.mtu)
        .max()
        .unwrap_or(1500);
    let data_room = crate::port::mempool::DEFAULT_DATA_ROOM
        .max(crate::port::mempool::HEADROOM + max_mtu + 14 + 4 + 4);
    let pool = Mempool::new(
        &eal,
        "aegis_pkts",
        cfg.dataplane.mbufs,
        256.min(cfg.dataplane.mbufs / 2),
        data_room,
        None,
    )?;

    let mut tables = Tables::new(&cfg.forwarding)?;
    let mut ports = Vec::new();
    for (i, spec) in cfg.ports.iter().enumerate() {
        let perr = |source| DaemonError::Port {
            port: spec.name.clone(),
            source,
        };
        let mut port = Port::probe(&eal, &spec.devargs).map_err(perr)?;
        let info = port.info().map_err(perr)?;
        if info.max_rx_queues < n_workers || info.max_tx_queues < n_workers {
            return Err(DaemonError::Setup(format!(
                "port {}: {} workers need {n_workers} rx and tx queues, the device has {}/{} \
                 (for net_af_packet add qpairs={n_workers} to its devargs)",
                spec.name, n_workers, info.max_rx_queues, info.max_tx_queues
            )));
        }
        let mtu = cfg.forwarding.ports[i].mtu;
        let conf = PortConfig {
            rx_queues: n_workers,
            tx_queues: n_workers,
            mtu,
            ..PortConfig::default()
        };
        port.configure(&conf, &pool).map_err(perr)?;
        match port.promiscuous(spec.promiscuous) {
            Ok(()) => {}
            // Some virtual devices (net_null, net_pcap) are always promiscuous; the software
            // MAC filter works either way.
            Err(e @ crate::port::PortError::NotSupported { .. }) => {
                tracing::warn!(port = %spec.name, error = %e, "promiscuous setting left as the device has it");
            }
            Err(e) => return Err(perr(e)),
        }
        port.start().map_err(perr)?;
        if cfg.forwarding.ports[i].mac.is_none() {
            let mac = port.mac().map_err(perr)?;
            tables.set_port_mac(i as u16, mac)?;
        }
        tracing::info!(port = %spec.name, devargs = %spec.devargs, driver = %info.driver, "port started");
        ports.push((port, spec.devargs.clone()));
    }

    let log = match &cfg.dataplane.runtime_log {
        Some(path) => {
            let (log, skipped) =
                RuntimeLog::open(path, &mut tables).map_err(|source| DaemonError::Io {
                    context: format!("runtime journal {}", path.display()),
                    source,
                })?;
            for s in skipped {
                tracing::warn!(journal = %path.display(), line = s.line, reason = %s.reason,
                    "runtime change not replayed");
            }
            log
        }
        None => RuntimeLog::disabled(),
    };

    // The last control-plane slice, over host.toml and the journal: a dataplane restarted
    // while the control plane is away forwards as it did before.
    // host.toml's NAT first: a cached gateway role is checked against its outside port.
    if cfg.nat.enabled() {
        tables.set_nat(Arc::new(cfg.nat.clone()));
    }
    let feed = feed_options.as_ref().map(Feed::new);
    if let Some(f) = &feed {
        f.restore(&mut tables);
    }

    // A dataplane fed by the control plane runs a speaker even without [vrrp]: a gateway
    // group it is a member of brings its instances.
    let vrrp = vrrp::VrrpSpeaker::for_host(cfg.vrrp.as_ref(), feed.is_some(), &mut tables)?
        .map(Mutex::new);
    let sync_channel = cfg.sync.as_ref().map(|s| {
        Arc::new(crate::sync::SyncChannel::new(
            s.udp_port,
            worker_lcores.len(),
        ))
    });
    let sync = match (&cfg.sync, &sync_channel) {
        (Some(s), Some(ch)) => {
            tracing::info!(config = ?s, "session sync configured");
            Some(Mutex::new(sync::SyncDriver::new(
                s.clone(),
                ch.clone(),
                started.elapsed(),
            )))
        }
        _ => None,
    };
    let cell = SnapshotCell::new(tables.snapshot());
    let handles: Vec<WorkerHandle> = (0..worker_lcores.len()).map(WorkerHandle::new).collect();
    let clock = Clock::new(clock::rdtsc, eal.tsc_hz());
    let wcfg = WorkerConfig {
        poll_mode: cfg.dataplane.poll_mode,
        burst: usize::from(cfg.dataplane.burst),
        connections: cfg.dataplane.connections as usize,
        nat_sessions: if cfg.nat.enabled() {
            cfg.dataplane.connections as usize
        } else {
            0
        },
    };
    let mut workers = Vec::new();
    let rings = crate::graph::Handoff::rings(handles.len(), crate::worker::HANDOFF_RING);
    for (w, h) in handles.iter().enumerate() {
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (p, spec) in ports.iter().zip(&cfg.ports) {
            let missing = || DaemonError::Setup(format!("port {}: queue {w} missing", spec.name));
            rx.push(p.0.rx_queue(w as u16).ok_or_else(missing)?);
            tx.push(p.0.tx_queue(w as u16).ok_or_else(missing)?);
        }
        let queues = DpdkQueues::new(rx, tx, pool.clone());
        let mut worker =
            Worker::new(queues, h, cell.reader(), wcfg, clock).with_handoff(w, rings.clone());
        // Every worker runs NAT on its share of the sessions, and so session sync.
        if let Some(ch) = &sync_channel {
            worker = worker.with_sync(ch.clone());
        }
        workers.push(worker);
    }

    let backend = Arc::new(DaemonBackend {
        tables: Mutex::new(tables),
        cell,
        workers: handles
            .iter()
            .cloned()
            .zip(worker_lcores.iter().copied())
            .collect(),
        ports,
        baseline: Mutex::new(Baseline::default()),
        log: Mutex::new(log),
        poll_mode: cfg.dataplane.poll_mode,
        started,
        feed,
        vrrp,
        capture: crate::capture::CaptureHub::new(
            handles.iter().map(|h| h.captures.clone()).collect(),
            clock,
        ),
        sync,
        watch: crate::trace::WatchHub::new(handles.iter().map(|h| h.watches.clone()).collect()),
        traces: Mutex::new(crate::trace::TraceStore::new(
            handles.iter().map(|h| h.traces.clone()).collect(),
            clock,
        )),
    });

    let control = spawn_control(cfg, backend.clone(), stop.clone(), feed_options)?;

    // Workers: on their lcores, or this (main) thread when it is the only lcore.
    let main_works = eal.worker_lcores().is_empty();
    let mut main_worker = None;
    for (mut w, lcore) in workers.into_iter().zip(worker_lcores.iter().copied()) {
        if main_works {
            main_worker = Some(w);
            continue;
        }
        let stop = stop.clone();
        eal.launch(lcore, move || w.run(&stop))?;
    }
    tracing::info!(workers = n_workers, poll_mode = %cfg.dataplane.poll_mode, "forwarding");
    match main_worker {
        Some(mut w) => w.run(&stop),
        None => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    if let Err(e) = eal.wait_all() {
        tracing::error!(error = %e, "a worker failed");
    }
    let result = control.join();
    tracing::info!("workers stopped");
    match Arc::try_unwrap(backend) {
        Ok(b) => {
            for (mut port, _) in b.ports {
                if let Err(e) = port.stop() {
                    tracing::warn!(port = port.name(), error = %e, "port stop failed");
                }
            }
        }
        Err(_) => tracing::warn!("admin tasks still hold the ports; leaving them to the exit"),
    }
    drop(pool);
    drop(_stop_on_exit);
    if let Err(e) = eal.cleanup() {
        tracing::warn!(error = %e, "EAL cleanup incomplete");
    }
    match result {
        Ok(r) => r,
        Err(_) => Err(DaemonError::Setup("control thread panicked".into())),
    }
}

/// Starts the control thread: admin API, metrics, control loop, signal handling.
fn spawn_control(
    cfg: &HostConfig,
    backend: Arc<DaemonBackend>,
    stop: Arc<AtomicBool>,
    feed: Option<FeedOptions>,
) -> Result<std::thread::JoinHandle<Result<(), DaemonError>>, DaemonError> {
    let socket = cfg.dataplane.admin_socket.clone();
    let metrics = cfg.dataplane.metrics_listen;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Io {
            context: "tokio runtime".into(),
            source,
        })?;
    // Bind before the workers start so a bad socket path fails the start-up.
    let admin = rt
        .block_on(async { ctl::AdminServer::bind(&socket, backend.clone()) })
        .map_err(|e| DaemonError::Setup(format!("admin socket {}: {e}", socket.display())))?;
    let metrics = match metrics {
        Some(addr) => Some(
            rt.block_on(async { ctl::metrics::MetricsServer::bind(addr, backend.clone()) })
                .map_err(|e| DaemonError::Setup(format!("metrics {addr}: {e}")))?,
        ),
        None => None,
    };
    // The diagnostics listener takes the token the dataplane presents to the control plane:
    // the control plane dials it with the same one.
    let diag = match cfg.dataplane.diag_listen {
        Some(addr) => {
            let token = feed.as_ref().and_then(|f| f.connect.token.clone());
            if token.is_none() {
                tracing::warn!(%addr, "diagnostics listener without a token: anyone who reaches it may capture traffic");
            }
            let server = rt
                .block_on(async { ctl::diag::DiagServer::bind(addr, backend.clone(), token) })
                .map_err(|e| DaemonError::Setup(e.to_string()))?;
            tracing::info!(%addr, "diagnostics API listening");
            Some(server)
        }
        None => None,
    };
    tracing::info!(socket = %socket.display(), "admin API listening");
    std::thread::Builder::new()
        .name("aegis-control".into())
        .spawn(move || {
            rt.block_on(async move {
                let (tx, rx) = tokio::sync::watch::channel(false);
                let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|v| *v).await;
                };
                let admin_task = tokio::spawn(admin.serve(shutdown(rx.clone())));
                let metrics_task = metrics.map(|m| tokio::spawn(m.serve(shutdown(rx.clone()))));
                let diag_task = diag.map(|d| tokio::spawn(d.serve(shutdown(rx.clone()))));
                let feed_task = feed
                    .map(|options| tokio::spawn(feed::run(backend.clone(), options, rx.clone())));
                let loop_task = tokio::spawn(control::run(backend.clone(), stop.clone()));
                wait_for_signal().await;
                tracing::info!("shutting down");
                backend.capture.close();
                backend.watch.close();
                if backend.vrrp.is_some() {
                    // Priority 0 out before the workers stop: backups take over after
                    // their skew time instead of the whole master-down interval.
                    control::shutdown_vrrp(&backend);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                stop.store(true, Ordering::Relaxed);
                let _ = tx.send(true);
                let _ = loop_task.await;
                if let Some(t) = feed_task {
                    let _ = t.await;
                }
                if let Ok(Err(e)) = admin_task.await {
                    tracing::warn!(error = %e, "admin server");
                }
                if let Some(t) = metrics_task {
                    let _ = t.await;
                }
                if let Some(t) = diag_task {
                    if let Ok(Err(e)) = t.await {
                        tracing::warn!(error = %e, "diagnostics server");
                    }
                }
                Ok(())
            })
        })
        .map_err(|source| DaemonError::Io {
            context: "control thread".into(),
            source,
        })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
