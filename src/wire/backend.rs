//! The upstream side: reaching the backend PostgreSQL at its address
//! (`store::BackendAddr`), for a session or a cancel request.

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::protocol::CANCEL_REQUEST_CODE;
use super::stream::{BoxRead, BoxWrite};
use crate::store::BackendAddr;

/// Open a connection to the backend, split into its two halves.
pub async fn connect(addr: &BackendAddr) -> std::io::Result<(BoxRead, BoxWrite)> {
    match addr {
        BackendAddr::Unix(path) => {
            let (r, w) = super::quiet_unix::connect(path).await?;
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
pub async fn cancel(addr: &BackendAddr, pid: i32, secret: &[u8]) -> std::io::Result<()> {
    let (_r, mut w) = connect(addr).await?;
    let mut msg = BytesMut::with_capacity(12 + secret.len());
    msg.put_i32((12 + secret.len()) as i32);
    msg.put_i32(CANCEL_REQUEST_CODE);
    msg.put_i32(pid);
    msg.put_slice(secret);
    w.write_all(&msg).await?;
    w.flush().await
}
