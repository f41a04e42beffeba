//! Shared fixtures of the routing tests: the real SmolLM2 card, fake workers whose output is a
//! function of the absolute token position (so a migrated stream can be checked token by token),
//! and a frontend served on 127.0.0.1:0.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use rotor_frontend::{serve, Backend, Frontend, OutputStream};
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, KvEvent, KvEventData, ModelCard,
    RouterEvent, StoredBlock, WireError,
};

pub const MODEL: &str = "smollm2";

/// The SmolLM2 card built from the real GGUF (tokenizer, template, context length).
pub fn smollm2_card() -> ModelCard {
    static CARD: OnceLock<ModelCard> = OnceLock::new();
    CARD.get_or_init(|| {
        let path = rotor_testing::model_path();
        let gguf = rotor_model::GgufFile::open(&path).expect("open the test GGUF");
        ModelCard {
            embedding_length: None,
            host_id: None,
            kv_host_pool: None,
            name: MODEL.to_string(),
            context_length: 2048,
            tokenizer: rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec"),
            chat_template: rotor_model::card::chat_template(&gguf),
            created: 1_700_000_000,
            sampling_defaults: Default::default(),
            kv_block_size: Some(4),
            role: Default::default(),
        }
    })
    .clone()
}

pub fn tokenizer() -> Arc<rotor_text::Tokenizer> {
    static TOKENIZER: OnceLock<Arc<rotor_text::Tokenizer>> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            Arc::new(
                rotor_text::Tokenizer::from_spec(&smollm2_card().tokenizer).expect("tokenizer"),
            )
        })
        .clone()
}

/// The token every fake worker generates at absolute position `position` (prompt included):
/// ordinary vocabulary entries, never a special token.
pub fn token_at(position: usize) -> u32 {
    1000 + (position % 89) as u32
}

/// The tokens a request with a `prompt_len`-token prompt gets, `count` of them.
pub fn expected_tokens(prompt_len: usize, count: usize) -> Vec<u32> {
    (prompt_len..prompt_len + count).map(token_at).collect()
}

pub fn decode(ids: &[u32]) -> String {
    tokenizer().decode(ids, true).expect("decode")
}

/// What every fake worker saw, in order: (worker id, request).
#[derive(Default)]
pub struct RoutingLog {
    pub requests: Mutex<Vec<(u64, GenerateRequest)>>,
    pub cancelled: AtomicUsize,
}

impl RoutingLog {
    pub fn workers(&self) -> Vec<u64> {
        self.requests
            .lock()
            .expect("log")
            .iter()
            .map(|(worker, _)| *worker)
            .collect()
    }

