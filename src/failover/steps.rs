//! The executor's steps, planned from what AWS shows. Pure.
//!
//! A promotion is carried out as a short sequence, each step re-planned from
//! a fresh read of AWS, so that a crash anywhere resumes from the status
//! record and AWS without repeating what AWS already did:
//!
//! 1. Aurora: `FailoverGlobalCluster` (unplanned; `AllowDataLoss`, the RPO
//!    guard having bounded the loss) or `SwitchoverGlobalCluster` (planned).
//!    Skipped when AWS already moves the writer to the target or shows it as
//!    the writer. A writer change towards another region means someone else
//!    won: [`Next::Superseded`], never a second call.
//! 2. ElastiCache: `FailoverGlobalReplicationGroup` to the target's
//!    replication group, once AWS accepted the Aurora promotion (the two run
//!    in parallel: the Aurora call is the fence, AWS admits one writer change
//!    at a time). AWS documents promoting a secondary for a regional outage
//!    of the primary, so the old primary need not answer.
//! 3. Once AWS shows both moved: the topology (role, writer endpoints) the
//!    workload concern writes; the record completes when it carries the new
//!    role.
//!
//! [`plan`] returns the steps AWS shows done (they go into
//! `status.lastFailover.completedSteps`) and the one thing to do next.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::decide::Promotion;
use super::observe::{GlobalView, WriterTransition};
use crate::api::{FailoverKind, FailoverRecord, FailoverResult, FailoverStep};
use crate::clock::elapsed;

/// The shop's Global Datastore as the target region's endpoint shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheView {
    /// It could not be read; the detail says why.
    Unknown(String),
    /// No Global Datastore of the shop, or none of its members is in the
    /// target region: nothing to promote.
    NotApplicable(String),
    Datastore {
        id: String,
        /// The region of the primary, if AWS names one.
        primary: Option<String>,
        /// Not in the middle of a change (`available` or `primary-only`).
        settled: bool,
        /// The target region's replication group, if it is a member.
        target_group: Option<String>,
        /// That member is `associated` (replicating), so it can be promoted.
        target_associated: bool,
    },
}

/// What to do next for a promotion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Ask AWS to move the Aurora writer to the target: a failover for
    /// [`FailoverKind::Failover`], a switchover for
    /// [`FailoverKind::Switchover`].
    PromoteAurora,
    /// Ask AWS to make the target's replication group the primary.
    PromoteCache,
    /// AWS is carrying something out, or something must settle first.
    Wait(String),
    /// The cloud side is done; the record completes once the topology
    /// carries the new role.
    Topology,
    /// Another region's promotion won: adopt it, do not retry.
    Superseded(String),
}

/// [`plan`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// Every step done, in order: the recorded ones and those AWS now shows.
    pub completed: Vec<FailoverStep>,
    pub next: Next,
}

/// The promotion being carried out, as recorded.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    pub kind: FailoverKind,
    pub from: &'a str,
    pub to: &'a str,
    pub completed: &'a [FailoverStep],
}

impl<'a> Progress<'a> {
    pub fn of(record: &'a FailoverRecord) -> Self {
        Self {
            kind: record.kind,
            from: &record.from,
            to: &record.to,
            completed: &record.completed_steps,
        }
    }
}

/// The next step of `progress`, given AWS's global cluster and Global
/// Datastore as just read.
pub fn plan(progress: Progress<'_>, aurora: &GlobalView, cache: &CacheView) -> StepPlan {
    let mut completed = progress.completed.to_vec();
    let next = next_step(progress, aurora, cache, &mut completed);
    StepPlan { completed, next }
}

fn mark(completed: &mut Vec<FailoverStep>, step: FailoverStep) {
    if !completed.contains(&step) {
        completed.push(step);
    }
}

