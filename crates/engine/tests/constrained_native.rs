//! Grammar-constrained sampling (llguidance) on the real default model (SmolLM2-135M-Instruct
//! Q4_1): JSON-schema generations parse and validate for a varied set of real-world-like schemas
//! (tests/fixtures/schemas.json), regex / choice / Lark / GBNF constraints hold, constraints the
//! engine cannot enforce are `InvalidRequest` naming the problem, constrained and unconstrained
//! sequences share batches, matchers survive preemption, a migrated request resumes mid-grammar
//! (`constraint_replay_tokens`), and the constraint counters move. Also logprobs and logit_bias.
//!
//! The model is found via `ROTOR_TEST_MODEL`, else the default cache path; the tests FAIL if it
//! is missing.

mod real_model;
#[path = "real_model/vocab.rs"]
mod vocab;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use real_model::{model, CHAT_PROMPT};
use rotor_engine::{ConstraintVocab, Engine, EngineConfig, EngineHandle, NativeRunner};
use rotor_model::{GgufFile, KvDtype, LlamaModel};
use rotor_protocol::{
    Constraint, EngineOutput, ErrorKind, FinishReason, GenerateRequest, SamplingParams,
    StopConditions, WireError,
};
use rotor_text::Tokenizer;
use serde_json::Value;

/// Upper bound on any one test's generation loop.
const DEADLINE: Duration = Duration::from_secs(600);

fn tokenizer() -> Arc<Tokenizer> {
    static TOKENIZER: OnceLock<Arc<Tokenizer>> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            let gguf = GgufFile::open(&rotor_testing::model_path()).expect("the test model parses");
            let spec = rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec");
            Arc::new(Tokenizer::from_spec(&spec).expect("tokenizer"))
        })
        .clone()
}

fn vocab(model: &LlamaModel) -> Arc<ConstraintVocab> {
    static VOCAB: OnceLock<Arc<ConstraintVocab>> = OnceLock::new();
    VOCAB
        .get_or_init(|| {
            Arc::new(
                ConstraintVocab::new(vocab::vocab_source(tokenizer()), model.config().vocab_size)
                    .expect("vocabulary"),
            )
        })
        .clone()
}

fn start(cfg: EngineConfig) -> EngineHandle {
    let model = model();
    let runner =
        NativeRunner::new(model.clone(), &cfg, KvDtype::F32).with_constraint_vocab(vocab(&model));
    Engine::start(Box::new(runner), cfg).expect("engine starts")
}

fn default_engine() -> EngineHandle {
    start(EngineConfig {
        max_num_seqs: 32,
        max_num_batched_tokens: 1024,
        max_prefill_chunk_tokens: 512,
        block_size_tokens: 16,
        num_blocks: 2048,
        enable_prefix_caching: true,
    })
}

/// SmolLM2's chat template around `user`, tokenized.
fn chat(user: &str) -> Vec<u32> {
    let text = format!(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    );
    tokenizer().encode(&text, true).expect("encode")
}

fn request(
    id: &str,
    token_ids: Vec<u32>,
    constraint: Option<Constraint>,
    max_tokens: u32,
) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids,
        sampling: SamplingParams {
            constraint,
            ..SamplingParams::greedy()
        },
        stop: StopConditions {
            max_tokens,
            stop_token_ids: tokenizer().end_of_generation_ids().to_vec(),
            ..StopConditions::default()
        },
    }
}

/// Every output of a stream (blocking), or its error.
fn collect(mut rx: rotor_engine::OutputStream) -> Result<Vec<EngineOutput>, WireError> {
    let mut outs = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while let Some(item) = rx.blocking_recv() {
        assert!(Instant::now() < deadline, "generation took too long");
        outs.push(item?);
    }
    Ok(outs)
}

fn tokens_of(outs: &[EngineOutput]) -> Vec<u32> {
    outs.iter().flat_map(|o| o.token_ids.to_vec()).collect()
}

fn finish_of(outs: &[EngineOutput]) -> Option<FinishReason> {
    outs.last().and_then(|o| o.finish_reason)
}

/// The generated text, without a final end-of-generation token.
fn text_of(tokens: &[u32]) -> String {
    tokenizer().decode(tokens, true).expect("decode")
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("fixture schema is a valid JSON Schema")
}

