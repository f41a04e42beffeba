//! Grammar-constrained sampling with llguidance.
//!
//! - [`ConstraintVocab`]: the model's vocabulary as a `toktrie` trie (each token's raw bytes;
//!   special tokens as `0xFF` + their name, so Lark grammars can name them) and an llguidance
//!   `ParserFactory`. Built once per engine (shared through an `Arc`); it compiles a request's
//!   [`Constraint`] into a per-sequence [`SeqConstraint`].
//! - Compiling is strict: a JSON-schema keyword llguidance cannot enforce, a regex or grammar that
//!   does not compile, or a migrated request whose replayed tokens the grammar refuses is an
//!   `InvalidRequest` naming the problem. Nothing is loosened (llguidance's `lenient` stays off,
//!   and a schema's own `x-guidance` options are refused).
//! - [`SeqConstraint`] lives in its `Sequence` (so it survives preemption), computes the token
//!   mask for the next sample (on a helper thread while the forward pass runs; see
//!   `EngineCore::step`), is advanced with each accepted token, and hands out forced tokens
//!   (fast-forward).
//! - [`ConstraintCounters`]: atomics shared by the engine thread, its mask helper and the
//!   handles (compiles and rejections happen in `EngineHandle::submit`, on the caller's thread).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use rotor_protocol::Constraint;
use serde_json::Value;
use toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};

/// One vocabulary entry, as the constraint engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VocabToken {
    /// A token that stands for these bytes (byte-level BPE pieces mapped back to raw bytes,
    /// SentencePiece pieces with `▁` as a space, byte tokens as their byte). Empty: never
    /// allowed by a constraint (unused slots).
    Bytes(Vec<u8>),
    /// A control token (`<|im_end|>`, `<eos>`): never matched by text, but a Lark grammar can
    /// name it (`<|im_end|>`).
    Special(String),
}

/// The tokenizer the constraint engine uses to turn forced bytes into tokens (fast-forward).
pub type TokenizeFn = Arc<dyn Fn(&str) -> Vec<u32> + Send + Sync>;

/// Where the vocabulary comes from. The engine does not know tokenizers (layering: no
/// `rotor-text`); the wiring builds this from the model's (`rotor_worker::native`).
#[derive(Clone)]
pub struct VocabSource {
    /// Entry `i` is token `i`; shorter than the model's vocabulary is allowed (the rest never
    /// match).
    pub tokens: Vec<VocabToken>,
    /// Tokens that end generation (eos, end-of-turn); a constraint allows them only once its
    /// grammar is complete. Must not be empty.
    pub eos_token_ids: Vec<u32>,
    /// The model's own tokenizer (plain text, no special tokens). With it, forced text is
    /// tokenized canonically and fast-forwarded; without it, nothing is fast-forwarded.
    pub tokenize: Option<TokenizeFn>,
}

impl std::fmt::Debug for VocabSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VocabSource")
            .field("tokens", &self.tokens.len())
            .field("eos_token_ids", &self.eos_token_ids)
            .field("tokenize", &self.tokenize.is_some())
            .finish()
    }
}

/// `toktrie`'s view of the tokenizer.
struct EngineTokEnv {
    trie: TokTrie,
    tokenize: Option<TokenizeFn>,
}

impl TokenizerEnv for EngineTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        match (&self.tokenize, std::str::from_utf8(s)) {
            (Some(tokenize), Ok(text)) => tokenize(text),
            _ => self.trie.greedy_tokenize(s),
        }
    }

    fn tokenize_is_canonical(&self) -> bool {
        self.tokenize.is_some()
    }
}

/// The JSON layout constrained JSON is generated in: no free whitespace (a small model would
/// otherwise wander into runs of newlines), `", "` and `": "` between items as models write them.
fn json_options() -> Value {
    serde_json::json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
        "lenient": false,
    })
}

/// The compiled vocabulary and grammar factory of one engine.
pub struct ConstraintVocab {
    factory: ParserFactory,
    vocab_size: usize,
    eos: Vec<u32>,
    fast_forward: bool,
}

impl std::fmt::Debug for ConstraintVocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintVocab")
            .field("vocab_size", &self.vocab_size)
            .field("eos", &self.eos)
            .field("fast_forward", &self.fast_forward)
            .finish()
    }
}

