//! Property tests of the decision engine's safety invariants over random
//! fleets: three regions in a random order, random policies, health
//! histories, lags, AWS states, failover records and cooldowns. Every region
//! decides on the same observation, as they would with the same view.
//!
//! The expectations are computed here from the observation, independently of
//! the engine's own helpers, so that a broken rule in the engine shows up as
//! a failing property rather than being mirrored by it.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use super::decide::{Decision, decide};
use super::health::{Health, HealthState, Sample, Thresholds};
use super::observe::{
    Attempt, FleetObservation, GlobalView, LagSample, Policy, RegionView, WriterTransition,
};
use crate::api::{FailoverKind, FailoverMode, FailoverResult, FailoverStep, HealthVerdict};
use crate::probe::Signal;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-northeast-1"];

fn t(offset: i64) -> Timestamp {
    Timestamp::from_second(1_735_689_600 + offset).unwrap()
}

fn now() -> Timestamp {
    t(0)
}

fn region() -> impl Strategy<Value = String> {
    prop::sample::select(REGIONS.to_vec()).prop_map(String::from)
}

fn health() -> impl Strategy<Value = Health> {
    // Since: mostly long enough ago for unhealthyAfter to have passed, often
    // close to its edge.
    let since = prop_oneof![-400i64..=0, -70i64..=-5];
    (
        prop_oneof![
            5 => Just(HealthVerdict::Healthy),
            4 => Just(HealthVerdict::Unhealthy),
            1 => Just(HealthVerdict::Unknown),
        ],
        since,
        prop::option::weighted(0.4, 0i64..=30),
    )
        .prop_map(|(verdict, since, confirmed_after)| Health {
            verdict,
            since: Some(t(since)),
            reason: "Generated",
            message: "generated".into(),
            was_healthy: true,
            // Corroboration starts with the run or a little later, and only
            // an Unhealthy verdict carries it.
            confirmed_since: confirmed_after
                .filter(|_| verdict == HealthVerdict::Unhealthy)
                .map(|after| t((since + after).min(0))),
        })
}

fn lag() -> impl Strategy<Value = Option<LagSample>> {
    prop::option::weighted(
        0.85,
        (
            prop_oneof![0u64..=2_000, 0u64..=60_000],
            prop_oneof![-60i64..=0, -800i64..=0],
        )
            .prop_map(|(ms, at)| LagSample {
                lag: Duration::from_millis(ms),
                at: t(at),
            }),
    )
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (
        prop_oneof![Just(FailoverKind::Failover), Just(FailoverKind::Switchover)],
        region(),
        region(),
        -2_000i64..=0,
        prop::option::of((
            0i64..=300,
            prop_oneof![
                3 => Just(FailoverResult::Completed),
                1 => Just(FailoverResult::Abandoned),
                1 => Just(FailoverResult::Superseded),
            ],
        )),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(kind, from, to, started, end, steps)| Attempt {
            region: to.clone(),
            kind,
            from,
            to,
            started_at: t(started),
            completed_at: end.map(|(d, _)| t((started + d).min(0))),
            result: end.map(|(_, r)| r),
            completed_steps: if steps {
                vec![FailoverStep::AuroraFailoverRequested]
            } else {
                vec![]
            },
        })
}

fn global() -> impl Strategy<Value = Option<GlobalView>> {
    prop::option::weighted(
        0.95,
        (
            prop::option::weighted(0.95, region()),
            prop::option::weighted(
                0.1,
                (
                    prop_oneof![Just(FailoverKind::Failover), Just(FailoverKind::Switchover)],
                    region(),
                    region(),
                )
                    .prop_map(|(kind, from, to)| WriterTransition {
                        kind,
                        from: Some(from),
                        to: Some(to),
                    }),
            ),
        )
            .prop_map(|(writer, transition)| GlobalView {
                writer,
                transition,
                members: ["us-east-1", "eu-west-1", "ap-northeast-1"]
                    .map(String::from)
                    .to_vec(),
            }),
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        Just(REGIONS.map(String::from).to_vec()).prop_shuffle(),
        prop_oneof![4 => Just(FailoverMode::Automatic), 1 => Just(FailoverMode::Manual)],
        prop::sample::select(vec![10u64, 30, 60]),
        prop::sample::select(vec![1u64, 5, 30]),
        any::<bool>(),
        prop::sample::select(vec![60u64, 600]),
        prop::sample::select(vec![10u64, 30]),
        prop::sample::select(vec![1u64, 5, 10]),
    )
        .prop_map(
            |(
                order,
                mode,
                unhealthy_after,
                max_lag,
                allow_data_loss,
                cooldown,
                grace,
                confirmed,
            )| Policy {
                order,
                mode,
                unhealthy_after: Duration::from_secs(unhealthy_after),
                confirmed_loss_after: Duration::from_secs(confirmed.min(unhealthy_after)),
                max_replication_lag: Duration::from_secs(max_lag),
                allow_data_loss,
                cooldown: Duration::from_secs(cooldown),
                takeover_grace: Duration::from_secs(grace),
                intent_timeout: Duration::from_secs(300),
                lag_max_age: Duration::from_secs(300),
            },
        )
}

