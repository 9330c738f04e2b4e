//! A real account's network through the real adapters, against moto: the
//! test builds what a platform team's account already holds (a VPC, its
//! subnets, DB and cache subnet groups, security groups, parameter groups)
//! with boto3, then the operator's plans and adapters create the shop in
//! it, and `Describe*` reads back what the spec named.
//!
//! moto has no `DescribeDBEngineVersions`, no cache parameter groups, and
//! reports no subnet group or security groups for a replication group's
//! nodes (`DescribeCacheClusters` lists none): those requests are fixed by
//! `tests/aws_network_requests.rs`.

mod aws;
mod common;

use std::sync::Arc;
use std::time::Duration;

use shopfleet::api::conditions::types;
use shopfleet::api::{DatabaseNetwork, DatabaseParameterGroups, ShopRegion, ShopRegionSpec};
use shopfleet::cloud::Cloud;
use shopfleet::cloud::aurora::{Aurora, AuroraOutcome, MasterPassword};
use shopfleet::cloud::executor;

use aws::Emulated;

/// A VPC with two subnets in two zones of `region`, and everything named
/// after `prefix`: DB and cache subnet groups, two security groups, a
/// cluster and an instance parameter group.
fn account_network(moto: &Emulated, region: &str, prefix: &str) -> (String, String) {
    let ids = moto.boto3(
        region,
        &format!(
            r#"
vpc = ec2.create_vpc(CidrBlock='10.7.0.0/16')['Vpc']['VpcId']
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f'10.7.{{n}}.0/24', AvailabilityZone='{region}' + z)['Subnet']['SubnetId'] for n, z in ((1, 'a'), (2, 'c'))]
rds.create_db_subnet_group(DBSubnetGroupName='{prefix}-db', DBSubnetGroupDescription='orders', SubnetIds=subnets)
elasticache.create_cache_subnet_group(CacheSubnetGroupName='{prefix}-cache', CacheSubnetGroupDescription='orders', SubnetIds=subnets)
groups = [ec2.create_security_group(GroupName=f'{prefix}-{{n}}', Description='orders', VpcId=vpc)['GroupId'] for n in (1, 2)]
rds.create_db_cluster_parameter_group(DBClusterParameterGroupName='{prefix}-cluster', DBParameterGroupFamily='aurora-postgresql16', Description='orders')
rds.create_db_cluster_parameter_group(DBClusterParameterGroupName='{prefix}-cluster-v2', DBParameterGroupFamily='aurora-postgresql16', Description='orders')
rds.create_db_parameter_group(DBParameterGroupName='{prefix}-instance', DBParameterGroupFamily='aurora-postgresql16', Description='orders')
result = groups
"#
        ),
    );
    let groups: Vec<String> = serde_json::from_value(ids).unwrap();
    (groups[0].clone(), groups[1].clone())
}

fn spec(shop: &str, region: &str, security_group: &str) -> ShopRegionSpec {
    let path = format!("samples/acme-{region}.yaml");
    let mut spec = common::sample(&path).spec;
    spec.shop = shop.into();
    // moto has no DescribeDBEngineVersions: name the full version.
    spec.database.engine_version = "16.6".into();
    spec.database.network = Some(DatabaseNetwork {
        subnet_group_name: format!("{shop}-db"),
        security_group_ids: vec![security_group.into()],
        port: Some(6432),
    });
    spec.database.parameter_groups = Some(DatabaseParameterGroups {
        cluster: Some(format!("{shop}-cluster")),
        instance: Some(format!("{shop}-instance")),
    });
    spec.tags.insert("cost-center".into(), "shop-42".into());
    spec
}

/// The Aurora concern, pass after pass, as the controller runs it, until it
/// converges (moto makes resources available at once).
async fn converge(moto: &Emulated, spec: &ShopRegionSpec) -> AuroraOutcome {
    let port = moto.aurora(&spec.region);
    let password = MasterPassword::new("moto-master-password-0123");
    let mut outcome = None;
    for _ in 0..10 {
        let pass = executor::reconcile(&Aurora {
            port: port.as_ref(),
            spec,
            previous: None,
            now: moto.cloud.clock().now(),
            master_password: Some(&password),
        })
        .await;
        assert_eq!(pass.terminal, None, "{:?}", pass.condition);
        let converged = pass.condition.reason == "Available";
        outcome = Some(pass);
        if converged {
            break;
        }
    }
    outcome.expect("at least one pass")
}

#[tokio::test]
async fn the_cluster_lands_in_the_named_network_with_its_parameter_groups_and_tags_and_security_groups_change_in_place()
 {
    let moto = Emulated::start().await;
    let (first, second) = account_network(&moto, "us-east-1", "netshop");
    let mut spec = spec("netshop", "us-east-1", &first);
    let outcome = converge(&moto, &spec).await;
    assert_eq!(
        outcome.condition.reason, "Available",
        "{:?}",
        outcome.condition
    );

    let port = moto.aurora("us-east-1");
    let cluster = port
        .describe_cluster("netshop-us-east-1")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(cluster.subnet_group.as_deref(), Some("netshop-db"));
    assert_eq!(cluster.security_group_ids, vec![first.clone()]);
    assert_eq!(cluster.parameter_group.as_deref(), Some("netshop-cluster"));
    assert_eq!(cluster.port, Some(6432));
    assert_eq!(cluster.tags.get("cost-center"), Some("shop-42"));
    assert_eq!(cluster.tags.get("shopfleet.io/shop"), Some("netshop"));
    let instances = port.list_instances(&cluster.id).await.unwrap();
    assert_eq!(instances.len(), 2, "writer and one reader");
    for instance in &instances {
        assert_eq!(
            instance.parameter_group.as_deref(),
            Some("netshop-instance")
        );
        assert_eq!(instance.tags.get("cost-center"), Some("shop-42"));
    }

    // Security groups and the cluster parameter group change in place; a
    // new user tag is added.
    let network = spec.database.network.as_mut().unwrap();
    network.security_group_ids = vec![first.clone(), second.clone()];
    spec.database.parameter_groups.as_mut().unwrap().cluster = Some("netshop-cluster-v2".into());
    spec.tags.insert("team".into(), "payments".into());
    let outcome = converge(&moto, &spec).await;
    assert_eq!(outcome.condition.reason, "Available");
    let cluster = port
        .describe_cluster("netshop-us-east-1")
        .await
        .unwrap()
        .unwrap();
    let mut both = vec![first, second];
    both.sort();
    assert_eq!(cluster.security_group_ids, both);
    assert_eq!(
        cluster.parameter_group.as_deref(),
        Some("netshop-cluster-v2")
    );
    assert_eq!(cluster.tags.get("team"), Some("payments"));
}

