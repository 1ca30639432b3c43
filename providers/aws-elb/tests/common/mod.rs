//! A real moto server for the ELBv2 provider's tests: real SDK, real HTTP.
#![allow(dead_code)]

use std::sync::Arc;

use infrasql_aws::{AwsSettings, Clients};

pub struct Moto(pub infrasql_moto::Moto);

impl Moto {
    pub fn start() -> Moto {
        Moto(infrasql_moto::Moto::start())
    }

    pub async fn clients(&self) -> Arc<Clients> {
        Arc::new(
            Clients::new(&AwsSettings {
                endpoint_url: Some(self.0.url.clone()),
                static_credentials: Some(("testing".into(), "testing".into())),
                region: Some("us-east-1".into()),
                max_concurrency: None,
                limiter: Default::default(),
                timeouts: Default::default(),
            })
            .await,
        )
    }

    /// A raw ELBv2 client, to check what really exists.
    pub async fn elb(&self) -> infrasql_aws_elb::aws_sdk_elasticloadbalancingv2::Client {
        let clients = self.clients().await;
        let client = infrasql_aws_elb::client(&clients, "us-east-1").await;
        client.client.clone()
    }

    pub async fn ec2(&self) -> infrasql_aws::aws_sdk_ec2::Client {
        self.clients().await.ec2("us-east-1").await.client.clone()
    }

    /// A VPC with subnets in us-east-1a and us-east-1b, and two security
    /// groups: (vpc, [subnets], [groups]).
    pub async fn network(&self) -> (String, Vec<String>, Vec<String>) {
        let ec2 = self.ec2().await;
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.1.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc
            .unwrap()
            .vpc_id
            .unwrap();
        let mut subnets = Vec::new();
        for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
            subnets.push(
                ec2.create_subnet()
                    .vpc_id(&vpc)
                    .cidr_block(format!("10.1.{i}.0/24"))
                    .availability_zone(*zone)
                    .send()
                    .await
                    .unwrap()
                    .subnet
                    .unwrap()
                    .subnet_id
                    .unwrap(),
            );
        }
        subnets.sort();
        let mut groups = Vec::new();
        for name in ["g1", "g2"] {
            groups.push(
                ec2.create_security_group()
                    .group_name(name)
                    .description(name)
                    .vpc_id(&vpc)
                    .send()
                    .await
                    .unwrap()
                    .group_id
                    .unwrap(),
            );
        }
        groups.sort();
        (vpc, subnets, groups)
    }
}

pub fn ctx() -> infrasql_provider::ApplyContext {
    infrasql_provider::ApplyContext {
        region: "us-east-1".into(),
        apply_id: "test-apply".into(),
    }
}

pub fn props(v: serde_json::Value) -> infrasql_provider::Props {
    v.as_object().unwrap().clone()
}
