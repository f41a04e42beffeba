//! SentencePiece-style vocabularies (`tokenizer.ggml.model = "llama"`: Llama 2, Gemma 3, ...),
//! tokenized the way llama.cpp does it.
//!
//! llama.cpp runs one score-driven merge over the pieces (SentencePiece's BPE encoding) for every
//! such vocabulary, never a Unigram (Viterbi) search, and ignores `tokenizer.ggml.pre`. We
//! reproduce its ids:
//!
//! - Every space `' '` is written as `▁` (U+2581). With `add_space_prefix`, a fragment that starts
//!   the text or follows a special token gets one `▁` in front (Llama 2: true; Gemma: false).
//! - The fragment starts as one symbol per character. Each pair of neighbouring symbols whose
//!   concatenation is a vocabulary entry (of any token type) is a candidate, ranked by that
//!   entry's score: higher first, then the leftmost. The best candidate merges, its new neighbours
//!   become candidates, and this repeats until no candidate is left.
//! - Each final symbol becomes its token. A symbol that is not in the vocabulary (a character the
//!   vocabulary lacks) becomes one byte-fallback token `<0xNN>` per UTF-8 byte.
//!
//! Decoding: normal tokens with `▁` turned back into spaces, byte tokens as their byte.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use rotor_protocol::TokenizerSpec;

use crate::Error;

/// How a space is written inside SentencePiece vocabulary entries.
const SPACE_MARK: char = '\u{2581}';

/// The vocabulary and scores of a SentencePiece-style tokenizer.
pub(crate) struct SpmModel {
    /// Vocabulary entry to id; for duplicated entries the lowest id.
    ids: HashMap<String, u32>,
    /// Merge priority per id (`tokenizer.ggml.scores`), all 0 when the GGUF has none.
    scores: Vec<f32>,
    /// Byte-fallback token per byte value: `<0xNN>`, else the byte as a one-char entry.
    byte_ids: Vec<Option<u32>>,
    add_space_prefix: bool,
}

impl SpmModel {
    pub(crate) fn new(spec: &TokenizerSpec) -> Result<SpmModel, Error> {
        let scores = match spec.scores.len() {
            0 => vec![0.0; spec.tokens.len()],
            n if n == spec.tokens.len() => spec.scores.clone(),
            n => {
                return Err(Error::InvalidSpec {
                    reason: format!("{n} scores for {} tokens", spec.tokens.len()),
                })
            }
        };
        let mut ids = HashMap::with_capacity(spec.tokens.len());
        for (id, text) in spec.tokens.iter().enumerate() {
            ids.entry(text.clone()).or_insert(id as u32);
        }
        let byte_ids = (0..=255u8)
            .map(|byte| {
                ids.get(&format!("<0x{byte:02X}>")).copied().or_else(|| {
                    byte.is_ascii()
                        .then(|| ids.get(char::from(byte).encode_utf8(&mut [0; 4]) as &str))
                        .flatten()
                        .copied()
                })
            })
            .collect();
        Ok(SpmModel {
            ids,
            scores,
            byte_ids,
            add_space_prefix: spec.add_space_prefix,
        })
    }

    /// Whether a fragment at the start of the text or after a special token gets a leading `▁`.
    pub(crate) fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Appends the ids of one fragment of plain text; `prefix_space` puts a `▁` in front.
    pub(crate) fn encode_into(
        &self,
        text: &str,
        prefix_space: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), Error> {
        let mut escaped = String::with_capacity(text.len() + 3 * (usize::from(prefix_space) + 1));
        if prefix_space {
            escaped.push(SPACE_MARK);
        }
        escaped.extend(
            text.chars()
                .map(|ch| if ch == ' ' { SPACE_MARK } else { ch }),
        );
        for piece in self.merge(&escaped) {
            if let Some(&id) = self.ids.get(piece) {
                out.push(id);
                continue;
            }
            for byte in piece.bytes() {
                let id = self.byte_ids[usize::from(byte)].ok_or_else(|| Error::Tokenize {
                    message: format!(
                        "{piece:?} is not in the vocabulary and there is no <0x{byte:02X}> \
                         byte-fallback token"
                    ),
                })?;
                out.push(id);
            }
        }
        Ok(())
    }

