//! infrasql's own work on a client's session: waiting for the backend,
//! statements of its own (as a private prepared statement, so the client's
//! unnamed statement and portal survive), and the commit hook's context.

use super::*;

impl Driver {
    /// The client closed while infrasql waits on the backend for it. What
    /// it already sent is carried out, as PostgreSQL would (a COMMIT it sent
    /// commits); the session ends at the driver's next read of the client.
    /// A COPY waiting for the client's data is failed, or it would wait
    /// forever (outside COPY the backend ignores CopyFail).
    pub(super) async fn client_went_away(&mut self) -> Result<(), SessionEnd> {
        self.client_eof = true;
        const REASON: &[u8] = b"client went away\0";
        self.out.extend_from_slice(b"f");
        self.out
            .extend_from_slice(&((4 + REASON.len()) as i32).to_be_bytes());
        self.out.extend_from_slice(REASON);
        self.flush().await
    }

    /// Wait until every forwarded Query/Sync has been answered.
    pub(super) async fn wait_idle(&mut self) -> Result<(), SessionEnd> {
        loop {
            let notified = self.shared.drained.notified();
            if self.shared.backend_gone.load(Ordering::Acquire) {
                return Err(SessionEnd::BackendGone);
            }
            if self.shared.idle() {
                return Ok(());
            }
            tokio::select! {
                _ = notified => {}
                r = self.client_in.read_buf(&mut self.cbuf), if self.may_read_ahead() => {
                    match r {
                        Ok(n) if n > 0 => self.parse_client(true).await?,
                        _ => self.client_went_away().await?,
                    }
                }
            }
        }
    }

