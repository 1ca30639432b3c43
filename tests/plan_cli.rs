//! `infrasql plan`: the real binary against a real server on moto. Exit
//! codes, the formats (the plan's graph too), the failing line, secrets, and that SQL
//! trying to leave the plan-only session applies nothing.

mod common;

use std::process::{Command, Output};

use common::{write_file as write, Moto, TestServer};

fn plan(s: &TestServer, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("plan")
        .args(["--url", &s.conn_string()])
        .args(args)
        .output()
        .expect("run infrasql plan")
}

const VPC: &str = "INSERT INTO aws.vpc (name, cidr_block) VALUES ('pr', '10.60.0.0/16');\n";

#[tokio::test]
async fn exit_codes_and_formats() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();

    let empty = write(dir.path(), "empty.sql", "SELECT 1;\n");
    let o = plan(&s, &[&empty]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert!(common::stdout(&o).contains("0 to create, 0 to update, 0 to replace, 0 to delete"));

    let f = write(dir.path(), "vpc.sql", VPC);
    let o = plan(&s, &[&f]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("+ create aws.vpc pr ((known after apply), us-east-1)"),
        "{out}"
    );
    assert!(out.contains("cidr_block: 10.60.0.0/16"), "{out}");

    let o = plan(&s, &["--format", "markdown", &f]);
    assert_eq!(o.status.code(), Some(2));
    let md = common::stdout(&o);
    assert_eq!(
        md.lines().next(),
        Some("**Plan:** 1 to create, 0 to update, 0 to replace, 0 to delete"),
        "{md}"
    );
    assert!(md.contains("### `aws.vpc`"), "{md}");
    assert!(
        md.contains("| create | pr | (known after apply) | us-east-1 |"),
        "{md}"
    );

    let o = plan(&s, &["--format", "json", &f]);
    assert_eq!(o.status.code(), Some(2));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    let changes = j["resource_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{j}");
    let c = &changes[0];
    assert_eq!(c["table"], "aws.vpc");
    assert_eq!(c["name"], "pr");
    assert_eq!(c["region"], "us-east-1");
    assert_eq!(c["id"], "(known after apply)");
    assert_eq!(c["change"]["actions"], serde_json::json!(["create"]));
    assert_eq!(c["change"]["before"], serde_json::Value::Null);
    assert_eq!(c["change"]["after"]["cidr_block"], "10.60.0.0/16");
    assert!(c["change"].get("replace_reason").is_some(), "{j}");

    // Nothing of it was applied.
    assert!(moto.vpcs().await.is_empty());
    let db = s.connect().await;
    assert_eq!(
        common::one::<i64>(&db, "SELECT count(*) FROM aws.vpc").await,
        0
    );
}

#[tokio::test]
async fn an_error_names_the_file_and_line() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let f = write(
        dir.path(),
        "bad.sql",
        &format!("{VPC}\n-- the next one is wrong\nINSERT INTO aws.vpc (name, cidr_block)\n  VALUES ('x', 'not a cidr');\n"),
    );
    let o = plan(&s, &[&f]);
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert!(err.contains(&format!("{f}:5: 22P02")), "{err}");
    assert!(moto.vpcs().await.is_empty());
}

#[tokio::test]
async fn a_secret_is_shown_as_sensitive() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let f = write(
        dir.path(),
        "web.sql",
        "INSERT INTO aws.instance (name, image_id, instance_type, user_data)
           VALUES ('web', 'ami-760aaa0f', 't3.micro', 'topsecretuserdata');\n",
    );
    for format in ["table", "markdown", "json"] {
        let o = plan(&s, &["--format", format, &f]);
        assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
        let out = common::stdout(&o);
        assert!(out.contains("(sensitive)"), "{format}: {out}");
        assert!(!out.contains("topsecretuserdata"), "{format}: {out}");
    }
}

