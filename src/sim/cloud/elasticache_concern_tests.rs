//! The cache executor against the simulated cloud: convergence of a
//! three-region shop, faults, AUTH, adoption, replicas, role changes and
//! deletion.

use std::time::Duration;

use crate::api::SecretKeyRef;
use crate::api::conditions::Status;
use crate::api::fixtures::acme;
use crate::api::{CacheStatus, DeletionPolicy, ShopRegionSpec};
use crate::clock::Clock;
use crate::cloud::elasticache::*;
use crate::cloud::{CleanupOutcome, requeue};
use crate::concern::Note;
use crate::sim::{Fault, Op, SimCloud, VirtualClock};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-northeast-1"];
const TOKEN: &str = "s3cret-Token-0123456789";

fn fleet() -> Vec<ShopRegionSpec> {
    REGIONS.iter().map(|r| acme(r)).collect()
}

async fn pass_with(
    sim: &SimCloud,
    specs: &[ShopRegionSpec],
    auth: &CacheAuth,
    previous: &[Option<CacheStatus>],
) -> Vec<CacheOutcome> {
    let ports = |region: &str| sim.elasticache(region);
    let mut outcomes = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let previous = previous.get(i).and_then(Option::as_ref);
        outcomes.push(reconcile_from(&ports, spec, auth, previous, sim.clock().now()).await);
    }
    outcomes
}

async fn pass(sim: &SimCloud, specs: &[ShopRegionSpec]) -> Vec<CacheOutcome> {
    pass_with(sim, specs, &CacheAuth::Disabled, &[]).await
}

