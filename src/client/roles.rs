//! `infrasql role add NAME --reader|--operator|--admin` and `infrasql role
//! scope NAME --tag KEY=VALUE | --stack NAME`, run by an admin on a running
//! infrasql (`infra.role_add`, `infra.role_scope`, schema/0980_roles.sql).

use anyhow::{anyhow, bail};

use super::connect;
use super::sql::server_error;

/// What a new login role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Kind {
    /// SELECT on inventory, drift, plans and history (BI tools).
    #[arg(long)]
    pub reader: bool,
    /// Also INSERT, UPDATE and DELETE on aws.* (and COMMIT them).
    #[arg(long)]
    pub operator: bool,
    /// Also policies, drift policies, stack decisions and roles.
    #[arg(long)]
    pub admin: bool,
}

impl Kind {
    fn as_str(&self) -> &'static str {
        if self.admin {
            "admin"
        } else if self.operator {
            "operator"
        } else {
            "reader"
        }
    }
}

/// What a scope limits a role to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tag { key: String, value: String },
    Stack(String),
}

impl Scope {
    /// `--tag key=value` or `--stack name` (pure, unit-tested).
    pub fn parse(tag: Option<&str>, stack: Option<&str>) -> anyhow::Result<Scope> {
        match (tag, stack) {
            (Some(t), None) => match t.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok(Scope::Tag {
                    key: k.to_owned(),
                    value: v.to_owned(),
                }),
                _ => bail!("--tag {t:?}: expected KEY=VALUE"),
            },
            (None, Some(s)) if !s.is_empty() => Ok(Scope::Stack(s.to_owned())),
            _ => bail!("give one of --tag KEY=VALUE or --stack NAME"),
        }
    }
}

/// The created role's group and its password, which is shown once and kept
/// nowhere: only its SCRAM verifier reaches the server.
pub async fn add(url: Option<&str>, name: &str, kind: Kind) -> anyhow::Result<(String, String)> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    let password = crate::store::cluster::generate_password();
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let group: String = client
        .query_one(
            "SELECT infra.role_add($1, $2, $3)",
            &[&name, &kind.as_str(), &verifier],
        )
        .await
        .map_err(|e| anyhow!("cannot add role {name}: {}", server_error(&e)))?
        .get(0);
    Ok((group, password))
}

pub async fn scope(url: Option<&str>, name: &str, scope: &Scope) -> anyhow::Result<String> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    let (kind, key, value, what) = match scope {
        Scope::Tag { key, value } => (
            "tag",
            key.as_str(),
            value.as_str(),
            format!("tag {key}={value}"),
        ),
        Scope::Stack(s) => ("stack", "", s.as_str(), format!("stack {s}")),
    };
    client
        .execute(
            "SELECT infra.role_scope($1, $2, $3, $4)",
            &[&name, &kind, &key, &value],
        )
        .await
        .map_err(|e| anyhow!("cannot scope role {name}: {}", server_error(&e)))?;
    Ok(format!(
        "role {name}: limited to resources with {what} (SELECT * FROM infra.role_scope lists the scopes)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_one_tag_or_one_stack() {
        assert_eq!(
            Scope::parse(Some("team=payments"), None).unwrap(),
            Scope::Tag {
                key: "team".into(),
                value: "payments".into()
            }
        );
        assert_eq!(
            Scope::parse(Some("k=a=b"), None).unwrap(),
            Scope::Tag {
                key: "k".into(),
                value: "a=b".into()
            }
        );
        assert_eq!(
            Scope::parse(None, Some("web")).unwrap(),
            Scope::Stack("web".into())
        );
        assert!(Scope::parse(Some("team"), None).is_err());
        assert!(Scope::parse(Some("=x"), None).is_err());
        assert!(Scope::parse(None, None).is_err());
    }
}