#[tokio::test]
async fn sql_cannot_leave_the_plan_only_session() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let attempts = [
        format!("{VPC}COMMIT;\n"),
        format!("SET infra.dry_run = off;\n{VPC}COMMIT;\n"),
        format!("RESET ALL;\n{VPC}COMMIT;\n"),
        // After the file's COMMIT, an autocommit statement.
        format!("COMMIT;\nRESET ALL;\nSET infra.dry_run = off;\n{VPC}"),
        format!("ROLLBACK;\nBEGIN;\nSET LOCAL infra.dry_run = off;\n{VPC}END;\n"),
    ];
    for (i, sql) in attempts.iter().enumerate() {
        let f = write(dir.path(), &format!("escape{i}.sql"), sql);
        let o = plan(&s, &[&f]);
        assert_ne!(o.status.code(), Some(1), "{sql}: {}", common::stderr(&o));
    }
    assert!(moto.vpcs().await.is_empty());
    let db = s.connect().await;
    assert_eq!(
        common::one::<i64>(&db, "SELECT count(*) FROM aws.vpc").await,
        0
    );
    // A normal session still applies.
    db.batch_execute(VPC).await.unwrap();
    assert_eq!(moto.vpcs().await.len(), 1);
}

#[tokio::test]
async fn a_directory_runs_its_files_in_name_order() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    write(dir.path(), "01_vpc.sql", VPC);
    write(
        dir.path(),
        "02_subnet.sql",
        "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'pr-a', vpc_id, '10.60.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'pr';\n",
    );
    let o = plan(&s, &[&dir.path().display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stdout(&o).contains("2 to create"),
        "{}",
        common::stdout(&o)
    );
}

/// The committed policies judge the plan as COMMIT would: a deny is shown
/// in every format and exits 1, a warn is shown and does not, and a file
/// that deletes the policy cannot silence it.
#[tokio::test]
async fn policies_are_shown_and_a_deny_exits_1() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    db.batch_execute(
        "INSERT INTO infra.policy (name, message, query) VALUES ('vpc-owner',
           'every VPC needs an owner tag',
           $$SELECT vpc_id AS resource_id, name FROM aws.vpc WHERE NOT tags ? 'owner'$$);
         INSERT INTO infra.policy (name, severity, message, query) VALUES ('vpc-size', 'warn',
           'prefer /20 or smaller', $$SELECT vpc_id AS resource_id FROM aws.vpc WHERE cidr_block::text LIKE '%/16'$$);",
    )
    .await
    .unwrap();
    let dir = common::temp_dir();
    let untagged = write(dir.path(), "untagged.sql", VPC);
    let o = plan(&s, &[&untagged]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("! policy vpc-owner (deny): every VPC needs an owner tag"),
        "{out}"
    );
    assert!(out.contains("! policy vpc-size (warn)"), "{out}");
    assert!(out.contains("COMMIT would be refused"), "{out}");

    let o = plan(&s, &["--format", "markdown", &untagged]);
    assert_eq!(o.status.code(), Some(1));
    let md = common::stdout(&o);
    assert!(md.contains("### Policies"), "{md}");
    assert!(
        md.contains("| vpc-owner | deny | every VPC needs an owner tag |"),
        "{md}"
    );

    let o = plan(&s, &["--format", "json", &untagged]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    let results = j["policy_results"].as_array().expect("policy_results");
    let deny = results
        .iter()
        .find(|r| r["policy"] == "vpc-owner")
        .expect("the deny");
    assert_eq!(deny["refuses"], true);
    assert_eq!(deny["offending"]["name"], "pr");

    // Tagged: only the warning; the plan has changes.
    let tagged = write(
        dir.path(),
        "tagged.sql",
        "INSERT INTO aws.vpc (name, cidr_block, tags) VALUES ('pr', '10.60.0.0/16', '{\"owner\": \"me\"}');\n",
    );
    let o = plan(&s, &[&tagged]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(out.contains("! policy vpc-size (warn)"), "{out}");
    assert!(!out.contains("vpc-owner"), "{out}");

    // The file cannot edit the policies that judge it.
    let sneaky = write(
        dir.path(),
        "sneaky.sql",
        &format!("DELETE FROM infra.policy;\n{VPC}"),
    );
    let o = plan(&s, &[&sneaky]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stdout(&o));
    assert!(common::stdout(&o).contains("vpc-owner"));
    assert!(moto.vpcs().await.is_empty());
}

/// The client subcommands speak libpq's sslmode: verify-full checks the
/// chain and the host name, verify-ca only the chain, and require fails
/// on a server without TLS.
#[tokio::test]
async fn tls_as_sslmode_asks() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let tmp = common::temp_dir();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let other_key = KeyPair::generate().unwrap();
    let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_ca = other.self_signed(&other_key).unwrap();
    let file = |name: &str, pem: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    let cert = file("server.crt", leaf.pem());
    let key = file("server.key", key.serialize_pem());
    let root = file("root.crt", ca_cert.pem());
    let wrong_root = file("wrong.crt", other_ca.pem());

    let s = TestServer::start_with(&["--tls-cert", &cert, "--tls-key", &key]);
    let f = write(tmp.path(), "vpc.sql", VPC);
    let run = |host: &str, extra: &str| {
        let url = format!(
            "host={host} port={} user={} password={} dbname=infrasql {extra}",
            s.port,
            common::USER,
            s.password()
        );
        Command::new(common::bin())
            .args(["plan", "--url", &url, &f])
            .env("HOME", tmp.path())
            .output()
            .unwrap()
    };
    let o = run(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={root}"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let o = run(
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={root}"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("certificate"),
        "{}",
        common::stderr(&o)
    );
    let o = run(
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={root}"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let o = run(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={wrong_root}"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("certificate"),
        "{}",
        common::stderr(&o)
    );
    let o = run("localhost", "sslmode=verify_full");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("invalid sslmode"),
        "{}",
        common::stderr(&o)
    );

    // PGSSLMODE is the default when the string says nothing.
    let plain = TestServer::start();
    let o = Command::new(common::bin())
        .args(["plan", "--url", &plain.conn_string(), &f])
        .env("PGSSLMODE", "require")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert!(err.contains("server does not support TLS"), "{err}");
    let o = Command::new(common::bin())
        .args(["plan", "--url", &plain.conn_string(), &f])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
}

