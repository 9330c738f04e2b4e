//! The exact requests the ElastiCache adapter sends for the calls moto does
//! not implement (every Global Datastore call, IncreaseReplicaCount,
//! DecreaseReplicaCount, CloudWatch's GetMetricData for the lag), captured
//! with the SDK's own test utilities; AWS's answers to them, errors
//! included, replayed through the adapter into the port's structs. (That
//! the Redis AUTH token reaches AWS and no log line is
//! `tests/aws_auth_token.rs`.)
//!
//! Every client here is built by `AwsCloud::load`, as in production, with
//! only the HTTP client swapped.

mod aws;

use std::time::Duration;

use aws::wire::{Cbor, cbor_response, params, query_error, query_ok, sent};
use aws::{cloud_over, replayed};
use aws_sdk_rds::config::SharedHttpClient;
use aws_sdk_rds::config::http::HttpRequest;
use aws_smithy_http_client::test_util::capture_request;
use aws_smithy_types::body::SdkBody;
use k8s_openapi::jiff::Timestamp;
use shopfleet::cloud::elasticache::{
    AuthToken, AuthTokenUpdateStrategy, CreateGlobalReplicationGroupRequest,
    CreateReplicationGroupRequest, ElastiCachePort, Endpoint, GlobalMemberStatus,
    GlobalReplicationGroup, GlobalReplicationGroupInfo, GlobalReplicationGroupMember,
    GlobalReplicationGroupStatus, ModifyReplicationGroupRequest, NodeGroup, NodeGroupMember,
    ReplicationGroup, ReplicationGroupStatus, Tags,
};
use shopfleet::cloud::{Cloud, CloudError, TransientKind};

const XMLNS: &str = "http://elasticache.amazonaws.com/doc/2015-02-02/";
const GLOBAL: &str = "ldgnf-acme";
const TOKEN: &str = "correct-horse-battery-staple-4711";

fn ok(action: &str, result: &str) -> http::Response<SdkBody> {
    query_ok(XMLNS, action, result)
}

fn error(status: u16, code: &str, message: &str) -> http::Response<SdkBody> {
    query_error(XMLNS, status, code, message)
}

/// Runs `call` against the port of `region` whose client captures the one
/// request it sends and answers `response`.
async fn capture<T>(
    region: &str,
    response: http::Response<SdkBody>,
    call: impl AsyncFnOnce(&dyn ElastiCachePort) -> T,
) -> (T, HttpRequest) {
    let (client, request) = capture_request(Some(response));
    let cloud = cloud_over(SharedHttpClient::new(client), 1).await;
    let port = cloud.elasticache(region);
    let result = call(port.as_ref()).await;
    (result, request.expect_request())
}

fn ownership() -> Tags {
    Tags::from([
        (
            "shopfleet.io/managed-by".to_string(),
            "shopfleet".to_string(),
        ),
        ("shopfleet.io/shop".to_string(), "acme".to_string()),
    ])
}

/// A Global Datastore as DescribeGlobalReplicationGroups shows it with
/// member info: primary in us-east-1, secondaries in eu-west-1 and
/// ap-northeast-1 (the last one still joining).
fn global_xml(id: &str) -> String {
    format!(
        "<GlobalReplicationGroup>\
         <GlobalReplicationGroupId>{id}</GlobalReplicationGroupId>\
         <GlobalReplicationGroupDescription>shopfleet: acme</GlobalReplicationGroupDescription>\
         <Status>available</Status><CacheNodeType>cache.r6g.large</CacheNodeType>\
         <Engine>redis</Engine><EngineVersion>7.1</EngineVersion>\
         <Members>\
         <GlobalReplicationGroupMember><ReplicationGroupId>acme-us-east-1</ReplicationGroupId>\
         <ReplicationGroupRegion>us-east-1</ReplicationGroupRegion><Role>PRIMARY</Role>\
         <AutomaticFailover>enabled</AutomaticFailover><Status>associated</Status></GlobalReplicationGroupMember>\
         <GlobalReplicationGroupMember><ReplicationGroupId>acme-eu-west-1</ReplicationGroupId>\
         <ReplicationGroupRegion>eu-west-1</ReplicationGroupRegion><Role>SECONDARY</Role>\
         <AutomaticFailover>enabled</AutomaticFailover><Status>associated</Status></GlobalReplicationGroupMember>\
         <GlobalReplicationGroupMember><ReplicationGroupId>acme-ap-northeast-1</ReplicationGroupId>\
         <ReplicationGroupRegion>ap-northeast-1</ReplicationGroupRegion><Role>SECONDARY</Role>\
         <AutomaticFailover>disabled</AutomaticFailover><Status>associating</Status></GlobalReplicationGroupMember>\
         </Members>\
         <ClusterEnabled>false</ClusterEnabled>\
         <GlobalNodeGroups><GlobalNodeGroup><GlobalNodeGroupId>{id}-0001</GlobalNodeGroupId></GlobalNodeGroup></GlobalNodeGroups>\
         <AuthTokenEnabled>true</AuthTokenEnabled><TransitEncryptionEnabled>true</TransitEncryptionEnabled>\
         <AtRestEncryptionEnabled>true</AtRestEncryptionEnabled>\
         <ARN>arn:aws:elasticache::123456789012:globalreplicationgroup:{id}</ARN>\
         </GlobalReplicationGroup>"
    )
}