fn fixtures() -> Vec<(String, String, Value)> {
    let raw: Value =
        serde_json::from_str(include_str!("fixtures/schemas.json")).expect("fixture parses");
    raw.as_array()
        .expect("a list")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["prompt"].as_str().unwrap().to_owned(),
                f["schema"].clone(),
            )
        })
        .collect()
}

#[test]
fn json_schema_generations_parse_and_validate() {
    let engine = default_engine();
    let schemas = fixtures();
    assert!(schemas.len() >= 50, "at least 50 schemas");
    let before = engine.stats().constraints;
    let streams: Vec<_> = schemas
        .iter()
        .map(|(name, prompt, schema)| {
            let c = Constraint::JsonSchema {
                schema: schema.clone(),
                strict: true,
            };
            let rx = engine
                .submit(request(name, chat(prompt), Some(c), 256))
                .unwrap_or_else(|e| panic!("schema {name} is refused: {e}"));
            (name, schema, rx)
        })
        .collect();
    let mut failures = Vec::new();
    let mut total_tokens = 0;
    for (name, schema, rx) in streams {
        let outs = collect(rx).unwrap_or_else(|e| panic!("schema {name}: engine error {e}"));
        let tokens = tokens_of(&outs);
        total_tokens += tokens.len();
        let text = text_of(&tokens);
        let finish = finish_of(&outs);
        match serde_json::from_str::<Value>(&text) {
            Ok(value) if finish == Some(FinishReason::Stop) => {
                let v = validator(schema);
                if !v.is_valid(&value) {
                    let errors: Vec<String> =
                        v.iter_errors(&value).map(|e| e.to_string()).collect();
                    failures.push(format!("{name}: {text} does not validate: {errors:?}"));
                }
            }
            Ok(_) => failures.push(format!("{name}: finished {finish:?}: {text}")),
            Err(e) => failures.push(format!("{name}: {finish:?}, not JSON ({e}): {text}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let after = engine.stats().constraints;
    assert_eq!(after.requests - before.requests, schemas.len() as u64);
    assert_eq!(after.rejections, before.rejections);
    assert!(after.masks - before.masks > schemas.len() as u64);
    assert!(after.mask_nanos > before.mask_nanos);
    assert!(
        after.forced_tokens > before.forced_tokens,
        "JSON keys are forced and fast-forwarded"
    );
    assert_eq!(after.failures, before.failures);
    eprintln!(
        "{} schemas, {total_tokens} tokens, {} masks, mean mask {:.1} µs (max {:.1} µs), \
         {} forced tokens, waited for masks after the forward {:.1} ms in all",
        schemas.len(),
        after.masks - before.masks,
        (after.mask_nanos - before.mask_nanos) as f64 / (after.masks - before.masks) as f64 / 1e3,
        after.mask_nanos_max as f64 / 1e3,
        after.forced_tokens - before.forced_tokens,
        (after.mask_wait_nanos - before.mask_wait_nanos) as f64 / 1e6,
    );
}

#[test]
fn regex_choice_lark_and_gbnf_constraints_hold() {
    let engine = default_engine();
    type Check = Box<dyn Fn(&str) -> bool>;
    let cases: Vec<(&str, &str, Constraint, Check)> = vec![
        (
            "regex",
            "Give me a product code.",
            Constraint::Regex {
                pattern: "[A-Z]{3}-[0-9]{4}".into(),
            },
            Box::new(|t: &str| {
                t.len() == 8
                    && t[..3].chars().all(|c| c.is_ascii_uppercase())
                    && &t[3..4] == "-"
                    && t[4..].chars().all(|c| c.is_ascii_digit())
            }),
        ),
        (
            "json_object",
            "Give a person's name and age as JSON.",
            Constraint::JsonObject,
            Box::new(|t: &str| serde_json::from_str::<Value>(t).is_ok_and(|v| v.is_object())),
        ),
        (
            "choice",
            "Is water wet? Answer yes or no.",
            Constraint::Choice {
                choices: vec!["yes".into(), "no".into(), "it depends".into()],
            },
            Box::new(|t: &str| ["yes", "no", "it depends"].contains(&t)),
        ),
        (
            "lark",
            "Count to three.",
            Constraint::Lark {
                grammar: "start: num (\", \" num){0,4}\nnum: /[0-9]/".into(),
            },
            Box::new(|t: &str| {
                t.split(", ")
                    .all(|n| n.len() == 1 && n.chars().all(|c| c.is_ascii_digit()))
            }),
        ),
        (
            "gbnf",
            "What is the capital of France?",
            Constraint::Gbnf {
                grammar: "root ::= \"The answer is \" city \".\"\ncity ::= [A-Z] [a-z]{1,10}\n"
                    .into(),
            },
            Box::new(|t: &str| {
                t.strip_prefix("The answer is ")
                    .and_then(|r| r.strip_suffix('.'))
                    .is_some_and(|c| {
                        c.chars().next().is_some_and(|f| f.is_ascii_uppercase())
                            && c.chars().skip(1).all(|ch| ch.is_ascii_lowercase())
                    })
            }),
        ),
    ];
    let streams: Vec<_> = cases
        .into_iter()
        .map(|(name, prompt, c, check)| {
            let rx = engine
                .submit(request(name, chat(prompt), Some(c), 96))
                .unwrap_or_else(|e| panic!("{name} refused: {e}"));
            (name, check, rx)
        })
        .collect();
    for (name, check, rx) in streams {
        let outs = collect(rx).unwrap();
        let text = text_of(&tokens_of(&outs));
        assert!(check(&text), "{name}: {text:?} breaks the constraint");
        assert_eq!(
            finish_of(&outs),
            Some(FinishReason::Stop),
            "{name}: {text:?}"
        );
    }
}

#[test]
fn unenforceable_constraints_are_invalid_requests_naming_the_problem() {
    let engine = default_engine();
    let prompt = chat("Hi");
    let cases = [
        (
            Constraint::JsonSchema {
                schema: serde_json::json!({"type": "array", "items": {"type": "integer"}, "uniqueItems": true}),
                strict: false,
            },
            "uniqueItems",
        ),
        (
            Constraint::JsonSchema {
                schema: serde_json::json!({"type": "object", "x-guidance": {"lenient": true}}),
                strict: false,
            },
            "x-guidance",
        ),
        (
            Constraint::Lark {
                grammar: "start: missing_rule".into(),
            },
            "missing_rule",
        ),
        (
            Constraint::Regex {
                pattern: "[a-".into(),
            },
            "regex",
        ),
        (Constraint::Choice { choices: vec![] }, "empty"),
        (
            Constraint::Gbnf {
                grammar: "root ::= undefined-rule".into(),
            },
            "undefined-rule",
        ),
    ];
    let before = engine.stats().constraints;
    for (i, (c, needle)) in cases.iter().enumerate() {
        let err = engine
            .submit(request(
                &format!("bad-{i}"),
                prompt.clone(),
                Some(c.clone()),
                8,
            ))
            .expect_err("refused");
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{c:?}");
        assert!(
            err.message.contains(needle),
            "{:?} does not name {needle:?}",
            err.message
        );
    }
    let after = engine.stats().constraints;
    assert_eq!(after.rejections - before.rejections, cases.len() as u64);
    assert_eq!(after.requests, before.requests);
    // The engine is not stalled: an ordinary request still completes.
    let outs = collect(engine.submit(request("after", prompt, None, 4)).unwrap()).unwrap();
    assert_eq!(tokens_of(&outs).len(), 4);
}

#[test]
fn constrained_and_unconstrained_sequences_share_batches() {
    let engine = default_engine();
    let alone = tokens_of(
        &collect(
            engine
                .submit(request("alone", CHAT_PROMPT.to_vec(), None, 24))
                .unwrap(),
        )
        .unwrap(),
    );
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"color": {"enum": ["blue", "red", "green"]}, "sure": {"type": "boolean"}},
        "required": ["color", "sure"]
    });
    let mut streams = Vec::new();
    for i in 0..4 {
        let c = Constraint::JsonSchema {
            schema: schema.clone(),
            strict: true,
        };
        streams.push((
            true,
            engine
                .submit(request(&format!("c{i}"), CHAT_PROMPT.to_vec(), Some(c), 48))
                .unwrap(),
        ));
        streams.push((
            false,
            engine
                .submit(request(&format!("u{i}"), CHAT_PROMPT.to_vec(), None, 24))
                .unwrap(),
        ));
    }
    let v = validator(&schema);
    for (constrained, rx) in streams {
        let tokens = tokens_of(&collect(rx).unwrap());
        if constrained {
            let value: Value = serde_json::from_str(&text_of(&tokens)).expect("JSON");
            assert!(v.is_valid(&value), "{value}");
        } else {
            assert_eq!(
                tokens, alone,
                "batching with constrained sequences changes nothing"
            );
        }
    }
}

#[test]
fn matchers_survive_preemption() {
    // A pool too small for the batch: sequences are preempted and recomputed mid-grammar.
    let engine = start(EngineConfig {
        max_num_seqs: 8,
        max_num_batched_tokens: 512,
        max_prefill_chunk_tokens: 512,
        block_size_tokens: 16,
        num_blocks: 16,
        enable_prefix_caching: true,
    });
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
            "score": {"type": "integer", "minimum": 0, "maximum": 100}
        },
        "required": ["name", "tags", "score"]
    });
    let v = validator(&schema);
    let prompts = [
        "Describe a cat.",
        "Describe a city.",
        "Describe a song.",
        "Describe a car.",
        "Describe a tree.",
        "Describe a game.",
    ];
    let streams: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let c = Constraint::JsonSchema {
                schema: schema.clone(),
                strict: true,
            };
            engine
                .submit(request(&format!("p{i}"), chat(p), Some(c), 96))
                .unwrap()
        })
        .collect();
    for rx in streams {
        let outs = collect(rx).unwrap();
        let text = text_of(&tokens_of(&outs));
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(v.is_valid(&value), "{text}");
    }
    assert!(
        engine.stats().preemptions > 0,
        "the pool was small enough to preempt"
    );
}

