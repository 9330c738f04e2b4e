//! What the operator sends for a shop placed in a real account's network,
//! from its own plans through the real adapters, captured with the SDK's
//! test utilities: the calls and parameters moto does not implement or
//! does not report back (`tests/aws_network.rs` covers the rest against
//! moto).
//!
//! Each test builds the request the plan makes for a spec, sends it
//! through a client built as in production (only the HTTP client swapped)
//! and fixes the exact form parameters. AWS's rules they encode:
//! - a secondary of a Global Datastore sends no engine, version, node type,
//!   shards, parameter group, encryption, Multi-AZ or failover flags ("do
//!   not pass in values for these parameters"), but its own subnet group,
//!   security groups, KMS key (regional) and AUTH token;
//! - a secondary Aurora cluster sends no master credentials and the global
//!   cluster's exact version, with its own regional network;
//! - a major Aurora PostgreSQL version is resolved with
//!   `DescribeDBEngineVersions` `DefaultOnly`;
//! - every instance is created with `PubliclyAccessible=false`.

mod aws;

use std::collections::BTreeMap;

use aws::cloud_over;
use aws::wire::{params, query_ok, sent};
use aws_sdk_rds::config::SharedHttpClient;
use aws_sdk_rds::config::http::HttpRequest;
use aws_smithy_http_client::test_util::capture_request;
use aws_smithy_types::body::SdkBody;
use shopfleet::api::{CacheNetwork, DatabaseNetwork, DatabaseParameterGroups, ShopRegionSpec};
use shopfleet::cloud::Cloud;
use shopfleet::cloud::aurora::{
    AuroraAction, AuroraPlanInput, GlobalCluster, GlobalClusterStatus, GlobalMember,
    MasterPassword, ModifyInstanceRequest, VersionLookup,
};
use shopfleet::cloud::elasticache::{
    CacheAction, CacheAuth, CachePlan, CachePlanInput, GlobalReplicationGroup,
    GlobalReplicationGroupMember, Tags,
};

const RDS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
const CACHE: &str = "http://elasticache.amazonaws.com/doc/2015-02-02/";

