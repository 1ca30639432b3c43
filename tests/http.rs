//! The HTTP listener (issue #16): `--http`, probes without a token, bearer
//! tokens from `infrasql token create` (only their hash stored), pages
//! read under the token's role, HTTPS with the wire's certificate, and the
//! web view in headless Chromium (`tests/web/`).

mod common;

use std::process::Command;

use common::{bin, one, stderr, stdout, Moto, TestServer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// An HTTP answer, read whole (the client sends `Connection: close`).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `http://host:port` or `https://host:port` → (tls, "host:port").
fn split_base(base: &str) -> (bool, &str) {
    match base.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => panic!("not an http(s) URL: {base}"),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, head: String) -> Reply {
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: body.to_owned(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body);
    }
    reply
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// One request on a fresh connection; `ca` (a PEM certificate) for https.
async fn request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    ca: Option<&str>,
) -> Reply {
    let (tls, addr) = split_base(base);
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    if !tls {
        return exchange(tcp, head).await;
    }
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.expect("a CA for https").as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    exchange(stream, head).await
}

async fn get(base: &str, path: &str, token: Option<&str>) -> Reply {
    request(base, "GET", path, token, None).await
}

/// `infrasql token ...` as the first-start login role (an admin).
fn token_cli(s: &TestServer, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("token")
        .args(args)
        .args(["--url", &s.conn_string()])
        .output()
        .expect("run infrasql token")
}

