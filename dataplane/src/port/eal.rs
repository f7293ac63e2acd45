//! The EAL's lifetime: initialisation (once per process, with a unique `--file-prefix`),
//! lcore discovery, launching Rust closures on worker lcores, and cleanup.
//!
//! Every DPDK object made through this crate ([`super::Mempool`], [`super::Port`] and its
//! queues) holds a reference to the EAL's shared state, so `rte_eal_cleanup` runs only when
//! none is left; otherwise cleanup is skipped and the process exit reclaims everything.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// Value an lcore function returns when the closure it ran panicked.
const LCORE_PANICKED: c_int = -1;
/// `LCORE_ID_ANY` from `rte_lcore.h`: the calling thread is not an EAL lcore.
const LCORE_ID_ANY: u32 = u32::MAX;

static INITIALISED: AtomicBool = AtomicBool::new(false);
static PREFIX_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Errors from the EAL.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// The EAL was already initialised in this process (DPDK allows one `rte_eal_init`).
    #[error("the DPDK EAL is already initialised in this process (one rte_eal_init per process)")]
    AlreadyInitialised,
    /// An argument cannot be passed to C.
    #[error("EAL argument {index} ({arg:?}) contains a NUL byte")]
    BadArgument {
        /// Position in the argument list.
        index: usize,
        /// The argument.
        arg: String,
    },
    /// `rte_eal_init` failed.
    #[error("rte_eal_init({args}) failed: {message} (rte_errno {errno})")]
    Init {
        /// The arguments, space separated.
        args: String,
        /// `rte_errno` after the failure.
        errno: i32,
        /// `rte_strerror(rte_errno)`.
        message: String,
    },
    /// A launch or wait was attempted from a thread other than the main lcore.
    #[error("lcores can only be launched and waited for from the main lcore (this is lcore {current:?})")]
    NotMainLcore {
        /// The calling thread's lcore id, `None` for a non-EAL thread.
        current: Option<u32>,
    },
    /// The lcore is not one of this EAL's worker lcores.
    #[error("lcore {lcore} is not a worker lcore of this EAL (workers: {workers:?})")]
    NotAWorker {
        /// The lcore asked for.
        lcore: u32,
        /// The worker lcores.
        workers: Vec<u32>,
    },
    /// The lcore is still running an earlier launch.
    #[error("lcore {lcore} is busy running an earlier launch")]
    Busy {
        /// The lcore.
        lcore: u32,
    },
    /// The closure launched on the lcore panicked.
    #[error("the closure launched on lcore {lcore} panicked")]
    WorkerPanicked {
        /// The lcore.
        lcore: u32,
    },
    /// Cleanup was asked for while DPDK objects still exist.
    #[error("cannot clean up the EAL: {holders} mempool/port/queue handle(s) still alive")]
    InUse {
        /// How many objects still hold the EAL.
        holders: usize,
    },
    /// `rte_eal_cleanup` failed.
    #[error("rte_eal_cleanup failed: {message}")]
    Cleanup {
        /// `rte_strerror` of the error.
        message: String,
    },
}

/// State shared by the [`Eal`] handle and every DPDK object made under it.
#[derive(Debug)]
pub(crate) struct EalShared {
    file_prefix: String,
    prefix_generated: bool,
    runtime_dir: PathBuf,
    tsc_hz: u64,
    main_lcore: u32,
    workers: Vec<u32>,
}

