//! Resource descriptions → the database, checked against the tables.
//!
//! The providers' descriptions are the one source of column kinds and docs.
//! At start-up they are written to `infra.resource_column` (read by the
//! database's read-only guard) and as COMMENTs on the tables and columns (what
//! `\d+`, JDBC's REMARKS and BI tools show), and compared with the tables that
//! `schema/` created, so a description and its table can never silently
//! disagree. The row triggers are then fitted to them
//! (`infra.fit_row_triggers()`, schema/1040: which tables keep secrets).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use infrasql_provider::{
    Column, ColumnKind, Resource, ResourceSchema, Scope, GLOBAL_REGION, ROW_KEY,
};
use tokio_postgres::Transaction;

use super::apply::Resources;
use super::commit::literal;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("resource table {table} does not match its description: {problem}")]
    Mismatch { table: String, problem: String },
    #[error("cannot record resource descriptions: {0}")]
    Db(#[from] tokio_postgres::Error),
}

pub fn index(list: Vec<Arc<dyn Resource>>) -> Resources {
    list.into_iter()
        .map(|r| (r.schema().qualified(), r))
        .collect::<HashMap<_, _>>()
}

/// One column of a table as the database has it.
struct Actual {
    /// `attidentity`: "a" for GENERATED ALWAYS AS IDENTITY.
    identity: String,
    primary_key: bool,
    unique: bool,
    comment: Option<String>,
}

/// A table's columns and its own comment; empty when the table is missing.
async fn actual(
    tx: &Transaction<'_>,
    table: &str,
) -> Result<(HashMap<String, Actual>, Option<String>), tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT a.attname::text, a.attidentity::text, \
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary \
                       AND i.indnatts = 1 AND i.indkey[0] = a.attnum), \
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique \
                       AND i.indpred IS NULL AND i.indnatts = 1 AND i.indkey[0] = a.attnum), \
               col_description(a.attrelid, a.attnum), obj_description(a.attrelid, 'pg_class') \
             FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table],
        )
        .await?;
    let table_comment = rows.first().and_then(|r| r.get(5));
    let columns = rows
        .iter()
        .map(|r| {
            let a = Actual {
                identity: r.get(1),
                primary_key: r.get(2),
                unique: r.get(3),
                comment: r.get(4),
            };
            (r.get(0), a)
        })
        .collect();
    Ok((columns, table_comment))
}

/// Refuse to start when the table is not the described one: the same
/// columns, `id` the identity primary key, the AWS id unique.
fn check(
    table: &str,
    schema: &ResourceSchema,
    actual: &HashMap<String, Actual>,
) -> Result<(), RegistryError> {
    let mismatch = |problem: String| RegistryError::Mismatch {
        table: table.to_owned(),
        problem,
    };
    if actual.is_empty() {
        return Err(mismatch(
            "the table does not exist (is its schema/*.sql file missing?)".into(),
        ));
    }
    let names: BTreeSet<&str> = actual.keys().map(String::as_str).collect();
    let described: BTreeSet<&str> = schema.table_columns().map(|c| c.name).collect();
    if names != described {
        let missing: Vec<_> = described.difference(&names).collect();
        let extra: Vec<_> = names.difference(&described).collect();
        return Err(mismatch(format!(
            "described but not in the table: {missing:?}; in the table but not described: {extra:?}"
        )));
    }
    if let Some(k) = schema.natural_key.iter().find(|k| !described.contains(*k)) {
        return Err(mismatch(format!(
            "natural key column {k} is not a column of the table"
        )));
    }
    let key = &actual[ROW_KEY.name];
    if key.identity != "a" || !key.primary_key {
        return Err(mismatch(format!(
            "column {} must be the primary key, bigint GENERATED ALWAYS AS IDENTITY (schema/0510_stable_keys.sql)",
            ROW_KEY.name
        )));
    }
    let idc = schema.id_column();
    if !actual[idc].unique {
        return Err(mismatch(format!(
            "the AWS id column {idc} must be UNIQUE: foreign keys follow it"
        )));
    }
    Ok(())
}