fn next_step(
    progress: Progress<'_>,
    aurora: &GlobalView,
    cache: &CacheView,
    completed: &mut Vec<FailoverStep>,
) -> Next {
    let Progress { kind, from, to, .. } = progress;
    let requested = FailoverStep::aurora_requested(kind);
    let mark_requested = |completed: &mut Vec<FailoverStep>| {
        if let Some(step) = requested {
            mark(completed, step);
        }
    };
    let aurora_moved = match &aurora.transition {
        Some(WriterTransition { to: None, .. }) => {
            return Next::Wait(
                "AWS reports a writer change under way without naming its target".into(),
            );
        }
        Some(WriterTransition {
            from: moving_from,
            to: Some(moving_to),
            ..
        }) if moving_to != to => {
            return Next::Superseded(format!(
                "AWS is moving the writer from {} to {moving_to}, not to {to}",
                moving_from.as_deref().unwrap_or("?")
            ));
        }
        Some(_) => {
            mark_requested(completed);
            false
        }
        None => match aurora.writer.as_deref() {
            Some(writer) if writer == to => {
                mark_requested(completed);
                mark(completed, FailoverStep::AuroraWriterMoved);
                true
            }
            Some(_) if requested.is_none() => {
                return Next::Superseded(format!(
                    "the Aurora writer left {to}: the cache no longer follows it there"
                ));
            }
            Some(writer) if writer == from => {
                if requested.is_some_and(|step| completed.contains(&step)) {
                    // decide() gives the request up once it is older than
                    // the intent timeout; until then AWS may still show it.
                    return Next::Wait(format!(
                        "AWS was asked to move the writer to {to}; it still shows {from}"
                    ));
                }
                return Next::PromoteAurora;
            }
            Some(writer) => {
                return Next::Superseded(format!(
                    "the writer is now {writer}, neither {from} nor {to}"
                ));
            }
            None => return Next::Wait("the global cluster reports no writer".into()),
        },
    };

    match cache {
        CacheView::Unknown(why) => {
            return Next::Wait(format!("the Global Datastore could not be read: {why}"));
        }
        CacheView::NotApplicable(_) => mark(completed, FailoverStep::CacheNotInGlobalDatastore),
        CacheView::Datastore {
            id,
            primary,
            settled,
            target_group,
            target_associated,
        } => {
            let cache_requested = completed.contains(&FailoverStep::CacheFailoverRequested);
            if primary.as_deref() == Some(to) {
                mark(completed, FailoverStep::CacheFailoverRequested);
                mark(completed, FailoverStep::CachePrimaryMoved);
            } else if !settled {
                return Next::Wait(if cache_requested {
                    format!("AWS is moving the primary of Global Datastore {id} to {to}")
                } else {
                    format!("Global Datastore {id} is busy; its promotion waits")
                });
            } else if target_group.is_none() || !target_associated {
                return Next::Wait(format!(
                    "{to}'s replication group is not an associated member of Global Datastore {id}"
                ));
            } else if cache_requested && !aurora_moved {
                // AWS settled without moving it: ask again once the Aurora
                // writer is here, which is what the cache must follow.
                return Next::Wait(format!(
                    "Global Datastore {id} did not move to {to}; waiting for the Aurora writer first"
                ));
            } else {
                return Next::PromoteCache;
            }
        }
    }
    if !aurora_moved {
        return Next::Wait(format!("AWS is moving the writer to {to}"));
    }
    Next::Topology
}

/// Outside any promotion: the cache's primary follows the Aurora writer. A
/// writer that AWS moved to `local` without this region's own record (the
/// winner of a race was another operator, or a human) still gets the cache.
pub fn cache_follows_writer(local: &str, aurora: &GlobalView, cache: &CacheView) -> bool {
    let CacheView::Datastore {
        primary: Some(primary),
        settled: true,
        target_group: Some(_),
        target_associated: true,
        ..
    } = cache
    else {
        return false;
    };
    aurora.transition.is_none() && aurora.writer.as_deref() == Some(local) && primary != local
}

/// The record written before the first cloud call.
pub fn intent(promotion: &Promotion, now: Timestamp) -> FailoverRecord {
    FailoverRecord {
        kind: promotion.kind,
        from: promotion.from.clone(),
        to: promotion.to.clone(),
        reason: promotion.reason.clone(),
        started_at: now,
        completed_at: None,
        result: None,
        duration_seconds: None,
        data_loss_risk_seconds: promotion.data_loss_risk.map(|d| d.as_secs_f64()),
        completed_steps: Vec::new(),
        detection: promotion.detection,
    }
}

