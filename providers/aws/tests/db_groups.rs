//! DB subnet groups, DB parameter groups and their parameters against moto.
//!
//! Two calls cannot be checked against moto's state (moto 5.2.1):
//! ModifyDBSubnetGroup (moto answers, then forgets the group) and
//! ResetDBParameterGroup (not implemented: 500). For those the fault proxy
//! in front of moto records what was sent; for the reset it also stands in
//! for AWS's answer. Everything else is checked in moto with a raw client.
mod common;

use std::sync::Arc;

use common::{aws_error_code, ctx, props, Moto};
use infrasql_aws::aws_sdk_rds::Client as Rds;
use infrasql_aws::rds::db_parameter::DbParameterType;
use infrasql_aws::rds::db_parameter_group::DbParameterGroupType;
use infrasql_aws::rds::db_subnet_group::DbSubnetGroupType;
use infrasql_aws::{AwsSettings, Clients};
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use infrasql_provider::{ErrorClass, Props, PropsExt, Resource, APPLY_TAG};
use serde_json::json;

/// AWS's answer to ResetDBParameterGroup, which moto does not implement.
fn reset_answer(group: &str) -> String {
    format!(
        "<ResetDBParameterGroupResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
         <ResetDBParameterGroupResult><DBParameterGroupName>{group}</DBParameterGroupName>\
         </ResetDBParameterGroupResult><ResponseMetadata><RequestId>r-1</RequestId>\
         </ResponseMetadata></ResetDBParameterGroupResponse>"
    )
}

/// The provider's clients, sending through `url` (a fault proxy).
async fn clients_at(url: &str) -> Arc<Clients> {
    Arc::new(
        Clients::new(&AwsSettings {
            endpoint_url: Some(url.to_owned()),
            static_credentials: Some(("testing".into(), "testing".into())),
            region: Some("us-east-1".into()),
            max_concurrency: None,
            limiter: Default::default(),
            timeouts: Default::default(),
        })
        .await,
    )
}

/// A VPC with three subnets in three zones.
async fn subnets(moto: &Moto) -> Vec<String> {
    let ec2 = moto.ec2().await;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.70.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    let mut out = Vec::new();
    for (i, az) in ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
    {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.70.{}.0/24", i + 1))
            .availability_zone(*az)
            .send()
            .await
            .unwrap();
        out.push(s.subnet().unwrap().subnet_id().unwrap().to_owned());
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The values of a query-protocol body whose keys start with `prefix`,
/// in the body's order (the values these tests send need no decoding).
fn sent(body: &str, prefix: &str) -> Vec<String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v.to_owned())
        .collect()
}

async fn tags_of(rds: &Rds, arn: &str) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = rds
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap()
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    t.sort();
    t
}

fn subnet_group_row(name: &str, subnets: &[&str]) -> Props {
    props(json!({"db_subnet_group_name": name, "region": "us-east-1",
        "description": "app databases", "subnet_ids": subnets, "tags": {"team": "db"},
        "vpc_id": null, "status": null, "arn": null, "synced_at": null}))
}

#[tokio::test]
async fn a_subnet_group_is_created_with_its_subnets_listed_retagged_and_deleted() {
    let moto = Moto::start();
    let rds = moto.rds().await;
    let s = subnets(&moto).await;
    let groups = DbSubnetGroupType::new(moto.clients().await);

    let made = groups
        .create(&ctx(), &subnet_group_row("app", &[&s[1], &s[0]]))
        .await
        .unwrap();
    assert_eq!(made.str("db_subnet_group_name"), Some("app"));
    assert_eq!(
        made["subnet_ids"],
        json!(sorted(vec![s[0].clone(), s[1].clone()]))
    );
    assert_eq!(made.str("description"), Some("app databases"));
    assert_eq!(made.str("status"), Some("Complete"));
    assert!(made.str("vpc_id").is_some_and(|v| v.starts_with("vpc-")));
    let arn = made.str("arn").unwrap().to_owned();
    assert!(arn.ends_with(":subgrp:app"), "{arn}");
    assert_eq!(made["tags"], json!({"team": "db"}));

    // In AWS: both subnets, the row's tags and the apply id.
    let g = rds
        .describe_db_subnet_groups()
        .db_subnet_group_name("app")
        .send()
        .await
        .unwrap();
    let in_aws: Vec<String> = g.db_subnet_groups()[0]
        .subnets()
        .iter()
        .map(|x| x.subnet_identifier().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(in_aws), sorted(vec![s[0].clone(), s[1].clone()]));
    assert_eq!(
        tags_of(&rds, &arn).await,
        [
            ("infrasql:apply-id".to_owned(), "test-apply".to_owned()),
            ("team".to_owned(), "db".to_owned())
        ]
    );

    let listed = groups.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["subnet_ids"], made["subnet_ids"]);
    assert_eq!(listed[0]["tags"], json!({"team": "db"}));
    assert_eq!(listed[0][APPLY_TAG], json!("test-apply"));

    // Tags alone change without ModifyDBSubnetGroup (which moto would
    // take for a delete): the group is still there afterwards.
    let mut after = made.clone();
    after.insert("tags".into(), json!({"team": "data"}));
    let updated = groups.update(&ctx(), "app", &made, &after).await.unwrap();
    assert_eq!(updated["tags"], json!({"team": "data"}));
    assert_eq!(
        tags_of(&rds, &arn).await,
        [
            ("infrasql:apply-id".to_owned(), "test-apply".to_owned()),
            ("team".to_owned(), "data".to_owned())
        ]
    );

    groups.delete(&ctx(), "app", &updated).await.unwrap();
    let gone = rds
        .describe_db_subnet_groups()
        .db_subnet_group_name("app")
        .send()
        .await;
    assert_eq!(aws_error_code(gone), "DBSubnetGroupNotFoundFault");
    // Gone is done: a second delete succeeds.
    groups.delete(&ctx(), "app", &updated).await.unwrap();
}

