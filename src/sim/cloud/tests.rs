//! The simulated cloud's AWS rules, driven through the port only.

use std::time::Duration;

use super::*;
use crate::cloud::aurora::port::{
    ClusterStatus, CreateClusterRequest, CreateGlobalClusterRequest, CreateInstanceRequest,
    DeleteClusterRequest, GlobalClusterStatus, MasterPassword, ModifyClusterRequest,
    ModifyGlobalClusterRequest, Tags,
};

const MINUTE: Duration = Duration::from_secs(60);

fn sim() -> SimCloud {
    SimCloud::new(VirtualClock::default())
}

fn primary_request(id: &str) -> CreateClusterRequest {
    CreateClusterRequest {
        cluster_id: id.into(),
        engine: "aurora-postgresql".into(),
        engine_version: "16.6".into(),
        kms_key_id: None,
        storage_encrypted: true,
        deletion_protection: false,
        tags: Tags::new(),
        global_cluster_id: None,
        master_username: Some("admin_user".into()),
        master_user_password: Some(MasterPassword::new("sim-password-0123456789")),
        ..Default::default()
    }
}

fn secondary_request(id: &str, version: &str) -> CreateClusterRequest {
    CreateClusterRequest {
        global_cluster_id: Some("g".into()),
        master_username: None,
        master_user_password: None,
        engine_version: version.into(),
        ..primary_request(id)
    }
}

fn instance_request(cluster: &str, id: &str) -> CreateInstanceRequest {
    CreateInstanceRequest {
        instance_id: id.into(),
        cluster_id: cluster.into(),
        class: "db.r6g.large".into(),
        engine: "aurora-postgresql".into(),
        tags: Tags::new(),
        ..Default::default()
    }
}

fn arn(region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:{ACCOUNT}:cluster:{id}")
}

/// A global cluster `g` with writer `w` in us-east-1 and secondary `s` in
/// eu-west-1, each with one available instance.
async fn global_pair(sim: &SimCloud) {
    let us = sim.aurora("us-east-1");
    let eu = sim.aurora("eu-west-1");
    us.create_cluster(&primary_request("w")).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    us.create_instance(&instance_request("w", "w-0"))
        .await
        .unwrap();
    us.create_global_cluster(&CreateGlobalClusterRequest {
        global_cluster_id: "g".into(),
        source_cluster_arn: arn("us-east-1", "w"),
        deletion_protection: false,
        tags: Tags::new(),
    })
    .await
    .unwrap();
    sim.clock().advance(2 * MINUTE);
    eu.create_cluster(&secondary_request("s", "16.6"))
        .await
        .unwrap();
    sim.clock().advance(15 * MINUTE);
    eu.create_instance(&instance_request("s", "s-0"))
        .await
        .unwrap();
    sim.clock().advance(9 * MINUTE);
}

#[tokio::test]
async fn a_cluster_is_creating_until_its_duration_has_passed() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    let created = us.create_cluster(&primary_request("c")).await.unwrap();
    assert_eq!(created.status, ClusterStatus::Creating);
    assert_eq!(
        created.engine_version, "16.6",
        "a major resolves to the default minor"
    );
    sim.clock().advance(10 * MINUTE - Duration::from_secs(1));
    assert_eq!(
        us.describe_cluster("c").await.unwrap().unwrap().status,
        ClusterStatus::Creating
    );
    sim.clock().advance(Duration::from_secs(1));
    assert_eq!(
        us.describe_cluster("c").await.unwrap().unwrap().status,
        ClusterStatus::Available
    );
}

