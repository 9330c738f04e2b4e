//! What on-call sees: the `FailoverReady` condition and the failover Events,
//! from the observation and the decision. Pure.

use k8s_openapi::jiff::Timestamp;

use super::decide::{Decision, Promotion, RefuseReason, WaitReason, cooldown_until};
use super::observe::{FleetObservation, Policy};
use crate::api::conditions::{Desired, Status, types};
use crate::api::{FailoverKind, FailoverMode, FailoverRecord, FailoverResult, HealthVerdict};
use crate::clock::after;
use crate::clock::fmt_duration;
use crate::concern::Note;

/// Reasons of the `FailoverReady` condition.
pub mod reason {
    /// A healthy region would be promoted with its lag within budget.
    pub const CANDIDATE_READY: &str = "CandidateReady";
    /// `Manual` mode and the writer is lost: a human has to act.
    pub const AWAITING_MANUAL_FAILOVER: &str = "AwaitingManualFailover";
    pub const FAILOVER_IN_PROGRESS: &str = "FailoverInProgress";
    pub const NO_HEALTHY_CANDIDATE: &str = "NoHealthyCandidate";
    pub const CANDIDATE_HEALTH_UNKNOWN: &str = "CandidateHealthUnknown";
    pub const RPO_BUDGET_EXCEEDED: &str = "RPOBudgetExceeded";
    pub const REPLICATION_LAG_UNKNOWN: &str = "ReplicationLagUnknown";
    pub const POLICIES_DISAGREE: &str = "PoliciesDisagree";
    pub const COOLDOWN_ACTIVE: &str = "CooldownActive";
    pub const GLOBAL_CLUSTER_UNKNOWN: &str = "GlobalClusterUnknown";
    pub const NOT_ESTABLISHED: &str = "NotEstablished";
    /// The writer's health is unknown (its AWS API silent while its
    /// endpoint answers, say): no failover while that lasts.
    pub const WRITER_HEALTH_UNKNOWN: &str = "WriterHealthUnknown";
    /// The writer looks lost; it is declared lost when the window runs out.
    pub const WRITER_UNHEALTHY: &str = "WriterUnhealthy";
}

/// Event reasons of failovers and switchovers.
pub mod events {
    pub const FAILOVER_STARTED: &str = "FailoverStarted";
    pub const FAILOVER_COMPLETED: &str = "FailoverCompleted";
    pub const FAILOVER_REFUSED: &str = "FailoverRefused";
    pub const SWITCHOVER_STARTED: &str = "SwitchoverStarted";
    pub const SWITCHOVER_COMPLETED: &str = "SwitchoverCompleted";
    /// The cache primary starts moving to follow the Aurora writer.
    pub const CACHE_FOLLOW_STARTED: &str = "CachePrimaryFollowsWriter";
    pub const CACHE_FOLLOW_COMPLETED: &str = "CachePrimaryFollowed";
    /// A recorded promotion closed unfinished because it was no longer
    /// wanted, or AWS never showed it.
    pub const FAILOVER_ABANDONED: &str = "FailoverAbandoned";
    /// Another region's promotion won; this region adopted it.
    pub const FAILOVER_SUPERSEDED: &str = "FailoverSuperseded";
}

