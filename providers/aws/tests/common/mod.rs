//! A real moto server for provider tests: real SDK, real HTTP, real SigV4.
#![allow(dead_code)]

use std::sync::Arc;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use infrasql_aws::{AwsSettings, Clients};

/// moto's server: the shared harness (`testsupport/moto`; `url`, `reset()`
/// and the kill on drop are its own), plus the provider's clients on it,
/// built here, where `infrasql-aws` is at hand.
pub struct Moto(infrasql_moto::Moto);

impl Moto {
    pub fn start() -> Moto {
        Moto(infrasql_moto::Moto::start())
    }

    /// moto with settings, e.g. `MOTO_ENABLE_AMI_VALIDATION=true`.
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        Moto(infrasql_moto::Moto::start_with_env(env))
    }

    pub async fn clients(&self) -> Arc<Clients> {
        Arc::new(
            Clients::new(&AwsSettings {
                endpoint_url: Some(self.url.clone()),
                static_credentials: Some(("testing".into(), "testing".into())),
                region: Some("us-east-1".into()),
                max_concurrency: None,
                limiter: Default::default(),
                timeouts: Default::default(),
            })
            .await,
        )
    }

    /// A raw SDK client, to check what really exists independently of the provider.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        self.clients().await.ec2("us-east-1").await.client.clone()
    }

    /// A raw RDS client on the same endpoint.
    pub async fn rds(&self) -> infrasql_aws::aws_sdk_rds::Client {
        self.clients().await.rds("us-east-1").await.client.clone()
    }
}

impl std::ops::Deref for Moto {
    type Target = infrasql_moto::Moto;
    fn deref(&self) -> &infrasql_moto::Moto {
        &self.0
    }
}

/// The AWS error code of a failed SDK call (`InvalidVpcID.NotFound`...);
/// panics when the call succeeded or failed without one (a refused
/// connection, a timeout), so a test asserting a code fails for those.
pub fn aws_error_code<T: std::fmt::Debug, E, R>(sent: Result<T, SdkError<E, R>>) -> String
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let e = sent.expect_err("the call should have failed");
    e.code()
        .unwrap_or_else(|| panic!("an error without an AWS code: {e:?}"))
        .to_owned()
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
