//! The serving path's constraint vocabulary (`native::constraint_vocab`) on the real default
//! models: built from the GGUF's tokenizer, it compiles a schema, its first mask allows exactly
//! the tokens that start a JSON object, and forced text is fast-forwarded.

use rotor_model::GgufFile;
use rotor_protocol::Constraint;
use rotor_worker::native::constraint_vocab;

#[test]
fn the_default_models_vocabulary_enforces_a_json_schema() {
    let gguf = GgufFile::open(&rotor_testing::model_path()).expect("the test model parses");
    let spec = rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec");
    let vocab = constraint_vocab(&gguf, spec.tokens.len()).expect("vocabulary");
    assert!(vocab.fast_forward());
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"answer": {"type": "boolean"}},
        "required": ["answer"]
    });
    let mut c = vocab
        .compile(
            &Constraint::JsonSchema {
                schema,
                strict: true,
            },
            &[],
        )
        .expect("compiles");
    c.compute_mask();
    let mut logits = vec![0.0f32; vocab.vocab_size()];
    c.apply_mask(&mut logits).expect("mask");
    let allowed: Vec<usize> = (0..logits.len()).filter(|&i| logits[i] == 0.0).collect();
    assert!(!allowed.is_empty());
    eprintln!(
        "allowed first tokens: {:?}",
        allowed.iter().map(|&i| &spec.tokens[i]).collect::<Vec<_>>()
    );
    for &id in &allowed {
        let text = &spec.tokens[id];
        assert!(
            text.starts_with('{'),
            "token {id} {text:?} cannot start the object"
        );
    }
    // Sample the most "natural" allowed start: the shortest allowed token.
    let open = allowed
        .iter()
        .copied()
        .min_by_key(|&id| (spec.tokens[id].len(), id))
        .expect("a token is allowed");
    c.accept(open as u32).expect("accepted");
    let mut forced = Vec::new();
    c.fast_forward(16, &mut forced);
    assert!(!forced.is_empty(), "the key `\"answer\": ` is forced");
    // A bad grammar names its problem.
    let err = vocab
        .compile(
            &Constraint::Lark {
                grammar: "start: nope".into(),
            },
            &[],
        )
        .expect_err("refused");
    assert!(err.contains("nope"), "{err}");
}
