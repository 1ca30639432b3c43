//! `infrasql plan --stack` and `infrasql apply --stack`: one directory as
//! two environments through psql variables, a second apply that plans
//! nothing, prune and --no-prune, an unset variable and a resource declared
//! twice named by file and line. The real binary, a real server on moto.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{one, write_file as write, Moto, TestServer};

fn infrasql(s: &TestServer, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg(args[0])
        .args(["--url", &s.conn_string()])
        .args(&args[1..])
        .output()
        .expect("run infrasql")
}

const VPC: &str = "INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('main', :'cidr', jsonb_build_object('env', :'env'));\n";
const SUBNET: &str = "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'a', vpc_id, :'subnet', 'us-east-1a' FROM aws.vpc WHERE name = 'main';\n";

fn vars(dir: &Path, env: &str, octet: u8) -> String {
    write(
        dir,
        &format!("{env}.vars"),
        &format!("env={env}\ncidr=10.{octet}.0.0/16\nsubnet=10.{octet}.1.0/24\n"),
    )
}

#[tokio::test]
async fn one_directory_two_environments_converge_and_prune() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let tmp = common::temp_dir();
    let stack_dir = tmp.path().join("web");
    std::fs::create_dir(&stack_dir).unwrap();
    write(&stack_dir, "01_vpc.sql", VPC);
    let subnet = write(&stack_dir, "02_subnet.sql", SUBNET);
    let dir = stack_dir.display().to_string();
    let staging = vars(tmp.path(), "staging", 90);
    let prod = vars(tmp.path(), "prod", 91);

    let o = infrasql(
        &s,
        &[
            "plan",
            "--stack",
            "web.staging",
            "--var-file",
            &staging,
            &dir,
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stdout(&o).contains("2 to create"),
        "{}",
        common::stdout(&o)
    );
    for (stack, file) in [("web.staging", &staging), ("web.prod", &prod)] {
        let o = infrasql(&s, &["apply", "--stack", stack, "--var-file", file, &dir]);
        assert!(o.status.success(), "{}", common::stderr(&o));
        assert!(
            common::stdout(&o).contains(&format!(
                "stack {stack}: applied (2 declared, 0 pruned; apply apply-"
            )),
            "{}",
            common::stdout(&o)
        );
    }
    assert_eq!(moto.vpcs().await.len(), 2);
    let db = s.connect().await;
    let crossed: i64 = one(
        &db,
        "SELECT count(*) FROM aws.subnet s JOIN aws.vpc v USING (vpc_id) WHERE s.stack IS DISTINCT FROM v.stack",
    )
    .await;
    assert_eq!(crossed, 0);
    let prod_cidr: String = one(
        &db,
        "SELECT cidr_block::text FROM aws.vpc WHERE stack = 'web.prod'",
    )
    .await;
    assert_eq!(prod_cidr, "10.91.0.0/16");
    let source: String = one(
        &db,
        "SELECT source FROM infra.apply ORDER BY started_at DESC LIMIT 1",
    )
    .await;
    assert_eq!(source, "stack web.prod");

    // Again: nothing to do, and the second apply says so.
    let o = infrasql(
        &s,
        &[
            "plan",
            "--stack",
            "web.staging",
            "--var-file",
            &staging,
            &dir,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", common::stdout(&o));
    let o = infrasql(
        &s,
        &[
            "apply",
            "--stack",
            "web.staging",
            "--var-file",
            &staging,
            &dir,
        ],
    );
    assert!(
        common::stdout(&o).contains("no cloud changes"),
        "{}",
        common::stdout(&o)
    );

    // The subnet's file goes: --no-prune keeps it, a plain apply deletes it.
    std::fs::remove_file(&subnet).unwrap();
    let o = infrasql(
        &s,
        &[
            "plan",
            "--stack",
            "web.staging",
            "--var-file",
            &staging,
            &dir,
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stdout(&o).contains("1 to delete"),
        "{}",
        common::stdout(&o)
    );
    let o = infrasql(
        &s,
        &[
            "apply",
            "--stack",
            "web.staging",
            "--no-prune",
            "--var-file",
            &staging,
            &dir,
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM aws.subnet").await, 2);
    let o = infrasql(
        &s,
        &[
            "apply",
            "--stack",
            "web.staging",
            "--var-file",
            &staging,
            &dir,
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(
        common::stdout(&o).contains("1 pruned"),
        "{}",
        common::stdout(&o)
    );
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM aws.subnet WHERE stack = 'web.staging'"
        )
        .await,
        0
    );
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM aws.subnet WHERE stack = 'web.prod'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_unset_variable_and_a_double_declaration_name_file_and_line() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let tmp = common::temp_dir();
    let f = write(tmp.path(), "vpc.sql", VPC);
    let o = infrasql(
        &s,
        &["apply", "--stack", "web", "--var", "cidr=10.92.0.0/16", &f],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert!(
        err.contains(&format!("{f}:2: variable \"env\" is not set")),
        "{err}"
    );

    let again = write(
        tmp.path(),
        "again.sql",
        "-- the same VPC\nINSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.93.0.0/16');\n",
    );
    let o = infrasql(
        &s,
        &[
            "plan",
            "--stack",
            "web",
            "--var",
            "cidr=10.92.0.0/16",
            "--var",
            "env=x",
            &f,
            &again,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert!(
        err.contains("aws.vpc name = 'main' is declared twice in stack web"),
        "{err}"
    );
    assert!(
        err.contains(&format!("First declared at {f}:1, again at {again}:2.")),
        "{err}"
    );
    assert!(moto.vpcs().await.is_empty());
}