const NETWORK: &str = "
INSERT INTO aws.vpc (name, cidr_block) VALUES ('g', '10.61.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'g-a', vpc_id, '10.61.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'g';
INSERT INTO aws.security_group (name, group_name, description, vpc_id)
  SELECT 'g-web', 'g-web', 'web servers', vpc_id FROM aws.vpc WHERE name = 'g';
INSERT INTO aws.security_group_rule (group_id, is_egress, ip_protocol, from_port, to_port, cidr_ipv4)
  SELECT group_id, false, 'tcp', 443, 443, '0.0.0.0/0' FROM aws.security_group WHERE group_name = 'g-web';
";

/// The id of the one node whose label starts with `action table`, in
/// either format (`r3 [label="create aws.vpc...` or `r3["create aws.vpc...`).
fn node_id(out: &str, action_table: &str) -> String {
    let found: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.contains(&format!("[label=\"{action_table}\\n"))
                || l.contains(&format!("[\"{action_table}<br>"))
        })
        .collect();
    assert_eq!(found.len(), 1, "one node {action_table}: {out}");
    let l = found[0].trim_start();
    l[..l.find('[').unwrap()].trim_end().to_string()
}

/// `--format dot` and `mermaid` draw the plan's graph: nodes coloured by
/// action, an arrow from each step to the step it waits for (reversed
/// among deletes, as the apply runs them); markdown embeds the Mermaid.
#[tokio::test]
async fn the_plan_as_a_graph() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let f = write(dir.path(), "network.sql", NETWORK);

    let o = plan(&s, &["--format", "dot", &f]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let dot = common::stdout(&o);
    assert!(
        dot.starts_with("digraph plan {\n") && dot.ends_with("}\n"),
        "{dot}"
    );
    let vpc = node_id(&dot, "create aws.vpc");
    let subnet = node_id(&dot, "create aws.subnet");
    let sg = node_id(&dot, "create aws.security_group");
    let rule = node_id(&dot, "create aws.security_group_rule");
    for (from, to) in [(&subnet, &vpc), (&sg, &vpc), (&rule, &sg)] {
        assert!(
            dot.contains(&format!("  {from} -> {to};\n")),
            "{from} -> {to}: {dot}"
        );
    }
    let edges = dot
        .lines()
        .filter(|l| l.starts_with("  r") && l.contains(" -> "));
    assert_eq!(edges.count(), 3, "{dot}");
    assert!(
        dot.contains(&format!(
            "  {subnet} [label=\"create aws.subnet\\ng-a\\n(known after apply), us-east-1\", fillcolor=\"#c6efce\", color=\"#2e7d32\"];"
        )),
        "{dot}"
    );
    assert!(dot.contains("legend_create [label=\"create\""), "{dot}");
    graphviz_accepts(&dot);

    let o = plan(&s, &["--format", "mermaid", &f]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let mermaid = common::stdout(&o);
    assert!(mermaid.starts_with("flowchart RL\n"), "{mermaid}");
    let (m_vpc, m_subnet) = (
        node_id(&mermaid, "create aws.vpc"),
        node_id(&mermaid, "create aws.subnet"),
    );
    assert_eq!(
        (&m_vpc, &m_subnet),
        (&vpc, &subnet),
        "the same ids in both formats"
    );
    assert!(
        mermaid.contains(&format!("  {subnet} --> {vpc}\n")),
        "{mermaid}"
    );
    assert!(
        mermaid.contains(&format!("  {rule} --> {sg}\n")),
        "{mermaid}"
    );
    assert!(mermaid.contains(&format!(
        "  {sg}[\"create aws.security_group<br>g-web<br>(known after apply), us-east-1\"]:::create\n"
    )), "{mermaid}");
    assert!(
        mermaid.contains("  classDef create fill:#c6efce,stroke:#2e7d32,color:#000\n"),
        "{mermaid}"
    );

    let o = plan(&s, &["--format", "markdown", &f]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let md = common::stdout(&o);
    let expected = format!(
        "**Plan:** 4 to create, 0 to update, 0 to replace, 0 to delete\n\n```mermaid\n{mermaid}```\n\n### `aws.vpc`"
    );
    assert!(md.starts_with(&expected), "{md}");

    let o = plan(&s, &["--format", "svg", &f]);
    // A usage error is an error (1), never "there are changes" (2): the
    // CI block in docs/ci.md passes on 2.
    assert_eq!(o.status.code(), Some(1), "a usage error exits 1");
    let err = common::stderr(&o);
    assert!(
        err.contains("invalid value 'svg' for '--format <FORMAT>'"),
        "{err}"
    );
    assert!(
        err.contains("[possible values: table, markdown, json, dot, mermaid]"),
        "{err}"
    );
    assert!(common::stdout(&o).is_empty());

    // Applied, then deleted: the VPC's delete waits for the subnet's.
    let db = s.connect().await;
    db.batch_execute(NETWORK).await.unwrap();
    let gone = write(
        dir.path(),
        "gone.sql",
        "DELETE FROM aws.security_group_rule
           WHERE group_id IN (SELECT group_id FROM aws.security_group WHERE group_name = 'g-web');
         DELETE FROM aws.security_group WHERE group_name = 'g-web';
         DELETE FROM aws.subnet WHERE name = 'g-a';
         DELETE FROM aws.vpc WHERE name = 'g';\n",
    );
    let o = plan(&s, &["--format", "dot", &gone]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let dot = common::stdout(&o);
    let vpc = node_id(&dot, "delete aws.vpc");
    let subnet = node_id(&dot, "delete aws.subnet");
    let sg = node_id(&dot, "delete aws.security_group");
    let rule = node_id(&dot, "delete aws.security_group_rule");
    for (from, to) in [(&vpc, &subnet), (&vpc, &sg), (&sg, &rule)] {
        assert!(
            dot.contains(&format!("  {from} -> {to} [style=dashed];\n")),
            "{from} -> {to}: {dot}"
        );
    }
    assert!(
        dot.contains("fillcolor=\"#ffc7ce\", color=\"#c62828\""),
        "{dot}"
    );
    assert!(!dot.contains("legend_create"), "{dot}");
    graphviz_accepts(&dot);
    assert_eq!(moto.vpcs().await.len(), 1, "the plan deleted nothing");
}

/// Graphviz parses the DOT, when it is installed (it is not a dependency).
fn graphviz_accepts(dot: &str) {
    use std::io::Write;
    use std::process::Stdio;
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped the graphviz check: `dot` cannot run ({e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "dot -Tsvg: {}\n{dot}",
        common::stderr(&o)
    );
    assert!(
        common::stdout(&o).contains("<svg"),
        "{}",
        common::stdout(&o)
    );
}
