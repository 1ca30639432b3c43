//! The sync loop: rows follow the real cloud, and drift is recorded.
//!
//! `reconcile(table, region)` lists the cloud (every page), compares with
//! the rows, rewrites rows as the engine role (so change capture ignores
//! it), records drift in `infra.drift`, and handles it by the table's
//! policy: adopt (rows take the cloud's values), revert (desired values are
//! applied back to AWS through the apply engine, journaled like a commit),
//! or report (rows keep their values, the drift stays open).
//!
//! # Guarantees
//! - Rows locked by open transactions are skipped (`FOR UPDATE SKIP LOCKED`)
//!   and handled in a later round; sync never blocks or overwrites a user.
//! - Resources created by an apply still in flight are left alone, so a
//!   commit in progress and sync never touch the same resource.
//! - One (table, region) at a time across all nodes on one database: a
//!   session advisory lock; a node that cannot take it skips that pair.
//! - One type failing (throttled, denied) does not stop the others; its
//!   error is recorded in `infra.sync_status` and retried next round.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infrasql_provider::{ColumnKind, Props, Resource, ResourceSchema, APPLY_TAG};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::apply::{self, Journal, Resources};
use super::plan::{Action, Plan, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Adopt,
    Revert,
    Report,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub seen: usize,
    pub drift: usize,
    pub skipped_locked: usize,
}

pub struct Syncer {
    resources: Resources,
    config: tokio_postgres::Config,
    regions: Vec<String>,
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A policy row: (tag_key, tag_value, policy); '' key = the table default.
type PolicyRow = (String, String, Policy);

fn policy_for(policies: &[PolicyRow], tags: Option<&Value>) -> Policy {
    let tagged = policies.iter().find(|(k, v, _)| {
        !k.is_empty() && tags.and_then(|t| t.get(k)).and_then(Value::as_str) == Some(v.as_str())
    });
    tagged
        .or_else(|| policies.iter().find(|(k, _, _)| k.is_empty()))
        .map(|(_, _, p)| *p)
        .unwrap_or(Policy::Adopt)
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let null = |v: Option<&Value>| matches!(v, None | Some(Value::Null));
    a == b || (null(a) && null(b))
}

impl Syncer {
    pub fn new(resources: Resources, config: tokio_postgres::Config, regions: Vec<String>) -> Self {
        Syncer {
            resources,
            config,
            regions,
        }
    }

    /// Sync every (table, region) pair matching the filters.
    ///
    /// Every listing starts at once; only the row writes go in levels,
    /// parents first (a subnet's VPC row must exist before the subnet's).
    /// A round thus costs about its slowest listing plus the writes, not the
    /// sum of one listing per level.
    pub async fn sync_all(
        &self,
        table: Option<&str>,
        region: Option<&str>,
    ) -> Vec<(String, String, Result<Stats, String>)> {
        let mut regions = self.regions.clone();
        if let Some(r) = region {
            if !regions.iter().any(|x| x == r) {
                regions.push(r.to_owned());
            }
        }
        let mut pairs = Vec::new();
        for (depth, level) in self.levels().into_iter().enumerate() {
            for t in level {
                if table.is_some_and(|f| f != t && f != self.resources[&t].schema().table) {
                    continue;
                }
                for r in regions
                    .iter()
                    .filter(|r| region.is_none_or(|f| f == r.as_str()))
                {
                    pairs.push((depth, t.clone(), r.clone()));
                }
            }
        }
        let gate = LevelGate::new(pairs.iter().map(|(d, _, _)| *d));
        let jobs = pairs.into_iter().map(|(depth, t, r)| {
            let gate = &gate;
            async move {
                let res = self.reconcile_gated(&t, &r, Some(gate.turn(depth))).await;
                gate.finished(depth);
                if let Err(e) = &res {
                    tracing::debug!("sync {t} in {r}: {e}");
                }
                (t, r, res)
            }
        });
        let out: Vec<_> = futures_util::future::join_all(jobs).await;
        // One line per round, not one per type: a missing credential would
        // otherwise repeat itself for every table every round.
        let mut errors: Vec<String> = out
            .iter()
            .filter_map(|(_, _, r)| r.as_ref().err().cloned())
            .collect();
        errors.sort();
        errors.dedup();
        if !errors.is_empty() {
            let failed = out.iter().filter(|(_, _, r)| r.is_err()).count();
            tracing::warn!(
                "sync: {failed} of {} region/type pairs failed (see infra.sync_status): {}",
                out.len(),
                errors.join(" | ")
            );
        }
        out
    }

