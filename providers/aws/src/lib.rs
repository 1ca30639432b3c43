//! The AWS provider's base and its EC2 and RDS types: one module per
//! resource type, under `ec2/` (aws-sdk-ec2) and `rds/` (aws-sdk-rds).
//! [`sdk`], [`tags`] and [`fields`] hold what every service does with an
//! SDK's answers; the other services live in their own crates
//! (`providers/aws-iam`, `aws-s3`, ...) on these helpers and on
//! [`Clients::service`], so each builds and rebuilds on its own.
//!
//! Credentials and region come from `aws-config`'s standard chain (env,
//! profile, SSO, IMDS...). infrasql never stores credentials. One SDK client
//! per (service, region); the SDK's standard retry with backoff handles
//! throttling; the operations in flight per (service, region) follow an
//! adaptive limit under `max_concurrency` ([`limiter`]).

pub mod create_once;
pub mod ec2;
pub mod fields;
pub mod limiter;
pub mod policy_doc;
pub mod rds;
mod request_ids;
pub mod sdk;
pub mod tags;
mod timeouts;

pub use limiter::{LimitView, LimiterMode};
pub use timeouts::AwsTimeouts;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use infrasql_provider::metrics::{self, CallOutcome};
use infrasql_provider::Resource;
use limiter::{CallStart, Limiter};

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// An AWS-compatible endpoint (moto, LocalStack) instead of AWS.
    pub endpoint_url: Option<String>,
    /// Fixed credentials, for the local playground only.
    pub static_credentials: Option<(String, String)>,
    /// Overrides the chain's region as the default for new rows.
    pub region: Option<String>,
    /// The most operations in flight per (service, region) (default 16).
    pub max_concurrency: Option<usize>,
    /// Whether that number is a ceiling to adapt under, or the limit.
    pub limiter: LimiterMode,
    /// How long a call may take (`--aws-timeouts`).
    pub timeouts: AwsTimeouts,
}

/// Shared SDK clients: one per (service, region), built on first use.
pub struct Clients {
    sdk: SdkConfig,
    max_concurrency: usize,
    limiter: LimiterMode,
    /// Operations in flight per (service name, region); in fixed mode the
    /// services of a region share one.
    limits: Mutex<HashMap<(String, String), Arc<Limiter>>>,
    /// Each service's client per region, keyed by the client's type.
    services: Mutex<HashMap<(TypeId, String), Box<dyn Any + Send + Sync>>>,
    calls: Arc<AtomicU64>,
}

pub use infrasql_provider::GLOBAL_REGION;

/// The region global services are signed for and reached in.
const GLOBAL_SERVICE_REGION: &str = "us-east-1";

/// Counts every HTTP request the SDK sends, retries included: into the
/// global count ([`Clients::api_calls`]) and, for the sync loop's per-task
/// count, through [`infrasql_provider::calls::note_call`]. It also times
/// each answer and spots AWS's throttling for the (service, region)'s
/// concurrency limit: part of this interceptor, so that no service crate
/// can build a client the limiter does not see.
///
/// Each attempt's outcome (answered, throttled, no answer) goes to
/// [`infrasql_provider::metrics`] for `/metrics`, by the client's service
/// and region, which a shared fixed-mode limiter does not know.
pub struct CountCalls {
    calls: Arc<AtomicU64>,
    limiter: Arc<Limiter>,
    service: &'static str,
    region: String,
}

/// The SDK's name of the operation an interceptor hook runs for.
fn operation_name(cfg: &aws_sdk_ec2::config::ConfigBag) -> &str {
    cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
        .map_or("", |m| m.name())
}

impl std::fmt::Debug for CountCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountCalls")
    }
}

// Every SDK re-exports the one smithy interceptor trait, so one impl serves all.
impl aws_sdk_ec2::config::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "infrasql-count-calls"
    }
    // Before transmit, not before the operation: it runs once per attempt.
    fn read_before_transmit(
        &self,
        _ctx: &aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_ec2::config::RuntimeComponents,
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        infrasql_provider::calls::note_call();
        cfg.interceptor_state().store_put(CallStart {
            at: Instant::now(),
            epoch: self.limiter.epoch(),
        });
        Ok(())
    }

    // Only an attempt that got an answer is a sample: a timeout or a broken
    // connection says nothing about the endpoint's latency under load.
    fn read_after_deserialization(
        &self,
        ctx: &aws_sdk_ec2::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _rc: &aws_sdk_ec2::config::RuntimeComponents,
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(start) = cfg.load::<CallStart>().copied() else {
            return Ok(());
        };
        let r = ctx.response();
        let body = r.body().bytes().unwrap_or_default();
        let throttled = limiter::is_throttle(
            r.status().as_u16(),
            r.headers().get("x-amzn-errortype"),
            body,
        );
        let operation = operation_name(cfg);
        self.limiter
            .observe(operation, start.at.elapsed(), throttled, start.epoch);
        let outcome = CallOutcome::of_answer(r.status().as_u16(), throttled);
        metrics::note_outcome(self.service, &self.region, operation, outcome);
        // Answered: `read_after_attempt` must not count it again.
        cfg.interceptor_state().unset::<CallStart>();
        Ok(())
    }

    // Runs after every attempt, answered or not: one that was sent and
    // not counted above still has its start. Without an answer it is a
    // timeout or a broken connection; with one, an answer the SDK stopped
    // reading before deserialization (counted by its status alone).
    fn read_after_attempt(
        &self,
        ctx: &aws_sdk_ec2::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _rc: &aws_sdk_ec2::config::RuntimeComponents,
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if cfg.load::<CallStart>().is_some() {
            let outcome = ctx.response().map_or(CallOutcome::NoAnswer, |r| {
                CallOutcome::of_answer(r.status().as_u16(), false)
            });
            let operation = operation_name(cfg);
            metrics::note_outcome(self.service, &self.region, operation, outcome);
            cfg.interceptor_state().unset::<CallStart>();
        }
        Ok(())
    }
}

