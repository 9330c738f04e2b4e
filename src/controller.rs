//! The kube-runtime wiring: watches, the finalizer, the error policy, and the
//! one status write per reconcile. Decisions live in pure functions
//! ([`summarize`], the concern modules); this file only observes and acts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{error, info, warn};

use crate::api::conditions::{self, Desired, Status, Transition, find, types};
use crate::api::{
    DatabaseStatus, RegionRole, ShopRegion, ShopRegionSpec, ShopRegionStatus, SpecError, validate,
};
use crate::cloud::aurora;
use crate::cloud::elasticache::{self, CacheAuth};
use crate::cloud::{CleanupOutcome, Cloud, Note, real_delay};
use crate::failover::concern::{self as failover_concern, FailoverOutcome, Runtime};
use crate::telemetry::{Metrics, ShopRegionLabels};
use crate::workload::builders::workload_name;
use crate::workload::{
    Topology, WorkloadInputs, apply_children, desired_children, plan_capacity, workload_status,
};

pub const FINALIZER: &str = "shopfleet.io/cleanup";
pub use crate::workload::builders::FIELD_MANAGER;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("could not serialise status: {0}")]
    Serialization(#[from] serde_json::Error),
    #[error("ShopRegion {0} has no namespace")]
    MissingNamespace(String),
    /// Deletion is under way in the cloud; the finalizer stays until it ends.
    #[error("cloud resources are still being deleted")]
    CleanupPending(Duration),
    #[error("deletion blocked ({reason}): {message}")]
    DeletionBlocked { reason: String, message: String },
}

impl Error {
    /// The error category, as the `shopfleet_reconcile_errors_total` label.
    pub fn metric_label(&self) -> &'static str {
        if self.forbidden().is_some() {
            return "forbidden";
        }
        match self {
            Error::Kube(kube::Error::Api(_)) => "kube_api",
            Error::Kube(_) => "kube_transport",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.metric_label()
                }
                _ => "finalizer",
            },
            Error::Serialization(_) => "serialization",
            Error::MissingNamespace(_) => "invalid_object",
            Error::CleanupPending(_) => "cleanup_pending",
            Error::DeletionBlocked { .. } => "deletion_blocked",
        }
    }
}

