//! infrasql's session settings (`SET infra.dry_run = on`), read strictly.
//!
//! PostgreSQL keeps `infra.*` as placeholder settings: it stores any string
//! under any `infra.` name and checks nothing. A typo or a bad value must
//! never mean "apply", so infrasql checks twice:
//! - at `SET`: the wire rewrites a `SET infra.x = <bad value>` into a call
//!   that raises 22023 in the backend (so the transaction state stays right);
//! - at COMMIT, before any AWS call: [`bool_setting`] refuses a value that
//!   `set_config()` smuggled past the first check.
//!
//! Defaults live in the database (`ALTER DATABASE ... SET`, see
//! `schema/0500_recovery.sql`), so `SHOW infra.dry_run` answers `off` before
//! any `SET`.

use super::errors;
use super::hook::{CommitContext, HookError};
use super::report::Report;

/// The type of an `infra.*` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    Bool,
}

/// Every `infra.*` setting there is; any other `infra.` name is refused.
pub const SETTINGS: &[(&str, SettingKind)] = &[
    ("infra.dry_run", SettingKind::Bool),
    ("infra.allow_replace", SettingKind::Bool),
];

pub fn kind_of(name: &str) -> Option<SettingKind> {
    SETTINGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, k)| *k)
}

/// PostgreSQL's `parse_bool`: true/false, yes/no, on/off, 1/0, any case,
/// and unique prefixes ("t", "fa", "of"); nothing else, no whitespace.
pub fn parse_bool(v: &str) -> Option<bool> {
    let l = v.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| l.len() >= min && word.starts_with(l.as_str());
    match l.as_bytes().first()? {
        b't' if prefix_of("true", 1) => Some(true),
        b'f' if prefix_of("false", 1) => Some(false),
        b'y' if prefix_of("yes", 1) => Some(true),
        b'n' if prefix_of("no", 1) => Some(false),
        b'o' if prefix_of("on", 2) => Some(true),
        b'o' if prefix_of("off", 2) => Some(false),
        b'1' if l.len() == 1 => Some(true),
        b'0' if l.len() == 1 => Some(false),
        _ => None,
    }
}

/// Whether `value` is acceptable for `name`; `Err` is the message for 22023.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    match kind_of(name) {
        None => Err(format!("unrecognized configuration parameter \"{name}\"")),
        Some(SettingKind::Bool) => parse_bool(value)
            .map(drop)
            .ok_or_else(|| format!("parameter \"{name}\" requires a Boolean value")),
    }
}

/// The SQLSTATE for a refused setting: an unknown name is 42704, like
/// PostgreSQL's own unknown parameters; a bad value is 22023.
pub fn sqlstate(name: &str) -> &'static str {
    if kind_of(name).is_some() {
        errors::BAD_SETTING_VALUE
    } else {
        errors::UNKNOWN_SETTING
    }
}

/// Read a boolean `infra.*` setting in the client's transaction. Unset
/// (NULL, or empty after a RESET without a database default) is `false`;
/// anything PostgreSQL would not accept as a boolean is an error.
pub async fn bool_setting(ctx: &mut dyn CommitContext, name: &str) -> Result<bool, HookError> {
    debug_assert_eq!(kind_of(name), Some(SettingKind::Bool));
    let rows = ctx
        .query(&format!(
            "SELECT current_setting({}, true)",
            super::commit::literal(name)
        ))
        .await?;
    let v = rows.first().and_then(|r| r[0].clone()).unwrap_or_default();
    if v.is_empty() {
        return Ok(false);
    }
    parse_bool(&v).ok_or_else(|| {
        HookError(
            Report::error(
                errors::BAD_SETTING_VALUE,
                format!("invalid value for parameter \"{name}\": \"{v}\""),
            )
            .with_detail("Nothing was applied.")
            .with_hint("Use on or off (or any PostgreSQL boolean spelling)."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_boolean_spellings_and_nothing_else() {
        for t in ["on", "ON", "true", "t", "tr", "yes", "y", "1", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["off", "OFF", "of", "false", "f", "fal", "no", "n", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in [
            "", "o", "bogus", "2", "10", "truee", " on", "on ", "yess", "nope",
        ] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        assert!(check("infra.dry_run", "t").is_ok());
        assert!(check("INFRA.DRY_RUN", "off").is_ok());
        assert!(check("infra.dry_run", "bogus").is_err());
        assert!(check("infra.dryrun", "on").is_err());
        assert_eq!(sqlstate("infra.dryrun"), "42704");
        assert_eq!(sqlstate("infra.dry_run"), "22023");
    }
}
