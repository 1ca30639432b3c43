//! `infrasql apply`: run migration files, each in its own transaction, and
//! record each in `infra.migration_file` in that same transaction, so a
//! file's record commits exactly when its changes do.
//!
//! Like flyway's validate, every file is checked against the record before
//! any runs: a recorded file whose content changed stops the run, because
//! running the rest on top of a history that no longer says what happened
//! would hide it. `--allow-changed` accepts the new content as applied
//! without running it (flyway's repair): the file is a record, and running
//! it again would repeat its changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::connect;
use super::progress::Progress;
use super::sql::{base_name, read_sources, server_error, text_rows, SourceFile};
use crate::wire::classify::{classify, StmtKind};

/// Serialises concurrent `infrasql apply` runs: each file's transaction
/// takes it, then reads the record again, so two runners never apply one
/// file twice.
const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('infrasql.migration'))";

/// What happened to each file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub applied: Vec<String>,
    pub skipped: Vec<String>,
    pub accepted: Vec<String>,
}

/// What to do with one file, decided from the record.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Apply,
    /// Recorded with the same content.
    Skip,
    /// Recorded with other content, and `--allow-changed`.
    Accept {
        recorded: String,
    },
}

pub fn checksum(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files' fates, or the error naming every changed file.
fn decide(
    files: &[(String, String)],
    recorded: &HashMap<String, String>,
    allow_changed: bool,
) -> anyhow::Result<Vec<Fate>> {
    let mut changed = Vec::new();
    let fates = files
        .iter()
        .map(|(name, sum)| match recorded.get(name) {
            None => Fate::Apply,
            Some(r) if r == sum => Fate::Skip,
            Some(r) => {
                changed.push(format!(
                    "{name}: applied with sha256 {r}, its content now has sha256 {sum}"
                ));
                Fate::Accept {
                    recorded: r.clone(),
                }
            }
        })
        .collect();
    if !changed.is_empty() && !allow_changed {
        bail!(
            "{} changed after it was applied; nothing was run\n{}\nHINT: put a new change in a new file; \
             --allow-changed records the new content as applied without running it",
            if changed.len() == 1 { "a migration file" } else { "migration files" },
            changed.join("\n")
        );
    }
    Ok(fates)
}

/// Files `apply` cannot run in its one transaction per file.
fn refuse_transaction_control(file: &SourceFile) -> anyhow::Result<()> {
    for stmt in file.statements() {
        let kind = classify(stmt);
        if kind.is_tx_control() && kind != StmtKind::Savepoint {
            bail!(
                "{}:{}: a migration file runs in one transaction that infrasql apply opens and commits; \
                 remove its BEGIN/COMMIT/ROLLBACK",
                file.path.display(),
                file.line_of_statement(stmt)
            );
        }
    }
    Ok(())
}

/// The files `apply` would run, for `plan --pending`: a changed recorded
/// file is an error there as here.
pub async fn unapplied(
    client: &Client,
    sources: Vec<SourceFile>,
) -> anyhow::Result<Vec<SourceFile>> {
    let files: Vec<(String, String)> = sources
        .iter()
        .map(|f| (base_name(&f.path), checksum(&f.text)))
        .collect();
    let fates = decide(&files, &recorded(client).await?, false)?;
    Ok(sources
        .into_iter()
        .zip(fates)
        .filter(|(_, fate)| *fate == Fate::Apply)
        .map(|(f, _)| f)
        .collect())
}

/// Validates every file against the record, then applies the new ones in
/// order. Progress goes to stdout; an error stops the run.
pub async fn run(
    url: Option<&str>,
    paths: &[PathBuf],
    allow_changed: bool,
    allow_mass_delete: bool,
    vars: &BTreeMap<String, String>,
    terminal: bool,
) -> anyhow::Result<Outcome> {
    // The checksum is of the file as written, before its variables.
    let written = read_sources(paths)?;
    let sources = super::stack::fill(written.clone(), vars)?;
    let mut seen = HashSet::new();
    let mut files = Vec::with_capacity(sources.len());
    for (f, w) in sources.iter().zip(&written) {
        refuse_transaction_control(f)?;
        let name = base_name(&f.path);
        if !seen.insert(name.clone()) {
            bail!("two files are named {name}: a migration is recorded by its file name");
        }
        files.push((name, checksum(&w.text)));
    }
    let cfg = connect::config(url, "")?;
    let (client, notices) = connect::connect_with_notices(&cfg).await?;
    let mut out = Progress::new(notices, terminal);
    let recorded = recorded(&client).await?;
    let fates = decide(&files, &recorded, allow_changed)?;

    let mut outcome = Outcome::default();
    for ((file, (name, sum)), fate) in sources.iter().zip(&files).zip(fates) {
        match fate {
            Fate::Skip => {
                out.line(&format!("{name}: already applied, skipped"));
                outcome.skipped.push(name.clone());
            }
            Fate::Accept { recorded } => {
                client
                    .execute(
                        "UPDATE infra.migration_file SET checksum = $2 WHERE name = $1",
                        &[name, sum],
                    )
                    .await
                    .with_context(|| format!("cannot record the new checksum of {name}"))?;
                out.line(&format!(
                    "warning: {name} changed after it was applied (sha256 {recorded}, now {sum}); \
                     not run again, its new checksum recorded (--allow-changed)"
                ));
                outcome.accepted.push(name.clone());
            }
            Fate::Apply => {
                let r = apply_file(&client, &mut out, file, name, sum, allow_mass_delete).await;
                out.finish();
                match r? {
                    Applied::Now(apply) => {
                        let by = apply.map_or_else(
                            || "no cloud changes".to_string(),
                            |id| format!("apply {id}"),
                        );
                        out.line(&format!("{name}: applied ({by})"));
                        outcome.applied.push(name.clone());
                    }
                    Applied::Meanwhile => {
                        out.line(&format!(
                            "{name}: applied meanwhile by another run, skipped"
                        ));
                        outcome.skipped.push(name.clone());
                    }
                }
            }
        }
    }
    out.line(&summary(&outcome));
    Ok(outcome)
}

fn summary(o: &Outcome) -> String {
    if o.applied.is_empty() && o.accepted.is_empty() {
        format!(
            "nothing to apply: {} file{} already applied",
            o.skipped.len(),
            if o.skipped.len() == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "applied {} file{}, {} already applied{}",
            o.applied.len(),
            if o.applied.len() == 1 { "" } else { "s" },
            o.skipped.len(),
            if o.accepted.is_empty() {
                String::new()
            } else {
                format!(", {} changed and accepted", o.accepted.len())
            }
        )
    }
}

async fn recorded(client: &Client) -> anyhow::Result<HashMap<String, String>> {
    let rows = text_rows(client, "SELECT name, checksum FROM infra.migration_file")
        .await
        .context("cannot read infra.migration_file (is the server older than infrasql apply?)")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            Some((r.next()??, r.next()??))
        })
        .collect())
}

