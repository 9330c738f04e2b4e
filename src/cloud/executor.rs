//! The one executor of the cloud concerns (Aurora, ElastiCache): observe →
//! plan (pure) → carry out the planned steps → re-observe → report. It never
//! waits for AWS: a long operation is started, reported, and polled on the
//! next requeue.
//!
//! What differs between services is a property of their types: the calls
//! and reads of a [`Service`], the reason, Event, blamed field and requeue
//! of a [`Step`]. What a failed call, a refusal or a converged region means
//! for the condition, the Events and the requeue is decided here, once.

use std::future::Future;
use std::time::Duration;

use crate::api::conditions::{Desired, Status};
use crate::api::{CacheStatus, DatabaseStatus, SpecError};
use crate::cloud::{CleanupOutcome, CloudError, TransientKind, reason, requeue};
use crate::concern::{Again, Concern, Note, Publish, Report, StatusPart, Upstream};

/// What a cloud concern's plan says for its region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudPlan<A> {
    /// The region matches the spec; nothing to do. `notes` explain accepted
    /// differences (a newer minor version than requested, say).
    Converged { notes: Vec<String> },
    /// Carry these out in order, then requeue.
    Steps(Vec<A>),
    /// The spec cannot be satisfied as written; nothing is created.
    Terminal(SpecError),
}

/// What a cloud concern's deletion plan says for its region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeletionPlan<A> {
    /// Nothing (more) to delete in AWS; the finalizer may go.
    Done,
    Steps(Vec<A>),
    /// A deletion is under way in AWS.
    Wait {
        reason: &'static str,
        message: String,
    },
    /// Deleting now would be unsafe; a human must act first.
    Blocked {
        reason: &'static str,
        message: String,
    },
}

/// One planned step of a cloud concern: everything the executor needs to
/// know about it besides the call itself.
pub trait Step {
    /// One line for conditions and Events.
    fn describe(&self) -> String;
    /// The concern's condition reason while this step is under way.
    fn reason(&self) -> &str;
    /// The Event reason once the step's call went through; `None` for a
    /// step that makes no call (a wait).
    fn event_reason(&self) -> Option<&'static str>;
    /// A create: AlreadyExists means an earlier attempt (whose answer a
    /// timeout hid) went through.
    fn creates(&self) -> bool;
    /// The spec field to blame when AWS refuses the step; `None` when a
    /// refusal is not the spec's fault.
    fn refused_field(&self) -> Option<&'static str>;
    /// How long to wait before looking again when the step is a wait.
    fn wait_interval(&self) -> Duration;
}

/// One step of a deletion plan (displayed as one line for conditions and
/// Events), and its call on its service's port.
pub trait DeletionStep: Sync + std::fmt::Display {
    type Port: ?Sized + Sync;
    fn carry_out(&self, port: &Self::Port) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// How much a status needs read beyond the observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// The observation alone (a refusal or a failed call: read no more).
    Observed,
    /// After steps: what the workload needs to reach the service (the
    /// primary's endpoint, possibly in another region).
    Progress,
    /// Converged: also the replication lag.
    Converged,
}

/// The status block of a cloud concern.
pub trait ServiceStatus: Clone {
    fn last_error(&self) -> Option<&str>;
    fn set_last_error(&mut self, error: Option<String>);
    /// Its place in the ShopRegion's status.
    fn part(&self) -> StatusPart;
    /// What the concerns after it learn from it (role, endpoints).
    fn hand_on(&self, upstream: &mut Upstream);
}

impl ServiceStatus for DatabaseStatus {
    fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    fn set_last_error(&mut self, error: Option<String>) {
        self.last_error = error;
    }
    fn part(&self) -> StatusPart {
        StatusPart::Database(self.clone())
    }
    fn hand_on(&self, upstream: &mut Upstream) {
        upstream.database = Some(self.clone());
    }
}

impl ServiceStatus for CacheStatus {
    fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    fn set_last_error(&mut self, error: Option<String>) {
        self.last_error = error;
    }
    fn part(&self) -> StatusPart {
        StatusPart::Cache(self.clone())
    }
    fn hand_on(&self, upstream: &mut Upstream) {
        upstream.cache = Some(self.clone());
    }
}

