//! The failover concern ([`Failover`]) as the reconcile pipeline runs it,
//! once per reconcile of a ShopRegion:
//!
//! - *observe*: the freshest promotion record (the object's or this
//!   process's), AWS's global cluster through the local endpoint (or
//!   another region's when the local one is unreachable), the sampler's
//!   verdicts and lags;
//! - *plan* ([`plan`], pure): the fleet observation and the decision, the
//!   `FailoverReady` condition, the record, the refusal, `status.health` and
//!   `status.failover`. A new promotion is a *checkpoint*: the pipeline
//!   writes it to `status.lastFailover` **before** *act* makes the first
//!   cloud call;
//! - *act* ([`execute`]): carries a recorded promotion as far as AWS allows
//!   now ([`super::execute::carry_out`]), or, outside a promotion, moves the
//!   cache primary to follow the Aurora writer;
//! - *report*: completes a promotion once the workload concern applied the
//!   new role ([`finish`]); once stored, the record is remembered and the
//!   outcomes counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::jiff::Timestamp;

use super::decide::{AbandonReason, Decision, Promotion, absorbing, decide, next_change};
use super::execute::{self, Carry};
use super::observe::{
    GlobalView, LagSample, ObserveInput, Policy, next_failover_status, next_refusal, observe,
};
use super::ready::{self, failover_ready, finished_event, refused_event, started_event};
use super::sampler::{Sampler, View};
use super::steps::{self, CacheView};
use crate::api::conditions::{Desired, Status, types};
use crate::api::{
    FailoverKind, FailoverRecord, FailoverResult, FailoverStatus, FailoverStep, LagReading,
    RegionHealth, RegionRole, ShopRegion,
};
use crate::clock::elapsed;
use crate::cloud::Cloud;
use crate::cloud::view::SharedView;
use crate::concern::{
    Again, AppliedRole, Checkpoint, Concern, Note, Publish, Report, StatusPart, Upstream,
};
use crate::telemetry::{Metrics, ShopLabels, ShopRegionLabels};

/// The failover state of one controller process.
pub struct Runtime {
    pub sampler: Arc<Sampler>,
    metrics: Arc<Metrics>,
    /// The last record this process wrote, by object: the object a
    /// reconcile is handed can predate the process's own last write (the
    /// watch event not yet in), and a record closed twice would report its
    /// outcome twice.
    written: Mutex<HashMap<String, FailoverRecord>>,
    /// The refusal reported per object, so that `FailoverRefused` is posted
    /// and counted when a refusal begins, not on every reconcile.
    refusals: Mutex<HashMap<String, RefusalKey>>,
}

/// What makes two refusals the same one: their reason and lost writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalKey {
    pub reason: String,
    pub lost_writer: Option<String>,
}

impl Runtime {
    pub fn new(
        view: Arc<SharedView>,
        metrics: Arc<Metrics>,
        trigger: UnboundedSender<String>,
    ) -> Self {
        Self {
            sampler: Sampler::new(view, metrics.clone(), trigger),
            metrics,
            written: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
        }
    }

    /// The controller wrote `record` to the object's status.
    pub fn written(&self, key: &str, record: &FailoverRecord) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), record.clone());
    }

    /// A deleted ShopRegion: forget it.
    pub fn forget(&self, key: &str, region: &ShopRegion) {
        self.sampler.deregister(key, region);
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Whether `refusal` (reason and lost writer) is news for the object;
    /// `None` clears the memory (no refusal now).
    fn refusal_began(&self, key: &str, refusal: Option<RefusalKey>) -> bool {
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        match refusal {
            Some(refusal) => refusals.insert(key.to_string(), refusal.clone()) != Some(refusal),
            None => {
                refusals.remove(key);
                false
            }
        }
    }

    /// Counts the records this reconcile closed; call once they are stored.
    pub fn record_metrics(&self, shop: &ShopLabels, outcome: &FailoverOutcome) {
        for (kind, result, duration) in &outcome.finished {
            self.metrics
                .record_failover(shop, *kind, *result, *duration);
        }
        if outcome.refused {
            self.metrics.record_refused_failover(shop);
        }
    }
}

