//! Make the cloud equal the rows *as committed now*, for the resources one
//! unsettled apply touched.
//!
//! Recovery never replays a journaled before-image: another transaction may
//! have committed a newer value since, and restoring the old one would lose
//! it. Instead, per journaled action:
//! - **create**: a resource the apply created (found by its id, or by its
//!   `infrasql:apply-id` tag when the answer was lost) is deleted, unless a
//!   committed row names it;
//! - **update**: the row is locked (`FOR UPDATE` with a 2 s lock timeout,
//!   so a transaction that holds it longer is waited for by retrying
//!   later, never raced) and
//!   the resource is updated to the row's committed values;
//! - **delete**: a delete AWS carried out cannot be taken back (an empty
//!   database is not the database), so the row is removed instead and the
//!   loss is recorded in `infra.drift` with the apply's id. Nothing is ever
//!   re-created in the user's name.
//!
//! What cannot be done now is returned as pending, with its failure class,
//! so the caller can retry with backoff or ask for a person.

use infrasql_provider::{ApplyContext, ErrorClass, Props, ReplaceOrder, Resource, APPLY_TAG};
use serde_json::{json, Value};
use tokio_postgres::Client;

mod row;

use row::{lock_row, with_sets, Locked};

use super::apply::Resources;
use super::journal::{ApplyId, Journal, Recorded};

/// What one pass achieved for an apply.
#[derive(Debug, Default)]
pub struct Converged {
    /// What was done, for `infra.apply.error` and the log.
    pub notes: Vec<String>,
    /// What is still to do: the reason and its failure class.
    pub pending: Vec<(String, ErrorClass)>,
    /// Rows an open transaction holds: not a failure, so the caller retries
    /// soon and does not count it as a try (the sync loop and other commits
    /// hold rows for moments at a time, often).
    pub busy: Vec<String>,
}

fn obj(v: Option<Value>) -> Props {
    match v {
        Some(Value::Object(m)) => m,
        _ => Props::new(),
    }
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub async fn converge(
    journal: &Journal<'_>,
    resources: &Resources,
) -> Result<Converged, tokio_postgres::Error> {
    let db = journal.db();
    let apply_id = journal.id().as_str();
    let actions = journal.unsettled_steps().await?;
    let mut out = Converged::default();
    let ctx = |region: &str| ApplyContext {
        region: region.to_owned(),
        apply_id: apply_id.to_owned(),
    };
    // (table, region) where the apply created something, newest first, so
    // children are deleted before their parents.
    let mut created_in: Vec<(String, String)> = Vec::new();
    for a in &actions {
        let Some(resource) = resources.get(&a.table) else {
            continue;
        };
        match a.action.as_str() {
            "create" | "replace-create" => {
                let key = (a.table.clone(), a.region.clone());
                if !created_in.contains(&key) {
                    created_in.push(key);
                }
            }
            "update" => {
                let Some(id) = &a.id else { continue };
                let status = converge_update(
                    db,
                    resource.as_ref(),
                    &ctx(&a.region),
                    id,
                    &a.after,
                    &mut out,
                )
                .await?;
                if let Some(status) = status {
                    journal.set_step_status(a.step, status).await?;
                }
            }
            _ => {}
        }
    }
    for (table, region) in &created_in {
        let resource = &resources[table];
        if delete_created(db, resource.as_ref(), &ctx(region), &mut out).await? {
            journal.creates_undone(table, region).await?;
        }
    }
    // Deletes ran children first; their rows go in the same order.
    for a in actions.iter().rev() {
        if !matches!(a.action.as_str(), "delete" | "replace-delete") {
            continue;
        }
        let (Some(resource), Some(id)) = (resources.get(&a.table), &a.id) else {
            continue;
        };
        let status = settle_delete(db, resource.as_ref(), journal.id(), a, id, &mut out).await?;
        if let Some(status) = status {
            journal.set_step_status(a.step, status).await?;
        }
    }
    Ok(out)
}

/// The resource becomes what its committed row says. Returns the action's
/// new status, or `None` to leave it for the next pass.
async fn converge_update(
    db: &Client,
    resource: &dyn Resource,
    ctx: &ApplyContext,
    id: &str,
    cloud: &Props,
    out: &mut Converged,
) -> Result<Option<&'static str>, tokio_postgres::Error> {
    let table = resource.schema().qualified();
    let desired = match lock_row(db, resource.schema(), id, out).await? {
        Locked::Row(row) => row,
        Locked::Busy => return Ok(None),
        Locked::Gone => {
            // A later commit deleted the row, and with it the resource.
            out.notes.push(format!(
                "{table} {id} has no row any more; nothing to restore"
            ));
            return Ok(Some("undone"));
        }
    };
    let desired = with_sets(db, resource, id, desired).await?;
    let result = resource.update(ctx, id, cloud, &desired).await;
    db.batch_execute("COMMIT").await?;
    Ok(Some(match result {
        Ok(_) => {
            out.notes
                .push(format!("made {table} {id} equal its committed row"));
            "undone"
        }
        Err(e) => {
            out.pending
                .push((format!("could not restore {table} {id}: {e}"), e.class));
            "undo_failed"
        }
    }))
}

