//! `--stack NAME`: the files are a stack's whole declaration
//! (`schema/0760_stacks.sql`). They run in one transaction between
//! `infra.stack_begin` and `infra.stack_finish`, so each INSERT names a
//! resource of the stack by its natural key, lookups see only the stack,
//! and what the files no longer declare is pruned.
//!
//! Variables follow psql: `--var env=prod` fills `:'env'` (a literal),
//! `:"env"` (an identifier) and `:env` (raw text); `--var-file` holds
//! `name=value` lines. A variable the files use and nobody set is an error
//! naming it, with the file and line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio_postgres::Client;

use super::sql::SourceFile;
use crate::wire::classify::{classify, interpolate, StmtKind};

/// The flags every stack-aware subcommand takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StackOpts {
    /// Treat the files as the complete declaration of this stack: applying
    /// them again plans nothing, a removed statement is a delete.
    #[arg(long)]
    pub stack: Option<String>,
    /// Take resources that exist outside any stack, matched by natural key,
    /// into the stack (without it they are an error that lists them).
    #[arg(long, requires = "stack")]
    pub adopt: bool,
    /// Never delete what the files no longer declare.
    #[arg(long, requires = "stack")]
    pub no_prune: bool,
    /// A psql variable for the files: NAME=VALUE (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// A file of NAME=VALUE lines (# comments); --var wins over it.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

/// A stack run as the server is asked for it.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub adopt: bool,
    pub prune: bool,
    /// Where the declaration comes from, for `infra.stack` (the agent's
    /// git commit); None keeps what was recorded.
    pub origin: Option<Origin>,
}

/// A declaration's git origin, recorded by `infra.stack_finish`.
#[derive(Debug, Clone)]
pub struct Origin {
    pub revision: String,
    pub author: String,
    pub source: String,
}

impl StackOpts {
    pub fn stack(&self) -> Option<Stack> {
        self.stack.as_ref().map(|name| Stack {
            name: name.clone(),
            adopt: self.adopt,
            prune: !self.no_prune,
            origin: None,
        })
    }

    /// The variables: the files' in order, then `--var`.
    pub fn vars(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut vars = BTreeMap::new();
        for f in &self.var_files {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read variable file {}", f.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (k, v) = pair(line)
                    .with_context(|| format!("{}:{}: expected NAME=VALUE", f.display(), n + 1))?;
                vars.insert(k, v);
            }
        }
        for p in &self.vars {
            let (k, v) = pair(p).with_context(|| format!("--var {p:?}: expected NAME=VALUE"))?;
            vars.insert(k, v);
        }
        Ok(vars)
    }
}

fn pair(s: &str) -> anyhow::Result<(String, String)> {
    let Some((k, v)) = s.split_once('=') else {
        bail!("no '='");
    };
    let k = k.trim();
    let named = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !named {
        bail!("{k:?} is not a variable name (letters, digits and _)");
    }
    Ok((k.to_owned(), v.trim().to_owned()))
}

