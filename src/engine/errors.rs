//! One table from failure class to SQLSTATE, so every path reports the same
//! class of failure the same way.
//!
//! | SQLSTATE | meaning |
//! | --- | --- |
//! | 22023 | AWS rejected the request as invalid (bad value in a row) |
//! | IX001 | AWS refused: conflict with existing state (duplicate, overlap, dependency) |
//! | IX002 | a resource the change needs does not exist in AWS |
//! | IX003 | AWS throttled the requests, even after retries |
//! | IX004 | the AWS credentials are not allowed to do this |
//! | IX005 | AWS could not be reached or failed internally |
//! | IX010 | the plan is invalid (cycle, unmanaged table) |
//! | 2BP01 | a replace while other rows still use the resource (PostgreSQL's "dependent objects still exist") |
//! | 55000 | a replace that would destroy data, without `infra.allow_replace` |
//! | IX100 | a change to a resource table bypassed infrasql (raised by the database) |
//! | 428C9 | a cloud-assigned column was written (raised by the database) |
//! | 23514 | a value AWS would refuse, found at the statement (raised by the database, `schema/0530_local_checks.sql`) |
//! | 0A000 | PREPARE TRANSACTION of a transaction that changes resource tables |
//! | 22023 | an `infra.*` setting given a value of the wrong type (at SET, or at COMMIT before any AWS call) |
//! | 42704 | an `infra.*` setting that does not exist |
//! | IX900 | infrasql's own database failed (its apply journal could not be written): nothing further was applied in AWS |
//! | 40001 and other database errors | the transaction could not commit after the apply: the database's own SQLSTATE, so drivers retry as they would; recovery makes AWS equal the committed rows |

use infrasql_provider::ErrorClass;

pub const INVALID_PLAN: &str = "IX010";
pub const DEPENDENTS_EXIST: &str = "2BP01";
pub const WOULD_LOSE_DATA: &str = "55000";
pub const BYPASSED_INFRASQL: &str = "IX100";
pub const TWO_PHASE_REFUSED: &str = "0A000";
pub const BAD_SETTING_VALUE: &str = "22023";
pub const UNKNOWN_SETTING: &str = "42704";

/// infrasql's own failure, not AWS's: its database (the journal) failed.
pub const INFRASQL_FAILED: &str = "IX900";
pub const INFRASQL_FAILED_HINT: &str =
    "infrasql's own database failed; see the server log, then run the transaction again.";

pub fn sqlstate(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Invalid => "22023",
        ErrorClass::Conflict => "IX001",
        ErrorClass::NotFound => "IX002",
        ErrorClass::Throttled => "IX003",
        ErrorClass::Denied => "IX004",
        ErrorClass::Retryable => "IX005",
    }
}

pub fn hint(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Invalid => "Fix the row's values and run the transaction again.",
        ErrorClass::Conflict => "Something in AWS conflicts with this change; see the AWS message.",
        ErrorClass::NotFound => {
            "Run SELECT infra.sync() to refresh the rows from AWS, then try again."
        }
        ErrorClass::Throttled => "AWS is rate limiting; try again in a moment.",
        ErrorClass::Denied => "Check the IAM permissions of the credentials infrasql runs with.",
        ErrorClass::Retryable => "AWS could not be reached or failed; try again.",
    }
}
