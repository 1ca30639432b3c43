//! What a round reads: the cloud (the provider's listing, every page) and
//! the database (the region's rows, policies, the applies in flight, the
//! parents of what appeared, the open drift), in the round's transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::TryStreamExt;

use infrasql_provider::{Listed, Props, Resource, ResourceSchema};
use serde_json::Value;
use tokio_postgres::Transaction;

use super::diff::{observed_columns, Current, Diff, DriftKind, RowWrite};
use super::known::{listed_at, ListedHashes};
use super::policy::PolicyRow;
use super::row::RowText;
use super::{ident, SyncError};
use crate::engine::apply::Resources;
use crate::engine::plan::Action;
use crate::store::engine_db::Statements;

/// Every resource of the type in the region, as the cloud reports it.
pub(super) async fn list(resource: &dyn Resource, region: &str) -> Result<Listed, SyncError> {
    Ok(resource.list(region).await?)
}

/// The database's side of the round, for `diff`.
pub(super) async fn current(
    tx: &Transaction<'_>,
    st: &Statements,
    resources: &Resources,
    schema: &'static ResourceSchema,
    table: &str,
    region: &str,
    listing: &super::Listing,
) -> Result<Current, SyncError> {
    let known = listing.known.as_ref();
    let observed = &listing.observed;
    let idc = ident(schema.id_column());
    // Rows are kept as the text the server sent, parsed one at a time
    // while compared (`RowText`, issue #15, peak RSS).
    let mut rows: BTreeMap<String, RowText> = BTreeMap::new();
    let mut unchanged = HashSet::new();
    let mut versions = HashMap::new();
    let hashes = ListedHashes::new(observed.len());
    let all: HashSet<String> = if !read_unlocked(schema) {
        // A set's join rows change under their owner's lock (a change to a
        // set locks its owner first): the owners are locked as they are
        // read, so the sets `members` compares hold still. Rows an open
        // transaction holds are skipped, never waited for.
        let sql = format!(
            "SELECT {idc}, to_jsonb(t)::text FROM {table} t WHERE region = $1 FOR UPDATE SKIP LOCKED"
        );
        read_rows(tx, st, &sql, &[&region], &mut rows).await?;
        strings(
            tx,
            st,
            &format!("SELECT {idc} FROM {table} WHERE region = $1"),
            &[&region],
        )
        .await?
    } else {
        // Read without a lock: locking every row dirties every page of the
        // table and writes WAL for each row, in a round that writes nothing
        // (issue #15, PostgreSQL CPU per steady round). The rows a round
        // will write are locked and read again before it writes
        // (`relock`).
        let mut all = HashSet::new();
        let mut fetch: Vec<String> = Vec::new();
        let cols = observed_columns(schema, observed);
        let at = listed_at(schema.id_column(), observed);
        let sql = format!("SELECT {idc}, xmin::text || ctid::text FROM {table} WHERE region = $1");
        let stream = tx.query_raw(&st.get(tx, &sql).await?, [&region]).await?;
        futures_util::pin_mut!(stream);
        while let Some(r) = stream.try_next().await? {
            let (id, version): (String, &str) = (r.get(0), r.get(1));
            // Kept by the last round, and neither side changed since: not
            // read again (`known`).
            let same = known.is_some_and(|k| {
                at.get(id.as_str())
                    .is_some_and(|&i| k.same(&cols, &id, version, || hashes.of(i, &observed[i])))
            });
            if same {
                versions.insert(id.clone(), version.into());
                unchanged.insert(id.clone());
            } else {
                fetch.push(id.clone());
            }
            all.insert(id);
        }
        // Most rows to read (the first round after a start): one scan
        // rather than a long list of ids.
        let sql = if fetch.len() * 2 > all.len() {
            format!("SELECT {idc}, xmin::text || ctid::text, to_jsonb(t)::text FROM {table} t WHERE region = $1")
        } else {
            format!("SELECT {idc}, xmin::text || ctid::text, to_jsonb(t)::text FROM {table} t WHERE {idc} = ANY($1)")
        };
        if !fetch.is_empty() {
            let stream = if fetch.len() * 2 > all.len() {
                tx.query_raw(
                    &st.get(tx, &sql).await?,
                    [&region as &(dyn tokio_postgres::types::ToSql + Sync)],
                )
                .await?
            } else {
                tx.query_raw(
                    &st.get(tx, &sql).await?,
                    [&fetch as &(dyn tokio_postgres::types::ToSql + Sync)],
                )
                .await?
            };
            futures_util::pin_mut!(stream);
            while let Some(r) = stream.try_next().await? {
                let id: String = r.get(0);
                // Kept, or new since the ids were read (the next round's).
                if unchanged.contains(&id) || !all.contains(&id) {
                    continue;
                }
                versions.insert(id.clone(), r.get::<_, &str>(1).into());
                rows.insert(id, RowText::new(r.get::<_, &str>(2)));
            }
        }
        all
    };
    let locked = rows;
    let mut policies: Vec<PolicyRow> = Vec::new();
    let sql =
        "SELECT stack, tag_key, tag_value, policy FROM infra.drift_policy WHERE table_name = $1";
    for r in tx.query(&st.get(tx, sql).await?, &[&table]).await? {
        policies.push(PolicyRow {
            stack: r.get(0),
            tag_key: r.get(1),
            tag_value: r.get(2),
            policy: r.get::<_, &str>(3).parse()?,
        });
    }
    let in_flight = strings(
        tx,
        st,
        "SELECT apply_id FROM infra.apply WHERE infra.unsettled(status, xid)",
        &[],
    )
    .await?;
    let sql =
        "SELECT EXISTS (SELECT 1 FROM infra.apply_action a JOIN infra.apply p USING (apply_id) \
               WHERE a.table_name = $1 AND infra.unsettled(p.status, p.xid))";
    let table_busy: bool = tx
        .query_one(&st.get(tx, sql).await?, &[&table])
        .await?
        .get(0);
    // Unsettled, or settled after the listing began: an apply that ends
    // between the listing and this read committed rows the listing cannot
    // agree with (a created resource would read as disappeared, and be
    // deleted under Adopt). Those are judged by the next round.
    let unsettled_ids = strings(
        tx,
        st,
        "SELECT a.resource_id FROM infra.apply_action a JOIN infra.apply p USING (apply_id) \
         WHERE a.table_name = $1 AND a.resource_id IS NOT NULL \
           AND (infra.unsettled(p.status, p.xid) OR p.finished_at >= $2)",
        &[&table, &listing.from],
    )
    .await?;
    let appeared: Vec<&Props> = observed
        .iter()
        .filter(|p| {
            p.get(schema.id_column())
                .and_then(Value::as_str)
                .is_some_and(|id| !all.contains(id))
        })
        .collect();
    let parents = parents(tx, st, resources, schema, observed, &appeared).await?;
    let mut open_drift: HashMap<_, Vec<Option<Value>>> = HashMap::new();
    let sql = "SELECT resource_id, kind, field, actual_value FROM infra.drift \
               WHERE resolution = 'open' AND table_name = $1";
    for r in tx.query(&st.get(tx, sql).await?, &[&table]).await? {
        let kind = match r.get::<_, &str>(1) {
            "changed" => DriftKind::Changed,
            "appeared" => DriftKind::Appeared,
            _ => DriftKind::Disappeared,
        };
        open_drift
            .entry((r.get(0), kind, r.get(2)))
            .or_default()
            .push(r.get(3));
    }
    Ok(Current {
        locked,
        unchanged,
        versions,
        all,
        policies,
        in_flight,
        table_busy,
        unsettled_ids,
        parents,
        open_drift,
        hashes,
    })
}