#[tokio::test]
async fn clusters_are_regional() {
    let sim = sim();
    sim.aurora("us-east-1")
        .create_cluster(&primary_request("c"))
        .await
        .unwrap();
    assert_eq!(
        sim.aurora("eu-west-1").describe_cluster("c").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_existing_identifier_is_already_exists() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    us.create_cluster(&primary_request("c")).await.unwrap();
    assert!(
        us.create_cluster(&primary_request("c"))
            .await
            .unwrap_err()
            .is_already_exists()
    );
    sim.clock().advance(10 * MINUTE);
    us.create_instance(&instance_request("c", "c-0"))
        .await
        .unwrap();
    assert!(
        us.create_instance(&instance_request("c", "c-0"))
            .await
            .unwrap_err()
            .is_already_exists()
    );
}

#[tokio::test]
async fn operations_on_a_cluster_that_is_not_available_are_transient() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    us.create_cluster(&primary_request("c")).await.unwrap();
    let error = us
        .modify_cluster(&ModifyClusterRequest {
            cluster_id: "c".into(),
            deletion_protection: Some(true),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.code(), "InvalidDBClusterStateFault");
}

#[tokio::test]
async fn a_cluster_with_instances_cannot_be_deleted() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    us.create_cluster(&primary_request("c")).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    us.create_instance(&instance_request("c", "c-0"))
        .await
        .unwrap();
    sim.clock().advance(9 * MINUTE);
    let delete = DeleteClusterRequest {
        cluster_id: "c".into(),
        skip_final_snapshot: true,
        final_snapshot_id: None,
    };
    assert_eq!(
        us.delete_cluster(&delete).await.unwrap_err().metric_label(),
        "invalid_state"
    );
    us.delete_instance("c-0").await.unwrap();
    sim.clock().advance(6 * MINUTE);
    us.delete_cluster(&delete).await.unwrap();
    sim.clock().advance(5 * MINUTE);
    assert_eq!(us.describe_cluster("c").await.unwrap(), None);
}

#[tokio::test]
async fn a_protected_cluster_cannot_be_deleted() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    us.create_cluster(&CreateClusterRequest {
        deletion_protection: true,
        ..primary_request("c")
    })
    .await
    .unwrap();
    sim.clock().advance(10 * MINUTE);
    let error = us
        .delete_cluster(&DeleteClusterRequest {
            cluster_id: "c".into(),
            skip_final_snapshot: true,
            final_snapshot_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "refused");
    assert!(error.message().contains("deletion protection"));
}

#[tokio::test]
async fn a_final_snapshot_is_required_unless_skipped_and_is_kept() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    us.create_cluster(&primary_request("c")).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    let mut delete = DeleteClusterRequest {
        cluster_id: "c".into(),
        skip_final_snapshot: false,
        final_snapshot_id: None,
    };
    assert_eq!(
        us.delete_cluster(&delete).await.unwrap_err().metric_label(),
        "refused"
    );
    delete.final_snapshot_id = Some("c-final".into());
    us.delete_cluster(&delete).await.unwrap();
    assert!(
        sim.snapshots()
            .contains(&("us-east-1".into(), "c-final".into()))
    );
}

#[tokio::test]
async fn a_primary_needs_master_credentials() {
    let sim = sim();
    let error = sim
        .aurora("us-east-1")
        .create_cluster(&CreateClusterRequest {
            master_username: None,
            master_user_password: None,
            ..primary_request("c")
        })
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "refused");
}

#[tokio::test]
async fn a_secondary_with_master_credentials_is_refused() {
    let sim = sim();
    global_pair(&sim).await;
    let error = sim
        .aurora("ap-northeast-1")
        .create_cluster(&CreateClusterRequest {
            global_cluster_id: Some("g".into()),
            engine_version: "16.6".into(),
            ..primary_request("x")
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), "InvalidParameterCombination");
    assert_eq!(error.metric_label(), "refused");
}

#[tokio::test]
async fn a_secondary_of_another_engine_version_is_refused() {
    let sim = sim();
    global_pair(&sim).await;
    let error = sim
        .aurora("ap-northeast-1")
        .create_cluster(&secondary_request("x", "16.4"))
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "refused");
    assert!(error.message().contains("must match"), "{error}");
}