/// A fleet observation and the policy every region applies.
fn fleet() -> impl Strategy<Value = (FleetObservation, Policy)> {
    (
        policy(),
        [health(), health(), health()],
        [lag(), lag(), lag()],
        global(),
        prop::collection::vec(attempt(), 0..=2),
        prop::option::weighted(0.3, -2_000i64..=0),
        prop_oneof![
            4 => Just(Some(0usize)),
            4 => (0usize..3).prop_map(Some),
            2 => Just(None),
        ],
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(policy, healths, lags, global, attempts, changed, preferred, disagree)| {
                let regions = REGIONS
                    .iter()
                    .zip(healths)
                    .zip(lags)
                    .map(|((r, health), lag)| RegionView {
                        region: r.to_string(),
                        health,
                        lag,
                    })
                    .collect();
                // `Some(0)` is the order's own first region (no request); any
                // other pick is a region of the pool, often a Git request.
                let preferred_region = preferred.map(|i| {
                    if i == 0 {
                        policy.order[0].clone()
                    } else {
                        REGIONS[i].to_string()
                    }
                });
                // One record per region at most, as `status.lastFailover`.
                let mut seen = Vec::new();
                let attempts = attempts
                    .into_iter()
                    .filter(|a| {
                        let fresh = !seen.contains(&a.region);
                        seen.push(a.region.clone());
                        fresh
                    })
                    .collect();
                let obs = FleetObservation {
                    local: REGIONS[0].into(),
                    global,
                    regions,
                    attempts,
                    writer_changed_at: changed.map(t),
                    preferred_region,
                    disagreements: if disagree {
                        vec!["a ShopRegion differs in failover.order".into()]
                    } else {
                        vec![]
                    },
                };
                (obs, policy)
            },
        )
}

fn decisions(obs: &FleetObservation, policy: &Policy) -> Vec<(String, Decision)> {
    REGIONS
        .iter()
        .map(|r| {
            let mut o = obs.clone();
            o.local = r.to_string();
            (r.to_string(), decide(&o, policy, now()))
        })
        .collect()
}

fn new_promotions(all: &[(String, Decision)]) -> Vec<(&str, &Decision)> {
    all.iter()
        .filter(|(_, d)| matches!(d, Decision::Failover(_) | Decision::Switchover(_)))
        .map(|(r, d)| (r.as_str(), d))
        .collect()
}

fn writer(obs: &FleetObservation) -> Option<&str> {
    obs.global.as_ref()?.writer.as_deref()
}

fn health_of<'a>(obs: &'a FleetObservation, region: &str) -> &'a Health {
    &obs.regions
        .iter()
        .find(|r| r.region == region)
        .unwrap()
        .health
}

/// The last writer change, as the rules define it, computed here on its own.
fn last_writer_change(obs: &FleetObservation) -> Option<Timestamp> {
    let mut changes: Vec<Timestamp> = obs.writer_changed_at.into_iter().collect();
    for a in &obs.attempts {
        match (a.completed_at, a.result) {
            (Some(done), Some(FailoverResult::Completed) | None) => changes.push(done),
            (None, None) if writer(obs) == Some(a.to.as_str()) => changes.push(a.started_at),
            _ => {}
        }
    }
    changes.into_iter().max()
}

/// A human asked for `target` through Git: the order's first region changed
/// away from the one the fleet last acted on.
fn git_requests(obs: &FleetObservation, policy: &Policy, target: &str) -> bool {
    let first = policy.order[0].as_str();
    let preferred = obs.preferred_region.as_deref().unwrap_or(first);
    first == target && first != preferred
}