/// One cloud service's concern for one region in one reconcile: its reads,
/// its pure plan, its calls, and how its status is told.
pub trait Service: Sync {
    type Observed: Send + Sync;
    type Step: Step + Send + Sync;
    type Status: ServiceStatus + Send;
    /// The condition the concern owns (`DatabaseReady`, `CacheReady`).
    const CONDITION: &'static str;

    fn observe(&self) -> impl Future<Output = Result<Self::Observed, CloudError>> + Send;
    fn plan(&self, observed: &Self::Observed) -> CloudPlan<Self::Step>;
    fn execute(&self, step: &Self::Step) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// The status from an observation, reading what `depth` asks for.
    fn status(
        &self,
        observed: &Self::Observed,
        depth: Depth,
    ) -> impl Future<Output = Self::Status> + Send;
    /// The status last reported (or a fresh one naming the resources), kept
    /// when AWS cannot be read: a failed read says nothing about the
    /// resource.
    fn last_known(&self) -> Self::Status;
    /// The converged condition's message.
    fn converged_message(&self, status: &Self::Status) -> String;
    /// Events for a change of role since the status reported last time.
    fn role_change(&self, status: &Self::Status) -> Vec<Note>;
    /// What the status and the Events say of the first step once the steps
    /// went through: a wait on something the user must fix, or the effect
    /// of a call that AWS does not show back. Nothing by default.
    fn after_steps(&self, _first: &Self::Step, _status: &mut Self::Status) -> Option<Note> {
        None
    }
    /// Warnings about a converged region that the user should act on (a
    /// spec that undercuts what runs). Nothing by default.
    fn converged_warnings(&self, _observed: &Self::Observed) -> Vec<Note> {
        Vec::new()
    }
}

/// What one reconcile of a cloud concern found and did.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudOutcome<S> {
    pub status: S,
    /// The concern's condition.
    pub condition: Desired,
    pub events: Vec<Note>,
    pub requeue_after: Option<Duration>,
    /// Set when the spec cannot be satisfied: the controller reports
    /// `Stalled` and stops requeueing until the spec changes.
    pub terminal: Option<SpecError>,
}

/// A cloud service as a concern of the reconcile pipeline. A failed read
/// is not a failed reconcile: it is reported (`Unknown`, the last known
/// status kept) and polled again.
pub struct CloudConcern<S>(pub S);

impl<S: Service> Concern for CloudConcern<S> {
    type Observed = Result<S::Observed, CloudError>;
    type Plan = Option<CloudPlan<S::Step>>;
    type Acted = CloudOutcome<S::Status>;

    async fn observe(&self) -> Result<Self::Observed, kube::Error> {
        Ok(self.0.observe().await)
    }

    fn plan(&self, observed: &Self::Observed) -> Self::Plan {
        observed.as_ref().ok().map(|o| self.0.plan(o))
    }

    async fn act(
        &self,
        observed: Self::Observed,
        plan: Self::Plan,
    ) -> Result<Self::Acted, kube::Error> {
        Ok(match observed {
            Ok(observed) => {
                let plan = plan.unwrap_or_else(|| self.0.plan(&observed));
                carry_out(&self.0, observed, plan).await
            }
            Err(error) => failed_call(&self.0, &error),
        })
    }

    fn hand_on(&self, acted: &Self::Acted, upstream: &mut Upstream) {
        acted.status.hand_on(upstream);
    }

    fn report(&self, acted: &Self::Acted, _upstream: &Upstream) -> Report {
        Report {
            condition: acted.condition.clone(),
            readiness: Some(acted.condition.clone()),
            status: acted.status.part(),
            notes: acted.events.clone(),
            publish: Publish::AsActed,
            again: acted.requeue_after.map(Again::Poll),
            terminal: acted.terminal.clone(),
        }
    }
}

/// Reconciles one cloud concern once, alone (the pipeline runs it through
/// [`CloudConcern`]). A converged region costs read calls only.
pub async fn reconcile<S: Service>(service: &S) -> CloudOutcome<S::Status> {
    match service.observe().await {
        Ok(observed) => {
            let plan = service.plan(&observed);
            carry_out(service, observed, plan).await
        }
        Err(error) => failed_call(service, &error),
    }
}

