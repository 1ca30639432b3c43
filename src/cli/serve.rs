//! `infrasql serve`: the runtimes it runs on, and the life of the server
//! from start to the signal that stops it.

use tokio::signal::unix::{signal, SignalKind};

use crate::config::ServeConfig;

/// The engine's runtime (the client sessions have their own, without
/// timers: `wire::runtime`). With one worker thread (the default on two cores)
/// it is a current-thread runtime: every task runs on the thread that
/// drives the I/O driver, so a proxied message wakes no second thread and
/// the scheduler's cross-thread bookkeeping is skipped (`bench/pgbench.sh`
/// measured the difference; bench/README.md). A multi-thread runtime with
/// one worker ran every task on that one worker too, so nothing that could
/// run in parallel before is serialised now.
pub(super) fn serve_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    runtime(threads)
}

pub(super) fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}

pub(super) async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let running = crate::server::start(cfg, None).await?;
    if let Some(url) = &running.aws_endpoint {
        tracing::info!("AWS API calls go to {url}");
    }
    // Before the wire's line: scripts (and the test harness) that wait for
    // that line have both addresses by then.
    if let Some(addr) = running.http_addr {
        let scheme = if running.tls { "https" } else { "http" };
        println!("infrasql HTTP on {scheme}://{addr}");
    }
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
