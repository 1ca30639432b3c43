//! One pair's transaction, once its listing is in: read the rows, decide,
//! write the rows and the type's sets, revert or record drift, confirm,
//! commit. `mod.rs` schedules the pairs (levels, locks, status); this is
//! what a pair does with its turn.

use std::collections::HashSet;
use std::time::Instant;

use infrasql_provider::{Props, Resource};

use super::{diff, known, members, read, revert, status, write, Listing, Stats, SyncError, Syncer};
use crate::store::engine_db::Session;

impl Syncer {
    /// Read the rows, decide, write: one transaction.
    pub(super) async fn apply_observed(
        &self,
        db: &mut Session<'_>,
        resource: &dyn Resource,
        table: &str,
        region: &str,
        listing: Listing,
        first: bool,
    ) -> Result<Stats, SyncError> {
        let schema = resource.schema();
        let t = Instant::now();
        let (db, st) = db.split();
        let tx = db.transaction().await?;
        let mut current =
            read::current(&tx, st, &self.resources, schema, table, region, &listing).await?;
        let observed = listing.observed;
        let read = t.elapsed();
        let decide = |current: &diff::Current| {
            diff::diff(&diff::Input {
                schema,
                observed: &observed,
                current,
                first,
            })
        };
        let mut d = decide(&current);
        // Read without a lock: decide again on the rows to touch, locked.
        let to_lock = read::to_lock(&d);
        if read::read_unlocked(schema) && !to_lock.is_empty() {
            read::relock(&tx, st, schema, table, &to_lock, &mut current).await?;
            d = decide(&current);
        }
        // Known only once the round commits.
        let kept = known::PairKnown::kept(
            &d,
            schema.id_column(),
            &current.versions,
            &observed,
            &current.hashes,
        );
        let diffed = t.elapsed();
        write::rows(&tx, schema, table, &d, &observed).await?;
        let written = t.elapsed();
        let set_drift = self
            .sync_members(&tx, schema, &observed, &current, &mut d, first)
            .await?;
        let sets = t.elapsed();
        let revert_ok = if d.reverts.is_empty() {
            true
        } else {
            let steps = revert::steps(table, region, d.reverts);
            self.revert(&tx, table, steps)
                .await
                .map_err(|e| {
                    tracing::warn!("revert of drift in {table} ({region}) failed: {e}");
                })
                .is_ok()
        };
        write::drift(&tx, table, region, &d.drift, revert_ok).await?;
        for (join_table, records) in &set_drift {
            write::drift(&tx, join_table, region, records, revert_ok).await?;
        }
        status::confirm(&tx, st, table, region, schema.id_column(), &d.unconfirmed).await?;
        tx.commit().await?;
        self.known.put(table, region, kept);
        tracing::debug!(
            "sync {table} in {region}: read {read:.2?}, diff {:.2?}, write {:.2?} ({} row writes), \
             sets {:.2?}, drift and commit {:.2?}",
            diffed - read,
            written - diffed,
            d.writes.len(),
            sets - written,
            t.elapsed() - sets,
        );
        Ok(d.stats)
    }

    /// The type's sets (join tables), after its rows are written: the
    /// memberships adopted, their drift (returned, per join table, to be
    /// recorded with the round's), reverts merged into the round's.
    async fn sync_members(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        schema: &'static infrasql_provider::ResourceSchema,
        observed: &[Props],
        current: &diff::Current,
        d: &mut diff::Diff,
        first: bool,
    ) -> Result<Vec<(String, Vec<diff::DriftRecord>)>, SyncError> {
        let mut out = Vec::new();
        for (column, set) in schema.member_sets() {
            let join_table = format!("{}.{}", schema.schema, set.table);
            let member_table = format!(
                "{}.{}",
                schema.schema,
                column.references.unwrap_or_default()
            );
            let Some(member_type) = self.resources.get(&member_table) else {
                continue;
            };
            let mut owners: Vec<String> = current.locked.keys().cloned().collect();
            owners.extend(d.writes.iter().filter_map(|w| match w {
                diff::RowWrite::Insert { id, .. } => Some(id.clone()),
                _ => None,
            }));
            let listed: Vec<String> = observed
                .iter()
                .flat_map(|p| column.ids(p))
                .map(str::to_owned)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let m = read::members(
                tx,
                &join_table,
                set,
                &member_table,
                member_type.schema().id_column(),
                &owners,
                &listed,
            )
            .await?;
            let md = members::diff(
                &members::Input {
                    column,
                    set,
                    id_column: schema.id_column(),
                    observed,
                    writes: &d.writes,
                    owners: &current.locked,
                    rows: &m.rows,
                    members: &m.members,
                    policies: &current.policies,
                    open: &m.open,
                    first,
                },
                &mut d.reverts,
            );
            write::members(tx, &join_table, set, &md).await?;
            d.stats.drift += md.drift.len();
            out.push((join_table, md.drift));
        }
        Ok(out)
    }
}
