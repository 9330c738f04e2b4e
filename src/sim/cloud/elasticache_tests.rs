//! The simulated ElastiCache's AWS rules, driven through the port only.

use std::time::Duration;

use super::*;
use crate::cloud::elasticache::port::{
    AuthToken, AutomaticFailoverStatus, CreateGlobalReplicationGroupRequest,
    CreateReplicationGroupRequest, DeleteReplicationGroupRequest, GlobalMemberStatus,
    GlobalReplicationGroupStatus, ModifyReplicationGroupRequest, ReplicationGroupStatus, Tags,
};

const MINUTE: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cret-Token-0123456789";

fn sim() -> SimCloud {
    SimCloud::new(VirtualClock::default())
}

fn primary_request(id: &str) -> CreateReplicationGroupRequest {
    CreateReplicationGroupRequest {
        replication_group_id: id.into(),
        description: "test".into(),
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
        auth_token: None,
        tags: Tags::from([("team".to_string(), "orders".to_string())]),
        ..Default::default()
    }
}

fn secondary_request(id: &str, global: &str) -> CreateReplicationGroupRequest {
    CreateReplicationGroupRequest {
        global_replication_group_id: Some(global.into()),
        engine: None,
        cache_node_type: None,
        num_node_groups: None,
        cluster_mode_enabled: None,
        automatic_failover_enabled: None,
        multi_az_enabled: None,
        transit_encryption_enabled: None,
        at_rest_encryption_enabled: None,
        ..primary_request(id)
    }
}

fn global_request(suffix: &str, primary: &str) -> CreateGlobalReplicationGroupRequest {
    CreateGlobalReplicationGroupRequest {
        suffix: suffix.into(),
        description: "test".into(),
        primary_replication_group_id: primary.into(),
        tags: Tags::new(),
    }
}

/// A Global Datastore `ldgnf-shop` with primary `p` in us-east-1, available,
/// and nothing else.
async fn global_with_primary(sim: &SimCloud) -> String {
    let us = sim.elasticache("us-east-1");
    us.create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    sim.clock().advance(10 * MINUTE);
    let g = us
        .create_global_replication_group(&global_request("shop", "p"))
        .await
        .unwrap();
    sim.clock().advance(5 * MINUTE);
    g.id
}

/// [`global_with_primary`] plus an associated secondary `s` in eu-west-1.
async fn global_pair(sim: &SimCloud) -> String {
    let id = global_with_primary(sim).await;
    sim.elasticache("eu-west-1")
        .create_replication_group(&secondary_request("s", &id))
        .await
        .unwrap();
    sim.clock().advance(15 * MINUTE);
    id
}

fn assert_refused(error: CloudError, code: &str) {
    assert_eq!(error.metric_label(), "refused", "{error:?}");
    assert_eq!(error.code(), code, "{error:?}");
}

#[tokio::test]
async fn a_replication_group_is_creating_until_its_duration_has_passed() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    let created = us
        .create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    assert_eq!(created.status, ReplicationGroupStatus::Creating);
    assert_eq!(created.replicas_per_shard(), 1);
    sim.clock().advance(10 * MINUTE - Duration::from_secs(1));
    let group = us.describe_replication_group("p").await.unwrap().unwrap();
    assert_eq!(group.status, ReplicationGroupStatus::Creating);
    sim.clock().advance(Duration::from_secs(1));
    let group = us.describe_replication_group("p").await.unwrap().unwrap();
    assert_eq!(group.status, ReplicationGroupStatus::Available);
    assert_eq!(
        group.write_endpoint().map(|e| e.to_host_port()),
        Some("master.p.sim.us-east-1.cache.amazonaws.com:6379".into())
    );
    assert!(group.read_endpoint().is_some());
    assert_eq!(group.automatic_failover, AutomaticFailoverStatus::Enabled);
}

#[tokio::test]
async fn replication_group_ids_are_unique_in_a_region_only() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    us.create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    let again = us
        .create_replication_group(&primary_request("p"))
        .await
        .unwrap_err();
    assert!(again.is_already_exists());
    assert_eq!(again.code(), "ReplicationGroupAlreadyExists");
    sim.elasticache("eu-west-1")
        .create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    assert_eq!(
        sim.elasticache("ap-northeast-1")
            .describe_replication_group("p")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn malformed_identifiers_and_node_types_are_refused() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    for id in ["1acme", "acme--us", "acme-", &"a".repeat(41)] {
        assert_refused(
            us.create_replication_group(&primary_request(id))
                .await
                .unwrap_err(),
            "InvalidParameterValue",
        );
    }
    let mut request = primary_request("p");
    request.cache_node_type = Some("r6g.large".into());
    assert_refused(
        us.create_replication_group(&request).await.unwrap_err(),
        "InvalidParameterValue",
    );
    assert!(sim.all_replication_groups().is_empty());
}

