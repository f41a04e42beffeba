//! Loading SmolLM2's tokenizer spec and chat template from the real GGUF, once per test binary.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rotor_protocol::TokenizerSpec;
use rotor_text::Tokenizer;

const DEFAULT_MODEL: &str = "/root/.cache/rotor/models/SmolLM2-135M-Instruct.Q4_1.gguf";

pub struct Smollm2 {
    pub spec: TokenizerSpec,
    pub chat_template: String,
    pub tokenizer: Arc<Tokenizer>,
}

pub fn model_path() -> PathBuf {
    let path = std::env::var_os("ROTOR_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_MODEL.into());
    assert!(
        path.is_file(),
        "test model not found at {} (set ROTOR_TEST_MODEL to SmolLM2-135M-Instruct.Q4_1.gguf)",
        path.display()
    );
    path
}

pub fn smollm2() -> &'static Smollm2 {
    static MODEL: OnceLock<Smollm2> = OnceLock::new();
    MODEL.get_or_init(|| {
        let gguf =
            rotor_model::GgufFile::open(&model_path()).expect("the test model is a readable GGUF");
        let spec = rotor_model::card::tokenizer_spec(&gguf)
            .expect("the test model has tokenizer metadata");
        let chat_template =
            rotor_model::card::chat_template(&gguf).expect("SmolLM2 ships a chat template");
        let tokenizer =
            Arc::new(Tokenizer::from_spec(&spec).expect("SmolLM2's tokenizer is supported"));
        Smollm2 {
            spec,
            chat_template,
            tokenizer,
        }
    })
}
