//! The agent's checkout, through the system `git`: its SSH keys, known
//! hosts and credential helpers log in, so infrasql stores no git
//! credentials. Each round fetches the ref and checks its commit out
//! detached; the stacks are the directories of that commit's tree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

/// A git command that takes longer (a hung server, a prompt nobody
/// answers) fails the round instead of stalling the agent.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Checkout {
    pub dir: PathBuf,
}

/// A fetched commit.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    pub author: String,
}

/// A directory under the gitops path at a commit: a stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StackDir {
    pub name: String,
    /// Its tree's hash: equal hashes, equal files.
    pub tree: String,
}

impl Checkout {
    pub fn new(data_dir: &Path) -> Self {
        Checkout {
            dir: data_dir.join("gitops").join("checkout"),
        }
    }

    /// Fetch `git_ref` from `repo` and check its commit out.
    pub async fn update(&self, repo: &str, git_ref: &str) -> anyhow::Result<Commit> {
        if !self.dir.join(".git").exists() {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("cannot create {}", self.dir.display()))?;
            self.git(&["init", "--quiet"]).await?;
            self.git(&["remote", "add", "origin", repo]).await?;
        } else {
            // The URL may have changed in the configuration since.
            self.git(&["remote", "set-url", "origin", repo]).await?;
        }
        self.git(&["fetch", "--quiet", "--no-tags", "origin", "--", git_ref])
            .await
            .with_context(|| format!("cannot fetch {git_ref} from {}", redact(repo)))?;
        let sha = self
            .git(&["rev-parse", "--verify", "FETCH_HEAD^{commit}"])
            .await?;
        self.git(&["checkout", "--quiet", "--force", "--detach", &sha])
            .await?;
        let author = self.git(&["log", "-1", "--format=%an <%ae>", &sha]).await?;
        Ok(Commit { sha, author })
    }

    /// The directories directly under `path` at `sha`; None when the path
    /// is missing or holds no directory (then nothing is applied).
    pub async fn stack_dirs(&self, sha: &str, path: &str) -> anyhow::Result<Option<Vec<StackDir>>> {
        let tree = format!("{sha}:{path}");
        let Ok(listing) = self.git(&["ls-tree", &tree]).await else {
            return Ok(None);
        };
        let dirs: Vec<StackDir> = listing
            .lines()
            .filter_map(|l| {
                let (meta, name) = l.split_once('\t')?;
                let mut m = meta.split_whitespace();
                let (_mode, kind, hash) = (m.next()?, m.next()?, m.next()?);
                (kind == "tree").then(|| StackDir {
                    name: name.to_owned(),
                    tree: hash.to_owned(),
                })
            })
            .collect();
        Ok((!dirs.is_empty()).then_some(dirs))
    }

    /// The hash of `path/dir`'s tree at an earlier commit, if this
    /// checkout has that commit and the directory existed.
    pub async fn tree_at(&self, sha: &str, path: &str, dir: &str) -> Option<String> {
        let spec = format!("{sha}:{}", join(path, dir));
        self.git(&["rev-parse", "--verify", "--quiet", &spec])
            .await
            .ok()
    }

    /// The stack directory in the working tree.
    pub fn path_of(&self, path: &str, dir: &str) -> PathBuf {
        self.dir.join(join(path, dir))
    }

    async fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&self.dir)
            .args(args)
            // Never wait for a person at a prompt: fail, and say so.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
            .await
            .with_context(|| format!("git {} took longer than {GIT_TIMEOUT:?}", args[0]))?
            .context("cannot run git (is it installed and on PATH?)")?;
        if !out.status.success() {
            bail!(
                "git {} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

pub fn join(path: &str, dir: &str) -> String {
    if path.is_empty() {
        dir.to_owned()
    } else {
        format!("{path}/{dir}")
    }
}

/// The repository URL without a password or token in it, for logs and
/// `infra.stack.source`.
pub fn redact(repo: &str) -> String {
    if let Some((scheme, rest)) = repo.split_once("://") {
        let (auth, host) = match rest.split_once('/') {
            Some((a, h)) => (a, format!("/{h}")),
            None => (rest, String::new()),
        };
        if let Some((_, at)) = auth.rsplit_once('@') {
            return format!("{scheme}://{at}{host}");
        }
    }
    repo.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_not_repeated() {
        assert_eq!(
            redact("https://bot:ghp_secret@github.com/ops/infra.git"),
            "https://github.com/ops/infra.git"
        );
        assert_eq!(
            redact("git@github.com:ops/infra.git"),
            "git@github.com:ops/infra.git"
        );
        assert_eq!(redact("file:///srv/infra"), "file:///srv/infra");
        assert_eq!(join("", "web"), "web");
        assert_eq!(join("infra", "web"), "infra/web");
    }
}
