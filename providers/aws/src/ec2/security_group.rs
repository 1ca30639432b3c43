//! `aws.security_group`: a VPC security group.
//!
//! Its rules are rows of `aws.security_group_rule`. AWS gives every new
//! group an allow-all egress rule (two in a VPC with IPv6); `create` revokes
//! them at once so that the group has exactly the rules the user wrote.
//! A create is two calls: CreateSecurityGroup and that revoke; the row is
//! built from the create's answer, not read back.
//! Listing includes each VPC's `default` group.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup as AwsSecurityGroup,
    TagSpecification,
};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, ErrorClass, Listed, Props, PropsExt, ProviderError,
    ReplaceOrder, Resource, ResourceSchema,
};
use serde_json::{json, Value};

use super::{changed, opt_str, put_tags, tag_spec_once, token_filter, update_tags};
use crate::create_once::{create_once, create_token, no_sdk_retry};
use crate::sdk::{all_pages_map, classify, deleted, described, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "security_group",
    display: "security group",
    doc: "A VPC security group. Its rules are rows of aws.security_group_rule; a new group starts with none (AWS's default egress rule is removed).",
    columns: &[
        Column::new(
            "group_id",
            Identity,
            "Security group id (sg-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::new(
            "group_name",
            ReplaceOnChange,
            "Group name, unique in its VPC",
        ),
        Column::new("description", ReplaceOnChange, "Group description"),
        Column::reference(
            "vpc_id",
            ReplaceOnChange,
            "vpc",
            "The VPC the group belongs to",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new(
            "owner_id",
            CloudAssigned,
            "Owning AWS account (at create, from the ARN; where the create's answer has none, filled by the next sync)",
        ),
        Column::new(
            "security_group_arn",
            CloudAssigned,
            "The group's ARN (where the create's answer has none, filled by the next sync)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // group_name is unique in its VPC: a replace that keeps it (a new
    // description) deletes the old group first. A group holds no data.
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "vpc_id", "group_name"],
        why: "a group name is unique in its VPC",
    },
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct SecurityGroup {
    clients: Arc<Clients>,
}

impl SecurityGroup {
    pub fn new(clients: Arc<Clients>) -> Self {
        SecurityGroup { clients }
    }
}

fn props(g: &AwsSecurityGroup, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("group_id".into(), opt_str(g.group_id()));
    p.insert("region".into(), json!(region));
    p.insert("group_name".into(), opt_str(g.group_name()));
    p.insert("description".into(), opt_str(g.description()));
    p.insert("vpc_id".into(), opt_str(g.vpc_id()));
    p.insert("owner_id".into(), opt_str(g.owner_id()));
    p.insert("security_group_arn".into(), opt_str(g.security_group_arn()));
    put_tags(&mut p, g.tags());
    p
}

async fn describe(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<AwsSecurityGroup, ProviderError> {
    described(
        ec2.describe_security_groups().group_ids(id).send().await,
        |out| out.security_groups().first().cloned(),
        || not_found(&SCHEMA, "InvalidGroup.NotFound", id),
    )
}

/// What CreateSecurityGroup answers (or a retry's lookup found): the id,
/// and the ARN where the answer holds one (AWS's and moto's do).
struct Made {
    id: String,
    arn: Option<String>,
}

/// The row of a group just made, from the create's answer and the row
/// asked for, without a describe: the name, description and VPC are what
/// was sent, the tags what the create's TagSpecifications set. The owner is
/// the ARN's account field; with no ARN in the answer, `owner_id` and
/// `security_group_arn` stay NULL until the next sync fills them.
fn created_props(made: &Made, desired: &Props, region: &str, sent: &TagSpecification) -> Props {
    let mut p = Props::new();
    p.insert("group_id".into(), json!(made.id));
    p.insert("region".into(), json!(region));
    for k in ["group_name", "vpc_id"] {
        p.insert(k.into(), desired.get(k).cloned().unwrap_or(Value::Null));
    }
    p.insert("description".into(), json!(description(desired)));
    p.insert(
        "owner_id".into(),
        opt_str(made.arn.as_deref().and_then(arn_account)),
    );
    p.insert("security_group_arn".into(), opt_str(made.arn.as_deref()));
    put_tags(&mut p, sent.tags());
    p
}

/// The description sent: AWS requires one.
fn description(desired: &Props) -> &str {
    desired.str("description").unwrap_or("Managed by infrasql")
}

/// The account of an ARN (`arn:aws:ec2:REGION:ACCOUNT:security-group/sg-...`).
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// AWS's allow-all egress rule of a new group, by its known shape: all
/// traffic to 0.0.0.0/0, and to ::/0 where the VPC has an IPv6 block (AWS
/// then adds that one too). One call, no listing first.
fn default_egress() -> IpPermission {
    IpPermission::builder()
        .ip_protocol("-1")
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
        .build()
}

/// Revoke a new group's default egress rules (AWS's own, which are no rows).
///
/// How a part that is not there is answered differs: AWS revokes what
/// matches and reports the rest as `UnknownIpPermissions` (success); moto
/// drops ::/0 for a VPC without IPv6 and answers a rule that is gone with
/// `InvalidPermission.NotFound`, as it does when the SDK resends a revoke
/// whose answer was lost. Gone is done (`deleted`). Should an endpoint
/// refuse the IPv6 part as invalid (AWS once did, for a VPC without
/// IPv6: `InvalidParameterValue`), the IPv4 rule alone is revoked.
async fn revoke_default_egress(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), ProviderError> {
    let both = ec2
        .revoke_security_group_egress()
        .group_id(id)
        .ip_permissions(default_egress())
        .send()
        .await;
    match deleted(both) {
        Err(e) if e.class == ErrorClass::Invalid => {
            let v4 = IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build();
            deleted(
                ec2.revoke_security_group_egress()
                    .group_id(id)
                    .ip_permissions(v4)
                    .send()
                    .await,
            )
        }
        other => other,
    }
}

#[async_trait]
impl Resource for SecurityGroup {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        all_pages_map(
            ec2.describe_security_groups()
                .into_paginator()
                .items()
                .send(),
            |g| props(&g, region),
        )
        .await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let group_name = desired.req_str("group_name")?;
        let description = description(desired);
        let vpc_id = desired.req_str("vpc_id")?;
        let ec2 = self.clients.ec2(&ctx.region).await;
        let token = &create_token(ctx);
        let tags = &tag_spec_once(ResourceType::SecurityGroup, desired, ctx, token);
        let client = &ec2.client;
        let made = create_once(
            move || async move {
                let out = client
                    .create_security_group()
                    .group_name(group_name)
                    .description(description)
                    .vpc_id(vpc_id)
                    .tag_specifications(tags.clone())
                    .customize()
                    .config_override(no_sdk_retry())
                    .send()
                    .await
                    .map_err(classify)?;
                let id = out
                    .group_id()
                    .ok_or_else(|| missing_id("CreateSecurityGroup", "group id"))?;
                Ok(Made {
                    id: id.to_owned(),
                    arn: out.security_group_arn().map(str::to_owned),
                })
            },
            move || async move {
                let out = client
                    .describe_security_groups()
                    .filters(token_filter(token))
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(out.security_groups().first().and_then(|g| {
                    Some(Made {
                        id: g.group_id()?.to_owned(),
                        arn: g.security_group_arn().map(str::to_owned),
                    })
                }))
            },
        )
        .await?;
        // Egress rules are rows of aws.security_group_rule: only those the
        // user wrote may exist. Should that fail, do not leave a group the
        // engine does not know about.
        if let Err(e) = revoke_default_egress(&ec2, &made.id).await {
            let _ = ec2.delete_security_group().group_id(&made.id).send().await;
            return Err(e);
        }
        Ok(created_props(&made, desired, &ctx.region, tags))
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            update_tags(&ec2, id, before, after).await?;
        }
        Ok(props(&describe(&ec2, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(ec2.delete_security_group().group_id(id).send().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::Tag;

    #[test]
    fn a_created_row_comes_from_the_answer_and_the_row_asked_for() {
        let desired = json!({"group_id": "pending-sg-1", "group_name": "web", "vpc_id": "vpc-1",
                             "description": null, "name": "web", "tags": {"team": "a"}});
        let desired = desired.as_object().unwrap();
        let sent = TagSpecification::builder()
            .tags(Tag::builder().key("Name").value("web").build())
            .tags(Tag::builder().key("team").value("a").build())
            .tags(
                Tag::builder()
                    .key("infrasql:create-token")
                    .value("t")
                    .build(),
            )
            .build();
        let made = Made {
            id: "sg-9".into(),
            arn: Some("arn:aws:ec2:us-east-1:123456789012:security-group/sg-9".into()),
        };
        let p = created_props(&made, desired, "us-east-1", &sent);
        assert_eq!(p.str("group_id"), Some("sg-9"));
        assert_eq!(p.str("description"), Some("Managed by infrasql"));
        assert_eq!(p.str("owner_id"), Some("123456789012"));
        assert_eq!(p.str("name"), Some("web"));
        assert_eq!(p.get("tags"), Some(&json!({"team": "a"})));
        // Every column a describe fills is there (the next sync compares them).
        for c in SCHEMA.columns.iter().filter(|c| c.name != "synced_at") {
            assert!(p.contains_key(c.name), "{}", c.name);
        }
        let no_arn = Made {
            id: "sg-9".into(),
            arn: None,
        };
        let p = created_props(&no_arn, desired, "us-east-1", &sent);
        assert_eq!(p.get("owner_id"), Some(&Value::Null));
        assert_eq!(arn_account("arn:aws:ec2:r::x"), None);
    }
}
