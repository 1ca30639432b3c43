//! `aws.db_parameter`: one parameter the user set in a DB parameter group.
//!
//! Only parameters set by the user are rows (DescribeDBParameters with
//! `Source=user`): a group has hundreds of engine defaults, and a row per
//! default would make every group a wall of rows nobody wrote. So a row is
//! "this parameter differs from the default": INSERT or UPDATE is
//! ModifyDBParameterGroup with that one parameter, DELETE is
//! ResetDBParameterGroup for it (back to the engine default).
//!
//! The id is `<group name>/<parameter name>` (neither can hold a `/`),
//! provisional until created like any AWS id: AWS has no id for a
//! parameter, and a group's name cannot change, so the pair is stable.
//! A reset in a group that is already gone is done: the group is deleted in
//! the same transaction (its rows go with it by ON DELETE CASCADE, and the
//! plan deletes children before their parent), and nothing is left to
//! reset. Parameters carry no tags, so recovery finds a parameter an
//! interrupted apply set only through the apply's journal.
//!
//! moto 5.2.1 does not implement ResetDBParameterGroup (it answers 500):
//! tests against moto stand in for AWS's answer to that one call (see
//! `providers/aws/tests/db_groups.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, Parameter};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, ErrorClass, Listed, Props, PropsExt, ProviderError,
    ReplaceOrder, Resource, ResourceSchema,
};
use serde_json::json;

