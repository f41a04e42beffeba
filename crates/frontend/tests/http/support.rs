//! Shared test fixtures: the real SmolLM2 model card, a scripted backend that records what it
//! was asked and when its stream was dropped, and a server bound to 127.0.0.1:0.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use rotor_frontend::{serve, Backend, Frontend, FrontendConfig, OutputStream, ServedModel};
use rotor_protocol::{
    EngineOutput, FinishReason, GenerateRequest, ModelCard, TokenLogprob, WireError,
};
use tokio::sync::{Barrier, Notify};

pub const MODEL: &str = "smollm2";
/// `<|im_end|>`, SmolLM2's EOS.
pub const EOS: u32 = 2;

/// The SmolLM2 card built from the real GGUF (tokenizer spec, chat template, context length).
pub fn smollm2_card() -> ModelCard {
    static CARD: OnceLock<ModelCard> = OnceLock::new();
    CARD.get_or_init(|| {
        let path = rotor_testing::model_path();
        let gguf = rotor_model::GgufFile::open(&path).expect("open the test GGUF");
        ModelCard {
            // SmolLM2-135M's hidden size.
            embedding_length: Some(576),
            host_id: None,
            kv_host_pool: None,
            name: MODEL.to_string(),
            context_length: gguf
                .get_u32("llama.context_length")
                .expect("llama.context_length"),
            tokenizer: rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec from GGUF"),
            chat_template: rotor_model::card::chat_template(&gguf),
            created: 1_700_000_000,
            sampling_defaults: Default::default(),
            kv_block_size: None,
            role: Default::default(),
        }
    })
    .clone()
}

/// SmolLM2's tokenizer, for building scripts and expected prompts.
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

pub fn encode(text: &str) -> Vec<u32> {
    tokenizer().encode(text, true).expect("encode")
}

/// What the scripted backend does with every request.
#[derive(Clone)]
pub struct Script {
    /// Tokens emitted one per output; after them the backend emits EOS with finish `Stop`.
    pub tokens: Vec<u32>,
    /// Pause before every output.
    pub delay: Duration,
    /// Pause before the first output (prefill).
    pub first_delay: Duration,
    /// Reported on the first output.
    pub cached_prompt_tokens: Option<u32>,
    /// `generate` itself fails with this.
    pub refuse: Option<WireError>,
    /// After this many outputs the stream yields this error.
    pub fail_after: Option<(usize, WireError)>,
    /// Every request's stream waits here before its first output.
    pub barrier: Option<Arc<Barrier>>,
}

impl Script {
    pub fn text(text: &str) -> Self {
        Self {
            tokens: encode(text),
            delay: Duration::ZERO,
            first_delay: Duration::ZERO,
            cached_prompt_tokens: None,
            refuse: None,
            fail_after: None,
            barrier: None,
        }
    }
}

/// What the backend saw.
#[derive(Default)]
pub struct BackendLog {
    pub requests: Mutex<Vec<GenerateRequest>>,
    /// Streams dropped before they yielded their last output.
    pub cancelled: AtomicUsize,
    /// Streams that yielded their last output.
    pub completed: AtomicUsize,
    /// Outputs yielded so far, by every stream.
    pub outputs: AtomicUsize,
    /// For each request, in order: `outputs` when it arrived.
    pub outputs_before: Mutex<Vec<usize>>,
    pub changed: Notify,
}

impl BackendLog {
    pub fn requests(&self) -> Vec<GenerateRequest> {
        self.requests.lock().expect("log lock").clone()
    }

    pub fn last_request(&self) -> GenerateRequest {
        self.requests()
            .last()
            .cloned()
            .expect("the backend got a request")
    }

    /// Waits (bounded) until `check` holds.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&BackendLog) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.changed.notified();
            if check(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for: {what}");
            }
        }
    }
}

pub struct ScriptedBackend {
    pub script: Script,
    pub log: Arc<BackendLog>,
}

/// Records a cancel when dropped before the stream finished.
struct StreamGuard {
    log: Arc<BackendLog>,
    finished: AtomicBool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            self.log.cancelled.fetch_add(1, Ordering::SeqCst);
            self.log.changed.notify_waiters();
        }
    }
}

struct StreamState {
    script: Script,
    max_tokens: usize,
    logprobs: Option<u32>,
    /// Scripted logprobs are lowered by `seed % 4` (so that seeded sequences rank apart).
    seed_offset: f32,
    /// Scripted prompt scores when asked (`prompt_logprobs`), sent on the first output.
    prompt_logprobs: Option<Vec<TokenLogprob>>,
    emitted: usize,
    done: bool,
    guard: StreamGuard,
}

/// The scripted backend's prompt scores: prompt token i (i ≥ 1) has logprob -i/100, its
/// alternatives the next ids, each 1 lower.
pub fn scripted_prompt_logprobs(prompt: &[u32], top: u32) -> Vec<TokenLogprob> {
    prompt
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, &id)| {
            let logprob = -(i as f32) / 100.0;
            TokenLogprob {
                token_id: id,
                logprob,
                top: (0..top).map(|k| (id + k, logprob - k as f32)).collect(),
            }
        })
        .collect()
}

