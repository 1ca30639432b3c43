//! One COMMIT from its plan to the sealed write-back: the journal, the
//! apply, undo on failure, the cloud's values written back into the rows.
//! `commit.rs` holds the hook and the steps it shares with the plan reads.

use super::*;

impl Engine {
    /// The COMMIT itself; `applying` turns true once the apply begins.
    pub(super) async fn commit(
        &self,
        ctx: &mut dyn CommitContext,
        applying: &mut bool,
    ) -> Result<Verdict, HookError> {
        let Some(plan) = self.plan(ctx).await? else {
            // A plan-only session commits nothing, not even rows outside
            // the resource tables.
            return Ok(if ctx.plan_only() {
                Verdict::Rollback
            } else {
                Verdict::Commit
            });
        };
        if ctx.two_phase() && !plan.is_empty() {
            // PREPARE TRANSACTION hands the outcome to an outside
            // coordinator; the cloud cannot take part in that vote.
            return Err(HookError(
                Report::error(
                    errors::TWO_PHASE_REFUSED,
                    "PREPARE TRANSACTION cannot include changes to infrastructure tables",
                )
                .with_detail(format!(
                    "The transaction changes {}; two-phase commit cannot be made atomic with a cloud. Nothing was applied and the transaction is rolled back.",
                    plan.summary()
                ))
                .with_hint("Use COMMIT for transactions that change aws.* tables."),
            ));
        }
        // Plan-only is the connection's, not a setting the SQL could reset.
        let dry_run = ctx.plan_only() || settings::bool_setting(ctx, "infra.dry_run").await?;
        if !plan.is_empty() {
            self.check_policies(ctx, &plan, dry_run).await?;
        }
        if dry_run {
            ctx.notice(&format!("infrasql: dry run: plan: {}", plan.summary()))
                .await?;
            for s in &plan.steps {
                ctx.notice(&format!("infrasql: {}. {}", s.step, s.describe()))
                    .await?;
            }
            ctx.notice("infrasql: dry run: nothing was applied; the transaction is rolled back")
                .await?;
            return Ok(Verdict::Rollback);
        }
        if plan.is_empty() {
            self.seal(ctx).await?;
            ctx.query("SELECT infra.finish()").await?;
            return Ok(Verdict::Commit);
        }
        check_deferred(ctx).await?;
        let who = who::committer(ctx).await?;
        let wait = settings::wait_setting(ctx).await?;
        let timeout = settings::timeout_setting(ctx).await?;
        // The session is idle in its transaction while infrasql waits on
        // AWS, possibly for many minutes: a managed PostgreSQL's
        // idle_in_transaction_session_timeout must not end it meanwhile.
        ctx.query("SET LOCAL idle_in_transaction_session_timeout = 0")
            .await?;
        let steer = Steer {
            signal: ctx.cancel_signal(),
            wait,
            timeout,
        };
        let started = Instant::now();
        let db = self.journal_db().await?;
        let id = ApplyId::generate();
        let journal = Journal::begin(&db, &id, Origin::Commit(&who), &plan)
            .await
            .map_err(journal_failed)?;
        *applying = true;
        let result = self
            .apply_and_write_back(ctx, plan, journal, db.clone(), started, steer)
            .await;
        journal.release().await;
        result
    }

    /// Inside the client's transaction, once the cloud matches: seal, write
    /// the cloud's values into the rows, consume the change rows.
    async fn seal_and_write_back(
        &self,
        ctx: &mut dyn CommitContext,
        plan: &Plan,
        applied: &apply::Applied,
    ) -> Result<(), HookError> {
        self.seal(ctx).await?;
        for s in plan
            .steps
            .iter()
            .filter(|s| !s.last_phase && s.action != Action::Delete)
        {
            if let Some(observed) = applied.observed.get(&s.step) {
                if let Some(sql) = self.write_back_sql(&s.table, &s.id, observed) {
                    ctx.query(&sql).await?;
                }
            }
        }
        ctx.query("SELECT infra.finish()").await?;
        Ok(())
    }

    /// The cloud was changed but the transaction cannot commit (a
    /// serialization failure, a lost backend): recovery makes the cloud
    /// equal the committed rows. The client keeps the database's own
    /// SQLSTATE, so a driver that retries on 40001 still does.
    async fn lost_after_apply(&self, journal: &Journal<'_>, e: HookError) -> HookError {
        let why = format!(
            "the transaction could not commit after the apply: {}",
            e.0.message
        );
        journal.finish(ApplyStatus::Undoing, Some(&why)).await;
        let apply_id = journal.id();
        let mut report = e.0;
        report.detail = Some(format!(
            "The change was applied in AWS, but the transaction could not commit. infrasql is making AWS equal the committed rows again (apply {apply_id}, see infra.apply)."
        ));
        HookError(report)
    }

    async fn apply_and_write_back(
        &self,
        ctx: &mut dyn CommitContext,
        plan: Plan,
        journal: Journal<'_>,
        db: Arc<tokio_postgres::Client>,
        started: Instant,
        steer: Steer,
    ) -> Result<Verdict, HookError> {
        let apply_id = journal.id().clone();
        ctx.notice(&format!(
            "infrasql: applying {} ({apply_id})",
            plan.summary()
        ))
        .await?;

        // The apply runs in its own task; its progress lines become NOTICEs
        // as they happen.
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Its own task, so a client that goes away cannot stop the apply
        // half-way; the task borrows the journal from what it owns.
        let resources = self.resources.clone();
        let plan_for_task = plan.clone();
        let task_id = apply_id.clone();
        let (stop, watcher) =
            stop::watch(steer.signal, steer.timeout, db.clone(), apply_id.clone());
        let control = apply::Control {
            stop,
            wait: steer.wait,
        };
        let task = tokio::spawn(async move {
            let journal = Journal::resume(&db, &task_id);
            apply::apply_with(&plan_for_task, &resources, &journal, &tx, &control).await
        });
        while let Some(line) = rx.recv().await {
            // A client that went away must not stop the apply half-way.
            let _ = ctx.notice(&format!("infrasql: {line}")).await;
        }
        let outcome = task.await;
        watcher.abort();
        let outcome =
            outcome.map_err(|e| hook_err(errors::INTERNAL, format!("apply task failed: {e}")))?;

        match outcome {
            Ok(applied) => {
                if let Err(e) = self.seal_and_write_back(ctx, &plan, &applied).await {
                    applied_metric(ApplyOutcome::Recovering, started);
                    return Err(self.lost_after_apply(&journal, e).await);
                }
                applied_metric(ApplyOutcome::Applied, started);
                let ms = started.elapsed().as_millis();
                // `succeeded` once recovery sees the transaction committed.
                journal.finish(ApplyStatus::Applied, None).await;
                ctx.notice(&format!(
                    "infrasql: applied {} actions in {ms} ms ({apply_id})",
                    plan.steps.len()
                ))
                .await?;
                Ok(Verdict::Commit)
            }
            Err(f) => {
                let (status, outcome) = if refusal::settled_now(&f) {
                    (ApplyStatus::Failed, ApplyOutcome::Failed)
                } else {
                    (ApplyStatus::Undoing, ApplyOutcome::Recovering)
                };
                applied_metric(outcome, started);
                journal.finish(status, Some(&f.error.to_string())).await;
                let display = self
                    .resources
                    .get(&f.step.table)
                    .map(|r| r.schema().display)
                    .unwrap_or("resource");
                Err(HookError(refusal::report(&f, display, &apply_id)))
            }
        }
    }
}