/// `FailoverReady`: a healthy candidate exists and its lag is within the
/// RPO budget, so the fleet could survive the loss of its writer now.
pub fn failover_ready(
    observation: &FleetObservation,
    policy: &Policy,
    decision: &Decision,
    now: Timestamp,
) -> Desired {
    let condition = |status, reason: &str, message: String| {
        Desired::new(types::FAILOVER_READY, status, reason, message)
    };
    match decision {
        Decision::Switchover(_) | Decision::Failover(_) | Decision::Resume(_) => {
            return condition(
                Status::False,
                reason::FAILOVER_IN_PROGRESS,
                decision.message(),
            );
        }
        Decision::Wait {
            reason: WaitReason::FailoverInProgress,
            message,
        } => return condition(Status::False, reason::FAILOVER_IN_PROGRESS, message.clone()),
        Decision::Wait {
            reason: WaitReason::GlobalClusterUnknown,
            message,
        } => {
            return condition(
                Status::Unknown,
                reason::GLOBAL_CLUSTER_UNKNOWN,
                message.clone(),
            );
        }
        Decision::Wait {
            reason: WaitReason::NotEstablished,
            message,
        } => return condition(Status::Unknown, reason::NOT_ESTABLISHED, message.clone()),
        // The fleet could fail over; it does not, and says why.
        Decision::Wait {
            reason: WaitReason::WriterHealthUnknown,
            message,
        } => return condition(Status::True, reason::WRITER_HEALTH_UNKNOWN, message.clone()),
        Decision::Wait {
            reason: WaitReason::WriterUnhealthy,
            message,
        } => return condition(Status::True, reason::WRITER_UNHEALTHY, message.clone()),
        Decision::Refuse { reason, message } => {
            let r = match reason {
                RefuseReason::RPOBudgetExceeded => reason::RPO_BUDGET_EXCEEDED,
                RefuseReason::ReplicationLagUnknown => reason::REPLICATION_LAG_UNKNOWN,
                RefuseReason::PoliciesDisagree => reason::POLICIES_DISAGREE,
            };
            return condition(Status::False, r, message.clone());
        }
        Decision::Manual(p) => {
            return condition(
                Status::True,
                reason::AWAITING_MANUAL_FAILOVER,
                format!(
                    "{}; to do it, put {} first in failover.order",
                    decision.message(),
                    p.to
                ),
            );
        }
        _ => {}
    }
    if !observation.disagreements.is_empty() {
        return condition(
            Status::False,
            reason::POLICIES_DISAGREE,
            format!(
                "the ShopRegions disagree on the failover policy: {}",
                observation.disagreements.join("; ")
            ),
        );
    }
    let Some(writer) = observation.writer() else {
        return condition(
            Status::Unknown,
            reason::NOT_ESTABLISHED,
            "the global cluster has no writer yet".into(),
        );
    };
    let others: Vec<_> = observation
        .regions
        .iter()
        .filter(|r| r.region != writer && policy.order.contains(&r.region))
        .collect();
    let Some(candidate) = others.iter().find(|r| r.health.is_healthy()) else {
        if others.is_empty() {
            return condition(
                Status::False,
                reason::NO_HEALTHY_CANDIDATE,
                format!("the fleet has no region besides writer {writer}"),
            );
        }
        let unknown: Vec<&str> = others
            .iter()
            .filter(|r| r.health.verdict == HealthVerdict::Unknown)
            .map(|r| r.region.as_str())
            .collect();
        if !unknown.is_empty() {
            return condition(
                Status::Unknown,
                reason::CANDIDATE_HEALTH_UNKNOWN,
                format!(
                    "no secondary is known to be healthy; health unknown for {}",
                    unknown.join(", ")
                ),
            );
        }
        return condition(
            Status::False,
            reason::NO_HEALTHY_CANDIDATE,
            format!("every region besides writer {writer} is unhealthy"),
        );
    };
    // While the writer is failing, the lag that matters is the one from
    // before it failed; otherwise a recent one.
    let reference = observation
        .region(writer)
        .filter(|w| w.health.verdict == HealthVerdict::Unhealthy)
        .and_then(|w| w.health.since)
        .unwrap_or(now);
    let lag = candidate
        .lag
        .filter(|l| after(l.at, policy.lag_max_age) >= reference)
        .map(|l| l.lag);
    let budget = fmt_duration(policy.max_replication_lag);
    let lag_note = match lag {
        None if !policy.allow_data_loss => {
            return condition(
                Status::False,
                reason::REPLICATION_LAG_UNKNOWN,
                format!(
                    "{} would be promoted, but its replication lag is not known; a failover would be refused",
                    candidate.region
                ),
            );
        }
        None => "its replication lag is unknown (allowDataLoss accepts that)".to_string(),
        Some(l) if l > policy.max_replication_lag && !policy.allow_data_loss => {
            return condition(
                Status::False,
                reason::RPO_BUDGET_EXCEEDED,
                format!(
                    "{} would be promoted, but its replication lag {} exceeds maxReplicationLag {budget}; a failover would be refused",
                    candidate.region,
                    fmt_duration(l)
                ),
            );
        }
        Some(l) if l > policy.max_replication_lag => {
            format!("its replication lag exceeds {budget} (allowDataLoss accepts that)")
        }
        Some(_) => format!("its replication lag is within {budget}"),
    };
    if let Some(until) = cooldown_until(observation, policy)
        && now < until
    {
        return condition(
            Status::False,
            reason::COOLDOWN_ACTIVE,
            format!("the writer changed recently; no failover before {until}"),
        );
    }
    let mut message = format!(
        "{} would be promoted if writer {writer} were lost; {lag_note}",
        candidate.region
    );
    if policy.mode == FailoverMode::Manual {
        message.push_str("; mode is Manual: a failover needs a human");
    }
    if let Decision::Wait {
        message: waiting, ..
    } = decision
    {
        message.push_str("; now: ");
        message.push_str(waiting);
    }
    condition(Status::True, reason::CANDIDATE_READY, message)
}