fn plus(at: Timestamp, d: Duration) -> Timestamp {
    at.checked_add(k8s_openapi::jiff::SignedDuration::try_from(d).unwrap())
        .unwrap()
}

proptest! {
    // A failure prints its minimal case; nothing is written into the tree.
    #![proptest_config(ProptestConfig {
        cases: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_two_regions_promoted_for_one_outage((obs, policy) in fleet()) {
        let all = decisions(&obs, &policy);
        // Regions that are about to ask AWS for the writer: a new
        // promotion, or resuming an intent never sent to AWS. (Resuming a
        // request AWS already has, or one AWS carried out, asks nothing.)
        let unsent = |region: &str| {
            obs.attempts
                .iter()
                .any(|a| a.region == region && a.in_progress() && a.completed_steps.is_empty())
        };
        let aws_moving_to = |to: &str| {
            writer(&obs) == Some(to)
                || obs
                    .global
                    .as_ref()
                    .and_then(|g| g.transition.as_ref())
                    .is_some_and(|t| t.to.as_deref() == Some(to))
        };
        let callers: Vec<&str> = all
            .iter()
            .filter(|(region, d)| match d {
                Decision::Failover(_) | Decision::Switchover(_) => true,
                Decision::Resume(p) => unsent(region) && !aws_moving_to(&p.to),
                _ => false,
            })
            .map(|(r, _)| r.as_str())
            .collect();
        prop_assert!(callers.len() <= 1, "several regions promote: {:?}", all);
        for (region, d) in new_promotions(&all) {
            let p = d.promotion().unwrap();
            prop_assert_eq!(p.to.as_str(), region, "a region only promotes itself");
        }
        // Those that wait for another region name the same one, and it is
        // the promoter if there is one.
        let awaited: std::collections::BTreeSet<String> = all
            .iter()
            .filter_map(|(_, d)| match d {
                Decision::Wait { reason: super::decide::WaitReason::AwaitingRegion, message } => {
                    message.split(' ').next().map(str::to_string)
                }
                _ => None,
            })
            .collect();
        prop_assert!(awaited.len() <= 1, "regions disagree on who acts: {:?}", all);
        if let (Some((promoter, _)), Some(named)) = (new_promotions(&all).first(), awaited.first()) {
            prop_assert_eq!(*promoter, named.as_str());
        }
    }

    #[test]
    fn never_a_second_promotion_while_one_is_in_progress((obs, policy) in fleet()) {
        let w = writer(&obs);
        let aws_busy = obs.global.as_ref().is_some_and(|g| g.transition.is_some());
        for (region, d) in new_promotions(&decisions(&obs, &policy)) {
            prop_assert!(!aws_busy, "AWS is moving the writer, yet {} starts: {:?}", region, d);
            for a in obs.attempts.iter().filter(|a| a.in_progress() && a.region != region) {
                let pending = w == Some(a.from.as_str()) || w == Some(a.to.as_str());
                let fresh = now() < plus(a.started_at, policy.intent_timeout);
                prop_assert!(
                    !(pending && fresh),
                    "{} recorded a promotion at {}, yet {} starts another: {:?}", a.region, a.started_at, region, d
                );
            }
        }
    }

    #[test]
    fn never_a_promotion_with_lag_over_budget_unless_allowed((obs, policy) in fleet()) {
        for (_, d) in decisions(&obs, &policy) {
            let Decision::Failover(p) = &d else { continue };
            if policy.allow_data_loss {
                continue;
            }
            let w = writer(&obs).expect("a failover has a writer");
            let lost_since = health_of(&obs, w).since.expect("generated verdicts have a since");
            let target = obs.regions.iter().find(|r| r.region == p.to).unwrap();
            let lag = target.lag.expect("a failover without allowDataLoss needs a known lag");
            prop_assert!(
                plus(lag.at, policy.lag_max_age) >= lost_since,
                "the lag reading predates the outage by more than lagMaxAge: {:?}", d
            );
            prop_assert!(
                lag.lag <= policy.max_replication_lag,
                "promoted with lag {:?} over budget {:?}: {:?}", lag.lag, policy.max_replication_lag, d
            );
            prop_assert_eq!(p.data_loss_risk, Some(lag.lag));
        }
    }

    #[test]
    fn never_a_failover_within_the_cooldown((obs, policy) in fleet()) {
        for (_, d) in new_promotions(&decisions(&obs, &policy)) {
            if let Some(last) = last_writer_change(&obs) {
                prop_assert!(
                    now() >= plus(last, policy.cooldown),
                    "a writer change at {} is within the cooldown of the one at {}: {:?}", now(), last, d
                );
            }
        }
    }

    #[test]
    fn never_an_automatic_failback((obs, policy) in fleet()) {
        for (_, d) in new_promotions(&decisions(&obs, &policy)) {
            let p = d.promotion().unwrap();
            let w = writer(&obs).expect("a promotion has a writer");
            let writer_health = health_of(&obs, w);
            if writer_health.verdict != HealthVerdict::Unhealthy {
                // A healthy writer is only ever replaced because a human
                // changed failover.order: a recovered old primary is not
                // taken back by itself.
                prop_assert!(
                    git_requests(&obs, &policy, &p.to),
                    "writer {} is {:?} and nobody asked for {}: {:?}", w, writer_health.verdict, p.to, d
                );
                prop_assert_eq!(p.kind, FailoverKind::Switchover);
            }
        }
    }

    #[test]
    fn a_failover_only_replaces_a_writer_lost_for_unhealthy_after((obs, policy) in fleet()) {
        for (_, d) in decisions(&obs, &policy) {
            let Decision::Failover(p) = &d else { continue };
            let w = writer(&obs).unwrap();
            let h = health_of(&obs, w);
            prop_assert_eq!(h.verdict, HealthVerdict::Unhealthy);
            let sustained = now() >= plus(h.since.unwrap(), policy.unhealthy_after);
            let confirmed = h
                .confirmed_since
                .is_some_and(|c| now() >= plus(c, policy.confirmed_loss_after));
            prop_assert!(sustained || confirmed, "{:?}", d);
            prop_assert!(health_of(&obs, &p.to).is_healthy(), "promoted an unhealthy region: {:?}", d);
            prop_assert!(obs.disagreements.is_empty(), "acted on a fleet that disagrees: {:?}", d);
        }
    }

    #[test]
    fn manual_mode_never_fails_over_by_itself(
        (obs, policy) in fleet().prop_map(|(obs, mut policy)| {
            policy.mode = FailoverMode::Manual;
            (obs, policy)
        })
    ) {
        for (_, d) in decisions(&obs, &policy) {
            if let Decision::Failover(p) = &d {
                prop_assert!(git_requests(&obs, &policy, &p.to), "Manual mode acted alone: {:?}", d);
            }
        }
    }

    #[test]
    fn no_failover_while_the_writers_data_plane_answers(
        (obs, policy) in fleet(),
        history in writer_history(Just(Signal::Up).boxed(), 0..=60),
    ) {
        let obs = with_writer_history(obs, &history);
        for (_, d) in decisions(&obs, &policy) {
            prop_assert!(
                !matches!(d, Decision::Failover(_)),
                "failed over a writer whose endpoint answered: {:?}", d
            );
        }
    }

    #[test]
    fn no_failover_on_a_single_kind_of_evidence_before_unhealthy_after(
        (obs, policy) in fleet(),
        history in uncorroborated_history(),
    ) {
        // The writer's trouble began less than unhealthyAfter ago: only a
        // confirmed loss may act that soon, and nothing confirmed it.
        let obs = with_writer_history(obs, &history);
        let began = history.iter().find(|s| s.endpoint != Signal::Up || s.database != Signal::Up);
        if let Some(first) = began
            && now() < plus(first.at, policy.unhealthy_after)
        {
            for (_, d) in decisions(&obs, &policy) {
                prop_assert!(
                    !matches!(d, Decision::Failover(_)),
                    "failed over before unhealthyAfter on one kind of evidence: {:?}", d
                );
            }
        }
    }

    #[test]
    fn every_region_reaches_the_same_refusal((obs, policy) in fleet()) {
        let all = decisions(&obs, &policy);
        let has_own_record = |r: &str| obs.attempts.iter().any(|a| a.region == r && a.in_progress());
        let refusals: Vec<&str> = all
            .iter()
            .filter(|(r, _)| !has_own_record(r))
            .map(|(_, d)| match d {
                Decision::Refuse { reason, .. } => reason.as_str(),
                _ => "",
            })
            .collect();
        if let Some(first) = refusals.first() {
            prop_assert!(refusals.iter().all(|r| r == first), "{:?}", all);
        }
    }
}

