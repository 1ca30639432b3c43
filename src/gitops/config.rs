//! The agent's settings (`--gitops-*`, checked at start-up: a value that
//! cannot be right refuses to start) and each stack directory's optional
//! `stack.toml` (pure, unit-tested).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// `--gitops-*` as given (flag, environment or TOML file).
#[derive(Debug, Default)]
pub struct GitopsArgs {
    pub repo: Option<String>,
    pub git_ref: Option<String>,
    pub path: Option<String>,
    pub interval: Option<String>,
}

/// The agent's resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GitopsConfig {
    pub repo: String,
    pub git_ref: String,
    /// Relative to the repository's root, no leading or trailing `/`; ""
    /// is the root.
    pub path: String,
    pub interval: Duration,
}

impl GitopsArgs {
    pub fn resolve(self) -> Result<Option<GitopsConfig>, String> {
        let Some(repo) = self.repo else {
            if self.git_ref.is_some() || self.path.is_some() || self.interval.is_some() {
                return Err("gitops-ref, gitops-path and gitops-interval need gitops-repo".into());
            }
            return Ok(None);
        };
        let repo = repo.trim().to_owned();
        // Every value reaches git as an argument: one that looks like an
        // option would be read as one.
        if repo.is_empty() || repo.starts_with('-') {
            return Err(format!("--gitops-repo {repo:?} is not a repository URL"));
        }
        let git_ref = self.git_ref.unwrap_or_else(|| "main".into());
        if !valid_ref(&git_ref) {
            return Err(format!(
                "--gitops-ref {git_ref:?} is not a branch or tag name"
            ));
        }
        let path = self.path.unwrap_or_default();
        let path = normal_path(&path).ok_or_else(|| {
            format!(
                "--gitops-path {path:?} must be a relative path inside the repository, without .."
            )
        })?;
        let interval = match self.interval {
            None => Duration::from_secs(60),
            Some(s) => parse_interval(&s).ok_or_else(|| {
                format!("--gitops-interval {s:?} must be a positive duration such as 30s, 5m or 1h")
            })?,
        };
        Ok(Some(GitopsConfig {
            repo,
            git_ref,
            path,
            interval,
        }))
    }
}

fn valid_ref(r: &str) -> bool {
    !r.is_empty()
        && !r.starts_with('-')
        && !r.starts_with('/')
        && !r.ends_with('/')
        && !r.contains("..")
        && !r.contains("@{")
        && r.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"~^:?*[\\".contains(c))
}

fn normal_path(p: &str) -> Option<String> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if p.starts_with('/') || parts.iter().any(|s| *s == ".." || s.starts_with('-')) {
        return None;
    }
    Some(parts.join("/"))
}

/// `60s`, `5m`, `1h`, `500ms` or plain seconds.
pub fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.trim().parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A stack directory's `stack.toml`; every key is optional.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StackToml {
    pub name: Option<String>,
    pub environment: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub self_heal: bool,
    #[serde(default)]
    pub delete: bool,
    pub max_prune_share: Option<f64>,
}

/// What the agent does with one directory.
#[derive(Debug, Clone, PartialEq)]
pub struct StackSpec {
    /// The directory's name under the gitops path.
    pub dir: String,
    pub name: String,
    pub vars: BTreeMap<String, String>,
    pub self_heal: bool,
    pub delete: bool,
    pub max_prune_share: f64,
}

