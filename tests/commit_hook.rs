//! The commit hook: the boundary the apply engine plugs into. A test-only
//! hook refuses any commit whose transaction wrote the `marker` table. The
//! wire calls the hook only for transactions whose backend raised the change
//! marker (as `infra.capture()` does for resource tables), so `marker`
//! carries a trigger that raises it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use common::sqlstate;
use infrasql::config::ServeArgs;
use infrasql::engine::hook::{CommitContext, CommitHook, HookError, Verdict, CHANGE_MARKER};

#[derive(Default)]
struct RefuseMarker {
    calls: AtomicUsize,
    implicit_calls: AtomicUsize,
}

#[async_trait]
impl CommitHook for RefuseMarker {
    async fn before_commit(&self, ctx: &mut dyn CommitContext) -> Result<Verdict, HookError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if ctx.implicit() {
            self.implicit_calls.fetch_add(1, Ordering::SeqCst);
        }
        ctx.notice("test hook: checking the transaction").await?;
        // Rows this very transaction wrote carry its xid in xmin.
        let rows = ctx
            .query(
                "select count(*) from marker \
                 where xmin = pg_current_xact_id_if_assigned()::xid",
            )
            .await?;
        let written: i64 = rows[0][0].as_deref().unwrap_or("0").parse().unwrap();
        if written > 0 {
            return Err(HookError(
                infrasql::engine::report::Report::error(
                    "P0001",
                    "refused by the test hook: marker written",
                )
                .with_detail(format!("{written} marker row(s) in this transaction")),
            ));
        }
        Ok(Verdict::Commit)
    }
}

struct InProcess {
    running: Option<infrasql::server::Running>,
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    hook: Arc<RefuseMarker>,
}