fn any_signal() -> BoxedStrategy<Signal> {
    prop_oneof![
        Just(Signal::Up),
        Just(Signal::Down("generated failure".into())),
        Just(Signal::NoData("generated silence".into())),
    ]
    .boxed()
}

/// Samples of the writer every 5 s up to `now`: healthy until `trouble`
/// seconds ago, then arbitrary signals with the endpoint from `endpoint`.
fn writer_history(
    endpoint: BoxedStrategy<Signal>,
    trouble: std::ops::RangeInclusive<i64>,
) -> impl Strategy<Value = Vec<Sample>> {
    let troubled = (
        any_signal(),
        prop::option::of(any_signal()),
        endpoint,
        prop::option::of(any_signal()),
        prop::option::of(any_signal()),
    );
    (trouble, prop::collection::vec(troubled, 13)).prop_map(|(trouble, signals)| {
        let mut samples: Vec<Sample> = (0..8)
            .map(|i| Sample {
                at: t(-200 + i * 5),
                database: Signal::Up,
                cache: Some(Signal::Up),
                endpoint: Signal::Up,
                http: None,
                vantage: None,
            })
            .collect();
        let rounds = usize::try_from(trouble / 5 + 1).unwrap_or(1);
        for (i, (database, cache, endpoint, http, vantage)) in
            signals.into_iter().take(rounds).enumerate()
        {
            let offset = i64::try_from(i).unwrap_or(0) * 5;
            samples.push(Sample {
                at: t(-trouble + offset),
                database,
                cache,
                endpoint,
                http,
                vantage,
            });
        }
        samples
    })
}

