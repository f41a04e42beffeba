//! Building the native engine: load a GGUF model, size the KV cache from a byte budget, start
//! the engine thread, and describe it in a model card. Used by `rotor serve` and `rotor worker`.

use std::fmt;
use std::sync::Arc;

use rotor_engine::{Engine, EngineConfig, EngineHandle, KvTiersConfig, NativeRunner};
use rotor_model::{KvDtype, KvStorage, LlamaConfig, LlamaModel, LoadOptions};
use rotor_protocol::ModelCard;

use crate::card::{GgufModel, ModelSpec};
use crate::error::Error;

/// Validated settings of a native engine.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeConfig {
    pub model: ModelSpec,
    /// Threads of the model's matmul pool.
    pub threads: usize,
    pub max_num_seqs: usize,
    pub max_num_batched_tokens: usize,
    pub block_size_tokens: usize,
    /// KV-cache budget; the number of blocks is what fits in it.
    pub kv_cache_bytes: u64,
    pub kv_dtype: KvDtype,
    /// Offload tiers behind the KV pool (G2 shared host memory, G3 disk); none by default.
    pub kv_tiers: KvTiersConfig,
}

/// How the KV cache came out, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvReport {
    pub num_blocks: usize,
    pub block_size_tokens: usize,
    pub capacity_tokens: usize,
    pub bytes: u64,
    pub dtype: KvDtype,
    /// The context window served: the model's, capped by the KV capacity and `max_model_len`.
    pub context_length: usize,
}

impl fmt::Display for KvReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KV cache {} blocks × {} tokens = {} tokens ({:.1} MiB, {:?}); context {}",
            self.num_blocks,
            self.block_size_tokens,
            self.capacity_tokens,
            self.bytes as f64 / (1u64 << 20) as f64,
            self.dtype,
            self.context_length,
        )
    }
}

/// A started native engine and its card.
pub struct NativeEngine {
    pub engine: EngineHandle,
    pub card: ModelCard,
    pub kv: KvReport,
}

/// Loads the model and starts its engine. Blocking (reads and repacks the weights): call it off
/// the async runtime.
pub fn build(cfg: &NativeConfig) -> Result<NativeEngine, Error> {
    let path = &cfg.model.path;
    let file = GgufModel::open(path)?;
    let model = LlamaModel::load(
        &file.gguf,
        LoadOptions {
            threads: cfg.threads,
        },
    )
    .map_err(|source| Error::Model {
        path: path.clone(),
        source,
    })?;
    let kv = plan_kv(model.config(), cfg, None)?;
    let mut card = file.card(&cfg.model, kv.context_length, Some(cfg.block_size_tokens))?;
    card.kv_host_pool = cfg.kv_tiers.host.as_ref().map(|h| h.name.clone());
    let engine_cfg = engine_config(cfg, kv.num_blocks);
    let mut runner = NativeRunner::new(Arc::new(model), &engine_cfg, cfg.kv_dtype);
    // The tokenizer's vocabulary, so the engine can enforce grammar constraints (structured
    // outputs); without it constrained requests are refused, everything else works.
    let vocab_size = runner.model().config().vocab_size;
    match constraint_vocab(&file.gguf, vocab_size) {
        Ok(vocab) => runner = runner.with_constraint_vocab(Arc::new(vocab)),
        Err(error) => tracing::warn!(%error, "constrained sampling is unavailable for this model"),
    }
    let engine = start_engine(Box::new(runner), engine_cfg, &cfg.kv_tiers)?;
    Ok(NativeEngine { engine, card, kv })
}