    /// Tables grouped by depth in the reference graph.
    fn levels(&self) -> Vec<Vec<String>> {
        let mut depth: HashMap<String, usize> = HashMap::new();
        fn depth_of(
            t: &str,
            res: &Resources,
            memo: &mut HashMap<String, usize>,
            seen: &mut HashSet<String>,
        ) -> usize {
            if let Some(d) = memo.get(t) {
                return *d;
            }
            if !seen.insert(t.to_owned()) {
                return 0; // a cycle: stop here
            }
            let schema = res[t].schema();
            let d = schema
                .references()
                .filter_map(|c| c.references)
                .map(|p| format!("{}.{p}", schema.schema))
                .filter(|p| p != t && res.contains_key(p))
                .map(|p| depth_of(&p, res, memo, seen) + 1)
                .max()
                .unwrap_or(0);
            memo.insert(t.to_owned(), d);
            d
        }
        let mut names: Vec<&String> = self.resources.keys().collect();
        names.sort();
        for t in &names {
            depth_of(t, &self.resources, &mut depth, &mut HashSet::new());
        }
        let max = depth.values().copied().max().unwrap_or(0);
        (0..=max)
            .map(|d| {
                names
                    .iter()
                    .filter(|t| depth[t.as_str()] == d)
                    .map(|t| t.to_string())
                    .collect()
            })
            .collect()
    }