#[test]
fn migrated_request_resumes_mid_grammar() {
    let engine = default_engine();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer", "minimum": 0, "maximum": 50000000},
            "capital": {"type": "boolean"}
        },
        "required": ["city", "population", "capital"]
    });
    let c = Constraint::JsonSchema {
        schema: schema.clone(),
        strict: true,
    };
    let prompt = chat("Describe Paris as JSON.");
    let outs = collect(
        engine
            .submit(request("whole", prompt.clone(), Some(c.clone()), 96))
            .unwrap(),
    )
    .unwrap();
    let whole = tokens_of(&outs);
    assert_eq!(finish_of(&outs), Some(FinishReason::Stop));
    // Cut where a sampled (not forced) token starts an output, halfway or later: what a
    // worker that died there would have streamed.
    let mut starts = Vec::new();
    let mut at = 0;
    for o in &outs {
        starts.push(at);
        at += o.token_ids.len();
    }
    let cut = *starts
        .iter()
        .find(|&&s| s >= whole.len() / 2 && s < whole.len())
        .expect("a cut point");
    assert!(cut > 0);
    let mut migrated = request("moved", prompt.clone(), Some(c.clone()), 96 - cut as u32);
    migrated.token_ids.extend_from_slice(&whole[..cut]);
    migrated.sampling.constraint_replay_tokens = cut as u32;
    let rest = tokens_of(&collect(engine.submit(migrated).unwrap()).unwrap());
    assert_eq!(rest, whole[cut..], "the resumed request continues exactly");
    let value: Value = serde_json::from_str(&text_of(&whole)).unwrap();
    assert!(validator(&schema).is_valid(&value));

    // Replayed tokens the grammar refuses: refused up front.
    let mut bad = request("bad-replay", prompt.clone(), Some(c), 16);
    let junk = tokenizer().encode("hello", false).unwrap();
    bad.sampling.constraint_replay_tokens = junk.len() as u32;
    bad.token_ids.extend_from_slice(&junk);
    let err = engine.submit(bad).expect_err("refused");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(err.message.contains("replay"), "{}", err.message);
}

