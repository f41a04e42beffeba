//! vLLM's (and SGLang's) KV-event batches, decoded from their MessagePack payload.
//!
//! The batch is `[ts, events, data_parallel_rank]` (msgspec `array_like`; older versions leave
//! the rank out) or a map with those keys. Each event is a map with a `"type"` key (vLLM ≥ 0.11:
//! `tag=True` without `array_like`) or a positional array whose first item is the tag (older
//! vLLM and SGLang): `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size,
//! lora_id, medium, …]`, `["BlockRemoved", block_hashes, medium, …]`, `["AllBlocksCleared"]`.
//! Block hashes are integers of any width (vLLM's default: sha256 digest truncated to 64 bits)
//! or raw digests (bytes), which are truncated the same way (their last 8 bytes, big-endian).
//! Unknown fields are ignored; unknown event types are reported, not fatal.

use super::msgpack::{self, Value};

/// An engine's block hash, as a u64.
pub type EngineHash = u64;

/// One decoded engine event.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// Consecutive blocks stored: `token_ids` holds `block_hashes.len() × block_size` tokens.
    Stored {
        block_hashes: Vec<EngineHash>,
        parent: Option<EngineHash>,
        token_ids: Vec<u32>,
        block_size: usize,
        medium: Option<String>,
    },
    Removed {
        block_hashes: Vec<EngineHash>,
        medium: Option<String>,
    },
    Cleared,
}

/// A decoded batch: events that decoded, and the reasons of those that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ts: f64,
    pub events: Vec<EngineEvent>,
    /// (event index, why it could not be decoded)
    pub failed: Vec<(usize, String)>,
    pub data_parallel_rank: Option<i64>,
}

/// Decodes one message payload.
pub fn decode_batch(payload: &[u8]) -> Result<Batch, String> {
    let v = msgpack::decode(payload).map_err(|e| format!("not MessagePack: {e}"))?;
    let (ts, events, rank) = match &v {
        Value::Array(items) if (2..=3).contains(&items.len()) => {
            (&items[0], &items[1], items.get(2))
        }
        Value::Map(_) => (
            v.get("ts").unwrap_or(&Value::Nil),
            v.get("events").ok_or("a batch map without \"events\"")?,
            v.get("data_parallel_rank"),
        ),
        _ => return Err("the batch is neither [ts, events, rank] nor a map".into()),
    };
    let ts = match ts {
        Value::Float(f) => *f,
        Value::Int(i) => *i as f64,
        _ => 0.0,
    };
    let events = events
        .as_array()
        .ok_or("the batch's events are not an array")?;
    let mut batch = Batch {
        ts,
        events: Vec::with_capacity(events.len()),
        failed: Vec::new(),
        data_parallel_rank: rank.and_then(Value::as_int).map(|r| r as i64),
    };
    for (i, e) in events.iter().enumerate() {
        match decode_event(e) {
            Ok(ev) => batch.events.push(ev),
            Err(why) => batch.failed.push((i, why)),
        }
    }
    Ok(batch)
}

/// Field positions of the array encodings, after the tag.
const STORED_FIELDS: &[&str] = &[
    "block_hashes",
    "parent_block_hash",
    "token_ids",
    "block_size",
    "lora_id",
    "medium",
];
const REMOVED_FIELDS: &[&str] = &["block_hashes", "medium"];

