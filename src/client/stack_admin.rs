//! `infrasql stack delete NAME` and `infrasql stack confirm NAME`: the two
//! things a person decides about a stack that its files cannot say.

use anyhow::bail;

use super::connect;
use super::sql::server_error;

/// Delete every resource of the stack (a stack run that declares nothing,
/// so the prune goes through the normal COMMIT path), then forget it.
/// A stack whose directory is still in the agent's repository comes back
/// on its next round: remove the directory first, or set `delete = true`.
pub async fn delete(
    url: Option<&str>,
    name: &str,
    allow_mass_delete: bool,
) -> anyhow::Result<String> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    let exists = client
        .query_opt("SELECT 1 FROM infra.stack_state WHERE name = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        bail!("stack {name} does not exist (SELECT name FROM infra.stack lists them)");
    }
    let stack = super::stack::Stack {
        name: name.to_owned(),
        adopt: false,
        prune: true,
        origin: None,
    };
    client.batch_execute("BEGIN").await?;
    let r = async {
        if allow_mass_delete {
            client
                .batch_execute("SET LOCAL infra.allow_mass_delete = on")
                .await?;
        }
        let summary = super::stack::declare(&client, &stack, &[]).await?;
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| anyhow::anyhow!("COMMIT failed: {}", server_error(&e)))?;
        anyhow::Ok(summary)
    }
    .await;
    let summary = match r {
        Ok(s) => s,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.context(format!("stack {name}: cannot delete its resources")));
        }
    };
    client
        .execute("SELECT infra.stack_drop($1)", &[&name])
        .await
        .map_err(|e| anyhow::anyhow!("{}", server_error(&e)))?;
    Ok(format!(
        "stack {name}: deleted ({} resource(s) pruned)",
        summary["pruned"]
    ))
}

/// Let the revision the stack waits on prune; the agent applies it next.
pub async fn confirm(url: Option<&str>, name: &str) -> anyhow::Result<String> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    let rev: String = client
        .query_one("SELECT infra.stack_confirm($1)", &[&name])
        .await
        .map_err(|e| anyhow::anyhow!("{}", server_error(&e)))?
        .get(0);
    Ok(format!(
        "stack {name}: revision {} confirmed; the agent applies it on its next round",
        &rev[..rev.len().min(12)]
    ))
}