/// The record closed with `result` at `now`, and how long it took.
pub fn close(
    record: &FailoverRecord,
    result: FailoverResult,
    now: Timestamp,
) -> (FailoverRecord, Duration) {
    let duration = elapsed(record.started_at, now);
    let closed = FailoverRecord {
        completed_at: Some(now),
        result: Some(result),
        duration_seconds: Some(duration.as_secs_f64()),
        ..record.clone()
    };
    (closed, duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Detection;
    use crate::failover::observe::WriterTransition;

    const US: &str = "us-east-1";
    const EU: &str = "eu-west-1";
    const AP: &str = "ap-northeast-1";

    fn writer(region: &str) -> GlobalView {
        GlobalView {
            writer: Some(region.into()),
            transition: None,
            members: Vec::new(),
        }
    }

    fn moving(from: &str, to: &str) -> GlobalView {
        GlobalView {
            writer: Some(from.into()),
            transition: Some(WriterTransition {
                kind: FailoverKind::Failover,
                from: Some(from.into()),
                to: Some(to.into()),
            }),
            members: Vec::new(),
        }
    }

    fn datastore(primary: &str, settled: bool) -> CacheView {
        CacheView::Datastore {
            id: "ldgnf-acme".into(),
            primary: Some(primary.into()),
            settled,
            target_group: Some("acme-eu-west-1".into()),
            target_associated: true,
        }
    }

    fn failover(completed: &[FailoverStep]) -> Vec<FailoverStep> {
        completed.to_vec()
    }

    fn run(completed: &[FailoverStep], aurora: &GlobalView, cache: &CacheView) -> StepPlan {
        plan(
            Progress {
                kind: FailoverKind::Failover,
                from: US,
                to: EU,
                completed,
            },
            aurora,
            cache,
        )
    }

    #[test]
    fn a_fresh_intent_asks_aws_to_move_the_aurora_writer_first() {
        let p = run(&[], &writer(US), &datastore(US, true));
        assert_eq!(p.next, Next::PromoteAurora);
        assert!(p.completed.is_empty());
    }

    #[test]
    fn once_aws_moves_the_writer_the_cache_is_promoted_without_waiting_for_it() {
        let p = run(&[], &moving(US, EU), &datastore(US, true));
        assert_eq!(p.next, Next::PromoteCache);
        assert_eq!(
            p.completed,
            failover(&[FailoverStep::AuroraFailoverRequested])
        );
    }

    #[test]
    fn a_request_aws_carries_out_is_recorded_and_never_repeated() {
        let done = failover(&[FailoverStep::AuroraFailoverRequested]);
        // AWS accepted the cache failover too: both are under way.
        let p = run(&done, &moving(US, EU), &datastore(US, false));
        assert!(matches!(p.next, Next::Wait(_)), "{:?}", p.next);
        // A call whose answer was lost (a timeout) shows up as AWS moving
        // the writer: recorded, not sent again.
        let p = run(&[], &moving(US, EU), &datastore(US, false));
        assert_eq!(
            p.completed,
            failover(&[FailoverStep::AuroraFailoverRequested])
        );
        assert!(matches!(p.next, Next::Wait(_)));
    }

    #[test]
    fn a_request_aws_shows_no_trace_of_is_waited_for_not_resent() {
        let done = failover(&[FailoverStep::AuroraFailoverRequested]);
        let p = run(&done, &writer(US), &datastore(US, true));
        assert!(
            matches!(&p.next, Next::Wait(m) if m.contains("still shows us-east-1")),
            "{:?}",
            p.next
        );
    }

    #[test]
    fn with_both_moved_the_topology_is_next() {
        let p = run(&[], &writer(EU), &datastore(EU, true));
        assert_eq!(p.next, Next::Topology);
        assert_eq!(
            p.completed,
            failover(&[
                FailoverStep::AuroraFailoverRequested,
                FailoverStep::AuroraWriterMoved,
                FailoverStep::CacheFailoverRequested,
                FailoverStep::CachePrimaryMoved,
            ])
        );
    }

    #[test]
    fn the_cache_moved_first_still_waits_for_the_aurora_writer() {
        let done = failover(&[FailoverStep::AuroraFailoverRequested]);
        let p = run(&done, &moving(US, EU), &datastore(EU, true));
        assert!(
            matches!(&p.next, Next::Wait(m) if m.contains("moving the writer")),
            "{:?}",
            p.next
        );
    }

    #[test]
    fn aws_moving_the_writer_elsewhere_supersedes_the_promotion() {
        let p = run(&[], &moving(US, AP), &datastore(US, true));
        assert!(
            matches!(&p.next, Next::Superseded(m) if m.contains("ap-northeast-1")),
            "{:?}",
            p.next
        );
        let p = run(&[], &writer(AP), &datastore(US, true));
        assert!(matches!(p.next, Next::Superseded(_)));
    }

    #[test]
    fn a_cache_busy_with_someone_elses_change_is_waited_for() {
        let done = failover(&[
            FailoverStep::AuroraFailoverRequested,
            FailoverStep::AuroraWriterMoved,
        ]);
        let p = run(&done, &writer(EU), &datastore(US, false));
        assert!(
            matches!(&p.next, Next::Wait(m) if m.contains("busy")),
            "{:?}",
            p.next
        );
        // Settled elsewhere after our request: asked again, because the
        // Aurora writer is here and the cache follows it.
        let done = failover(&[
            FailoverStep::AuroraFailoverRequested,
            FailoverStep::AuroraWriterMoved,
            FailoverStep::CacheFailoverRequested,
        ]);
        assert_eq!(
            run(&done, &writer(EU), &datastore(AP, true)).next,
            Next::PromoteCache
        );
    }

    #[test]
    fn a_target_outside_the_global_datastore_skips_the_cache() {
        let p = run(
            &[],
            &writer(EU),
            &CacheView::NotApplicable("no member in eu-west-1".into()),
        );
        assert_eq!(p.next, Next::Topology);
        assert!(
            p.completed
                .contains(&FailoverStep::CacheNotInGlobalDatastore)
        );
    }

    #[test]
    fn an_unassociated_target_group_cannot_be_promoted_yet() {
        let cache = CacheView::Datastore {
            id: "ldgnf-acme".into(),
            primary: Some(US.into()),
            settled: true,
            target_group: Some("acme-eu-west-1".into()),
            target_associated: false,
        };
        assert!(matches!(
            run(&[], &moving(US, EU), &cache).next,
            Next::Wait(_)
        ));
    }

    #[test]
    fn an_unreadable_datastore_waits() {
        let p = run(
            &[],
            &moving(US, EU),
            &CacheView::Unknown("throttled".into()),
        );
        assert!(matches!(&p.next, Next::Wait(m) if m.contains("throttled")));
    }

    #[test]
    fn a_switchover_records_its_own_request_step() {
        let p = plan(
            Progress {
                kind: FailoverKind::Switchover,
                from: US,
                to: EU,
                completed: &[],
            },
            &GlobalView {
                writer: Some(US.into()),
                transition: Some(WriterTransition {
                    kind: FailoverKind::Switchover,
                    from: Some(US.into()),
                    to: Some(EU.into()),
                }),
                members: Vec::new(),
            },
            &datastore(US, true),
        );
        assert_eq!(
            p.completed,
            failover(&[FailoverStep::AuroraSwitchoverRequested])
        );
    }

    #[test]
    fn the_cache_follows_a_writer_aws_moved_here_without_a_record() {
        assert!(cache_follows_writer(EU, &writer(EU), &datastore(AP, true)));
        assert!(!cache_follows_writer(EU, &writer(EU), &datastore(EU, true)));
        assert!(!cache_follows_writer(EU, &writer(US), &datastore(US, true)));
        assert!(!cache_follows_writer(
            EU,
            &moving(US, EU),
            &datastore(US, true)
        ));
        assert!(!cache_follows_writer(
            EU,
            &writer(EU),
            &datastore(US, false)
        ));
    }

    #[test]
    fn closing_a_record_measures_its_duration() {
        let record = intent(
            &Promotion {
                kind: FailoverKind::Failover,
                from: US.into(),
                to: EU.into(),
                reason: "writer lost".into(),
                data_loss_risk: Some(Duration::from_millis(150)),
                takeover: false,
                detection: Some(Detection::Confirmed),
            },
            Timestamp::from_second(1_735_689_600).unwrap(),
        );
        assert_eq!(record.data_loss_risk_seconds, Some(0.15));
        assert!(record.completed_steps.is_empty());
        let (closed, duration) = close(
            &record,
            FailoverResult::Completed,
            Timestamp::from_second(1_735_689_662).unwrap(),
        );
        assert_eq!(duration, Duration::from_secs(62));
        assert_eq!(closed.duration_seconds, Some(62.0));
        assert_eq!(closed.result, Some(FailoverResult::Completed));
        assert_eq!(
            closed.completed_at,
            Some(Timestamp::from_second(1_735_689_662).unwrap())
        );
        assert_eq!(
            serde_json::to_value(&closed).unwrap()["completedAt"],
            "2025-01-01T00:01:02Z"
        );
    }
}
