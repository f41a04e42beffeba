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
        Self::from_gguf(&gguf)
    }

    fn from_gguf(gguf: &rotor_model::GgufFile) -> GgufTokenizer {
        let spec = rotor_model::card::tokenizer_spec(gguf).expect("GGUF has tokenizer metadata");
        let tokenizer = Arc::new(Tokenizer::from_spec(&spec).expect("tokenizer is supported"));
        GgufTokenizer {
            spec,
            chat_template: rotor_model::card::chat_template(gguf),
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

/// A Qwen2-style byte-level BPE tokenizer: a tokenizer-only GGUF (no tensors) written here with
/// rotor-model's GGUF writer from the metadata that scripts/golden/tokenizer_fixtures.py records
/// (a small BPE trained there, Qwen 2.5's chat template).
pub fn qwen2() -> &'static GgufTokenizer {
    static MODEL: OnceLock<GgufTokenizer> = OnceLock::new();
    MODEL.get_or_init(|| {
        let gguf = rotor_model::GgufFile::from_bytes(qwen2_gguf_bytes())
            .expect("the Qwen2 tokenizer GGUF parses");
        GgufTokenizer::from_gguf(&gguf)
    })
}

/// The GGUF bytes of the Qwen2 tokenizer fixture (`[key, type, value]` triples in JSON).
fn qwen2_gguf_bytes() -> Vec<u8> {
    use rotor_model::gguf::write::GgufBuilder;
    use rotor_model::gguf::MetaValue;
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/tokenizer_qwen2_gguf.json"))
            .expect("fixture is JSON");
    let value = |ty: &str, v: &serde_json::Value| -> MetaValue {
        match ty {
            "str" => MetaValue::Str(v.as_str().expect("string").to_string()),
            "u32" => MetaValue::U32(v.as_u64().expect("u32") as u32),
            "i32" => MetaValue::I32(v.as_i64().expect("i32") as i32),
            "f32" => MetaValue::F32(v.as_f64().expect("f32") as f32),
            "bool" => MetaValue::Bool(v.as_bool().expect("bool")),
            other => panic!("fixture value type {other:?}"),
        }
    };
    let mut builder = GgufBuilder::new();
    for entry in fixture["metadata"].as_array().expect("metadata list") {
        let (key, ty, v) = (
            entry[0].as_str().expect("key"),
            entry[1].as_str().expect("type"),
            &entry[2],
        );
        let meta = match ty.strip_suffix("[]") {
            Some(elem) => MetaValue::Array(
                v.as_array()
                    .expect("array")
                    .iter()
                    .map(|x| value(elem, x))
                    .collect(),
            ),
            None => value(ty, v),
        };
        builder = builder.kv(key, meta);
    }
    builder.to_bytes()
}
