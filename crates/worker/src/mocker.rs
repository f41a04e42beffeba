//! Building a mocker engine: the native engine's scheduler and KV cache over
//! `rotor_engine::MockerRunner`, sized and described like the native engine of the same model
//! (the GGUF is read for its hyperparameters and tokenizer; no weights are loaded).

use rotor_engine::mocker::ordinary_token_ids;
use rotor_engine::{MockerConfig, MockerRunner, MockerTiming};

use crate::card::GgufModel;
use crate::error::Error;
use crate::native::{engine_config, plan_kv, start_engine, NativeConfig, NativeEngine};

/// How many distinct tokens the mocker cycles through when generating.
const OUTPUT_PALETTE: usize = 64;

/// Settings of a mocker engine.
#[derive(Debug, Clone)]
pub struct MockerEngineConfig {
    /// Model, batch limits and KV budget, as for a native engine (`threads` is unused).
    pub native: NativeConfig,
    pub timing: MockerTiming,
    /// Modelled step times are divided by this.
    pub speedup: f64,
    /// KV blocks of the simulated pool; `None` sizes it from the KV byte budget.
    pub num_blocks: Option<usize>,
}

/// Starts a mocker engine standing in for `cfg.native.model`. Blocking (maps the GGUF file).
pub fn build(cfg: &MockerEngineConfig) -> Result<NativeEngine, Error> {
    let file = GgufModel::open(&cfg.native.model.path)?;
    let mut kv = plan_kv(&file.config, &cfg.native, cfg.num_blocks)?;
    // A simulated engine may serve a longer context than the model it stands in for
    // (`--max-model-len`), as long as its KV pool holds it: traces of long-context services
    // replay unshortened.
    if let Some(len) = cfg.native.model.max_model_len {
        kv.context_length = len.min(kv.capacity_tokens);
    }
    let mut card = file.card(
        &cfg.native.model,
        kv.context_length,
        Some(cfg.native.block_size_tokens),
    )?;
    card.kv_host_pool = cfg.native.kv_tiers.host.as_ref().map(|h| h.name.clone());
    let engine_cfg = engine_config(&cfg.native, kv.num_blocks);
    let mut mocker = MockerConfig::new(
        cfg.timing,
        &engine_cfg,
        card.tokenizer.tokens.len(),
        kv.context_length,
    );
    mocker.speedup = cfg.speedup;
    let palette = ordinary_token_ids(&card.tokenizer, OUTPUT_PALETTE);
    if !palette.is_empty() {
        mocker.output_token_ids = palette;
    }
    let runner = MockerRunner::new(mocker).map_err(Error::Mocker)?;
    let engine = start_engine(Box::new(runner), engine_cfg, &cfg.native.kv_tiers)?;
    Ok(NativeEngine { engine, card, kv })
}
