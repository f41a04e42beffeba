//! GPT-2-style byte-level BPE (`tokenizer.ggml.model = "gpt2"`), as llama.cpp runs it.
//!
//! Each text fragment is cut into words by the pre-tokenizer regexes that `tokenizer.ggml.pre`
//! names ([`crate::pretokenizer`]); each word's bytes are written in the GPT-2 alphabet
//! ([`crate::byte_level`]) and merged by rank (lower rank first, leftmost pair on ties). The
//! `tokenizers` crate does the splitting and merging; decoding maps the alphabet back to bytes.

use rotor_protocol::TokenizerSpec;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::byte_level::ByteLevelAlphabet;
use crate::pretokenizer::PreTokenizerRule;
use crate::Error;

/// The merge model plus the alphabet for decoding.
pub(crate) struct ByteLevelBpe {
    bpe: tokenizers::Tokenizer,
    alphabet: ByteLevelAlphabet,
}

impl ByteLevelBpe {
    /// `rule` is the pre-tokenizer chosen for `spec.pre`.
    pub(crate) fn new(
        spec: &TokenizerSpec,
        rule: &PreTokenizerRule,
    ) -> Result<ByteLevelBpe, Error> {
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
        Ok(ByteLevelBpe {
            bpe,
            alphabet: ByteLevelAlphabet::new(),
        })
    }

    /// Appends the ids of one fragment of plain text (no special tokens in it).
    pub(crate) fn encode_into(&self, text: &str, out: &mut Vec<u32>) -> Result<(), Error> {
        let encoding = self
            .bpe
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenize {
                message: e.to_string(),
            })?;
        out.extend_from_slice(encoding.get_ids());
        Ok(())
    }

    /// Appends the bytes a normal or byte token's vocabulary entry stands for.
    pub(crate) fn decode_piece_into(&self, piece: &str, out: &mut Vec<u8>) {
        self.alphabet.decode_into(piece, out);
    }
}
