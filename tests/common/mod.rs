//! Test harness: a real `infrasql serve` process (the binary, as users run
//! it) on a free loopback port, with its own embedded PostgreSQL.
#![allow(dead_code)]

pub mod gitops;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const USER: &str = "tester";

/// moto's server on a free loopback port, the cloud for integration tests:
/// the shared harness (`testsupport/moto`; `url`, `reset()` and the kill on
/// drop are its own), plus a raw EC2 client built here, where
/// `infrasql-aws` is at hand.
pub struct Moto(infrasql_moto::Moto);

impl Moto {
    pub fn start() -> Moto {
        Moto(infrasql_moto::Moto::start())
    }

    /// moto with settings, e.g. `MOTO_IAM_LOAD_MANAGED_POLICIES=true` (AWS's
    /// managed policies exist only then; loading them costs seconds).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        Moto(infrasql_moto::Moto::start_with_env(env))
    }

    async fn clients(&self) -> infrasql_aws::Clients {
        infrasql_aws::Clients::new(&infrasql_aws::AwsSettings {
            endpoint_url: Some(self.url.clone()),
            static_credentials: Some(("testing".into(), "testing".into())),
            region: Some("us-east-1".into()),
            max_concurrency: None,
            limiter: Default::default(),
            timeouts: Default::default(),
        })
        .await
    }

    /// A raw EC2 client on the same endpoint, to check AWS independently of infrasql.
    pub async fn ec2(&self) -> infrasql_aws::aws_sdk_ec2::Client {
        self.clients().await.ec2("us-east-1").await.client.clone()
    }

    /// A raw RDS client on the same endpoint.
    pub async fn rds(&self) -> infrasql_aws::aws_sdk_rds::Client {
        self.clients().await.rds("us-east-1").await.client.clone()
    }

    /// A raw IAM client on the same endpoint.
    pub async fn iam(&self) -> infrasql_aws_iam::aws_sdk_iam::Client {
        infrasql_aws_iam::client(&self.clients().await, "global")
            .await
            .client
            .clone()
    }

    /// A raw S3 client on the same endpoint.
    pub async fn s3(&self) -> infrasql_aws_s3::aws_sdk_s3::Client {
        infrasql_aws_s3::client(&self.clients().await, "us-east-1")
            .await
            .client
            .clone()
    }

    /// A raw ELBv2 client on the same endpoint.
    pub async fn elb(&self) -> infrasql_aws_elb::aws_sdk_elasticloadbalancingv2::Client {
        infrasql_aws_elb::client(&self.clients().await, "us-east-1")
            .await
            .client
            .clone()
    }

    /// A raw Route53 client on the same endpoint.
    pub async fn route53(&self) -> infrasql_aws_route53::aws_sdk_route53::Client {
        infrasql_aws_route53::client(&self.clients().await, "global")
            .await
            .client
            .clone()
    }

    /// A raw ACM client on the same endpoint.
    pub async fn acm(&self) -> infrasql_aws_acm::aws_sdk_acm::Client {
        infrasql_aws_acm::client(&self.clients().await, "us-east-1")
            .await
            .client
            .clone()
    }

    /// The VPCs in AWS other than moto's default one, by id.
    pub async fn vpcs(&self) -> Vec<String> {
        let out = self.ec2().await.describe_vpcs().send().await.unwrap();
        out.vpcs()
            .iter()
            .filter(|v| v.is_default() != Some(true))
            .filter_map(|v| v.vpc_id().map(str::to_owned))
            .collect()
    }
}

impl std::ops::Deref for Moto {
    type Target = infrasql_moto::Moto;
    fn deref(&self) -> &infrasql_moto::Moto {
        &self.0
    }
}

pub struct TestServer {
    child: Option<Child>,
    pub port: u16,
    /// Keeps the temp dir alive; `data` lives inside it.
    _tmp: Option<tempfile::TempDir>,
    pub data: PathBuf,
    pub stderr_log: PathBuf,
    /// The HTTP listener's base URL (`--http`), when it is on.
    pub http: Option<String>,
}

