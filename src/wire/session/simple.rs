//! The simple query protocol: a Query that may write or end a transaction
//! runs statement by statement, with infrasql's wrapper around implicit
//! transactions and the commit hook before each commit point.

use super::*;

/// Whether a Query of statements of these kinds needs infrasql before it
/// runs: one writes or ends a transaction, or transaction control shares
/// the Query with other statements. If not, it goes to the backend as sent.
pub(super) fn needs_care(kinds: &[StmtKind]) -> bool {
    kinds.iter().any(|k| k.needs_care())
        || (kinds.len() > 1 && kinds.iter().any(|k| k.is_tx_control()))
}

impl Driver {
    pub(super) async fn simple_query(&mut self, f: Frame) -> Result<(), SessionEnd> {
        self.copy_never_started().await?;
        // A handle of its own on the text (a reference count, not a copy):
        // the statements borrow it while `f` is forwarded.
        let text = f.bytes.clone();
        let mut body = &text[5..];
        let Some(sql) = read_cstr(&mut body) else {
            // Not valid UTF-8 or unterminated: PostgreSQL will say so.
            return self.forward_query(f);
        };
        let intercepts = query_intercepts(sql);
        if let Some(sql) = intercepts.refusal {
            let mut q = BytesMut::new();
            encode_query(&sql, &mut q);
            let f = Frame {
                tag: b'Q',
                bytes: q.freeze(),
            };
            return Box::pin(self.simple_query(f)).await;
        }
        if let Some(SyncCall { table, region }) = intercepts.sync {
            self.flush().await?;
            self.wait_idle().await?;
            if let Err(e) = self.hook.before_sync_call(table, region).await {
                self.client_error(e.0).await?;
                return self.client_ready(self.shared.status()).await;
            }
        }
        if intercepts.reads_plan && !self.refresh_plan().await? {
            return self.client_ready(self.shared.status()).await;
        }
        let stmts = split_statements(sql);
        let kinds: smallvec::SmallVec<[StmtKind; 2]> = stmts.iter().map(|s| classify(s)).collect();
        if self.wrapper && kinds.first() == Some(&StmtKind::Begin) {
            // A wrapper opened for an extended batch still in flight (a
            // Flush, no Sync yet) becomes the client's block, as PostgreSQL
            // makes an implicit block explicit; the client's COMMIT or
            // ROLLBACK ends it, not the batch's Sync.
            self.wrapper = false;
        }
        if !needs_care(&kinds) {
            return self.forward_query(f);
        }
        self.flush().await?;
        self.wait_idle().await?;
        let status = self.shared.status();
        if kinds.len() == 1 {
            match (kinds[0], status) {
                // A write inside a block the client opened: nothing to do yet.
                (StmtKind::Write, TxStatus::InBlock | TxStatus::Failed) => {
                    return self.forward_query(f)
                }
                // COMMIT of a failed block is a rollback; COMMIT outside a
                // block is a warning. Neither applies anything.
                (k, TxStatus::Idle | TxStatus::Failed) if k.ends_with_hook() => {
                    return self.forward_query(f)
                }
                // The client's block changed no resource table: its COMMIT
                // goes straight through, with no statement of infrasql's.
                (StmtKind::Commit, TxStatus::InBlock) if !self.wrapper && !self.hook_needed() => {
                    return self.forward_query(f)
                }
                _ => {}
            }
        }
        // PostgreSQL parses the whole string before it runs any of it. Run
        // piece by piece, a syntax error at the end would come after a
        // COMMIT in the middle had already applied: check first.
        // A trailing comment is checked too: an unterminated one is an error.
        let trailing_comment = stmts.len() > 1
            && kinds.last() == Some(&StmtKind::Empty)
            && stmts.last().is_some_and(|s| !s.trim().is_empty());
        if stmts.len() > 1
            && (trailing_comment || kinds.iter().any(|k| k.is_tx_control()))
            && self.has_syntax_error(&stmts, status).await?
        {
            // The backend then runs nothing and reports the error, with its
            // position in the whole string and a block aborted, as it should.
            return self.forward_query(f);
        }
        let owned: Vec<(String, StmtKind)> = stmts
            .iter()
            .zip(kinds)
            .filter(|(_, k)| *k != StmtKind::Empty)
            .map(|(s, k)| (s.to_string(), k))
            .collect();
        self.run_script(owned).await
    }

