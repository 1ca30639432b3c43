//! Deleting a DB instance: with the final snapshot its row chose, then
//! waiting until AWS no longer lists it.

use std::time::{Duration, Instant};

use infrasql_provider::{ApplyContext, ErrorClass, Props, PropsExt, ProviderError};

use super::super::FinalSnapshot;
use super::DbInstance;
use crate::sdk::{deleted, if_found};

/// How long a delete waits for the database to go (AWS takes minutes).
const DELETE_WAIT: Duration = Duration::from_secs(60 * 60);

/// The row's choice, or none for a cluster member: its data is the
/// cluster's, and AWS takes no final snapshot of it (and refuses
/// FinalDBSnapshotIdentifier).
fn final_snapshot(id: &str, current: &Props, apply_id: &str) -> Option<FinalSnapshot> {
    if current.str("db_cluster_identifier").is_some() {
        return Some(FinalSnapshot::Skip);
    }
    super::super::final_snapshot(id, current, apply_id)
}

impl DbInstance {
    pub(super) async fn delete_with_choice(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let region = ctx.region.as_str();
        // The database `current` describes: the engine names the delete
        // half of a replace that also renames by the row's new name.
        let id = current.str("db_instance_identifier").unwrap_or(id);
        let choice = final_snapshot(id, current, &ctx.apply_id).ok_or_else(|| {
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
    use infrasql_provider::APPLY_TAG;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Props {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_final_snapshot_follows_the_rows_choice() {
        let keep = row(json!({"skip_final_snapshot": false, "final_snapshot_identifier": "last"}));
        assert_eq!(
            final_snapshot("shop", &keep, "a1"),
            Some(FinalSnapshot::Keep("last".into()))
        );
        let skip = row(json!({"skip_final_snapshot": true, "final_snapshot_identifier": null}));
        assert_eq!(
            final_snapshot("shop", &skip, "a1"),
            Some(FinalSnapshot::Skip)
        );
        let neither = row(json!({"skip_final_snapshot": false, "final_snapshot_identifier": null}));
        assert_eq!(final_snapshot("shop", &neither, "a1"), None);
    }

    #[test]
    fn a_delete_not_made_from_a_row_keeps_a_snapshot() {
        match final_snapshot("shop", &Props::new(), "a1") {
            Some(FinalSnapshot::Keep(name)) => assert!(name.starts_with("shop-final-"), "{name}"),
            other => panic!("{other:?}"),
        }
        // Made by this very apply (an undo of its create): nothing to keep.
        let made = row(json!({APPLY_TAG: "a1"}));
        assert_eq!(
            final_snapshot("shop", &made, "a1"),
            Some(FinalSnapshot::Skip)
        );
        let other = row(json!({APPLY_TAG: "a0"}));
        assert!(matches!(
            final_snapshot("shop", &other, "a1"),
            Some(FinalSnapshot::Keep(_))
        ));
    }

    #[test]
    fn a_cluster_member_takes_no_final_snapshot() {
        let member = row(json!({"db_cluster_identifier": "c1", "skip_final_snapshot": false}));
        assert_eq!(
            final_snapshot("shop", &member, "a1"),
            Some(FinalSnapshot::Skip)
        );
    }
}