fn member(
    group: &str,
    region: &str,
    primary: bool,
    status: &str,
    af: &str,
) -> GlobalReplicationGroupMember {
    GlobalReplicationGroupMember {
        replication_group_id: group.into(),
        region: region.into(),
        is_primary: primary,
        status: status.into(),
        automatic_failover: af.into(),
    }
}

fn global(id: &str) -> GlobalReplicationGroup {
    GlobalReplicationGroup {
        id: id.into(),
        arn: format!("arn:aws:elasticache::123456789012:globalreplicationgroup:{id}"),
        description: Some("shopfleet: acme".into()),
        status: "available".into(),
        cache_node_type: "cache.r6g.large".into(),
        engine: "redis".into(),
        engine_version: "7.1".into(),
        cluster_enabled: false,
        num_node_groups: 1,
        auth_token_enabled: true,
        transit_encryption_enabled: true,
        at_rest_encryption_enabled: true,
        members: vec![
            member("acme-us-east-1", "us-east-1", true, "associated", "enabled"),
            member(
                "acme-eu-west-1",
                "eu-west-1",
                false,
                "associated",
                "enabled",
            ),
            member(
                "acme-ap-northeast-1",
                "ap-northeast-1",
                false,
                "associating",
                "disabled",
            ),
        ],
    }
}

/// A cluster-mode-off secondary with two nodes, as AWS describes it.
fn group_xml(status: &str, replicas: usize) -> String {
    let mut members = String::from(
        "<NodeGroupMember><CacheClusterId>acme-eu-west-1-001</CacheClusterId><CacheNodeId>0001</CacheNodeId>\
         <ReadEndpoint><Address>acme-eu-west-1-001.acme-eu-west-1.x1y2z3.euw1.cache.amazonaws.com</Address><Port>6379</Port></ReadEndpoint>\
         <PreferredAvailabilityZone>eu-west-1a</PreferredAvailabilityZone><CurrentRole>primary</CurrentRole></NodeGroupMember>",
    );
    let mut clusters = String::from("<ClusterId>acme-eu-west-1-001</ClusterId>");
    for n in 2..=replicas + 1 {
        members.push_str(&format!(
            "<NodeGroupMember><CacheClusterId>acme-eu-west-1-00{n}</CacheClusterId><CacheNodeId>0001</CacheNodeId>\
             <PreferredAvailabilityZone>eu-west-1b</PreferredAvailabilityZone><CurrentRole>replica</CurrentRole></NodeGroupMember>"
        ));
        clusters.push_str(&format!("<ClusterId>acme-eu-west-1-00{n}</ClusterId>"));
    }
    format!(
        "<ReplicationGroup><ReplicationGroupId>acme-eu-west-1</ReplicationGroupId>\
         <Description>shopfleet: shop acme in eu-west-1</Description>\
         <GlobalReplicationGroupInfo><GlobalReplicationGroupId>{GLOBAL}</GlobalReplicationGroupId>\
         <GlobalReplicationGroupMemberRole>SECONDARY</GlobalReplicationGroupMemberRole></GlobalReplicationGroupInfo>\
         <Status>{status}</Status>\
         <MemberClusters>{clusters}</MemberClusters>\
         <NodeGroups><NodeGroup><NodeGroupId>0001</NodeGroupId><Status>{status}</Status>\
         <PrimaryEndpoint><Address>master.acme-eu-west-1.x1y2z3.euw1.cache.amazonaws.com</Address><Port>6379</Port></PrimaryEndpoint>\
         <ReaderEndpoint><Address>replica.acme-eu-west-1.x1y2z3.euw1.cache.amazonaws.com</Address><Port>6379</Port></ReaderEndpoint>\
         <NodeGroupMembers>{members}</NodeGroupMembers></NodeGroup></NodeGroups>\
         <AutomaticFailover>enabled</AutomaticFailover><MultiAZ>enabled</MultiAZ>\
         <ClusterEnabled>false</ClusterEnabled><CacheNodeType>cache.r6g.large</CacheNodeType>\
         <AuthTokenEnabled>true</AuthTokenEnabled><TransitEncryptionEnabled>true</TransitEncryptionEnabled>\
         <AtRestEncryptionEnabled>true</AtRestEncryptionEnabled>\
         <ARN>arn:aws:elasticache:eu-west-1:123456789012:replicationgroup:acme-eu-west-1</ARN>\
         <ReplicationGroupCreateTime>2026-01-05T10:00:00.000Z</ReplicationGroupCreateTime>\
         <ClusterMode>disabled</ClusterMode><Engine>redis</Engine></ReplicationGroup>"
    )
}

