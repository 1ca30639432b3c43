//! The listing's pure parts: which group is reported, what AWS's empty
//! answers become, where an instance is heading.

use super::state::DesiredState;
use super::volume::Root;
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
        &Root::None,
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

#[test]
fn a_transition_reports_the_state_it_is_heading_to() {
    use aws_sdk_ec2::types::InstanceState;
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
    let p = props(
        &Found {
            instance: at(InstanceStateName::Stopping),
            owner_id: None,
        },
        &Root::Unseen,
        "us-east-1",
    );
    assert_eq!(p.str("state"), Some("stopping"));
    assert_eq!(p.str("desired_state"), Some("stopped"));
    // A root volume missing from DescribeVolumes is unobserved, not NULL.
    assert!(!p.contains_key("root_volume_size"));
}
