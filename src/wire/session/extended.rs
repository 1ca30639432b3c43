//! The extended query protocol: batches up to Sync (or Flush), the wrapper
//! around implicit transactions, and transaction-ending statements, which
//! infrasql runs itself after the hook and answers the client's Execute for.

use super::*;

/// Whether forwarded messages leave a transaction block open: the last
/// BEGIN or transaction end among them decides; `None` if there is none.
pub(super) fn block_after(items: &[BatchItem], before: Option<bool>) -> Option<bool> {
    items.iter().fold(before, |state, i| match i.kind() {
        Some(StmtKind::Begin) => Some(true),
        Some(StmtKind::Commit | StmtKind::PrepareTransaction | StmtKind::Rollback) => Some(false),
        _ => state,
    })
}

/// What infrasql knows of a prepared statement or portal.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub(super) kind: StmtKind,
    /// The text of a statement that ends a transaction (COMMIT, END,
    /// PREPARE TRANSACTION): infrasql runs it itself after the hook, because
    /// the hook's own statements destroy the client's unnamed portal.
    pub(super) text: Option<Arc<str>>,
    /// `COPY ... FROM`: the backend enters copy-in mode and ignores the
    /// Sync the client sends with the Execute.
    pub(super) copy_in: bool,
    /// The statement reads `infra.plan`, which is refreshed before it runs.
    pub(super) reads_plan: bool,
}

impl Prepared {
    /// Anything prepared before infrasql could see it (never, in a proxied
    /// session) is treated as a write: always safe.
    pub(super) fn unknown() -> Prepared {
        Prepared {
            kind: StmtKind::Write,
            text: None,
            copy_in: false,
            reads_plan: false,
        }
    }
}

/// One item of an extended-protocol batch: the frame, and for Execute what
/// its portal runs.
pub(super) struct BatchItem {
    pub(super) frame: Frame,
    pub(super) execute: Option<Prepared>,
    /// For Parse and Bind: the kind of the statement being prepared.
    pub(super) prepares: Option<StmtKind>,
}

impl BatchItem {
    pub(super) fn kind(&self) -> Option<StmtKind> {
        self.execute.as_ref().map(|p| p.kind)
    }

    /// An Execute, or the Parse or Bind of a statement that may write.
    fn runs_or_writes(&self) -> bool {
        self.execute.is_some() || self.prepares == Some(StmtKind::Write)
    }
}

