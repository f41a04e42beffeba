//! `rotor replay` and `rotor profile` without building the whole `rotor` binary: the same
//! command modules (`crates/cli/src/{replay_cmd,profile_cmd}.rs`), compiled here.
//!
//!     cargo run --release -p rotor-replay --example replay -- replay --trace FILE --compare
//!     cargo run --release -p rotor-replay --example replay -- profile --out profile.json

#[path = "../../cli/src/profile_cmd.rs"]
mod profile_cmd;
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