/// Delete what the apply created and no committed row names. True when
/// nothing of it is left in this (table, region).
async fn delete_created(
    db: &Client,
    resource: &dyn Resource,
    ctx: &ApplyContext,
    out: &mut Converged,
) -> Result<bool, tokio_postgres::Error> {
    let schema = resource.schema();
    let table = schema.qualified();
    let idc = schema.id_column();
    let found = match resource.list(&ctx.region).await {
        Ok(f) => f,
        Err(e) => {
            out.pending.push((
                format!("could not list {table} in {}: {e}", ctx.region),
                e.class,
            ));
            return Ok(false);
        }
    };
    let mut clean = true;
    for p in found
        .iter()
        .filter(|p| p.get(APPLY_TAG).and_then(Value::as_str) == Some(&ctx.apply_id))
    {
        let id = p.get(idc).and_then(Value::as_str).unwrap_or_default();
        let named = db
            .query_opt(
                &format!("SELECT 1 FROM {table} WHERE {} = $1", ident(idc)),
                &[&id],
            )
            .await?
            .is_some();
        if named {
            out.notes
                .push(format!("kept {table} {id}: a committed row names it"));
            continue;
        }
        match resource.delete(ctx, id, &p).await {
            Ok(()) => out.notes.push(format!("deleted {table} {id}")),
            Err(e) if e.class == ErrorClass::NotFound => {}
            Err(e) => {
                clean = false;
                out.pending
                    .push((format!("could not delete {table} {id}: {e}"), e.class));
            }
        }
    }
    Ok(clean)
}

/// A delete whose COMMIT was lost: if AWS carried it out, the row goes.
async fn settle_delete(
    db: &Client,
    resource: &dyn Resource,
    apply_id: &ApplyId,
    a: &Recorded,
    id: &str,
    out: &mut Converged,
) -> Result<Option<&'static str>, tokio_postgres::Error> {
    let schema = resource.schema();
    let table = schema.qualified();
    if a.status != "done" {
        // The call may or may not have happened: ask the cloud.
        match resource.list(&a.region).await {
            Ok(found) => {
                let exists = found
                    .iter()
                    .any(|p| p.get(schema.id_column()).and_then(Value::as_str) == Some(id));
                if exists {
                    out.notes
                        .push(format!("{table} {id} was not deleted; nothing to do"));
                    return Ok(Some("undone"));
                }
            }
            Err(e) => {
                out.pending.push((
                    format!("could not list {table} in {}: {e}", a.region),
                    e.class,
                ));
                return Ok(None);
            }
        }
    }
    if a.action == "replace-delete"
        && matches!(schema.replace_order, ReplaceOrder::DeleteFirst { .. })
    {
        return recreate(db, resource, apply_id, a, id, out).await;
    }
    let removed = db
        .query_opt(
            &format!(
                "DELETE FROM {table} AS t WHERE {} = $1 RETURNING to_jsonb(t)",
                ident(schema.id_column())
            ),
            &[&id],
        )
        .await;
    match removed {
        Ok(row) => {
            if let Some(row) = row {
                let known: Value = row.get(0);
                db.execute(
                    "INSERT INTO infra.drift (table_name, resource_id, region, kind, known_value, actual_value, resolution, resolved_at) \
                     VALUES ($1, $2, $3, 'disappeared', $4, $5, 'adopted', now())",
                    &[&table, &id, &a.region, &known, &json!({"deleted_by_apply": apply_id.as_str()})],
                )
                .await?;
            }
            out.notes.push(format!(
                "{table} {id} was deleted in AWS before the COMMIT failed; a delete cannot be taken back, so its row was removed"
            ));
            Ok(Some("kept"))
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
            out.pending.push((
                format!("{table} {id} is gone from AWS but rows still reference it: {e}"),
                ErrorClass::Conflict,
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A replace of a type that holds no data deleted the old resource, and the
/// COMMIT failed: the committed row still wants it, so it is created again
/// from the row (as the in-process undo does), tagged `<apply>-undo` so the
/// sweep of the apply's own creates leaves it, and the row takes its new id.
async fn recreate(
    db: &Client,
    resource: &dyn Resource,
    apply_id: &ApplyId,
    a: &Recorded,
    id: &str,
    out: &mut Converged,
) -> Result<Option<&'static str>, tokio_postgres::Error> {
    let schema = resource.schema();
    let table = schema.qualified();
    let idc = ident(schema.id_column());
    let row = match lock_row(db, schema, id, out).await? {
        Locked::Row(row) => row,
        Locked::Busy => return Ok(None),
        Locked::Gone => {
            out.notes
                .push(format!("{table} {id} was replaced and has no row any more"));
            return Ok(Some("kept"));
        }
    };
    let ctx = ApplyContext {
        region: a.region.clone(),
        apply_id: apply_id.undo_tag(),
    };
    match resource.create(&ctx, &row).await {
        Ok(created) => {
            let new_id = created
                .get(schema.id_column())
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_owned();
            db.execute(
                &format!("UPDATE {table} SET {idc} = $2 WHERE {idc} = $1"),
                &[&id, &new_id],
            )
            .await?;
            db.batch_execute("COMMIT").await?;
            out.notes.push(format!(
                "created {table} {id} again from its committed row, as {new_id} (the replace had deleted it)"
            ));
            Ok(Some("undone"))
        }
        Err(e) => {
            db.batch_execute("ROLLBACK").await?;
            out.pending
                .push((format!("could not create {table} {id} again: {e}"), e.class));
            Ok(None)
        }
    }
}
