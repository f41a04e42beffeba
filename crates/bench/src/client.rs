//! Sending one streaming request and timing it: TTFT is the time from sending to the first chunk
//! that carries output text, each later text chunk adds one inter-token gap (ITL), and end-to-end
//! latency runs until `[DONE]`. Token counts come from the final usage chunk
//! (`stream_options.include_usage`), falling back to the number of text chunks.
//!
//! A request whose send fails before any response status arrived, because the server closed a
//! pooled keep-alive connection (see [`is_stale_connection`]), was never processed: it is sent
//! once more on a new connection and counted in [`RequestRecord::retries`]. A failure after the
//! response began stays a failure.

use std::time::{Duration, Instant};

use futures::StreamExt;
use rotor_protocol::openai::Usage;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Endpoint;
use crate::prompt::PromptPayload;
use crate::sse::SseDecoder;

/// Where and how to send requests.
#[derive(Debug, Clone)]
pub struct Target {
    pub client: reqwest::Client,
    /// A client that keeps no idle connection, so every request it sends opens a new one; used
    /// for the single retry after a stale pooled connection ([`Target::new`] builds it).
    pub fresh_client: reqwest::Client,
    /// Full URL of the endpoint, e.g. `http://127.0.0.1:8000/v1/completions`.
    pub url: String,
    pub endpoint: Endpoint,
    pub model: String,
    pub request_timeout: Duration,
}

impl Target {
    /// A target sending with `client`, retrying stale connections on a pool-less twin built
    /// with the same settings that matter here (no proxy, `TCP_NODELAY`, connect timeout).
    pub fn new(
        client: reqwest::Client,
        url: String,
        endpoint: Endpoint,
        model: String,
        request_timeout: Duration,
    ) -> Result<Target, reqwest::Error> {
        let fresh_client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Target {
            client,
            fresh_client,
            url,
            endpoint,
            model,
            request_timeout,
        })
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// HTTP error, error event in the stream, broken stream or timeout.
    Error,
    /// Stopped by the run's deadline or shutdown; neither success nor error.
    Cancelled,
}

/// What was measured for one request. Times are milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    pub index: usize,
    /// When it was sent, from the start of the run.
    pub start_ms: f64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ttft_ms: Option<f64>,
    pub e2e_ms: f64,
    /// Gaps between consecutive text chunks.
    pub itl_ms: Vec<f64>,
    /// Prompt tokens: the server's count if it reported usage, else the planned count.
    pub input_tokens: Option<u32>,
    /// Prompt tokens as planned (words for text prompts); `None` for literal text prompts.
    pub planned_input_tokens: Option<u32>,
    /// Whether the stream carried a usage object (so token counts are the server's own).
    pub usage_reported: bool,
    pub output_tokens: u32,
    pub expected_output_tokens: u32,
    /// `usage.prompt_tokens_details.cached_tokens`, if the server reported it.
    pub cached_tokens: Option<u32>,
    /// Times the request was sent again on a new connection because the server had closed the
    /// pooled one before answering (0 or 1).
    pub retries: u32,
}

impl RequestRecord {
    /// Mean gap per output token after the first: `(e2e - ttft) / (output_tokens - 1)`.
    pub fn time_per_output_token_ms(&self) -> Option<f64> {
        let ttft = self.ttft_ms?;
        (self.output_tokens > 1).then(|| (self.e2e_ms - ttft) / (self.output_tokens - 1) as f64)
    }

    /// Offsets from the start of the run at which text chunks arrived.
    pub fn chunk_times_ms(&self) -> Vec<f64> {
        let Some(ttft) = self.ttft_ms else {
            return Vec::new();
        };
        let mut t = self.start_ms + ttft;
        let mut out = Vec::with_capacity(self.itl_ms.len() + 1);
        out.push(t);
        for gap in &self.itl_ms {
            t += gap;
            out.push(t);
        }
        out
    }
}