    /// Run until `stop` turns true, one round every `interval`.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            self.sync_all(None, None).await;
        }
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, String> {
        let (client, conn) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(db_error)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub async fn reconcile(&self, table: &str, region: &str) -> Result<Stats, String> {
        self.reconcile_gated(table, region, None).await
    }

    /// `reconcile`, whose row writes wait for `turn` (the parents' level).
    async fn reconcile_gated(
        &self,
        table: &str,
        region: &str,
        turn: Option<Turn<'_>>,
    ) -> Result<Stats, String> {
        let resource = self
            .resources
            .get(table)
            .ok_or_else(|| format!("{table} is not a resource table"))?
            .clone();
        let mut db = self.connect().await?;
        let lock_key = format!("infrasql.sync.{table}.{region}");
        let got: bool = db
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&lock_key])
            .await
            .map_err(db_error)?
            .get(0);
        if !got {
            return Ok(Stats::default()); // another node is on it
        }
        let first: bool = db
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM infra.sync_status WHERE table_name = $1 AND region = $2 AND last_finished IS NOT NULL AND last_error IS NULL)",
                &[&table, &region],
            )
            .await
            .map_err(db_error)?
            .get(0);
        db.execute(
            "INSERT INTO infra.sync_status (region, table_name, last_started) VALUES ($1, $2, now()) \
             ON CONFLICT (region, table_name) DO UPDATE SET last_started = now()",
            &[&region, &table],
        )
        .await
        .map_err(db_error)?;
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        // Counted per task: the other tables' listings run at the same time.
        let (result, calls) = infrasql_provider::calls::count_calls(async {
            match resource.list(region).await {
                Ok(observed) => {
                    if let Some(turn) = turn {
                        let t = Instant::now();
                        turn.wait().await;
                        waited = t.elapsed();
                    }
                    self.apply_observed(&mut db, resource.as_ref(), table, region, observed, first)
                        .await
                }
                Err(e) => Err(format!("{}: {}", e.code, e.message)),
            }
        })
        .await;
        let calls = calls as i32;
        let (seen, error) = match &result {
            Ok(s) => (Some(s.seen as i32), None),
            Err(e) => (None, Some(e.clone())),
        };
        let _ = db
            .execute(
                "UPDATE infra.sync_status SET last_finished = now(), duration_ms = $3, \
                 resources_seen = coalesce($4, resources_seen), api_calls = $5, last_error = $6 \
                 WHERE region = $1 AND table_name = $2",
                &[
                    &region,
                    &table,
                    // Time spent waiting for the parents' writes is not this pair's.
                    &(started.elapsed().saturating_sub(waited).as_millis() as i32),
                    &seen,
                    &calls,
                    &error,
                ],
            )
            .await;
        let _ = db
            .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock_key])
            .await;
        result
    }

    /// A condition on an appeared resource `r`: every parent it names is a
    /// row. One whose parent is not (a VPC's default group while recovery is
    /// still deleting the VPC a refused COMMIT made) waits for a later round
    /// instead of failing the whole table's round on a foreign key.
    fn parents_are_rows(&self, schema: &ResourceSchema, cols: &[&str]) -> String {
        let mut conds = vec!["true".to_owned()];
        for c in schema.references().filter(|c| cols.contains(&c.name)) {
            let parent = format!("{}.{}", schema.schema, c.references.unwrap_or_default());
            let Some(p) = self.resources.get(&parent) else {
                continue;
            };
            conds.push(format!(
                "(r.{0} IS NULL OR EXISTS (SELECT 1 FROM {parent} p WHERE p.{1} = r.{0}))",
                ident(c.name),
                ident(p.schema().id_column())
            ));
        }
        conds.join(" AND ")
    }

    async fn apply_observed(
        &self,
        db: &mut tokio_postgres::Client,
        resource: &dyn Resource,
        table: &str,
        region: &str,
        observed: Vec<Props>,
        first: bool,
    ) -> Result<Stats, String> {
        let err = db_error;
        let schema = resource.schema();
        let idc = schema.id_column();
        let mut stats = Stats {
            seen: observed.len(),
            ..Default::default()
        };
        let tx = db.transaction().await.map_err(err)?;
        let locked: HashMap<String, Props> = tx
            .query(
                &format!("SELECT {0}, to_jsonb(t) FROM {table} t WHERE region = $1 FOR UPDATE SKIP LOCKED", ident(idc)),
                &[&region],
            )
            .await
            .map_err(err)?
            .into_iter()
            .filter_map(|r| match r.get::<_, Value>(1) {
                Value::Object(m) => Some((r.get::<_, String>(0), m)),
                _ => None,
            })
            .collect();
        let all: HashSet<String> = tx
            .query(
                &format!("SELECT {} FROM {table} WHERE region = $1", ident(idc)),
                &[&region],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let policies: Vec<PolicyRow> = tx
            .query(
                "SELECT tag_key, tag_value, policy FROM infra.drift_policy WHERE table_name = $1",
                &[&table],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                let p = match r.get::<_, String>(2).as_str() {
                    "revert" => Policy::Revert,
                    "report" => Policy::Report,
                    _ => Policy::Adopt,
                };
                (r.get(0), r.get(1), p)
            })
            .collect();
        let in_flight: HashSet<String> = tx
            .query(
                "SELECT apply_id FROM infra.apply WHERE infra.unsettled(status, xid)",
                &[],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Not every type carries the apply tag (routes, associations): while
        // an apply touches this table, what appeared or disappeared may be
        // that apply's doing, so membership waits for a later round.
        let table_busy: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM infra.apply_action a JOIN infra.apply p USING (apply_id) \
                 WHERE a.table_name = $1 AND infra.unsettled(p.status, p.xid))",
                &[&table],
            )
            .await
            .map_err(err)?
            .get(0);
        // Resources an unsettled apply updated or deleted: until recovery
        // has made them equal the committed rows, what the cloud shows may
        // be a refused COMMIT's doing, which must never become the rows.
        let unsettled_ids: HashSet<String> = tx
            .query(
                "SELECT a.resource_id FROM infra.apply_action a JOIN infra.apply p USING (apply_id) \
                 WHERE a.table_name = $1 AND a.resource_id IS NOT NULL AND infra.unsettled(p.status, p.xid)",
                &[&table],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();

        // Columns the listing reports for every resource: only those are written.
        let observed_cols: Vec<&'static str> = schema
            .columns
            .iter()
            .filter(|c| c.kind != ColumnKind::WriteOnly && c.name != "synced_at")
            .filter(|c| !observed.is_empty() && observed.iter().all(|p| p.contains_key(c.name)))
            .map(|c| c.name)
            .collect();
        let cloud_cols: Vec<&'static str> = observed_cols
            .iter()
            .copied()
            .filter(|c| {
                schema.column(c).is_some_and(|c| {
                    matches!(c.kind, ColumnKind::CloudAssigned | ColumnKind::Identity)
                })
            })
            .collect();

        let mut adopt_rows = Vec::new();
        let mut cloud_rows = Vec::new();
        let mut inserts = Vec::new();
        let mut drift: Vec<Value> = Vec::new();
        let mut reverts: Vec<Step> = Vec::new();
        let mut seen_ids = HashSet::new();

        for p in &observed {
            let Some(id) = p.get(idc).and_then(Value::as_str) else {
                continue;
            };
            seen_ids.insert(id.to_owned());
            if p.get(APPLY_TAG)
                .and_then(Value::as_str)
                .is_some_and(|a| in_flight.contains(a))
            {
                continue; // a commit in progress owns it
            }
            if unsettled_ids.contains(id) {
                continue; // recovery owns it until it is settled
            }
            match locked.get(id) {
                Some(row) => {
                    let diffs: Vec<&str> = schema
                        .columns
                        .iter()
                        .filter(|c| {
                            matches!(c.kind, ColumnKind::Desired | ColumnKind::ReplaceOnChange)
                        })
                        .filter(|c| p.contains_key(c.name) && !same(row.get(c.name), p.get(c.name)))
                        .map(|c| c.name)
                        .collect();
                    if diffs.is_empty() {
                        cloud_rows.push(Value::Object(p.clone()));
                        continue;
                    }
                    stats.drift += diffs.len();
                    let mut policy = policy_for(&policies, row.get("tags"));
                    // A replace-on-change field cannot be set back in place.
                    if policy == Policy::Revert
                        && diffs.iter().any(|d| {
                            schema
                                .column(d)
                                .is_some_and(|c| c.kind == ColumnKind::ReplaceOnChange)
                        })
                    {
                        policy = Policy::Report;
                    }
                    for f in &diffs {
                        drift.push(json!({"id": id, "kind": "changed", "field": f,
                            "known": row.get(*f), "actual": p.get(*f), "policy": policy_name(policy)}));
                    }
                    match policy {
                        Policy::Adopt => adopt_rows.push(Value::Object(p.clone())),
                        Policy::Report => cloud_rows.push(Value::Object(p.clone())),
                        Policy::Revert => {
                            cloud_rows.push(Value::Object(p.clone()));
                            reverts.push(revert_step(
                                table,
                                id,
                                region,
                                Action::Update,
                                Some(p.clone()),
                                Some(row.clone()),
                            ));
                        }
                    }
                }
                None if all.contains(id) => stats.skipped_locked += 1,
                None if table_busy => {}
                None => {
                    let policy = if first {
                        Policy::Adopt
                    } else {
                        policy_for(&policies, p.get("tags"))
                    };
                    if !first {
                        stats.drift += 1;
                        drift.push(
                            json!({"id": id, "kind": "appeared", "field": null, "known": null,
                            "actual": Value::Object(p.clone()), "policy": policy_name(policy)}),
                        );
                    }
                    match policy {
                        Policy::Adopt => inserts.push(Value::Object(p.clone())),
                        Policy::Report => {}
                        Policy::Revert => reverts.push(revert_step(
                            table,
                            id,
                            region,
                            Action::Delete,
                            Some(p.clone()),
                            None,
                        )),
                    }
                }
            }
        }
        let mut deletes = Vec::new();
        for (id, row) in &locked {
            if seen_ids.contains(id)
                || id.starts_with("pending-")
                || table_busy
                || unsettled_ids.contains(id)
            {
                continue;
            }
            stats.drift += 1;
            let policy = policy_for(&policies, row.get("tags"));
            drift.push(json!({"id": id, "kind": "disappeared", "field": null,
                "known": Value::Object(row.clone()), "actual": null, "policy": policy_name(policy)}));
            match policy {
                Policy::Adopt => deletes.push(id.clone()),
                Policy::Report => {}
                Policy::Revert => reverts.push(revert_step(
                    table,
                    id,
                    region,
                    Action::Create,
                    None,
                    Some(row.clone()),
                )),
            }
        }

        let set = |cols: &[&str]| {
            cols.iter()
                .filter(|c| **c != idc)
                .map(|c| format!("{0} = r.{0}", ident(c)))
                .chain(std::iter::once("synced_at = now()".to_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (rows, cols) in [(&adopt_rows, &observed_cols), (&cloud_rows, &cloud_cols)] {
            if rows.is_empty() {
                continue;
            }
            let sql = format!(
                "UPDATE {table} AS t SET {} FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) AS r WHERE t.{1} = r.{1}",
                set(cols),
                ident(idc)
            );
            tx.execute(
                &sql,
                &[&serde_json::to_string(rows).map_err(|e| e.to_string())?],
            )
            .await
            .map_err(err)?;
        }
        if !inserts.is_empty() {
            let cols: Vec<String> = observed_cols.iter().map(|c| ident(c)).collect();
            let sql = format!(
                "INSERT INTO {table} ({0}, synced_at) SELECT {0}, now() FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) r \
                 WHERE {1} ON CONFLICT DO NOTHING",
                cols.join(", "),
                self.parents_are_rows(schema, &observed_cols)
            );
            tx.execute(&sql, &[&Value::Array(inserts).to_string()])
                .await
                .map_err(err)?;
        }
        for id in &deletes {
            // A parent whose children are still rows waits for a later round.
            tx.batch_execute("SAVEPOINT sync_delete")
                .await
                .map_err(err)?;
            let r = tx
                .execute(
                    &format!("DELETE FROM {table} WHERE {} = $1", ident(idc)),
                    &[id],
                )
                .await;
            let undo = if r.is_err() {
                "ROLLBACK TO SAVEPOINT sync_delete"
            } else {
                "RELEASE SAVEPOINT sync_delete"
            };
            tx.batch_execute(undo).await.map_err(err)?;
        }
        let revert_ok = if reverts.is_empty() {
            true
        } else {
            self.revert(&tx, table, reverts)
                .await
                .map_err(|e| {
                    tracing::warn!("revert of drift in {table} ({region}) failed: {e}");
                })
                .is_ok()
        };
        for d in &drift {
            // Report drift already open for the same value is not repeated.
            let resolution = match d["policy"].as_str() {
                Some("adopt") => "adopted",
                Some("revert") if revert_ok => "reverted",
                _ => "open",
            };
            tx.execute(
                "INSERT INTO infra.drift (table_name, resource_id, region, kind, field, known_value, actual_value, resolution, resolved_at) \
                 SELECT $1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8, CASE WHEN $8 = 'open' THEN NULL ELSE now() END \
                 WHERE NOT EXISTS (SELECT 1 FROM infra.drift WHERE resolution = 'open' AND table_name = $1 AND resource_id = $2 \
                                   AND kind = $4 AND field IS NOT DISTINCT FROM $5 AND actual_value IS NOT DISTINCT FROM $7::text::jsonb)",
                &[
                    &table,
                    &d["id"].as_str().unwrap_or_default(),
                    &region,
                    &d["kind"].as_str().unwrap_or_default(),
                    &d["field"].as_str(),
                    &d["known"].to_string(),
                    &d["actual"].to_string(),
                    &resolution,
                ],
            )
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(stats)
    }

    /// Put the desired state back through the apply engine, journaled like a
    /// user's commit (source `sync`).
    async fn revert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        table: &str,
        steps: Vec<Step>,
    ) -> Result<(), String> {
        let journal_db = Arc::new(self.connect().await?);
        let apply_id = format!("apply-{:016x}", rand::random::<u64>());
        journal_db
            .execute(
                "SELECT pg_advisory_lock(hashtext('infrasql.apply.' || $1))",
                &[&apply_id],
            )
            .await
            .map_err(db_error)?;
        journal_db
            .execute(
                "INSERT INTO infra.apply (apply_id, status, username, source, actions) VALUES ($1, 'running', 'infrasql sync', 'sync', $2)",
                &[&apply_id, &(steps.len() as i32)],
            )
            .await
            .map_err(db_error)?;
        let steps: Vec<Step> = steps
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.step = i + 1;
                s
            })
            .collect();
        let plan = Plan { steps };
        let journal = Journal {
            client: journal_db.clone(),
            apply_id: apply_id.clone(),
        };
        let (ptx, mut prx) = mpsc::unbounded_channel();
        let result = apply::apply(&plan, &self.resources, &journal, &ptx).await;
        drop(ptx);
        while let Ok(line) = prx.try_recv() {
            tracing::info!("sync revert {apply_id}: {line}");
        }
        let status = if result.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        let error = result
            .as_ref()
            .err()
            .map(|f| format!("{}: {}", f.error.code, f.error.message));
        let _ = journal_db
            .execute(
                "UPDATE infra.apply SET status = $2, finished_at = now(), error = $3 WHERE apply_id = $1",
                &[&apply_id, &status, &error],
            )
            .await;
        let _ = journal_db
            .execute(
                "SELECT pg_advisory_unlock(hashtext('infrasql.apply.' || $1))",
                &[&apply_id],
            )
            .await;
        let applied = result.map_err(|f| format!("{}: {}", f.error.code, f.error.message))?;
        // A re-created resource has a new id: the row follows it.
        let idc = self.resources[table].schema().id_column();
        for (old, new) in &applied.id_map {
            tx.execute(
                &format!("UPDATE {table} SET {0} = $2 WHERE {0} = $1", ident(idc)),
                &[old, new],
            )
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }
}

/// A database error with PostgreSQL's own message, not just "db error".
/// Orders the row writes of one round by level while the listings run
/// concurrently: level `d` may write once every pair of levels `< d` has
/// finished (written, failed or skipped).
struct LevelGate {
    remaining: std::sync::Mutex<Vec<usize>>,
    done: tokio::sync::watch::Sender<usize>,
}

/// A pair's place in the gate: it may write once `done >= depth`.
struct Turn<'a> {
    depth: usize,
    gate: &'a LevelGate,
}