#[test]
fn greedy_logprobs_rank_the_chosen_token_first() {
    let engine = default_engine();
    let mut req = request("lp", CHAT_PROMPT.to_vec(), None, 12);
    req.sampling.logprobs = Some(5);
    let outs = collect(engine.submit(req).unwrap()).unwrap();
    let mut seen = 0;
    for o in &outs {
        let lps = o.logprobs.as_ref().expect("logprobs on every output");
        assert_eq!(lps.len(), o.token_ids.len());
        for (lp, &t) in lps.iter().zip(o.token_ids.as_slice()) {
            seen += 1;
            assert_eq!(lp.token_id, t);
            assert_eq!(lp.top.len(), 5);
            assert_eq!(lp.top[0].0, t, "greedy picks the most likely token");
            assert_eq!(lp.top[0].1, lp.logprob);
            assert!(lp.logprob <= 0.0);
            assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
            let mass: f64 = lp.top.iter().map(|&(_, l)| (l as f64).exp()).sum();
            assert!(mass <= 1.0 + 1e-5, "{mass}");
        }
    }
    assert_eq!(seen, 12);

    // Constrained + logprobs: forbidden tokens never appear among the alternatives.
    let mut req = request(
        "lp-choice",
        chat("Pick one."),
        Some(Constraint::Choice {
            choices: vec!["alpha".into(), "beta".into()],
        }),
        8,
    );
    req.sampling.logprobs = Some(20);
    let outs = collect(engine.submit(req).unwrap()).unwrap();
    let text = text_of(&tokens_of(&outs));
    assert!(text == "alpha" || text == "beta", "{text}");
    let first = &outs[0].logprobs.as_ref().unwrap()[0];
    for &(id, _) in &first.top {
        let piece = text_of(&[id]);
        assert!(
            "alpha".starts_with(&piece) || "beta".starts_with(&piece),
            "{piece:?} is not allowed by the choice"
        );
    }
}

