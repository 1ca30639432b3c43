//! `aws.security_group_rule`: one ingress or egress rule of a security group,
//! as AWS's own SecurityGroupRule (DescribeSecurityGroupRules) has it.
//!
//! Create is AuthorizeSecurityGroupIngress/Egress with one IpPermission
//! per rule, holding one source; AWS answers with the new rules and their
//! ids (sgr-...). The rules one apply creates on one group in one direction
//! share one call ([`batch`]).
//! The description changes in place with ModifySecurityGroupRules, tags with
//! CreateTags/DeleteTags; everything else forces a replace. Delete revokes
//! the rule by id.
//!
//! Ports: for tcp and udp the range; for icmp and icmpv6 the type and code
//! (-1 for all). For protocol `-1` (all traffic) AWS reports -1/-1, which
//! means nothing: they are reported as NULL, as the table requires.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{SecurityGroupRule as AwsRule, SecurityGroupRuleUpdate};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::{json, Value};

mod authorize;
mod batch;
mod request;

use request::{permission, rule_request};

use super::{changed, desired_tags, opt_str, present, put_tags, tag_spec, update_tags};
use crate::sdk::{all_pages_map, classify, deleted, described, if_found, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "security_group_rule",
    display: "security group rule",
    doc: "One ingress or egress rule of a security group, with exactly one source or destination: an IPv4 CIDR, an IPv6 CIDR, a prefix list or another security group.",
    columns: &[
        Column::new(
            "security_group_rule_id",
            Identity,
            "Rule id (sgr-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::reference(
            "group_id",
            ReplaceOnChange,
            "security_group",
            "The security group the rule belongs to",
        ),
        Column::new(
            "is_egress",
            ReplaceOnChange,
            "true for an egress (outbound) rule, false for ingress",
        ),
        Column::new(
            "ip_protocol",
            Desired,
            "tcp, udp, icmp, icmpv6 or -1 (all traffic)",
        ),
        Column::new(
            "from_port",
            Desired,
            "Start of the port range (tcp/udp) or ICMP type (-1: all); NULL for -1",
        ),
        Column::new(
            "to_port",
            Desired,
            "End of the port range (tcp/udp) or ICMP code (-1: all); NULL for -1",
        ),
        // ModifySecurityGroupRules changes protocol, ports and an IPv4 CIDR in
        // place, keeping the rule's id. It refuses to change which kind of
        // peer a rule has, so the other peer columns still replace: a change
        // of kind always touches one of them.
        Column::new(
            "cidr_ipv4",
            Desired,
            "IPv4 CIDR source/destination; changed in place",
        ),
        Column::new("cidr_ipv6", ReplaceOnChange, "IPv6 CIDR source/destination"),
        Column::new(
            "prefix_list_id",
            ReplaceOnChange,
            "Managed prefix list source/destination (pl-...)",
        ),
        // A reference for planning (order, provisional ids) but not a SQL
        // foreign key: the group may be in another account.
        Column::reference(
            "referenced_group_id",
            ReplaceOnChange,
            "security_group",
            "Security group source/destination (may be in another account; not a foreign key)",
        ),
        Column::new("description", Desired, "Rule description"),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new(
            "group_owner_id",
            CloudAssigned,
            "Account owning the security group",
        ),
        Column::new("security_group_rule_arn", CloudAssigned, "The rule's ARN"),
        infrasql_provider::SYNCED_AT,
    ],
    // Only a new group or direction replaces a rule: no collision.
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[
        "group_id",
        "is_egress",
        "ip_protocol",
        "from_port",
        "to_port",
        "cidr_ipv4",
        "cidr_ipv6",
        "prefix_list_id",
        "referenced_group_id",
    ],
    stateful: None,
};

pub struct SecurityGroupRule {
    clients: Arc<Clients>,
    batches: batch::Batcher,
}

impl SecurityGroupRule {
    pub fn new(clients: Arc<Clients>) -> Self {
        SecurityGroupRule {
            clients,
            batches: batch::Batcher::default(),
        }
    }
}

fn port(v: Option<i32>, all_traffic: bool) -> Value {
    match v {
        Some(p) if !all_traffic => json!(p),
        _ => Value::Null,
    }
}

