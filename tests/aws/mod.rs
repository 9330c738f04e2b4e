//! Shared by the AWS adapter tests: the moto server harness and the cloud
//! pointed at it, and the wire formats of the requests the adapter sends
//! (the form-encoded query of RDS and ElastiCache, CloudWatch's CBOR).

#![allow(dead_code)]

pub mod moto;
pub mod wire;

use std::sync::Arc;

use aws_sdk_rds::config::{Credentials, SharedCredentialsProvider, SharedHttpClient};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use shopfleet::cloud::Cloud;
use shopfleet::cloud::aurora::AuroraPort;
use shopfleet::cloud::aws::{AwsCloud, AwsOptions};
use shopfleet::cloud::elasticache::ElastiCachePort;

use moto::Moto;

/// Static dummy credentials: moto accepts any, request capture needs some
/// to sign with. Never the default chain in tests.
pub fn credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKIDSHOPFLEETTEST",
        "shopfleet-test-secret",
        None,
        None,
        "shopfleet-tests",
    ))
}

/// The cloud the operator would build, pointed at moto. One attempt: moto
/// answers an unimplemented call with HTTP 500, which the SDK retries.
pub struct Emulated {
    pub cloud: Arc<AwsCloud>,
    /// Keeps the server up for the test.
    _moto: Arc<Moto>,
}

impl Emulated {
    pub async fn start() -> Self {
        let moto = tokio::task::spawn_blocking(Moto::shared)
            .await
            .expect("starting moto panicked");
        let cloud = AwsCloud::load(AwsOptions {
            endpoint_url: Some(moto.endpoint.clone()),
            max_attempts: 1,
            credentials: Some(credentials()),
            ..AwsOptions::default()
        })
        .await;
        Self {
            cloud: Arc::new(cloud),
            _moto: moto,
        }
    }

    pub fn aurora(&self, region: &str) -> Arc<dyn AuroraPort> {
        self.cloud.aurora(region)
    }

    /// Runs `script` with boto3 (from moto's own virtualenv) against this
    /// moto, in `region`; `ec2`, `rds` and `elasticache` are clients, and
    /// the script's `result` is returned as JSON. For what the operator
    /// never does itself but a real account holds: a VPC, its subnets,
    /// subnet groups, security groups, parameter groups.
    pub fn boto3(&self, region: &str, script: &str) -> serde_json::Value {
        let program = format!(
            "import boto3, json\n\
             kw = dict(endpoint_url={endpoint:?}, region_name={region:?}, \
             aws_access_key_id='AKIDSHOPFLEETTEST', aws_secret_access_key='x')\n\
             ec2 = boto3.client('ec2', **kw)\n\
             rds = boto3.client('rds', **kw)\n\
             elasticache = boto3.client('elasticache', **kw)\n\
             result = None\n\
             {script}\n\
             print(json.dumps(result, default=str))\n",
            endpoint = self._moto.endpoint,
        );
        let output = std::process::Command::new(moto::python())
            .arg("-c")
            .arg(&program)
            .output()
            .expect("moto's python runs");
        assert!(
            output.status.success(),
            "boto3 failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("the script printed JSON")
    }

    pub fn elasticache(&self, region: &str) -> Arc<dyn ElastiCachePort> {
        self.cloud.elasticache(region)
    }
}

/// The cloud the operator would build, with only its HTTP client swapped
/// (request capture, replayed answers), so that regional endpoints, signing
/// and retries are the real ones.
pub async fn cloud_over(http_client: SharedHttpClient, max_attempts: u32) -> AwsCloud {
    AwsCloud::load(AwsOptions {
        http_client: Some(http_client),
        credentials: Some(credentials()),
        max_attempts,
        ..AwsOptions::default()
    })
    .await
}

/// A client that answers `responses` in order, one per request, and keeps
/// the requests it was sent (`actual_requests()`).
pub fn replayed(responses: Vec<http::Response<SdkBody>>) -> StaticReplayClient {
    StaticReplayClient::new(
        responses
            .into_iter()
            .map(|response| {
                // Only the answers matter: tests read what was actually
                // sent, never compare it with this placeholder.
                let request = http::Request::builder()
                    .uri("https://placeholder.invalid/")
                    .body(SdkBody::empty())
                    .unwrap();
                ReplayEvent::new(request, response)
            })
            .collect(),
    )
}
