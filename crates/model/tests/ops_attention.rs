//! Paged KV storage and grouped-query attention: the tiled kernel against the naive one, with a
//! scrambled block table, a cached prefix, both KV dtypes and hand-checkable cases.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::ops::attention::{
    attention_chunk, attention_chunk_with, attention_naive, AttnChunk, AttnGeometry, TileKernel,
};
use rotor_model::{KvDtype, KvStorage, LlamaConfig};

fn config(n_layers: usize, n_heads: usize, n_kv_heads: usize, head_dim: usize) -> LlamaConfig {
    LlamaConfig {
        arch: "llama".into(),
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        embedding_dim: n_heads * head_dim,
        ffn_dim: 4 * n_heads * head_dim,
        vocab_size: 100,
        context_length: 256,
        rope_base: 10_000.0,
        rope_dim: head_dim,
        rms_eps: 1e-5,
        tied_output: true,
        features: Default::default(),
    }
}

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[test]
fn bytes_per_block_counts_all_layers_k_and_v() {
    // SmolLM2-135M: 30 layers, 3 KV heads of 64; f16 → 23,040 bytes per token.
    let cfg = config(30, 9, 3, 64);
    assert_eq!(KvStorage::bytes_per_block(&cfg, 1, KvDtype::F16), 23_040);
    assert_eq!(KvStorage::bytes_per_block(&cfg, 16, KvDtype::F16), 368_640);
    assert_eq!(KvStorage::bytes_per_block(&cfg, 16, KvDtype::F32), 737_280);
    let kv = KvStorage::new(&cfg, 10, 16, KvDtype::F16);
    assert_eq!(
        (kv.num_blocks(), kv.block_size_tokens(), kv.dtype()),
        (10, 16, KvDtype::F16)
    );
}

#[test]
fn copy_block_copies_every_layer_and_leaves_other_blocks() {
    let cfg = config(2, 4, 2, 8);
    for dtype in [KvDtype::F32, KvDtype::F16] {
        let mut kv = KvStorage::new(&cfg, 4, 2, dtype);
        let row = |x: f32| (0..16).map(|i| x + i as f32).collect::<Vec<f32>>();
        for layer in 0..2 {
            for slot in 0..2 {
                let base = (10 * layer + slot) as f32;
                kv.write(layer, 1, slot, &row(base), &row(base + 100.0));
            }
        }
        kv.copy_block(1, 3);
        let mut buf = [0.0f32; 8];
        for layer in 0..2 {
            for slot in 0..2 {
                for h in 0..2 {
                    let base = (10 * layer + slot) as f32 + 8.0 * h as f32;
                    let k = kv.key(layer, 3, slot, h, &mut buf).to_vec();
                    assert_eq!(k, (0..8).map(|i| base + i as f32).collect::<Vec<_>>());
                    let v = kv.value(layer, 3, slot, h, &mut buf).to_vec();
                    assert_eq!(
                        v,
                        (0..8).map(|i| base + 100.0 + i as f32).collect::<Vec<_>>()
                    );
                    assert_eq!(kv.key(layer, 2, slot, h, &mut buf), &[0.0; 8]);
                }
            }
        }
    }
}

#[test]
fn single_position_attention_returns_that_positions_value() {
    let cfg = config(1, 4, 2, 8);
    let geo = cfg.attn_geometry();
    let mut kv = KvStorage::new(&cfg, 2, 4, KvDtype::F32);
    let k: Vec<f32> = (0..16).map(|i| i as f32 * 0.1).collect();
    let v: Vec<f32> = (0..16).map(|i| 1.0 + i as f32).collect();
    kv.write(0, 1, 0, &k, &v);
    let q = vec![0.25f32; 32];
    let chunk = AttnChunk {
        q: &q,
        start_pos: 0,
        block_table: &[1],
    };
    let mut out = vec![0.0f32; 32];
    attention_chunk(&geo, &kv, 0, &chunk, &mut out);
    // Query heads 0,1 use KV head 0 (v[0..8]); heads 2,3 use KV head 1 (v[8..16]).
    for h in 0..4 {
        let kvh = h / 2;
        assert_eq!(
            &out[h * 8..(h + 1) * 8],
            &v[kvh * 8..(kvh + 1) * 8],
            "head {h}"
        );
    }
}

fn fast_vs_naive(dtype: KvDtype, n_heads: usize, n_kv: usize, start_pos: usize, n_new: usize) {
    for kernel in [TileKernel::Best, TileKernel::Portable] {
        fast_vs_naive_hd(kernel, 16, dtype, n_heads, n_kv, start_pos, n_new);
    }
}