impl ConstraintVocab {
    /// Builds the trie over `vocab_size` tokens (the model's logits width) and the factory.
    pub fn new(source: VocabSource, vocab_size: usize) -> Result<Self, String> {
        if vocab_size == 0 {
            return Err("the vocabulary is empty".into());
        }
        if source.tokens.len() > vocab_size {
            return Err(format!(
                "the tokenizer has {} tokens but the model only {vocab_size}",
                source.tokens.len()
            ));
        }
        let Some(&first_eos) = source.eos_token_ids.first() else {
            return Err("no end-of-sequence token".into());
        };
        if let Some(&bad) = source
            .eos_token_ids
            .iter()
            .find(|&&id| id as usize >= vocab_size)
        {
            return Err(format!("eos token {bad} is outside the vocabulary"));
        }
        let mut words: Vec<Vec<u8>> = source
            .tokens
            .iter()
            .map(|t| match t {
                VocabToken::Bytes(b) => b.clone(),
                VocabToken::Special(name) => {
                    let mut w = Vec::with_capacity(name.len() + 1);
                    w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                    w.extend_from_slice(name.as_bytes());
                    w
                }
            })
            .collect();
        words.resize(vocab_size, Vec::new());
        let info = TokRxInfo::new(vocab_size as u32, first_eos);
        // `toktrie` asserts its invariants; a vocabulary that breaks one is an error here, not
        // a crashed worker.
        let eos_ids = source.eos_token_ids.clone();
        let trie = std::panic::catch_unwind(move || {
            TokTrie::from(&info, &words).with_eos_tokens(&eos_ids)
        })
        .map_err(|_| "the vocabulary cannot be indexed (toktrie refused it)".to_string())?;
        let fast_forward = source.tokenize.is_some();
        let env: TokEnv = Arc::new(EngineTokEnv {
            trie,
            tokenize: source.tokenize,
        });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(Self {
            factory,
            vocab_size,
            eos: source.eos_token_ids,
            fast_forward,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Whether forced tokens can be fast-forwarded (a canonical tokenizer was given).
    pub fn fast_forward(&self) -> bool {
        self.fast_forward
    }

    /// Compiles `constraint` and feeds it `replay` (tokens already generated under it, before a
    /// migration). The error names what cannot be enforced.
    pub fn compile(
        &self,
        constraint: &Constraint,
        replay: &[u32],
    ) -> Result<SeqConstraint, String> {
        let grammar = grammar_for(constraint)?;
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| format!("{}: {e}", constraint_name(constraint)))?;
        let mut matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(format!("{}: {e}", constraint_name(constraint)));
        }
        if !replay.is_empty() {
            if let Some(&bad) = replay.iter().find(|&&t| t as usize >= self.vocab_size) {
                return Err(format!("replayed token {bad} is outside the vocabulary"));
            }
            let taken = matcher
                .try_consume_tokens(replay)
                .map_err(|e| format!("replaying the generated tokens failed: {e}"))?;
            if taken != replay.len() {
                return Err(format!(
                    "the constraint refuses replayed token {} (generated token {} of {})",
                    replay[taken],
                    taken + 1,
                    replay.len()
                ));
            }
        }
        Ok(SeqConstraint {
            matcher,
            mask: None,
            error: None,
            eos: self.eos.clone(),
            fast_forward: self.fast_forward,
        })
    }
}

fn constraint_name(c: &Constraint) -> &'static str {
    match c {
        Constraint::JsonObject => "json_object",
        Constraint::JsonSchema { .. } => "json_schema",
        Constraint::Regex { .. } => "regex",
        Constraint::Choice { .. } => "choice",
        Constraint::Lark { .. } => "lark grammar",
        Constraint::Gbnf { .. } => "gbnf grammar",
    }
}

/// The llguidance grammar for a constraint.
fn grammar_for(c: &Constraint) -> Result<TopLevelGrammar, String> {
    Ok(match c {
        Constraint::JsonObject => {
            let mut schema = serde_json::json!({ "type": "object" });
            schema["x-guidance"] = json_options();
            TopLevelGrammar::from_json_schema(schema)
        }
        Constraint::JsonSchema { schema, strict } => {
            let mut schema = schema.clone();
            match &mut schema {
                Value::Object(map) => {
                    if map.contains_key("x-guidance") {
                        return Err(
                            "json_schema: the `x-guidance` key is not accepted (its options could \
                             loosen the schema)"
                                .into(),
                        );
                    }
                }
                Value::Bool(b) => {
                    schema = if *b {
                        serde_json::json!({})
                    } else {
                        return Err("json_schema: the schema `false` matches nothing".into());
                    }
                }
                _ => return Err("json_schema: the schema must be an object or a boolean".into()),
            }
            if *strict {
                close_objects(&mut schema);
            }
            schema["x-guidance"] = json_options();
            TopLevelGrammar::from_json_schema(schema)
        }
        Constraint::Regex { pattern } => TopLevelGrammar::from_regex(pattern),
        Constraint::Choice { choices } => {
            if choices.is_empty() {
                return Err("choice: the list of choices is empty".into());
            }
            let alternatives: Vec<String> = choices
                .iter()
                .map(|c| serde_json::to_string(c).expect("a string serialises"))
                .collect();
            TopLevelGrammar::from_lark(format!("start: {}", alternatives.join(" | ")))
        }
        Constraint::Lark { grammar } => TopLevelGrammar::from_lark(grammar.clone()),
        Constraint::Gbnf { grammar } => TopLevelGrammar::from_lark(crate::gbnf::to_lark(grammar)?),
    })
}

