//! A persistent fork-join thread pool for data-parallel kernels.
//!
//! `ThreadPool::run(n_tasks, f)` calls `f(i)` once for every `i < n_tasks`, spread over the pool's
//! workers and the calling thread, and returns when all calls have finished. `f` may borrow from the
//! caller's stack: `run` does not return (not even by unwinding) while any worker can still touch it.
//!
//! Waiting is bounded spinning followed by blocking. On a machine where other processes share the
//! cores, a spinning barrier burns the time slice the thread it waits for needs (llama.cpp's OpenMP
//! barriers fall ~100x when two engines share two cores); here a waiter spins for at most
//! [`PoolConfig::spin`] and then sleeps on a condition variable, giving the core away.
//!
//! Tasks are claimed one at a time from an atomic counter, so uneven tasks balance themselves.
//! Nesting: `run` called from inside a task (or while this thread already drives a job) executes
//! the inner job serially on the calling thread rather than deadlocking. Concurrent `run` calls from
//! different threads are serialised. A panic in a task is caught, the remaining tasks still run, and
//! the first panic is resumed on the caller once every worker has left the job.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Validated pool settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Threads doing work, counting the caller of `run` (so `threads - 1` are spawned). At least 1.
    pub threads: usize,
    /// How long an idle worker or a waiting caller spins before it blocks.
    pub spin: Duration,
}

impl PoolConfig {
    /// `threads` workers (0 means the number of available cores) with the default spin of 50 µs.
    pub fn new(threads: usize) -> PoolConfig {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        PoolConfig {
            threads,
            spin: Duration::from_micros(50),
        }
    }
}

type TaskFn<'a> = dyn Fn(usize) + Sync + 'a;

/// One published fork-join job; lives on the stack of the `run` call that owns it.
struct Job<'a> {
    epoch: u64,
    f: &'a TaskFn<'a>,
    n_tasks: usize,
    next: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job<'_> {
    /// Claims and runs tasks until none are left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n_tasks {
                return;
            }
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                let mut slot = lock(&self.panic);
                if slot.is_none() {
                    *slot = Some(payload);
                }
            }
        }
    }
}

struct Shared {
    /// The open job, or null. Workers may only join while it is non-null.
    current: AtomicPtr<Job<'static>>,
    /// Epoch of the most recently published job (workers join each epoch at most once).
    epoch: AtomicU64,
    /// Workers currently inside a job.
    active: AtomicUsize,
    shutdown: AtomicBool,
    /// Sleep bookkeeping: workers waiting for a job and a caller waiting for `active == 0`.
    sleepers: AtomicUsize,
    caller_sleeping: AtomicBool,
    lock: Mutex<()>,
    work_cv: Condvar,
    idle_cv: Condvar,
    spin: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic (we only store payloads or nothing).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins on `ready` for up to `spin`; true if it became ready.
fn spin_until(spin: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if spin.is_zero() {
        return ready();
    }
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= spin {
            return ready();
        }
    }
}

