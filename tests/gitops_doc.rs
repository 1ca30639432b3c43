//! docs/gitops.md, run as written: its repository files and configuration
//! file become a git repository and the server's `--config`; its status
//! block prints what the document shows (with this run's commit hash).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Moto, TestServer};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gitops.md"))
        .expect("docs/gitops.md")
}

/// The fenced block after `<!-- gitops: NAME -->`.
fn block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- gitops: {name} -->");
    let after = &doc[doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no marker {marker}"))
        + marker.len()..];
    let start = after.find("```").expect("its block");
    let start = start + after[start..].find('\n').expect("the fence's line") + 1;
    let len = after[start..].find("```").expect("the block's end");
    after[start..start + len].to_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
        .args(args)
        .output()
        .expect("run git");
    assert!(o.status.success(), "git {args:?}: {}", common::stderr(&o));
    common::stdout(&o).trim().to_owned()
}

#[tokio::test]
async fn the_worked_example_runs_as_written() {
    let doc = doc();
    let tmp = common::temp_dir();
    let repo = tmp.path().join("repo");
    let network = block(&doc, "file infra/web-staging/01_network.sql");
    for (path, text) in [
        ("infra/web-staging/01_network.sql", network.clone()),
        // "the same file as in web-staging"
        ("infra/web-prod/01_network.sql", network),
        (
            "infra/web-staging/stack.toml",
            block(&doc, "file infra/web-staging/stack.toml"),
        ),
        (
            "infra/web-prod/stack.toml",
            block(&doc, "file infra/web-prod/stack.toml"),
        ),
    ] {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &["commit", "--quiet", "-m", "web in staging and prod"],
    );
    let sha = git(&repo, &["rev-parse", "HEAD"]);

    // The document's configuration file; flags beat it where a test must
    // (a local repository, a short interval).
    let config = tmp.path().join("infrasql.toml");
    std::fs::write(&config, block(&doc, "file infrasql.toml")).unwrap();
    let moto = Moto::start();
    let url = format!("file://{}", repo.display());
    let config_arg = config.display().to_string();
    let s = TestServer::start_on(
        &moto,
        &[
            "--config",
            &config_arg,
            "--gitops-repo",
            &url,
            "--gitops-interval",
            "1s",
        ],
    );

    let db = s.connect().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = common::one(
            &db,
            &format!(
                "SELECT count(*) FROM infra.stack WHERE revision = '{sha}' AND status = 'synced'"
            ),
        )
        .await;
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stacks were not applied:\n{}",
            s.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let bin_dir = Path::new(common::bin()).parent().unwrap();
    let o = Command::new("sh")
        .args(["-e", "-c", &block(&doc, "status")])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", s.port.to_string())
        .env("PGUSER", common::USER)
        .env("PGPASSWORD", s.password())
        .env("PGDATABASE", "infrasql")
        .output()
        .expect("run sh");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let shown = block(&doc, "status output");
    let printed = common::stdout(&o).replace(&sha[..12], "3f2a9c1e07b4");
    assert_eq!(printed, shown);
}