#[tokio::test]
async fn a_new_set_of_subnets_and_description_are_one_modify_with_the_whole_set() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = subnets(&moto).await;
    let groups = DbSubnetGroupType::new(clients_at(&proxy.url).await);
    let made = groups
        .create(&ctx(), &subnet_group_row("app", &[&s[0], &s[1]]))
        .await
        .unwrap();

    let mut after = made.clone();
    after.insert("subnet_ids".into(), json!([s[2], s[0]]));
    after.insert("description".into(), json!("moved"));
    let updated = groups.update(&ctx(), "app", &made, &after).await.unwrap();

    // What AWS answered for the modified group...
    assert_eq!(
        updated["subnet_ids"],
        json!(sorted(vec![s[0].clone(), s[2].clone()]))
    );
    assert_eq!(updated.str("description"), Some("moved"));
    assert_eq!(updated["tags"], json!({"team": "db"}));
    // ...and what was asked: one ModifyDBSubnetGroup naming the whole new set.
    assert_eq!(proxy.calls("ModifyDBSubnetGroup"), 1);
    let modify = proxy
        .log()
        .into_iter()
        .find(|c| c.action == "ModifyDBSubnetGroup")
        .unwrap();
    assert_eq!(
        sorted(sent(&modify.body, "SubnetIds.")),
        sorted(vec![s[0].clone(), s[2].clone()])
    );
    assert_eq!(sent(&modify.body, "DBSubnetGroupName"), ["app"]);
    assert_eq!(sent(&modify.body, "DBSubnetGroupDescription"), ["moved"]);
    // No tag calls: the tags did not change.
    assert_eq!(proxy.calls("AddTagsToResource"), 0);
    assert_eq!(proxy.calls("RemoveTagsFromResource"), 0);
}

fn parameter_group_row(name: &str) -> Props {
    props(
        json!({"db_parameter_group_name": name, "region": "us-east-1",
        "family": "postgres16", "description": "app settings", "tags": {"team": "db"},
        "arn": null, "synced_at": null}),
    )
}

#[tokio::test]
async fn a_parameter_group_is_created_listed_retagged_and_deleted() {
    let moto = Moto::start();
    let rds = moto.rds().await;
    let groups = DbParameterGroupType::new(moto.clients().await);

    let made = groups
        .create(&ctx(), &parameter_group_row("app"))
        .await
        .unwrap();
    assert_eq!(made.str("db_parameter_group_name"), Some("app"));
    assert_eq!(made.str("family"), Some("postgres16"));
    assert_eq!(made.str("description"), Some("app settings"));
    assert_eq!(made["tags"], json!({"team": "db"}));
    let arn = made.str("arn").unwrap().to_owned();
    assert!(arn.ends_with(":pg:app"), "{arn}");

    // The same name again is AWS's conflict.
    let again = groups
        .create(&ctx(), &parameter_group_row("app"))
        .await
        .unwrap_err();
    assert_eq!(again.class, ErrorClass::Conflict, "{again}");

    let listed = groups.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].str("family"), Some("postgres16"));
    assert_eq!(listed[0]["tags"], json!({"team": "db"}));
    assert_eq!(listed[0][APPLY_TAG], json!("test-apply"));

    let mut after = made.clone();
    after.insert("tags".into(), json!({"owner": "ops"}));
    let updated = groups.update(&ctx(), "app", &made, &after).await.unwrap();
    assert_eq!(updated["tags"], json!({"owner": "ops"}));
    assert_eq!(
        tags_of(&rds, &arn).await,
        [
            ("infrasql:apply-id".to_owned(), "test-apply".to_owned()),
            ("owner".to_owned(), "ops".to_owned())
        ]
    );

    groups.delete(&ctx(), "app", &updated).await.unwrap();
    // moto answers an empty list where AWS says DBParameterGroupNotFound.
    let left = rds.describe_db_parameter_groups().send().await.unwrap();
    assert!(left.db_parameter_groups().is_empty(), "{left:?}");
    groups.delete(&ctx(), "app", &updated).await.unwrap();
}

