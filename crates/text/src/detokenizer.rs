//! Incremental detokenization: ids in one at a time, text out as soon as it is final.
//!
//! Decoding tokens one by one and concatenating is wrong twice over: a character may be split
//! across byte tokens (its first token alone decodes to U+FFFD), and some tokenizers render a
//! token differently at the start of a text than after other tokens. So, as in vLLM and TGI, we
//! keep two offsets into the ids: text up to `read_offset` has been emitted; `prefix_offset`
//! starts a short window of already-emitted tokens that gives the new tokens their context. On
//! each push we decode the window with and without the unread tokens and emit the difference,
//! unless the longer text ends in U+FFFD (a character still incomplete), in which case we wait.

use std::sync::Arc;

use crate::{Error, Tokenizer};

const REPLACEMENT: char = '\u{FFFD}';

/// Streams text for one sequence of generated ids.
#[derive(Debug)]
pub struct Detokenizer {
    tokenizer: Arc<Tokenizer>,
    skip_special: bool,
    ids: Vec<u32>,
    /// Start of the context window (already emitted tokens).
    prefix_offset: usize,
    /// Tokens before this index have been emitted.
    read_offset: usize,
}

impl Detokenizer {
    pub fn new(tokenizer: Arc<Tokenizer>, skip_special: bool) -> Detokenizer {
        Detokenizer {
            tokenizer,
            skip_special,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
        }
    }

    /// Adds one id; returns the text that became final (often empty while a character is split).
    /// An id outside the vocabulary is an error and is not kept.
    pub fn push(&mut self, id: u32) -> Result<String, Error> {
        self.ids.push(id);
        let (prefix_text, full_text) = match self.window_texts() {
            Ok(texts) => texts,
            Err(e) => {
                self.ids.pop();
                return Err(e);
            }
        };
        if full_text.len() <= prefix_text.len() || full_text.ends_with(REPLACEMENT) {
            return Ok(String::new());
        }
        Ok(self.advance(&prefix_text, &full_text))
    }

    /// Emits whatever is still held back (an incomplete character comes out as U+FFFD).
    pub fn finish(&mut self) -> Result<String, Error> {
        if self.read_offset == self.ids.len() {
            return Ok(String::new());
        }
        let (prefix_text, full_text) = self.window_texts()?;
        Ok(self.advance(&prefix_text, &full_text))
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn window_texts(&self) -> Result<(String, String), Error> {
        let prefix = self.tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special,
        )?;
        let full = self
            .tokenizer
            .decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        Ok((prefix, full))
    }

    fn advance(&mut self, prefix_text: &str, full_text: &str) -> String {
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        let new_text = match full_text.strip_prefix(prefix_text) {
            Some(rest) => rest,
            // The context rendered differently once more tokens followed; emit from the first
            // char where they disagree (what was already sent cannot be taken back).
            None => &full_text[common_prefix_len(prefix_text, full_text)..],
        };
        new_text.to_string()
    }
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| a.len().min(b.len()))
}
