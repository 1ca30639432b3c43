//! Deleting a DB instance: with the final snapshot its row chose, then
//! waiting until AWS no longer lists it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use infrasql_provider::{ErrorClass, Props, PropsExt, ProviderError};

use super::DbInstance;
use crate::sdk::{deleted, if_found};

/// How long a delete waits for the database to go (AWS takes minutes).
const DELETE_WAIT: Duration = Duration::from_secs(60 * 60);

/// How a delete ends: with a snapshot of this name, or none.
#[derive(Debug, PartialEq)]
enum FinalSnapshot {
    Keep(String),
    Skip,
}

/// The row's choice; `None` when the props came from a row that made none
/// (the schema's trigger refuses that DELETE, so this is a second guard).
fn final_snapshot(id: &str, current: &Props) -> Option<FinalSnapshot> {
    if let Some(name) = current.str("final_snapshot_identifier") {
        return Some(FinalSnapshot::Keep(name.to_owned()));
    }
    match current.bool("skip_final_snapshot") {
        Some(true) => Some(FinalSnapshot::Skip),
        Some(false) => None,
        // Not a row (see the module doc): keep everything.
        None => {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Some(FinalSnapshot::Keep(format!("{id}-final-{secs}")))
        }
    }
}

impl DbInstance {
    pub(super) async fn delete_with_choice(
        &self,
        region: &str,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        // The database `current` describes: the engine names the delete
        // half of a replace that also renames by the row's new name.
        let id = current.str("db_instance_identifier").unwrap_or(id);
        let choice = final_snapshot(id, current).ok_or_else(|| {
            ProviderError::invalid(format!(
                "DB instance {id}: set skip_final_snapshot or final_snapshot_identifier (and COMMIT) before deleting it"
            ))
        })?;
        {
            let rds = self.clients.rds(region).await;
            let call = rds.delete_db_instance().db_instance_identifier(id);
            let call = match choice {
                FinalSnapshot::Keep(name) => call
                    .skip_final_snapshot(false)
                    .final_db_snapshot_identifier(name),
                FinalSnapshot::Skip => call.skip_final_snapshot(true),
            };
            deleted(call.send().await)?;
        }
        // Until it is gone, its subnet group and security groups are in use.
        let mut pause = Duration::from_secs(1);
        let start = Instant::now();
        while if_found(self.describe(region, id).await)?.is_some() {
            if start.elapsed() > DELETE_WAIT {
                return Err(ProviderError::new(
                    ErrorClass::Retryable,
                    "DeleteTimedOut",
                    format!("DB instance {id} was still being deleted after an hour"),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Props {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_final_snapshot_follows_the_rows_choice() {
        let keep = row(json!({"skip_final_snapshot": false, "final_snapshot_identifier": "last"}));
        assert_eq!(
            final_snapshot("shop", &keep),
            Some(FinalSnapshot::Keep("last".into()))
        );
        let skip = row(json!({"skip_final_snapshot": true, "final_snapshot_identifier": null}));
        assert_eq!(final_snapshot("shop", &skip), Some(FinalSnapshot::Skip));
        let neither = row(json!({"skip_final_snapshot": false, "final_snapshot_identifier": null}));
        assert_eq!(final_snapshot("shop", &neither), None);
    }

    #[test]
    fn a_delete_not_made_from_a_row_keeps_a_snapshot() {
        match final_snapshot("shop", &Props::new()) {
            Some(FinalSnapshot::Keep(name)) => assert!(name.starts_with("shop-final-"), "{name}"),
            other => panic!("{other:?}"),
        }
    }
}