#[tokio::test]
async fn a_global_cluster_with_members_cannot_be_deleted() {
    let sim = sim();
    global_pair(&sim).await;
    let us = sim.aurora("us-east-1");
    assert_eq!(
        us.delete_global_cluster("g")
            .await
            .unwrap_err()
            .metric_label(),
        "invalid_state"
    );
    // The writer leaves only after its secondaries.
    assert_eq!(
        us.remove_from_global_cluster("g", &arn("us-east-1", "w"))
            .await
            .unwrap_err()
            .metric_label(),
        "invalid_state"
    );
    us.remove_from_global_cluster("g", &arn("eu-west-1", "s"))
        .await
        .unwrap();
    sim.clock().advance(3 * MINUTE);
    us.remove_from_global_cluster("g", &arn("us-east-1", "w"))
        .await
        .unwrap();
    us.delete_global_cluster("g").await.unwrap();
    sim.clock().advance(MINUTE);
    assert_eq!(us.describe_global_cluster("g").await.unwrap(), None);
    let detached = sim.cluster("eu-west-1", "s").unwrap();
    assert_eq!(detached.global_cluster_id, None);
    assert_eq!(detached.status, ClusterStatus::Available);
}

#[tokio::test]
async fn the_writer_instance_belongs_to_the_writer_cluster_only() {
    let sim = sim();
    global_pair(&sim).await;
    assert!(sim.instances("us-east-1", "w")[0].is_writer);
    assert!(!sim.instances("eu-west-1", "s")[0].is_writer);
}

#[tokio::test]
async fn switchover_moves_the_writer_without_data_loss() {
    let sim = sim();
    global_pair(&sim).await;
    sim.set_replication_lag("eu-west-1", Duration::from_secs(2));
    let eu = sim.aurora("eu-west-1");
    eu.switchover_global_cluster("g", &arn("eu-west-1", "s"))
        .await
        .unwrap();
    let g = eu.describe_global_cluster("g").await.unwrap().unwrap();
    assert_eq!(g.status, GlobalClusterStatus::SwitchingOver);
    assert!(g.failover.is_some());
    // Switchover time plus the catch-up of the target's lag.
    sim.clock().advance(2 * MINUTE + Duration::from_secs(2));
    let g = eu.describe_global_cluster("g").await.unwrap().unwrap();
    assert_eq!(g.status, GlobalClusterStatus::Available);
    assert_eq!(g.writer().unwrap().region, "eu-west-1");
    assert!(sim.instances("eu-west-1", "s")[0].is_writer);
    assert!(!sim.instances("us-east-1", "w")[0].is_writer);
    let record = &sim.failovers()[0];
    assert!(!record.allow_data_loss);
    assert_eq!(record.data_loss_window, Duration::ZERO);
    assert!(record.completed_at.is_some());
}

#[tokio::test]
async fn switchover_is_refused_while_a_member_is_unreachable() {
    let sim = sim();
    global_pair(&sim).await;
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    let error = sim
        .aurora("eu-west-1")
        .switchover_global_cluster("g", &arn("eu-west-1", "s"))
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "invalid_state");
}

