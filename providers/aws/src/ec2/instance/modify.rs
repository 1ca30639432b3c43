//! Changes made in place besides tags: the instance type, EBS optimization
//! and user data, which AWS accepts only on a stopped instance (with the
//! running state the row asks for), and the set of security groups (one
//! call with the whole set).

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, Filter, Instance as AwsInstance, MonitoringState,
    SecureBlobAttributeValue,
};
use infrasql_provider::{ErrorClass, ProviderError};

use super::state::{settled, DesiredState};
use super::Instance;
use crate::sdk::classify;

/// Detailed monitoring on, or being turned on.
pub(super) fn monitored(i: &AwsInstance) -> Option<bool> {
    i.monitoring()
        .and_then(|m| m.state())
        .map(|s| matches!(s, MonitoringState::Enabled | MonitoringState::Pending))
}

/// Attributes AWS changes only on a stopped instance; None leaves one as it is.
#[derive(Default)]
pub(super) struct StoppedAttributes<'a> {
    pub instance_type: Option<&'a str>,
    pub user_data: Option<&'a str>,
    pub ebs_optimized: Option<bool>,
}

impl StoppedAttributes<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.instance_type.is_none() && self.user_data.is_none() && self.ebs_optimized.is_none()
    }
}

impl Instance {
    /// One call each, as ModifyInstanceAttribute takes one attribute at a time.
    async fn modify_stopped(
        &self,
        region: &str,
        id: &str,
        attrs: &StoppedAttributes<'_>,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        if let Some(t) = attrs.instance_type {
            ec2.modify_instance_attribute()
                .instance_id(id)
                .instance_type(AttributeValue::builder().value(t).build())
                .send()
                .await
                .map_err(classify)?;
        }
        if let Some(on) = attrs.ebs_optimized {
            ec2.modify_instance_attribute()
                .instance_id(id)
                .ebs_optimized(AttributeBooleanValue::builder().value(on).build())
                .send()
                .await
                .map_err(classify)?;
        }
        if let Some(data) = attrs.user_data {
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

    /// Change attributes AWS accepts only on a stopped instance, and/or its
    /// running state. `want` is the state the row asks for when it changed
    /// (`desired_state`), else None: then an instance that was running is
    /// started again after the change, and a stopped one stays stopped.
    /// Nothing happens (no restart) when the instance already has the
    /// attributes and the state.
    pub(super) async fn change_stopped_attributes(
        &self,
        region: &str,
        id: &str,
        attrs: StoppedAttributes<'_>,
        want: Option<DesiredState>,
    ) -> Result<(), ProviderError> {
        let current = self.describe(region, id).await?;
        let i = &current.instance;
        let attrs = StoppedAttributes {
            instance_type: attrs
                .instance_type
                .filter(|t| i.instance_type().map(|c| c.as_str()) != Some(*t)),
            user_data: attrs.user_data,
            ebs_optimized: attrs
                .ebs_optimized
                .filter(|on| i.ebs_optimized() != Some(*on)),
        };
        let now = DesiredState::of(i);
        if attrs.is_empty() {
            return match want {
                Some(w) if Some(w) != now || !settled(i) => self.reach(region, id, w).await,
                _ => Ok(()),
            };
        }
        let was_running = now == Some(DesiredState::Running);
        self.reach(region, id, DesiredState::Stopped).await?;
        let modified = self.modify_stopped(region, id, &attrs).await;
        let end = match (&modified, want) {
            // A failed change leaves the instance as it was.
            (Err(_), _) | (Ok(()), None) => {
                if was_running {
                    DesiredState::Running
                } else {
                    DesiredState::Stopped
                }
            }
            (Ok(()), Some(w)) => w,
        };
        // Start again even if the change failed: never leave a running
        // instance stopped.
        let reached = match end {
            DesiredState::Running => self.start(region, id).await,
            DesiredState::Stopped => Ok(()),
        };
        modified?;
        reached
    }

    /// Detailed monitoring on or off; AWS changes it on a running or
    /// stopped instance alike.
    pub(super) async fn set_monitoring(
        &self,
        region: &str,
        id: &str,
        on: bool,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        if on {
            ec2.monitor_instances()
                .instance_ids(id)
                .send()
                .await
                .map(drop)
                .map_err(classify)
        } else {
            ec2.unmonitor_instances()
                .instance_ids(id)
                .send()
                .await
                .map(drop)
                .map_err(classify)
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
