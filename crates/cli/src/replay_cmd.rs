//! `rotor replay`: a trace against mocker engine cores, the KV router and the planner on a
//! simulated clock (`rotor_replay`): SLA attainment, worker-seconds, scaling events and
//! TTFT/ITL percentiles per policy; `--compare` sets the planner against static provisioning
//! at its peak and at its mean and against Dynamo's planner rule.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rotor_bench::trace::{self, TracePrompt};
use rotor_planner::{PerfProfile, PlannerConfig, PredictorKind, Sla};
use rotor_replay::{
    profile_mocker, replay, Policy, ProfileGrid, ReplayConfig, ReplayReport, ReplayRequest,
};

use crate::profile_cmd::SimEngineArgs;

/// `rotor replay` flags.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Trace file: Mooncake JSONL, Azure or BurstGPT CSV (detected from its first line).
    #[arg(long)]
    pub trace: PathBuf,
    /// Arrival times are multiplied by this (0.5 replays twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Prompt and output lengths are multiplied by these.
    #[arg(long, default_value_t = 1.0)]
    pub isl_scale: f64,
    #[arg(long, default_value_t = 1.0)]
    pub osl_scale: f64,
    /// Output length for traces that do not give one.
    #[arg(long, default_value_t = 128)]
    pub default_osl: u32,
    /// Replay only the trace's requests in [start, start + duration) seconds (before scaling).
    #[arg(long, default_value_t = 0.0)]
    pub start_s: f64,
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// `planner`, `dynamo-rule` or `static` (with `--workers`).
    #[arg(long, default_value = "planner")]
    pub policy: String,
    /// Workers of `--policy static`; the initial workers otherwise (default: the minimum).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Run the planner, static at its peak and at its mean, and the Dynamo rule.
    #[arg(long)]
    pub compare: bool,
    /// Worker start-up delays in seconds, comma-separated (a sweep runs the policy once each).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub startup_delay: Vec<f64>,
    #[arg(long, default_value_t = 2000.0)]
    pub ttft_ms: f64,
    #[arg(long, default_value_t = 50.0)]
    pub itl_ms: f64,
    #[arg(long, default_value_t = 1)]
    pub min_workers: usize,
    #[arg(long, default_value_t = 8)]
    pub max_workers: usize,
    /// Planning interval in seconds (simulated).
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Load predictor: `constant`, `moving-average`, `holt` or `kalman`.
    #[arg(long, default_value = "holt")]
    pub predictor: String,
    /// The workers' profile (`rotor profile`); default: swept from the mocker here.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub sim: SimEngineArgs,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// All reports, as JSON.
    #[arg(long)]
    pub output_json: Option<PathBuf>,
    /// Every decision of the (first) planner run with its inputs, one JSON object per line.
    #[arg(long)]
    pub decision_log: Option<PathBuf>,
}

