//! The model's tokenizer, built from GGUF metadata (`TokenizerSpec`), matching llama.cpp's ids.
//!
//! Encoding: split at special tokens ([`crate::special`]), then for each text fragment run the
//! pre-tokenizer regexes chosen by `spec.pre` ([`crate::pretokenizer`]), map bytes to the GPT-2
//! alphabet and apply BPE merges (the `tokenizers` crate does these two steps). Decoding is done
//! here: normal tokens go back through the byte-level alphabet, special tokens are copied as
//! written (or dropped with `skip_special`).

use rotor_protocol::TokenizerSpec;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::byte_level::ByteLevelAlphabet;
use crate::pretokenizer::PreTokenizerRule;
use crate::special::{Fragment, SpecialSplitter};
use crate::Error;

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

/// A byte-level BPE tokenizer. Cheap to share: wrap it in an `Arc`; it is `Send + Sync`.
pub struct Tokenizer {
    bpe: tokenizers::Tokenizer,
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    specials: SpecialSplitter,
    alphabet: ByteLevelAlphabet,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    eot_token_ids: Vec<u32>,
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
    /// Builds the tokenizer. Only `model = "gpt2"` (byte-level BPE) is implemented; other models
    /// or unknown `pre` names give [`Error::UnsupportedTokenizer`].
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Tokenizer, Error> {
        let unsupported = || Error::UnsupportedTokenizer {
            model: spec.model.clone(),
            pre: spec.pre.clone(),
        };
        if spec.model != "gpt2" {
            return Err(unsupported());
        }
        let rule = PreTokenizerRule::for_name(spec.pre.as_deref()).ok_or_else(unsupported)?;
        let kinds = token_kinds(spec)?;
        check_special_ids(spec)?;

        let vocab: Vocab = spec
            .tokens
            .iter()
            .enumerate()
            .map(|(id, text)| (text.clone(), id as u32))
            .collect();
        let merges = spec
            .merges
            .iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(left, right)| (left.to_string(), right.to_string()))
                    .ok_or_else(|| Error::InvalidSpec {
                        reason: format!("merge {merge:?} has no space"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let model = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(rule.ignore_merges)
            .build()
            .map_err(|e| Error::InvalidSpec {
                reason: format!("BPE model: {e}"),
            })?;

        let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(rule.regexes.len() + 1);
        for regex in &rule.regexes {
            let split = Split::new(
                SplitPattern::Regex((*regex).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| Error::InvalidSpec {
                reason: format!("pre-tokenizer regex {regex:?}: {e}"),
            })?;
            steps.push(split.into());
        }
        // The regexes above already split words; ByteLevel only maps bytes, with no prefix space.
        steps.push(ByteLevel::new(false, false, false).into());
        let mut bpe = tokenizers::Tokenizer::new(model);
        bpe.with_pre_tokenizer(Some(Sequence::new(steps)));

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
            bpe,
            tokens: spec.tokens.clone(),
            kinds,
            specials,
            alphabet: ByteLevelAlphabet::new(),
            bos_token_id: spec.bos_token_id,
            eos_token_id: spec.eos_token_id,
            eot_token_ids: spec.eot_token_ids.clone(),
            add_bos_token: spec.add_bos_token,
        })
    }

    /// Token ids for `text`. Never adds BOS (see [`Tokenizer::add_bos_token`]); chat templates
    /// write it themselves. With `parse_special`, control-token texts such as "<|im_start|>"
    /// become their ids; without, they are tokenized as plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, Error> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        for fragment in self.specials.split(text, parse_special) {
            match fragment {
                Fragment::Token(id) => ids.push(id),
                Fragment::Text(raw) => {
                    let encoding =
                        self.bpe
                            .encode_fast(raw, false)
                            .map_err(|e| Error::Tokenize {
                                message: e.to_string(),
                            })?;
                    ids.extend_from_slice(encoding.get_ids());
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

    /// The raw bytes `ids` stand for.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let (text, kind) = match (self.tokens.get(id as usize), self.kinds.get(id as usize)) {
                (Some(text), Some(kind)) => (text, *kind),
                _ => {
                    return Err(Error::UnknownTokenId {
                        id,
                        vocab_size: self.tokens.len(),
                    })
                }
            };
            match kind {
                TokenKind::Normal | TokenKind::Byte => self.alphabet.decode_into(text, &mut out),
                TokenKind::UserDefined => out.extend_from_slice(text.as_bytes()),
                special if special.is_special() && !skip_special => {
                    out.extend_from_slice(text.as_bytes())
                }
                // Skipped specials and unused slots render as nothing, as in llama.cpp.
                _ => {}
            }
        }
        Ok(out)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The vocabulary entry as stored (byte-level alphabet, e.g. "Ġhello").
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
