//! What a statement means for transaction handling, from its text.
//!
//! The proxy only needs to know whether a statement controls the transaction,
//! may write, or must run outside a transaction block. A first-keyword scan
//! answers that for almost everything; `WITH` needs a real parse (a CTE may
//! hide an INSERT), for which `sqlparser` is used.
//!
//! - `lex`: statement splitting and word scans (quotes, comments).
//! - `intercept`: what infrasql must do before a text runs (`infra.sync`,
//!   `infra.plan`, a bad `SET infra.x`), as typed [`Intercepts`].

mod intercept;
mod lex;

pub use intercept::{query_intercepts, statement_intercepts, Intercepts, SyncCall};
use lex::{first_words, top_level_words, words};
pub use lex::{interpolate, split_statements, strip_comments, UnsetVariable};

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
    /// Whether infrasql must step in before a statement of this kind runs:
    /// it may write (the wrapper, the marker), or it ends a transaction's
    /// writable life (the hook). Statements of other kinds are forwarded.
    pub fn needs_care(self) -> bool {
        self == StmtKind::Write || self.ends_with_hook()
    }
}

/// Classify one statement.
pub fn classify(sql: &str) -> StmtKind {
    // Every simple query passes here: the words are borrowed, only the
    // first is lowercased (on the stack), and the next three are read only
    // for the statements whose kind depends on them.
    let mut it = words(sql);
    let mut w = [it.next().unwrap_or(""), "", "", ""];
    let mut first = [0u8; 16];
    let keyword = lowercase_keyword(w[0], &mut first);
    if matches!(
        keyword,
        b"explain"
            | b"prepare"
            | b"commit"
            | b"end"
            | b"rollback"
            | b"abort"
            | b"alter"
            | b"create"
            | b"drop"
            | b"reindex"
    ) {
        for (slot, word) in w[1..].iter_mut().zip(it) {
            *slot = word;
        }
    }
    let is = |k: usize, keyword: &str| w[k].eq_ignore_ascii_case(keyword);
    let any = |keyword: &str| w.iter().any(|x| x.eq_ignore_ascii_case(keyword));
    match keyword {
        b"" => StmtKind::Empty,
        b"select" | b"show" | b"values" | b"table" | b"fetch" | b"move" | b"close" | b"listen"
        | b"unlisten" | b"notify" | b"set" | b"reset" | b"discard" | b"deallocate" | b"declare"
        | b"load" | b"checkpoint" => StmtKind::Read,
        b"explain" => {
            if any("analyze") || any("analyse") {
                StmtKind::Write
            } else {
                StmtKind::Read
            }
        }
        b"prepare" if is(1, "transaction") => StmtKind::PrepareTransaction,
        b"prepare" => StmtKind::Read,
        b"begin" | b"start" => StmtKind::Begin,
        b"commit" | b"end" if is(1, "prepared") => StmtKind::NoTransactionBlock,
        // Only PostgreSQL's exact grammar ends a transaction: anything else
        // (`COMMIT TRANSACTON`) is a syntax error the backend must report
        // before infrasql applies anything.
        b"commit" | b"end" if is_commit(sql) => StmtKind::Commit,
        b"commit" | b"end" => StmtKind::Read,
        b"rollback" if is(1, "prepared") => StmtKind::NoTransactionBlock,
        b"rollback" | b"abort" if is(1, "to") => StmtKind::Savepoint,
        b"rollback" | b"abort" if is(1, "transaction") || is(1, "work") => {
            if is(2, "to") {
                StmtKind::Savepoint
            } else {
                StmtKind::Rollback
            }
        }
        b"rollback" | b"abort" => StmtKind::Rollback,
        b"savepoint" | b"release" => StmtKind::Savepoint,
        b"vacuum" | b"cluster" => StmtKind::NoTransactionBlock,
        b"alter" if is(1, "system") => StmtKind::NoTransactionBlock,
        b"create" | b"drop" | b"alter"
            if is(1, "database") || is(1, "tablespace") || is(1, "subscription") =>
        {
            StmtKind::NoTransactionBlock
        }
        b"create" | b"drop" | b"reindex" if any("concurrently") => StmtKind::NoTransactionBlock,
        b"create" if is(1, "unique") && is(3, "concurrently") => StmtKind::NoTransactionBlock,
        b"reindex" if is(1, "system") || is(1, "database") => StmtKind::NoTransactionBlock,
        b"copy" => {
            if copy_is_from(sql) {
                StmtKind::Write
            } else {
                StmtKind::Read
            }
        }
        b"with" => with_kind(sql),
        _ => StmtKind::Write,
    }
}

/// `word` lowercased into `buf`, or `-` (no keyword) when it is longer
/// than any keyword `classify` knows.
fn lowercase_keyword<'b>(word: &str, buf: &'b mut [u8; 16]) -> &'b [u8] {
    let Some(buf) = buf.get_mut(..word.len()) else {
        return b"-";
    };
    buf.copy_from_slice(word.as_bytes());
    // Bytes, matched against byte strings: no UTF-8 check at every query.
    buf.make_ascii_lowercase();
    buf
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
    fn keywords_match_in_any_case_and_long_words_are_writes() {
        assert_eq!(classify("SeLeCt 1"), Read);
        assert_eq!(classify("ROLLBACK Transaction TO s"), Savepoint);
        assert_eq!(
            classify("Create Unique Index Concurrently i on t (a)"),
            NoTransactionBlock
        );
        assert_eq!(classify("EXPLAIN (ANALYZE) select 1"), Write);
        // No keyword is this long: whatever it is, it is treated as a write.
        assert_eq!(classify("averyveryverylongfunctionname()"), Write);
        assert_eq!(classify("selectx 1"), Write);
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
}