/// The JSON body of a streaming request for `output_tokens` tokens exactly.
pub fn request_body(target: &Target, prompt: PromptPayload, output_tokens: u32) -> Value {
    let mut body = json!({
        "model": target.model,
        "max_tokens": output_tokens,
        "min_tokens": output_tokens,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let (key, value) = match (target.endpoint, prompt) {
        (Endpoint::Completions, PromptPayload::Tokens(ids)) => ("prompt", json!(ids)),
        (Endpoint::Completions, PromptPayload::Text(text)) => ("prompt", json!(text)),
        (Endpoint::Chat, PromptPayload::Text(text)) => {
            ("messages", json!([{"role": "user", "content": text}]))
        }
        (Endpoint::Chat, PromptPayload::Tokens(ids)) => {
            // Chat takes no token ids; callers render tokens as text first. Send them as a
            // completions-style prompt anyway so the server's error says what is wrong.
            ("prompt", json!(ids))
        }
    };
    body[key] = value;
    body
}

/// Facts gathered while reading the stream.
#[derive(Default)]
struct StreamTally {
    first_chunk: Option<Instant>,
    last_chunk: Option<Instant>,
    itl_ms: Vec<f64>,
    chunks: u32,
    usage: Option<Usage>,
    done: bool,
    retries: u32,
}

/// Sends one request and measures it. Never fails: problems are recorded in the record.
pub async fn send(
    target: &Target,
    index: usize,
    prompt: PromptPayload,
    expected_input_tokens: Option<u32>,
    output_tokens: u32,
    run_start: Instant,
    cancel: &CancellationToken,
) -> RequestRecord {
    let body = request_body(target, prompt, output_tokens);
    let sent = Instant::now();
    let mut tally = StreamTally::default();
    let result = tokio::select! {
        r = tokio::time::timeout(target.request_timeout, send_with_retry(target, &body, &mut tally)) => {
            match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err((Outcome::Error, e)),
                Err(_) => Err((Outcome::Error, format!("timed out after {:?}", target.request_timeout))),
            }
        }
        _ = cancel.cancelled() => Err((Outcome::Cancelled, "cancelled".to_string())),
    };
    let end = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (outcome, error) = match result {
        Ok(()) => (Outcome::Ok, None),
        Err((outcome, e)) => (outcome, Some(e)),
    };
    RequestRecord {
        index,
        start_ms: ms(sent.saturating_duration_since(run_start)),
        outcome,
        error,
        ttft_ms: tally.first_chunk.map(|t| ms(t - sent)),
        e2e_ms: ms(end - sent),
        itl_ms: tally.itl_ms,
        input_tokens: tally
            .usage
            .map(|u| u.prompt_tokens)
            .or(expected_input_tokens),
        planned_input_tokens: expected_input_tokens,
        usage_reported: tally.usage.is_some(),
        output_tokens: tally.usage.map_or(tally.chunks, |u| u.completion_tokens),
        expected_output_tokens: output_tokens,
        cached_tokens: tally
            .usage
            .and_then(|u| u.prompt_tokens_details)
            .map(|d| d.cached_tokens),
        retries: tally.retries,
    }
}

/// Sends `body` and reads its stream into `tally`; if the pooled connection turns out to have
/// been closed by the server before any response, sends it once more on a new connection.
async fn send_with_retry(
    target: &Target,
    body: &Value,
    tally: &mut StreamTally,
) -> Result<(), String> {
    let resp = match target.client.post(&target.url).json(body).send().await {
        Ok(resp) => resp,
        Err(e) if is_stale_connection(&e) => {
            tally.retries += 1;
            target
                .fresh_client
                .post(&target.url)
                .json(body)
                .send()
                .await
                .map_err(|e| format!("request failed (after a retry on a new connection): {e}"))?
        }
        Err(e) => return Err(format!("request failed: {}", error_chain(&e))),
    };
    stream_into(resp, tally).await
}

/// Whether a send error means the server closed the (pooled, kept-alive) connection before any
/// response status arrived, so the request was never processed: an error while sending on an
/// established connection (not while connecting, not a timeout) whose cause is hyper's
/// "connection closed before message completed", a reset, an abort, a broken pipe or an
/// unexpected end of stream.
pub fn is_stale_connection(e: &reqwest::Error) -> bool {
    if !e.is_request() || e.is_connect() || e.is_timeout() || e.is_body() || e.is_decode() {
        return false;
    }
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        let text = err.to_string();
        if text.contains("connection closed before message completed")
            || text.contains("IncompleteMessage")
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// `e` followed by its causes, so the record says why (reqwest's own text is only "error
/// sending request for url").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

async fn stream_into(resp: reqwest::Response, tally: &mut StreamTally) -> Result<(), String> {
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            truncate(&text, 300)
        ));
    }
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let bytes = chunk.map_err(|e| format!("stream broken: {e}"))?;
        let now = Instant::now();
        decoder.push(&bytes, &mut events);
        for data in events.drain(..) {
            handle_event(&data, now, tally)?;
        }
        if tally.done {
            return Ok(());
        }
    }
    decoder.finish(&mut events);
    let now = Instant::now();
    for data in events.drain(..) {
        handle_event(&data, now, tally)?;
    }
    if tally.done {
        Ok(())
    } else {
        Err("stream ended before [DONE]".into())
    }
}