/// The model's tokenizer as the engine's constraint vocabulary (structured outputs): control and
/// unknown tokens are special (a Lark grammar can name them), unused slots never match, every
/// other token is its raw bytes (byte-level BPE mapped back, SentencePiece `▁` as a space); the
/// tokenizer tokenizes forced text (fast-forward); ends are llama.cpp's end-of-generation set.
pub fn constraint_vocab(
    gguf: &rotor_model::GgufFile,
    vocab_size: usize,
) -> Result<rotor_engine::ConstraintVocab, String> {
    use rotor_engine::{ConstraintVocab, TokenizeFn, VocabSource, VocabToken};
    use rotor_text::{TokenKind, Tokenizer};
    let spec = rotor_model::card::tokenizer_spec(gguf).map_err(|e| e.to_string())?;
    let tokenizer = Arc::new(Tokenizer::from_spec(&spec).map_err(|e| e.to_string())?);
    // SentencePiece decoding drops the first token's leading space; a skipped control token in
    // front keeps every piece's own bytes.
    let lead = (0..tokenizer.vocab_size() as u32)
        .find(|&id| tokenizer.token_kind(id) == Some(TokenKind::Control));
    let tokens = (0..tokenizer.vocab_size() as u32)
        .map(|id| {
            Ok(match tokenizer.token_kind(id) {
                Some(TokenKind::Control | TokenKind::Unknown) => {
                    VocabToken::Special(tokenizer.token_text(id).unwrap_or_default().to_owned())
                }
                Some(TokenKind::Unused) | None => VocabToken::Bytes(Vec::new()),
                Some(_) => {
                    let ids: Vec<u32> = lead.into_iter().chain([id]).collect();
                    let bytes = tokenizer.decode_bytes(&ids, true);
                    VocabToken::Bytes(bytes.map_err(|e| format!("token {id}: {e}"))?)
                }
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let eos_token_ids = tokenizer.end_of_generation_ids().to_vec();
    let tokenize: TokenizeFn =
        Arc::new(move |text| tokenizer.encode(text, false).unwrap_or_default());
    let source = VocabSource {
        tokens,
        eos_token_ids,
        tokenize: Some(tokenize),
    };
    ConstraintVocab::new(source, vocab_size)
}

/// The KV pool that fits `cfg`'s byte budget for a model of `mc` (or exactly `num_blocks`
/// blocks when given), and the context window it allows.
pub fn plan_kv(
    mc: &LlamaConfig,
    cfg: &NativeConfig,
    num_blocks: Option<usize>,
) -> Result<KvReport, Error> {
    let block_bytes = KvStorage::bytes_per_block(mc, cfg.block_size_tokens, cfg.kv_dtype) as u64;
    let num_blocks = num_blocks.unwrap_or((cfg.kv_cache_bytes / block_bytes.max(1)) as usize);
    if num_blocks == 0 {
        return Err(Error::KvCacheTooSmall {
            kv_cache_bytes: cfg.kv_cache_bytes,
            block_bytes,
        });
    }
    let capacity_tokens = num_blocks * cfg.block_size_tokens;
    let context_length = mc
        .context_length
        .min(capacity_tokens)
        .min(cfg.model.max_model_len.unwrap_or(usize::MAX));
    Ok(KvReport {
        num_blocks,
        block_size_tokens: cfg.block_size_tokens,
        capacity_tokens,
        bytes: num_blocks as u64 * block_bytes,
        dtype: cfg.kv_dtype,
        context_length,
    })
}

/// Starts the engine thread, with offload tiers behind its pool when any is configured.
pub fn start_engine(
    runner: Box<dyn rotor_engine::ModelRunner>,
    engine_cfg: EngineConfig,
    tiers: &KvTiersConfig,
) -> Result<EngineHandle, Error> {
    Ok(if tiers.is_enabled() {
        Engine::start_with_tiers(runner, engine_cfg, tiers)?
    } else {
        Engine::start(runner, engine_cfg)?
    })
}

/// The engine configuration for `cfg` with a pool of `num_blocks` blocks.
pub fn engine_config(cfg: &NativeConfig, num_blocks: usize) -> EngineConfig {
    EngineConfig {
        max_num_seqs: cfg.max_num_seqs,
        max_num_batched_tokens: cfg.max_num_batched_tokens,
        max_prefill_chunk_tokens: cfg.max_num_batched_tokens,
        block_size_tokens: cfg.block_size_tokens,
        num_blocks,
        ..EngineConfig::default()
    }
}
