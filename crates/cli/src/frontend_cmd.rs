//! `rotor frontend`: the OpenAI-compatible HTTP server over workers found through discovery.

/// `rotor frontend` flags.
#[derive(Debug, clap::Args)]
pub struct FrontendArgs {}

pub async fn run(
    _args: FrontendArgs,
    _shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    anyhow::bail!("rotor frontend is not built yet")
}