fn handle_event(data: &str, now: Instant, tally: &mut StreamTally) -> Result<(), String> {
    let data = data.trim();
    if data == "[DONE]" {
        tally.done = true;
        return Ok(());
    }
    let value: Value = serde_json::from_str(data)
        .map_err(|e| format!("bad chunk ({e}): {}", truncate(data, 200)))?;
    if let Some(err) = value.get("error") {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| err.to_string(), str::to_string);
        return Err(format!("error event: {}", truncate(&msg, 300)));
    }
    if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
        if let Ok(u) = serde_json::from_value::<Usage>(usage.clone()) {
            tally.usage = Some(u);
        }
    }
    let has_text = value
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| choices.iter().any(choice_has_text));
    if has_text {
        if let Some(last) = tally.last_chunk {
            tally.itl_ms.push((now - last).as_secs_f64() * 1e3);
        } else {
            tally.first_chunk = Some(now);
        }
        tally.last_chunk = Some(now);
        tally.chunks += 1;
    }
    Ok(())
}

fn choice_has_text(choice: &Value) -> bool {
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    non_empty(choice.get("text"))
        || choice
            .get("delta")
            .is_some_and(|d| non_empty(d.get("content")) || non_empty(d.get("reasoning_content")))
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream as llama.cpp's `llama-server` sends it for `/v1/completions` (captured from the
    /// build of scripts/bench/build-llama-server; ids shortened, fields trimmed, a warm cache
    /// made up for `cached_tokens` / `cache_n`): one chunk per token, an empty final chunk with
    /// `finish_reason`, `usage` and `timings`, then `[DONE]`.
    const LLAMA_SERVER_SSE: &str = concat!(
        "data: {\"choices\":[{\"text\":\" also\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],",
        "\"created\":1795485971,\"model\":\"smollm2\",\"object\":\"text_completion\",\"id\":\"c1\"}\n\n",
        "data: {\"choices\":[{\"text\":\" written\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],",
        "\"object\":\"text_completion\",\"id\":\"c1\"}\n\n",
        "data: {\"choices\":[{\"text\":\" as\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],",
        "\"object\":\"text_completion\",\"id\":\"c1\"}\n\n",
        "data: {\"choices\":[{\"text\":\"\\n\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],",
        "\"object\":\"text_completion\",\"id\":\"c1\"}\n\n",
        "data: {\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],",
        "\"object\":\"text_completion\",\"usage\":{\"completion_tokens\":4,\"prompt_tokens\":6,",
        "\"total_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":2}},\"id\":\"c1\",",
        "\"timings\":{\"cache_n\":2,\"prompt_n\":4,\"prompt_ms\":131.7,\"predicted_n\":4}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn llama_server_stream_gives_one_gap_per_token_and_its_usage() {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        let mut tally = StreamTally::default();
        let start = Instant::now();
        // Deliver in uneven pieces, 1 ms apart, as a socket might.
        let bytes = LLAMA_SERVER_SSE.as_bytes();
        for (i, piece) in bytes.chunks(97).enumerate() {
            decoder.push(piece, &mut events);
            let now = start + Duration::from_millis(i as u64);
            for data in events.drain(..) {
                handle_event(&data, now, &mut tally).unwrap();
            }
        }
        assert!(tally.done);
        assert_eq!(tally.chunks, 4, "the empty final chunk is not a token");
        assert_eq!(tally.itl_ms.len(), 3);
        assert!(tally.first_chunk.is_some_and(|t| t >= start));
        let usage = tally.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (6, 4));
        assert_eq!(
            usage.prompt_tokens_details.map(|d| d.cached_tokens),
            Some(2)
        );
    }

    #[test]
    fn text_prompts_and_exact_output_length_reach_the_body() {
        let target = Target::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/v1/completions".into(),
            Endpoint::Completions,
            "smollm2".into(),
            Duration::from_secs(1),
        )
        .unwrap();
        let body = request_body(&target, PromptPayload::Text("the of and".into()), 128);
        assert_eq!(body["prompt"], "the of and");
        assert_eq!(body["max_tokens"], 128);
        assert_eq!(body["min_tokens"], 128);
        assert_eq!(body["ignore_eos"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }
}