#[tokio::test]
async fn failover_with_data_loss_promotes_a_secondary_while_the_writer_is_down_and_the_old_writer_rejoins()
 {
    let sim = sim();
    global_pair(&sim).await;
    sim.set_replication_lag("eu-west-1", Duration::from_millis(800));
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    let us = sim.aurora("us-east-1");
    let eu = sim.aurora("eu-west-1");
    assert!(
        us.describe_cluster("w")
            .await
            .unwrap_err()
            .is_region_unavailable()
    );
    // The secondary stops receiving data: no lag data points.
    assert_eq!(
        eu.replication_lag("s", sim.clock().now()).await.unwrap(),
        None
    );

    eu.failover_global_cluster("g", &arn("eu-west-1", "s"), true)
        .await
        .unwrap();
    assert_eq!(
        eu.describe_global_cluster("g")
            .await
            .unwrap()
            .unwrap()
            .status,
        GlobalClusterStatus::FailingOver
    );
    sim.clock().advance(MINUTE);
    let g = eu.describe_global_cluster("g").await.unwrap().unwrap();
    assert_eq!(g.writer().unwrap().region, "eu-west-1");
    assert_eq!(g.members.iter().filter(|m| m.is_writer).count(), 1);
    assert_eq!(
        sim.failovers()[0].data_loss_window,
        Duration::from_millis(800)
    );

    sim.heal_region("us-east-1");
    let old = g.member(&arn("us-east-1", "w")).unwrap();
    assert!(!old.is_writer, "the old writer comes back as a secondary");
    assert!(
        us.replication_lag("w", sim.clock().now())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn failover_without_data_loss_is_a_switchover() {
    let sim = sim();
    global_pair(&sim).await;
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    let error = sim
        .aurora("eu-west-1")
        .failover_global_cluster("g", &arn("eu-west-1", "s"), false)
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "invalid_state");
}

#[tokio::test]
async fn replication_lag_is_set_per_region_and_absent_for_the_writer() {
    let sim = sim();
    global_pair(&sim).await;
    let now = sim.clock().now();
    assert_eq!(
        sim.aurora("eu-west-1")
            .replication_lag("s", now)
            .await
            .unwrap(),
        Some(Duration::from_millis(150))
    );
    sim.set_replication_lag("eu-west-1", Duration::from_secs(45));
    assert_eq!(
        sim.aurora("eu-west-1")
            .replication_lag("s", now)
            .await
            .unwrap(),
        Some(Duration::from_secs(45))
    );
    assert_eq!(
        sim.aurora("us-east-1")
            .replication_lag("w", now)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn throttling_hits_the_next_calls_then_clears() {
    let sim = sim();
    sim.inject(Fault::Throttle {
        region: "us-east-1".into(),
        calls: 2,
    });
    let us = sim.aurora("us-east-1");
    for _ in 0..2 {
        let error = us.describe_cluster("c").await.unwrap_err();
        assert_eq!(error.metric_label(), "throttled");
        assert!(error.is_transient());
    }
    assert_eq!(us.describe_cluster("c").await.unwrap(), None);
    // Other regions are unaffected.
    sim.inject(Fault::ServerError {
        region: "us-east-1".into(),
        calls: 1,
    });
    assert_eq!(
        sim.aurora("eu-west-1").describe_cluster("c").await.unwrap(),
        None
    );
    assert_eq!(
        us.describe_cluster("c").await.unwrap_err().metric_label(),
        "server_error"
    );
}

#[tokio::test]
async fn a_timeout_on_a_mutation_hides_an_answer_but_not_the_effect() {
    let sim = sim();
    sim.inject(Fault::Timeout {
        region: "us-east-1".into(),
        calls: 1,
    });
    let us = sim.aurora("us-east-1");
    let error = us.create_cluster(&primary_request("c")).await.unwrap_err();
    assert_eq!(error.metric_label(), "timeout");
    assert!(us.describe_cluster("c").await.unwrap().is_some());
}

#[tokio::test]
async fn a_slow_operation_takes_longer() {
    let sim = sim();
    sim.inject(Fault::SlowOperation {
        region: "us-east-1".into(),
        op: Op::CreateDBCluster,
        extra: 5 * MINUTE,
    });
    let us = sim.aurora("us-east-1");
    us.create_cluster(&primary_request("c")).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    assert_eq!(
        us.describe_cluster("c").await.unwrap().unwrap().status,
        ClusterStatus::Creating
    );
    sim.clock().advance(5 * MINUTE);
    assert_eq!(
        us.describe_cluster("c").await.unwrap().unwrap().status,
        ClusterStatus::Available
    );
}

#[tokio::test]
async fn the_call_log_counts_operations_and_mutations() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    us.describe_cluster("c").await.unwrap();
    us.create_cluster(&primary_request("c")).await.unwrap();
    us.describe_global_cluster("g").await.unwrap();
    assert_eq!(sim.mutating_calls(), 1);
    assert_eq!(sim.read_calls(), 2);
    assert_eq!(sim.call_count(Op::DescribeDBClusters), 1);
    assert_eq!(sim.calls_by_op().get("CreateDBCluster"), Some(&1));
    sim.clear_calls();
    assert!(sim.calls().is_empty());
}

#[tokio::test]
async fn kms_aliases_resolve_to_key_arns_and_foreign_keys_are_refused() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    let c = us
        .create_cluster(&CreateClusterRequest {
            kms_key_id: Some("alias/acme".into()),
            ..primary_request("c")
        })
        .await
        .unwrap();
    assert!(c.kms_key_id.unwrap().starts_with("arn:aws:kms:us-east-1:"));
    let error = us
        .create_cluster(&CreateClusterRequest {
            kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/x".into()),
            ..primary_request("d")
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), "KMSKeyNotAccessibleFault");
}

#[tokio::test]
async fn engine_upgrades_go_forward_within_a_major_only() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    us.create_cluster(&primary_request("c")).await.unwrap();
    sim.clock().advance(10 * MINUTE);
    let modify = |v: &str| ModifyClusterRequest {
        cluster_id: "c".into(),
        engine_version: Some(v.into()),
        deletion_protection: None,
        ..Default::default()
    };
    assert_eq!(
        us.modify_cluster(&modify("16.2"))
            .await
            .unwrap_err()
            .metric_label(),
        "refused"
    );
    assert_eq!(
        us.modify_cluster(&modify("17.4"))
            .await
            .unwrap_err()
            .metric_label(),
        "refused"
    );
    assert_eq!(
        us.modify_cluster(&modify("16.8")).await.unwrap().status,
        ClusterStatus::Upgrading
    );
    sim.clock().advance(15 * MINUTE);
    assert_eq!(
        us.describe_cluster("c")
            .await
            .unwrap()
            .unwrap()
            .engine_version,
        "16.8"
    );
}

