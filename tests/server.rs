//! `infrasql serve` as a process: start-up, data dir, TLS, auth modes,
//! bad input, backend loss and shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{sqlstate, startup_packet, stderr, stdout, TestServer, USER};

fn raw(s: &TestServer) -> TcpStream {
    let t = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t
}

/// Read until EOF or timeout; the server's answer to a bad client.
fn read_all(t: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = t.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn sqlstate_in(bytes: &[u8]) -> Option<String> {
    // ErrorResponse: 'E' len fields; the 'C' field holds the code.
    let pos = bytes.iter().position(|b| *b == b'E')?;
    let fields = &bytes[pos + 5..];
    let mut i = 0;
    while i < fields.len() && fields[i] != 0 {
        let code = fields[i];
        let end = fields[i + 1..].iter().position(|b| *b == 0)? + i + 1;
        if code == b'C' {
            return Some(String::from_utf8_lossy(&fields[i + 1..end]).into_owned());
        }
        i = end + 1;
    }
    None
}

async fn still_serving(s: &TestServer) {
    let c = s.connect().await;
    assert_eq!(
        c.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn bad_input_gets_an_error_and_never_disturbs_other_sessions() {
    let s = TestServer::start();
    let bystander = s.connect().await;
    bystander
        .batch_execute("begin; create table b (n int); insert into b values (1)")
        .await
        .unwrap();

    // Garbage instead of a startup packet.
    let mut t = raw(&s);
    t.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = read_all(&mut t);
    assert_eq!(sqlstate_in(&answer).as_deref(), Some("08P01"));

    // An unknown protocol version.
    let mut t = raw(&s);
    let mut p = startup_packet(USER);
    p[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    t.write_all(&p).unwrap();
    assert_eq!(sqlstate_in(&read_all(&mut t)).as_deref(), Some("0A000"));

    // An oversized startup packet.
    let mut t = raw(&s);
    t.write_all(&(1_000_000i32).to_be_bytes()).unwrap();
    t.write_all(&196608i32.to_be_bytes()).unwrap();
    assert_eq!(sqlstate_in(&read_all(&mut t)).as_deref(), Some("08P01"));

    // A client that drops mid-message, before and after authenticating.
    let mut t = raw(&s);
    t.write_all(&startup_packet(USER)[..7]).unwrap();
    drop(t);

    // Let the bystander finish its transaction: nothing was disturbed.
    bystander
        .batch_execute("insert into b values (2); commit")
        .await
        .unwrap();
    let n: i64 = bystander
        .query_one("select count(*) from b", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    still_serving(&s).await;
}

#[tokio::test]
async fn oversized_and_malformed_messages_after_login_close_only_that_session() {
    let s = TestServer::start_with(&["--auth", "trust"]);
    let bystander = s.connect().await;
    for (bad, code) in [
        // Query claiming 512 MiB: over infrasql's limit, refused by its header.
        (vec![b'Q', 0x20, 0, 0, 0], "54000"),
        // Length below 4.
        (vec![b'Q', 0, 0, 0, 2], "08P01"),
        // Unknown message type.
        (vec![b'?', 0, 0, 0, 4], "08P01"),
    ] {
        let mut t = s.logged_in(Duration::from_secs(5));
        t.write_all(&bad).unwrap();
        let answer = read_all(&mut t);
        assert_eq!(sqlstate_in(&answer).as_deref(), Some(code), "for {bad:?}");
    }
    assert_eq!(
        bystander
            .query_one("select 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

/// An idle session hears that the server is stopping (57P01). Were it not
/// woken, it would be cut off without a word when the grace period ends.
#[test]
fn an_idle_session_is_told_at_once_when_the_server_shuts_down() {
    let s = TestServer::start_with(&["--auth", "trust"]);
    let mut t = s.logged_in(Duration::from_secs(5));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let answer = read_all(&mut t);
    assert_eq!(sqlstate_in(&answer).as_deref(), Some("57P01"), "{answer:?}");
    assert!(
        String::from_utf8_lossy(&answer).contains("infrasql is shutting down"),
        "{answer:?}"
    );
}

/// A session whose client keeps sending also hears that the server is
/// stopping (57P01), within moments rather than when the grace period ends
/// and its sessions are cut off.
#[test]
fn a_session_that_is_always_busy_is_told_at_once_when_the_server_shuts_down() {
    // tests/common starts every server with `--shutdown-grace 5`.
    let grace = Duration::from_secs(5);
    let s = TestServer::start_with(&["--auth", "trust"]);
    let mut t = s.logged_in(grace * 4);
    // Queries back to back, a hundred per write, until the server closes.
    let mut writer = t.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.push(b'Q');
            batch.extend_from_slice(&(4 + 9i32).to_be_bytes());
            batch.extend_from_slice(b"select 1\0");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline && writer.write_all(&batch).is_ok() {}
    });
    // Walk the answers message by message: ReadyForQuery counts the queries
    // done, an ErrorResponse's code is kept.
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut ready, mut codes, mut said) = (0u64, Vec::new(), String::new());
    let mut signalled: Option<Instant> = None;
    loop {
        let n = match t.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while pending.len() - at >= 5 {
            let len = i32::from_be_bytes(pending[at + 1..at + 5].try_into().unwrap()) as usize;
            if pending.len() - at < 1 + len {
                break;
            }
            match pending[at] {
                b'Z' => ready += 1,
                b'E' => {
                    let frame = &pending[at..at + 1 + len];
                    codes.push(sqlstate_in(frame).unwrap_or_default());
                    said.push_str(&String::from_utf8_lossy(frame));
                }
                _ => {}
            }
            at += 1 + len;
        }
        pending.drain(..at);
        if signalled.is_none() && ready >= 2000 {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(s.pid() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            signalled = Some(Instant::now());
        }
    }
    let signalled = signalled.expect("the session answered fewer than 2,000 queries");
    let took = signalled.elapsed();
    sender.join().unwrap();
    assert_eq!(codes, ["57P01"], "after {ready} queries: {said}");
    assert!(said.contains("infrasql is shutting down"), "{said}");
    assert!(
        took < grace / 2,
        "the busy session was ended {took:?} after SIGTERM (grace {grace:?})"
    );
}

#[tokio::test]
async fn backend_loss_is_reported_and_new_clients_connect_once_it_is_back() {
    let s = TestServer::start();
    // A terminated backend session: the client hears 57P01.
    let victim = s.connect().await;
    let pid: i32 = victim
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let admin = s.connect_engine().await;
    admin
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let e = victim.simple_query("select 1").await.unwrap_err();
    let code = sqlstate(&e);
    assert!(
        code.as_deref() == Some("57P01") || e.is_closed(),
        "expected 57P01, got {e:?}"
    );
    still_serving(&s).await;

    // The whole backend goes away (immediate shutdown, as when the machine's
    // OOM killer strikes): clients are told, infrasql restarts it.
    let victim = s.connect().await;
    let pm: i32 = std::fs::read_to_string(s.data.join("pgdata/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pm),
        nix::sys::signal::Signal::SIGQUIT,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = victim.simple_query("select 1").await.unwrap_err();
    assert!(
        matches!(sqlstate(&e).as_deref(), Some("08006") | Some("57P01")) || e.is_closed(),
        "{e:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match common::connect(&s.conn_string()).await {
            Ok(c) => {
                if c.simple_query("select 1").await.is_ok() {
                    break;
                }
            }
            Err(e) => {
                if let Some(code) = sqlstate(&e) {
                    assert_eq!(code, "57P03", "while the backend restarts: {e}");
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "backend did not come back: {}",
            s.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn restart_on_an_existing_data_dir_keeps_data_and_the_password() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let mut s = TestServer::start_in(&data, &[]).unwrap();
    let o = s.psql(&[
        "-c",
        "create table kept (v text); insert into kept values ('still here')",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pw = s.password();
    let status = s.stop().unwrap();
    assert!(status.success(), "clean shutdown exits 0: {status}");
    assert!(
        !data.join("pgdata/postmaster.pid").exists(),
        "the cluster stopped cleanly with infrasql"
    );

    let s = TestServer::start_in(&data, &[]).unwrap();
    assert_eq!(s.password(), pw);
    let o = s.psql(&["-At", "-c", "select v from kept"]);
    assert_eq!(stdout(&o).trim(), "still here", "{}", stderr(&o));
}

#[test]
fn a_second_infrasql_on_the_same_data_dir_is_refused_clearly() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let first = TestServer::start_in(&data, &[]).unwrap();
    let err = match TestServer::start_in(&data, &[]) {
        Ok(_) => panic!("second instance started"),
        Err(e) => e,
    };
    assert!(err.contains("already used by another infrasql"), "{err}");
    assert!(
        err.contains(&first.pid().to_string()),
        "names the owner's pid: {err}"
    );
    drop(first);
}

#[test]
fn a_stale_postmaster_pid_from_a_crash_is_handled() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let mut s = TestServer::start_in(&data, &[]).unwrap();
    s.stop();
    // A crash leaves postmaster.pid behind, naming a pid that now belongs to
    // some other live process (here: this test).
    let pidfile = data.join("pgdata/postmaster.pid");
    std::fs::write(
        &pidfile,
        format!(
            "{}\n{}\n0\n5432\n\n\n0 0\nready\n",
            std::process::id(),
            data.join("pgdata").display()
        ),
    )
    .unwrap();
    let s = TestServer::start_in(&data, &[]).unwrap();
    let o = s.psql(&["-At", "-c", "select 1"]);
    assert_eq!(stdout(&o).trim(), "1", "{}", stderr(&o));
    assert!(s.stderr().contains("stale"), "{}", s.stderr());
}

#[test]
fn an_orphaned_postgres_from_a_killed_infrasql_is_taken_over() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let s = TestServer::start_in(&data, &[]).unwrap();
    let pm: i32 = std::fs::read_to_string(data.join("pgdata/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // SIGKILL infrasql: no chance to stop its cluster.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    let s = TestServer::start_in(&data, &[]).unwrap();
    let o = s.psql(&["-At", "-c", "select 1"]);
    assert_eq!(stdout(&o).trim(), "1", "{}", stderr(&o));
    assert!(
        !infrasql::store::cluster::process_alive(pm),
        "the old postmaster is gone"
    );
}

#[test]
fn tls_is_used_when_certificates_are_given() {
    let tmp = common::temp_dir();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = tmp.path().join("server.crt");
    let key_path = tmp.path().join("server.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let s = TestServer::start_with(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let o = std::process::Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user={USER} dbname=infrasql sslmode=require",
            s.port
        ))
        .args(["-X", "-c", r"\conninfo"])
        .env("PGPASSWORD", s.password())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("SSL connection"), "{}", stdout(&o));
}

#[test]
fn without_tls_ssl_is_declined_and_prefer_clients_connect() {
    let s = TestServer::start();
    let run = |mode: &str| {
        std::process::Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} user={USER} dbname=infrasql sslmode={mode}",
                s.port
            ))
            .args(["-X", "-At", "-c", "select 1"])
            .env("PGPASSWORD", s.password())
            .output()
            .unwrap()
    };
    let o = run("prefer");
    assert_eq!(stdout(&o).trim(), "1", "{}", stderr(&o));
    let o = run("require");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("does not support SSL"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn trust_auth_needs_no_password_and_is_refused_off_loopback() {
    let s = TestServer::start_with(&["--auth", "trust"]);
    let o = std::process::Command::new("psql")
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-p",
            &s.port.to_string(),
            "-U",
            USER,
            "-d",
            "infrasql",
        ])
        .args(["-c", "select current_user"])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert_eq!(stdout(&o).trim(), USER, "{}", stderr(&o));

    let tmp = common::temp_dir();
    let o = std::process::Command::new(common::bin())
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--auth",
            "trust",
            "--data-dir",
        ])
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
}

#[test]
fn configuration_comes_from_flags_env_and_a_toml_file() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("infrasql.toml");
    std::fs::write(&cfg, "user = \"from_file\"\npg-options = [\"fsync=off\"]\n").unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .env("INFRASQL_CONFIG", &cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(line.contains("postgresql://from_file@127.0.0.1:"), "{line}");
    assert!(
        line.contains(&format!(
            "cat '{}'",
            data.canonicalize().unwrap().join("password").display()
        )),
        "{line}"
    );
    // The password file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("password"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
