//! The GitOps agent (`serve --gitops-repo`): every interval, fetch the ref,
//! and apply each stack directory whose files changed, as a client of this
//! server's own listener (wire → engine → providers stays one-way; every
//! change takes the normal commit path).
//!
//! - `config`: the `--gitops-*` settings and a directory's `stack.toml`.
//! - `git`: the checkout, through the system `git`.
//! - `stack`: whether one stack needs applying, and applying it.
//! - here: the rounds, and the advisory lock that lets one node of many
//!   run them.
//!
//! Never prune by accident: a failed fetch, or a gitops path that is
//! missing or empty, applies nothing; a stack whose directory is gone is
//! left as it is (logged); only `delete = true` or `infrasql stack delete`
//! removes a stack, and a prune larger than `max_prune_share` waits for
//! `infrasql stack confirm`.

pub mod config;
pub mod git;
pub mod stack;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::watch;
use tokio_postgres::Client;

use self::config::{stack_spec, GitopsConfig};
use self::git::{join, redact, Checkout};
use self::stack::{decide, Decision, Outcome, Trees};
use crate::client::connect::{self, Target};
use crate::client::stack::Origin;

/// The session advisory lock only the agent that runs the rounds holds.
const LEADER_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('infrasql gitops agent'))";

/// How the agent logs in to its own server.
#[derive(Debug, Clone)]
pub struct SelfLogin {
    pub addr: SocketAddr,
    pub user: String,
    pub database: String,
    pub password_file: Option<PathBuf>,
    /// The listener speaks TLS: use it (it may be required). Its own
    /// certificate, so encrypted without verification (sslmode=require).
    pub tls: bool,
}

pub struct Agent {
    cfg: GitopsConfig,
    checkout: Checkout,
    login: SelfLogin,
    /// The connection holding the leader lock, once taken.
    leader: Option<Client>,
}

impl Agent {
    pub fn new(cfg: GitopsConfig, data_dir: &std::path::Path, login: SelfLogin) -> Self {
        Agent {
            cfg,
            checkout: Checkout::new(data_dir),
            login,
            leader: None,
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            "gitops: following {} {} path {:?} every {:?}",
            redact(&self.cfg.repo),
            self.cfg.git_ref,
            self.cfg.path,
            self.cfg.interval
        );
        loop {
            tokio::select! {
                _ = self.round() => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn target(&self) -> anyhow::Result<Target> {
        let ip = match self.login.addr.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => "::1".to_owned(),
            ip => ip.to_string(),
        };
        let mut t = connect::config(
            Some(&format!(
                "host={ip} port={} user={} dbname={} sslmode={} application_name=infrasql-gitops",
                self.login.addr.port(),
                self.login.user,
                self.login.database,
                if self.login.tls { "require" } else { "disable" }
            )),
            "",
        )?;
        match &self.login.password_file {
            // Read each time: a restart may have reset it.
            Some(f) => {
                if let Ok(pw) = std::fs::read_to_string(f) {
                    t.cfg.password(pw.trim());
                }
            }
            // An external database: libpq's PGPASSWORD (else ~/.pgpass,
            // which `connect::config` already looked up).
            None => {
                if let Ok(pw) = std::env::var("PGPASSWORD") {
                    t.cfg.password(pw);
                }
            }
        }
        Ok(t)
    }

    /// Whether this node runs the round: it holds the lock, or takes it now.
    async fn lead(&mut self) -> anyhow::Result<bool> {
        if self.leader.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(true);
        }
        let client = connect::connect(&self.target()?).await?;
        let got: bool = client.query_one(LEADER_LOCK, &[]).await?.get(0);
        self.leader = got.then_some(client);
        Ok(got)
    }

    async fn round(&mut self) {
        match self.lead().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("gitops: another node runs the agent; skipping this round");
                return;
            }
            Err(e) => {
                tracing::warn!("gitops: cannot reach the server: {e:#}");
                return;
            }
        }
        if let Err(e) = self.apply_round().await {
            tracing::warn!("gitops: round failed, nothing applied: {e:#}");
        }
    }

    async fn apply_round(&self) -> anyhow::Result<()> {
        let commit = self
            .checkout
            .update(&self.cfg.repo, &self.cfg.git_ref)
            .await?;
        let Some(dirs) = self
            .checkout
            .stack_dirs(&commit.sha, &self.cfg.path)
            .await?
        else {
            anyhow::bail!(
                "{:?} is missing or has no stack directories at {}",
                self.cfg.path,
                commit.sha
            );
        };
        let client = connect::connect(&self.target()?).await?;
        let mut names = BTreeSet::new();
        for d in &dirs {
            let root = self.checkout.path_of(&self.cfg.path, &d.name);
            let toml = std::fs::read_to_string(root.join("stack.toml")).ok();
            let spec = match stack_spec(&d.name, toml.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("gitops: {e}; stack directory {} skipped", d.name);
                    continue;
                }
            };
            if !names.insert(spec.name.clone()) {
                tracing::error!(
                    "gitops: stack {} is declared twice (directory {} too); skipped",
                    spec.name,
                    d.name
                );
                continue;
            }
            let known = stack::known(&client, &spec.name).await?;
            let at = |rev: Option<String>| async move {
                match rev {
                    Some(r) => self.checkout.tree_at(&r, &self.cfg.path, &d.name).await,
                    None => None,
                }
            };
            let trees = Trees {
                now: d.tree.clone(),
                applied: at(known.as_ref().and_then(|k| k.revision.clone())).await,
                pending: at(known.as_ref().and_then(|k| k.pending.clone())).await,
            };
            let Decision::Apply { confirmed } = decide(&spec, known.as_ref(), &trees) else {
                continue;
            };
            let origin = Origin {
                revision: commit.sha.clone(),
                author: commit.author.clone(),
                source: format!(
                    "git {} {}",
                    redact(&self.cfg.repo),
                    join(&self.cfg.path, &d.name)
                ),
            };
            let short = stack::short(&commit.sha);
            match stack::apply(&client, &root, &spec, origin, confirmed).await {
                Ok(Outcome::Applied { declared, pruned }) => tracing::info!(
                    "gitops: stack {} applied at {short} ({declared} declared, {pruned} pruned)",
                    spec.name
                ),
                Ok(Outcome::Deleted) => {
                    tracing::info!("gitops: stack {} deleted at {short}", spec.name)
                }
                Ok(Outcome::Waiting(why)) => {
                    tracing::warn!("gitops: stack {} waits: {why}", spec.name)
                }
                Err(e) => tracing::warn!("gitops: stack {} failed at {short}: {e:#}", spec.name),
            }
        }
        self.report_gone(&client, &names, &commit.sha).await
    }

    /// Stacks from this repository whose directory is gone are left as
    /// they are: a moved or mistyped directory must not delete anything.
    async fn report_gone(
        &self,
        client: &Client,
        names: &BTreeSet<String>,
        sha: &str,
    ) -> anyhow::Result<()> {
        let prefix = format!("git {} ", redact(&self.cfg.repo));
        for r in client
            .query(
                "SELECT name, source FROM infra.stack_state WHERE starts_with(source, $1)",
                &[&prefix],
            )
            .await?
        {
            let name: String = r.get(0);
            if !names.contains(&name) {
                let source: String = r.get(1);
                tracing::warn!(
                    "gitops: stack {name}'s directory ({}) is gone from {}; its resources are kept. \
                     Delete it with delete = true in its stack.toml or infrasql stack delete {name}",
                    source.trim_start_matches(&prefix),
                    stack::short(sha)
                );
            }
        }
        Ok(())
    }
}
