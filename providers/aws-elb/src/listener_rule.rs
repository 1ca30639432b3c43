//! `aws.lb_listener_rule`: a rule of a listener: requests matching its
//! conditions go to its action (forward to a target group, or a fixed
//! response) instead of the listener's default action.
//!
//! Not in any bulk listing: `list` reads the listeners (see `listener`),
//! then DescribeRules for each, concurrently, skipping each listener's
//! default rule (that is the listener's default action). The priority
//! changes in place with SetRulePriorities, conditions and action with
//! ModifyRule.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Rule, RulePriorityPair};
use aws_sdk_elasticloadbalancingv2::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use infrasql_aws::fields::{changed, opt_str};
use infrasql_aws::sdk::{all_pages, classify, deleted, described, missing_id, not_found};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema, Scope,
};
use serde_json::{json, Value};

use crate::action::{self, FIXED};
use crate::{client, listener, tags};

const FORWARD: &str = "target_group_arn";

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "lb_listener_rule",
    display: "listener rule",
    doc: "A rule of a listener: requests matching its conditions go to its action, a forward to a target group (target_group_arn) or a fixed response (the fixed_response_* columns). Not in any bulk listing: sync reads each listener's rules (DescribeRules per listener). A listener's default rule is its default action (aws.lb_listener), not a row here; rules with other actions or with conditions that have no Values list are left alone by sync.",
    columns: &[
        Column::new(
            "rule_arn",
            Identity,
            "The rule's ARN; provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::reference(
            "listener_arn",
            ReplaceOnChange,
            "lb_listener",
            "Its listener",
        ),
        Column::new(
            "priority",
            Desired,
            "1 to 50000, unique per listener, lowest first; changed in place (SetRulePriorities); observed by sync",
        ),
        Column::new(
            "conditions",
            Desired,
            "AWS's conditions as JSON, e.g. [{\"Field\": \"path-pattern\", \"Values\": [\"/api/*\"]}] (fields with a Values list: path-pattern, host-header); changed in place (ModifyRule); observed by sync",
        ),
        Column::reference(
            FORWARD,
            Desired,
            "lb_target_group",
            "Action: forward to this target group (or use the fixed_response_* columns); changed in place (ModifyRule)",
        ),
        Column::new(
            "fixed_response_status_code",
            Desired,
            "Action: answer with this HTTP status (2XX, 4XX or 5XX)",
        ),
        Column::new(
            "fixed_response_content_type",
            Desired,
            "The fixed response's content type",
        ),
        Column::new("fixed_response_body", Desired, "The fixed response's body"),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (DescribeTags, one call per 20 rules)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: Scope::Regional,
    natural_key: &["listener_arn", "priority"],
    stateful: None,
};

pub struct ListenerRuleType {
    clients: Arc<Clients>,
}

impl ListenerRuleType {
    pub fn new(clients: Arc<Clients>) -> Self {
        ListenerRuleType { clients }
    }
}

/// The row's columns from AWS's rule; `None` for a default rule and for
/// actions or conditions no column holds.
fn props(r: &Rule, listener_arn: &str, region: &str) -> Option<Props> {
    if r.is_default() == Some(true) {
        return None;
    }
    let mut p = Props::new();
    if !action::put_actions(&mut p, r.actions(), FORWARD) {
        return None;
    }
    p.insert(
        "conditions".into(),
        action::conditions_json(r.conditions())?,
    );
    p.insert("rule_arn".into(), opt_str(r.rule_arn()));
    p.insert("region".into(), json!(region));
    p.insert("listener_arn".into(), json!(listener_arn));
    p.insert(
        "priority".into(),
        r.priority()
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(Value::Null, |v| json!(v)),
    );
    Some(p)
}

fn row(r: &Rule, listener_arn: &str, region: &str) -> Result<Props, ProviderError> {
    props(r, listener_arn, region)
        .ok_or_else(|| ProviderError::invalid("the rule's action or conditions have no columns"))
}

fn priority(p: &Props) -> Result<i32, ProviderError> {
    p.i64("priority")
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| ProviderError::invalid("priority is required"))
}

async fn describe(elb: &Client, arn: &str) -> Result<Rule, ProviderError> {
    described(
        elb.describe_rules().rule_arns(arn).send().await,
        |out| out.rules().first().cloned(),
        || not_found(&SCHEMA, "RuleNotFound", arn),
    )
}

#[async_trait]
impl Resource for ListenerRuleType {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// The listeners (see `listener::all`), one DescribeRules per listener
    /// (all pages, concurrently), DescribeTags per 20 rules.
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let elb = client(&self.clients, region).await;
        let listeners: Vec<String> = listener::all(&elb)
            .await?
            .iter()
            .filter_map(|l| l.listener_arn().map(str::to_owned))
            .collect();
        let elb_ref = &elb;
        let per_listener: Vec<Vec<(String, Props)>> = stream::iter(listeners)
            .map(|arn| async move {
                let rules = all_pages(
                    elb_ref
                        .describe_rules()
                        .listener_arn(&arn)
                        .into_paginator()
                        .items()
                        .send(),
                )
                .await?;
                Ok::<_, ProviderError>(
                    rules
                        .iter()
                        .filter_map(|r| Some((r.rule_arn()?.to_owned(), props(r, &arn, region)?)))
                        .collect(),
                )
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let rules: Vec<(String, Props)> = per_listener.into_iter().flatten().collect();
        let arns: Vec<String> = rules.iter().map(|(a, _)| a.clone()).collect();
        let found = tags::describe(&elb, &arns).await?;
        Ok(rules
            .into_iter()
            .map(|(arn, mut p)| {
                tags::put(&mut p, &found, &arn);
                p
            })
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let listener_arn = desired.req_str("listener_arn")?;
        let sent = tags::for_create(desired, ctx);
        let elb = client(&self.clients, &ctx.region).await;
        let r = elb
            .create_rule()
            .listener_arn(listener_arn)
            .priority(priority(desired)?)
            .set_conditions(Some(action::conditions(desired)?))
            .set_actions(Some(action::actions(desired, FORWARD)?))
            .set_tags(Some(sent.clone()))
            .send()
            .await
            .map_err(classify)?
            .rules()
            .first()
            .cloned()
            .ok_or_else(|| missing_id("CreateRule", "rule"))?;
        let mut p = row(&r, listener_arn, &ctx.region)?;
        tags::put_sent(&mut p, &sent);
        Ok(p)
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let listener_arn = after.req_str("listener_arn")?;
        let elb = client(&self.clients, &ctx.region).await;
        if tags::changed(before, after) {
            tags::update(&elb, id, before, after).await?;
        }
        if changed(before, after, &["priority"]) {
            elb.set_rule_priorities()
                .rule_priorities(
                    RulePriorityPair::builder()
                        .rule_arn(id)
                        .priority(priority(after)?)
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
        }
        let mut action_cols = vec![FORWARD, "conditions"];
        action_cols.extend(FIXED);
        if changed(before, after, &action_cols) {
            elb.modify_rule()
                .rule_arn(id)
                .set_conditions(Some(action::conditions(after)?))
                .set_actions(Some(action::actions(after, FORWARD)?))
                .send()
                .await
                .map_err(classify)?;
        }
        let mut p = row(&describe(&elb, id).await?, listener_arn, &ctx.region)?;
        tags::read_into(&elb, &mut p, id).await?;
        Ok(p)
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let elb = client(&self.clients, &ctx.region).await;
        deleted(elb.delete_rule().rule_arn(id).send().await)
    }
}