/// What the failover concern decided and did in one reconcile.
#[derive(Clone, Debug)]
pub struct FailoverOutcome {
    pub decision: Decision,
    /// `FailoverReady`.
    pub condition: Desired,
    /// `status.lastFailover` as it should be written.
    pub record: Option<FailoverRecord>,
    /// A new promotion: stored in the status, its Event posted, before
    /// [`execute`] makes the first cloud call.
    pub intent: Option<Checkpoint>,
    /// `status.health`.
    pub health: Vec<RegionHealth>,
    /// `status.failover`.
    pub failover_status: FailoverStatus,
    /// Hold the capacity model's absorbing minimum (another region is lost).
    pub absorbing: bool,
    /// The writer AWS shows now, `None` when the global cluster could not be
    /// read.
    pub aws_writer: Option<String>,
    /// Events to post once the status is written.
    pub notes: Vec<Note>,
    /// Records closed by this reconcile, for the metrics.
    pub finished: Vec<(FailoverKind, FailoverResult, Option<Duration>)>,
    /// The refusal decided now, as the process remembers it.
    pub refusal: Option<RefusalKey>,
    /// The refusal was already stored (and announced) before.
    pub announced: bool,
    /// A refusal began (counted once).
    pub refused: bool,
    /// Cloud time until the decision may change by itself, or until AWS
    /// should be polled for a promotion under way.
    pub wake: Option<Duration>,
    local: String,
    awaiting_topology: bool,
}

impl FailoverOutcome {
    /// `FailoverReady` for `summarize()`, when it should count towards
    /// `Ready`: only while this region carries out a promotion. Otherwise
    /// `FailoverReady` describes the fleet (could it survive losing its
    /// writer now?), not whether this region reached its desired state, and
    /// a lost peer or `Manual` mode must not make this region look unready.
    pub fn summary_concern(&self) -> Option<Desired> {
        let record = self.record.as_ref()?;
        (record.result.is_none() && record.to == self.local).then(|| {
            Desired::new(
                types::FAILOVER_READY,
                Status::False,
                ready::reason::FAILOVER_IN_PROGRESS,
                format!(
                    "promoting {} in place of {} ({}); done: {}",
                    record.to,
                    record.from,
                    record.kind.word(),
                    if record.completed_steps.is_empty() {
                        "intent recorded".to_string()
                    } else {
                        FailoverStep::list(&record.completed_steps)
                    }
                ),
            )
        })
    }
}

/// The newer of the record in the object and the one this process last
/// wrote for it: a later start wins, then a closed record over an open one,
/// then more completed steps.
pub fn freshest(
    stored: Option<&FailoverRecord>,
    written: Option<&FailoverRecord>,
) -> Option<FailoverRecord> {
    let rank = |r: &FailoverRecord| (r.started_at, r.result.is_some(), r.completed_steps.len());
    match (stored, written) {
        (Some(s), Some(w)) if rank(w) > rank(s) => Some(w.clone()),
        (Some(s), _) => Some(s.clone()),
        (None, w) => w.cloned(),
    }
}

/// A lag reading worth a status write: the first, one that moved by a
/// second or a tenth of the budget, or any when the status is written
/// anyway (a verdict changed, which is when the writer starts failing and
/// its last lag matters). A steady lag costs no write.
pub fn lag_worth_writing(
    stored: Option<&LagReading>,
    fresh: Option<LagSample>,
    budget: Duration,
    writing_anyway: bool,
) -> Option<LagSample> {
    let fresh = fresh?;
    let Some(stored) = stored else {
        return Some(fresh);
    };
    let moved = (stored.seconds - fresh.lag.as_secs_f64()).abs();
    let threshold = (budget.as_secs_f64() / 10.0).max(1.0);
    (writing_anyway || moved >= threshold).then_some(fresh)
}

/// `FailoverReady` as stored, while this process has not yet taken its
/// first round of samples and decides nothing: a restarted operator
/// publishes what it saw, not what it has not looked at yet (a lag not yet
/// read would turn `CandidateReady` into `ReplicationLagUnknown` and back,
/// two writes and two Events for nothing). A decision to act is never held.
pub fn held_while_warming(
    fresh: Desired,
    decision: &Decision,
    warm: bool,
    stored: Option<&crate::api::ShopRegionStatus>,
) -> Desired {
    let acting = matches!(
        decision,
        Decision::Failover(_) | Decision::Switchover(_) | Decision::Resume(_)
    );
    if warm || acting {
        return fresh;
    }
    stored
        .and_then(|s| crate::api::conditions::find(&s.conditions, types::FAILOVER_READY))
        .map(|c| {
            Desired::new(
                types::FAILOVER_READY,
                Status::parse(&c.status),
                c.reason.clone(),
                c.message.clone(),
            )
        })
        .unwrap_or(fresh)
}

