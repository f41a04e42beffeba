//! One relayed request: the engine-specific request body, the SSE stream parsed back into
//! `EngineOutput`s, stop ids and `max_tokens` enforced here too, errors mapped to `WireError`
//! kinds. Also the start-up probe of an engine.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_protocol::{
    Constraint, EngineOutput, ErrorKind, FinishReason, GenerateRequest, TokenIds, WireError,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::http::{self, BaseUrl, SseParser};
use super::{ExternalKind, Shared};

/// What an engine says about itself at start-up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probe {
    /// The model name to send upstream.
    pub model: String,
    pub context_length: Option<usize>,
    pub block_size: Option<usize>,
    pub num_blocks: Option<u64>,
}

/// How long a health probe waits for the engine's answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the engine answers its health route with 200 within `HEALTH_TIMEOUT`: llama.cpp's
/// and vLLM's `/health` (llama.cpp answers 503 while loading), an OpenAI-compatible server's
/// `/v1/models`.
pub(crate) async fn healthy(kind: ExternalKind, base: &BaseUrl) -> bool {
    let path = match kind {
        ExternalKind::LlamaCpp | ExternalKind::Vllm => "/health",
        ExternalKind::OpenAi => "/v1/models",
    };
    matches!(
        tokio::time::timeout(HEALTH_TIMEOUT, http::get_text(base, path)).await,
        Ok(Ok((200, _)))
    )
}

