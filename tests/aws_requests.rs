//! The exact requests the AWS adapter sends for the calls moto does not
//! implement, captured with the SDK's own test utilities, and how AWS's
//! answers (errors included) come back through the adapter.
//!
//! Every client here is built by `AwsCloud::load`, as in production, with
//! only the HTTP client swapped, so the region's endpoint, signing and
//! retry settings are the real ones.

mod aws;

use std::time::Duration;

use aws::wire::{Cbor, cbor_response, form, params, query_error, query_ok, sent};
use aws::{cloud_over, replayed};
use aws_sdk_rds::config::SharedHttpClient;
use aws_smithy_http_client::test_util::capture_request;
use aws_smithy_types::body::SdkBody;
use k8s_openapi::jiff::Timestamp;
use shopfleet::cloud::aurora::{AuroraPort, GlobalClusterStatus, ModifyGlobalClusterRequest};
use shopfleet::cloud::aws::{AwsCloud, AwsOptions};
use shopfleet::cloud::{Cloud, CloudError, TransientKind};

const GLOBAL: &str = "acme-global";
const EU_ARN: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:acme-eu-west-1";
const US_ARN: &str = "arn:aws:rds:us-east-1:123456789012:cluster:acme-us-east-1";

const RDS_XMLNS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";

/// An RDS success answer for `action`, with `result` inside its result
/// element.
fn rds_ok(action: &str, result: &str) -> http::Response<SdkBody> {
    query_ok(RDS_XMLNS, action, result)
}

fn rds_error(status: u16, code: &str, message: &str) -> http::Response<SdkBody> {
    query_error(RDS_XMLNS, status, code, message)
}

fn global_cluster_xml(status: &str, deletion_protection: bool, version: &str) -> String {
    format!(
        "<GlobalCluster><GlobalClusterIdentifier>{GLOBAL}</GlobalClusterIdentifier>\
         <GlobalClusterArn>arn:aws:rds::123456789012:global-cluster:{GLOBAL}</GlobalClusterArn>\
         <Status>{status}</Status><Engine>aurora-postgresql</Engine><EngineVersion>{version}</EngineVersion>\
         <DeletionProtection>{deletion_protection}</DeletionProtection>\
         <GlobalClusterMembers>\
         <GlobalClusterMember><DBClusterArn>{US_ARN}</DBClusterArn><IsWriter>true</IsWriter></GlobalClusterMember>\
         <GlobalClusterMember><DBClusterArn>{EU_ARN}</DBClusterArn><IsWriter>false</IsWriter></GlobalClusterMember>\
         </GlobalClusterMembers></GlobalCluster>"
    )
}

/// The GetMetricData query `id` for the Aurora lag of `cluster`, as sent.
fn aurora_lag_query(id: &str, cluster: &str) -> Cbor {
    Cbor::map([
        ("Id", Cbor::text(id)),
        ("ReturnData", Cbor::Bool(true)),
        (
            "MetricStat",
            Cbor::map([
                ("Period", Cbor::Int(60)),
                ("Stat", Cbor::text("Maximum")),
                (
                    "Metric",
                    Cbor::map([
                        ("Namespace", Cbor::text("AWS/RDS")),
                        ("MetricName", Cbor::text("AuroraGlobalDBReplicationLag")),
                        (
                            "Dimensions",
                            Cbor::Array(vec![Cbor::map([
                                ("Name", Cbor::text("DBClusterIdentifier")),
                                ("Value", Cbor::text(cluster)),
                            ])]),
                        ),
                    ]),
                ),
            ]),
        ),
    ])
}

/// Runs `call` against a port of `region` whose client captures the one
/// request it sends and answers `response`.
async fn capture<T>(
    region: &str,
    response: http::Response<SdkBody>,
    call: impl AsyncFnOnce(&dyn AuroraPort) -> T,
) -> (T, aws_sdk_rds::config::http::HttpRequest) {
    let (client, request) = capture_request(Some(response));
    let cloud = cloud_over(SharedHttpClient::new(client), 1).await;
    let port = cloud.aurora(region);
    let result = call(port.as_ref()).await;
    (result, request.expect_request())
}