#[tokio::test]
async fn two_identical_runs_are_identical() {
    async fn run() -> Vec<CallRecord> {
        let sim = sim();
        global_pair(&sim).await;
        sim.calls()
    }
    assert_eq!(run().await, run().await);
}

#[tokio::test]
async fn the_global_cluster_reports_a_new_version_once_every_member_runs_it() {
    let sim = sim();
    global_pair(&sim).await;
    let upgrade = |id: &str| ModifyClusterRequest {
        cluster_id: id.into(),
        engine_version: Some("16.8".into()),
        deletion_protection: None,
        ..Default::default()
    };
    sim.aurora("eu-west-1")
        .modify_cluster(&upgrade("s"))
        .await
        .unwrap();
    sim.clock().advance(15 * MINUTE);
    assert_eq!(sim.global_cluster("g").unwrap().engine_version, "16.6");
    // Mixed versions block a switchover.
    let error = sim
        .aurora("eu-west-1")
        .switchover_global_cluster("g", &arn("eu-west-1", "s"))
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "invalid_state");
    sim.aurora("us-east-1")
        .modify_cluster(&upgrade("w"))
        .await
        .unwrap();
    sim.clock().advance(15 * MINUTE);
    assert_eq!(sim.global_cluster("g").unwrap().engine_version, "16.8");
}

#[tokio::test]
async fn one_writer_while_the_writer_region_is_up_none_during_its_outage_and_one_after_promotion() {
    let sim = sim();
    global_pair(&sim).await;
    assert_eq!(sim.writers(), [("us-east-1".to_string(), "w".to_string())]);
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    assert!(
        sim.writers().is_empty(),
        "an unreachable writer takes no writes"
    );
    sim.aurora("eu-west-1")
        .failover_global_cluster("g", &arn("eu-west-1", "s"), true)
        .await
        .unwrap();
    assert!(sim.writers().is_empty(), "no writer while failing over");
    sim.clock().advance(MINUTE);
    assert_eq!(sim.writers(), [("eu-west-1".to_string(), "s".to_string())]);
    sim.recover_region("us-east-1");
    assert_eq!(
        sim.writers(),
        [("eu-west-1".to_string(), "s".to_string())],
        "the old writer comes back as a secondary"
    );
}