/// Waits (up to `timeout`) until the engine answers, then reads its model name, context length
/// and (vLLM) KV block size and block count.
pub(crate) async fn probe(
    kind: ExternalKind,
    base: &BaseUrl,
    model: Option<&str>,
    timeout: Duration,
) -> Result<Probe, String> {
    let start = Instant::now();
    let path = match kind {
        ExternalKind::LlamaCpp => "/props",
        ExternalKind::Vllm | ExternalKind::OpenAi => "/v1/models",
    };
    let body = loop {
        match http::get_text(base, path).await {
            Ok((200, body)) => break body,
            Ok((status, body)) if start.elapsed() >= timeout => {
                return Err(format!("GET {path}: HTTP {status}: {}", clip(&body)));
            }
            Err(e) if start.elapsed() >= timeout => {
                return Err(format!("GET {path}: {e} (is the engine running?)"));
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}"))?;
    let mut probe = Probe::default();
    match kind {
        ExternalKind::LlamaCpp => {
            probe.context_length = v["default_generation_settings"]["n_ctx"]
                .as_u64()
                .map(|n| n as usize);
            probe.model = model
                .map(str::to_string)
                .or_else(|| v["model_alias"].as_str().map(str::to_string))
                .unwrap_or_default();
        }
        ExternalKind::Vllm | ExternalKind::OpenAi => {
            let models = v["data"].as_array().cloned().unwrap_or_default();
            let entry = match model {
                Some(name) => models
                    .iter()
                    .find(|m| m["id"] == name)
                    .ok_or_else(|| {
                        let ids: Vec<_> = models.iter().filter_map(|m| m["id"].as_str()).collect();
                        format!("the engine serves no model {name:?} (it serves {ids:?})")
                    })?
                    .clone(),
                None => models
                    .first()
                    .cloned()
                    .ok_or("the engine's /v1/models lists no model")?,
            };
            probe.model = entry["id"].as_str().unwrap_or_default().to_string();
            // vLLM says `max_model_len`; llama.cpp's /v1/models says `meta.n_ctx_train`.
            probe.context_length = entry["max_model_len"].as_u64().map(|n| n as usize);
            if kind == ExternalKind::Vllm {
                if let Ok((200, text)) = http::get_text(base, "/metrics").await {
                    let info = super::metrics::cache_config(&text);
                    probe.block_size = info.block_size;
                    probe.num_blocks = info.num_blocks;
                }
            } else if probe.context_length.is_none() {
                // llama-server behind `openai`: its per-slot context.
                if let Ok((200, props)) = http::get_text(base, "/props").await {
                    if let Ok(p) = serde_json::from_str::<Value>(&props) {
                        probe.context_length = p["default_generation_settings"]["n_ctx"]
                            .as_u64()
                            .map(|n| n as usize);
                    }
                }
            }
        }
    }
    Ok(probe)
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn unsupported(kind: ExternalKind, what: &str) -> WireError {
    WireError::new(
        ErrorKind::InvalidRequest,
        format!(
            "{what} is not supported by this worker's engine ({})",
            kind.as_str()
        ),
    )
}

/// Refuses what the engine cannot do (before anything is sent upstream).
pub(crate) fn check_supported(kind: ExternalKind, req: &GenerateRequest) -> Result<(), WireError> {
    // Neither llama-server's /completion nor vLLM's and OpenAI's completions are relayed with
    // the per-token prompt outputs these need (and a served model may not embed at all).
    if !req.task.is_generate() {
        return Err(unsupported(kind, "embedding (Task::Embed)"));
    }
    if req.sampling.prompt_logprobs.is_some() {
        return Err(unsupported(kind, "prompt_logprobs (prompt scoring)"));
    }
    if req.sampling.logprobs.is_some() {
        return Err(unsupported(kind, "logprobs"));
    }
    if !req.sampling.logit_bias.is_empty() && kind == ExternalKind::OpenAi {
        return Err(unsupported(kind, "logit_bias"));
    }
    match (&req.sampling.constraint, kind) {
        (None, _) => Ok(()),
        (
            Some(Constraint::JsonObject | Constraint::JsonSchema { .. } | Constraint::Gbnf { .. }),
            ExternalKind::LlamaCpp,
        ) => Ok(()),
        (
            Some(
                Constraint::JsonObject
                | Constraint::JsonSchema { .. }
                | Constraint::Regex { .. }
                | Constraint::Choice { .. },
            ),
            ExternalKind::Vllm,
        ) => Ok(()),
        (Some(_), _) => Err(unsupported(kind, "this response_format / constraint")),
    }
}

/// The upstream path and JSON body for `req`.
fn request_body(
    shared: &Shared,
    req: &GenerateRequest,
) -> Result<(&'static str, Value), WireError> {
    let s = &req.sampling;
    match shared.kind {
        ExternalKind::LlamaCpp => {
            let mut body = json!({
                "prompt": req.token_ids,
                "n_predict": req.stop.max_tokens,
                "stream": true,
                "return_tokens": true,
                "cache_prompt": true,
                "temperature": s.temperature,
                "top_k": s.top_k.unwrap_or(0),
                "top_p": s.top_p,
                "min_p": s.min_p,
                "repeat_penalty": s.repetition_penalty,
                "frequency_penalty": s.frequency_penalty,
                "presence_penalty": s.presence_penalty,
                "ignore_eos": req.stop.ignore_eos,
            });
            if let Some(seed) = s.seed {
                body["seed"] = json!(seed);
            }
            if !s.logit_bias.is_empty() {
                body["logit_bias"] = json!(s
                    .logit_bias
                    .iter()
                    .map(|(t, b)| json!([t, b]))
                    .collect::<Vec<_>>());
            }
            match &s.constraint {
                Some(Constraint::JsonObject) => body["json_schema"] = json!({"type": "object"}),
                Some(Constraint::JsonSchema { schema, .. }) => body["json_schema"] = schema.clone(),
                Some(Constraint::Gbnf { grammar }) => body["grammar"] = json!(grammar),
                _ => {}
            }
            Ok(("/completion", body))
        }
        ExternalKind::Vllm => {
            let mut body = json!({
                "model": shared.upstream_model,
                "prompt": req.token_ids,
                "max_tokens": req.stop.max_tokens,
                "stream": true,
                "return_token_ids": true,
                "temperature": s.temperature,
                "top_p": s.top_p,
                "top_k": s.top_k.map(|k| k as i64).unwrap_or(-1),
                "min_p": s.min_p,
                "repetition_penalty": s.repetition_penalty,
                "frequency_penalty": s.frequency_penalty,
                "presence_penalty": s.presence_penalty,
                "stop_token_ids": req.stop.stop_token_ids,
                "ignore_eos": req.stop.ignore_eos,
                "min_tokens": req.stop.min_tokens,
                "skip_special_tokens": false,
            });
            if let Some(seed) = s.seed {
                body["seed"] = json!(seed);
            }
            if !s.logit_bias.is_empty() {
                let bias: serde_json::Map<String, Value> = s
                    .logit_bias
                    .iter()
                    .map(|(t, b)| (t.to_string(), json!(b)))
                    .collect();
                body["logit_bias"] = Value::Object(bias);
            }
            match &s.constraint {
                Some(Constraint::JsonObject) => {
                    body["structured_outputs"] = json!({"json_object": true})
                }
                Some(Constraint::JsonSchema { schema, .. }) => {
                    body["structured_outputs"] = json!({"json": schema})
                }
                Some(Constraint::Regex { pattern }) => {
                    body["structured_outputs"] = json!({"regex": pattern})
                }
                Some(Constraint::Choice { choices }) => {
                    body["structured_outputs"] = json!({"choice": choices})
                }
                _ => {}
            }
            Ok(("/v1/completions", body))
        }
        ExternalKind::OpenAi => {
            let tokenizer = shared.tokenizer.as_ref().ok_or_else(|| {
                WireError::new(ErrorKind::Internal, "the openai relay has no tokenizer")
            })?;
            let prompt = tokenizer.decode(&req.token_ids, false).map_err(|e| {
                WireError::new(
                    ErrorKind::InvalidRequest,
                    format!("detokenizing the prompt: {e}"),
                )
            })?;
            let mut body = json!({
                "model": shared.upstream_model,
                "prompt": prompt,
                "max_tokens": req.stop.max_tokens,
                "stream": true,
                "temperature": s.temperature,
                "top_p": s.top_p,
                "frequency_penalty": s.frequency_penalty,
                "presence_penalty": s.presence_penalty,
            });
            if let Some(seed) = s.seed {
                body["seed"] = json!(seed);
            }
            Ok(("/v1/completions", body))
        }
    }
}

/// One parsed upstream event.
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    tokens: Vec<u32>,
    finish: Option<FinishReason>,
    cached_prompt_tokens: Option<u32>,
    /// The stream's `[DONE]`.
    done: bool,
}

fn malformed(what: &str, data: &str) -> WireError {
    WireError::new(
        ErrorKind::Internal,
        format!("the engine sent {what}: {}", clip(data)),
    )
}

fn openai_finish(v: &Value) -> Option<FinishReason> {
    match v.as_str()? {
        "length" => Some(FinishReason::Length),
        "abort" | "cancelled" => Some(FinishReason::Cancelled),
        _ => Some(FinishReason::Stop),
    }
}

fn parse_event(shared: &Shared, data: &str) -> Result<Parsed, WireError> {
    if data.trim() == "[DONE]" {
        return Ok(Parsed {
            done: true,
            ..Parsed::default()
        });
    }
    let v: Value = serde_json::from_str(data).map_err(|_| malformed("a non-JSON event", data))?;
    if v.get("error").is_some() {
        return Err(upstream_error(500, &v));
    }
    let ids = |arr: &Value| -> Result<Vec<u32>, WireError> {
        match arr {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|t| {
                    t.as_u64()
                        .map(|t| t as u32)
                        .ok_or_else(|| malformed("a bad token id", data))
                })
                .collect(),
            _ => Err(malformed("bad token ids", data)),
        }
    };
    match shared.kind {
        ExternalKind::LlamaCpp => {
            let tokens = ids(&v["tokens"])?;
            let finish = if v["stop"].as_bool() == Some(true) {
                Some(match v["stop_type"].as_str() {
                    Some("limit") => FinishReason::Length,
                    _ => FinishReason::Stop,
                })
            } else {
                None
            };
            let cached = v["timings"]["cache_n"].as_u64().map(|n| n as u32);
            Ok(Parsed {
                tokens,
                finish,
                cached_prompt_tokens: cached,
                done: false,
            })
        }
        ExternalKind::Vllm => {
            let choice = &v["choices"][0];
            let cached = v["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .map(|n| n as u32);
            Ok(Parsed {
                tokens: ids(&choice["token_ids"])?,
                finish: openai_finish(&choice["finish_reason"]),
                cached_prompt_tokens: cached,
                done: false,
            })
        }
        ExternalKind::OpenAi => {
            let choice = &v["choices"][0];
            let text = choice["text"].as_str().unwrap_or_default();
            let tokens = if text.is_empty() {
                Vec::new()
            } else {
                let tokenizer = shared
                    .tokenizer
                    .as_ref()
                    .expect("openai relays have a tokenizer");
                tokenizer.encode(text, true).map_err(|e| {
                    WireError::new(
                        ErrorKind::Internal,
                        format!("tokenizing the engine's output: {e}"),
                    )
                })?
            };
            Ok(Parsed {
                tokens,
                finish: openai_finish(&choice["finish_reason"]),
                cached_prompt_tokens: None,
                done: false,
            })
        }
    }
}

/// A `WireError` for an HTTP error status (or an error object in a stream).
fn upstream_error(status: u16, body: &Value) -> WireError {
    let message = body["error"]["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .or_else(|| body["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| clip(&body.to_string()).to_string());
    let kind = match status {
        400 | 422 => ErrorKind::InvalidRequest,
        404 => ErrorKind::ModelNotFound,
        429 | 503 => ErrorKind::Overloaded,
        _ => ErrorKind::Internal,
    };
    WireError::new(kind, format!("engine: HTTP {status}: {message}"))
}

fn engine_down(shared: &Shared, e: std::io::Error) -> WireError {
    WireError::new(
        ErrorKind::EngineStopped,
        format!("the engine at {} failed: {e}", shared.base.display()),
    )
}

/// Counts a running request while alive.
struct Running<'a>(&'a Shared);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Relays `req` and sends its outputs to `tx` until the end, an error, the receiver's drop
/// (cancellation: the upstream connection is closed) or the engine's shutdown.
pub(crate) async fn run(
    shared: Arc<Shared>,
    req: GenerateRequest,
    tx: mpsc::Sender<Result<EngineOutput, WireError>>,
) {
    shared.running.fetch_add(1, Ordering::Relaxed);
    let _running = Running(&shared);
    let result = tokio::select! {
        result = relay(&shared, &req, &tx) => result,
        _ = tx.closed() => {
            shared.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        _ = shared.stopped.cancelled() => Err(WireError::new(ErrorKind::EngineStopped, "the worker is stopping")),
    };
    match result {
        Ok(()) => {}
        Err(error) => {
            shared.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(request = %req.id, %error, "relayed request failed");
            let _ = tx.send(Err(error)).await;
        }
    }
}

async fn relay(
    shared: &Shared,
    req: &GenerateRequest,
    tx: &mpsc::Sender<Result<EngineOutput, WireError>>,
) -> Result<(), WireError> {
    let (path, body) = request_body(shared, req)?;
    let body = serde_json::to_vec(&body).expect("invariant: JSON serializes");
    let mut response = http::request(&shared.base, "POST", path, Some(&body))
        .await
        .map_err(|e| engine_down(shared, e))?;
    if response.status != 200 {
        let status = response.status;
        let text = response
            .body(1 << 20)
            .await
            .map_err(|e| engine_down(shared, e))?;
        let v = serde_json::from_slice(&text)
            .unwrap_or_else(|_| json!({ "message": String::from_utf8_lossy(&text) }));
        return Err(upstream_error(status, &v));
    }
    let mut sse = SseParser::default();
    let max_tokens = req.stop.max_tokens as usize;
    let mut generated = 0usize;
    let mut cached_sent = false;
    loop {
        let Some(piece) = response.chunk().await.map_err(|e| engine_down(shared, e))? else {
            return Err(WireError::new(
                ErrorKind::EngineStopped,
                format!(
                    "the engine at {} ended the stream before its end",
                    shared.base.display()
                ),
            ));
        };
        for event in sse.feed(&piece) {
            if event.name == "error" {
                let v = serde_json::from_str(&event.data)
                    .unwrap_or_else(|_| json!({"message": event.data}));
                return Err(upstream_error(500, &json!({"error": v})));
            }
            let parsed = parse_event(shared, &event.data)?;
            let mut finish = parsed.finish;
            if parsed.done && finish.is_none() {
                finish = Some(FinishReason::Stop);
            }
            let mut tokens = Vec::with_capacity(parsed.tokens.len());
            for token in parsed.tokens {
                tokens.push(token);
                generated += 1;
                let stops = !req.stop.ignore_eos
                    && generated >= req.stop.min_tokens as usize
                    && req.stop.stop_token_ids.contains(&token);
                if stops {
                    finish = Some(FinishReason::Stop);
                    break;
                }
                if generated >= max_tokens {
                    finish = Some(finish.unwrap_or(FinishReason::Length));
                    break;
                }
            }
            if tokens.is_empty() && finish.is_none() {
                continue;
            }
            let cached = if cached_sent {
                None
            } else {
                parsed.cached_prompt_tokens
            };
            cached_sent |= cached.is_some();
            let out = EngineOutput {
                prompt_logprobs: None,
                embedding: None,
                token_ids: TokenIds::from(tokens),
                finish_reason: finish,
                cached_prompt_tokens: cached,
                logprobs: None,
            };
            if finish.is_some() {
                shared.stats.completed.fetch_add(1, Ordering::Relaxed);
            }
            if tx.send(Ok(out)).await.is_err() {
                shared.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if finish.is_some() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rotor_protocol::{Pooling, SamplingParams, StopConditions, Task};

    use super::*;

    fn request() -> GenerateRequest {
        GenerateRequest {
            id: "r".into(),
            token_ids: vec![1, 2, 3],
            sampling: SamplingParams::greedy(),
            stop: StopConditions::default(),
            task: Task::Generate,
        }
    }

    #[test]
    fn embeddings_and_prompt_scoring_are_refused_by_every_external_engine() {
        for kind in [
            ExternalKind::LlamaCpp,
            ExternalKind::Vllm,
            ExternalKind::OpenAi,
        ] {
            assert!(check_supported(kind, &request()).is_ok());
            let mut embed = request();
            embed.stop.max_tokens = 0;
            embed.task = Task::Embed {
                pooling: Pooling::Mean,
                normalize: true,
            };
            let mut score = request();
            score.sampling.prompt_logprobs = Some(0);
            for (req, what) in [(embed, "embedding"), (score, "prompt_logprobs")] {
                let err = check_supported(kind, &req).expect_err("refused");
                assert_eq!(err.kind, ErrorKind::InvalidRequest);
                assert!(
                    err.message.contains(what) && err.message.contains(kind.as_str()),
                    "{}",
                    err.message
                );
            }
        }
    }
}