#[tokio::test]
async fn a_failover_with_data_loss_sends_allow_data_loss_to_the_regional_endpoint() {
    let (result, request) = capture(
        "eu-west-1",
        rds_ok(
            "FailoverGlobalCluster",
            &global_cluster_xml("failing-over", true, "16.6"),
        ),
        async |port| port.failover_global_cluster(GLOBAL, EU_ARN, true).await,
    )
    .await;
    result.unwrap();
    let sent = sent(&request);
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.uri, "https://rds.eu-west-1.amazonaws.com/");
    assert_eq!(
        sent.params,
        params([
            ("Action", "FailoverGlobalCluster"),
            ("Version", "2014-10-31"),
            ("GlobalClusterIdentifier", GLOBAL),
            ("TargetDbClusterIdentifier", EU_ARN),
            ("AllowDataLoss", "true"),
        ])
    );
    let authorization = request.headers().get("authorization").unwrap();
    assert!(
        authorization.contains("/eu-west-1/rds/aws4_request"),
        "signed for the region: {authorization}"
    );
}

#[tokio::test]
async fn a_failover_without_data_loss_asks_for_a_switchover() {
    let (result, request) = capture(
        "ap-northeast-1",
        rds_ok(
            "FailoverGlobalCluster",
            &global_cluster_xml("switching-over", true, "16.6"),
        ),
        async |port| port.failover_global_cluster(GLOBAL, EU_ARN, false).await,
    )
    .await;
    result.unwrap();
    let sent = sent(&request);
    assert_eq!(sent.uri, "https://rds.ap-northeast-1.amazonaws.com/");
    assert_eq!(
        sent.params,
        params([
            ("Action", "FailoverGlobalCluster"),
            ("Version", "2014-10-31"),
            ("GlobalClusterIdentifier", GLOBAL),
            ("TargetDbClusterIdentifier", EU_ARN),
            ("Switchover", "true"),
        ])
    );
}

#[tokio::test]
async fn a_switchover_sends_switchover_global_cluster() {
    let (result, request) = capture(
        "us-east-1",
        rds_ok(
            "SwitchoverGlobalCluster",
            &global_cluster_xml("switching-over", true, "16.6"),
        ),
        async |port| port.switchover_global_cluster(GLOBAL, EU_ARN).await,
    )
    .await;
    result.unwrap();
    let sent = sent(&request);
    assert_eq!(sent.uri, "https://rds.us-east-1.amazonaws.com/");
    assert_eq!(
        sent.params,
        params([
            ("Action", "SwitchoverGlobalCluster"),
            ("Version", "2014-10-31"),
            ("GlobalClusterIdentifier", GLOBAL),
            ("TargetDbClusterIdentifier", EU_ARN),
        ])
    );
}

#[tokio::test]
async fn turning_on_global_deletion_protection_sends_only_that_field() {
    let (result, request) = capture(
        "us-east-1",
        rds_ok(
            "ModifyGlobalCluster",
            &global_cluster_xml("available", true, "16.6"),
        ),
        async |port| {
            port.modify_global_cluster(&ModifyGlobalClusterRequest {
                global_cluster_id: GLOBAL.into(),
                deletion_protection: Some(true),
                ..ModifyGlobalClusterRequest::default()
            })
            .await
        },
    )
    .await;
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "ModifyGlobalCluster"),
            ("Version", "2014-10-31"),
            ("GlobalClusterIdentifier", GLOBAL),
            ("DeletionProtection", "true"),
        ])
    );
    let global = result.unwrap();
    assert!(global.deletion_protection);
    assert_eq!(global.status, GlobalClusterStatus::Available);
    let members: Vec<(&str, bool)> = global
        .members
        .iter()
        .map(|m| (m.region.as_str(), m.is_writer))
        .collect();
    assert_eq!(members, [("us-east-1", true), ("eu-west-1", false)]);
}

