//! The sync loop: rows follow the real cloud, and drift is recorded.
//!
//! `reconcile(table, region)` lists the cloud (every page), compares with
//! the rows, rewrites rows as the engine role (so change capture ignores
//! it), records drift in `infra.drift`, and handles it by the table's
//! policy: adopt (rows take the cloud's values), revert (desired values are
//! applied back to AWS through the apply engine, journaled like a commit),
//! or report (rows keep their values, the drift stays open).
//!
//! One round of one pair: `read` (the listing, then the rows in one
//! transaction) → `diff` (pure: row writes, drift records, reverts) →
//! `write` (the rows that changed only) → `revert` → `write` (the drift) →
//! `status::confirm` (the round's confirmed time, same transaction) →
//! `status`. `pair` is that transaction; this module schedules the pairs.
//!
//! # Guarantees
//! - Rows locked by open transactions are skipped (`FOR UPDATE SKIP LOCKED`,
//!   on the rows a round writes: `read::relock`)
//!   and handled in a later round; sync never blocks or overwrites a user.
//! - Resources created by an apply still in flight are left alone, so a
//!   commit in progress and sync never touch the same resource.
//! - One (table, region) at a time across all nodes on one database: a
//!   session advisory lock; a node that cannot take it skips that pair.
//! - One type failing (throttled, denied) does not stop the others; its
//!   error and class are recorded in `infra.sync_status`, and the
//!   background loop retries it with backoff (`status`).

/// What one pair's listing returned, and when it began (the database's
/// clock): applies settled since then are left to the next round.
struct Listing {
    observed: Vec<Props>,
    from: std::time::SystemTime,
    /// The rows the pair's last round kept (`known`), taken for this one.
    known: Option<known::PairKnown>,
}

mod diff;
mod error;
mod gate;
mod known;
mod members;
mod pair;
mod policy;
mod read;
mod revert;
mod row;
mod status;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infrasql_provider::{Props, Scope, GLOBAL_REGION};

pub use error::SyncError;
pub use policy::{Policy, UnknownPolicy};
pub use status::{is_due, next_delay};

use super::apply::Resources;
use crate::store::engine_db::EngineDb;
use gate::{LevelGate, Turn};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub seen: usize,
    pub drift: usize,
    pub skipped_locked: usize,
}

/// The backoff's base before `run` says the loop's interval: the default
/// `--sync-interval`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

