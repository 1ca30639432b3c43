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
mod read;
mod schema;
mod state;
#[cfg(test)]
mod transitions;
mod volume;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, InstanceStateName, InstanceType, RunInstancesMonitoringEnabled};
use base64::Engine as _;
use infrasql_provider::{
    ApplyContext, Listed, Props, PropsExt, ProviderError, Readiness, Resource, ResourceSchema,
};

pub use self::schema::SCHEMA;

use self::modify::StoppedAttributes;
use self::read::{going_away, observed, props, state_of, Found, Paged};
use self::schema::DEFAULT_TYPE;
use self::state::DesiredState;
use self::volume::{root_by_id, Root};
use super::{changed, update_tags};
use crate::sdk::{all_pages_map, deleted, missing_id, not_found};
use crate::Clients;

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

fn gone(id: &str) -> ProviderError {
    not_found(&SCHEMA, "InvalidInstanceID.NotFound", id)
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
        let groups = desired
            .id_set("security_group_ids")
            .filter(|g| !g.is_empty());
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
        if let Some(groups) = after.id_set("security_group_ids") {
            if before.id_set("security_group_ids").as_ref() != Some(&groups) {
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