impl Backend for ScriptedBackend {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        self.log
            .requests
            .lock()
            .expect("log lock")
            .push(req.clone());
        self.log
            .outputs_before
            .lock()
            .expect("log lock")
            .push(self.log.outputs.load(Ordering::SeqCst));
        self.log.changed.notify_waiters();
        if let Some(err) = &self.script.refuse {
            return Err(err.clone());
        }
        if let rotor_protocol::Task::Embed { .. } = req.task {
            let output = EngineOutput {
                token_ids: Default::default(),
                finish_reason: Some(FinishReason::Stop),
                cached_prompt_tokens: Some(0),
                logprobs: None,
                prompt_logprobs: None,
                embedding: Some(scripted_embedding(&req.token_ids)),
            };
            self.log.completed.fetch_add(1, Ordering::SeqCst);
            self.log.changed.notify_waiters();
            return Ok(futures::stream::iter([Ok(output)]).boxed());
        }
        let state = StreamState {
            script: self.script.clone(),
            max_tokens: req.stop.max_tokens as usize,
            logprobs: req.sampling.logprobs,
            seed_offset: req.sampling.seed.map_or(0.0, |seed| (seed % 4) as f32),
            prompt_logprobs: req
                .sampling
                .prompt_logprobs
                .map(|top| scripted_prompt_logprobs(&req.token_ids, top)),
            emitted: 0,
            done: false,
            guard: StreamGuard {
                log: Arc::clone(&self.log),
                finished: AtomicBool::new(false),
            },
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            if st.emitted == 0 {
                if let Some(barrier) = &st.script.barrier {
                    barrier.wait().await;
                }
                tokio::time::sleep(st.script.first_delay).await;
            }
            tokio::time::sleep(st.script.delay).await;
            if let Some((after, err)) = &st.script.fail_after {
                if st.emitted == *after {
                    st.done = true;
                    st.guard.finished.store(true, Ordering::SeqCst);
                    return Some((Err(err.clone()), st));
                }
            }
            let prompt_logprobs = st.prompt_logprobs.take();
            if st.max_tokens == 0 {
                // Score only: one output, no token.
                st.done = true;
                st.guard.finished.store(true, Ordering::SeqCst);
                st.guard.log.completed.fetch_add(1, Ordering::SeqCst);
                st.guard.log.changed.notify_waiters();
                let output = EngineOutput {
                    prompt_logprobs,
                    embedding: None,
                    token_ids: Vec::new().into(),
                    finish_reason: Some(FinishReason::Length),
                    cached_prompt_tokens: st.script.cached_prompt_tokens,
                    logprobs: st.logprobs.map(|_| Vec::new()),
                };
                return Some((Ok(output), st));
            }
            let token = st.script.tokens.get(st.emitted).copied().unwrap_or(EOS);
            st.emitted += 1;
            let finish = if token == EOS {
                Some(FinishReason::Stop)
            } else if st.emitted >= st.max_tokens {
                Some(FinishReason::Length)
            } else {
                None
            };
            let output = EngineOutput {
                prompt_logprobs,
                embedding: None,
                token_ids: vec![token].into(),
                finish_reason: finish,
                cached_prompt_tokens: if st.emitted == 1 {
                    st.script.cached_prompt_tokens
                } else {
                    None
                },
                // Scripted logprobs when asked: the n-th token has logprob -n/10 (minus the
                // seed offset) and its alternatives are the next token ids, each 1 lower.
                logprobs: st.logprobs.map(|top| {
                    let logprob = -(st.emitted as f32) / 10.0 - st.seed_offset;
                    vec![TokenLogprob {
                        token_id: token,
                        logprob,
                        top: (0..top).map(|i| (token + i, logprob - i as f32)).collect(),
                    }]
                }),
            };
            if finish.is_some() {
                st.done = true;
                st.guard.finished.store(true, Ordering::SeqCst);
                st.guard.log.completed.fetch_add(1, Ordering::SeqCst);
                st.guard.log.changed.notify_waiters();
            }
            st.guard.log.outputs.fetch_add(1, Ordering::SeqCst);
            Some((Ok(output), st))
        });
        Ok(stream.boxed())
    }
}

/// The scripted backend's embedding of a prompt: 576 values (SmolLM2's hidden size), the first
/// three the prompt's length, first id and last id, the last one 0.5, the rest 0.
pub fn scripted_embedding(prompt: &[u32]) -> Vec<f32> {
    let mut v = vec![0.0; 576];
    v[0] = prompt.len() as f32;
    v[1] = prompt[0] as f32;
    v[2] = prompt[prompt.len() - 1] as f32;
    v[575] = 0.5;
    v
}

/// A frontend serving one scripted model on 127.0.0.1:0.
pub struct TestServer {
    pub base: String,
    pub log: Arc<BackendLog>,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(script: Script) -> Self {
        Self::start_with(script, smollm2_card(), FrontendConfig::default()).await
    }

    pub async fn start_with(script: Script, card: ModelCard, config: FrontendConfig) -> Self {
        let frontend = Frontend::new(config);
        let log = Arc::new(BackendLog::default());
        let backend = ScriptedBackend {
            script,
            log: Arc::clone(&log),
        };
        frontend
            .add_model(ServedModel {
                card,
                backend: Arc::new(backend),
            })
            .expect("add model");
        Self::start_frontend(frontend, log).await
    }

    pub async fn start_frontend(frontend: Frontend, log: Arc<BackendLog>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, frontend.clone(), async move {
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
            assert!(
                tokio::time::Instant::now() < deadline,
                "server at {base} never became live"
            );
            tokio::task::yield_now().await;
        }
        Self {
            base,
            log,
            client,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("send")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("send")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let line = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"));
            assert!(!line.contains('\n'), "multi-line event: {event:?}");
            line.to_string()
        })
        .collect()
}

/// Parses every SSE payload except the final `[DONE]`, which must be there.
pub fn sse_chunks(body: &str) -> Vec<serde_json::Value> {
    let data = sse_data(body);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "stream must end with [DONE]: {body}"
    );
    assert_eq!(
        data.iter().filter(|d| *d == "[DONE]").count(),
        1,
        "exactly one [DONE]"
    );
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("chunk is not JSON ({e}): {d}")))
        .collect()
}

pub fn chat_body(content: &str) -> serde_json::Value {
    serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": content}]})
}
