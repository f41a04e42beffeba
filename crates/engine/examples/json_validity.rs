//! JSON validity of the default model on the 51 schemas of `tests/fixtures/schemas.json`, without
//! and with the schema enforced by the engine. Both runs get the same prompt: the fixture's
//! request plus the schema itself and "answer with only the JSON"; greedy, 256 tokens at most.
//! Counts answers that parse as JSON and answers that also validate (the `jsonschema` crate, with
//! formats). The first `{`…last `}` span is also tried for the unconstrained run, since a small
//! model often wraps JSON in prose or a code fence.
//!
//! `cargo run --release -p rotor-engine --example json_validity [-- THREADS]` (default 2).

use std::sync::Arc;

use rotor_engine::{ConstraintVocab, Engine, EngineConfig, NativeRunner};
use rotor_model::{GgufFile, KvDtype, LlamaModel, LoadOptions};
use rotor_protocol::{Constraint, GenerateRequest, SamplingParams, StopConditions};
use rotor_text::Tokenizer;
use serde_json::Value;

#[path = "../tests/real_model/vocab.rs"]
mod vocab;

fn chat(tokenizer: &Tokenizer, user: &str) -> Vec<u32> {
    let text = format!(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    );
    tokenizer.encode(&text, true).expect("encode")
}

/// (parses, validates) for one answer; `lenient` also tries the outermost `{...}` span.
fn judge(text: &str, validator: &jsonschema::Validator, lenient: bool) -> (bool, bool) {
    let mut candidates = vec![text.trim()];
    if lenient {
        if let (Some(a), Some(b)) = (text.find('{'), text.rfind('}')) {
            if a < b {
                candidates.push(&text[a..=b]);
            }
        }
    }
    let mut parsed = false;
    for c in candidates {
        if let Ok(value) = serde_json::from_str::<Value>(c) {
            parsed = true;
            if validator.is_valid(&value) {
                return (true, true);
            }
        }
    }
    (parsed, false)
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(2, |t| t.parse().expect("THREADS is a number"));
    let gguf = GgufFile::open(&rotor_testing::model_path()).expect("model parses");
    let model = Arc::new(LlamaModel::load(&gguf, LoadOptions { threads }).expect("model loads"));
    let spec = rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec");
    let tokenizer = Arc::new(Tokenizer::from_spec(&spec).expect("tokenizer"));
    let vocab = Arc::new(
        ConstraintVocab::new(
            vocab::vocab_source(tokenizer.clone()),
            model.config().vocab_size,
        )
        .expect("vocab"),
    );
    let cfg = EngineConfig {
        max_num_seqs: 16,
        max_num_batched_tokens: 1024,
        max_prefill_chunk_tokens: 1024,
        num_blocks: 2048,
        ..EngineConfig::default()
    };
    let runner = NativeRunner::new(model.clone(), &cfg, KvDtype::F32).with_constraint_vocab(vocab);
    let engine = Engine::start(Box::new(runner), cfg).expect("engine");
    let fixtures: Value = serde_json::from_str(include_str!("../tests/fixtures/schemas.json"))
        .expect("fixtures parse");
    let fixtures = fixtures.as_array().expect("a list");
    for constrained in [false, true] {
        let rxs: Vec<_> = fixtures
            .iter()
            .map(|f| {
                let schema = f["schema"].clone();
                let prompt = format!(
                    "{} Answer with only a JSON object that matches this JSON Schema:\n{}",
                    f["prompt"].as_str().expect("prompt"),
                    schema
                );
                let sampling = SamplingParams {
                    constraint: constrained.then(|| Constraint::JsonSchema {
                        schema: schema.clone(),
                        strict: true,
                    }),
                    ..SamplingParams::greedy()
                };
                let rx = engine
                    .submit(GenerateRequest {
                        task: Default::default(),
                        id: format!("{}-{constrained}", f["name"].as_str().unwrap_or("?")),
                        token_ids: chat(&tokenizer, &prompt),
                        sampling,
                        stop: StopConditions {
                            max_tokens: 256,
                            stop_token_ids: tokenizer.end_of_generation_ids().to_vec(),
                            ..StopConditions::default()
                        },
                    })
                    .expect("submit");
                (f["name"].as_str().unwrap_or("?").to_string(), schema, rx)
            })
            .collect();
        let (mut strict, mut lenient) = ((0, 0), (0, 0));
        let mut cut = Vec::new();
        for (name, schema, mut rx) in rxs {
            let mut ids = Vec::new();
            let mut finish = None;
            while let Some(out) = rx.blocking_recv() {
                let out = out.expect("no engine error");
                ids.extend(out.token_ids.to_vec());
                finish = out.finish_reason.or(finish);
            }
            if finish == Some(rotor_protocol::FinishReason::Length) {
                cut.push(name);
            }
            let text = tokenizer.decode(&ids, true).expect("decode");
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .expect("fixture schema is valid");
            let (p, v) = judge(&text, &validator, false);
            strict.0 += usize::from(p);
            strict.1 += usize::from(v);
            let (p, v) = judge(&text, &validator, true);
            lenient.0 += usize::from(p);
            lenient.1 += usize::from(v);
        }
        let n = fixtures.len();
        println!(
            "{}: whole answer parses {}/{n}, validates {}/{n}; outermost {{...}} parses {}/{n}, validates {}/{n}",
            if constrained { "constrained  " } else { "unconstrained" },
            strict.0,
            strict.1,
            lenient.0,
            lenient.1
        );
        println!("  cut by max_tokens (256): {cut:?}");
    }
}