fn endpoint(address: &str) -> Option<Endpoint> {
    Some(Endpoint {
        address: address.into(),
        port: 6379,
    })
}

#[tokio::test]
async fn a_global_datastore_is_created_from_the_primary_with_its_suffix_and_tags() {
    let (result, request) = capture(
        "us-east-1",
        ok(
            "CreateGlobalReplicationGroup",
            &global_xml(GLOBAL).replace(
                "<Status>available</Status><CacheNodeType>",
                "<Status>creating</Status><CacheNodeType>",
            ),
        ),
        async |port| {
            port.create_global_replication_group(&CreateGlobalReplicationGroupRequest {
                suffix: "acme".into(),
                description: "shopfleet: acme".into(),
                primary_replication_group_id: "acme-us-east-1".into(),
                tags: ownership(),
            })
            .await
        },
    )
    .await;
    let created = result.unwrap();
    assert_eq!(created.id, GLOBAL);
    assert_eq!(created.status, GlobalReplicationGroupStatus::Creating);
    assert_eq!(created.primary().unwrap().region, "us-east-1");

    let sent = sent(&request);
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.uri, "https://elasticache.us-east-1.amazonaws.com/");
    assert_eq!(
        sent.params,
        params([
            ("Action", "CreateGlobalReplicationGroup"),
            ("Version", "2015-02-02"),
            ("GlobalReplicationGroupIdSuffix", "acme"),
            ("GlobalReplicationGroupDescription", "shopfleet: acme"),
            ("PrimaryReplicationGroupId", "acme-us-east-1"),
            ("Tags.Tag.1.Key", "shopfleet.io/managed-by"),
            ("Tags.Tag.1.Value", "shopfleet"),
            ("Tags.Tag.2.Key", "shopfleet.io/shop"),
            ("Tags.Tag.2.Value", "acme"),
        ])
    );
    let authorization = request.headers().get("authorization").unwrap();
    assert!(
        authorization.contains("/us-east-1/elasticache/aws4_request"),
        "signed for the region and service: {authorization}"
    );
}

#[tokio::test]
async fn every_global_datastore_is_listed_with_member_roles_regions_and_shape_across_pages() {
    let replay = replayed(vec![
        ok(
            "DescribeGlobalReplicationGroups",
            &format!(
                "<Marker>page-2</Marker><GlobalReplicationGroups>{}</GlobalReplicationGroups>",
                global_xml(GLOBAL)
            ),
        ),
        ok(
            "DescribeGlobalReplicationGroups",
            &format!(
                "<GlobalReplicationGroups>{}</GlobalReplicationGroups>",
                global_xml("gxeiz-globex")
            ),
        ),
    ]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let found = cloud
        .elasticache("eu-west-1")
        .describe_global_replication_groups(None)
        .await
        .unwrap();
    assert_eq!(found, vec![global(GLOBAL), global("gxeiz-globex")]);
    assert_eq!(
        found[0].primary().unwrap().replication_group_id,
        "acme-us-east-1"
    );
    assert_eq!(
        found[0].member_in("ap-northeast-1").unwrap().status,
        GlobalMemberStatus::Associating
    );

    let requests: Vec<_> = replay.actual_requests().map(sent).collect();
    assert_eq!(requests.len(), 2, "the second page is fetched");
    assert_eq!(
        requests[0].uri,
        "https://elasticache.eu-west-1.amazonaws.com/"
    );
    assert_eq!(
        requests[0].params,
        params([
            ("Action", "DescribeGlobalReplicationGroups"),
            ("Version", "2015-02-02"),
            ("ShowMemberInfo", "true"),
        ])
    );
    assert_eq!(
        requests[1].params,
        params([
            ("Action", "DescribeGlobalReplicationGroups"),
            ("Version", "2015-02-02"),
            ("ShowMemberInfo", "true"),
            ("Marker", "page-2"),
        ])
    );
}

#[tokio::test]
async fn an_unknown_global_datastore_is_an_empty_list() {
    let (result, request) = capture(
        "eu-west-1",
        error(
            404,
            "GlobalReplicationGroupNotFoundFault",
            "GlobalReplicationGroup ldgnf-gone not found.",
        ),
        async |port| {
            port.describe_global_replication_groups(Some("ldgnf-gone"))
                .await
        },
    )
    .await;
    assert_eq!(result.unwrap(), vec![]);
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "DescribeGlobalReplicationGroups"),
            ("Version", "2015-02-02"),
            ("GlobalReplicationGroupId", "ldgnf-gone"),
            ("ShowMemberInfo", "true"),
        ])
    );
}

