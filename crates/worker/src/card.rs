//! Model cards from a GGUF file's metadata, without loading its weights (`GgufFile::open` maps
//! the file; only the header and tokenizer keys are read).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rotor_model::{GgufFile, LlamaConfig};
use rotor_protocol::{ModelCard, SamplingDefaults};

use crate::error::Error;

/// Which model to serve and what to call it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The GGUF file.
    pub path: PathBuf,
    /// The name clients use in `"model"`.
    pub name: String,
    /// Sampling applied to requests that leave a field out.
    pub sampling_defaults: SamplingDefaults,
    /// Caps the context window below the model's own (`--max-model-len`).
    pub max_model_len: Option<usize>,
    /// A chat template to use instead of the GGUF's own (`--chat-template FILE`).
    pub chat_template: Option<String>,
}

/// A GGUF file opened for its metadata, with its Llama hyperparameters.
pub struct GgufModel {
    pub gguf: GgufFile,
    pub config: LlamaConfig,
}

impl GgufModel {
    /// Maps `path` and reads its hyperparameters (no weights are touched).
    pub fn open(path: &Path) -> Result<Self, Error> {
        let model_error = |source| Error::Model {
            path: path.to_path_buf(),
            source,
        };
        let gguf = GgufFile::open(path).map_err(model_error)?;
        let config = LlamaConfig::from_gguf(&gguf).map_err(model_error)?;
        Ok(Self { gguf, config })
    }

    /// The card for `spec`, serving a context window of `context_length` tokens with KV blocks
    /// of `kv_block_size` tokens (`None` when the engine has no paged KV cache).
    pub fn card(
        &self,
        spec: &ModelSpec,
        context_length: usize,
        kv_block_size: Option<usize>,
    ) -> Result<ModelCard, Error> {
        let tokenizer =
            rotor_model::card::tokenizer_spec(&self.gguf).map_err(|source| Error::Model {
                path: spec.path.clone(),
                source,
            })?;
        Ok(ModelCard {
            embedding_length: u32::try_from(self.config.embedding_dim).ok(),
            host_id: Some(rotor_runtime::host_id().to_string()),
            kv_host_pool: None,
            name: spec.name.clone(),
            context_length: u32::try_from(context_length).unwrap_or(u32::MAX),
            tokenizer,
            chat_template: spec
                .chat_template
                .clone()
                .or_else(|| rotor_model::card::chat_template(&self.gguf)),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            sampling_defaults: spec.sampling_defaults.clone(),
            kv_block_size: kv_block_size.map(|size| u32::try_from(size).unwrap_or(u32::MAX)),
            role: Default::default(),
        })
    }
}
