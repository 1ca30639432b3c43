//! `--playground`: a local AWS emulator (moto's server) as a child process,
//! so a newcomer can try infrasql without an AWS account.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error("cannot start moto_server ({0}); install it with: pip install 'moto[server]'")]
    Spawn(std::io::Error),
    #[error("moto_server did not answer within 30 s")]
    Timeout,
    #[error("no free port for moto_server: {0}")]
    Port(std::io::Error),
}

pub struct Playground {
    child: Child,
    pub endpoint_url: String,
}

/// Dummy credentials: moto accepts any, and real AWS rejects these.
pub const ACCESS_KEY: &str = "playground";
pub const SECRET_KEY: &str = "playground";

impl Playground {
    pub async fn start() -> Result<Playground, PlaygroundError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(PlaygroundError::Port)?
            .port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and affects only the child:
        // the emulator dies with infrasql.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(PlaygroundError::Spawn)?;
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                tracing::info!("playground: moto_server on 127.0.0.1:{port}");
                return Ok(Playground {
                    child,
                    endpoint_url: format!("http://127.0.0.1:{port}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(PlaygroundError::Timeout)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
