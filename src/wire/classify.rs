//! What a statement means for transaction handling, from its text.
//!
//! The proxy only needs to know whether a statement controls the transaction,
//! may write, or must run outside a transaction block. A first-keyword scan
//! answers that for almost everything; `WITH` needs a real parse (a CTE may
//! hide an INSERT), for which `sqlparser` is used.

use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtKind {
    /// Cannot change data: SELECT, SHOW, SET, FETCH, ...
    Read,
    /// May change data, so the commit hook must see the transaction.
    Write,
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END: the hook runs before it is forwarded.
    Commit,
    /// PREPARE TRANSACTION also ends the transaction's writable life, so the
    /// hook runs before it as before COMMIT.
    PrepareTransaction,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT, RELEASE, ROLLBACK TO.
    Savepoint,
    /// VACUUM, CREATE DATABASE, ...: must never be wrapped in a transaction.
    NoTransactionBlock,
    /// An empty statement (only whitespace/comments).
    Empty,
}

impl StmtKind {
    pub fn is_tx_control(self) -> bool {
        matches!(
            self,
            StmtKind::Begin
                | StmtKind::Commit
                | StmtKind::PrepareTransaction
                | StmtKind::Rollback
                | StmtKind::Savepoint
        )
    }
    pub fn ends_with_hook(self) -> bool {
        matches!(self, StmtKind::Commit | StmtKind::PrepareTransaction)
    }
}