/// What each kind means: the docs' legend, and part of the column comments.
const KINDS: [(ColumnKind, &str); 8] = [
    (
        ColumnKind::RowKey,
        "the row's own key: never changes, never sent to AWS",
    ),
    (
        ColumnKind::Stack,
        "the stack that declares the resource; the infrasql:stack tag where the type has tags",
    ),
    (ColumnKind::Identity, "provisional until AWS assigns the id"),
    (
        ColumnKind::Name,
        "the id, chosen by the user: an UPDATE renames in place where AWS allows it",
    ),
    (ColumnKind::Desired, "changed in place"),
    (
        ColumnKind::ReplaceOnChange,
        "a change replaces the resource",
    ),
    (ColumnKind::CloudAssigned, "assigned by AWS, read-only"),
    (ColumnKind::WriteOnly, "used for the call, never stored"),
];

/// A column's COMMENT: its doc, and what a user may do with it where the
/// doc does not say so already (the identity and row-key docs do).
fn column_comment(c: &Column) -> String {
    match c.kind {
        ColumnKind::CloudAssigned | ColumnKind::ReplaceOnChange | ColumnKind::WriteOnly => {
            let meaning = KINDS.iter().find(|(k, _)| *k == c.kind).map_or("", |k| k.1);
            format!("{} ({meaning})", c.doc)
        }
        _ => c.doc.to_owned(),
    }
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// COMMENT statements for what differs from the description. Only those:
/// COMMENT takes a lock on the table, and a start-up should not queue
/// behind a user's long transaction for comments that are already right.
fn comments(
    schema: &ResourceSchema,
    actual: &HashMap<String, Actual>,
    table_comment: Option<&str>,
) -> Vec<String> {
    let table = format!("{}.{}", ident(schema.schema), ident(schema.table));
    let mut out = Vec::new();
    if table_comment != Some(schema.doc) {
        out.push(format!(
            "COMMENT ON TABLE {table} IS {}",
            literal(schema.doc)
        ));
    }
    for c in schema.table_columns() {
        let text = column_comment(c);
        if actual.get(c.name).and_then(|a| a.comment.as_deref()) != Some(text.as_str()) {
            out.push(format!(
                "COMMENT ON COLUMN {table}.{} IS {}",
                ident(c.name),
                literal(&text)
            ));
        }
    }
    out
}

pub async fn install(
    client: &mut tokio_postgres::Client,
    resources: &Resources,
    default_region: &str,
) -> Result<(), RegistryError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "DELETE FROM infra.resource_column; DELETE FROM infra.resource_type; \
         DELETE FROM infra.resource_set",
    )
    .await?;
    let mut tables: Vec<&String> = resources.keys().collect();
    tables.sort();
    let mut statements = Vec::new();
    for table in tables {
        let schema = resources[table].schema();
        let (columns, table_comment) = actual(&tx, table).await?;
        check(table, schema, &columns)?;
        for (_, set) in schema.member_sets() {
            let join = format!("{}.{}", schema.schema, set.table);
            let (cols, _) = actual(&tx, &join).await?;
            if !cols.contains_key(set.owner) || !cols.contains_key(set.member) {
                return Err(RegistryError::Mismatch {
                    table: join,
                    problem: format!(
                        "the join table of {table} needs columns {} and {} (is its schema/*.sql file missing?)",
                        set.owner, set.member
                    ),
                });
            }
        }
        // What infra.revert reads besides the columns: whether a deleted
        // resource loses data, and where its sets live.
        tx.execute(
            "INSERT INTO infra.resource_type (table_name, display, holds_data) VALUES ($1, $2, $3)",
            &[table, &schema.display, &schema.stateful],
        )
        .await?;
        for (c, set) in schema.member_sets() {
            tx.execute(
                "INSERT INTO infra.resource_set (table_name, column_name, join_table, owner_column, \
                 member_column, references_table) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    table,
                    &c.name,
                    &format!("{}.{}", schema.schema, set.table),
                    &set.owner,
                    &set.member,
                    &format!("{}.{}", schema.schema, c.references.unwrap_or_default()),
                ],
            )
            .await?;
        }
        for c in schema.table_columns() {
            // 1-based place in the natural key (schema/0750), NULL outside it.
            let key_place = schema
                .natural_key
                .iter()
                .position(|k| *k == c.name)
                .map(|i| i as i32 + 1);
            tx.execute(
                "INSERT INTO infra.resource_column (table_name, column_name, kind, references_table, doc, natural_key) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    table,
                    &c.name,
                    &c.kind.as_str(),
                    &c.references.map(|t| format!("{}.{t}", schema.schema)),
                    &c.doc,
                    &key_place,
                ],
            )
            .await?;
        }
        statements.extend(comments(schema, &columns, table_comment.as_deref()));
    }
    if !statements.is_empty() {
        tx.batch_execute(&statements.join(";\n")).await?;
    }
    tx.execute(
        "INSERT INTO infra.setting (key, value) VALUES ('default_region', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&default_region],
    )
    .await?;
    // The row triggers' conditions follow the descriptions just written
    // (which tables have write-only columns): schema/1040.
    tx.query_one("SELECT infra.fit_row_triggers()", &[]).await?;
    tx.commit().await?;
    Ok(())
}

