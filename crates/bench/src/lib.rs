//! `rotor bench`: a load generator and trace replayer for any OpenAI-compatible server.
//!
//! It sends streaming requests (`stream_options.include_usage`, `ignore_eos` with
//! `max_tokens = min_tokens` = the wanted output length) and measures per SSE chunk: time to
//! first token, inter-token latency, end-to-end latency, throughput, goodput under SLOs, and the
//! server's prefix-cache hit rate from its Prometheus counters.
//!
//! - Load: closed loop (`--concurrency`), Poisson arrivals (`--request-rate`, seeded), or a
//!   trace's own schedule scaled by `--time-scale`; always bounded by `--num-requests` and
//!   `--max-duration` ([`runner`]).
//! - Prompts: synthetic token ids with length distributions and shared-prefix groups, or traces
//!   ([`trace`]: Mooncake, Azure, BurstGPT, ShareGPT). Mooncake hash ids become deterministic
//!   token blocks that keep the trace's prefix sharing ([`prompt`]). `--prompt-format text`
//!   sends them as one single-token word each, for servers that take only text (llama.cpp's).
//! - Scenarios: `load` (the above) or `shared-prefix` ([`shared_prefix`]: the TTFT of a request
//!   that shares a long prefix with an earlier one, against one that does not).
//! - Output: a table on stdout, JSON ([`Report`]), a PNG ([`plot`]), a progress bar on stderr.
//!
//! Key types: [`BenchArgs`] → [`BenchConfig`] → [`workload::Workload`] → [`Report`].
//! This crate must not depend on engine internals (engine, model, kv-cache, frontend): it talks
//! to servers only over HTTP, so it measures Rotor and other servers alike.

pub mod args;
pub mod client;
pub mod config;
pub mod error;
pub mod lengths;
pub mod plot;
pub mod progress;
pub mod prom;
pub mod prompt;
pub mod report;
pub mod rng;
pub mod runner;
pub mod schedule;
pub mod shared_prefix;
pub mod sse;
pub mod stats;
pub mod trace;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use args::BenchArgs;
pub use config::{BenchConfig, Endpoint, LoadMode, PromptFormat, Scenario, ScenarioConfig};
pub use error::Error;
pub use report::{Report, Summary};

/// Runs a benchmark: validates `args`, builds the workload, drives the server, prints the
/// report's table on stdout, writes the JSON and PNG if asked, and returns the report.
/// Cancelling `shutdown` stops issuing and cancels requests in flight; the partial report is
/// still produced.
pub async fn run(args: BenchArgs, shutdown: CancellationToken) -> anyhow::Result<Report> {
    let config = args.validate()?;
    let for_build = config.clone();
    let workload = tokio::task::spawn_blocking(move || workload::build(&for_build))
        .await
        .context("workload builder panicked")??;
    run_workload(config, workload, shutdown).await
}

/// Runs an already built workload (see [`run`]).
pub async fn run_workload(
    config: BenchConfig,
    workload: workload::Workload,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")?;
    let model = match &config.model {
        Some(m) => m.clone(),
        None => first_model(&client, &config.base_url).await?,
    };
    let before = match &config.metrics_url {
        Some(url) => prom::scrape(&client, url).await,
        None => None,
    };
    let target = Arc::new(
        client::Target::new(
            client.clone(),
            format!("{}{}", config.base_url, workload.endpoint.path()),
            workload.endpoint,
            model.clone(),
            config.request_timeout,
        )
        .context("cannot build the HTTP client")?,
    );
    let planned = workload.requests.len();
    let progress = progress::Progress::new(planned, config.progress);
    let workload = Arc::new(workload);
    let outcome = runner::drive(
        target,
        workload.clone(),
        config.max_duration,
        progress.clone(),
        shutdown,
    )
    .await;
    progress.finish();
    let after = match &config.metrics_url {
        Some(url) => prom::scrape(&client, url).await,
        None => None,
    };
    let duration_s = outcome.duration.as_secs_f64();
    let mut summary = Summary::compute(&outcome.records, planned, duration_s, config.slo);
    summary.prefix_cache_hit_rate = match (before, after) {
        (Some(b), Some(a)) => a.hit_rate_since(&b),
        _ => None,
    };
    let report = Arc::new(Report {
        run: report::RunInfo {
            url: config.base_url.clone(),
            model,
            endpoint: workload.endpoint,
            mode: workload.mode,
            mode_description: workload::describe_mode(&workload.mode),
            source: workload.source.clone(),
            seed: config.seed,
            skipped_trace_rows: workload.skipped_trace_rows,
        },
        summary,
        shared_prefix: match config.scenario {
            ScenarioConfig::Load => None,
            ScenarioConfig::SharedPrefix {
                prefix_tokens,
                repetitions,
            } => Some(shared_prefix::SharedPrefixSummary::compute(
                &outcome.records,
                prefix_tokens,
                repetitions,
            )),
        },
        records: outcome.records,
    });
    println!("{report}");
    if let Some(path) = config.output_json.clone() {
        let report = report.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            serde_json::to_writer_pretty(std::io::BufWriter::new(file), &*report)
                .with_context(|| format!("cannot write {}", path.display()))
        })
        .await
        .context("JSON writer panicked")??;
    }
    if let Some(path) = config.plot.clone() {
        let report = report.clone();
        tokio::task::spawn_blocking(move || {
            plot::write_png(&path, &report.records, report.summary.duration_s)
        })
        .await
        .context("plotter panicked")??;
    }
    Ok(Arc::try_unwrap(report).unwrap_or_else(|shared| (*shared).clone()))
}

/// The id of the first model in GET `{base_url}/v1/models`.
async fn first_model(client: &reqwest::Client, base_url: &str) -> anyhow::Result<String> {
    let url = format!("{base_url}/v1/models");
    let body: Value = client
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("GET {url} failed; pass --model"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON; pass --model"))?;
    body.get("data")
        .and_then(Value::as_array)
        .and_then(|models| models.first())
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("GET {url} lists no model; pass --model"))
}
