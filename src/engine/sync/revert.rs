//! Policy `revert`: the desired state is put back in AWS through the apply
//! engine, journaled like a user's commit (source `sync-revert`).

use std::time::Instant;

use serde_json::Value;
use tokio::sync::mpsc;

use super::diff::Revert;
use super::{ident, SyncError, Syncer};
use crate::engine::apply::{self, StepError};
use crate::engine::journal::{ApplyId, ApplyStatus, Journal, Origin};
use crate::engine::plan::{Action, Plan, Step};
use crate::metrics::{self, ApplyOutcome, ApplySource};

impl Syncer {
    /// Put the desired state back through the apply engine, journaled like a
    /// user's commit (source `sync-revert`).
    pub(super) async fn revert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        table: &str,
        steps: Vec<Step>,
    ) -> Result<(), SyncError> {
        let journal_db = self.db.shared().await?;
        let steps: Vec<Step> = steps
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.step = i + 1;
                s
            })
            .collect();
        let plan = Plan { steps };
        let id = ApplyId::generate();
        let journal = Journal::begin(&journal_db, &id, Origin::Sync, &plan).await?;
        let (ptx, mut prx) = mpsc::unbounded_channel();
        let started = Instant::now();
        let result = apply::apply(&plan, &self.resources, &journal, &ptx).await;
        drop(ptx);
        while let Ok(line) = prx.try_recv() {
            tracing::info!("sync revert {id}: {line}");
        }
        let error = result.as_ref().err().map(|f| f.error.to_string());
        let (status, outcome) = match error {
            None => (ApplyStatus::Succeeded, ApplyOutcome::Applied),
            Some(_) => (ApplyStatus::Failed, ApplyOutcome::Failed),
        };
        metrics::apply_finished(ApplySource::SyncRevert, outcome, started.elapsed());
        journal.finish(status, error.as_deref()).await;
        journal.release().await;
        let applied = result.map_err(|f| match f.error {
            StepError::Cloud(e) => SyncError::Cloud(e),
            StepError::Journal(e) => SyncError::Journal(e),
            // Nothing stops a revert (`Control::unattended`).
            StepError::Stopped { reason, .. } => unreachable!("a revert was stopped: {reason}"),
        })?;
        // A re-created resource has a new id: the row follows it.
        let idc = self.resources[table].schema().id_column();
        for (old, new) in &applied.id_map {
            tx.execute(
                &format!("UPDATE {table} SET {0} = $2 WHERE {0} = $1", ident(idc)),
                &[old, new],
            )
            .await?;
        }
        Ok(())
    }
}

/// The plan steps of a round's reverts (numbered when they run).
pub(super) fn steps(table: &str, region: &str, reverts: Vec<Revert>) -> Vec<Step> {
    reverts
        .into_iter()
        .map(|r| step(table, region, r))
        .collect()
}

fn step(table: &str, region: &str, r: Revert) -> Step {
    let name = r
        .desired
        .as_ref()
        .or(r.actual.as_ref())
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Step {
        step: 0,
        action: r.action,
        table: table.to_owned(),
        id: r.id,
        name,
        region: region.to_owned(),
        before: r.actual,
        after: r.desired,
        changes: Vec::new(),
        depends_on: Vec::new(),
        last_phase: r.action == Action::Delete,
    }
}
