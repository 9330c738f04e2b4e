//! The real cloud: the ports implemented on the AWS SDK for Rust.
//!
//! One [`AwsCloud`] serves every region. The shared SDK configuration
//! (credentials from the default chain, HTTPS on rustls with ring, standard
//! retries with throttling backoff, timeouts) is loaded once; each region
//! gets its own set of SDK clients the first time a port of that region is
//! asked for, and keeps it, so connection pools and credentials are shared
//! by every reconcile of that region.
//!
//! Credentials never come from a ShopRegion: the default chain finds IRSA
//! (web identity token), EKS Pod Identity (container credentials), the
//! environment, a profile or instance metadata. `docs/aws-iam.md` lists the
//! permissions they need.

/// The conversions between [`crate::cloud::Tags`] and an SDK's `Tag`
/// shape. Each SDK crate has its own `Tag` type with the same builder and
/// accessors; the conversion is written once and stamped for each.
macro_rules! tag_conversions {
    ($tag:ty) => {
        fn to_tags(tags: &crate::cloud::Tags) -> Vec<$tag> {
            tags.iter()
                .map(|(k, v)| <$tag>::builder().key(k).value(v).build())
                .collect()
        }

        fn from_tags(tags: &[$tag]) -> crate::cloud::Tags {
            tags.iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        }
    };
}

mod cloudwatch;
mod elasticache;
mod error;
mod rds;
mod requests;
pub mod status;

pub use elasticache::AwsElastiCache;
pub use rds::RdsAurora;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_rds::config::{SharedCredentialsProvider, SharedHttpClient};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::clock::{Clock, SystemClock};
use crate::cloud::Cloud;
use crate::cloud::aurora::AuroraPort;
use crate::cloud::elasticache::ElastiCachePort;
use crate::telemetry::Metrics;
use requests::CountRequests;

/// An optional text field of an SDK shape; absent reads as empty.
fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}

fn timestamp(value: &aws_smithy_types::DateTime) -> Option<k8s_openapi::jiff::Timestamp> {
    k8s_openapi::jiff::Timestamp::new(value.secs(), i32::try_from(value.subsec_nanos()).ok()?).ok()
}

/// How the SDK clients talk to AWS.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// Sends every call to this URL instead of the regional AWS endpoints
    /// (an emulator such as moto, or a VPC endpoint proxy). The region is
    /// still signed into each request.
    pub endpoint_url: Option<String>,
    /// Attempts per call, the first included. Throttling and 5xx answers are
    /// retried with exponential backoff and jitter, within the SDK's retry
    /// budget (a token bucket: when retries keep failing, calls stop being
    /// retried), and in the SDK's adaptive mode: once a region's API
    /// throttles, its client sends no faster than the rate AWS accepts, for
    /// every shop at once (one client per region and service).
    pub max_attempts: u32,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time for one attempt, connection included.
    pub attempt_timeout: Duration,
    /// Time for a whole call, retries and backoff included: a reconcile never
    /// waits longer than this on one AWS call.
    pub operation_timeout: Duration,
    /// `None`: the default chain (IRSA, EKS Pod Identity, environment,
    /// profile, instance metadata). The command line never sets this; it is
    /// for embedding and for tests against an emulator.
    pub credentials: Option<SharedCredentialsProvider>,
    /// `None`: HTTPS on rustls with ring, the system's root certificates.
    pub http_client: Option<SharedHttpClient>,
    /// Where every request attempt is counted
    /// (`shopfleet_aws_requests_total`); `None` counts nothing.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            max_attempts: 3,
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(20),
            operation_timeout: Duration::from_secs(60),
            credentials: None,
            http_client: None,
            metrics: None,
        }
    }
}