/// Reconciles every region until all report `CacheReady=True`, moving
/// virtual time by the shortest requeue each round and handing each region
/// its previous status, as the controller would. `before_round` runs first
/// in each round (to inject faults).
async fn converge_with(
    sim: &SimCloud,
    specs: &[ShopRegionSpec],
    auth: &CacheAuth,
    mut before_round: impl FnMut(&SimCloud, usize),
) -> (Vec<CacheOutcome>, Vec<Note>) {
    let mut events = Vec::new();
    let mut previous: Vec<Option<CacheStatus>> = vec![None; specs.len()];
    for round in 0..500 {
        before_round(sim, round);
        let outcomes = pass_with(sim, specs, auth, &previous).await;
        for outcome in &outcomes {
            assert_eq!(outcome.terminal, None, "round {round}: {outcome:?}");
            events.extend(outcome.events.iter().cloned());
        }
        if outcomes.iter().all(|o| o.condition.status == Status::True) {
            return (outcomes, events);
        }
        previous = outcomes.iter().map(|o| Some(o.status.clone())).collect();
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

async fn converge(sim: &SimCloud, specs: &[ShopRegionSpec]) -> (Vec<CacheOutcome>, Vec<Note>) {
    converge_with(sim, specs, &CacheAuth::Disabled, |_, _| {}).await
}

fn assert_converged_fleet(sim: &SimCloud, outcomes: &[CacheOutcome]) {
    let globals = sim.global_replication_groups();
    assert_eq!(globals.len(), 1, "one Global Datastore: {globals:?}");
    let global = &globals[0];
    assert_eq!(global.id, "ldgnf-acme", "us-east-1's prefix and the shop");
    assert_eq!(global.status, GlobalReplicationGroupStatus::Available);
    assert_eq!(global.members.len(), 3);
    assert!(
        global
            .members
            .iter()
            .all(|m| m.status == GlobalMemberStatus::Associated)
    );
    let primaries: Vec<&str> = global
        .members
        .iter()
        .filter(|m| m.is_primary)
        .map(|m| m.region.as_str())
        .collect();
    assert_eq!(primaries, vec!["us-east-1"]);
    assert_eq!(sim.all_replication_groups().len(), 3, "no duplicate groups");
    let primary_endpoint = "master.acme-us-east-1.sim.us-east-1.cache.amazonaws.com:6379";
    for (outcome, region) in outcomes.iter().zip(REGIONS) {
        let status = &outcome.status;
        assert_eq!(outcome.condition.reason, reason::AVAILABLE, "{region}");
        assert_eq!(status.primary, region == "us-east-1", "{region}");
        assert_eq!(status.primary_region.as_deref(), Some("us-east-1"));
        assert_eq!(
            status.global_replication_group_id.as_deref(),
            Some("ldgnf-acme")
        );
        assert_eq!(
            status.replication_group_id.as_deref(),
            Some(format!("acme-{region}").as_str())
        );
        assert_eq!(
            status.replication_group_status.as_deref(),
            Some(ReplicationGroupStatus::Available.as_str())
        );
        assert_eq!(status.primary_endpoint.as_deref(), Some(primary_endpoint));
        assert_eq!(
            status.reader_endpoint,
            Some(format!(
                "replica.acme-{region}.sim.{region}.cache.amazonaws.com:6379"
            ))
        );
        assert_eq!(
            status.replication_lag_seconds.is_some(),
            region != "us-east-1",
            "{region}"
        );
        assert_eq!(status.last_error, None);
    }
}

#[tokio::test]
async fn three_regions_converge_to_one_primary_and_two_secondaries() {
    let sim = SimCloud::new(VirtualClock::default());
    let start = sim.clock().now();
    let specs = fleet();
    let (outcomes, events) = converge(&sim, &specs).await;
    assert_converged_fleet(&sim, &outcomes);

    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    for expected in [
        "CreatingPrimaryReplicationGroup",
        "CreatingGlobalDatastore",
        "JoiningGlobalDatastore",
    ] {
        assert!(
            reasons.contains(&expected),
            "{expected} missing from {reasons:?}"
        );
    }
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == "JoiningGlobalDatastore")
            .count(),
        2
    );
    let elapsed = sim.clock().now().duration_since(start);
    assert!(elapsed.as_secs() < 60 * 60, "took {elapsed:?}");

    // A converged pass reads and never writes.
    sim.clear_calls();
    let previous: Vec<Option<CacheStatus>> =
        outcomes.iter().map(|o| Some(o.status.clone())).collect();
    let again = pass_with(&sim, &specs, &CacheAuth::Disabled, &previous).await;
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
    let (outcomes, events) = converge_with(&sim, &specs, &CacheAuth::Disabled, |sim, round| {
        if round >= 40 {
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
    })
    .await;
    assert_converged_fleet(&sim, &outcomes);
    assert!(sim.calls().iter().any(|c| c.error == Some("throttled")));
    assert!(
        sim.calls()
            .iter()
            .any(|c| c.error == Some("timeout") && c.mutating)
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason == "CreatingPrimaryReplicationGroup")
            .count(),
        sim.calls()
            .iter()
            .filter(|c| c.op == Op::CreateReplicationGroup
                && c.error.is_none()
                && c.region == "us-east-1")
            .count()
    );
}

#[tokio::test]
async fn a_throttled_observation_is_unknown_and_requeued_not_terminal() {
    let sim = SimCloud::new(VirtualClock::default());
    sim.inject(Fault::Throttle {
        region: "us-east-1".into(),
        calls: 1,
    });
    let outcome = pass(&sim, &[acme("us-east-1")]).await.remove(0);
    assert_eq!(outcome.condition.status, Status::Unknown);
    assert_eq!(outcome.condition.reason, reason::AWS_THROTTLED);
    assert_eq!(outcome.terminal, None);
    assert_eq!(outcome.requeue_after, Some(requeue::THROTTLED));
    assert_eq!(sim.mutating_calls(), 0);
}

