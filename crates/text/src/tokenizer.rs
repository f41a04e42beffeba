//! The model's tokenizer, built from GGUF metadata (`TokenizerSpec`), matching llama.cpp's ids.
//!
//! Two vocabulary kinds, chosen by `tokenizer.ggml.model`:
//! - "gpt2": byte-level BPE with the pre-tokenizer that `tokenizer.ggml.pre` names
//!   ([`crate::bpe`]; SmolLM2, Qwen 2/2.5, Llama 3, ...);
//! - "llama": SentencePiece-style pieces with scores and byte fallback ([`crate::spm`]; Gemma 3,
//!   Llama 2, ...).
//!
//! Token types come from the GGUF, adjusted by token text as llama.cpp adjusts them
//! ([`crate::token_roles`]). Encoding first splits the text at special tokens ([`crate::special`]); each text fragment then
//! goes to the vocabulary's own algorithm. Decoding is done here: normal and byte tokens through
//! the vocabulary's alphabet, special tokens copied as written (or dropped with `skip_special`).

use rotor_protocol::TokenizerSpec;

use crate::bpe::ByteLevelBpe;
use crate::pretokenizer::PreTokenizerRule;
use crate::special::{Fragment, SpecialSplitter};
use crate::spm::SpmModel;
use crate::{token_roles, Error};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(code: i32) -> Option<TokenKind> {
        Some(match code {
            1 => TokenKind::Normal,
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => return None,
        })
    }

    /// Dropped by `decode(.., skip_special = true)`.
    fn is_special(self) -> bool {
        matches!(self, TokenKind::Control | TokenKind::Unknown)
    }
}

/// The algorithm for text fragments, by vocabulary kind.
enum Model {
    /// `tokenizer.ggml.model = "gpt2"`.
    ByteLevelBpe(Box<ByteLevelBpe>),
    /// `tokenizer.ggml.model = "llama"`.
    SentencePiece(SpmModel),
}

