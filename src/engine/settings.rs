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
    /// `ready` or `accepted` (`infra.wait`).
    Wait,
    /// A duration such as `30min`, `90s` or `1h 30min`; `0` is none.
    Duration,
    /// A whole number, 0 or more (`infra.max_deletes`).
    Count,
    /// Where a change came from (`infra.apply_source`): see [`parse_source`].
    Source,
    /// A short free-text label (`infra.apply_author`): see [`parse_label`].
    Label,
}

impl SettingKind {
    /// What the setting takes, for a HINT.
    pub fn takes(self) -> &'static str {
        match self {
            SettingKind::Bool => "on or off (or another PostgreSQL boolean spelling)",
            SettingKind::Wait => "ready or accepted",
            SettingKind::Duration => {
                "a duration such as 90s, 30min or 1h (units ms, s, min, h, d; a bare number is seconds; 0 is none)"
            }
            SettingKind::Count => "a whole number, 0 or more",
            SettingKind::Source => {
                "'migration <file name>', 'revert apply-<id>', 'stack <name>[@<git commit>]' or an empty string (a plain commit)"
            }
            SettingKind::Label => "text of at most 200 characters, without control characters",
        }
    }
}

/// Every `infra.*` setting there is; any other `infra.` name is refused.
pub const SETTINGS: &[(&str, SettingKind)] = &[
    ("infra.dry_run", SettingKind::Bool),
    ("infra.allow_replace", SettingKind::Bool),
    ("infra.wait", SettingKind::Wait),
    ("infra.apply_timeout", SettingKind::Duration),
    ("infra.max_deletes", SettingKind::Count),
    ("infra.allow_mass_delete", SettingKind::Bool),
    // Read by the stack guard in SQL (schema/0760_stacks.sql).
    ("infra.allow_stack_edit", SettingKind::Bool),
    ("infra.apply_source", SettingKind::Source),
    // Who wrote the change, when a tool knows (the GitOps agent: the git
    // commit's author); recorded in infra.apply.author.
    ("infra.apply_author", SettingKind::Label),
];

/// A label as `infra.apply.author` records it: at most 200 characters,
/// none of them control characters (a log line stays one line).
pub fn parse_label(v: &str) -> Option<&str> {
    (v.chars().count() <= 200 && !v.chars().any(char::is_control)).then_some(v)
}

/// `infra.max_deletes` when unset.
pub const DEFAULT_MAX_DELETES: u64 = 10;

/// A count as PostgreSQL's integer input would take it, 0 or more.
pub fn parse_count(v: &str) -> Option<u64> {
    v.trim().parse::<u64>().ok()
}

/// `infra.apply_source` as `infra.apply.source` records it: empty is
/// `commit`; `migration <name>` and `revert apply-<hex>` are kept as given.
/// Anything else is `None`: a tool that meant to label its change must not
/// have it recorded as a plain commit (`schema/0720_history.sql` checks the
/// same for changes to `infra.policy`).
pub fn parse_source(v: &str) -> Option<String> {
    if v.is_empty() {
        return Some("commit".to_owned());
    }
    let migration = v
        .strip_prefix("migration ")
        .is_some_and(|name| !name.trim().is_empty());
    let revert = v.strip_prefix("revert apply-").is_some_and(|hex| {
        !hex.is_empty() && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    });
    // `stack <name>`, or `stack <name>@<git commit>` from the GitOps agent.
    let stack = v.strip_prefix("stack ").is_some_and(|rest| {
        let (name, rev) = rest.split_once('@').unwrap_or((rest, "0"));
        let named = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        named && !rev.is_empty() && rev.chars().all(|c| c.is_ascii_hexdigit())
    });
    (migration || revert || stack).then(|| v.to_owned())
}

/// What a COMMIT waits for (`infra.wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitMode {
    /// Until every created resource is ready (an instance `running`).
    #[default]
    Ready,
    /// Until AWS has accepted every request; the sync loop fills in the
    /// final state.
    Accepted,
}

