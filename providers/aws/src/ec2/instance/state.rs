//! An instance's state: describe it, wait until it reaches a state, stop
//! and start it. EC2 changes state in the background, so every change here
//! is followed by polling.

use std::time::Duration;

use aws_sdk_ec2::types::InstanceStateName;
use infrasql_provider::{ErrorClass, Props, ProviderError, Readiness};

use super::{going_away, gone, observed, state_of, Found, Instance};
use crate::ec2::sdk::{class_of, classify, described, if_found};

/// Polls, 1 s apart, before giving up on a state: instances start in tens of
/// seconds but can take minutes to stop or terminate (terraform's default
/// timeouts are 10 minutes for create and update).
const WAIT_POLLS: u32 = 600;
/// Polls during which a just-launched instance may still be unknown to
/// DescribeInstances (EC2 is eventually consistent).
const UNSEEN_POLLS: u32 = 15;

impl Instance {
    /// The instance as AWS reports it; NotFound when AWS does not know it.
    pub(super) async fn describe(&self, region: &str, id: &str) -> Result<Found, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        described(
            ec2.describe_instances().instance_ids(id).send().await,
            |out| {
                out.reservations().iter().find_map(|r| {
                    r.instances()
                        .iter()
                        .find(|i| i.instance_id() == Some(id))
                        .map(|i| Found {
                            instance: i.clone(),
                            owner_id: r.owner_id().map(str::to_owned),
                        })
                })
            },
            || gone(id),
        )
    }

    /// The instance, or None if AWS does not know it (any more, or yet).
    async fn find(&self, region: &str, id: &str) -> Result<Option<Found>, ProviderError> {
        if_found(self.describe(region, id).await)
    }

    /// Poll until the instance is in state `want`. Waiting for `terminated`,
    /// an instance AWS no longer knows counts as reached (None).
    pub(super) async fn wait_for(
        &self,
        region: &str,
        id: &str,
        want: InstanceStateName,
    ) -> Result<Option<Found>, ProviderError> {
        let mut last = None;
        for poll in 0..WAIT_POLLS {
            if poll > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            match self.find(region, id).await? {
                Some(f) if state_of(&f.instance) == Some(&want) => return Ok(Some(f)),
                Some(f) if want != InstanceStateName::Terminated && going_away(&f.instance) => {
                    return Err(went_away(id, &f, &want));
                }
                Some(f) => last = state_of(&f.instance).map(|s| s.as_str().to_owned()),
                None if want == InstanceStateName::Terminated => return Ok(None),
                None if poll >= UNSEEN_POLLS => return Err(gone(id)),
                None => {}
            }
        }
        Err(ProviderError::new(
            ErrorClass::Retryable,
            "WaitTimeout",
            format!(
                "instance {id} did not become {} within {WAIT_POLLS} s (still {})",
                want.as_str(),
                last.as_deref().unwrap_or("unknown")
            ),
        ))
    }

    /// One look for the engine's readiness wait after a launch: `running`
    /// is ready; an instance that is shutting down or terminated will never
    /// be, and says why. Not yet visible is pending (EC2 is eventually
    /// consistent just after RunInstances).
    pub(super) async fn readiness(
        &self,
        region: &str,
        id: &str,
        created: &Props,
    ) -> Result<Readiness, ProviderError> {
        let want = InstanceStateName::Running;
        Ok(match self.find(region, id).await? {
            Some(f) if state_of(&f.instance) == Some(&want) => {
                Readiness::Ready(Some(observed(&f, region, created)))
            }
            Some(f) if going_away(&f.instance) => return Err(went_away(id, &f, &want)),
            Some(f) => Readiness::Pending {
                status: state_of(&f.instance)
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|| "unknown".into()),
            },
            None => Readiness::Pending {
                status: "not visible yet".into(),
            },
        })
    }

    pub(super) async fn wait_running(
        &self,
        region: &str,
        id: &str,
    ) -> Result<Found, ProviderError> {
        self.wait_for(region, id, InstanceStateName::Running)
            .await?
            .ok_or_else(|| gone(id))
    }

    pub(super) async fn stop(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        {
            let ec2 = self.clients.ec2(region).await;
            ec2.stop_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(classify)?;
        }
        self.wait_for(region, id, InstanceStateName::Stopped)
            .await?
            .ok_or_else(|| gone(id))
            .map(drop)
    }

    pub(super) async fn start(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        {
            let ec2 = self.clients.ec2(region).await;
            ec2.start_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(classify)?;
        }
        self.wait_running(region, id).await.map(drop)
    }
}

/// The error for an instance that went away while infrasql waited for `want`.
fn went_away(id: &str, f: &Found, want: &InstanceStateName) -> ProviderError {
    let reason = f.instance.state_reason();
    let code = reason
        .and_then(|r| r.code())
        .unwrap_or("InstanceTerminated")
        .to_owned();
    let message = format!(
        "instance {id} is {} instead of {}: {}",
        state_of(&f.instance).map(|s| s.as_str()).unwrap_or("gone"),
        want.as_str(),
        reason
            .and_then(|r| r.message())
            .or(f.instance.state_transition_reason())
            .unwrap_or("no reason given")
    );
    ProviderError::new(class_of(&code), code, message)
}
