//! External engines behind Rotor's worker: llama.cpp's `llama-server`, vLLM, and any
//! OpenAI-compatible server, each relayed over its own HTTP API.
//!
//! - [`ExternalEngine`] is a [`WorkerEngine`]: it validates a `GenerateRequest` against the card,
//!   relays it upstream (llama.cpp: `/completion` with a token-id prompt; vLLM: `/v1/completions`
//!   with a token-id prompt and `return_token_ids`; `openai`: `/v1/completions` with the prompt
//!   detokenized, its text output tokenized again), streams the outputs back, ends them at the
//!   request's stop ids and `max_tokens`, and closes the upstream connection when the stream is
//!   dropped (cancellation). An engine that cannot be reached, or that closes a stream before
//!   its end, fails the request with `EngineStopped`, which the frontend migrates.
//! - vLLM's KV events (ZMQ, [`zmtp`]) are decoded ([`vllm_events`]), turned into Rotor events
//!   with Rotor's own block hashes recomputed from their `token_ids` ([`kv_bridge`]) and
//!   published by the host like a native engine's; the bridge also answers `kv_snapshot`.
//!   vLLM's `/metrics` feed the load reports ([`metrics`]).
//! - [`ExternalStats`]: counters proving each of these happened.

pub mod http;
pub mod kv_bridge;
pub mod metrics;
pub mod msgpack;
mod relay;
pub mod vllm_events;
pub mod zmtp;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use rotor_engine::{validate_request, RequestLimits};
use rotor_protocol::{
    ErrorKind, GenerateRequest, KvEvent, KvSnapshot, ModelCard, WireError, WorkerLoad,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{GenerateStream, WorkerEngine};
use crate::error::Error;
use http::BaseUrl;
use kv_bridge::KvBridge;

/// Which external engine a worker relays to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalKind {
    /// llama.cpp's `llama-server` (`/completion` with token ids; no KV events).
    LlamaCpp,
    /// vLLM's OpenAI server (token-id prompts, `return_token_ids`, ZMQ KV events, `/metrics`).
    Vllm,
    /// Any OpenAI-compatible server, text in and text out.
    OpenAi,
}

impl ExternalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llama.cpp",
            Self::Vllm => "vllm",
            Self::OpenAi => "openai",
        }
    }
}

/// Settings of an external engine.
#[derive(Debug, Clone)]
pub struct ExternalConfig {
    pub kind: ExternalKind,
    /// The engine's base URL, `http://HOST:PORT`.
    pub url: String,
    /// The engine's own model name (`"model"` of its OpenAI API); `None`: the first of its
    /// `/v1/models`.
    pub upstream_model: Option<String>,
    /// vLLM's KV-event ZMQ endpoint, as in its `--kv-events-config` (`tcp://127.0.0.1:P`: vLLM
    /// connects and the worker binds; `tcp://*:P`: vLLM binds and the worker connects to
    /// 127.0.0.1:P).
    pub kv_events: Option<String>,
    /// vLLM's KV-event replay endpoint (its `replay_endpoint`, a ROUTER socket the worker
    /// connects to), for recovering lost events; without it a gap clears the worker's index.
    pub kv_replay: Option<String>,
    /// The engine's KV block size, when it cannot be read from the engine.
    pub block_size: Option<usize>,
    /// How often the engine's `/metrics` are read for load reports (vLLM).
    pub metrics_interval: Duration,
    /// How long to wait for the engine to answer its first probe.
    pub connect_timeout: Duration,
}

impl ExternalConfig {
    pub fn new(kind: ExternalKind, url: impl Into<String>) -> Self {
        Self {
            kind,
            url: url.into(),
            upstream_model: None,
            kv_events: None,
            kv_replay: None,
            block_size: None,
            metrics_interval: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(60),
        }
    }
}