/// A GGUF vocabulary's tokenizer. Cheap to share: wrap it in an `Arc`; it is `Send + Sync`.
pub struct Tokenizer {
    model: Model,
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    specials: SpecialSplitter,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    eot_token_ids: Vec<u32>,
    end_of_generation_ids: Vec<u32>,
    add_bos_token: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.tokens.len())
            .field("bos_token_id", &self.bos_token_id)
            .field("eos_token_id", &self.eos_token_id)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Builds the tokenizer for `model = "gpt2"` (with a `pre` this crate implements) or
    /// `model = "llama"`; anything else gives [`Error::UnsupportedTokenizer`].
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Tokenizer, Error> {
        let unsupported = || Error::UnsupportedTokenizer {
            model: spec.model.clone(),
            pre: spec.pre.clone(),
        };
        let rule = match spec.model.as_str() {
            "gpt2" => {
                Some(PreTokenizerRule::for_name(spec.pre.as_deref()).ok_or_else(unsupported)?)
            }
            "llama" => None,
            _ => return Err(unsupported()),
        };
        let mut kinds = token_kinds(spec)?;
        check_special_ids(spec)?;
        let declared_ends: Vec<u32> = spec
            .eos_token_id
            .into_iter()
            .chain(spec.eot_token_ids.iter().copied())
            .collect();
        let end_of_generation_ids = token_roles::apply(&spec.tokens, &mut kinds, &declared_ends);
        let model = match rule {
            Some(rule) => Model::ByteLevelBpe(Box::new(ByteLevelBpe::new(spec, &rule)?)),
            None => Model::SentencePiece(SpmModel::new(spec)?),
        };

        let specials =
            SpecialSplitter::new(
                kinds
                    .iter()
                    .enumerate()
                    .filter_map(|(id, kind)| match kind {
                        TokenKind::Control | TokenKind::Unknown => {
                            Some((id as u32, spec.tokens[id].clone(), false))
                        }
                        TokenKind::UserDefined => Some((id as u32, spec.tokens[id].clone(), true)),
                        _ => None,
                    }),
            );

        Ok(Tokenizer {
            model,
            tokens: spec.tokens.clone(),
            kinds,
            specials,
            bos_token_id: spec.bos_token_id,
            eos_token_id: spec.eos_token_id,
            eot_token_ids: spec.eot_token_ids.clone(),
            end_of_generation_ids,
            add_bos_token: spec.add_bos_token,
        })
    }

    /// Token ids for `text`. Never adds BOS (see [`Tokenizer::add_bos_token`]); chat templates
    /// write it themselves. With `parse_special`, control-token texts such as "<|im_start|>"
    /// become their ids; without, they are tokenized as plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, Error> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        // SentencePiece vocabularies with `add_space_prefix` put a space before text that starts
        // the input or follows a special token, as llama.cpp does.
        let mut after_special = true;
        for fragment in self.specials.split(text, parse_special) {
            match fragment {
                Fragment::Token(id) => {
                    ids.push(id);
                    after_special = true;
                }
                Fragment::Text(raw) => {
                    match &self.model {
                        Model::ByteLevelBpe(bpe) => bpe.encode_into(raw, &mut ids)?,
                        Model::SentencePiece(spm) => {
                            let prefix = spm.add_space_prefix() && after_special;
                            spm.encode_into(raw, prefix, &mut ids)?
                        }
                    }
                    after_special = false;
                }
            }
        }
        Ok(ids)
    }

    /// Text for `ids`. Bytes that do not form valid UTF-8 (a character cut off at the end) are
    /// replaced by U+FFFD; use [`Tokenizer::decode_bytes`] to see them.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, Error> {
        let bytes = self.decode_bytes(ids, skip_special)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The raw bytes `ids` stand for. For SentencePiece vocabularies with `add_space_prefix`, one
    /// leading space of the first token is dropped (the one encoding added), as in llama.cpp.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            let (text, kind) = match (self.tokens.get(id as usize), self.kinds.get(id as usize)) {
                (Some(text), Some(kind)) => (text, *kind),
                _ => {
                    return Err(Error::UnknownTokenId {
                        id,
                        vocab_size: self.tokens.len(),
                    })
                }
            };
            match (kind, &self.model) {
                (TokenKind::Normal, Model::SentencePiece(spm)) => {
                    spm.decode_normal_into(text, &mut out)
                }
                (TokenKind::Byte, Model::SentencePiece(spm)) => {
                    spm.decode_byte_into(text, &mut out)
                }
                (TokenKind::Normal | TokenKind::Byte, Model::ByteLevelBpe(bpe)) => {
                    bpe.decode_piece_into(text, &mut out)
                }
                (TokenKind::UserDefined, _) => out.extend_from_slice(text.as_bytes()),
                (special, _) if special.is_special() && !skip_special => {
                    out.extend_from_slice(text.as_bytes())
                }
                // Skipped specials and unused slots render as nothing, as in llama.cpp.
                _ => {}
            }
            if i == 0 && self.strips_leading_space() && out.first() == Some(&b' ') {
                out.remove(0);
            }
        }
        Ok(out)
    }

    fn strips_leading_space(&self) -> bool {
        matches!(&self.model, Model::SentencePiece(spm) if spm.add_space_prefix())
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The vocabulary entry as stored (e.g. "Ġhello" in a byte-level BPE vocabulary, "▁hello" in
    /// a SentencePiece one).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_token_id
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_id
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token_id.and_then(|id| self.token_text(id))
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token_id.and_then(|id| self.token_text(id))
    }

    /// Ids that end generation: eos, then the extra end-of-turn ids, without duplicates.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.eos_token_id.into_iter().collect();
        for &id in &self.eot_token_ids {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// llama.cpp's end-of-generation set, ascending: eos, the GGUF's eot/eom ids, and every token
    /// whose text marks an end of turn or message (`<end_of_turn>`, `<|im_end|>`,
    /// `<|endoftext|>`, `</s>`, ...; see `token_roles`). A superset of
    /// [`Tokenizer::eos_token_ids`]; Gemma 3, whose GGUF names only `<eos>`, ends chat turns
    /// with `<end_of_turn>`.
    pub fn end_of_generation_ids(&self) -> &[u32] {
        &self.end_of_generation_ids
    }

    /// Whether the model expects BOS in front of a raw (non-chat) prompt.
    pub fn add_bos_token(&self) -> bool {
        self.add_bos_token
    }
}

fn token_kinds(spec: &TokenizerSpec) -> Result<Vec<TokenKind>, Error> {
    if spec.token_types.is_empty() {
        return Ok(vec![TokenKind::Normal; spec.tokens.len()]);
    }
    if spec.token_types.len() != spec.tokens.len() {
        return Err(Error::InvalidSpec {
            reason: format!(
                "{} token types for {} tokens",
                spec.token_types.len(),
                spec.tokens.len()
            ),
        });
    }
    spec.token_types
        .iter()
        .enumerate()
        .map(|(id, &code)| {
            TokenKind::from_gguf(code).ok_or_else(|| Error::InvalidSpec {
                reason: format!("token {id} has unknown type {code}"),
            })
        })
        .collect()
}

fn check_special_ids(spec: &TokenizerSpec) -> Result<(), Error> {
    let named = [("bos", spec.bos_token_id), ("eos", spec.eos_token_id)];
    let eot = spec.eot_token_ids.iter().map(|&id| ("eot", Some(id)));
    for (what, id) in named.into_iter().chain(eot) {
        if let Some(id) = id.filter(|&id| id as usize >= spec.tokens.len()) {
            return Err(Error::InvalidSpec {
                reason: format!(
                    "{what} token id {id} is outside the vocabulary of {}",
                    spec.tokens.len()
                ),
            });
        }
    }
    Ok(())
}