fn spec(region: &str) -> ShopRegionSpec {
    let text = std::fs::read_to_string(format!(
        "{}/samples/acme-{region}.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let region: shopfleet::api::ShopRegion = serde_saphyr::from_str(&text).unwrap();
    let mut spec = region.spec;
    spec.database.network = Some(DatabaseNetwork {
        subnet_group_name: "acme-orders-db".into(),
        security_group_ids: vec!["sg-0bbb0000000000001".into(), "sg-0aaa0000000000001".into()],
        port: None,
    });
    spec.database.parameter_groups = Some(DatabaseParameterGroups {
        cluster: Some("acme-cluster".into()),
        instance: Some("acme-instance".into()),
    });
    spec.cache.network = Some(CacheNetwork {
        subnet_group_name: "acme-orders-cache".into(),
        security_group_ids: vec!["sg-0ccc0000000000001".into()],
    });
    spec.cache.engine_version = Some("7.1".into());
    spec.cache.parameter_group_name = Some("acme-redis7".into());
    spec.cache.kms_key_id = Some(format!(
        "arn:aws:kms:{}:123456789012:key/acme-cache",
        spec.region
    ));
    spec.tags = BTreeMap::from([("cost-center".into(), "shop-42".into())]);
    spec
}

async fn captured(
    region: &str,
    response: http::Response<SdkBody>,
    call: impl AsyncFnOnce(&dyn Cloud),
) -> BTreeMap<String, String> {
    let (client, request) = capture_request(Some(response));
    let cloud = cloud_over(SharedHttpClient::new(client), 1).await;
    call(&cloud).await;
    let request: HttpRequest = request.expect_request();
    let sent = sent(&request);
    assert!(
        sent.uri.contains(&format!(".{region}.amazonaws.com")),
        "sent to the region's own endpoint: {}",
        sent.uri
    );
    sent.params
}

fn only_step<A: std::fmt::Debug>(plan: shopfleet::cloud::executor::CloudPlan<A>) -> A {
    match plan {
        shopfleet::cloud::executor::CloudPlan::Steps(mut steps) if steps.len() == 1 => {
            steps.remove(0)
        }
        other => panic!("expected one step, got {other:?}"),
    }
}

/// What `CreateDBCluster` of `request` sends in `region`.
async fn create_cluster_sent(
    region: &str,
    request: &shopfleet::cloud::aurora::CreateClusterRequest,
) -> BTreeMap<String, String> {
    let answer = query_ok(RDS, "CreateDBCluster", &cluster_xml(&request.cluster_id));
    captured(region, answer, async |cloud| {
        cloud.aurora(region).create_cluster(request).await.unwrap();
    })
    .await
}

fn cluster_xml(id: &str) -> String {
    format!(
        "<DBCluster><DBClusterIdentifier>{id}</DBClusterIdentifier><Status>creating</Status>\
         <Engine>aurora-postgresql</Engine><EngineVersion>16.6</EngineVersion></DBCluster>"
    )
}

#[tokio::test]
async fn a_major_version_is_resolved_to_the_regions_default_minor() {
    let response = query_ok(
        RDS,
        "DescribeDBEngineVersions",
        "<DBEngineVersions><DBEngineVersion><Engine>aurora-postgresql</Engine>\
         <EngineVersion>16.6</EngineVersion></DBEngineVersion></DBEngineVersions>",
    );
    let sent = captured("us-east-1", response, async |cloud| {
        let version = cloud
            .aurora("us-east-1")
            .default_engine_version("aurora-postgresql", "16")
            .await
            .unwrap();
        assert_eq!(version.as_deref(), Some("16.6"));
    })
    .await;
    assert_eq!(
        sent,
        params([
            ("Action", "DescribeDBEngineVersions"),
            ("Version", "2014-10-31"),
            ("Engine", "aurora-postgresql"),
            ("EngineVersion", "16"),
            ("DefaultOnly", "true"),
        ])
    );
}

#[tokio::test]
async fn the_primary_cluster_is_created_in_its_network_with_the_resolved_version_and_a_password() {
    let spec = spec("us-east-1");
    let password = MasterPassword::new("operator-generated-0123456789");
    let AuroraAction::CreatePrimaryCluster { request } =
        only_step(shopfleet::cloud::aurora::plan::plan(&AuroraPlanInput {
            spec: &spec,
            global: None,
            cluster: None,
            instances: &[],
            version: &VersionLookup::Default("16.6".into()),
            master_password: Some(&password),
        }))
    else {
        panic!("expected CreatePrimaryCluster");
    };
    let sent = create_cluster_sent("us-east-1", &request).await;
    assert_eq!(
        sent,
        params([
            ("Action", "CreateDBCluster"),
            ("Version", "2014-10-31"),
            ("DBClusterIdentifier", "acme-us-east-1"),
            ("Engine", "aurora-postgresql"),
            ("EngineVersion", "16.6"),
            ("StorageEncrypted", "true"),
            ("DeletionProtection", "true"),
            ("MasterUsername", "shopfleet_admin"),
            ("MasterUserPassword", "operator-generated-0123456789"),
            ("DBSubnetGroupName", "acme-orders-db"),
            (
                "VpcSecurityGroupIds.VpcSecurityGroupId.1",
                "sg-0aaa0000000000001"
            ),
            (
                "VpcSecurityGroupIds.VpcSecurityGroupId.2",
                "sg-0bbb0000000000001"
            ),
            ("DBClusterParameterGroupName", "acme-cluster"),
            ("Tags.Tag.1.Key", "cost-center"),
            ("Tags.Tag.1.Value", "shop-42"),
            ("Tags.Tag.2.Key", "shopfleet.io/managed-by"),
            ("Tags.Tag.2.Value", "shopfleet"),
            ("Tags.Tag.3.Key", "shopfleet.io/region"),
            ("Tags.Tag.3.Value", "us-east-1"),
            ("Tags.Tag.4.Key", "shopfleet.io/shop"),
            ("Tags.Tag.4.Value", "acme"),
        ])
    );
}

#[tokio::test]
async fn a_secondary_cluster_sends_its_own_network_the_global_version_and_no_credentials() {
    let spec = spec("eu-west-1");
    let global = GlobalCluster {
        id: "acme-global".into(),
        arn: "arn:aws:rds::123456789012:global-cluster:acme-global".into(),
        status: GlobalClusterStatus::Available,
        engine: "aurora-postgresql".into(),
        engine_version: "16.6".into(),
        members: vec![GlobalMember {
            cluster_arn: "arn:aws:rds:us-east-1:123456789012:cluster:acme-us-east-1".into(),
            region: "us-east-1".into(),
            is_writer: true,
        }],
        deletion_protection: true,
        endpoint: None,
        failover: None,
    };
    let AuroraAction::CreateSecondaryCluster { request } =
        only_step(shopfleet::cloud::aurora::plan::plan(&AuroraPlanInput {
            spec: &spec,
            global: Some(&global),
            cluster: None,
            instances: &[],
            version: &VersionLookup::NotNeeded,
            master_password: Some(&MasterPassword::new("never-sent-by-a-secondary")),
        }))
    else {
        panic!("expected CreateSecondaryCluster");
    };
    let sent = create_cluster_sent("eu-west-1", &request).await;
    assert!(!sent.contains_key("MasterUsername") && !sent.contains_key("MasterUserPassword"));
    assert!(!sent.contains_key("ManageMasterUserPassword"));
    assert_eq!(sent["GlobalClusterIdentifier"], "acme-global");
    assert_eq!(sent["EngineVersion"], "16.6");
    assert_eq!(sent["DBSubnetGroupName"], "acme-orders-db");
    assert_eq!(
        sent["VpcSecurityGroupIds.VpcSecurityGroupId.1"],
        "sg-0aaa0000000000001"
    );
    assert_eq!(sent["Tags.Tag.3.Value"], "eu-west-1");
}

#[tokio::test]
async fn instances_are_never_publicly_accessible_and_take_the_instance_parameter_group() {
    let spec = spec("us-east-1");
    let request = shopfleet::cloud::aurora::CreateInstanceRequest {
        instance_id: "acme-us-east-1-0".into(),
        cluster_id: "acme-us-east-1".into(),
        class: spec.database.instance_class.clone(),
        engine: "aurora-postgresql".into(),
        tags: Tags::new(),
        parameter_group_name: Some("acme-instance".into()),
    };
    let sent = captured(
        "us-east-1",
        query_ok(
            RDS,
            "CreateDBInstance",
            "<DBInstance><DBInstanceIdentifier>acme-us-east-1-0</DBInstanceIdentifier>\
             <DBInstanceStatus>creating</DBInstanceStatus></DBInstance>",
        ),
        async |cloud| {
            cloud
                .aurora("us-east-1")
                .create_instance(&request)
                .await
                .unwrap();
        },
    )
    .await;
    assert_eq!(sent["PubliclyAccessible"], "false");
    assert_eq!(sent["DBParameterGroupName"], "acme-instance");

    let sent = captured(
        "us-east-1",
        query_ok(RDS, "ModifyDBInstance", "<DBInstance></DBInstance>"),
        async |cloud| {
            cloud
                .aurora("us-east-1")
                .modify_instance(&ModifyInstanceRequest {
                    instance_id: "acme-us-east-1-0".into(),
                    parameter_group_name: Some("acme-instance-v2".into()),
                })
                .await
                .unwrap();
        },
    )
    .await;
    assert_eq!(
        sent,
        params([
            ("Action", "ModifyDBInstance"),
            ("Version", "2014-10-31"),
            ("DBInstanceIdentifier", "acme-us-east-1-0"),
            ("ApplyImmediately", "true"),
            ("DBParameterGroupName", "acme-instance-v2"),
        ])
    );
}

fn group_xml(id: &str) -> String {
    format!(
        "<ReplicationGroup><ReplicationGroupId>{id}</ReplicationGroupId><Status>creating</Status></ReplicationGroup>"
    )
}

fn cache_plan(spec: &ShopRegionSpec, global: Option<&GlobalReplicationGroup>) -> CacheAction {
    let plan: CachePlan = shopfleet::cloud::elasticache::plan::plan(&CachePlanInput {
        spec,
        auth: &CacheAuth::Disabled,
        global,
        replication_group: None,
        tags: &Tags::new(),
        security_groups: None,
        recorded_auth: None,
        rolled_auth: None,
    });
    only_step(plan)
}

#[tokio::test]
async fn the_primary_replication_group_sends_version_parameter_group_network_and_key() {
    let spec = spec("us-east-1");
    let CacheAction::CreatePrimaryReplicationGroup { request } = cache_plan(&spec, None) else {
        panic!("expected CreatePrimaryReplicationGroup");
    };
    let sent = captured(
        "us-east-1",
        query_ok(
            CACHE,
            "CreateReplicationGroup",
            &group_xml("acme-us-east-1"),
        ),
        async |cloud| {
            cloud
                .elasticache("us-east-1")
                .create_replication_group(&request)
                .await
                .unwrap();
        },
    )
    .await;
    for (key, value) in [
        ("EngineVersion", "7.1"),
        ("CacheParameterGroupName", "acme-redis7"),
        ("CacheSubnetGroupName", "acme-orders-cache"),
        ("SecurityGroupIds.SecurityGroupId.1", "sg-0ccc0000000000001"),
        (
            "KmsKeyId",
            "arn:aws:kms:us-east-1:123456789012:key/acme-cache",
        ),
        ("TransitEncryptionEnabled", "true"),
        ("AtRestEncryptionEnabled", "true"),
        ("AutomaticFailoverEnabled", "true"),
        ("Tags.Tag.1.Key", "cost-center"),
    ] {
        assert_eq!(
            sent.get(key).map(String::as_str),
            Some(value),
            "{key}: {sent:#?}"
        );
    }
}

#[tokio::test]
async fn a_secondary_replication_group_sends_only_what_is_regional() {
    let spec = spec("eu-west-1");
    let global = GlobalReplicationGroup {
        id: "ldgnf-acme".into(),
        arn: "arn:aws:elasticache::123456789012:globalreplicationgroup:ldgnf-acme".into(),
        description: None,
        status: shopfleet::cloud::elasticache::GlobalReplicationGroupStatus::PrimaryOnly,
        cache_node_type: "cache.r6g.large".into(),
        engine: "redis".into(),
        engine_version: "7.1.0".into(),
        cluster_enabled: false,
        num_node_groups: 1,
        auth_token_enabled: false,
        transit_encryption_enabled: true,
        at_rest_encryption_enabled: true,
        members: vec![GlobalReplicationGroupMember {
            replication_group_id: "acme-us-east-1".into(),
            region: "us-east-1".into(),
            is_primary: true,
            status: shopfleet::cloud::elasticache::GlobalMemberStatus::Associated,
            automatic_failover: shopfleet::cloud::elasticache::AutomaticFailoverStatus::Enabled,
        }],
    };
    let CacheAction::CreateSecondaryReplicationGroup { request } = cache_plan(&spec, Some(&global))
    else {
        panic!("expected CreateSecondaryReplicationGroup");
    };
    let sent = captured(
        "eu-west-1",
        query_ok(
            CACHE,
            "CreateReplicationGroup",
            &group_xml("acme-eu-west-1"),
        ),
        async |cloud| {
            cloud
                .elasticache("eu-west-1")
                .create_replication_group(&request)
                .await
                .unwrap();
        },
    )
    .await;
    for inherited in [
        "Engine",
        "EngineVersion",
        "CacheNodeType",
        "NumNodeGroups",
        "CacheParameterGroupName",
        "TransitEncryptionEnabled",
        "AtRestEncryptionEnabled",
        "AutomaticFailoverEnabled",
        "MultiAZEnabled",
    ] {
        assert!(!sent.contains_key(inherited), "{inherited} sent: {sent:#?}");
    }
    assert_eq!(sent["GlobalReplicationGroupId"], "ldgnf-acme");
    assert_eq!(sent["CacheSubnetGroupName"], "acme-orders-cache");
    assert_eq!(
        sent["SecurityGroupIds.SecurityGroupId.1"],
        "sg-0ccc0000000000001"
    );
    assert_eq!(
        sent["KmsKeyId"], "arn:aws:kms:eu-west-1:123456789012:key/acme-cache",
        "the secondary's own regional key"
    );
}

#[tokio::test]
async fn a_cache_subnet_group_lookup_names_the_group() {
    let sent = captured(
        "ap-northeast-1",
        query_ok(
            CACHE,
            "DescribeCacheSubnetGroups",
            "<CacheSubnetGroups><CacheSubnetGroup><CacheSubnetGroupName>acme-orders-cache</CacheSubnetGroupName>\
             </CacheSubnetGroup></CacheSubnetGroups>",
        ),
        async |cloud| {
            assert!(
                cloud
                    .elasticache("ap-northeast-1")
                    .cache_subnet_group_exists("acme-orders-cache")
                    .await
                    .unwrap()
            );
        },
    )
    .await;
    assert_eq!(
        sent,
        params([
            ("Action", "DescribeCacheSubnetGroups"),
            ("Version", "2015-02-02"),
            ("CacheSubnetGroupName", "acme-orders-cache"),
        ])
    );
}

#[tokio::test]
async fn the_security_groups_of_a_replication_group_are_read_from_one_of_its_nodes() {
    let sent = captured(
        "eu-west-1",
        query_ok(
            CACHE,
            "DescribeCacheClusters",
            "<CacheClusters><CacheCluster><CacheClusterId>acme-eu-west-1-001</CacheClusterId>\
             <SecurityGroups><member><SecurityGroupId>sg-0bbb</SecurityGroupId><Status>active</Status></member>\
             <member><SecurityGroupId>sg-0aaa</SecurityGroupId><Status>active</Status></member></SecurityGroups>\
             </CacheCluster></CacheClusters>",
        ),
        async |cloud| {
            let groups = cloud
                .elasticache("eu-west-1")
                .node_security_groups("acme-eu-west-1-001")
                .await
                .unwrap();
            assert_eq!(groups, vec!["sg-0aaa", "sg-0bbb"]);
        },
    )
    .await;
    assert_eq!(
        sent,
        params([
            ("Action", "DescribeCacheClusters"),
            ("Version", "2015-02-02"),
            ("CacheClusterId", "acme-eu-west-1-001"),
        ])
    );
}

#[tokio::test]
async fn cache_security_groups_change_in_place_applied_immediately() {
    let sent = captured(
        "eu-west-1",
        query_ok(
            CACHE,
            "ModifyReplicationGroup",
            &group_xml("acme-eu-west-1"),
        ),
        async |cloud| {
            cloud
                .elasticache("eu-west-1")
                .modify_replication_group(
                    &shopfleet::cloud::elasticache::ModifyReplicationGroupRequest {
                        replication_group_id: "acme-eu-west-1".into(),
                        security_group_ids: Some(vec!["sg-0aaa".into(), "sg-0bbb".into()]),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        },
    )
    .await;
    assert_eq!(
        sent,
        params([
            ("Action", "ModifyReplicationGroup"),
            ("Version", "2015-02-02"),
            ("ReplicationGroupId", "acme-eu-west-1"),
            ("ApplyImmediately", "true"),
            ("SecurityGroupIds.SecurityGroupId.1", "sg-0aaa"),
            ("SecurityGroupIds.SecurityGroupId.2", "sg-0bbb"),
        ])
    );
}