use crate::ec2::changed;
use crate::sdk::{all_pages, classify, deleted, if_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "db_parameter",
    display: "DB parameter",
    doc: "One parameter you set in a DB parameter group, one row each (a parameter without a row has the engine's default). INSERT or UPDATE sets it (ModifyDBParameterGroup), DELETE resets it to the default (ResetDBParameterGroup).",
    columns: &[
        Column::new(
            "parameter_id",
            Identity,
            "<group name>/<parameter name>; provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region (the group's)"),
        Column::reference(
            "db_parameter_group_name",
            ReplaceOnChange,
            "db_parameter_group",
            "The DB parameter group it is set in",
        ),
        Column::new(
            "parameter_name",
            ReplaceOnChange,
            "The engine parameter's name (work_mem, max_connections...)",
        ),
        Column::new(
            "parameter_value",
            Desired,
            "Its value, as text, as AWS takes it",
        ),
        Column::new(
            "apply_method",
            Desired,
            "immediate (dynamic parameters) or pending-reboot (static ones: they take effect at the instance's next reboot)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // The id changes with the group or the name, so the new parameter never
    // collides with the old one: set the new one, then reset the old one.
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["db_parameter_group_name", "parameter_name"],
    stateful: None,
};

pub struct DbParameterType {
    clients: Arc<Clients>,
}

impl DbParameterType {
    pub fn new(clients: Arc<Clients>) -> Self {
        DbParameterType { clients }
    }
}

/// The id of parameter `name` in group `group`.
pub fn parameter_id(group: &str, name: &str) -> String {
    format!("{group}/{name}")
}

fn props(group: &str, p: &Parameter, region: &str) -> Option<Props> {
    let name = p.parameter_name()?;
    let mut out = Props::new();
    out.insert("parameter_id".into(), json!(parameter_id(group, name)));
    out.insert("region".into(), json!(region));
    out.insert("db_parameter_group_name".into(), json!(group));
    out.insert("parameter_name".into(), json!(name));
    out.insert("parameter_value".into(), json!(p.parameter_value()));
    // AWS reports how a user parameter was last applied; where it does
    // not, the column's default is the honest reading.
    out.insert(
        "apply_method".into(),
        json!(p.apply_method().map_or("immediate", |m| m.as_str())),
    );
    Some(out)
}

/// The one parameter a row asks for, as AWS takes it.
fn parameter(p: &Props, with_value: bool) -> Result<Parameter, ProviderError> {
    let mut b = Parameter::builder()
        .parameter_name(p.req_str("parameter_name")?)
        .apply_method(ApplyMethod::from(
            p.str("apply_method").unwrap_or("immediate"),
        ));
    if with_value {
        b = b.parameter_value(p.req_str("parameter_value")?);
    }
    Ok(b.build())
}

/// ModifyDBParameterGroup with the row's parameter; the row as set.
async fn set(rds: &aws_sdk_rds::Client, region: &str, p: &Props) -> Result<Props, ProviderError> {
    let group = p.req_str("db_parameter_group_name")?;
    let param = parameter(p, true)?;
    rds.modify_db_parameter_group()
        .db_parameter_group_name(group)
        .parameters(param.clone())
        .send()
        .await
        .map_err(classify)?;
    // AWS answers with the group's name only; what it accepted is what
    // was sent, and sync reads it back.
    props(group, &param, region).ok_or_else(|| ProviderError::invalid("parameter_name is required"))
}

#[async_trait]
impl Resource for DbParameterType {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// For every group in the region, its user-set parameters, all pages:
    /// one DescribeDBParameterGroups page per 100 groups plus at least one
    /// DescribeDBParameters per group the user can modify. A group deleted
    /// between the two calls has no parameters left.
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let rds = self.clients.rds(region).await;
        let groups = all_pages(
            rds.describe_db_parameter_groups()
                .into_paginator()
                .items()
                .send(),
        )
        .await?;
        let mut out = Listed::new();
        // AWS's own `default.*` groups cannot be modified, so they hold no
        // user parameters: no call for them (user names cannot contain a
        // period).
        let modifiable = groups
            .iter()
            .filter_map(|g| g.db_parameter_group_name())
            .filter(|n| !n.starts_with("default."));
        for name in modifiable {
            let params = if_found(
                all_pages(
                    rds.describe_db_parameters()
                        .db_parameter_group_name(name)
                        .source("user")
                        .into_paginator()
                        .items()
                        .send(),
                )
                .await,
            )?
            .unwrap_or_default();
            out.extend(params.iter().filter_map(|p| props(name, p, region)));
        }
        Ok(out)
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let rds = self.clients.rds(&ctx.region).await;
        set(&rds, &ctx.region, desired).await
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        _id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let rds = self.clients.rds(&ctx.region).await;
        if changed(before, after, &["parameter_value", "apply_method"]) {
            return set(&rds, &ctx.region, after).await;
        }
        let group = after.req_str("db_parameter_group_name")?;
        props(group, &parameter(after, true)?, &ctx.region)
            .ok_or_else(|| ProviderError::invalid("parameter_name is required"))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let (group, name) = match (
            current.str("db_parameter_group_name"),
            current.str("parameter_name"),
        ) {
            (Some(g), Some(n)) => (g.to_owned(), n.to_owned()),
            _ => id
                .split_once('/')
                .map(|(g, n)| (g.to_owned(), n.to_owned()))
                .ok_or_else(|| {
                    ProviderError::new(
                        ErrorClass::Invalid,
                        "InvalidParameterValue",
                        format!("DB parameter id {id} is not <group>/<parameter>"),
                    )
                })?,
        };
        let mut p = current.clone();
        p.insert("parameter_name".into(), json!(name));
        let rds = self.clients.rds(&ctx.region).await;
        // The group gone (DBParameterGroupNotFound) is success: a parameter
        // of a deleted group has nothing left to reset.
        deleted(
            rds.reset_db_parameter_group()
                .db_parameter_group_name(group)
                .parameters(parameter(&p, false)?)
                .send()
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_is_named_by_its_group_and_name() {
        let p = Parameter::builder()
            .parameter_name("work_mem")
            .parameter_value("4096")
            .apply_method(ApplyMethod::PendingReboot)
            .build();
        let row = props("app", &p, "us-east-1").unwrap();
        assert_eq!(row["parameter_id"], json!("app/work_mem"));
        assert_eq!(row["apply_method"], json!("pending-reboot"));
        assert_eq!(row["parameter_value"], json!("4096"));
    }

    #[test]
    fn a_parameter_aws_reports_without_apply_method_reads_as_immediate() {
        let p = Parameter::builder().parameter_name("x").build();
        let row = props("g", &p, "us-east-1").unwrap();
        assert_eq!(row["apply_method"], json!("immediate"));
        assert_eq!(row["parameter_value"], serde_json::Value::Null);
    }
}