async fn carry_out<S: Service>(
    service: &S,
    observed: S::Observed,
    plan: CloudPlan<S::Step>,
) -> CloudOutcome<S::Status> {
    match plan {
        CloudPlan::Terminal(error) => {
            let mut status = service.status(&observed, Depth::Observed).await;
            status.set_last_error(Some(error.to_string()));
            terminal(S::CONDITION, status, error)
        }
        CloudPlan::Converged { notes } => {
            let status = service.status(&observed, Depth::Converged).await;
            let mut message = service.converged_message(&status);
            for note in &notes {
                message.push_str("; ");
                message.push_str(note);
            }
            let mut events = service.role_change(&status);
            events.extend(service.converged_warnings(&observed));
            CloudOutcome {
                events,
                condition: Desired::new(S::CONDITION, Status::True, reason::AVAILABLE, message),
                status,
                requeue_after: Some(requeue::STEADY),
                terminal: None,
            }
        }
        CloudPlan::Steps(steps) => act(service, observed, steps).await,
    }
}

async fn act<S: Service>(
    service: &S,
    observed: S::Observed,
    steps: Vec<S::Step>,
) -> CloudOutcome<S::Status> {
    let mut events = Vec::new();
    let mut mutated = false;
    for step in &steps {
        let result = service.execute(step).await;
        match step_result(step, result) {
            StepResult::Done { event } => {
                if let Some(event) = event {
                    mutated = true;
                    events.push(event);
                }
            }
            StepResult::AlreadyDone => mutated = true,
            StepResult::Refused(spec_error) => {
                let mut status = service.status(&observed, Depth::Observed).await;
                status.set_last_error(Some(spec_error.message.clone()));
                return terminal(S::CONDITION, status, spec_error);
            }
            StepResult::Failed(error) => {
                let mut status = service.status(&observed, Depth::Observed).await;
                let mut outcome = failed_call(service, &error);
                status.set_last_error(Some(error.to_string()));
                outcome.status = status;
                outcome.events.splice(0..0, events);
                return outcome;
            }
        }
    }
    // Report what AWS shows after the step; if the re-read fails, the
    // first observation is still a truthful (if older) picture.
    let after = if mutated {
        service.observe().await.unwrap_or(observed)
    } else {
        observed
    };
    let mut status = service.status(&after, Depth::Progress).await;
    let first = steps.first().expect("a plan with steps has at least one");
    events.extend(service.after_steps(first, &mut status));
    events.extend(service.role_change(&status));
    CloudOutcome {
        status,
        condition: Desired::new(
            S::CONDITION,
            Status::False,
            first.reason(),
            first.describe(),
        ),
        events,
        requeue_after: Some(if mutated {
            requeue::AFTER_ACTION
        } else {
            first.wait_interval()
        }),
        terminal: None,
    }
}

/// What a step's call came to.
#[derive(Debug, PartialEq)]
pub enum StepResult {
    /// The call went through; its Event, when the step made a call.
    Done { event: Option<Note> },
    /// A create whose earlier attempt went through (a timeout hid its
    /// answer): the resource is there, carry on.
    AlreadyDone,
    /// AWS refused a step built from the spec: the spec must change.
    Refused(SpecError),
    /// Any other failure: report it, keep the last known status, retry.
    Failed(CloudError),
}

/// What a step's call came to. Pure.
pub fn step_result(step: &impl Step, result: Result<(), CloudError>) -> StepResult {
    match result {
        Ok(()) => StepResult::Done {
            event: step
                .event_reason()
                .map(|reason| Note::normal(reason, step.describe())),
        },
        Err(CloudError::AlreadyExists { .. }) if step.creates() => StepResult::AlreadyDone,
        Err(error) => match refused_by_aws(step, &error) {
            Some(spec_error) => StepResult::Refused(spec_error),
            None => StepResult::Failed(error),
        },
    }
}

/// A refusal of a step built from the spec: the spec must change.
fn refused_by_aws(step: &impl Step, error: &CloudError) -> Option<SpecError> {
    let CloudError::Refused { .. } = error else {
        return None;
    };
    Some(SpecError {
        reason: reason::REFUSED_BY_AWS,
        field: step.refused_field()?.to_string(),
        message: format!("AWS refused {}: {error}", step.describe()),
    })
}