impl LevelGate {
    fn new(depths: impl Iterator<Item = usize>) -> Self {
        let mut remaining = Vec::new();
        for d in depths {
            if remaining.len() <= d {
                remaining.resize(d + 1, 0);
            }
            remaining[d] += 1;
        }
        let gate = LevelGate {
            remaining: std::sync::Mutex::new(remaining),
            done: tokio::sync::watch::channel(0).0,
        };
        gate.advance(&gate.remaining.lock().expect("gate lock poisoned"));
        gate
    }

    fn turn(&self, depth: usize) -> Turn<'_> {
        Turn { depth, gate: self }
    }

    fn finished(&self, depth: usize) {
        let mut remaining = self.remaining.lock().expect("gate lock poisoned");
        remaining[depth] -= 1;
        self.advance(&remaining);
    }

    /// Skip past every level with nothing left to run.
    fn advance(&self, remaining: &[usize]) {
        let mut done = *self.done.borrow();
        while done < remaining.len() && remaining[done] == 0 {
            done += 1;
        }
        self.done.send_replace(done);
    }
}

impl Turn<'_> {
    async fn wait(self) {
        let mut rx = self.gate.done.subscribe();
        // The sender lives as long as the gate, which outlives every turn.
        let _ = rx.wait_for(|done| *done >= self.depth).await;
    }
}

