//! `aws.instance.iam_instance_profile`: the IAM instance profile an
//! instance runs with, by name (`aws.iam_instance_profile`), changed in
//! place. EC2 keeps it as an association: none yet → associate; another
//! one → replace the association; NULL → disassociate. The association is
//! found by DescribeIamInstanceProfileAssociations (EC2 reports only the
//! profile's ARN on the instance, whose last path segment is its name).

use aws_sdk_ec2::types::{Filter, IamInstanceProfileSpecification};
use infrasql_provider::ProviderError;

use super::Instance;
use crate::sdk::classify;

/// The profile's name from the ARN EC2 reports
/// (`arn:aws:iam::123456789012:instance-profile/path/name`).
pub(super) fn name_of(arn: &str) -> Option<&str> {
    arn.rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && arn.contains(":instance-profile/"))
}

/// What RunInstances takes for a profile name.
pub(super) fn spec(name: Option<&str>) -> Option<IamInstanceProfileSpecification> {
    name.map(|n| IamInstanceProfileSpecification::builder().name(n).build())
}

impl Instance {
    /// Bring the instance's profile to `want`.
    pub(super) async fn set_profile(
        &self,
        region: &str,
        id: &str,
        want: Option<&str>,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        let out = ec2
            .describe_iam_instance_profile_associations()
            .filters(Filter::builder().name("instance-id").values(id).build())
            .send()
            .await
            .map_err(classify)?;
        // Associations being removed are on their way out already.
        let current = out.iam_instance_profile_associations().iter().find(|a| {
            !matches!(
                a.state().map(|s| s.as_str()),
                Some("disassociating") | Some("disassociated")
            )
        });
        match (current.and_then(|a| a.association_id()), want) {
            (None, None) => Ok(()),
            (None, Some(_)) => ec2
                .associate_iam_instance_profile()
                .instance_id(id)
                .set_iam_instance_profile(spec(want))
                .send()
                .await
                .map(drop)
                .map_err(classify),
            (Some(assoc), Some(_)) => ec2
                .replace_iam_instance_profile_association()
                .association_id(assoc)
                .set_iam_instance_profile(spec(want))
                .send()
                .await
                .map(drop)
                .map_err(classify),
            (Some(assoc), None) => ec2
                .disassociate_iam_instance_profile()
                .association_id(assoc)
                .send()
                .await
                .map(drop)
                .map_err(classify),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_arn_s_last_segment() {
        assert_eq!(
            name_of("arn:aws:iam::123456789012:instance-profile/web"),
            Some("web")
        );
        assert_eq!(
            name_of("arn:aws:iam::123456789012:instance-profile/team/web"),
            Some("web")
        );
        assert_eq!(name_of("arn:aws:iam::123456789012:role/web"), None);
    }
}