/// The Event when this region starts a promotion (its intent recorded).
pub fn started_event(promotion: &Promotion) -> Note {
    match promotion.kind {
        FailoverKind::Failover => Note {
            reason: events::FAILOVER_STARTED.into(),
            message: format!(
                "promoting {} in place of lost writer {} ({} detection): {}",
                promotion.to,
                promotion.from,
                promotion
                    .detection
                    .map_or("unknown", crate::api::Detection::word),
                promotion.reason
            ),
            warning: true,
        },
        FailoverKind::Switchover => Note {
            reason: events::SWITCHOVER_STARTED.into(),
            message: format!(
                "switching the writer over from {} to {}: {}",
                promotion.from, promotion.to, promotion.reason
            ),
            warning: false,
        },
        FailoverKind::CacheFollow => Note {
            reason: events::CACHE_FOLLOW_STARTED.into(),
            message: format!(
                "moving the cache primary from {} to {}: {}",
                promotion.from, promotion.to, promotion.reason
            ),
            warning: false,
        },
    }
}

/// The Event when a recorded promotion ends.
pub fn finished_event(record: &FailoverRecord) -> Note {
    let duration = record
        .duration_seconds
        .map(|d| format!(" in {d:.1}s"))
        .unwrap_or_default();
    match (record.result, record.kind) {
        (Some(FailoverResult::Superseded), _) => Note {
            reason: events::FAILOVER_SUPERSEDED.into(),
            message: format!(
                "the {} to {} was superseded by another region's promotion; adopted its outcome",
                record.kind.word(),
                record.to
            ),
            warning: false,
        },
        (Some(FailoverResult::Abandoned), _) => Note {
            reason: events::FAILOVER_ABANDONED.into(),
            message: format!(
                "the {} from {} to {} was abandoned: {}",
                record.kind.word(),
                record.from,
                record.to,
                record.reason
            ),
            warning: true,
        },
        (_, FailoverKind::Failover) => Note {
            reason: events::FAILOVER_COMPLETED.into(),
            message: format!(
                "{} is the writer after a failover from {}{duration}; writes younger than {} may be lost",
                record.to,
                record.from,
                record
                    .data_loss_risk_seconds
                    .map_or("an unknown lag".to_string(), |s| format!("{s:.3}s"))
            ),
            warning: false,
        },
        (_, FailoverKind::Switchover) => Note {
            reason: events::SWITCHOVER_COMPLETED.into(),
            message: format!(
                "{} is the writer after a switchover from {}{duration}, without data loss",
                record.to, record.from
            ),
            warning: false,
        },
        (_, FailoverKind::CacheFollow) => Note {
            reason: events::CACHE_FOLLOW_COMPLETED.into(),
            message: format!(
                "the cache primary followed the Aurora writer from {} to {}{duration}",
                record.from, record.to
            ),
            warning: false,
        },
    }
}

