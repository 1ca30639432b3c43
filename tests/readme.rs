//! README's worked examples, run as written: the documentation cannot
//! drift from what the server does.

mod common;

use common::{stdout, Moto, TestServer};

/// The ```sql block after `<!-- example: NAME -->` in README.md.
fn example(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let marker = format!("<!-- example: {name} -->");
    let after = &readme[readme.find(&marker).expect("the example's marker") + marker.len()..];
    let start = after.find("```sql\n").expect("its sql block") + "```sql\n".len();
    let len = after[start..].find("```").expect("the block's end");
    after[start..start + len].to_owned()
}

#[tokio::test]
async fn the_database_stack_example_commits_and_shows_the_endpoint() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let file = common::temp_dir();
    let path = file.path().join("stack.sql");
    std::fs::write(&path, example("database stack")).unwrap();
    let out = s.psql(&["-A", "-t", "-F", "|", "-f", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The last line is the SELECT: endpoint, port, status, secret ARN.
    let text = stdout(&out);
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    let cols: Vec<&str> = last.split('|').collect();
    assert_eq!(cols.len(), 4, "{text}");
    assert!(cols[0].starts_with("shop."), "endpoint address: {last}");
    assert_eq!(cols[1], "5432");
    assert_eq!(cols[2], "available");
    assert!(cols[3].starts_with("arn:aws:secretsmanager:"), "{last}");

    // AWS has what the rows say.
    let rds = moto.rds().await;
    let db = rds
        .describe_db_instances()
        .db_instance_identifier("shop")
        .send()
        .await
        .unwrap();
    let db = &db.db_instances()[0];
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("shop")
    );
    assert_eq!(db.db_subnet_group().unwrap().subnets().len(), 2);
    assert_eq!(db.vpc_security_groups().len(), 1);
    assert_eq!(
        db.db_parameter_groups()[0].db_parameter_group_name(),
        Some("shop-pg16")
    );
}
