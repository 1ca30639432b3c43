//! `aws.instance`: an EC2 instance.
//!
//! Changes in place: the name and tags; `instance_type` and
//! `ebs_optimized` (stop, wait until stopped, ModifyInstanceAttribute,
//! start, wait until running, as terraform does; an instance whose
//! `desired_state` is `stopped` is modified and left stopped);
//! `desired_state` (StopInstances or StartInstances, then wait; see `state`);
//! `monitoring` (MonitorInstances / UnmonitorInstances); the root volume's
//! size and type (ModifyVolume, see `volume`); the set of security
//! groups (ModifyInstanceAttribute Groups = the whole set). Changing the image,
//! subnet, key name or region replaces the instance.
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
//!
//! # Security groups
//! `security_group_ids` is a set kept as rows of
//! `aws.instance_security_group`; the engine hands it to the provider as a
//! JSON array. RunInstances gets the whole set at once, so an instance is
//! never launched with a group its rows do not name; an empty set lets AWS
//! attach the VPC's default group, which the listing then reports (sync
//! adds its row). `update` changes the groups only when `after` carries the
//! set and it differs from `before`. The listing reports the attached
//! groups sorted, so comparisons are stable.
//!
//! Listing skips `shutting-down` and `terminated` instances (AWS keeps
//! terminated ones visible for about an hour). `delete` terminates and waits
//! until the instance is `terminated`, so a subnet or security group deleted
//! after it in the same plan is no longer in use.

mod launch;
mod modify;
mod profile;
mod state;
#[cfg(test)]
mod transitions;
mod volume;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::primitives::DateTimeFormat;
use aws_sdk_ec2::types::{
    Filter, Instance as AwsInstance, InstanceStateName, InstanceType, RunInstancesMonitoringEnabled,
};
use base64::Engine as _;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, MemberSet, Props, PropsExt, ProviderError,
    Readiness, ReplaceOrder, Resource, ResourceSchema,
};
use serde_json::{json, Value};

use self::modify::StoppedAttributes;
use self::state::DesiredState;
use self::volume::{root_by_id, Root};
use super::{changed, opt_str, present, put_tags, update_tags};
use crate::sdk::{all_pages_map, deleted, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "instance",
    display: "instance",
    doc: "An EC2 instance. Setting desired_state stops or starts it; changing the instance type or EBS optimization stops and restarts it (a stopped one stays stopped); the root volume grows in place; changing the image, subnet or key pair replaces it.",
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
            "desired_state",
            Desired,
            "running (the default) or stopped: a change starts or stops the instance; sync reports where it is or is heading (pending counts as running, stopping as stopped), so a stop outside infrasql is drift here",
        ),
        Column::new(
            "root_volume_size",
            Desired,
            "Root volume size in GiB; NULL at launch means the image's size (then filled in); grows in place (ModifyVolume), never shrinks",
        ),
        Column::new(
            "root_volume_type",
            Desired,
            "Root volume type (gp2, gp3, io1, io2, st1, sc1, standard); NULL at launch means the image's type (then filled in); changed in place (ModifyVolume)",
        ),
        Column::new(
            "ebs_optimized",
            Desired,
            "EBS-optimized; NULL at launch means the type's default (then filled in); a change stops the instance, modifies it and starts it again",
        ),
        Column::new(
            "monitoring",
            Desired,
            "Detailed (1-minute) CloudWatch monitoring; NULL at launch means off (then filled in)",
        ),
        Column::reference(
            "iam_instance_profile",
            Desired,
            "iam_instance_profile",
            "The IAM instance profile it runs with, by name (NULL: none); changed in place (associate, replace the association, disassociate)",
        ),
        Column::new(
            "state",
            CloudAssigned,
            "pending, running, stopping or stopped",
        ),
        Column::member_set(
            "security_group_ids",
            "security_group",
            MemberSet {
                table: "instance_security_group",
                owner: "instance_id",
                member: "group_id",
            },
            "Its security groups, one row each; none means the VPC's default group (sync then adds its row)",
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
            "When sync or a COMMIT last wrote this row: a sync round writes only rows that changed; infra.resource_confirmed says when it was last confirmed equal to AWS",
        ),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: Some("the data on its root volume and any instance-store volumes (deleted when the old instance is terminated)"),
};

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

