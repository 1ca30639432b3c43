//! Who commits, from where, and what the change says it is: the first
//! columns of the apply history (`infra.apply`), read in the client's
//! transaction before any AWS call.

use super::super::hook::{CommitContext, HookError};
use super::super::journal::Committer;
use super::super::settings;

/// The committer of the client's transaction. A bad `infra.apply_source`
/// refuses the COMMIT (22023): a label a tool asked for is never dropped.
pub(super) async fn committer(ctx: &mut dyn CommitContext) -> Result<Committer, HookError> {
    let source = settings::source_setting(ctx).await?;
    let author = settings::author_setting(ctx).await?;
    // application_name is the client's: the wire passes the startup
    // packet's on to the backend, and a SET changes it there.
    let rows = ctx
        .query(
            "SELECT session_user, pg_current_xact_id()::text, \
             nullif(current_setting('application_name', true), '')",
        )
        .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let mut cols = row.into_iter();
    let mut next = || cols.next().flatten();
    Ok(Committer {
        user: next().unwrap_or_default(),
        xid: next().unwrap_or_default(),
        application_name: next(),
        client_addr: ctx.client_addr(),
        source,
        author,
    })
}
