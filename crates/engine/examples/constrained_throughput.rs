//! Output tokens/s on the real default model with a JSON-schema constraint against without, at
//! 1 and 16 concurrent streams, plus the constrained run without fast-forwarding (what forcing
//! tokens adds). Unconstrained streams generate exactly as many tokens as the constrained ones
//! did (`ignore_eos`), so the figures compare the same work.
//!
//! `cargo run --release -p rotor-engine --example constrained_throughput [-- THREADS]`
//! (default 2 threads). The model comes from `rotor_testing::model_path()`.

use std::sync::Arc;
use std::time::Instant;

use rotor_engine::{
    ConstraintVocab, Engine, EngineConfig, EngineHandle, NativeRunner, VocabSource,
};
use rotor_model::{GgufFile, KvDtype, LlamaModel, LoadOptions};
use rotor_protocol::{Constraint, GenerateRequest, SamplingParams, StopConditions};
use rotor_text::Tokenizer;

#[path = "../tests/real_model/vocab.rs"]
mod vocab;

const PROMPTS: [&str; 4] = [
    "Describe a person as JSON.",
    "Describe a city as JSON.",
    "Describe a book as JSON.",
    "Describe a car as JSON.",
];

fn schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "year": {"type": "integer", "minimum": 1000, "maximum": 2100},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
            "rating": {"type": "number", "minimum": 0, "maximum": 5},
            "available": {"type": "boolean"},
            "kind": {"enum": ["small", "medium", "large"]}
        },
        "required": ["name", "year", "tags", "rating", "available", "kind"]
    })
}

fn chat(tokenizer: &Tokenizer, user: &str) -> Vec<u32> {
    let text = format!(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    );
    tokenizer.encode(&text, true).expect("encode")
}

/// Runs `streams` requests at once; returns (generated tokens per request, seconds).
fn run(
    engine: &EngineHandle,
    tokenizer: &Tokenizer,
    streams: usize,
    constrained: bool,
    lengths: Option<&[usize]>,
) -> (Vec<usize>, f64) {
    let started = Instant::now();
    let rxs: Vec<_> = (0..streams)
        .map(|i| {
            let mut sampling = SamplingParams {
                temperature: 0.7,
                seed: Some(i as u64),
                ..SamplingParams::default()
            };
            if constrained {
                sampling.constraint = Some(Constraint::JsonSchema {
                    schema: schema(),
                    strict: true,
                });
            }
            let stop = match lengths {
                Some(l) => StopConditions {
                    max_tokens: l[i] as u32,
                    ignore_eos: true,
                    ..StopConditions::default()
                },
                None => StopConditions {
                    max_tokens: 200,
                    stop_token_ids: tokenizer.end_of_generation_ids().to_vec(),
                    ..StopConditions::default()
                },
            };
            engine
                .submit(GenerateRequest {
                    task: Default::default(),
                    id: format!("r{i}-{constrained}-{}", started.elapsed().as_nanos()),
                    token_ids: chat(tokenizer, PROMPTS[i % PROMPTS.len()]),
                    sampling,
                    stop,
                })
                .expect("submit")
        })
        .collect();
    let lens = rxs
        .into_iter()
        .map(|mut rx| {
            let mut n = 0;
            while let Some(out) = rx.blocking_recv() {
                n += out.expect("no engine error").token_ids.len();
            }
            n
        })
        .collect();
    (lens, started.elapsed().as_secs_f64())
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(2, |t| t.parse().expect("THREADS is a number"));
    let gguf = GgufFile::open(&rotor_testing::model_path()).expect("model parses");
    let model = Arc::new(LlamaModel::load(&gguf, LoadOptions { threads }).expect("model loads"));
    let spec = rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec");
    let tokenizer = Arc::new(Tokenizer::from_spec(&spec).expect("tokenizer"));
    let vocab_size = model.config().vocab_size;
    let source = vocab::vocab_source(tokenizer.clone());
    let no_ff = VocabSource {
        tokenize: None,
        ..source.clone()
    };
    let cfg = EngineConfig {
        max_num_seqs: 16,
        max_num_batched_tokens: 1024,
        max_prefill_chunk_tokens: 1024,
        num_blocks: 1024,
        ..EngineConfig::default()
    };
    let start = |source: VocabSource| {
        let vocab = Arc::new(ConstraintVocab::new(source, vocab_size).expect("vocab"));
        let runner =
            NativeRunner::new(model.clone(), &cfg, KvDtype::F32).with_constraint_vocab(vocab);
        Engine::start(Box::new(runner), cfg.clone()).expect("engine")
    };
    let engine = start(source);
    let engine_no_ff = start(no_ff);
    // Warm-up (page in the weights, fill the prefix cache with the prompts).
    run(&engine, &tokenizer, 4, true, None);
    run(&engine_no_ff, &tokenizer, 4, true, None);
    println!("threads {threads}");
    // Each configuration runs ROUNDS times, interleaved; the median round is reported (the
    // machine may be shared).
    const ROUNDS: usize = 3;
    for streams in [1, 16] {
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            let b = engine.stats().constraints;
            let (lens, secs) = run(&engine, &tokenizer, streams, true, None);
            let a = engine.stats().constraints;
            let total: usize = lens.iter().sum();
            let (free_lens, free_secs) = run(&engine, &tokenizer, streams, false, Some(&lens));
            let free_total: usize = free_lens.iter().sum();
            let nb = engine_no_ff.stats().constraints;
            let (nf_lens, nf_secs) = run(&engine_no_ff, &tokenizer, streams, true, None);
            let na = engine_no_ff.stats().constraints;
            let nf_total: usize = nf_lens.iter().sum();
            let c_tps = total as f64 / secs;
            let u_tps = free_total as f64 / free_secs;
            let nf_tps = nf_total as f64 / nf_secs;
            let line = format!(
                "streams {streams:2}: constrained {c_tps:7.1} tok/s ({total} tokens in {secs:.2} s, \
                 {} forced, {} masks, mean mask {:.1} us, waited for masks {:.2} ms) | \
                 unconstrained {u_tps:7.1} tok/s ({free_total} tokens) | ratio {:.3} | \
                 constrained without fast-forward {nf_tps:7.1} tok/s ({nf_total} tokens, \
                 mean mask {:.1} us, ratio {:.3})",
                a.forced_tokens - b.forced_tokens,
                a.masks - b.masks,
                (a.mask_nanos - b.mask_nanos) as f64 / (a.masks - b.masks).max(1) as f64 / 1e3,
                (a.mask_wait_nanos - b.mask_wait_nanos) as f64 / 1e6,
                c_tps / u_tps,
                (na.mask_nanos - nb.mask_nanos) as f64 / (na.masks - nb.masks).max(1) as f64 / 1e3,
                nf_tps / u_tps,
            );
            eprintln!("  round: {line}");
            rounds.push((c_tps / u_tps, line));
        }
        rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!("median {}", rounds[ROUNDS / 2].1);
    }
}