    /// Whether any piece of a multi-statement query fails PostgreSQL's
    /// parser. Each is Parsed on its own as a private statement and closed
    /// (nothing runs), so a table created earlier in the string may be
    /// missing: only syntax errors count. Inside a block the checks run in a
    /// savepoint, so any other error leaves the client's block as it was;
    /// an aborted block reports parser errors before it refuses.
    async fn has_syntax_error(
        &mut self,
        stmts: &[&str],
        status: TxStatus,
    ) -> Result<bool, SessionEnd> {
        let in_block = status == TxStatus::InBlock;
        if in_block {
            self.driver_exec("SAVEPOINT __infrasql_parse").await?;
        }
        let mut syntax = false;
        let mut failed = false;
        for sql in stmts.iter().filter(|s| !s.trim().is_empty()) {
            if let Some(report) = self.driver_parse(sql).await? {
                failed = true;
                if is_syntax_error(&report) {
                    syntax = true;
                    break;
                }
            }
        }
        if in_block {
            if failed {
                self.driver_exec("ROLLBACK TO SAVEPOINT __infrasql_parse")
                    .await?;
            }
            self.driver_exec("RELEASE SAVEPOINT __infrasql_parse")
                .await?;
        }
        Ok(syntax)
    }

    pub(super) fn forward_query(&mut self, f: Frame) -> Result<(), SessionEnd> {
        self.push_route(Route::Client);
        self.out.extend_from_slice(&f.bytes);
        Ok(())
    }

    /// Run statements one at a time, as PostgreSQL would run them in one
    /// Query message, with infrasql's hook before each commit point.
    pub(super) async fn run_script(
        &mut self,
        stmts: Vec<(String, StmtKind)>,
    ) -> Result<(), SessionEnd> {
        let mut status = self.shared.status();
        for (sql, kind) in stmts {
            if kind == StmtKind::Write && status == TxStatus::Idle {
                self.driver_exec("BEGIN").await?;
                self.wrapper = true;
                status = TxStatus::InBlock;
            }
            if kind == StmtKind::Begin && self.wrapper {
                // BEGIN inside an implicit block makes it an explicit one.
                self.wrapper = false;
            }
            let mut sql = sql;
            if kind.ends_with_hook() && status == TxStatus::InBlock {
                let implicit = self.wrapper;
                if implicit && chains(&sql) {
                    // infrasql's wrapper is a real block, but the client's
                    // transaction is implicit: PostgreSQL refuses the chain.
                    self.abort_after_refusal(Report::error(
                        errors::NO_ACTIVE_TRANSACTION,
                        CHAIN_OUTSIDE_BLOCK,
                    ))
                    .await?;
                    return self.client_ready(TxStatus::Idle).await;
                }
                let two_phase = kind == StmtKind::PrepareTransaction;
                match self.commit_hook_implicit(implicit, two_phase).await? {
                    Ok(Verdict::Commit) => {}
                    // A dry run: the client's COMMIT becomes a ROLLBACK.
                    Ok(Verdict::Rollback) => sql = "ROLLBACK".into(),
                    Err(report) => {
                        self.abort_after_refusal(report).await?;
                        return self.client_ready(TxStatus::Idle).await;
                    }
                }
                self.wrapper = false;
            }
            let mut q = BytesMut::new();
            encode_query(&sql, &mut q);
            self.push_route(Route::ClientButReady);
            self.out.extend_from_slice(&q);
            self.flush().await?;
            let (st, error) = self.wait_ready_forwarding_copy().await?;
            status = st;
            if error {
                if self.wrapper {
                    self.driver_exec("ROLLBACK").await?;
                    self.wrapper = false;
                    status = TxStatus::Idle;
                }
                return self.client_ready(status).await;
            }
        }
        if self.wrapper {
            status = self.finish_wrapper().await?;
        }
        self.client_ready(status).await
    }

    /// Commit infrasql's own wrapper transaction through the hook.
    pub(super) async fn finish_wrapper(&mut self) -> Result<TxStatus, SessionEnd> {
        self.wrapper = false;
        match self.commit_hook_implicit(true, false).await? {
            Ok(Verdict::Rollback) => self.driver_exec("ROLLBACK").await,
            Ok(Verdict::Commit) => {
                let (status, errs) = self.driver_exec_report("COMMIT").await?;
                if let Some(r) = errs {
                    self.client_error(r).await?;
                }
                Ok(status)
            }
            Err(report) => {
                self.abort_after_refusal(report).await?;
                Ok(TxStatus::Idle)
            }
        }
    }

    /// Refused commit: tell the client, roll the backend back.
    pub(super) async fn abort_after_refusal(&mut self, report: Report) -> Result<(), SessionEnd> {
        self.client_error(report).await?;
        self.driver_exec("ROLLBACK").await?;
        self.wrapper = false;
        Ok(())
    }
}

/// An error of PostgreSQL's raw parser (and scanner), as opposed to one of
/// parse analysis, which PostgreSQL raises only when the statement runs.
fn is_syntax_error(r: &Report) -> bool {
    r.code == errors::SYNTAX_ERROR
        && [
            "syntax error",
            "unterminated",
            "trailing junk",
            "zero-length delimited",
        ]
        .iter()
        .any(|p| r.message.starts_with(p))
}
