//! The running cluster's supervisor: it restarts PostgreSQL with back-off
//! when it dies, and stops it (fast, then immediate) when asked.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::sync::watch;

use super::{tail, Cluster};

/// Handle on the running cluster.
pub struct Supervisor {
    pub(super) stop: watch::Sender<bool>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// Fast shutdown: open transactions roll back, the cluster stops cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

pub(super) async fn supervise(
    cluster: Cluster,
    mut child: Child,
    trust_users: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        tokio::select! {
            status = child.wait() => {
                tracing::error!(
                    "PostgreSQL exited unexpectedly ({}); restarting in {backoff:?}. Last lines of {}:\n{}",
                    status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    cluster.dir.log_file().display(),
                    tail(&cluster.dir.log_file(), 10)
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                match cluster.spawn(trust_users) {
                    Ok(mut c) => match cluster.wait_ready(&mut c).await {
                        Ok(()) => {
                            tracing::info!("PostgreSQL is back");
                            backoff = Duration::from_millis(500);
                            child = c;
                        }
                        Err(e) => {
                            tracing::error!("{e}");
                            let _ = c.start_kill();
                            let _ = c.wait().await;
                            child = c;
                        }
                    },
                    Err(e) => {
                        tracing::error!("cannot restart PostgreSQL: {e}");
                        return;
                    }
                }
            }
            _ = stop.changed() => {
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
                }
                match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                    Ok(_) => tracing::info!("PostgreSQL stopped"),
                    Err(_) => {
                        tracing::warn!("PostgreSQL did not stop in 30 s; sending SIGQUIT");
                        if let Some(pid) = child.id() {
                            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGQUIT);
                        }
                        let _ = child.wait().await;
                    }
                }
                return;
            }
        }
    }
}