pub struct Syncer {
    resources: Resources,
    db: Arc<EngineDb>,
    regions: Vec<String>,
    /// `--sync-tables`: the tables a round covers when it names none
    /// (`None`: all).
    watched: Option<HashSet<String>>,
    /// The loop's interval in milliseconds, the base of the retry backoff
    /// (an explicit `infra.sync()` that fails sets the next try too).
    interval_ms: AtomicU64,
    /// Per pair, the rows its last round kept (`known`).
    known: known::Known,
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Syncer {
    pub fn new(resources: Resources, db: Arc<EngineDb>, regions: Vec<String>) -> Self {
        Syncer {
            resources,
            db,
            regions,
            watched: None,
            interval_ms: AtomicU64::new(DEFAULT_INTERVAL.as_millis() as u64),
            known: known::Known::default(),
        }
    }

    /// Only these tables in a round that names none (`infra.sync()`, the
    /// loop); `infra.sync('aws.x')` still syncs any table, as an explicit
    /// region is synced though not watched.
    pub fn watching(mut self, tables: Option<HashSet<String>>) -> Self {
        self.watched = tables;
        self
    }

    /// Sync every (table, region) pair matching the filters, now: a user's
    /// `infra.sync(...)`, which does not wait for a pair's backoff.
    pub async fn sync_all(
        &self,
        table: Option<&str>,
        region: Option<&str>,
    ) -> Vec<(String, String, Result<Stats, SyncError>)> {
        self.round(table, region, false).await
    }

    /// One round over the pairs matching the filters; `only_due` skips the
    /// pairs whose next try (after failures) is not due yet.
    ///
    /// Every listing starts at once; only the row writes go in levels,
    /// parents first (a subnet's VPC row must exist before the subnet's).
    /// A round thus costs about its slowest listing plus the writes, not the
    /// sum of one listing per level.
    async fn round(
        &self,
        table: Option<&str>,
        region: Option<&str>,
        only_due: bool,
    ) -> Vec<(String, String, Result<Stats, SyncError>)> {
        let mut regions = self.regions.clone();
        if let Some(r) = region {
            if !regions.iter().any(|x| x == r) {
                regions.push(r.to_owned());
            }
        }
        let global = [GLOBAL_REGION.to_owned()];
        let not_due = if only_due {
            self.not_due().await
        } else {
            HashSet::new()
        };
        let mut pairs = Vec::new();
        for (depth, level) in self.levels().into_iter().enumerate() {
            for t in level {
                if table.is_some_and(|f| f != t && f != self.resources[&t].schema().table) {
                    continue;
                }
                if table.is_none() && self.watched.as_ref().is_some_and(|w| !w.contains(&t)) {
                    continue;
                }
                // A global type (IAM, Route53) is listed once, not once per region.
                let scoped: &[String] = match self.resources[&t].schema().scope {
                    Scope::Global => &global,
                    Scope::Regional => &regions,
                };
                for r in scoped
                    .iter()
                    .filter(|r| region.is_none_or(|f| f == r.as_str()))
                {
                    if not_due.contains(&(t.clone(), r.clone())) {
                        tracing::debug!("sync {t} in {r}: backing off after failures");
                        continue;
                    }
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
        self.count_open_drift().await;
        // One line per round, not one per type: a missing credential would
        // otherwise repeat itself for every table every round.
        let mut errors: Vec<String> = out
            .iter()
            .filter_map(|(_, _, r)| r.as_ref().err().map(|e| e.to_string()))
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

    /// The open drift per table for `/metrics`, once per round: one count
    /// on the partial index `drift_open`, so drift that a user resolved
    /// between rounds is not counted, as a tally kept by the rounds would.
    async fn count_open_drift(&self) {
        let counted = match self.db.session().await {
            Ok(db) => {
                let r = status::open_drift(&db).await;
                db.done();
                r
            }
            Err(e) => Err(e.into()),
        };
        match counted {
            Ok(counts) => crate::metrics::set_open_drift(self.resources.keys().cloned(), &counts),
            Err(e) => tracing::debug!("sync: counting open drift failed: {e}"),
        }
    }

    /// Pairs backing off; none if the database cannot say (each pair's
    /// round then fails on its own and is recorded).
    async fn not_due(&self) -> HashSet<(String, String)> {
        let res = match self.db.session().await {
            Ok(db) => {
                let r = status::not_due(&db).await;
                db.done();
                r
            }
            Err(e) => Err(e.into()),
        };
        res.unwrap_or_else(|e| {
            tracing::debug!("sync: reading the backoff failed: {e}");
            HashSet::new()
        })
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

    /// Run until `stop` turns true, one round every `interval`; pairs that
    /// keep failing are tried less often (`status::next_delay`).
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        self.interval_ms
            .store(interval.as_millis() as u64, Ordering::Relaxed);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            self.round(None, None, true).await;
        }
    }

    pub async fn reconcile(&self, table: &str, region: &str) -> Result<Stats, SyncError> {
        self.reconcile_gated(table, region, None).await
    }

    /// `reconcile`, whose row writes wait for `turn` (the parents' level).
    async fn reconcile_gated(
        &self,
        table: &str,
        region: &str,
        turn: Option<Turn<'_>>,
    ) -> Result<Stats, SyncError> {
        let resource = self
            .resources
            .get(table)
            .ok_or_else(|| SyncError::NotAResourceTable(table.to_owned()))?
            .clone();
        // A connection of its own: the round holds a session lock and runs
        // a transaction. The pair's connection of the last round, whose
        // statements are prepared already.
        let lock_key = format!("infrasql.sync.{table}.{region}");
        let mut db = self.db.session_for(&lock_key).await?;
        let lock = db
            .statements()
            .get(&*db, "SELECT pg_try_advisory_lock(hashtext($1))")
            .await?;
        let got: bool = db.query_one(&lock, &[&lock_key]).await?.get(0);
        if !got {
            db.done();
            return Ok(Stats::default()); // another node is on it
        }
        // On an error the connection closes, and the session lock with it.
        let before = status::start(&db, db.statements(), table, region).await?;
        let started = Instant::now();
        // Applies that finish from here on may have created or deleted what
        // this listing missed or still shows: their resources are left to
        // the next round. The database's clock, as their `finished_at`.
        let listing_from = before.began;
        let mut waited = Duration::ZERO;
        // Counted per task: the other tables' listings run at the same time.
        let (result, calls) = infrasql_provider::calls::count_calls(async {
            match read::list(resource.as_ref(), region).await {
                Ok(listed_text) => {
                    let listed = started.elapsed();
                    // Held until the pair has compared and written (`gate`).
                    let mut _share = None;
                    let observed = match turn {
                        Some(turn) => {
                            let t = Instant::now();
                            let (held, share) = turn.wait_holding(listed_text).await;
                            _share = Some(share);
                            waited = t.elapsed();
                            held
                        }
                        None => listed_text.into_props(),
                    };
                    // Where a round's time goes, per pair (bench/sync_100k.sh).
                    tracing::debug!(
                        "sync {table} in {region}: {} listed in {listed:.2?}, waited for parents and budget {waited:.2?}",
                        observed.len()
                    );
                    self.apply_observed(
                        &mut db,
                        resource.as_ref(),
                        table,
                        region,
                        Listing {
                            observed,
                            from: listing_from,
                            known: self.known.take(table, region),
                        },
                        before.first,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        })
        .await;
        // Time spent waiting for the parents' writes is not this pair's.
        let duration = started.elapsed().saturating_sub(waited);
        crate::metrics::sync_round_finished(table, region, result.is_ok(), duration);
        let outcome = status::Outcome {
            result: &result,
            duration,
            calls: calls as i32,
            failures: before.failures,
            interval: Duration::from_millis(self.interval_ms.load(Ordering::Relaxed)),
        };
        // The status row and the lock's release in one statement.
        let unlocked =
            status::finish(&db, db.statements(), table, region, outcome, &lock_key).await;
        // Reused only once the lock is known to be gone; otherwise it
        // closes, and the lock with it.
        if unlocked.is_ok() {
            db.done();
        }
        result
    }
}
