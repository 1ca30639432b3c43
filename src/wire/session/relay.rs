//! Backend → client: the relay task. It walks frame headers only (rows are
//! never decoded) and hands each answer to the client or to the driver, as
//! the front [`Route`] says.

use bytes::{Buf, Bytes};

use super::*;

/// Backend → client. Never decodes rows; walks frame headers only.
pub(super) async fn relay(
    mut backend: BoxRead,
    mut buf: BytesMut,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut error_seen = false;
    let mut fatal: Option<Report> = None;
    let mut front: Option<Route> = None;
    loop {
        // Frames are walked in place from `pos`; the ones for the client
        // are copied out in runs (`run..pos`), and the buffer advances once
        // per read rather than once per message.
        let mut pos = 0;
        let mut run = 0;
        loop {
            let n = match frame_len(&buf[pos..], MAX_BACKEND_MESSAGE) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("backend sent a malformed message: {e}");
                    fatal = Some(Report::fatal(
                        errors::PROTOCOL_VIOLATION,
                        format!("backend protocol error: {e}"),
                    ));
                    break;
                }
            };
            let frame = &buf[pos..pos + n];
            let tag = frame[0];
            // The front route changes only when this task pops it at a
            // ReadyForQuery, or when the driver pushes onto an empty queue
            // (which is why an empty queue is not remembered): one lock per
            // answer, not per message.
            let route = match front {
                Some(r) => r,
                None => {
                    front = shared
                        .routes
                        .lock()
                        .expect("routes lock poisoned")
                        .front()
                        .copied();
                    front.unwrap_or(Route::Client)
                }
            };
            // Whether the frame joins the run of bytes for the client.
            let to_client = match tag {
                b'Z' => {
                    let status_byte = frame[5];
                    let status = TxStatus::from_byte(status_byte).unwrap_or(TxStatus::Idle);
                    if status == TxStatus::Idle {
                        shared.changed.store(false, Ordering::Release);
                    }
                    shared.status.store(status_byte, Ordering::Release);
                    let to_client = route == Route::Client;
                    if !to_client {
                        // The driver acts on this; everything before it must
                        // already be at the client.
                        out.extend_from_slice(&buf[run..pos]);
                        run = pos + n;
                        if flush_out(&shared, &mut out).await.is_err() {
                            return gone(&shared, None).await;
                        }
                        let _ = events.send(Event::Ready {
                            status,
                            error: error_seen,
                        });
                    }
                    error_seen = false;
                    shared
                        .routes
                        .lock()
                        .expect("routes lock poisoned")
                        .pop_front();
                    front = None;
                    shared.drained.notify_waiters();
                    to_client
                }
                // Asynchronous messages always belong to the client.
                b'A' | b'S' => true,
                // infrasql's own marker never reaches the client.
                b'N' if is_change_marker(&frame[5..]) => {
                    shared.changed.store(true, Ordering::Release);
                    false
                }
                _ => {
                    if tag == b'E' {
                        error_seen = true;
                        if is_fatal(&frame[5..]) {
                            // The backend closes after a FATAL; the relay
                            // reports this error instead of a generic one.
                            fatal = Some(parse_report(&frame[5..]));
                        }
                    }
                    if route == Route::Driver {
                        let bytes = Bytes::copy_from_slice(frame);
                        let _ = events.send(Event::Message(Frame { tag, bytes }));
                    }
                    route != Route::Driver
                }
            };
            if !to_client && run < pos + n {
                out.extend_from_slice(&buf[run..pos]);
                run = pos + n;
            }
            pos += n;
        }
        // Usually the whole read goes to the client: it is written from
        // the read buffer itself, without a copy.
        let sent = if !out.is_empty() {
            out.extend_from_slice(&buf[run..pos]);
            flush_out(&shared, &mut out).await
        } else if run < pos {
            shared.write_client(&buf[run..pos]).await
        } else {
            Ok(())
        };
        if sent.is_err() {
            return gone(&shared, None).await;
        }
        buf.advance(pos);
        room_to_read(&mut buf);
        match backend.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                // A FATAL already relayed needs no second error.
                let report = if fatal.is_some() {
                    None
                } else {
                    Some(
                        Report::fatal(
                            errors::CONNECTION_LOST,
                            "connection to the backend PostgreSQL was lost",
                        )
                        .with_hint(
                            "Reconnect; infrasql restarts its embedded PostgreSQL when it dies.",
                        ),
                    )
                };
                return gone(&shared, report).await;
            }
            Ok(_) => {}
        }
    }
}

/// A NOTICE whose message is [`CHANGE_MARKER`] (schema 1010's capture).
fn is_change_marker(body: &[u8]) -> bool {
    parse_report(body).message == CHANGE_MARKER
}

pub(super) fn is_fatal(body: &[u8]) -> bool {
    matches!(parse_report(body).severity, "FATAL" | "PANIC")
}

pub(super) async fn flush_out(shared: &Shared, out: &mut BytesMut) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let r = shared.write_client(out).await;
    out.clear();
    r
}

pub(super) async fn gone(shared: &Shared, report: Option<Report>) {
    if let Some(r) = report {
        let mut out = BytesMut::new();
        encode_error(&r, &mut out);
        let _ = shared.write_client(&out).await;
    }
    shared.backend_gone.store(true, Ordering::Release);
    shared.drained.notify_waiters();
    shared.stop.wake();
    let _ = shared.client_out.lock().await.shutdown().await;
}
