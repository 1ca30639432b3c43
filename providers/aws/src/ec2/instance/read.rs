//! What DescribeInstances says about an instance, as a row.

use aws_sdk_ec2::primitives::DateTimeFormat;
use aws_sdk_ec2::types::{Instance as AwsInstance, InstanceStateName};
use infrasql_provider::{Listed, Props, PropsExt};
use serde_json::{json, Value};

use super::modify;
use super::profile;
use super::state::DesiredState;
use super::volume::Root;
use crate::ec2::{opt_str, present, put_tags};

/// An instance with its reservation's owner (DescribeInstances reports the
/// owner per reservation).
pub(super) struct Found {
    pub(super) instance: AwsInstance,
    pub(super) owner_id: Option<String>,
}

pub(super) fn state_of(i: &AwsInstance) -> Option<&InstanceStateName> {
    i.state().and_then(|s| s.name())
}

pub(super) fn going_away(i: &AwsInstance) -> bool {
    matches!(
        state_of(i),
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
    )
}

/// The attached groups' ids, sorted and without repeats.
pub(super) fn group_ids(i: &AwsInstance) -> Vec<&str> {
    let mut groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

pub(super) fn props(f: &Found, region: &str) -> Props {
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
pub(super) fn observed(f: &Found, root: &Root, region: &str, desired: &Props) -> Props {
    let mut p = props(f, region);
    root.put(&mut p);
    if desired.str("subnet_id").is_none() {
        p.insert("subnet_id".into(), Value::Null);
    }
    p
}

/// A listing's instances, held as text while the root volumes are
/// described ([`Listed`]), and each one's root volume id, in the same order.
#[derive(Default)]
pub(super) struct Paged {
    pub(super) listed: Listed,
    pub(super) roots: Vec<Option<String>>,
}

impl Extend<Vec<(Props, Option<String>)>> for Paged {
    fn extend<I: IntoIterator<Item = Vec<(Props, Option<String>)>>>(&mut self, pages: I) {
        for (p, root) in pages.into_iter().flatten() {
            self.listed.push(p);
            self.roots.push(root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::instance::SCHEMA;
    use aws_sdk_ec2::types::GroupIdentifier;
    use infrasql_provider::ColumnKind::WriteOnly;

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
