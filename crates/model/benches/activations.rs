//! Gemma's GeGLU over one 512-token prefill chunk of its feed-forward rows (2,048 wide):
//! `gelu_tanh_mul` (the vectorised exp, AVX2 where the CPU has it) against the scalar libm
//! `tanhf` formula it replaced, measured in the same run.
//!
//! Run: `cargo bench -p rotor-model --bench activations`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::ops::gelu_tanh_mul;

const ROWS: usize = 512;
const WIDTH: usize = 2048;

/// The previous implementation: one libm `tanhf` per element.
fn gelu_tanh_mul_libm(gate: &mut [f32], up: &[f32]) {
    let (c, a) = (0.797_884_6f32, 0.044_715f32);
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = 0.5 * x * (1.0 + (c * x * (1.0 + a * x * x)).tanh()) * u;
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let gate: Vec<f32> = (0..ROWS * WIDTH)
        .map(|_| rng.random_range(-6.0..6.0))
        .collect();
    let up: Vec<f32> = (0..ROWS * WIDTH)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let mut group = c.benchmark_group("geglu_512x2048");
    group.throughput(Throughput::Elements((ROWS * WIDTH) as u64));
    let mut work = gate.clone();
    group.bench_function("vectorised", |b| {
        b.iter(|| {
            work.copy_from_slice(&gate);
            gelu_tanh_mul(black_box(&mut work), black_box(&up));
        })
    });
    group.bench_function("libm_tanhf", |b| {
        b.iter(|| {
            work.copy_from_slice(&gate);
            gelu_tanh_mul_libm(black_box(&mut work), black_box(&up));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