/// The failover concern of one ShopRegion in one reconcile.
pub struct Failover<'a> {
    pub runtime: &'a Runtime,
    pub cloud: &'a dyn Cloud,
    /// Shared with the controller's cache, as the sampler keeps it.
    pub region: &'a Arc<ShopRegion>,
    /// `namespace/name`, the key of the process's memory.
    pub key: &'a str,
    /// The ShopRegions of the shop the controller's cache holds.
    pub peers: &'a [Arc<ShopRegion>],
    pub now: Timestamp,
}

/// What the failover concern reads: the promotion record (the freshest of
/// the object's and this process's), AWS's global cluster through this
/// region's endpoint, and the sampler's verdicts and lags.
pub struct Observed {
    record: Option<FailoverRecord>,
    global: Option<GlobalView>,
    sampled: View,
    /// The Global Datastore, read only when AWS shows this region as the
    /// Aurora writer and nothing of this region's is under way: whether the
    /// cache primary must follow it here.
    cache: Option<CacheView>,
}

impl Failover<'_> {
    /// The outcome as reported: completed once the workload applied the
    /// new role.
    fn finished(&self, outcome: &FailoverOutcome, upstream: &Upstream) -> FailoverOutcome {
        let mut outcome = outcome.clone();
        finish(&mut outcome, upstream.applied.as_ref(), self.now);
        outcome
    }
}

impl Concern for Failover<'_> {
    type Observed = Observed;
    type Plan = FailoverOutcome;
    type Acted = FailoverOutcome;

    async fn observe(&self) -> Result<Observed, kube::Error> {
        let spec = &self.region.spec;
        self.runtime.sampler.register(self.key, self.region);
        let written = self
            .runtime
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(self.key)
            .cloned();
        let stored = self
            .region
            .status
            .as_ref()
            .and_then(|s| s.last_failover.as_ref());
        let global = match execute::read_global(self.cloud, spec).await {
            Ok(Some(global)) => Some(GlobalView::from_global_cluster(&global)),
            Ok(None) => Some(GlobalView {
                writer: None,
                transition: None,
                members: Vec::new(),
            }),
            Err(_) => None,
        };
        let record = freshest(stored, written.as_ref());
        let own_open = record
            .as_ref()
            .is_some_and(|r| r.result.is_none() && r.to == spec.region);
        let writer_here = global.as_ref().is_some_and(|g| {
            g.transition.is_none() && g.writer.as_deref() == Some(spec.region.as_str())
        });
        let cache = if writer_here && !own_open {
            let port = self.cloud.elasticache(&spec.region);
            Some(execute::read_cache(port.as_ref(), spec, &spec.region).await)
        } else {
            None
        };
        Ok(Observed {
            record,
            cache,
            global,
            sampled: self
                .runtime
                .sampler
                .view(&spec.shop, &spec.failover.order, self.now),
        })
    }

    fn plan(&self, observed: &Observed) -> FailoverOutcome {
        plan(self.region, self.peers, observed, self.now)
    }

    fn checkpoint(&self, plan: &FailoverOutcome) -> Option<Checkpoint> {
        plan.intent.clone()
    }

    async fn act(
        &self,
        _observed: Observed,
        mut outcome: FailoverOutcome,
    ) -> Result<FailoverOutcome, kube::Error> {
        if let Some(intent) = outcome.intent.take() {
            // Stored by the pipeline before this call.
            self.runtime.written(self.key, &intent.record);
            self.runtime.metrics.record_failover_started(
                &ShopRegionLabels::of(self.region).shop(),
                intent.record.kind,
                intent.record.detection,
            );
        }
        let refusal = outcome.refusal.clone();
        outcome.refused = self.runtime.refusal_began(self.key, refusal) && !outcome.announced;
        if outcome.refused {
            outcome.notes.extend(refused_event(&outcome.decision));
        }
        execute(&mut outcome, self.cloud, self.region, self.now).await;
        Ok(outcome)
    }

    fn hand_on(&self, outcome: &FailoverOutcome, upstream: &mut Upstream) {
        upstream.aws_writer.clone_from(&outcome.aws_writer);
        upstream.absorbing = outcome.absorbing;
    }

    fn report(&self, outcome: &FailoverOutcome, upstream: &Upstream) -> Report {
        let outcome = self.finished(outcome, upstream);
        Report {
            condition: outcome.condition.clone(),
            readiness: outcome.summary_concern(),
            status: StatusPart::Failover {
                last_failover: outcome.record.clone(),
                health: outcome.health.clone(),
                failover: outcome.failover_status.clone(),
            },
            notes: outcome.notes.clone(),
            publish: Publish::OnceStored,
            again: outcome.wake.map(Again::Wake),
            terminal: None,
        }
    }

    /// Remembers the record stored and counts the outcomes it closed.
    fn once_stored(&self, outcome: &FailoverOutcome, upstream: &Upstream) {
        let outcome = self.finished(outcome, upstream);
        if let Some(record) = &outcome.record {
            self.runtime.written(self.key, record);
        }
        let under_way = outcome
            .record
            .as_ref()
            .is_some_and(|r| r.completed_at.is_none() && r.result.is_none());
        self.runtime
            .sampler
            .follow_promotion(&self.region.spec.shop, self.key, under_way);
        self.runtime
            .record_metrics(&ShopRegionLabels::of(self.region).shop(), &outcome);
    }
}

