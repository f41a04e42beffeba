//! `rotor worker`: one engine served on the runtime's request plane.

/// `rotor worker` flags.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {}

pub async fn run(
    _args: WorkerArgs,
    _shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    anyhow::bail!("rotor worker is not built yet")
}