impl InProcess {
    async fn start() -> Self {
        let tmp = common::temp_dir();
        let data = tmp.path().join("data");
        let cfg = ServeArgs {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(data.clone()),
            user: Some(common::USER.into()),
            pg_options: vec!["fsync=off".into()],
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let hook = Arc::new(RefuseMarker::default());
        let running = infrasql::server::start(cfg, Some(hook.clone()))
            .await
            .unwrap();
        let s = InProcess {
            running: Some(running),
            _tmp: tmp,
            data,
            hook,
        };
        let c = s.connect().await;
        // `marker` stands for a resource table: like `infra.capture()`, a
        // trigger tells the proxy of each change (schema 1010), which is
        // what makes the wire call the hook. `other` is a plain table.
        c.batch_execute(&format!(
            "create table marker (n int); create table other (n int);
             create function note_change() returns trigger language plpgsql as $$
             begin raise notice '{CHANGE_MARKER}'; return null; end $$;
             create trigger note_change after insert or update or delete on marker
                 for each row execute function note_change();"
        ))
        .await
        .unwrap();
        s
    }
    fn conn_string(&self) -> String {
        let pw = std::fs::read_to_string(self.data.join("password")).unwrap();
        format!(
            "host=127.0.0.1 port={} user={} password={} dbname=infrasql",
            self.running.as_ref().unwrap().local_addr.port(),
            common::USER,
            pw.trim()
        )
    }
    async fn connect(&self) -> tokio_postgres::Client {
        common::connect(&self.conn_string()).await.unwrap()
    }
    /// Count rows straight from the backend, bypassing the proxy.
    async fn count(&self, table: &str) -> i64 {
        let pw = std::fs::read_to_string(self.data.join("password")).unwrap();
        let direct = common::connect(&format!(
            "host={} port=5432 user={} password={} dbname=infrasql",
            self.data.join("pgdata").display(),
            common::USER,
            pw.trim()
        ))
        .await
        .unwrap();
        direct
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }
    async fn stop(mut self) {
        self.running.take().unwrap().shutdown().await;
    }
}

fn assert_refused(e: &tokio_postgres::Error) {
    assert_eq!(sqlstate(e).as_deref(), Some("P0001"), "{e:?}");
    let db = e.as_db_error().unwrap();
    assert!(db.message().contains("marker written"), "{}", db.message());
    assert_eq!(db.detail(), Some("1 marker row(s) in this transaction"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_commit_refused_by_the_hook_rolls_back() {
    let s = InProcess::start().await;
    let c = s.connect().await;
    c.batch_execute("begin; insert into marker values (1); insert into other values (1)")
        .await
        .unwrap();
    let e = c.batch_execute("commit").await.unwrap_err();
    assert_refused(&e);
    assert_eq!(s.count("marker").await, 0);
    assert_eq!(s.count("other").await, 0);
    // The session is idle and usable again.
    c.batch_execute("insert into other values (2)")
        .await
        .unwrap();
    assert_eq!(s.count("other").await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_transactions_go_through_the_hook() {
    let s = InProcess::start().await;
    let c = s.connect().await;
    let before = s.hook.implicit_calls.load(Ordering::SeqCst);
    // Autocommit, simple protocol.
    assert_refused(
        &c.batch_execute("insert into marker values (1)")
            .await
            .unwrap_err(),
    );
    // Multi-statement query.
    assert_refused(
        &c.batch_execute("insert into other values (1); insert into marker values (1)")
            .await
            .unwrap_err(),
    );
    // Autocommit, extended protocol with a parameter.
    assert_refused(
        &c.execute("insert into marker values ($1)", &[&1i32])
            .await
            .unwrap_err(),
    );
    // BEGIN ... COMMIT inside one query string.
    assert_refused(
        &c.batch_execute("begin; insert into marker values (1); commit")
            .await
            .unwrap_err(),
    );
    assert_eq!(s.count("marker").await, 0);
    assert_eq!(s.count("other").await, 0);
    assert!(s.hook.implicit_calls.load(Ordering::SeqCst) >= before + 3);

    // Writes the hook allows commit normally, in every shape.
    c.batch_execute("insert into other values (1)")
        .await
        .unwrap();
    c.execute("insert into other values ($1)", &[&2i32])
        .await
        .unwrap();
    c.batch_execute("insert into other values (3); insert into other values (4)")
        .await
        .unwrap();
    assert_eq!(s.count("other").await, 4);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reaches_psql_with_the_hook_notice() {
    let s = InProcess::start().await;
    let port = s.running.as_ref().unwrap().local_addr.port();
    let pw = std::fs::read_to_string(s.data.join("password")).unwrap();
    let o = std::process::Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            common::USER,
            "-d",
            "infrasql",
        ])
        .args([
            "-c",
            "begin",
            "-c",
            "insert into marker values (1)",
            "-c",
            "commit",
        ])
        .env("PGPASSWORD", pw.trim())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NOTICE:  test hook: checking the transaction"),
        "{err}"
    );
    assert!(
        err.contains("ERROR:  refused by the test hook: marker written"),
        "{err}"
    );
    assert!(
        err.contains("DETAIL:  1 marker row(s) in this transaction"),
        "{err}"
    );
    assert_eq!(s.count("marker").await, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_runs_inside_the_clients_transaction_for_extended_commits() {
    let s = InProcess::start().await;
    let mut c = s.connect().await;
    // tokio-postgres: BEGIN/COMMIT as simple queries, the insert extended.
    let tx = c.transaction().await.unwrap();
    tx.execute("insert into marker values ($1)", &[&5i32])
        .await
        .unwrap();
    assert_refused(&tx.commit().await.unwrap_err());
    assert_eq!(s.count("marker").await, 0);

    // COMMIT sent as an extended-protocol statement.
    c.batch_execute("begin").await.unwrap();
    c.execute("insert into marker values ($1)", &[&6i32])
        .await
        .unwrap();
    let commit = c.prepare("commit").await.unwrap();
    assert_refused(&c.execute(&commit, &[]).await.unwrap_err());
    assert_eq!(s.count("marker").await, 0);
    // Afterwards the session is outside any transaction.
    c.execute("insert into other values ($1)", &[&1i32])
        .await
        .unwrap();
    assert_eq!(s.count("other").await, 1);

    // Reads never call the hook, nor do blocks that changed no resource
    // table (the backend raised no change marker).
    let calls = s.hook.calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        c.query("select * from other", &[]).await.unwrap();
        c.simple_query("select 1").await.unwrap();
        c.batch_execute("begin; insert into other values (2); commit")
            .await
            .unwrap();
    }
    assert_eq!(s.hook.calls.load(Ordering::SeqCst), calls);
    assert_eq!(s.count("other").await, 6);
    s.stop().await;
}