    /// Wait for the ReadyForQuery routed to the driver, passing client COPY
    /// data through meanwhile. Messages routed to the driver are dropped.
    pub(super) async fn wait_ready_forwarding_copy(
        &mut self,
    ) -> Result<(TxStatus, bool), SessionEnd> {
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Ready { status, error }) => return Ok((status, error)),
                    Some(Event::Message(_)) => {}
                    None => return Err(SessionEnd::BackendGone),
                },
                r = self.client_in.read_buf(&mut self.cbuf), if self.may_read_ahead() => {
                    match r {
                        Ok(n) if n > 0 => self.parse_client(true).await?,
                        _ => self.client_went_away().await?,
                    }
                }
            }
        }
    }

    /// Run infrasql's own statement; its results never reach the client.
    pub(super) async fn driver_exec(&mut self, sql: &str) -> Result<TxStatus, SessionEnd> {
        let (status, err) = self.driver_exec_report(sql).await?;
        if let Some(r) = err {
            tracing::warn!("infrasql's own `{sql}` failed: {r}");
        }
        Ok(status)
    }

    pub(super) async fn driver_exec_report(
        &mut self,
        sql: &str,
    ) -> Result<(TxStatus, Option<Report>), SessionEnd> {
        let (rows, status, err) = self.driver_query(sql).await?;
        drop(rows);
        Ok((status, err))
    }

    /// Run the client's transaction-ending statement on its behalf: notices
    /// and the CommandComplete go to the client, the error is returned.
    pub(super) async fn end_transaction(
        &mut self,
        sql: &str,
    ) -> Result<(TxStatus, Option<Report>), SessionEnd> {
        encode_private_query(sql, &mut self.out);
        self.push_route(Route::Driver);
        self.flush().await?;
        let mut err = None;
        loop {
            match self.events.recv().await {
                Some(Event::Message(f)) => match f.tag {
                    b'C' | b'N' => self.shared.write_client(&f.bytes).await?,
                    b'E' => err = Some(parse_report(f.body())),
                    _ => {}
                },
                Some(Event::Ready { status, .. }) => return Ok((status, err)),
                None => return Err(SessionEnd::BackendGone),
            }
        }
    }

    /// Parse `sql` as a private statement and close it: the backend's
    /// parser error, if any. Nothing runs.
    pub(super) async fn driver_parse(&mut self, sql: &str) -> Result<Option<Report>, SessionEnd> {
        encode_private_parse(sql, &mut self.out);
        self.push_route(Route::Driver);
        self.flush().await?;
        let mut err = None;
        loop {
            match self.events.recv().await {
                Some(Event::Message(f)) if f.tag == b'E' => err = Some(parse_report(f.body())),
                Some(Event::Message(_)) => {}
                Some(Event::Ready { .. }) => return Ok(err),
                None => return Err(SessionEnd::BackendGone),
            }
        }
    }

    pub(super) async fn driver_query(
        &mut self,
        sql: &str,
    ) -> Result<(Vec<TextRow>, TxStatus, Option<Report>), SessionEnd> {
        encode_private_query(sql, &mut self.out);
        self.push_route(Route::Driver);
        self.flush().await?;
        let mut rows = Vec::new();
        let mut err = None;
        loop {
            match self.events.recv().await {
                Some(Event::Message(f)) => match f.tag {
                    b'T' => rows.clear(),
                    b'D' => rows.push(parse_data_row(f.body())),
                    b'E' => err = Some(parse_report(f.body())),
                    _ => {}
                },
                Some(Event::Ready { status, .. }) => return Ok((rows, status, err)),
                None => return Err(SessionEnd::BackendGone),
            }
        }
    }

    /// Whether the transaction's end needs the commit hook: it changed a
    /// resource table (the backend said so, see [`CHANGE_MARKER`]), or the
    /// session only plans, where even other rows must not commit. Valid once
    /// the backend has answered everything sent before.
    pub(super) fn hook_needed(&self) -> bool {
        self.plan_only || self.shared.changed.load(Ordering::Acquire)
    }

    /// Run the hook. The outer result is the session's health; the inner one
    /// is the hook's verdict.
    pub(super) async fn commit_hook_implicit(
        &mut self,
        implicit: bool,
        two_phase: bool,
    ) -> Result<Result<Verdict, Report>, SessionEnd> {
        if !self.hook_needed() {
            // Nothing for the hook to plan: its answer would be this.
            return Ok(Ok(Verdict::Commit));
        }
        let hook = self.hook.clone();
        // Only a cancel request sent during this COMMIT stops its apply.
        self.cancel.clear();
        let mut ctx = HookCtx {
            driver: self,
            implicit,
            two_phase,
            broken: None,
        };
        let verdict = hook.before_commit(&mut ctx).await;
        if let Some(end) = ctx.broken.take() {
            return Err(end);
        }
        Ok(verdict.map_err(|e| e.0))
    }

    /// Before a statement reading `infra.plan` runs inside a transaction,
    /// let the hook fill in the preview. Returns false when the hook failed
    /// and the client already has the error.
    pub(super) async fn refresh_plan(&mut self) -> Result<bool, SessionEnd> {
        self.flush().await?;
        self.wait_idle().await?;
        if self.shared.status() != TxStatus::InBlock {
            return Ok(true);
        }
        let hook = self.hook.clone();
        let mut ctx = HookCtx {
            driver: self,
            implicit: false,
            two_phase: false,
            broken: None,
        };
        let r = hook.before_plan_read(&mut ctx).await;
        if let Some(end) = ctx.broken.take() {
            return Err(end);
        }
        match r {
            Ok(()) => Ok(true),
            Err(e) => {
                self.client_error(e.0).await?;
                Ok(false)
            }
        }
    }
}

pub(super) struct HookCtx<'a> {
    driver: &'a mut Driver,
    implicit: bool,
    two_phase: bool,
    /// Set when the session itself broke while the hook ran.
    broken: Option<SessionEnd>,
}

#[async_trait]
impl CommitContext for HookCtx<'_> {
    async fn query(&mut self, sql: &str) -> Result<Vec<TextRow>, HookError> {
        match self.driver.driver_query(sql).await {
            Ok((rows, _, None)) => Ok(rows),
            Ok((_, _, Some(report))) => Err(HookError(report)),
            Err(end) => {
                self.broken = Some(end);
                Err(HookError::new(
                    errors::CONNECTION_LOST,
                    "connection to the backend PostgreSQL was lost",
                ))
            }
        }
    }

    async fn notice(&mut self, message: &str) -> Result<(), HookError> {
        let mut b = BytesMut::new();
        encode_notice(&Report::notice(message), &mut b);
        if let Err(e) = self.driver.shared.write_client(&b).await {
            self.broken = Some(SessionEnd::Io(e));
            return Err(HookError::new(
                errors::CONNECTION_LOST,
                "client connection lost",
            ));
        }
        Ok(())
    }

    fn implicit(&self) -> bool {
        self.implicit
    }

    fn two_phase(&self) -> bool {
        self.two_phase
    }

    fn plan_only(&self) -> bool {
        self.driver.plan_only
    }

    fn client_addr(&self) -> Option<String> {
        self.driver.client_addr.clone()
    }

    fn cancel_signal(&self) -> CancelSignal {
        self.driver.cancel.clone()
    }
}