/// A temp dir that the `postgres` OS user can traverse (tests run as root,
/// and the embedded cluster then runs as `postgres`).
pub fn temp_dir() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("isq")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// Writes `dir/name` (a SQL file for the CLI tests); returns its path.
pub fn write_file(dir: &Path, name: &str, sql: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, sql).unwrap();
    p.display().to_string()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_infrasql")
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server whose AWS is `moto`.
    pub fn start_on(moto: &Moto, extra: &[&str]) -> Self {
        Self::start_at(&moto.url, extra)
    }

    /// A server whose AWS endpoint is `url`: moto, or a fault proxy in front of it.
    pub fn start_at(url: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--aws-endpoint-url", url];
        if !extra.contains(&"--sync-interval") {
            // Background sync off unless a test is about it: rows change
            // only when the test says so.
            args.extend_from_slice(&["--sync-interval", "0"]);
        }
        args.extend_from_slice(extra);
        Self::start_with(&args)
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let tmp = temp_dir();
        let data = tmp.path().join("data");
        let mut s = Self::start_in(&data, extra).unwrap_or_else(|e| panic!("{e}"));
        s._tmp = Some(tmp);
        s
    }

    /// Start on an existing (or new) data dir; Err carries stderr when the
    /// server exits before listening.
    pub fn start_in(data: &Path, extra: &[&str]) -> Result<Self, String> {
        Self::start_in_env(data, extra, &[])
    }

    /// A server whose AWS endpoint is `url` (moto, or a fault proxy in
    /// front of it), with extra environment (`INFRASQL_LOG`).
    pub fn start_at_env(url: &str, env: &[(&str, &str)]) -> Self {
        let tmp = temp_dir();
        let data = tmp.path().join("data");
        let args = ["--aws-endpoint-url", url, "--sync-interval", "0"];
        let mut s = Self::start_in_env(&data, &args, env).unwrap_or_else(|e| panic!("{e}"));
        s._tmp = Some(tmp);
        s
    }

    pub fn start_in_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        let stderr_log = data.with_extension("stderr.log");
        let log = std::fs::File::create(&stderr_log).unwrap();
        // A test may listen elsewhere (0.0.0.0): clients still reach it on
        // loopback.
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(bin())
            .arg("serve")
            .args(listen)
            .args(["--user", USER])
            .arg("--data-dir")
            .arg(data)
            .args(["--pg-option", "fsync=off", "--shutdown-grace", "5"])
            .args(extra)
            .env("INFRASQL_LOG", "info,infrasql=debug")
            // The standard AWS chain: moto accepts any credentials.
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn infrasql");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut http = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("infrasql HTTP on ") {
                        http = Some(url.trim().to_owned());
                    }
                    if let Some(rest) = line.strip_prefix("infrasql listening on ") {
                        let addr = rest.split([' ', ';']).next().unwrap();
                        let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
                        return Ok(TestServer {
                            child: Some(child),
                            port,
                            _tmp: None,
                            data: data.to_owned(),
                            stderr_log,
                            http,
                        });
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!(
                            "infrasql exited with {status}: {}",
                            std::fs::read_to_string(&stderr_log).unwrap_or_default()
                        ));
                    }
                    if std::time::Instant::now() > deadline {
                        let _ = child.kill();
                        return Err("infrasql did not start within 60 s".into());
                    }
                }
            }
        }
    }

    pub fn password(&self) -> String {
        std::fs::read_to_string(self.data.join("password"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn conn_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} password={} dbname=infrasql",
            self.port,
            self.password()
        )
    }

    /// Straight to the backend's Unix socket, bypassing infrasql.
    pub fn direct_conn_string(&self) -> String {
        format!(
            "host={} port=5432 user={USER} password={} dbname=infrasql",
            self.data.join("pgdata").display(),
            self.password()
        )
    }

    pub fn engine_conn_string(&self) -> String {
        let pw = std::fs::read_to_string(self.data.join("engine.password")).unwrap();
        format!(
            "host={} port=5432 user=infrasql_engine password={} dbname=infrasql",
            self.data.join("pgdata").display(),
            pw.trim()
        )
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.conn_string())
            .await
            .expect("connect through infrasql")
    }

    /// A connection through infrasql whose NOTICEs arrive on the receiver,
    /// each with the moment it came.
    pub async fn connect_with_notices(
        &self,
    ) -> (
        tokio_postgres::Client,
        tokio::sync::mpsc::UnboundedReceiver<(std::time::Instant, String)>,
    ) {
        let (client, mut conn) =
            tokio_postgres::connect(&self.conn_string(), tokio_postgres::NoTls)
                .await
                .expect("connect through infrasql");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(Ok(m)) = stream.next().await {
                if let tokio_postgres::AsyncMessage::Notice(n) = m {
                    let _ = tx.send((std::time::Instant::now(), n.message().to_owned()));
                }
            }
        });
        (client, rx)
    }

    pub async fn connect_direct(&self) -> tokio_postgres::Client {
        connect(&self.direct_conn_string())
            .await
            .expect("connect to the backend")
    }

    pub async fn connect_engine(&self) -> tokio_postgres::Client {
        connect(&self.engine_conn_string())
            .await
            .expect("connect as engine")
    }

    /// Run psql through infrasql.
    pub fn psql(&self, args: &[&str]) -> Output {
        Command::new("psql")
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string(), "-U", USER, "-d", "infrasql"])
            .args(args)
            .env("PGPASSWORD", self.password())
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("run psql")
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in 0..400 {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn connect(conn: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The single value of a one-row, one-column query.
pub async fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    c: &tokio_postgres::Client,
    sql: &str,
) -> T {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_owned())
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A StartupMessage (protocol 3.0) for `user` on the `infrasql` database.
pub fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196608i32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", "infrasql")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

impl TestServer {
    /// A raw client logged in as [`USER`] (the server runs `--auth trust`),
    /// past its first ReadyForQuery; its reads wait at most `read_timeout`.
    pub fn logged_in(&self, read_timeout: Duration) -> std::net::TcpStream {
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        t.set_read_timeout(Some(read_timeout)).unwrap();
        t.write_all(&startup_packet(USER)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(6).any(|w| w == [b'Z', 0, 0, 0, 5, b'I']) {
            let n = t.read(&mut buf).unwrap();
            assert!(n > 0, "server closed during startup");
            got.extend_from_slice(&buf[..n]);
        }
        t
    }
}
