//! The Redis AUTH token reaches AWS, in the body of CreateReplicationGroup,
//! and nothing else: no log line at any level, no error.
//!
//! Its own test binary, with a single test: it sets `LOG_SIGNABLE_BODY`,
//! the environment switch with which aws-sigv4 prints request bodies in its
//! `trace` events, and no other test may run while it does.

mod aws;

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws::cloud_over;
use aws::wire::query_error;
use aws_sdk_rds::config::SharedHttpClient;
use aws_smithy_http_client::test_util::capture_request;
use shopfleet::cloud::elasticache::{AuthToken, CreateReplicationGroupRequest, Tags};
use shopfleet::cloud::{Cloud, CloudError};
use tracing_subscriber::layer::SubscriberExt;

const TOKEN: &str = "correct-horse-battery-staple-4711";

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn primary() -> CreateReplicationGroupRequest {
    CreateReplicationGroupRequest {
        replication_group_id: "acme-us-east-1".into(),
        description: "shopfleet: shop acme in us-east-1".into(),
        global_replication_group_id: None,
        engine: Some("redis".into()),
        engine_version: None,
        cache_node_type: Some("cache.r6g.large".into()),
        num_node_groups: Some(1),
        cluster_mode_enabled: Some(false),
        replicas_per_node_group: 1,
        automatic_failover_enabled: Some(true),
        multi_az_enabled: Some(true),
        transit_encryption_enabled: Some(true),
        at_rest_encryption_enabled: Some(true),
        auth_token: Some(AuthToken::new(TOKEN)),
        tags: Tags::new(),
        ..Default::default()
    }
}

/// Whether `log` shows the token: as text, or as the list of byte values
/// `Debug` prints for a byte slice (`[99, 111, …]`), which anyone can
/// decode.
fn shows_token(log: &str) -> bool {
    let bytes = TOKEN
        .bytes()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    log.contains(TOKEN) || log.contains(&bytes)
}

struct Attempt {
    body: String,
    error: CloudError,
    log: String,
}

/// Creates a primary with the token while every event at `trace` is
/// logged into memory, through the operator's logging filter or not. AWS
/// refuses the create, so that the error path is covered too.
async fn create_logged(operator_filter: bool) -> Attempt {
    let log = Captured::default();
    let writer = log.clone();
    let fmt = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = if operator_filter {
        tracing::subscriber::set_default(fmt.with(shopfleet::telemetry::without_request_bodies()))
    } else {
        tracing::subscriber::set_default(fmt)
    };
    let (client, request) = capture_request(Some(query_error(
        "http://elasticache.amazonaws.com/doc/2015-02-02/",
        400,
        "InvalidParameterValue",
        "The AUTH token must be between 16 and 128 characters.",
    )));
    let cloud = cloud_over(SharedHttpClient::new(client), 1).await;
    let error = cloud
        .elasticache("us-east-1")
        .create_replication_group(&primary())
        .await
        .unwrap_err();
    let request = request.expect_request();
    Attempt {
        body: String::from_utf8(request.body().bytes().unwrap().to_vec()).unwrap(),
        error,
        log: log.text(),
    }
}

#[tokio::test]
async fn the_auth_token_reaches_aws_and_no_log_line_or_error() {
    // As the operator runs: the token is sent, and even at `trace` the SDK
    // prints no request body (it wraps it before printing the request,
    // and aws-sigv4 redacts the one it signs).
    let plain = create_logged(false).await;
    assert!(
        plain.body.contains(&format!("AuthToken={TOKEN}")),
        "{}",
        plain.body
    );
    assert!(
        plain.log.contains("CreateReplicationGroup"),
        "the SDK's events are logged: {}",
        plain.log
    );
    assert!(
        !shows_token(&plain.log),
        "the token is in the log:\n{}",
        plain.log
    );
    assert!(
        matches!(plain.error, CloudError::Refused { .. }),
        "{:?}",
        plain.error
    );
    assert!(!format!("{0:?} {0}", plain.error).contains(TOKEN));

    // SAFETY: this binary's only test sets it, before any other thread of
    // the test could read the environment.
    unsafe { std::env::set_var("LOG_SIGNABLE_BODY", "true") };

    // The switch someone debugging a signature mismatch would turn on:
    // aws-sigv4 then prints the body it signs, token included (as byte
    // values)…
    let exposed = create_logged(false).await;
    assert!(
        shows_token(&exposed.log),
        "aws-sigv4 no longer prints signable bodies; the operator's filter may be reconsidered"
    );

    // …and the operator's logging drops those events, keeping the rest.
    let filtered = create_logged(true).await;
    assert!(
        filtered.body.contains(&format!("AuthToken={TOKEN}")),
        "the token still reaches AWS"
    );
    assert!(
        !shows_token(&filtered.log),
        "the token is in the log:\n{}",
        filtered.log
    );
    assert!(
        filtered.log.contains("beginning attempt #1"),
        "the SDK's debug events stay: {}",
        filtered.log
    );
}
