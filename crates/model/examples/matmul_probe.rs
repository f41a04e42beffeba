//! Runs one matmul shape repeatedly on the calling thread and prints GMAC per CPU-second (the
//! thread's own CPU time from /proc/thread-self/schedstat: steadier than wall time on a shared
//! machine, and there are no hardware counters in this VM).
//! Usage: matmul_probe DTYPE ROWS COLS BATCH ITERS   (DTYPE as GgmlType's Debug name, e.g. Q8_0)

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::matmul::{Activations, Kernel, WeightMatrix};
use rotor_model::quant::GgmlType;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dtype = [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ]
    .into_iter()
    .find(|t| format!("{t:?}") == args[0])
    .expect("dtype");
    let n = |i: usize| args[i].parse::<usize>().expect("number");
    let (rows, cols, batch, iters) = (n(1), n(2), n(3), n(4));
    let mut rng = StdRng::seed_from_u64(1);
    let mut random =
        |k: usize| -> Vec<f32> { (0..k).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let w = WeightMatrix::from_f32("w", dtype, rows, cols, &random(rows * cols)).expect("dtype");
    let x = random(batch * cols);
    let mut acts = Activations::new();
    acts.prepare(&x, batch, cols, dtype);
    let mut out = vec![0.0f32; batch * rows];
    w.matmul_rows_with(Kernel::detect(), &acts, 0..rows, &mut out);
    let (t, cpu) = (std::time::Instant::now(), cpu_ns());
    for _ in 0..iters {
        w.matmul_rows_with(Kernel::detect(), &acts, 0..rows, &mut out);
    }
    let (s, cpu_s) = (t.elapsed().as_secs_f64(), (cpu_ns() - cpu) as f64 / 1e9);
    let macs = (rows * cols * batch * iters) as f64;
    println!(
        "{dtype:?} {rows}x{cols} batch {batch}: {:.2} GMAC per CPU-second ({:.2} per wall second), checksum {}",
        macs / cpu_s / 1e9,
        macs / s / 1e9,
        out.iter().sum::<f32>()
    );
}

/// This thread's time on a CPU, in ns (Linux schedstat): unaffected by waiting for a core.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
