//! The root volume: its size and type at launch (a block device mapping on
//! the image's root device), in the listing (one DescribeVolumes for every
//! instance of the region) and in place (ModifyVolume).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Instance as AwsInstance, Volume, VolumeModificationState,
    VolumeType,
};
use infrasql_provider::{ErrorClass, Props, PropsExt, ProviderError};
use serde_json::{json, Value};

use super::{Found, Instance};
use crate::ec2::changed;
use crate::sdk::{all_pages, classify};

/// Polls, 1 s apart, for a volume modification to take effect.
const MODIFY_POLLS: u32 = 300;

/// What is known of an instance's root volume.
pub(super) enum Root {
    /// Its volume was not in the DescribeVolumes answer (attached after
    /// it?): the columns are left unobserved rather than reported wrong.
    Unseen,
    /// No EBS root volume (an instance-store root): NULL.
    None,
    Volume {
        size: Option<i32>,
        kind: Option<String>,
    },
}

impl Root {
    /// Set the root volume's columns in `p` (the listing's props).
    pub(super) fn put(&self, p: &mut Props) {
        match self {
            Root::Unseen => {
                p.remove("root_volume_size");
                p.remove("root_volume_type");
            }
            Root::None => {
                p.insert("root_volume_size".into(), Value::Null);
                p.insert("root_volume_type".into(), Value::Null);
            }
            Root::Volume { size, kind } => {
                p.insert("root_volume_size".into(), json!(size));
                p.insert("root_volume_type".into(), json!(kind));
            }
        }
    }
}

/// The id of the EBS volume on the instance's root device.
pub(super) fn root_volume_id(i: &AwsInstance) -> Option<&str> {
    let root = i.root_device_name()?;
    i.block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_id())
}

/// The root volume of `i`, from `volumes` (keyed by id).
pub(super) fn root_of(i: &AwsInstance, volumes: &HashMap<String, Volume>) -> Root {
    root_by_id(root_volume_id(i), volumes)
}

/// The root volume whose id is `root` (`None`: no EBS root), from `volumes`.
pub(super) fn root_by_id(root: Option<&str>, volumes: &HashMap<String, Volume>) -> Root {
    match root {
        None => Root::None,
        Some(id) => match volumes.get(id) {
            None => Root::Unseen,
            Some(v) => Root::Volume {
                size: v.size(),
                kind: v.volume_type().map(|t| t.as_str().to_owned()),
            },
        },
    }
}

fn by_id(volumes: Vec<Volume>) -> HashMap<String, Volume> {
    volumes
        .into_iter()
        .filter_map(|v| v.volume_id().map(str::to_owned).map(|id| (id, v)))
        .collect()
}

