//! Command-line entry points.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::ServeArgs;
use crate::engine::hook::AllowAll;

#[derive(Debug, Parser)]
#[command(
    name = "infrasql",
    version,
    about = "Infrastructure as SQL: cloud resources are tables"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the PostgreSQL-wire server.
    Serve(ServeArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let running = crate::server::start(cfg, Arc::new(AllowAll)).await?;
    println!(
        "infrasql listening on {}{}; connect with: {}",
        running.local_addr,
        if running.tls { " (TLS available)" } else { "" },
        running.connect_hint()
    );
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: no new connections; a second signal exits at once");
    let stop = running.shutdown();
    tokio::pin!(stop);
    tokio::select! {
        _ = &mut stop => {}
        _ = term.recv() => anyhow::bail!("second signal: exiting without waiting"),
        _ = int.recv() => anyhow::bail!("second signal: exiting without waiting"),
    }
    Ok(())
}
