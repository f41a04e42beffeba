//! Grammar-constraint cost on the default model's 49,152-token vocabulary (SmolLM2-135M):
//! the token mask per generated token (p50 / p99 over a JSON-schema generation, printed, and
//! its mean as a criterion bench), and compiling the schema.
//!
//! `cargo bench -p rotor-engine --bench constraint`. The model is found via `ROTOR_TEST_MODEL`,
//! else the default cache path (only its tokenizer is read).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rotor_engine::ConstraintVocab;
use rotor_model::GgufFile;
use rotor_protocol::Constraint;
use rotor_text::Tokenizer;

#[path = "../tests/real_model/vocab.rs"]
mod vocab;

/// A document matching `schema()` in the engine's JSON layout (", " and ": " separators).
const DOC: &str = r#"{"name": "Ada Lovelace", "age": 36, "email": "ada@example.org", "languages": ["English", "French", "Italian"], "address": {"street": "12 St James's Square", "city": "London", "country": "GB"}, "active": true, "score": 97.5, "role": "engineer"}"#;

fn schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "email": {"type": "string", "format": "email"},
            "languages": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string"},
                    "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
                },
                "required": ["street", "city", "country"]
            },
            "active": {"type": "boolean"},
            "score": {"type": "number", "minimum": 0, "maximum": 100},
            "role": {"enum": ["engineer", "manager", "designer"]}
        },
        "required": ["name", "age", "email", "languages", "address", "active", "score", "role"]
    })
}

fn setup() -> (ConstraintVocab, Vec<u32>) {
    let gguf = GgufFile::open(&rotor_testing::model_path()).expect("the model parses");
    let spec = rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec");
    let tokenizer = Arc::new(Tokenizer::from_spec(&spec).expect("tokenizer"));
    let tokens = tokenizer.encode(DOC, false).expect("encode");
    let started = Instant::now();
    let vocab =
        ConstraintVocab::new(vocab::vocab_source(tokenizer), spec.tokens.len()).expect("vocab");
    eprintln!(
        "vocabulary of {} tokens built in {:.1} ms",
        spec.tokens.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    (vocab, tokens)
}

fn constraint() -> Constraint {
    Constraint::JsonSchema {
        schema: schema(),
        strict: true,
    }
}

/// One generation of `tokens` under the schema: the time of each token's mask.
fn mask_times(vocab: &ConstraintVocab, tokens: &[u32]) -> Vec<Duration> {
    let mut c = vocab.compile(&constraint(), &[]).expect("compiles");
    let mut times = Vec::with_capacity(tokens.len());
    for &t in tokens {
        times.push(c.compute_mask());
        let mut logits = vec![0.0f32; vocab.vocab_size()];
        c.apply_mask(&mut logits).expect("mask");
        assert!(logits[t as usize] == 0.0, "token {t} allowed");
        c.accept(t).expect("accepted");
    }
    times
}

fn bench_constraint(c: &mut Criterion) {
    let (vocab, tokens) = setup();
    let mut all: Vec<Duration> = Vec::new();
    for _ in 0..20 {
        all.extend(mask_times(&vocab, &tokens));
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    eprintln!(
        "mask per token over {} masks ({} tokens × 20 generations): p50 {:.1} µs, p90 {:.1} µs, \
         p99 {:.1} µs, max {:.1} µs",
        all.len(),
        tokens.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    let mut group = c.benchmark_group("constraint");
    group.bench_function("mask_per_token_json_schema", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                for t in mask_times(&vocab, &tokens) {
                    if done == iters {
                        break;
                    }
                    total += t;
                    done += 1;
                }
            }
            total
        })
    });
    group.bench_function("compile_json_schema", |b| {
        b.iter(|| vocab.compile(&constraint(), &[]).expect("compiles"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench_constraint
}
criterion_main!(benches);
