//! The GitOps agent (`serve --gitops-repo`): a local repository over
//! `file://`, made with the `git` binary, and a server following it every
//! second. Commits create, update, roll back and prune a stack; a broken
//! stack fails alone; a stack whose directory is gone and a fetch that
//! fails apply nothing; self_heal reverts a change made in AWS; a large
//! prune waits for `infrasql stack confirm`; one set of files serves two
//! stacks with different variables. Conditions are awaited with a deadline.

mod common;

use std::process::Command;

use common::gitops::{applied_at, serve, stack_row, until, Repo};
use common::{one, Moto};

async fn vpc_tag(moto: &Moto, vpc: &str, key: &str) -> Option<String> {
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(vpc)
        .send()
        .await
        .unwrap();
    out.vpcs()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_owned))
}

const NET: &str = "INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('net', '10.40.0.0/16', jsonb_build_object('env', :'environment', 'tier', 'one'));\n";
const SUBNET: &str = "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'a', vpc_id, '10.40.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'net';\n";

#[tokio::test]
async fn commits_create_update_roll_back_and_prune_and_nothing_else_deletes() {
    let moto = Moto::start();
    let repo = Repo::new();
    repo.write("infra/net/stack.toml", "environment = \"staging\"\n");
    repo.write("infra/net/01_vpc.sql", NET);
    repo.write("infra/marker/stack.toml", "# round 1\n");
    repo.write(
        "infra/old/01.sql",
        &NET.replace("'net'", "'old'")
            .replace(":'environment'", "'old'")
            .replace("10.40.", "10.41."),
    );
    let c1 = repo.commit("net: a VPC");
    let s = serve(&moto, &repo);
    let db = s.connect().await;

    // A commit creates the stack, named <dir>.<environment>.
    assert_eq!(applied_at(&s, &db, "net.staging", &c1).await, 1);
    let vpc: String = one(
        &db,
        "SELECT vpc_id FROM aws.vpc WHERE stack = 'net.staging'",
    )
    .await;
    assert_eq!(
        vpc_tag(&moto, &vpc, "env").await.as_deref(),
        Some("staging")
    );
    let (source, author): (String, String) = {
        let r = db
            .query_one(
                "SELECT source, author FROM infra.stack WHERE name = 'net.staging'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(source, format!("git {} infra/net", repo.url()));
    assert_eq!(author, "Ada <ada@example.com>");
    // The apply itself says which commit and who wrote it.
    let r = db
        .query_one(
            "SELECT source, author FROM infra.apply WHERE source LIKE 'stack net.staging@%' \
             ORDER BY started_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), format!("stack net.staging@{c1}"));
    assert_eq!(
        r.get::<_, Option<String>>(1).as_deref(),
        Some("Ada <ada@example.com>")
    );
    assert_eq!(applied_at(&s, &db, "old", &c1).await, 1);
    assert_eq!(moto.vpcs().await.len(), 2);

    // delete = true removes a stack's resources, then the stack.
    repo.write("infra/old/stack.toml", "delete = true\n");
    repo.commit("retire old");
    until(&s, "stack old deleted", || async {
        stack_row(&db, "old").await.is_none().then_some(())
    })
    .await;
    assert_eq!(moto.vpcs().await, vec![vpc.clone()]);

    // A second commit updates it, a third adds a subnet.
    repo.write("infra/net/01_vpc.sql", &NET.replace("'one'", "'two'"));
    let c2 = repo.commit("net: tier two");
    assert_eq!(applied_at(&s, &db, "net.staging", &c2).await, 1);
    assert_eq!(vpc_tag(&moto, &vpc, "tier").await.as_deref(), Some("two"));
    repo.write("infra/net/02_subnet.sql", SUBNET);
    let c3 = repo.commit("net: a subnet");
    assert_eq!(applied_at(&s, &db, "net.staging", &c3).await, 2);

    // git revert deletes the file again: the subnet is pruned, in AWS too.
    repo.git(&["revert", "--no-edit", "HEAD"]);
    let c4 = repo.git(&["rev-parse", "HEAD"]);
    assert_eq!(applied_at(&s, &db, "net.staging", &c4).await, 1);
    let subnets = moto
        .ec2()
        .await
        .describe_subnets()
        .filters(
            infrasql_aws::aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(subnets.subnets().is_empty(), "{subnets:?}");

    // A broken stack fails alone; the other stack of the commit applies.
    repo.write(
        "infra/broken/01.sql",
        "INSERT INTO aws.vpc (name, cidr_block) VALUS ('x', '10.9.0.0/16');\n",
    );
    repo.write("infra/net/01_vpc.sql", &NET.replace("'one'", "'three'"));
    let c5 = repo.commit("broken, and tier three");
    assert_eq!(applied_at(&s, &db, "net.staging", &c5).await, 1);
    let (_, status, _, error) = until(&s, "stack broken failed", || async {
        stack_row(&db, "broken").await.filter(|r| r.1 == "failed")
    })
    .await;
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("01.sql:1") && error.contains("42601"),
        "{error}"
    );
    let backoff: bool = one(
        &db,
        "SELECT next_attempt_at > now() FROM infra.stack WHERE name = 'broken'",
    )
    .await;
    assert!(
        backoff,
        "a failed stack is retried after a backoff, not in a tight loop"
    );

    // The net directory disappears: nothing of it is pruned.
    repo.remove("infra/net");
    repo.write("infra/marker/stack.toml", "# round 2\n");
    let c6 = repo.commit("net moved away by mistake");
    applied_at(&s, &db, "marker", &c6).await;
    let (rev, status, resources, _) = stack_row(&db, "net.staging").await.unwrap();
    assert_eq!(
        (rev.as_deref(), status.as_str(), resources),
        (Some(c5.as_str()), "synced", 1)
    );
    assert_eq!(moto.vpcs().await, vec![vpc.clone()]);

    // A commit without the gitops path applies nothing either.
    repo.remove("infra");
    repo.write("README", "moved to infra2/\n");
    let c7 = repo.commit("infra/ moved away by mistake");
    until(&s, "the missing path logged", || async {
        s.stderr()
            .contains("has no stack directories at")
            .then_some(())
    })
    .await;

    // Nor does a fetch that fails (the repository moved away).
    std::fs::rename(&repo.dir, repo.dir.with_extension("moved")).unwrap();
    until(&s, "a failed fetch logged", || async {
        s.stderr().contains("cannot fetch main").then_some(())
    })
    .await;
    let marker = stack_row(&db, "marker").await.unwrap();
    assert_eq!(
        marker.0.as_deref(),
        Some(c6.as_str()),
        "{c7} applied nothing"
    );
    let net = stack_row(&db, "net.staging").await.unwrap();
    assert_eq!((net.0.as_deref(), net.2), (Some(c5.as_str()), 1));
    assert_eq!(moto.vpcs().await, vec![vpc]);
}

const WEB: &str = "INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('web', :'cidr', jsonb_build_object('env', :'environment'));\n";

fn subnets(octet: u8, n: u8) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 's{i}', vpc_id, '10.{octet}.{i}.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'web';\n"
            )
        })
        .collect()
}