    pub fn requests_of(&self, worker: u64) -> Vec<GenerateRequest> {
        self.requests
            .lock()
            .expect("log")
            .iter()
            .filter(|(w, _)| *w == worker)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// How a fake worker misbehaves.
#[derive(Clone, Default)]
pub struct Faults {
    /// `generate` itself fails with this kind.
    pub refuse: Option<ErrorKind>,
    /// After this many outputs the stream fails with this kind.
    pub fail_after: Option<(usize, ErrorKind)>,
    /// Reported on the first output.
    pub cached_prompt_tokens: Option<u32>,
    /// Pause before every output.
    pub delay: Duration,
}

/// A worker that generates [`token_at`] for each position, one token per output, and finishes
/// with `Length` at `max_tokens`.
pub struct FakeWorker {
    pub id: u64,
    pub log: Arc<RoutingLog>,
    pub faults: Faults,
}

impl FakeWorker {
    pub fn healthy(id: u64, log: &Arc<RoutingLog>) -> Arc<dyn Backend> {
        Self::with(id, log, Faults::default())
    }

    pub fn with(id: u64, log: &Arc<RoutingLog>, faults: Faults) -> Arc<dyn Backend> {
        Arc::new(FakeWorker {
            id,
            log: Arc::clone(log),
            faults,
        })
    }
}

struct CancelProbe {
    log: Arc<RoutingLog>,
    finished: bool,
}

impl Drop for CancelProbe {
    fn drop(&mut self) {
        if !self.finished {
            self.log.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Backend for FakeWorker {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        self.log
            .requests
            .lock()
            .expect("log")
            .push((self.id, req.clone()));
        if let Some(kind) = self.faults.refuse {
            return Err(WireError::new(kind, format!("worker {} refuses", self.id)));
        }
        let faults = self.faults.clone();
        let id = self.id;
        let prompt_len = req.token_ids.len();
        let max_tokens = req.stop.max_tokens as usize;
        let probe = CancelProbe {
            log: Arc::clone(&self.log),
            finished: false,
        };
        let stream = futures::stream::unfold((0usize, probe), move |(emitted, mut probe)| {
            let faults = faults.clone();
            async move {
                if probe.finished {
                    return None;
                }
                tokio::time::sleep(faults.delay).await;
                if let Some((after, kind)) = faults.fail_after {
                    if emitted == after {
                        probe.finished = true;
                        let error = WireError::new(kind, format!("worker {id} died"));
                        return Some((Err(error), (emitted, probe)));
                    }
                }
                let done = emitted + 1 >= max_tokens;
                probe.finished = done;
                let output = EngineOutput {
                    prompt_logprobs: None,
                    embedding: None,
                    token_ids: vec![token_at(prompt_len + emitted)].into(),
                    finish_reason: done.then_some(FinishReason::Length),
                    cached_prompt_tokens: if emitted == 0 {
                        faults.cached_prompt_tokens
                    } else {
                        None
                    },
                    logprobs: None,
                };
                Some((Ok(output), (emitted + 1, probe)))
            }
        });
        Ok(stream.boxed())
    }
}

/// Drains a backend stream: all tokens, and the error if it ended with one.
pub async fn drain(mut stream: OutputStream) -> (Vec<u32>, Option<WireError>) {
    let mut tokens = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(output) => {
                tokens.extend(output.token_ids);
                if output.finish_reason.is_some() {
                    break;
                }
            }
            Err(error) => return (tokens, Some(error)),
        }
    }
    (tokens, None)
}

pub fn request(id: &str, tokens: Vec<u32>, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.to_string(),
        token_ids: tokens,
        sampling: rotor_protocol::SamplingParams::greedy(),
        stop: rotor_protocol::StopConditions {
            max_tokens,
            ..Default::default()
        },
    }
}

/// A frontend served on 127.0.0.1:0 until dropped.
pub struct HttpServer {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HttpServer {
    pub async fn start(frontend: Frontend) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, frontend, async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(resp) = client.get(format!("{base}/live")).send().await {
                if resp.status() == 200 {
                    break;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "server never live");
            tokio::task::yield_now().await;
        }
        Self {
            base,
            client,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("send")
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body")
    }

    /// Polls `path` (bounded) until `check` accepts its body; returns that body.
    pub async fn wait_for(&self, path: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let body = self.get_text(path).await;
            if check(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last {path}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `data:` payloads of an SSE body except the final `[DONE]`, which must be there once.
pub fn sse_payloads(body: &str) -> Vec<serde_json::Value> {
    let data: Vec<&str> = body
        .split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
        })
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "ends with [DONE]: {body}");
    assert_eq!(data.iter().filter(|d| **d == "[DONE]").count(), 1);
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}")))
        .collect()
}

/// The text of completion chunks (`choices[0].text`), concatenated.
pub fn completion_text(chunks: &[serde_json::Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["text"].as_str())
        .collect()
}

/// A metric sample's value from a /metrics body, by its full name with labels.
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A `Stored` event of `worker` for the full `block`-token blocks of `tokens`.
pub fn stored_event(worker: u64, event_id: u64, tokens: &[u32], block: usize) -> RouterEvent {
    let hashes = rotor_tokens::sequence_hashes(tokens, block);
    let locals = rotor_tokens::local_block_hashes(tokens, block);
    RouterEvent {
        worker_id: worker,
        event: KvEvent {
            event_id,
            data: KvEventData::stored(
                None,
                hashes
                    .iter()
                    .zip(&locals)
                    .map(|(hash, local)| StoredBlock {
                        block_hash: *hash,
                        tokens_hash: *local,
                    })
                    .collect(),
            ),
        },
    }
}