/// The stack a directory declares. Its name is `name`, else
/// `<dir>.<environment>` when `environment` is set, else the directory's
/// name; `environment` is also the psql variable `:'environment'` unless
/// `[vars]` sets it.
pub fn stack_spec(dir: &str, toml_text: Option<&str>) -> Result<StackSpec, String> {
    let t: StackToml = match toml_text {
        Some(text) => toml::from_str(text).map_err(|e| format!("{dir}/stack.toml: {e}"))?,
        None => StackToml::default(),
    };
    let name = match (&t.name, &t.environment) {
        (Some(n), _) => n.clone(),
        (None, Some(env)) => format!("{dir}.{env}"),
        (None, None) => dir.to_owned(),
    };
    let share = t.max_prune_share.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&share) {
        return Err(format!(
            "{dir}/stack.toml: max_prune_share {share} must be between 0 and 1"
        ));
    }
    let mut vars = BTreeMap::new();
    if let Some(env) = &t.environment {
        vars.insert("environment".to_owned(), env.clone());
    }
    for (k, v) in t.vars {
        let text = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                v.to_string()
            }
            _ => {
                return Err(format!(
                    "{dir}/stack.toml: vars.{k} must be a string, number or boolean"
                ))
            }
        };
        vars.insert(k, text);
    }
    Ok(StackSpec {
        dir: dir.to_owned(),
        name,
        vars,
        self_heal: t.self_heal,
        delete: t.delete,
        max_prune_share: share,
    })
}

/// Whether a prune of `pruned` of the stack's `resources` needs a person:
/// more than `share` of them (a stack with no resources never does).
pub fn prune_needs_confirmation(pruned: i64, resources: i64, share: f64) -> bool {
    resources > 0 && pruned > 0 && (pruned as f64) > share * resources as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(repo: &str) -> GitopsArgs {
        GitopsArgs {
            repo: Some(repo.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_refusals() {
        let c = args("git@example.com:ops/infra.git")
            .resolve()
            .unwrap()
            .unwrap();
        assert_eq!(c.git_ref, "main");
        assert_eq!(c.path, "");
        assert_eq!(c.interval, Duration::from_secs(60));
        let c = GitopsArgs {
            path: Some("./infra/".into()),
            interval: Some("5m".into()),
            ..args("file:///r")
        };
        let c = c.resolve().unwrap().unwrap();
        assert_eq!((c.path.as_str(), c.interval.as_secs()), ("infra", 300));
        assert_eq!(GitopsArgs::default().resolve(), Ok(None));
        for bad in [
            GitopsArgs {
                git_ref: Some("main".into()),
                ..Default::default()
            },
            args("--upload-pack=x"),
            GitopsArgs {
                git_ref: Some("a..b".into()),
                ..args("r")
            },
            GitopsArgs {
                path: Some("../etc".into()),
                ..args("r")
            },
            GitopsArgs {
                interval: Some("0s".into()),
                ..args("r")
            },
            GitopsArgs {
                interval: Some("soon".into()),
                ..args("r")
            },
        ] {
            assert!(bad.resolve().is_err());
        }
        assert_eq!(parse_interval("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_interval("200ms"), Some(Duration::from_millis(200)));
    }

    #[test]
    fn a_stack_is_named_by_its_file_or_its_directory_and_environment() {
        let s = stack_spec("web", None).unwrap();
        assert_eq!((s.name.as_str(), s.max_prune_share), ("web", 0.5));
        assert!(!s.self_heal && !s.delete);
        let s = stack_spec(
            "web",
            Some("environment = \"prod\"\nself_heal = true\n[vars]\ncidr = \"10.2.0.0/16\"\nsize = 3\n"),
        )
        .unwrap();
        assert_eq!(s.name, "web.prod");
        assert_eq!(s.vars["environment"], "prod");
        assert_eq!(s.vars["cidr"], "10.2.0.0/16");
        assert_eq!(s.vars["size"], "3");
        assert!(s.self_heal);
        let s = stack_spec("x", Some("name = \"net\"\nenvironment = \"dev\"\n")).unwrap();
        assert_eq!(s.name, "net");
        assert!(stack_spec("x", Some("max_prune_share = 2.0")).is_err());
        let e = stack_spec("x", Some("selfheal = true")).unwrap_err();
        assert!(e.contains("x/stack.toml") && e.contains("selfheal"), "{e}");
    }

    #[test]
    fn the_prune_guard_counts_a_share_of_the_stack() {
        assert!(!prune_needs_confirmation(1, 2, 0.5));
        assert!(prune_needs_confirmation(2, 3, 0.5));
        assert!(!prune_needs_confirmation(0, 0, 0.5));
        assert!(prune_needs_confirmation(1, 10, 0.0));
        assert!(!prune_needs_confirmation(10, 10, 1.0));
    }
}
