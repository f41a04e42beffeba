//! Matmul throughput: fast (detected) vs scalar vs naive kernels on the SmolLM2 shapes.
//!
//! Shapes: 576×1536 (the FFN down-projection's transpose size class) in Q4_1 and Q8_0, and the
//! 49152×576 Q8_0 lm_head, at batch 1 (decode), 16 (batched decode) and, for Q4_1, 128 (a
//! prefill chunk). The K-quants and BF16 run on 576×1536 (the SmolLM2 FFN down-projection, the
//! one SmolLM2 matrix whose rows are whole 256-blocks), beside Q4_1 as the peer. Q5_0 and Q5_1
//! (what llama.cpp's K-quant files use for rows that are not whole 256-blocks) run on 1536×576
//! beside the Q4_1 of the same shape.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::matmul::{naive, Activations, Kernel, WeightMatrix};
use rotor_model::quant::GgmlType;

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn bench_shape(
    c: &mut Criterion,
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    with_naive: bool,
    batches: &[usize],
) {
    let mut rng = StdRng::seed_from_u64(1);
    let w = WeightMatrix::from_f32("w", dtype, rows, cols, &random(&mut rng, rows * cols))
        .expect("supported dtype");
    let mut group = c.benchmark_group(format!("matmul_{dtype:?}_{rows}x{cols}"));
    group.sample_size(20);
    for &batch in batches {
        let x = random(&mut rng, batch * cols);
        let mut acts = Activations::new();
        acts.prepare(&x, batch, cols, dtype);
        let mut out = vec![0.0f32; batch * rows];
        group.throughput(Throughput::Elements((batch * rows * cols) as u64));
        group.bench_with_input(BenchmarkId::new("fast", batch), &batch, |b, _| {
            b.iter(|| w.matmul_rows_with(Kernel::detect(), black_box(&acts), 0..rows, &mut out))
        });
        if batch <= 16 {
            group.bench_with_input(BenchmarkId::new("scalar", batch), &batch, |b, _| {
                b.iter(|| w.matmul_rows_with(Kernel::Scalar, black_box(&acts), 0..rows, &mut out))
            });
        }
        if with_naive && batch <= 16 {
            group.bench_with_input(BenchmarkId::new("naive", batch), &batch, |b, _| {
                b.iter(|| naive::matmul_f32(&w, black_box(&x), batch, 0..rows, &mut out))
            });
        }
        if batch == 1 {
            // Peer: just streaming the weight bytes once (the memory-bandwidth floor).
            group.bench_with_input(BenchmarkId::new("read_bytes", batch), &batch, |b, _| {
                b.iter(|| read_all(black_box(w.data())))
            });
        }
        group.bench_with_input(BenchmarkId::new("prepare", batch), &batch, |b, _| {
            b.iter(|| acts.prepare(black_box(&x), batch, cols, dtype))
        });
    }
    group.finish();
}

/// Sums the bytes as u64 words with independent lanes (vectorized), touching every cache line.
fn read_all(bytes: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    for chunk in bytes.chunks_exact(64) {
        for (k, lane) in lanes.iter_mut().enumerate() {
            let word = u64::from_le_bytes(chunk[k * 8..k * 8 + 8].try_into().expect("8 bytes"));
            *lane = lane.wrapping_add(word);
        }
    }
    lanes.iter().fold(0, |a, &b| a.wrapping_add(b))
}

fn matmul(c: &mut Criterion) {
    // Batch 128: a prefill chunk.
    bench_shape(c, GgmlType::Q4_1, 576, 1536, true, &[1, 16, 128]);
    bench_shape(c, GgmlType::Q4_1, 1536, 576, false, &[1, 16, 128]);
    bench_shape(c, GgmlType::Q5_0, 1536, 576, false, &[1, 16, 128]);
    bench_shape(c, GgmlType::Q5_1, 1536, 576, false, &[1, 16]);
    bench_shape(c, GgmlType::Q8_0, 576, 1536, true, &[1, 16]);
    bench_shape(c, GgmlType::Q8_0, 49152, 576, false, &[1, 16]);
    bench_shape(c, GgmlType::Q4_K, 576, 1536, false, &[1, 16, 128]);
    bench_shape(c, GgmlType::Q5_K, 576, 1536, false, &[1, 16]);
    bench_shape(c, GgmlType::Q6_K, 576, 1536, false, &[1, 16, 128]);
    bench_shape(c, GgmlType::Q3_K, 576, 1536, false, &[1, 16]);
    bench_shape(c, GgmlType::Q2_K, 576, 1536, false, &[1, 16]);
    bench_shape(c, GgmlType::BF16, 576, 1536, false, &[1, 16]);
}

criterion_group!(benches, matmul);
criterion_main!(benches);