/// OpenAI's `strict`: every object schema without `additionalProperties` gets `false`, through
/// every subschema (properties, items, combinators, definitions). The branches of an `allOf` are
/// not closed themselves (each would forbid the others' properties), only what they contain.
fn close_objects(schema: &mut Value) {
    close_schema(schema, true);
}

fn close_schema(schema: &mut Value, close_self: bool) {
    let Value::Object(map) = schema else {
        return;
    };
    let is_object = map.contains_key("properties")
        || match map.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => false,
        };
    if close_self && is_object && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in [
        "additionalProperties",
        "items",
        "additionalItems",
        "not",
        "if",
        "then",
        "else",
        "contains",
    ] {
        if let Some(sub) = map.get_mut(key) {
            if sub.is_array() {
                sub.as_array_mut()
                    .into_iter()
                    .flatten()
                    .for_each(close_objects);
            } else {
                close_objects(sub);
            }
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            subs.iter_mut()
                .for_each(|s| close_schema(s, key != "allOf"));
        }
    }
    for key in ["properties", "patternProperties", "$defs", "definitions"] {
        if let Some(Value::Object(subs)) = map.get_mut(key) {
            subs.values_mut().for_each(close_objects);
        }
    }
}

/// A sequence's constraint state: the matcher, and the mask for its next sample.
pub struct SeqConstraint {
    matcher: Matcher,
    mask: Option<SimpleVob>,
    /// Why the last mask could not be computed.
    error: Option<String>,
    eos: Vec<u32>,
    fast_forward: bool,
}

impl std::fmt::Debug for SeqConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqConstraint")
            .field("stopped", &self.matcher.is_stopped())
            .field("has_mask", &self.mask.is_some())
            .field("error", &self.error)
            .finish()
    }
}

/// What accepting a sampled token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// The grammar goes on.
    Continue,
    /// The grammar is complete: the sequence ends (`Stop`).
    Complete,
}

impl SeqConstraint {
    /// Computes the mask of tokens allowed next (kept for `apply_mask`); returns how long it took.
    pub fn compute_mask(&mut self) -> Duration {
        let start = Instant::now();
        match self.matcher.compute_mask_or_eos() {
            Ok(mask) => {
                self.mask = Some(mask);
                self.error = None;
            }
            Err(e) => {
                self.mask = None;
                self.error = Some(e.to_string());
            }
        }
        start.elapsed()
    }

    /// Whether a mask is ready for the next sample.
    pub fn has_mask(&self) -> bool {
        self.mask.is_some() || self.error.is_some()
    }

    /// Sets every logit the grammar forbids to -inf (the mask of `compute_mask`, which is
    /// consumed). Errors if the mask could not be computed or allows nothing.
    pub fn apply_mask(&mut self, logits: &mut [f32]) -> Result<(), String> {
        if let Some(e) = self.error.take() {
            return Err(format!("the constraint failed: {e}"));
        }
        let mask = self
            .mask
            .take()
            .ok_or_else(|| "the constraint's mask was not computed".to_string())?;
        if mask.is_zero() {
            return Err("the constraint allows no token".into());
        }
        apply_vob(&mask, logits);
        Ok(())
    }

    /// Whether `token` ends the sequence (an eos token the mask allowed).
    pub fn is_eos(&self, token: u32) -> bool {
        self.eos.contains(&token)
    }

    /// Advances the grammar by a sampled (non-eos) token.
    pub fn accept(&mut self, token: u32) -> Result<Accepted, String> {
        let taken = self
            .matcher
            .try_consume_tokens(&[token])
            .map_err(|e| format!("the constraint failed: {e}"))?;
        if taken != 1 {
            return Err(format!("the constraint refused sampled token {token}"));
        }
        Ok(if self.matcher.is_stopped() {
            Accepted::Complete
        } else {
            Accepted::Continue
        })
    }