fn db_error(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Adopt => "adopt",
        Policy::Revert => "revert",
        Policy::Report => "report",
    }
}

fn revert_step(
    table: &str,
    id: &str,
    region: &str,
    action: Action,
    actual: Option<Props>,
    desired: Option<Props>,
) -> Step {
    let name = desired
        .as_ref()
        .or(actual.as_ref())
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Step {
        step: 0,
        action,
        table: table.to_owned(),
        id: id.to_owned(),
        name,
        region: region.to_owned(),
        before: actual,
        after: desired,
        changes: Vec::new(),
        depends_on: Vec::new(),
        last_phase: action == Action::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_policy_wins_and_adopt_is_the_default() {
        let p = vec![
            (String::new(), String::new(), Policy::Report),
            ("env".to_owned(), "prod".to_owned(), Policy::Revert),
        ];
        assert_eq!(
            policy_for(&p, Some(&json!({"env": "prod"}))),
            Policy::Revert
        );
        assert_eq!(policy_for(&p, Some(&json!({"env": "dev"}))), Policy::Report);
        assert_eq!(policy_for(&[], Some(&json!({}))), Policy::Adopt);
    }

    #[tokio::test]
    async fn writes_wait_for_every_lower_level_and_skip_empty_ones() {
        use futures_util::FutureExt;
        // Levels 0 and 2 have pairs; level 1 has none (filtered out).
        let gate = LevelGate::new([0, 0, 2].into_iter());
        assert!(gate.turn(0).wait().now_or_never().is_some());
        let mut top = Box::pin(gate.turn(2).wait());
        assert!((&mut top).now_or_never().is_none());
        gate.finished(0);
        assert!(
            (&mut top).now_or_never().is_none(),
            "one level-0 pair still runs"
        );
        gate.finished(0);
        assert!(top.now_or_never().is_some());
    }
}