/// The attached groups' ids, sorted and without repeats.
fn group_ids(i: &AwsInstance) -> Vec<&str> {
    let mut groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// The set a row asks for: every id of its `security_group_ids` array.
fn wanted_groups(p: &Props) -> Option<Vec<String>> {
    match p.get("security_group_ids") {
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn props(f: &Found, region: &str) -> Props {
    let i = &f.instance;
    let groups = group_ids(i);
    let mut p = Props::new();
    p.insert("instance_id".into(), opt_str(i.instance_id()));
    p.insert("region".into(), json!(region));
    p.insert("image_id".into(), opt_str(i.image_id()));
    p.insert(
        "instance_type".into(),
        opt_str(i.instance_type().map(|t| t.as_str())),
    );
    p.insert("subnet_id".into(), present(i.subnet_id()));
    p.insert("key_name".into(), present(i.key_name()));
    p.insert(
        "iam_instance_profile".into(),
        opt_str(
            i.iam_instance_profile()
                .and_then(|ip| ip.arn())
                .and_then(profile::name_of),
        ),
    );
    p.insert("state".into(), opt_str(state_of(i).map(|s| s.as_str())));
    p.insert(
        "desired_state".into(),
        opt_str(DesiredState::of(i).map(DesiredState::as_str)),
    );
    // NULL until `Root::put` says otherwise (it needs DescribeVolumes).
    p.insert("root_volume_size".into(), Value::Null);
    p.insert("root_volume_type".into(), Value::Null);
    p.insert("ebs_optimized".into(), json!(i.ebs_optimized()));
    p.insert("monitoring".into(), json!(modify::monitored(i)));
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
fn observed(f: &Found, root: &Root, region: &str, desired: &Props) -> Props {
    let mut p = props(f, region);
    root.put(&mut p);
    if desired.str("subnet_id").is_none() {
        p.insert("subnet_id".into(), Value::Null);
    }
    p
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v.dedup();
    v
}

fn gone(id: &str) -> ProviderError {
    not_found(&SCHEMA, "InvalidInstanceID.NotFound", id)
}

/// A listing's instances, held as text while the root volumes are
/// described ([`Listed`]), and each one's root volume id, in the same order.
#[derive(Default)]
struct Paged {
    listed: Listed,
    roots: Vec<Option<String>>,
}

impl Extend<Vec<(Props, Option<String>)>> for Paged {
    fn extend<I: IntoIterator<Item = Vec<(Props, Option<String>)>>>(&mut self, pages: I) {
        for (p, root) in pages.into_iter().flatten() {
            self.listed.push(p);
            self.roots.push(root);
        }
    }
}

#[async_trait]
impl Resource for Instance {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        // One paginated listing: API calls grow with pages, not instances.
        let ec2 = self.clients.ec2(region).await;
        let paged: Paged = all_pages_map(
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
            // Each reservation's instances become props (and their root
            // volume's id) as its page arrives; the SDK's copies go with it.
            |r| {
                let owner_id = r.owner_id;
                r.instances
                    .unwrap_or_default()
                    .into_iter()
                    // The filter already leaves them out; this also holds
                    // for an endpoint that ignores it.
                    .filter(|i| !going_away(i))
                    .map(|instance| {
                        let root = volume::root_volume_id(&instance).map(str::to_owned);
                        let f = Found {
                            instance,
                            owner_id: owner_id.clone(),
                        };
                        (props(&f, region), root)
                    })
                    .collect::<Vec<_>>()
            },
        )
        .await?;
        // The volumes' listing takes a permit of its own: holding this one
        // too would wait forever under a limit of 1 (--aws-limiter adaptive).
        drop(ec2);
        let ids = paged.roots.iter().flatten().cloned().collect();
        let volumes = self.volumes_by_id(region, ids).await?;
        Ok(paged
            .listed
            .into_iter()
            .zip(paged.roots)
            .map(|(mut p, root)| {
                root_by_id(root.as_deref(), &volumes).put(&mut p);
                p
            })
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let image_id = desired.req_str("image_id")?;
        let instance_type = desired.str("instance_type").unwrap_or(DEFAULT_TYPE);
        // The whole set in the one launch call: never the default group
        // when the rows name others. Empty: AWS attaches the default group.
        let groups = wanted_groups(desired).filter(|g| !g.is_empty());
        let want = desired
            .str("desired_state")
            .map(DesiredState::parse)
            .transpose()?
            .unwrap_or(DesiredState::Running);
        let root = self.launch_mapping(&ctx.region, desired).await?;
        let launched = {
            let ec2 = self.clients.ec2(&ctx.region).await;
            let request = ec2
                .run_instances()
                .image_id(image_id)
                .instance_type(InstanceType::from(instance_type))
                .min_count(1)
                .max_count(1)
                .set_subnet_id(desired.str("subnet_id").map(str::to_owned))
                .set_security_group_ids(groups)
                .set_key_name(desired.str("key_name").map(str::to_owned))
                .set_iam_instance_profile(profile::spec(desired.str("iam_instance_profile")))
                .set_user_data(
                    desired
                        .str("user_data")
                        .map(|u| base64::engine::general_purpose::STANDARD.encode(u)),
                )
                .set_block_device_mappings(root.map(|m| vec![m]))
                .set_ebs_optimized(desired.bool("ebs_optimized"))
                .set_monitoring(
                    desired
                        .bool("monitoring")
                        .map(|on| RunInstancesMonitoringEnabled::builder().enabled(on).build()),
                );
            // The token, the row's tags and the apply id (crash recovery).
            launch::launch(&ec2, request, ctx, desired).await?
        };
        // Readiness (`running`) is the engine's to wait for (`ready`), so it
        // can report progress, stop on a cancel and skip the wait under
        // `infra.wait = 'accepted'`.
        let instance = launched
            .instances()
            .first()
            .filter(|i| i.instance_id().is_some())
            .ok_or_else(|| missing_id("RunInstances", "instance id"))?;
        if want == DesiredState::Stopped {
            // AWS launches nothing stopped: the stop is part of the create,
            // and it needs the instance running first.
            let id = instance.instance_id().unwrap_or_default().to_owned();
            return match self.launched(&ctx.region, &id, want).await {
                Ok((f, root)) => Ok(observed(&f, &root, &ctx.region, desired)),
                Err(e) => {
                    // Leave nothing half-made behind: the engine only undoes
                    // creates that succeeded.
                    let _ = self.delete(ctx, &id, desired).await;
                    Err(e)
                }
            };
        }
        let f = Found {
            instance: instance.clone(),
            owner_id: launched.owner_id().map(str::to_owned),
        };
        // The root volume may not be attached yet: `ready` reports it.
        Ok(observed(&f, &Root::Unseen, &ctx.region, desired))
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
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            let ec2 = self.clients.ec2(&ctx.region).await;
            update_tags(&ec2, id, before, after).await?;
        }
        let attrs = StoppedAttributes {
            instance_type: if changed(before, after, &["instance_type"]) {
                Some(after.req_str("instance_type")?)
            } else {
                None
            },
            user_data: after.str("user_data"),
            ebs_optimized: after
                .bool("ebs_optimized")
                .filter(|_| changed(before, after, &["ebs_optimized"])),
        };
        let want = match after.str("desired_state") {
            Some(s) if changed(before, after, &["desired_state"]) => Some(DesiredState::parse(s)?),
            _ => None,
        };
        if !attrs.is_empty() || want.is_some() {
            self.change_stopped_attributes(&ctx.region, id, attrs, want)
                .await?;
        }
        if let Some(on) = after
            .bool("monitoring")
            .filter(|_| changed(before, after, &["monitoring"]))
        {
            self.set_monitoring(&ctx.region, id, on).await?;
        }
        self.modify_root(&ctx.region, id, before, after).await?;
        if changed(before, after, &["iam_instance_profile"]) {
            self.set_profile(&ctx.region, id, after.str("iam_instance_profile"))
                .await?;
        }
        // Only a set the engine hands over is applied: an update that does
        // not carry it (a type change) leaves the groups alone.
        if let Some(groups) = wanted_groups(after) {
            if wanted_groups(before).map(sorted) != Some(sorted(groups.clone())) {
                self.set_groups(&ctx.region, id, &groups).await?;
            }
        }
        let f = self.describe(&ctx.region, id).await?;
        let root = self.root(&ctx.region, &f).await?;
        Ok(observed(&f, &root, &ctx.region, after))
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

    #[test]
    fn the_attached_groups_are_reported_sorted_once_each() {
        let mut b = AwsInstance::builder().instance_id("i-1");
        for id in ["sg-b", "sg-a", "sg-b"] {
            b = b.security_groups(GroupIdentifier::builder().group_id(id).build());
        }
        assert_eq!(group_ids(&b.build()), vec!["sg-a", "sg-b"]);
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
                // Sets included: sync writes them as join rows.
                assert!(p.contains_key(c.name), "every listing reports {}", c.name);
            }
        }
    }
}