/// Decides for `region` from what was observed. Pure: no call, no write.
pub fn plan(
    region: &ShopRegion,
    visible: &[Arc<ShopRegion>],
    observed: &Observed,
    now: Timestamp,
) -> FailoverOutcome {
    let spec = &region.spec;
    let policy = Policy::from_spec(&spec.failover);
    let previous_record = observed.record.clone();
    let mut local = region.clone();
    local
        .status
        .get_or_insert_with(Default::default)
        .last_failover = previous_record.clone();
    let sampled = &observed.sampled;
    let observation = observe(&ObserveInput {
        local: &local,
        visible,
        global: observed.global.clone(),
        health: &sampled.health,
        lag_reads: &sampled.lag,
    });
    let decision = decide(&observation, &policy, now);
    let condition = held_while_warming(
        failover_ready(&observation, &policy, &decision, now),
        &decision,
        sampled.warm,
        region.status.as_ref(),
    );

    let mut notes = Vec::new();
    let mut finished = Vec::new();
    let (record, intent) = match &decision {
        Decision::Failover(promotion) | Decision::Switchover(promotion) => {
            let intent = steps::intent(promotion, now);
            (
                Some(intent.clone()),
                Some(Checkpoint {
                    record: intent,
                    note: started_event(promotion),
                }),
            )
        }
        Decision::Abandon { reason, message } => match &previous_record {
            Some(open) => {
                let result = match reason {
                    AbandonReason::Superseded => FailoverResult::Superseded,
                    AbandonReason::NoLongerNeeded | AbandonReason::Stale => {
                        FailoverResult::Abandoned
                    }
                };
                let (closed, duration) = steps::close(open, result, now);
                let mut note = finished_event(&closed);
                note.message = format!("{}: {message}", note.message);
                notes.push(note);
                finished.push((closed.kind, result, Some(duration)));
                (Some(closed), None)
            }
            None => (None, None),
        },
        _ => match follow_writer(spec, &previous_record, observed) {
            Some(promotion) => {
                let intent = steps::intent(&promotion, now);
                (
                    Some(intent.clone()),
                    Some(Checkpoint {
                        record: intent,
                        note: started_event(&promotion),
                    }),
                )
            }
            None => (previous_record, None),
        },
    };

    let lost_writer = observation.writer();
    let refusal = match &decision {
        Decision::Refuse { reason, message } => {
            Some((reason.as_str(), lost_writer, message.as_str()))
        }
        _ => None,
    };
    let previous_refusal = region
        .status
        .as_ref()
        .and_then(|s| s.failover.as_ref())
        .and_then(|f| f.refused.as_ref());
    let kept_refusal = next_refusal(previous_refusal, refusal, now);
    // A refusal already in the status was announced by the process that
    // stored it: a restart does not post it again.
    let announced = previous_refusal.is_some_and(|p| {
        kept_refusal
            .as_ref()
            .is_some_and(|k| k.reason == p.reason && k.lost_writer == p.lost_writer)
    });

    let health: Vec<RegionHealth> = spec
        .failover
        .order
        .iter()
        .map(|r| {
            sampled
                .health
                .get(r)
                .cloned()
                .unwrap_or_else(super::health::Health::unknown)
                .to_status(r, sampled.endpoints.get(r).map(String::as_str))
        })
        .collect();
    let previous_status = region.status.as_ref();
    let previous_failover = previous_status.and_then(|s| s.failover.as_ref());
    let health_changed = previous_status.is_none_or(|s| s.health != health);
    let lag_read = lag_worth_writing(
        previous_failover.and_then(|f| f.last_known_lag.as_ref()),
        sampled.lag.get(&spec.region).copied(),
        policy.max_replication_lag,
        health_changed,
    );
    let mut failover_status = next_failover_status(
        previous_failover,
        policy.first().unwrap_or(&spec.region),
        previous_status.and_then(|s| s.writer_region.as_deref()),
        observation.writer(),
        lag_read,
        now,
    );
    failover_status.refused = kept_refusal;

    FailoverOutcome {
        absorbing: absorbing(&observation, &policy, now),
        aws_writer: observation.writer().map(str::to_string),
        wake: next_change(&observation, &policy, now).map(|at| elapsed(now, at)),
        refusal: refusal.map(|(reason, lost_writer, _)| RefusalKey {
            reason: reason.to_string(),
            lost_writer: lost_writer.map(str::to_string),
        }),
        announced,
        decision,
        condition,
        record,
        intent,
        health,
        failover_status,
        notes,
        finished,
        refused: false,
        local: spec.region.clone(),
        awaiting_topology: false,
    }
}

