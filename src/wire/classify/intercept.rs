//! Statements infrasql must act on before they run, recognised from their
//! text: `infra.sync(...)`, reads of `infra.plan`, and `SET infra.x = ...`
//! with a value infrasql does not accept. The session acts on the typed
//! [`Intercepts`]; nothing else in the wire looks for these in the text.
//!
//! `infra.sync(` and `infra.plan` are found by a plain text search, which
//! is cheap on the hot path; a mention inside a string literal or a comment
//! counts too, which costs a sync or a preview, never a missed one.

use super::lex::{first_words, split_statements};
use crate::engine::commit::literal;
use crate::engine::settings;

/// What infrasql must do before a text runs. One text may ask for several
/// (`SELECT infra.sync(); SELECT * FROM infra.plan`); the default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intercepts {
    /// It sets an `infra.*` parameter to a value infrasql refuses: the text
    /// to run instead, which raises the error in the backend, so the
    /// transaction fails as it would for PostgreSQL's own settings.
    pub refusal: Option<String>,
    /// It calls `infra.sync(...)`: sync first, so it reports a finished round.
    pub sync: Option<SyncCall>,
    /// It reads `infra.plan`: fill in the preview first.
    pub reads_plan: bool,
}

/// `infra.sync(table, region)`: the literal arguments. A missing or
/// non-literal argument is `None`, meaning "every table" or "every region".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCall {
    pub table: Option<String>,
    pub region: Option<String>,
}

/// The intercepts of a simple Query's string (any number of statements).
pub fn query_intercepts(sql: &str) -> Intercepts {
    if !mentions_infra(sql) {
        return Intercepts::default();
    }
    Intercepts {
        refusal: rewrite_settings(sql),
        sync: sync_call(sql),
        reads_plan: mentions_plan(sql),
    }
}

/// The intercepts of the one statement a Parse prepares. A refusal comes at
/// Execute, as PostgreSQL's own would.
pub fn statement_intercepts(sql: &str) -> Intercepts {
    if !mentions_infra(sql) {
        return Intercepts::default();
    }
    Intercepts {
        refusal: refuse_bad_setting(sql),
        sync: sync_call(sql),
        reads_plan: mentions_plan(sql),
    }
}

/// Whether the text has `infra.` anywhere, in any case: every needle below
/// starts with it, so a text without it (nearly every query) needs none of
/// their searches. Found from the dots, which are rare, rather than by
/// comparing at every byte.
fn mentions_infra(sql: &str) -> bool {
    let b = sql.as_bytes();
    memchr::memchr_iter(b'.', b)
        .any(|dot| dot >= 5 && b[dot - 5..dot].eq_ignore_ascii_case(b"infra"))
}

/// `infra.sync('aws.vpc', 'us-east-1')` → the literal arguments, if the
/// text calls it.
fn sync_call(sql: &str) -> Option<SyncCall> {
    const NEEDLE: &[u8] = b"infra.sync(";
    let b = sql.as_bytes();
    let at = b
        .windows(NEEDLE.len())
        .position(|w| w.eq_ignore_ascii_case(NEEDLE))?;
    let rest = &sql[at + NEEDLE.len()..];
    let args = &rest[..rest.find(')').unwrap_or(rest.len())];
    let mut it = args.split(',').map(|a| {
        let a = a.trim();
        (a.len() >= 2 && a.starts_with('\'') && a.ends_with('\''))
            .then(|| a[1..a.len() - 1].to_owned())
    });
    Some(SyncCall {
        table: it.next().flatten(),
        region: it.next().flatten(),
    })
}

