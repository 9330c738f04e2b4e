//! The Aurora executor against the simulated cloud: convergence of a
//! three-region shop, faults, adoption, role changes and deletion.

use std::time::Duration;

use crate::api::DatabaseStatus;
use crate::api::conditions::Status;
use crate::api::fixtures::acme;
use crate::api::{DeletionPolicy, ShopRegionSpec};
use crate::clock::Clock;
use crate::cloud::aurora::*;
use crate::cloud::{CleanupOutcome, requeue};
use crate::concern::Note;
use crate::sim::{Fault, Op, SimCloud, VirtualClock};
use k8s_openapi::jiff::Timestamp;

/// One reconcile of this region's Aurora cluster, as the controller runs
/// it, with the shop's master password already stored.
async fn reconcile(port: &dyn AuroraPort, spec: &ShopRegionSpec, now: Timestamp) -> AuroraOutcome {
    reconcile_from(port, spec, None, now).await
}

/// [`reconcile`], given the status reported last time.
async fn reconcile_from(
    port: &dyn AuroraPort,
    spec: &ShopRegionSpec,
    previous: Option<&DatabaseStatus>,
    now: Timestamp,
) -> AuroraOutcome {
    let password = MasterPassword::new("a-test-password-0123456789");
    crate::cloud::executor::reconcile(&Aurora {
        port,
        spec,
        previous,
        now,
        master_password: Some(&password),
    })
    .await
}

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-northeast-1"];

fn fleet() -> Vec<ShopRegionSpec> {
    REGIONS.iter().map(|r| acme(r)).collect()
}

async fn pass(sim: &SimCloud, specs: &[ShopRegionSpec]) -> Vec<AuroraOutcome> {
    let mut outcomes = Vec::new();
    for spec in specs {
        let port = sim.aurora(&spec.region);
        outcomes.push(reconcile(port.as_ref(), spec, sim.clock().now()).await);
    }
    outcomes
}

/// Reconciles every region until all report `DatabaseReady=True`, moving
/// virtual time by the shortest requeue each round, as the controller
/// would. `before_round` runs first in each round (to inject faults).
async fn converge_with(
    sim: &SimCloud,
    specs: &[ShopRegionSpec],
    mut before_round: impl FnMut(&SimCloud, usize),
) -> (Vec<AuroraOutcome>, Vec<Note>) {
    let mut events = Vec::new();
    for round in 0..500 {
        before_round(sim, round);
        let outcomes = pass(sim, specs).await;
        for outcome in &outcomes {
            assert_eq!(outcome.terminal, None, "round {round}: {outcome:?}");
            events.extend(outcome.events.iter().cloned());
        }
        if outcomes.iter().all(|o| o.condition.status == Status::True) {
            return (outcomes, events);
        }
        let step = outcomes
            .iter()
            .filter(|o| o.condition.status != Status::True)
            .filter_map(|o| o.requeue_after)
            .min()
            .expect("an unconverged region always asks to be requeued");
        sim.clock().advance(step);
    }
    panic!("the fleet did not converge in 500 rounds");
}

async fn converge(sim: &SimCloud, specs: &[ShopRegionSpec]) -> (Vec<AuroraOutcome>, Vec<Note>) {
    converge_with(sim, specs, |_, _| {}).await
}