#[tokio::test]
async fn an_unreachable_region_keeps_its_last_status_and_warns_once() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    let (outcomes, _) = converge(&sim, &specs).await;
    sim.inject(Fault::RegionOutage {
        region: "eu-west-1".into(),
    });
    let eu = &specs[1..2];
    let first = pass_with(
        &sim,
        eu,
        &CacheAuth::Disabled,
        &[Some(outcomes[1].status.clone())],
    )
    .await
    .remove(0);
    assert_eq!(first.condition.status, Status::Unknown);
    assert_eq!(first.condition.reason, reason::REGION_UNAVAILABLE);
    assert_eq!(first.terminal, None);
    assert_eq!(first.events.len(), 1);
    assert!(first.events[0].warning);
    assert_eq!(first.status.primary_region.as_deref(), Some("us-east-1"));
    assert_eq!(
        first.status.primary_endpoint,
        outcomes[1].status.primary_endpoint
    );
    let second = pass_with(
        &sim,
        eu,
        &CacheAuth::Disabled,
        &[Some(first.status.clone())],
    )
    .await
    .remove(0);
    assert!(second.events.is_empty(), "the same outage is not news");
}

#[tokio::test]
async fn a_secondary_keeps_the_primary_endpoint_while_the_primary_region_cannot_be_read() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    let (outcomes, _) = converge(&sim, &specs).await;
    sim.inject(Fault::RegionOutage {
        region: "us-east-1".into(),
    });
    let eu = pass_with(
        &sim,
        &specs[1..2],
        &CacheAuth::Disabled,
        &[Some(outcomes[1].status.clone())],
    )
    .await
    .remove(0);
    assert_eq!(eu.condition.status, Status::True);
    assert_eq!(
        eu.status.primary_endpoint,
        outcomes[1].status.primary_endpoint
    );
    assert_eq!(
        eu.status.replication_lag_seconds, None,
        "nothing replicates from a lost primary"
    );
}

#[tokio::test]
async fn secondaries_wait_for_the_primary_and_say_so() {
    let sim = SimCloud::new(VirtualClock::default());
    let outcome = pass(&sim, &[acme("eu-west-1")]).await.remove(0);
    assert_eq!(outcome.condition.status, Status::False);
    assert_eq!(outcome.condition.reason, reason::WAITING_FOR_PRIMARY);
    assert!(outcome.condition.message.contains("us-east-1"));
    assert_eq!(outcome.requeue_after, Some(requeue::LONG_OPERATION));
    assert_eq!(sim.mutating_calls(), 0);
}

fn with_auth(region: &str) -> ShopRegionSpec {
    let mut spec = acme(region);
    spec.cache.auth_secret_ref = Some(SecretKeyRef {
        name: "acme-redis-auth".into(),
        key: "token".into(),
    });
    spec
}

#[tokio::test]
async fn a_missing_auth_secret_waits_warns_once_and_the_token_then_creates_the_group() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = vec![with_auth("us-east-1")];
    let missing = auth_from_secret(
        specs[0].cache.auth_secret_ref.as_ref().unwrap(),
        "shop",
        None,
    );
    let first = pass_with(&sim, &specs, &missing, &[]).await.remove(0);
    assert_eq!(first.condition.status, Status::False);
    assert_eq!(first.condition.reason, reason::AUTH_SECRET_MISSING);
    assert!(first.condition.message.contains("shop/acme-redis-auth"));
    assert_eq!(first.terminal, None);
    assert_eq!(first.requeue_after, Some(requeue::AUTH_UNAVAILABLE));
    assert_eq!(first.events.len(), 1);
    assert!(first.events[0].warning);
    assert_eq!(
        sim.mutating_calls(),
        0,
        "nothing is created without the token"
    );
    let second = pass_with(&sim, &specs, &missing, &[Some(first.status.clone())])
        .await
        .remove(0);
    assert!(second.events.is_empty(), "warned once");

    let token = CacheAuth::Token(AuthToken::new(TOKEN));
    let (outcomes, events) = converge_with(&sim, &specs, &token, |_, _| {}).await;
    let group = sim
        .replication_group("us-east-1", "acme-us-east-1")
        .unwrap();
    assert!(group.auth_token_enabled);
    let shown = format!("{outcomes:?} {events:?} {:?}", sim.calls());
    assert!(!shown.contains(TOKEN), "the token leaked: {shown}");
}