#[test]
fn logit_bias_steers_and_bans_tokens() {
    let engine = default_engine();
    let base = tokens_of(
        &collect(
            engine
                .submit(request("base", CHAT_PROMPT.to_vec(), None, 6))
                .unwrap(),
        )
        .unwrap(),
    );
    // Banning the greedy first token changes the first token.
    let mut banned = request("ban", CHAT_PROMPT.to_vec(), None, 6);
    banned.sampling.logit_bias = vec![(base[0], -100.0)];
    let out = tokens_of(&collect(engine.submit(banned).unwrap()).unwrap());
    assert_ne!(out[0], base[0]);
    // A +100 bias (clamped from more) makes a token certain.
    let target = tokenizer().encode(" banana", false).unwrap()[0];
    let mut forced = request("force", CHAT_PROMPT.to_vec(), None, 3);
    forced.sampling.logit_bias = vec![(target, 1e6)];
    let out = tokens_of(&collect(engine.submit(forced).unwrap()).unwrap());
    assert_eq!(out, vec![target; 3]);
    // Out-of-vocabulary ids are refused.
    let mut bad = request("bad-bias", CHAT_PROMPT.to_vec(), None, 3);
    bad.sampling.logit_bias = vec![(u32::MAX, 1.0)];
    assert_eq!(
        engine.submit(bad).unwrap_err().kind,
        ErrorKind::InvalidRequest
    );
}

#[test]
fn an_engine_without_a_vocabulary_refuses_constraints() {
    let cfg = EngineConfig::default();
    let runner = rotor_engine::ScriptedRunner::for_config(&cfg, 1000, 4096);
    let engine = Engine::start(Box::new(runner), cfg).expect("engine starts");
    let mut req = request("c", vec![1, 2, 3], Some(Constraint::JsonObject), 4);
    req.stop.stop_token_ids = vec![];
    let err = engine.submit(req).expect_err("refused");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(
        err.message.contains("cannot enforce constraints"),
        "{}",
        err.message
    );
    assert_eq!(engine.stats().constraints.rejections, 1);
    // Replay without a constraint, too many logprobs: refused by validation.
    let mut req = request("r", vec![1, 2, 3], None, 4);
    req.sampling.constraint_replay_tokens = 2;
    assert_eq!(
        engine.submit(req).unwrap_err().kind,
        ErrorKind::InvalidRequest
    );
    let mut req = request("l", vec![1, 2, 3], None, 4);
    req.sampling.logprobs = Some(21);
    assert_eq!(
        engine.submit(req).unwrap_err().kind,
        ErrorKind::InvalidRequest
    );
}