fn assert_converged_fleet(sim: &SimCloud, outcomes: &[AuroraOutcome]) {
    let global = sim
        .global_cluster("acme-global")
        .expect("the global cluster exists");
    assert_eq!(global.status, GlobalClusterStatus::Available);
    assert!(global.deletion_protection);
    assert_eq!(global.members.len(), 3);
    let writers: Vec<&str> = global
        .members
        .iter()
        .filter(|m| m.is_writer)
        .map(|m| m.region.as_str())
        .collect();
    assert_eq!(writers, vec!["us-east-1"]);
    assert_eq!(sim.all_clusters().len(), 3, "no duplicate clusters");
    let instances = sim.all_instances();
    assert_eq!(
        instances.len(),
        6,
        "a writer slot and one reader per region: {instances:?}"
    );
    for region in REGIONS {
        let id = format!("acme-{region}");
        let names: Vec<String> = sim
            .instances(region, &id)
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(names, vec![format!("{id}-0"), format!("{id}-1")]);
    }
    for (outcome, region) in outcomes.iter().zip(REGIONS) {
        let status = &outcome.status;
        assert_eq!(outcome.condition.reason, reason::AVAILABLE, "{region}");
        assert_eq!(status.writer, region == "us-east-1", "{region}");
        assert_eq!(status.writer_region.as_deref(), Some("us-east-1"));
        assert_eq!(
            status.cluster_status.as_deref(),
            Some(ClusterStatus::Available.as_str())
        );
        assert_eq!(status.readers, 1, "{region}");
        assert!(status.writer_endpoint.is_some() && status.reader_endpoint.is_some());
        assert_eq!(
            status.replication_lag_seconds.is_some(),
            region != "us-east-1"
        );
        assert_eq!(status.last_error, None);
    }
}

#[tokio::test]
async fn three_regions_converge_to_one_writer_and_two_secondaries() {
    let sim = SimCloud::new(VirtualClock::default());
    let start = sim.clock().now();
    let specs = fleet();
    let (outcomes, events) = converge(&sim, &specs).await;
    assert_converged_fleet(&sim, &outcomes);

    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    for expected in [
        "CreatingPrimaryCluster",
        "CreatingWriterInstance",
        "CreatingGlobalCluster",
        "JoiningGlobalCluster",
        "CreatingReaderInstance",
    ] {
        assert!(
            reasons.contains(&expected),
            "{expected} missing from {reasons:?}"
        );
    }
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == "JoiningGlobalCluster")
            .count(),
        2
    );
    // Realistic AWS timings: the fleet is up within an hour and a half.
    let elapsed = sim.clock().now().duration_since(start);
    assert!(elapsed.as_secs() < 90 * 60, "took {elapsed:?}");

    // A converged pass reads and never writes.
    sim.clear_calls();
    let again = pass(&sim, &specs).await;
    assert_eq!(sim.mutating_calls(), 0, "{:?}", sim.calls_by_op());
    assert!(
        again
            .iter()
            .all(|o| o.condition.status == Status::True && o.events.is_empty())
    );
    assert_eq!(again, outcomes);
}

#[tokio::test]
async fn throttling_and_lost_answers_during_convergence_create_no_duplicates() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    // Faults hit the first rounds, which span the whole creation of the
    // fleet; afterwards the fleet must settle on its own.
    let (outcomes, events) = converge_with(&sim, &specs, |sim, round| {
        if round >= 60 {
            return;
        }
        let region = REGIONS[round % 3];
        if round % 2 == 0 {
            sim.inject(Fault::Throttle {
                region: region.into(),
                calls: 2,
            });
        }
        if round % 5 == 1 {
            // The mutation happens but its answer is lost.
            sim.inject(Fault::Timeout {
                region: region.into(),
                calls: 1,
            });
        }
        if round == 7 {
            sim.inject(Fault::ServerError {
                region: "eu-west-1".into(),
                calls: 3,
            });
        }
    })
    .await;
    assert_converged_fleet(&sim, &outcomes);
    assert!(
        sim.calls().iter().any(|c| c.error == Some("throttled")),
        "the faults did hit"
    );
    assert!(
        sim.calls()
            .iter()
            .any(|c| c.error == Some("timeout") && c.mutating)
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason == "CreatingPrimaryCluster")
            .count(),
        sim.calls()
            .iter()
            .filter(|c| c.op == Op::CreateDBCluster && c.error.is_none() && c.region == "us-east-1")
            .count()
    );
}

