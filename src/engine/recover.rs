//! Recovery: finish or undo applies whose process died or whose COMMIT
//! never happened.
//!
//! An apply holds a session advisory lock (keyed by its id) on the engine's
//! connection while it runs. An apply still `running` whose lock is free
//! belongs to a dead process. An apply `applied` (cloud done, COMMIT
//! forwarded) is finished by asking PostgreSQL what became of its
//! transaction: committed → `succeeded`; aborted → the rows never changed,
//! so the cloud changes are undone.
//!
//! Undo uses the journal, and for creates whose result was never journaled
//! (a crash during the call) the `infrasql:apply-id` tag on the resource:
//! every resource of the apply's tables that carries the tag is deleted.

use infrasql_provider::{ApplyContext, Props, APPLY_TAG};
use serde_json::Value;

use super::apply::Resources;

#[derive(Debug, Default)]
pub struct Recovered {
    pub finished: Vec<String>,
    pub undone: Vec<String>,
}

/// One pass over unfinished applies.
pub async fn recover_once(
    db: &tokio_postgres::Client,
    resources: &Resources,
) -> Result<Recovered, tokio_postgres::Error> {
    let mut out = Recovered::default();
    let rows = db
        .query(
            "SELECT apply_id, status, coalesce(pg_xact_status(xid), 'aborted') \
             FROM infra.apply WHERE status IN ('running', 'applied') ORDER BY started_at",
            &[],
        )
        .await?;
    for r in rows {
        let apply_id: String = r.get(0);
        let status: String = r.get(1);
        let xact: String = r.get(2);
        let free: bool = db
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('infrasql.apply.' || $1))",
                &[&apply_id],
            )
            .await?
            .get(0);
        if !free {
            continue; // its process is alive and still working
        }
        let result = async {
            match (status.as_str(), xact.as_str()) {
                (_, "in progress") => Ok(()),
                ("applied", "committed") => {
                    db.execute(
                        "UPDATE infra.apply SET status = 'succeeded', finished_at = coalesce(finished_at, now()) WHERE apply_id = $1",
                        &[&apply_id],
                    )
                    .await?;
                    out.finished.push(apply_id.clone());
                    Ok(())
                }
                _ => {
                    let notes = undo(db, resources, &apply_id).await?;
                    tracing::warn!("recovered apply {apply_id}: {}", notes.join("; "));
                    db.execute(
                        "UPDATE infra.apply SET status = 'recovered', finished_at = now(), error = $2 WHERE apply_id = $1",
                        &[&apply_id, &format!("recovered after its {} was lost: {}", if status == "running" { "process" } else { "transaction" }, notes.join("; "))],
                    )
                    .await?;
                    out.undone.push(apply_id.clone());
                    Ok(())
                }
            }
        }
        .await;
        let _ = db
            .execute(
                "SELECT pg_advisory_unlock(hashtext('infrasql.apply.' || $1))",
                &[&apply_id],
            )
            .await;
        result?;
    }
    Ok(out)
}

async fn undo(
    db: &tokio_postgres::Client,
    resources: &Resources,
    apply_id: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let actions = db
        .query(
            "SELECT step, action, table_name, resource_id, region, status, before, after \
             FROM infra.apply_action WHERE apply_id = $1 AND status IN ('started', 'done') \
             ORDER BY step DESC",
            &[&apply_id],
        )
        .await?;
    let mut notes = Vec::new();
    // (table, region) pairs where this apply created something, children
    // first (the journal is read newest step first).
    let mut created_in: Vec<(String, String)> = Vec::new();
    for a in &actions {
        let step: i32 = a.get(0);
        let action: String = a.get(1);
        let table: String = a.get(2);
        let id: Option<String> = a.get(3);
        let region: String = a.get(4);
        let before: Option<Value> = a.get(6);
        let after: Option<Value> = a.get(7);
        let Some(resource) = resources.get(&table) else {
            continue;
        };
        let ctx = ApplyContext {
            region: region.clone(),
            apply_id: apply_id.to_owned(),
        };
        let obj = |v: Option<Value>| match v {
            Some(Value::Object(m)) => m,
            _ => Props::new(),
        };
        let result = match action.as_str() {
            "create" | "replace-create" => {
                if !created_in.contains(&(table.clone(), region.clone())) {
                    created_in.push((table.clone(), region.clone()));
                }
                continue;
            }
            "update" => {
                let id = id.unwrap_or_default();
                resource
                    .update(&ctx, &id, &obj(after), &obj(before))
                    .await
                    .map(|_| format!("restored {table} {id}"))
            }
            _ => Ok(format!(
                "{table} {} was deleted and cannot be restored",
                id.unwrap_or_default()
            )),
        };
        let status = match &result {
            Ok(n) => {
                notes.push(n.clone());
                "undone"
            }
            Err(e) => {
                notes.push(format!("could not undo step {step}: {e}"));
                "undo_failed"
            }
        };
        db.execute(
            "UPDATE infra.apply_action SET status = $3, finished_at = now() WHERE apply_id = $1 AND step = $2",
            &[&apply_id, &step, &status],
        )
        .await?;
    }
    // Everything the apply created carries its tag, journaled or not.
    for (table, region) in created_in {
        let resource = &resources[&table];
        let ctx = ApplyContext {
            region: region.clone(),
            apply_id: apply_id.to_owned(),
        };
        match resource.list(&region).await {
            Ok(found) => {
                let idc = resource.schema().id_column();
                for p in found
                    .iter()
                    .filter(|p| p.get(APPLY_TAG).and_then(Value::as_str) == Some(apply_id))
                {
                    let id = p.get(idc).and_then(Value::as_str).unwrap_or_default();
                    match resource.delete(&ctx, id, p).await {
                        Ok(()) => {
                            notes.push(format!("deleted {table} {id} (created by the lost apply)"))
                        }
                        Err(e) => notes.push(format!("could not delete {table} {id}: {e}")),
                    }
                }
            }
            Err(e) => notes.push(format!("could not list {table} in {region}: {e}")),
        }
        db.execute(
            "UPDATE infra.apply_action SET status = 'undone', finished_at = now() \
             WHERE apply_id = $1 AND table_name = $2 AND action IN ('create', 'replace-create') AND status IN ('started', 'done')",
            &[&apply_id, &table],
        )
        .await?;
    }
    Ok(notes)
}