/// Counters of an external engine (see [`ExternalEngine::stats`]).
#[derive(Debug, Default)]
pub struct ExternalStats {
    /// Requests relayed upstream.
    pub relayed: AtomicU64,
    /// Relayed requests that ended with their finish reason.
    pub completed: AtomicU64,
    /// Relayed requests whose stream was dropped before the end (upstream connection closed).
    pub cancelled: AtomicU64,
    /// Requests that failed upstream (unreachable engine, HTTP error, broken stream).
    pub upstream_errors: AtomicU64,
    /// ZMQ KV-event messages received.
    pub kv_messages: AtomicU64,
    /// vLLM events decoded from them.
    pub kv_events_decoded: AtomicU64,
    /// Rotor KV events published from them.
    pub kv_events_published: AtomicU64,
    /// Sequence-number gaps seen on the ZMQ stream.
    pub kv_gaps: AtomicU64,
    /// Messages recovered from the engine's replay socket.
    pub kv_replayed: AtomicU64,
    /// Gaps that could not be replayed: the index was cleared and rebuilt from later events.
    pub kv_resyncs: AtomicU64,
    /// Removals of blocks the worker never saw stored (tolerated).
    pub kv_unknown_removals: AtomicU64,
    /// Reads of the engine's `/metrics`, and failed ones.
    pub metrics_reads: AtomicU64,
    pub metrics_errors: AtomicU64,
    /// Health probes of the engine, and failed ones (no answer, or not 200).
    pub health_probes: AtomicU64,
    pub health_failures: AtomicU64,
    /// Times the worker was withdrawn from discovery because the engine stopped answering, and
    /// times it was registered again when the engine came back.
    pub withdrawals: AtomicU64,
    pub reregistrations: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
}

impl ExternalStats {
    /// Counts `n` KV events (or messages) dropped for `reason` and logs it.
    pub fn drop_events(&self, reason: &'static str, n: u64, detail: &str) {
        *self
            .dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += n;
        tracing::warn!(reason, n, detail, "KV events dropped");
    }

    /// Events dropped so far, by reason.
    pub fn dropped(&self) -> BTreeMap<&'static str, u64> {
        self.dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every counter in Prometheus text form, each sample with `labels` (e.g. `engine="vllm"`):
    /// `rotor_external_*_total`, and `rotor_external_kv_events_dropped_total{reason}`.
    pub fn render_prometheus(&self, labels: &str, out: &mut String) {
        use std::fmt::Write as _;
        let counters: [(&str, &str, &AtomicU64); 17] = [
            ("relayed", "Requests relayed to the engine.", &self.relayed),
            (
                "completed",
                "Relayed requests that finished.",
                &self.completed,
            ),
            (
                "cancelled",
                "Relayed requests dropped before the end.",
                &self.cancelled,
            ),
            (
                "upstream_errors",
                "Requests that failed upstream.",
                &self.upstream_errors,
            ),
            (
                "kv_messages",
                "ZMQ KV-event messages received.",
                &self.kv_messages,
            ),
            (
                "kv_events_decoded",
                "Engine KV events decoded.",
                &self.kv_events_decoded,
            ),
            (
                "kv_events_published",
                "Rotor KV events published.",
                &self.kv_events_published,
            ),
            (
                "kv_gaps",
                "Sequence-number gaps on the KV-event stream.",
                &self.kv_gaps,
            ),
            (
                "kv_replayed",
                "KV-event messages recovered by replay.",
                &self.kv_replayed,
            ),
            (
                "kv_resyncs",
                "Unreplayable gaps that reset the index.",
                &self.kv_resyncs,
            ),
            (
                "kv_unknown_removals",
                "Removals of never-stored blocks.",
                &self.kv_unknown_removals,
            ),
            (
                "metrics_reads",
                "Reads of the engine's /metrics.",
                &self.metrics_reads,
            ),
            (
                "metrics_errors",
                "Failed reads of the engine's /metrics.",
                &self.metrics_errors,
            ),
            (
                "health_probes",
                "Health probes of the engine.",
                &self.health_probes,
            ),
            (
                "health_failures",
                "Health probes the engine failed.",
                &self.health_failures,
            ),
            (
                "withdrawals",
                "Times the worker left discovery because the engine stopped answering.",
                &self.withdrawals,
            ),
            (
                "reregistrations",
                "Times the worker registered again when the engine came back.",
                &self.reregistrations,
            ),
        ];
        for (name, help, value) in counters {
            let name = format!("rotor_external_{name}_total");
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{labels}}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let name = "rotor_external_kv_events_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} KV events dropped, by reason.\n# TYPE {name} counter"
        );
        for (reason, n) in self.dropped() {
            let _ = writeln!(out, "{name}{{{labels},reason=\"{reason}\"}} {n}");
        }
    }

    /// One line with every counter, for logs.
    pub fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "relayed={} completed={} cancelled={} upstream_errors={} kv_messages={} \
             kv_events_decoded={} kv_events_published={} kv_gaps={} kv_replayed={} kv_resyncs={} \
             kv_unknown_removals={} kv_dropped={:?} metrics_reads={} metrics_errors={} \
             health_probes={} health_failures={} withdrawals={} reregistrations={}",
            g(&self.relayed),
            g(&self.completed),
            g(&self.cancelled),
            g(&self.upstream_errors),
            g(&self.kv_messages),
            g(&self.kv_events_decoded),
            g(&self.kv_events_published),
            g(&self.kv_gaps),
            g(&self.kv_replayed),
            g(&self.kv_resyncs),
            g(&self.kv_unknown_removals),
            self.dropped(),
            g(&self.metrics_reads),
            g(&self.metrics_errors),
            g(&self.health_probes),
            g(&self.health_failures),
            g(&self.withdrawals),
            g(&self.reregistrations),
        )
    }
}

