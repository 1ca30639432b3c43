//! The backend's Unix socket, registered with epoll for read readiness only.
//!
//! Why not tokio's `UnixStream`: it registers every socket for reading and
//! writing, edge-triggered. Linux wakes a Unix socket's writer each time its
//! peer *consumes* data (`unix_write_space`), so each query forwarded to the
//! backend came back as an EPOLLOUT event the moment PostgreSQL read it: one
//! more `epoll_wait` and context switch per query on the proxy's thread, and
//! at the worst moment, while PostgreSQL runs it (3 against PgBouncer's 2 per
//! `pgbench -S` transaction, `perf stat`; bench/README.md).
//!
//! The writes here are plain non-blocking writes. Only when one would block
//! (a backend that stopped reading: a large COPY, say) does the writer
//! register a duplicate of the descriptor for write readiness, and it drops
//! that registration as soon as the write goes through.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Connect to `path` and split the stream into its two halves.
pub async fn connect(path: &std::path::Path) -> io::Result<(ReadHalf, WriteHalf)> {
    // tokio's connect is non-blocking and waits for completion; the socket
    // is then handed over, deregistered, to a read-only registration.
    let stream = tokio::net::UnixStream::connect(path).await?.into_std()?;
    stream.set_nonblocking(true)?;
    let fd = Arc::new(register(stream, Interest::READABLE)?);
    Ok((ReadHalf(fd.clone()), WriteHalf { fd, waiting: None }))
}

/// Register a descriptor the value owns with the runtime's reactor.
fn register<T: AsRawFd>(owner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `UnixStream` and `OwnedFd` own their descriptor: it stays open
    // and the same for as long as they live, and the `AsyncFd` owns them.
    unsafe { AsyncFd::register_with_interest(owner, interest) }.map_err(io::Error::from)
}

pub struct ReadHalf(Arc<AsyncFd<UnixStream>>);

pub struct WriteHalf {
    fd: Arc<AsyncFd<UnixStream>>,
    /// A duplicate of the descriptor registered for write readiness, only
    /// while a write waits for room.
    waiting: Option<AsyncFd<OwnedFd>>,
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            match guard.try_io(|fd| recv_into(fd.get_ref(), buf)) {
                Ok(Ok((n, want))) => {
                    // A short read drained the socket (as tokio's own streams
                    // assume under epoll): wait for the next edge rather than
                    // pay for a read that would say WouldBlock.
                    if n > 0 && n < want {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Read into the unfilled part of `buf` without zeroing it first: the
/// session reads into a buffer's spare capacity, and `initialize_unfilled`
/// would write all of it (16 KiB) for every message received. Returns the
/// bytes read and the room there was.
fn recv_into(stream: &UnixStream, buf: &mut ReadBuf<'_>) -> io::Result<(usize, usize)> {
    // SAFETY: `recv` writes at most `room` bytes into the unfilled part
    // (valid for writes, possibly uninitialised), and exactly the `n` it
    // returns are then marked initialised and filled.
    unsafe {
        let unfilled = buf.unfilled_mut();
        let room = unfilled.len();
        let n = libc::recv(stream.as_raw_fd(), unfilled.as_mut_ptr().cast(), room, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        buf.assume_init(n);
        buf.advance(n);
        Ok((n, room))
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.fd.get_ref().write(buf) {
                Ok(n) => {
                    // Room again: no more write wake-ups from this socket.
                    self.waiting = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
            if self.waiting.is_none() {
                // Registering reports the current state, so room that
                // appeared since the write above is not missed.
                let dup = self.fd.get_ref().as_fd().try_clone_to_owned()?;
                self.waiting = Some(register(dup, Interest::WRITABLE)?);
            }
            let waiting = self.waiting.as_ref().expect("registered above");
            let mut guard = ready!(waiting.poll_write_ready(cx))?;
            // Try the write again; a WouldBlock then waits for the next edge.
            guard.clear_ready();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.fd.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A write larger than the socket's buffers waits for the peer, through
    /// the write-only registration, and every byte arrives in order; the
    /// read half sees the peer's answer and its end.
    #[tokio::test]
    async fn a_blocked_write_waits_for_room_and_reads_still_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (mut r, mut w) = connect(&path).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();

        let sent: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                w.write_all(&sent).await.unwrap();
                w.shutdown().await.unwrap();
                w
            })
        };
        // The peer starts reading only once the writer is stuck.
        tokio::task::yield_now().await;
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "bytes arrived out of order or changed");
        let w = writer.await.unwrap();
        assert!(
            w.waiting.is_none(),
            "the write registration outlived the wait"
        );

        peer.write_all(b"answer").await.unwrap();
        drop(peer);
        let mut answer = Vec::new();
        r.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
    }
}