#[tokio::test]
async fn a_global_major_upgrade_sends_the_version_and_allows_the_major_upgrade() {
    let (result, request) = capture(
        "us-east-1",
        rds_ok(
            "ModifyGlobalCluster",
            &global_cluster_xml("upgrading", true, "16.6"),
        ),
        async |port| {
            port.modify_global_cluster(&ModifyGlobalClusterRequest {
                global_cluster_id: GLOBAL.into(),
                engine_version: Some("17.4".into()),
                allow_major_version_upgrade: true,
                ..ModifyGlobalClusterRequest::default()
            })
            .await
        },
    )
    .await;
    assert_eq!(result.unwrap().status, GlobalClusterStatus::Upgrading);
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "ModifyGlobalCluster"),
            ("Version", "2014-10-31"),
            ("GlobalClusterIdentifier", GLOBAL),
            ("EngineVersion", "17.4"),
            ("AllowMajorVersionUpgrade", "true"),
        ])
    );
}

#[tokio::test]
async fn replication_lag_asks_cloudwatch_for_the_worst_lag_per_minute_of_the_last_five_minutes() {
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    let t = now.as_second() as f64;
    let answer = Cbor::map([(
        "MetricDataResults",
        Cbor::Array(vec![Cbor::map([
            ("Id", Cbor::text("lag0")),
            ("Label", Cbor::text("AuroraGlobalDBReplicationLag")),
            (
                "Timestamps",
                Cbor::Array(vec![Cbor::Timestamp(t - 60.0), Cbor::Timestamp(t - 180.0)]),
            ),
            (
                "Values",
                Cbor::Array(vec![Cbor::Float(180.0), Cbor::Float(2_500.0)]),
            ),
            ("StatusCode", Cbor::text("Complete")),
        ])]),
    )]);
    let (result, request) = capture(
        "eu-west-1",
        cbor_response(200, &answer, None),
        async |port| port.replication_lag("acme-eu-west-1", now).await,
    )
    .await;
    assert_eq!(result.unwrap(), Some(Duration::from_millis(180)));

    assert_eq!(
        request.uri(),
        "https://monitoring.eu-west-1.amazonaws.com/service/GraniteServiceVersion20100801/operation/GetMetricData"
    );
    assert_eq!(
        request.headers().get("smithy-protocol"),
        Some("rpc-v2-cbor")
    );
    let body = Cbor::decode(request.body().bytes().expect("an in-memory body"));
    assert_eq!(
        body,
        Cbor::map([
            ("StartTime", Cbor::Timestamp(t - 300.0)),
            ("EndTime", Cbor::Timestamp(t)),
            ("ScanBy", Cbor::text("TimestampDescending")),
            (
                "MetricDataQueries",
                Cbor::Array(vec![aurora_lag_query("lag0", "acme-eu-west-1")]),
            ),
        ])
    );
}

#[tokio::test]
async fn no_cloudwatch_data_point_is_no_lag_reading() {
    let answer = Cbor::map([(
        "MetricDataResults",
        Cbor::Array(vec![Cbor::map([
            ("Id", Cbor::text("lag0")),
            ("Timestamps", Cbor::Array(vec![])),
            ("Values", Cbor::Array(vec![])),
            ("StatusCode", Cbor::text("Complete")),
        ])]),
    )]);
    let (result, _) = capture(
        "us-east-1",
        cbor_response(200, &answer, None),
        async |port| {
            port.replication_lag("acme-us-east-1", Timestamp::now())
                .await
        },
    )
    .await;
    assert_eq!(result.unwrap(), None);
}

