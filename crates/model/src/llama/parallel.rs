//! Matrix products split across the thread pool by output rows.
//!
//! Every product of a step is `out[b][r] (+)= W[r] · x[b]` for all batch rows `b`; a task owns a
//! range of weight rows `r` for the whole batch, so each weight block is read once per step.
//! Several products with the same input (Q/K/V, or gate/up) share one pool job, which saves a
//! fork-join per product.

use std::cell::RefCell;
use std::ops::Range;

use crate::matmul::{Activations, WeightMatrix};
use crate::ops::Activation;
use crate::pool::{SharedMut, ThreadPool};

/// Rows per task are a multiple of this (keeps kernels that handle several rows at once whole).
const ROW_ALIGN: usize = 16;
/// Aim for this many tasks per thread and product, so uneven progress (a descheduled thread)
/// is absorbed by the others claiming more tasks.
const TASKS_PER_THREAD: usize = 4;

thread_local! {
    static TMP: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// One product of a fused job: `out[b * ld + r] (+)= W[r] · x[b]`.
pub(crate) struct MatJob<'a> {
    pub w: &'a WeightMatrix,
    pub x: &'a Activations,
    pub out: SharedMut<f32>,
    pub ld: usize,
    /// Add to `out` (residual connection) instead of overwriting it.
    pub accumulate: bool,
}

fn piece_rows(rows: usize, threads: usize) -> usize {
    let target = rows.div_ceil(threads * TASKS_PER_THREAD);
    target.div_ceil(ROW_ALIGN).max(1) * ROW_ALIGN
}

/// Task `i` of the concatenated row splits of `rows_of` jobs: (job index, row range).
fn locate(i: usize, jobs: &[usize], piece: &[usize]) -> (usize, Range<usize>) {
    let mut i = i;
    for (j, (&rows, &p)) in jobs.iter().zip(piece).enumerate() {
        let n = rows.div_ceil(p);
        if i < n {
            return (j, i * p..((i + 1) * p).min(rows));
        }
        i -= n;
    }
    unreachable!("invariant: task index within the job's task count")
}

/// Runs the products of `jobs` in one pool job (at most 4 products).
///
/// # Safety
/// Each job's `out` must cover `batch * ld` elements, different jobs must not overlap, and nothing
/// else may access them during the call.
pub(crate) unsafe fn run_matmuls(pool: &ThreadPool, jobs: &[MatJob<'_>]) {
    assert!(jobs.len() <= 4, "invariant: at most 4 fused products");
    let mut rows = [0usize; 4];
    let mut piece = [0usize; 4];
    let mut n_tasks = 0;
    for (j, job) in jobs.iter().enumerate() {
        rows[j] = job.w.rows();
        piece[j] = piece_rows(rows[j], pool.threads());
        n_tasks += rows[j].div_ceil(piece[j]);
    }
    let k = jobs.len();
    pool.run(n_tasks, |i| {
        let (j, range) = locate(i, &rows[..k], &piece[..k]);
        let job = &jobs[j];
        // SAFETY: columns `range` of every batch row belong to this task only, and the caller
        // guarantees the jobs' outputs are disjoint and otherwise untouched.
        unsafe {
            job.w
                .matmul_rows_strided(job.x, range, job.out, job.ld, job.accumulate)
        };
    });
}

/// Gated feed-forward input: `out[b][r] = act(gate[r] · xg[b]) * (up[r] · xu[b])`, `out` is
/// `[batch][gate.rows()]`.
pub(crate) fn run_gate_up(
    pool: &ThreadPool,
    act: Activation,
    (gate, xg): (&WeightMatrix, &Activations),
    (up, xu): (&WeightMatrix, &Activations),
    out: &mut [f32],
) {
    let (rows, batch) = (gate.rows(), xg.batch());
    assert_eq!(out.len(), rows * batch, "invariant: gate/up output size");
    let piece = piece_rows(rows, pool.threads());
    let shared = SharedMut::new(out);
    pool.run(rows.div_ceil(piece), |i| {
        let range = i * piece..((i + 1) * piece).min(rows);
        let len = range.len();
        TMP.with(|tmp| {
            let (tg, tu) = &mut *tmp.borrow_mut();
            tg.resize(batch * len, 0.0);
            tu.resize(batch * len, 0.0);
            gate.matmul_rows(xg, range.clone(), &mut tg[..batch * len]);
            up.matmul_rows(xu, range.clone(), &mut tu[..batch * len]);
            act.gated(&mut tg[..batch * len], &tu[..batch * len]);
            for b in 0..batch {
                // SAFETY: columns `range` of every row belong to this task only.
                let o = unsafe { shared.slice(b * rows + range.start, len) };
                o.copy_from_slice(&tg[b * len..(b + 1) * len]);
            }
        });
    });
}

/// Runs `f(row, &mut out_row)` for every row of `out` (row length `width`), in parallel when
/// there are enough rows to pay for a fork-join.
pub(crate) fn for_each_row<F>(pool: &ThreadPool, out: &mut [f32], width: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let n = out.len() / width;
    const SERIAL_ROWS: usize = 8;
    if n <= SERIAL_ROWS {
        for (r, row) in out.chunks_exact_mut(width).enumerate() {
            f(r, row);
        }
        return;
    }
    let per_task = n.div_ceil(pool.threads() * TASKS_PER_THREAD).max(1);
    let shared = SharedMut::new(out);
    pool.run(n.div_ceil(per_task), |i| {
        for r in i * per_task..((i + 1) * per_task).min(n) {
            // SAFETY: each row index is handled by exactly one task.
            f(r, unsafe { shared.slice(r * width, width) });
        }
    });
}
