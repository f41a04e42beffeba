//! Requests to and outputs from an engine. Engines speak token ids only.

use serde::{Deserialize, Serialize};

use crate::token_ids::TokenIds;

/// How the next token is drawn from the logits. Defaults are greedy-free, neutral sampling
/// (temperature 1, no truncation, no penalties).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens; `None` keeps all.
    pub top_k: Option<u32>,
    /// Nucleus sampling: keep the smallest set whose probability mass reaches `top_p` (1.0 = off).
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` × the top probability (0.0 = off).
    pub min_p: f32,
    /// Seed for reproducible sampling; `None` draws a seed per request.
    pub seed: Option<u64>,
    /// Multiplicative penalty on logits of tokens already seen in prompt or output (1.0 = off),
    /// as in CTRL / HF `repetition_penalty`.
    pub repetition_penalty: f32,
    /// OpenAI `frequency_penalty`: subtract `penalty × count` of each token in the output.
    pub frequency_penalty: f32,
    /// OpenAI `presence_penalty`: subtract `penalty` once for each token present in the output.
    pub presence_penalty: f32,
    /// Grammar-constrained sampling: only tokens the constraint allows can be drawn. `None`
    /// leaves the vocabulary open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
    /// How many trailing prompt tokens were generated under `constraint` (by an earlier worker,
    /// before a migration): the engine feeds them to the constraint's matcher before sampling,
    /// so generation resumes mid-grammar. 0 for a fresh request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub constraint_replay_tokens: u32,
    /// Log-probabilities: `Some(n)` reports the sampled token's logprob and the `n` most likely
    /// alternatives (0 = the sampled token only; at most `MAX_LOGPROBS`). `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// OpenAI `logit_bias`: (token id, bias) added to the logits before anything else; biases are
    /// clamped to [-100, 100].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logit_bias: Vec<(u32, f32)>,
    /// Prompt scoring: `Some(n)` reports, for every prompt position p ≥ 1, the log-probability of
    /// prompt token p given the tokens before it, plus the `n` most likely alternatives at that
    /// position (0..=`MAX_LOGPROBS`), in `EngineOutput::prompt_logprobs` of the request's first
    /// output. They come from the model's raw logits (a plain log-softmax): no logit bias,
    /// constraint, penalties or temperature apply to them. Every prompt position is computed
    /// (no prefix-cache hit). With `max_tokens` 0 the request only scores its prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_logprobs: Option<u32>,
    /// How many more requests with exactly this prompt will follow once this one has produced
    /// its first output (the other choices of an `n > 1` request). The engine keeps the
    /// prompt's partly filled last KV block for them, so each copies it (copy-on-write) instead
    /// of recomputing its tokens: `n` sequences cost one prefill. 0 for a lone request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub siblings: u32,
    /// For one of those following requests: the request id of the one that announced it, so a
    /// router sends it to that request's worker, where the prompt's blocks are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sibling: Option<String>,
}

/// Most top alternatives `SamplingParams::logprobs` may ask for (as OpenAI's `top_logprobs`).
pub const MAX_LOGPROBS: u32 = 20;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a constrained request's output must match. The frontend translates `response_format`,
/// vLLM's guided-decoding extensions and forced tool calls into one of these; the engine compiles
/// it (llguidance) and rejects, as an invalid request, anything it cannot enforce exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Constraint {
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    JsonObject,
    /// JSON matching a JSON Schema (`response_format: {"type": "json_schema"}`).
    JsonSchema {
        schema: serde_json::Value,
        /// OpenAI's `strict`: additional properties are refused unless the schema allows them.
        #[serde(default)]
        strict: bool,
    },
    /// Text matching a regular expression (vLLM's `guided_regex`).
    Regex { pattern: String },
    /// Exactly one of these strings (vLLM's `guided_choice`).
    Choice { choices: Vec<String> },
    /// A Lark grammar (llguidance's dialect, with `%json` for embedded schemas; also what the
    /// frontend builds for forced tool calls).
    Lark { grammar: String },
    /// A llama.cpp GBNF grammar.
    Gbnf { grammar: String },
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: 1.0,
            min_p: 0.0,
            seed: None,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            constraint: None,
            constraint_replay_tokens: 0,
            logprobs: None,
            logit_bias: Vec::new(),
            prompt_logprobs: None,
            siblings: 0,
            first_sibling: None,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
}