pub fn parse_wait(v: &str) -> Option<WaitMode> {
    match v.to_ascii_lowercase().as_str() {
        "ready" => Some(WaitMode::Ready),
        "accepted" => Some(WaitMode::Accepted),
        _ => None,
    }
}

/// A duration as a sequence of number-unit pairs (`1h 30min`, `90s`,
/// `2.5min`); a bare number is seconds, as in a PostgreSQL interval. `0`
/// (in any unit) is `Some(ZERO)`; the caller reads it as "no limit".
pub fn parse_duration(v: &str) -> Option<std::time::Duration> {
    let mut rest = v.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..n_end].parse().ok()?;
        rest = rest[n_end..].trim_start();
        let u_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let seconds = match rest[..u_end].to_ascii_lowercase().as_str() {
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 0.001,
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            _ => return None,
        };
        total += number * seconds;
        rest = rest[u_end..].trim_start();
    }
    (total.is_finite() && total < 1e9).then(|| std::time::Duration::from_secs_f64(total))
}

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
        Some(SettingKind::Wait) => parse_wait(value)
            .map(drop)
            .ok_or_else(|| format!("invalid value for parameter \"{name}\": \"{value}\"")),
        Some(SettingKind::Duration) => parse_duration(value)
            .map(drop)
            .ok_or_else(|| format!("invalid value for parameter \"{name}\": \"{value}\"")),
        Some(SettingKind::Count) => parse_count(value)
            .map(drop)
            .ok_or_else(|| format!("invalid value for parameter \"{name}\": \"{value}\"")),
        Some(SettingKind::Source) => parse_source(value)
            .map(drop)
            .ok_or_else(|| format!("invalid value for parameter \"{name}\": \"{value}\"")),
        Some(SettingKind::Label) => parse_label(value)
            .map(drop)
            .ok_or_else(|| format!("invalid value for parameter \"{name}\": \"{value}\"")),
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

/// The raw text of an `infra.*` setting in the client's transaction; empty
/// when unset (NULL, or empty after a RESET without a database default).
async fn raw_setting(ctx: &mut dyn CommitContext, name: &str) -> Result<String, HookError> {
    let rows = ctx
        .query(&format!(
            "SELECT current_setting({}, true)",
            super::commit::literal(name)
        ))
        .await?;
    Ok(rows.first().and_then(|r| r[0].clone()).unwrap_or_default())
}

/// A value `set_config()` smuggled past the check at SET: refused before
/// any AWS call.
fn bad_value(name: &str, v: &str, kind: SettingKind) -> HookError {
    HookError(
        Report::error(
            errors::BAD_SETTING_VALUE,
            format!("invalid value for parameter \"{name}\": \"{v}\""),
        )
        .with_detail("Nothing was applied.")
        .with_hint(format!("{name} takes {}.", kind.takes())),
    )
}

/// Read a boolean `infra.*` setting in the client's transaction. Unset
/// is `false`; anything PostgreSQL would not accept as a boolean is an error.
pub async fn bool_setting(ctx: &mut dyn CommitContext, name: &str) -> Result<bool, HookError> {
    debug_assert_eq!(kind_of(name), Some(SettingKind::Bool));
    let v = raw_setting(ctx, name).await?;
    if v.is_empty() {
        return Ok(false);
    }
    parse_bool(&v).ok_or_else(|| bad_value(name, &v, SettingKind::Bool))
}

/// `infra.wait`; unset is `ready`.
pub async fn wait_setting(ctx: &mut dyn CommitContext) -> Result<WaitMode, HookError> {
    let v = raw_setting(ctx, "infra.wait").await?;
    if v.is_empty() {
        return Ok(WaitMode::default());
    }
    parse_wait(&v).ok_or_else(|| bad_value("infra.wait", &v, SettingKind::Wait))
}

