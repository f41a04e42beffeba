//! Command-line arguments for `rotor serve` and the engine flags it shares with `rotor worker`
//! ([`EngineArgs`]), and their validation into a [`ServeConfig`] / [`LocalEngineConfig`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvDtypeArg {
    F32,
    F16,
}

impl KvDtypeArg {
    pub fn dtype(self) -> rotor_model::KvDtype {
        match self {
            Self::F32 => rotor_model::KvDtype::F32,
            Self::F16 => rotor_model::KvDtype::F16,
        }
    }
}

/// `rotor serve`: one process with the HTTP frontend and a native-engine worker.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "ROTOR_HOST")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free port and prints it).
    #[arg(long, default_value_t = 8000, env = "ROTOR_PORT")]
    pub port: u16,
    /// Engine of the workers in this process.
    #[arg(long = "engine", value_enum, default_value_t = ServeEngine::Native)]
    pub engine_kind: ServeEngine,
    /// Engines (workers) in this process, each with its own KV cache; requests are spread by
    /// `--router-mode`. Native workers split `--threads` between them.
    #[arg(long, default_value_t = 1)]
    pub num_workers: usize,
    /// Disaggregated serving in one process: this many prefill workers (with
    /// `--decode-workers`; replaces `--num-workers`). Native workers split `--threads`.
    #[arg(long, default_value_t = 0)]
    pub prefill_workers: usize,
    /// Disaggregated serving in one process: this many decode workers.
    #[arg(long, default_value_t = 0)]
    pub decode_workers: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub mocker: MockerArgs,
    #[command(flatten)]
    pub routing: RoutingArgs,
    #[command(flatten)]
    pub http: crate::http_args::HttpArgs,
}

/// Validated `serve` settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub engine_kind: ServeEngine,
    pub num_workers: usize,
    /// Each worker's role, when `--prefill-workers`/`--decode-workers` gave them.
    pub roles: Option<Vec<rotor_protocol::WorkerRole>>,
    pub engine: LocalEngineConfig,
    pub mocker: MockerSettings,
    pub routing: rotor_frontend::RoutingConfig,
    pub http: rotor_frontend::FrontendConfig,
}

impl ServeArgs {
    pub fn validate(&self, total_ram_bytes: Option<u64>, cores: usize) -> Result<ServeConfig> {
        if self.num_workers == 0 || self.num_workers > 256 {
            bail!(
                "--num-workers must be between 1 and 256, got {}",
                self.num_workers
            );
        }
        let disagg = self.prefill_workers + self.decode_workers;
        let roles = if disagg > 0 {
            if self.num_workers != 1 {
                bail!("--num-workers and --prefill-workers/--decode-workers exclude each other: the roles' counts give the workers");
            }
            if self.decode_workers == 0 {
                bail!("--prefill-workers needs --decode-workers: prefill workers only compute prompts for decode workers");
            }
            if disagg > 256 {
                bail!("--prefill-workers + --decode-workers must be at most 256, got {disagg}");
            }
            let mut roles = vec![rotor_protocol::WorkerRole::Prefill; self.prefill_workers];
            roles.extend(vec![
                rotor_protocol::WorkerRole::Decode;
                self.decode_workers
            ]);
            Some(roles)
        } else {
            None
        };
        Ok(ServeConfig {
            addr: SocketAddr::new(self.host, self.port),
            engine_kind: self.engine_kind,
            num_workers: if disagg > 0 { disagg } else { self.num_workers },
            roles,
            engine: self.engine.validate(total_ram_bytes, cores)?,
            mocker: self.mocker.validate()?,
            // In one process every engine's KV events reach the router.
            routing: {
                if self.routing.router_replica_sync {
                    bail!("--router-replica-sync is for `rotor frontend` and `rotor router`: `rotor serve` is one router already");
                }
                self.routing
                    .config(true, rotor_frontend::RouterMode::RoundRobin)?
            },
            http: self.http.validate()?,
        })
    }
}

