//! Drift policies: what sync does with a difference between the rows and
//! the cloud, and which one applies to a resource.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// How drift is handled, per table and optionally per tag
/// (`infra.drift_policy.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The rows take the cloud's values (the default).
    Adopt,
    /// The rows' values are applied back to AWS through the apply engine.
    Revert,
    /// The rows keep their values; the drift stays open.
    Report,
}

impl Policy {
    /// The spelling in `infra.drift_policy.policy` (its CHECK lists these).
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Adopt => "adopt",
            Policy::Revert => "revert",
            Policy::Report => "report",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown drift policy {0:?} (adopt, revert or report)")]
pub struct UnknownPolicy(pub String);

impl FromStr for Policy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Policy::Adopt, Policy::Revert, Policy::Report]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

/// A policy row of `infra.drift_policy`: '' stack and '' tag key make the
/// table's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// Only this stack's resources (`infra.drift_policy.stack`, '' for any):
    /// the GitOps agent's `self_heal` writes these.
    pub stack: String,
    pub tag_key: String,
    pub tag_value: String,
    pub policy: Policy,
}

impl PolicyRow {
    /// The table's default.
    #[cfg(test)]
    pub fn table(policy: Policy) -> Self {
        PolicyRow {
            stack: String::new(),
            tag_key: String::new(),
            tag_value: String::new(),
            policy,
        }
    }
}

/// The policy for a resource of `stack` with `tags`: its stack's row (a
/// stack declared in git says how its drift is handled), else a row
/// matching one of its tags, else the table's default, else adopt.
pub fn policy_for(policies: &[PolicyRow], tags: Option<&Value>, stack: Option<&str>) -> Policy {
    let scoped = |p: &&PolicyRow| {
        !p.stack.is_empty() && Some(p.stack.as_str()) == stack && p.tag_key.is_empty()
    };
    let tagged = |p: &&PolicyRow| {
        p.stack.is_empty()
            && !p.tag_key.is_empty()
            && tags.and_then(|t| t.get(&p.tag_key)).and_then(Value::as_str)
                == Some(p.tag_value.as_str())
    };
    let default = |p: &&PolicyRow| p.stack.is_empty() && p.tag_key.is_empty();
    policies
        .iter()
        .find(scoped)
        .or_else(|| policies.iter().find(tagged))
        .or_else(|| policies.iter().find(default))
        .map(|p| p.policy)
        .unwrap_or(Policy::Adopt)
}

/// The stack a row or a listed resource belongs to (`infrasql_provider::STACK`).
pub fn stack_of(row: &serde_json::Map<String, Value>) -> Option<&str> {
    row.get(infrasql_provider::STACK.name)
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_most_specific_policy_wins_and_adopt_is_the_default() {
        let p = vec![
            PolicyRow::table(Policy::Report),
            PolicyRow {
                tag_key: "env".to_owned(),
                tag_value: "prod".to_owned(),
                ..PolicyRow::table(Policy::Revert)
            },
        ];
        assert_eq!(
            policy_for(&p, Some(&json!({"env": "prod"})), None),
            Policy::Revert
        );
        assert_eq!(
            policy_for(&p, Some(&json!({"env": "dev"})), None),
            Policy::Report
        );
        assert_eq!(policy_for(&[], Some(&json!({})), None), Policy::Adopt);
    }

    #[test]
    fn a_stack_row_wins_for_that_stacks_resources_only() {
        let p = vec![
            PolicyRow::table(Policy::Adopt),
            PolicyRow {
                tag_key: "env".to_owned(),
                tag_value: "prod".to_owned(),
                ..PolicyRow::table(Policy::Report)
            },
            PolicyRow {
                stack: "web.prod".to_owned(),
                ..PolicyRow::table(Policy::Revert)
            },
        ];
        let prod = json!({"env": "prod"});
        assert_eq!(
            policy_for(&p, Some(&prod), Some("web.prod")),
            Policy::Revert
        );
        assert_eq!(
            policy_for(&p, Some(&prod), Some("web.staging")),
            Policy::Report
        );
        assert_eq!(policy_for(&p, None, Some("web.staging")), Policy::Adopt);
        assert_eq!(policy_for(&p, None, None), Policy::Adopt);
        // Only a stack row: resources outside stacks keep the default.
        let only = vec![PolicyRow {
            stack: "web.prod".to_owned(),
            ..PolicyRow::table(Policy::Report)
        }];
        assert_eq!(policy_for(&only, None, None), Policy::Adopt);
        let row = json!({"stack": "web.prod"});
        assert_eq!(stack_of(row.as_object().unwrap()), Some("web.prod"));
    }

    #[test]
    fn a_policy_reads_back_as_it_is_written() {
        for p in [Policy::Adopt, Policy::Revert, Policy::Report] {
            assert_eq!(p.to_string().parse::<Policy>(), Ok(p));
        }
        assert_eq!(
            "Adopt".parse::<Policy>(),
            Err(UnknownPolicy("Adopt".to_owned()))
        );
    }
}
