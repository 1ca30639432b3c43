//! Why a (table, region) round failed, sorted as the provider sorts AWS's
//! errors, so `infra.sync_status` and the backoff can tell a throttled
//! listing from a denied one or from the database.

use infrasql_provider::{ErrorClass, ProviderError};

use super::policy::UnknownPolicy;
use crate::engine::journal::JournalError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// AWS (or the way to it) failed: its code and message, and its class.
    #[error("{0}")]
    Cloud(#[from] ProviderError),
    /// The database failed: PostgreSQL's own message and SQLSTATE, not just
    /// "db error".
    #[error("{}", db_text(.0))]
    Database(#[from] tokio_postgres::Error),
    /// infrasql could not journal a revert, so it did not make it.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A drift policy the engine does not know (the column's CHECK should
    /// make this impossible).
    #[error(transparent)]
    Policy(#[from] UnknownPolicy),
    #[error("{0} is not a resource table")]
    NotAResourceTable(String),
}

impl SyncError {
    /// The provider's class, for failures of AWS.
    pub fn cloud_class(&self) -> Option<ErrorClass> {
        match self {
            SyncError::Cloud(e) => Some(e.class),
            _ => None,
        }
    }

    /// The class as `infra.sync_status.last_error_class` shows it.
    pub fn class_name(&self) -> &'static str {
        match self {
            SyncError::Cloud(e) => class_name(e.class),
            SyncError::Database(_) | SyncError::Journal(_) | SyncError::Policy(_) => "database",
            SyncError::NotAResourceTable(_) => "invalid",
        }
    }
}

/// A provider class as text: the words of `infra.sync_status`.
pub fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Retryable => "unavailable",
        ErrorClass::Throttled => "throttled",
        ErrorClass::NotFound => "not_found",
        ErrorClass::Conflict => "conflict",
        ErrorClass::Invalid => "invalid",
        ErrorClass::Denied => "denied",
    }
}

fn db_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_failure_keeps_its_class_and_aws_words() {
        let e = SyncError::from(ProviderError::new(
            ErrorClass::Denied,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ));
        assert_eq!(e.cloud_class(), Some(ErrorClass::Denied));
        assert_eq!(e.class_name(), "denied");
        assert_eq!(
            e.to_string(),
            "UnauthorizedOperation: You are not authorized to perform this operation."
        );
        let e = SyncError::from(ProviderError::new(
            ErrorClass::Retryable,
            "Unavailable",
            "x",
        ));
        assert_eq!(e.class_name(), "unavailable");
    }

    #[test]
    fn what_is_not_the_clouds_is_not_given_a_cloud_class() {
        let e = SyncError::from(UnknownPolicy("ignore".to_owned()));
        assert_eq!(e.cloud_class(), None);
        assert_eq!(e.class_name(), "database");
        assert_eq!(
            SyncError::NotAResourceTable("aws.x".to_owned()).to_string(),
            "aws.x is not a resource table"
        );
    }
}