/// The cache primary's move to follow the Aurora writer here, when AWS
/// shows this region as the writer, the Global Datastore's primary
/// elsewhere, and nothing of this region's is under way. Pure.
fn follow_writer(
    spec: &crate::api::ShopRegionSpec,
    record: &Option<FailoverRecord>,
    observed: &Observed,
) -> Option<Promotion> {
    let own_open = record
        .as_ref()
        .is_some_and(|r| r.result.is_none() && r.to == spec.region);
    let (Some(global), Some(cache)) = (&observed.global, &observed.cache) else {
        return None;
    };
    if own_open || !steps::cache_follows_writer(&spec.region, global, cache) {
        return None;
    }
    let CacheView::Datastore { id, primary, .. } = cache else {
        return None;
    };
    let from = primary.clone()?;
    Some(Promotion {
        kind: FailoverKind::CacheFollow,
        reason: format!(
            "the Aurora writer is in {}, the primary of Global Datastore {id} in {from}: the cache follows the database",
            spec.region
        ),
        from,
        to: spec.region.clone(),
        data_loss_risk: None,
        takeover: false,
        detection: None,
    })
}

/// Carries out what [`plan`] decided, once its intent (if any) is stored.
pub async fn execute(
    outcome: &mut FailoverOutcome,
    cloud: &dyn Cloud,
    region: &ShopRegion,
    now: Timestamp,
) {
    let spec = &region.spec;
    let own_open = outcome.record.as_ref().is_some_and(|r| {
        r.result.is_none()
            && r.to == spec.region
            && (r.kind == FailoverKind::CacheFollow || outcome.decision.promotion().is_some())
    });
    if !own_open {
        return;
    }
    let Some(record) = outcome.record.as_mut() else {
        return;
    };
    let carried = execute::carry_out(cloud, spec, record).await;
    record.completed_steps = carried.completed;
    match carried.state {
        Carry::Waiting(message) => {
            tracing::info!(
                shop = %spec.shop,
                region = %spec.region,
                steps = ?record.completed_steps,
                %message,
                "promotion under way"
            );
            poll_soon(outcome);
        }
        Carry::CloudDone => {
            outcome.awaiting_topology = true;
            poll_soon(outcome);
        }
        Carry::Superseded(message) => {
            let (closed, duration) = steps::close(record, FailoverResult::Superseded, now);
            let mut note = finished_event(&closed);
            note.message = format!("{}: {message}", note.message);
            outcome.notes.push(note);
            outcome
                .finished
                .push((closed.kind, FailoverResult::Superseded, Some(duration)));
            *record = closed;
        }
    }
}

