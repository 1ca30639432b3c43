//! SQL files as `plan` and `apply` run them: which files (a DIR's `*.sql`
//! in name order), their statements, and a failure located at the file
//! and line a user can open.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::wire::classify::{classify, split_statements, StmtKind};

/// A statement of a file failed: the file, the line it starts on (or the
/// line of the error's position) and the server's message.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct StatementError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// One SQL file, read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// The statements to send, without the empty pieces a `;;` or a
    /// trailing comment leaves.
    pub fn statements(&self) -> impl Iterator<Item = &str> {
        split_statements(&self.text)
            .into_iter()
            .filter(|s| classify(s) != StmtKind::Empty)
    }

    /// The failure of `stmt` (a slice of this file's text) as the user
    /// should see it: at the error's position when the server gives one,
    /// else at the statement's first word.
    pub fn error_at(&self, stmt: &str, e: &tokio_postgres::Error) -> StatementError {
        let offset = stmt.as_ptr() as usize - self.text.as_ptr() as usize;
        let at = match e.as_db_error().and_then(|db| db.position()) {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                offset + char_offset(stmt, *p as usize)
            }
            _ => offset + leading_blank(stmt),
        };
        StatementError {
            file: self.path.clone(),
            line: self.line_of(at),
            message: server_error(e),
        }
    }

    /// The 1-based line of a byte offset into the text.
    pub fn line_of(&self, offset: usize) -> usize {
        line_at(&self.text, offset)
    }

    /// The line where `stmt` (a slice of this file's text) starts.
    pub fn line_of_statement(&self, stmt: &str) -> usize {
        let offset = stmt.as_ptr() as usize - self.text.as_ptr() as usize;
        self.line_of(offset + leading_blank(stmt))
    }
}

/// The server's error as psql shows it: SQLSTATE and message, then DETAIL
/// and HINT lines.
pub fn server_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.code().code(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!("\nDETAIL: {d}"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("\nHINT: {h}"));
            }
            m
        }
        None => e.to_string(),
    }
}

/// The SQL files to run, in order: each FILE as given, each DIR's `*.sql`
/// files sorted by name (as numbered migrations are).
pub fn sql_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "sql") && f.is_file())
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Reads every file up front, so a missing file fails before anything runs.
pub fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<SourceFile>> {
    sql_files(paths)?
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(SourceFile { path, text })
        })
        .collect()
}

/// A query's rows as text (simple protocol: no types to declare).
pub async fn text_rows(client: &Client, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    Ok(client
        .simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// The byte offset of PostgreSQL's 1-based character position.
fn char_offset(stmt: &str, position: usize) -> usize {
    stmt.char_indices()
        .nth(position.saturating_sub(1))
        .map_or(stmt.len(), |(i, _)| i)
}

/// Bytes of whitespace and comments before the statement's first word,
/// so the line reported is the statement's, not the comment's above it.
fn leading_blank(stmt: &str) -> usize {
    let mut rest = stmt;
    loop {
        let trimmed = rest.trim_start();
        if let Some(c) = trimmed.strip_prefix("--") {
            rest = c.find('\n').map_or("", |n| &c[n..]);
        } else if let Some(c) = trimmed.strip_prefix("/*") {
            rest = c.find("*/").map_or("", |n| &c[n + 2..]);
        } else {
            return stmt.len() - trimmed.len();
        }
    }
}

fn line_at(sql: &str, offset: usize) -> usize {
    1 + sql.as_bytes()[..offset.min(sql.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// The file's name as recorded and shown: its base name.
pub fn base_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_line_skips_comments_above_it() {
        let f = SourceFile {
            path: "x.sql".into(),
            text: "SELECT 1;\n-- why\n\nINSERT INTO t VALUES (1);".into(),
        };
        let stmts: Vec<&str> = f.statements().collect();
        assert_eq!(f.line_of_statement(stmts[1]), 4);
    }

    #[test]
    fn empty_pieces_are_not_statements() {
        let f = SourceFile {
            path: "x.sql".into(),
            text: "SELECT 1;;\n-- only a comment after\n".into(),
        };
        assert_eq!(f.statements().collect::<Vec<_>>(), ["SELECT 1"]);
    }
}