impl Instance {
    /// The root volumes of `instances`: no call when none has one, else
    /// one paginated DescribeVolumes for the region (not one per instance).
    pub(super) async fn root_volumes<'a>(
        &self,
        region: &str,
        instances: impl IntoIterator<Item = &'a AwsInstance>,
    ) -> Result<HashMap<String, Volume>, ProviderError> {
        let ids: Vec<String> = instances
            .into_iter()
            .filter_map(root_volume_id)
            .map(str::to_owned)
            .collect();
        self.volumes_by_id(region, ids).await
    }

    /// The volumes `ids` (root volumes): no call for none, DescribeVolumes
    /// of the one for one, else one paginated DescribeVolumes of the region.
    pub(super) async fn volumes_by_id(
        &self,
        region: &str,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Volume>, ProviderError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ec2 = self.clients.ec2(region).await;
        let volumes = if ids.len() == 1 {
            // One instance (create, update): ask for its volume alone.
            ec2.describe_volumes()
                .set_volume_ids(Some(ids))
                .send()
                .await
                .map_err(classify)?
                .volumes()
                .to_vec()
        } else {
            all_pages(
                ec2.describe_volumes()
                    .max_results(500)
                    .into_paginator()
                    .items()
                    .send(),
            )
            .await?
        };
        Ok(by_id(volumes))
    }

    /// The root volume of one instance, as the listing reports it.
    pub(super) async fn root(&self, region: &str, f: &Found) -> Result<Root, ProviderError> {
        let volumes = self.root_volumes(region, [&f.instance]).await?;
        Ok(root_of(&f.instance, &volumes))
    }

    /// The launch's block device mapping for the root volume, when the row
    /// sets its size or type (NULL for both: the image's own mapping).
    pub(super) async fn launch_mapping(
        &self,
        region: &str,
        desired: &Props,
    ) -> Result<Option<BlockDeviceMapping>, ProviderError> {
        let size = desired.i64("root_volume_size");
        let kind = desired.str("root_volume_type");
        if size.is_none() && kind.is_none() {
            return Ok(None);
        }
        let image_id = desired.req_str("image_id")?;
        let ec2 = self.clients.ec2(region).await;
        let out = ec2
            .describe_images()
            .image_ids(image_id)
            .send()
            .await
            .map_err(classify)?;
        let device = out
            .images()
            .first()
            .and_then(|i| i.root_device_name())
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorClass::NotFound,
                    "InvalidAMIID.NotFound",
                    format!("image {image_id} not found, or it names no root device"),
                )
            })?;
        Ok(Some(
            BlockDeviceMapping::builder()
                .device_name(device)
                .ebs(
                    EbsBlockDevice::builder()
                        .set_volume_size(size.map(|s| s as i32))
                        .set_volume_type(kind.map(VolumeType::from))
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        ))
    }

    /// Change the root volume's size and/or type in place, when the row
    /// changed them to a value (NULL asks for nothing). AWS refuses to
    /// shrink a volume; that is refused here first, with the sizes.
    pub(super) async fn modify_root(
        &self,
        region: &str,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<(), ProviderError> {
        if !changed(before, after, &["root_volume_size", "root_volume_type"]) {
            return Ok(());
        }
        let found = self.describe(region, id).await?;
        let volume_id = root_volume_id(&found.instance)
            .ok_or_else(|| {
                ProviderError::invalid(format!(
                    "instance {id} has no EBS root volume: its root volume size and type cannot be set"
                ))
            })?
            .to_owned();
        let volumes = self.root_volumes(region, [&found.instance]).await?;
        let current = volumes.get(&volume_id);
        let size = after
            .i64("root_volume_size")
            .map(|s| s as i32)
            .filter(|s| current.and_then(|v| v.size()) != Some(*s));
        let kind = after
            .str("root_volume_type")
            .filter(|t| current.and_then(|v| v.volume_type()).map(|c| c.as_str()) != Some(*t));
        if let (Some(new), Some(old)) = (size, current.and_then(|v| v.size())) {
            if new < old {
                return Err(ProviderError::invalid(format!(
                    "instance {id}: root volume {volume_id} is {old} GiB and cannot shrink to {new} GiB (AWS only grows volumes)"
                )));
            }
        }
        if size.is_none() && kind.is_none() {
            return Ok(());
        }
        let ec2 = self.clients.ec2(region).await;
        ec2.modify_volume()
            .volume_id(&volume_id)
            .set_size(size)
            .set_volume_type(kind.map(VolumeType::from))
            .send()
            .await
            .map_err(classify)?;
        drop(ec2);
        self.wait_modified(region, &volume_id).await
    }

    /// Wait until the modification takes effect (`optimizing` or
    /// `completed`, as terraform does): from then on DescribeVolumes reports
    /// the new size and type, so the next listing is not drift.
    async fn wait_modified(&self, region: &str, volume_id: &str) -> Result<(), ProviderError> {
        let mut last = None;
        for poll in 0..MODIFY_POLLS {
            if poll > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let ec2 = self.clients.ec2(region).await;
            let out = ec2
                .describe_volumes_modifications()
                .volume_ids(volume_id)
                .send()
                .await
                .map_err(classify)?;
            // The latest modification: the one just asked for.
            let latest = out.volumes_modifications().last();
            match latest.and_then(|m| m.modification_state()) {
                Some(VolumeModificationState::Optimizing | VolumeModificationState::Completed) => {
                    return Ok(())
                }
                Some(VolumeModificationState::Failed) => {
                    let reason = latest
                        .and_then(|m| m.status_message())
                        .unwrap_or("no reason given");
                    return Err(ProviderError::new(
                        ErrorClass::Invalid,
                        "VolumeModificationFailed",
                        format!("modifying root volume {volume_id} failed: {reason}"),
                    ));
                }
                other => last = other.map(|s| s.as_str().to_owned()),
            }
        }
        Err(ProviderError::new(
            ErrorClass::Retryable,
            "WaitTimeout",
            format!(
                "root volume {volume_id} was not modified within {MODIFY_POLLS} s (still {})",
                last.as_deref().unwrap_or("unknown")
            ),
        ))
    }
}
