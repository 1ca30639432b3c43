//! infrasql's own BackendKeyData, mapped to the backend session's key.
//!
//! Clients get keys that infrasql made up, so a client can never cancel a
//! session it does not own by guessing backend pids. A cancel request also
//! raises the session's [`CancelSignal`]: during a COMMIT's apply the
//! backend is idle in its transaction, so only infrasql can stop the apply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::hook::CancelSignal;
use crate::store::BackendAddr;

#[derive(Debug, Clone)]
pub struct BackendKey {
    pub addr: BackendAddr,
    pub pid: i32,
    pub secret: Vec<u8>,
    /// Stops the session's apply under way, if any.
    pub apply: CancelSignal,
}

#[derive(Clone, Default)]
pub struct CancelRegistry {
    inner: Arc<Mutex<HashMap<(i32, i32), BackendKey>>>,
}

impl CancelRegistry {
    /// Register a session and return the (pid, secret) to hand the client.
    pub fn register(&self, key: BackendKey) -> CancelGuard {
        let mut map = self.inner.lock().expect("cancel registry lock poisoned");
        let ours = loop {
            let k = (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>());
            if !map.contains_key(&k) {
                break k;
            }
        };
        let apply = key.apply.clone();
        map.insert(ours, key);
        CancelGuard {
            registry: self.clone(),
            key: ours,
            apply,
        }
    }

    pub fn lookup(&self, pid: i32, secret: i32) -> Option<BackendKey> {
        self.inner
            .lock()
            .expect("cancel registry lock poisoned")
            .get(&(pid, secret))
            .cloned()
    }
}

/// Removes the session's key when the session ends.
pub struct CancelGuard {
    registry: CancelRegistry,
    pub key: (i32, i32),
    /// The session's side of its cancel requests.
    pub apply: CancelSignal,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.inner.lock() {
            map.remove(&self.key);
        }
    }
}
