//! The apply journal: `infra.apply` (one row per apply) and
//! `infra.apply_action` (one row per step). Every writer of either table
//! goes through here: a user's COMMIT, the sync loop's revert, recovery.
//!
//! # Lifecycle
//! [`Journal::begin`] takes the apply's session advisory lock and records it
//! `running`; each step is recorded `started` before its cloud call and
//! `done`/`failed`/`undone`/`undo_failed` after; the apply ends with a status
//! ([`ApplyStatus`]) and [`Journal::release`] drops the lock. Recovery finds
//! the applies left unsettled ([`unsettled`]) and settles only those whose
//! lock it can take ([`Journal::claim`]): a held lock means the process that
//! runs the apply is alive.
//!
//! The lock is a *session* lock on the connection the journal writes with,
//! so the journal borrows that connection and never outlives it.

use infrasql_provider::Resource;
use serde_json::Value;
use tokio_postgres::Client;

use super::apply::storable;
use super::plan::{Plan, Step};

/// One apply's id, as `infra.apply.apply_id` and the resources' apply tag hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyId(String);

impl ApplyId {
    /// A fresh, random id.
    pub fn generate() -> ApplyId {
        ApplyId(format!("apply-{:016x}", rand::random::<u64>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag of a resource an undo created again: not this apply's own,
    /// so recovery never takes it for something the apply left behind.
    pub fn undo_tag(&self) -> String {
        format!("{}-undo", self.0)
    }

    /// The advisory-lock key; `hashtext` of it is the lock.
    fn lock_key(&self) -> String {
        format!("infrasql.apply.{}", self.0)
    }
}

impl std::fmt::Display for ApplyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `infra.apply.status` (see the COMMENT in `schema/0500_recovery.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyStatus {
    Running,
    /// The cloud matches; the COMMIT's outcome is not known yet.
    Applied,
    Succeeded,
    Failed,
    /// Recovery is making the cloud equal the committed rows.
    Undoing,
    /// Still being undone, and a person must look.
    Attention,
    Recovered,
}

impl ApplyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyStatus::Running => "running",
            ApplyStatus::Applied => "applied",
            ApplyStatus::Succeeded => "succeeded",
            ApplyStatus::Failed => "failed",
            ApplyStatus::Undoing => "undoing",
            ApplyStatus::Attention => "attention",
            ApplyStatus::Recovered => "recovered",
        }
    }

    pub fn parse(s: &str) -> Option<ApplyStatus> {
        [
            ApplyStatus::Running,
            ApplyStatus::Applied,
            ApplyStatus::Succeeded,
            ApplyStatus::Failed,
            ApplyStatus::Undoing,
            ApplyStatus::Attention,
            ApplyStatus::Recovered,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Who started the apply.
pub enum Origin<'a> {
    /// A user's COMMIT.
    Commit(&'a Committer),
    /// The sync loop putting back what a `revert` policy protects.
    Sync,
}

/// Who committed, from where, and what they said the change is.
#[derive(Debug, Clone, Default)]
pub struct Committer {
    /// The session user.
    pub user: String,
    /// The client's transaction.
    pub xid: String,
    /// The client's address as infrasql's listener saw it.
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    /// `commit`, `migration <file>`, `revert <apply id>` or
    /// `stack <name>[@<sha>]` (`settings::parse_source`).
    pub source: String,
    /// Who wrote the change, when the client said (`infra.apply_author`).
    pub author: Option<String>,
}

/// infrasql could not write its own journal: its database failed, not AWS.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot write infrasql's apply journal: {0}")]
pub struct JournalError(String);

impl From<tokio_postgres::Error> for JournalError {
    fn from(e: tokio_postgres::Error) -> Self {
        JournalError(match e.as_db_error() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => e.to_string(),
        })
    }
}

/// One apply's journal, on the connection that holds its lock.
#[derive(Clone, Copy)]
pub struct Journal<'a> {
    db: &'a Client,
    id: &'a ApplyId,
}

impl<'a> Journal<'a> {
    /// Take the apply's lock and record it `running`, with the plan's
    /// summary.
    pub async fn begin(
        db: &'a Client,
        id: &'a ApplyId,
        origin: Origin<'_>,
        plan: &Plan,
    ) -> Result<Journal<'a>, JournalError> {
        db.execute("SELECT pg_advisory_lock(hashtext($1))", &[&id.lock_key()])
            .await?;
        let actions = plan.steps.len() as i32;
        let c = plan.counts();
        let (creates, updates, replaces, deletes) = (
            c.creates as i32,
            c.updates as i32,
            c.replaces as i32,
            c.deletes as i32,
        );
        let sync = Committer {
            user: "infrasql sync".into(),
            source: "sync-revert".into(),
            ..Committer::default()
        };
        let who = match origin {
            Origin::Commit(who) => who,
            Origin::Sync => &sync,
        };
        let xid = (!who.xid.is_empty()).then_some(who.xid.as_str());
        let inserted = db
            .execute(
                "INSERT INTO infra.apply (apply_id, status, username, actions, xid, source, \
                     client_addr, application_name, creates, updates, replaces, deletes, author) \
                 VALUES ($1, 'running', $2, $3, $4::text::xid8, $5, $6::text::inet, $7, $8, $9, $10, $11, $12)",
                &[
                    &id.as_str(),
                    &who.user,
                    &actions,
                    &xid,
                    &who.source,
                    &who.client_addr,
                    &who.application_name,
                    &creates,
                    &updates,
                    &replaces,
                    &deletes,
                    &who.author,
                ],
            )
            .await;
        let journal = Journal { db, id };
        if let Err(e) = inserted {
            journal.release().await;
            return Err(e.into());
        }
        Ok(journal)
    }

    /// The journal of an apply whose lock this connection already holds
    /// (the task that carries out a journal begun elsewhere).
    pub fn resume(db: &'a Client, id: &'a ApplyId) -> Journal<'a> {
        Journal { db, id }
    }

    /// Take the lock of an apply another process started, if that process
    /// is gone (its lock is free).
    pub async fn claim(
        db: &'a Client,
        id: &'a ApplyId,
    ) -> Result<Option<Journal<'a>>, JournalError> {
        let free: bool = db
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1))",
                &[&id.lock_key()],
            )
            .await?
            .get(0);
        Ok(free.then_some(Journal { db, id }))
    }

    /// Drop the apply's lock. A failure is only logged: the lock goes with
    /// the connection anyway.
    pub async fn release(&self) {
        if let Err(e) = self
            .db
            .execute(
                "SELECT pg_advisory_unlock(hashtext($1))",
                &[&self.id.lock_key()],
            )
            .await
        {
            tracing::warn!("cannot release the lock of apply {}: {e}", self.id);
        }
    }

    pub fn id(&self) -> &'a ApplyId {
        self.id
    }

    pub fn db(&self) -> &'a Client {
        self.db
    }

    /// Record the apply's outcome (and why, for anything but success).
    pub async fn finish(&self, status: ApplyStatus, error: Option<&str>) {
        let r = self
            .db
            .execute(
                "UPDATE infra.apply SET status = $2, finished_at = now(), error = $3 WHERE apply_id = $1",
                &[&self.id.as_str(), &status.as_str(), &error],
            )
            .await;
        if let Err(e) = r {
            // Recovery settles an apply whose status stayed unsettled.
            tracing::error!(
                "cannot record {} for apply {}: {e}",
                status.as_str(),
                self.id
            );
        }
    }

    /// Recorded before the step's cloud call: after a crash, this row and
    /// the resource's apply tag find what the step did.
    pub async fn step_started(&self, s: &Step, r: &dyn Resource) -> Result<(), JournalError> {
        self.db
            .execute(
                "INSERT INTO infra.apply_action (apply_id, step, action, table_name, resource_id, region, status, before, after)
                 VALUES ($1, $2, $3, $4, $5, $6, 'started', $7, $8)
                 ON CONFLICT (apply_id, step) DO UPDATE SET status = 'started', started_at = now()",
                &[
                    &self.id.as_str(),
                    &(s.step as i32),
                    &s.journal_action(),
                    &s.table,
                    &s.id,
                    &s.region,
                    &storable(r, s.before.as_ref()),
                    &storable(r, s.after.as_ref()),
                ],
            )
            .await?;
        Ok(())
    }

    /// A step's outcome, with AWS's request ids of the calls it made (an
    /// undo's are added to the step's own). A lost update is only logged:
    /// the action itself happened, and recovery reads it from the `started`
    /// row and the tag.
    pub async fn step_finished(
        &self,
        step: usize,
        status: &str,
        id: Option<&str>,
        after: Option<Value>,
        error: Option<String>,
        request_ids: &[String],
    ) {
        let r = self
            .db
            .execute(
                "UPDATE infra.apply_action SET status = $3, finished_at = now(),
                        resource_id = coalesce($4, resource_id), after = coalesce($5, after), error = $6,
                        request_ids = request_ids || $7::text[]
                 WHERE apply_id = $1 AND step = $2",
                &[&self.id.as_str(), &(step as i32), &status, &id, &after, &error, &request_ids],
            )
            .await;
        if let Err(e) = r {
            tracing::error!(
                "cannot record {status} for step {step} of apply {}: {e}",
                self.id
            );
        }
    }
}

mod recovery;
pub mod retention;
pub use recovery::{unsettled, Recorded, Unsettled};