/// Only texts naming the view pay for a plan.
fn mentions_plan(sql: &str) -> bool {
    const NEEDLE: &[u8] = b"infra.plan";
    sql.as_bytes()
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

/// A query whose `SET infra.x = <bad value>` statements are replaced by a
/// call that raises the error in the backend. `None` when nothing needs
/// replacing (the hot path: no `infra.` in the text).
fn rewrite_settings(sql: &str) -> Option<String> {
    const NEEDLE: &[u8] = b"infra.";
    if !sql
        .as_bytes()
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
    {
        return None;
    }
    let stmts = split_statements(sql);
    let replaced: Vec<Option<String>> = stmts.iter().map(|s| refuse_bad_setting(s)).collect();
    if replaced.iter().all(Option::is_none) {
        return None;
    }
    let parts: Vec<&str> = stmts
        .iter()
        .zip(&replaced)
        .map(|(s, r)| r.as_deref().unwrap_or(s))
        .collect();
    Some(parts.join(";"))
}

/// For one statement setting an `infra.*` parameter to a value infrasql
/// does not accept: the SQL that raises the error instead.
fn refuse_bad_setting(stmt: &str) -> Option<String> {
    let (name, value) = infra_setting(stmt)?;
    let outcome = match &value {
        None if settings::kind_of(&name).is_some() => Ok(()),
        None => settings::check(&name, ""),
        Some(v) => settings::check(&name, v),
    };
    let message = outcome.err()?;
    let known: Vec<&str> = settings::SETTINGS.iter().map(|(n, _)| *n).collect();
    let hint = match settings::kind_of(&name) {
        Some(kind) => format!("{name} takes {}.", kind.takes()),
        None => format!("infrasql's settings are {}.", known.join(", ")),
    };
    Some(format!(
        "SELECT infra.refuse_setting({}, {}, {})",
        literal(settings::sqlstate(&name)),
        literal(&message),
        literal(&hint)
    ))
}

/// `SET [SESSION | LOCAL] infra.x {= | TO} value` or `RESET infra.x`: the
/// setting's name and the value as PostgreSQL would store it (`None` for
/// RESET and DEFAULT). Only `infra.*` names are looked at; everything else
/// is PostgreSQL's to check.
fn infra_setting(sql: &str) -> Option<(String, Option<String>)> {
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
        // Bytes, not `v[..2]`: the value may start with a multi-byte
        // character (found by tests/fuzz_wire.rs).
        && v.as_bytes()[..2].eq_ignore_ascii_case(b"to")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_starting_with_a_multibyte_character_is_no_panic() {
        assert_eq!(
            infra_setting("SET infra.dry_run é1"),
            Some(("infra.dry_run".into(), Some("é1".into())))
        );
        assert!(statement_intercepts("SET LOCAL infra.\u{fffd}")
            .refusal
            .is_some());
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

    fn sync(table: Option<&str>, region: Option<&str>) -> Option<SyncCall> {
        Some(SyncCall {
            table: table.map(str::to_owned),
            region: region.map(str::to_owned),
        })
    }

    #[test]
    fn ordinary_statements_ask_for_nothing() {
        for q in [
            "select 1",
            "insert into aws.vpc (cidr_block) values ('10.0.0.0/16')",
            "SET search_path = aws",
            "SET infra.dry_run = on",
            "set local infra.allow_replace to off",
            "reset infra.dry_run",
            "select * from infra.sync_status",
        ] {
            assert_eq!(query_intercepts(q), Intercepts::default(), "{q}");
            assert_eq!(statement_intercepts(q), Intercepts::default(), "{q}");
        }
    }

    #[test]
    fn sync_calls_carry_their_literal_arguments() {
        let s = |q: &str| query_intercepts(q).sync;
        assert_eq!(
            s("SELECT infra.sync('aws.vpc')"),
            sync(Some("aws.vpc"), None)
        );
        assert_eq!(
            s("select INFRA.SYNC( 'aws.subnet' , 'eu-west-1' )"),
            sync(Some("aws.subnet"), Some("eu-west-1"))
        );
        assert_eq!(s("SELECT infra.sync()"), sync(None, None));
        // Not literals: sync everything rather than guess.
        assert_eq!(s("SELECT infra.sync($1, $2)"), sync(None, None));
        assert_eq!(s("SELECT infra.sync(t.name) FROM t"), sync(None, None));
        assert_eq!(
            statement_intercepts("SELECT * FROM infra.sync('aws.vpc', 'us-east-1')").sync,
            sync(Some("aws.vpc"), Some("us-east-1"))
        );
        assert_eq!(s("SELECT infra.sync_status"), None);
    }

    #[test]
    fn plan_reads_are_found_in_any_case() {
        assert!(query_intercepts("select * from INFRA.PLAN").reads_plan);
        assert!(
            statement_intercepts("SELECT step, action FROM infra.plan ORDER BY step").reads_plan
        );
        assert!(query_intercepts("begin; select * from infra.plan; commit").reads_plan);
        assert!(!query_intercepts("select * from aws.vpc").reads_plan);
        // A plain text search: a mention in a literal counts too (one
        // preview too many, never one missed).
        assert!(query_intercepts("select 'see infra.plan'").reads_plan);
    }

    #[test]
    fn the_infra_prefilter_misses_no_mention() {
        // The name at the very start, right before the end, and glued to
        // another word (a plain text search, as the needles are).
        assert!(query_intercepts("infra.plan").reads_plan);
        assert!(query_intercepts("TABLE xINFRA.plan").reads_plan);
        assert!(statement_intercepts("select infra.sync()").sync.is_some());
        assert!(query_intercepts("SET infra.mode = 'bogus'")
            .refusal
            .is_some());
        // Dots elsewhere, or `infra` with no dot, ask for nothing.
        assert_eq!(
            query_intercepts("select a.b, 1.5 from t.u"),
            Intercepts::default()
        );
        assert_eq!(query_intercepts("select infra"), Intercepts::default());
        assert_eq!(query_intercepts("."), Intercepts::default());
    }

    #[test]
    fn one_query_may_ask_for_several() {
        let i = query_intercepts("SELECT infra.sync('aws.vpc'); SELECT * FROM infra.plan");
        assert_eq!(i.sync, sync(Some("aws.vpc"), None));
        assert!(i.reads_plan);
        assert_eq!(i.refusal, None);
    }

    #[test]
    fn bad_settings_become_a_call_that_raises_the_error() {
        let r = statement_intercepts("SET infra.dry_run = bogus")
            .refusal
            .unwrap();
        assert!(
            r.starts_with("SELECT infra.refuse_setting(E'22023', "),
            "{r}"
        );
        assert!(r.contains("requires a Boolean value"), "{r}");
        let r = statement_intercepts("set infra.dryrun = on")
            .refusal
            .unwrap();
        assert!(
            r.starts_with("SELECT infra.refuse_setting(E'42704', "),
            "{r}"
        );
        assert!(r.contains("infra.dry_run, infra.allow_replace"), "{r}");
        // An unknown name is refused even by RESET.
        assert!(statement_intercepts("reset infra.dryrun").refusal.is_some());
        // In a query string only the bad statement is replaced.
        let r = query_intercepts("BEGIN; SET infra.dry_run = maybe; INSERT INTO t VALUES (1)")
            .refusal
            .unwrap();
        let parts: Vec<&str> = r.split(';').collect();
        assert_eq!(parts[0], "BEGIN");
        assert!(parts[1].starts_with("SELECT infra.refuse_setting("), "{r}");
        assert_eq!(parts[parts.len() - 1], " INSERT INTO t VALUES (1)");
    }
}
