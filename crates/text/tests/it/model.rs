//! Loading tokenizers from GGUF files once per test binary: SmolLM2 and Gemma 3 (real models,
//! fetched into Rotor's cache) and a Qwen2-style tokenizer-only GGUF kept with the fixtures.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rotor_protocol::TokenizerSpec;
use rotor_text::Tokenizer;

pub struct Smollm2 {
    pub spec: TokenizerSpec,
    pub chat_template: String,
    pub tokenizer: Arc<Tokenizer>,
}

pub fn model_path() -> PathBuf {
    rotor_testing::model_path()
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

/// A tokenizer read from a GGUF with rotor-model's reader, as the server builds it.
pub struct GgufTokenizer {
    pub spec: TokenizerSpec,
    pub chat_template: Option<String>,
    pub tokenizer: Arc<Tokenizer>,
}

impl GgufTokenizer {
    fn load(path: &Path) -> GgufTokenizer {
        let gguf = rotor_model::GgufFile::open(path)
            .unwrap_or_else(|e| panic!("{} is not a readable GGUF: {e}", path.display()));
        let spec = rotor_model::card::tokenizer_spec(&gguf).expect("GGUF has tokenizer metadata");
        let tokenizer = Arc::new(Tokenizer::from_spec(&spec).expect("tokenizer is supported"));
        GgufTokenizer {
            spec,
            chat_template: rotor_model::card::chat_template(&gguf),
            tokenizer,
        }
    }
}

/// Gemma 3 270M (see `rotor_testing::gemma3_path`).
pub fn gemma3_path() -> PathBuf {
    rotor_testing::gemma3_path()
}

/// Gemma 3's SentencePiece-style tokenizer, from the real GGUF (which has no chat template).
pub fn gemma3() -> &'static GgufTokenizer {
    static MODEL: OnceLock<GgufTokenizer> = OnceLock::new();
    MODEL.get_or_init(|| GgufTokenizer::load(&gemma3_path()))
}

/// A Qwen2-style byte-level BPE tokenizer from the small GGUF that
/// scripts/golden/tokenizer_fixtures.py writes (no weights; Qwen 2.5's chat template).
pub fn qwen2() -> &'static GgufTokenizer {
    static MODEL: OnceLock<GgufTokenizer> = OnceLock::new();
    MODEL.get_or_init(|| {
        GgufTokenizer::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(QWEN2_GGUF))
    })
}

const QWEN2_GGUF: &str = "tests/fixtures/tokenizer_qwen2.gguf";