    /// Tokens the grammar forces next (the only continuation), at most `max`, already accepted.
    pub fn fast_forward(&mut self, max: usize, out: &mut Vec<u32>) {
        out.clear();
        if !self.fast_forward || max == 0 || self.matcher.is_stopped() {
            return;
        }
        let mut forced = self.matcher.compute_ff_tokens();
        forced.truncate(max);
        if forced.is_empty() {
            return;
        }
        if let Ok(n) = self.matcher.try_consume_tokens(&forced) {
            out.extend_from_slice(&forced[..n]);
        }
    }

    /// Whether the grammar is complete (nothing but eos can follow).
    pub fn is_complete(&self) -> bool {
        self.matcher.is_stopped()
    }
}

/// -inf for every token `mask` does not allow (and every logit past its length).
pub fn apply_vob(mask: &SimpleVob, logits: &mut [f32]) {
    let words = mask.as_slice();
    for (w, chunk) in logits.chunks_mut(32).enumerate() {
        let bits = words.get(w).copied().unwrap_or(0);
        if bits == u32::MAX {
            continue;
        }
        if bits == 0 {
            chunk.fill(f32::NEG_INFINITY);
            continue;
        }
        for (i, l) in chunk.iter_mut().enumerate() {
            if bits & (1 << i) == 0 {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Constraint counters of one engine (see [`ConstraintStats`]).
#[derive(Debug, Default)]
pub struct ConstraintCounters {
    requests: AtomicU64,
    rejections: AtomicU64,
    masks: AtomicU64,
    mask_nanos: AtomicU64,
    mask_nanos_max: AtomicU64,
    mask_wait_nanos: AtomicU64,
    forced_tokens: AtomicU64,
    failures: AtomicU64,
}

/// A snapshot of the constraint counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConstraintStats {
    /// Constrained requests accepted (compiled).
    pub requests: u64,
    /// Constrained requests refused (the constraint could not be compiled or enforced, or the
    /// engine has no vocabulary for constraints).
    pub rejections: u64,
    /// Token masks computed.
    pub masks: u64,
    /// Time spent computing them, summed (on the mask helper thread, overlapping the forward).
    pub mask_nanos: u64,
    /// The longest single mask.
    pub mask_nanos_max: u64,
    /// Time the engine thread waited for masks after the forward pass had finished (the part
    /// of mask time not hidden behind the forward).
    pub mask_wait_nanos: u64,
    /// Tokens appended without sampling because the grammar forced them (fast-forward).
    pub forced_tokens: u64,
    /// Constrained sequences failed mid-generation (the matcher errored or allowed nothing).
    pub failures: u64,
}

impl ConstraintCounters {
    pub fn snapshot(&self) -> ConstraintStats {
        let r = Ordering::Relaxed;
        ConstraintStats {
            requests: self.requests.load(r),
            rejections: self.rejections.load(r),
            masks: self.masks.load(r),
            mask_nanos: self.mask_nanos.load(r),
            mask_nanos_max: self.mask_nanos_max.load(r),
            mask_wait_nanos: self.mask_wait_nanos.load(r),
            forced_tokens: self.forced_tokens.load(r),
            failures: self.failures.load(r),
        }
    }

    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejection(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn mask(&self, took: Duration) {
        let nanos = took.as_nanos().min(u64::MAX as u128) as u64;
        self.masks.fetch_add(1, Ordering::Relaxed);
        self.mask_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.mask_nanos_max.fetch_max(nanos, Ordering::Relaxed);
    }

    pub(crate) fn mask_wait(&self, took: Duration) {
        let nanos = took.as_nanos().min(u64::MAX as u128) as u64;
        self.mask_wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn forced(&self, n: usize) {
        self.forced_tokens.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level vocabulary: tokens 0..256 are single bytes, then a few words, then eos.
    fn vocab(with_tokenizer: bool) -> ConstraintVocab {
        let mut tokens: Vec<VocabToken> = (0..=255u8).map(|b| VocabToken::Bytes(vec![b])).collect();
        for w in ["yes", "no", "{\"", "\":", "true", "false"] {
            tokens.push(VocabToken::Bytes(w.as_bytes().to_vec()));
        }
        tokens.push(VocabToken::Special("<|end|>".into()));
        let eos = tokens.len() as u32 - 1;
        let tokenize: Option<TokenizeFn> = with_tokenizer.then(|| {
            // One token per byte: canonical for this vocabulary when no word is used.
            Arc::new(|s: &str| s.bytes().map(u32::from).collect()) as TokenizeFn
        });
        ConstraintVocab::new(
            VocabSource {
                tokens,
                eos_token_ids: vec![eos],
                tokenize,
            },
            300,
        )
        .unwrap()
    }

    fn allowed(c: &mut SeqConstraint) -> Vec<u32> {
        c.compute_mask();
        let mut logits = vec![0.0f32; 300];
        c.apply_mask(&mut logits).unwrap();
        (0..300u32).filter(|&i| logits[i as usize] == 0.0).collect()
    }

    #[test]
    fn choice_masks_then_completes() {
        let v = vocab(false);
        let mut c = v
            .compile(
                &Constraint::Choice {
                    choices: vec!["yes".into(), "no".into()],
                },
                &[],
            )
            .unwrap();
        let first = allowed(&mut c);
        assert!(first.contains(&(b'y' as u32)) && first.contains(&(b'n' as u32)));
        assert!(
            first.contains(&256) && first.contains(&257),
            "word tokens yes/no"
        );
        assert!(!first.contains(&(b'x' as u32)));
        assert!(!first.contains(&262), "eos before the grammar is complete");
        assert_eq!(c.accept(257).unwrap(), Accepted::Complete);
        assert!(c.is_complete());
    }

    #[test]
    fn mask_tokens_past_the_tokenizer_are_forbidden() {
        let v = vocab(false);
        let mut c = v
            .compile(
                &Constraint::Regex {
                    pattern: ".*".into(),
                },
                &[],
            )
            .unwrap();
        let ok = allowed(&mut c);
        assert!(ok.iter().all(|&t| t < 263), "unused slots never match");
        assert!(ok.contains(&262), "eos is allowed where the regex may end");
    }

    #[test]
    fn forced_text_is_fast_forwarded_with_a_tokenizer() {
        for (with_tokenizer, expected) in [(true, b"ello".to_vec()), (false, Vec::new())] {
            let v = vocab(with_tokenizer);
            let mut c = v
                .compile(
                    &Constraint::Regex {
                        pattern: "hello[0-9]".into(),
                    },
                    &[],
                )
                .unwrap();
            assert_eq!(allowed(&mut c), vec![b'h' as u32]);
            assert_eq!(c.accept(b'h' as u32).unwrap(), Accepted::Continue);
            let mut forced = Vec::new();
            c.fast_forward(16, &mut forced);
            let forced: Vec<u8> = forced.iter().map(|&t| t as u8).collect();
            // llguidance keeps back the last forced token when it could merge with what follows.
            assert!(expected.starts_with(&forced), "{forced:?}");
            assert_eq!(forced.is_empty(), !with_tokenizer);
        }
    }

    #[test]
    fn replay_resumes_and_refuses_what_the_grammar_refuses() {
        let v = vocab(false);
        let c = Constraint::Regex {
            pattern: "ab+c".into(),
        };
        let mut resumed = v.compile(&c, &[b'a' as u32, b'b' as u32]).unwrap();
        let ok = allowed(&mut resumed);
        assert_eq!(ok, vec![b'b' as u32, b'c' as u32]);
        let err = v.compile(&c, &[b'a' as u32, b'x' as u32]).unwrap_err();
        assert!(err.contains("replayed token 120"), "{err}");
    }

    #[test]
    fn strict_closes_every_object() {
        let mut s = serde_json::json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {}},
                           "b": {"type": "array", "items": {"properties": {"c": {}}}}},
            "$defs": {"d": {"type": ["object", "null"]}},
            "anyOf": [{"type": "object", "additionalProperties": true}],
            "allOf": [{"type": "object", "properties": {"e": {"type": "object"}}}]
        });
        close_objects(&mut s);
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["a"]["additionalProperties"], false);
        assert_eq!(s["properties"]["b"]["items"]["additionalProperties"], false);
        assert_eq!(s["$defs"]["d"]["additionalProperties"], false);
        assert_eq!(s["anyOf"][0]["additionalProperties"], true);
        assert!(s["properties"]["b"].get("additionalProperties").is_none());
        assert!(s["allOf"][0].get("additionalProperties").is_none());
        assert_eq!(
            s["allOf"][0]["properties"]["e"]["additionalProperties"],
            false
        );
    }

    #[test]
    fn apply_vob_forbids_unset_bits_and_the_tail() {
        let mut mask = SimpleVob::alloc(40);
        mask.allow_token(3);
        mask.allow_token(33);
        let mut logits = vec![1.0f32; 70];
        apply_vob(&mask, &mut logits);
        let kept: Vec<usize> = (0..70).filter(|&i| logits[i] == 1.0).collect();
        assert_eq!(kept, vec![3, 33]);
    }
}
