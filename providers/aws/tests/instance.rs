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
//! - MonitorInstances / UnmonitorInstances are not implemented (an HTTP 500
//!   without an error code), so `monitoring` is tested at launch only; an
//!   update that leaves it unchanged never calls them (the tests below
//!   would fail if it did).
//! - Without a block device mapping, an instance's volume is attached at
//!   /dev/sda1 whatever the image's root device (/dev/xvda for `AMI`), so
//!   such an instance has no root volume to report (NULL); AWS attaches it
//!   on the image's root device. ModifyVolume takes effect at once
//!   (`completed`), and the instance is never `pending` or `stopping`, so
//!   transitions are unit-tested (`instance/tests.rs`).
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
        "security_group_ids": [net.web], "key_name": "deploy",
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

    // In AWS: tagged (row tags, apply id), and
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
    assert_eq!(groups(&i), vec![net.web.as_str()]);
    assert_eq!(
        user_data(&ec2, &id).await,
        "#!/bin/sh\necho hello > /tmp/hello\n"
    );

    let listed = instances.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], made);

    // In place: tags, name, instance type and the set of groups, same id.
    let mut after = made.clone();
    after.insert("name".into(), json!("web-2"));
    after.insert("tags".into(), json!({"role": "web", "tier": "front"}));
    after.insert("instance_type".into(), json!("t3.small"));
    let mut both = vec![net.web.clone(), net.admin.clone()];
    both.sort();
    after.insert("security_group_ids".into(), json!(both));
    let updated = instances.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("instance_id"), Some(id.as_str()));
    assert_eq!(updated.str("instance_type"), Some("t3.small"));
    assert_eq!(updated.get("security_group_ids"), Some(&json!(both)));
    assert_eq!(updated.str("name"), Some("web-2"));
    assert_eq!(
        updated.get("tags"),
        Some(&json!({"role": "web", "tier": "front"}))
    );
    assert_eq!(updated.str("state"), Some("running"), "started again");
    let i = aws_instance(&ec2, &id).await;
    assert_eq!(i.instance_type().unwrap().as_str(), "t3.small");
    assert_eq!(state(&i), "running");
    let mut attached = groups(&i);
    attached.sort();
    assert_eq!(
        attached,
        both.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Unchanged user data is not touched.
    assert_eq!(
        user_data(&ec2, &id).await,
        "#!/bin/sh\necho hello > /tmp/hello\n"
    );

    // The listing reports what is attached, sorted; an update that does
    // not carry the set leaves the groups alone.
    ec2.modify_instance_attribute()
        .instance_id(&id)
        .groups(&net.web)
        .send()
        .await
        .unwrap();
    let listed = instances.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed[0].get("security_group_ids"), Some(&json!([net.web])));
    let mut without_set = listed[0].clone();
    without_set.remove("security_group_ids");
    let mut renamed = without_set.clone();
    renamed.insert("name".into(), json!("web-3"));
    instances
        .update(&ctx(), &id, &without_set, &renamed)
        .await
        .unwrap();
    assert_eq!(
        groups(&aws_instance(&ec2, &id).await),
        vec![net.web.as_str()]
    );

    // Stopped outside infrasql: a type change leaves it stopped.
    ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    let stopped = instances.list("us-east-1").await.unwrap().into_props()[0].clone();
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
    let running = instances.list("us-east-1").await.unwrap().into_props()[0].clone();
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
    assert!(instances
        .list("us-east-1")
        .await
        .unwrap()
        .into_props()
        .is_empty());
    // Terminating again is not an error: the goal is reached.
    instances.delete(&ctx(), &id, &updated).await.unwrap();
    instances
        .delete(&ctx(), "i-0123456789abcdef0", &updated)
        .await
        .unwrap();
}

