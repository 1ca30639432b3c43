//! `aws.instance` through the server: `desired_state` stops and starts the
//! instance at COMMIT, and a stop outside infrasql is drift on it.
//! Checked through direct AWS API calls, not only through rows.

mod common;

use common::{one, Moto, TestServer};
use tokio_postgres::Client;

/// The instance's state, asked of AWS directly.
async fn aws_state(moto: &Moto, id: &str) -> String {
    moto.ec2()
        .await
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .state()
        .and_then(|s| s.name())
        .unwrap()
        .as_str()
        .to_owned()
}

/// The row's (state, desired_state).
async fn row_state(c: &Client, id: &str) -> (Option<String>, String) {
    let r = c
        .query_one(
            "select state, desired_state from aws.instance where instance_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn desired_state_stops_and_starts_the_instance_and_a_console_stop_is_drift() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO aws.instance (name, image_id, root_volume_size, root_volume_type)
         VALUES ('web', 'ami-760aaa0f', 12, 'gp3')",
    )
    .await
    .unwrap();
    let id: String = one(
        &c,
        "select instance_id from aws.instance where name = 'web'",
    )
    .await;
    assert!(id.starts_with("i-"), "{id}");
    assert_eq!(
        row_state(&c, &id).await,
        (Some("running".into()), "running".into())
    );
    // What AWS reports fills in what the row left NULL.
    let filled: String = one(
        &c,
        &format!(
            "select root_volume_size || ' ' || root_volume_type || ' ' || ebs_optimized || ' ' || monitoring \
             from aws.instance where instance_id = '{id}'"
        ),
    )
    .await;
    assert_eq!(filled, "12 gp3 false false");

    c.batch_execute(&format!(
        "BEGIN; UPDATE aws.instance SET desired_state = 'stopped' WHERE instance_id = '{id}'; COMMIT;"
    ))
    .await
    .unwrap();
    assert_eq!(aws_state(&moto, &id).await, "stopped");
    assert_eq!(
        row_state(&c, &id).await,
        (Some("stopped".into()), "stopped".into())
    );

    c.batch_execute(&format!(
        "UPDATE aws.instance SET desired_state = 'running' WHERE instance_id = '{id}'"
    ))
    .await
    .unwrap();
    assert_eq!(aws_state(&moto, &id).await, "running");
    assert_eq!(
        row_state(&c, &id).await,
        (Some("running".into()), "running".into())
    );

    // Sync agrees with the row: the only drift is the default subnet the
    // row left NULL, adopted once (see docs/architecture.md), none on the
    // state, the root volume, EBS optimization or monitoring.
    let summary: serde_json::Value = one(&c, "select infra.sync()").await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let fields = "select coalesce(string_agg(field, ','), '') from infra.drift where table_name = 'aws.instance'";
    assert_eq!(one::<String>(&c, fields).await, "subnet_id");
    // A second round of an unchanged instance: nothing new.
    one::<serde_json::Value>(&c, "select infra.sync()").await;
    assert_eq!(one::<String>(&c, fields).await, "subnet_id");

    // Stopped in the console: under the default policy (adopt) the row
    // follows, and the drift is recorded on desired_state.
    moto.ec2()
        .await
        .stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    one::<serde_json::Value>(&c, "select infra.sync()").await;
    assert_eq!(
        row_state(&c, &id).await,
        (Some("stopped".into()), "stopped".into())
    );
    let recorded: Vec<(String, String, String)> = c
        .query(
            "select kind, coalesce(field, ''), resolution from infra.drift \
             where table_name = 'aws.instance' and resource_id = $1 order by drift_id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        recorded.contains(&("changed".into(), "desired_state".into(), "adopted".into())),
        "{recorded:?}"
    );
    // state is AWS's, never drift.
    assert!(!recorded.iter().any(|d| d.1 == "state"), "{recorded:?}");
    // AWS was left as it is: adopt changes the row, not the cloud.
    assert_eq!(aws_state(&moto, &id).await, "stopped");

    // Under revert, a start in the console is undone: stopped again.
    c.batch_execute(
        "INSERT INTO infra.drift_policy (table_name, policy) VALUES ('aws.instance', 'revert')",
    )
    .await
    .unwrap();
    moto.ec2()
        .await
        .start_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    one::<serde_json::Value>(&c, "select infra.sync()").await;
    assert_eq!(aws_state(&moto, &id).await, "stopped");
    assert_eq!(row_state(&c, &id).await.1, "stopped");
}
