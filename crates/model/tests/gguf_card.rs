//! Tokenizer spec and chat template read from GGUF metadata.

use std::path::PathBuf;

use rotor_model::card::{chat_template, tokenizer_spec};
use rotor_model::gguf::write::GgufBuilder;
use rotor_model::gguf::MetaValue;
use rotor_model::{Error, GgufFile};

fn model_path() -> PathBuf {
    rotor_testing::model_path()
}

#[test]
fn real_model_tokenizer_spec() {
    let f = GgufFile::open(&model_path()).unwrap();
    let spec = tokenizer_spec(&f).unwrap();
    assert_eq!(spec.model, "gpt2");
    assert_eq!(spec.pre.as_deref(), Some("smollm"));
    assert_eq!(spec.tokens.len(), 49152);
    assert_eq!(spec.token_types.len(), 49152);
    assert_eq!(spec.merges.len(), 48900);
    assert_eq!(spec.bos_token_id, Some(1));
    assert_eq!(spec.eos_token_id, Some(2));
    assert_eq!(spec.tokens[1], "<|im_start|>");
    assert_eq!(spec.tokens[2], "<|im_end|>");
    assert!(!spec.add_space_prefix);
    let template = chat_template(&f).expect("SmolLM2 has a chat template");
    assert!(template.contains("<|im_start|>"));
}

fn tiny() -> GgufBuilder {
    let strs =
        |v: &[&str]| MetaValue::Array(v.iter().map(|s| MetaValue::Str(s.to_string())).collect());
    GgufBuilder::new()
        .kv("tokenizer.ggml.model", MetaValue::Str("gpt2".into()))
        .kv("tokenizer.ggml.tokens", strs(&["a", "b", "ab", "<eot>"]))
        .kv("tokenizer.ggml.merges", strs(&["a b"]))
        .kv("tokenizer.ggml.eos_token_id", MetaValue::U32(0))
        .kv("tokenizer.ggml.eot_token_id", MetaValue::U32(3))
}

#[test]
fn defaults_for_optional_keys() {
    let f = GgufFile::from_bytes(tiny().to_bytes()).unwrap();
    let spec = tokenizer_spec(&f).unwrap();
    assert_eq!(spec.pre, None);
    assert_eq!(spec.token_types, vec![1, 1, 1, 1]);
    assert_eq!(spec.merges, vec!["a b".to_string()]);
    assert_eq!(spec.bos_token_id, None);
    assert_eq!(spec.eos_token_id, Some(0));
    assert_eq!(spec.eot_token_ids, vec![3]);
    assert!(!spec.add_bos_token);
    assert!(!spec.add_space_prefix);
    assert_eq!(chat_template(&f), None);
}

#[test]
fn missing_and_mistyped_keys_are_named() {
    let f = GgufFile::from_bytes(GgufBuilder::new().to_bytes()).unwrap();
    let err = tokenizer_spec(&f).unwrap_err();
    assert!(
        matches!(err, Error::MissingKey { ref key } if key == "tokenizer.ggml.model"),
        "{err}"
    );
    let f = GgufFile::from_bytes(
        tiny()
            .kv("tokenizer.ggml.bos_token_id", MetaValue::Str("1".into()))
            .to_bytes(),
    )
    .unwrap();
    let err = tokenizer_spec(&f).unwrap_err();
    assert!(
        matches!(err, Error::WrongType { ref key, .. } if key == "tokenizer.ggml.bos_token_id"),
        "{err}"
    );
    let f = GgufFile::from_bytes(
        tiny()
            .kv(
                "tokenizer.ggml.token_type",
                MetaValue::Array(vec![MetaValue::I32(1)]),
            )
            .to_bytes(),
    )
    .unwrap();
    let err = tokenizer_spec(&f).unwrap_err();
    assert!(
        matches!(err, Error::WrongType { ref key, .. } if key == "tokenizer.ggml.token_type"),
        "{err}"
    );
}
