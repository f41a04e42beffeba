//! What a GGUF file says about its tokenizer and chat template (`tokenizer.*` keys).

use rotor_protocol::TokenizerSpec;

use crate::gguf::{GgufFile, MetaValue};
use crate::Error;

/// Builds the tokenizer description from `tokenizer.ggml.*` metadata.
///
/// Required: `model`, `tokens`. Optional, with llama.cpp's defaults: `pre`, `token_type` (all
/// normal), `merges` (none), `scores` (none: all 0), `bos_token_id`, `eos_token_id`,
/// `eot_token_id`/`eom_token_id` (extra stop ids), `add_bos_token` and `add_space_prefix` (both
/// default to true only for SentencePiece "llama" vocabularies).
pub fn tokenizer_spec(gguf: &GgufFile) -> Result<TokenizerSpec, Error> {
    let model = gguf.get_str("tokenizer.ggml.model")?.to_string();
    let tokens = gguf.get_string_array("tokenizer.ggml.tokens")?;
    let pre = optional(gguf, "tokenizer.ggml.pre", |g, k| {
        g.get_str(k).map(str::to_string)
    })?;
    let token_types = optional(gguf, "tokenizer.ggml.token_type", GgufFile::get_i32_array)?
        .unwrap_or_else(|| vec![1; tokens.len()]);
    if token_types.len() != tokens.len() {
        return Err(Error::WrongType {
            key: "tokenizer.ggml.token_type".to_string(),
            expected: "one entry per token",
            found: format!("{} entries for {} tokens", token_types.len(), tokens.len()),
        });
    }
    let merges =
        optional(gguf, "tokenizer.ggml.merges", GgufFile::get_string_array)?.unwrap_or_default();
    let scores = optional(gguf, "tokenizer.ggml.scores", scores_array)?.unwrap_or_default();
    if !scores.is_empty() && scores.len() != tokens.len() {
        return Err(Error::WrongType {
            key: "tokenizer.ggml.scores".to_string(),
            expected: "one entry per token",
            found: format!("{} entries for {} tokens", scores.len(), tokens.len()),
        });
    }
    let bos_token_id = optional(gguf, "tokenizer.ggml.bos_token_id", GgufFile::get_u32)?;
    let eos_token_id = optional(gguf, "tokenizer.ggml.eos_token_id", GgufFile::get_u32)?;
    let mut eot_token_ids = Vec::new();
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(id) = optional(gguf, key, GgufFile::get_u32)? {
            if Some(id) != eos_token_id && !eot_token_ids.contains(&id) {
                eot_token_ids.push(id);
            }
        }
    }
    let spm = model == "llama";
    let add_bos_token =
        optional(gguf, "tokenizer.ggml.add_bos_token", GgufFile::get_bool)?.unwrap_or(spm);
    let add_space_prefix =
        optional(gguf, "tokenizer.ggml.add_space_prefix", GgufFile::get_bool)?.unwrap_or(spm);
    Ok(TokenizerSpec {
        model,
        pre,
        tokens,
        token_types,
        merges,
        scores,
        bos_token_id,
        eos_token_id,
        eot_token_ids,
        add_bos_token,
        add_space_prefix,
    })
}

/// The Jinja chat template (`tokenizer.chat_template`), if present as a string.
pub fn chat_template(gguf: &GgufFile) -> Option<String> {
    match gguf.get("tokenizer.chat_template") {
        Some(MetaValue::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `tokenizer.ggml.scores`: f32 values, or i32 (which llama.cpp also accepts) converted.
fn scores_array(gguf: &GgufFile, key: &str) -> Result<Vec<f32>, Error> {
    gguf.get_array(key)?
        .iter()
        .map(|value| match value {
            MetaValue::F32(score) => Ok(*score),
            MetaValue::I32(score) => Ok(*score as f32),
            other => Err(Error::WrongType {
                key: key.to_string(),
                expected: "array of f32 or i32",
                found: other.type_name().to_string(),
            }),
        })
        .collect()
}

/// `Ok(None)` when the key is absent, the getter's error when present with the wrong type.
fn optional<T>(
    gguf: &GgufFile,
    key: &str,
    get: impl Fn(&GgufFile, &str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    if gguf.get(key).is_none() {
        return Ok(None);
    }
    get(gguf, key).map(Some)
}
