//! Boxed stream halves, so plain TCP, TLS and Unix sockets share one pump.

use tokio::io::{AsyncRead, AsyncWrite};

pub type BoxRead = Box<dyn AsyncRead + Unpin + Send + Sync>;
pub type BoxWrite = Box<dyn AsyncWrite + Unpin + Send + Sync>;