/// The initialised EAL. Made once per process by [`Eal::init`].
///
/// The handle stays on the thread that initialised the EAL (it is neither `Send` nor
/// `Sync`): that thread is the main lcore, the only one DPDK lets launch and wait for
/// workers. Dropping it waits for every worker lcore, then cleans up as [`Eal::cleanup`]
/// does, silently skipping cleanup when DPDK objects are still alive.
#[derive(Debug)]
pub struct Eal {
    shared: Arc<EalShared>,
    cleaned: bool,
    _main_thread_only: PhantomData<*const ()>,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

impl Eal {
    /// Initialises the EAL with `args` (without a program name; one is put in front).
    /// Adds `--file-prefix aegis-<pid>-<n>` unless the arguments already choose a prefix.
    /// Fails with [`EalError::AlreadyInitialised`] on a second call in the same process, even
    /// after a failed first call (DPDK cannot retry most failed initialisations).
    pub fn init(args: &[String]) -> Result<Eal, EalError> {
        let mut full: Vec<String> = Vec::with_capacity(args.len() + 3);
        full.push("aegis".to_owned());
        full.extend(args.iter().cloned());
        let (file_prefix, prefix_generated) = match find_file_prefix(args) {
            Some(prefix) => (prefix, false),
            None => {
                let n = PREFIX_COUNTER.fetch_add(1, Ordering::Relaxed);
                let prefix = format!("aegis-{}-{n}", std::process::id());
                full.push("--file-prefix".to_owned());
                full.push(prefix.clone());
                (prefix, true)
            }
        };
        let mut c_args = Vec::with_capacity(full.len());
        for (index, arg) in full.iter().enumerate() {
            let c = CString::new(arg.as_str()).map_err(|_| EalError::BadArgument {
                index: index.saturating_sub(1),
                arg: arg.clone(),
            })?;
            c_args.push(c);
        }
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(EalError::AlreadyInitialised);
        }
        // DPDK may keep pointers into argv (and getopt permutes the array), so the strings
        // and the pointer array live for the rest of the process: one small leak, once.
        let argv: &'static mut [*mut c_char] = Vec::leak(
            c_args
                .into_iter()
                .map(CString::into_raw)
                .collect::<Vec<_>>(),
        );
        let argc = argv.len() as c_int;
        // SAFETY: `argv` holds `argc` valid NUL-terminated strings that are never freed, and
        // `INITIALISED` makes this the only `rte_eal_init` call in the process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = rte_errno();
            return Err(EalError::Init {
                args: full[1..].join(" "),
                errno,
                message: strerror(errno),
            });
        }
        // SAFETY: the EAL is initialised; these only read its configuration.
        let (tsc_hz, main_lcore) =
            unsafe { (dpdk_sys::rte_get_tsc_hz(), dpdk_sys::rte_get_main_lcore()) };
        let mut workers = Vec::new();
        // SAFETY: as above; `rte_get_next_lcore(-1, skip_main = 1, wrap = 0)` walks the
        // enabled worker lcores and returns RTE_MAX_LCORE at the end.
        let mut lcore = unsafe { dpdk_sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while lcore < dpdk_sys::RTE_MAX_LCORE {
            workers.push(lcore);
            // SAFETY: as above.
            lcore = unsafe { dpdk_sys::rte_get_next_lcore(lcore, 1, 0) };
        }
        // SAFETY: returns a pointer to a static NUL-terminated string owned by the EAL.
        let runtime_dir = unsafe { CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
        let runtime_dir = PathBuf::from(runtime_dir.to_string_lossy().into_owned());
        Ok(Eal {
            shared: Arc::new(EalShared {
                file_prefix,
                prefix_generated,
                runtime_dir,
                tsc_hz,
                main_lcore,
                workers,
            }),
            cleaned: false,
            _main_thread_only: PhantomData,
        })
    }

    /// The `--file-prefix` in use (generated or given).
    pub fn file_prefix(&self) -> &str {
        &self.shared.file_prefix
    }

    /// The EAL runtime directory, e.g. `/var/run/dpdk/<prefix>`; the telemetry socket
    /// `dpdk_telemetry.v2` lives there.
    pub fn runtime_dir(&self) -> &Path {
        &self.shared.runtime_dir
    }

    /// Time-stamp counter frequency in Hz.
    pub fn tsc_hz(&self) -> u64 {
        self.shared.tsc_hz
    }

    /// The main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        self.shared.main_lcore
    }

    /// The worker lcores, in increasing order (empty when only the main lcore is enabled).
    pub fn worker_lcores(&self) -> &[u32] {
        &self.shared.workers
    }

    /// NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: plain lookup in the EAL's lcore table; out-of-range ids return 0.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Whether the EAL runs on hugepages (false under `--no-huge`).
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: reads the EAL configuration.
        unsafe { dpdk_sys::rte_eal_has_hugepages() != 0 }
    }

    /// The lcore id of the calling thread, `None` for threads the EAL did not create.
    pub fn current_lcore() -> Option<u32> {
        // SAFETY: reads a thread-local set by the EAL.
        let id = unsafe { dpdk_sys::aegis_lcore_id() };
        (id != LCORE_ID_ANY).then_some(id)
    }

    /// DPDK's version string, e.g. `DPDK 22.11.11`.
    pub fn version() -> String {
        // SAFETY: returns a pointer to a static NUL-terminated string.
        unsafe { CStr::from_ptr(dpdk_sys::rte_version()) }
            .to_string_lossy()
            .into_owned()
    }

    /// Runs `f` on worker lcore `lcore`. Returns at once; collect the outcome with
    /// [`Eal::wait`] or [`Eal::wait_all`]. A panic in `f` is caught on the lcore and
    /// reported by the wait as [`EalError::WorkerPanicked`] (with `panic = "abort"` the
    /// process aborts instead).
    pub fn launch<F>(&self, lcore: u32, f: F) -> Result<(), EalError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.check_main()?;
        self.check_worker(lcore)?;
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: `run_job` matches `lcore_function_t` and takes back ownership of `arg`,
        // which stays valid until then; we are on the main lcore and `lcore` is a worker.
        let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(run_job), arg, lcore) };
        if ret != 0 {
            // SAFETY: the launch failed, so `run_job` will never see `arg`: we still own it.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(EalError::Busy { lcore });
        }
        Ok(())
    }

    /// Waits for the closure launched on `lcore` to finish (returns at once if none runs).
    pub fn wait(&self, lcore: u32) -> Result<(), EalError> {
        self.check_main()?;
        self.check_worker(lcore)?;
        // SAFETY: called from the main lcore for a worker lcore.
        match unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) } {
            LCORE_PANICKED => Err(EalError::WorkerPanicked { lcore }),
            _ => Ok(()),
        }
    }

    /// Waits for every worker lcore; reports the first panicked one after all have finished.
    pub fn wait_all(&self) -> Result<(), EalError> {
        self.check_main()?;
        let mut result = Ok(());
        for &lcore in &self.shared.workers {
            let r = self.wait(lcore);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// How many mempool, port and queue handles made under this EAL are alive; cleanup
    /// needs 0.
    pub fn live_objects(&self) -> usize {
        Arc::strong_count(&self.shared) - 1
    }

    /// Waits for the workers and releases the EAL's resources (`rte_eal_cleanup`), and
    /// removes the runtime directory when the file prefix was generated here. Fails with
    /// [`EalError::InUse`] while mempools, ports or queues exist (cleanup is then left to the
    /// process exit). The EAL cannot be initialised again afterwards.
    pub fn cleanup(mut self) -> Result<(), EalError> {
        self.try_cleanup()
    }

    /// The shared state, for objects that must keep the EAL alive.
    pub(crate) fn shared(&self) -> &Arc<EalShared> {
        &self.shared
    }

    fn check_main(&self) -> Result<(), EalError> {
        let current = Eal::current_lcore();
        if current != Some(self.shared.main_lcore) {
            return Err(EalError::NotMainLcore { current });
        }
        Ok(())
    }

    fn check_worker(&self, lcore: u32) -> Result<(), EalError> {
        if !self.shared.workers.contains(&lcore) {
            return Err(EalError::NotAWorker {
                lcore,
                workers: self.shared.workers.clone(),
            });
        }
        Ok(())
    }
}

impl Eal {
    fn try_cleanup(&mut self) -> Result<(), EalError> {
        if self.cleaned {
            return Ok(());
        }
        if Eal::current_lcore() == Some(self.shared.main_lcore) {
            // SAFETY: on the main lcore; waits for every worker to return.
            unsafe { dpdk_sys::rte_eal_mp_wait_lcore() };
        }
        let holders = self.live_objects();
        if holders > 0 {
            return Err(EalError::InUse { holders });
        }
        self.cleaned = true;
        // SAFETY: no mempool, port or queue made through this crate is left (the reference
        // count above), no worker runs (waited above, and only this thread launches them),
        // and `cleaned` makes this the only call.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        if ret < 0 {
            return Err(EalError::Cleanup {
                message: strerror(-ret),
            });
        }
        if self.shared.prefix_generated {
            // Best effort: the directory only held this process's runtime files.
            let _ = std::fs::remove_dir_all(&self.shared.runtime_dir);
        }
        Ok(())
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // An error means objects are still alive: cleanup is left to the process exit.
        let _ = self.try_cleanup();
    }
}