fn decode_event<'a>(v: &'a Value) -> Result<EngineEvent, String> {
    type Field<'a> = Box<dyn Fn(&str) -> Option<&'a Value> + 'a>;
    let (tag, field): (&str, Field<'a>) = match v {
        Value::Map(_) => {
            let tag = v
                .get("type")
                .and_then(Value::as_str)
                .ok_or("an event map without a \"type\"")?;
            (tag, Box::new(move |name: &str| v.get(name)))
        }
        Value::Array(items) => {
            let tag = items
                .first()
                .and_then(Value::as_str)
                .ok_or("an event array without a tag")?;
            let names = match tag {
                "BlockStored" => STORED_FIELDS,
                "BlockRemoved" => REMOVED_FIELDS,
                _ => &[],
            };
            (
                tag,
                Box::new(move |name: &str| {
                    let i = names.iter().position(|n| *n == name)?;
                    items.get(i + 1)
                }),
            )
        }
        _ => return Err("an event that is neither a map nor an array".into()),
    };
    let medium = field("medium").and_then(Value::as_str).map(str::to_string);
    match tag {
        "BlockStored" => {
            let block_hashes = hashes(field("block_hashes"))?;
            let parent = match field("parent_block_hash") {
                None | Some(Value::Nil) => None,
                Some(h) => Some(hash(h)?),
            };
            let token_ids = field("token_ids")
                .and_then(Value::as_array)
                .ok_or("BlockStored without token_ids")?
                .iter()
                .map(|t| match t.as_int() {
                    Some(i) if (0..=i128::from(u32::MAX)).contains(&i) => Ok(i as u32),
                    _ => Err(format!("a bad token id {t:?}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let block_size = match field("block_size").and_then(Value::as_int) {
                Some(n) if n > 0 => n as usize,
                _ => return Err("BlockStored without a positive block_size".into()),
            };
            Ok(EngineEvent::Stored {
                block_hashes,
                parent,
                token_ids,
                block_size,
                medium,
            })
        }
        "BlockRemoved" => Ok(EngineEvent::Removed {
            block_hashes: hashes(field("block_hashes"))?,
            medium,
        }),
        "AllBlocksCleared" => Ok(EngineEvent::Cleared),
        other => Err(format!("unknown event type {other:?}")),
    }
}

fn hashes(v: Option<&Value>) -> Result<Vec<EngineHash>, String> {
    v.and_then(Value::as_array)
        .ok_or("an event without block_hashes")?
        .iter()
        .map(hash)
        .collect()
}

/// An integer hash of any width and sign, or a digest's low 64 bits (big-endian).
pub fn hash(v: &Value) -> Result<EngineHash, String> {
    match v {
        Value::Int(i) => Ok(*i as u64),
        Value::Bin(b) if !b.is_empty() => {
            let tail = &b[b.len().saturating_sub(8)..];
            Ok(tail.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        }
        other => Err(format!("a bad block hash {other:?}")),
    }
}

/// Encodings of a batch, for tests and scripted publishers.
pub mod encode {
    use super::super::msgpack::{encode, Value};
    use super::EngineEvent;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    fn ints<T: Copy + Into<i128>>(xs: &[T]) -> Value {
        Value::Array(xs.iter().map(|&x| Value::Int(x.into())).collect())
    }

    /// How the events are laid out.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Layout {
        /// vLLM ≥ 0.11: maps with `"type"` first and every non-default field.
        Map,
        /// Older vLLM: tagged positional arrays.
        Array,
    }

    /// One event as a value.
    pub fn event(e: &EngineEvent, layout: Layout, byte_hashes: bool) -> Value {
        let h = |x: u64| {
            if byte_hashes {
                let mut digest = vec![0xab; 24];
                digest.extend(x.to_be_bytes());
                Value::Bin(digest)
            } else {
                Value::Int(x.into())
            }
        };
        let hs = |xs: &[u64]| Value::Array(xs.iter().map(|&x| h(x)).collect());
        match (e, layout) {
            (
                EngineEvent::Stored {
                    block_hashes,
                    parent,
                    token_ids,
                    block_size,
                    ..
                },
                Layout::Map,
            ) => Value::Map(vec![
                (s("type"), s("BlockStored")),
                (s("block_hashes"), hs(block_hashes)),
                (s("parent_block_hash"), parent.map(h).unwrap_or(Value::Nil)),
                (s("token_ids"), ints(token_ids)),
                (s("block_size"), Value::Int(*block_size as i128)),
                (s("lora_id"), Value::Nil),
                (s("medium"), s("GPU")),
                (s("lora_name"), Value::Nil),
                (
                    s("extra_keys"),
                    Value::Array(vec![Value::Nil; block_hashes.len()]),
                ),
                (s("group_idx"), Value::Int(0)),
                (s("kv_cache_spec_kind"), s("full_attention")),
                (
                    s("some_future_field"),
                    Value::Array(vec![Value::Bool(true)]),
                ),
            ]),
            (
                EngineEvent::Stored {
                    block_hashes,
                    parent,
                    token_ids,
                    block_size,
                    ..
                },
                Layout::Array,
            ) => Value::Array(vec![
                s("BlockStored"),
                hs(block_hashes),
                parent.map(h).unwrap_or(Value::Nil),
                ints(token_ids),
                Value::Int(*block_size as i128),
                Value::Nil,
                s("GPU"),
            ]),
            (EngineEvent::Removed { block_hashes, .. }, Layout::Map) => Value::Map(vec![
                (s("type"), s("BlockRemoved")),
                (s("block_hashes"), hs(block_hashes)),
                (s("medium"), s("GPU")),
                (s("group_idx"), Value::Int(0)),
            ]),
            (EngineEvent::Removed { block_hashes, .. }, Layout::Array) => {
                Value::Array(vec![s("BlockRemoved"), hs(block_hashes), s("GPU")])
            }
            (EngineEvent::Cleared, Layout::Map) => {
                Value::Map(vec![(s("type"), s("AllBlocksCleared"))])
            }
            (EngineEvent::Cleared, Layout::Array) => Value::Array(vec![s("AllBlocksCleared")]),
        }
    }

    /// A batch payload: `[ts, events, rank]` (or a map when `map_batch`).
    pub fn batch(
        events: &[EngineEvent],
        layout: Layout,
        byte_hashes: bool,
        map_batch: bool,
    ) -> Vec<u8> {
        let evs = Value::Array(
            events
                .iter()
                .map(|e| event(e, layout, byte_hashes))
                .collect(),
        );
        let v = if map_batch {
            Value::Map(vec![
                (s("ts"), Value::Float(1.5)),
                (s("events"), evs),
                (s("data_parallel_rank"), Value::Int(0)),
            ])
        } else {
            Value::Array(vec![Value::Float(1.5), evs, Value::Int(0)])
        };
        let mut out = Vec::new();
        encode(&v, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::encode::{batch, Layout};
    use super::*;

    fn stored() -> EngineEvent {
        EngineEvent::Stored {
            block_hashes: vec![u64::MAX - 3, 7],
            parent: Some(1 << 40),
            token_ids: (0..8).map(|i| i * 9000).collect(),
            block_size: 4,
            medium: Some("GPU".into()),
        }
    }

    #[test]
    fn every_encoding_decodes_to_the_same_events() {
        let events = vec![
            stored(),
            EngineEvent::Removed {
                block_hashes: vec![5],
                medium: Some("GPU".into()),
            },
            EngineEvent::Cleared,
        ];
        for layout in [Layout::Map, Layout::Array] {
            for bytes in [false, true] {
                for map_batch in [false, true] {
                    let payload = batch(&events, layout, bytes, map_batch);
                    let got = decode_batch(&payload).unwrap();
                    assert!(got.failed.is_empty(), "{:?}", got.failed);
                    assert_eq!(
                        got.events, events,
                        "{layout:?} bytes={bytes} map={map_batch}"
                    );
                    assert_eq!(got.data_parallel_rank, Some(0));
                }
            }
        }
    }

    #[test]
    fn old_two_field_batches_and_bad_events() {
        use super::super::msgpack::{encode as enc, Value};
        let mut payload = Vec::new();
        let evs = Value::Array(vec![
            Value::Map(vec![(
                Value::Str("type".into()),
                Value::Str("Mystery".into()),
            )]),
            Value::Int(3),
            encode::event(&stored(), Layout::Array, false),
        ]);
        enc(&Value::Array(vec![Value::Float(2.0), evs]), &mut payload);
        let got = decode_batch(&payload).unwrap();
        assert_eq!(got.events, vec![stored()]);
        assert_eq!(got.failed.len(), 2);
        assert!(got.failed[0].1.contains("Mystery"));
        assert_eq!(got.data_parallel_rank, None);
        assert!(decode_batch(&[0x01]).is_err());
        assert!(decode_batch(&[0x93, 0xc0]).is_err());
    }
}