fn terminal<S>(condition: &'static str, status: S, error: SpecError) -> CloudOutcome<S> {
    CloudOutcome {
        status,
        condition: Desired::new(condition, Status::False, error.reason, error.to_string()),
        events: vec![Note::warning(error.reason, error.to_string())],
        requeue_after: None,
        terminal: Some(error),
    }
}

/// The condition reason and the requeue a failed call deserves.
pub fn failure_reason(error: &CloudError) -> (&'static str, Duration) {
    match error {
        CloudError::Transient {
            kind: TransientKind::Throttled,
            ..
        } => (reason::AWS_THROTTLED, requeue::THROTTLED),
        CloudError::Transient { .. }
        | CloudError::NotFound { .. }
        | CloudError::AlreadyExists { .. } => (reason::TRANSIENT, requeue::TRANSIENT),
        CloudError::InvalidState { .. } => (reason::AWS_CONFLICT, requeue::SHORT_OPERATION),
        CloudError::Refused { .. } => (reason::REFUSED_BY_AWS, requeue::NEEDS_ATTENTION),
        CloudError::RegionUnavailable { .. } => {
            (reason::REGION_UNAVAILABLE, requeue::REGION_UNAVAILABLE)
        }
    }
}

/// A failed call: never terminal. The last known status is kept and the
/// condition says `Unknown`. A Warning goes out when the problem is new: an
/// outage polled every 30 s would otherwise post an Event (a Kubernetes
/// write) each time.
fn failed_call<S: Service>(service: &S, error: &CloudError) -> CloudOutcome<S::Status> {
    let (reason, requeue) = failure_reason(error);
    let mut status = service.last_known();
    let message = error.to_string();
    let new_problem = status.last_error() != Some(message.as_str());
    status.set_last_error(Some(message.clone()));
    let warning = matches!(
        error,
        CloudError::RegionUnavailable { .. } | CloudError::Refused { .. }
    );
    CloudOutcome {
        status,
        condition: Desired::new(S::CONDITION, Status::Unknown, reason, message.clone()),
        events: if warning && new_problem {
            vec![Note::warning(reason, message)]
        } else {
            Vec::new()
        },
        requeue_after: Some(match error {
            CloudError::RegionUnavailable { .. } if !new_problem => {
                requeue::REGION_STILL_UNAVAILABLE
            }
            _ => requeue,
        }),
        terminal: None,
    }
}

/// A region's place in its global resource, as a status tells it.
#[derive(Clone, Copy, Debug)]
pub struct Role<'a> {
    /// The status describes an existing resource.
    pub known: bool,
    /// This region takes the writes.
    pub writer: bool,
    pub writer_region: Option<&'a str>,
}

/// How a service words a change of role in its Events.
pub struct RoleWords {
    /// Reason and message when this region became the writer.
    pub promoted: (&'static str, &'static str),
    /// Reason and message (followed by the writer's region) when it stopped
    /// being the writer.
    pub demoted: (&'static str, &'static str),
    /// Reason and subject when the writer moved between two other regions.
    pub moved: (&'static str, &'static str),
}

/// The Events a change of role since the last report deserves: none before
/// the resource was first reported.
pub fn role_change(previous: Role<'_>, now: Role<'_>, words: &RoleWords) -> Vec<Note> {
    if !previous.known || !now.known {
        return Vec::new();
    }
    let region = |r: Option<&str>| r.unwrap_or("?").to_string();
    if previous.writer != now.writer {
        return vec![if now.writer {
            Note::normal(words.promoted.0, words.promoted.1)
        } else {
            Note::warning(
                words.demoted.0,
                format!("{}{}", words.demoted.1, region(now.writer_region)),
            )
        }];
    }
    if previous.writer_region.is_some() && previous.writer_region != now.writer_region {
        return vec![Note::normal(
            words.moved.0,
            format!(
                "{} moved from {} to {}",
                words.moved.1,
                region(previous.writer_region),
                region(now.writer_region)
            ),
        )];
    }
    Vec::new()
}