/// What [`relay`] needs of the engine, shared with its request tasks.
pub(crate) struct Shared {
    pub kind: ExternalKind,
    pub base: BaseUrl,
    pub upstream_model: String,
    pub stats: Arc<ExternalStats>,
    pub running: AtomicU64,
    pub stopped: CancellationToken,
    /// For `openai`: prompts are detokenized and outputs tokenized with the card's tokenizer.
    pub tokenizer: Option<rotor_text::Tokenizer>,
}

/// A worker engine relaying to an external server.
pub struct ExternalEngine {
    card: ModelCard,
    limits: RequestLimits,
    shared: Arc<Shared>,
    load: Arc<Mutex<Option<WorkerLoad>>>,
    kv: Option<Arc<KvBridge>>,
    kv_events: Mutex<Option<mpsc::Receiver<KvEvent>>>,
    background: CancellationToken,
}

impl ExternalEngine {
    /// Probes the engine at `cfg.url` (waiting up to `cfg.connect_timeout` for it to answer),
    /// completes `card` with what the engine says (context length; vLLM: KV block size) and
    /// starts the KV-event subscriber and the metrics reader where the engine has them.
    /// `card` carries the tokenizer and chat template (from a GGUF or an HF directory).
    pub async fn start(cfg: ExternalConfig, mut card: ModelCard) -> Result<Self, Error> {
        let err = |message: String| Error::External {
            url: cfg.url.clone(),
            message,
        };
        let base = BaseUrl::parse(&cfg.url).map_err(&err)?;
        let probe = relay::probe(
            cfg.kind,
            &base,
            cfg.upstream_model.as_deref(),
            cfg.connect_timeout,
        )
        .await
        .map_err(&err)?;
        if let Some(ctx) = probe.context_length {
            card.context_length = u32::try_from(ctx).unwrap_or(u32::MAX);
        }
        let stats = Arc::new(ExternalStats::default());
        let background = CancellationToken::new();
        let (kv, kv_events) = match cfg.kind {
            ExternalKind::Vllm => {
                let block_size = cfg.block_size.or(probe.block_size).unwrap_or(16);
                card.kv_block_size = Some(u32::try_from(block_size).unwrap_or(u32::MAX));
                match &cfg.kv_events {
                    Some(endpoint) => {
                        let (bridge, rx) = KvBridge::new(block_size, Arc::clone(&stats));
                        let bridge = Arc::new(bridge);
                        let listener = zmtp::SubscriberEndpoint::parse(endpoint).map_err(&err)?;
                        let replay = match &cfg.kv_replay {
                            Some(r) => Some(zmtp::parse_connect_endpoint(r).map_err(&err)?),
                            None => None,
                        };
                        let source = zmtp::EventSource::open(listener, replay)
                            .await
                            .map_err(|e| err(format!("KV events {endpoint}: {e}")))?;
                        tokio::spawn(kv_bridge::run(
                            source,
                            Arc::clone(&bridge),
                            background.clone(),
                        ));
                        (Some(bridge), Some(rx))
                    }
                    None => (None, None),
                }
            }
            _ => {
                if cfg.kv_events.is_some() {
                    return Err(err(format!(
                        "--engine-kv-events needs --engine vllm: {} publishes no KV events",
                        cfg.kind.as_str()
                    )));
                }
                (None, None)
            }
        };
        let tokenizer = match cfg.kind {
            ExternalKind::OpenAi => Some(
                rotor_text::Tokenizer::from_spec(&card.tokenizer)
                    .map_err(|e| err(format!("the card's tokenizer: {e}")))?,
            ),
            _ => None,
        };
        let context_length = card.context_length as usize;
        let limits = RequestLimits {
            vocab_size: card.tokenizer.tokens.len(),
            context_length,
            pool_capacity_tokens: context_length,
            // Prompt logprobs and embeddings are refused (validate_request says so).
            prompt_outputs: false,
        };
        let shared = Arc::new(Shared {
            kind: cfg.kind,
            base,
            upstream_model: probe.model,
            stats,
            running: AtomicU64::new(0),
            stopped: CancellationToken::new(),
            tokenizer,
        });
        let load = Arc::new(Mutex::new(None));
        if cfg.kind == ExternalKind::Vllm {
            tokio::spawn(metrics::poll_vllm(
                Arc::clone(&shared),
                Arc::clone(&load),
                probe.num_blocks,
                cfg.metrics_interval,
                background.clone(),
            ));
        }
        tracing::info!(engine = cfg.kind.as_str(), url = %cfg.url, model = %shared.upstream_model,
            context = card.context_length, block_size = ?card.kv_block_size, "external engine ready");
        Ok(Self {
            card,
            limits,
            shared,
            load,
            kv,
            kv_events: Mutex::new(kv_events),
            background,
        })
    }