#[tokio::test]
async fn a_fleet_with_auth_converges_with_every_member_using_auth() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs: Vec<ShopRegionSpec> = REGIONS.iter().map(|r| with_auth(r)).collect();
    let token = CacheAuth::Token(AuthToken::new(TOKEN));
    converge_with(&sim, &specs, &token, |_, _| {}).await;
    let global = &sim.global_replication_groups()[0];
    assert!(global.auth_token_enabled);
    assert_eq!(global.members.len(), 3);
}

/// One pass of one region's cache concern with the token `auth` and the
/// token its order pods run with.
async fn rotation_pass(
    sim: &SimCloud,
    spec: &ShopRegionSpec,
    auth: &CacheAuth,
    previous: &CacheStatus,
    rolled: Option<&str>,
) -> CacheOutcome {
    let ports = |region: &str| sim.elasticache(region);
    crate::cloud::executor::reconcile(&ElastiCache {
        ports: &ports,
        spec,
        auth,
        previous: Some(previous),
        rolled_auth: rolled,
        now: sim.clock().now(),
    })
    .await
}

#[tokio::test]
async fn a_new_auth_token_is_rotated_in_kept_beside_the_old_until_the_pods_run_it_then_set() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs: Vec<ShopRegionSpec> = REGIONS.iter().map(|r| with_auth(r)).collect();
    let old = CacheAuth::Token(AuthToken::new(TOKEN));
    let (outcomes, _) = converge_with(&sim, &specs, &old, |_, _| {}).await;
    let spec = &specs[0];
    let group = names::replication_group_id(spec);
    let old_fp = auth::fingerprint(&group, &AuthToken::new(TOKEN));
    let settled = outcomes[0].status.clone();
    assert_eq!(
        settled.auth_token.as_ref().unwrap().applied.as_deref(),
        Some(old_fp.as_str()),
        "the token the group was created with is recorded, by fingerprint"
    );

    const NEW: &str = "n3w-Token-9876543210";
    let new = CacheAuth::Token(AuthToken::new(NEW));
    let new_fp = auth::fingerprint(&group, &AuthToken::new(NEW));
    let modifies = || sim.call_count(Op::ModifyReplicationGroup);
    let before = modifies();

    let rotated = rotation_pass(&sim, spec, &new, &settled, Some(&old_fp)).await;
    assert_eq!(modifies(), before + 1);
    assert_eq!(rotated.events[0].reason, "AuthTokenRotating");
    let state = rotated.status.auth_token.clone().unwrap();
    assert_eq!(state.applied.as_deref(), Some(old_fp.as_str()));
    assert_eq!(state.rotating_to.as_deref(), Some(new_fp.as_str()));
    let text = format!("{rotated:?}");
    assert!(
        !text.contains(NEW) && !text.contains(TOKEN),
        "never the token itself"
    );

    sim.clock().advance(Duration::from_secs(600));
    let waiting = rotation_pass(&sim, spec, &new, &rotated.status, Some(&old_fp)).await;
    assert_eq!(
        modifies(),
        before + 1,
        "no SET while pods run the old token"
    );
    assert_eq!(waiting.condition.status, Status::True);
    assert!(
        waiting
            .condition
            .message
            .contains("waits for every order pod")
    );

    let set = rotation_pass(&sim, spec, &new, &waiting.status, Some(&new_fp)).await;
    assert_eq!(modifies(), before + 2);
    assert_eq!(set.events[0].reason, "AuthTokenSet");
    let state = set.status.auth_token.clone().unwrap();
    assert_eq!(state.applied.as_deref(), Some(new_fp.as_str()));
    assert_eq!(state.rotating_to, None);

    sim.clock().advance(Duration::from_secs(600));
    let after = rotation_pass(&sim, spec, &new, &set.status, Some(&new_fp)).await;
    assert_eq!(modifies(), before + 2, "a settled token makes no call");
    assert_eq!(after.condition.status, Status::True);
}

