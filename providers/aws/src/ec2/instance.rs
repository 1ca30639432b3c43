//! `aws.instance`: an EC2 instance.
//!
//! Changes in place: the name and tags; `instance_type` (stop, wait until
//! stopped, ModifyInstanceAttribute, start, wait until running, as
//! terraform does; a stopped instance is modified and left stopped); the
//! security group (ModifyInstanceAttribute Groups = [the row's group]).
//! Changing the image, subnet, key name or region replaces the instance.
//!
//! `user_data` is write-only: it is sent base64-encoded with RunInstances and
//! never read back. Setting it on an existing row replaces the instance's
//! user data in place (stop, modify, start: AWS accepts it only on a stopped
//! instance, and cloud-init runs it at first boot only, by default).
//!
//! # References left NULL
//! - `subnet_id` NULL launches into the default subnet of the default VPC.
//!   `create` and `update` report it as NULL, as the row has it: the default
//!   subnet need not be a row yet, and writing its id back would break the
//!   foreign key and fail a COMMIT whose instance already exists. Sync then
//!   reports the real subnet and the row adopts it (one `changed` drift row),
//!   its parent having been imported first (subnets sync before instances).
//! - `security_group_id` NULL means the VPC's default group and stays NULL.
//!
//! # Which group `security_group_id` reports
//! An instance can have several groups; the row names one, the group
//! infrasql manages, and `security_group_ids` lists every group attached.
//! `list` cannot see the rows, so the group a row asked for is recorded on the
//! instance itself, in the tag `infrasql:security-group-id` (the group id, or
//! `default` for NULL), at launch and at every change of the group. Then:
//! - the recorded group is attached → it is reported (for `default`: NULL,
//!   when a group named `default` is attached), whatever else is attached, so
//!   groups added outside infrasql show in `security_group_ids` but are not
//!   drift;
//! - otherwise (the group was swapped outside infrasql, or the instance was
//!   launched outside infrasql and has no tag) the lowest attached group id
//!   is reported: deterministic, so an imported or adopted row does not
//!   drift again every round.
//!
//! Reverting such drift puts exactly the row's group back (Groups = [it]).
//! After an adopt the tag still names the old group: should that group be
//! attached again later, the row follows it back.
//!
//! Listing skips `shutting-down` and `terminated` instances (AWS keeps
//! terminated ones visible for about an hour). `delete` terminates and waits
//! until the instance is `terminated`, so a subnet or security group deleted
//! after it in the same plan is no longer in use.

mod modify;
mod state;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_ec2::primitives::DateTimeFormat;
use aws_sdk_ec2::types::{
    Filter, Instance as AwsInstance, InstanceStateName, InstanceType, ResourceType, Tag,
    TagSpecification,
};
use base64::Engine as _;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Props, PropsExt, ProviderError, Readiness, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::{json, Value};

