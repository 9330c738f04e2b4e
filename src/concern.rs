//! The one shape every concern of a ShopRegion has — workload, Aurora,
//! ElastiCache, failover — and the pure assembly of their reports into the
//! one status write of a reconcile.
//!
//! A concern is built for one reconcile with what it needs (the spec, its
//! ports, the status reported last time, what earlier concerns found), then
//! run by [`run`]: *observe* (reads into plain structs) → *plan* (pure) →
//! *checkpoint* (a record the pipeline stores before the concern's first
//! mutating call, so that a crash resumes it) → *act* (thin, idempotent) →
//! *report* (its conditions, its status block, its Events, when to look
//! again). The controller's pipeline runs the concerns in order and hands
//! [`assemble`] their reports.
//!
//! This module sits below every concern: it knows the API types and
//! nothing of the cloud, the workload or the failover protocol.

use std::future::Future;
use std::time::Duration;

use crate::api::conditions::{Desired, Status, types};
use crate::api::{
    CacheStatus, DatabaseStatus, FailoverRecord, FailoverStatus, OrdersStatus, RegionHealth,
    RegionRole, ShopRegionStatus, SpecError,
};

/// Something a concern found worth a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub reason: String,
    pub message: String,
    pub warning: bool,
}

impl Note {
    pub(crate) fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            warning: false,
        }
    }

    pub(crate) fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            warning: true,
        }
    }
}

/// What the concerns run so far found, for the ones after them: the
/// failover concern tells the writer AWS shows and whether survivors
/// absorb a lost region; the cloud concerns tell their status (role,
/// endpoints); the workload concern tells the role its topology was
/// applied with.
#[derive(Clone, Debug, Default)]
pub struct Upstream {
    pub aws_writer: Option<String>,
    pub absorbing: bool,
    pub database: Option<DatabaseStatus>,
    pub cache: Option<CacheStatus>,
    pub applied: Option<AppliedRole>,
}

/// The role and writer region the workload's topology was applied with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedRole {
    pub role: RegionRole,
    pub writer_region: Option<String>,
}

/// A record a concern needs stored before it acts: the failover concern's
/// promotion intent. The pipeline writes it to `status.lastFailover` and
/// posts its Event before calling the concern's `act`.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub record: FailoverRecord,
    pub note: Note,
}

/// When a concern's Events go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// As soon as the concern acted: they tell calls already made, which
    /// must not be lost if the status write fails.
    AsActed,
    /// Once the status is stored: they tell the record in it.
    OnceStored,
}

/// When a concern wants to look again, in cloud time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Again {
    /// Poll AWS for the progress of an operation.
    Poll(Duration),
    /// An instant the decision may change by itself (a writer declared
    /// lost, a turn passing): must not be missed.
    Wake(Duration),
}

/// A concern's part of `status`.
#[derive(Clone, Debug, PartialEq)]
pub enum StatusPart {
    Database(DatabaseStatus),
    Cache(CacheStatus),
    Workload {
        orders: OrdersStatus,
        role: RegionRole,
        writer_region: Option<String>,
    },
    Failover {
        last_failover: Option<FailoverRecord>,
        health: Vec<RegionHealth>,
        failover: FailoverStatus,
    },
}

/// What one concern reports after one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The condition the concern owns.
    pub condition: Desired,
    /// Whether (and as what) the concern counts towards `Ready`; `None`
    /// when it describes something else (the failover concern describes
    /// the fleet's readiness to survive a loss, not this region's).
    pub readiness: Option<Desired>,
    pub status: StatusPart,
    pub notes: Vec<Note>,
    pub publish: Publish,
    pub again: Option<Again>,
    /// The spec cannot be satisfied: the ShopRegion is `Stalled` until it
    /// changes.
    pub terminal: Option<SpecError>,
}

/// One concern of a ShopRegion, built for one reconcile. Only Kubernetes
/// API errors fail a reconcile: a cloud that cannot be read is reported,
/// not raised.
pub trait Concern: Sync {
    type Observed: Send;
    type Plan: Send;
    type Acted: Send;

    /// The reads, into plain structs.
    fn observe(&self) -> impl Future<Output = Result<Self::Observed, kube::Error>> + Send;
    /// Pure: what to do, from the observation and the concern's inputs.
    fn plan(&self, observed: &Self::Observed) -> Self::Plan;
    /// A record to store before acting; none by default.
    fn checkpoint(&self, _plan: &Self::Plan) -> Option<Checkpoint> {
        None
    }
    /// The calls the plan asks for; idempotent, so that a retry after a
    /// crash or a conflict does no harm.
    fn act(
        &self,
        observed: Self::Observed,
        plan: Self::Plan,
    ) -> impl Future<Output = Result<Self::Acted, kube::Error>> + Send;
    /// What later concerns need of this one.
    fn hand_on(&self, _acted: &Self::Acted, _upstream: &mut Upstream) {}
    /// The concern's report, once every concern it depends on has acted.
    fn report(&self, acted: &Self::Acted, upstream: &Upstream) -> Report;
    /// Once the status with the report is stored; nothing by default.
    fn once_stored(&self, _acted: &Self::Acted, _upstream: &Upstream) {}
}