/// `infra.apply_timeout`; unset or zero is no limit (`None`).
pub async fn timeout_setting(
    ctx: &mut dyn CommitContext,
) -> Result<Option<std::time::Duration>, HookError> {
    let name = "infra.apply_timeout";
    let v = raw_setting(ctx, name).await?;
    if v.is_empty() {
        return Ok(None);
    }
    let d = parse_duration(&v).ok_or_else(|| bad_value(name, &v, SettingKind::Duration))?;
    Ok((!d.is_zero()).then_some(d))
}

/// `infra.max_deletes`; unset is [`DEFAULT_MAX_DELETES`].
pub async fn max_deletes_setting(ctx: &mut dyn CommitContext) -> Result<u64, HookError> {
    let name = "infra.max_deletes";
    let v = raw_setting(ctx, name).await?;
    if v.is_empty() {
        return Ok(DEFAULT_MAX_DELETES);
    }
    parse_count(&v).ok_or_else(|| bad_value(name, &v, SettingKind::Count))
}

/// `infra.apply_source` (see [`parse_source`]); unset or empty is `commit`.
pub async fn source_setting(ctx: &mut dyn CommitContext) -> Result<String, HookError> {
    let name = "infra.apply_source";
    let v = raw_setting(ctx, name).await?;
    parse_source(&v).ok_or_else(|| bad_value(name, &v, SettingKind::Source))
}

/// `infra.apply_author`; unset or empty is none.
pub async fn author_setting(ctx: &mut dyn CommitContext) -> Result<Option<String>, HookError> {
    let name = "infra.apply_author";
    let v = raw_setting(ctx, name).await?;
    if v.is_empty() {
        return Ok(None);
    }
    parse_label(&v)
        .map(|a| Some(a.to_owned()))
        .ok_or_else(|| bad_value(name, &v, SettingKind::Label))
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
        assert!(check("infra.wait", "accepted").is_ok());
        assert!(check("infra.wait", "READY").is_ok());
        assert!(check("infra.wait", "soon").is_err());
        assert!(check("infra.apply_timeout", "30min").is_ok());
        assert!(check("infra.apply_timeout", "30 parsecs").is_err());
        assert!(check("infra.max_deletes", "25").is_ok());
        assert!(check("infra.max_deletes", "-1").is_err());
        assert!(check("infra.max_deletes", "many").is_err());
        assert!(check("infra.allow_mass_delete", "on").is_ok());
        assert!(check("infra.apply_source", "").is_ok());
        assert!(check("infra.apply_source", "migration 0001_network.sql").is_ok());
        assert!(check("infra.apply_source", "revert apply-00ff").is_ok());
        assert!(check("infra.apply_source", "migration ").is_err());
        assert!(check("infra.apply_source", "revert apply-XYZ").is_err());
        assert!(check("infra.apply_source", "sync-revert").is_err());
        assert!(check("infra.apply_source", "commit").is_err());
        assert!(check("infra.apply_source", "stack web.prod").is_ok());
        assert!(check("infra.apply_source", "stack web.prod@9f3c2a1").is_ok());
        assert!(check("infra.apply_source", "stack web prod").is_err());
        assert!(check("infra.apply_source", "stack web@").is_err());
        assert!(check("infra.apply_author", "Ada <ada@example.com>").is_ok());
        assert!(check("infra.apply_author", "Ada\nINFO forged").is_err());
        assert!(check("infra.apply_author", &"x".repeat(201)).is_err());
    }

    #[test]
    fn durations_in_postgres_units() {
        let s = std::time::Duration::from_secs;
        assert_eq!(parse_duration("30min"), Some(s(1800)));
        assert_eq!(parse_duration("90s"), Some(s(90)));
        assert_eq!(parse_duration("90"), Some(s(90)));
        assert_eq!(parse_duration("1h 30min"), Some(s(5400)));
        assert_eq!(parse_duration("1.5 hours"), Some(s(5400)));
        assert_eq!(
            parse_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_duration("0"), Some(s(0)));
        for bad in [
            "",
            " ",
            "min",
            "5 fortnights",
            "-5s",
            "1e3s",
            "5s-",
            "1..2s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
