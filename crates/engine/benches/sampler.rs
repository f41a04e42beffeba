//! Sampler cost per token on a real 49,152-logit row of SmolLM2-135M-Instruct: the nucleus
//! shortcut (`Sampler::new`) against the full sort of the vocabulary (`Sampler::full_sort`, the
//! sampler before the shortcut), in the same run.
//!
//! `cargo bench -p rotor-engine --bench sampler`. The model is found via `ROTOR_TEST_MODEL`, else
//! the default cache path.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rotor_engine::{seeded_rng, PenaltyState, Sampler};
use rotor_model::{GgufFile, KvDtype, KvStorage, LlamaModel, LoadOptions, SeqChunk};
use rotor_protocol::SamplingParams;

/// SmolLM2's chat template around "What color is the sky on a clear day?".
const CHAT_PROMPT: [u32; 40] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 2380, 314, 260, 6376, 335, 253, 2437, 1194, 47, 2,
    198, 1, 520, 9531, 198,
];

/// The model's next-token logits after the chat prompt (the first answer token).
fn real_logits() -> Vec<f32> {
    let path = rotor_testing::model_path();
    let gguf = GgufFile::open(&path).expect("the model parses");
    let model = LlamaModel::load(&gguf, LoadOptions { threads: 1 }).expect("the model loads");
    let mut kv = KvStorage::new(model.config(), 4, 16, KvDtype::F32);
    let chunk = SeqChunk {
        tokens: &CHAT_PROMPT,
        start_pos: 0,
        block_table: &[0, 1, 2, 3],
        want_logits: true,
    };
    let mut logits = Vec::new();
    model
        .forward(&[chunk], &mut kv, &mut logits)
        .expect("forward");
    logits
}

fn bench_sampler(c: &mut Criterion) {
    let logits = real_logits();
    let settings = [
        ("t0.2-p0.9", 0.2, 0.9),
        ("t1.0-p0.9", 1.0, 0.9),
        ("t1.0-p1.0", 1.0, 1.0),
    ];
    let mut group = c.benchmark_group("sample_49152");
    for (name, temperature, top_p) in settings {
        let params = SamplingParams {
            temperature,
            top_p,
            ..SamplingParams::default()
        };
        let state = PenaltyState::default();
        for (variant, mut sampler) in [
            ("full_sort", Sampler::full_sort()),
            ("fast", Sampler::new()),
        ] {
            let mut rng = seeded_rng(Some(7));
            let mut row = logits.clone();
            group.bench_function(BenchmarkId::new(variant, name), |b| {
                b.iter(|| {
                    row.copy_from_slice(&logits);
                    sampler.sample(&mut row, &params, &state, &mut rng)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_sampler);
criterion_main!(benches);