/// When generation ends (besides cancellation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopConditions {
    /// Most tokens to generate. 0 is allowed only for a request that generates nothing: one with
    /// `SamplingParams::prompt_logprobs` (it is prefilled, scored and finishes with `Length`) or
    /// a `Task::Embed` (which must use 0).
    pub max_tokens: u32,
    /// Generation stops after producing any of these (the model's EOS ids are included by the
    /// frontend unless `ignore_eos`). The stop token itself is reported in the output.
    pub stop_token_ids: Vec<u32>,
    /// Do not stop on `stop_token_ids` before this many tokens were generated.
    pub min_tokens: u32,
    /// Ignore `stop_token_ids` entirely (benchmarks).
    pub ignore_eos: bool,
}

impl Default for StopConditions {
    fn default() -> Self {
        Self {
            max_tokens: 16,
            stop_token_ids: Vec::new(),
            min_tokens: 0,
            ignore_eos: false,
        }
    }
}

/// One generation request, already tokenized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// Unique per in-flight request; used for cancellation and logs.
    pub id: String,
    pub token_ids: Vec<u32>,
    pub sampling: SamplingParams,
    pub stop: StopConditions,
    /// What the engine computes: generated tokens (the default) or an embedding of the prompt.
    #[serde(default, skip_serializing_if = "Task::is_generate")]
    pub task: Task,
}

/// What a `GenerateRequest` asks of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Task {
    /// Prefill the prompt, then sample tokens (optionally with prompt logprobs).
    #[default]
    Generate,
    /// Pool the final hidden states (after the output norm) of every prompt token into one
    /// vector, sent as the request's only output (`EngineOutput::embedding`, finish reason
    /// `Stop`, no tokens). Needs `max_tokens` 0; no prefix-cache hit is taken.
    Embed {
        pooling: Pooling,
        /// Scale the pooled vector to unit L2 norm.
        normalize: bool,
    },
}

impl Task {
    pub fn is_generate(&self) -> bool {
        matches!(self, Task::Generate)
    }
}

/// How an embedding pools the hidden states of the prompt's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over every prompt token.
    Mean,
    /// The last prompt token's state (causal models' sentence summary).
    Last,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop token (EOS or a requested stop id) was produced, or the frontend matched a stop string.
    Stop,
    /// `max_tokens` reached, or the context window is full.
    Length,
    /// The caller cancelled.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI `finish_reason` string.
    pub fn as_openai(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "stop",
        }
    }
}

/// One step's output for one request. The last output of a request carries `finish_reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineOutput {
    /// Tokens generated in this step (usually one; held inline, so an output allocates nothing).
    pub token_ids: TokenIds,
    pub finish_reason: Option<FinishReason>,
    /// Prompt tokens served from the prefix cache (set on the first output).
    #[serde(default)]
    pub cached_prompt_tokens: Option<u32>,
    /// With `SamplingParams::logprobs`: one entry per token of `token_ids`, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// With `SamplingParams::prompt_logprobs`, on the request's first output: prompt length − 1
    /// entries, entry i about prompt token i + 1 (its logprob given the tokens before it, and
    /// the top alternatives at that position, from the raw logits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_logprobs: Option<Vec<TokenLogprob>>,
    /// The pooled embedding of a `Task::Embed` request (its only output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// The log-probability of one generated token and of its most likely alternatives, from the
