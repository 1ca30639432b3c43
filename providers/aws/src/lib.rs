//! The AWS provider: one module per resource type, under `ec2/` (aws-sdk-ec2)
//! and `rds/` (aws-sdk-rds); [`sdk`] holds what both do with an SDK's answers.
//!
//! Credentials and region come from `aws-config`'s standard chain (env,
//! profile, SSO, IMDS...). infrasql never stores credentials. One SDK client
//! per region; the SDK's standard retry with backoff handles throttling; at
//! most `max_concurrency` operations run at once per region.

pub mod ec2;
pub mod rds;
mod request_ids;
pub(crate) mod sdk;
mod tags;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use infrasql_provider::Resource;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// An AWS-compatible endpoint (moto, LocalStack) instead of AWS.
    pub endpoint_url: Option<String>,
    /// Fixed credentials, for the local playground only.
    pub static_credentials: Option<(String, String)>,
    /// Overrides the chain's region as the default for new rows.
    pub region: Option<String>,
    /// Operations in flight per region (default 16).
    pub max_concurrency: Option<usize>,
}

struct Regional {
    ec2: aws_sdk_ec2::Client,
    rds: aws_sdk_rds::Client,
    limit: Arc<Semaphore>,
}

/// Shared SDK clients, one per region.
pub struct Clients {
    sdk: SdkConfig,
    max_concurrency: usize,
    regions: Mutex<HashMap<String, Arc<Regional>>>,
    calls: Arc<AtomicU64>,
}

/// Counts every HTTP request the SDK sends, retries included: into the
/// global count ([`Clients::api_calls`]) and, for the sync loop's per-task
/// count, through [`infrasql_provider::calls::note_call`].
#[derive(Debug)]
struct CountCalls(Arc<AtomicU64>);

// Both SDKs re-export the one smithy interceptor trait, so one impl serves both.
impl aws_sdk_ec2::config::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "infrasql-count-calls"
    }
    // Before transmit, not before the operation: it runs once per attempt.
    fn read_before_transmit(
        &self,
        _ctx: &aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        infrasql_provider::calls::note_call();
        Ok(())
    }
}

/// An SDK client plus a concurrency permit for one operation.
pub struct Permitted<C> {
    pub client: C,
    _permit: OwnedSemaphorePermit,
}

impl<C> std::ops::Deref for Permitted<C> {
    type Target = C;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

pub type Ec2 = Permitted<aws_sdk_ec2::Client>;
pub type Rds = Permitted<aws_sdk_rds::Client>;

impl Clients {
    pub async fn new(settings: &AwsSettings) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((key, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::from_keys(
                key, secret, None,
            ));
        }
        if let Some(r) = &settings.region {
            loader = loader.region(Region::new(r.clone()));
        }
        Clients {
            sdk: loader.load().await,
            max_concurrency: settings.max_concurrency.unwrap_or(16),
            regions: Mutex::new(HashMap::new()),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// AWS API requests sent so far by every client.
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The region new rows get when they do not name one.
    pub fn default_region(&self) -> String {
        self.sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into())
    }

    fn regional(&self, region: &str) -> Arc<Regional> {
        let mut map = self.regions.lock().expect("client map lock poisoned");
        map.entry(region.to_owned())
            .or_insert_with(|| {
                let conf = aws_sdk_ec2::config::Builder::from(&self.sdk)
                    .region(Region::new(region.to_owned()))
                    .interceptor(CountCalls(self.calls.clone()))
                    .interceptor(request_ids::RecordRequestIds)
                    .build();
                let rds = aws_sdk_rds::config::Builder::from(&self.sdk)
                    .region(Region::new(region.to_owned()))
                    .interceptor(CountCalls(self.calls.clone()))
                    .interceptor(request_ids::RecordRequestIds)
                    .build();
                Arc::new(Regional {
                    ec2: aws_sdk_ec2::Client::from_conf(conf),
                    rds: aws_sdk_rds::Client::from_conf(rds),
                    limit: Arc::new(Semaphore::new(self.max_concurrency)),
                })
            })
            .clone()
    }

    /// The EC2 client for `region`, once a concurrency slot is free.
    pub async fn ec2(&self, region: &str) -> Ec2 {
        let r = self.regional(region);
        Self::permitted(&r, r.ec2.clone()).await
    }

    /// The RDS client for `region`, once a concurrency slot is free (the
    /// slots of a region are shared by both services).
    pub async fn rds(&self, region: &str) -> Rds {
        let r = self.regional(region);
        Self::permitted(&r, r.rds.clone()).await
    }

    async fn permitted<C>(r: &Regional, client: C) -> Permitted<C> {
        let permit = r
            .limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        Permitted {
            client,
            _permit: permit,
        }
    }
}

/// Every AWS resource type infrasql manages.
pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    let mut all = ec2::resources(clients.clone());
    all.extend(rds::resources(clients));
    all
}
pub use aws_sdk_ec2;
pub use aws_sdk_rds;
