//! Tokenizers and chat templates from a Hugging Face model directory (`tokenizer.json`,
//! `tokenizer_config.json`, optionally `config.json`, `generation_config.json` and
//! `chat_template.jinja`), as the GGUF-shaped [`TokenizerSpec`] the rest of Rotor uses. For
//! workers in front of engines that load HF checkpoints (vLLM, SGLang).
//!
//! Supported: byte-level BPE vocabularies whose pre-tokenizer is one of the known GGUF ones
//! (GPT-2's, SmolLM's digits-then-GPT-2, Llama 3's and Qwen 2's split regexes). Anything else is
//! refused with [`Error::UnsupportedTokenizer`] naming what was found.

use std::path::Path;

use rotor_protocol::TokenizerSpec;
use serde_json::Value;

use crate::error::Error;

/// What a model directory says about tokenizing and chatting.
#[derive(Debug, Clone)]
pub struct HfTokenizerDir {
    pub tokenizer: TokenizerSpec,
    pub chat_template: Option<String>,
    /// `max_position_embeddings` of `config.json`.
    pub context_length: Option<usize>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidSpec {
        reason: reason.into(),
    }
}

fn read_json(dir: &Path, name: &str, required: bool) -> Result<Option<Value>, Error> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| invalid(format!("{}: {e}", path.display()))),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(invalid(format!("{}: {e}", path.display()))),
    }
}

