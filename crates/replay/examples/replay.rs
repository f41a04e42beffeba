//! `rotor replay` and `rotor profile` without building the whole `rotor` binary: the same
//! command modules (`crates/cli/src/{replay_cmd,profile_cmd}.rs`), compiled here.
//!
//!     cargo run --release -p rotor-replay --example replay -- replay --trace FILE --compare
//!     cargo run --release -p rotor-replay --example replay -- profile --out profile.json

#[path = "../../cli/src/profile_cmd.rs"]
mod profile_cmd;

/// `rotor profile --engine native` loads a GGUF through the CLI's model cache: it needs the
/// `rotor` binary, so here it is a named error (`--engine mocker` works as in the binary).
#[allow(dead_code)] // the limits are read by the real sweep only
mod profile_native {
    pub struct EngineLimits {
        pub max_num_seqs: usize,
        pub chunk_tokens: usize,
        pub block_size_tokens: usize,
    }

    #[derive(Debug, Clone, clap::Args)]
    pub struct NativeSweepArgs {}

    pub struct NativeSweep {
        pub profile: rotor_planner::PerfProfile,
        pub skipped: usize,
    }

    pub fn sweep(_: &NativeSweepArgs, _: EngineLimits) -> anyhow::Result<NativeSweep> {
        anyhow::bail!(
            "rotor profile --engine native needs the rotor binary: \
             cargo run --release -p rotor-cli -- profile --engine native …"
        )
    }
}
#[path = "../../cli/src/replay_cmd.rs"]
mod replay_cmd;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Replay(Box<replay_cmd::ReplayArgs>),
    Profile(profile_cmd::ProfileArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Replay(a) => replay_cmd::run(*a),
        Command::Profile(a) => profile_cmd::run(a),
    }
}