thread_local! {
    /// Set while this thread is a pool worker or is driving a job: nested `run` calls go serial.
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

/// A fixed set of worker threads for fork-join parallel loops. See the module docs.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises jobs submitted from different threads.
    submit: Mutex<()>,
    threads: usize,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl ThreadPool {
    /// A pool with `threads` workers including the caller (0 = available cores).
    pub fn new(threads: usize) -> ThreadPool {
        ThreadPool::with_config(PoolConfig::new(threads))
    }

    pub fn with_config(cfg: PoolConfig) -> ThreadPool {
        let threads = cfg.threads.max(1);
        let shared = Arc::new(Shared {
            current: AtomicPtr::new(std::ptr::null_mut()),
            epoch: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            caller_sleeping: AtomicBool::new(false),
            lock: Mutex::new(()),
            work_cv: Condvar::new(),
            idle_cv: Condvar::new(),
            spin: cfg.spin,
        });
        let workers = (1..threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("rotor-pool-{i}"))
                    .spawn(move || worker_loop(&shared))
                    .expect("invariant: the OS can spawn a pool thread")
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            submit: Mutex::new(()),
            threads,
        }
    }

    /// Threads that work on a job, counting the caller.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(i)` for every `i in 0..n_tasks` in parallel and waits for all of them.
    /// Panics (after all tasks have finished) if any task panicked.
    pub fn run<F: Fn(usize) + Sync>(&self, n_tasks: usize, f: F) {
        if n_tasks == 0 {
            return;
        }
        let nested = IN_POOL.with(|c| c.get());
        if nested || self.threads == 1 || n_tasks == 1 {
            (0..n_tasks).for_each(&f);
            return;
        }
        let _submit = lock(&self.submit);
        IN_POOL.with(|c| c.set(true));
        let _reset = InPoolReset;
        let shared = &*self.shared;
        let f_dyn: &TaskFn<'_> = &f;
        let job = Job {
            epoch: shared.epoch.load(Ordering::Relaxed) + 1,
            f: f_dyn,
            n_tasks,
            next: AtomicUsize::new(0),
            panic: Mutex::new(None),
        };
        // SAFETY: the pointer is withdrawn (set to null) and every worker that joined has left
        // (`active == 0`) before this function returns or unwinds past `job`; workers only
        // dereference it between joining (incrementing `active`) and leaving.
        let ptr = &job as *const Job<'_> as *mut Job<'static>;
        shared.current.store(ptr, Ordering::SeqCst);
        shared.epoch.store(job.epoch, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = lock(&shared.lock);
            shared.work_cv.notify_all();
        }
        job.work();
        shared.current.store(std::ptr::null_mut(), Ordering::SeqCst);
        self.wait_idle();
        let payload = lock(&job.panic).take();
        if let Some(payload) = payload {
            panic::resume_unwind(payload);
        }
    }

    /// Waits until no worker is inside the (already withdrawn) job.
    fn wait_idle(&self) {
        let shared = &*self.shared;
        let idle = || shared.active.load(Ordering::SeqCst) == 0;
        if spin_until(shared.spin, idle) {
            return;
        }
        let mut g = lock(&shared.lock);
        shared.caller_sleeping.store(true, Ordering::SeqCst);
        while !idle() {
            g = shared
                .idle_cv
                .wait(g)
                .unwrap_or_else(PoisonError::into_inner);
        }
        shared.caller_sleeping.store(false, Ordering::SeqCst);
    }
}

struct InPoolReset;

impl Drop for InPoolReset {
    fn drop(&mut self) {
        IN_POOL.with(|c| c.set(false));
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = lock(&self.shared.lock);
            self.shared.work_cv.notify_all();
        }
        for w in self.workers.drain(..) {
            // A worker only panics if the pool's own code is broken; nothing to recover then.
            let _ = w.join();
        }
    }
}

fn worker_loop(shared: &Shared) {
    IN_POOL.with(|c| c.set(true));
    let mut last_epoch = 0u64;
    loop {
        let has_work = || {
            shared.shutdown.load(Ordering::SeqCst)
                || shared.epoch.load(Ordering::SeqCst) != last_epoch
        };
        if !spin_until(shared.spin, has_work) {
            let mut g = lock(&shared.lock);
            shared.sleepers.fetch_add(1, Ordering::SeqCst);
            while !has_work() {
                g = shared
                    .work_cv
                    .wait(g)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let seen_epoch = shared.epoch.load(Ordering::SeqCst);
        shared.active.fetch_add(1, Ordering::SeqCst);
        let ptr = shared.current.load(Ordering::SeqCst);
        if ptr.is_null() {
            last_epoch = seen_epoch;
        } else {
            // SAFETY: we registered in `active` before observing a non-null pointer, so the owner
            // of the job waits for us before the job goes out of scope (see `ThreadPool::run`).
            let job = unsafe { &*ptr };
            last_epoch = job.epoch;
            job.work();
        }
        if shared.active.fetch_sub(1, Ordering::SeqCst) == 1
            && shared.caller_sleeping.load(Ordering::SeqCst)
        {
            let _g = lock(&shared.lock);
            shared.idle_cv.notify_all();
        }
    }
}

/// A raw pointer that tasks may share to write disjoint parts of one buffer.
///
/// Whoever creates it promises that concurrent tasks write non-overlapping ranges and that the
/// buffer outlives the job.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(*mut T, usize);

// SAFETY: access discipline (disjoint ranges per task) is the creator's obligation, see above.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(s: &mut [T]) -> SharedMut<T> {
        SharedMut(s.as_mut_ptr(), s.len())
    }

    /// The start of the buffer, after checking that it holds at least `len` elements (for
    /// kernels that address it themselves within that bound).
    pub(crate) fn ptr_covering(&self, len: usize) -> *mut T {
        assert!(
            len <= self.1,
            "invariant: {len} elements within a shared buffer of {}",
            self.1
        );
        self.0
    }

    /// # Safety
    /// No other live reference may overlap `start..start + len` while the result is used.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(
            start <= self.1 && len <= self.1 - start,
            "invariant: shared slice range {start}+{len} within {}",
            self.1
        );
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}
