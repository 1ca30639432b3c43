//! The sets of references a transaction touches, read in the client's
//! transaction after its own writes, and folded into the owners' changes
//! (`plan::fold_sets`, pure).

use std::collections::{BTreeMap, HashMap};

use infrasql_provider::{Props, ResourceSchema};
use serde_json::Value;

use super::{ident, literal};
use crate::engine::hook::{CommitContext, HookError};
use crate::engine::plan::{self, RowChange, SetNow};

/// `raw` is the transaction's captured changes in order, join tables
/// included; `changes` the resource rows' net changes.
pub(super) async fn fold(
    ctx: &mut dyn CommitContext,
    schemas: &HashMap<String, &'static ResourceSchema>,
    raw: &[(String, Option<Props>, Option<Props>)],
    changes: Vec<RowChange>,
) -> Result<Vec<RowChange>, HookError> {
    let sets = plan::sets_by_join_table(schemas);
    let keys = plan::needed(raw, &changes, &sets);
    if keys.is_empty() {
        return Ok(changes);
    }
    let mut by_table: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (jt, id) in &keys {
        by_table.entry(jt).or_default().push(literal(id));
    }
    let mut current = HashMap::new();
    for (jt, ids) in by_table {
        let s = sets[jt];
        let sql = format!(
            "SELECT k.id, \
               (SELECT coalesce(jsonb_agg(j.{m} ORDER BY j.{m}), '[]'::jsonb)::text FROM {jt} j WHERE j.{o} = k.id), \
               (SELECT to_jsonb(t)::text FROM {owner} t WHERE t.{idc} = k.id) \
             FROM unnest(ARRAY[{ids}]::text[]) AS k(id)",
            m = ident(s.set.member),
            o = ident(s.set.owner),
            owner = s.owner_table(),
            idc = ident(s.owner.id_column()),
            ids = ids.join(", "),
        );
        for r in ctx.query(&sql).await? {
            let parse = |v: &Option<String>| {
                v.as_deref()
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
            };
            let members = match parse(&r[1]) {
                Some(Value::Array(a)) => a
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Default::default(),
            };
            let row = match parse(&r[2]) {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            };
            let id = r[0].clone().unwrap_or_default();
            current.insert((jt.to_owned(), id), SetNow { members, row });
        }
    }
    Ok(plan::fold_sets(changes, raw, &sets, &current))
}
