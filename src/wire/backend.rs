//! The upstream side: where the backend PostgreSQL is and how to reach it.

use std::path::PathBuf;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use super::protocol::CANCEL_REQUEST_CODE;
use super::stream::{BoxRead, BoxWrite};

/// Address of the backend PostgreSQL's client port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendAddr {
    /// Full path of the Unix socket file (`.../.s.PGSQL.5432`).
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
}

impl std::fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            BackendAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl BackendAddr {
    pub async fn connect(&self) -> std::io::Result<(BoxRead, BoxWrite)> {
        match self {
            BackendAddr::Unix(path) => {
                let (r, w) = UnixStream::connect(path).await?.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            BackendAddr::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
        }
    }

    /// Ask the backend to cancel whatever the session with this key runs.
    /// PostgreSQL answers a CancelRequest by closing the connection.
    pub async fn cancel(&self, pid: i32, secret: &[u8]) -> std::io::Result<()> {
        let (_r, mut w) = self.connect().await?;
        let mut msg = BytesMut::with_capacity(12 + secret.len());
        msg.put_i32((12 + secret.len()) as i32);
        msg.put_i32(CANCEL_REQUEST_CODE);
        msg.put_i32(pid);
        msg.put_slice(secret);
        w.write_all(&msg).await?;
        w.flush().await
    }
}