/// A new token of `kind` (`--reader`, `--admin`): the one line on stdout.
fn create_token(s: &TestServer, kind: &str) -> String {
    let o = token_cli(s, &["create", kind]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "only the token on stdout: {out:?}");
    assert!(lines[0].starts_with("isq_"), "{out:?}");
    lines[0].to_owned()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_non_loopback_address_without_tls_is_refused() {
    let tmp = common::temp_dir();
    let o = Command::new(bin())
        .args(["serve", "--http", "0.0.0.0:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--http 0.0.0.0:0 is not a loopback address") && err.contains("--tls-cert"),
        "{err}"
    );
    assert!(
        !tmp.path().join("data").join("pgdata").exists(),
        "refused before anything started"
    );
}

#[tokio::test]
async fn probes_are_open_pages_need_a_token_and_show_what_the_role_reads() {
    let moto = Moto::start();
    let mut s = TestServer::start_on(&moto, &["--http", "127.0.0.1:0"]);
    let base = s.http.clone().expect("the HTTP address is printed");
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    // Probes: no token, and nothing but the answer.
    let h = get(&base, "/healthz", None).await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let r = get(&base, "/readyz", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));

    // Every other path, existing or not, wants a token first.
    for path in ["/", "/inventory", "/applies", "/metrics", "/no-such-page"] {
        let a = get(&base, path, None).await;
        assert_eq!(a.status, 401, "{path}: {a:?}");
        assert_eq!(
            a.header("www-authenticate"),
            Some(r#"Bearer realm="infrasql""#),
            "{path}"
        );
    }
    // The sign-in form needs no token and holds nothing of the database;
    // every answer forbids loading from elsewhere.
    let login = get(&base, "/login", None).await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("id=\"token\"") && !login.body.contains("aws."),
        "{}",
        login.body
    );
    assert!(
        login
            .header("content-security-policy")
            .is_some_and(|c| c.starts_with("default-src 'none'")),
        "{login:?}"
    );
    let unknown = get(&base, "/", Some("isq_not-a-token")).await;
    assert_eq!(unknown.status, 401);
    assert!(
        unknown
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"),
        "{unknown:?}"
    );

    // A commit with a secret (user_data is write-only) to look at.
    let c = s.connect().await;
    let secret = "httpviewsecret7f3a9";
    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('webv', '10.77.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'webv-a', vpc_id, '10.77.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'webv';
         INSERT INTO aws.instance (name, image_id, instance_type, subnet_id, user_data)
           SELECT 'webv-1', 'ami-760aaa0f', 't3.micro', subnet_id, '{secret}'
           FROM aws.subnet WHERE name = 'webv-a';
         COMMIT;"
    ))
    .await
    .unwrap();
    let vpc: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'webv'").await;
    let apply: String = one(
        &c,
        "SELECT apply_id FROM infra.apply ORDER BY started_at DESC, apply_id LIMIT 1",
    )
    .await;

    let reader = create_token(&s, "--reader");
    // Only the hash rests in the database.
    let engine = s.connect_engine().await;
    let stored: String = one(
        &engine,
        "SELECT string_agg(to_jsonb(t)::text, ' ') FROM infra.http_token t",
    )
    .await;
    assert!(!stored.contains(&reader), "{stored}");
    assert!(stored.contains(&sha256_hex(&reader)), "{stored}");

    // The metrics, behind the same token: the commit above is counted,
    // and nothing of it but its outcome shows.
    let m = get(&base, "/metrics", Some(&reader)).await;
    assert_eq!(m.status, 200, "{m:?}");
    assert!(
        m.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{m:?}"
    );
    let samples = prometheus_parse::Scrape::parse(m.body.lines().map(|l| Ok(l.to_owned())))
        .expect("OpenMetrics text");
    let committed = samples.samples.iter().find(|x| {
        x.metric == "infrasql_commits_total" && x.labels.get("outcome") == Some("committed")
    });
    // OpenMetrics names a counter's family without `_total`: the parser
    // then leaves its samples untyped.
    assert!(
        matches!(committed.map(|x| &x.value), Some(prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Untyped(n)) if *n >= 1.0),
        "{}",
        m.body
    );
    assert!(
        !m.body.contains(&vpc) && !m.body.contains(secret),
        "{}",
        m.body
    );

    let home = get(&base, "/", Some(&reader)).await;
    assert_eq!(home.status, 200, "{home:?}");
    assert!(
        home.body.contains("reads as role infrasql_infra_reader"),
        "{}",
        home.body
    );

    let inv = get(&base, "/inventory", Some(&reader)).await;
    assert_eq!(inv.status, 200);
    assert!(
        inv.body.contains("href=\"/inventory/aws.vpc\""),
        "{}",
        inv.body
    );

    let found = get(&base, &format!("/inventory/aws.vpc?q={vpc}"), Some(&reader)).await;
    assert_eq!(found.status, 200);
    assert!(
        found.body.contains(&vpc) && found.body.contains("Rows: 1<"),
        "{}",
        found.body
    );
    let none = get(
        &base,
        "/inventory/aws.vpc?q=nothing-matches-this",
        Some(&reader),
    )
    .await;
    assert!(
        none.body.contains("Rows: 0<") && !none.body.contains(&vpc),
        "{}",
        none.body
    );
    let not_a_table = get(&base, "/inventory/infra.secret", Some(&reader)).await;
    assert_eq!(not_a_table.status, 404, "{not_a_table:?}");

    let history = get(&base, "/applies", Some(&reader)).await;
    assert!(
        history.body.contains(&format!("href=\"/applies/{apply}\"")),
        "{}",
        history.body
    );
    let one_apply = get(&base, &format!("/applies/{apply}"), Some(&reader)).await;
    assert_eq!(one_apply.status, 200, "{one_apply:?}");
    for expected in [
        vpc.as_str(),
        "aws.instance",
        "<svg id=\"graph\"",
        "id=\"revert-sql\"",
        "DELETE FROM aws.instance",
    ] {
        assert!(
            one_apply.body.contains(expected),
            "{expected}: {}",
            one_apply.body
        );
    }
    // Three nodes, and the subnet and instance each wait for their parent.
    assert_eq!(one_apply.body.matches("<g class=\"node\"").count(), 3);
    assert_eq!(one_apply.body.matches("<line ").count(), 2);

    for path in [
        "/drift",
        "/stacks",
        "/inventory/aws.instance",
        "/inventory/aws.instance?q=webv-1",
    ] {
        let p = get(&base, path, Some(&reader)).await;
        assert_eq!(p.status, 200, "{path}: {p:?}");
    }
    // The secret is on no page, nor found by a search.
    for path in [
        "/inventory/aws.instance",
        &format!("/applies/{apply}"),
        "/applies",
    ] {
        let p = get(&base, path, Some(&reader)).await;
        assert!(!p.body.contains(secret), "{path} shows the secret");
    }
    // (The search box echoes the query; no row matches it.)
    let searched = get(
        &base,
        &format!("/inventory/aws.instance?q={secret}"),
        Some(&reader),
    )
    .await;
    assert!(searched.body.contains("Rows: 0<"), "{}", searched.body);

    // A reader cannot act: nothing takes a write.
    let post = request(&base, "POST", "/applies", Some(&reader), None).await;
    assert_eq!(post.status, 405, "{post:?}");

    // The token's use is marked; revoked, it is refused.
    let listed = stdout(&token_cli(&s, &["list"]));
    let line = listed.lines().nth(1).unwrap_or_default().to_owned();
    assert!(
        line.starts_with("1\treader\t") && !line.ends_with("never"),
        "{listed}"
    );
    assert!(
        !listed.contains(&sha256_hex(&reader)),
        "no hashes listed: {listed}"
    );
    let o = token_cli(&s, &["revoke", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let revoked = get(&base, "/", Some(&reader)).await;
    assert_eq!(revoked.status, 401, "{revoked:?}");
    let again = token_cli(&s, &["revoke", "1"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("HTTP token 1 does not exist"),
        "{}",
        stderr(&again)
    );

    // An admin's token reads as the admin group.
    let admin = create_token(&s, "--admin");
    let home = get(&base, "/", Some(&admin)).await;
    assert!(
        home.body.contains("reads as role infrasql_infra_admin"),
        "{}",
        home.body
    );

    // An idle keep-alive connection does not hold up an orderly stop.
    let (_, addr) = split_base(&base);
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let status = s.stop().expect("the server was running");
    assert!(status.success(), "{status:?}: {}", s.stderr());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn only_admins_make_tokens() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let o = Command::new(bin())
        .args([
            "role",
            "add",
            "viewer",
            "--reader",
            "--url",
            &s.conn_string(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let password = stdout(&o).trim().to_owned();
    let url = format!(
        "host=127.0.0.1 port={} user=viewer password={password} dbname=infrasql",
        s.port
    );
    let o = Command::new(bin())
        .args(["token", "create", "--reader", "--url", &url])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    let engine = s.connect_engine().await;
    let n: i64 = one(&engine, "SELECT count(*) FROM infra.http_token").await;
    assert_eq!(n, 0);
}

#[tokio::test]
async fn with_the_wires_certificate_it_serves_https_on_any_address() {
    let tmp = common::temp_dir();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = tmp.path().join("server.crt");
    let key_path = tmp.path().join("server.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let moto = Moto::start();
    // Not loopback: allowed with TLS.
    let s = TestServer::start_on(
        &moto,
        &[
            "--http",
            "0.0.0.0:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let printed = s.http.clone().expect("the HTTP address is printed");
    assert!(printed.starts_with("https://0.0.0.0:"), "{printed}");
    let port = printed.rsplit(':').next().unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let ca = cert.cert.pem();

    let h = request(&base, "GET", "/healthz", None, Some(&ca)).await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let anon = request(&base, "GET", "/", None, Some(&ca)).await;
    assert_eq!(anon.status, 401);
    let token = create_token(&s, "--reader");
    let home = request(&base, "GET", "/", Some(&token), Some(&ca)).await;
    assert_eq!(home.status, 200, "{home:?}");

    // Plain HTTP on the TLS port gets no page.
    let mut tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw).await;
    assert!(!String::from_utf8_lossy(&raw).contains("200 OK"), "{raw:?}");
}

/// The web view in headless Chromium (`tests/web/check.mjs`, playwright-core
/// driving Debian's chromium): each page loads, shows what the database
/// holds, and the history links to the apply's actions. Screenshots land
/// in `target/web-screenshots/`. Without node, chromium or the npm package
/// it fails: `scripts/setup` installs them.
#[tokio::test]
async fn the_web_view_in_a_real_browser() {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/setup (apt package chromium)"
    );
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "tests/web/node_modules/playwright-core is missing: run scripts/setup (npm ci in tests/web)"
    );
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &["--http", "127.0.0.1:0"]);
    let base = s.http.clone().expect("the HTTP address is printed");
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('browser', '10.78.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block)
           SELECT 'browser-a', vpc_id, '10.78.1.0/24' FROM aws.vpc WHERE name = 'browser';
         COMMIT;",
    )
    .await
    .unwrap();
    let vpc: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'browser'").await;
    let apply: String = one(
        &c,
        "SELECT apply_id FROM infra.apply ORDER BY started_at DESC, apply_id LIMIT 1",
    )
    .await;
    let token = create_token(&s, "--reader");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let shots = target.join("web-screenshots");
    let o = Command::new("node")
        .arg(web.join("check.mjs"))
        .env("WEB_BASE", &base)
        .env("WEB_TOKEN", &token)
        .env("WEB_RESOURCE", &vpc)
        .env("WEB_APPLY", &apply)
        .env("WEB_SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (run scripts/setup): {e}"));
    assert!(
        o.status.success(),
        "the browser check failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    for page in [
        "index",
        "inventory-vpc-search",
        "drift",
        "stacks",
        "applies",
        "apply",
        "login",
    ] {
        let png = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", png.display());
    }
}