/// `rte_errno` of the calling thread.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local.
    unsafe { dpdk_sys::aegis_errno() }
}

/// `rte_strerror(errnum)` (also covers plain errno values).
pub(crate) fn strerror(errnum: i32) -> String {
    // SAFETY: `rte_strerror` returns a pointer to a NUL-terminated string (static, or in a
    // thread-local buffer that stays valid until the next call on this thread).
    unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errnum)) }
        .to_string_lossy()
        .into_owned()
}

/// The value of `--file-prefix` in `args` (`--file-prefix X` or `--file-prefix=X`).
fn find_file_prefix(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--file-prefix" {
            return it.next().cloned();
        }
        if let Some(v) = arg.strip_prefix("--file-prefix=") {
            return Some(v.to_owned());
        }
    }
    None
}

/// The `lcore_function_t` every launch runs: takes back the boxed closure and calls it.
unsafe extern "C" fn run_job(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Job>` leaked by `Eal::launch` for this launch only.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => LCORE_PANICKED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn finds_file_prefix_in_both_spellings() {
        assert_eq!(
            find_file_prefix(&strings(&["--no-huge", "--file-prefix", "x"])),
            Some("x".to_owned())
        );
        assert_eq!(
            find_file_prefix(&strings(&["--file-prefix=y", "-m", "64"])),
            Some("y".to_owned())
        );
        assert_eq!(find_file_prefix(&strings(&["--no-huge", "-m", "64"])), None);
    }
}
