//! Where an instance is heading, as the listing reports it.

use aws_sdk_ec2::types::{Instance as AwsInstance, InstanceState, InstanceStateName};
use infrasql_provider::PropsExt;

use super::state::DesiredState;
use super::volume::Root;
use super::{props, Found};

#[test]
fn a_transition_reports_the_state_it_is_heading_to() {
    let at = |s: InstanceStateName| {
        AwsInstance::builder()
            .state(InstanceState::builder().name(s).build())
            .build()
    };
    for (s, want) in [
        (InstanceStateName::Pending, Some(DesiredState::Running)),
        (InstanceStateName::Running, Some(DesiredState::Running)),
        (InstanceStateName::Stopping, Some(DesiredState::Stopped)),
        (InstanceStateName::Stopped, Some(DesiredState::Stopped)),
        (InstanceStateName::ShuttingDown, None),
    ] {
        assert_eq!(DesiredState::of(&at(s.clone())), want, "{s:?}");
    }
    let mut p = props(
        &Found {
            instance: at(InstanceStateName::Stopping),
            owner_id: None,
        },
        "us-east-1",
    );
    Root::Unseen.put(&mut p);
    assert_eq!(p.str("state"), Some("stopping"));
    assert_eq!(p.str("desired_state"), Some("stopped"));
    // A root volume missing from DescribeVolumes is unobserved, not NULL.
    assert!(!p.contains_key("root_volume_size"));
}