/// Runs a concern up to its act: observe → plan → (checkpoint stored by
/// `store`) → act. The report is taken by the caller, once the concerns it
/// depends on have acted too.
pub async fn run<C, S, F>(concern: &C, store: S) -> Result<C::Acted, kube::Error>
where
    C: Concern,
    S: FnOnce(Checkpoint) -> F,
    F: Future<Output = Result<(), kube::Error>>,
{
    let observed = concern.observe().await?;
    let plan = concern.plan(&observed);
    if let Some(checkpoint) = concern.checkpoint(&plan) {
        store(checkpoint).await?;
    }
    concern.act(observed, plan).await
}

/// What one reconcile writes and when it looks again.
#[derive(Clone, Debug, PartialEq)]
pub struct Assembled {
    /// Every condition decided now: the concerns' and the summary's.
    pub decided: Vec<Desired>,
    /// The status to write (conditions are merged by the writer).
    pub status: ShopRegionStatus,
    /// `None`: wait for a change of the spec (it cannot be satisfied).
    pub again: Option<Vec<Again>>,
}

/// The status, the conditions and the requeue of one reconcile, from the
/// status stored and the concerns' reports. Pure.
pub fn assemble(stored: Option<&ShopRegionStatus>, reports: &[Report]) -> Assembled {
    let mut status = stored.cloned().unwrap_or_default();
    for report in reports {
        apply_part(&mut status, &report.status);
    }
    let terminals: Vec<SpecError> = reports.iter().filter_map(|r| r.terminal.clone()).collect();
    let mut decided: Vec<Desired> = reports.iter().map(|r| r.condition.clone()).collect();
    if !terminals.is_empty() {
        decided.extend(summarize(&[], &terminals));
        return Assembled {
            decided,
            status,
            again: None,
        };
    }
    let readiness: Vec<Desired> = reports.iter().filter_map(|r| r.readiness.clone()).collect();
    decided.extend(summarize(&readiness, &[]));
    Assembled {
        decided,
        status,
        again: Some(reports.iter().filter_map(|r| r.again).collect()),
    }
}

fn apply_part(status: &mut ShopRegionStatus, part: &StatusPart) {
    match part.clone() {
        StatusPart::Database(database) => status.database = Some(database),
        StatusPart::Cache(cache) => status.cache = Some(cache),
        StatusPart::Workload {
            orders,
            role,
            writer_region,
        } => {
            status.orders = Some(orders);
            status.role = Some(role);
            status.writer_region = writer_region;
        }
        StatusPart::Failover {
            last_failover,
            health,
            failover,
        } => {
            status.last_failover = last_failover;
            status.health = health;
            status.failover = Some(failover);
        }
    }
}