enum Applied {
    /// Committed; the apply id when it changed the cloud.
    Now(Option<String>),
    /// Another `infrasql apply` recorded it after this run read the record.
    Meanwhile,
}

/// One file in one transaction: its statements, its record, COMMIT.
async fn apply_file(
    client: &Client,
    out: &mut Progress,
    file: &SourceFile,
    name: &str,
    sum: &str,
    allow_mass_delete: bool,
) -> anyhow::Result<Applied> {
    out.line(&format!("{name}: applying"));
    client.batch_execute("BEGIN").await?;
    if allow_mass_delete {
        client
            .batch_execute("SET LOCAL infra.allow_mass_delete = on")
            .await?;
    }
    let r = run_in_transaction(client, out, file, name, sum).await;
    if !matches!(r, Ok(Some(_))) {
        // Nothing of the file stays, its record included. After a refused
        // COMMIT the server has rolled back already; this is then a no-op.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    match r? {
        Some(()) => {}
        None => return Ok(Applied::Meanwhile),
    }
    let apply = client
        .query_opt(
            "SELECT apply_id FROM infra.migration WHERE name = $1",
            &[&name],
        )
        .await?
        .and_then(|row| row.get::<_, Option<String>>(0));
    Ok(Applied::Now(apply))
}

/// Ok(None): recorded meanwhile, nothing run (the caller rolls back).
async fn run_in_transaction(
    client: &Client,
    out: &mut Progress,
    file: &SourceFile,
    name: &str,
    sum: &str,
) -> anyhow::Result<Option<()>> {
    client.batch_execute(LOCK).await?;
    let again = client
        .query_opt(
            "SELECT checksum FROM infra.migration_file WHERE name = $1",
            &[&name],
        )
        .await?;
    if let Some(row) = again {
        let now: String = row.get(0);
        if now == sum {
            return Ok(None);
        }
        bail!("{name} was recorded meanwhile by another run with sha256 {now}, not {sum}");
    }
    for stmt in file.statements() {
        out.during(client.batch_execute(stmt))
            .await
            .map_err(|e| file.error_at(stmt, &e))?;
    }
    client
        .execute(
            "INSERT INTO infra.migration_file (name, checksum) VALUES ($1, $2)",
            &[&name, &sum],
        )
        .await
        .with_context(|| format!("cannot record {name} in infra.migration_file"))?;
    // The history's source for this COMMIT's apply (transaction-local).
    client
        .execute(
            "SELECT set_config('infra.apply_source', $1, true)",
            &[&format!("migration {name}")],
        )
        .await?;
    out.during(client.batch_execute("COMMIT"))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: COMMIT failed, nothing of the file was applied or recorded\n{}",
                file.path.display(),
                server_error(&e)
            )
        })?;
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn checksum_is_sha256_hex() {
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn recorded_files_are_skipped_and_new_ones_applied() {
        let files = vec![("1.sql".into(), "a".into()), ("2.sql".into(), "b".into())];
        let fates = decide(&files, &rec(&[("1.sql", "a")]), false).unwrap();
        assert_eq!(fates, [Fate::Skip, Fate::Apply]);
    }

    #[test]
    fn a_changed_file_stops_the_run_unless_allowed() {
        let files = vec![("1.sql".into(), "new".into()), ("2.sql".into(), "b".into())];
        let e = decide(&files, &rec(&[("1.sql", "old")]), false).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("1.sql: applied with sha256 old, its content now has sha256 new"),
            "{msg}"
        );
        let fates = decide(&files, &rec(&[("1.sql", "old")]), true).unwrap();
        assert_eq!(
            fates,
            [
                Fate::Accept {
                    recorded: "old".into()
                },
                Fate::Apply
            ]
        );
    }

    #[test]
    fn the_summary_says_when_there_is_nothing_to_apply() {
        let o = Outcome {
            skipped: vec!["1.sql".into(), "2.sql".into()],
            ..Default::default()
        };
        assert_eq!(summary(&o), "nothing to apply: 2 files already applied");
    }
}
