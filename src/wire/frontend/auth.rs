//! From the startup packet to the first ReadyForQuery: the backend
//! authenticates the client and infrasql relays the exchange.
//!
//! Only SCRAM-SHA-256 is relayed under `--auth scram`, and the relay
//! insists that the backend really asked for it: a backend that lets a user
//! in without SCRAM is refused rather than trusted. The backend's
//! BackendKeyData is swapped for a key of infrasql's own (`wire::cancel`).

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::negotiate::ClientConn;
use super::Frontend;
use crate::config::AuthMode;
use crate::engine::errors;
use crate::engine::report::Report;
use crate::wire::cancel::{BackendKey, CancelGuard};
use crate::wire::protocol::{encode_backend_key, encode_error, next_frame, Frame, TxStatus};
use crate::wire::session::SessionParts;
use crate::wire::stream::{BoxRead, BoxWrite};

/// SASL messages are small; this bounds what an unauthenticated client can make us buffer.
const MAX_AUTH_MESSAGE: usize = 64 * 1024;

impl Frontend {
    /// Relay the backend's authentication requests and the client's
    /// answers until the backend is ready. `None` when the login failed or
    /// was refused (the client has the error).
    pub(super) async fn relay_auth(
        &self,
        conn: ClientConn,
        mut b_in: BoxRead,
        mut b_out: BoxWrite,
        user: &str,
        mode: super::mode::Mode,
    ) -> std::io::Result<Option<(SessionParts, CancelGuard)>> {
        let (mut c_in, mut c_out) = conn.into_split();
        let mut cbuf = BytesMut::new();
        let mut bbuf = BytesMut::with_capacity(8192);
        let mut saw_sasl = false;
        let mut guard = None;
        loop {
            let f = read_frame(&mut b_in, &mut bbuf, usize::MAX >> 1).await?;
            match f.tag {
                b'R' => {
                    let code = if f.body().len() >= 4 {
                        (&f.body()[..4]).get_i32()
                    } else {
                        -1
                    };
                    match code {
                        0 => {
                            if self.auth == AuthMode::Scram && !saw_sasl {
                                let r = Report::fatal(
                                    errors::LOGIN_REFUSED,
                                    format!("password authentication required for user \"{user}\""),
                                )
                                .with_detail("The backend PostgreSQL let this user in without SCRAM, and infrasql runs with --auth scram.")
                                .with_hint("Configure the backend's pg_hba.conf for scram-sha-256, or run infrasql with --auth trust on a loopback address.");
                                write_report(&mut c_out, r).await;
                                return Ok(None);
                            }
                            c_out.write_all(&f.bytes).await?;
                        }
                        10 | 11 => {
                            saw_sasl = true;
                            c_out.write_all(&f.bytes).await?;
                            c_out.flush().await?;
                            let reply = read_frame(&mut c_in, &mut cbuf, MAX_AUTH_MESSAGE).await?;
                            if reply.tag != b'p' {
                                return Ok(None);
                            }
                            b_out.write_all(&reply.bytes).await?;
                            b_out.flush().await?;
                        }
                        12 => c_out.write_all(&f.bytes).await?,
                        3 | 5 if self.auth == AuthMode::Trust => {
                            c_out.write_all(&f.bytes).await?;
                            c_out.flush().await?;
                            let reply = read_frame(&mut c_in, &mut cbuf, MAX_AUTH_MESSAGE).await?;
                            b_out.write_all(&reply.bytes).await?;
                            b_out.flush().await?;
                        }
                        other => {
                            let method = match other {
                                3 => "cleartext password",
                                5 => "MD5",
                                7 | 8 => "GSSAPI",
                                9 => "SSPI",
                                _ => "an unknown method",
                            };
                            let r = Report::fatal(
                                errors::LOGIN_REFUSED,
                                format!("the backend asked user \"{user}\" for {method} authentication; infrasql accepts only SCRAM-SHA-256"),
                            )
                            .with_hint("Set password_encryption = scram-sha-256 and use scram-sha-256 in the backend's pg_hba.conf.");
                            write_report(&mut c_out, r).await;
                            return Ok(None);
                        }
                    }
                }
                b'K' => {
                    let body = f.body();
                    if body.len() < 8 {
                        return Ok(None);
                    }
                    let pid = (&body[..4]).get_i32();
                    let g = self.cancels.register(BackendKey {
                        addr: self.backend.clone(),
                        pid,
                        secret: body[4..].to_vec(),
                        apply: Default::default(),
                    });
                    let mut kb = BytesMut::new();
                    encode_backend_key(g.key.0, g.key.1, &mut kb);
                    c_out.write_all(&kb).await?;
                    guard = Some(g);
                }
                b'E' => {
                    // Wrong password (28P01), unknown database, too many
                    // connections: the backend's own words reach the client.
                    c_out.write_all(&f.bytes).await?;
                    c_out.flush().await?;
                    return Ok(None);
                }
                b'Z' => {
                    c_out.write_all(&f.bytes).await?;
                    c_out.flush().await?;
                    let status = f
                        .body()
                        .first()
                        .and_then(|b| TxStatus::from_byte(*b))
                        .unwrap_or(TxStatus::Idle);
                    let Some(guard) = guard else {
                        // Every PostgreSQL sends BackendKeyData; without it
                        // cancel would silently not work.
                        tracing::warn!("backend sent no BackendKeyData");
                        return Ok(None);
                    };
                    let (_tx, rx) = watch::channel(false);
                    return Ok(Some((
                        SessionParts {
                            client_in: c_in,
                            client_buf: cbuf,
                            client_out: c_out,
                            backend_in: b_in,
                            backend_buf: bbuf,
                            backend_out: b_out,
                            status,
                            hook: self.hook.clone(),
                            engine: self.engine.clone(),
                            cancel: guard.apply.clone(),
                            shutdown: rx,
                            plan_only: mode == super::mode::Mode::PlanOnly,
                            // The accept path knows the peer; it fills this in.
                            client_addr: None,
                        },
                        guard,
                    )));
                }
                _ => c_out.write_all(&f.bytes).await?,
            }
        }
    }
}

async fn read_frame(r: &mut BoxRead, buf: &mut BytesMut, max: usize) -> std::io::Result<Frame> {
    loop {
        match next_frame(buf, max) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        if r.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn write_report(w: &mut BoxWrite, r: Report) {
    let mut b = BytesMut::new();
    encode_error(&r, &mut b);
    let _ = w.write_all(&b).await;
    let _ = w.flush().await;
}