#[tokio::test]
async fn a_failover_names_the_new_primary_region_and_its_group() {
    let (result, request) = capture(
        "eu-west-1",
        ok(
            "FailoverGlobalReplicationGroup",
            &global_xml(GLOBAL).replace(
                "<Status>available</Status><Cache",
                "<Status>modifying</Status><Cache",
            ),
        ),
        async |port| {
            port.failover_global_replication_group(GLOBAL, "eu-west-1", "acme-eu-west-1")
                .await
        },
    )
    .await;
    result.unwrap();
    let sent = sent(&request);
    assert_eq!(sent.uri, "https://elasticache.eu-west-1.amazonaws.com/");
    assert_eq!(
        sent.params,
        params([
            ("Action", "FailoverGlobalReplicationGroup"),
            ("Version", "2015-02-02"),
            ("GlobalReplicationGroupId", GLOBAL),
            ("PrimaryRegion", "eu-west-1"),
            ("PrimaryReplicationGroupId", "acme-eu-west-1"),
        ])
    );
}

#[tokio::test]
async fn a_secondary_leaves_by_naming_itself_and_its_region() {
    let (result, request) = capture(
        "ap-northeast-1",
        ok("DisassociateGlobalReplicationGroup", &global_xml(GLOBAL)),
        async |port| {
            port.disassociate_global_replication_group(
                GLOBAL,
                "acme-ap-northeast-1",
                "ap-northeast-1",
            )
            .await
        },
    )
    .await;
    result.unwrap();
    let sent = sent(&request);
    assert_eq!(
        sent.uri,
        "https://elasticache.ap-northeast-1.amazonaws.com/"
    );
    assert_eq!(
        sent.params,
        params([
            ("Action", "DisassociateGlobalReplicationGroup"),
            ("Version", "2015-02-02"),
            ("GlobalReplicationGroupId", GLOBAL),
            ("ReplicationGroupId", "acme-ap-northeast-1"),
            ("ReplicationGroupRegion", "ap-northeast-1"),
        ])
    );
}

#[tokio::test]
async fn deleting_a_global_datastore_keeps_its_primary_group() {
    let (result, request) = capture(
        "us-east-1",
        ok("DeleteGlobalReplicationGroup", &global_xml(GLOBAL)),
        async |port| port.delete_global_replication_group(GLOBAL).await,
    )
    .await;
    result.unwrap();
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "DeleteGlobalReplicationGroup"),
            ("Version", "2015-02-02"),
            ("GlobalReplicationGroupId", GLOBAL),
            ("RetainPrimaryReplicationGroup", "true"),
        ])
    );
}

#[tokio::test]
async fn an_auth_token_rotation_sends_the_token_with_rotate_then_set_applied_immediately() {
    for (strategy, word) in [
        (AuthTokenUpdateStrategy::Rotate, "ROTATE"),
        (AuthTokenUpdateStrategy::Set, "SET"),
    ] {
        let (result, request) = capture(
            "eu-west-1",
            ok("ModifyReplicationGroup", &group_xml("modifying", 1)),
            async |port| {
                port.modify_replication_group(&ModifyReplicationGroupRequest {
                    replication_group_id: "acme-eu-west-1".into(),
                    auth_token: Some((AuthToken::new(TOKEN), strategy)),
                    ..ModifyReplicationGroupRequest::default()
                })
                .await
            },
        )
        .await;
        result.unwrap();
        assert_eq!(
            sent(&request).params,
            params([
                ("Action", "ModifyReplicationGroup"),
                ("Version", "2015-02-02"),
                ("ReplicationGroupId", "acme-eu-west-1"),
                ("ApplyImmediately", "true"),
                ("AuthToken", TOKEN),
                ("AuthTokenUpdateStrategy", word),
            ])
        );
    }
}

