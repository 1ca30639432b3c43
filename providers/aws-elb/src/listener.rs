//! `aws.lb_listener`: a port a load balancer listens on, and what it does
//! with a request no rule takes (its default action: forward to a target
//! group, or a fixed response).
//!
//! Listeners are not in the load balancers' listing: `list` reads the load
//! balancers (DescribeLoadBalancers, all pages), then DescribeListeners
//! for each of them, concurrently. Everything but the load balancer
//! changes in place with one ModifyListener.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Certificate, Listener, ProtocolEnum};
use aws_sdk_elasticloadbalancingv2::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use infrasql_aws::fields::{changed, opt_str};
use infrasql_aws::sdk::{all_pages, classify, deleted, described, missing_id, not_found};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema, Scope,
};
use serde_json::json;

use crate::action::{self, FIXED};
use crate::{client, tags};

const FORWARD: &str = "default_target_group_arn";

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "lb_listener",
    display: "listener",
    doc: "A listener of a load balancer: its port and protocol, and its default action, either a forward to a target group (default_target_group_arn) or a fixed response (the fixed_response_* columns). Not in the load balancers' listing: sync reads each load balancer's listeners (DescribeListeners per load balancer). Listeners with another default action (redirect, authenticate, a weighted forward) are left alone by sync.",
    columns: &[
        Column::new(
            "listener_arn",
            Identity,
            "The listener's ARN; provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::reference(
            "lb_arn",
            ReplaceOnChange,
            "lb",
            "Its load balancer (deleting the load balancer deletes its listeners in AWS)",
        ),
        Column::new(
            "port",
            Desired,
            "The port it listens on; changed in place (ModifyListener), like every column but lb_arn; observed by sync",
        ),
        Column::new("protocol", Desired, "HTTP, HTTPS, TCP, TLS, UDP or TCP_UDP"),
        Column::new(
            "ssl_policy",
            Desired,
            "The TLS policy of an HTTPS or TLS listener",
        ),
        Column::new(
            "certificate_arn",
            Desired,
            "The default certificate of an HTTPS or TLS listener: an ARN, as certificates may live outside infrasql",
        ),
        Column::reference(
            FORWARD,
            Desired,
            "lb_target_group",
            "Default action: forward to this target group (or use the fixed_response_* columns)",
        ),
        Column::new(
            "fixed_response_status_code",
            Desired,
            "Default action: answer with this HTTP status (2XX, 4XX or 5XX)",
        ),
        Column::new(
            "fixed_response_content_type",
            Desired,
            "The fixed response's content type (text/plain, text/html, application/json...)",
        ),
        Column::new("fixed_response_body", Desired, "The fixed response's body"),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (DescribeTags, one call per 20 listeners)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: Scope::Regional,
    natural_key: &["lb_arn", "port"],
    stateful: None,
};

pub struct ListenerType {
    clients: Arc<Clients>,
}

impl ListenerType {
    pub fn new(clients: Arc<Clients>) -> Self {
        ListenerType { clients }
    }
}

/// The row's columns from AWS's listener; `None` when its default action
/// has no columns (see `action`).
fn props(l: &Listener, region: &str) -> Option<Props> {
    let mut p = Props::new();
    if !action::put_actions(&mut p, l.default_actions(), FORWARD) {
        return None;
    }
    p.insert("listener_arn".into(), opt_str(l.listener_arn()));
    p.insert("region".into(), json!(region));
    p.insert("lb_arn".into(), opt_str(l.load_balancer_arn()));
    p.insert("port".into(), l.port().map_or(json!(null), |v| json!(v)));
    p.insert("protocol".into(), opt_str(l.protocol().map(|x| x.as_str())));
    p.insert("ssl_policy".into(), opt_str(l.ssl_policy()));
    p.insert(
        "certificate_arn".into(),
        opt_str(l.certificates().first().and_then(|c| c.certificate_arn())),
    );
    Some(p)
}

fn certificates(p: &Props) -> Option<Vec<Certificate>> {
    p.str("certificate_arn")
        .map(|arn| vec![Certificate::builder().certificate_arn(arn).build()])
}