use super::sdk::{all_pages, classify, deleted, missing_id, not_found};
use super::{changed, opt_str, present, put_tags, tag_spec, update_tags};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "instance",
    display: "instance",
    doc: "An EC2 instance. Changing the instance type stops and restarts it; changing the image, subnet or key pair replaces it.",
    columns: &[
        Column::new(
            "instance_id",
            Identity,
            "Instance id (i-...); provisional until launched",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::new("image_id", ReplaceOnChange, "The AMI it is launched from"),
        Column::new(
            "instance_type",
            Desired,
            "Instance type (t3.micro...); a change stops the instance, modifies it and starts it again",
        ),
        Column::reference(
            "subnet_id",
            ReplaceOnChange,
            "subnet",
            "The subnet it runs in; NULL launches into the default subnet (sync fills in which)",
        ),
        Column::reference(
            "security_group_id",
            Desired,
            "security_group",
            "The security group infrasql manages on it; NULL means the VPC's default group",
        ),
        Column::new(
            "key_name",
            ReplaceOnChange,
            "The key pair to log in with (its key_name); NULL for none",
        ),
        Column::new(
            "user_data",
            WriteOnly,
            "User data (plain text, base64-encoded for AWS): used at launch, or set to replace it (stop, modify, start); never stored",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new(
            "state",
            CloudAssigned,
            "pending, running, stopping or stopped",
        ),
        Column::new(
            "security_group_ids",
            CloudAssigned,
            "Every security group attached, sorted, including any attached outside infrasql",
        ),
        Column::new("vpc_id", CloudAssigned, "The VPC of its subnet"),
        Column::new("availability_zone", CloudAssigned, "Its availability zone"),
        Column::new(
            "private_ip_address",
            CloudAssigned,
            "Primary private IPv4 address",
        ),
        Column::new(
            "public_ip_address",
            CloudAssigned,
            "Public IPv4 address, if any",
        ),
        Column::new("private_dns_name", CloudAssigned, "Private DNS name"),
        Column::new(
            "public_dns_name",
            CloudAssigned,
            "Public DNS name, if any",
        ),
        Column::new("launch_time", CloudAssigned, "When it was last started"),
        Column::new("architecture", CloudAssigned, "x86_64, arm64..."),
        Column::new("owner_id", CloudAssigned, "Owning AWS account"),
        Column::new(
            "synced_at",
            CloudAssigned,
            "When sync last confirmed this row",
        ),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    stateful: Some("the data on its root volume and any instance-store volumes (deleted when the old instance is terminated)"),
};

/// Records on the instance which security group its row asked for.
pub const GROUP_TAG: &str = "infrasql:security-group-id";
/// The [`GROUP_TAG`] value for a row that left the group NULL.
const DEFAULT_GROUP: &str = "default";
/// The instance type of a row that does not name one (also the table's default).
const DEFAULT_TYPE: &str = "t3.micro";
/// DescribeInstances page size: AWS's maximum, for the fewest calls per sync.
const PAGE_SIZE: i32 = 1000;

pub struct Instance {
    clients: Arc<Clients>,
    page_size: i32,
}

impl Instance {
    pub fn new(clients: Arc<Clients>) -> Self {
        Instance {
            clients,
            page_size: PAGE_SIZE,
        }
    }

    /// List with smaller pages (AWS accepts 5 to 1000), to exercise paging.
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size;
        self
    }
}

/// An instance with its reservation's owner (DescribeInstances reports the
/// owner per reservation).
struct Found {
    instance: AwsInstance,
    owner_id: Option<String>,
}

fn state_of(i: &AwsInstance) -> Option<&InstanceStateName> {
    i.state().and_then(|s| s.name())
}

fn going_away(i: &AwsInstance) -> bool {
    matches!(
        state_of(i),
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
    )
}

/// The value of `security_group_id` (see the module doc).
fn reported_group(i: &AwsInstance) -> Option<&str> {
    let groups = i.security_groups();
    let recorded = i
        .tags()
        .iter()
        .find(|t| t.key() == Some(GROUP_TAG))
        .and_then(|t| t.value());
    match recorded {
        Some(DEFAULT_GROUP) if groups.iter().any(|g| g.group_name() == Some("default")) => {
            return None
        }
        Some(id) if groups.iter().any(|g| g.group_id() == Some(id)) => return Some(id),
        _ => {}
    }
    groups.iter().filter_map(|g| g.group_id()).min()
}

fn props(f: &Found, region: &str) -> Props {
    let i = &f.instance;
    let mut groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let mut p = Props::new();
    p.insert("instance_id".into(), opt_str(i.instance_id()));
    p.insert("region".into(), json!(region));
    p.insert("image_id".into(), opt_str(i.image_id()));
    p.insert(
        "instance_type".into(),
        opt_str(i.instance_type().map(|t| t.as_str())),
    );
    p.insert("subnet_id".into(), present(i.subnet_id()));
    p.insert("security_group_id".into(), opt_str(reported_group(i)));
    p.insert("key_name".into(), present(i.key_name()));
    p.insert("state".into(), opt_str(state_of(i).map(|s| s.as_str())));
    p.insert("security_group_ids".into(), json!(groups));
    p.insert("vpc_id".into(), present(i.vpc_id()));
    p.insert(
        "availability_zone".into(),
        present(i.placement().and_then(|pl| pl.availability_zone())),
    );
    // AWS answers "" for a missing address or name: NULL, never an invalid inet.
    p.insert("private_ip_address".into(), present(i.private_ip_address()));
    p.insert("public_ip_address".into(), present(i.public_ip_address()));
    p.insert("private_dns_name".into(), present(i.private_dns_name()));
    p.insert("public_dns_name".into(), present(i.public_dns_name()));
    p.insert(
        "launch_time".into(),
        i.launch_time()
            .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    p.insert(
        "architecture".into(),
        opt_str(i.architecture().map(|a| a.as_str())),
    );
    p.insert("owner_id".into(), present(f.owner_id.as_deref()));
    put_tags(&mut p, i.tags());
    p
}

/// What `create` and `update` report: the cloud's view, except a NULL
/// `subnet_id` stays NULL (see the module doc).
fn observed(f: &Found, region: &str, desired: &Props) -> Props {
    let mut p = props(f, region);
    if desired.str("subnet_id").is_none() {
        p.insert("subnet_id".into(), Value::Null);
    }
    p
}

/// Idempotency token for RunInstances: the SDK resends the same one when it
/// retries, so a retried launch cannot start a second instance.
fn client_token(ctx: &ApplyContext) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut token = format!("{}-{nanos:x}", ctx.apply_id);
    token.truncate(64);
    token
}

fn gone(id: &str) -> ProviderError {
    not_found(&SCHEMA, "InvalidInstanceID.NotFound", id)
}

#[async_trait]
impl Resource for Instance {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Vec<Props>, ProviderError> {
        // One paginated listing: API calls grow with pages, not instances.
        let ec2 = self.clients.ec2(region).await;
        let reservations = all_pages(
            ec2.describe_instances()
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .values("stopping")
                        .values("stopped")
                        .build(),
                )
                .max_results(self.page_size)
                .into_paginator()
                .items()
                .send(),
        )
        .await?;
        let mut out = Vec::new();
        for r in &reservations {
            for i in r.instances() {
                // The filter already leaves them out; this also holds for an
                // endpoint that ignores it.
                if going_away(i) {
                    continue;
                }
                let f = Found {
                    instance: i.clone(),
                    owner_id: r.owner_id().map(str::to_owned),
                };
                out.push(props(&f, region));
            }
        }
        Ok(out)
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let image_id = desired.req_str("image_id")?;
        let instance_type = desired.str("instance_type").unwrap_or(DEFAULT_TYPE);
        let group = desired.str("security_group_id");
        // The row's tags, the apply id (for crash recovery) and the group
        // the row asked for (see the module doc).
        let mut tags = tag_spec(ResourceType::Instance, desired, ctx)
            .tags()
            .to_vec();
        tags.push(
            Tag::builder()
                .key(GROUP_TAG)
                .value(group.unwrap_or(DEFAULT_GROUP))
                .build(),
        );
        let launched = {
            let ec2 = self.clients.ec2(&ctx.region).await;
            ec2.run_instances()
                .image_id(image_id)
                .instance_type(InstanceType::from(instance_type))
                .min_count(1)
                .max_count(1)
                .set_subnet_id(desired.str("subnet_id").map(str::to_owned))
                .set_security_group_ids(group.map(|g| vec![g.to_owned()]))
                .set_key_name(desired.str("key_name").map(str::to_owned))
                .set_user_data(
                    desired
                        .str("user_data")
                        .map(|u| base64::engine::general_purpose::STANDARD.encode(u)),
                )
                .client_token(client_token(ctx))
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Instance)
                        .set_tags(Some(tags))
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?
        };
        // Readiness (`running`) is the engine's to wait for (`ready`), so it
        // can report progress, stop on a cancel and skip the wait under
        // `infra.wait = 'accepted'`.
        let instance = launched
            .instances()
            .first()
            .filter(|i| i.instance_id().is_some())
            .ok_or_else(|| missing_id("RunInstances", "instance id"))?;
        let f = Found {
            instance: instance.clone(),
            owner_id: launched.owner_id().map(str::to_owned),
        };
        Ok(observed(&f, &ctx.region, desired))
    }

    async fn ready(
        &self,
        ctx: &ApplyContext,
        id: &str,
        created: &Props,
    ) -> Result<Readiness, ProviderError> {
        self.readiness(&ctx.region, id, created).await
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        if changed(before, after, &["name", "tags"]) {
            let ec2 = self.clients.ec2(&ctx.region).await;
            update_tags(&ec2, id, before, after).await?;
        }
        let instance_type = if changed(before, after, &["instance_type"]) {
            Some(after.req_str("instance_type")?)
        } else {
            None
        };
        let user_data = after.str("user_data");
        if instance_type.is_some() || user_data.is_some() {
            self.change_stopped_attributes(&ctx.region, id, instance_type, user_data)
                .await?;
        }
        if changed(before, after, &["security_group_id"]) {
            self.set_group(&ctx.region, id, after.str("security_group_id"))
                .await?;
        }
        let f = self.describe(&ctx.region, id).await?;
        Ok(observed(&f, &ctx.region, after))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        {
            let ec2 = self.clients.ec2(&ctx.region).await;
            deleted(ec2.terminate_instances().instance_ids(id).send().await)?;
        }
        // Until terminated, its network interface keeps the subnet and the
        // security groups in use (DependencyViolation for their deletes).
        self.wait_for(&ctx.region, id, InstanceStateName::Terminated)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::GroupIdentifier;

    fn instance(groups: &[(&str, &str)], recorded: Option<&str>) -> AwsInstance {
        let mut b = AwsInstance::builder().instance_id("i-1");
        for (id, name) in groups {
            b = b.security_groups(
                GroupIdentifier::builder()
                    .group_id(*id)
                    .group_name(*name)
                    .build(),
            );
        }
        if let Some(r) = recorded {
            b = b.tags(Tag::builder().key(GROUP_TAG).value(r).build());
        }
        b.build()
    }

    #[test]
    fn the_recorded_group_is_reported_while_it_is_attached() {
        let both = [("sg-b", "web"), ("sg-a", "extra")];
        assert_eq!(reported_group(&instance(&both, Some("sg-b"))), Some("sg-b"));
        // Swapped outside infrasql: the lowest attached id, stable.
        assert_eq!(
            reported_group(&instance(&[("sg-c", "x"), ("sg-a", "y")], Some("sg-b"))),
            Some("sg-a")
        );
        // Launched outside infrasql: no tag.
        assert_eq!(reported_group(&instance(&both, None)), Some("sg-a"));
        assert_eq!(reported_group(&instance(&[], None)), None);
    }

    #[test]
    fn a_null_group_stays_null_while_the_default_group_is_attached() {
        let default = [("sg-d", "default"), ("sg-a", "extra")];
        assert_eq!(
            reported_group(&instance(&default, Some(DEFAULT_GROUP))),
            None
        );
        assert_eq!(
            reported_group(&instance(&[("sg-z", "other")], Some(DEFAULT_GROUP))),
            Some("sg-z")
        );
    }

    #[test]
    fn missing_addresses_are_null_not_empty_strings() {
        let i = AwsInstance::builder()
            .instance_id("i-1")
            .public_ip_address("")
            .public_dns_name("")
            .private_ip_address("10.0.0.5")
            .build();
        let p = props(
            &Found {
                instance: i,
                owner_id: Some("123".into()),
            },
            "us-east-1",
        );
        assert_eq!(p.get("public_ip_address"), Some(&Value::Null));
        assert_eq!(p.get("public_dns_name"), Some(&Value::Null));
        assert_eq!(p.str("private_ip_address"), Some("10.0.0.5"));
        assert_eq!(p.get("security_group_ids"), Some(&json!([])));
        for c in SCHEMA.columns {
            if c.kind != WriteOnly && c.name != "synced_at" {
                assert!(p.contains_key(c.name), "every listing reports {}", c.name);
            }
        }
    }
}
