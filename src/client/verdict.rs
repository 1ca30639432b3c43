//! The policies' verdicts on a plan, as `infrasql plan` shows them: read
//! from `infra.plan_policy`, which the server fills with the *committed*
//! policies' judgement (a file cannot edit the policies that judge it).
//! Pure rendering; a deny, or a policy that could not run, is what COMMIT
//! would refuse, so `plan` exits 1 on either.

use std::fmt::Write;

use serde_json::{json, Value};

/// One row of `infra.plan_policy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub policy: String,
    /// `deny` or `warn`.
    pub severity: String,
    pub message: String,
    pub resource_id: Option<String>,
    pub offending: Option<Value>,
    /// Why the policy's query failed.
    pub error: Option<String>,
}

impl Verdict {
    /// True when COMMIT would refuse this transaction because of it.
    pub fn refuses(&self) -> bool {
        self.severity == "deny" || self.error.is_some()
    }

    fn what(&self) -> String {
        match (&self.error, &self.resource_id) {
            (Some(e), _) => format!("could not be checked: {e}"),
            (None, Some(id)) => id.clone(),
            (None, None) => "-".into(),
        }
    }

    fn label(&self) -> &str {
        if self.error.is_some() {
            "error"
        } else {
            &self.severity
        }
    }
}

pub fn refused(verdicts: &[Verdict]) -> bool {
    verdicts.iter().any(Verdict::refuses)
}

/// Lines after the plan table; nothing when no policy found anything.
pub fn table(verdicts: &[Verdict]) -> String {
    let mut s = String::new();
    for v in verdicts {
        let _ = writeln!(
            s,
            "! policy {} ({}): {}: {}",
            v.policy,
            v.label(),
            v.message,
            v.what()
        );
    }
    if refused(verdicts) {
        let _ = writeln!(s, "Policies: COMMIT would be refused.");
    }
    s
}

pub fn markdown(verdicts: &[Verdict]) -> String {
    if verdicts.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n### Policies\n\n");
    if refused(verdicts) {
        s.push_str("**COMMIT would be refused.**\n\n");
    }
    s.push_str("| policy | severity | message | resource |\n| --- | --- | --- | --- |\n");
    for v in verdicts {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            cell(&v.policy),
            v.label(),
            cell(&v.message),
            cell(&v.what())
        );
    }
    s
}

pub fn to_json(verdicts: &[Verdict]) -> Value {
    Value::Array(
        verdicts
            .iter()
            .map(|v| {
                json!({
                    "policy": v.policy,
                    "severity": v.severity,
                    "message": v.message,
                    "resource_id": v.resource_id,
                    "offending": v.offending,
                    "error": v.error,
                    "refuses": v.refuses(),
                })
            })
            .collect(),
    )
}

/// Text safe inside a Markdown table cell.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(severity: &str, error: Option<&str>) -> Verdict {
        Verdict {
            policy: "no-ssh".into(),
            severity: severity.into(),
            message: "no SSH | from anywhere".into(),
            resource_id: Some("sgr-1".into()),
            offending: Some(json!({"from_port": 22})),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_deny_or_a_failed_query_refuses_a_warn_does_not() {
        assert!(refused(&[v("deny", None)]));
        assert!(refused(&[v("warn", Some("syntax error"))]));
        assert!(!refused(&[v("warn", None)]));
        assert!(!refused(&[]));
    }

    #[test]
    fn every_format_names_the_policy_and_the_resource() {
        let vs = [v("deny", None)];
        assert!(table(&vs).contains("! policy no-ssh (deny): no SSH | from anywhere: sgr-1"));
        let md = markdown(&vs);
        assert!(
            md.contains("| no-ssh | deny | no SSH \\| from anywhere | sgr-1 |"),
            "{md}"
        );
        assert!(md.contains("COMMIT would be refused"));
        assert_eq!(to_json(&vs)[0]["refuses"], json!(true));
        assert_eq!(table(&[]), "");
        assert_eq!(markdown(&[]), "");
    }
}