fn port(p: &Props) -> Option<i32> {
    p.i64("port").and_then(|v| i32::try_from(v).ok())
}

/// Every listener of every load balancer in the client's region.
pub(crate) async fn all(elb: &Client) -> Result<Vec<Listener>, ProviderError> {
    let lbs = all_pages(
        elb.describe_load_balancers()
            .into_paginator()
            .items()
            .send(),
    )
    .await?;
    let arns: Vec<String> = lbs
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_owned))
        .collect();
    let per_lb: Vec<Vec<Listener>> = stream::iter(arns)
        .map(|arn| async move {
            all_pages(
                elb.describe_listeners()
                    .load_balancer_arn(arn)
                    .into_paginator()
                    .items()
                    .send(),
            )
            .await
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok(per_lb.into_iter().flatten().collect())
}

async fn describe(elb: &Client, arn: &str) -> Result<Listener, ProviderError> {
    described(
        elb.describe_listeners().listener_arns(arn).send().await,
        |out| out.listeners().first().cloned(),
        || not_found(&SCHEMA, "ListenerNotFound", arn),
    )
}

/// The listener's row, or an error when AWS holds an action no column can.
fn row(l: &Listener, region: &str) -> Result<Props, ProviderError> {
    props(l, region).ok_or_else(|| {
        ProviderError::invalid(
            "the listener's default action is neither one forward nor a fixed response",
        )
    })
}

#[async_trait]
impl Resource for ListenerType {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// DescribeLoadBalancers (all pages), one DescribeListeners per load
    /// balancer (concurrently), DescribeTags per 20 listeners.
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let elb = client(&self.clients, region).await;
        let listeners: Vec<(String, Props)> = all(&elb)
            .await?
            .iter()
            .filter_map(|l| Some((l.listener_arn()?.to_owned(), props(l, region)?)))
            .collect();
        let arns: Vec<String> = listeners.iter().map(|(a, _)| a.clone()).collect();
        let found = tags::describe(&elb, &arns).await?;
        Ok(listeners
            .into_iter()
            .map(|(arn, mut p)| {
                tags::put(&mut p, &found, &arn);
                p
            })
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let sent = tags::for_create(desired, ctx);
        let elb = client(&self.clients, &ctx.region).await;
        let l = elb
            .create_listener()
            .load_balancer_arn(desired.req_str("lb_arn")?)
            .set_port(port(desired))
            .set_protocol(desired.str("protocol").map(ProtocolEnum::from))
            .set_ssl_policy(desired.str("ssl_policy").map(str::to_owned))
            .set_certificates(certificates(desired))
            .set_default_actions(Some(action::actions(desired, FORWARD)?))
            .set_tags(Some(sent.clone()))
            .send()
            .await
            .map_err(classify)?
            .listeners()
            .first()
            .cloned()
            .ok_or_else(|| missing_id("CreateListener", "listener"))?;
        let mut p = row(&l, &ctx.region)?;
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
        let elb = client(&self.clients, &ctx.region).await;
        if tags::changed(before, after) {
            tags::update(&elb, id, before, after).await?;
        }
        let mut action_cols = vec![FORWARD];
        action_cols.extend(FIXED);
        let l = if changed(
            before,
            after,
            &["port", "protocol", "ssl_policy", "certificate_arn"],
        ) || changed(before, after, &action_cols)
        {
            elb.modify_listener()
                .listener_arn(id)
                .set_port(port(after))
                .set_protocol(after.str("protocol").map(ProtocolEnum::from))
                .set_ssl_policy(after.str("ssl_policy").map(str::to_owned))
                .set_certificates(certificates(after))
                .set_default_actions(Some(action::actions(after, FORWARD)?))
                .send()
                .await
                .map_err(classify)?
                .listeners()
                .first()
                .cloned()
                .ok_or_else(|| missing_id("ModifyListener", "listener"))?
        } else {
            describe(&elb, id).await?
        };
        let mut p = row(&l, &ctx.region)?;
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
        deleted(elb.delete_listener().listener_arn(id).send().await)
    }
}