/// The GGUF pre-tokenizer name equivalent to a `tokenizer.json` pre-tokenizer.
fn pre_tokenizer_name(pre: &Value) -> Option<&'static str> {
    let kind = pre["type"].as_str()?;
    let byte_level_regex = |v: &Value| v["type"] == "ByteLevel" && v["use_regex"] != false;
    match kind {
        "ByteLevel" if byte_level_regex(pre) => Some("gpt2"),
        "Sequence" => {
            let parts = pre["pretokenizers"].as_array()?;
            match parts.as_slice() {
                [digits, bl]
                    if digits["type"] == "Digits"
                        && digits["individual_digits"] == true
                        && byte_level_regex(bl) =>
                {
                    Some("smollm")
                }
                [split, bl, ..] if split["type"] == "Split" && bl["type"] == "ByteLevel" => {
                    let pattern = split["pattern"]["Regex"].as_str()?;
                    if pattern.contains(r"\p{N}{1,3}") {
                        Some("llama-bpe")
                    } else if pattern.contains(r"\p{N}") {
                        Some("qwen2")
                    } else {
                        None
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn token_text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_string)
        .or_else(|| v["content"].as_str().map(str::to_string))
}

/// Reads `dir`.
pub fn read_hf_dir(dir: &Path) -> Result<HfTokenizerDir, Error> {
    let tok = read_json(dir, "tokenizer.json", true)?.expect("required");
    let cfg = read_json(dir, "tokenizer_config.json", false)?.unwrap_or(Value::Null);
    let model_cfg = read_json(dir, "config.json", false)?.unwrap_or(Value::Null);
    let gen_cfg = read_json(dir, "generation_config.json", false)?.unwrap_or(Value::Null);

    let model = &tok["model"];
    let model_type = model["type"].as_str().unwrap_or_default();
    let pre = pre_tokenizer_name(&tok["pre_tokenizer"]);
    let (Some(pre), "BPE") = (pre, model_type) else {
        return Err(Error::UnsupportedTokenizer {
            model: format!("tokenizer.json model {model_type:?}"),
            pre: Some(tok["pre_tokenizer"].to_string()),
        });
    };
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| invalid("tokenizer.json has no model.vocab"))?;
    let added = tok["added_tokens"].as_array().cloned().unwrap_or_default();
    let mut size = 0usize;
    for id in vocab.values().filter_map(Value::as_u64) {
        size = size.max(id as usize + 1);
    }
    for a in &added {
        if let Some(id) = a["id"].as_u64() {
            size = size.max(id as usize + 1);
        }
    }
    let mut tokens: Vec<Option<String>> = vec![None; size];
    let mut token_types = vec![1i32; size];
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| invalid(format!("vocab entry {text:?} has no integer id")))?;
        tokens[id as usize] = Some(text.clone());
    }
    for a in &added {
        let (Some(id), Some(text)) = (a["id"].as_u64(), a["content"].as_str()) else {
            continue;
        };
        tokens[id as usize] = Some(text.to_string());
        token_types[id as usize] = if a["special"] == true { 3 } else { 4 };
    }
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| {
            t.unwrap_or_else(|| {
                token_types[id] = 5;
                format!("[PAD{id}]")
            })
        })
        .collect();
    let merges = model["merges"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(pair) if pair.len() == 2 => {
                        Some(format!("{} {}", pair[0].as_str()?, pair[1].as_str()?))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

    let id_of = |text: &str| tokens.iter().position(|t| t == text).map(|i| i as u32);
    let special_id = |key: &str, fallback: &Value| {
        token_text(&cfg[key])
            .and_then(|t| id_of(&t))
            .or_else(|| fallback.as_u64().map(|i| i as u32))
    };
    let bos_token_id = special_id("bos_token", &model_cfg["bos_token_id"]);
    let eos_token_id = special_id("eos_token", &model_cfg["eos_token_id"]);
    let eot_token_ids = match &gen_cfg["eos_token_id"] {
        Value::Array(ids) => ids
            .iter()
            .filter_map(|i| i.as_u64().map(|i| i as u32))
            .filter(|i| Some(*i) != eos_token_id)
            .collect(),
        Value::Number(n) => n
            .as_u64()
            .map(|i| i as u32)
            .filter(|i| Some(*i) != eos_token_id)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let chat_template = match &cfg["chat_template"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(named) => named
            .iter()
            .find(|t| t["name"] == "default")
            .or_else(|| named.first())
            .and_then(|t| t["template"].as_str().map(str::to_string)),
        _ => std::fs::read_to_string(dir.join("chat_template.jinja")).ok(),
    };
    Ok(HfTokenizerDir {
        tokenizer: TokenizerSpec {
            model: "gpt2".into(),
            pre: Some(pre.into()),
            tokens,
            token_types,
            merges,
            scores: Vec::new(),
            bos_token_id,
            eos_token_id,
            eot_token_ids,
            add_bos_token: cfg["add_bos_token"].as_bool().unwrap_or(false),
            add_space_prefix: false,
        },
        chat_template,
        context_length: model_cfg["max_position_embeddings"]
            .as_u64()
            .map(|n| n as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tokenizer;

    fn write(dir: &Path, name: &str, v: Value) {
        std::fs::write(dir.join(name), v.to_string()).unwrap();
    }

    #[test]
    fn reads_a_small_byte_level_bpe_directory() {
        let dir = std::env::temp_dir().join(format!("rotor-hf-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "tokenizer.json",
            serde_json::json!({
                "added_tokens": [{"id": 0, "content": "<|im_end|>", "special": true}],
                "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                    {"type": "Digits", "individual_digits": true},
                    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]},
                "model": {"type": "BPE", "vocab": {"<|im_end|>": 0, "h": 1, "i": 2, "hi": 3, "Ġ": 4, "1": 5, "Ġhi": 6},
                          "merges": [["h", "i"], "Ġ hi"]}
            }),
        );
        write(
            &dir,
            "tokenizer_config.json",
            serde_json::json!({
                "eos_token": "<|im_end|>", "add_bos_token": false,
                "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"
            }),
        );
        write(
            &dir,
            "config.json",
            serde_json::json!({"max_position_embeddings": 2048}),
        );
        let hf = read_hf_dir(&dir).unwrap();
        assert_eq!(hf.tokenizer.pre.as_deref(), Some("smollm"));
        assert_eq!(hf.tokenizer.eos_token_id, Some(0));
        assert_eq!(hf.tokenizer.token_types[0], 3);
        assert_eq!(hf.context_length, Some(2048));
        assert!(hf.chat_template.unwrap().contains("m.content"));
        let t = Tokenizer::from_spec(&hf.tokenizer).unwrap();
        assert_eq!(t.encode("hi hi<|im_end|>", true).unwrap(), vec![3, 6, 0]);
        // An unknown pre-tokenizer is refused by name.
        write(
            &dir,
            "tokenizer.json",
            serde_json::json!({
                "pre_tokenizer": {"type": "Metaspace"}, "model": {"type": "BPE", "vocab": {}}
            }),
        );
        assert!(matches!(
            read_hf_dir(&dir),
            Err(Error::UnsupportedTokenizer { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
