//! The model card: what a worker tells frontends about the model it serves.

use serde::{Deserialize, Serialize};

/// Everything needed to build the model's tokenizer without its weights. Mirrors the GGUF
/// `tokenizer.ggml.*` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`, e.g. "gpt2" (byte-level BPE) or "llama" (SentencePiece-style).
    pub model: String,
    /// `tokenizer.ggml.pre`, the pre-tokenizer name, e.g. "smollm", "llama-bpe".
    pub pre: Option<String>,
    /// Vocabulary, indexed by token id.
    pub tokens: Vec<String>,
    /// llama.cpp token types per id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Vec<i32>,
    /// BPE merges as "left right".
    pub merges: Vec<String>,
    /// `tokenizer.ggml.scores`: per-id merge priority for SentencePiece ("llama") vocabularies,
    /// higher merges first. Empty when the GGUF has none (all scores 0).
    #[serde(default)]
    pub scores: Vec<f32>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// Extra ids that end generation (e.g. `<|eot_id|>`), besides eos.
    #[serde(default)]
    pub eot_token_ids: Vec<u32>,
    pub add_bos_token: bool,
    pub add_space_prefix: bool,
}

/// Sampling values a model recommends, applied when a request leaves the field out (as vLLM
/// applies a model's `generation_config`). `None` keeps the OpenAI default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingDefaults {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
}

/// What a worker publishes about its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The name clients use in `"model"`, e.g. "smollm2-135m-instruct".
    pub name: String,
    /// Context window in tokens (prompt + output).
    pub context_length: u32,
    pub tokenizer: TokenizerSpec,
    /// Jinja chat template (`tokenizer.chat_template`), if the model has one.
    pub chat_template: Option<String>,
    /// Unix seconds at which the model was loaded (OpenAI `created`).
    pub created: u64,
    /// Recommended sampling for requests that do not say.
    #[serde(default)]
    pub sampling_defaults: SamplingDefaults,
    /// Tokens per KV block of the worker's engine (the router hashes prompts at this size);
    /// `None` when the engine has no paged KV cache.
    #[serde(default)]
    pub kv_block_size: Option<u32>,
    /// What the worker does in disaggregated serving (`rotor worker --role`); cards published
    /// before roles existed read as [`WorkerRole::Aggregated`].
    #[serde(default)]
    pub role: WorkerRole,
    /// Length of the model's embedding vectors (its hidden size: what `Task::Embed` returns);
    /// `None` when the worker does not say (cards from before embeddings, external engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u32>,
    /// Which machine the worker runs on (`rotor_runtime::host_id`): workers with the same id
    /// share `/dev/shm`, so KV can move between them through shared memory and a block in the
    /// host's shared G2 pool is one copy for all of them. `None` from cards that do not say
    /// (older workers, stand-ins), which never count as sharing a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// The name of the G2 host-memory pool the worker offloads KV blocks to (`--kv-host-pool`,
    /// or its default), `None` without G2. Workers with the same `host_id` and pool share its
    /// blocks: a router credits a block any of them reported in it to all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_host_pool: Option<String>,
}

impl ModelCard {
    /// The G2 pool this worker shares with the other workers of its machine, as a key unique
    /// across machines (`{host_id}/{kv_host_pool}`); `None` when the card names no pool or no
    /// host (it then shares with no one).
    pub fn host_pool_key(&self) -> Option<String> {
        match (&self.host_id, &self.kv_host_pool) {
            (Some(host), Some(pool)) => Some(format!("{host}/{pool}")),
            _ => None,
        }
    }
}

/// A worker's part in disaggregated serving.
///
/// - `Aggregated`: prefills and decodes its own requests (the default).
/// - `Prefill`: computes prompts' KV for decode workers; a frontend sends it prefill work only
///   (it still serves generation when no other worker is left).
/// - `Decode`: generates; with a prefill worker discovered, long uncached prompts are prefilled
///   there and their KV blocks imported here first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerRole {
    #[default]
    Aggregated,
    Prefill,
    Decode,
}

impl WorkerRole {
    pub const ALL: [WorkerRole; 3] = [
        WorkerRole::Aggregated,
        WorkerRole::Prefill,
        WorkerRole::Decode,
    ];

    /// The name used on the command line, in cards and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerRole::Aggregated => "aggregated",
            WorkerRole::Prefill => "prefill",
            WorkerRole::Decode => "decode",
        }
    }
}

impl std::fmt::Display for WorkerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WorkerRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkerRole::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| {
                format!("unknown worker role `{s}` (expected aggregated, prefill or decode)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_print_and_default_to_aggregated() {
        for role in WorkerRole::ALL {
            assert_eq!(role.to_string().parse::<WorkerRole>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
        let error = "prefil".parse::<WorkerRole>().unwrap_err();
        assert!(error.contains("prefill"), "{error}");
        assert_eq!(WorkerRole::default(), WorkerRole::Aggregated);
    }

    #[test]
    fn a_host_pool_key_needs_both_the_host_and_the_pool() {
        let json = r#"{"name":"m","context_length":8,"chat_template":null,"created":0,
            "tokenizer":{"model":"gpt2","pre":null,"tokens":[],"token_types":[],"merges":[],
            "bos_token_id":null,"eos_token_id":null,"add_bos_token":false,
            "add_space_prefix":false}}"#;
        let mut card: ModelCard = match serde_json::from_str(json) {
            Ok(card) => card,
            Err(e) => panic!("a card without tier fields parses: {e}"),
        };
        assert_eq!(
            (card.kv_host_pool.as_deref(), card.host_pool_key()),
            (None, None)
        );
        card.kv_host_pool = Some("rotor-m".into());
        assert_eq!(card.host_pool_key(), None, "no host id: shared with no one");
        card.host_id = Some("boot-1".into());
        assert_eq!(card.host_pool_key().as_deref(), Some("boot-1/rotor-m"));
    }
}