#[tokio::test]
async fn replica_count_changes_apply_immediately_and_return_the_changing_group() {
    let (result, request) = capture(
        "eu-west-1",
        ok("IncreaseReplicaCount", &group_xml("modifying", 1)),
        async |port| port.increase_replica_count("acme-eu-west-1", 2).await,
    )
    .await;
    assert_eq!(result.unwrap().status, ReplicationGroupStatus::Modifying);
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "IncreaseReplicaCount"),
            ("Version", "2015-02-02"),
            ("ReplicationGroupId", "acme-eu-west-1"),
            ("NewReplicaCount", "2"),
            ("ApplyImmediately", "true"),
        ])
    );

    let (result, request) = capture(
        "eu-west-1",
        ok("DecreaseReplicaCount", &group_xml("modifying", 2)),
        async |port| port.decrease_replica_count("acme-eu-west-1", 0).await,
    )
    .await;
    assert_eq!(result.unwrap().replicas_per_shard(), 2);
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "DecreaseReplicaCount"),
            ("Version", "2015-02-02"),
            ("ReplicationGroupId", "acme-eu-west-1"),
            ("NewReplicaCount", "0"),
            ("ApplyImmediately", "true"),
        ])
    );
}

#[tokio::test]
async fn a_described_secondary_maps_endpoints_nodes_roles_and_its_global_datastore() {
    let (result, request) = capture(
        "eu-west-1",
        ok(
            "DescribeReplicationGroups",
            &format!(
                "<ReplicationGroups>{}</ReplicationGroups>",
                group_xml("available", 1)
            ),
        ),
        async |port| port.describe_replication_group("acme-eu-west-1").await,
    )
    .await;
    let expected = ReplicationGroup {
        id: "acme-eu-west-1".into(),
        arn: "arn:aws:elasticache:eu-west-1:123456789012:replicationgroup:acme-eu-west-1".into(),
        description: "shopfleet: shop acme in eu-west-1".into(),
        status: "available".into(),
        engine: "redis".into(),
        cache_node_type: "cache.r6g.large".into(),
        cluster_enabled: false,
        node_groups: vec![NodeGroup {
            id: "0001".into(),
            status: "available".into(),
            primary_endpoint: endpoint("master.acme-eu-west-1.x1y2z3.euw1.cache.amazonaws.com"),
            reader_endpoint: endpoint("replica.acme-eu-west-1.x1y2z3.euw1.cache.amazonaws.com"),
            members: vec![
                NodeGroupMember {
                    cache_cluster_id: "acme-eu-west-1-001".into(),
                    current_role: Some("primary".into()),
                },
                NodeGroupMember {
                    cache_cluster_id: "acme-eu-west-1-002".into(),
                    current_role: Some("replica".into()),
                },
            ],
        }],
        configuration_endpoint: None,
        automatic_failover: "enabled".into(),
        multi_az: true,
        auth_token_enabled: true,
        transit_encryption_enabled: true,
        at_rest_encryption_enabled: true,
        global_replication_group: Some(GlobalReplicationGroupInfo {
            global_replication_group_id: GLOBAL.into(),
            is_primary: false,
        }),
        created_at: Some("2026-01-05T10:00:00Z".parse().unwrap()),
    };
    let group = result.unwrap().expect("the group AWS described");
    assert_eq!(group, expected);
    assert_eq!(
        group.read_endpoint().unwrap().to_host_port(),
        "replica.acme-eu-west-1.x1y2z3.euw1.cache.amazonaws.com:6379"
    );
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "DescribeReplicationGroups"),
            ("Version", "2015-02-02"),
            ("ReplicationGroupId", "acme-eu-west-1"),
        ])
    );
}

