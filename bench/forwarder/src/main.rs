//! The floor for `bench/pgbench.sh`: what a proxy on tokio gets when it does
//! nothing but copy bytes between the client and the backend.
//!
//! infrasql's sessions run on a current-thread tokio runtime with only the
//! I/O driver (`src/wire/runtime.rs`), read clients over TCP and reach the
//! backend over its Unix socket. This program does the same with no protocol
//! work at all: no framing, no classification, one task per connection. Its
//! throughput beside PgBouncer's says how much of infrasql's gap to PgBouncer
//! is the runtime and how much is infrasql's own work per message.
//!
//! With `--mio` it runs the same copy on a bare event loop instead
//! (`event_loop.rs`): the floor for a proxy without tokio's scheduling.
//!
//! Usage: `infrasql-bench-forwarder [--mio] LISTEN_ADDR BACKEND_SOCKET`, for
//! example `127.0.0.1:0 /tmp/data/pgdata/.s.PGSQL.5432`. It prints
//! `forwarder listening on ADDR` once it accepts connections.

use std::io::Write;

use tokio::net::{TcpListener, UnixStream};

mod event_loop;

fn main() -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let on_mio = args.first().map(String::as_str) == Some("--mio");
    if on_mio {
        args.remove(0);
    }
    let [listen, backend] = <[String; 2]>::try_from(args).unwrap_or_else(|_| {
        eprintln!("usage: infrasql-bench-forwarder [--mio] LISTEN_ADDR BACKEND_SOCKET");
        std::process::exit(2);
    });
    if on_mio {
        let addr = listen.parse().map_err(std::io::Error::other)?;
        return event_loop::run(addr, backend);
    }
    // As infrasql builds its sessions' runtime at one worker thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen).await?;
        println!("forwarder listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        loop {
            let (mut client, _) = listener.accept().await?;
            // infrasql sets it on its client sockets too.
            client.set_nodelay(true)?;
            let backend = backend.clone();
            tokio::spawn(async move {
                match UnixStream::connect(&backend).await {
                    Ok(mut server) => {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                    Err(e) => eprintln!("cannot reach the backend at {backend}: {e}"),
                }
            });
        }
    })
}