impl Driver {
    pub(super) async fn extended_batch(&mut self, sync: bool) -> Result<(), SessionEnd> {
        if std::mem::take(&mut self.batch_reads_plan) && !self.refresh_plan().await? {
            // PostgreSQL skips to the Sync after an error; so do we.
            self.batch.clear();
            self.batch_forwarded = false;
            let status = self.shared.status();
            return if sync {
                self.client_ready(status).await
            } else {
                self.skip_to_sync(std::iter::empty(), false, status).await
            };
        }
        self.copy_never_started().await?;
        let items = std::mem::take(&mut self.batch);
        // The backend ignores a Sync it gets in copy-in mode: a batch that
        // starts a COPY FROM ends at the Sync the client sends after its
        // CopyDone, not at this one (which is still forwarded).
        let copies = items
            .iter()
            .any(|i| i.execute.as_ref().is_some_and(|p| p.copy_in));
        self.copy_open |= copies;
        let sync = sync && !copies;
        let first_segment = !self.batch_forwarded;
        // A lone Flush (psycopg ends a pipeline with Sync, then Flush) sends
        // nothing of a new batch: the next message still starts one.
        self.batch_forwarded =
            !sync && (!first_segment || items.iter().any(|i| i.frame.tag != b'H'));
        let carried = if first_segment {
            None
        } else {
            self.forwarded_in_block.take()
        };
        let needs_care = self.wrapper
            || items
                .iter()
                .any(|i| i.kind().is_some_and(StmtKind::needs_care))
            || (!sync && first_segment && items.iter().any(BatchItem::runs_or_writes));
        if !needs_care {
            if !sync {
                self.forwarded_in_block = block_after(&items, carried);
            }
            return self.forward_batch(items, sync);
        }
        self.flush().await?;
        self.wait_idle().await?;
        let start = self.shared.status();
        if start == TxStatus::Failed {
            return self.forward_batch(items, sync);
        }
        // An implicit transaction (Idle at the batch's first segment) that
        // writes before any BEGIN gets infrasql's wrapper. So does one that
        // goes out in parts (a Flush, as psycopg's pipeline sends to fetch a
        // result) and runs anything before a BEGIN: a later part may write,
        // and by then its implicit transaction has begun and cannot be
        // wrapped any more.
        if start == TxStatus::Idle && first_segment && !self.wrapper && needs_wrapper(&items, sync)
        {
            self.driver_exec("BEGIN").await?;
            self.wrapper = true;
        }
        let mut in_block = carried.unwrap_or(start == TxStatus::InBlock) || self.wrapper;
        let mut items = items.into_iter();
        let mut pending: Vec<BatchItem> = Vec::new();
        while let Some(item) = items.next() {
            match item.kind() {
                Some(StmtKind::Begin) => {
                    // The client's BEGIN makes infrasql's wrapper its own
                    // block, as PostgreSQL makes an implicit block explicit:
                    // the client's COMMIT or ROLLBACK ends it.
                    in_block = true;
                    self.wrapper = false;
                }
                Some(StmtKind::Commit)
                    if in_block
                        && first_segment
                        && self.commit_passes_through(start, &pending, &item, &items) =>
                {
                    // Nothing to apply and nothing to learn first: the
                    // client's COMMIT and the rest of the batch go out as sent.
                    pending.push(item);
                    pending.extend(items);
                    if !sync {
                        self.forwarded_in_block = Some(false);
                    }
                    return self.forward_batch(pending, sync);
                }
                Some(k) if k.ends_with_hook() && in_block => {
                    // Learn whether everything before it succeeded. Inside a
                    // block, a Sync neither commits nor drops portals.
                    for p in pending.drain(..) {
                        self.out.extend_from_slice(&p.frame.bytes);
                    }
                    encode_sync(&mut self.out);
                    self.push_route(Route::ClientButReady);
                    self.flush().await?;
                    let (status, error) = self.wait_ready_forwarding_copy().await?;
                    if error || status != TxStatus::InBlock {
                        // The backend skipped the rest up to the client's
                        // Sync; our Sync ended that, so skip it here.
                        return self.skip_to_sync(items, sync, status).await;
                    }
                    let implicit = self.wrapper;
                    if implicit
                        && item
                            .execute
                            .as_ref()
                            .and_then(|p| p.text.as_deref())
                            .is_some_and(chains)
                    {
                        // As in the simple protocol: no chain from an
                        // implicit transaction.
                        self.abort_after_refusal(Report::error(
                            errors::NO_ACTIVE_TRANSACTION,
                            CHAIN_OUTSIDE_BLOCK,
                        ))
                        .await?;
                        return self.skip_to_sync(items, sync, TxStatus::Idle).await;
                    }
                    let two_phase = k == StmtKind::PrepareTransaction;
                    let sql = match self.commit_hook_implicit(implicit, two_phase).await? {
                        Ok(Verdict::Commit) => item
                            .execute
                            .and_then(|p| p.text)
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "COMMIT".to_owned()),
                        // A dry run: the COMMIT becomes a ROLLBACK.
                        Ok(Verdict::Rollback) => "ROLLBACK".to_owned(),
                        Err(report) => {
                            self.abort_after_refusal(report).await?;
                            return self.skip_to_sync(items, sync, TxStatus::Idle).await;
                        }
                    };
                    self.wrapper = false;
                    // infrasql runs the statement itself and answers the
                    // Execute: the client's portal would not do after a dry
                    // run, and this way every protocol form ends the same.
                    let (status, err) = self.end_transaction(&sql).await?;
                    if let Some(report) = err {
                        self.client_error(report).await?;
                        return self.skip_to_sync(items, sync, status).await;
                    }
                    // COMMIT AND CHAIN opens the next block at once. Otherwise
                    // what follows in the batch is a new implicit transaction,
                    // wrapped like the first if it writes (nothing of it has
                    // gone out yet).
                    in_block = status == TxStatus::InBlock;
                    if !in_block && needs_wrapper(items.as_slice(), sync) {
                        self.driver_exec("BEGIN").await?;
                        self.wrapper = true;
                        in_block = true;
                    }
                    continue;
                }
                _ => {}
            }
            pending.push(item);
        }
        if sync && self.wrapper {
            // Replace the client's Sync: run the hook, commit, then answer.
            let sync_frame = pending.pop();
            debug_assert!(sync_frame.as_ref().is_some_and(|f| f.frame.tag == b'S'));
            for p in pending {
                self.out.extend_from_slice(&p.frame.bytes);
            }
            encode_sync(&mut self.out);
            self.push_route(Route::ClientButReady);
            self.flush().await?;
            let (status, error) = self.wait_ready_forwarding_copy().await?;
            let status = if error || status != TxStatus::InBlock {
                self.driver_exec("ROLLBACK").await?;
                self.wrapper = false;
                TxStatus::Idle
            } else {
                self.finish_wrapper().await?
            };
            return self.client_ready(status).await;
        }
        if !sync {
            self.forwarded_in_block = Some(in_block);
        }
        self.forward_batch(pending, sync)
    }

    /// Whether a COMMIT's Execute may go to the backend as the client sent
    /// it: the client's own block (not infrasql's wrapper), which the
    /// backend reported open and changed no resource table (the batch ran
    /// nothing before the COMMIT since then), `AND CHAIN` aside, and nothing
    /// after it in the batch runs. Only for a batch's first segment: after
    /// a Flush, earlier segments may still be running unanswered.
    fn commit_passes_through(
        &self,
        start: TxStatus,
        before: &[BatchItem],
        commit: &BatchItem,
        after: &std::vec::IntoIter<BatchItem>,
    ) -> bool {
        let chain = commit
            .execute
            .as_ref()
            .and_then(|p| p.text.as_deref())
            .is_some_and(chains);
        start == TxStatus::InBlock
            && !self.wrapper
            && !chain
            && !self.hook_needed()
            && before.iter().all(|i| i.execute.is_none())
            && after.as_slice().iter().all(|i| i.execute.is_none())
    }

    /// A client that sends anything but COPY data after an extended COPY
    /// FROM saw it fail before copy-in (a missing table): the backend then
    /// answered that batch's Sync after all, so a new batch starts here.
    pub(super) async fn copy_never_started(&mut self) -> Result<(), SessionEnd> {
        if !std::mem::take(&mut self.copy_open) {
            return Ok(());
        }
        self.batch_forwarded = false;
        self.forwarded_in_block = None;
        if self.wrapper {
            self.flush().await?;
            self.wait_idle().await?;
            self.driver_exec("ROLLBACK").await?;
            self.wrapper = false;
        }
        Ok(())
    }

    pub(super) fn forward_batch(
        &mut self,
        mut items: Vec<BatchItem>,
        sync: bool,
    ) -> Result<(), SessionEnd> {
        for i in &items {
            self.out.extend_from_slice(&i.frame.bytes);
        }
        if sync {
            self.push_route(Route::Client);
        }
        // The next batch reuses this one's allocation: otherwise every
        // Bind/Execute/Sync allocated and freed a vector.
        items.clear();
        if self.batch.capacity() == 0 {
            self.batch = items;
        }
        Ok(())
    }

    /// After an error or a refused commit mid-batch: drop the client's
    /// remaining messages up to its Sync, as PostgreSQL would, and answer
    /// that Sync with `status`.
    pub(super) async fn skip_to_sync(
        &mut self,
        rest: impl Iterator<Item = BatchItem>,
        sync: bool,
        status: TxStatus,
    ) -> Result<(), SessionEnd> {
        drop(rest.collect::<Vec<_>>());
        let status = if self.wrapper {
            // The implicit transaction failed as a whole.
            self.driver_exec("ROLLBACK").await?;
            self.wrapper = false;
            TxStatus::Idle
        } else if status == TxStatus::InBlock {
            TxStatus::Failed
        } else {
            status
        };
        if sync {
            return self.client_ready(status).await;
        }
        // The Sync is still to come: discard until it arrives.
        loop {
            let f = match self.unstash() {
                Some(f) => f,
                None => {
                    self.read_client_idle().await?;
                    continue;
                }
            };
            if f.tag == b'S' {
                self.batch_forwarded = false;
                return self.client_ready(status).await;
            }
        }
    }
}

/// Whether an implicit transaction starting with `items` needs infrasql's
/// wrapper: it writes before any BEGIN; or it goes out in parts (no Sync
/// yet: a Flush, as psycopg's pipeline sends to fetch a result, or asyncpg
/// to prepare) and starts running or preparing a write before any BEGIN,
/// since a later part may write when its implicit transaction has begun
/// and can no longer be wrapped. Never around a statement that cannot run
/// in a transaction block.
fn needs_wrapper(items: &[BatchItem], sync: bool) -> bool {
    let first = |k: StmtKind| items.iter().position(|i| i.kind() == Some(k));
    let first_begin = first(StmtKind::Begin);
    let before_begin = |at: Option<usize>| at.is_some_and(|x| first_begin.is_none_or(|b| x < b));
    let unwrappable = items
        .iter()
        .any(|i| i.kind().or(i.prepares) == Some(StmtKind::NoTransactionBlock));
    let writes = before_begin(first(StmtKind::Write));
    let in_parts = !sync && before_begin(items.iter().position(BatchItem::runs_or_writes));
    !unwrappable && (writes || in_parts)
}
