//! Changes made in place besides tags: the instance type and user data,
//! which AWS accepts only on a stopped instance, and the set of security
//! groups (one call with the whole set).

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{AttributeValue, Filter, InstanceStateName, SecureBlobAttributeValue};
use infrasql_provider::{ErrorClass, ProviderError};

use super::{state_of, Instance};
use crate::ec2::sdk::classify;

impl Instance {
    /// Attributes AWS changes only on a stopped instance; one call each, as
    /// ModifyInstanceAttribute takes one attribute at a time.
    async fn modify_stopped(
        &self,
        region: &str,
        id: &str,
        instance_type: Option<&str>,
        user_data: Option<&str>,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        if let Some(t) = instance_type {
            ec2.modify_instance_attribute()
                .instance_id(id)
                .instance_type(AttributeValue::builder().value(t).build())
                .send()
                .await
                .map_err(classify)?;
        }
        if let Some(data) = user_data {
            // A blob: the SDK base64-encodes it, as the API requires.
            ec2.modify_instance_attribute()
                .instance_id(id)
                .user_data(
                    SecureBlobAttributeValue::builder()
                        .value(Blob::new(data.as_bytes()))
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// Change the instance type and/or user data: stop if running, modify,
    /// start again if it was running. Nothing happens (no restart) when the
    /// instance already has the type and no user data is given.
    pub(super) async fn change_stopped_attributes(
        &self,
        region: &str,
        id: &str,
        instance_type: Option<&str>,
        user_data: Option<&str>,
    ) -> Result<(), ProviderError> {
        let mut current = self.describe(region, id).await?;
        let instance_type = instance_type
            .filter(|t| current.instance.instance_type().map(|c| c.as_str()) != Some(*t));
        if instance_type.is_none() && user_data.is_none() {
            return Ok(());
        }
        if state_of(&current.instance) == Some(&InstanceStateName::Pending) {
            current = self.wait_running(region, id).await?;
        }
        let restart = match state_of(&current.instance) {
            Some(InstanceStateName::Running) => {
                self.stop(region, id).await?;
                true
            }
            Some(InstanceStateName::Stopping) => {
                self.wait_for(region, id, InstanceStateName::Stopped)
                    .await?;
                false
            }
            _ => false,
        };
        let modified = self
            .modify_stopped(region, id, instance_type, user_data)
            .await;
        if restart {
            // Start again even if the change failed: never leave a running
            // instance stopped.
            let started = self.start(region, id).await;
            modified?;
            started
        } else {
            modified
        }
    }

    /// Attach exactly `groups` (ModifyInstanceAttribute replaces the whole
    /// set); an empty set means the VPC's default group, as at launch.
    pub(super) async fn set_groups(
        &self,
        region: &str,
        id: &str,
        groups: &[String],
    ) -> Result<(), ProviderError> {
        let groups = if groups.is_empty() {
            vec![self.default_group(region, id).await?]
        } else {
            groups.to_vec()
        };
        let ec2 = self.clients.ec2(region).await;
        ec2.modify_instance_attribute()
            .instance_id(id)
            .set_groups(Some(groups))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The `default` security group of the instance's VPC.
    async fn default_group(&self, region: &str, id: &str) -> Result<String, ProviderError> {
        let found = self.describe(region, id).await?;
        let vpc = found.instance.vpc_id().ok_or_else(|| {
            ProviderError::invalid(format!(
                "instance {id} is in no VPC: name its security group"
            ))
        })?;
        let ec2 = self.clients.ec2(region).await;
        let out = ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .filters(
                Filter::builder()
                    .name("group-name")
                    .values("default")
                    .build(),
            )
            .send()
            .await
            .map_err(classify)?;
        out.security_groups()
            .iter()
            .find_map(|g| g.group_id())
            .map(str::to_owned)
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorClass::NotFound,
                    "InvalidGroup.NotFound",
                    format!("VPC {vpc} has no default security group"),
                )
            })
    }
}