    /// Appends the text a normal token stands for: its entry with `▁` as spaces.
    pub(crate) fn decode_normal_into(&self, piece: &str, out: &mut Vec<u8>) {
        let mut buf = [0u8; 4];
        for ch in piece.chars() {
            let ch = if ch == SPACE_MARK { ' ' } else { ch };
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }

    /// Appends the byte a byte token (`<0xNN>`) stands for; an entry of another shape is copied.
    pub(crate) fn decode_byte_into(&self, piece: &str, out: &mut Vec<u8>) {
        match parse_byte_token(piece) {
            Some(byte) => out.push(byte),
            None => out.extend_from_slice(piece.as_bytes()),
        }
    }

    /// The final symbols of `text` after merging, in order (see the module docs).
    fn merge<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .map(|(start, ch)| Symbol {
                start,
                len: ch.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let count = symbols.len();
        for (i, symbol) in symbols.iter_mut().enumerate() {
            symbol.prev = i.checked_sub(1);
            symbol.next = (i + 1 < count).then_some(i + 1);
        }
        let mut queue = BinaryHeap::new();
        for right in 1..count {
            self.push_candidate(text, &symbols, right - 1, right, &mut queue);
        }
        while let Some(best) = queue.pop() {
            let (left, right) = (&symbols[best.left], &symbols[best.right]);
            // Stale: one side was merged away or has grown since this candidate was made.
            if left.len == 0 || right.len == 0 || left.len + right.len != best.len {
                continue;
            }
            let after = right.next;
            symbols[best.left].len = best.len;
            symbols[best.left].next = after;
            symbols[best.right].len = 0;
            if let Some(after) = after {
                symbols[after].prev = Some(best.left);
            }
            if let Some(before) = symbols[best.left].prev {
                self.push_candidate(text, &symbols, before, best.left, &mut queue);
            }
            if let Some(after) = after {
                self.push_candidate(text, &symbols, best.left, after, &mut queue);
            }
        }
        let mut pieces = Vec::new();
        let mut at = (count > 0).then_some(0);
        while let Some(i) = at {
            let symbol = &symbols[i];
            pieces.push(&text[symbol.start..symbol.start + symbol.len]);
            at = symbol.next;
        }
        pieces
    }

    fn push_candidate(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Candidate>,
    ) {
        let start = symbols[left].start;
        let len = symbols[left].len + symbols[right].len;
        if let Some(&id) = self.ids.get(&text[start..start + len]) {
            queue.push(Candidate {
                score: self.scores[id as usize],
                left,
                right,
                len,
            });
        }
    }
}

/// `<0xNN>` (two hex digits) to the byte.
fn parse_byte_token(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A run of the text in the linked list of symbols; `len == 0` once merged into its left
/// neighbour.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A possible merge of two neighbouring symbols whose texts, `len` bytes together, form a token.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Candidate {
    /// The max-heap pops the highest score first and, among equal scores, the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of `(entry, score)`; byte tokens for every byte come after it.
    fn model(entries: &[(&str, f32)], add_space_prefix: bool) -> SpmModel {
        let mut tokens: Vec<String> = entries.iter().map(|(t, _)| t.to_string()).collect();
        let mut scores: Vec<f32> = entries.iter().map(|(_, s)| *s).collect();
        for byte in 0..=255u8 {
            tokens.push(format!("<0x{byte:02X}>"));
            scores.push(0.0);
        }
        let spec = TokenizerSpec {
            model: "llama".to_string(),
            pre: None,
            token_types: vec![1; tokens.len()],
            tokens,
            merges: Vec::new(),
            scores,
            bos_token_id: None,
            eos_token_id: None,
            eot_token_ids: Vec::new(),
            add_bos_token: false,
            add_space_prefix,
        };
        SpmModel::new(&spec).expect("valid spec")
    }

    fn encode(model: &SpmModel, text: &str, prefix: bool) -> Vec<u32> {
        let mut out = Vec::new();
        model.encode_into(text, prefix, &mut out).expect("encodes");
        out
    }

    #[test]
    fn higher_score_merges_first_even_when_it_blocks_a_longer_token() {
        // "ab" outscores "bc", so "abc" becomes "ab" + "c" although "bc" is also a token.
        let m = model(
            &[
                ("a", -1.0),
                ("b", -1.0),
                ("c", -1.0),
                ("ab", -2.0),
                ("bc", -3.0),
            ],
            false,
        );
        assert_eq!(encode(&m, "abc", false), vec![3, 2]);
        let m = model(
            &[
                ("a", -1.0),
                ("b", -1.0),
                ("c", -1.0),
                ("ab", -3.0),
                ("bc", -2.0),
            ],
            false,
        );
        assert_eq!(encode(&m, "abc", false), vec![0, 4]);
    }

    #[test]
    fn equal_scores_merge_the_leftmost_pair() {
        let m = model(&[("a", 0.0), ("aa", -1.0)], false);
        assert_eq!(encode(&m, "aaa", false), vec![1, 0]);
    }

    #[test]
    fn spaces_become_the_mark_and_the_prefix_is_optional() {
        let m = model(
            &[
                ("▁", -1.0),
                ("h", -1.0),
                ("i", -1.0),
                ("▁hi", -2.0),
                ("hi", -5.0),
            ],
            true,
        );
        assert_eq!(encode(&m, "hi", true), vec![3]);
        assert_eq!(encode(&m, "hi", false), vec![4]);
        assert_eq!(encode(&m, "hi hi", false), vec![4, 3]);
    }

    #[test]
    fn unknown_characters_fall_back_to_utf8_bytes() {
        let m = model(&[("a", -1.0)], false);
        // 'é' is C3 A9; byte tokens follow the one entry, so <0xNN> has id 1 + NN.
        assert_eq!(encode(&m, "aé", false), vec![0, 1 + 0xC3, 1 + 0xA9]);
        let mut out = Vec::new();
        m.decode_byte_into("<0xC3>", &mut out);
        m.decode_byte_into("<0xA9>", &mut out);
        m.decode_normal_into("▁x▁", &mut out);
        assert_eq!(String::from_utf8(out).expect("utf-8"), "é x ");
    }

    #[test]
    fn merges_chain_through_intermediate_pieces() {
        let m = model(
            &[
                ("▁", -9.0),
                ("t", -9.0),
                ("h", -9.0),
                ("e", -9.0),
                ("th", -1.0),
                ("the", -2.0),
                ("▁the", -3.0),
            ],
            false,
        );
        assert_eq!(encode(&m, " the", false), vec![6]);
        assert_eq!(encode(&m, "", false), Vec::<u32>::new());
    }
}
