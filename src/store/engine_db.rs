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

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio_postgres::{Client, Config, NoTls};

/// Idle sessions kept for reuse; more are closed when handed back.
const MAX_IDLE: usize = 8;

pub struct EngineDb {
    config: Config,
    shared: tokio::sync::Mutex<Option<Arc<Client>>>,
    idle: Mutex<Vec<Client>>,
}

impl EngineDb {
    pub fn new(config: Config) -> Self {
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
        let reused = {
            let mut idle = self.idle.lock().expect("idle list lock poisoned");
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Session {
            client: Some(client),
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
            idle.push(client);
        }
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
