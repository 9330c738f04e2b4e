//! The decision engine: `decide(observation, policy, now) -> Decision`. Pure.
//!
//! Every region runs it on its own observation. The fleet-wide answer (who
//! should be promoted, or why nobody) depends only on what the regions share
//! (AWS's writer, the policy, the verdicts); the local region then either is
//! the one to act or waits for it. **A region only ever promotes itself**, so
//! for one observation at most one region acts.
//!
//! The rules, in the order they apply (`docs/failover.md` explains each):
//!
//! 1. Without AWS's view of the global cluster nothing can be decided.
//! 2. A promotion this region recorded and did not finish is resumed, or
//!    given up: superseded when AWS moved the writer elsewhere (the loser
//!    adopts the winner's outcome), abandoned when it was never sent to AWS
//!    and is no longer wanted. Never a second one beside it.
//! 3. A writer change AWS is carrying out, or another region's recorded
//!    intent, means wait.
//! 4. Healthy writer: a change of `failover.order`'s first region (from the
//!    one last acted on) requests a planned switchover to it; anything else
//!    is nothing to do, in particular no failback to a recovered old primary.
//! 5. Writer of unknown health: wait; only an `Unhealthy` writer is lost.
//! 6. Writer `Unhealthy` for `unhealthyAfter`: outside the cooldown, the
//!    first healthy region in `failover.order` promotes itself; after each
//!    `takeoverGrace` without a promotion the next healthy region's turn
//!    comes. Refused when the target's last known lag exceeds
//!    `maxReplicationLag` (or is unknown) unless `allowDataLoss`.
//! 7. `Manual` mode reports what rule 6 would do, and acts only when a
//!    human asked by naming the target first in `failover.order`.
//! 8. ShopRegions that disagree on the policy stop any automatic action.

use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::health::Health;
use super::observe::{Attempt, FleetObservation, GlobalView, Policy, RegionView};
use crate::api::{Detection, FailoverKind, FailoverMode, FailoverStep, HealthVerdict};
use crate::clock::{after, elapsed, fmt_duration};

/// A writer change the engine wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub kind: FailoverKind,
    pub from: String,
    pub to: String,
    /// For the record and the Event: why.
    pub reason: String,
    /// Writes younger than this may be lost: the target's last known lag for
    /// a failover (`None`: unknown, only with `allowDataLoss`), zero for a
    /// switchover, which waits for the target to catch up.
    pub data_loss_risk: Option<Duration>,
    /// The target is not the first healthy region: it takes over because
    /// the regions before it did not act within their grace period.
    pub takeover: bool,
    /// How the writer's loss was detected; `None` for a switchover.
    pub detection: Option<Detection>,
}

/// What one region should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do; the message says why, for the condition.
    Nothing { message: String },
    /// Not now, and not this region's problem to solve.
    Wait { reason: WaitReason, message: String },
    /// Planned, no data loss: this region becomes the writer.
    Switchover(Promotion),
    /// Unplanned: the writer is lost and this region promotes itself.
    Failover(Promotion),
    /// Carry on with the promotion this region recorded.
    Resume(Promotion),
    /// Close this region's recorded promotion without carrying it further.
    Abandon {
        reason: AbandonReason,
        message: String,
    },
    /// `Manual` mode: what an automatic policy would do now.
    Manual(Promotion),
    /// The fleet should fail over but must not: a human has to decide.
    Refuse {
        reason: RefuseReason,
        message: String,
    },
}

impl Decision {
    /// The promotion this region carries out now, if any.
    pub fn promotion(&self) -> Option<&Promotion> {
        match self {
            Decision::Switchover(p) | Decision::Failover(p) | Decision::Resume(p) => Some(p),
            _ => None,
        }
    }

    /// A one-word reason, for conditions and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Nothing { .. } => "NothingToDo",
            Decision::Wait { reason, .. } => reason.as_str(),
            Decision::Switchover(_) => "Switchover",
            Decision::Failover(_) => "Failover",
            Decision::Resume(_) => "Resume",
            Decision::Abandon { reason, .. } => reason.as_str(),
            Decision::Manual(_) => "ManualMode",
            Decision::Refuse { reason, .. } => reason.as_str(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Decision::Nothing { message }
            | Decision::Wait { message, .. }
            | Decision::Abandon { message, .. }
            | Decision::Refuse { message, .. } => message.clone(),
            Decision::Switchover(p) | Decision::Failover(p) | Decision::Resume(p) => {
                p.reason.clone()
            }
            Decision::Manual(p) => format!(
                "mode is Manual; an automatic policy would now {} {} (from {}): {}",
                match p.kind {
                    FailoverKind::Failover => "fail over to",
                    FailoverKind::Switchover => "switch over to",
                    FailoverKind::CacheFollow => "move the cache primary to",
                },
                p.to,
                p.from,
                p.reason
            ),
        }
    }
}

macro_rules! reasons {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$vdoc])* $variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

reasons!(
    /// Why a region waits.
    WaitReason {
        /// AWS's view of the global cluster could not be read.
        GlobalClusterUnknown,
        /// The global cluster has no writer yet.
        NotEstablished,
        /// AWS is moving the writer, or a region recorded that it will.
        FailoverInProgress,
        /// The writer's health is unknown: never a reason to fail over.
        WriterHealthUnknown,
        /// The writer looks unhealthy, not yet for `unhealthyAfter`.
        WriterUnhealthy,
        /// The last writer change is more recent than `cooldown`.
        CooldownActive,
        /// No region other than the writer is healthy.
        NoHealthyCandidate,
        /// Another region is the one to act.
        AwaitingRegion,
        /// A switchover was requested to a region that is not healthy.
        TargetNotHealthy,
        /// The visible ShopRegions disagree on the policy (a planned change
        /// waits for every manifest to be applied).
        PoliciesDisagree,
    }
);

reasons!(
    /// Why a needed failover is refused.
    RefuseReason {
        /// The target's last known lag exceeds `maxReplicationLag`.
        RPOBudgetExceeded,
        /// No lag of the target is known from before the writer was lost.
        ReplicationLagUnknown,
        /// The visible ShopRegions disagree on the policy.
        PoliciesDisagree,
    }
);

reasons!(
    /// Why a recorded promotion is closed unfinished.
    AbandonReason {
        /// Another region's promotion won; its outcome is adopted.
        Superseded,
        /// Never sent to AWS, and no longer wanted.
        NoLongerNeeded,
        /// Sent to AWS, but AWS shows no trace of it after `intentTimeout`.
        Stale,
    }
);

