//! The common cases, forwarded straight from the read buffer:
//! - a client read that holds only whole batches of Bind, Describe,
//!   Execute and Sync of statements that need nothing of infrasql (pgbench
//!   `-M prepared`, and what JDBC or node-postgres send for a prepared read);
//! - a client read that is one Query that needs nothing of infrasql.
//!
//! The general path splits every message into a frame of its own, stashes
//! it, and copies it again into the backend's buffer; for the three
//! messages of a prepared query that was most of infrasql's own work per
//! query (callgrind; bench/README.md, session 18). These paths decide from
//! the bytes in place and hand the whole read to the backend as it is.
//! Anything they are not sure of goes the general way: they only ever take
//! a read that the general path would have forwarded unchanged, with the
//! same routes, the same unnamed portal, and nothing else to remember.

use super::simple::needs_care;
use super::*;
use crate::wire::classify::Intercepts;

/// What one message of a plain batch does to the driver's state.
enum Step<'a> {
    /// A Bind of the unnamed portal to this statement.
    Bind(&'a Prepared),
    /// Describe or Execute: nothing to remember.
    Pass,
    /// A Sync: one ReadyForQuery comes back for it.
    Sync,
}

impl Driver {
    /// Forward the client's buffered bytes as they are when they are whole
    /// plain batches (see the module's doc). Returns whether it did; if not,
    /// nothing changed and the general path takes the bytes.
    pub(super) fn forward_plain_batches(&mut self) -> bool {
        // A plain batch starts with its Bind (a Query, a Parse or COPY data
        // is not walked twice), and with no wrapper or `infra.plan` refresh
        // for a batch's Sync to settle: these are what `extended_batch`
        // looks at before it decides on care.
        if self.cbuf.first() != Some(&b'B')
            || !self.between_messages()
            || self.batch_reads_plan
            || self.wrapper
        {
            return false;
        }
        // The unnamed portal as the batches leave it, and the Syncs in them.
        let mut portal: Option<&Prepared> = self.portals.unnamed.as_ref();
        let mut rebound = false;
        let mut syncs = 0usize;
        let mut ends_with_sync = false;
        let mut pos = 0;
        let buf = &self.cbuf[..];
        while pos < buf.len() {
            let n = match frame_len(&buf[pos..], MAX_CLIENT_MESSAGE) {
                Ok(Some(n)) => n,
                // Half a message, or a bad one: the general path waits for
                // the rest or reports it.
                Ok(None) | Err(_) => return false,
            };
            let frame = &buf[pos..pos + n];
            ends_with_sync = false;
            match plain_step(frame, &self.statements, portal) {
                Some(Step::Bind(bound)) => {
                    portal = Some(bound);
                    rebound = true;
                }
                Some(Step::Pass) => {}
                Some(Step::Sync) => {
                    syncs += 1;
                    ends_with_sync = true;
                }
                None => return false,
            }
            pos += n;
        }
        // The read must end with a Sync: a batch still open could be ended
        // by a later message that needs care.
        if !ends_with_sync {
            return false;
        }
        if rebound {
            self.portals.unnamed = portal.cloned();
        }
        for _ in 0..syncs {
            self.push_route(Route::Client);
        }
        self.forward_read();
        true
    }

    /// Forward the client's buffered bytes as they are when they are one
    /// Query that needs nothing of infrasql: what `simple_query` would have
    /// forwarded unchanged after the same checks. Returns whether it did.
    pub(super) fn forward_plain_query(&mut self) -> bool {
        if self.cbuf.first() != Some(&b'Q') || !self.between_messages() {
            return false;
        }
        match frame_len(&self.cbuf, MAX_CLIENT_MESSAGE) {
            Ok(Some(n)) if n == self.cbuf.len() => {}
            _ => return false,
        }
        let mut body = &self.cbuf[5..];
        let Some(sql) = read_cstr(&mut body) else {
            return false;
        };
        if !body.is_empty() || query_intercepts(sql) != Intercepts::default() {
            return false;
        }
        let kinds: smallvec::SmallVec<[StmtKind; 2]> =
            split_statements(sql).iter().map(|s| classify(s)).collect();
        // A BEGIN would make the wrapper of a batch still in flight the
        // client's block: `simple_query` sees to that.
        if needs_care(&kinds) || (self.wrapper && kinds.first() == Some(&StmtKind::Begin)) {
            return false;
        }
        self.push_route(Route::Client);
        self.forward_read();
        true
    }

    /// Nothing read earlier is waiting (stashed, or an extended batch not
    /// yet at its Sync) and no COPY is open: the read starts afresh.
    fn between_messages(&self) -> bool {
        self.stash.is_empty() && self.batch.is_empty() && !self.batch_forwarded && !self.copy_open
    }

    /// Hand the whole read buffer to the backend's. Without a copy when
    /// nothing else is waiting to go (the usual case: the driver flushes
    /// before it reads).
    fn forward_read(&mut self) {
        if self.out.is_empty() {
            std::mem::swap(&mut self.out, &mut self.cbuf);
        } else {
            self.out.extend_from_slice(&self.cbuf);
            self.cbuf.clear();
        }
    }
}

/// What `frame` does as part of a plain batch, given the prepared
/// statements and the unnamed portal so far; `None` if it may not be part
/// of one.
fn plain_step<'a>(
    frame: &[u8],
    statements: &'a NameMap,
    portal: Option<&Prepared>,
) -> Option<Step<'a>> {
    let mut body = &frame[5..];
    match frame[0] {
        b'B' => {
            let portal_name = read_name(&mut body)?;
            let stmt = read_name(&mut body)?;
            let prepared = statements.get(stmt)?;
            (portal_name.is_empty() && plain(prepared)).then_some(Step::Bind(prepared))
        }
        b'E' => {
            let portal_name = read_name(&mut body)?;
            (portal_name.is_empty() && plain(portal?)).then_some(Step::Pass)
        }
        b'D' => Some(Step::Pass),
        b'S' => Some(Step::Sync),
        _ => None,
    }
}

/// A statement whose batch the general path forwards as it is: it needs no
/// care, starts no COPY and does not read `infra.plan`.
fn plain(p: &Prepared) -> bool {
    !p.kind.needs_care() && !p.copy_in && !p.reads_plan
}