    /// Serves at most `max_len` tokens per sequence (`--max-model-len`), below the engine's own.
    pub fn cap_context(&mut self, max_len: usize) {
        let len = self.limits.context_length.min(max_len);
        self.limits.context_length = len;
        self.limits.pool_capacity_tokens = len;
        self.card.context_length = u32::try_from(len).unwrap_or(u32::MAX);
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<ExternalStats> {
        &self.shared.stats
    }

    pub fn kind(&self) -> ExternalKind {
        self.shared.kind
    }

    /// The model name the engine itself serves.
    pub fn upstream_model(&self) -> &str {
        &self.shared.upstream_model
    }
}

impl WorkerEngine for ExternalEngine {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn generate(&self, req: GenerateRequest) -> Result<GenerateStream, WireError> {
        // What the engine cannot do is named first (validation would refuse it more vaguely).
        relay::check_supported(self.shared.kind, &req)?;
        validate_request(&req, &self.limits)?;
        if self.shared.stopped.is_cancelled() {
            return Err(WireError::new(
                ErrorKind::EngineStopped,
                "the worker is stopping",
            ));
        }
        let (tx, rx) = mpsc::channel(64);
        self.shared.stats.relayed.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(relay::run(Arc::clone(&self.shared), req, tx));
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        })
        .boxed())
    }

    fn load(&self) -> WorkerLoad {
        let running = self.shared.running.load(Ordering::Relaxed);
        match *self.load.lock().unwrap_or_else(PoisonError::into_inner) {
            // The engine's own figures; our in-flight count when it lags behind them.
            Some(load) => WorkerLoad {
                running: load.running.max(running.saturating_sub(load.waiting)),
                ..load
            },
            None => WorkerLoad {
                running,
                ..WorkerLoad::default()
            },
        }
    }

    fn take_external_kv_events(&self) -> Option<mpsc::Receiver<KvEvent>> {
        self.kv_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        let bridge = Arc::clone(self.kv.as_ref()?);
        Some(async move { Ok(bridge.snapshot()) }.boxed())
    }

    fn probe_health(&self) -> Option<BoxFuture<'static, bool>> {
        let shared = Arc::clone(&self.shared);
        Some(
            async move {
                let ok = relay::healthy(shared.kind, &shared.base).await;
                let stats = &shared.stats;
                stats.health_probes.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    stats.health_failures.fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
            .boxed(),
        )
    }

    fn registration_changed(&self, registered: bool) {
        let stats = &self.shared.stats;
        let counter = if registered {
            &stats.reregistrations
        } else {
            &stats.withdrawals
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn shutdown(&self) {
        self.shared.stopped.cancel();
        self.background.cancel();
        tracing::info!(engine = self.shared.kind.as_str(), stats = %self.shared.stats.summary(),
            "external engine stopped");
    }
}