/// The files with their variables filled in.
pub fn fill(
    sources: Vec<SourceFile>,
    vars: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<SourceFile>> {
    sources
        .into_iter()
        .map(|f| {
            let text = interpolate(&f.text, |n| vars.get(n).map(String::as_str)).map_err(|e| {
                anyhow::anyhow!(
                    "{}:{}: {e}; set it with --var {}=... or --var-file",
                    f.path.display(),
                    f.line_of(e.offset),
                    e.name
                )
            })?;
            Ok(SourceFile { path: f.path, text })
        })
        .collect()
}

/// Inside the caller's open transaction: start the stack run, run every
/// statement with its place recorded (a resource declared twice names
/// both), finish. Returns the server's summary (declared, pruned).
pub async fn declare(
    client: &Client,
    stack: &Stack,
    sources: &[SourceFile],
) -> anyhow::Result<Value> {
    for f in sources {
        for stmt in f.statements() {
            if classify(stmt).is_tx_control() && classify(stmt) != StmtKind::Savepoint {
                bail!(
                    "{}:{}: a stack's files run in one transaction that infrasql opens; remove its BEGIN/COMMIT/ROLLBACK",
                    f.path.display(),
                    f.line_of_statement(stmt)
                );
            }
        }
    }
    client
        .execute(
            "SELECT infra.stack_begin($1, $2)",
            &[&stack.name, &stack.adopt],
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", super::sql::server_error(&e)))?;
    for f in sources {
        for stmt in f.statements() {
            let place = format!("{}:{}", f.path.display(), f.line_of_statement(stmt));
            client
                .execute(
                    "SELECT set_config('infra.stack_statement', $1, true)",
                    &[&place],
                )
                .await?;
            client
                .batch_execute(stmt)
                .await
                .map_err(|e| f.error_at(stmt, &e))?;
        }
    }
    let o = stack.origin.as_ref();
    // The history says which stack, at which git commit, made the apply
    // (infra.apply.source).
    let source = match o {
        Some(o) => format!("stack {}@{}", stack.name, o.revision),
        None => format!("stack {}", stack.name),
    };
    client
        .execute(
            "SELECT set_config('infra.apply_source', $1, true)",
            &[&source],
        )
        .await?;
    if let Some(o) = o {
        // And who wrote it (infra.apply.author), as the setting takes it:
        // one line of at most 200 characters.
        let author: String = o
            .author
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        client
            .execute(
                "SELECT set_config('infra.apply_author', $1, true)",
                &[&author],
            )
            .await?;
    }
    let row = client
        .query_one(
            "SELECT infra.stack_finish($1, $2, $3, $4)",
            &[
                &stack.prune,
                &o.map(|o| &o.revision),
                &o.map(|o| &o.author),
                &o.map(|o| &o.source),
            ],
        )
        .await
        .map_err(|e| anyhow::anyhow!("stack {}: {}", stack.name, super::sql::server_error(&e)))?;
    Ok(row.get(0))
}

/// `infrasql apply --stack`: the files in one transaction as the stack's
/// declaration, then COMMIT with the engine's progress shown. The stack is
/// recorded applied in that same transaction; a failure is recorded
/// (`infra.stack_failed`) on its own, since the transaction is gone.
pub async fn apply(
    url: Option<&str>,
    paths: &[PathBuf],
    stack: &Stack,
    vars: &BTreeMap<String, String>,
    allow_mass_delete: bool,
    terminal: bool,
) -> anyhow::Result<()> {
    let sources = fill(super::sql::read_sources(paths)?, vars)?;
    let cfg = super::connect::config(url, "")?;
    let (client, notices) = super::connect::connect_with_notices(&cfg).await?;
    let mut out = super::progress::Progress::new(notices, terminal);
    out.line(&format!(
        "stack {}: applying {} file(s)",
        stack.name,
        sources.len()
    ));
    let r = apply_in_transaction(&client, &mut out, stack, &sources, allow_mass_delete).await;
    out.finish();
    match r {
        Ok(line) => {
            out.line(&line);
            Ok(())
        }
        Err(e) => {
            // After a refused COMMIT the server has rolled back; then a no-op.
            let _ = client.batch_execute("ROLLBACK").await;
            let why = format!("{e:#}");
            if let Err(rec) = client
                .execute("SELECT infra.stack_failed($1, $2)", &[&stack.name, &why])
                .await
            {
                tracing::warn!("cannot record that stack {} failed: {rec}", stack.name);
            }
            Err(e)
        }
    }
}

async fn apply_in_transaction(
    client: &Client,
    out: &mut super::progress::Progress,
    stack: &Stack,
    sources: &[SourceFile],
    allow_mass_delete: bool,
) -> anyhow::Result<String> {
    client.batch_execute("BEGIN").await?;
    if allow_mass_delete {
        client
            .batch_execute("SET LOCAL infra.allow_mass_delete = on")
            .await?;
    }
    let summary = declare(client, stack, sources).await?;
    let xid: String = client
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await?
        .get(0);
    out.during(client.batch_execute("COMMIT"))
        .await
        .map_err(|e| anyhow::anyhow!("COMMIT failed: {}", super::sql::server_error(&e)))?;
    let apply: Option<String> = client
        .query_opt(
            "SELECT apply_id FROM infra.apply WHERE xid = $1::text::xid8",
            &[&xid],
        )
        .await?
        .map(|r| r.get(0));
    Ok(format!(
        "stack {}: applied ({} declared, {} pruned; {})",
        stack.name,
        summary["declared"],
        summary["pruned"],
        apply.map_or("no cloud changes".into(), |a| format!("apply {a}"))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_files_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("staging.vars");
        std::fs::write(&f, "# staging\nenv=staging\ncidr = 10.1.0.0/16\n").unwrap();
        let opts = StackOpts {
            vars: vec!["env=prod".into()],
            var_files: vec![f],
            ..Default::default()
        };
        let vars = opts.vars().unwrap();
        assert_eq!(vars["env"], "prod");
        assert_eq!(vars["cidr"], "10.1.0.0/16");
        let bad = StackOpts {
            vars: vec!["1x=y".into()],
            ..Default::default()
        };
        assert!(format!("{:#}", bad.vars().unwrap_err()).contains("not a variable name"));
    }

    #[test]
    fn an_unset_variable_names_file_and_line() {
        let src = SourceFile {
            path: "net.sql".into(),
            text: "SELECT 1;\nINSERT INTO aws.vpc (name) VALUES (:'env');\n".into(),
        };
        let e = fill(vec![src], &BTreeMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "net.sql:2: variable \"env\" is not set; set it with --var env=... or --var-file"
        );
    }
}
