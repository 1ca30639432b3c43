//! The GitOps tests' harness: a git repository made with the `git`
//! binary, served over `file://`, and waiting for the agent with a deadline.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::{Moto, TestServer};

/// A git repository in a temp dir, committed to by "Ada".
pub struct Repo {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Repo {
    pub fn new() -> Repo {
        let tmp = super::temp_dir();
        let dir = tmp.path().join("infra-repo");
        std::fs::create_dir(&dir).unwrap();
        let r = Repo { _tmp: tmp, dir };
        r.git(&["init", "--quiet", "--initial-branch=main"]);
        r
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    pub fn git(&self, args: &[&str]) -> String {
        let o = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
            .args(args)
            .output()
            .expect("run git");
        assert!(o.status.success(), "git {args:?}: {}", super::stderr(&o));
        super::stdout(&o).trim().to_owned()
    }

    pub fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn remove(&self, path: &str) {
        self.git(&["rm", "-r", "--quiet", path]);
    }

    /// Commit everything; the new commit's SHA.
    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
}

pub fn serve(moto: &Moto, repo: &Repo) -> TestServer {
    let url = repo.url();
    TestServer::start_on(
        moto,
        &[
            "--gitops-repo",
            &url,
            "--gitops-path",
            "infra",
            "--gitops-interval",
            "1s",
        ],
    )
}

/// Poll `f` until it returns Some, for up to 60 s; a timeout shows the
/// agent's log lines.
pub async fn until<T, F, Fut>(s: &TestServer, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            let log = s.stderr();
            let agent: Vec<&str> = log.lines().filter(|l| l.contains("gitops")).collect();
            panic!(
                "timed out waiting for {what}; the agent logged:\n{}",
                agent.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One stack's row of infra.stack: (revision, status, resources, error).
pub async fn stack_row(
    c: &Client,
    name: &str,
) -> Option<(Option<String>, String, i64, Option<String>)> {
    c.query_opt(
        "SELECT revision, status, resources, error FROM infra.stack WHERE name = $1",
        &[&name],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
}

/// Wait until the stack is applied at `sha`; its resource count.
pub async fn applied_at(s: &TestServer, c: &Client, name: &str, sha: &str) -> i64 {
    until(s, &format!("stack {name} applied at {sha}"), || async {
        stack_row(c, name)
            .await
            .filter(|(rev, status, _, _)| rev.as_deref() == Some(sha) && status != "failed")
            .map(|r| r.2)
    })
    .await
}
