//! An instance's state: describe it, wait until it reaches a state, stop
//! and start it, and the `desired_state` a row asks for. EC2 changes state
//! in the background, so every change here is followed by polling.
//!
//! `state` is AWS's; `desired_state` is the row's wish, `running` or
//! `stopped`. The listing reports as `desired_state` where the instance is
//! or is heading (pending → running, stopping → stopped), so a stop in the
//! console is drift on `desired_state`, and a transition never is.

use std::time::Duration;

use aws_sdk_ec2::types::{Instance as AwsInstance, InstanceStateName};
use infrasql_provider::{ErrorClass, Props, ProviderError, Readiness};

use super::volume::Root;
use super::{going_away, gone, observed, state_of, Found, Instance};
use crate::sdk::{class_of, classify, described, if_found};

/// Polls, 1 s apart, before giving up on a state: instances start in tens of
/// seconds but can take minutes to stop or terminate (terraform's default
/// timeouts are 10 minutes for create and update).
const WAIT_POLLS: u32 = 600;
/// Polls during which a just-launched instance may still be unknown to
/// DescribeInstances (EC2 is eventually consistent).
const UNSEEN_POLLS: u32 = 15;

/// The state a row asks for (`desired_state`): an instance on its way to
/// one counts as there, so a transition is never drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }

    pub(super) fn parse(s: &str) -> Result<DesiredState, ProviderError> {
        match s {
            "running" => Ok(DesiredState::Running),
            "stopped" => Ok(DesiredState::Stopped),
            other => Err(ProviderError::invalid(format!(
                "desired_state must be running or stopped, not {other:?}"
            ))),
        }
    }

    /// Where the instance is or is heading: pending → running, stopping →
    /// stopped; None for shutting-down and terminated.
    pub(super) fn of(i: &AwsInstance) -> Option<DesiredState> {
        match state_of(i)? {
            InstanceStateName::Pending | InstanceStateName::Running => Some(DesiredState::Running),
            InstanceStateName::Stopping | InstanceStateName::Stopped => Some(DesiredState::Stopped),
            _ => None,
        }
    }
}

/// Not in a transition (pending, stopping).
pub(super) fn settled(i: &AwsInstance) -> bool {
    !matches!(
        state_of(i),
        Some(InstanceStateName::Pending | InstanceStateName::Stopping)
    )
}

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
        // A create that asked for `stopped` stopped it already.
        let want = match created.get("desired_state").and_then(|v| v.as_str()) {
            Some("stopped") => InstanceStateName::Stopped,
            _ => InstanceStateName::Running,
        };
        Ok(match self.find(region, id).await? {
            Some(f) if state_of(&f.instance) == Some(&want) => {
                let root = self.root(region, &f).await?;
                Readiness::Ready(Some(observed(&f, &root, region, created)))
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

    /// A just-launched instance once it is running, stopped again when the
    /// row asks for `stopped` (AWS launches nothing stopped), with its root
    /// volume.
    pub(super) async fn launched(
        &self,
        region: &str,
        id: &str,
        want: DesiredState,
    ) -> Result<(Found, Root), ProviderError> {
        let mut found = self.wait_running(region, id).await?;
        if want == DesiredState::Stopped {
            self.stop(region, id).await?;
            found = self.describe(region, id).await?;
        }
        let root = self.root(region, &found).await?;
        Ok((found, root))
    }

    /// Bring the instance to `want` and wait until it is there. A pending
    /// instance is waited for before a stop (AWS cannot stop it yet), a
    /// stopping one before a start.
    pub(super) async fn reach(
        &self,
        region: &str,
        id: &str,
        want: DesiredState,
    ) -> Result<(), ProviderError> {
        let found = self.describe(region, id).await?;
        match (want, state_of(&found.instance)) {
            (DesiredState::Running, Some(InstanceStateName::Running))
            | (DesiredState::Stopped, Some(InstanceStateName::Stopped)) => Ok(()),
            (DesiredState::Running, Some(InstanceStateName::Pending)) => {
                self.wait_running(region, id).await.map(drop)
            }
            (DesiredState::Stopped, Some(InstanceStateName::Stopping)) => self
                .wait_for(region, id, InstanceStateName::Stopped)
                .await
                .map(drop),
            (DesiredState::Running, Some(InstanceStateName::Stopping)) => {
                self.wait_for(region, id, InstanceStateName::Stopped)
                    .await?;
                self.start(region, id).await
            }
            (DesiredState::Stopped, Some(InstanceStateName::Pending)) => {
                self.wait_running(region, id).await?;
                self.stop(region, id).await
            }
            (DesiredState::Running, _) => self.start(region, id).await,
            (DesiredState::Stopped, _) => self.stop(region, id).await,
        }
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
