//! The same forwarder on a bare `mio` event loop: one thread, one
//! `epoll_wait`, and each ready socket handled in place, with no task, waker
//! or run queue between the event and the copy. PgBouncer is built this way
//! (libevent); the gap between this loop and the tokio one is what tokio's
//! scheduling costs a proxy per message.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);
const BUF: usize = 16 * 1024;

/// One side of a connection: its socket and the bytes read from the other
/// side that it could not take yet.
struct Side<S> {
    sock: S,
    pending: Vec<u8>,
}

struct Pair {
    client: Side<TcpStream>,
    server: Side<UnixStream>,
}

pub fn run(listen: SocketAddr, backend: String) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("forwarder listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    // Slot 0 is never used: token 0 is the listener's. Freed slots are
    // reused; a hash map's hashing alone cost a quarter of this loop.
    let mut pairs: Vec<Option<Pair>> = vec![None];
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; BUF];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_all(&poll, &mut listener, &backend, &mut pairs)?;
                continue;
            }
            // Even tokens are clients, odd ones their backends.
            let id = ev.token().0 / 2;
            let from_client = ev.token().0 % 2 == 0;
            let Some(pair) = pairs.get_mut(id).and_then(Option::as_mut) else {
                continue;
            };
            if pump(&poll, pair, id, from_client, &mut buf).is_err() {
                let mut pair = pairs[id].take().expect("present above");
                let _ = poll.registry().deregister(&mut pair.client.sock);
                let _ = poll.registry().deregister(&mut pair.server.sock);
            }
        }
    }
}

fn accept_all(
    poll: &Poll,
    listener: &mut TcpListener,
    backend: &str,
    pairs: &mut Vec<Option<Pair>>,
) -> io::Result<()> {
    loop {
        let (mut client, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        client.set_nodelay(true)?;
        // A blocking connect is fine for a benchmark tool: a local Unix
        // socket accepts at once.
        let server = match std::os::unix::net::UnixStream::connect(backend) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot reach the backend at {backend}: {e}");
                continue;
            }
        };
        server.set_nonblocking(true)?;
        let mut server = UnixStream::from_std(server);
        let id = match pairs.iter().skip(1).position(Option::is_none) {
            Some(free) => free + 1,
            None => {
                pairs.push(None);
                pairs.len() - 1
            }
        };
        poll.registry()
            .register(&mut client, Token(2 * id), Interest::READABLE)?;
        poll.registry()
            .register(&mut server, Token(2 * id + 1), Interest::READABLE)?;
        pairs[id] = Some(Pair {
            client: Side {
                sock: client,
                pending: Vec::new(),
            },
            server: Side {
                sock: server,
                pending: Vec::new(),
            },
        });
    }
}

/// Handle an event on one socket of `pair`: finish what waits to be written
/// to it (and then read on from its peer, which was left unread meanwhile),
/// then copy what it has to read to its peer.
fn pump(
    poll: &Poll,
    pair: &mut Pair,
    id: usize,
    from_client: bool,
    buf: &mut [u8],
) -> io::Result<()> {
    let Pair { client, server } = pair;
    let (ct, st) = (Token(2 * id), Token(2 * id + 1));
    if from_client {
        if flush(poll, client, ct)? {
            copy(poll, server, client, ct, buf)?;
        }
        copy(poll, client, server, st, buf)
    } else {
        if flush(poll, server, st)? {
            copy(poll, client, server, st, buf)?;
        }
        copy(poll, server, client, ct, buf)
    }
}

/// Write what waits for `side`; once it is all out, stop asking for write
/// readiness (a Unix socket would report it at every read by its peer).
/// True when this emptied it.
fn flush<S: Write + mio::event::Source>(
    poll: &Poll,
    side: &mut Side<S>,
    token: Token,
) -> io::Result<bool> {
    if side.pending.is_empty() {
        return Ok(false);
    }
    let n = write_some(&mut side.sock, &side.pending)?;
    side.pending.drain(..n);
    if !side.pending.is_empty() {
        return Ok(false);
    }
    poll.registry()
        .reregister(&mut side.sock, token, Interest::READABLE)?;
    Ok(true)
}

/// Read `from` until it is drained (a short read says so, epoll(7)) and write
/// each read to `to`. While `to` has bytes waiting, `from` is left unread.
fn copy<A: Read, B: Write + mio::event::Source>(
    poll: &Poll,
    from: &mut Side<A>,
    to: &mut Side<B>,
    to_token: Token,
    buf: &mut [u8],
) -> io::Result<()> {
    while to.pending.is_empty() {
        let n = match from.sock.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let w = write_some(&mut to.sock, &buf[..n])?;
        if w < n {
            to.pending.extend_from_slice(&buf[w..n]);
            poll.registry().reregister(
                &mut to.sock,
                to_token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
        if n < buf.len() {
            return Ok(());
        }
    }
    Ok(())
}

fn write_some<S: Write>(sock: &mut S, mut bytes: &[u8]) -> io::Result<usize> {
    let total = bytes.len();
    while !bytes.is_empty() {
        match sock.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total - bytes.len())
}
