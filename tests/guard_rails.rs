//! Guard rails: the mass-delete guard refuses a COMMIT that deletes more
//! than `infra.max_deletes` resources before any AWS call, unless the
//! session opts in.

mod common;

use common::{one, sqlstate, Moto, TestServer};

#[tokio::test]
async fn a_mass_delete_is_refused_before_any_aws_call_unless_the_session_opts_in() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO aws.vpc (name, cidr_block) VALUES
           ('a', '10.1.0.0/16'), ('b', '10.2.0.0/16'), ('c', '10.3.0.0/16')",
    )
    .await
    .unwrap();
    assert_eq!(moto.vpcs().await.len(), 3);
    let max: String = one(&c, "SHOW infra.max_deletes").await;
    assert_eq!(max, "10", "the default answers before any SET");

    c.batch_execute("SET infra.max_deletes = 2").await.unwrap();
    let e = c.batch_execute("DELETE FROM aws.vpc").await.unwrap_err();
    let db = e.as_db_error().expect("a database error");
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e:?}");
    assert!(
        db.message()
            .contains("delete 3 resources, more than infra.max_deletes (2)"),
        "{}",
        db.message()
    );
    assert!(db.hint().unwrap().contains("infra.allow_mass_delete = on"));
    assert_eq!(moto.vpcs().await.len(), 3, "nothing was deleted in AWS");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.vpc").await, 3);

    // A bad value is refused at SET, and never means "no limit".
    let e = c
        .batch_execute("SET infra.max_deletes = 'many'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");

    c.batch_execute("SET infra.allow_mass_delete = on; DELETE FROM aws.vpc")
        .await
        .unwrap();
    assert!(moto.vpcs().await.is_empty());
}