/// Split a simple-protocol query string into statements, respecting quotes,
/// dollar quotes and comments. Each slice excludes the terminating `;`.
/// Empty trailing pieces are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth = 0i32; // parentheses: a ';' inside CREATE RULE (...) is not a separator
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = skip_quoted(b, i, b[i]),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            // `$` inside an identifier (`a$q$`) starts no dollar quote.
            b'$' if i > 0 && is_ident_byte(b[i - 1]) => i += 1,
            b'$' => i = skip_dollar(b, i),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth -= 1;
                i += 1;
            }
            b';' if depth <= 0 => {
                out.push(&sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push(&sql[start..]);
    // Keep interior empties (PostgreSQL answers them), drop a trailing
    // blank one. A trailing comment stays: an unterminated one is an error
    // PostgreSQL reports.
    while out.len() > 1 && out[out.len() - 1].trim().is_empty() {
        out.pop();
    }
    out
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn skip_quoted(b: &[u8], mut i: usize, q: u8) -> usize {
    // E'' strings use backslash escapes; plain '' strings double the quote.
    // Only a lone `E` makes one: in `ESCAPE'\'` the `E` ends a keyword.
    let backslash = q == b'\''
        && i > 0
        && matches!(b[i - 1], b'e' | b'E')
        && (i < 2 || !is_ident_byte(b[i - 2]));
    i += 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

fn skip_dollar(b: &[u8], i: usize) -> usize {
    // $tag$ ... $tag$ where tag is empty or an identifier; `$1` is a parameter.
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    if j >= b.len() || b[j] != b'$' || (j > i + 1 && b[i + 1].is_ascii_digit()) {
        return i + 1;
    }
    let tag = &b[i..=j];
    let mut k = j + 1;
    while k + tag.len() <= b.len() {
        if &b[k..k + tag.len()] == tag {
            return k + tag.len();
        }
        k += 1;
    }
    b.len()
}

/// The first `n` words of a statement, lowercased, skipping comments and
/// opening parentheses.
pub fn first_words(sql: &str, n: usize) -> Vec<String> {
    let b = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() && words.len() < n {
        let c = b[i];
        if c.is_ascii_whitespace() || c == b'(' {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            words.push(sql[s..i].to_ascii_lowercase());
        } else {
            break;
        }
    }
    words
}

/// Classify one statement.
pub fn classify(sql: &str) -> StmtKind {
    let w = first_words(sql, 4);
    let word = |k: usize| w.get(k).map(String::as_str).unwrap_or("");
    match word(0) {
        "" => StmtKind::Empty,
        "select" | "show" | "values" | "table" | "fetch" | "move" | "close" | "listen"
        | "unlisten" | "notify" | "set" | "reset" | "discard" | "deallocate" | "declare"
        | "load" | "checkpoint" => StmtKind::Read,
        "explain" => {
            if w.iter().any(|x| x == "analyze" || x == "analyse") {
                StmtKind::Write
            } else {
                StmtKind::Read
            }
        }
        "prepare" if word(1) == "transaction" => StmtKind::PrepareTransaction,
        "prepare" => StmtKind::Read,
        "begin" | "start" => StmtKind::Begin,
        "commit" | "end" if word(1) == "prepared" => StmtKind::NoTransactionBlock,
        // Only PostgreSQL's exact grammar ends a transaction: anything else
        // (`COMMIT TRANSACTON`) is a syntax error the backend must report
        // before infrasql applies anything.
        "commit" | "end" if is_commit(sql) => StmtKind::Commit,
        "commit" | "end" => StmtKind::Read,
        "rollback" if word(1) == "prepared" => StmtKind::NoTransactionBlock,
        "rollback" | "abort" if word(1) == "to" => StmtKind::Savepoint,
        "rollback" | "abort" if word(1) == "transaction" || word(1) == "work" => {
            if word(2) == "to" {
                StmtKind::Savepoint
            } else {
                StmtKind::Rollback
            }
        }
        "rollback" | "abort" => StmtKind::Rollback,
        "savepoint" | "release" => StmtKind::Savepoint,
        "vacuum" | "cluster" => StmtKind::NoTransactionBlock,
        "alter" if word(1) == "system" => StmtKind::NoTransactionBlock,
        "create" | "drop" | "alter"
            if matches!(word(1), "database" | "tablespace" | "subscription") =>
        {
            StmtKind::NoTransactionBlock
        }
        "create" | "drop" | "reindex" if w.iter().any(|x| x == "concurrently") => {
            StmtKind::NoTransactionBlock
        }
        "create" if word(1) == "unique" && word(3) == "concurrently" => {
            StmtKind::NoTransactionBlock
        }
        "reindex" if matches!(word(1), "system" | "database") => StmtKind::NoTransactionBlock,
        "copy" => {
            if copy_is_from(sql) {
                StmtKind::Write
            } else {
                StmtKind::Read
            }
        }
        "with" => with_kind(sql),
        _ => StmtKind::Write,
    }
}

/// `SET [SESSION | LOCAL] infra.x {= | TO} value` or `RESET infra.x`: the
/// setting's name and the value as PostgreSQL would store it (`None` for
/// RESET and DEFAULT). Only `infra.*` names are looked at; everything else
/// is PostgreSQL's to check.
pub fn infra_setting(sql: &str) -> Option<(String, Option<String>)> {
    let w = first_words(sql, 3);
    let verb = w.first()?.as_str();
    if verb != "set" && verb != "reset" {
        return None;
    }
    // The name follows the verb and an optional SESSION/LOCAL.
    let lower = sql.to_ascii_lowercase();
    let mut at = lower.find(verb)? + verb.len();
    let rest = lower[at..].trim_start();
    for scope in ["session ", "local "] {
        if rest.starts_with(scope) && !rest.starts_with("session authorization") {
            at += lower[at..].find(scope)? + scope.len();
        }
    }
    let tail = sql[at..].trim_start();
    let name_len = tail
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(tail.len());
    let name = &tail[..name_len];
    if !name.to_ascii_lowercase().starts_with("infra.") {
        return None;
    }
    if verb == "reset" {
        return Some((name.to_ascii_lowercase(), None));
    }
    let mut v = tail[name_len..].trim();
    if let Some(r) = v.strip_prefix('=') {
        v = r.trim_start();
    } else if v.len() > 2
        && v[..2].eq_ignore_ascii_case("to")
        && !v.as_bytes()[2].is_ascii_alphanumeric()
    {
        v = v[2..].trim_start();
    } else {
        // Not a form we know: keep it as the value, which will not parse.
        return Some((name.to_ascii_lowercase(), Some(v.to_owned())));
    }
    let value = if v.eq_ignore_ascii_case("default") {
        None
    } else if let Some(q) = v.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) {
        Some(q.replace("''", "'"))
    } else if let Some(q) = v.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        Some(q.replace("\"\"", "\""))
    } else {
        // A bare word or number is folded to lower case, as PostgreSQL does.
        Some(v.to_ascii_lowercase())
    };
    Some((name.to_ascii_lowercase(), value))
}

/// `{COMMIT | END} [WORK | TRANSACTION] [AND [NO] CHAIN]`, with comments,
/// whitespace and trailing semicolons allowed, and nothing else.
fn is_commit(sql: &str) -> bool {
    // Comments first: `COMMIT; -- done` is a COMMIT.
    let bare = strip_comments(sql);
    let body = bare.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let words = first_words(body, 8);
    // first_words stops at the first character that is not part of a word:
    // the statement is only words if they account for all of it.
    let letters: usize = words.iter().map(String::len).sum();
    let significant = body.chars().filter(|c| !c.is_whitespace()).count();
    if letters != significant {
        return false;
    }
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let rest = match w.as_slice() {
        ["commit" | "end", "work" | "transaction", rest @ ..] => rest,
        ["commit" | "end", rest @ ..] => rest,
        _ => return false,
    };
    matches!(rest, [] | ["and", "chain"] | ["and", "no", "chain"])
}

/// `COMMIT AND CHAIN` (a statement [`classify`] calls a COMMIT).
pub fn chains(sql: &str) -> bool {
    let words = first_words(&strip_comments(sql), 8);
    words.iter().any(|w| w == "chain") && !words.iter().any(|w| w == "no")
}

/// PostgreSQL's answer to `COMMIT AND CHAIN` outside a transaction block.
pub const CHAIN_OUTSIDE_BLOCK: &str = "COMMIT AND CHAIN can only be used in transaction blocks";

/// The statement without its comments (quotes are not expected here: only
/// words may remain).
fn strip_comments(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            out.push(' ');
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
            // A comment separates words, as in PostgreSQL.
            out.push(' ');
        } else {
            let c = sql[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `COPY x FROM STDIN` (or a file): the backend enters copy-in mode, in
/// which it ignores Sync.
pub fn is_copy_from(sql: &str) -> bool {
    first_words(sql, 1).first().is_some_and(|w| w == "copy") && copy_is_from(sql)
}

/// `COPY x TO ...` reads; `COPY x FROM ...` writes. A `COPY (query) TO`
/// reads. Scan top-level words for FROM before TO.
fn copy_is_from(sql: &str) -> bool {
    for w in top_level_words(sql) {
        match w.as_str() {
            "from" => return true,
            "to" => return false,
            _ => {}
        }
    }
    true
}

fn top_level_words(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = skip_quoted(b, i, b[i]),
            // `$` inside an identifier (`a$q$`) starts no dollar quote.
            b'$' if i > 0 && is_ident_byte(b[i - 1]) => i += 1,
            b'$' => i = skip_dollar(b, i),
            b'(' => {
                depth += 1;
                i += 1
            }
            b')' => {
                depth -= 1;
                i += 1
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if depth == 0 {
                    out.push(sql[s..i].to_ascii_lowercase());
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// A WITH query writes when any CTE or the main body is INSERT/UPDATE/DELETE/MERGE.
/// If sqlparser cannot parse it, assume it writes: the hook then sees the
/// transaction, which is always safe.
fn with_kind(sql: &str) -> StmtKind {
    let Ok(stmts) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return StmtKind::Write;
    };
    let [Statement::Query(q)] = stmts.as_slice() else {
        return StmtKind::Write;
    };
    let body_writes = |e: &SetExpr| {
        matches!(
            e,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
        )
    };
    let ctes_write = q
        .with
        .as_ref()
        .map(|w| w.cte_tables.iter().any(|c| body_writes(&c.query.body)))
        .unwrap_or(false);
    if ctes_write || body_writes(&q.body) || !q.locks.is_empty() {
        StmtKind::Write
    } else {
        StmtKind::Read
    }
}

#[cfg(test)]
mod tests {
    use super::StmtKind::*;
    use super::*;

    #[test]
    fn transaction_control_is_recognised_in_any_case_and_after_comments() {
        assert_eq!(classify("BEGIN"), Begin);
        assert_eq!(
            classify("  start transaction isolation level serializable"),
            Begin
        );
        assert_eq!(classify("-- hi\ncommit"), Commit);
        assert_eq!(classify("/* a /* nested */ */ END"), Commit);
        assert_eq!(classify("commit and chain"), Commit);
        assert_eq!(classify("Rollback"), Rollback);
        assert_eq!(classify("abort"), Rollback);
        assert_eq!(classify("ROLLBACK TO SAVEPOINT a"), Savepoint);
        assert_eq!(classify("rollback transaction to a"), Savepoint);
        assert_eq!(classify("rollback work"), Rollback);
        assert_eq!(classify("savepoint a"), Savepoint);
        assert_eq!(classify("release a"), Savepoint);
        assert_eq!(classify("PREPARE TRANSACTION 'x'"), PrepareTransaction);
        assert_eq!(classify("commit prepared 'x'"), NoTransactionBlock);
        assert_eq!(classify("rollback prepared 'x'"), NoTransactionBlock);
    }

    #[test]
    fn reads_writes_and_unwrappable_statements_are_told_apart() {
        assert_eq!(classify("select 1"), Read);
        assert_eq!(classify("(select 1)"), Read);
        assert_eq!(classify("insert into t values (1)"), Write);
        assert_eq!(classify("update t set a = 1"), Write);
        assert_eq!(classify("create table t (a int)"), Write);
        assert_eq!(classify("copy t from stdin"), Write);
        assert_eq!(classify("copy t to stdout"), Read);
        assert_eq!(classify("copy (select 1 from x) to stdout"), Read);
        assert_eq!(classify("explain select 1"), Read);
        assert_eq!(classify("explain analyze delete from t"), Write);
        assert_eq!(classify("vacuum"), NoTransactionBlock);
        assert_eq!(classify("create database x"), NoTransactionBlock);
        assert_eq!(
            classify("create index concurrently i on t(a)"),
            NoTransactionBlock
        );
        assert_eq!(
            classify("create unique index concurrently i on t(a)"),
            NoTransactionBlock
        );
        assert_eq!(classify("alter system set x = 1"), NoTransactionBlock);
        assert_eq!(classify(""), Empty);
        assert_eq!(classify("  -- only a comment"), Empty);
        assert_eq!(classify("frobnicate"), Write);
    }

    #[test]
    fn with_queries_write_only_when_a_part_writes() {
        assert_eq!(classify("with a as (select 1) select * from a"), Read);
        assert_eq!(
            classify("with a as (insert into t values (1) returning *) select * from a"),
            Write
        );
        assert_eq!(classify("with a as (select 1) delete from t"), Write);
        assert_eq!(
            classify("with a as (select 1) select * from a for update"),
            Write
        );
        assert_eq!(classify("with garbage ((("), Write);
    }

    #[test]
    fn splitting_respects_quotes_dollar_quotes_and_comments() {
        let s = "insert into t values ('a;b'); select $$x;y$$; select $f$ $$ ; $f$;\
                 select E'it\\'s;'; -- c;\n select \"we;ird\" /* ; */";
        let parts = split_statements(s);
        assert_eq!(parts.len(), 5, "{parts:?}");
        assert_eq!(parts[0], "insert into t values ('a;b')");
        assert_eq!(parts[1].trim(), "select $$x;y$$");
        assert_eq!(parts[2].trim(), "select $f$ $$ ; $f$");
        assert!(parts[4].contains("we;ird"));
        assert_eq!(split_statements("select 1;"), vec!["select 1"]);
        assert_eq!(split_statements("select $1"), vec!["select $1"]);
        assert_eq!(split_statements(""), vec![""]);
        assert_eq!(split_statements("begin;;commit").len(), 3);
    }

    #[test]
    fn infra_settings_are_found_in_every_spelling() {
        let s = |q: &str| infra_setting(q);
        assert_eq!(
            s("SET infra.dry_run = on"),
            Some(("infra.dry_run".into(), Some("on".into())))
        );
        assert_eq!(
            s("set local infra.dry_run to 'T'"),
            Some(("infra.dry_run".into(), Some("T".into())))
        );
        assert_eq!(
            s("SET SESSION infra.Dry_Run = TRUE"),
            Some(("infra.dry_run".into(), Some("true".into())))
        );
        assert_eq!(
            s("set infra.dry_run = default"),
            Some(("infra.dry_run".into(), None))
        );
        assert_eq!(
            s("reset infra.dry_run"),
            Some(("infra.dry_run".into(), None))
        );
        assert_eq!(
            s("set infra.dry_run = 'bo''gus'"),
            Some(("infra.dry_run".into(), Some("bo'gus".into())))
        );
        assert_eq!(
            s("set infra.dry_run = on, off"),
            Some(("infra.dry_run".into(), Some("on, off".into())))
        );
        assert_eq!(s("set search_path = aws"), None);
        assert_eq!(s("select 1"), None);
        assert_eq!(s("reset all"), None);
    }

    #[test]
    fn only_the_exact_commit_grammar_ends_a_transaction() {
        for ok in [
            "commit",
            "COMMIT;",
            "end",
            "commit work",
            "END TRANSACTION",
            "commit and chain",
            "COMMIT AND NO CHAIN;",
            "commit transaction and chain",
            "-- c\ncommit /* x */",
            "COMMIT; -- done",
            "COMMIT\n;\n-- done",
            "END; /* x */",
            "commit/**/work",
        ] {
            assert_eq!(classify(ok), Commit, "{ok}");
        }
        for bad in [
            "COMMIT TRANSACTON",
            "(COMMIT)",
            "commit and",
            "commit chain",
            "commit; select 1",
            "end loop",
            "commit 'x'",
            "commit work work",
        ] {
            assert_ne!(classify(bad), Commit, "{bad}");
        }
    }

    #[test]
    fn escape_keywords_and_dollars_in_identifiers_are_not_quotes() {
        let parts =
            split_statements("SELECT 'x' LIKE 'x\\_%' ESCAPE'\\'; INSERT INTO t VALUES (1)");
        assert_eq!(parts.len(), 2, "{parts:?}");
        let parts = split_statements("SELECT 1 AS a$q$; BEGIN; COMMIT; SELECT 1 AS b$q$");
        assert_eq!(parts.len(), 4, "{parts:?}");
        let parts = split_statements("SELECT E'it\\'s;'; SELECT $q$ ; $q$");
        assert_eq!(parts.len(), 2, "{parts:?}");
    }
}