/// Markdown reference of every resource table, generated from the descriptions.
pub fn docs(resources: &Resources) -> String {
    let legend: Vec<String> = KINDS
        .iter()
        .map(|(k, meaning)| format!("**{}** ({meaning})", k.as_str()))
        .collect();
    let mut out = format!(
        "# Resource tables\n\nGenerated by `infrasql docs` from the providers' descriptions; do not edit.\n\n\
         Column kinds: {}.\n\n\
         Every table's primary key is `{}`, a key that never changes (ORMs key on it). The AWS id \
         column is `UNIQUE`: foreign keys reference it `ON UPDATE CASCADE`, so joins use the ids \
         the console shows, and they follow when the provisional id becomes the real one at COMMIT.\n",
        legend.join(", "),
        ROW_KEY.name
    );
    let mut tables: Vec<&String> = resources.keys().collect();
    tables.sort();
    for t in tables {
        let s = resources[t].schema();
        let key: Vec<String> = s.natural_key.iter().map(|k| format!("`{k}`")).collect();
        let scope = match s.scope {
            Scope::Global => format!(
                "**Global:** the type lives in the account, not in a region; `region` is always \
                 `{GLOBAL_REGION}`, and sync lists it once per round.\n\n"
            ),
            Scope::Regional => String::new(),
        };
        out.push_str(&format!("\n## {t}\n\n{}\n\n{scope}{}\n\nNatural key (what names it within a stack): {}.\n\n| column | kind | references | description |\n| --- | --- | --- | --- |\n", s.doc, s.replace_doc(), key.join(", ")));
        for c in s.table_columns() {
            let r = c
                .references
                .map(|r| format!("{}.{r}", s.schema))
                .unwrap_or_default();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                c.name,
                c.kind.as_str(),
                r,
                c.doc
            ));
        }
        for (c, set) in s.member_sets() {
            let r = c.references.unwrap_or_default();
            out.push_str(&format!(
                "\nSets of references (join tables, one row per member; \
                 `INSERT`/`DELETE` a row to change the set in place):\n\n\
                 - `{0}.{1}` (`{2}` → {0}.{3}, `{4}` → {0}.{r}): {5}\n",
                s.schema, set.table, set.owner, s.table, set.member, c.doc
            ));
        }
    }
    out
}
