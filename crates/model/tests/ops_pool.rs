//! Thread pool: every task runs exactly once, borrowing works, nesting and concurrent submitters
//! do not deadlock, panics reach the caller, and dropping the pool ends its threads.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rotor_model::pool::{PoolConfig, ThreadPool};

#[test]
fn every_task_runs_exactly_once_over_many_small_jobs() {
    for threads in [1, 2, 3, 4] {
        let pool = ThreadPool::new(threads);
        assert_eq!(pool.threads(), threads);
        let counts: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
        let jobs = 5_000;
        for j in 0..jobs {
            let n = 1 + j % 64;
            pool.run(n, |i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        // Task i ran once in every job with n > i: jobs cycle n = 1..=64.
        for (i, c) in counts.iter().enumerate() {
            let expected = (0..jobs).filter(|j| 1 + j % 64 > i).count();
            assert_eq!(
                c.load(Ordering::Relaxed),
                expected,
                "threads {threads}, task {i}"
            );
        }
    }
}

#[test]
fn tasks_borrow_and_write_disjoint_parts_of_the_callers_buffer() {
    let pool = ThreadPool::new(3);
    let input: Vec<u64> = (0..1000).collect();
    let out: Vec<AtomicUsize> = (0..10).map(|_| AtomicUsize::new(0)).collect();
    pool.run(10, |i| {
        let s: u64 = input[i * 100..(i + 1) * 100].iter().sum();
        out[i].store(s as usize, Ordering::Relaxed);
    });
    for (i, o) in out.iter().enumerate() {
        let expected: u64 = (i as u64 * 100..(i as u64 + 1) * 100).sum();
        assert_eq!(o.load(Ordering::Relaxed) as u64, expected);
    }
}

#[test]
fn nested_run_executes_inline_without_deadlock() {
    let pool = ThreadPool::new(2);
    let total = AtomicUsize::new(0);
    pool.run(8, |i| {
        pool.run(5, |j| {
            total.fetch_add(i * 10 + j, Ordering::Relaxed);
        });
    });
    let expected: usize = (0..8).flat_map(|i| (0..5).map(move |j| i * 10 + j)).sum();
    assert_eq!(total.load(Ordering::Relaxed), expected);
}

#[test]
fn panic_in_a_task_reaches_the_caller_after_all_other_tasks_ran() {
    let pool = ThreadPool::new(2);
    let ran = AtomicUsize::new(0);
    let result = catch_unwind(AssertUnwindSafe(|| {
        pool.run(16, |i| {
            ran.fetch_add(1, Ordering::Relaxed);
            if i == 5 {
                panic!("task five failed");
            }
        })
    }));
    let payload = result.expect_err("the panic must propagate");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"task five failed"));
    assert_eq!(ran.load(Ordering::Relaxed), 16);
    // The pool still works afterwards.
    let after = AtomicUsize::new(0);
    pool.run(16, |_| {
        after.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(after.load(Ordering::Relaxed), 16);
}

#[test]
fn concurrent_submitters_are_serialised_and_both_complete() {
    let pool = Arc::new(ThreadPool::new(2));
    let handles: Vec<_> = (0..3)
        .map(|k| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let sum = AtomicUsize::new(0);
                for _ in 0..2_000 {
                    pool.run(4, |i| {
                        sum.fetch_add(i + k, Ordering::Relaxed);
                    });
                }
                sum.load(Ordering::Relaxed)
            })
        })
        .collect();
    for (k, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().expect("submitter thread"), 2_000 * (6 + 4 * k));
    }
}

#[test]
fn zero_spin_blocks_immediately_and_still_completes() {
    let pool = ThreadPool::with_config(PoolConfig {
        threads: 2,
        spin: Duration::ZERO,
    });
    let sum = AtomicUsize::new(0);
    for _ in 0..2_000 {
        pool.run(3, |i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
    }
    assert_eq!(sum.load(Ordering::Relaxed), 2_000 * 3);
}

struct LiveGuard(Arc<AtomicUsize>);
impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
thread_local! {
    static GUARD: RefCell<Option<LiveGuard>> = const { RefCell::new(None) };
}

#[test]
fn dropping_the_pool_joins_its_worker_threads() {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = ThreadPool::new(3);
    let caller = std::thread::current().id();
    // Three tasks that wait for each other: each of the three threads must take exactly one.
    let barrier = Barrier::new(3);
    pool.run(3, |_| {
        barrier.wait();
        if std::thread::current().id() != caller {
            live.fetch_add(1, Ordering::SeqCst);
            GUARD.with(|g| *g.borrow_mut() = Some(LiveGuard(Arc::clone(&live))));
        }
    });
    assert_eq!(live.load(Ordering::SeqCst), 2, "both workers took a task");
    drop(pool);
    // Thread-local destructors ran: the worker threads have exited.
    assert_eq!(live.load(Ordering::SeqCst), 0);
}