#[tokio::test]
async fn an_auth_token_needs_transit_encryption_and_awss_format() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    let mut request = primary_request("p");
    request.auth_token = Some(AuthToken::new(TOKEN));
    request.transit_encryption_enabled = Some(false);
    assert_refused(
        us.create_replication_group(&request).await.unwrap_err(),
        "InvalidParameterCombination",
    );
    request.transit_encryption_enabled = Some(true);
    request.auth_token = Some(AuthToken::new("too-short"));
    let error = us.create_replication_group(&request).await.unwrap_err();
    assert_refused(error.clone(), "InvalidParameterValue");
    assert!(!error.to_string().contains("too-short"), "{error}");
    request.auth_token = Some(AuthToken::new(TOKEN));
    let group = us.create_replication_group(&request).await.unwrap();
    assert!(group.auth_token_enabled);
}

#[tokio::test]
async fn automatic_failover_needs_a_replica_and_multi_az_needs_failover() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    let mut request = primary_request("p");
    request.replicas_per_node_group = 0;
    assert_refused(
        us.create_replication_group(&request).await.unwrap_err(),
        "InvalidParameterCombination",
    );
    request.automatic_failover_enabled = Some(false);
    assert_refused(
        us.create_replication_group(&request).await.unwrap_err(),
        "InvalidParameterCombination",
    );
    request.multi_az_enabled = Some(false);
    us.create_replication_group(&request).await.unwrap();
}

#[tokio::test]
async fn several_shards_need_cluster_mode_and_report_a_configuration_endpoint() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    let mut request = primary_request("p");
    request.num_node_groups = Some(3);
    assert_refused(
        us.create_replication_group(&request).await.unwrap_err(),
        "InvalidParameterCombination",
    );
    request.cluster_mode_enabled = Some(true);
    let group = us.create_replication_group(&request).await.unwrap();
    assert_eq!(group.node_groups.len(), 3);
    assert!(group.configuration_endpoint.is_some());
    assert_eq!(
        group.node_groups[2].members[1].cache_cluster_id,
        "p-0003-002"
    );
}

#[tokio::test]
async fn the_global_datastore_id_is_the_region_prefix_and_the_suffix() {
    let sim = sim();
    assert_eq!(global_with_primary(&sim).await, "ldgnf-shop");
    let eu = sim.elasticache("eu-west-1");
    eu.create_replication_group(&primary_request("other"))
        .await
        .unwrap();
    sim.clock().advance(10 * MINUTE);
    let created = eu
        .create_global_replication_group(&global_request("cart", "other"))
        .await
        .unwrap();
    assert_eq!(created.id, "gxeiz-cart");
    assert_eq!(created.status, GlobalReplicationGroupStatus::Creating);
    assert_eq!(global_datastore_prefix("ap-northeast-1"), "quwsw");
    let made_up = global_datastore_prefix("xx-test-9");
    assert_eq!(made_up.len(), 5);
    assert!(made_up.chars().all(|c| c.is_ascii_lowercase()));
}

#[tokio::test]
async fn a_suffix_is_unique_across_regions() {
    let sim = sim();
    global_with_primary(&sim).await;
    let eu = sim.elasticache("eu-west-1");
    eu.create_replication_group(&primary_request("q"))
        .await
        .unwrap();
    sim.clock().advance(10 * MINUTE);
    let error = eu
        .create_global_replication_group(&global_request("shop", "q"))
        .await
        .unwrap_err();
    assert!(error.is_already_exists());
    assert_eq!(error.code(), "GlobalReplicationGroupAlreadyExistsFault");
}