#[tokio::test]
async fn aws_error_answers_map_to_their_cloud_error_class() {
    let replay = replayed(vec![
        rds_error(
            400,
            "InvalidGlobalClusterStateFault",
            "Global cluster acme-global is failing-over",
        ),
        rds_error(400, "Throttling", "Rate exceeded"),
        rds_error(
            404,
            "GlobalClusterNotFoundFault",
            "GlobalCluster acme-global not found",
        ),
        rds_error(
            400,
            "InvalidParameterCombination",
            "Cannot upgrade aurora-postgresql from 16.6 to 15.10",
        ),
        rds_error(503, "ServiceUnavailable", "Service unavailable"),
    ]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let eu = cloud.aurora("eu-west-1");

    let busy = eu
        .switchover_global_cluster(GLOBAL, EU_ARN)
        .await
        .unwrap_err();
    assert_eq!(
        busy,
        CloudError::transient(
            TransientKind::Busy,
            "InvalidGlobalClusterStateFault",
            "Global cluster acme-global is failing-over"
        )
    );
    let throttled = eu
        .failover_global_cluster(GLOBAL, EU_ARN, true)
        .await
        .unwrap_err();
    assert_eq!(throttled, CloudError::throttled("Rate exceeded"));
    let modify = ModifyGlobalClusterRequest {
        global_cluster_id: GLOBAL.into(),
        deletion_protection: Some(true),
        ..ModifyGlobalClusterRequest::default()
    };
    let missing = eu.modify_global_cluster(&modify).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    let refused = eu.modify_global_cluster(&modify).await.unwrap_err();
    assert!(
        matches!(refused, CloudError::Refused { ref code, .. } if code == "InvalidParameterCombination"),
        "{refused:?}"
    );
    let unavailable = eu.modify_global_cluster(&modify).await.unwrap_err();
    assert_eq!(unavailable.metric_label(), "server_error");
    assert_eq!(replay.actual_requests().count(), 5, "one attempt each");
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_and_then_succeeds() {
    let replay = replayed(vec![
        rds_error(400, "Throttling", "Rate exceeded"),
        rds_ok(
            "SwitchoverGlobalCluster",
            &global_cluster_xml("switching-over", true, "16.6"),
        ),
    ]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 3).await;
    cloud
        .aurora("eu-west-1")
        .switchover_global_cluster(GLOBAL, EU_ARN)
        .await
        .unwrap();
    assert_eq!(replay.actual_requests().count(), 2);
}

#[tokio::test]
async fn every_attempt_is_counted_with_its_outcome_so_throttling_is_visible_in_metrics() {
    let replay = replayed(vec![
        rds_error(400, "Throttling", "Rate exceeded"),
        rds_ok(
            "SwitchoverGlobalCluster",
            &global_cluster_xml("switching-over", true, "16.6"),
        ),
    ]);
    let metrics = std::sync::Arc::new(shopfleet::telemetry::Metrics::default());
    let cloud = AwsCloud::load(AwsOptions {
        http_client: Some(SharedHttpClient::new(replay.clone())),
        credentials: Some(aws::credentials()),
        max_attempts: 3,
        metrics: Some(metrics.clone()),
        ..AwsOptions::default()
    })
    .await;
    cloud
        .aurora("eu-west-1")
        .switchover_global_cluster(GLOBAL, EU_ARN)
        .await
        .unwrap();
    let text = metrics.encode();
    for outcome in ["throttled", "ok"] {
        let series = format!(
            "shopfleet_aws_requests_total{{service=\"rds\",operation=\"SwitchoverGlobalCluster\",region=\"eu-west-1\",outcome=\"{outcome}\"}} 1"
        );
        assert!(text.contains(&series), "{series} missing from:\n{text}");
    }
}

#[tokio::test]
async fn cloudwatch_throttling_is_classified_as_throttled() {
    let error = Cbor::map([
        (
            "__type",
            Cbor::text("com.amazonaws.cloudwatch#LimitExceededException"),
        ),
        ("message", Cbor::text("Rate exceeded")),
    ]);
    let (result, _) = capture(
        "eu-west-1",
        cbor_response(400, &error, Some("Throttling;Sender")),
        async |port| {
            port.replication_lag("acme-eu-west-1", Timestamp::now())
                .await
        },
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.metric_label(), "throttled", "{error:?}");
}

#[tokio::test]
async fn an_endpoint_that_refuses_connections_is_an_unavailable_region() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cloud = AwsCloud::load(AwsOptions {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        credentials: Some(aws::credentials()),
        max_attempts: 1,
        ..AwsOptions::default()
    })
    .await;
    let error = cloud
        .aurora("ap-northeast-1")
        .describe_cluster("acme-ap-northeast-1")
        .await
        .unwrap_err();
    assert!(
        matches!(error, CloudError::RegionUnavailable { ref region, .. } if region == "ap-northeast-1"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_as_a_transient_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accepts connections and never answers.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let cloud = AwsCloud::load(AwsOptions {
        endpoint_url: Some(endpoint),
        credentials: Some(aws::credentials()),
        max_attempts: 1,
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(2),
        ..AwsOptions::default()
    })
    .await;
    let error = cloud
        .aurora("eu-west-1")
        .describe_global_cluster(GLOBAL)
        .await
        .unwrap_err();
    silent.abort();
    assert!(
        matches!(
            error,
            CloudError::Transient {
                kind: TransientKind::Timeout,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn cbor_round_trips() {
    let value = Cbor::map([
        ("Id", Cbor::text("lag")),
        (
            "Values",
            Cbor::Array(vec![Cbor::Float(180.0), Cbor::Int(-3)]),
        ),
        ("At", Cbor::Timestamp(1_700_000_000.5)),
        ("Done", Cbor::Bool(true)),
        ("Count", Cbor::Int(70_000)),
    ]);
    assert_eq!(Cbor::decode(&value.encode()), value);
    // Indefinite-length map and text, as some encoders write them.
    let indefinite = [0xbf, 0x7f, 0x61, b'I', 0x61, b'd', 0xff, 0x01, 0xff];
    assert_eq!(Cbor::decode(&indefinite), Cbor::map([("Id", Cbor::Int(1))]));
}

#[test]
fn forms_are_percent_decoded() {
    let parsed = form(b"Action=X&Target=arn%3Aaws%3Ards&Name=a+b");
    assert_eq!(parsed["Target"], "arn:aws:rds");
    assert_eq!(parsed["Name"], "a b");
}

/// A region's clusters come in pages: the adapter asks for AWS's largest
/// page and follows the marker until AWS gives none.
#[tokio::test]
async fn every_cluster_of_a_region_is_read_by_following_the_marker() {
    let cluster = |id: &str| {
        format!(
            "<DBCluster><DBClusterIdentifier>{id}</DBClusterIdentifier>\
             <DBClusterArn>arn:aws:rds:eu-west-1:123456789012:cluster:{id}</DBClusterArn>\
             <Status>available</Status><Engine>aurora-postgresql</Engine><EngineVersion>16.6</EngineVersion></DBCluster>"
        )
    };
    let replay = replayed(vec![
        rds_ok(
            "DescribeDBClusters",
            &format!(
                "<Marker>page-2</Marker><DBClusters>{}</DBClusters>",
                cluster("acme-eu-west-1")
            ),
        ),
        rds_ok(
            "DescribeDBClusters",
            &format!("<DBClusters>{}</DBClusters>", cluster("globex-eu-west-1")),
        ),
    ]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let clusters = cloud.aurora("eu-west-1").describe_clusters().await.unwrap();
    let ids: Vec<&str> = clusters.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["acme-eu-west-1", "globex-eu-west-1"]);
    let requests: Vec<_> = replay.actual_requests().collect();
    assert_eq!(requests.len(), 2, "one request a page");
    assert_eq!(
        form(requests[0].body().bytes().unwrap()),
        params([
            ("Action", "DescribeDBClusters"),
            ("Version", "2014-10-31"),
            ("MaxRecords", "100"),
        ])
    );
    assert_eq!(
        form(requests[1].body().bytes().unwrap()),
        params([
            ("Action", "DescribeDBClusters"),
            ("Version", "2014-10-31"),
            ("MaxRecords", "100"),
            ("Marker", "page-2"),
        ])
    );
}

/// Every shop's secondary in a region is read in one GetMetricData: one
/// query per cluster, each answer given to its own cluster.
#[tokio::test]
async fn the_lags_of_many_clusters_are_one_request_with_a_query_each() {
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    let t = now.as_second() as f64;
    let answer = Cbor::map([(
        "MetricDataResults",
        Cbor::Array(vec![
            Cbor::map([
                ("Id", Cbor::text("lag1")),
                ("Timestamps", Cbor::Array(vec![Cbor::Timestamp(t - 60.0)])),
                ("Values", Cbor::Array(vec![Cbor::Float(250.0)])),
                ("StatusCode", Cbor::text("Complete")),
            ]),
            Cbor::map([
                ("Id", Cbor::text("lag0")),
                ("Timestamps", Cbor::Array(vec![])),
                ("Values", Cbor::Array(vec![])),
                ("StatusCode", Cbor::text("Complete")),
            ]),
        ]),
    )]);
    let clusters = ["acme-eu-west-1".to_string(), "globex-eu-west-1".to_string()];
    let (result, request) = capture(
        "eu-west-1",
        cbor_response(200, &answer, None),
        async |port| port.replication_lags(&clusters, now).await,
    )
    .await;
    let lags = result.unwrap();
    assert_eq!(lags["acme-eu-west-1"], None, "no data point, no reading");
    assert_eq!(lags["globex-eu-west-1"], Some(Duration::from_millis(250)));
    let body = Cbor::decode(request.body().bytes().expect("an in-memory body"));
    assert_eq!(
        body,
        Cbor::map([
            ("StartTime", Cbor::Timestamp(t - 300.0)),
            ("EndTime", Cbor::Timestamp(t)),
            ("ScanBy", Cbor::text("TimestampDescending")),
            (
                "MetricDataQueries",
                Cbor::Array(vec![
                    aurora_lag_query("lag0", "acme-eu-west-1"),
                    aurora_lag_query("lag1", "globex-eu-west-1"),
                ]),
            ),
        ])
    );
}

/// The shared read of a region's instances: AWS's largest page, the marker
/// followed, each instance with its cluster, oldest first; an instance of
/// no cluster (RDS, not Aurora) is not one of ours to list.
#[tokio::test]
async fn every_instance_of_a_region_is_read_in_pages_oldest_first_with_its_cluster() {
    let instance = |id: &str, cluster: Option<&str>, created: &str| {
        format!(
            "<DBInstance><DBInstanceIdentifier>{id}</DBInstanceIdentifier>\
             <DBInstanceArn>arn:aws:rds:eu-west-1:123456789012:db:{id}</DBInstanceArn>\
             {}<DBInstanceStatus>available</DBInstanceStatus>\
             <DBInstanceClass>db.r6g.large</DBInstanceClass>\
             <InstanceCreateTime>{created}</InstanceCreateTime></DBInstance>",
            cluster
                .map(|c| format!("<DBClusterIdentifier>{c}</DBClusterIdentifier>"))
                .unwrap_or_default()
        )
    };
    let replay = replayed(vec![
        rds_ok(
            "DescribeDBInstances",
            &format!(
                "<Marker>page-2</Marker><DBInstances>{}{}</DBInstances>",
                instance("globex-1", Some("globex"), "2026-01-05T10:02:00Z"),
                instance("legacy-mysql", None, "2020-01-01T00:00:00Z"),
            ),
        ),
        rds_ok(
            "DescribeDBInstances",
            &format!(
                "<DBInstances>{}</DBInstances>",
                instance("acme-0", Some("acme"), "2026-01-05T10:01:00Z")
            ),
        ),
    ]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let all = cloud
        .aurora("eu-west-1")
        .describe_instances()
        .await
        .unwrap();
    let listed: Vec<(&str, &str)> = all
        .iter()
        .map(|i| (i.cluster_id.as_str(), i.instance.id.as_str()))
        .collect();
    assert_eq!(listed, [("acme", "acme-0"), ("globex", "globex-1")]);
    let requests: Vec<_> = replay.actual_requests().collect();
    assert_eq!(
        form(requests[1].body().bytes().unwrap()),
        params([
            ("Action", "DescribeDBInstances"),
            ("Version", "2014-10-31"),
            ("MaxRecords", "100"),
            ("Marker", "page-2"),
        ])
    );
}