/// distribution the token was drawn from after logit bias, constraint mask and penalties but
/// before temperature and truncation (vLLM's `processed_logprobs` without temperature). A token
/// forced by a constraint (fast-forwarded, not sampled) has logprob 0 and itself as the only
/// alternative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token_id: u32,
    pub logprob: f32,
    /// The most likely tokens, most likely first (lower id on ties), `SamplingParams::logprobs`
    /// of them; tokens the constraint forbids are never listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<(u32, f32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_without_the_new_fields_still_parse_and_defaults_are_not_written() {
        let old = r#"{"temperature":0.0,"top_k":null,"top_p":1.0,"min_p":0.0,"seed":null,
            "repetition_penalty":1.0,"frequency_penalty":0.0,"presence_penalty":0.0}"#;
        let p: SamplingParams = serde_json::from_str(old).unwrap();
        assert_eq!(p, SamplingParams::greedy());
        let text = serde_json::to_string(&SamplingParams::greedy()).unwrap();
        for field in ["constraint", "logprobs", "logit_bias", "prompt_logprobs"] {
            assert!(!text.contains(field), "{text}");
        }
        let out: EngineOutput =
            serde_json::from_str(r#"{"token_ids":[1],"finish_reason":null}"#).unwrap();
        assert_eq!(out.logprobs, None);
        assert_eq!((out.prompt_logprobs, out.embedding), (None, None));
        let req: GenerateRequest = serde_json::from_str(
            r#"{"id":"a","token_ids":[1],"sampling":{"temperature":0.0,"top_k":null,"top_p":1.0,
            "min_p":0.0,"seed":null,"repetition_penalty":1.0,"frequency_penalty":0.0,
            "presence_penalty":0.0},"stop":{"max_tokens":1,"stop_token_ids":[],"min_tokens":0,
            "ignore_eos":false}}"#,
        )
        .unwrap();
        assert_eq!(req.task, Task::Generate);
        assert!(!serde_json::to_string(&req).unwrap().contains("task"));
    }

    #[test]
    fn scoring_and_embedding_fields_round_trip() {
        let req = GenerateRequest {
            id: "e".into(),
            token_ids: vec![1, 2],
            sampling: SamplingParams {
                prompt_logprobs: Some(3),
                ..SamplingParams::greedy()
            },
            stop: StopConditions {
                max_tokens: 0,
                ..StopConditions::default()
            },
            task: Task::Embed {
                pooling: Pooling::Last,
                normalize: true,
            },
        };
        let text = serde_json::to_string(&req).unwrap();
        assert!(text.contains(r#""task":{"type":"embed","pooling":"last","normalize":true}"#));
        let back: GenerateRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, req);
        let out = EngineOutput {
            token_ids: TokenIds::new(),
            finish_reason: Some(FinishReason::Stop),
            cached_prompt_tokens: Some(0),
            logprobs: None,
            prompt_logprobs: Some(vec![TokenLogprob {
                token_id: 2,
                logprob: -1.25,
                top: vec![(2, -1.25)],
            }]),
            embedding: Some(vec![0.5, -0.5]),
        };
        let back: EngineOutput =
            serde_json::from_str(&serde_json::to_string(&out).unwrap()).unwrap();
        assert_eq!(back, out);
    }

    #[test]
    fn new_fields_round_trip() {
        let p = SamplingParams {
            constraint: Some(Constraint::Regex {
                pattern: "[0-9]+".into(),
            }),
            constraint_replay_tokens: 3,
            logprobs: Some(2),
            logit_bias: vec![(7, -100.0)],
            ..SamplingParams::default()
        };
        let back: SamplingParams =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let out = EngineOutput {
            prompt_logprobs: None,
            embedding: None,
            token_ids: vec![4, 5].into(),
            finish_reason: None,
            cached_prompt_tokens: None,
            logprobs: Some(vec![
                TokenLogprob {
                    token_id: 4,
                    logprob: -0.5,
                    top: vec![(4, -0.5), (9, -1.5)],
                },
                TokenLogprob {
                    token_id: 5,
                    logprob: 0.0,
                    top: vec![],
                },
            ]),
        };
        let back: EngineOutput =
            serde_json::from_str(&serde_json::to_string(&out).unwrap()).unwrap();
        assert_eq!(back, out);
    }
}
