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

/// A policy row: (tag_key, tag_value, policy); '' key = the table default.
pub type PolicyRow = (String, String, Policy);

/// The policy for a resource with `tags`: a row matching one of its tags,
/// else the table's default, else adopt.
pub fn policy_for(policies: &[PolicyRow], tags: Option<&Value>) -> Policy {
    let tagged = policies.iter().find(|(k, v, _)| {
        !k.is_empty() && tags.and_then(|t| t.get(k)).and_then(Value::as_str) == Some(v.as_str())
    });
    tagged
        .or_else(|| policies.iter().find(|(k, _, _)| k.is_empty()))
        .map(|(_, _, p)| *p)
        .unwrap_or(Policy::Adopt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_most_specific_policy_wins_and_adopt_is_the_default() {
        let p = vec![
            (String::new(), String::new(), Policy::Report),
            ("env".to_owned(), "prod".to_owned(), Policy::Revert),
        ];
        assert_eq!(
            policy_for(&p, Some(&json!({"env": "prod"}))),
            Policy::Revert
        );
        assert_eq!(policy_for(&p, Some(&json!({"env": "dev"}))), Policy::Report);
        assert_eq!(policy_for(&[], Some(&json!({}))), Policy::Adopt);
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
