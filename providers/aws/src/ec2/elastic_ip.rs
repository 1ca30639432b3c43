//! `aws.elastic_ip`: an Elastic IP address allocated to the account.
//!
//! Only the name and tags change in place. The association (instance or
//! network interface) is reported, not managed here. Deleting a row
//! disassociates the address if needed and releases it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::json;

use super::{changed, opt_str, present, put_tags, tag_spec_once, token_filter, update_tags};
use crate::create_once::{create_once, create_token, no_sdk_retry};
use crate::sdk::{classify, deleted, described, if_found, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "elastic_ip",
    display: "Elastic IP address",
    doc: "A static public IPv4 address allocated to the account.",
    columns: &[
        Column::new(
            "allocation_id",
            Identity,
            "Allocation id (eipalloc-...); provisional until allocated",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::new("domain", ReplaceOnChange, "vpc (EC2-Classic is retired)"),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new("public_ip", CloudAssigned, "The public IPv4 address"),
        Column::new(
            "public_ipv4_pool",
            CloudAssigned,
            "The address pool it came from (amazon for Amazon's own)",
        ),
        Column::new(
            "network_border_group",
            CloudAssigned,
            "Where AWS advertises the address (usually the region)",
        ),
        Column::new(
            "association_id",
            CloudAssigned,
            "The association with an instance or network interface",
        ),
        Column::new("instance_id", CloudAssigned, "The associated instance"),
        Column::new(
            "network_interface_id",
            CloudAssigned,
            "The associated network interface",
        ),
        Column::new(
            "private_ip_address",
            CloudAssigned,
            "The private address it maps to",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: Some(
        "its public IP address (a new allocation gets another, and the old one cannot be had back)",
    ),
};

pub struct ElasticIp {
    clients: Arc<Clients>,
}

impl ElasticIp {
    pub fn new(clients: Arc<Clients>) -> Self {
        ElasticIp { clients }
    }
}

/// Empty strings are absent (`present`): moto reports an unassociated
/// address with empty `instanceId` and `networkInterfaceId`.
fn props(a: &Address, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("allocation_id".into(), present(a.allocation_id()));
    p.insert("region".into(), json!(region));
    p.insert("domain".into(), opt_str(a.domain().map(|d| d.as_str())));
    p.insert("public_ip".into(), present(a.public_ip()));
    p.insert("public_ipv4_pool".into(), present(a.public_ipv4_pool()));
    p.insert(
        "network_border_group".into(),
        present(a.network_border_group()),
    );
    p.insert("association_id".into(), present(a.association_id()));
    p.insert("instance_id".into(), present(a.instance_id()));
    p.insert(
        "network_interface_id".into(),
        present(a.network_interface_id()),
    );
    p.insert("private_ip_address".into(), present(a.private_ip_address()));
    put_tags(&mut p, a.tags());
    p
}

impl ElasticIp {
    async fn describe(&self, region: &str, id: &str) -> Result<Address, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        described(
            ec2.describe_addresses().allocation_ids(id).send().await,
            |out| out.addresses().first().cloned(),
            || not_found(&SCHEMA, "InvalidAllocationID.NotFound", id),
        )
    }
}

#[async_trait]
impl Resource for ElasticIp {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        // DescribeAddresses does not page: it answers with every address.
        let ec2 = self.clients.ec2(region).await;
        let out = ec2.describe_addresses().send().await.map_err(classify)?;
        Ok(out
            .addresses()
            .iter()
            // Addresses without an allocation id are EC2-Classic ones,
            // which cannot be managed through this table.
            .filter(|a| a.allocation_id().is_some())
            .map(|a| props(a, region))
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let domain = desired.str("domain").unwrap_or("vpc");
        if domain != "vpc" {
            return Err(ProviderError::invalid(format!(
                "domain must be vpc, not {domain}"
            )));
        }
        let token = &create_token(ctx);
        let tags = &tag_spec_once(ResourceType::ElasticIp, desired, ctx, token);
        let ec2 = &self.clients.ec2(&ctx.region).await.client;
        // Sent once in effect: a resend after a lost answer would allocate a
        // second address (AllocateAddress takes no client token).
        let address = create_once(
            move || async move {
                let out = ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(tags.clone())
                    .customize()
                    .config_override(no_sdk_retry())
                    .send()
                    .await
                    .map_err(classify)?;
                let id = out
                    .allocation_id()
                    .ok_or_else(|| missing_id("AllocateAddress", "allocation id"))?;
                // The answer holds every column a new address has (it is
                // associated with nothing yet); the tags are those sent.
                Ok(Address::builder()
                    .allocation_id(id)
                    .set_domain(out.domain().cloned())
                    .set_public_ip(out.public_ip().map(str::to_owned))
                    .set_public_ipv4_pool(out.public_ipv4_pool().map(str::to_owned))
                    .set_network_border_group(out.network_border_group().map(str::to_owned))
                    .set_tags(tags.tags.clone())
                    .build())
            },
            move || async move {
                let out = ec2
                    .describe_addresses()
                    .filters(token_filter(token))
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(out.addresses().first().cloned())
            },
        )
        .await?;
        Ok(props(&address, &ctx.region))
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            let ec2 = self.clients.ec2(&ctx.region).await;
            update_tags(&ec2, id, before, after).await?;
        }
        Ok(props(&self.describe(&ctx.region, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        // AWS refuses to release an associated address (InvalidIPAddress.InUse):
        // giving the address up means taking it off whatever holds it.
        let Some(address) = if_found(self.describe(&ctx.region, id).await)? else {
            return Ok(());
        };
        if let Some(association) = address.association_id().filter(|v| !v.is_empty()) {
            let ec2 = self.clients.ec2(&ctx.region).await;
            deleted(
                ec2.disassociate_address()
                    .association_id(association)
                    .send()
                    .await,
            )?;
        }
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(ec2.release_address().allocation_id(id).send().await)
    }
}