#[tokio::test]
async fn an_unreadable_auth_secret_changes_nothing_on_a_running_group_and_says_why() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs: Vec<ShopRegionSpec> = REGIONS.iter().map(|r| with_auth(r)).collect();
    let token = CacheAuth::Token(AuthToken::new(TOKEN));
    let (outcomes, _) = converge_with(&sim, &specs, &token, |_, _| {}).await;
    let before = sim.mutating_calls();
    let missing = CacheAuth::Unavailable {
        reason: auth::reason::AUTH_SECRET_KEY_MISSING,
        message: "Secret shop/acme-redis-auth has no key \"token\"".into(),
    };
    let outcome = rotation_pass(&sim, &specs[0], &missing, &outcomes[0].status, None).await;
    assert_eq!(outcome.condition.status, Status::False);
    assert_eq!(
        outcome.condition.reason,
        auth::reason::AUTH_SECRET_KEY_MISSING
    );
    assert!(
        outcome
            .condition
            .message
            .contains("keeps its current token")
    );
    assert_eq!(sim.mutating_calls(), before, "nothing half-changed");
}

#[tokio::test]
async fn security_groups_are_read_from_aws_only_until_they_match_the_spec() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs: Vec<ShopRegionSpec> = REGIONS
        .iter()
        .map(|r| {
            let mut spec = acme(r);
            spec.cache.network = Some(crate::api::CacheNetwork {
                subnet_group_name: "acme-orders-cache".into(),
                security_group_ids: vec![format!("sg-0{}", "a".repeat(16))],
            });
            spec
        })
        .collect();
    let (outcomes, _) = converge_with(&sim, &specs, &CacheAuth::Disabled, |_, _| {}).await;
    let reads = || sim.call_count(Op::DescribeCacheClusters);
    let previous: Vec<Option<CacheStatus>> =
        outcomes.iter().map(|o| Some(o.status.clone())).collect();
    let before = reads();
    let again = pass_with(&sim, &specs, &CacheAuth::Disabled, &previous).await;
    assert!(again.iter().all(|o| o.condition.status == Status::True));
    assert_eq!(
        reads(),
        before,
        "a converged fleet whose groups match reads none"
    );

    let mut changed = specs.clone();
    changed[0]
        .cache
        .network
        .as_mut()
        .unwrap()
        .security_group_ids = vec![format!("sg-0{}", "b".repeat(16))];
    let previous: Vec<Option<CacheStatus>> = again.iter().map(|o| Some(o.status.clone())).collect();
    let outcome = pass_with(&sim, &changed[..1], &CacheAuth::Disabled, &previous[..1])
        .await
        .remove(0);
    assert_eq!(reads(), before + 1, "a changed spec is checked against AWS");
    assert_eq!(outcome.condition.reason, reason::RECONFIGURING);
    assert_eq!(
        outcome.status.security_group_ids,
        vec![format!("sg-0{}", "b".repeat(16))]
    );
}

#[tokio::test]
async fn a_request_aws_refuses_for_the_spec_is_terminal_and_names_the_field() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut spec = acme("us-east-1");
    spec.shop = "a--b".into();
    let outcome = pass(&sim, &[spec]).await.remove(0);
    let error = outcome.terminal.expect("a terminal spec error");
    assert_eq!(error.reason, reason::REFUSED_BY_AWS);
    assert_eq!(error.field, "spec.cache");
    assert_eq!(outcome.requeue_after, None);
    assert!(
        sim.all_replication_groups().is_empty(),
        "nothing is half-created"
    );
}