#[tokio::test]
async fn recovering_a_region_ends_its_faults_and_lag_spike_only() {
    let sim = sim();
    global_pair(&sim).await;
    sim.inject(Fault::Throttle {
        region: "us-east-1".into(),
        calls: 5,
    });
    sim.inject(Fault::Throttle {
        region: "eu-west-1".into(),
        calls: 5,
    });
    sim.set_replication_lag("eu-west-1", Duration::from_secs(45));
    sim.recover_region("eu-west-1");
    assert_eq!(
        sim.aurora("eu-west-1")
            .replication_lag("s", sim.clock().now())
            .await
            .unwrap(),
        Some(Duration::from_millis(150))
    );
    let still = sim.aurora("us-east-1").describe_cluster("w").await;
    assert_eq!(still.unwrap_err().metric_label(), "throttled");
}

#[test]
fn every_duration_has_a_name_and_can_be_set_by_it() {
    let mut durations = SimDurations::default();
    let mut names: Vec<&str> = durations.fields().into_iter().map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), durations.fields().len(), "names are unique");
    assert!(durations.set("globalFailover", Duration::from_secs(30)));
    assert_eq!(durations.global_failover, Duration::from_secs(30));
    assert!(!durations.set("teleport", Duration::from_secs(1)));
}

#[test]
fn operations_are_found_by_their_aws_name() {
    for op in Op::ALL {
        // ElastiCache's AddTagsToResource shares its AWS name with RDS's;
        // the name finds the RDS one.
        let expected = match op {
            Op::CacheAddTagsToResource => Op::AddTagsToResource,
            op => op,
        };
        assert_eq!(Op::from_name(op.name()), Some(expected));
    }
    assert_eq!(Op::from_name("CreateDbInstance"), None);
}

#[tokio::test]
async fn the_next_completion_is_the_earliest_operation_under_way() {
    let sim = sim();
    assert_eq!(sim.next_completion(), None);
    let start = sim.clock().now();
    sim.aurora("us-east-1")
        .create_cluster(&primary_request("c"))
        .await
        .unwrap();
    assert_eq!(
        sim.next_completion(),
        Some(start.checked_add(10 * MINUTE).unwrap())
    );
    sim.clock().advance(10 * MINUTE);
    sim.cluster("us-east-1", "c");
    assert_eq!(sim.next_completion(), None, "applied once due");
}

#[tokio::test]
async fn a_protected_global_cluster_is_deleted_only_after_protection_is_turned_off() {
    let sim = sim();
    let us = sim.aurora("us-east-1");
    global_pair(&sim).await;
    let protect = |on: bool| ModifyGlobalClusterRequest {
        global_cluster_id: "g".into(),
        deletion_protection: Some(on),
        ..ModifyGlobalClusterRequest::default()
    };
    let protected = us.modify_global_cluster(&protect(true)).await.unwrap();
    assert!(protected.deletion_protection);
    // Protection changes at once: no state to wait through.
    assert_eq!(protected.status, GlobalClusterStatus::Available);
    us.remove_from_global_cluster("g", &arn("eu-west-1", "s"))
        .await
        .unwrap();
    sim.clock().advance(3 * MINUTE);
    us.remove_from_global_cluster("g", &arn("us-east-1", "w"))
        .await
        .unwrap();
    let refused = us.delete_global_cluster("g").await.unwrap_err();
    assert_eq!(refused.metric_label(), "refused");
    assert!(refused.message().contains("protected"), "{refused}");
    us.modify_global_cluster(&protect(false)).await.unwrap();
    us.delete_global_cluster("g").await.unwrap();
    sim.clock().advance(MINUTE);
    assert_eq!(us.describe_global_cluster("g").await.unwrap(), None);
}

