//! The engine's own connections to the backend, as the engine role.
//!
//! Two shapes, because the work differs:
//! - [`EngineDb::shared`]: one long-lived connection for short statements
//!   and session advisory locks (the apply journal). Statements from many
//!   tasks interleave on it, so nothing may open a transaction there.
//! - [`EngineDb::session`]: a connection for one task alone, for work that
//!   runs transactions or holds locks (a sync round, recovery). It goes back
//!   to the idle list only when the task hands it back with
//!   [`Session::done`]: a session dropped half-way (an error, a cancelled
//!   task) may still hold a lock or an open transaction, so it is closed
//!   instead, which releases both.
//!
//! A session keeps its prepared statements ([`Statements`]) while idle, and
//! [`EngineDb::session_for`] hands a task the connection it used last: a
//! sync round's pair sends the same dozen statements every round, which
//! PostgreSQL then neither parses nor plans again, and no round pays for
//! starting backends (a round runs every pair at once).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio_postgres::{Client, Config, GenericClient, NoTls, Statement};

/// Idle sessions kept for reuse; more are closed when handed back. A sync
/// round holds one per (table, region) at once (~33 with one region):
/// closing the ones above the limit made every round start that many
/// backends again, the largest part of a steady round's PostgreSQL CPU.
const MAX_IDLE: usize = 64;

/// Prepared statements kept per connection; past it the cache starts over
/// (a connection that served many pairs holds each one's statements).
const MAX_STATEMENTS: usize = 64;

pub struct EngineDb {
    config: Config,
    shared: tokio::sync::Mutex<Option<Arc<Client>>>,
    idle: Mutex<Vec<Idle>>,
}

/// An idle session: its connection, its prepared statements and the key
/// of the task that used it last.
struct Idle {
    client: Client,
    statements: Statements,
    key: Option<String>,
}

/// One connection's prepared statements, by their text.
#[derive(Default)]
pub struct Statements(Mutex<HashMap<String, Statement>>);

impl Statements {
    /// `sql` prepared on `client`'s connection: once, then from the cache.
    /// A statement is prepared outside any transaction's fate (a rollback
    /// keeps it), so one prepared in a failed round stays valid.
    pub async fn get<C: GenericClient + Sync>(
        &self,
        client: &C,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.lock().get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql).await?;
        let mut cache = self.lock();
        if cache.len() >= MAX_STATEMENTS {
            cache.clear();
        }
        cache.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.0.lock().expect("statement cache lock poisoned")
    }
}

impl EngineDb {
    pub fn new(mut config: Config) -> Self {
        // The engine's statements are prepared once per connection and run
        // with every (table, region)'s parameters. PostgreSQL plans a
        // prepared statement again at each of its first five runs (custom
        // plans), and a sync pair runs each statement once per round: most
        // of a steady round's planning (issue #15). Generic plans are
        // planned once; the engine's statements are key lookups and scans
        // of one region, which a generic plan serves as well.
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} -c plan_cache_mode=force_generic_plan"),
            _ => "-c plan_cache_mode=force_generic_plan".to_owned(),
        };
        config.options(&options);
        EngineDb {
            config,
            shared: tokio::sync::Mutex::new(None),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The shared connection, reopened when it broke.
    pub async fn shared(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut guard = self.shared.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = Arc::new(self.connect().await?);
        *guard = Some(client.clone());
        Ok(client)
    }

    /// A connection for one task alone: an idle one, or a new one.
    pub async fn session(&self) -> Result<Session<'_>, tokio_postgres::Error> {
        self.take(None).await
    }

    /// A session for a task that sends the same statements each time
    /// (a sync round's pair): the idle connection `key` used last, whose
    /// statements are prepared, if there is one.
    pub async fn session_for(&self, key: &str) -> Result<Session<'_>, tokio_postgres::Error> {
        self.take(Some(key)).await
    }

    async fn take(&self, key: Option<&str>) -> Result<Session<'_>, tokio_postgres::Error> {
        let reused = {
            let mut idle = self.idle.lock().expect("idle list lock poisoned");
            idle.retain(|i| !i.client.is_closed());
            let mine = key.and_then(|k| idle.iter().rposition(|i| i.key.as_deref() == Some(k)));
            // Else the most recently handed back, as before keys existed.
            mine.or_else(|| idle.len().checked_sub(1))
                .map(|at| idle.remove(at))
        };
        let (client, statements, last) = match reused {
            Some(i) => (i.client, i.statements, i.key),
            None => (self.connect().await?, Statements::default(), None),
        };
        Ok(Session {
            client: Some(client),
            statements,
            // A task without a key does not claim the connection.
            key: key.map(str::to_owned).or(last),
            db: self,
        })
    }

    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("engine connection ended: {e}");
            }
        });
        Ok(client)
    }
}

/// A connection held by one task; see [`EngineDb::session`].
pub struct Session<'a> {
    client: Option<Client>,
    statements: Statements,
    key: Option<String>,
    db: &'a EngineDb,
}

impl Session<'_> {
    /// Hand the connection back for reuse. Call it only when the task
    /// released every lock it took and ended every transaction it began.
    pub fn done(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut idle = self.db.idle.lock().expect("idle list lock poisoned");
        if !client.is_closed() && idle.len() < MAX_IDLE {
            idle.push(Idle {
                client,
                statements: std::mem::take(&mut self.statements),
                key: self.key.take(),
            });
        }
    }

    /// The connection and its prepared statements, borrowed together (a
    /// transaction borrows the connection for its whole life).
    pub fn split(&mut self) -> (&mut Client, &Statements) {
        (
            self.client.as_mut().expect("present until done"),
            &self.statements,
        )
    }

    pub fn statements(&self) -> &Statements {
        &self.statements
    }
}

impl Deref for Session<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until done")
    }
}

impl DerefMut for Session<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until done")
    }
}