#[tokio::test]
async fn a_throttled_observation_is_unknown_and_requeued_not_terminal() {
    let sim = SimCloud::new(VirtualClock::default());
    let spec = acme("us-east-1");
    sim.inject(Fault::Throttle {
        region: "us-east-1".into(),
        calls: 1,
    });
    let outcome = reconcile(sim.aurora("us-east-1").as_ref(), &spec, sim.clock().now()).await;
    assert_eq!(outcome.condition.status, Status::Unknown);
    assert_eq!(outcome.condition.reason, reason::AWS_THROTTLED);
    assert_eq!(outcome.terminal, None);
    assert_eq!(outcome.requeue_after, Some(requeue::THROTTLED));
    assert_eq!(sim.mutating_calls(), 0);
}

#[tokio::test]
async fn an_unreachable_region_keeps_its_last_status_and_warns() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    let (outcomes, _) = converge(&sim, &specs).await;
    sim.inject(Fault::RegionOutage {
        region: "eu-west-1".into(),
    });
    let eu = &specs[1];
    let outcome = reconcile_from(
        sim.aurora("eu-west-1").as_ref(),
        eu,
        Some(&outcomes[1].status),
        sim.clock().now(),
    )
    .await;
    assert_eq!(outcome.condition.status, Status::Unknown);
    assert_eq!(outcome.condition.reason, reason::REGION_UNAVAILABLE);
    assert_eq!(outcome.terminal, None);
    assert_eq!(outcome.events.len(), 1);
    assert!(outcome.events[0].warning);
    assert_eq!(outcome.status.writer_region.as_deref(), Some("us-east-1"));
    assert!(outcome.status.last_error.is_some());

    let polled_again = reconcile_from(
        sim.aurora("eu-west-1").as_ref(),
        eu,
        Some(&outcome.status),
        sim.clock().now(),
    )
    .await;
    assert_eq!(polled_again.condition.reason, reason::REGION_UNAVAILABLE);
    assert!(
        polled_again.events.is_empty(),
        "the same outage warns once, not on every poll"
    );
    assert_eq!(
        (outcome.requeue_after, polled_again.requeue_after),
        (
            Some(requeue::REGION_UNAVAILABLE),
            Some(requeue::REGION_STILL_UNAVAILABLE)
        ),
        "a region that stays lost is polled at the steady pace: its return is a verdict change"
    );
}

#[tokio::test]
async fn secondaries_wait_for_primary_and_say_so() {
    let sim = SimCloud::new(VirtualClock::default());
    let outcome = reconcile(
        sim.aurora("eu-west-1").as_ref(),
        &acme("eu-west-1"),
        sim.clock().now(),
    )
    .await;
    assert_eq!(outcome.condition.status, Status::False);
    assert_eq!(outcome.condition.reason, reason::WAITING_FOR_PRIMARY);
    assert_eq!(outcome.requeue_after, Some(requeue::LONG_OPERATION));
    assert_eq!(sim.mutating_calls(), 0);
}

#[tokio::test]
async fn a_major_version_is_created_as_the_regions_default_minor_and_reported() {
    let sim = SimCloud::new(VirtualClock::default());
    let spec = acme("us-east-1");
    assert_eq!(spec.database.engine_version, "16");
    reconcile(sim.aurora("us-east-1").as_ref(), &spec, sim.clock().now()).await;
    assert_eq!(sim.call_count(Op::DescribeDBEngineVersions), 1);
    let cluster = sim.cluster("us-east-1", "acme-us-east-1").expect("created");
    assert_eq!(cluster.engine_version, "16.6");
    sim.clock().advance(Duration::from_secs(3600));
    let outcome = reconcile(sim.aurora("us-east-1").as_ref(), &spec, sim.clock().now()).await;
    assert_eq!(
        outcome.status.engine_version.as_deref(),
        Some("16.6"),
        "the resolved version is in status"
    );
    assert_eq!(
        sim.call_count(Op::DescribeDBEngineVersions),
        1,
        "resolved once, before the create"
    );
}

