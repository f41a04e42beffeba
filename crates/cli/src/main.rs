//! The `rotor` binary.
//!
//! - `rotor serve`: OpenAI-compatible HTTP frontend plus a native-engine worker in one process.
//! - `rotor fetch-model`: put the default model in the local cache and print its path.
//! - `rotor bench`: drive any OpenAI-compatible server with synthetic load or a trace.
//! - `rotor worker`: one engine served to frontends over the runtime.
//! - `rotor frontend`: the HTTP server over workers found through discovery.
//! - `rotor router`: the standalone KV-aware router between frontends and workers.
//!
//! The binary is the only place that reads the environment, installs signal handlers and owns the
//! root cancellation token.

mod args;
mod engine_backend;
mod engine_metrics;
mod frontend_cmd;
mod mocker_fit_cmd;
mod model_cache;
mod router_cmd;
mod serve;
mod worker_cmd;

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the OpenAI-compatible server and a native engine in one process.
    Serve(args::ServeArgs),
    /// Make sure the default model is in the local cache (download and verify it if not); print its path.
    FetchModel,
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ROTOR_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
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
            Command::FetchModel => {
                let dir = serve::default_models_dir()?;
                let path =
                    tokio::task::spawn_blocking(move || model_cache::ensure_default_model(&dir))
                        .await??;
                println!("{}", path.display());
                Ok(())
            }
            Command::Bench(a) => rotor_bench::run(a, shutdown).await.map(|_| ()),
            Command::Worker(a) => worker_cmd::run(a, shutdown).await,
            Command::Frontend(a) => frontend_cmd::run(a, shutdown).await,
            Command::Router(a) => router_cmd::run(a, shutdown).await,
            Command::MockerFit(a) => mocker_fit_cmd::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rotor: error: {e:#}");
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