/// How a frontend spreads requests over workers (`rotor frontend`, and `rotor serve` with
/// several workers).
#[derive(Debug, Clone, Args)]
pub struct RoutingArgs {
    /// How requests are spread: round-robin, random, least-loaded or kv (KV-cache aware; without
    /// a shared event plane it assumes routed prefixes stay cached for a while). Default:
    /// round-robin (kv for `rotor router`).
    #[arg(long)]
    pub router_mode: Option<rotor_frontend::RouterMode>,
    /// Times a request may move to another worker after its worker died (0 disables migration).
    #[arg(long, default_value_t = 3)]
    pub migration_limit: u32,
    /// kv mode: weight of prefill work against decode load (higher chases cache hits; Dynamo's
    /// default is 1).
    #[arg(long, default_value_t = rotor_kv_router::DEFAULT_KV_OVERLAP_WEIGHT)]
    pub kv_overlap_weight: f64,
    /// kv mode: weight of a token already queued for prefill on a worker against one the request
    /// must compute there. 1 is greedy for each request's time to first token; below 1 keeps
    /// requests on the worker caching their prefix even behind a queue (fewer recomputed
    /// tokens under heavy load).
    #[arg(long, default_value_t = rotor_kv_router::DEFAULT_QUEUE_WEIGHT)]
    pub kv_queue_weight: f64,
    /// kv mode: softmax temperature of the choice (0 picks the cheapest worker).
    #[arg(long, default_value_t = 0.0)]
    pub router_temperature: f64,
    /// kv mode: what a cached block saves in each tier, e.g. `host=0.8,disk=0.6,remote=0.4`
    /// (each in [0, 1]; tiers not named keep their defaults: device 1, host 0.8, disk 0.6,
    /// remote 0.4). A worker's prefix run continues across tiers.
    #[arg(long, value_parser = parse_tier_weights)]
    pub kv_tier_weights: Option<rotor_kv_router::TierWeights>,
    /// kv mode: share routing decisions with the other routers (frontends or `rotor router`
    /// replicas) of the same workers over the event plane, so each counts the load the others
    /// add. Needs `--events nats://…`.
    #[arg(long)]
    pub router_replica_sync: bool,
    /// Disaggregated serving: refuse requests (503) while a model has no `prefill` worker,
    /// instead of prefilling on the decode workers.
    #[arg(long)]
    pub enforce_disagg: bool,
    /// Disaggregated serving: prefill on the decode worker itself when fewer prompt tokens than
    /// this are uncached there (0: move every prompt with an uncached full block).
    #[arg(long, default_value_t = rotor_frontend::DisaggConfig::default().min_prefill_tokens)]
    pub disagg_min_prefill_tokens: usize,
    /// Disaggregated serving: prefill locally when the chosen prefill worker already runs this
    /// many prefills from this router.
    #[arg(long, default_value_t = rotor_frontend::DisaggConfig::default().max_prefill_queue)]
    pub disagg_max_prefill_queue: u64,
    /// Disaggregated serving: seconds a remote prefill and its KV transfer may take before the
    /// request is prefilled locally instead.
    #[arg(long, default_value_t = 120)]
    pub disagg_timeout_secs: u64,
    /// Disaggregated serving: how KV blocks go from a prefill worker to a decode worker on the
    /// request plane — auto (shared memory when both workers' cards name the same host, TCP
    /// otherwise), shm or tcp. The workers send them to each other; the in-process engines of
    /// `rotor serve` hand them over in memory through the router whatever this says.
    #[arg(long, default_value_t = rotor_frontend::KvTransportPolicy::Auto)]
    pub kv_transport: rotor_frontend::KvTransportPolicy,
}

/// `--kv-tier-weights`, with the router's own error message.
fn parse_tier_weights(input: &str) -> Result<rotor_kv_router::TierWeights, String> {
    rotor_kv_router::TierWeights::parse(input).map_err(|e| e.to_string())
}