fn web(repo: &Repo, env: &str, octet: u8, self_heal: bool, n_subnets: u8) {
    repo.write(
        &format!("infra/web-{env}/stack.toml"),
        &format!(
            "name = \"web.{env}\"\nenvironment = \"{env}\"\nself_heal = {self_heal}\n\n[vars]\ncidr = \"10.{octet}.0.0/16\"\n"
        ),
    );
    repo.write(&format!("infra/web-{env}/01_vpc.sql"), WEB);
    repo.write(
        &format!("infra/web-{env}/02_subnets.sql"),
        &subnets(octet, n_subnets),
    );
}

#[tokio::test]
async fn self_heal_prune_confirmation_and_one_set_of_files_for_two_stacks() {
    let moto = Moto::start();
    let repo = Repo::new();
    web(&repo, "staging", 50, true, 1);
    web(&repo, "prod", 51, false, 2);
    let c1 = repo.commit("web in staging and prod");
    let s = serve(&moto, &repo);
    let db = s.connect().await;

    // The same files, different variables.
    assert_eq!(applied_at(&s, &db, "web.staging", &c1).await, 2);
    assert_eq!(applied_at(&s, &db, "web.prod", &c1).await, 3);
    let cidrs: Vec<String> = db
        .query(
            "SELECT stack || ' ' || cidr_block::text FROM aws.vpc ORDER BY stack",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cidrs, ["web.prod 10.51.0.0/16", "web.staging 10.50.0.0/16"]);

    // A change made in AWS: reverted in staging (self_heal), reported in prod.
    let _: serde_json::Value = one(&db, "SELECT infra.sync()").await;
    let id = |stack: &'static str| {
        let db = &db;
        async move {
            one::<String>(
                db,
                &format!("SELECT vpc_id FROM aws.vpc WHERE stack = '{stack}'"),
            )
            .await
        }
    };
    let (staging, prod) = (id("web.staging").await, id("web.prod").await);
    let ec2 = moto.ec2().await;
    for vpc in [&staging, &prod] {
        ec2.create_tags()
            .resources(vpc)
            .tags(
                infrasql_aws::aws_sdk_ec2::types::Tag::builder()
                    .key("env")
                    .value("console")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let _: serde_json::Value = one(&db, "SELECT infra.sync()").await;
    assert_eq!(
        vpc_tag(&moto, &staging, "env").await.as_deref(),
        Some("staging")
    );
    assert_eq!(
        vpc_tag(&moto, &prod, "env").await.as_deref(),
        Some("console")
    );
    let prod_row = stack_row(&db, "web.prod").await.unwrap();
    assert_eq!(prod_row.1, "drifted");

    // Removing both of prod's subnets (2 of 3 resources) waits for a person.
    repo.remove("infra/web-prod/02_subnets.sql");
    let c2 = repo.commit("prod: no subnets");
    let (_, _, resources, error) = until(&s, "web.prod waiting", || async {
        stack_row(&db, "web.prod")
            .await
            .filter(|r| r.1 == "waiting")
    })
    .await;
    assert_eq!(resources, 3, "nothing was pruned");
    let error = error.unwrap();
    assert!(
        error.contains("would delete 2 of the stack's 3 resources"),
        "{error}"
    );
    assert!(error.contains("infrasql stack confirm web.prod"), "{error}");
    let o = Command::new(common::bin())
        .args(["stack", "confirm", "web.prod", "--url", &s.conn_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(
        common::stdout(&o).contains("confirmed"),
        "{}",
        common::stdout(&o)
    );
    assert_eq!(applied_at(&s, &db, "web.prod", &c2).await, 1);

    // Confirming a stack that waits for nothing is an error that says so.
    let e = db
        .query_one("SELECT infra.stack_confirm('web.prod')", &[])
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e).as_deref(), Some("55000"));

    // Nothing was deleted in staging by the prod change.
    assert_eq!(moto.vpcs().await.len(), 2);
}