/// Both tile kernels against the naive reference: `head_dim` 16 and 64 (SmolLM2's) take the
/// AVX2 tile where the CPU has it, 12 the portable one in any case.
fn fast_vs_naive_hd(
    kernel: TileKernel,
    hd: usize,
    dtype: KvDtype,
    n_heads: usize,
    n_kv: usize,
    start_pos: usize,
    n_new: usize,
) {
    let mut rng = StdRng::seed_from_u64(42 + start_pos as u64);
    let bs = 4;
    let cfg = config(2, n_heads, n_kv, hd);
    let geo: AttnGeometry = cfg.attn_geometry();
    let block_table = [7u32, 2, 9, 0, 11, 5, 3, 1, 13, 15, 12, 4, 14, 6, 8, 10];
    let mut kv = KvStorage::new(&cfg, 16, bs, dtype);
    let total = start_pos + n_new;
    for p in 0..total {
        let (k, v) = (random(&mut rng, n_kv * hd), random(&mut rng, n_kv * hd));
        kv.write(1, block_table[p / bs] as usize, p % bs, &k, &v);
    }
    // Positions after the chunk (same block) hold NaN: the kernel must not read them.
    let nan = vec![f32::NAN; n_kv * hd];
    for p in total..(total.div_ceil(bs) * bs) {
        kv.write(1, block_table[p / bs] as usize, p % bs, &nan, &nan);
    }
    let q = random(&mut rng, n_new * geo.q_dim());
    let chunk = AttnChunk {
        q: &q,
        start_pos,
        block_table: &block_table,
    };
    let mut fast = vec![0.0f32; q.len()];
    attention_chunk_with(kernel, &geo, &kv, 1, &chunk, &mut fast);
    let qd = geo.q_dim();
    for t in 0..n_new {
        let mut naive = vec![0.0f32; qd];
        let q_row = &q[t * qd..(t + 1) * qd];
        attention_naive(&geo, &kv, 1, &block_table, q_row, start_pos + t, &mut naive);
        for i in 0..qd {
            let (a, b) = (fast[t * qd + i], naive[i]);
            assert!(
                (a - b).abs() < 1e-5,
                "{kernel:?} hd {hd} {dtype:?} heads {n_heads}/{n_kv} start {start_pos} token {t} \
                 elem {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn tiled_attention_matches_naive_over_scrambled_blocks() {
    for dtype in [KvDtype::F32, KvDtype::F16] {
        fast_vs_naive(dtype, 6, 2, 0, 1); // first token
        fast_vs_naive(dtype, 6, 2, 0, 23); // prefill, several tiles
        fast_vs_naive(dtype, 6, 2, 13, 1); // decode after a cached prefix
        fast_vs_naive(dtype, 6, 2, 5, 9); // chunk after a prefix, crossing blocks
        fast_vs_naive(dtype, 4, 4, 3, 18); // plain multi-head
        fast_vs_naive(dtype, 4, 1, 2, 7); // multi-query
    }
}

#[test]
fn both_tile_kernels_match_naive_at_smollm2_head_size_and_an_odd_one() {
    for kernel in [TileKernel::Best, TileKernel::Portable] {
        for dtype in [KvDtype::F32, KvDtype::F16] {
            // SmolLM2-135M's geometry: 9 query heads over 3 KV heads of 64.
            fast_vs_naive_hd(kernel, 64, dtype, 9, 3, 0, 1);
            fast_vs_naive_hd(kernel, 64, dtype, 9, 3, 0, 19); // prefill, odd length
            fast_vs_naive_hd(kernel, 64, dtype, 9, 3, 37, 1); // decode after 37 cached
            fast_vs_naive_hd(kernel, 64, dtype, 9, 3, 21, 30); // chunk after a prefix
                                                               // Up to the table's end.
            fast_vs_naive_hd(kernel, 64, dtype, 9, 3, 62, 2);
            // A head size the fast tile does not take (portable path on every CPU).
            fast_vs_naive_hd(kernel, 12, dtype, 4, 2, 9, 6);
        }
    }
}

/// Both tiles on the same inputs: outputs must be bit-identical (the fast tile repeats the
/// portable one's arithmetic in the same order), so greedy decoding never depends on the CPU.
fn tiles_bitwise(hd: usize, dtype: KvDtype, n_heads: usize, n_kv: usize, start: usize, n: usize) {
    tiles_bitwise_windowed(hd, dtype, (n_heads, n_kv), start, n, None);
}

fn tiles_bitwise_windowed(
    hd: usize,
    dtype: KvDtype,
    (n_heads, n_kv): (usize, usize),
    start: usize,
    n: usize,
    window: Option<usize>,
) {
    let mut rng = StdRng::seed_from_u64(1000 + start as u64 + hd as u64);
    let bs = 16;
    let cfg = config(1, n_heads, n_kv, hd);
    let geo = AttnGeometry {
        window,
        ..cfg.attn_geometry()
    };
    let table: Vec<u32> = (0..16u32).map(|b| (b * 5) % 16).collect();
    let mut kv = KvStorage::new(&cfg, 16, bs, dtype);
    for p in 0..start + n {
        let (k, v) = (random(&mut rng, n_kv * hd), random(&mut rng, n_kv * hd));
        kv.write(0, table[p / bs] as usize, p % bs, &k, &v);
    }
    let q: Vec<f32> = random(&mut rng, n * geo.q_dim())
        .iter()
        .map(|x| x * 4.0)
        .collect();
    let chunk = AttnChunk {
        q: &q,
        start_pos: start,
        block_table: &table,
    };
    let mut best = vec![0.0f32; q.len()];
    let mut portable = vec![1.0f32; q.len()];
    attention_chunk_with(TileKernel::Best, &geo, &kv, 0, &chunk, &mut best);
    attention_chunk_with(TileKernel::Portable, &geo, &kv, 0, &chunk, &mut portable);
    for (i, (a, b)) in best.iter().zip(&portable).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "hd {hd} {dtype:?} heads {n_heads}/{n_kv} start {start} n {n} elem {i}: {a} vs {b}"
        );
    }
}

#[test]
fn fast_and_portable_tiles_agree_bit_for_bit() {
    for dtype in [KvDtype::F32, KvDtype::F16] {
        tiles_bitwise(64, dtype, 9, 3, 0, 1);
        tiles_bitwise(64, dtype, 9, 3, 0, 37);
        tiles_bitwise(64, dtype, 9, 3, 201, 1);
        tiles_bitwise(64, dtype, 9, 3, 130, 18);
        tiles_bitwise(16, dtype, 6, 2, 77, 5);
        tiles_bitwise(32, dtype, 4, 1, 12, 9);
        tiles_bitwise(128, dtype, 2, 2, 40, 3);
        tiles_bitwise(256, dtype, 4, 1, 20, 7); // Gemma 3 270M's head size
        tiles_bitwise_windowed(64, dtype, (9, 3), 130, 18, Some(5));
        tiles_bitwise_windowed(32, dtype, (4, 1), 40, 1, Some(512));
        tiles_bitwise_windowed(256, dtype, (4, 1), 33, 20, Some(16));
    }
}

/// Sliding-window attention on both tiles against the naive reference, with every position
/// before the first token's window holding NaN: no kernel may read them. `scale` is not
/// `1 / sqrt(head_dim)`, as with Gemma 3 27B's query scale.
fn windowed_vs_naive(kernel: TileKernel, hd: usize, window: usize, start_pos: usize, n_new: usize) {
    let mut rng = StdRng::seed_from_u64(7 + start_pos as u64 + window as u64);
    let (bs, n_heads, n_kv) = (4, 4, 2);
    let cfg = config(1, n_heads, n_kv, hd);
    let geo = AttnGeometry {
        scale: 0.3,
        window: Some(window),
        ..cfg.attn_geometry()
    };
    let table: Vec<u32> = (0..32u32).map(|b| (b * 7) % 32).collect();
    let mut kv = KvStorage::new(&cfg, 32, bs, KvDtype::F32);
    let first_read = geo.first_visible(start_pos);
    let nan = vec![f32::NAN; n_kv * hd];
    for p in 0..start_pos + n_new {
        let (k, v) = (random(&mut rng, n_kv * hd), random(&mut rng, n_kv * hd));
        let (k, v) = if p < first_read {
            (&nan, &nan)
        } else {
            (&k, &v)
        };
        kv.write(0, table[p / bs] as usize, p % bs, k, v);
    }
    let q = random(&mut rng, n_new * geo.q_dim());
    let chunk = AttnChunk {
        q: &q,
        start_pos,
        block_table: &table,
    };
    let mut fast = vec![0.0f32; q.len()];
    attention_chunk_with(kernel, &geo, &kv, 0, &chunk, &mut fast);
    let qd = geo.q_dim();
    for t in 0..n_new {
        let mut naive = vec![0.0f32; qd];
        let q_row = &q[t * qd..(t + 1) * qd];
        attention_naive(&geo, &kv, 0, &table, q_row, start_pos + t, &mut naive);
        let diff = fast[t * qd..(t + 1) * qd]
            .iter()
            .zip(&naive)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-5,
            "{kernel:?} hd {hd} window {window} start {start_pos} token {t}: {diff}"
        );
    }
}

#[test]
fn sliding_window_attention_matches_naive_and_skips_older_positions() {
    for kernel in [TileKernel::Best, TileKernel::Portable] {
        for hd in [16, 12, 256] {
            windowed_vs_naive(kernel, hd, 4, 0, 11); // prefill longer than the window
            windowed_vs_naive(kernel, hd, 4, 29, 1); // decode, older blocks unreadable
            windowed_vs_naive(kernel, hd, 5, 17, 23); // chunk, window across block edges
            windowed_vs_naive(kernel, hd, 1, 6, 3); // each token sees only itself
            windowed_vs_naive(kernel, hd, 64, 10, 5); // window wider than the sequence
        }
    }
}