/// HTTPS (and plain HTTP, for an emulator on the loopback) on rustls with
/// the ring crypto provider: the SDK's default client would pull in aws-lc.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK clients of one region.
#[derive(Clone, Debug)]
struct RegionClients {
    rds: aws_sdk_rds::Client,
    elasticache: aws_sdk_elasticache::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

impl RegionClients {
    fn new(base: &SdkConfig, region: &str, metrics: Option<&Arc<Metrics>>) -> Self {
        let counting = || {
            metrics.map(|metrics| CountRequests {
                metrics: metrics.clone(),
                region: region.to_string(),
            })
        };
        let region = Region::new(region.to_string());
        let mut rds = aws_sdk_rds::config::Builder::from(base).region(region.clone());
        let mut elasticache =
            aws_sdk_elasticache::config::Builder::from(base).region(region.clone());
        let mut cloudwatch = aws_sdk_cloudwatch::config::Builder::from(base).region(region);
        if let Some(count) = counting() {
            rds = rds.interceptor(count);
        }
        if let Some(count) = counting() {
            elasticache = elasticache.interceptor(count);
        }
        if let Some(count) = counting() {
            cloudwatch = cloudwatch.interceptor(count);
        }
        Self {
            rds: aws_sdk_rds::Client::from_conf(rds.build()),
            elasticache: aws_sdk_elasticache::Client::from_conf(elasticache.build()),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(cloudwatch.build()),
        }
    }
}

/// AWS itself, behind the [`Cloud`] ports.
pub struct AwsCloud {
    base: SdkConfig,
    metrics: Option<Arc<Metrics>>,
    regions: Mutex<BTreeMap<String, RegionClients>>,
}

impl std::fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCloud")
            .field("endpoint_url", &self.base.endpoint_url())
            .field("regions", &self.lock().keys().cloned().collect::<Vec<_>>())
            .finish()
    }
}