/// What `observation.local` should do at `now`.
pub fn decide(observation: &FleetObservation, policy: &Policy, now: Timestamp) -> Decision {
    let Some(global) = &observation.global else {
        return wait(
            WaitReason::GlobalClusterUnknown,
            "the global cluster could not be read from AWS; nothing is decided without it",
        );
    };
    if let Some(own) = observation
        .attempts
        .iter()
        .find(|a| a.region == observation.local && a.in_progress())
    {
        return continue_own(own, global, observation, policy, now);
    }
    fleet_decision(observation, policy, now, Intents::Respect)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Intents {
    /// Another region's recorded promotion holds this region back.
    Respect,
    /// Only another region's promotion already sent to AWS holds this region
    /// back: of several regions that recorded an intent and have not called
    /// AWS, the one whose turn it is goes on and the others give up.
    IgnoreUnsent,
}

fn wait(reason: WaitReason, message: impl Into<String>) -> Decision {
    Decision::Wait {
        reason,
        message: message.into(),
    }
}

fn refuse(reason: RefuseReason, message: impl Into<String>) -> Decision {
    Decision::Refuse {
        reason,
        message: message.into(),
    }
}

fn abandon(reason: AbandonReason, message: impl Into<String>) -> Decision {
    Decision::Abandon {
        reason,
        message: message.into(),
    }
}

fn continue_own(
    own: &Attempt,
    global: &GlobalView,
    observation: &FleetObservation,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let recorded = |reason: String| Promotion {
        kind: own.kind,
        from: own.from.clone(),
        to: own.to.clone(),
        reason,
        data_loss_risk: None,
        takeover: false,
        detection: None,
    };
    if let Some(transition) = &global.transition {
        let Some(moving_to) = transition.to.as_deref() else {
            return wait(
                WaitReason::FailoverInProgress,
                "AWS reports a writer change under way without saying where to",
            );
        };
        if moving_to == own.to {
            return Decision::Resume(recorded(format!(
                "AWS is moving the writer to {}; resuming the {} recorded at {}",
                own.to,
                own.kind.word(),
                own.started_at
            )));
        }
        return abandon(
            AbandonReason::Superseded,
            format!(
                "AWS is moving the writer from {} to {moving_to}, not to {}: that promotion won, adopting it",
                transition.from.as_deref().unwrap_or("?"),
                own.to
            ),
        );
    }
    let Some(writer) = global.writer.as_deref() else {
        return wait(
            WaitReason::NotEstablished,
            "the global cluster reports no writer; the recorded promotion waits",
        );
    };
    if writer == own.to {
        return Decision::Resume(recorded(format!(
            "{} is the writer; finishing the {} recorded at {}",
            own.to,
            own.kind.word(),
            own.started_at
        )));
    }
    if writer != own.from {
        return abandon(
            AbandonReason::Superseded,
            format!(
                "the writer moved to {writer} while this region's {} to {} was recorded: adopting it",
                own.kind.word(),
                own.to
            ),
        );
    }
    if !own.completed_steps.is_empty() {
        // AWS was asked already; it has not shown the change yet.
        if elapsed(own.started_at, now) < policy.intent_timeout {
            return Decision::Resume(recorded(format!(
                "waiting for AWS to show the {} to {} requested after {}",
                own.kind.word(),
                own.to,
                FailoverStep::list(&own.completed_steps)
            )));
        }
        return abandon(
            AbandonReason::Stale,
            format!(
                "AWS shows no trace of the {} to {} recorded at {}; the writer is still {writer}",
                own.kind.word(),
                own.to,
                own.started_at
            ),
        );
    }
    // Recorded but never sent: carry it out only if it is still what the
    // fleet wants now.
    match fleet_decision(observation, policy, now, Intents::IgnoreUnsent) {
        Decision::Failover(p) | Decision::Switchover(p) if p.kind == own.kind && p.to == own.to => {
            Decision::Resume(Promotion {
                reason: format!(
                    "resuming the {} recorded at {}: {}",
                    own.kind.word(),
                    own.started_at,
                    p.reason
                ),
                ..p
            })
        }
        // Not decidable yet: typically an operator that restarted between
        // recording the intent and calling AWS, re-judging every region
        // from scratch. Holding the record keeps the promotion this region
        // was about to make; giving it up would only delay it (and another
        // region's turn gives it up below, as soon as the verdicts say so).
        Decision::Wait {
            reason: reason @ (WaitReason::WriterHealthUnknown | WaitReason::WriterUnhealthy),
            message,
        } => wait(
            reason,
            format!(
                "the {} to {} recorded at {} waits: {message}",
                own.kind.word(),
                own.to,
                own.started_at
            ),
        ),
        fresh => abandon(
            AbandonReason::NoLongerNeeded,
            format!(
                "the {} to {} recorded at {} was never sent to AWS and is no longer wanted: {}",
                own.kind.word(),
                own.to,
                own.started_at,
                fresh.message()
            ),
        ),
    }
}

fn fleet_decision(
    observation: &FleetObservation,
    policy: &Policy,
    now: Timestamp,
    intents: Intents,
) -> Decision {
    let global = observation
        .global
        .as_ref()
        .expect("decide checks the global view first");
    let Some(writer) = global.writer.as_deref() else {
        return wait(
            WaitReason::NotEstablished,
            "the global cluster has no writer yet",
        );
    };
    if let Some(transition) = &global.transition {
        return wait(
            WaitReason::FailoverInProgress,
            format!(
                "AWS is carrying out a {} from {} to {}",
                transition.kind.word(),
                transition.from.as_deref().unwrap_or("?"),
                transition.to.as_deref().unwrap_or("?")
            ),
        );
    }
    if let Some(other) = observation.attempts.iter().find(|a| {
        a.region != observation.local
            && a.in_progress()
            && (intents == Intents::Respect || !a.completed_steps.is_empty())
            && (a.from == writer || a.to == writer)
            && elapsed(a.started_at, now) < policy.intent_timeout
    }) {
        return wait(
            WaitReason::FailoverInProgress,
            format!(
                "{} recorded a {} to {} at {}",
                other.region,
                other.kind.word(),
                other.to,
                other.started_at
            ),
        );
    }

    let first = policy.first().unwrap_or(writer);
    let preferred = observation.preferred_region.as_deref().unwrap_or(first);
    // A request is a change of the first region since the fleet last acted
    // on it, not merely a writer elsewhere (that is what a failover leaves).
    let requested = (first != preferred && first != writer).then_some(first);
    let writer_health = observation
        .region(writer)
        .map(|r| &r.health)
        .cloned()
        .unwrap_or_else(super::health::Health::unknown);

    match writer_health.verdict {
        HealthVerdict::Healthy => match requested {
            Some(target) => switchover(observation, policy, now, writer, target),
            None if writer == first => Decision::Nothing {
                message: format!("writer {writer} is healthy and first in failover.order"),
            },
            None => Decision::Nothing {
                message: format!(
                    "writer {writer} is healthy; failover.order prefers {first}, but there is no automatic failback: \
                     put {writer} first in failover.order to accept it, then {first} first to switch back"
                ),
            },
        },
        HealthVerdict::Unknown => wait(
            WaitReason::WriterHealthUnknown,
            format!(
                "the health of writer {writer} is unknown ({}: {}); only an unhealthy writer is failed over",
                writer_health.reason, writer_health.message
            ),
        ),
        HealthVerdict::Unhealthy => {
            failover(observation, policy, now, writer, &writer_health, requested)
        }
    }
}

fn switchover(
    observation: &FleetObservation,
    policy: &Policy,
    now: Timestamp,
    writer: &str,
    target: &str,
) -> Decision {
    if let Some(until) = cooldown_until(observation, policy)
        && now < until
    {
        return wait(
            WaitReason::CooldownActive,
            format!(
                "failover.order names {target} first, but the writer changed less than {} ago; switching over after {until}",
                fmt_duration(policy.cooldown)
            ),
        );
    }
    if !observation.disagreements.is_empty() {
        return wait(
            WaitReason::PoliciesDisagree,
            format!(
                "failover.order names {target} first, waiting for every ShopRegion to agree: {}",
                observation.disagreements.join("; ")
            ),
        );
    }
    let target_health = observation.region(target).map(|r| &r.health);
    if !target_health.is_some_and(|h| h.is_healthy()) {
        return wait(
            WaitReason::TargetNotHealthy,
            format!(
                "failover.order names {target} first, but {target} is {}; the switchover waits for it",
                target_health.map_or("not in the fleet", |h| h.verdict.as_str())
            ),
        );
    }
    let promotion = Promotion {
        kind: FailoverKind::Switchover,
        from: writer.to_string(),
        to: target.to_string(),
        reason: format!(
            "failover.order now names {target} first; planned switchover from healthy writer {writer}"
        ),
        data_loss_risk: Some(Duration::ZERO),
        takeover: false,
        detection: None,
    };
    if observation.local == target {
        Decision::Switchover(promotion)
    } else {
        wait(
            WaitReason::AwaitingRegion,
            format!("{target} switches over to itself: {}", promotion.reason),
        )
    }
}

/// When an unhealthy region counts as lost, and by which path: after
/// `confirmedLossAfter` of corroborated evidence, or after `unhealthyAfter`
/// of any; whichever comes first. `None` for a region with no verdict time.
pub fn declared_lost(health: &Health, policy: &Policy) -> Option<(Timestamp, Detection)> {
    let sustained = after(health.since?, policy.unhealthy_after);
    match health.confirmed_since {
        Some(confirmed) if after(confirmed, policy.confirmed_loss_after) < sustained => Some((
            after(confirmed, policy.confirmed_loss_after),
            Detection::Confirmed,
        )),
        _ => Some((sustained, Detection::Sustained)),
    }
}

/// A candidate's last known lag, when it bounds what a failover of a writer
/// lost at `since` would lose: lag read long before the writer failed says
/// nothing about what it had not replicated when it failed.
fn bounding_lag(view: &RegionView, policy: &Policy, since: Timestamp) -> Option<Duration> {
    view.lag
        .filter(|l| after(l.at, policy.lag_max_age) >= since)
        .map(|l| l.lag)
}

fn failover(
    observation: &FleetObservation,
    policy: &Policy,
    now: Timestamp,
    writer: &str,
    health: &Health,
    requested: Option<&str>,
) -> Decision {
    let since = health.since.unwrap_or(now);
    let symptom = &health.message;
    let (declared, detection) = declared_lost(health, policy)
        .unwrap_or((after(now, policy.unhealthy_after), Detection::Sustained));
    if now < declared {
        return wait(
            WaitReason::WriterUnhealthy,
            format!(
                "writer {writer} unhealthy since {since} ({symptom}); declared lost at {declared} unless it recovers"
            ),
        );
    }
    if let Some(until) = cooldown_until(observation, policy)
        && now < until
    {
        return wait(
            WaitReason::CooldownActive,
            format!(
                "writer {writer} is lost, but the writer changed less than {} ago; no failover before {until}",
                fmt_duration(policy.cooldown)
            ),
        );
    }
    let healthy: Vec<&RegionView> = policy
        .order
        .iter()
        .map(String::as_str)
        .filter(|r| *r != writer)
        .filter_map(|r| observation.region(r))
        .filter(|v| v.health.is_healthy())
        .collect();
    if healthy.is_empty() {
        return wait(
            WaitReason::NoHealthyCandidate,
            format!("writer {writer} is lost and no other region is healthy"),
        );
    }
    if !observation.disagreements.is_empty() {
        return refuse(
            RefuseReason::PoliciesDisagree,
            format!(
                "writer {writer} is lost, but the ShopRegions disagree on the failover policy: {}",
                observation.disagreements.join("; ")
            ),
        );
    }
    // The RPO guard picks the candidates: a region whose data loss is
    // bounded within the budget, in failover.order; the first of them is
    // the best one, not the first healthy region.
    let within_budget = |view: &RegionView| {
        policy.allow_data_loss
            || bounding_lag(view, policy, since)
                .is_some_and(|lag| lag <= policy.max_replication_lag)
    };
    let candidates: Vec<&str> = healthy
        .iter()
        .filter(|v| within_budget(v))
        .map(|v| v.region.as_str())
        .collect();
    if candidates.is_empty() {
        return refuse_for_lag(writer, &healthy, policy, since);
    }
    // Turns: the first candidate has the first grace period, the next one
    // the next, and so on round the list, so that at any instant exactly
    // one region may act.
    let grace = policy.takeover_grace.max(Duration::from_millis(1));
    let since_declared = elapsed(declared, now);
    let turn = (since_declared.as_millis() / grace.as_millis()) as usize;
    let index = turn % candidates.len();
    let target = candidates[index];
    let turn_ends = after(
        declared,
        grace.saturating_mul(u32::try_from(turn + 1).unwrap_or(u32::MAX)),
    );
    let target_view = observation.region(target).expect("candidates are regions");
    let lag = bounding_lag(target_view, policy, since);
    let skipped = healthy.len() - candidates.len();
    let promotion = Promotion {
        kind: FailoverKind::Failover,
        from: writer.to_string(),
        to: target.to_string(),
        reason: format!(
            "writer {writer} unhealthy since {since} ({symptom}), lost by {} detection; {target} is {}{} (data loss risk {})",
            detection.word(),
            if index == 0 {
                "the first candidate in failover.order".to_string()
            } else {
                format!(
                    "taking over: the regions before it did not act within {}",
                    fmt_duration(grace)
                )
            },
            if skipped > 0 {
                format!(
                    "; {skipped} healthy region(s) before it skipped, their data loss not bounded within maxReplicationLag {}",
                    fmt_duration(policy.max_replication_lag)
                )
            } else {
                String::new()
            },
            lag.map_or("unknown".to_string(), fmt_duration)
        ),
        data_loss_risk: lag,
        takeover: index > 0,
        detection: Some(detection),
    };
    if policy.mode == FailoverMode::Manual && requested != Some(target) {
        return Decision::Manual(promotion);
    }
    if observation.local == target {
        Decision::Failover(promotion)
    } else {
        let next = candidates[(turn + 1) % candidates.len()];
        wait(
            WaitReason::AwaitingRegion,
            if next == target {
                format!("{target} promotes itself: {}", promotion.reason)
            } else {
                format!(
                    "{target} promotes itself; {next} takes over at {turn_ends} if it has not: {}",
                    promotion.reason
                )
            },
        )
    }
}

/// No healthy region's data loss is bounded within the budget: the refusal
/// names each candidate's lag.
fn refuse_for_lag(
    writer: &str,
    healthy: &[&RegionView],
    policy: &Policy,
    since: Timestamp,
) -> Decision {
    let lags: Vec<Option<Duration>> = healthy
        .iter()
        .map(|v| bounding_lag(v, policy, since))
        .collect();
    let each = healthy
        .iter()
        .zip(&lags)
        .map(|(v, lag)| match lag {
            Some(lag) => format!("{} lag {}", v.region, fmt_duration(*lag)),
            None => format!("{} lag unknown from before {since}", v.region),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let budget = fmt_duration(policy.max_replication_lag);
    if lags.iter().any(Option::is_some) {
        refuse(
            RefuseReason::RPOBudgetExceeded,
            format!(
                "writer {writer} is lost, but no candidate's replication lag is within maxReplicationLag {budget} ({each}); set allowDataLoss to accept the loss, or fail over by hand"
            ),
        )
    } else {
        refuse(
            RefuseReason::ReplicationLagUnknown,
            format!(
                "writer {writer} is lost, but no candidate's replication lag is known ({each}), so the data loss cannot be bounded; set allowDataLoss to accept it"
            ),
        )
    }
}

/// Regions the survivors absorb: any member of the global cluster not
/// `Healthy` since at least `unhealthyAfter` (a region of unknown health for
/// that long counts too: spare capacity is the cheap side of the doubt). A
/// region never judged (operator just started) does not, nor one that has
/// not joined yet: while a fleet is being built, the regions still to come
/// carry no traffic to absorb. When AWS cannot be read, membership is
/// unknown and every region counts.
pub fn lost_regions<'a>(
    observation: &'a FleetObservation,
    policy: &Policy,
    now: Timestamp,
) -> Vec<&'a str> {
    observation
        .regions
        .iter()
        .filter(|r| !r.health.is_healthy())
        .filter(|r| {
            observation
                .global
                .as_ref()
                .is_none_or(|g| g.members.contains(&r.region))
        })
        .filter(|r| declared_lost(&r.health, policy).is_some_and(|(at, _)| now >= at))
        .map(|r| r.region.as_str())
        .collect()
}

/// Whether the local region holds the absorbing minimum of the capacity
/// model now: another region is lost and this one is not.
pub fn absorbing(observation: &FleetObservation, policy: &Policy, now: Timestamp) -> bool {
    let lost = lost_regions(observation, policy, now);
    let writer = observation.writer();
    // A promotion under way, or a human expected to make one (Manual mode):
    // the survivors will take the orders.
    let promoting = observation
        .attempts
        .iter()
        .any(|a| a.in_progress() && a.kind != FailoverKind::CacheFollow)
        || policy.mode == FailoverMode::Manual;
    let absorbable = |region: &&str| {
        // Only a region that served can leave traffic to absorb: one still
        // joining the fleet, never judged healthy, is not a loss. A lost
        // writer that nobody replaces (a refused failover, a writer of
        // unknown health) leaves no shop to take orders in: capacity for
        // them would be pods for nothing.
        observation
            .region(region)
            .is_some_and(|r| r.health.was_healthy)
            && (writer != Some(*region) || promoting)
    };
    lost.iter().any(absorbable) && !lost.contains(&observation.local.as_str())
}

/// The end of the cooldown: it runs from the last writer change, whether
/// this controller saw it in a failover record or only in AWS. A promotion
/// still finishing its steps after AWS moved the writer counts from its
/// start.
pub fn cooldown_until(observation: &FleetObservation, policy: &Policy) -> Option<Timestamp> {
    let writer = observation.writer();
    let finishing = observation
        .attempts
        .iter()
        .filter(|a| a.in_progress() && a.kind != FailoverKind::CacheFollow)
        .filter(|a| writer == Some(a.to.as_str()))
        .map(|a| a.started_at);
    observation
        .attempts
        .iter()
        .filter_map(Attempt::moved_writer_at)
        .chain(finishing)
        .chain(observation.writer_changed_at)
        .max()
        .map(|last| after(last, policy.cooldown))
}

/// The next instant at which [`decide`] or the absorbing rule may answer
/// differently without any new sample: a region declared lost, the turn
/// passing to the next candidate, a cooldown or a recorded intent's timeout
/// running out. The controller wakes up then, so a decision never waits for
/// a periodic requeue. `None` when nothing is due.
pub fn next_change(
    observation: &FleetObservation,
    policy: &Policy,
    now: Timestamp,
) -> Option<Timestamp> {
    let mut due: Vec<Timestamp> = observation
        .regions
        .iter()
        .filter(|r| !r.health.is_healthy())
        .filter_map(|r| declared_lost(&r.health, policy).map(|(at, _)| at))
        .collect();
    let writer_lost_at = observation
        .writer()
        .and_then(|w| observation.region(w))
        .filter(|w| w.health.verdict == HealthVerdict::Unhealthy)
        .and_then(|w| declared_lost(&w.health, policy))
        .map(|(at, _)| at);
    if let Some(declared) = writer_lost_at
        && now >= declared
    {
        let grace = policy.takeover_grace.max(Duration::from_millis(1));
        let turns = elapsed(declared, now).as_millis() / grace.as_millis() + 1;
        due.push(after(
            declared,
            grace.saturating_mul(u32::try_from(turns).unwrap_or(u32::MAX)),
        ));
    }
    due.extend(cooldown_until(observation, policy));
    due.extend(
        observation
            .attempts
            .iter()
            .filter(|a| a.in_progress())
            .map(|a| after(a.started_at, policy.intent_timeout)),
    );
    due.into_iter().filter(|t| *t > now).min()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::FailoverResult;
    use crate::failover::health::Health;
    use crate::failover::observe::{LagSample, RegionView, WriterTransition};

    pub(crate) const US: &str = "us-east-1";
    pub(crate) const EU: &str = "eu-west-1";
    pub(crate) const AP: &str = "ap-northeast-1";

    pub(crate) fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_735_689_600 + seconds).unwrap()
    }

    pub(crate) fn healthy(since: i64) -> Health {
        Health {
            verdict: HealthVerdict::Healthy,
            since: Some(t(since)),
            reason: "SignalsHealthy",
            message: "all good".into(),
            was_healthy: true,
            confirmed_since: None,
        }
    }

    pub(crate) fn unhealthy(since: i64) -> Health {
        Health {
            verdict: HealthVerdict::Unhealthy,
            since: Some(t(since)),
            reason: "RegionUnreachable",
            message: "endpoint: connect timed out".into(),
            was_healthy: true,
            confirmed_since: None,
        }
    }

    pub(crate) fn policy() -> Policy {
        Policy::from_spec(&crate::api::fixtures::acme(US).failover)
    }

    /// The acme fleet at t(0): writer us-east-1, everyone healthy for long,
    /// lag 200 ms read 10 s ago, no failover ever.
    pub(crate) fn fleet(local: &str) -> FleetObservation {
        FleetObservation {
            local: local.into(),
            global: Some(GlobalView {
                writer: Some(US.into()),
                transition: None,
                members: vec![US.into(), EU.into(), AP.into()],
            }),
            regions: [US, EU, AP]
                .iter()
                .map(|r| RegionView {
                    region: r.to_string(),
                    health: healthy(-10_000),
                    lag: (*r != US).then_some(LagSample {
                        lag: Duration::from_millis(200),
                        at: t(-10),
                    }),
                })
                .collect(),
            attempts: vec![],
            writer_changed_at: None,
            preferred_region: Some(US.into()),
            disagreements: vec![],
        }
    }

    fn set_health(obs: &mut FleetObservation, region: &str, health: Health) {
        obs.regions
            .iter_mut()
            .find(|r| r.region == region)
            .unwrap()
            .health = health;
    }

    fn set_lag(obs: &mut FleetObservation, region: &str, lag: Option<(f64, i64)>) {
        obs.regions
            .iter_mut()
            .find(|r| r.region == region)
            .unwrap()
            .lag = lag.map(|(secs, at)| LagSample {
            lag: Duration::from_secs_f64(secs),
            at: t(at),
        });
    }

    /// us-east-1 unhealthy since t(-45): lost at t(-15) with the defaults,
    /// so at t(0) it is the first candidate's turn until t(15).
    fn writer_lost(local: &str) -> FleetObservation {
        let mut obs = fleet(local);
        set_health(&mut obs, US, unhealthy(-45));
        obs
    }

    /// The one region that promotes, and its decision.
    fn promoter(obs: &FleetObservation, policy: &Policy, now: Timestamp) -> Option<Decision> {
        let mut promoting: Vec<Decision> = everyone(obs, policy, now)
            .into_iter()
            .filter(|d| d.promotion().is_some())
            .collect();
        assert!(promoting.len() <= 1, "{promoting:?}");
        promoting.pop()
    }

    fn everyone(obs: &FleetObservation, policy: &Policy, now: Timestamp) -> Vec<Decision> {
        [US, EU, AP]
            .iter()
            .map(|local| {
                let mut o = obs.clone();
                o.local = local.to_string();
                decide(&o, policy, now)
            })
            .collect()
    }

    fn attempt(
        region: &str,
        kind: FailoverKind,
        from: &str,
        to: &str,
        started: i64,
        completed: Option<i64>,
    ) -> Attempt {
        Attempt {
            region: region.into(),
            kind,
            from: from.into(),
            to: to.into(),
            started_at: t(started),
            completed_at: completed.map(t),
            result: completed.map(|_| FailoverResult::Completed),
            completed_steps: vec![],
        }
    }

    fn reason_of(d: &Decision) -> &'static str {
        d.reason()
    }

    #[test]
    fn nothing_to_do_while_the_writer_is_healthy_and_first_in_the_order() {
        for d in everyone(&fleet(US), &policy(), t(0)) {
            assert!(matches!(d, Decision::Nothing { .. }), "{d:?}");
        }
    }

    #[test]
    fn without_the_global_cluster_from_aws_nothing_is_decided() {
        let mut obs = writer_lost(EU);
        obs.global = None;
        assert_eq!(
            reason_of(&decide(&obs, &policy(), t(0))),
            "GlobalClusterUnknown"
        );
    }

    #[test]
    fn a_global_cluster_without_a_writer_is_not_failed_over() {
        let mut obs = writer_lost(EU);
        obs.global.as_mut().unwrap().writer = None;
        assert_eq!(reason_of(&decide(&obs, &policy(), t(0))), "NotEstablished");
    }

    #[test]
    fn a_writer_unhealthy_for_less_than_unhealthy_after_is_not_yet_lost() {
        let mut obs = fleet(EU);
        set_health(&mut obs, US, unhealthy(-29));
        let d = decide(&obs, &policy(), t(0));
        assert_eq!(reason_of(&d), "WriterUnhealthy");
        assert!(
            d.message()
                .contains("declared lost at 2025-01-01T00:00:01Z"),
            "{}",
            d.message()
        );
        // One second later it is.
        assert!(matches!(
            decide(&obs, &policy(), t(1)),
            Decision::Failover(_)
        ));
    }

    #[test]
    fn a_lost_writer_is_replaced_by_the_first_healthy_region_in_the_order() {
        let decisions = everyone(&writer_lost(EU), &policy(), t(0));
        let Decision::Failover(p) = &decisions[1] else {
            panic!("eu-west-1 should promote itself: {:?}", decisions[1]);
        };
        assert_eq!((p.from.as_str(), p.to.as_str()), (US, EU));
        assert_eq!(p.kind, FailoverKind::Failover);
        assert_eq!(p.data_loss_risk, Some(Duration::from_millis(200)));
        assert!(!p.takeover);
        for d in [&decisions[0], &decisions[2]] {
            assert_eq!(reason_of(d), "AwaitingRegion");
            assert!(
                d.message().starts_with("eu-west-1 promotes itself"),
                "{}",
                d.message()
            );
        }
        assert!(
            decisions[2]
                .message()
                .contains("ap-northeast-1 takes over at 2025-01-01T00:00:15Z")
        );
    }

    #[test]
    fn an_unhealthy_first_candidate_is_skipped_for_the_next_healthy_one() {
        let mut obs = writer_lost(AP);
        set_health(&mut obs, EU, unhealthy(-5));
        let Decision::Failover(p) = decide(&obs, &policy(), t(0)) else {
            panic!("ap-northeast-1 should promote itself");
        };
        assert_eq!(p.to, AP);
        assert!(!p.takeover, "the first healthy region is not a takeover");
    }

    #[test]
    fn a_candidate_of_unknown_health_is_not_promoted() {
        let mut obs = writer_lost(EU);
        set_health(&mut obs, EU, Health::unknown());
        let decisions = everyone(&obs, &policy(), t(0));
        assert_eq!(reason_of(&decisions[1]), "AwaitingRegion");
        assert!(matches!(&decisions[2], Decision::Failover(p) if p.to == AP));
    }

    #[test]
    fn a_writer_of_unknown_health_is_never_failed_over() {
        let mut obs = fleet(EU);
        set_health(&mut obs, US, Health::unknown());
        for d in everyone(&obs, &policy(), t(10_000)) {
            assert_eq!(reason_of(&d), "WriterHealthUnknown", "{d:?}");
        }
    }

    #[test]
    fn no_healthy_candidate_means_wait() {
        let mut obs = writer_lost(EU);
        set_health(&mut obs, EU, unhealthy(-100));
        set_health(&mut obs, AP, Health::unknown());
        assert_eq!(
            reason_of(&decide(&obs, &policy(), t(0))),
            "NoHealthyCandidate"
        );
    }

    #[test]
    fn a_single_region_fleet_has_no_one_to_fail_over_to() {
        let mut obs = writer_lost(US);
        obs.regions.truncate(1);
        let mut p = policy();
        p.order.truncate(1);
        assert_eq!(reason_of(&decide(&obs, &p, t(0))), "NoHealthyCandidate");
    }

    #[test]
    fn the_next_region_takes_over_when_the_first_has_not_acted_within_the_grace_period() {
        let obs = writer_lost(AP);
        // Lost at t(-15); eu-west-1's turn is [-15, 15), ap-northeast-1's [15, 45).
        assert_eq!(reason_of(&decide(&obs, &policy(), t(14))), "AwaitingRegion");
        let Decision::Failover(p) = decide(&obs, &policy(), t(15)) else {
            panic!("ap-northeast-1 should take over");
        };
        assert!(p.takeover);
        assert_eq!(p.to, AP);
        assert!(p.reason.contains("taking over"), "{}", p.reason);
        // And eu-west-1, late, stands down.
        let mut eu = obs.clone();
        eu.local = EU.into();
        assert_eq!(reason_of(&decide(&eu, &policy(), t(15))), "AwaitingRegion");
    }

    #[test]
    fn takeover_turns_come_round_to_the_first_candidate_again() {
        let obs = writer_lost(EU);
        assert!(
            matches!(decide(&obs, &policy(), t(45)), Decision::Failover(p) if p.to == EU && !p.takeover)
        );
    }

    #[test]
    fn lag_over_budget_everywhere_is_refused_in_every_region_naming_each_candidates_lag() {
        let mut obs = writer_lost(EU);
        set_lag(&mut obs, EU, Some((45.0, -70)));
        set_lag(&mut obs, AP, Some((50.0, -70)));
        for d in everyone(&obs, &policy(), t(0)) {
            assert_eq!(reason_of(&d), "RPOBudgetExceeded", "{d:?}");
            assert!(
                d.message()
                    .contains("eu-west-1 lag 45s, ap-northeast-1 lag 50s")
                    && d.message().contains("maxReplicationLag 30s"),
                "{}",
                d.message()
            );
        }
    }

    #[test]
    fn the_next_candidate_within_the_budget_is_promoted_when_the_first_lags_too_much() {
        let mut obs = writer_lost(AP);
        set_lag(&mut obs, EU, Some((45.0, -70)));
        let Some(Decision::Failover(promotion)) = promoter(&obs, &policy(), t(0)) else {
            panic!("ap-northeast-1's lag is within the budget");
        };
        assert_eq!(promotion.to, AP);
        assert!(
            !promotion.takeover,
            "its turn is the first: {}",
            promotion.reason
        );
        assert!(promotion.reason.contains("skipped"), "{}", promotion.reason);
    }

    #[test]
    fn lag_at_the_budget_is_promoted() {
        let mut obs = writer_lost(EU);
        set_lag(&mut obs, EU, Some((30.0, -70)));
        assert!(matches!(
            decide(&obs, &policy(), t(0)),
            Decision::Failover(_)
        ));
    }

    #[test]
    fn lag_over_budget_is_promoted_when_data_loss_is_allowed_and_the_risk_is_recorded() {
        let mut obs = writer_lost(EU);
        set_lag(&mut obs, EU, Some((45.0, -70)));
        let mut p = policy();
        p.allow_data_loss = true;
        let Decision::Failover(promotion) = decide(&obs, &p, t(0)) else {
            panic!("allowDataLoss should promote");
        };
        assert_eq!(promotion.data_loss_risk, Some(Duration::from_secs(45)));
        assert!(promotion.reason.contains("data loss risk 45s"));
    }

    #[test]
    fn unknown_lag_is_refused_unless_data_loss_is_allowed() {
        let mut obs = writer_lost(EU);
        set_lag(&mut obs, EU, None);
        set_lag(&mut obs, AP, None);
        assert_eq!(
            reason_of(&decide(&obs, &policy(), t(0))),
            "ReplicationLagUnknown"
        );
        let mut p = policy();
        p.allow_data_loss = true;
        assert!(
            matches!(decide(&obs, &p, t(0)), Decision::Failover(pr) if pr.data_loss_risk.is_none())
        );
    }

    #[test]
    fn a_lag_reading_from_long_before_the_outage_counts_as_unknown() {
        let mut obs = writer_lost(EU);
        // Read 301 s before the writer began to look unhealthy (t(-45)).
        set_lag(&mut obs, EU, Some((0.1, -346)));
        set_lag(&mut obs, AP, Some((0.1, -346)));
        assert_eq!(
            reason_of(&decide(&obs, &policy(), t(0))),
            "ReplicationLagUnknown"
        );
        set_lag(&mut obs, EU, Some((0.1, -345)));
        assert!(matches!(
            decide(&obs, &policy(), t(0)),
            Decision::Failover(_)
        ));
    }

    #[test]
    fn no_failover_within_the_cooldown_after_the_last_one() {
        let mut obs = writer_lost(EU);
        obs.attempts = vec![attempt(
            EU,
            FailoverKind::Failover,
            AP,
            US,
            -700,
            Some(-599),
        )];
        let d = decide(&obs, &policy(), t(0));
        assert_eq!(reason_of(&d), "CooldownActive");
        assert!(
            d.message()
                .contains("no failover before 2025-01-01T00:00:01Z"),
            "{}",
            d.message()
        );
        assert!(matches!(
            decide(&obs, &policy(), t(1)),
            Decision::Failover(_)
        ));
    }

    #[test]
    fn the_cooldown_also_runs_from_a_writer_change_seen_only_in_aws() {
        let mut obs = writer_lost(EU);
        obs.writer_changed_at = Some(t(-100));
        assert_eq!(reason_of(&decide(&obs, &policy(), t(0))), "CooldownActive");
        assert_eq!(promoter(&obs, &policy(), t(499)), None);
        assert!(matches!(
            promoter(&obs, &policy(), t(500)),
            Some(Decision::Failover(_))
        ));
    }

    #[test]
    fn abandoned_and_superseded_attempts_do_not_start_a_cooldown() {
        let mut obs = writer_lost(EU);
        let mut abandoned = attempt(EU, FailoverKind::Failover, US, EU, -50, Some(-40));
        abandoned.result = Some(FailoverResult::Abandoned);
        let mut superseded = attempt(AP, FailoverKind::Failover, US, AP, -50, Some(-40));
        superseded.result = Some(FailoverResult::Superseded);
        obs.attempts = vec![abandoned, superseded];
        assert!(matches!(
            decide(&obs, &policy(), t(0)),
            Decision::Failover(_)
        ));
    }

    #[test]
    fn a_recovered_old_primary_is_not_failed_back_to() {
        // eu-west-1 was promoted; us-east-1 is back and healthy, still first
        // in the unchanged failover.order.
        let mut obs = fleet(US);
        obs.global.as_mut().unwrap().writer = Some(EU.into());
        obs.attempts = vec![attempt(
            EU,
            FailoverKind::Failover,
            US,
            EU,
            -5000,
            Some(-4900),
        )];
        let decisions = everyone(&obs, &policy(), t(0));
        for d in &decisions {
            assert!(matches!(d, Decision::Nothing { .. }), "{d:?}");
        }
        assert!(decisions[0].message().contains("no automatic failback"));
    }

    #[test]
    fn a_git_change_of_the_first_region_switches_over_to_it() {
        let mut p = policy();
        p.order = vec![EU.into(), US.into(), AP.into()];
        let decisions = everyone(&fleet(US), &p, t(0));
        let Decision::Switchover(s) = &decisions[1] else {
            panic!("eu-west-1 should switch over: {:?}", decisions[1]);
        };
        assert_eq!((s.from.as_str(), s.to.as_str()), (US, EU));
        assert_eq!(s.data_loss_risk, Some(Duration::ZERO));
        assert_eq!(reason_of(&decisions[0]), "AwaitingRegion");
        assert_eq!(reason_of(&decisions[2]), "AwaitingRegion");
    }

    #[test]
    fn a_switchover_ignores_replication_lag_because_it_waits_for_the_target() {
        let mut p = policy();
        p.order = vec![EU.into(), US.into(), AP.into()];
        let mut obs = fleet(EU);
        set_lag(&mut obs, EU, Some((120.0, -1)));
        assert!(matches!(decide(&obs, &p, t(0)), Decision::Switchover(_)));
    }

    #[test]
    fn a_switchover_waits_for_a_healthy_target() {
        let mut p = policy();
        p.order = vec![EU.into(), US.into(), AP.into()];
        let mut obs = fleet(EU);
        set_health(&mut obs, EU, unhealthy(-5));
        let d = decide(&obs, &p, t(0));
        assert_eq!(reason_of(&d), "TargetNotHealthy");
    }

    #[test]
    fn a_switchover_respects_the_cooldown() {
        let mut p = policy();
        p.order = vec![EU.into(), US.into(), AP.into()];
        let mut obs = fleet(EU);
        obs.writer_changed_at = Some(t(-60));
        assert_eq!(reason_of(&decide(&obs, &p, t(0))), "CooldownActive");
        assert!(matches!(decide(&obs, &p, t(540)), Decision::Switchover(_)));
    }

    #[test]
    fn putting_the_new_writer_first_after_a_failover_acknowledges_it_without_action() {
        let mut p = policy();
        p.order = vec![EU.into(), US.into(), AP.into()];
        let mut obs = fleet(EU);
        obs.global.as_mut().unwrap().writer = Some(EU.into());
        for d in everyone(&obs, &p, t(0)) {
            assert!(matches!(d, Decision::Nothing { .. }), "{d:?}");
        }
    }

    #[test]
    fn a_new_shopregion_with_the_writer_elsewhere_does_not_request_a_switchover() {
        let mut obs = fleet(US);
        obs.global.as_mut().unwrap().writer = Some(EU.into());
        obs.preferred_region = None;
        for d in everyone(&obs, &policy(), t(0)) {
            assert!(matches!(d, Decision::Nothing { .. }), "{d:?}");
        }
    }

    #[test]
    fn manual_mode_reports_what_it_would_do_without_acting() {
        let mut p = policy();
        p.mode = FailoverMode::Manual;
        for d in everyone(&writer_lost(EU), &p, t(0)) {
            let Decision::Manual(would) = &d else {
                panic!("Manual mode must not act: {d:?}");
            };
            assert_eq!(would.to, EU);
            assert!(
                d.message().contains("would now fail over to eu-west-1"),
                "{}",
                d.message()
            );
        }
    }

    #[test]
    fn manual_mode_still_refuses_what_an_automatic_policy_would_refuse() {
        let mut p = policy();
        p.mode = FailoverMode::Manual;
        let mut obs = writer_lost(EU);
        set_lag(&mut obs, EU, Some((90.0, -70)));
        set_lag(&mut obs, AP, Some((90.0, -70)));
        assert_eq!(reason_of(&decide(&obs, &p, t(0))), "RPOBudgetExceeded");
    }

    #[test]
    fn manual_mode_fails_over_when_a_human_names_the_target_first() {
        let mut p = policy();
        p.mode = FailoverMode::Manual;
        p.order = vec![AP.into(), US.into(), EU.into()];
        let decisions = everyone(&writer_lost(EU), &p, t(0));
        assert!(
            matches!(&decisions[2], Decision::Failover(pr) if pr.to == AP),
            "{:?}",
            decisions[2]
        );
        assert_eq!(reason_of(&decisions[1]), "AwaitingRegion");
    }

    #[test]
    fn manual_mode_switches_over_on_a_git_change() {
        let mut p = policy();
        p.mode = FailoverMode::Manual;
        p.order = vec![EU.into(), US.into(), AP.into()];
        assert!(matches!(
            decide(&fleet(EU), &p, t(0)),
            Decision::Switchover(_)
        ));
    }

    #[test]
    fn aws_carrying_out_a_failover_means_everyone_waits() {
        let mut obs = writer_lost(EU);
        obs.global.as_mut().unwrap().transition = Some(WriterTransition {
            kind: FailoverKind::Failover,
            from: Some(US.into()),
            to: Some(AP.into()),
        });
        for d in everyone(&obs, &policy(), t(0)) {
            assert_eq!(reason_of(&d), "FailoverInProgress", "{d:?}");
        }
    }

    #[test]
    fn another_regions_recorded_intent_holds_the_fleet_back() {
        let mut obs = writer_lost(EU);
        obs.attempts = vec![attempt(AP, FailoverKind::Failover, US, AP, -10, None)];
        let d = decide(&obs, &policy(), t(0));
        assert_eq!(reason_of(&d), "FailoverInProgress");
        assert!(d.message().contains("ap-northeast-1 recorded a failover"));
    }

    #[test]
    fn a_stale_intent_of_a_lost_region_does_not_block_the_fleet_forever() {
        let mut obs = writer_lost(EU);
        obs.attempts = vec![attempt(AP, FailoverKind::Failover, US, AP, -301, None)];
        assert!(matches!(
            decide(&obs, &policy(), t(0)),
            Decision::Failover(_)
        ));
    }

    #[test]
    fn own_recorded_failover_resumes_while_aws_carries_it_out() {
        let mut obs = writer_lost(EU);
        obs.attempts = vec![attempt(EU, FailoverKind::Failover, US, EU, -10, None)];
        obs.global.as_mut().unwrap().transition = Some(WriterTransition {
            kind: FailoverKind::Failover,
            from: Some(US.into()),
            to: Some(EU.into()),
        });
        assert!(matches!(decide(&obs, &policy(), t(0)), Decision::Resume(p) if p.to == EU));
    }

    #[test]
    fn own_recorded_failover_resumes_after_aws_moved_the_writer_to_finish_its_steps() {
        let mut obs = fleet(EU);
        obs.global.as_mut().unwrap().writer = Some(EU.into());
        let mut own = attempt(EU, FailoverKind::Failover, US, EU, -100, None);
        own.completed_steps = vec![FailoverStep::AuroraFailoverRequested];
        obs.attempts = vec![own];
        assert!(matches!(decide(&obs, &policy(), t(0)), Decision::Resume(p) if p.to == EU));
    }

    #[test]
    fn own_recorded_failover_is_superseded_when_aws_promotes_another_region() {
        let mut obs = writer_lost(EU);
        obs.attempts = vec![attempt(EU, FailoverKind::Failover, US, EU, -10, None)];
        obs.global.as_mut().unwrap().transition = Some(WriterTransition {
            kind: FailoverKind::Failover,
            from: Some(US.into()),
            to: Some(AP.into()),
        });
        let d = decide(&obs, &policy(), t(0));
        assert_eq!(reason_of(&d), "Superseded");
        // And after AWS finished it.
        obs.global = Some(GlobalView {
            writer: Some(AP.into()),
            transition: None,
            members: vec![US.into(), EU.into(), AP.into()],
        });
        assert_eq!(reason_of(&decide(&obs, &policy(), t(0))), "Superseded");
    }

    #[test]
    fn own_intent_never_sent_is_abandoned_when_the_writer_recovered() {
        let mut obs = fleet(EU);
        obs.attempts = vec![attempt(EU, FailoverKind::Failover, US, EU, -10, None)];
        let d = decide(&obs, &policy(), t(0));
        assert_eq!(reason_of(&d), "NoLongerNeeded");
        assert!(
            d.message().contains("writer us-east-1 is healthy"),
            "{}",
            d.message()
        );
    }

    #[test]
    fn own_intent_never_sent_resumes_when_still_wanted() {
        // Crashed between recording the intent and calling AWS.
        let mut obs = writer_lost(EU);
        obs.attempts = vec![attempt(EU, FailoverKind::Failover, US, EU, -5, None)];
        let Decision::Resume(p) = decide(&obs, &policy(), t(0)) else {
            panic!("should resume");
        };
        assert_eq!(p.data_loss_risk, Some(Duration::from_millis(200)));
    }

    #[test]
    fn own_intent_never_sent_is_held_while_the_verdicts_are_rejudged_after_a_restart() {
        let mut obs = fleet(EU);
        obs.attempts = vec![attempt(EU, FailoverKind::Failover, US, EU, -5, None)];
        set_health(&mut obs, US, Health::unknown());
        let d = decide(&obs, &policy(), t(0));
        assert_eq!(reason_of(&d), "WriterHealthUnknown", "{d:?}");
        assert!(d.message().contains("recorded at"), "{}", d.message());
        // Unhealthy again, not yet for unhealthyAfter: still held.
        set_health(&mut obs, US, unhealthy(-10));
        assert_eq!(reason_of(&decide(&obs, &policy(), t(0))), "WriterUnhealthy");
        // Declared lost again: carried out.
        set_health(&mut obs, US, unhealthy(-30));
        assert!(matches!(decide(&obs, &policy(), t(0)), Decision::Resume(p) if p.to == EU));
    }

    #[test]
    fn the_next_change_is_when_the_writer_will_be_declared_lost() {
        let mut obs = fleet(EU);
        assert_eq!(next_change(&obs, &policy(), t(0)), None);
        set_health(&mut obs, US, unhealthy(-10));
        assert_eq!(next_change(&obs, &policy(), t(0)), Some(t(20)));
    }

    #[test]
    fn once_the_writer_is_lost_the_next_change_is_the_next_turn() {
        let obs = writer_lost(AP);
        // Lost at t(-15): turns end at t(15), t(45), …
        assert_eq!(next_change(&obs, &policy(), t(0)), Some(t(15)));
        assert_eq!(next_change(&obs, &policy(), t(15)), Some(t(45)));
    }

    #[test]
    fn the_end_of_a_cooldown_and_an_intent_timeout_are_changes_too() {
        let mut obs = fleet(EU);
        obs.writer_changed_at = Some(t(-100));
        assert_eq!(next_change(&obs, &policy(), t(0)), Some(t(500)));
        obs.writer_changed_at = None;
        obs.attempts = vec![attempt(AP, FailoverKind::Failover, US, AP, -60, None)];
        assert_eq!(next_change(&obs, &policy(), t(0)), Some(t(240)));
    }

    #[test]
    fn own_request_sent_to_aws_is_not_abandoned_while_aws_catches_up_but_is_after_the_timeout() {
        let mut obs = fleet(EU);
        let mut own = attempt(EU, FailoverKind::Switchover, US, EU, -10, None);
        own.completed_steps = vec![FailoverStep::AuroraSwitchoverRequested];
        obs.attempts = vec![own];
        assert!(matches!(decide(&obs, &policy(), t(0)), Decision::Resume(_)));
        assert_eq!(reason_of(&decide(&obs, &policy(), t(300))), "Stale");
    }

    #[test]
    fn racing_intents_resolve_to_the_region_whose_turn_it_is() {
        let mut obs = writer_lost(EU);
        obs.attempts = vec![
            attempt(EU, FailoverKind::Failover, US, EU, -5, None),
            attempt(AP, FailoverKind::Failover, US, AP, -5, None),
        ];
        let decisions = everyone(&obs, &policy(), t(0));
        assert!(
            matches!(&decisions[1], Decision::Resume(p) if p.to == EU),
            "{:?}",
            decisions[1]
        );
        assert_eq!(reason_of(&decisions[2]), "NoLongerNeeded");
        assert_eq!(reason_of(&decisions[0]), "FailoverInProgress");
    }

    #[test]
    fn own_unsent_intent_gives_way_to_another_regions_request_already_sent_to_aws() {
        let mut obs = writer_lost(EU);
        let mut sent = attempt(AP, FailoverKind::Failover, US, AP, -5, None);
        sent.completed_steps = vec![FailoverStep::AuroraFailoverRequested];
        obs.attempts = vec![attempt(EU, FailoverKind::Failover, US, EU, -5, None), sent];
        let decisions = everyone(&obs, &policy(), t(0));
        assert_eq!(
            reason_of(&decisions[1]),
            "NoLongerNeeded",
            "{:?}",
            decisions[1]
        );
        assert!(
            decisions[1]
                .message()
                .contains("ap-northeast-1 recorded a failover")
        );
        assert!(matches!(&decisions[2], Decision::Resume(p) if p.to == AP));
    }

    #[test]
    fn disagreeing_policies_refuse_a_failover_and_hold_a_switchover() {
        let mut obs = writer_lost(EU);
        obs.disagreements =
            vec!["acme-ap-northeast-1 (ap-northeast-1) differs in failover.order".into()];
        let d = decide(&obs, &policy(), t(0));
        assert!(
            matches!(
                d,
                Decision::Refuse {
                    reason: RefuseReason::PoliciesDisagree,
                    ..
                }
            ),
            "{d:?}"
        );
        let mut healthy_fleet = fleet(EU);
        healthy_fleet.disagreements = obs.disagreements.clone();
        let mut p = policy();
        p.order = vec![EU.into(), US.into(), AP.into()];
        let d = decide(&healthy_fleet, &p, t(0));
        assert!(
            matches!(
                d,
                Decision::Wait {
                    reason: WaitReason::PoliciesDisagree,
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn survivors_absorb_a_region_lost_for_unhealthy_after_and_stop_when_it_is_healthy() {
        let mut obs = fleet(EU);
        set_health(&mut obs, AP, unhealthy(-29));
        assert!(!absorbing(&obs, &policy(), t(0)), "not lost yet");
        assert!(absorbing(&obs, &policy(), t(1)));
        let mut lost = obs.clone();
        lost.local = AP.into();
        assert!(
            !absorbing(&lost, &policy(), t(1)),
            "the lost region absorbs nothing"
        );
        set_health(&mut obs, AP, healthy(0));
        assert!(!absorbing(&obs, &policy(), t(1)));
    }

    #[test]
    fn a_lost_writer_is_absorbed_only_once_a_promotion_replaces_it() {
        let mut obs = fleet(EU);
        set_health(&mut obs, US, unhealthy(-45));
        assert!(
            !absorbing(&obs, &policy(), t(0)),
            "no writer anywhere: no orders to take in the survivors"
        );
        obs.attempts.push(Attempt {
            region: EU.into(),
            kind: FailoverKind::Failover,
            from: US.into(),
            to: EU.into(),
            started_at: t(-1),
            completed_at: None,
            result: None,
            completed_steps: Vec::new(),
        });
        assert!(absorbing(&obs, &policy(), t(0)));
    }

    #[test]
    fn a_member_that_never_served_is_not_absorbed_when_it_goes_unknown() {
        let mut obs = fleet(US);
        for r in obs.regions.iter_mut().filter(|r| r.region == EU) {
            r.health = Health {
                verdict: HealthVerdict::Unknown,
                was_healthy: false,
                ..r.health.clone()
            };
        }
        obs.global = Some(GlobalView {
            writer: Some(US.into()),
            transition: None,
            members: vec![US.into(), EU.into()],
        });
        assert!(
            !absorbing(&obs, &policy(), t(0)),
            "eu-west-1 just joined and never served: nothing to absorb"
        );
        for r in obs.regions.iter_mut().filter(|r| r.region == EU) {
            r.health.was_healthy = true;
        }
        assert!(
            absorbing(&obs, &policy(), t(0)),
            "a member that served and is lost is absorbed"
        );
    }

    #[test]
    fn regions_that_have_not_joined_yet_are_not_absorbed_while_the_fleet_is_built() {
        let mut obs = fleet(US);
        for r in obs.regions.iter_mut().filter(|r| r.region != US) {
            r.health = Health {
                verdict: HealthVerdict::Unknown,
                ..r.health.clone()
            };
        }
        obs.global = Some(GlobalView {
            writer: None,
            transition: None,
            members: Vec::new(),
        });
        assert!(!absorbing(&obs, &policy(), t(0)), "no global cluster yet");
        obs.global = Some(GlobalView {
            writer: Some(US.into()),
            transition: None,
            members: vec![US.into()],
        });
        assert!(
            !absorbing(&obs, &policy(), t(0)),
            "only the first region joined"
        );
        obs.global.as_mut().unwrap().members.push(EU.into());
        assert!(
            absorbing(&obs, &policy(), t(0)),
            "a member gone unknown counts"
        );
        obs.global = None;
        assert!(
            absorbing(&obs, &policy(), t(0)),
            "AWS unreadable: membership unknown, spare capacity wins"
        );
    }

    #[test]
    fn a_secondary_lost_is_absorbed_too_and_long_unknown_counts_as_lost() {
        let mut obs = fleet(US);
        set_health(&mut obs, AP, unhealthy(-100));
        assert_eq!(lost_regions(&obs, &policy(), t(0)), vec![AP]);
        assert!(absorbing(&obs, &policy(), t(0)));
        // A region that served, gone silent for long.
        let mut unknown = Health::unknown();
        unknown.since = Some(t(-100));
        unknown.was_healthy = true;
        set_health(&mut obs, AP, unknown);
        assert!(absorbing(&obs, &policy(), t(0)));
        // Never judged: the operator just started, nothing is known lost.
        set_health(&mut obs, AP, Health::unknown());
        assert!(!absorbing(&obs, &policy(), t(0)));
    }

    #[test]
    fn durations_in_messages_read_like_the_spec() {
        assert_eq!(fmt_duration(Duration::from_secs(30)), "30s");
        assert_eq!(fmt_duration(Duration::from_secs(600)), "10m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(200)), "0.2s");
    }
}