#[tokio::test]
async fn a_global_major_upgrade_needs_the_flag_and_upgrades_every_member_together() {
    let sim = sim();
    global_pair(&sim).await;
    let us = sim.aurora("us-east-1");
    let upgrade = |version: &str, allow_major: bool| ModifyGlobalClusterRequest {
        global_cluster_id: "g".into(),
        engine_version: Some(version.into()),
        allow_major_version_upgrade: allow_major,
        ..ModifyGlobalClusterRequest::default()
    };
    let error = us
        .modify_global_cluster(&upgrade("17.4", false))
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "refused");
    assert!(
        error.message().contains("AllowMajorVersionUpgrade"),
        "{error}"
    );
    assert_eq!(
        us.modify_global_cluster(&upgrade("15.10", true))
            .await
            .unwrap_err()
            .metric_label(),
        "refused",
        "no downgrade"
    );

    let upgrading = us
        .modify_global_cluster(&upgrade("17.4", true))
        .await
        .unwrap();
    assert_eq!(upgrading.status, GlobalClusterStatus::Upgrading);
    assert_eq!(
        sim.cluster("eu-west-1", "s").unwrap().status,
        ClusterStatus::Upgrading
    );
    // Busy while upgrading: no second change, no failover.
    assert_eq!(
        us.modify_global_cluster(&upgrade("17.4", true))
            .await
            .unwrap_err()
            .metric_label(),
        "busy"
    );
    sim.clock().advance(15 * MINUTE);
    let done = sim.global_cluster("g").unwrap();
    assert_eq!(
        (done.status.as_str(), done.engine_version.as_str()),
        ("available", "17.4")
    );
    for (region, id) in [("us-east-1", "w"), ("eu-west-1", "s")] {
        let c = sim.cluster(region, id).unwrap();
        assert_eq!(
            (c.status.as_str(), c.engine_version.as_str()),
            ("available", "17.4"),
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_global_upgrade_waits_for_every_member_to_be_available_and_reachable() {
    let sim = sim();
    global_pair(&sim).await;
    let request = ModifyGlobalClusterRequest {
        global_cluster_id: "g".into(),
        engine_version: Some("16.8".into()),
        ..ModifyGlobalClusterRequest::default()
    };
    sim.inject(Fault::RegionOutage {
        region: "eu-west-1".into(),
    });
    let us = sim.aurora("us-east-1");
    assert_eq!(
        us.modify_global_cluster(&request)
            .await
            .unwrap_err()
            .metric_label(),
        "invalid_state"
    );
    sim.heal_region("eu-west-1");
    sim.aurora("eu-west-1")
        .create_instance(&instance_request("s", "s-1"))
        .await
        .unwrap();
    us.modify_cluster(&ModifyClusterRequest {
        cluster_id: "w".into(),
        engine_version: Some("16.8".into()),
        deletion_protection: None,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        us.modify_global_cluster(&request)
            .await
            .unwrap_err()
            .metric_label(),
        "busy"
    );
    assert_eq!(
        us.modify_global_cluster(&ModifyGlobalClusterRequest {
            global_cluster_id: "missing".into(),
            deletion_protection: Some(true),
            ..ModifyGlobalClusterRequest::default()
        })
        .await
        .unwrap_err()
        .metric_label(),
        "not_found"
    );
}

#[tokio::test]
async fn a_bounded_call_log_keeps_its_newest_calls_and_counts_them_all() {
    let sim = SimCloud::new(VirtualClock::default());
    sim.keep_calls(10);
    let port = sim.aurora("eu-west-1");
    for _ in 0..25 {
        port.describe_cluster("acme-eu-west-1").await.unwrap();
    }
    assert!(sim.calls().len() <= 10, "{} calls kept", sim.calls().len());
    assert_eq!(sim.call_count(Op::DescribeDBClusters), 25);
    assert_eq!(sim.read_calls(), 25);
    assert_eq!(sim.mutating_calls(), 0);
    assert_eq!(sim.calls_by_op().get("DescribeDBClusters"), Some(&25));
}