#[tokio::test]
async fn an_unsupported_node_type_is_terminal_before_any_call() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut spec = acme("us-east-1");
    spec.cache.node_type = "cache.t4g.medium".into();
    let outcome = pass(&sim, &[spec]).await.remove(0);
    assert_eq!(
        outcome.terminal.map(|e| e.reason),
        Some(reason::UNSUPPORTED_NODE_TYPE)
    );
    assert_eq!(sim.mutating_calls(), 0);
}

#[tokio::test]
async fn an_unmanaged_group_is_adopted_only_when_the_spec_says_so() {
    let sim = SimCloud::new(VirtualClock::default());
    let us = sim.elasticache("us-east-1");
    let CachePlan::Steps(steps) = plan::plan(&CachePlanInput {
        spec: &acme("us-east-1"),
        auth: &CacheAuth::Disabled,
        global: None,
        replication_group: None,
        tags: &Tags::new(),
        security_groups: None,
        recorded_auth: None,
        rolled_auth: None,
    }) else {
        panic!("a first region without a group plans its creation");
    };
    let CacheAction::CreatePrimaryReplicationGroup { mut request } = steps[0].clone() else {
        panic!("expected CreatePrimaryReplicationGroup");
    };
    request.tags = Tags::from([("team".into(), "payments".into())]);
    us.create_replication_group(&request).await.unwrap();
    sim.clock().advance(Duration::from_secs(600));
    sim.clear_calls();

    let mut spec = acme("us-east-1");
    let refused = pass(&sim, std::slice::from_ref(&spec)).await.remove(0);
    let error = refused.terminal.expect("adoption is required");
    assert_eq!(error.reason, reason::ADOPTION_REQUIRED);
    assert_eq!(error.field, "spec.cache.adopt");
    assert_eq!(sim.mutating_calls(), 0);

    spec.cache.adopt = true;
    let adopted = pass(&sim, std::slice::from_ref(&spec)).await.remove(0);
    assert_eq!(adopted.condition.reason, reason::ADOPTING);
    assert_eq!(adopted.events[0].reason, "AdoptingReplicationGroup");
    let group = sim
        .replication_group("us-east-1", "acme-us-east-1")
        .unwrap();
    let tags = us.list_tags(&group.arn).await.unwrap();
    assert_eq!(tags.get("shopfleet.io/managed-by"), Some("shopfleet"));
    assert_eq!(tags.get("team"), Some("payments"));
    let (outcomes, _) = converge(&sim, &[spec]).await;
    assert!(outcomes[0].status.primary);
    assert_eq!(sim.call_count(Op::CreateReplicationGroup), 0);
    assert_eq!(sim.global_replication_groups().len(), 1);
}

#[tokio::test]
async fn replicas_scale_one_at_a_time_and_failover_follows_them() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut specs = vec![acme("us-east-1")];
    converge(&sim, &specs).await;
    let group = || {
        sim.replication_group("us-east-1", "acme-us-east-1")
            .unwrap()
    };

    specs[0].cache.replicas_per_shard = 3;
    let mut seen = vec![group().replicas_per_shard()];
    for _ in 0..100 {
        let outcome = pass(&sim, &specs).await.remove(0);
        let now = group().replicas_per_shard();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if outcome.condition.status == Status::True {
            break;
        }
        sim.clock().advance(outcome.requeue_after.unwrap());
    }
    assert_eq!(seen, vec![1, 2, 3], "one replica at a time");

    specs[0].cache.replicas_per_shard = 0;
    converge(&sim, &specs).await;
    let g = group();
    assert_eq!(g.replicas_per_shard(), 0);
    assert_eq!(g.automatic_failover, AutomaticFailoverStatus::Disabled);
    assert!(!g.multi_az);

    specs[0].cache.replicas_per_shard = 1;
    converge(&sim, &specs).await;
    let g = group();
    assert_eq!(g.replicas_per_shard(), 1);
    assert_eq!(g.automatic_failover, AutomaticFailoverStatus::Enabled);
    assert!(g.multi_az);
    sim.clear_calls();
    pass(&sim, &specs).await;
    assert_eq!(sim.mutating_calls(), 0);
}

