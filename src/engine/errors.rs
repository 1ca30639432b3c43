//! One table from failure class to SQLSTATE, so every path reports the same
//! class of failure the same way. Every SQLSTATE infrasql writes itself is a
//! constant here; codes raised by the database are listed for reference.
//!
//! | SQLSTATE | constant | meaning |
//! | --- | --- | --- |
//! | 22023 | `AWS_INVALID` | AWS rejected the request as invalid (bad value in a row) |
//! | IX001 | `AWS_CONFLICT` | AWS refused: conflict with existing state (duplicate, overlap, dependency) |
//! | IX001 | `AWS_CONFLICT` | also: a DELETE of an S3 bucket that still holds objects, without `force_destroy` (AWS's `BucketNotEmpty`; the HINT names `force_destroy`), and a new bucket whose name is taken (`BucketAlreadyExists`, `BucketAlreadyOwnedByYou`); a provider's own HINT replaces the class's |
//! | IX002 | `AWS_NOT_FOUND` | a resource the change needs does not exist in AWS |
//! | IX003 | `AWS_THROTTLED` | AWS throttled the requests, even after retries |
//! | IX004 | `AWS_DENIED` | the AWS credentials are not allowed to do this |
//! | IX005 | `AWS_UNAVAILABLE` | AWS could not be reached or failed internally |
//! | IX010 | `INVALID_PLAN` | the plan is invalid (cycle, unmanaged table) |
//! | 2BP01 | `DEPENDENTS_EXIST` | a replace while other rows still use the resource (PostgreSQL's "dependent objects still exist") |
//! | 55000 | `WOULD_LOSE_DATA` | a replace that would destroy data, without `infra.allow_replace` |
//! | 55000 | | a DELETE (or replace) of a DB instance or DB cluster with deletion protection on, or without a committed `skip_final_snapshot` / `final_snapshot_identifier` (raised by the database at the statement, before any AWS call: `schema/0630_aws_db_instance.sql`, `schema/0640_aws_db_cluster.sql`) |
//! | 55000 | `MASS_DELETE_REFUSED` | a COMMIT that deletes more than `infra.max_deletes` resources, without `infra.allow_mass_delete` |
//! | IX100 | `BYPASSED_INFRASQL` | a change to a resource table (or a join table of one) bypassed infrasql: a direct connection to the backend, or an autocommit statement that wrote through a function or rule, which the proxy cannot tell from a read; its DETAIL says which (raised by the database, `schema/1030_commit_path_message.sql`) |
//! | IX200 | `POLICY_DENIED` | a `deny` policy (`infra.policy`) returned a resource the transaction creates, changes or deletes; checked at COMMIT before any AWS call |
//! | IX201 | `POLICY_FAILED` | a policy's query failed at COMMIT (or has no `resource_id` column): the COMMIT is refused, nothing applied |
//! | 428C9 | | a cloud-assigned column was written (raised by the database) |
//! | 23514 | | a value AWS would refuse, found at the statement (raised by the database, `schema/0530_local_checks.sql`, `schema/0560_instance_security_group.sql`) |
//! | 42501 | | a user's write that adds, changes or removes a tag whose key starts with `aws:` (any case): AWS reserves them; tags sync imported stay (raised by the database, `schema/0990_tag_checks.sql`) |
//! | 22001 | | a tag key over 128 characters, a tag value over 256, an EC2 resource's `name` (its Name tag) over 256 (raised by the database at the statement, `schema/0990_tag_checks.sql`); a text value over a column's limit |
//! | 23503 | | a security group rule's `referenced_group_id` that is a provisional id no security group row has (raised by the database, `schema/0990_tag_checks.sql`) |
//! | 22023 | | an empty tag key, or a tag value that is a JSON object or array (raised by the database, `schema/0990_tag_checks.sql`) |
//! | 22P02, 22003, 23502, 23503, 22021 | | a value of the wrong type, out of range, NULL in a required column, a reference to no row, NUL in text: PostgreSQL's own, at the statement (the catalogue in `docs/bad_input.md`) |
//! | 0A000 | `TWO_PHASE_REFUSED` | PREPARE TRANSACTION of a transaction that changes resource tables |
//! | 22023 | `BAD_SETTING_VALUE` | an `infra.*` setting given a value of the wrong type (at SET, or at COMMIT before any AWS call) |
//! | 42704 | `UNKNOWN_SETTING` | an `infra.*` setting that does not exist |
//! | 25P01 | `NO_ACTIVE_TRANSACTION` | `COMMIT AND CHAIN` of an implicit transaction (PostgreSQL refuses it too; infrasql's wrapper is a real block, so it must say so itself) |
//! | 40001 and other database errors | | the transaction could not commit after the apply: the database's own SQLSTATE, so drivers retry as they would; recovery makes AWS equal the committed rows |
//! | 57014 | `QUERY_CANCELED` | a COMMIT whose apply was stopped by a cancel request (CancelRequest, `infra.cancel_apply`) or `infra.apply_timeout`, and undone |
//! | 42704 | | `infra.cancel_apply` of an apply that does not exist (raised by the database) |
//! | 42501 | | `infra.cancel_apply` of another role's apply (raised by the database) |
//! | 42704 | | `infra.revert` of an apply that does not exist (raised by the database, `schema/0730_revert.sql`) |
//! | 55000 | | `infra.revert` of an apply that did not succeed (the message names its status), or that a later apply touched (the message names that apply); a revert script that would re-create a resource that held data or had write-only values, run without `infra.allow_replace = on` (`infra.require_setting`) (raised by the database, `schema/0730_revert.sql`) |
//! | 55000 | | `infra.stack_confirm` of a stack that is not waiting for confirmation (DETAIL: its status) (raised by the database, `schema/0770_gitops.sql`) |
//! | 42704 | | `infra.stack_drop` of a stack that does not exist (raised by the database, `schema/0770_gitops.sql`) |
//! | 2BP01 | | `infra.stack_drop` of a stack that still has resources (raised by the database, `schema/0770_gitops.sql`) |
//! | 42501 | | a role without the right for the statement: a reader's write, an operator's write of `infra.policy`/`infra.drift_policy`; a scoped role's INSERT, or UPDATE that moves a row, outside its scope (`new row violates row-level security policy`); all raised by the database, `schema/0980_roles.sql` |
//! | 42710 | | `infra.role_add` (`infrasql role add`) of a role name that exists in the cluster (raised by the database) |
//! | 42704 | | `infra.role_scope` (`infrasql role scope`) of a role that does not exist (raised by the database) |
//! | 22023 | | `infra.role_scope` of an admin (scopes do not bind admins), `infra.role_add` with an unknown kind (raised by the database) |
//! | 42501 | | `infra.http_token_create` or `infra.http_token_revoke` (`infrasql token create`/`revoke`) by a role that is not an admin (raised by the database, `schema/1020_http_token.sql`) |
//! | 22023 | | `infra.http_token_create` with a kind other than reader or admin, or a value that is not a SHA-256 in hex (raised by the database) |
//! | 42704 | | `infra.http_token_revoke` of a token id that does not exist (raised by the database) |
//! | IX900 | `INFRASQL_FAILED` | infrasql's own database failed (its apply journal could not be written): nothing further was applied in AWS |
//! | XX000 | `INTERNAL` | infrasql failed internally (the apply task died); also a backend error that carried no code |
//!
//! Connections and the protocol, as PostgreSQL reports them:
//!
//! | SQLSTATE | constant | meaning |
//! | --- | --- | --- |
//! | 08P01 | `PROTOCOL_VIOLATION` | a client (or the backend) sent a malformed or unexpected message; the session ends |
//! | 0A000 | `UNSUPPORTED_CONNECTION` | a protocol version other than 3.x, or a replication connection |
//! | 28000 | `LOGIN_REFUSED` | no user name, a role reserved to infrasql's engine, a backend that did not ask for SCRAM under `--auth scram`, or a client without TLS under `--tls-required` ("this server requires TLS") |
//! | 53300 | `TOO_MANY_CONNECTIONS` | `--max-connections` clients are connected already; the next one is refused at startup |
//! | 54000 | `MESSAGE_TOO_LARGE` | a client message longer than infrasql accepts (`wire::protocol::MAX_CLIENT_MESSAGE`), refused by its length header before it is read; the session ends |
//! | 57P03 | `BACKEND_UNAVAILABLE` | the backend PostgreSQL cannot be reached (the embedded one is restarting) |
//! | 57P01 | `SHUTTING_DOWN` | infrasql is shutting down and closes an idle session |
//! | 08006 | `CONNECTION_LOST` | the connection to the backend (or, during the commit hook, to the client) was lost |
//! | 42601 | `SYNTAX_ERROR` | recognised in the backend's answers: a syntax error anywhere in a multi-statement query stops the whole string |
//! | 00000 | `NOTICE` | the code of infrasql's own NOTICEs (plan lines, apply progress) |
//!
//! The HTTP listener (`--http`, `src/http`) answers with statuses, not
//! SQLSTATEs: 401 with `WWW-Authenticate: Bearer` for a request without a
//! token or with an unknown or revoked one; 403 when the database refuses
//! the token's role a page's query (42501); 404 for no such page, table
//! or apply; 405 for a method other than GET; 503 when the database does
//! not answer (and from `/readyz` until every schema file is applied).