#[tokio::test]
async fn a_major_version_the_region_lacks_is_terminal_and_creates_nothing() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut spec = acme("us-east-1");
    spec.database.engine_version = "99".into();
    let outcome = reconcile(sim.aurora("us-east-1").as_ref(), &spec, sim.clock().now()).await;
    let error = outcome.terminal.expect("a terminal spec error");
    assert_eq!(error.reason, reason::ENGINE_VERSION_NOT_FOUND);
    assert_eq!(error.field, "spec.database.engineVersion");
    assert_eq!(sim.mutating_calls(), 0);
}

#[tokio::test]
async fn a_request_aws_refuses_for_the_spec_is_terminal_and_names_the_field() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut spec = acme("us-east-1");
    spec.database.engine_version = "99.1".into();
    let outcome = reconcile(sim.aurora("us-east-1").as_ref(), &spec, sim.clock().now()).await;
    let error = outcome.terminal.expect("a terminal spec error");
    assert_eq!(error.reason, reason::REFUSED_BY_AWS);
    assert_eq!(error.field, "spec.database");
    assert!(
        error.message.contains("Cannot find version 99.1"),
        "{}",
        error.message
    );
    assert_eq!(outcome.requeue_after, None);
    assert!(sim.all_clusters().is_empty(), "nothing is half-created");
}

