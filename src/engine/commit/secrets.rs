//! Write-only values (a database's master password, an instance's user
//! data) on their way to the provider call.
//!
//! They never rest in a row: `infra.keep_secret()` (schema 0580) moves them
//! out of the row before it is stored, into the transaction-local setting
//! `infra.secrets`, keyed by table and row key. Here the commit path puts
//! them back into the captured rows it plans from, in memory only. The plan,
//! its NOTICEs and `infra.plan` show them as `(secret)`; the journal leaves
//! them out.

use infrasql_provider::{Props, ROW_KEY};
use serde_json::Value;

use crate::engine::hook::{CommitContext, HookError};

/// A captured row change: table, row before, row after.
pub type Captured = (String, Option<Props>, Option<Props>);

/// The secrets this transaction's statements moved out of their rows.
pub async fn held(ctx: &mut dyn CommitContext) -> Result<Props, HookError> {
    let rows = ctx
        .query("SELECT current_setting('infra.secrets', true)")
        .await?;
    let text = rows.first().and_then(|r| r[0].clone()).unwrap_or_default();
    Ok(parse(&text))
}

fn parse(text: &str) -> Props {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        _ => Props::new(),
    }
}

/// Put each row's secrets back into its captured after-images, so the
/// planner sees a password set (a change) and the create call gets it.
pub fn restore(raw: &mut [Captured], held: &Props) {
    if held.is_empty() {
        return;
    }
    for (table, _, after) in raw.iter_mut() {
        let Some(row) = after else { continue };
        let Some(key) = row.get(ROW_KEY.name).filter(|k| !k.is_null()) else {
            continue;
        };
        let key = format!("{table}:{}", key_text(key));
        if let Some(Value::Object(values)) = held.get(&key) {
            for (col, v) in values {
                row.insert(col.clone(), v.clone());
            }
        }
    }
}

// The trigger keys on `->>`: a number's digits, a string's text.
fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_rows_secret_returns_to_its_after_image_only() {
        let held = parse(r#"{"aws.db_instance:7": {"master_user_password": "s3cret"}}"#);
        let mut raw = vec![
            (
                "aws.db_instance".to_owned(),
                None,
                Some(obj(json!({"id": 7, "master_user_password": null}))),
            ),
            (
                "aws.db_instance".to_owned(),
                Some(obj(json!({"id": 8}))),
                Some(obj(json!({"id": 8}))),
            ),
            ("aws.vpc".to_owned(), None, Some(obj(json!({"id": 7})))),
        ];
        restore(&mut raw, &held);
        assert_eq!(
            raw[0].2.as_ref().unwrap()["master_user_password"],
            json!("s3cret")
        );
        assert!(!raw[1]
            .2
            .as_ref()
            .unwrap()
            .contains_key("master_user_password"));
        assert!(!raw[2]
            .2
            .as_ref()
            .unwrap()
            .contains_key("master_user_password"));
    }

    #[test]
    fn no_setting_means_no_secrets() {
        assert!(parse("").is_empty());
        assert!(parse("not json").is_empty());
    }
}