impl RoutingArgs {
    /// The routing configuration; `kv_events` says whether workers' KV events reach the router,
    /// `default_mode` is the mode when `--router-mode` is not given.
    pub fn config(
        &self,
        kv_events: bool,
        default_mode: rotor_frontend::RouterMode,
    ) -> Result<rotor_frontend::RoutingConfig> {
        if self.router_replica_sync && !kv_events {
            bail!(
                "--router-replica-sync needs a shared event plane: pass --events nats://HOST:PORT"
            );
        }
        Ok(rotor_frontend::RoutingConfig {
            mode: self.router_mode.unwrap_or(default_mode),
            replica_sync: self.router_replica_sync,
            migration_limit: self.migration_limit,
            kv_overlap_weight: self.kv_overlap_weight,
            kv_queue_weight: self.kv_queue_weight,
            router_temperature: self.router_temperature,
            kv_tier_weights: self.kv_tier_weights.unwrap_or_default(),
            kv_events,
            disagg: rotor_frontend::DisaggConfig {
                min_prefill_tokens: self.disagg_min_prefill_tokens,
                max_prefill_queue: self.disagg_max_prefill_queue,
                enforce: self.enforce_disagg,
                timeout: std::time::Duration::from_secs(self.disagg_timeout_secs),
                transport: self.kv_transport,
                ..rotor_frontend::DisaggConfig::default()
            },
            ..rotor_frontend::RoutingConfig::default()
        }
        .validate()?)
    }
}

/// Which engine `rotor serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeEngine {
    /// The native CPU engine running the model.
    Native,
    /// The native engine's scheduler and KV cache with simulated step times (`--mocker-*`).
    Mocker,
}

/// The mocker's flags (`--engine mocker`), shared by `rotor serve` and `rotor worker`.
#[derive(Debug, Clone, Args)]
pub struct MockerArgs {
    /// Timing model of `--engine mocker`: `fitted` (the native engine measured on this
    /// machine), `dynamo-vllm` (the polynomials NVIDIA Dynamo's mocker publishes) or a JSON file
    /// written by `rotor mocker-fit`.
    #[arg(long, default_value = "fitted")]
    pub mocker_timing: String,
    /// Divide the mocker's modelled step times by this factor.
    #[arg(long, default_value_t = 1.0)]
    pub mocker_speedup: f64,
    /// KV blocks of each mocker engine (default: what `--kv-cache-memory` holds for the model).
    #[arg(long)]
    pub mocker_num_blocks: Option<usize>,
    /// Disaggregated serving with mockers: the bandwidth (GB/s, decimal) of a simulated link in
    /// front of each mocker's KV imports; a transfer of B bytes takes B / bandwidth (divided by
    /// `--mocker-speedup`), transfers to one worker queue behind each other. Default: instant.
    #[arg(long, value_name = "GB_PER_S")]
    pub mocker_kv_bandwidth: Option<f64>,
}

/// Validated mocker settings.
#[derive(Debug, Clone)]
pub struct MockerSettings {
    pub timing: rotor_engine::MockerTiming,
    pub speedup: f64,
    pub num_blocks: Option<usize>,
    /// Bytes per second of the simulated KV link (already multiplied by the speedup).
    pub kv_link_bytes_per_second: Option<f64>,
}

impl MockerSettings {
    /// The simulated KV link of one mocker worker, if `--mocker-kv-bandwidth` was given.
    pub fn kv_link(&self) -> Option<std::sync::Arc<rotor_worker::SimulatedKvLink>> {
        self.kv_link_bytes_per_second
            .map(|bps| std::sync::Arc::new(rotor_worker::SimulatedKvLink::new(bps)))
    }
}

impl MockerArgs {
    pub fn validate(&self) -> Result<MockerSettings> {
        let timing = rotor_engine::MockerTiming::parse(&self.mocker_timing)
            .map_err(|e| anyhow::anyhow!("--mocker-timing {}: {e}", self.mocker_timing))?;
        if !(self.mocker_speedup.is_finite() && self.mocker_speedup > 0.0) {
            bail!(
                "--mocker-speedup must be a positive number, got {}",
                self.mocker_speedup
            );
        }
        if self.mocker_num_blocks == Some(0) {
            bail!("--mocker-num-blocks must be at least 1");
        }
        if let Some(bw) = self.mocker_kv_bandwidth {
            if !(bw.is_finite() && bw > 0.0) {
                bail!("--mocker-kv-bandwidth must be a positive number of GB/s, got {bw}");
            }
        }
        Ok(MockerSettings {
            timing,
            speedup: self.mocker_speedup,
            num_blocks: self.mocker_num_blocks,
            kv_link_bytes_per_second: self
                .mocker_kv_bandwidth
                .map(|gb| gb * 1e9 * self.mocker_speedup),
        })
    }
}