#[tokio::test]
async fn a_global_datastore_starts_primary_only_and_is_available_once_a_secondary_associates() {
    let sim = sim();
    let id = global_with_primary(&sim).await;
    let us = sim.elasticache("us-east-1");
    let listed = us
        .describe_global_replication_groups(Some(&id))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, GlobalReplicationGroupStatus::PrimaryOnly);
    assert_eq!(listed[0].engine_version, "7.1");
    let eu = sim.elasticache("eu-west-1");
    let secondary = eu
        .create_replication_group(&secondary_request("s", &id))
        .await
        .unwrap();
    assert_eq!(secondary.status, ReplicationGroupStatus::Creating);
    assert_eq!(secondary.cache_node_type, "cache.r6g.large");
    let g = &us.describe_global_replication_groups(None).await.unwrap()[0];
    assert_eq!(
        g.member_in("eu-west-1").unwrap().status,
        GlobalMemberStatus::Associating
    );
    sim.clock().advance(15 * MINUTE);
    let g = &us.describe_global_replication_groups(None).await.unwrap()[0];
    assert_eq!(g.status, GlobalReplicationGroupStatus::Available);
    assert_eq!(
        g.member_in("eu-west-1").unwrap().status,
        GlobalMemberStatus::Associated
    );
    let s = eu.describe_replication_group("s").await.unwrap().unwrap();
    assert_eq!(s.status, ReplicationGroupStatus::Available);
    let info = s.global_replication_group.unwrap();
    assert_eq!(info.global_replication_group_id, id);
    assert!(!info.is_primary);
    assert!(
        us.describe_global_replication_groups(Some("ldgnf-nope"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn global_datastores_refuse_burstable_nodes_and_old_redis() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    let mut small = primary_request("small");
    small.cache_node_type = Some("cache.t3.medium".into());
    us.create_replication_group(&small).await.unwrap();
    let mut old = primary_request("old");
    old.engine_version = Some("4.0.10".into());
    us.create_replication_group(&old).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    assert_refused(
        us.create_global_replication_group(&global_request("a", "small"))
            .await
            .unwrap_err(),
        "InvalidParameterValue",
    );
    assert_refused(
        us.create_global_replication_group(&global_request("b", "old"))
            .await
            .unwrap_err(),
        "InvalidParameterCombination",
    );
    assert!(sim.global_replication_groups().is_empty());
}

#[tokio::test]
async fn a_secondary_inherits_the_primarys_shape_and_asking_for_another_is_refused() {
    let sim = sim();
    let id = global_with_primary(&sim).await;
    let eu = sim.elasticache("eu-west-1");
    let mut node = secondary_request("s", &id);
    node.cache_node_type = Some("cache.r6g.xlarge".into());
    let mut shards = secondary_request("s", &id);
    shards.num_node_groups = Some(2);
    let mut engine = secondary_request("s", &id);
    engine.engine = Some("valkey".into());
    let mut transit = secondary_request("s", &id);
    transit.transit_encryption_enabled = Some(true);
    let mut at_rest = secondary_request("s", &id);
    at_rest.at_rest_encryption_enabled = Some(true);
    let mut auth = secondary_request("s", &id);
    auth.auth_token = Some(AuthToken::new(TOKEN));
    // AWS's guide: the secondary inherits these; "do not pass in values",
    // not even the primary's own.
    let mut same_node = secondary_request("s", &id);
    same_node.cache_node_type = Some("cache.r6g.large".into());
    let mut same_shards = secondary_request("s", &id);
    same_shards.num_node_groups = Some(1);
    for request in [
        node,
        shards,
        engine,
        transit,
        at_rest,
        auth,
        same_node,
        same_shards,
    ] {
        assert_refused(
            eu.create_replication_group(&request).await.unwrap_err(),
            "InvalidParameterCombination",
        );
    }
    let mut same = secondary_request("s", &id);
    same.replicas_per_node_group = 2;
    let s = eu.create_replication_group(&same).await.unwrap();
    assert_eq!(s.replicas_per_shard(), 2, "replicas are per member");
}

#[tokio::test]
async fn a_global_datastore_holds_one_member_per_region_and_two_secondaries_at_most() {
    let sim = sim();
    let id = global_pair(&sim).await;
    let eu = sim.elasticache("eu-west-1");
    assert_refused(
        eu.create_replication_group(&secondary_request("s2", &id))
            .await
            .unwrap_err(),
        "InvalidParameterValue",
    );
    sim.elasticache("ap-northeast-1")
        .create_replication_group(&secondary_request("t", &id))
        .await
        .unwrap();
    sim.clock().advance(15 * MINUTE);
    assert_refused(
        sim.elasticache("us-west-2")
            .create_replication_group(&secondary_request("u", &id))
            .await
            .unwrap_err(),
        "InvalidParameterCombination",
    );
}

#[tokio::test]
async fn joining_a_missing_or_busy_global_datastore_fails_without_creating() {
    let sim = sim();
    let eu = sim.elasticache("eu-west-1");
    let missing = eu
        .create_replication_group(&secondary_request("s", "ldgnf-shop"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found());
    let us = sim.elasticache("us-east-1");
    us.create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    sim.clock().advance(10 * MINUTE);
    us.create_global_replication_group(&global_request("shop", "p"))
        .await
        .unwrap();
    let busy = eu
        .create_replication_group(&secondary_request("s", "ldgnf-shop"))
        .await
        .unwrap_err();
    assert!(busy.is_transient(), "{busy:?}");
    assert_eq!(busy.code(), "InvalidGlobalReplicationGroupState");
    assert_eq!(sim.all_replication_groups().len(), 1);
}

#[tokio::test]
async fn a_global_datastore_with_secondaries_cannot_be_deleted_and_its_primary_stays() {
    let sim = sim();
    let id = global_pair(&sim).await;
    let us = sim.elasticache("us-east-1");
    let error = us.delete_global_replication_group(&id).await.unwrap_err();
    assert_eq!(error.metric_label(), "invalid_state");
    assert_eq!(error.code(), "InvalidGlobalReplicationGroupState");

    assert_refused(
        us.disassociate_global_replication_group(&id, "p", "us-east-1")
            .await
            .unwrap_err(),
        "InvalidParameterValue",
    );
    us.disassociate_global_replication_group(&id, "s", "eu-west-1")
        .await
        .unwrap();
    let g = &sim.global_replication_groups()[0];
    assert_eq!(g.status, GlobalReplicationGroupStatus::Modifying);
    assert_eq!(
        g.member_in("eu-west-1").unwrap().status,
        GlobalMemberStatus::Disassociating
    );
    sim.clock().advance(5 * MINUTE);
    let g = &sim.global_replication_groups()[0];
    assert_eq!(g.status, GlobalReplicationGroupStatus::PrimaryOnly);
    assert_eq!(g.members.len(), 1);
    let s = sim.replication_group("eu-west-1", "s").unwrap();
    assert_eq!(
        (s.status.as_str(), s.global_replication_group),
        ("available", None)
    );

    us.delete_global_replication_group(&id).await.unwrap();
    sim.clock().advance(2 * MINUTE);
    assert!(sim.global_replication_groups().is_empty());
    let p = sim.replication_group("us-east-1", "p").unwrap();
    assert_eq!(p.status, ReplicationGroupStatus::Available);
    assert_eq!(p.global_replication_group, None);
}

#[tokio::test]
async fn a_member_is_deleted_only_after_it_left_and_its_final_snapshot_is_kept() {
    let sim = sim();
    let id = global_pair(&sim).await;
    let eu = sim.elasticache("eu-west-1");
    let delete = DeleteReplicationGroupRequest {
        replication_group_id: "s".into(),
        final_snapshot_id: Some("s-final".into()),
    };
    assert_eq!(
        eu.delete_replication_group(&delete)
            .await
            .unwrap_err()
            .metric_label(),
        "invalid_state"
    );
    eu.disassociate_global_replication_group(&id, "s", "eu-west-1")
        .await
        .unwrap();
    sim.clock().advance(5 * MINUTE);
    eu.delete_replication_group(&delete).await.unwrap();
    assert_eq!(
        sim.replication_group("eu-west-1", "s").unwrap().status,
        ReplicationGroupStatus::Deleting
    );
    sim.clock().advance(5 * MINUTE);
    assert_eq!(eu.describe_replication_group("s").await.unwrap(), None);
    assert!(
        sim.cache_snapshots()
            .contains(&("eu-west-1".to_string(), "s-final".to_string()))
    );
    eu.create_replication_group(&primary_request("s"))
        .await
        .unwrap();
    sim.clock().advance(10 * MINUTE);
    let again = eu.delete_replication_group(&delete).await.unwrap_err();
    assert_eq!(again.code(), "SnapshotAlreadyExistsFault");
}

#[tokio::test]
async fn replica_counts_change_one_call_at_a_time_within_awss_bounds() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    us.create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    assert!(
        us.increase_replica_count("p", 2)
            .await
            .unwrap_err()
            .is_transient()
    );
    sim.clock().advance(10 * MINUTE);
    assert_refused(
        us.increase_replica_count("p", 1).await.unwrap_err(),
        "InvalidParameterValue",
    );
    assert_refused(
        us.increase_replica_count("p", 6).await.unwrap_err(),
        "InvalidParameterValue",
    );
    let changing = us.increase_replica_count("p", 2).await.unwrap();
    assert_eq!(changing.status, ReplicationGroupStatus::Modifying);
    assert!(
        us.decrease_replica_count("p", 1)
            .await
            .unwrap_err()
            .is_transient()
    );
    sim.clock().advance(10 * MINUTE);
    assert_eq!(
        us.describe_replication_group("p")
            .await
            .unwrap()
            .unwrap()
            .replicas_per_shard(),
        2
    );
    us.decrease_replica_count("p", 1).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    assert_refused(
        us.decrease_replica_count("p", 0).await.unwrap_err(),
        "InvalidParameterCombination",
    );
    us.modify_replication_group(&ModifyReplicationGroupRequest {
        replication_group_id: "p".into(),
        automatic_failover_enabled: Some(false),
        multi_az_enabled: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    let modifying = sim.replication_group("us-east-1", "p").unwrap();
    assert_eq!(
        (
            modifying.status.as_str(),
            modifying.automatic_failover.as_str()
        ),
        ("modifying", "disabling")
    );
    sim.clock().advance(2 * MINUTE);
    us.decrease_replica_count("p", 0).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    let group = sim.replication_group("us-east-1", "p").unwrap();
    assert_eq!(group.replicas_per_shard(), 0);
    assert_eq!(group.automatic_failover, AutomaticFailoverStatus::Disabled);
    assert!(!group.multi_az);
    assert_refused(
        us.modify_replication_group(&ModifyReplicationGroupRequest {
            replication_group_id: "p".into(),
            automatic_failover_enabled: Some(true),
            multi_az_enabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        "InvalidParameterCombination",
    );
}

#[tokio::test]
async fn a_failover_makes_the_named_secondary_primary_and_records_the_data_at_risk() {
    let sim = sim();
    let id = global_pair(&sim).await;
    sim.set_cache_replication_lag("eu-west-1", Duration::from_millis(400));
    let eu = sim.elasticache("eu-west-1");
    assert_refused(
        eu.failover_global_replication_group(&id, "us-east-1", "p")
            .await
            .unwrap_err(),
        "InvalidParameterValue",
    );
    eu.failover_global_replication_group(&id, "eu-west-1", "s")
        .await
        .unwrap();
    assert_eq!(
        sim.global_replication_groups()[0].status,
        GlobalReplicationGroupStatus::Modifying
    );
    sim.clock().advance(MINUTE);
    let g = &sim.global_replication_groups()[0];
    assert_eq!(g.status, GlobalReplicationGroupStatus::Available);
    assert_eq!(g.primary().unwrap().region, "eu-west-1");
    let s = sim.replication_group("eu-west-1", "s").unwrap();
    assert!(s.global_replication_group.unwrap().is_primary);
    let record = &sim.cache_failovers()[0];
    assert_eq!(
        (record.from_region.as_str(), record.to_region.as_str()),
        ("us-east-1", "eu-west-1")
    );
    assert_eq!(record.data_loss_window, Duration::from_millis(400));
    assert!(record.completed_at.is_some());
}

#[tokio::test]
async fn a_secondary_is_promoted_while_the_primarys_region_is_out_and_the_old_primary_rejoins_as_a_secondary()
 {
    // AWS documents promoting a secondary of a Global Datastore when the
    // primary's Region is unavailable; the old primary does not answer.
    let sim = sim();
    let id = global_pair(&sim).await;
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    let eu = sim.elasticache("eu-west-1");
    eu.failover_global_replication_group(&id, "eu-west-1", "s")
        .await
        .unwrap();
    // One change at a time: a second request meanwhile is refused as busy.
    let busy = eu
        .failover_global_replication_group(&id, "eu-west-1", "s")
        .await
        .unwrap_err();
    assert_eq!(busy.code(), "InvalidGlobalReplicationGroupState");
    sim.clock().advance(MINUTE);
    assert_eq!(
        sim.global_replication_groups()[0].primary().unwrap().region,
        "eu-west-1"
    );
    sim.heal_region("us-east-1");
    let p = sim.replication_group("us-east-1", "p").unwrap();
    assert_eq!(
        p.global_replication_group.map(|g| g.is_primary),
        Some(false),
        "the old primary is a secondary of the new one"
    );
}

#[tokio::test]
async fn replication_lag_is_set_per_region_and_absent_for_the_primary_or_a_lost_primary_region() {
    let sim = sim();
    global_pair(&sim).await;
    let now = sim.clock().now();
    let us = sim.elasticache("us-east-1");
    let eu = sim.elasticache("eu-west-1");
    assert_eq!(us.replication_lag("p", now).await.unwrap(), None);
    assert_eq!(
        eu.replication_lag("s", now).await.unwrap(),
        Some(Duration::from_secs(1)),
        "AWS's sub-second bound by default"
    );
    sim.set_cache_replication_lag("eu-west-1", Duration::from_secs(12));
    assert_eq!(
        eu.replication_lag("s", now).await.unwrap(),
        Some(Duration::from_secs(12))
    );
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    assert_eq!(eu.replication_lag("s", now).await.unwrap(), None);
}

#[tokio::test]
async fn faults_hit_elasticache_calls_too() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    sim.inject(Fault::Throttle {
        region: "us-east-1".into(),
        calls: 1,
    });
    let throttled = us.describe_replication_group("p").await.unwrap_err();
    assert_eq!(throttled.metric_label(), "throttled");
    sim.inject(Fault::ServerError {
        region: "us-east-1".into(),
        calls: 1,
    });
    assert_eq!(
        us.describe_global_replication_groups(None)
            .await
            .unwrap_err()
            .metric_label(),
        "server_error"
    );
    // A lost answer: the group is created all the same.
    sim.inject(Fault::Timeout {
        region: "us-east-1".into(),
        calls: 1,
    });
    let lost = us
        .create_replication_group(&primary_request("p"))
        .await
        .unwrap_err();
    assert_eq!(lost.metric_label(), "timeout");
    assert!(us.describe_replication_group("p").await.unwrap().is_some());

    sim.inject(Fault::RegionOutage {
        region: "eu-west-1".into(),
    });
    let out = sim
        .elasticache("eu-west-1")
        .describe_replication_group("s")
        .await
        .unwrap_err();
    assert!(out.is_region_unavailable());
    assert!(out.to_string().contains("elasticache"), "{out}");
}

#[tokio::test]
async fn a_slow_operation_takes_longer() {
    let sim = sim();
    sim.inject(Fault::SlowOperation {
        region: "us-east-1".into(),
        op: Op::CreateReplicationGroup,
        extra: 20 * MINUTE,
    });
    let us = sim.elasticache("us-east-1");
    us.create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    sim.clock().advance(29 * MINUTE);
    assert_eq!(
        sim.replication_group("us-east-1", "p").unwrap().status,
        ReplicationGroupStatus::Creating
    );
    sim.clock().advance(MINUTE);
    assert_eq!(
        sim.replication_group("us-east-1", "p").unwrap().status,
        ReplicationGroupStatus::Available
    );
}

#[tokio::test]
async fn the_call_log_counts_elasticache_operations_and_mutations() {
    let sim = sim();
    global_with_primary(&sim).await;
    sim.clear_calls();
    let us = sim.elasticache("us-east-1");
    us.describe_global_replication_groups(None).await.unwrap();
    let group = us.describe_replication_group("p").await.unwrap().unwrap();
    us.list_tags(&group.arn).await.unwrap();
    assert_eq!(sim.mutating_calls(), 0);
    assert_eq!(sim.read_calls(), 3);
    us.add_tags(&group.arn, &Tags::from([("k".into(), "v".into())]))
        .await
        .unwrap();
    assert_eq!(sim.call_count(Op::CacheAddTagsToResource), 1);
    assert_eq!(sim.mutating_calls(), 1);
    assert_eq!(Op::CacheAddTagsToResource.name(), "AddTagsToResource");
    assert_eq!(Op::CreateReplicationGroup.service(), "elasticache");
}

#[tokio::test]
async fn tags_are_listed_and_added_by_arn() {
    let sim = sim();
    let us = sim.elasticache("us-east-1");
    let group = us
        .create_replication_group(&primary_request("p"))
        .await
        .unwrap();
    us.add_tags(&group.arn, &Tags::from([("k".into(), "v".into())]))
        .await
        .unwrap();
    let tags = us.list_tags(&group.arn).await.unwrap();
    assert_eq!(tags.get("team"), Some("orders"));
    assert_eq!(tags.get("k"), Some("v"));
    let elsewhere = sim
        .elasticache("eu-west-1")
        .list_tags(&group.arn)
        .await
        .unwrap_err();
    assert_refused(elsewhere, "InvalidARN");
}