/// Whether `current` read the rows without a lock, so that the rows a
/// round writes must be locked and read again first (`relock`).
pub(super) fn read_unlocked(schema: &ResourceSchema) -> bool {
    schema.member_sets().next().is_none()
}

/// The rows a decision touches: those it updates or deletes, and those it
/// records drift or reverts for. Inserted resources are not rows yet.
pub(super) fn to_lock(d: &Diff) -> Vec<String> {
    let mut ids: HashSet<&str> = HashSet::new();
    for w in &d.writes {
        if let RowWrite::Update { id, .. } | RowWrite::Delete { id } = w {
            ids.insert(id);
        }
    }
    for r in &d.drift {
        if r.kind != DriftKind::Appeared {
            ids.insert(&r.id);
        }
    }
    for r in &d.reverts {
        if r.action != Action::Delete {
            ids.insert(&r.id);
        }
    }
    let mut ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
    ids.sort();
    ids
}

/// Lock the rows `ids` (skipping those an open transaction holds) and read
/// them again: what `current` read without a lock may have changed since.
/// Rows not locked stay in `all` only, so the next decision skips them as
/// held.
pub(super) async fn relock(
    tx: &Transaction<'_>,
    st: &Statements,
    schema: &ResourceSchema,
    table: &str,
    ids: &[String],
    current: &mut Current,
) -> Result<(), SyncError> {
    let idc = ident(schema.id_column());
    let sql = format!(
        "SELECT {idc}, to_jsonb(t)::text FROM {table} t WHERE {idc} = ANY($1) FOR UPDATE SKIP LOCKED"
    );
    for id in ids {
        current.locked.remove(id);
        // Its version is read again; not known to be kept.
        current.versions.remove(id);
    }
    read_rows(tx, st, &sql, &[&ids], &mut current.locked).await
}