/// The model and engine flags shared by `rotor serve` and `rotor worker`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// GGUF file to serve. Without it, the default model (SmolLM2-135M-Instruct Q4_1) is served from the
    /// local cache, downloaded first if needed.
    #[arg(long, env = "ROTOR_MODEL")]
    pub model: Option<PathBuf>,
    /// Name clients use in `"model"`. Defaults to the file name without extension and quant suffix.
    #[arg(long)]
    pub model_name: Option<String>,
    /// Compute threads for the engine (default: available cores).
    #[arg(long, env = "ROTOR_THREADS")]
    pub threads: Option<usize>,
    /// Most sequences in one engine step.
    #[arg(long, default_value_t = 64)]
    pub max_num_seqs: usize,
    /// Token budget of one engine step (decode tokens plus prefill chunks).
    #[arg(long, default_value_t = 512)]
    pub max_num_batched_tokens: usize,
    /// Tokens per KV-cache block.
    #[arg(long, default_value_t = 16)]
    pub block_size: usize,
    /// KV-cache capacity: bytes with an optional unit (512MiB, 2GB, 1073741824) or a fraction of RAM (0.1).
    #[arg(long, default_value = "1GiB")]
    pub kv_cache_memory: String,
    /// Element type of the KV cache.
    #[arg(long, value_enum, default_value_t = KvDtypeArg::F32)]
    pub kv_dtype: KvDtypeArg,
    /// Context window to serve (default: the model's, capped by the KV-cache capacity). A mocker
    /// engine may be given a longer one than its model's, to replay long-context traces.
    #[arg(long)]
    pub max_model_len: Option<usize>,
    /// Temperature for requests that do not set one (default: the model's recommendation, else 1).
    #[arg(long)]
    pub default_temperature: Option<f32>,
    /// top_p for requests that do not set one (default: the model's recommendation, else 1).
    #[arg(long)]
    pub default_top_p: Option<f32>,
    /// A Jinja chat template file to use instead of the GGUF's own (needed for chat with a model
    /// whose file has none; without one, chat requests get a 400 and completions still work).
    #[arg(long, value_name = "FILE")]
    pub chat_template: Option<PathBuf>,
    #[command(flatten)]
    pub kv_tiers: crate::kv_tier_args::KvTierArgs,
}

/// Validated model and engine settings of an engine in this process.
#[derive(Debug, Clone)]
pub struct LocalEngineConfig {
    pub model: Option<PathBuf>,
    pub model_name: Option<String>,
    pub threads: usize,
    pub max_num_seqs: usize,
    pub max_num_batched_tokens: usize,
    pub block_size_tokens: usize,
    pub kv_cache_bytes: u64,
    pub kv_dtype: KvDtypeArg,
    pub max_model_len: Option<usize>,
    pub default_temperature: Option<f32>,
    pub default_top_p: Option<f32>,
    /// The contents of `--chat-template FILE`.
    pub chat_template: Option<String>,
    /// KV offload tiers (`--kv-host-memory`, `--kv-disk-dir`, …).
    pub kv_tiers: crate::kv_tier_args::KvTierSettings,
}

impl EngineArgs {
    pub fn validate(
        &self,
        total_ram_bytes: Option<u64>,
        cores: usize,
    ) -> Result<LocalEngineConfig> {
        let threads = self.threads.unwrap_or(cores.max(1));
        if threads == 0 || threads > 256 {
            bail!("--threads must be between 1 and 256, got {threads}");
        }
        if self.max_num_seqs == 0 {
            bail!("--max-num-seqs must be at least 1");
        }
        if self.block_size == 0 || self.block_size > 1024 {
            bail!(
                "--block-size must be between 1 and 1024, got {}",
                self.block_size
            );
        }
        if self.max_num_batched_tokens < self.block_size.min(16) {
            bail!(
                "--max-num-batched-tokens must be at least 16, got {}",
                self.max_num_batched_tokens
            );
        }
        if let Some(model) = &self.model {
            let known = model
                .to_str()
                .is_some_and(|n| crate::model_cache::known_model(n).is_ok());
            if !model.is_file() && !known {
                bail!(
                    "--model {}: no such file (nor a known model name)",
                    model.display()
                );
            }
        }
        if let Some(t) = self.default_temperature {
            if !(0.0..=2.0).contains(&t) {
                bail!("--default-temperature must be in [0, 2], got {t}");
            }
        }
        if let Some(p) = self.default_top_p {
            if !(p > 0.0 && p <= 1.0) {
                bail!("--default-top-p must be in (0, 1], got {p}");
            }
        }
        let chat_template = match &self.chat_template {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--chat-template {}", path.display()))?,
            ),
            None => None,
        };
        let kv_cache_bytes = parse_memory(&self.kv_cache_memory, total_ram_bytes)
            .with_context(|| format!("--kv-cache-memory {:?}", self.kv_cache_memory))?;
        let kv_tiers = self.kv_tiers.validate(total_ram_bytes)?;
        Ok(LocalEngineConfig {
            model: self.model.clone(),
            model_name: self.model_name.clone(),
            threads,
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            block_size_tokens: self.block_size,
            kv_cache_bytes,
            kv_dtype: self.kv_dtype,
            max_model_len: self.max_model_len,
            default_temperature: self.default_temperature,
            default_top_p: self.default_top_p,
            chat_template,
            kv_tiers,
        })
    }
}

