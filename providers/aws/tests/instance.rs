//! EC2 instances against moto.
//!
//! moto quirks (moto 5.2), where real AWS differs:
//! - DescribeInstances reports an instance `running` as soon as
//!   RunInstances has answered (AWS: `pending` for tens of seconds), so
//!   the first `ready` poll says ready; stop, start and terminate are instant
//!   too, so every wait passes on its first poll.
//! - An instance launched without security groups gets none (AWS attaches
//!   the VPC's default group).
//! - Image ids and instance types are accepted unchecked unless
//!   MOTO_ENABLE_AMI_VALIDATION / MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION
//!   are set; a bad type is then `InvalidInstanceType.NotFound` (AWS:
//!   `InvalidParameterValue`).
//! - ModifyInstanceAttribute changes the instance type of a running
//!   instance (AWS refuses: IncorrectInstanceState), so only the final state
//!   shows that the provider stopped and restarted it.
//! - ModifyInstanceAttribute UserData: moto base64-decodes the blob the SDK
//!   sent and then expects base64 again (InvalidUserData.Malformed, boto3
//!   too); AWS takes the raw bytes the SDK encodes once (terraform does the
//!   same). Changing user data in place is therefore checked only up to
//!   that refusal here.
//! - DescribeInstances pages by reservation (100 by default) and does not
//!   check MaxResults' range (AWS: 5 to 1000).
//! - Terminated instances stay visible until the server is reset (AWS: about
//!   an hour).
mod common;

use aws_sdk_ec2::types::{Filter, Instance as AwsInstance, InstanceAttributeName, Tag};
use base64::Engine as _;
use common::{ctx, props, Moto};
use infrasql_aws::ec2::instance::Instance;
use infrasql_provider::{ErrorClass, Props, PropsExt, Readiness, Resource};
use serde_json::json;

const AMI: &str = "ami-760aaa0f";

struct Network {
    vpc: String,
    subnet: String,
    web: String,
    admin: String,
}

/// A VPC with a subnet and two security groups, made directly through the SDK.
async fn network(ec2: &aws_sdk_ec2::Client) -> Network {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.60.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.60.1.0/24")
        .availability_zone("us-east-1b")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_owned();
    let mut groups = Vec::new();
    for name in ["web", "admin"] {
        groups.push(
            ec2.create_security_group()
                .group_name(name)
                .description(name)
                .vpc_id(&vpc)
                .send()
                .await
                .unwrap()
                .group_id()
                .unwrap()
                .to_owned(),
        );
    }
    let admin = groups.pop().unwrap();
    let web = groups.pop().unwrap();
    Network {
        vpc,
        subnet,
        web,
        admin,
    }
}

/// The instance as AWS has it.
async fn aws_instance(ec2: &aws_sdk_ec2::Client, id: &str) -> AwsInstance {
    ec2.describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .clone()
}

fn state(i: &AwsInstance) -> &str {
    i.state().and_then(|s| s.name()).unwrap().as_str()
}

fn groups(i: &AwsInstance) -> Vec<&str> {
    let mut g: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    g.sort();
    g
}

/// Ids of instances that are not terminated, straight from the API.
async fn live(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    let out = ec2.describe_instances().send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| !matches!(state(i), "terminated" | "shutting-down"))
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

