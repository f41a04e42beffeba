//! The `rotor` binary.
//!
//! - `rotor serve`: OpenAI-compatible HTTP frontend plus a native-engine worker in one process.
//! - `rotor fetch-model`: put the default model in the local cache and print its path.
//! - `rotor bench`: drive any OpenAI-compatible server with synthetic load or a trace.
//! - `rotor worker`: one engine served to frontends over the runtime.
//! - `rotor frontend`: the HTTP server over workers found through discovery.
//! - `rotor router`: the standalone KV-aware router between frontends and workers.
//! - `rotor planner`: the SLA planner (scales workers through a connector); `rotor profile`,
//!   `rotor replay`: its performance profile, and offline replay of a trace on a simulated clock.
//!
//! The binary is the only place that reads the environment, installs signal handlers and owns the
//! root cancellation token.

mod args;
mod engine_backend;
mod engine_metrics;
mod frontend_cmd;
mod http_args;
mod kv_tier_args;
mod mocker_fit_cmd;
mod model_cache;
mod planner_cmd;
mod profile_cmd;
mod profile_native;
mod replay_cmd;
mod router_cmd;
mod serve;
mod worker_cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "rotor",
    version,
    about = "Serve large language models fast, from one CPU to many machines."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct FetchModelArgs {
    /// Which model: `smollm2-135m-instruct` (the default model) or `gemma3-270m` (Gemma 3 270M
    /// Q4_K_M, under Gemma's terms of use).
    #[arg(default_value = model_cache::DEFAULT_MODEL.name)]
    model: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the OpenAI-compatible server and a native engine in one process.
    Serve(args::ServeArgs),
    /// Make sure a model is in the local cache (download and verify it if not); print its path, and
    /// nothing else, on stdout.
    FetchModel(FetchModelArgs),
    /// Drive an OpenAI-compatible server with synthetic load or a trace and report latency and throughput.
    Bench(rotor_bench::BenchArgs),
    /// Serve one engine to frontends over the runtime (discovery, request plane, event plane).
    Worker(worker_cmd::WorkerArgs),
    /// Run the OpenAI-compatible server over workers found through discovery.
    Frontend(frontend_cmd::FrontendArgs),
    /// Route workers (KV-aware by default) as a service that frontends send requests through.
    Router(router_cmd::RouterArgs),
    /// Time the native engine on this machine and fit the mocker's timing model to it.
    MockerFit(mocker_fit_cmd::MockerFitArgs),
    /// Scale workers to meet TTFT and ITL targets (SLA planner) through a connector.
    Planner(planner_cmd::PlannerArgs),
    /// Sweep a worker's engine and write the planner's performance profile (JSON).
    Profile(profile_cmd::ProfileArgs),
    /// Replay a trace against simulated workers, the router and the planner on a simulated clock.
    Replay(replay_cmd::ReplayArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ROTOR_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs piped to a file or a collector stay greppable.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rotor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match cli.command {
            Command::Serve(a) => {
                let cores = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                let cfg = a.validate(args::total_ram_bytes(), cores)?;
                serve::run(cfg, shutdown).await
            }
            Command::FetchModel(a) => {
                let model = model_cache::known_model(&a.model)?;
                let dir = serve::default_models_dir()?;
                let path =
                    tokio::task::spawn_blocking(move || model_cache::ensure_model(model, &dir))
                        .await??;
                println!("{}", path.display());
                Ok(())
            }
            Command::Bench(a) => rotor_bench::run(a, shutdown).await.map(|_| ()),
            Command::Worker(a) => worker_cmd::run(a, shutdown).await,
            Command::Frontend(a) => frontend_cmd::run(a, shutdown).await,
            Command::Router(a) => router_cmd::run(a, shutdown).await,
            Command::MockerFit(a) => mocker_fit_cmd::run(a).await,
            Command::Planner(a) => planner_cmd::run(a, shutdown).await,
            Command::Profile(a) => tokio::task::spawn_blocking(move || profile_cmd::run(a)).await?,
            Command::Replay(a) => tokio::task::spawn_blocking(move || replay_cmd::run(a)).await?,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rotor: error: {}", error_report(&e));
            ExitCode::FAILURE
        }
    }
}

/// Cancels the root token on SIGINT or SIGTERM.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

/// An error and its causes on one line, `outer: cause: root`. A cause whose text its parent already
/// ends with is left out, so an error that both shows its source and returns it from `source()`
/// is not said twice.
fn error_report(error: &anyhow::Error) -> String {
    let mut report = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if report.ends_with(&text) {
            continue;
        }
        if !report.is_empty() {
            report.push_str(": ");
        }
        report.push_str(&text);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::error_report;

    #[derive(Debug, thiserror::Error)]
    #[error("unsupported model architecture \"gemma3\"")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("model x.gguf: {source}")]
    struct ShowsItsSource {
        source: Root,
    }

    #[test]
    fn a_cause_already_shown_is_said_once() {
        let e = anyhow::Error::new(ShowsItsSource { source: Root }).context("loading the engine");
        assert_eq!(
            error_report(&e),
            "loading the engine: model x.gguf: unsupported model architecture \"gemma3\""
        );
    }

    #[test]
    fn distinct_causes_are_all_said() {
        let e = anyhow::anyhow!("root cause")
            .context("middle")
            .context("top");
        assert_eq!(error_report(&e), "top: middle: root cause");
    }
}