/// The summary conditions (`Ready`, `Reconciling`, `Stalled`) that kstatus
/// reads, from the concern conditions or the spec errors.
pub fn summarize(concerns: &[Desired], spec_errors: &[SpecError]) -> Vec<Desired> {
    if let Some(first) = spec_errors.first() {
        let message = spec_errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return vec![
            Desired::new(types::READY, Status::False, first.reason, message.clone()),
            Desired::new(
                types::RECONCILING,
                Status::False,
                "Stalled",
                "fix the spec to continue",
            ),
            Desired::new(types::STALLED, Status::True, first.reason, message),
        ];
    }
    match concerns.iter().find(|c| c.status != Status::True) {
        None => vec![
            Desired::new(
                types::READY,
                Status::True,
                "Ready",
                "every concern is ready",
            ),
            Desired::new(types::RECONCILING, Status::False, "Ready", "nothing to do"),
            Desired::new(types::STALLED, Status::False, "Ready", "not stalled"),
        ],
        Some(waiting) => {
            let message = format!("{}: {}", waiting.type_, waiting.message);
            vec![
                Desired::new(
                    types::READY,
                    Status::False,
                    waiting.reason.clone(),
                    message.clone(),
                ),
                Desired::new(
                    types::RECONCILING,
                    Status::True,
                    waiting.reason.clone(),
                    message,
                ),
                Desired::new(types::STALLED, Status::False, "Progressing", "not stalled"),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate::reason;

    fn ready(type_: &'static str) -> Desired {
        Desired::new(type_, Status::True, "Ready", "ok")
    }

    #[test]
    fn a_spec_error_stalls_and_names_every_field() {
        let errors = vec![
            SpecError {
                reason: reason::INVALID_IMAGE,
                field: "spec.orders.image".into(),
                message: "bad".into(),
            },
            SpecError {
                reason: reason::INVALID_CAPACITY,
                field: "spec.orders.maxReplicas".into(),
                message: "too low".into(),
            },
        ];
        let summary = summarize(&[ready(types::WORKLOAD_READY)], &errors);
        let stalled = summary.iter().find(|c| c.type_ == types::STALLED).unwrap();
        assert_eq!(stalled.status, Status::True);
        assert_eq!(stalled.reason, reason::INVALID_IMAGE);
        assert!(stalled.message.contains("spec.orders.image"));
        assert!(stalled.message.contains("spec.orders.maxReplicas"));
        let ready_cond = summary.iter().find(|c| c.type_ == types::READY).unwrap();
        assert_eq!(ready_cond.status, Status::False);
    }

    #[test]
    fn ready_only_when_every_concern_is_ready() {
        let all = summarize(
            &[ready(types::WORKLOAD_READY), ready(types::DATABASE_READY)],
            &[],
        );
        assert_eq!(all[0].status, Status::True);
        let waiting = Desired::new(
            types::DATABASE_READY,
            Status::False,
            "Creating",
            "cluster creating",
        );
        let some = summarize(&[ready(types::WORKLOAD_READY), waiting], &[]);
        let r = some.iter().find(|c| c.type_ == types::READY).unwrap();
        assert_eq!((r.status, r.reason.as_str()), (Status::False, "Creating"));
        let rec = some.iter().find(|c| c.type_ == types::RECONCILING).unwrap();
        assert_eq!(rec.status, Status::True);
    }

    fn report(condition: Desired, part: StatusPart) -> Report {
        Report {
            readiness: Some(condition.clone()),
            condition,
            status: part,
            notes: Vec::new(),
            publish: Publish::AsActed,
            again: Some(Again::Poll(Duration::from_secs(120))),
            terminal: None,
        }
    }

    #[test]
    fn a_concern_the_spec_cannot_satisfy_stalls_the_region_and_stops_the_requeue() {
        let database = report(
            ready(types::DATABASE_READY),
            StatusPart::Database(DatabaseStatus::default()),
        );
        let mut cache = report(
            Desired::new(types::CACHE_READY, Status::False, "NodeTypeMismatch", "no"),
            StatusPart::Cache(CacheStatus::default()),
        );
        cache.terminal = Some(SpecError {
            reason: "NodeTypeMismatch",
            field: "spec.cache.nodeType".into(),
            message: "no".into(),
        });
        let assembled = assemble(None, &[database, cache]);
        assert_eq!(assembled.again, None);
        let stalled = assembled
            .decided
            .iter()
            .find(|c| c.type_ == types::STALLED)
            .unwrap();
        assert_eq!(
            (stalled.status, stalled.reason.as_str()),
            (Status::True, "NodeTypeMismatch")
        );
        assert!(assembled.status.database.is_some() && assembled.status.cache.is_some());
        assert_eq!(
            assembled.status.orders, None,
            "the workload was not reported"
        );
    }

    #[test]
    fn a_concern_outside_readiness_does_not_hold_ready_back() {
        let workload = report(
            ready(types::WORKLOAD_READY),
            StatusPart::Workload {
                orders: OrdersStatus::default(),
                role: RegionRole::Primary,
                writer_region: Some("us-east-1".into()),
            },
        );
        let mut failover = report(
            Desired::new(
                types::FAILOVER_READY,
                Status::False,
                "PeerLost",
                "a peer is lost",
            ),
            StatusPart::Failover {
                last_failover: None,
                health: Vec::new(),
                failover: FailoverStatus::default(),
            },
        );
        failover.readiness = None;
        failover.again = Some(Again::Wake(Duration::from_secs(5)));
        let assembled = assemble(None, &[workload, failover]);
        let ready = assembled
            .decided
            .iter()
            .find(|c| c.type_ == types::READY)
            .unwrap();
        assert_eq!(ready.status, Status::True);
        assert!(
            assembled
                .decided
                .iter()
                .any(|c| c.type_ == types::FAILOVER_READY)
        );
        assert_eq!(
            assembled.again,
            Some(vec![
                Again::Poll(Duration::from_secs(120)),
                Again::Wake(Duration::from_secs(5))
            ])
        );
    }
}
