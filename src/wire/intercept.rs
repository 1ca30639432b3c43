//! Statements infrasql must act on before they run, recognised from their
//! text: `infra.sync(...)`, reads of `infra.plan`, and `SET infra.x = ...`
//! with a value infrasql does not accept.

use super::classify::{infra_setting, split_statements};
use crate::engine::commit::literal;
use crate::engine::settings;

/// `infra.sync('aws.vpc', 'us-east-1')` → the literal arguments, if the
/// statement calls it. Non-literal arguments mean "everything".
pub fn sync_call(sql: &str) -> Option<(Option<String>, Option<String>)> {
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
    Some((it.next().flatten(), it.next().flatten()))
}

/// Cheap check on the hot path: only statements naming the view pay for a plan.
pub fn mentions_plan(sql: &str) -> bool {
    const NEEDLE: &[u8] = b"infra.plan";
    sql.as_bytes()
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

/// A query whose `SET infra.x = <bad value>` statements are replaced by a
/// call that raises the error in the backend, so the transaction fails just
/// as it would for a bad value of PostgreSQL's own settings. `None` when
/// nothing needs replacing (the hot path: no `infra.` in the text).
pub fn rewrite_settings(sql: &str) -> Option<String> {
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
pub fn refuse_bad_setting(stmt: &str) -> Option<String> {
    let (name, value) = infra_setting(stmt)?;
    let outcome = match &value {
        None if settings::kind_of(&name).is_some() => Ok(()),
        None => settings::check(&name, ""),
        Some(v) => settings::check(&name, v),
    };
    let message = outcome.err()?;
    let known: Vec<&str> = settings::SETTINGS.iter().map(|(n, _)| *n).collect();
    let hint = match settings::kind_of(&name) {
        Some(_) => format!("{name} takes on or off (or another PostgreSQL boolean spelling)."),
        None => format!("infrasql's settings are {}.", known.join(", ")),
    };
    Some(format!(
        "SELECT infra.refuse_setting({}, {}, {})",
        literal(settings::sqlstate(&name)),
        literal(&message),
        literal(&hint)
    ))
}