/// How often a promotion under way is looked at without news. Its RTO is
/// what the business measures, but its news comes by itself: the sampler
/// follows the shop's promotion in a listing of every round and
/// reconciles the shop's ShopRegions as soon as a role moves in AWS
/// ([`super::sampler::Sampler::follow_promotion`]). The poll only carries
/// what moves no role: AWS refusing a call, a Global Datastore busy with
/// something else.
pub const PROMOTION_POLL: Duration = Duration::from_secs(30);

fn poll_soon(outcome: &mut FailoverOutcome) {
    outcome.wake = Some(
        outcome
            .wake
            .map_or(PROMOTION_POLL, |w| w.min(PROMOTION_POLL)),
    );
}

/// Completes a promotion whose cloud side is done once the workload concern
/// applied its topology with this region as the writer (the pods read the
/// new role from the mounted topology).
pub fn finish(outcome: &mut FailoverOutcome, applied: Option<&AppliedRole>, now: Timestamp) {
    let Some(applied) = applied else {
        return;
    };
    if !outcome.awaiting_topology
        || applied.role != RegionRole::Primary
        || applied.writer_region.as_deref() != Some(outcome.local.as_str())
    {
        return;
    }
    let Some(record) = outcome.record.as_mut() else {
        return;
    };
    let mut done = record.clone();
    if !done
        .completed_steps
        .contains(&FailoverStep::TopologyUpdated)
    {
        done.completed_steps.push(FailoverStep::TopologyUpdated);
    }
    let (closed, duration) = steps::close(&done, FailoverResult::Completed, now);
    outcome.notes.push(finished_event(&closed));
    outcome
        .finished
        .push((closed.kind, FailoverResult::Completed, Some(duration)));
    *record = closed;
    outcome.awaiting_topology = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(started: &str, steps: &[FailoverStep], closed: bool) -> FailoverRecord {
        FailoverRecord {
            kind: FailoverKind::Failover,
            from: "us-east-1".into(),
            to: "eu-west-1".into(),
            reason: "lost".into(),
            started_at: started.parse().unwrap(),
            completed_at: closed.then(|| "2025-01-01T00:02:00Z".parse().unwrap()),
            result: closed.then_some(FailoverResult::Completed),
            duration_seconds: None,
            data_loss_risk_seconds: None,
            completed_steps: steps.to_vec(),
            detection: None,
        }
    }

    #[test]
    fn the_record_this_process_wrote_wins_over_an_older_copy_of_the_object() {
        let open = record("2025-01-01T00:00:00Z", &[], false);
        let sent = record(
            "2025-01-01T00:00:00Z",
            &[FailoverStep::AuroraFailoverRequested],
            false,
        );
        let done = record(
            "2025-01-01T00:00:00Z",
            &[FailoverStep::AuroraFailoverRequested],
            true,
        );
        assert_eq!(freshest(Some(&open), Some(&done)), Some(done.clone()));
        assert_eq!(freshest(Some(&open), Some(&sent)), Some(sent.clone()));
        assert_eq!(freshest(Some(&done), Some(&sent)), Some(done.clone()));
        assert_eq!(freshest(None, Some(&open)), Some(open.clone()));
        let later = record("2025-01-01T01:00:00Z", &[], false);
        assert_eq!(freshest(Some(&later), Some(&done)), Some(later));
        assert_eq!(freshest(None, None), None);
    }

    fn outcome(record: Option<FailoverRecord>) -> FailoverOutcome {
        FailoverOutcome {
            decision: Decision::Nothing {
                message: String::new(),
            },
            condition: Desired::new(types::FAILOVER_READY, Status::True, "CandidateReady", ""),
            record,
            intent: None,
            health: Vec::new(),
            failover_status: FailoverStatus::default(),
            absorbing: false,
            aws_writer: None,
            notes: Vec::new(),
            finished: Vec::new(),
            refusal: None,
            announced: false,
            refused: false,
            wake: None,
            local: "eu-west-1".into(),
            awaiting_topology: false,
        }
    }

    #[test]
    fn failover_readiness_counts_towards_ready_only_while_this_region_promotes_itself() {
        let open = record(
            "2025-01-01T00:00:00Z",
            &[FailoverStep::AuroraFailoverRequested],
            false,
        );
        let concern = outcome(Some(open.clone())).summary_concern().unwrap();
        assert_eq!(
            (concern.status, concern.reason.as_str()),
            (Status::False, ready::reason::FAILOVER_IN_PROGRESS)
        );
        assert!(concern.message.contains("AuroraFailoverRequested"));
        let done = record("2025-01-01T00:00:00Z", &[], true);
        assert_eq!(outcome(Some(done)).summary_concern(), None);
        assert_eq!(outcome(None).summary_concern(), None);
        let mut elsewhere = outcome(Some(open));
        elsewhere.local = "ap-northeast-1".into();
        assert_eq!(elsewhere.summary_concern(), None);
    }

    #[test]
    fn the_topology_completes_a_promotion_only_with_this_region_as_the_primary() {
        let now = Timestamp::from_second(1_735_689_662).unwrap();
        let mut waiting = outcome(Some(record("2025-01-01T00:00:00Z", &[], false)));
        waiting.awaiting_topology = true;
        finish(&mut waiting, None, now);
        assert!(waiting.record.as_ref().unwrap().result.is_none());
        let secondary = AppliedRole {
            role: RegionRole::Secondary,
            writer_region: Some("us-east-1".into()),
        };
        finish(&mut waiting, Some(&secondary), now);
        assert!(waiting.record.as_ref().unwrap().result.is_none());
        let primary = AppliedRole {
            role: RegionRole::Primary,
            writer_region: Some("eu-west-1".into()),
        };
        finish(&mut waiting, Some(&primary), now);
        let closed = waiting.record.as_ref().unwrap();
        assert_eq!(closed.result, Some(FailoverResult::Completed));
        assert_eq!(closed.completed_steps, [FailoverStep::TopologyUpdated]);
        assert_eq!(closed.duration_seconds, Some(62.0));
        assert_eq!(waiting.notes[0].reason, "FailoverCompleted");
        assert_eq!(
            waiting.finished,
            [(
                FailoverKind::Failover,
                FailoverResult::Completed,
                Some(Duration::from_secs(62))
            )]
        );
    }

    fn at(seconds: f64) -> LagSample {
        LagSample {
            lag: Duration::from_secs_f64(seconds),
            at: Timestamp::from_second(1_735_689_600).unwrap(),
        }
    }

    #[test]
    fn a_steady_lag_is_not_rewritten_but_a_move_or_a_write_anyway_is() {
        let budget = Duration::from_secs(30);
        let stored = LagReading {
            seconds: 0.15,
            observed_at: "2025-01-01T00:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            lag_worth_writing(None, Some(at(0.15)), budget, false),
            Some(at(0.15))
        );
        assert_eq!(
            lag_worth_writing(Some(&stored), Some(at(0.4)), budget, false),
            None
        );
        assert_eq!(
            lag_worth_writing(Some(&stored), Some(at(5.0)), budget, false),
            Some(at(5.0))
        );
        assert_eq!(
            lag_worth_writing(Some(&stored), Some(at(0.2)), budget, true),
            Some(at(0.2))
        );
        assert_eq!(lag_worth_writing(Some(&stored), None, budget, true), None);
    }

    #[test]
    fn failover_ready_is_held_as_stored_until_the_first_round_of_samples() {
        let stored_condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: types::FAILOVER_READY.into(),
            status: "True".into(),
            reason: "CandidateReady".into(),
            message: "eu-west-1 would be promoted".into(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
        };
        let stored = crate::api::ShopRegionStatus {
            conditions: vec![stored_condition],
            ..Default::default()
        };
        let fresh = Desired::new(
            types::FAILOVER_READY,
            Status::False,
            "ReplicationLagUnknown",
            "lag not read yet",
        );
        let wait = Decision::Wait {
            reason: super::super::decide::WaitReason::NotEstablished,
            message: String::new(),
        };
        let held = held_while_warming(fresh.clone(), &wait, false, Some(&stored));
        assert_eq!(
            (held.status, held.reason.as_str()),
            (Status::True, "CandidateReady")
        );
        assert_eq!(
            held_while_warming(fresh.clone(), &wait, true, Some(&stored)),
            fresh
        );
        assert_eq!(held_while_warming(fresh.clone(), &wait, false, None), fresh);
    }
}