async fn user_data(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let out = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = out.user_data().and_then(|v| v.value()).unwrap_or("");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

fn row(net: &Network) -> Props {
    props(json!({
        "instance_id": "pending-i-1", "region": "us-east-1", "name": "web-1",
        "image_id": AMI, "instance_type": "t3.micro", "subnet_id": net.subnet,
        "security_group_id": net.web, "key_name": "deploy",
        "user_data": "#!/bin/sh\necho hello > /tmp/hello\n",
        "tags": {"role": "web"}
    }))
}

#[tokio::test]
async fn an_instance_is_launched_listed_changed_in_place_and_terminated() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = network(&ec2).await;
    ec2.create_key_pair()
        .key_name("deploy")
        .send()
        .await
        .unwrap();
    let instances = Instance::new(moto.clients().await);

    let launched = instances.create(&ctx(), &row(&net)).await.unwrap();
    let id = launched.str("instance_id").unwrap().to_owned();
    assert!(id.starts_with("i-"), "{id}");
    // create returns once AWS accepted the launch; the engine waits for
    // `running` through `ready`.
    let made = match instances.ready(&ctx(), &id, &launched).await.unwrap() {
        Readiness::Ready(Some(p)) => p,
        other => panic!("moto's instance is running at once: {other:?}"),
    };
    assert_eq!(made.str("state"), Some("running"));
    assert_eq!(made.str("image_id"), Some(AMI));
    assert_eq!(made.str("instance_type"), Some("t3.micro"));
    assert_eq!(made.str("subnet_id"), Some(net.subnet.as_str()));
    assert_eq!(made.str("vpc_id"), Some(net.vpc.as_str()));
    assert_eq!(made.str("availability_zone"), Some("us-east-1b"));
    assert_eq!(made.str("security_group_id"), Some(net.web.as_str()));
    assert_eq!(made.get("security_group_ids"), Some(&json!([net.web])));
    assert_eq!(made.str("key_name"), Some("deploy"));
    assert_eq!(made.str("name"), Some("web-1"));
    assert_eq!(made.get("tags"), Some(&json!({"role": "web"})));
    assert_eq!(made.str("owner_id"), Some("123456789012"));
    assert!(made
        .str("private_ip_address")
        .unwrap()
        .starts_with("10.60.1."));
    assert!(made.str("launch_time").is_some());
    assert!(made.str("architecture").is_some());
    assert!(made.contains_key("public_ip_address"));
    assert!(
        !made.contains_key("user_data"),
        "write-only: never reported"
    );
    assert!(!made.contains_key("synced_at"));

    // In AWS: tagged (row tags, apply id, the group the row asked for), and
    // the user data arrived base64-encoded as the API requires.
    let i = aws_instance(&ec2, &id).await;
    let tag = |k: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    assert_eq!(tag("Name").as_deref(), Some("web-1"));
    assert_eq!(tag("role").as_deref(), Some("web"));
    assert_eq!(tag("infrasql:apply-id").as_deref(), Some("test-apply"));
    assert_eq!(tag("infrasql:security-group-id"), Some(net.web.clone()));
    assert_eq!(groups(&i), vec![net.web.as_str()]);
    assert_eq!(
        user_data(&ec2, &id).await,
        "#!/bin/sh\necho hello > /tmp/hello\n"
    );

    let listed = instances.list("us-east-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], made);

    // In place: tags, name, instance type and security group, same id.
    let mut after = made.clone();
    after.insert("name".into(), json!("web-2"));
    after.insert("tags".into(), json!({"role": "web", "tier": "front"}));
    after.insert("instance_type".into(), json!("t3.small"));
    after.insert("security_group_id".into(), json!(net.admin));
    let updated = instances.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("instance_id"), Some(id.as_str()));
    assert_eq!(updated.str("instance_type"), Some("t3.small"));
    assert_eq!(updated.str("security_group_id"), Some(net.admin.as_str()));
    assert_eq!(updated.get("security_group_ids"), Some(&json!([net.admin])));
    assert_eq!(updated.str("name"), Some("web-2"));
    assert_eq!(
        updated.get("tags"),
        Some(&json!({"role": "web", "tier": "front"}))
    );
    assert_eq!(updated.str("state"), Some("running"), "started again");
    let i = aws_instance(&ec2, &id).await;
    assert_eq!(i.instance_type().unwrap().as_str(), "t3.small");
    assert_eq!(state(&i), "running");
    assert_eq!(groups(&i), vec![net.admin.as_str()]);
    // Unchanged user data is not touched.
    assert_eq!(
        user_data(&ec2, &id).await,
        "#!/bin/sh\necho hello > /tmp/hello\n"
    );

    // A group attached outside infrasql is visible, not drift: the row's
    // group is still reported.
    ec2.modify_instance_attribute()
        .instance_id(&id)
        .groups(&net.web)
        .groups(&net.admin)
        .send()
        .await
        .unwrap();
    let listed = instances.list("us-east-1").await.unwrap();
    assert_eq!(listed[0].str("security_group_id"), Some(net.admin.as_str()));
    let mut both = vec![net.web.clone(), net.admin.clone()];
    both.sort();
    assert_eq!(listed[0].get("security_group_ids"), Some(&json!(both)));
    // The row's group swapped out: the lowest attached id, every time.
    ec2.modify_instance_attribute()
        .instance_id(&id)
        .groups(&net.web)
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let listed = instances.list("us-east-1").await.unwrap();
        assert_eq!(listed[0].str("security_group_id"), Some(net.web.as_str()));
    }

    // Stopped outside infrasql: a type change leaves it stopped.
    ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    let stopped = instances.list("us-east-1").await.unwrap()[0].clone();
    assert_eq!(
        stopped.str("state"),
        Some("stopped"),
        "stopped ones are listed"
    );
    let mut micro = stopped.clone();
    micro.insert("instance_type".into(), json!("t3.micro"));
    let updated = instances
        .update(&ctx(), &id, &stopped, &micro)
        .await
        .unwrap();
    assert_eq!(updated.str("instance_type"), Some("t3.micro"));
    assert_eq!(updated.str("state"), Some("stopped"));

    // New user data: stop, modify, start. moto refuses the modify (it wants
    // the blob base64-encoded twice, see above), which shows the other half:
    // the error carries AWS's code and the instance is started again.
    ec2.start_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let running = instances.list("us-east-1").await.unwrap()[0].clone();
    let mut new_data = running.clone();
    new_data.insert("user_data".into(), json!("#cloud-config\n"));
    let err = instances
        .update(&ctx(), &id, &running, &new_data)
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidUserData.Malformed", "{err}");
    assert_eq!(err.class, ErrorClass::Invalid);
    assert_eq!(state(&aws_instance(&ec2, &id).await), "running");

    instances.delete(&ctx(), &id, &updated).await.unwrap();
    assert_eq!(state(&aws_instance(&ec2, &id).await), "terminated");
    assert!(instances.list("us-east-1").await.unwrap().is_empty());
    // Terminating again is not an error: the goal is reached.
    instances.delete(&ctx(), &id, &updated).await.unwrap();
    instances
        .delete(&ctx(), "i-0123456789abcdef0", &updated)
        .await
        .unwrap();
}