impl Error {
    /// The API server's message when it refused a request for lack of a
    /// permission (HTTP 403); it names the verb, the resource and the
    /// ServiceAccount, which is what the person fixing the RBAC needs.
    pub fn forbidden(&self) -> Option<&str> {
        let kube_error = match self {
            Error::Kube(e) => Some(e),
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    return e.forbidden();
                }
                finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => Some(e),
                _ => None,
            },
            _ => None,
        };
        match kube_error {
            Some(kube::Error::Api(status)) if status.code == 403 => Some(status.message.as_str()),
            _ => None,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// `None` runs the Kubernetes side only (no cloud concerns reconciled).
    pub cloud: Option<Arc<dyn Cloud>>,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    /// Consecutive failures per object, for the error policy's backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// With a cloud: the health sampler, the verdicts and the failover
    /// records this process wrote. The sampler probes the cloud's regions
    /// with the cloud's own probe (the network for AWS, the simulation's
    /// answers for the simulated cloud).
    failover: Option<Arc<Runtime>>,
    /// A verdict changed: reconcile (taken by [`run`]).
    verdicts_changed: Mutex<Option<futures::channel::mpsc::UnboundedReceiver<String>>>,
    /// The controller's ShopRegion cache: the peers a failover decision
    /// looks at, without a list call per reconcile.
    shopregions: OnceLock<Store<ShopRegion>>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        Self {
            client,
            cloud: None,
            metrics,
            reporter: Reporter {
                controller: "shopfleet".into(),
                instance,
            },
            failures: Mutex::new(HashMap::new()),
            failover: None,
            verdicts_changed: Mutex::new(None),
            shopregions: OnceLock::new(),
        }
    }

    pub fn with_cloud(mut self, cloud: Arc<dyn Cloud>) -> Self {
        let (trigger, changes) = futures::channel::mpsc::unbounded();
        self.failover = Some(Arc::new(Runtime::new(
            cloud.clone(),
            self.metrics.clone(),
            trigger,
        )));
        self.verdicts_changed = Mutex::new(Some(changes));
        self.cloud = Some(cloud);
        self
    }

    /// The ShopRegions of `shop` in the controller's cache.
    fn peers(&self, shop: &str) -> Vec<ShopRegion> {
        self.shopregions
            .get()
            .map(|store| {
                store
                    .state()
                    .iter()
                    .filter(|r| r.spec.shop == shop)
                    .map(|r| (**r).clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A cloud delay as a real requeue delay.
    fn requeue(&self, cloud_delay: Duration) -> Duration {
        let speed = self.cloud.as_ref().map_or(1, |c| c.speed());
        real_delay(cloud_delay, speed, Duration::from_millis(50))
    }

    /// A cloud instant the failover engine must not miss (a writer declared
    /// lost, a turn passing): as a real delay with a floor short enough not
    /// to delay it, long enough for the simulated clock to have moved.
    fn wake(&self, cloud_delay: Duration) -> Duration {
        let speed = self.cloud.as_ref().map_or(1, |c| c.speed());
        real_delay(cloud_delay, speed, Duration::from_millis(10))
    }

    fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().expect("failure map lock poisoned");
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    fn clear_failures(&self, key: &str) {
        self.failures
            .lock()
            .expect("failure map lock poisoned")
            .remove(key);
    }
}

/// How long to wait after the `failures`-th consecutive failure: 1 s doubling
/// to 5 min, so a broken AWS region is not hammered and a blip heals fast.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(9);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(300))
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

/// The status to write, from the current one and this reconcile's decisions.
/// Returns the transitions so each can be reported as an Event.
pub fn next_status(
    current: Option<&ShopRegionStatus>,
    generation: Option<i64>,
    decided: &[Desired],
    mut base: ShopRegionStatus,
    now: Timestamp,
) -> (ShopRegionStatus, Vec<Transition>) {
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (merged, transitions) = conditions::merge(existing, decided, generation, now);
    base.conditions = merged;
    base.observed_generation = generation;
    (base, transitions)
}

async fn reconcile(region: Arc<ShopRegion>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = object_key(&region);
    let namespace = region
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(region.name_any()))?;
    let api: Api<ShopRegion> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, region, |event| async {
        match event {
            finalizer::Event::Apply(region) => apply(region, &ctx).await,
            finalizer::Event::Cleanup(region) => cleanup(region, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.observe_reconcile(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    if result.is_ok() {
        ctx.clear_failures(&key);
    }
    result
}

async fn apply(region: Arc<ShopRegion>, ctx: &Context) -> Result<Action, Error> {
    let spec_errors = validate(&region);
    if !spec_errors.is_empty() {
        // Nothing is created for an invalid spec: report and wait for a change.
        let decided = summarize(&[], &spec_errors);
        let base = region.status.clone().unwrap_or_default();
        write_status(&region, ctx, &decided, base).await?;
        return Ok(Action::await_change());
    }
    let namespace = region
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(region.name_any()))?;
    let spec = &region.spec;
    let previous = region.status.as_ref();
    let key = object_key(&region);

    // Failover first: a promotion that is due must not wait behind the
    // other concerns' AWS reads, and they then report what it changed.
    let mut failover = match (&ctx.cloud, &ctx.failover) {
        (Some(cloud), Some(runtime)) => {
            let mut outcome = failover_concern::assess(
                runtime,
                cloud.as_ref(),
                &region,
                &key,
                &ctx.peers(&spec.shop),
                cloud.clock().now(),
            )
            .await;
            if let Some((intent, started)) = outcome.intent.take() {
                // The intent is stored before the first cloud call, so that
                // a crash from here on resumes this promotion.
                record_intent(ctx, &region, &intent).await?;
                runtime.written(&key, &intent);
                ctx.metrics
                    .record_failover_started(&ShopRegionLabels::of(&region).shop(), intent.kind);
                publish_notes(ctx, &region, &[started]).await;
            }
            failover_concern::execute(&mut outcome, cloud.as_ref(), &region, cloud.clock().now())
                .await;
            Some(outcome)
        }
        _ => None,
    };

    // The database goes first: AWS decides the role and the endpoints the
    // workload's topology carries.
    let database = match &ctx.cloud {
        Some(cloud) => {
            let port = cloud.aurora(&spec.region);
            let outcome = aurora::reconcile_from(
                port.as_ref(),
                spec,
                previous.and_then(|s| s.database.as_ref()),
                cloud.clock().now(),
            )
            .await;
            publish_notes(ctx, &region, &outcome.events).await;
            Some(outcome)
        }
        None => None,
    };
    // The cache beside it: its endpoints go into the topology too.
    let cache = match &ctx.cloud {
        Some(cloud) => {
            let auth = cache_auth(ctx, &namespace, spec).await?;
            let ports = |r: &str| cloud.elasticache(r);
            let outcome = elasticache::reconcile_from(
                &ports,
                spec,
                &auth,
                previous.and_then(|s| s.cache.as_ref()),
                cloud.clock().now(),
            )
            .await;
            publish_notes(ctx, &region, &outcome.events).await;
            Some(outcome)
        }
        None => None,
    };
    let terminals: Vec<SpecError> = database
        .iter()
        .filter_map(|d| d.terminal.clone())
        .chain(cache.iter().filter_map(|c| c.terminal.clone()))
        .collect();
    if !terminals.is_empty() {
        let mut decided: Vec<Desired> = database
            .iter()
            .map(|d| d.condition.clone())
            .chain(cache.iter().map(|c| c.condition.clone()))
            .collect();
        decided.extend(summarize(&[], &terminals));
        let mut base = region.status.clone().unwrap_or_default();
        base.database = database.map(|d| d.status);
        base.cache = cache.map(|c| c.status);
        if let Some(f) = &failover {
            decided.push(f.condition.clone());
            set_failover_status(&mut base, f);
        }
        write_status(&region, ctx, &decided, base).await?;
        report_failover(ctx, &region, &key, failover.as_ref()).await;
        return Ok(Action::await_change());
    }

    let (role, writer_region) = role_and_writer(
        spec,
        database.as_ref().map(|d| &d.status),
        failover.as_ref().and_then(|f| f.aws_writer.as_deref()),
    );

    let capacity = plan_capacity(&spec.orders, spec.failover.order.len());
    let mut topology = Topology::new(spec, role);
    topology.writer_region = writer_region.clone();
    if let Some(db) = database.as_ref().map(|d| &d.status) {
        topology.database_writer_endpoint = db.writer_endpoint.clone();
        topology.database_reader_endpoint = db.reader_endpoint.clone();
    }
    if let Some(c) = cache.as_ref().map(|c| &c.status) {
        topology.cache_primary_endpoint = c.primary_endpoint.clone();
        topology.cache_reader_endpoint = c.reader_endpoint.clone();
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let observed_replicas = deployments
        .get_opt(&workload_name(&region))
        .await?
        .and_then(|d| d.spec.replicas);
    let inputs = WorkloadInputs {
        region: &region,
        topology: &topology,
        capacity,
        // Survivors hold the absorbing minimum while another region is lost.
        absorbing: failover.as_ref().is_some_and(|f| f.absorbing),
        observed_replicas,
    };
    let children = desired_children(&inputs);
    let report = apply_children(&ctx.client, &namespace, &children).await?;
    if !report.applied.is_empty() || !report.deleted.is_empty() {
        info!(
            shopregion = %key,
            applied = ?report.applied,
            deleted = ?report.deleted,
            "workload children written"
        );
    }
    if let (Some(f), Some(cloud)) = (failover.as_mut(), &ctx.cloud) {
        failover_concern::finish(f, &topology, cloud.clock().now());
    }
    let (orders, workload_ready) =
        workload_status(report.deployment.as_ref(), &capacity, inputs.absorbing);

    let mut decided = vec![workload_ready];
    decided.extend(database.iter().map(|d| d.condition.clone()));
    decided.extend(cache.iter().map(|c| c.condition.clone()));
    let mut concerns = decided.clone();
    concerns.extend(failover.as_ref().and_then(FailoverOutcome::summary_concern));
    decided.extend(failover.as_ref().map(|f| f.condition.clone()));
    decided.extend(summarize(&concerns, &[]));
    let mut base = region.status.clone().unwrap_or_default();
    base.orders = Some(orders);
    base.role = Some(role);
    base.writer_region = writer_region;
    let cloud_requeue = database
        .iter()
        .filter_map(|d| d.requeue_after)
        .chain(cache.iter().filter_map(|c| c.requeue_after))
        .min();
    base.database = database.map(|d| d.status);
    base.cache = cache.map(|c| c.status);
    if let Some(f) = &failover {
        set_failover_status(&mut base, f);
    }
    write_status(&region, ctx, &decided, base).await?;
    report_failover(ctx, &region, &key, failover.as_ref()).await;
    // Children are watched, so their progress wakes the reconcile by itself;
    // the cloud is polled; the failover engine wakes when its decision may
    // change by itself. The periodic requeue re-checks drift that nothing
    // reports.
    let periodic = Duration::from_secs(300);
    let wake = failover.as_ref().and_then(|f| f.wake).map(|d| ctx.wake(d));
    let requeue = cloud_requeue
        .map(|d| ctx.requeue(d))
        .into_iter()
        .chain(wake)
        .min()
        .map_or(periodic, |d| d.min(periodic));
    Ok(Action::requeue(requeue))
}

/// The failover concern's part of the status.
fn set_failover_status(base: &mut ShopRegionStatus, outcome: &FailoverOutcome) {
    base.last_failover = outcome.record.clone();
    base.health = outcome.health.clone();
    base.failover = Some(outcome.failover_status.clone());
}

/// Once the status is stored: remember the record, post the failover
/// Events, count the outcomes.
async fn report_failover(
    ctx: &Context,
    region: &ShopRegion,
    key: &str,
    outcome: Option<&FailoverOutcome>,
) {
    let (Some(outcome), Some(runtime)) = (outcome, &ctx.failover) else {
        return;
    };
    if let Some(record) = &outcome.record {
        runtime.written(key, record);
    }
    runtime.record_metrics(&ShopRegionLabels::of(region).shop(), outcome);
    publish_notes(ctx, region, &outcome.notes).await;
}

/// Writes `status.lastFailover` with the intent of a promotion, keeping the
/// rest of the status as stored (one server-side apply of the whole status,
/// as every status write of the field manager).
async fn record_intent(
    ctx: &Context,
    region: &ShopRegion,
    intent: &crate::api::FailoverRecord,
) -> Result<(), Error> {
    let mut status = region.status.clone().unwrap_or_default();
    status.last_failover = Some(intent.clone());
    let namespace = region
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(region.name_any()))?;
    let api: Api<ShopRegion> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": ShopRegion::api_version(&()),
        "kind": ShopRegion::kind(&()),
        "status": status,
    });
    api.patch_status(
        &region.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    info!(
        shopregion = %object_key(region),
        kind = ?intent.kind,
        from = %intent.from,
        to = %intent.to,
        "promotion intent recorded"
    );
    Ok(())
}

/// This region's role and the writer region: what AWS reports once the global
/// cluster knows its writer, the spec's initial choice until then. The
/// database concern's fresh read comes first; when its region's API cannot
/// be reached, the writer the failover concern read through another
/// region's endpoint (`aws_writer`), so that a lost writer region demotes
/// itself as soon as AWS shows another writer.
pub fn role_and_writer(
    spec: &ShopRegionSpec,
    database: Option<&DatabaseStatus>,
    aws_writer: Option<&str>,
) -> (RegionRole, Option<String>) {
    let fresh = database.filter(|db| db.last_error.is_none() && db.writer_region.is_some());
    if fresh.is_none()
        && let Some(writer) = aws_writer
    {
        let role = if writer == spec.region {
            RegionRole::Primary
        } else {
            RegionRole::Secondary
        };
        return (role, Some(writer.to_string()));
    }
    match database {
        Some(db) if db.writer_region.is_some() => {
            let role = if db.writer {
                RegionRole::Primary
            } else {
                RegionRole::Secondary
            };
            (role, db.writer_region.clone())
        }
        _ => (initial_role(spec), spec.failover.order.first().cloned()),
    }
}

/// The role the spec gives this region before any cloud state is known: the
/// first region of `failover.order` is the initial writer.
fn initial_role(spec: &ShopRegionSpec) -> RegionRole {
    if spec.failover.order.first() == Some(&spec.region) {
        RegionRole::Primary
    } else {
        RegionRole::Secondary
    }
}

/// The Redis AUTH token the spec asks for, read from its Secret. A missing
/// Secret or key is not an error here: the cache concern reports it and
/// waits for the user to create it.
async fn cache_auth(
    ctx: &Context,
    namespace: &str,
    spec: &ShopRegionSpec,
) -> Result<CacheAuth, Error> {
    let Some(reference) = &spec.cache.auth_secret_ref else {
        return Ok(CacheAuth::Disabled);
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets.get_opt(&reference.name).await?;
    Ok(elasticache::auth_from_secret(
        reference,
        namespace,
        secret.as_ref(),
    ))
}

async fn cleanup(region: Arc<ShopRegion>, ctx: &Context) -> Result<Action, Error> {
    // Kubernetes children go with the ShopRegion through their owner
    // references; cloud resources follow the spec's deletion policies. The
    // cache and the database are independent: each pass advances both, and
    // the finalizer goes when both are done.
    if let Some(runtime) = &ctx.failover {
        // A ShopRegion being deleted takes no part in failovers any more.
        runtime.forget(&object_key(&region), &region);
    }
    if let Some(cloud) = &ctx.cloud {
        let spec = &region.spec;
        let outcomes = [
            (
                types::DATABASE_READY,
                aurora::cleanup(cloud.aurora(&spec.region).as_ref(), spec).await,
            ),
            (
                types::CACHE_READY,
                elasticache::cleanup(cloud.elasticache(&spec.region).as_ref(), spec).await,
            ),
        ];
        let mut pending: Option<Duration> = None;
        let mut blocked = Vec::new();
        for (type_, outcome) in outcomes {
            match outcome {
                CleanupOutcome::Done => {}
                CleanupOutcome::InProgress { requeue } => {
                    pending = Some(pending.map_or(requeue, |p| p.min(requeue)));
                }
                CleanupOutcome::Blocked { reason, message } => {
                    blocked.push(Desired::new(type_, Status::False, reason, message));
                }
            }
        }
        if !blocked.is_empty() {
            let conditions = region
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            for decided in &blocked {
                // A condition that leaves True gets its transition Event;
                // one that was already False would otherwise say nothing.
                let news = find(conditions, decided.type_)
                    .is_some_and(|c| c.status != "True" && c.reason != decided.reason);
                if news {
                    publish(
                        ctx,
                        &region,
                        EventType::Warning,
                        &decided.reason,
                        &decided.message,
                    )
                    .await;
                }
            }
            let base = region.status.clone().unwrap_or_default();
            write_status(&region, ctx, &blocked, base).await?;
            return Err(Error::DeletionBlocked {
                reason: blocked[0].reason.clone(),
                message: blocked
                    .iter()
                    .map(|d| d.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        if let Some(requeue) = pending {
            return Err(Error::CleanupPending(ctx.requeue(requeue)));
        }
    }
    publish(
        ctx,
        &region,
        EventType::Normal,
        "Deleted",
        "cloud resources handled per deletionPolicy; removing the finalizer",
    )
    .await;
    let labels = ShopRegionLabels::of(&region);
    let last_of_shop = ctx
        .peers(&region.spec.shop)
        .iter()
        .all(|peer| peer.namespace() != region.namespace() || peer.name_any() == region.name_any());
    ctx.metrics.forget_shopregion(&labels, last_of_shop);
    Ok(Action::await_change())
}

/// Writes the status with one server-side apply on `/status`, and only when it
/// differs from what is stored: a converged reconcile makes no write.
async fn write_status(
    region: &ShopRegion,
    ctx: &Context,
    decided: &[Desired],
    base: ShopRegionStatus,
) -> Result<(), Error> {
    let (status, transitions) = next_status(
        region.status.as_ref(),
        region.metadata.generation,
        decided,
        base,
        Timestamp::now(),
    );
    report_metrics(ctx, region, &status);
    if region.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let namespace = region
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(region.name_any()))?;
    let api: Api<ShopRegion> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": ShopRegion::api_version(&()),
        "kind": ShopRegion::kind(&()),
        "status": status,
    });
    api.patch_status(
        &region.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    for transition in transitions {
        report_transition(ctx, region, &transition).await;
    }
    Ok(())
}

/// The ShopRegion's own series, from the status this reconcile decided
/// (written or already stored).
fn report_metrics(ctx: &Context, region: &ShopRegion, status: &ShopRegionStatus) {
    let refused = status
        .failover
        .as_ref()
        .is_some_and(|f| f.refused.is_some());
    ctx.metrics.report_shopregion(
        &ShopRegionLabels::of(region),
        &status.conditions,
        region.spec.failover.max_replication_lag.as_duration(),
        refused,
    );
}

async fn report_transition(ctx: &Context, region: &ShopRegion, transition: &Transition) {
    if let Some(event) = event_for(transition) {
        publish(ctx, region, event.type_, &event.reason, &event.note).await;
    }
}

/// The Event a condition transition deserves, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct TransitionEvent {
    pub type_: EventType,
    pub reason: String,
    pub note: String,
}

/// `Reconciling` flips on every piece of progress and gets no Event; a
/// "good when False" condition (`Stalled`) warns when it becomes True, every
/// other condition warns when it stops being True; a condition first
/// appearing in its good state is not news.
pub fn event_for(transition: &Transition) -> Option<TransitionEvent> {
    if transition.type_ == types::RECONCILING {
        return None;
    }
    let bad = match transition.type_.as_str() {
        types::STALLED => transition.to == "True",
        _ => transition.to != "True",
    };
    if transition.from.is_none() && !bad && transition.to == "False" {
        return None;
    }
    let reason = if transition.reason.is_empty() {
        transition.type_.clone()
    } else {
        transition.reason.clone()
    };
    Some(TransitionEvent {
        type_: if bad {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason,
        note: format!(
            "{} is {}: {}",
            transition.type_, transition.to, transition.message
        ),
    })
}

async fn publish_notes(ctx: &Context, region: &ShopRegion, notes: &[Note]) {
    for note in notes {
        let type_ = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(ctx, region, type_, &note.reason, &note.message).await;
    }
}

async fn publish(ctx: &Context, region: &ShopRegion, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: truncate(reason, 128),
        note: Some(truncate(note, 1024)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder()
        .publish(&event, &region.object_ref(&()))
        .await
    {
        // An Event is a courtesy to the reader; failing to post one must not
        // fail the reconcile that already did its work.
        warn!(%error, reason, "could not publish event");
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn object_key(region: &ShopRegion) -> String {
    format!(
        "{}/{}",
        region.namespace().unwrap_or_default(),
        region.name_any()
    )
}

fn error_policy(region: Arc<ShopRegion>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Finalizer(inner) = error
        && let finalizer::Error::CleanupFailed(Error::CleanupPending(delay)) = inner.as_ref()
    {
        // Not a failure: the cloud is deleting, poll at its pace.
        return Action::requeue(*delay);
    }
    let failures = ctx.record_failure(&object_key(&region));
    let delay = backoff(failures);
    if let Some(message) = error.forbidden() {
        // Not a blip: nothing changes until someone mends the RBAC. Say
        // exactly which permission is missing, once per run of failures.
        error!(
            shopregion = %object_key(&region),
            permission_denied = %message,
            "the operator lacks a permission; fix the Role or ClusterRole (docs/install.md)"
        );
        if failures == 1 {
            let ctx = ctx.clone();
            let note = message.to_string();
            tokio::spawn(async move {
                publish(&ctx, &region, EventType::Warning, "PermissionDenied", &note).await;
            });
        }
        return Action::requeue(delay);
    }
    warn!(
        shopregion = %object_key(&region),
        %error,
        category = error.metric_label(),
        failures,
        retry_in_s = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Which ShopRegions one controller reconciles.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// One namespace, or every namespace when `None`.
    pub namespace: Option<String>,
}

fn scoped<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What to tell the person starting the operator when it cannot even list
/// ShopRegions: a missing CRD and a missing permission need different fixes.
fn startup_failure(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "the operator may not list ShopRegions: {}; install the chart's RBAC (docs/install.md)",
            status.message
        ),
        kube::Error::Api(status) if status.code == 404 => format!(
            "cannot list ShopRegions ({}); is the CRD installed? `shopfleet crd | kubectl apply -f -`",
            status.message
        ),
        other => format!("cannot list ShopRegions: {other}"),
    }
}

/// The ShopRegions of `shop` among `regions`, to reconcile when its health
/// verdicts change.
pub fn members_of(
    regions: &[Arc<ShopRegion>],
    shop: &str,
) -> Vec<kube::runtime::reflector::ObjectRef<ShopRegion>> {
    regions
        .iter()
        .filter(|region| region.spec.shop == shop)
        .map(|region| kube::runtime::reflector::ObjectRef::from_obj(region.as_ref()))
        .collect()
}

/// Runs the controller until `shutdown` resolves. Fails fast when the CRD is
/// not installed, with a message that says how to install it.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let regions: Api<ShopRegion> = scoped(&client, &scope);
    regions
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| anyhow::anyhow!(startup_failure(&e)))?;
    info!(namespace = ?scope.namespace, "starting ShopRegion controller");
    let deployments: Api<Deployment> = scoped(&client, &scope);
    let services: Api<Service> = scoped(&client, &scope);
    let configmaps: Api<ConfigMap> = scoped(&client, &scope);
    let hpas: Api<HorizontalPodAutoscaler> = scoped(&client, &scope);
    let pdbs: Api<PodDisruptionBudget> = scoped(&client, &scope);
    // Only our own children: a label selector keeps the caches small in a
    // cluster full of other workloads.
    let children = watcher::Config::default()
        .labels("app.kubernetes.io/managed-by=shopfleet")
        .any_semantic();
    let mut controller = Controller::new(regions, watcher::Config::default().any_semantic())
        .owns(deployments, children.clone())
        .owns(services, children.clone())
        .owns(configmaps, children.clone())
        .owns(hpas, children.clone())
        .owns(pdbs, children);
    // A second `run` on the same context keeps the first store: one
    // controller per context is the supported use.
    let _ = ctx.shopregions.set(controller.store());
    let verdicts_changed = ctx
        .verdicts_changed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(changes) = verdicts_changed {
        // A health verdict of a shop changed: the decisions of that shop's
        // ShopRegions may change, whatever their requeue. Only theirs: a
        // region outage changes every shop's verdicts at once, and
        // reconciling every ShopRegion for each would be a storm.
        let store = controller.store();
        let members =
            changes.flat_map(move |shop| futures::stream::iter(members_of(&store.state(), &shop)));
        controller = controller.reconcile_on(members);
    }
    let runtime = ctx.failover.clone();
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                // A watch that fails (a missing list or watch permission,
                // an API server going away) stalls every ShopRegion it
                // feeds: say so where on-call looks. Reconcile errors are
                // logged by the error policy.
                Err(kube::runtime::controller::Error::QueueError(error)) => {
                    warn!(error = %error, "a watch failed; retrying with backoff");
                }
                Err(error) => tracing::debug!(%error, "reconcile result"),
                Ok(_) => {}
            }
        })
        .await;
    if let Some(runtime) = runtime {
        runtime.sampler.shutdown();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate::reason;

    fn ready(type_: &'static str) -> Desired {
        Desired::new(type_, Status::True, "Available", "ok")
    }

    fn transition(type_: &str, from: Option<&str>, to: &str) -> Transition {
        Transition {
            type_: type_.into(),
            from: from.map(Into::into),
            to: to.into(),
            reason: "Why".into(),
            message: "details".into(),
        }
    }

    #[test]
    fn stalled_becoming_true_and_ready_becoming_false_are_warnings() {
        let stalled = event_for(&transition(types::STALLED, Some("False"), "True")).unwrap();
        assert_eq!(stalled.type_, EventType::Warning);
        assert_eq!(stalled.reason, "Why");
        assert_eq!(stalled.note, "Stalled is True: details");
        let ready = event_for(&transition(types::READY, Some("True"), "False")).unwrap();
        assert_eq!(ready.type_, EventType::Warning);
    }

    #[test]
    fn recovery_is_a_normal_event_and_routine_changes_are_silent() {
        let ready = event_for(&transition(types::READY, Some("False"), "True")).unwrap();
        assert_eq!(ready.type_, EventType::Normal);
        assert_eq!(
            event_for(&transition(types::RECONCILING, Some("False"), "True")),
            None
        );
        assert_eq!(event_for(&transition(types::STALLED, None, "False")), None);
        let first_unready = event_for(&transition(types::DATABASE_READY, None, "False")).unwrap();
        assert_eq!(first_unready.type_, EventType::Warning);
    }

    #[test]
    fn the_spec_names_the_writer_until_aws_reports_one() {
        let spec = crate::api::fixtures::acme("eu-west-1");
        assert_eq!(
            role_and_writer(&spec, None, None),
            (RegionRole::Secondary, Some("us-east-1".into()))
        );
        let promoted = DatabaseStatus {
            writer: true,
            writer_region: Some("eu-west-1".into()),
            ..Default::default()
        };
        assert_eq!(
            role_and_writer(&spec, Some(&promoted), Some("eu-west-1")),
            (RegionRole::Primary, Some("eu-west-1".into()))
        );
        let unknown = DatabaseStatus::default();
        assert_eq!(
            role_and_writer(&spec, Some(&unknown), None).0,
            RegionRole::Secondary
        );
    }

    #[test]
    fn a_region_whose_api_is_unreachable_follows_the_writer_aws_shows_elsewhere() {
        let spec = crate::api::fixtures::acme("us-east-1");
        let stale = DatabaseStatus {
            writer: true,
            writer_region: Some("us-east-1".into()),
            last_error: Some("region us-east-1 unavailable".into()),
            ..Default::default()
        };
        assert_eq!(
            role_and_writer(&spec, Some(&stale), Some("eu-west-1")),
            (RegionRole::Secondary, Some("eu-west-1".into()))
        );
        // Without another view, the last known role holds.
        assert_eq!(
            role_and_writer(&spec, Some(&stale), None),
            (RegionRole::Primary, Some("us-east-1".into()))
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(20), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
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

    #[test]
    fn the_same_decision_twice_yields_the_same_status() {
        let decided = summarize(&[ready(types::WORKLOAD_READY)], &[]);
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let (first, transitions) =
            next_status(None, Some(3), &decided, ShopRegionStatus::default(), t0);
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(transitions.len(), 3);
        let later = Timestamp::from_second(1_700_000_600).unwrap();
        let (second, transitions) =
            next_status(Some(&first), Some(3), &decided, first.clone(), later);
        assert_eq!(second, first);
        assert!(transitions.is_empty());
    }

    #[test]
    fn a_verdict_change_reconciles_the_shops_regions_only() {
        let region = |shop: &str, name: &str| {
            let mut r = crate::api::fixtures::acme_region("eu-west-1");
            r.spec.shop = shop.into();
            r.metadata.name = Some(name.into());
            r.metadata.namespace = Some("shop".into());
            Arc::new(r)
        };
        let regions = [
            region("acme", "acme-eu-west-1"),
            region("globex", "globex-eu-west-1"),
            region("acme", "acme-us-east-1"),
        ];
        let names: Vec<String> = members_of(&regions, "acme")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["acme-eu-west-1", "acme-us-east-1"]);
        assert!(members_of(&regions, "initech").is_empty());
    }
}