fn props(r: &AwsRule, region: &str) -> Props {
    let all = r.ip_protocol() == Some("-1");
    let mut p = Props::new();
    p.insert(
        "security_group_rule_id".into(),
        opt_str(r.security_group_rule_id()),
    );
    p.insert("region".into(), json!(region));
    p.insert("group_id".into(), opt_str(r.group_id()));
    p.insert("is_egress".into(), json!(r.is_egress().unwrap_or(false)));
    p.insert("ip_protocol".into(), opt_str(r.ip_protocol()));
    p.insert("from_port".into(), port(r.from_port(), all));
    p.insert("to_port".into(), port(r.to_port(), all));
    p.insert("cidr_ipv4".into(), opt_str(r.cidr_ipv4()));
    p.insert("cidr_ipv6".into(), opt_str(r.cidr_ipv6()));
    p.insert("prefix_list_id".into(), opt_str(r.prefix_list_id()));
    p.insert(
        "referenced_group_id".into(),
        opt_str(r.referenced_group_info().and_then(|g| g.group_id())),
    );
    p.insert(
        "description".into(),
        // AWS reports a rule without one as "".
        present(r.description()),
    );
    p.insert("group_owner_id".into(), opt_str(r.group_owner_id()));
    p.insert(
        "security_group_rule_arn".into(),
        opt_str(r.security_group_rule_arn()),
    );
    put_tags(&mut p, r.tags());
    p
}

/// Whether a listed rule is the one `desired` describes, by its natural key.
fn same_rule(listed: &Props, desired: &Props) -> bool {
    SCHEMA.natural_key.iter().all(|k| {
        let (a, b) = (listed.get(*k), desired.get(*k));
        a.unwrap_or(&Value::Null) == b.unwrap_or(&Value::Null)
    })
}

async fn describe(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<AwsRule, ProviderError> {
    described(
        ec2.describe_security_group_rules()
            .security_group_rule_ids(id)
            .send()
            .await,
        |out| {
            out.security_group_rules()
                .iter()
                .find(|r| r.security_group_rule_id() == Some(id))
                .cloned()
        },
        || not_found(&SCHEMA, "InvalidSecurityGroupRuleId.NotFound", id),
    )
}

#[async_trait]
impl Resource for SecurityGroupRule {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        all_pages_map(
            ec2.describe_security_group_rules()
                .into_paginator()
                .items()
                .send(),
            |r| props(&r, region),
        )
        .await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        // A row AWS would refuse for its shape fails alone, before it joins.
        permission(desired)?;
        let key = batch::Key {
            apply_id: ctx.apply_id.clone(),
            region: ctx.region.clone(),
            group_id: desired.req_str("group_id")?.to_owned(),
            egress: desired.bool("is_egress").unwrap_or(false),
            tags: format!("{:?}", desired_tags(desired)),
        };
        match self.batches.join(key, desired) {
            batch::Place::Wait(answer) => match batch::received(answer.await) {
                batch::Outcome::Made(rule) => Ok(props(&rule, &ctx.region)),
                batch::Outcome::Alone => self.create_alone(ctx, desired, true).await,
                batch::Outcome::Failed(e) => Err(e),
            },
            batch::Place::Lead(leader) => {
                let members = leader.close().await;
                if members.is_empty() {
                    return self.create_alone(ctx, desired, false).await;
                }
                self.create_batch(ctx, desired, members).await
            }
        }
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        if changed(
            before,
            after,
            &[
                "description",
                "ip_protocol",
                "from_port",
                "to_port",
                "cidr_ipv4",
            ],
        ) {
            ec2.modify_security_group_rules()
                .group_id(after.req_str("group_id")?)
                .security_group_rules(
                    SecurityGroupRuleUpdate::builder()
                        .security_group_rule_id(id)
                        .security_group_rule(rule_request(after)?)
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
        }
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            update_tags(&ec2, id, before, after).await?;
        }
        Ok(props(&describe(&ec2, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        let (group_id, egress) = match (current.str("group_id"), current.bool("is_egress")) {
            (Some(g), Some(e)) => (g.to_owned(), e),
            _ => match if_found(describe(&ec2, id).await)? {
                Some(r) => (
                    r.group_id().unwrap_or_default().to_owned(),
                    r.is_egress().unwrap_or(false),
                ),
                None => return Ok(()),
            },
        };
        // InvalidPermission.NotFound (rule gone) and InvalidGroup.NotFound
        // (group gone, and its rules with it) both mean: done.
        if egress {
            deleted(
                ec2.revoke_security_group_egress()
                    .group_id(group_id)
                    .security_group_rule_ids(id)
                    .send()
                    .await,
            )
        } else {
            deleted(
                ec2.revoke_security_group_ingress()
                    .group_id(group_id)
                    .security_group_rule_ids(id)
                    .send()
                    .await,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_traffic_ports_are_null_and_icmp_ports_are_kept() {
        let all = AwsRule::builder()
            .ip_protocol("-1")
            .from_port(-1)
            .to_port(-1)
            .build();
        let p = props(&all, "us-east-1");
        assert_eq!(p.get("from_port"), Some(&Value::Null));
        assert_eq!(p.get("to_port"), Some(&Value::Null));
        let icmp = AwsRule::builder()
            .ip_protocol("icmp")
            .from_port(8)
            .to_port(0)
            .build();
        let p = props(&icmp, "us-east-1");
        assert_eq!(p.get("from_port"), Some(&json!(8)));
        assert_eq!(p.get("to_port"), Some(&json!(0)));
    }
}