#[tokio::test]
async fn subnet_groups_are_found_by_name_and_a_missing_one_is_an_answer_not_an_error() {
    let moto = Emulated::start().await;
    account_network(&moto, "eu-west-1", "lookup");
    let found = moto
        .aurora("eu-west-1")
        .describe_subnet_group("lookup-db")
        .await
        .unwrap()
        .expect("found");
    assert!(found.vpc_id.is_some_and(|v| v.starts_with("vpc-")));
    assert_eq!(
        moto.aurora("eu-west-1")
            .describe_subnet_group("lookup-typo")
            .await
            .unwrap(),
        None
    );
    let cache = moto.elasticache("eu-west-1");
    assert!(
        cache
            .cache_subnet_group_exists("lookup-cache")
            .await
            .unwrap()
    );
    assert!(
        !cache
            .cache_subnet_group_exists("lookup-typo")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_shop_region_naming_a_missing_subnet_group_stalls_and_nothing_is_created_in_aws() {
    let moto = Emulated::start().await;
    let (group, _) = account_network(&moto, "ap-northeast-1", "stall");
    let mut spec = spec("stall", "ap-northeast-1", &group);
    spec.database.network.as_mut().unwrap().subnet_group_name = "stall-dbb".into();
    spec.cache.network = Some(shopfleet::api::CacheNetwork {
        subnet_group_name: "stall-cache".into(),
        security_group_ids: vec![group],
    });
    let cloud: Arc<dyn Cloud> = moto.cloud.clone();
    let h = common::Harness::in_process_with(Some(cloud)).await;
    h.create(&ShopRegion::new("stall-ap-northeast-1", spec))
        .await
        .unwrap();
    let stalled = h
        .wait_for("stall-ap-northeast-1", "Stalled=True", |r| {
            common::condition(r, types::STALLED).is_some_and(|c| c.status == "True")
        })
        .await;
    let condition = common::condition(&stalled, types::STALLED).unwrap();
    assert_eq!(condition.reason, "SubnetGroupNotFound");
    assert!(
        condition
            .message
            .contains("spec.database.network.subnetGroupName")
            && condition.message.contains("stall-dbb"),
        "{}",
        condition.message
    );
    // Give a second reconcile the chance to do something wrong.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = moto.boto3(
        "ap-northeast-1",
        "result = [c['DBClusterIdentifier'] for c in rds.describe_db_clusters()['DBClusters'] if c['DBClusterIdentifier'].startswith('stall')] + \
         [g['ReplicationGroupId'] for g in elasticache.describe_replication_groups()['ReplicationGroups'] if g['ReplicationGroupId'].startswith('stall')]",
    );
    assert_eq!(left, serde_json::json!([]), "nothing was created");
    h.stop().await;
}

#[tokio::test]
async fn the_replication_group_is_created_in_the_named_cache_subnet_group_with_the_user_tags() {
    use shopfleet::cloud::elasticache::{CacheAction, CacheAuth, CachePlanInput, Tags};
    let moto = Emulated::start().await;
    let (group, _) = account_network(&moto, "us-east-1", "cachenet");
    let mut spec = spec("cachenet", "us-east-1", &group);
    spec.cache.network = Some(shopfleet::api::CacheNetwork {
        subnet_group_name: "cachenet-cache".into(),
        security_group_ids: vec![group],
    });
    let plan = shopfleet::cloud::elasticache::plan::plan(&CachePlanInput {
        spec: &spec,
        auth: &CacheAuth::Disabled,
        global: None,
        replication_group: None,
        tags: &Tags::new(),
        security_groups: None,
        recorded_auth: None,
        rolled_auth: None,
    });
    let shopfleet::cloud::executor::CloudPlan::Steps(steps) = plan else {
        panic!("a new region plans its creation: {plan:?}");
    };
    let CacheAction::CreatePrimaryReplicationGroup { request } = &steps[0] else {
        panic!("expected CreatePrimaryReplicationGroup: {steps:?}");
    };
    assert_eq!(
        request.cache_subnet_group_name.as_deref(),
        Some("cachenet-cache")
    );
    let port = moto.elasticache("us-east-1");
    let created = port.create_replication_group(request).await.unwrap();
    // moto reports no subnet group or security groups for a group's nodes
    // (tests/aws_network_requests.rs fixes those parameters); the tags it
    // keeps.
    let tags = port.list_tags(&created.arn).await.unwrap();
    assert_eq!(tags.get("cost-center"), Some("shop-42"));
    assert_eq!(tags.get("shopfleet.io/shop"), Some("cachenet"));
}