/// `SELECT id, to_jsonb(t)::text` rows into `into`, kept as text.
async fn read_rows(
    tx: &Transaction<'_>,
    st: &Statements,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    into: &mut BTreeMap<String, RowText>,
) -> Result<(), SyncError> {
    let stream = tx
        .query_raw(&st.get(tx, sql).await?, params.iter().copied())
        .await?;
    futures_util::pin_mut!(stream);
    while let Some(r) = stream.try_next().await? {
        into.insert(r.get::<_, String>(0), RowText::new(r.get::<_, &str>(1)));
    }
    Ok(())
}

/// For each reference column the listing reports whose parent type is
/// managed: which parents the `appeared` resources name are rows (any
/// region, as the foreign key sees them).
async fn parents(
    tx: &Transaction<'_>,
    st: &Statements,
    resources: &Resources,
    schema: &ResourceSchema,
    observed: &[Props],
    appeared: &[&Props],
) -> Result<Vec<(&'static str, HashSet<String>)>, SyncError> {
    let mut out = Vec::new();
    if appeared.is_empty() {
        return Ok(out);
    }
    let cols = observed_columns(schema, observed);
    for c in schema.references().filter(|c| cols.contains(&c.name)) {
        let parent = format!("{}.{}", schema.schema, c.references.unwrap_or_default());
        let Some(p) = resources.get(&parent) else {
            continue;
        };
        let named: Vec<String> = appeared
            .iter()
            .filter_map(|r| r.get(c.name).and_then(Value::as_str).map(str::to_owned))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows = if named.is_empty() {
            HashSet::new()
        } else {
            let pid = ident(p.schema().id_column());
            strings(
                tx,
                st,
                &format!("SELECT {pid} FROM {parent} WHERE {pid} = ANY($1)"),
                &[&named],
            )
            .await?
        };
        out.push((c.name, rows));
    }
    Ok(out)
}

/// The first column of every row, as text.
async fn strings(
    tx: &Transaction<'_>,
    st: &Statements,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<HashSet<String>, SyncError> {
    Ok(tx
        .query(&st.get(tx, sql).await?, params)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What the database holds of one set, for `members::diff`.
pub(super) struct Members {
    pub rows: HashMap<String, std::collections::BTreeSet<String>>,
    pub members: HashSet<String>,
    pub open: HashSet<(String, DriftKind)>,
}

/// The join rows of `owners` (rows this round holds: a change to a set
/// locks its owner first, so these are stable), which of the `listed`
/// members are rows (the foreign key), and the join table's open drift.
pub(super) async fn members(
    tx: &Transaction<'_>,
    join_table: &str,
    set: infrasql_provider::MemberSet,
    member_table: &str,
    member_id: &str,
    owners: &[String],
    listed: &[String],
) -> Result<Members, SyncError> {
    let mut rows: HashMap<String, std::collections::BTreeSet<String>> = HashMap::new();
    for r in tx
        .query(
            &format!(
                "SELECT {0}, {1} FROM {join_table} WHERE {0} = ANY($1)",
                ident(set.owner),
                ident(set.member)
            ),
            &[&owners],
        )
        .await?
    {
        rows.entry(r.get(0)).or_default().insert(r.get(1));
    }
    // Not kept prepared: a member table's text differs per set, and only
    // types with sets send it.
    let members = tx
        .query(
            &format!(
                "SELECT {0} FROM {member_table} WHERE {0} = ANY($1)",
                ident(member_id)
            ),
            &[&listed],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut open = HashSet::new();
    for r in tx
        .query(
            "SELECT resource_id, kind FROM infra.drift WHERE resolution = 'open' AND table_name = $1",
            &[&join_table],
        )
        .await?
    {
        let kind = match r.get::<_, &str>(1) {
            "appeared" => DriftKind::Appeared,
            "disappeared" => DriftKind::Disappeared,
            _ => continue,
        };
        open.insert((r.get(0), kind));
    }
    Ok(Members {
        rows,
        members,
        open,
    })
}