#[tokio::test]
async fn without_subnet_or_groups_the_defaults_are_used_and_imports_report_every_group() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let instances = Instance::new(moto.clients().await);
    let made = instances
        .create(
            &ctx(),
            &props(
                json!({"image_id": AMI, "subnet_id": null, "security_group_ids": [],
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
    let listed = instances.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed[0].str("subnet_id"), Some(subnet.as_str()));

    // An empty set at launch leaves the group to AWS (the VPC's default
    // group; moto attaches none); moving to a group and back to the empty
    // set attaches the default group.
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
    with_group.insert("security_group_ids".into(), json!([sg]));
    let moved = instances
        .update(&ctx(), &id, &listed[0], &with_group)
        .await
        .unwrap();
    assert_eq!(moved.get("security_group_ids"), Some(&json!([sg])));
    let mut back = moved.clone();
    back.insert("security_group_ids".into(), json!([]));
    let back = instances.update(&ctx(), &id, &moved, &back).await.unwrap();
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

    // Launched outside infrasql with two groups: both are reported, sorted.
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
    let listed = instances.list("us-east-1").await.unwrap().into_props();
    let imported = listed
        .iter()
        .find(|p| p.str("instance_id") == Some(other.as_str()))
        .unwrap();
    let mut both = vec![net.web.clone(), net.admin.clone()];
    both.sort();
    assert_eq!(imported.get("security_group_ids"), Some(&json!(both)));
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
    let listed = instances.list("us-east-1").await.unwrap().into_props();
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
                                 "subnet_id": net.subnet, "security_group_ids": [net.web],
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
            &launch(json!({"security_group_ids": ["sg-0123456789abcdef0"]})),
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

/// A row of `net` without key pair or user data, with `patch` applied.
fn plain(net: &Network, patch: serde_json::Value) -> Props {
    let mut p = row(net);
    p.insert("key_name".into(), json!(null));
    p.insert("user_data".into(), json!(null));
    for (k, v) in patch.as_object().unwrap() {
        p.insert(k.clone(), v.clone());
    }
    p
}

/// Launch and wait until ready, as the engine does under `infra.wait = 'ready'`.
async fn launch_ready(instances: &Instance, desired: &Props) -> Props {
    let launched = instances.create(&ctx(), desired).await.unwrap();
    let id = launched.str("instance_id").unwrap().to_owned();
    match instances.ready(&ctx(), &id, &launched).await.unwrap() {
        Readiness::Ready(Some(p)) => p,
        other => panic!("moto's instance is ready at once: {other:?}"),
    }
}

#[tokio::test]
async fn desired_state_stops_and_starts_in_place_and_a_stopped_launch_stays_stopped() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = network(&ec2).await;
    let instances = Instance::new(moto.clients().await);

    // Launched stopped: AWS starts every launch; the provider stops it.
    let made = launch_ready(
        &instances,
        &plain(&net, json!({"desired_state": "stopped"})),
    )
    .await;
    let id = made.str("instance_id").unwrap().to_owned();
    assert_eq!(made.str("state"), Some("stopped"));
    assert_eq!(made.str("desired_state"), Some("stopped"));
    assert_eq!(state(&aws_instance(&ec2, &id).await), "stopped");
    let listed = instances.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed, vec![made.clone()], "the listing agrees: no drift");

    // stopped → running → stopped, same instance.
    let mut running = made.clone();
    running.insert("desired_state".into(), json!("running"));
    let started = instances
        .update(&ctx(), &id, &made, &running)
        .await
        .unwrap();
    assert_eq!(started.str("instance_id"), Some(id.as_str()));
    assert_eq!(started.str("state"), Some("running"));
    assert_eq!(started.str("desired_state"), Some("running"));
    assert_eq!(state(&aws_instance(&ec2, &id).await), "running");
    let mut stopped = started.clone();
    stopped.insert("desired_state".into(), json!("stopped"));
    let stopped_now = instances
        .update(&ctx(), &id, &started, &stopped)
        .await
        .unwrap();
    assert_eq!(stopped_now.str("state"), Some("stopped"));
    assert_eq!(state(&aws_instance(&ec2, &id).await), "stopped");

    // A type change of an instance the row wants stopped keeps it stopped.
    let mut small = stopped_now.clone();
    small.insert("instance_type".into(), json!("t3.small"));
    let resized = instances
        .update(&ctx(), &id, &stopped_now, &small)
        .await
        .unwrap();
    assert_eq!(resized.str("instance_type"), Some("t3.small"));
    assert_eq!(resized.str("state"), Some("stopped"));
    let i = aws_instance(&ec2, &id).await;
    assert_eq!(state(&i), "stopped");
    assert_eq!(i.instance_type().unwrap().as_str(), "t3.small");

    // A type change and a start in one update: modified while stopped,
    // then running.
    let mut both = resized.clone();
    both.insert("instance_type".into(), json!("t3.medium"));
    both.insert("desired_state".into(), json!("running"));
    let done = instances
        .update(&ctx(), &id, &resized, &both)
        .await
        .unwrap();
    assert_eq!(done.str("instance_type"), Some("t3.medium"));
    assert_eq!(done.str("state"), Some("running"));
    assert_eq!(state(&aws_instance(&ec2, &id).await), "running");

    // Stopped in the console: the listing reports it on desired_state.
    ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    let listed = instances.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed[0].str("desired_state"), Some("stopped"));
    assert_eq!(listed[0].str("state"), Some("stopped"));
}