fn load_requests(args: &ReplayArgs, context_length: usize) -> Result<Vec<ReplayRequest>> {
    for (flag, v) in [
        ("--time-scale", args.time_scale),
        ("--isl-scale", args.isl_scale),
        ("--osl-scale", args.osl_scale),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be a positive number, got {v}");
        }
    }
    let t = trace::load(&args.trace, None)
        .with_context(|| format!("cannot load trace {}", args.trace.display()))?;
    let end = args.duration_s.map_or(f64::INFINITY, |d| args.start_s + d);
    let mut out = Vec::new();
    for row in t.rows {
        let Some(ts) = row.timestamp else {
            bail!("the trace has no timestamps (ShareGPT prompts cannot be replayed on a clock)");
        };
        let at = ts.as_secs_f64();
        if at < args.start_s || at >= end {
            continue;
        }
        let (isl, hash_ids) = match row.prompt {
            TracePrompt::Length(n) => (n, Vec::new()),
            TracePrompt::HashIds {
                input_tokens,
                hash_ids,
            } => (input_tokens, hash_ids),
            TracePrompt::Text(_) => bail!("text prompts cannot be replayed"),
        };
        let osl = row.output_tokens.unwrap_or(args.default_osl);
        let scale = |n: u32, s: f64| ((f64::from(n) * s).round() as u32).max(1);
        let output_tokens = scale(osl, args.osl_scale).min(context_length as u32 / 2);
        let input_tokens =
            scale(isl, args.isl_scale).min(context_length as u32 - output_tokens - 1);
        out.push(ReplayRequest {
            arrival: Duration::from_secs_f64((at - args.start_s) * args.time_scale),
            input_tokens,
            output_tokens,
            hash_ids: if args.isl_scale == 1.0 {
                hash_ids
            } else {
                Vec::new()
            },
        });
    }
    out.sort_by_key(|r| r.arrival);
    if out.is_empty() {
        bail!("no request of the trace falls in the selected window");
    }
    Ok(out)
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let spec = args.sim.spec()?;
    let requests = load_requests(&args, spec.context_length)?;
    let profile = match &args.profile {
        Some(p) => PerfProfile::load(p)?,
        None => profile_mocker(&spec, &ProfileGrid::default())?,
    };
    let sla = Sla {
        ttft_ms: args.ttft_ms,
        itl_ms: args.itl_ms,
    };
    let mut planner_cfg = PlannerConfig::new(sla, args.min_workers, args.max_workers);
    planner_cfg.predictor = PredictorKind::parse(&args.predictor)?;
    let planner_cfg = planner_cfg.validate()?;
    let base = |policy: Policy, startup_s: f64| ReplayConfig {
        engine: spec.clone(),
        policy,
        sla,
        initial_workers: args.workers.unwrap_or(args.min_workers).max(1),
        startup_delay: Duration::from_secs_f64(startup_s.max(0.0)),
        interval: Duration::from_secs_f64(args.interval),
        seed: args.seed,
        block_size_tokens: args.sim.block_size,
    };
    let planner = || Policy::Planner {
        config: planner_cfg.clone(),
        profile: profile.clone(),
    };
    let dynamo = || Policy::DynamoRule {
        config: planner_cfg.clone(),
        profile: profile.clone(),
    };
    let mut reports: Vec<ReplayReport> = Vec::new();
    let t0 = std::time::Instant::now();
    for &startup in &args.startup_delay {
        let policy = match args.policy.as_str() {
            _ if args.compare => planner(),
            "planner" => planner(),
            "dynamo-rule" => dynamo(),
            "static" => Policy::Static {
                workers: args.workers.context("--policy static needs --workers N")?,
            },
            other => bail!("unknown --policy {other:?} (planner, dynamo-rule or static)"),
        };
        let first = replay(&base(policy, startup), &requests)?;
        if args.compare {
            let peak = first.peak_workers;
            let mean = first.mean_workers.ceil().max(1.0) as usize;
            reports.push(first);
            reports.push(replay(
                &base(Policy::Static { workers: peak }, startup),
                &requests,
            )?);
            reports.push(replay(
                &base(Policy::Static { workers: mean }, startup),
                &requests,
            )?);
            reports.push(replay(&base(dynamo(), startup), &requests)?);
        } else {
            reports.push(first);
        }
    }
    let wall = t0.elapsed();
    print_table(&reports, requests.len(), wall);
    if let Some(path) = &args.output_json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.decision_log {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        );
        for d in &reports[0].decisions {
            writeln!(f, "{}", serde_json::to_string(d)?)?;
        }
    }
    Ok(())
}

fn print_table(reports: &[ReplayReport], requests: usize, wall: Duration) {
    println!(
        "{requests} requests, simulated in {:.1} s of wall time",
        wall.as_secs_f64()
    );
    println!(
        "{:<14} {:>8} {:>9} {:>10} {:>8} {:>5} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "policy",
        "startup",
        "SLA met",
        "worker-s",
        "mean w",
        "peak",
        "events",
        "TTFT p50",
        "TTFT p90",
        "TTFT p99",
        "ITL p50",
        "ITL p99"
    );
    for r in reports {
        println!(
            "{:<14} {:>7.0}s {:>8.1}% {:>10.0} {:>8.2} {:>5} {:>7} {:>8.0}ms {:>8.0}ms {:>8.0}ms {:>6.1}ms {:>6.1}ms",
            r.policy,
            r.startup_delay_s,
            100.0 * r.sla_attainment,
            r.worker_seconds,
            r.mean_workers,
            r.peak_workers,
            r.scaling_events.len(),
            r.ttft_ms.p50,
            r.ttft_ms.p90,
            r.ttft_ms.p99,
            r.itl_ms.p50,
            r.itl_ms.p99,
        );
    }
}