fn primary_request(token: Option<AuthToken>) -> CreateReplicationGroupRequest {
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
        auth_token: token,
        tags: ownership(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_primary_is_created_with_exactly_the_planned_parameters() {
    let (result, request) = capture(
        "us-east-1",
        ok("CreateReplicationGroup", &group_xml("creating", 1)),
        async |port| {
            port.create_replication_group(&primary_request(Some(AuthToken::new(TOKEN))))
                .await
        },
    )
    .await;
    assert_eq!(result.unwrap().status, ReplicationGroupStatus::Creating);
    let sent = sent(&request);
    assert_eq!(sent.uri, "https://elasticache.us-east-1.amazonaws.com/");
    assert_eq!(
        sent.params,
        params([
            ("Action", "CreateReplicationGroup"),
            ("Version", "2015-02-02"),
            ("ReplicationGroupId", "acme-us-east-1"),
            (
                "ReplicationGroupDescription",
                "shopfleet: shop acme in us-east-1"
            ),
            ("Engine", "redis"),
            ("CacheNodeType", "cache.r6g.large"),
            ("NumNodeGroups", "1"),
            ("ClusterMode", "disabled"),
            ("ReplicasPerNodeGroup", "1"),
            ("AutomaticFailoverEnabled", "true"),
            ("MultiAZEnabled", "true"),
            ("TransitEncryptionEnabled", "true"),
            ("AtRestEncryptionEnabled", "true"),
            ("AuthToken", TOKEN),
            ("Tags.Tag.1.Key", "shopfleet.io/managed-by"),
            ("Tags.Tag.1.Value", "shopfleet"),
            ("Tags.Tag.2.Key", "shopfleet.io/shop"),
            ("Tags.Tag.2.Value", "acme"),
        ])
    );
}

#[tokio::test]
async fn a_secondary_is_created_naming_only_its_global_datastore_and_no_shape() {
    let secondary = CreateReplicationGroupRequest {
        replication_group_id: "acme-eu-west-1".into(),
        description: "shopfleet: shop acme in eu-west-1".into(),
        global_replication_group_id: Some(GLOBAL.into()),
        engine: None,
        cache_node_type: None,
        num_node_groups: None,
        cluster_mode_enabled: None,
        replicas_per_node_group: 0,
        automatic_failover_enabled: None,
        multi_az_enabled: None,
        transit_encryption_enabled: None,
        at_rest_encryption_enabled: None,
        auth_token: None,
        ..primary_request(None)
    };
    let (result, request) = capture(
        "eu-west-1",
        ok("CreateReplicationGroup", &group_xml("creating", 0)),
        async |port| port.create_replication_group(&secondary).await,
    )
    .await;
    result.unwrap();
    assert_eq!(
        sent(&request).params,
        params([
            ("Action", "CreateReplicationGroup"),
            ("Version", "2015-02-02"),
            ("ReplicationGroupId", "acme-eu-west-1"),
            (
                "ReplicationGroupDescription",
                "shopfleet: shop acme in eu-west-1"
            ),
            ("GlobalReplicationGroupId", GLOBAL),
            ("ReplicasPerNodeGroup", "0"),
            ("Tags.Tag.1.Key", "shopfleet.io/managed-by"),
            ("Tags.Tag.1.Value", "shopfleet"),
            ("Tags.Tag.2.Key", "shopfleet.io/shop"),
            ("Tags.Tag.2.Value", "acme"),
        ])
    );
}

#[tokio::test]
async fn replication_lag_reads_every_node_of_the_group_and_keeps_the_worst_of_the_newest_minute() {
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    let t = now.as_second() as f64;
    let metrics = Cbor::map([(
        "MetricDataResults",
        Cbor::Array(vec![
            // The primary node of the secondary region publishes the lag…
            Cbor::map([
                ("Id", Cbor::text("lag0")),
                ("Label", Cbor::text("GlobalDatastoreReplicationLag")),
                (
                    "Timestamps",
                    Cbor::Array(vec![Cbor::Timestamp(t - 60.0), Cbor::Timestamp(t - 120.0)]),
                ),
                (
                    "Values",
                    Cbor::Array(vec![Cbor::Float(1.25), Cbor::Float(7.0)]),
                ),
                ("StatusCode", Cbor::text("Complete")),
            ]),
            // …its replicas publish nothing.
            Cbor::map([
                ("Id", Cbor::text("lag1")),
                ("Timestamps", Cbor::Array(vec![])),
                ("Values", Cbor::Array(vec![])),
                ("StatusCode", Cbor::text("Complete")),
            ]),
            Cbor::map([
                ("Id", Cbor::text("lag2")),
                ("Timestamps", Cbor::Array(vec![])),
                ("Values", Cbor::Array(vec![])),
                ("StatusCode", Cbor::text("Complete")),
            ]),
        ]),
    )]);
    let replay = replayed(vec![
        ok(
            "DescribeReplicationGroups",
            &format!(
                "<ReplicationGroups>{}</ReplicationGroups>",
                group_xml("available", 2)
            ),
        ),
        cbor_response(200, &metrics, None),
    ]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let lag = cloud
        .elasticache("eu-west-1")
        .replication_lag("acme-eu-west-1", now)
        .await
        .unwrap();
    assert_eq!(
        lag,
        Some(Duration::from_millis(1250)),
        "seconds, newest minute"
    );

    let requests: Vec<&HttpRequest> = replay.actual_requests().collect();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        sent(requests[0]).params,
        params([
            ("Action", "DescribeReplicationGroups"),
            ("Version", "2015-02-02"),
            ("ReplicationGroupId", "acme-eu-west-1"),
        ])
    );
    assert_eq!(
        requests[1].uri(),
        "https://monitoring.eu-west-1.amazonaws.com/service/GraniteServiceVersion20100801/operation/GetMetricData"
    );
    let node_query = |index: usize, node: &str| {
        Cbor::map([
            ("Id", Cbor::text(&format!("lag{index}"))),
            ("ReturnData", Cbor::Bool(true)),
            (
                "MetricStat",
                Cbor::map([
                    ("Period", Cbor::Int(60)),
                    ("Stat", Cbor::text("Maximum")),
                    (
                        "Metric",
                        Cbor::map([
                            ("Namespace", Cbor::text("AWS/ElastiCache")),
                            ("MetricName", Cbor::text("GlobalDatastoreReplicationLag")),
                            (
                                "Dimensions",
                                Cbor::Array(vec![Cbor::map([
                                    ("Name", Cbor::text("CacheClusterId")),
                                    ("Value", Cbor::text(node)),
                                ])]),
                            ),
                        ]),
                    ),
                ]),
            ),
        ])
    };
    assert_eq!(
        Cbor::decode(requests[1].body().bytes().unwrap()),
        Cbor::map([
            ("StartTime", Cbor::Timestamp(t - 300.0)),
            ("EndTime", Cbor::Timestamp(t)),
            ("ScanBy", Cbor::text("TimestampDescending")),
            (
                "MetricDataQueries",
                Cbor::Array(vec![
                    node_query(0, "acme-eu-west-1-001"),
                    node_query(1, "acme-eu-west-1-002"),
                    node_query(2, "acme-eu-west-1-003"),
                ]),
            ),
        ])
    );
}

#[tokio::test]
async fn the_lag_of_a_group_that_does_not_exist_is_not_found_without_asking_cloudwatch() {
    let replay = replayed(vec![error(
        404,
        "ReplicationGroupNotFoundFault",
        "Replication group acme-eu-west-1 not found.",
    )]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let error = cloud
        .elasticache("eu-west-1")
        .replication_lag("acme-eu-west-1", Timestamp::now())
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert_eq!(replay.actual_requests().count(), 1);
}

#[tokio::test]
async fn aws_error_answers_map_to_their_cloud_error_class() {
    let answers = [
        (400, "InvalidGlobalReplicationGroupState", "busy"),
        (404, "GlobalReplicationGroupNotFoundFault", "not_found"),
        (
            400,
            "GlobalReplicationGroupAlreadyExistsFault",
            "already_exists",
        ),
        (400, "InvalidReplicationGroupState", "busy"),
        (400, "ServiceLinkedRoleNotFoundFault", "invalid_state"),
        (400, "InsufficientCacheClusterCapacity", "invalid_state"),
        (400, "NodeQuotaForCustomerExceeded", "invalid_state"),
        (400, "InvalidParameterValue", "refused"),
        (400, "InvalidParameterCombination", "refused"),
        (400, "ReplicationGroupAlreadyExists", "already_exists"),
        (404, "ReplicationGroupNotFoundFault", "not_found"),
        (400, "SnapshotFeatureNotSupportedFault", "refused"),
        (400, "Throttling", "throttled"),
        (503, "ServiceUnavailable", "server_error"),
    ];
    let replay = replayed(
        answers
            .iter()
            .map(|(status, code, _)| error(*status, code, "as AWS says it"))
            .collect(),
    );
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let eu = cloud.elasticache("eu-west-1");
    let global_request = CreateGlobalReplicationGroupRequest {
        suffix: "acme".into(),
        description: "d".into(),
        primary_replication_group_id: "acme-eu-west-1".into(),
        tags: ownership(),
    };
    let delete = shopfleet::cloud::elasticache::DeleteReplicationGroupRequest {
        replication_group_id: "acme-eu-west-1".into(),
        final_snapshot_id: Some("acme-eu-west-1-final".into()),
    };
    let results = [
        eu.failover_global_replication_group(GLOBAL, "eu-west-1", "acme-eu-west-1")
            .await
            .unwrap_err(),
        eu.disassociate_global_replication_group(GLOBAL, "acme-eu-west-1", "eu-west-1")
            .await
            .unwrap_err(),
        eu.create_global_replication_group(&global_request)
            .await
            .unwrap_err(),
        eu.create_global_replication_group(&global_request)
            .await
            .unwrap_err(),
        eu.create_global_replication_group(&global_request)
            .await
            .unwrap_err(),
        eu.increase_replica_count("acme-eu-west-1", 2)
            .await
            .unwrap_err(),
        eu.increase_replica_count("acme-eu-west-1", 5)
            .await
            .unwrap_err(),
        eu.decrease_replica_count("acme-eu-west-1", 0)
            .await
            .unwrap_err(),
        eu.create_replication_group(&primary_request(None))
            .await
            .unwrap_err(),
        eu.create_replication_group(&primary_request(None))
            .await
            .unwrap_err(),
        eu.delete_replication_group(&delete).await.unwrap_err(),
        eu.delete_replication_group(&delete).await.unwrap_err(),
        eu.delete_global_replication_group(GLOBAL)
            .await
            .unwrap_err(),
        eu.add_tags(
            "arn:aws:elasticache:eu-west-1:123456789012:replicationgroup:acme-eu-west-1",
            &ownership(),
        )
        .await
        .unwrap_err(),
    ];
    for ((_, code, label), error) in answers.iter().zip(&results) {
        assert_eq!(error.code(), *code, "{error:?}");
        assert_eq!(error.metric_label(), *label, "{error:?}");
        assert_eq!(error.message(), "as AWS says it");
    }
    assert_eq!(
        results[0],
        CloudError::transient(
            TransientKind::Busy,
            "InvalidGlobalReplicationGroupState",
            "as AWS says it"
        )
    );
    assert_eq!(
        replay.actual_requests().count(),
        answers.len(),
        "one attempt each"
    );
}

/// Every shop's Redis secondary in a region is read in one GetMetricData:
/// one query per node of every group, each group's lag from its own nodes.
#[tokio::test]
async fn the_lags_of_many_groups_are_one_request_with_a_query_per_node() {
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    let t = now.as_second() as f64;
    let point = |id: &str, value: f64| {
        Cbor::map([
            ("Id", Cbor::text(id)),
            ("Timestamps", Cbor::Array(vec![Cbor::Timestamp(t - 60.0)])),
            ("Values", Cbor::Array(vec![Cbor::Float(value)])),
            ("StatusCode", Cbor::text("Complete")),
        ])
    };
    let metrics = Cbor::map([(
        "MetricDataResults",
        Cbor::Array(vec![point("lag0", 1.25), point("lag2", 4.0)]),
    )]);
    let acme = group_xml("available", 1);
    let globex = acme.replace("acme-eu-west-1", "globex-eu-west-1");
    let replay = replayed(vec![
        ok(
            "DescribeReplicationGroups",
            &format!("<ReplicationGroups>{acme}{globex}</ReplicationGroups>"),
        ),
        cbor_response(200, &metrics, None),
    ]);
    let cloud = cloud_over(SharedHttpClient::new(replay.clone()), 1).await;
    let port = cloud.elasticache("eu-west-1");
    let groups = port.describe_replication_groups().await.unwrap();
    let lags = port.replication_lags(&groups, now).await.unwrap();
    assert_eq!(lags["acme-eu-west-1"], Some(Duration::from_millis(1250)));
    assert_eq!(lags["globex-eu-west-1"], Some(Duration::from_secs(4)));

    let requests: Vec<&HttpRequest> = replay.actual_requests().collect();
    assert_eq!(requests.len(), 2, "one listing, one metric request");
    let Cbor::Map(mut body) = Cbor::decode(requests[1].body().bytes().unwrap()) else {
        panic!("a CBOR map");
    };
    let Some(Cbor::Array(queries)) = body.remove("MetricDataQueries") else {
        panic!("no queries");
    };
    assert_eq!(queries.len(), 4, "two nodes of each of two groups");
}
