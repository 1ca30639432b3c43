//! The driver's main loop: read the client, keep its messages in order,
//! and send each where it belongs (the simple or extended protocol, or
//! straight through). Parse is where a statement's kind and intercepts are
//! learnt, once, for every later Bind and Execute of it.

use super::*;

impl Driver {
    pub(super) async fn run(&mut self) -> Result<(), SessionEnd> {
        loop {
            let Some(frame) = self.unstash() else {
                self.flush().await?;
                self.read_client_idle().await?;
                continue;
            };
            self.handle(frame).await?;
        }
    }

    /// Wait for more client bytes while nothing else needs the driver.
    pub(super) async fn read_client_idle(&mut self) -> Result<(), SessionEnd> {
        if self.client_eof {
            return Err(SessionEnd::ClientClosed);
        }
        // A shutdown or a lost backend comes first, as cheap reads: a
        // client that always has more to send would otherwise never let
        // the select below look at the stop signal.
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return Err(SessionEnd::Shutdown);
        }
        if self.shared.backend_gone.load(Ordering::Acquire) {
            return Err(SessionEnd::BackendGone);
        }
        // The frames of the last read are handled and dropped by now, so an
        // emptied buffer can start again at its front.
        room_to_read(&mut self.cbuf);
        // `biased`: the client's bytes are what the driver waits for almost
        // every time; the stop signal is polled only when they are not there.
        let shared = &self.shared;
        let stopped = std::future::poll_fn(|cx| shared.poll_stop(cx));
        tokio::select! {
            biased;
            r = self.client_in.read_buf(&mut self.cbuf) => {
                if r? == 0 {
                    return Err(SessionEnd::ClientClosed);
                }
                if self.forward_plain_batches() || self.forward_plain_query() {
                    return Ok(());
                }
                self.parse_client(false).await
            }
            end = stopped => Err(end),
        }
    }

    /// Move complete client frames into the stash. While infrasql is busy
    /// (`busy`), COPY data goes to the backend at once: a COPY the driver is
    /// waiting on cannot finish without it.
    pub(super) async fn parse_client(&mut self, busy: bool) -> Result<(), SessionEnd> {
        loop {
            match next_frame(&mut self.cbuf, MAX_CLIENT_MESSAGE) {
                Ok(Some(f)) => {
                    if busy && self.stash.is_empty() && matches!(f.tag, b'd' | b'c' | b'f') {
                        if f.tag != b'd' {
                            self.copy_open = false;
                        }
                        self.out.extend_from_slice(&f.bytes);
                    } else {
                        self.stashed += f.bytes.len();
                        self.stash.push_back(f);
                    }
                }
                Ok(None) => {
                    shrink(&mut self.cbuf);
                    self.reserve_frame();
                    room_to_read(&mut self.cbuf);
                    break;
                }
                Err(e) => {
                    let r = match e {
                        FrameError::TooLarge(len, max) => Report::fatal(
                            errors::MESSAGE_TOO_LARGE,
                            format!("message of {len} bytes is too large: infrasql accepts at most {max} bytes"),
                        )
                        .with_hint("Send bulk data with COPY, which arrives in small messages."),
                        FrameError::BadLength(_) => {
                            Report::fatal(errors::PROTOCOL_VIOLATION, format!("invalid message: {e}"))
                        }
                    };
                    self.client_error(r).await?;
                    self.discard_client().await;
                    return Err(SessionEnd::Protocol(e.to_string()));
                }
            }
        }
        if busy {
            self.flush().await?;
        }
        Ok(())
    }

    /// The next stashed client message.
    pub(super) fn unstash(&mut self) -> Option<Frame> {
        let f = self.stash.pop_front()?;
        self.stashed -= f.bytes.len();
        Some(f)
    }

    /// Whether the driver may read the client while it waits for something
    /// else: not past its end, and not past [`STASH_LIMIT`].
    pub(super) fn may_read_ahead(&self) -> bool {
        !self.client_eof && self.stashed < STASH_LIMIT
    }

    /// Room for the whole of a frame whose header has arrived, in one
    /// allocation: growing by doubling as its bytes come would hold up to
    /// twice its size.
    fn reserve_frame(&mut self) {
        if let Ok(Some(_)) | Err(_) = frame_len(&self.cbuf, MAX_CLIENT_MESSAGE) {
            return;
        }
        if self.cbuf.len() >= 5 {
            let len = i32::from_be_bytes([self.cbuf[1], self.cbuf[2], self.cbuf[3], self.cbuf[4]]);
            self.cbuf
                .reserve((len as usize + 1).saturating_sub(self.cbuf.len()));
        }
    }

    /// After refusing a message: drop what the client still sends for a
    /// moment, so that closing the socket with its bytes unread (a TCP
    /// reset) does not destroy the error on its way to the client.
    async fn discard_client(&mut self) {
        let mut sink = vec![0u8; 64 * 1024];
        let drain = async {
            // The end of the answer: the client reads EOF after the error.
            let _ = self.shared.client_out.lock().await.shutdown().await;
            while let Ok(n) = self.client_in.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let engine = self.engine.clone();
        let _ = engine
            .timeout(std::time::Duration::from_secs(2), drain)
            .await;
        self.client_eof = true;
    }

    pub(super) async fn flush(&mut self) -> Result<(), SessionEnd> {
        if !self.out.is_empty() {
            let r = async {
                self.backend_out.write_all(&self.out).await?;
                self.backend_out.flush().await
            }
            .await;
            self.out.clear();
            shrink(&mut self.out);
            if r.is_err() {
                return Err(SessionEnd::BackendGone);
            }
        }
        Ok(())
    }

    pub(super) fn push_route(&self, r: Route) {
        self.shared
            .routes
            .lock()
            .expect("routes lock poisoned")
            .push_back(r);
    }

    pub(super) async fn client_error(&self, r: Report) -> Result<(), SessionEnd> {
        let mut b = BytesMut::new();
        encode_error(&r, &mut b);
        self.shared.write_client(&b).await?;
        Ok(())
    }

    pub(super) async fn client_ready(&self, status: TxStatus) -> Result<(), SessionEnd> {
        let mut b = BytesMut::new();
        encode_ready(status, &mut b);
        self.shared.write_client(&b).await?;
        Ok(())
    }

    pub(super) async fn handle(&mut self, f: Frame) -> Result<(), SessionEnd> {
        match f.tag {
            b'Q' => self.simple_query(f).await,
            b'P' => self.parse(f).await,
            b'B' => {
                let mut body = f.body();
                let portal = read_name(&mut body).unwrap_or(b"");
                let stmt = read_name(&mut body).unwrap_or(b"");
                let prepared = self
                    .statements
                    .get(stmt)
                    .cloned()
                    .unwrap_or_else(Prepared::unknown);
                self.batch_reads_plan |= prepared.reads_plan;
                let kind = prepared.kind;
                self.portals.insert(portal, prepared);
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: Some(kind),
                });
                Ok(())
            }
            b'E' => {
                let mut body = f.body();
                let portal = read_name(&mut body).unwrap_or(b"");
                let prepared = self
                    .portals
                    .get(portal)
                    .cloned()
                    .unwrap_or_else(Prepared::unknown);
                self.batch.push(BatchItem {
                    frame: f,
                    execute: Some(prepared),
                    prepares: None,
                });
                Ok(())
            }
            b'C' => {
                // What a closed name was is forgotten with it: a client that
                // prepares and closes new names all session long does not
                // grow these maps. A later Bind of the name is PostgreSQL's
                // error, and infrasql treats it as a write meanwhile.
                let body = f.body();
                if let Some((&kind, mut name)) = body.split_first() {
                    let name = read_name(&mut name).unwrap_or(b"");
                    match kind {
                        b'S' => self.statements.remove(name),
                        b'P' => self.portals.remove(name),
                        _ => {}
                    }
                }
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: None,
                });
                Ok(())
            }
            b'D' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: None,
                });
                Ok(())
            }
            b'H' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: None,
                });
                self.extended_batch(false).await
            }
            b'S' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: None,
                });
                self.extended_batch(true).await
            }
            // COPY data, FunctionCall, password messages: forwarded as they
            // are. FunctionCall ends with a ReadyForQuery like a Query.
            b'd' | b'c' | b'f' | b'p' => {
                if matches!(f.tag, b'c' | b'f') {
                    self.copy_open = false;
                }
                self.out.extend_from_slice(&f.bytes);
                Ok(())
            }
            b'F' => {
                self.push_route(Route::Client);
                self.out.extend_from_slice(&f.bytes);
                Ok(())
            }
            b'X' => Err(SessionEnd::ClientClosed),
            other => {
                let msg = format!("invalid frontend message type {}", other as char);
                self.client_error(Report::fatal(errors::PROTOCOL_VIOLATION, msg.clone()))
                    .await?;
                Err(SessionEnd::Protocol(msg))
            }
        }
    }

    /// A Parse: learn what the statement is and what infrasql must do
    /// before it runs, then queue the message with the batch.
    async fn parse(&mut self, f: Frame) -> Result<(), SessionEnd> {
        let mut body = f.body();
        let name = read_name(&mut body).unwrap_or(b"");
        let text = read_cstr(&mut body);
        let kind = text.map(classify).unwrap_or(StmtKind::Write);
        let intercepts = text.map(statement_intercepts).unwrap_or_default();
        let prepared = Prepared {
            kind,
            text: text.filter(|_| kind.ends_with_hook()).map(Arc::from),
            copy_in: text.is_some_and(is_copy_from),
            reads_plan: intercepts.reads_plan,
        };
        if let Some(SyncCall { table, region }) = intercepts.sync {
            // Sync before the statement is even prepared: its execution
            // then reports a finished round.
            self.flush().await?;
            self.wait_idle().await?;
            if let Err(e) = self.hook.before_sync_call(table, region).await {
                tracing::warn!("infra.sync() failed: {}", e.0);
            }
        }
        self.statements.insert(name, prepared);
        // A bad `SET infra.x`: the error comes at Execute, as PostgreSQL's
        // own would.
        let f = match intercepts.refusal {
            Some(sql) => rewrite_parse(&f, &sql).unwrap_or(f),
            None => f,
        };
        self.batch.push(BatchItem {
            frame: f,
            execute: None,
            prepares: Some(kind),
        });
        Ok(())
    }
}

/// An empty buffer that grew for one large message goes back to a small
/// one: `clear` keeps the capacity, and a session would hold its largest
/// message's size for as long as it lives.
fn shrink(buf: &mut BytesMut) {
    const KEEP: usize = 1 << 20;
    if buf.is_empty() && buf.capacity() > KEEP {
        *buf = BytesMut::with_capacity(8192);
    }
}