use infrasql_provider::ErrorClass;

pub const AWS_INVALID: &str = "22023";
pub const AWS_CONFLICT: &str = "IX001";
pub const AWS_NOT_FOUND: &str = "IX002";
pub const AWS_THROTTLED: &str = "IX003";
pub const AWS_DENIED: &str = "IX004";
pub const AWS_UNAVAILABLE: &str = "IX005";
pub const INVALID_PLAN: &str = "IX010";
pub const DEPENDENTS_EXIST: &str = "2BP01";
pub const WOULD_LOSE_DATA: &str = "55000";
pub const MASS_DELETE_REFUSED: &str = "55000";
pub const BYPASSED_INFRASQL: &str = "IX100";
pub const POLICY_DENIED: &str = "IX200";
pub const POLICY_FAILED: &str = "IX201";
pub const TWO_PHASE_REFUSED: &str = "0A000";
pub const BAD_SETTING_VALUE: &str = "22023";
pub const UNKNOWN_SETTING: &str = "42704";
pub const NO_ACTIVE_TRANSACTION: &str = "25P01";
pub const INTERNAL: &str = "XX000";
pub const QUERY_CANCELED: &str = "57014";

pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const UNSUPPORTED_CONNECTION: &str = "0A000";
pub const LOGIN_REFUSED: &str = "28000";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const MESSAGE_TOO_LARGE: &str = "54000";
pub const BACKEND_UNAVAILABLE: &str = "57P03";
pub const SHUTTING_DOWN: &str = "57P01";
pub const CONNECTION_LOST: &str = "08006";
pub const SYNTAX_ERROR: &str = "42601";
pub const NOTICE: &str = "00000";

/// infrasql's own failure, not AWS's: its database (the journal) failed.
pub const INFRASQL_FAILED: &str = "IX900";
pub const INFRASQL_FAILED_HINT: &str =
    "infrasql's own database failed; see the server log, then run the transaction again.";

pub fn sqlstate(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Invalid => AWS_INVALID,
        ErrorClass::Conflict => AWS_CONFLICT,
        ErrorClass::NotFound => AWS_NOT_FOUND,
        ErrorClass::Throttled => AWS_THROTTLED,
        ErrorClass::Denied => AWS_DENIED,
        ErrorClass::Retryable => AWS_UNAVAILABLE,
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