/// Parses `512MiB`, `2GB`, `1073741824` or a fraction of RAM such as `0.1`.
pub fn parse_memory(text: &str, total_ram_bytes: Option<u64>) -> Result<u64> {
    let t = text.trim();
    if t.contains('.') && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let frac: f64 = t.parse().context("not a number")?;
        if !(frac > 0.0 && frac <= 0.9) {
            bail!("a fraction of RAM must be in (0, 0.9], got {frac}");
        }
        let total = total_ram_bytes
            .context("cannot read total RAM to apply a fraction; give bytes instead")?;
        return Ok((total as f64 * frac) as u64);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: u64 = num
        .parse()
        .context("expected a number of bytes, e.g. 512MiB")?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => bail!("unknown unit {other:?} (use B, KB, KiB, MB, MiB, GB, GiB)"),
    };
    let bytes = num.checked_mul(mult).context("too large")?;
    if bytes == 0 {
        bail!("must be positive");
    }
    Ok(bytes)
}

/// The event plane a process shares with others, connected: `None` for `mem` (an in-process
/// plane would be empty: the workers run in other processes).
pub async fn connect_shared_events(
    config: &rotor_runtime::EventsConfig,
) -> Result<Option<std::sync::Arc<dyn rotor_runtime::EventPlane>>> {
    match config {
        rotor_runtime::EventsConfig::InProcess => Ok(None),
        remote => Ok(Some(remote.connect().await.with_context(|| {
            format!("connecting to the event plane {remote}")
        })?)),
    }
}

/// Total RAM from /proc/meminfo (Linux), if readable.
pub fn total_ram_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("512MiB", None).unwrap(), 512 << 20);
        assert_eq!(parse_memory("2GB", None).unwrap(), 2_000_000_000);
        assert_eq!(parse_memory("1024", None).unwrap(), 1024);
        assert_eq!(parse_memory("0.5", Some(1000)).unwrap(), 500);
        assert!(parse_memory("0.5", None).is_err());
        assert!(parse_memory("1.5", Some(1000)).is_err());
        assert!(parse_memory("12XB", None).is_err());
        assert!(parse_memory("0", None).is_err());
    }

    fn mocker(bandwidth: Option<f64>, speedup: f64) -> anyhow::Result<MockerSettings> {
        MockerArgs {
            mocker_timing: "dynamo-vllm".into(),
            mocker_speedup: speedup,
            mocker_num_blocks: None,
            mocker_kv_bandwidth: bandwidth,
        }
        .validate()
    }

    #[test]
    fn mocker_kv_bandwidth_is_positive_and_scaled_by_the_speedup() {
        assert_eq!(mocker(None, 1.0).unwrap().kv_link_bytes_per_second, None);
        let s = mocker(Some(2.5), 4.0).unwrap();
        assert_eq!(s.kv_link_bytes_per_second, Some(2.5e9 * 4.0));
        assert!(s.kv_link().is_some());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = mocker(Some(bad), 1.0).unwrap_err().to_string();
            assert!(err.contains("--mocker-kv-bandwidth"), "{err}");
        }
    }
}
