//! Attention over the paged KV cache: the AVX2 tile (`Best`) against the portable tile in the
//! same run, on SmolLM2-135M's geometry (9 query heads over 3 KV heads of 64), f32 and f16 KV,
//! blocks of 16 in a scrambled order. Cases: one decode token after 255 cached positions (a
//! 16-stream serving step attends like this 16 times per layer), a 128-token prefill chunk, and
//! a whole 16-stream decode step's attention over 30 layers with the KV far out of cache.
//!
//! Run: `cargo bench -p rotor-model --bench attention`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::ops::attention::{attention_chunk_with, AttnChunk, TileKernel};
use rotor_model::{KvDtype, KvStorage, LlamaConfig};

const BLOCK: usize = 16;

fn config() -> LlamaConfig {
    LlamaConfig {
        arch: "llama".into(),
        n_layers: 1,
        n_heads: 9,
        n_kv_heads: 3,
        head_dim: 64,
        embedding_dim: 576,
        ffn_dim: 1536,
        vocab_size: 100,
        context_length: 2048,
        rope_base: 10_000.0,
        rope_dim: 64,
        rms_eps: 1e-5,
        tied_output: true,
        features: Default::default(),
    }
}

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn bench_case(c: &mut Criterion, dtype: KvDtype, start_pos: usize, n_new: usize) {
    let cfg = config();
    let geo = cfg.attn_geometry();
    let mut rng = StdRng::seed_from_u64(7);
    let total = start_pos + n_new;
    let blocks = total.div_ceil(BLOCK);
    // Scrambled block order, as a long-running pool hands them out.
    let table: Vec<u32> = (0..blocks as u32)
        .map(|b| (b * 7) % blocks as u32)
        .collect();
    let mut kv = KvStorage::new(&cfg, blocks, BLOCK, dtype);
    let kvd = cfg.n_kv_heads * cfg.head_dim;
    for p in 0..total {
        let (k, v) = (random(&mut rng, kvd), random(&mut rng, kvd));
        kv.write(0, table[p / BLOCK] as usize, p % BLOCK, &k, &v);
    }
    let q = random(&mut rng, n_new * geo.q_dim());
    let chunk = AttnChunk {
        q: &q,
        start_pos,
        block_table: &table,
    };
    let mut out = vec![0.0f32; q.len()];
    let pairs: usize = (0..n_new).map(|t| start_pos + t + 1).sum();
    let mut group = c.benchmark_group(format!("attention_{dtype:?}_start{start_pos}_new{n_new}"));
    group.sample_size(30);
    group.throughput(Throughput::Elements(pairs as u64));
    for (name, kernel) in [
        ("avx2", TileKernel::Best),
        ("portable", TileKernel::Portable),
    ] {
        group.bench_with_input(BenchmarkId::new(name, n_new), &n_new, |b, _| {
            b.iter(|| attention_chunk_with(kernel, &geo, &kv, 0, black_box(&chunk), &mut out))
        });
    }
    group.finish();
}

/// The attention of one 16-stream decode step: 16 sequences with 255 cached positions each, one
/// new token each, over 30 layers, every sequence's blocks interleaved with the others' in one
/// pool (as a serving engine's are). The KV (≈ 190 MB in f32) is far larger than any cache, so
/// this measures attention as serving sees it: bound by fetching rows from memory.
fn bench_step(c: &mut Criterion, dtype: KvDtype) {
    const SEQS: usize = 16;
    const LAYERS: usize = 30;
    let mut cfg = config();
    cfg.n_layers = LAYERS;
    let geo = cfg.attn_geometry();
    let mut rng = StdRng::seed_from_u64(9);
    let total = 256;
    let per_seq = total / BLOCK;
    let mut kv = KvStorage::new(&cfg, SEQS * per_seq, BLOCK, dtype);
    let tables: Vec<Vec<u32>> = (0..SEQS)
        .map(|s| (0..per_seq).map(|b| (b * SEQS + s) as u32).collect())
        .collect();
    let kvd = cfg.n_kv_heads * cfg.head_dim;
    let (k, v) = (random(&mut rng, kvd), random(&mut rng, kvd));
    for layer in 0..LAYERS {
        for table in &tables {
            for p in 0..total {
                kv.write(layer, table[p / BLOCK] as usize, p % BLOCK, &k, &v);
            }
        }
    }
    let q = random(&mut rng, geo.q_dim());
    let mut out = vec![0.0f32; q.len()];
    let mut group = c.benchmark_group(format!("attention_{dtype:?}_step_16x256_30_layers"));
    group.sample_size(10);
    group.throughput(Throughput::Elements((SEQS * total * LAYERS) as u64));
    for (name, kernel) in [
        ("avx2", TileKernel::Best),
        ("portable", TileKernel::Portable),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for layer in 0..LAYERS {
                    for table in &tables {
                        let chunk = AttnChunk {
                            q: &q,
                            start_pos: total - 1,
                            block_table: table,
                        };
                        attention_chunk_with(kernel, &geo, &kv, layer, black_box(&chunk), &mut out);
                    }
                }
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    for dtype in [KvDtype::F32, KvDtype::F16] {
        bench_case(c, dtype, 255, 1);
        bench_case(c, dtype, 0, 128);
        bench_step(c, dtype);
    }
}

criterion_group!(attention, benches);
criterion_main!(attention);