#[tokio::test]
async fn an_unmanaged_cluster_is_adopted_only_when_the_spec_says_so() {
    let sim = SimCloud::new(VirtualClock::default());
    let us = sim.aurora("us-east-1");
    us.create_cluster(&CreateClusterRequest {
        cluster_id: "acme-us-east-1".into(),
        engine: "aurora-postgresql".into(),
        engine_version: "16.4".into(),
        kms_key_id: None,
        storage_encrypted: true,
        deletion_protection: true,
        tags: Tags::from([("team".into(), "payments".into())]),
        global_cluster_id: None,
        master_username: Some("legacy".into()),
        master_user_password: Some(MasterPassword::new("sim-password-0123456789")),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.clock().advance(Duration::from_secs(600));
    sim.clear_calls();

    let mut spec = acme("us-east-1");
    let refused = reconcile(us.as_ref(), &spec, sim.clock().now()).await;
    let error = refused.terminal.expect("adoption is required");
    assert_eq!(error.reason, reason::ADOPTION_REQUIRED);
    assert_eq!(error.field, "spec.database.adopt");
    assert_eq!(sim.mutating_calls(), 0);

    spec.database.adopt = true;
    let adopted = reconcile(us.as_ref(), &spec, sim.clock().now()).await;
    assert_eq!(adopted.condition.reason, reason::ADOPTING);
    assert_eq!(adopted.events[0].reason, "AdoptingCluster");
    let tags = sim.cluster("us-east-1", "acme-us-east-1").unwrap().tags;
    assert_eq!(tags.get("shopfleet.io/managed-by"), Some("shopfleet"));
    assert_eq!(tags.get("team"), Some("payments"), "existing tags stay");

    // The adopted cluster (16.4, not the default minor) is not upgraded:
    // the spec's `16` matches it.
    let (outcomes, _) = converge(&sim, &[spec]).await;
    assert_eq!(outcomes[0].condition.reason, reason::AVAILABLE);
    assert_eq!(
        sim.cluster("us-east-1", "acme-us-east-1")
            .unwrap()
            .engine_version,
        "16.4"
    );
    assert_eq!(sim.call_count(Op::CreateDBCluster), 0);
}

#[tokio::test]
async fn an_adopted_unprotected_global_cluster_is_protected_once_by_the_writer_region() {
    let sim = SimCloud::new(VirtualClock::default());
    let spec = acme("us-east-1");
    let us = sim.aurora("us-east-1");
    us.create_cluster(&CreateClusterRequest {
        cluster_id: "acme-us-east-1".into(),
        engine: "aurora-postgresql".into(),
        engine_version: "16.4".into(),
        kms_key_id: None,
        storage_encrypted: true,
        deletion_protection: true,
        tags: names::resource_tags(&spec),
        global_cluster_id: None,
        master_username: Some("legacy".into()),
        master_user_password: Some(MasterPassword::new("sim-password-0123456789")),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.clock().advance(Duration::from_secs(600));
    us.create_global_cluster(&CreateGlobalClusterRequest {
        global_cluster_id: "acme-global".into(),
        source_cluster_arn: "arn:aws:rds:us-east-1:123456789012:cluster:acme-us-east-1".into(),
        deletion_protection: false,
        tags: Tags::new(),
    })
    .await
    .unwrap();
    sim.clock().advance(Duration::from_secs(600));
    sim.clear_calls();

    let (outcomes, events) = converge(&sim, std::slice::from_ref(&spec)).await;
    assert_eq!(outcomes[0].condition.reason, reason::AVAILABLE);
    assert!(
        sim.global_cluster("acme-global")
            .unwrap()
            .deletion_protection
    );
    assert_eq!(sim.call_count(Op::ModifyGlobalCluster), 1);
    assert!(
        events.iter().any(|e| e.reason == "ProtectingGlobalCluster"),
        "{events:?}"
    );
}

#[tokio::test]
async fn readers_scale_one_instance_at_a_time() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut specs = vec![acme("us-east-1")];
    converge(&sim, &specs).await;
    specs[0].database.readers = 3;
    for _ in 0..200 {
        let outcome = pass(&sim, &specs).await.remove(0);
        let busy = sim
            .instances("us-east-1", "acme-us-east-1")
            .iter()
            .filter(|i| i.status != InstanceStatus::Available)
            .count();
        assert!(busy <= 1, "more than one instance changing at once");
        if outcome.condition.status == Status::True {
            assert_eq!(outcome.status.readers, 3);
            break;
        }
        sim.clock().advance(outcome.requeue_after.unwrap());
    }
    assert_eq!(sim.instances("us-east-1", "acme-us-east-1").len(), 4);

    specs[0].database.readers = 0;
    let (outcomes, _) = converge(&sim, &specs).await;
    let left = sim.instances("us-east-1", "acme-us-east-1");
    assert_eq!(left.len(), 1);
    assert!(left[0].is_writer, "the writer is never removed");
    assert_eq!(outcomes[0].status.readers, 0);
}

#[tokio::test]
async fn a_minor_engine_upgrade_is_applied_and_then_converged() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut specs = vec![acme("us-east-1")];
    converge(&sim, &specs).await;
    specs[0].database.engine_version = "16.8".into();
    let first = pass(&sim, &specs).await.remove(0);
    assert_eq!(first.condition.reason, reason::UPGRADING);
    assert_eq!(first.events[0].reason, "UpgradingEngine");
    converge(&sim, &specs).await;
    assert_eq!(
        sim.cluster("us-east-1", "acme-us-east-1")
            .unwrap()
            .engine_version,
        "16.8"
    );
    sim.clear_calls();
    pass(&sim, &specs).await;
    assert_eq!(sim.mutating_calls(), 0);
}

#[tokio::test]
async fn a_switchover_is_reported_as_a_role_change() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    let (before, _) = converge(&sim, &specs).await;
    let eu_arn = sim.cluster("eu-west-1", "acme-eu-west-1").unwrap().arn;
    sim.aurora("eu-west-1")
        .switchover_global_cluster("acme-global", &eu_arn)
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(180));
    let mut after = Vec::new();
    for (spec, previous) in specs.iter().zip(&before) {
        after.push(
            reconcile_from(
                sim.aurora(&spec.region).as_ref(),
                spec,
                Some(&previous.status),
                sim.clock().now(),
            )
            .await,
        );
    }
    assert!(after.iter().all(|o| o.condition.status == Status::True));
    assert!(
        after
            .iter()
            .all(|o| o.status.writer_region.as_deref() == Some("eu-west-1"))
    );
    assert_eq!(after[0].events[0].reason, "BecameSecondary");
    assert!(after[0].events[0].warning);
    assert_eq!(after[1].events[0].reason, "BecameWriter");
    assert_eq!(after[2].events[0].reason, "WriterRegionChanged");
    assert!(after[1].status.writer);
    assert_eq!(after[1].status.readers, 1);
}