#[tokio::test]
async fn a_failover_is_reported_as_a_role_change() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    let (before, _) = converge(&sim, &specs).await;
    sim.elasticache("eu-west-1")
        .failover_global_replication_group("ldgnf-acme", "eu-west-1", "acme-eu-west-1")
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(60));
    let previous: Vec<Option<CacheStatus>> =
        before.iter().map(|o| Some(o.status.clone())).collect();
    let after = pass_with(&sim, &specs, &CacheAuth::Disabled, &previous).await;
    assert!(after.iter().all(|o| o.condition.status == Status::True));
    assert!(
        after
            .iter()
            .all(|o| o.status.primary_region.as_deref() == Some("eu-west-1"))
    );
    assert_eq!(after[0].events[0].reason, "CacheBecameSecondary");
    assert!(after[0].events[0].warning);
    assert_eq!(after[1].events[0].reason, "CacheBecamePrimary");
    assert_eq!(after[2].events[0].reason, "CachePrimaryRegionChanged");
    let eu_endpoint = "master.acme-eu-west-1.sim.eu-west-1.cache.amazonaws.com:6379";
    assert!(
        after
            .iter()
            .all(|o| o.status.primary_endpoint.as_deref() == Some(eu_endpoint))
    );
}

#[tokio::test]
async fn retain_cleanup_makes_no_call() {
    let sim = SimCloud::new(VirtualClock::default());
    let specs = fleet();
    converge(&sim, &specs).await;
    sim.clear_calls();
    for spec in &specs {
        assert_eq!(
            cleanup(sim.elasticache(&spec.region).as_ref(), spec).await,
            CleanupOutcome::Done
        );
    }
    assert!(sim.calls().is_empty());
    assert_eq!(sim.all_replication_groups().len(), 3);
}

async fn clean(sim: &SimCloud, spec: &ShopRegionSpec) -> CleanupOutcome {
    for _ in 0..200 {
        match cleanup(sim.elasticache(&spec.region).as_ref(), spec).await {
            CleanupOutcome::InProgress { requeue } => sim.clock().advance(requeue),
            other => return other,
        }
    }
    panic!("cleanup of {} did not finish", spec.region);
}

#[tokio::test]
async fn snapshot_cleanup_removes_secondaries_first_and_never_a_primary_with_secondaries() {
    let sim = SimCloud::new(VirtualClock::default());
    let mut specs = fleet();
    for spec in &mut specs {
        spec.cache.deletion_policy = DeletionPolicy::Snapshot;
    }
    converge(&sim, &specs).await;

    let CleanupOutcome::Blocked { reason, message } = clean(&sim, &specs[0]).await else {
        panic!("the primary must not be deleted while secondaries replicate from it");
    };
    assert_eq!(reason, reason::DELETION_BLOCKED);
    assert!(message.contains("eu-west-1, ap-northeast-1"), "{message}");
    assert_eq!(sim.all_replication_groups().len(), 3);

    assert_eq!(clean(&sim, &specs[1]).await, CleanupOutcome::Done);
    assert_eq!(clean(&sim, &specs[2]).await, CleanupOutcome::Done);
    assert!(sim.call_count(Op::DisassociateGlobalReplicationGroup) >= 2);
    assert_eq!(clean(&sim, &specs[0]).await, CleanupOutcome::Done);

    assert!(sim.all_replication_groups().is_empty());
    assert!(sim.global_replication_groups().is_empty());
    let snapshots: Vec<String> = sim
        .cache_snapshots()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
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
    spec.cache.deletion_policy = DeletionPolicy::Delete;
    converge(&sim, std::slice::from_ref(&spec)).await;
    assert_eq!(clean(&sim, &spec).await, CleanupOutcome::Done);
    assert!(sim.cache_snapshots().is_empty());
    assert!(sim.all_replication_groups().is_empty());
    assert!(sim.global_replication_groups().is_empty());
}
