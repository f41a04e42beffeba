//! Forward-pass throughput on the real model (custom harness: plain summary lines).
//!
//! Figures: single-stream decode (128 tokens after an 8-token prompt), prefill of 128- and
//! 512-token prompts, and aggregate decode of 16 sequences stepped together. Threads from
//! `ROTOR_THREADS` (default 2); model from `ROTOR_TEST_MODEL` or the default cache path. Each
//! figure is the median of `ROTOR_BENCH_RUNS` (default 3) runs. The load average is printed
//! because other processes on the cores distort every number.
//!
//! Run: `cargo bench -p rotor-model --bench forward`.

use std::time::Instant;

use rotor_model::{GgufFile, KvDtype, KvStorage, LlamaModel, LoadOptions, SeqChunk};

const BLOCK: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

fn prompt(len: usize, seed: usize) -> Vec<u32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 40_000 + 100) as u32)
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Seconds to prefill `len` tokens in one step (logits of the last only).
fn prefill(model: &LlamaModel, len: usize) -> f64 {
    let mut kv = KvStorage::new(model.config(), len.div_ceil(BLOCK), BLOCK, KvDtype::F16);
    let table: Vec<u32> = (0..kv.num_blocks() as u32).collect();
    let tokens = prompt(len, 1);
    let mut logits = Vec::new();
    let t = Instant::now();
    let chunk = SeqChunk {
        tokens: &tokens,
        start_pos: 0,
        block_table: &table,
        want_logits: true,
    };
    model
        .forward(&[chunk], &mut kv, &mut logits)
        .expect("prefill");
    t.elapsed().as_secs_f64()
}

/// Seconds for `steps` greedy decode steps of `n_seqs` sequences after an 8-token prompt each.
fn decode(model: &LlamaModel, n_seqs: usize, steps: usize) -> f64 {
    let vocab = model.config().vocab_size;
    let per_seq = (8 + steps + 1).div_ceil(BLOCK);
    let mut kv = KvStorage::new(model.config(), per_seq * n_seqs, BLOCK, KvDtype::F16);
    let tables: Vec<Vec<u32>> = (0..n_seqs)
        .map(|s| (0..per_seq).map(|k| (k * n_seqs + s) as u32).collect())
        .collect();
    let prompts: Vec<Vec<u32>> = (0..n_seqs).map(|s| prompt(8, s)).collect();
    let mut logits = Vec::new();
    let chunks: Vec<SeqChunk<'_>> = (0..n_seqs)
        .map(|s| SeqChunk {
            tokens: &prompts[s],
            start_pos: 0,
            block_table: &tables[s],
            want_logits: true,
        })
        .collect();
    model
        .forward(&chunks, &mut kv, &mut logits)
        .expect("prompt");
    let mut next: Vec<[u32; 1]> = (0..n_seqs)
        .map(|s| [argmax(&logits[s * vocab..(s + 1) * vocab])])
        .collect();
    let t = Instant::now();
    for step in 0..steps {
        let chunks: Vec<SeqChunk<'_>> = (0..n_seqs)
            .map(|s| SeqChunk {
                tokens: &next[s],
                start_pos: 8 + step,
                block_table: &tables[s],
                want_logits: true,
            })
            .collect();
        model
            .forward(&chunks, &mut kv, &mut logits)
            .expect("decode");
        for (s, n) in next.iter_mut().enumerate() {
            n[0] = argmax(&logits[s * vocab..(s + 1) * vocab]);
        }
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let path = rotor_testing::model_path();
    let threads = env_usize("ROTOR_THREADS", 2);
    let runs = env_usize("ROTOR_BENCH_RUNS", 3).max(1);
    let gguf = GgufFile::open(&path).expect("open model (set ROTOR_TEST_MODEL)");
    let model = LlamaModel::load(&gguf, LoadOptions { threads }).expect("load model");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "forward bench: {} threads, {runs} runs per figure, loadavg {}",
        model.threads(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    decode(&model, 1, 8); // warm-up: page in the weights
    let steps = 128;
    let t = median((0..runs).map(|_| decode(&model, 1, steps)).collect());
    println!(
        "decode  batch 1  : {:7.1} tok/s ({steps} steps)",
        steps as f64 / t
    );
    for len in [128, 512] {
        let t = median((0..runs).map(|_| prefill(&model, len)).collect());
        println!("prefill {len:4} tokens: {:7.1} tok/s", len as f64 / t);
    }
    let (n, steps) = (16, 32);
    let t = median((0..runs).map(|_| decode(&model, n, steps)).collect());
    println!(
        "decode  batch {n} : {:7.1} tok/s aggregate ({steps} steps)",
        (n * steps) as f64 / t
    );
}