pub use request_ids::RecordRequestIds;

/// What a service crate needs to build its SDK client for one region:
/// the shared SDK settings, the region to sign for, and the interceptors
/// every client carries (call counting, request ids for the history).
pub struct ClientSetup<'a> {
    pub sdk: &'a SdkConfig,
    pub region: Region,
    pub count_calls: CountCalls,
    pub request_ids: RecordRequestIds,
}

/// An SDK client plus a concurrency permit for one operation.
pub struct Permitted<C> {
    pub client: C,
    _permit: limiter::Permit,
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
        // Set on the shared settings, so every service's client has them.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(settings.timeouts.sdk_config());
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
            limiter: settings.limiter,
            limits: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
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

    /// The current concurrency limit of every (service, region) used so far.
    pub fn limits(&self) -> Vec<LimitView> {
        let mut all: Vec<LimitView> = self
            .limits
            .lock()
            .expect("limit map lock poisoned")
            .iter()
            .map(|((service, region), l)| LimitView {
                service: service.clone(),
                region: region.clone(),
                ..l.view()
            })
            .collect();
        all.sort_by(|a, b| (&a.service, &a.region).cmp(&(&b.service, &b.region)));
        all
    }

    /// The limiter of one service's calls in `region`. In fixed mode every
    /// service of a region shares the first one made there, as before
    /// issue 15.
    fn limiter(&self, service: &str, region: &str) -> Arc<Limiter> {
        let mut map = self.limits.lock().expect("limit map lock poisoned");
        if let Some(l) = map.get(&(service.to_owned(), region.to_owned())) {
            return l.clone();
        }
        let shared = (self.limiter == LimiterMode::Fixed)
            .then(|| {
                map.iter()
                    .find(|((_, r), _)| r == region)
                    .map(|(_, l)| l.clone())
            })
            .flatten();
        let l = shared.unwrap_or_else(|| {
            Arc::new(Limiter::new(
                self.limiter,
                self.max_concurrency,
                service,
                region,
            ))
        });
        map.insert((service.to_owned(), region.to_owned()), l.clone());
        // A shared fixed limiter is this pair's limit too.
        metrics::set_limit(service, region, l.view().limit);
        l
    }

    /// The client of one service for `region` (built by `make` on first
    /// use), once a concurrency slot of its limiter is free. A global
    /// service's rows say [`GLOBAL_REGION`]; its client is made for
    /// us-east-1, where AWS serves IAM and Route53.
    pub async fn service<C>(
        &self,
        region: &str,
        make: impl FnOnce(ClientSetup<'_>) -> C,
    ) -> Permitted<C>
    where
        C: Clone + Send + Sync + 'static,
    {
        let limiter = self.limiter(service_name::<C>(), region);
        let client = {
            let mut map = self.services.lock().expect("client map lock poisoned");
            map.entry((TypeId::of::<C>(), region.to_owned()))
                .or_insert_with(|| {
                    let signing = match region {
                        GLOBAL_REGION => GLOBAL_SERVICE_REGION,
                        r => r,
                    };
                    Box::new(make(ClientSetup {
                        sdk: &self.sdk,
                        region: Region::new(signing.to_owned()),
                        count_calls: CountCalls {
                            calls: self.calls.clone(),
                            limiter: limiter.clone(),
                            service: service_name::<C>(),
                            region: region.to_owned(),
                        },
                        request_ids: RecordRequestIds,
                    }))
                })
                .downcast_ref::<C>()
                .expect("keyed by the client's type")
                .clone()
        };
        Permitted {
            client,
            _permit: limiter.acquire().await,
        }
    }

    /// The EC2 client for `region`, once a concurrency slot is free.
    pub async fn ec2(&self, region: &str) -> Ec2 {
        self.service(region, |s| {
            aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(s.sdk)
                    .region(s.region)
                    .interceptor(s.count_calls)
                    .interceptor(s.request_ids)
                    .build(),
            )
        })
        .await
    }

    /// The RDS client for `region`, once a concurrency slot is free.
    pub async fn rds(&self, region: &str) -> Rds {
        self.service(region, |s| {
            aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(s.sdk)
                    .region(s.region)
                    .interceptor(s.count_calls)
                    .interceptor(s.request_ids)
                    .build(),
            )
        })
        .await
    }
}

/// The SDK crate's service name from its client's type
/// (`aws_sdk_ec2::client::Client` → `ec2`).
fn service_name<C>() -> &'static str {
    let path = std::any::type_name::<C>();
    let krate = path.split("::").next().unwrap_or(path);
    krate.strip_prefix("aws_sdk_").unwrap_or(krate)
}

/// Every AWS resource type infrasql manages.
pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    let mut all = ec2::resources(clients.clone());
    all.extend(rds::resources(clients));
    all
}
pub use aws_sdk_ec2;
pub use aws_sdk_rds;