/// Carries out one pass of a deletion plan. A step whose resource is
/// already gone (a previous pass, or a human) is done.
pub async fn delete<A: DeletionStep>(planned: DeletionPlan<A>, port: &A::Port) -> CleanupOutcome {
    let steps = match planned {
        DeletionPlan::Done => return CleanupOutcome::Done,
        DeletionPlan::Wait { .. } => {
            return CleanupOutcome::InProgress {
                requeue: requeue::SHORT_OPERATION,
            };
        }
        DeletionPlan::Blocked { reason, message } => {
            return CleanupOutcome::Blocked {
                reason: reason.to_string(),
                message,
            };
        }
        DeletionPlan::Steps(steps) => steps,
    };
    for step in &steps {
        match step.carry_out(port).await {
            Ok(()) | Err(CloudError::NotFound { .. }) => {}
            Err(CloudError::Refused { code, message }) => {
                return CleanupOutcome::Blocked {
                    reason: reason::DELETION_REFUSED.into(),
                    message: format!("AWS refused {step}: {code}: {message}"),
                };
            }
            Err(error) => return deletion_failed(&error),
        }
    }
    CleanupOutcome::InProgress {
        requeue: requeue::AFTER_ACTION,
    }
}

/// A deletion pass whose call failed: try again at the failure's pace.
pub fn deletion_failed(error: &CloudError) -> CleanupOutcome {
    CleanupOutcome::InProgress {
        requeue: match error {
            CloudError::Transient {
                kind: TransientKind::Throttled,
                ..
            } => requeue::THROTTLED,
            CloudError::RegionUnavailable { .. } => requeue::REGION_UNAVAILABLE,
            CloudError::Refused { .. } => requeue::NEEDS_ATTENTION,
            _ => requeue::TRANSIENT,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step of a made-up service: a create built from `spec.thing`, or a
    /// tag that is nobody's fault, or a wait.
    enum Fake {
        Create,
        Tag,
        Wait,
    }

    impl Step for Fake {
        fn describe(&self) -> String {
            "the fake step".into()
        }
        fn reason(&self) -> &str {
            "Faking"
        }
        fn event_reason(&self) -> Option<&'static str> {
            match self {
                Fake::Create => Some("CreatingThing"),
                Fake::Tag => Some("TaggingThing"),
                Fake::Wait => None,
            }
        }
        fn creates(&self) -> bool {
            matches!(self, Fake::Create)
        }
        fn refused_field(&self) -> Option<&'static str> {
            matches!(self, Fake::Create).then_some("spec.thing")
        }
        fn wait_interval(&self) -> Duration {
            requeue::SHORT_OPERATION
        }
    }

    #[test]
    fn a_create_whose_earlier_attempt_went_through_is_done() {
        let exists = CloudError::already_exists("AlreadyExists", "there");
        assert_eq!(
            step_result(&Fake::Create, Err(exists.clone())),
            StepResult::AlreadyDone
        );
        // Only a create: anything else that finds its object there failed.
        assert_eq!(
            step_result(&Fake::Tag, Err(exists.clone())),
            StepResult::Failed(exists)
        );
    }

    #[test]
    fn a_refusal_of_a_step_built_from_the_spec_names_the_field_to_change() {
        let refused = CloudError::refused("InvalidParameterValue", "no such class");
        let StepResult::Refused(spec_error) = step_result(&Fake::Create, Err(refused.clone()))
        else {
            panic!("a refused create stalls on the spec");
        };
        assert_eq!(spec_error.field, "spec.thing");
        assert_eq!(spec_error.reason, reason::REFUSED_BY_AWS);
        assert!(
            spec_error.message.contains("no such class"),
            "{}",
            spec_error.message
        );
        // A refusal that is not the spec's fault is retried, not stalled.
        assert_eq!(
            step_result(&Fake::Tag, Err(refused.clone())),
            StepResult::Failed(refused)
        );
    }

    #[test]
    fn a_call_that_went_through_is_an_event_and_a_wait_is_none() {
        assert_eq!(
            step_result(&Fake::Create, Ok(())),
            StepResult::Done {
                event: Some(Note::normal("CreatingThing", "the fake step"))
            }
        );
        assert_eq!(
            step_result(&Fake::Wait, Ok(())),
            StepResult::Done { event: None }
        );
    }
}
