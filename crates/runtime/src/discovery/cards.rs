//! Model cards in a store with a value-size limit.
//!
//! A card carries its tokenizer (SmolLM2: ~1.6 MB of JSON), more than etcd accepts in one
//! request (1.5 MiB by default). We chunk: a card whose JSON fits under the store's limit is
//! stored inline in its record; a larger one is split into chunks written first, then a small
//! record naming the chunk generation, count, length and XXH3-64 checksum. Readers fetch the
//! record, then each chunk, and verify. Chunking (rather than compression) keeps any card size
//! working and leaves the record small enough to list cheaply; chunks share the registration's
//! lease, so a dead worker's chunks vanish with its record.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use rotor_protocol::ModelCard;

use super::keys;
use super::store::{KeyValue, KvStore};
use crate::error::{Error, Result};
use crate::names::InstanceId;

/// What a worker publishes about the model it serves, with who published it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCardEntry {
    pub instance_id: InstanceId,
    pub card: ModelCard,
}

#[derive(Debug, Serialize, Deserialize)]
struct CardRecord {
    model: String,
    instance_id: InstanceId,
    body: CardBody,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CardBody {
    Inline(Box<ModelCard>),
    Chunked {
        generation: u64,
        chunks: u32,
        total_bytes: u64,
        xxh3: u64,
    },
}

/// The entries to write for `card`, in write order: chunks (if any) first, the record last, so
/// a reader that sees the record finds every chunk.
pub fn encode(
    card: &ModelCard,
    instance_id: InstanceId,
    max_value_bytes: Option<usize>,
) -> Vec<KeyValue> {
    let json = serde_json::to_vec(card).expect("invariant: a model card serializes");
    let model = card.name.as_str();
    let record = |body| {
        let record = CardRecord {
            model: model.to_string(),
            instance_id,
            body,
        };
        serde_json::to_vec(&record).expect("invariant: a card record serializes")
    };
    let record_key = keys::card_key(model, instance_id);
    let limit = match max_value_bytes {
        // The inline record adds a few dozen bytes of envelope around the card.
        Some(limit) if json.len() + 1024 > limit => limit,
        _ => return vec![(record_key, record(CardBody::Inline(Box::new(card.clone()))))],
    };
    let generation: u64 = rand::random();
    let mut entries: Vec<KeyValue> = json
        .chunks(limit)
        .enumerate()
        .map(|(index, chunk)| {
            let key = keys::card_chunk_key(model, instance_id, generation, index as u32);
            (key, chunk.to_vec())
        })
        .collect();
    let body = CardBody::Chunked {
        generation,
        chunks: entries.len() as u32,
        total_bytes: json.len() as u64,
        xxh3: xxh3_64(&json),
    };
    entries.push((record_key, record(body)));
    entries
}

/// Reads every card under `prefix` (see [`keys::cards_prefix`]).
pub async fn read_all(store: &dyn KvStore, prefix: &str) -> Result<Vec<ModelCardEntry>> {
    let mut cards = Vec::new();
    for (key, value) in store.get_prefix(prefix).await? {
        let record: CardRecord =
            serde_json::from_slice(&value).map_err(|e| Error::CorruptEntry {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        let card = match record.body {
            CardBody::Inline(card) => *card,
            CardBody::Chunked {
                generation,
                chunks,
                total_bytes,
                xxh3,
            } => {
                let mut json = Vec::with_capacity(total_bytes as usize);
                for index in 0..chunks {
                    let chunk_key =
                        keys::card_chunk_key(&record.model, record.instance_id, generation, index);
                    let chunk =
                        store
                            .get(&chunk_key)
                            .await?
                            .ok_or_else(|| Error::CorruptEntry {
                                key: key.clone(),
                                reason: format!("chunk {chunk_key} is missing"),
                            })?;
                    json.extend_from_slice(&chunk);
                }
                if json.len() as u64 != total_bytes || xxh3_64(&json) != xxh3 {
                    return Err(Error::CorruptEntry {
                        key,
                        reason: format!(
                            "chunks join to {} bytes with a different checksum (expected {total_bytes})",
                            json.len()
                        ),
                    });
                }
                serde_json::from_slice(&json).map_err(|e| Error::CorruptEntry {
                    key: key.clone(),
                    reason: e.to_string(),
                })?
            }
        };
        cards.push(ModelCardEntry {
            instance_id: record.instance_id,
            card,
        });
    }
    Ok(cards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::{SamplingDefaults, TokenizerSpec};

    fn card(tokens: usize) -> ModelCard {
        ModelCard {
            embedding_length: None,
            host_id: None,
            kv_host_pool: None,
            name: "org/m".into(),
            context_length: 2048,
            tokenizer: TokenizerSpec {
                model: "gpt2".into(),
                pre: None,
                tokens: (0..tokens).map(|i| format!("token{i:08}")).collect(),
                token_types: vec![1; tokens],
                merges: vec![],
                scores: vec![],
                bos_token_id: None,
                eos_token_id: Some(0),
                eot_token_ids: vec![],
                add_bos_token: false,
                add_space_prefix: false,
            },
            chat_template: None,
            created: 0,
            sampling_defaults: SamplingDefaults::default(),
            kv_block_size: None,
            role: Default::default(),
        }
    }

    #[test]
    fn big_cards_are_chunked_under_the_limit_with_the_record_last() {
        let big = card(150_000); // ~2.5 MB of JSON
        let entries = encode(&big, InstanceId(9), Some(512 * 1024));
        let json_len = serde_json::to_vec(&big).unwrap().len();
        assert_eq!(entries.len(), json_len.div_ceil(512 * 1024) + 1);
        assert!(entries.iter().all(|(_, value)| value.len() <= 512 * 1024));
        let (last_key, _) = entries.last().unwrap();
        assert_eq!(last_key, &keys::card_key("org/m", InstanceId(9)));
        let chunks = keys::card_chunks_prefix("org/m", InstanceId(9));
        assert!(entries[..entries.len() - 1]
            .iter()
            .all(|(k, _)| k.starts_with(&chunks)));
    }

    #[test]
    fn small_cards_and_unlimited_stores_are_inline() {
        assert_eq!(encode(&card(10), InstanceId(9), Some(512 * 1024)).len(), 1);
        assert_eq!(encode(&card(150_000), InstanceId(9), None).len(), 1);
    }
}