/// The Event for a refused failover; `None` for any other decision.
pub fn refused_event(decision: &Decision) -> Option<Note> {
    match decision {
        Decision::Refuse { reason, message } => Some(Note {
            reason: events::FAILOVER_REFUSED.into(),
            message: format!("{reason}: {message}"),
            warning: true,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::decide::decide;
    use crate::failover::decide::tests::{AP, EU, US, fleet, healthy, policy, t, unhealthy};
    use crate::failover::health::Health;
    use crate::failover::observe::LagSample;
    use std::time::Duration;

    fn ready(obs: &FleetObservation, p: &Policy, now: Timestamp) -> Desired {
        failover_ready(obs, p, &decide(obs, p, now), now)
    }

    fn set(obs: &mut FleetObservation, region: &str, health: Health) {
        obs.regions
            .iter_mut()
            .find(|r| r.region == region)
            .unwrap()
            .health = health;
    }

    #[test]
    fn a_healthy_fleet_is_ready_and_names_the_candidate_without_churning_on_lag() {
        let c = ready(&fleet(AP), &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::True, reason::CANDIDATE_READY)
        );
        assert_eq!(c.type_, types::FAILOVER_READY);
        assert!(
            c.message
                .starts_with("eu-west-1 would be promoted if writer us-east-1 were lost"),
            "{}",
            c.message
        );
        let mut other_lag = fleet(AP);
        other_lag.regions[1].lag = Some(LagSample {
            lag: Duration::from_millis(170),
            at: t(-5),
        });
        assert_eq!(
            ready(&other_lag, &policy(), t(0)),
            c,
            "a new lag reading must not rewrite the status"
        );
    }

    #[test]
    fn lag_over_budget_is_not_ready_with_rpo_budget_exceeded() {
        let mut obs = fleet(US);
        obs.regions[1].lag = Some(LagSample {
            lag: Duration::from_secs(40),
            at: t(-5),
        });
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::RPO_BUDGET_EXCEEDED)
        );
        assert!(c.message.contains("40s exceeds maxReplicationLag 30s"));
        let mut allowed = policy();
        allowed.allow_data_loss = true;
        assert_eq!(ready(&obs, &allowed, t(0)).status, Status::True);
    }

    #[test]
    fn unknown_lag_is_not_ready() {
        let mut obs = fleet(US);
        obs.regions[1].lag = None;
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(c.reason, reason::REPLICATION_LAG_UNKNOWN);
        assert_eq!(c.status, Status::False);
    }

    #[test]
    fn no_healthy_secondary_is_not_ready_and_unknown_ones_make_it_unknown() {
        let mut obs = fleet(US);
        set(&mut obs, EU, unhealthy(-10));
        set(&mut obs, AP, unhealthy(-10));
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::NO_HEALTHY_CANDIDATE)
        );
        set(&mut obs, AP, Health::unknown());
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::Unknown, reason::CANDIDATE_HEALTH_UNKNOWN)
        );
        assert!(c.message.contains("ap-northeast-1"));
    }

    #[test]
    fn a_failover_in_progress_is_not_ready() {
        let mut obs = fleet(EU);
        set(&mut obs, US, unhealthy(-45));
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::FAILOVER_IN_PROGRESS)
        );
    }

    #[test]
    fn a_region_waiting_for_another_to_act_reports_it_in_the_message() {
        let mut obs = fleet(AP);
        set(&mut obs, US, unhealthy(-45));
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::True, reason::CANDIDATE_READY)
        );
        assert!(
            c.message.contains("now: eu-west-1 promotes itself"),
            "{}",
            c.message
        );
    }

    #[test]
    fn the_cooldown_makes_the_fleet_not_ready() {
        let mut obs = fleet(US);
        obs.writer_changed_at = Some(t(-60));
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::COOLDOWN_ACTIVE)
        );
    }

    #[test]
    fn manual_mode_with_a_lost_writer_tells_the_human_what_to_do() {
        let mut p = policy();
        p.mode = FailoverMode::Manual;
        let mut obs = fleet(US);
        set(&mut obs, US, unhealthy(-45));
        let c = ready(&obs, &p, t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::True, reason::AWAITING_MANUAL_FAILOVER)
        );
        assert!(
            c.message.contains("put eu-west-1 first in failover.order"),
            "{}",
            c.message
        );
        // With a healthy writer Manual mode is simply ready, and says so.
        let c = ready(&fleet(US), &p, t(0));
        assert_eq!(c.reason, reason::CANDIDATE_READY);
        assert!(c.message.contains("mode is Manual"));
    }

    #[test]
    fn disagreeing_policies_are_not_ready() {
        let mut obs = fleet(US);
        obs.disagreements = vec!["acme-eu-west-1 (eu-west-1) differs in failover.mode".into()];
        let c = ready(&obs, &policy(), t(0));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::POLICIES_DISAGREE)
        );
    }

    #[test]
    fn an_unreadable_global_cluster_makes_readiness_unknown() {
        let mut obs = fleet(US);
        obs.global = None;
        assert_eq!(ready(&obs, &policy(), t(0)).status, Status::Unknown);
    }

    #[test]
    fn a_refused_failover_is_a_warning_event_and_other_decisions_are_none() {
        let mut obs = fleet(US);
        set(&mut obs, US, unhealthy(-45));
        for survivor in &mut obs.regions[1..] {
            survivor.lag = Some(LagSample {
                lag: Duration::from_secs(90),
                at: t(-50),
            });
        }
        let d = decide(&obs, &policy(), t(0));
        let note = refused_event(&d).unwrap();
        assert_eq!(note.reason, events::FAILOVER_REFUSED);
        assert!(note.warning);
        assert!(note.message.starts_with("RPOBudgetExceeded: "));
        assert_eq!(refused_event(&decide(&fleet(US), &policy(), t(0))), None);
    }

    #[test]
    fn started_and_finished_events_name_the_regions_and_the_risk() {
        let mut obs = fleet(EU);
        set(&mut obs, US, unhealthy(-45));
        set(&mut obs, AP, healthy(-100));
        let Decision::Failover(p) = decide(&obs, &policy(), t(0)) else {
            panic!("eu-west-1 should fail over");
        };
        let started = started_event(&p);
        assert_eq!(started.reason, events::FAILOVER_STARTED);
        assert!(started.warning);
        let mut record = FailoverRecord {
            kind: FailoverKind::Failover,
            from: US.into(),
            to: EU.into(),
            reason: p.reason.clone(),
            started_at: t(0),
            completed_at: Some(t(62)),
            result: Some(FailoverResult::Completed),
            duration_seconds: Some(62.0),
            data_loss_risk_seconds: Some(0.2),
            completed_steps: vec![],
            detection: None,
        };
        let done = finished_event(&record);
        assert_eq!(done.reason, events::FAILOVER_COMPLETED);
        assert!(done.message.contains("in 62.0s"), "{}", done.message);
        assert!(
            done.message.contains("younger than 0.200s"),
            "{}",
            done.message
        );
        record.kind = FailoverKind::Switchover;
        assert_eq!(finished_event(&record).reason, events::SWITCHOVER_COMPLETED);
        record.result = Some(FailoverResult::Superseded);
        assert_eq!(finished_event(&record).reason, events::FAILOVER_SUPERSEDED);
        record.result = Some(FailoverResult::Abandoned);
        assert_eq!(finished_event(&record).reason, events::FAILOVER_ABANDONED);
    }
}
