//! One ChangeResourceRecordSets per zone for the record changes of a
//! commit that arrive together.
//!
//! The engine runs the independent steps of a plan level concurrently, so
//! ten records inserted in one commit are ten `create` calls in flight at
//! once. The first change for a zone opens a batch and a task that waits
//! until no further change has joined for [`QUIET`] (or [`MAX_WAIT`]
//! passed since it opened, or the batch is full), then sends the whole
//! batch in one call. AWS applies a batch atomically, so every caller gets
//! the batch's answer: all made, or all refused with AWS's error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_route53::types::{Change, ChangeBatch};
use infrasql_aws::sdk::classify;
use infrasql_aws::{Clients, GLOBAL_REGION};
use infrasql_provider::{ErrorClass, ProviderError};
use tokio::sync::oneshot;

/// How long a batch stays open after the last change joined it.
const QUIET: Duration = Duration::from_millis(40);
/// The longest a change waits for others.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// AWS's limit of changes in one batch.
const MAX_CHANGES: usize = 1000;

type Answer = Result<(), ProviderError>;

struct Open {
    changes: Vec<Change>,
    waiters: Vec<oneshot::Sender<Answer>>,
    opened: Instant,
    last: Instant,
}

enum Taken {
    Batch(Open),
    Gone,
    Open,
}

pub struct Batcher {
    clients: Arc<Clients>,
    open: Mutex<HashMap<String, Open>>,
}

impl Batcher {
    pub fn new(clients: Arc<Clients>) -> Arc<Batcher> {
        Arc::new(Batcher {
            clients,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Send `change` to zone `zone` with the changes that arrive with it;
    /// the answer of the batch it went in.
    pub async fn submit(self: &Arc<Self>, zone: &str, change: Change) -> Answer {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let leads = {
            let mut open = self.open.lock().expect("batch lock");
            match open.get_mut(zone) {
                Some(b) if b.changes.len() < MAX_CHANGES => {
                    b.changes.push(change);
                    b.waiters.push(tx);
                    b.last = now;
                    false
                }
                _ => {
                    // A full batch is already on its way out under this key
                    // only until its task takes it; a new one replaces it.
                    if let Some(full) = open.remove(zone) {
                        self.spawn_send(zone.to_owned(), full);
                    }
                    open.insert(
                        zone.to_owned(),
                        Open {
                            changes: vec![change],
                            waiters: vec![tx],
                            opened: now,
                            last: now,
                        },
                    );
                    true
                }
            }
        };
        if leads {
            // A task of its own: the batch goes out even if this caller's
            // future is dropped.
            let me = Arc::clone(self);
            let zone = zone.to_owned();
            tokio::spawn(async move { me.close_when_quiet(zone, now).await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(ProviderError::new(
                ErrorClass::Retryable,
                "BatchLost",
                "the record change batch was dropped before it was sent",
            ))
        })
    }

    /// Send the batch of `zone` opened at `opened` once it is quiet.
    async fn close_when_quiet(self: Arc<Self>, zone: String, opened: Instant) {
        loop {
            tokio::time::sleep(QUIET).await;
            match self.take_if_quiet(&zone, opened) {
                Taken::Batch(b) => return self.send(&zone, b).await,
                Taken::Gone => return,
                Taken::Open => {}
            }
        }
    }

    fn take_if_quiet(&self, zone: &str, opened: Instant) -> Taken {
        let mut open = self.open.lock().expect("batch lock");
        // Gone (it filled up and was sent) or replaced by a newer batch,
        // which has its own task.
        let Some(b) = open.get(zone).filter(|b| b.opened == opened) else {
            return Taken::Gone;
        };
        if b.last.elapsed() >= QUIET || b.opened.elapsed() >= MAX_WAIT {
            Taken::Batch(open.remove(zone).expect("present"))
        } else {
            Taken::Open
        }
    }

    fn spawn_send(self: &Arc<Self>, zone: String, b: Open) {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.send(&zone, b).await });
    }

    async fn send(&self, zone: &str, b: Open) {
        let answer = match ChangeBatch::builder().set_changes(Some(b.changes)).build() {
            Ok(batch) => {
                let r53 = crate::client(&self.clients, GLOBAL_REGION).await;
                r53.change_resource_record_sets()
                    .hosted_zone_id(zone)
                    .change_batch(batch)
                    .send()
                    .await
                    .map(drop)
                    .map_err(classify)
            }
            Err(e) => Err(ProviderError::invalid(e.to_string())),
        };
        for w in b.waiters {
            let _ = w.send(answer.clone());
        }
    }
}