#[tokio::test]
async fn the_old_writer_rejoins_as_a_secondary_after_a_failover() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    converge(&sim, &specs).await;
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    let eu_arn = sim.cluster("eu-west-1", "acme-eu-west-1").unwrap().arn;
    sim.aurora("eu-west-1")
        .failover_global_cluster("acme-global", &eu_arn, true)
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(60));
    sim.heal_region("us-east-1");
    let (outcomes, _) = converge(&sim, &specs).await;
    assert!(!outcomes[0].status.writer);
    assert_eq!(
        outcomes[0].status.writer_region.as_deref(),
        Some("eu-west-1")
    );
    assert!(outcomes[1].status.writer);
    let global = sim.global_cluster("acme-global").unwrap();
    assert_eq!(global.members.iter().filter(|m| m.is_writer).count(), 1);
}

#[tokio::test]
async fn retain_cleanup_makes_no_call() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    converge(&sim, &specs).await;
    sim.clear_calls();
    for spec in &specs {
        assert_eq!(
            cleanup(sim.aurora(&spec.region).as_ref(), spec).await,
            CleanupOutcome::Done
        );
    }
    assert!(sim.calls().is_empty());
    assert_eq!(sim.all_clusters().len(), 3);
}

async fn clean(sim: &SimCloud, spec: &ShopRegionSpec) -> CleanupOutcome {
    for _ in 0..200 {
        match cleanup(sim.aurora(&spec.region).as_ref(), spec).await {
            CleanupOutcome::InProgress { requeue } => sim.clock().advance(requeue),
            other => return other,
        }
    }
    panic!("cleanup of {} did not finish", spec.region);
}

#[tokio::test]
async fn snapshot_cleanup_deletes_secondaries_first_and_never_a_primary_with_secondaries() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut specs = fleet();
    for spec in &mut specs {
        spec.database.deletion_policy = DeletionPolicy::Snapshot;
    }
    converge(&sim, &specs).await;

    let CleanupOutcome::Blocked { reason, message } = clean(&sim, &specs[0]).await else {
        panic!("the primary must not be deleted while secondaries replicate from it");
    };
    assert_eq!(reason, reason::DELETION_BLOCKED);
    assert!(message.contains("eu-west-1"), "{message}");
    assert_eq!(sim.all_clusters().len(), 3);

    assert_eq!(clean(&sim, &specs[1]).await, CleanupOutcome::Done);
    assert_eq!(clean(&sim, &specs[2]).await, CleanupOutcome::Done);
    assert_eq!(clean(&sim, &specs[0]).await, CleanupOutcome::Done);

    assert!(sim.all_clusters().is_empty());
    assert!(sim.all_instances().is_empty());
    assert_eq!(sim.global_cluster("acme-global"), None);
    let snapshots: Vec<String> = sim.snapshots().into_iter().map(|(_, id)| id).collect();
    assert_eq!(snapshots.len(), 3);
    assert!(
        snapshots.iter().all(|s| s.contains("-final-")),
        "{snapshots:?}"
    );
}

#[tokio::test]
async fn delete_cleanup_of_a_lone_primary_takes_no_snapshot() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut spec = acme("us-east-1");
    spec.database.deletion_policy = DeletionPolicy::Delete;
    converge(&sim, std::slice::from_ref(&spec)).await;
    assert_eq!(clean(&sim, &spec).await, CleanupOutcome::Done);
    assert!(sim.snapshots().is_empty());
    assert!(sim.all_clusters().is_empty());
    assert_eq!(sim.global_cluster("acme-global"), None);
}
