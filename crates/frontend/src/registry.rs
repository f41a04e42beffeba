//! The models being served, by name. Models come and go at run time (discovery), so the map
//! sits behind a `RwLock` that is only held to look up or swap an `Arc`, never across an await.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rotor_protocol::ModelCard;
use rotor_text::{ChatTemplate, Tokenizer};

use crate::backend::{Backend, ServedModel};
use crate::error::FrontendError;
use crate::parsers::{ModelParsers, ParserSetting};

/// One served model with everything built from its card.
pub struct ModelEntry {
    pub card: ModelCard,
    pub backend: Arc<dyn Backend>,
    pub tokenizer: Arc<Tokenizer>,
    /// `None` when the model has no chat template: chat requests get a 400.
    pub template: Option<ChatTemplate>,
    /// Ids that end generation, llama.cpp's end-of-generation set (eos, eot/eom and every
    /// end-of-turn token such as Gemma's `<end_of_turn>`); their text is never shown.
    pub stop_token_ids: Vec<u32>,
    /// The tool-call and reasoning parsers of its answers.
    pub parsers: ModelParsers,
}

impl ModelEntry {
    /// Builds the tokenizer and chat template from the card (none when the card has none);
    /// parsers are chosen from the template.
    pub fn build(model: ServedModel) -> Result<Self, FrontendError> {
        Self::build_with_parsers(model, ParserSetting::Auto, ParserSetting::Auto)
    }

    /// As [`ModelEntry::build`], with the `--tool-call-parser` / `--reasoning-parser` settings.
    pub fn build_with_parsers(
        model: ServedModel,
        tool: ParserSetting<rotor_text::ToolParserKind>,
        reasoning: ParserSetting<rotor_text::ReasoningParserKind>,
    ) -> Result<Self, FrontendError> {
        let ServedModel { card, backend } = model;
        if card.context_length == 0 {
            return Err(FrontendError::ZeroContextLength { model: card.name });
        }
        let tokenizer =
            Tokenizer::from_spec(&card.tokenizer).map_err(|source| FrontendError::Tokenizer {
                model: card.name.clone(),
                source,
            })?;
        let template = match &card.chat_template {
            Some(source) => Some(
                ChatTemplate::new(
                    source,
                    tokenizer.bos_token().unwrap_or(""),
                    tokenizer.eos_token().unwrap_or(""),
                )
                .map_err(|source| FrontendError::ChatTemplate {
                    model: card.name.clone(),
                    source,
                })?,
            ),
            // No template: chat requests are refused (a guessed format gives wrong prompts).
            None => None,
        };
        let stop_token_ids = tokenizer.end_of_generation_ids().to_vec();
        let parsers = ModelParsers::choose(card.chat_template.as_deref(), tool, reasoning);
        Ok(Self {
            card,
            backend,
            tokenizer: Arc::new(tokenizer),
            template,
            stop_token_ids,
            parsers,
        })
    }
}

/// Name → model. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ModelRegistry {
    models: Arc<RwLock<HashMap<String, Arc<ModelEntry>>>>,
}

impl ModelRegistry {
    pub fn insert(&self, entry: ModelEntry) -> Result<(), FrontendError> {
        let mut models = self
            .models
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if models.contains_key(&entry.card.name) {
            return Err(FrontendError::ModelAlreadyServed {
                model: entry.card.name.clone(),
            });
        }
        models.insert(entry.card.name.clone(), Arc::new(entry));
        Ok(())
    }

    /// Removes a model; requests already running on it finish normally.
    pub fn remove(&self, name: &str) -> bool {
        let mut models = self
            .models
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        models.remove(name).is_some()
    }

    pub fn get(&self, name: &str) -> Option<Arc<ModelEntry>> {
        let models = self
            .models
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        models.get(name).cloned()
    }

    /// The model a request names, or the API's 404 (`model_not_found`).
    pub fn require(&self, name: &str) -> Result<Arc<ModelEntry>, crate::error::ApiError> {
        self.get(name)
            .ok_or_else(|| crate::error::ApiError::model_not_found(name))
    }

    /// All models, sorted by name.
    pub fn list(&self) -> Vec<Arc<ModelEntry>> {
        let models = self
            .models
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<_> = models.values().cloned().collect();
        all.sort_by(|a, b| a.card.name.cmp(&b.card.name));
        all
    }
}