/// A troubled writer whose every sample has at least one kind of signal
/// that does not agree the region is lost: its AWS API vouches, its
/// endpoint answers, its health check passes, or the other regions still
/// receive its replication (or were not asked).
fn uncorroborated_history() -> impl Strategy<Value = Vec<Sample>> {
    (
        writer_history(any_signal(), 0..=60),
        prop::collection::vec(0u8..4, 13),
    )
        .prop_map(|(mut samples, dissent)| {
            let troubled = samples.len() - 8;
            for (sample, kind) in samples.iter_mut().skip(8).zip(dissent).take(troubled) {
                match kind {
                    0 => sample.database = Signal::Up,
                    1 => sample.endpoint = Signal::Up,
                    2 => sample.http = Some(Signal::Up),
                    _ => sample.vantage = Some(Signal::Up),
                }
            }
            samples
        })
}

/// The observation with the writer's verdict folded from `history` and
/// read at `now`, as the sampler would publish it.
fn with_writer_history(mut obs: FleetObservation, history: &[Sample]) -> FleetObservation {
    let thresholds = Thresholds::default();
    let state = history.iter().fold(HealthState::new(), |state, sample| {
        state.record(sample, &thresholds)
    });
    let health = state.health(now(), &thresholds);
    let writer = writer(&obs).map(str::to_string);
    if let Some(writer) = writer
        && let Some(view) = obs.regions.iter_mut().find(|r| r.region == writer)
    {
        view.health = health;
    }
    obs
}

/// The generators must reach the interesting cases, or the properties above
/// would pass for want of examples.
#[test]
fn the_generators_reach_every_kind_of_decision() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::<&'static str, usize>::new();
    for _ in 0..4096 {
        let (obs, policy) = fleet().new_tree(&mut runner).unwrap().current();
        for (_, d) in decisions(&obs, &policy) {
            *seen.entry(d.reason()).or_default() += 1;
        }
    }
    for reason in [
        "Failover",
        "Switchover",
        "Resume",
        "Superseded",
        "NoLongerNeeded",
        "ManualMode",
        "RPOBudgetExceeded",
        "ReplicationLagUnknown",
        "PoliciesDisagree",
        "CooldownActive",
        "AwaitingRegion",
        "WriterUnhealthy",
        "WriterHealthUnknown",
        "FailoverInProgress",
        "NothingToDo",
    ] {
        assert!(
            seen.get(reason).copied().unwrap_or(0) >= 10,
            "the generators rarely reach {reason}: {seen:?}"
        );
    }
}