#[tokio::test]
async fn without_subnet_or_group_the_defaults_are_used_and_imports_report_the_lowest_group() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let instances = Instance::new(moto.clients().await);
    let made = instances
        .create(
            &ctx(),
            &props(
                json!({"image_id": AMI, "subnet_id": null, "security_group_id": null,
                          "key_name": null, "user_data": null, "tags": {}}),
            ),
        )
        .await
        .unwrap();
    let id = made.str("instance_id").unwrap().to_owned();
    assert_eq!(
        made.str("instance_type"),
        Some("t3.micro"),
        "the default type"
    );
    assert_eq!(made.get("name"), Some(&json!(null)));
    assert_eq!(made.get("key_name"), Some(&json!(null)));
    // Reported as the row has it; the real (default) subnet comes with sync.
    assert_eq!(made.get("subnet_id"), Some(&json!(null)));
    assert_eq!(made.get("security_group_id"), Some(&json!(null)));
    let i = aws_instance(&ec2, &id).await;
    let subnet = i.subnet_id().unwrap().to_owned();
    let default_subnet = ec2
        .describe_subnets()
        .subnet_ids(&subnet)
        .send()
        .await
        .unwrap()
        .subnets()[0]
        .default_for_az();
    assert_eq!(default_subnet, Some(true));
    let listed = instances.list("us-east-1").await.unwrap();
    assert_eq!(listed[0].str("subnet_id"), Some(subnet.as_str()));
    assert_eq!(listed[0].get("security_group_id"), Some(&json!(null)));

    // Moving a NULL-group instance to a group, and back to NULL: the VPC's
    // default group is attached and the row's NULL is kept.
    let vpc = i.vpc_id().unwrap().to_owned();
    let sg = ec2
        .create_security_group()
        .group_name("app")
        .description("app")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    let mut with_group = listed[0].clone();
    with_group.insert("security_group_id".into(), json!(sg));
    let moved = instances
        .update(&ctx(), &id, &listed[0], &with_group)
        .await
        .unwrap();
    assert_eq!(moved.str("security_group_id"), Some(sg.as_str()));
    let mut back = moved.clone();
    back.insert("security_group_id".into(), json!(null));
    let back = instances.update(&ctx(), &id, &moved, &back).await.unwrap();
    assert_eq!(back.get("security_group_id"), Some(&json!(null)));
    let default_group = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .filters(
            Filter::builder()
                .name("group-name")
                .values("default")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .group_id()
        .unwrap()
        .to_owned();
    assert_eq!(
        back.get("security_group_ids"),
        Some(&json!([default_group]))
    );
    assert_eq!(
        groups(&aws_instance(&ec2, &id).await),
        vec![default_group.as_str()]
    );

    // Launched outside infrasql with two groups: the lowest id is reported.
    let net = network(&ec2).await;
    let other = ec2
        .run_instances()
        .image_id(AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&net.subnet)
        .security_group_ids(&net.web)
        .security_group_ids(&net.admin)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(Tag::builder().key("Name").value("console").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    let listed = instances.list("us-east-1").await.unwrap();
    let imported = listed
        .iter()
        .find(|p| p.str("instance_id") == Some(other.as_str()))
        .unwrap();
    let lowest = net.web.clone().min(net.admin.clone());
    assert_eq!(imported.str("security_group_id"), Some(lowest.as_str()));
    assert_eq!(imported.str("name"), Some("console"));
    assert_eq!(imported.str("subnet_id"), Some(net.subnet.as_str()));
}

#[tokio::test]
async fn listing_follows_every_page_in_one_call_per_page() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let clients = moto.clients().await;
    let instances = Instance::new(clients.clone()).with_page_size(5);
    // 11 reservations of one instance and one of three: 12 reservations,
    // three pages of at most 5 (moto pages by reservation, as AWS does).
    let mut ids = Vec::new();
    for n in [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3] {
        let out = ec2
            .run_instances()
            .image_id(AMI)
            .min_count(n)
            .max_count(n)
            .send()
            .await
            .unwrap();
        ids.extend(
            out.instances()
                .iter()
                .map(|i| i.instance_id().unwrap().to_owned()),
        );
    }
    assert_eq!(ids.len(), 14);
    // A terminated one is not listed.
    ec2.terminate_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let before = clients.api_calls();
    let listed = instances.list("us-east-1").await.unwrap();
    let calls = clients.api_calls() - before;
    let mut got: Vec<String> = listed
        .iter()
        .map(|p| p.str("instance_id").unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = ids[1..].to_vec();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(calls, 3, "one DescribeInstances call per page");
    assert!(listed.iter().all(|p| p.str("state") == Some("running")));
}

#[tokio::test]
async fn refusals_carry_the_aws_code_and_leave_no_instance_behind() {
    let moto = Moto::start_with_env(&[
        ("MOTO_ENABLE_AMI_VALIDATION", "true"),
        ("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true"),
    ]);
    let ec2 = moto.ec2().await;
    let net = network(&ec2).await;
    let instances = Instance::new(moto.clients().await);
    let launch = |patch: serde_json::Value| {
        let mut p = props(json!({"image_id": AMI, "instance_type": "t3.micro",
                                 "subnet_id": net.subnet, "security_group_id": net.web,
                                 "tags": {}}));
        for (k, v) in patch.as_object().unwrap() {
            p.insert(k.clone(), v.clone());
        }
        p
    };

    let err = instances
        .create(
            &ctx(),
            &launch(json!({"image_id": "ami-00000000000000000"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidAMIID.NotFound", "{err}");
    assert_eq!(err.class, ErrorClass::NotFound);

    let err = instances
        .create(&ctx(), &launch(json!({"instance_type": "t9.enormous"})))
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidInstanceType.NotFound", "{err}");

    let err = instances
        .create(
            &ctx(),
            &launch(json!({"security_group_id": "sg-0123456789abcdef0"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidGroup.NotFound", "{err}");
    assert_eq!(err.class, ErrorClass::NotFound);

    let err = instances
        .create(
            &ctx(),
            &launch(json!({"subnet_id": "subnet-0123456789abcdef0"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    assert!(err.code.starts_with("InvalidSubnet"), "{err}");

    assert!(live(&ec2).await.is_empty(), "nothing was launched");

    // An update of an instance that is gone.
    let err = instances
        .update(
            &ctx(),
            "i-0123456789abcdef0",
            &launch(json!({})),
            &launch(json!({"instance_type": "t3.small"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
}