#[tokio::test]
async fn the_root_volume_is_sized_at_launch_and_grows_in_place_but_never_shrinks() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = network(&ec2).await;
    let clients = moto.clients().await;
    let instances = Instance::new(clients.clone());
    let made = launch_ready(
        &instances,
        &plain(
            &net,
            json!({"root_volume_size": 20, "root_volume_type": "gp3"}),
        ),
    )
    .await;
    let id = made.str("instance_id").unwrap().to_owned();
    assert_eq!(made.get("root_volume_size"), Some(&json!(20)));
    assert_eq!(made.str("root_volume_type"), Some("gp3"));
    // In AWS: one volume on the image's root device (/dev/xvda for this AMI).
    let i = aws_instance(&ec2, &id).await;
    assert_eq!(i.root_device_name(), Some("/dev/xvda"));
    let mapping = &i.block_device_mappings()[0];
    assert_eq!(mapping.device_name(), Some("/dev/xvda"));
    let volume_id = mapping.ebs().unwrap().volume_id().unwrap().to_owned();
    let volume = |ec2: aws_sdk_ec2::Client, v: String| async move {
        ec2.describe_volumes()
            .volume_ids(v)
            .send()
            .await
            .unwrap()
            .volumes()[0]
            .clone()
    };
    let v = volume(ec2.clone(), volume_id.clone()).await;
    assert_eq!(v.size(), Some(20));
    assert_eq!(v.volume_type().unwrap().as_str(), "gp3");

    // The listing reports the same, with one DescribeVolumes for all.
    let before = clients.api_calls();
    let listed = instances.list("us-east-1").await.unwrap().into_props();
    assert_eq!(
        clients.api_calls() - before,
        2,
        "DescribeInstances + DescribeVolumes"
    );
    assert_eq!(listed, vec![made.clone()]);

    // Grown and retyped in place: the same instance and volume.
    let mut bigger = made.clone();
    bigger.insert("root_volume_size".into(), json!(30));
    bigger.insert("root_volume_type".into(), json!("gp2"));
    let grown = instances.update(&ctx(), &id, &made, &bigger).await.unwrap();
    assert_eq!(grown.str("instance_id"), Some(id.as_str()));
    assert_eq!(grown.get("root_volume_size"), Some(&json!(30)));
    assert_eq!(grown.str("root_volume_type"), Some("gp2"));
    assert_eq!(grown.str("state"), Some("running"), "no restart");
    let v = volume(ec2.clone(), volume_id.clone()).await;
    assert_eq!(v.size(), Some(30));
    assert_eq!(v.volume_type().unwrap().as_str(), "gp2");

    // A shrink is refused before any call, with both sizes.
    let mut smaller = grown.clone();
    smaller.insert("root_volume_size".into(), json!(10));
    let err = instances
        .update(&ctx(), &id, &grown, &smaller)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid, "{err}");
    assert!(
        err.message.contains("30 GiB") && err.message.contains("10 GiB"),
        "{err}"
    );
    assert_eq!(volume(ec2.clone(), volume_id).await.size(), Some(30));
}

#[tokio::test]
async fn ebs_optimization_and_monitoring_are_set_at_launch_and_listed() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = network(&ec2).await;
    let instances = Instance::new(moto.clients().await);
    let made = launch_ready(
        &instances,
        &plain(&net, json!({"ebs_optimized": true, "monitoring": true})),
    )
    .await;
    let id = made.str("instance_id").unwrap().to_owned();
    assert_eq!(made.get("ebs_optimized"), Some(&json!(true)));
    assert_eq!(made.get("monitoring"), Some(&json!(true)));
    let i = aws_instance(&ec2, &id).await;
    assert_eq!(i.ebs_optimized(), Some(true));
    assert_eq!(
        i.monitoring().and_then(|m| m.state()).map(|s| s.as_str()),
        Some("enabled")
    );
    assert_eq!(
        instances.list("us-east-1").await.unwrap().into_props(),
        vec![made.clone()]
    );

    // Defaults: off, reported as false (the row's NULL is filled in).
    let plain_one = launch_ready(&instances, &plain(&net, json!({}))).await;
    assert_eq!(plain_one.get("ebs_optimized"), Some(&json!(false)));
    assert_eq!(plain_one.get("monitoring"), Some(&json!(false)));

    // EBS optimization off in place: stop, modify, start.
    let mut off = made.clone();
    off.insert("ebs_optimized".into(), json!(false));
    let changed = instances.update(&ctx(), &id, &made, &off).await.unwrap();
    assert_eq!(changed.get("ebs_optimized"), Some(&json!(false)));
    assert_eq!(changed.str("state"), Some("running"), "started again");
    assert_eq!(aws_instance(&ec2, &id).await.ebs_optimized(), Some(false));
}