impl AwsCloud {
    /// Loads the shared configuration. Credentials are resolved lazily, on
    /// the first call, so a missing role shows up as an error of that call
    /// (and in `DatabaseReady`), not as a crash at start-up.
    pub async fn load(options: AwsOptions) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(options.connect_timeout)
            .operation_attempt_timeout(options.attempt_timeout)
            .operation_timeout(options.operation_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(options.http_client.unwrap_or_else(https_client))
            .retry_config(RetryConfig::adaptive().with_max_attempts(options.max_attempts.max(1)))
            .timeout_config(timeouts)
            // Every client names its region; this one only serves the
            // credential providers (the STS call behind IRSA). The IRSA and
            // Pod Identity webhooks set AWS_REGION; without it, a fixed
            // region beats failing to assume the role.
            .region(
                RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                    .or_else(Region::from_static("us-east-1")),
            );
        if let Some(url) = options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = options.credentials {
            loader = loader.credentials_provider(credentials);
        }
        Self {
            base: loader.load().await,
            metrics: options.metrics,
            regions: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RegionClients>> {
        // The map only ever gains complete entries: a poisoned lock still
        // guards a valid map.
        self.regions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clients(&self, region: &str) -> RegionClients {
        self.lock()
            .entry(region.to_string())
            .or_insert_with(|| RegionClients::new(&self.base, region, self.metrics.as_ref()))
            .clone()
    }
}

impl Cloud for AwsCloud {
    fn aurora(&self, region: &str) -> Arc<dyn AuroraPort> {
        let clients = self.clients(region);
        Arc::new(RdsAurora::new(region, clients.rds, clients.cloudwatch))
    }

    fn elasticache(&self, region: &str) -> Arc<dyn ElastiCachePort> {
        let clients = self.clients(region);
        Arc::new(AwsElastiCache::new(
            region,
            clients.elasticache,
            clients.cloudwatch,
        ))
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

/// The actions of the JSON policy in `docs/aws-iam.md` whose first
/// statement is `first_sid`, limited to the services named by `prefixes`
/// (`"rds:"`…): what the document grants for one adapter.
#[cfg(test)]
fn documented_actions(first_sid: &str, prefixes: &[&str]) -> std::collections::BTreeSet<String> {
    let doc = include_str!("../../../docs/aws-iam.md");
    let policy = doc
        .split("```json")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .find(|p| p["Statement"][0]["Sid"] == first_sid)
        .unwrap_or_else(|| panic!("docs/aws-iam.md holds a policy starting with {first_sid}"));
    let mut granted = std::collections::BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        match &statement["Action"] {
            serde_json::Value::String(a) => {
                granted.insert(a.clone());
            }
            serde_json::Value::Array(actions) => {
                granted.extend(actions.iter().map(|a| a.as_str().unwrap().to_string()));
            }
            other => panic!("unexpected Action {other}"),
        }
    }
    granted
        .into_iter()
        .filter(|a| prefixes.iter().any(|p| a.starts_with(p)))
        .collect()
}

/// The SDK operations an adapter's source calls on its client field
/// `client` (`self.rds\n    .describe_db_clusters()` → `describedbclusters`):
/// lowercase and without underscores, to compare with IAM action names
/// whatever the SDK's casing of acronyms.
#[cfg(test)]
fn sdk_operations(source: &str, client: &str) -> std::collections::BTreeSet<String> {
    let needle = format!(".{client}");
    let mut operations = std::collections::BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let after = rest.trim_start();
        let Some(call) = after.strip_prefix('.') else {
            continue;
        };
        let name: String = call
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if call[name.len()..].starts_with("()") {
            operations.insert(name.replace('_', ""));
        }
    }
    operations
}

/// Every SDK operation of `source` on `client` has its IAM action among
/// `actions` (`service:Action`): a call added without its permission fails.
#[cfg(test)]
fn assert_calls_are_granted(source: &str, client: &str, actions: &[&str]) {
    let granted: std::collections::BTreeSet<String> = actions
        .iter()
        .filter_map(|a| a.split_once(':'))
        .map(|(_, action)| action.to_ascii_lowercase())
        .collect();
    let called = sdk_operations(source, client);
    assert!(!called.is_empty(), "no call on .{client} found");
    let missing: Vec<&String> = called.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "calls without their IAM action in IAM_ACTIONS and docs/aws-iam.md: {missing:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::config::Credentials;

    async fn cloud() -> AwsCloud {
        AwsCloud::load(AwsOptions {
            endpoint_url: Some("http://127.0.0.1:1".into()),
            credentials: Some(SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "tests",
            ))),
            ..AwsOptions::default()
        })
        .await
    }

    #[tokio::test]
    async fn each_region_gets_its_own_clients_built_once() {
        let cloud = cloud().await;
        assert_eq!(cloud.aurora("eu-west-1").region(), "eu-west-1");
        assert_eq!(cloud.aurora("us-east-1").region(), "us-east-1");
        cloud.aurora("eu-west-1");
        let regions: Vec<String> = cloud.lock().keys().cloned().collect();
        assert_eq!(regions, ["eu-west-1", "us-east-1"]);
        let eu = cloud.clients("eu-west-1");
        assert_eq!(
            eu.rds.config().region().map(Region::as_ref),
            Some("eu-west-1")
        );
        assert_eq!(
            eu.elasticache.config().region().map(Region::as_ref),
            Some("eu-west-1")
        );
        assert_eq!(
            eu.cloudwatch.config().region().map(Region::as_ref),
            Some("eu-west-1")
        );
        assert_eq!(
            cloud.elasticache("ap-northeast-1").region(),
            "ap-northeast-1"
        );
        let regions: Vec<String> = cloud.lock().keys().cloned().collect();
        assert_eq!(regions, ["ap-northeast-1", "eu-west-1", "us-east-1"]);
    }

    #[tokio::test]
    async fn the_sdk_retries_in_adaptive_mode_within_the_timeouts() {
        let cloud = cloud().await;
        let retry = cloud.base.retry_config().expect("retry config is set");
        assert_eq!(retry.mode(), aws_config::retry::RetryMode::Adaptive);
        assert_eq!(retry.max_attempts(), 3);
        let timeouts = cloud.base.timeout_config().expect("timeouts are set");
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(Duration::from_secs(20))
        );
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(cloud.base.endpoint_url(), Some("http://127.0.0.1:1"));
    }
}