fn parameter_row(group: &str, name: &str, value: &str, method: &str) -> Props {
    props(
        json!({"parameter_id": "pending-dbparam-1", "region": "us-east-1",
        "db_parameter_group_name": group, "parameter_name": name,
        "parameter_value": value, "apply_method": method, "synced_at": null}),
    )
}

/// The user parameters of a group in AWS: (name, value, apply method).
async fn user_parameters(rds: &Rds, group: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = rds
        .describe_db_parameters()
        .db_parameter_group_name(group)
        .source("user")
        .send()
        .await
        .unwrap()
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_name().unwrap().to_owned(),
                p.parameter_value().unwrap_or("").to_owned(),
                p.apply_method()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

fn triple(n: &str, v: &str, m: &str) -> (String, String, String) {
    (n.to_owned(), v.to_owned(), m.to_owned())
}

#[tokio::test]
async fn parameters_are_set_listed_changed_and_reset_one_at_a_time() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let rds = moto.rds().await;
    let clients = clients_at(&proxy.url).await;
    let groups = DbParameterGroupType::new(clients.clone());
    let params = DbParameterType::new(clients);
    groups
        .create(&ctx(), &parameter_group_row("app"))
        .await
        .unwrap();

    let work_mem = params
        .create(
            &ctx(),
            &parameter_row("app", "work_mem", "4096", "immediate"),
        )
        .await
        .unwrap();
    assert_eq!(work_mem.str("parameter_id"), Some("app/work_mem"));
    let max_conn = params
        .create(
            &ctx(),
            &parameter_row("app", "max_connections", "50", "pending-reboot"),
        )
        .await
        .unwrap();
    assert_eq!(max_conn.str("parameter_id"), Some("app/max_connections"));
    assert_eq!(
        user_parameters(&rds, "app").await,
        [
            triple("max_connections", "50", "pending-reboot"),
            triple("work_mem", "4096", "immediate")
        ]
    );

    let mut listed = params.list("us-east-1").await.unwrap().into_props();
    listed.sort_by(|a, b| a.str("parameter_id").cmp(&b.str("parameter_id")));
    assert_eq!(listed, vec![max_conn.clone(), work_mem.clone()]);

    // A new value in place: one ModifyDBParameterGroup with that parameter.
    let mut after = work_mem.clone();
    after.insert("parameter_value".into(), json!("8192"));
    let updated = params
        .update(&ctx(), "app/work_mem", &work_mem, &after)
        .await
        .unwrap();
    assert_eq!(updated.str("parameter_value"), Some("8192"));
    assert_eq!(
        user_parameters(&rds, "app").await,
        [
            triple("max_connections", "50", "pending-reboot"),
            triple("work_mem", "8192", "immediate")
        ]
    );

    // A delete resets that one parameter (moto lacks the call: the proxy
    // answers as AWS does, and the request is what is checked).
    proxy.arm(Fault::on("ResetDBParameterGroup").with(Effect::Answer(reset_answer("app"))));
    params
        .delete(&ctx(), "app/max_connections", &max_conn)
        .await
        .unwrap();
    let reset = proxy
        .log()
        .into_iter()
        .find(|c| c.action == "ResetDBParameterGroup")
        .unwrap();
    assert_eq!(sent(&reset.body, "DBParameterGroupName"), ["app"]);
    assert_eq!(
        sent(&reset.body, "Parameters."),
        ["max_connections", "pending-reboot"],
        "{}",
        reset.body
    );
    assert!(
        sent(&reset.body, "ResetAllParameters").is_empty(),
        "never the whole group: {}",
        reset.body
    );
    proxy.clear();

    // A group already gone has nothing left to reset: done.
    proxy.arm(Fault::on("ResetDBParameterGroup").with(Effect::Error {
        status: 404,
        code: "DBParameterGroupNotFound".into(),
        message: "DBParameterGroup gone not found.".into(),
    }));
    params
        .delete(
            &ctx(),
            "gone/work_mem",
            &parameter_row("gone", "work_mem", "1", "immediate"),
        )
        .await
        .unwrap();
}
