//! The kube-runtime wiring: watches, the finalizer, the error policy, the
//! reconcile pipeline over the concerns ([`crate::concern`]) and the one
//! status write per reconcile. Decisions live in pure functions (the
//! concerns' plans, [`crate::concern::assemble`], [`next_status`],
//! [`deletion_state`]); this file only runs them and does the I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, error, info, warn};

use crate::api::conditions::{self, Desired, Status, Transition, find, types};
use crate::api::{HealthVerdict, ShopRegion, ShopRegionSpec, ShopRegionStatus, validate};
pub use crate::cache::slim_for_cache;
use crate::cache::{JsonCache, PackedShopRegion};
use crate::cloud::aurora::{self, Aurora, MasterPassword};
use crate::cloud::budget::RequestBudget;
use crate::cloud::elasticache::{self, CacheAuth, ElastiCache};
use crate::cloud::executor::CloudConcern;
use crate::cloud::view::SharedView;
use crate::cloud::{CleanupOutcome, Cloud, network, real_delay, requeue};
use crate::concern::{
    self, Again, Checkpoint, Concern, Note, Publish, Report, Upstream, assemble, summarize,
};
use crate::failover::concern::{Failover, Runtime};
use crate::slots::{Lane, Slots};
use crate::telemetry::{Metrics, ShopRegionLabels};
use crate::workload::Workload;
use crate::workload::apply::{ChildStores, NotSynced};

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
    /// The cache's deflated copy did not decode: only damaged memory does
    /// that. The next watch event of the ShopRegion replaces it.
    #[error("the cached copy of ShopRegion {0} does not decode")]
    CacheDamaged(String),
    /// Deletion is under way in the cloud; the finalizer stays until it ends.
    #[error("cloud resources are still being deleted")]
    CleanupPending(Duration),
    #[error("deletion blocked ({reason}): {message}")]
    DeletionBlocked { reason: String, message: String },
    /// A child kind's watch has not listed its objects yet.
    #[error("{0}; check the operator's list and watch permissions on them (docs/install.md)")]
    CachesNotSynced(NotSynced),
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
            Error::Serialization(_) | Error::CacheDamaged(_) => "serialization",
            Error::MissingNamespace(_) => "invalid_object",
            Error::CleanupPending(_) => "cleanup_pending",
            Error::DeletionBlocked { .. } => "deletion_blocked",
            Error::CachesNotSynced(_) => "caches_not_synced",
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
            Error::CachesNotSynced(not_synced) => return not_synced.forbidden.as_deref(),
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
    shopregions: OnceLock<Store<PackedShopRegion>>,
    /// The caches of the ShopRegions' children, which the workload concern
    /// reads instead of the API server.
    children: OnceLock<ChildStores>,
    /// The most reconciles run at once in each lane (see
    /// [`DEFAULT_RECONCILE_CONCURRENCY`]): the urgent lane takes the
    /// ShopRegions of a shop whose verdicts changed, and those the failover
    /// engine asked to wake at an instant.
    slots: Slots<ObjectRef<PackedShopRegion>>,
    /// How long a reconcile waits for the children caches' first lists.
    cache_sync_patience: Duration,
}

/// The most reconciles one controller runs at once. Each holds its
/// ShopRegion's children and AWS answers while it runs: unbounded, an
/// operator restarting with 3,000 ShopRegions would hold 3,000 of them at
/// once (every object is reconciled after the first list), and its peak
/// memory would grow with the fleet. A reconcile spends most of its time
/// waiting on the API server and on shared AWS listings, so a few dozen
/// at once keep a fleet's requeues on time.
pub const DEFAULT_RECONCILE_CONCURRENCY: u16 = 32;

/// How long a reconcile waits for the children caches' first lists before
/// it fails with [`Error::CachesNotSynced`]: at a start they take a moment;
/// a watch that is refused never syncs.
pub const CACHE_SYNC_PATIENCE: Duration = Duration::from_secs(20);

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
            children: OnceLock::new(),
            slots: Slots::new(DEFAULT_RECONCILE_CONCURRENCY),
            cache_sync_patience: CACHE_SYNC_PATIENCE,
        }
    }

    /// How long a reconcile waits for the children caches' first lists
    /// before it fails with [`Error::CachesNotSynced`] (default
    /// [`CACHE_SYNC_PATIENCE`]).
    pub fn with_cache_sync_patience(mut self, patience: Duration) -> Self {
        self.cache_sync_patience = patience;
        self
    }

    /// At most `concurrency` reconciles at once in each lane (0: no bound).
    pub fn with_reconcile_concurrency(mut self, concurrency: u16) -> Self {
        self.slots = Slots::new(concurrency);
        self
    }

    /// Every call to `cloud`, the samplers' and the reconciles', goes
    /// through one [`SharedView`] within `budget`: the AWS reads do not
    /// grow with the fleet.
    pub fn with_cloud(mut self, cloud: Arc<dyn Cloud>, budget: RequestBudget) -> Self {
        let view = Arc::new(SharedView::new(cloud, budget));
        let (trigger, changes) = futures::channel::mpsc::unbounded();
        self.failover = Some(Arc::new(Runtime::new(
            view.clone(),
            self.metrics.clone(),
            trigger,
        )));
        self.verdicts_changed = Mutex::new(Some(changes));
        self.cloud = Some(view);
        self
    }

    /// The ShopRegions of `shop` in the controller's cache, unpacked for
    /// the reconcile that reads them.
    fn peers(&self, shop: &str) -> Vec<Arc<ShopRegion>> {
        self.shopregions
            .get()
            .map(|store| members_of(&store.state(), shop))
            .unwrap_or_default()
    }

    /// Hurries the next reconcile of each of `regions` that is
    /// [`in_a_hurry`] by the sampler's verdicts now; `members`: all the
    /// ShopRegions of their shop, as cached.
    fn hurry_urgent<'r>(
        &self,
        shop: &str,
        regions: impl IntoIterator<Item = &'r ShopRegion>,
        members: &[Arc<ShopRegion>],
    ) {
        let verdicts: BTreeMap<String, HealthVerdict> = match (&self.failover, &self.cloud) {
            (Some(runtime), Some(cloud)) => {
                let judged: Vec<String> = members.iter().map(|m| m.spec.region.clone()).collect();
                runtime
                    .sampler
                    .view(shop, &judged, cloud.clock().now())
                    .health
                    .into_iter()
                    .map(|(region, health)| (region, health.verdict))
                    .collect()
            }
            _ => BTreeMap::new(),
        };
        for region in regions {
            if in_a_hurry(region, members, &verdicts) {
                self.slots.hurry(&cache_key(region));
            }
        }
    }

    /// The children caches, once each holds its first complete list.
    async fn children_synced(&self) -> Result<&ChildStores, Error> {
        let Some(children) = self.children.get() else {
            // Not run by `run`: no watch will ever fill them.
            return Err(Error::CachesNotSynced(NotSynced::of(&[])));
        };
        children
            .synced(self.cache_sync_patience)
            .await
            .map_err(Error::CachesNotSynced)?;
        Ok(children)
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

/// Waits for one of the reconcile slots of its lane (see [`Slots`]), first
/// come first served, then reconciles the newest version of the ShopRegion.
///
/// The bound is ours rather than kube-runtime's: when its runner has every
/// slot busy, it parks the ShopRegions that come due in a hash set and takes
/// them back in hash order, not in due order. A saturated fleet then
/// reconciles the same ShopRegions over and over: 724 of 3,000 were never
/// reconciled in the first 8 minutes of a 1,000-shop bootstrap. A semaphore
/// hands out its permits in the order they were asked for.
async fn reconcile(region: Arc<PackedShopRegion>, ctx: Arc<Context>) -> Result<Action, Error> {
    // While it waits, a reconcile holds the ShopRegion's name, not the
    // version it was asked for: the cache moves on with every status
    // write, and thousands of waiting reconciles would each keep an old
    // copy alive.
    let wanted = ObjectRef::from_obj(region.as_ref());
    let asked = Arc::downgrade(&region);
    drop(region);
    let _slot = ctx.slots.take(&wanted).await;
    let newest = ctx.shopregions.get().and_then(|store| store.get(&wanted));
    let Some(packed) = newest.or_else(|| asked.upgrade()) else {
        // Gone from the cache while it waited: deleted, finalizer and all.
        return Ok(Action::await_change());
    };
    let region = Arc::new(unpack(&packed)?);
    drop(packed);
    // Boxed: a reconcile waiting for its slot holds a pointer, not the
    // whole pipeline's state.
    Box::pin(reconcile_now(region, ctx)).await
}

async fn reconcile_now(region: Arc<ShopRegion>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = object_key(region.as_ref());
    // A ShopRegion being deleted is not counted: its count goes with it.
    if region.metadata.deletion_timestamp.is_none() {
        ctx.metrics.count_reconcile_of(&key);
    }
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
    // With `RUST_LOG=shopfleet::controller=debug`, every reconcile, why it
    // ran (the span's reason) and when it asked to run again: what to read
    // when a ShopRegion reconciles more often than its concerns explain.
    tracing::debug!(shopregion = %key, next = ?result.as_ref().ok(), "reconciled");
    if result.is_ok() {
        ctx.clear_failures(&key);
    }
    result
}

/// One reconcile of one valid ShopRegion: the concerns in order, then one
/// status write of their assembled reports.
///
/// Failover first: a promotion that is due must not wait behind the other
/// concerns' AWS reads, and they then report what it changed. The database
/// next: AWS decides the role and the endpoints the workload's topology
/// carries; the cache beside it. The workload last, unless a cloud concern
/// found the spec impossible (nothing more is built then). The failover
/// concern reports last: a promotion completes once the workload applied
/// the new role.
async fn apply(region: Arc<ShopRegion>, ctx: &Context) -> Result<Action, Error> {
    let spec_errors = validate(&region);
    if !spec_errors.is_empty() {
        // Nothing is created for an invalid spec: report and wait for a change.
        let decided = summarize(&[], &spec_errors);
        let base = region.status.clone().unwrap_or_default();
        write_status(&region, ctx, &decided, base).await?;
        return Ok(Action::await_change());
    }
    if let Some(cloud) = &ctx.cloud {
        let found = network::look_up(cloud.as_ref(), &region.spec, region.status.as_ref()).await;
        let network_errors = network::network_errors(&region.spec, found);
        if !network_errors.is_empty() {
            // Nothing of the region is created while either service's
            // network is missing. The fix is in AWS (create the group) as
            // often as in the spec, so look again without a spec change.
            let decided = summarize(&[], &network_errors);
            let base = region.status.clone().unwrap_or_default();
            write_status(&region, ctx, &decided, base).await?;
            return Ok(next_action(
                ctx,
                &region,
                Some(&[Again::Poll(requeue::NEEDS_ATTENTION)]),
            ));
        }
    }
    let children = ctx.children_synced().await?;
    let pass = Pass::new(ctx, &region)?;
    let mut upstream = Upstream::default();
    let peers = ctx.peers(&region.spec.shop);
    let failover = pass.failover(&peers);
    let failover_acted = match &failover {
        Some(concern) => Some(pass.act(concern, &mut upstream).await?),
        None => None,
    };
    let mut reports = pass.cloud_concerns(&mut upstream).await?;
    if reports.iter().all(|r| r.terminal.is_none()) {
        let workload = Workload::after(
            &ctx.client,
            children,
            &pass.namespace,
            &region,
            &upstream,
            ctx.cloud.is_some(),
        );
        let report = pass.act_and_report(&workload, &mut upstream).await?;
        reports.insert(0, report);
    }
    if let (Some(concern), Some(acted)) = (&failover, &failover_acted) {
        reports.push(concern.report(acted, &upstream));
    }
    let assembled = assemble(region.status.as_ref(), &reports);
    write_status(&region, ctx, &assembled.decided, assembled.status).await?;
    if let (Some(concern), Some(acted)) = (&failover, &failover_acted) {
        concern.once_stored(acted, &upstream);
    }
    for report in reports.iter().filter(|r| r.publish == Publish::OnceStored) {
        publish_notes(ctx, &region, &report.notes).await;
    }
    Ok(next_action(ctx, &region, assembled.again.as_deref()))
}

/// One reconcile's handle on the concerns: the context, the object and
/// where it lives.
struct Pass<'a> {
    ctx: &'a Context,
    region: &'a Arc<ShopRegion>,
    namespace: String,
    key: String,
}

impl<'a> Pass<'a> {
    fn new(ctx: &'a Context, region: &'a Arc<ShopRegion>) -> Result<Self, Error> {
        let namespace = region
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(region.name_any()))?;
        Ok(Self {
            ctx,
            region,
            namespace,
            key: object_key(region.as_ref()),
        })
    }

    /// The failover concern, when the operator runs with a cloud.
    fn failover(&'a self, peers: &'a [Arc<ShopRegion>]) -> Option<Failover<'a>> {
        let (Some(cloud), Some(runtime)) = (&self.ctx.cloud, &self.ctx.failover) else {
            return None;
        };
        Some(Failover {
            runtime,
            cloud: cloud.as_ref(),
            region: self.region,
            key: &self.key,
            peers,
            now: cloud.clock().now(),
        })
    }

    /// The database and the cache concerns' reports (none without a cloud).
    async fn cloud_concerns(&self, upstream: &mut Upstream) -> Result<Vec<Report>, Error> {
        let Some(cloud) = &self.ctx.cloud else {
            return Ok(Vec::new());
        };
        let spec = &self.region.spec;
        let previous = self.region.status.as_ref();
        let now = cloud.clock().now();
        let port = cloud.aurora(&spec.region);
        // The master password only goes into the create of a primary
        // cluster: once the status shows this region's cluster, a reconcile
        // does not read the Secret. Were the cluster deleted behind our
        // back, this reconcile reports the missing cluster and the next one
        // reads the Secret again.
        let cluster_known = previous
            .and_then(|s| s.database.as_ref())
            .is_some_and(|d| d.cluster_status.is_some());
        let master = if cluster_known {
            None
        } else {
            database_master(self.ctx, &self.namespace, spec).await?
        };
        let raised = self.raised_shape(upstream);
        let effective = aurora::capacity::effective_spec(spec, raised.as_ref());
        let database = CloudConcern(Aurora {
            port: port.as_ref(),
            spec: &effective,
            previous: previous.and_then(|s| s.database.as_ref()),
            now,
            master_password: master.as_ref(),
        });
        let database = self.act_and_report(&database, upstream).await?;
        if database.condition.reason == aurora::reason::WAITING_FOR_MASTER_SECRET {
            // Stored before the create that uses it: a crash in between
            // never leaves a primary whose password no one has.
            create_database_master(self.ctx, &self.namespace, spec).await?;
        }
        let auth = cache_auth(self.ctx, &self.namespace, spec).await?;
        let ports = |r: &str| cloud.elasticache(r);
        let cache = CloudConcern(ElastiCache {
            ports: &ports,
            spec,
            auth: &auth,
            previous: previous.and_then(|s| s.cache.as_ref()),
            rolled_auth: previous
                .and_then(|s| s.orders.as_ref())
                .and_then(|o| o.cache_auth_token.as_deref()),
            now,
        });
        let cache = self.act_and_report(&cache, upstream).await?;
        Ok(vec![database, cache])
    }

    /// The database shape this region holds for a lost writer: while it
    /// absorbs, and only if the last failover moved the writer here.
    fn raised_shape(&self, upstream: &Upstream) -> Option<aurora::capacity::RaisedShape> {
        if !upstream.absorbing {
            return None;
        }
        let spec = &self.region.spec;
        let record = self.region.status.as_ref()?.last_failover.as_ref()?;
        // A cache-follow record after the failover moves the cache primary
        // the same way, from the lost region to this one.
        if record.to != spec.region {
            return None;
        }
        let peers = self.ctx.peers(&spec.shop);
        let lost = peers.iter().find(|p| p.spec.region == record.from)?;
        aurora::capacity::raised_shape(spec, &lost.spec.database, &record.from)
    }

    /// Runs a concern up to its act, storing its checkpoint first, and
    /// hands on what the concerns after it need.
    async fn act<C: Concern>(
        &self,
        concern: &C,
        upstream: &mut Upstream,
    ) -> Result<C::Acted, Error> {
        let acted = concern::run(concern, |checkpoint| self.store(checkpoint)).await?;
        concern.hand_on(&acted, upstream);
        Ok(acted)
    }

    /// [`Self::act`], then the concern's report; Events that tell calls
    /// made go out now.
    async fn act_and_report<C: Concern>(
        &self,
        concern: &C,
        upstream: &mut Upstream,
    ) -> Result<Report, Error> {
        let acted = self.act(concern, upstream).await?;
        let report = concern.report(&acted, upstream);
        if report.publish == Publish::AsActed {
            publish_notes(self.ctx, self.region, &report.notes).await;
        }
        Ok(report)
    }

    /// Writes `status.lastFailover` with the intent of a promotion, keeping
    /// the rest of the status as stored (one server-side apply of the whole
    /// status, as every status write of the field manager), then posts its
    /// Event. A crash from here on resumes the promotion.
    async fn store(&self, checkpoint: Checkpoint) -> Result<(), kube::Error> {
        let mut status = self.region.status.clone().unwrap_or_default();
        status.last_failover = Some(checkpoint.record.clone());
        patch_status(&self.ctx.client, self.region, &status).await?;
        info!(
            shopregion = %self.key,
            kind = ?checkpoint.record.kind,
            from = %checkpoint.record.from,
            to = %checkpoint.record.to,
            "promotion intent recorded"
        );
        publish_notes(self.ctx, self.region, &[checkpoint.note]).await;
        Ok(())
    }
}

/// When to reconcile again. Children are watched, so their progress wakes
/// the reconcile by itself; the cloud is polled; the failover engine wakes
/// when its decision may change by itself. The periodic requeue re-checks
/// drift that nothing reports. `None`: the spec cannot be satisfied; wait
/// for it to change.
fn next_action(ctx: &Context, region: &ShopRegion, again: Option<&[Again]>) -> Action {
    let Some(again) = again else {
        return Action::await_change();
    };
    let periodic = Duration::from_secs(300);
    // On a tie the wake wins: its instant must not be missed.
    let soonest = again
        .iter()
        .map(|a| match *a {
            Again::Poll(delay) => (ctx.requeue(delay), Lane::Steady),
            Again::Wake(delay) => (ctx.wake(delay), Lane::Urgent),
        })
        .min_by_key(|&(delay, lane)| (delay, lane == Lane::Steady));
    match soonest {
        Some((delay, lane)) if delay < periodic => {
            if lane == Lane::Urgent {
                let peers = ctx.peers(&region.spec.shop);
                ctx.hurry_urgent(&region.spec.shop, [region], &peers);
            }
            Action::requeue(delay)
        }
        _ => Action::requeue(periodic),
    }
}

/// One server-side apply of the whole status on `/status`.
async fn patch_status(
    client: &Client,
    region: &ShopRegion,
    status: &ShopRegionStatus,
) -> Result<(), kube::Error> {
    let api: Api<ShopRegion> =
        Api::namespaced(client.clone(), &region.namespace().unwrap_or_default());
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
    Ok(())
}

/// The shop's database master password, from its Secret; `None` until the
/// region that creates the primary has stored one.
async fn database_master(
    ctx: &Context,
    namespace: &str,
    spec: &ShopRegionSpec,
) -> Result<Option<MasterPassword>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets.get_opt(&aurora::master_secret_name(spec)).await?;
    Ok(secret.as_ref().and_then(aurora::master_password_in))
}

/// Creates the shop's master Secret with a new password. Another region
/// that created it first wins: its password is the one used.
async fn create_database_master(
    ctx: &Context,
    namespace: &str,
    spec: &ShopRegionSpec,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = aurora::master_secret(spec, namespace, &aurora::generate_password());
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
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
    // references; cloud resources follow the spec's deletion policies.
    if let Some(runtime) = &ctx.failover {
        // A ShopRegion being deleted takes no part in failovers any more.
        runtime.forget(&object_key(region.as_ref()), &region);
    }
    if let Some(cloud) = &ctx.cloud {
        let spec = &region.spec;
        // The cache and the database are independent: each pass advances
        // both, and the finalizer goes when both are done.
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
        match deletion_state(&outcomes) {
            Deletion::Done => {}
            Deletion::Pending(requeue) => return Err(Error::CleanupPending(ctx.requeue(requeue))),
            Deletion::Blocked(blocked) => {
                return Err(deletion_blocked(&region, ctx, blocked).await?);
            }
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

/// Where the deletion of a ShopRegion's cloud resources stands.
#[derive(Debug, PartialEq)]
pub enum Deletion {
    Done,
    /// Under way: look again after the shortest of the concerns' delays.
    Pending(Duration),
    /// A concern may not delete (a human must act): its condition.
    Blocked(Vec<Desired>),
}

/// The deletion's state from each cloud concern's pass (by condition type).
pub fn deletion_state(outcomes: &[(&'static str, CleanupOutcome)]) -> Deletion {
    let blocked: Vec<Desired> = outcomes
        .iter()
        .filter_map(|(type_, outcome)| match outcome {
            CleanupOutcome::Blocked { reason, message } => Some(Desired::new(
                type_,
                Status::False,
                reason.clone(),
                message.clone(),
            )),
            _ => None,
        })
        .collect();
    if !blocked.is_empty() {
        return Deletion::Blocked(blocked);
    }
    outcomes
        .iter()
        .filter_map(|(_, outcome)| match outcome {
            CleanupOutcome::InProgress { requeue } => Some(*requeue),
            _ => None,
        })
        .min()
        .map_or(Deletion::Done, Deletion::Pending)
}

/// The blocked conditions that need an Event of their own: a condition that
/// leaves True gets its transition Event; one that was already False for
/// another reason would otherwise say nothing.
pub fn blocked_news<'a>(stored: &[Condition], blocked: &'a [Desired]) -> Vec<&'a Desired> {
    blocked
        .iter()
        .filter(|decided| {
            find(stored, decided.type_)
                .is_some_and(|c| c.status != "True" && c.reason != decided.reason)
        })
        .collect()
}

/// Reports a blocked deletion (conditions, Events) and returns the error
/// that keeps the finalizer.
async fn deletion_blocked(
    region: &ShopRegion,
    ctx: &Context,
    blocked: Vec<Desired>,
) -> Result<Error, Error> {
    let stored = region
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    for decided in blocked_news(stored, &blocked) {
        publish(
            ctx,
            region,
            EventType::Warning,
            &decided.reason,
            &decided.message,
        )
        .await;
    }
    let base = region.status.clone().unwrap_or_default();
    write_status(region, ctx, &blocked, base).await?;
    Ok(Error::DeletionBlocked {
        reason: blocked[0].reason.clone(),
        message: blocked
            .iter()
            .map(|d| d.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    })
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
    patch_status(&ctx.client, region, &status).await?;
    debug!(
        shopregion = %ObjectRef::from_obj(region),
        fields = %changed_fields(region.status.as_ref(), &status).join(","),
        "status written"
    );
    for event in events_for(&transitions) {
        publish(ctx, region, event.type_, &event.reason, &event.note).await;
    }
    Ok(())
}

/// The status fields a write changes, as `database.replicationLagSeconds`
/// (conditions by type): what tells why a fleet that should be at rest keeps
/// writing.
pub fn changed_fields(
    stored: Option<&ShopRegionStatus>,
    written: &ShopRegionStatus,
) -> Vec<String> {
    let fields = |status: Option<&ShopRegionStatus>| -> BTreeMap<String, serde_json::Value> {
        let mut fields = BTreeMap::new();
        let Some(serde_json::Value::Object(top)) = status.map(|s| json!(s)) else {
            return fields;
        };
        for (key, value) in top {
            match value {
                serde_json::Value::Object(inner) => {
                    for (field, value) in inner {
                        fields.insert(format!("{key}.{field}"), value);
                    }
                }
                serde_json::Value::Array(items) if key == "conditions" => {
                    for item in items {
                        let type_ = item["type"].as_str().unwrap_or_default().to_string();
                        fields.insert(format!("conditions.{type_}"), item);
                    }
                }
                value => {
                    fields.insert(key, value);
                }
            }
        }
        fields
    };
    let before = fields(stored);
    let after = fields(Some(written));
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(name, value)| before.get(*name) != Some(value))
        .map(|(name, _)| name.clone())
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|name| !after.contains_key(*name))
            .cloned(),
    );
    changed.sort();
    changed
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

/// The Events of one status write. `Ready` going False with the reason
/// `Stalled` goes True with is one piece of news, told once, by `Stalled`.
pub fn events_for(transitions: &[Transition]) -> Vec<TransitionEvent> {
    let stalled_now: Vec<&str> = transitions
        .iter()
        .filter(|t| t.type_ == types::STALLED && t.to == "True")
        .map(|t| t.reason.as_str())
        .collect();
    transitions
        .iter()
        .filter(|t| {
            !(t.type_ == types::READY && t.to != "True" && stalled_now.contains(&t.reason.as_str()))
        })
        .filter_map(event_for)
        .collect()
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

fn object_key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// The controller cache's key of `region`.
fn cache_key(region: &ShopRegion) -> ObjectRef<PackedShopRegion> {
    ObjectRef::new(&region.name_any()).within(&region.namespace().unwrap_or_default())
}

/// A cached ShopRegion, decoded.
fn unpack(packed: &PackedShopRegion) -> Result<ShopRegion, Error> {
    packed
        .unpack()
        .ok_or_else(|| Error::CacheDamaged(object_key(packed)))
}

fn error_policy(region: Arc<PackedShopRegion>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Finalizer(inner) = error
        && let finalizer::Error::CleanupFailed(Error::CleanupPending(delay)) = inner.as_ref()
    {
        // Not a failure: the cloud is deleting, poll at its pace.
        return Action::requeue(*delay);
    }
    let failures = ctx.record_failure(&object_key(region.as_ref()));
    let delay = backoff(failures);
    if let Some(message) = error.forbidden() {
        // Not a blip: nothing changes until someone mends the RBAC. Say
        // exactly which permission is missing, once per run of failures.
        error!(
            shopregion = %object_key(region.as_ref()),
            permission_denied = %message,
            "the operator lacks a permission; fix the Role or ClusterRole (docs/install.md)"
        );
        if failures == 1
            && let Some(region) = region.unpack()
        {
            let ctx = ctx.clone();
            let note = message.to_string();
            tokio::spawn(async move {
                publish(&ctx, &region, EventType::Warning, "PermissionDenied", &note).await;
            });
        }
        return Action::requeue(delay);
    }
    warn!(
        shopregion = %object_key(region.as_ref()),
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
pub fn members_of(regions: &[Arc<PackedShopRegion>], shop: &str) -> Vec<Arc<ShopRegion>> {
    regions
        .iter()
        .filter(|region| region.shop() == shop)
        .filter_map(|region| region.unpack())
        .map(Arc::new)
        .collect()
}

/// Whether a change of its shop's health verdicts, or a failover instant,
/// makes the reconcile of `region` urgent. While the shop's writer region
/// is judged anything but healthy, only a region that may take over is:
/// one judged healthy, other than the writer. The candidates promote in
/// turns of `takeoverGrace` each, so every one of them must be on time for
/// its own turn, not only the first. In a region outage every shop's
/// verdicts change at once, and the promotions must not queue behind the
/// ShopRegions of the lost region, which only record what they see. Pure.
pub fn in_a_hurry(
    region: &ShopRegion,
    members: &[Arc<ShopRegion>],
    verdicts: &BTreeMap<String, HealthVerdict>,
) -> bool {
    // The writer most ShopRegions report (after a failover the lost
    // region's may still name the old one), the first by name on a tie:
    // the same answer whatever the cache's order.
    let mut reported: BTreeMap<&str, usize> = BTreeMap::new();
    for member in members {
        if let Some(writer) = member
            .status
            .as_ref()
            .and_then(|s| s.writer_region.as_deref())
        {
            *reported.entry(writer).or_default() += 1;
        }
    }
    let most = reported.values().copied().max().unwrap_or(0);
    let Some(writer) = reported.iter().find(|(_, n)| **n == most).map(|(w, _)| *w) else {
        return true;
    };
    let healthy = |r: &str| verdicts.get(r) == Some(&HealthVerdict::Healthy);
    if healthy(writer) {
        return true;
    }
    let may_take_over = |r: &String| r != writer && healthy(r);
    if !region.spec.failover.order.iter().any(may_take_over) {
        return true;
    }
    may_take_over(&region.spec.region)
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
    // The ShopRegion cache, packed (`PackedShopRegion`: slimmed, spec and
    // status deflated) and unpacked for the reconcile that reads it.
    let (reader, writer) = reflector::store();
    //
    // A ShopRegion is reconciled when its spec changes (its generation, also
    // bumped when it is marked for deletion), or its finalizers, labels or
    // annotations do (a user's or Argo CD's touch), not when only its status
    // does: the operator's own status writes would each reconcile it once
    // more, a dozen times per ShopRegion in a region outage. What a status
    // change of a peer means reaches the reconcile through the cache and
    // the health verdicts' triggers instead.
    let packed: Api<PackedShopRegion> = scoped(&client, &scope);
    let shopregions = watcher(packed, watcher::Config::default().any_semantic())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::finalizers)
                .combine(predicates::labels)
                .combine(predicates::annotations),
            Default::default(),
        );
    // The children: each watch fills the cache the workload concern reads
    // and triggers its owner's reconcile on every change, deletion included.
    fn cached<K>(
        api: Api<K>,
        config: &watcher::Config,
        cache: &JsonCache<K>,
    ) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let cache = cache.clone();
        let failures = cache.clone();
        watcher(api, config.clone())
            .map_ok(move |event| {
                cache.apply(&event);
                event
            })
            .inspect_err(move |error| failures.failed(error))
            .touched_objects()
    }
    let stores = ctx.children.get_or_init(ChildStores::new).clone();
    let configmap_changes = cached(configmaps, &children, &stores.configmaps);
    let service_changes = cached(services, &children, &stores.services);
    let deployment_changes = cached(deployments, &children, &stores.deployments);
    let pdb_changes = cached(pdbs, &children, &stores.pdbs);
    let hpa_changes = cached(hpas, &children, &stores.hpas);
    let mut controller = Controller::for_stream(shopregions, reader)
        .owns_stream(deployment_changes)
        .owns_stream(service_changes)
        .owns_stream(configmap_changes)
        .owns_stream(hpa_changes)
        .owns_stream(pdb_changes)
        // No bound in kube-runtime's runner: `reconcile` takes a slot in
        // due order (see there).
        .with_config(kube::runtime::controller::Config::default().concurrency(0));
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
        let hurried = ctx.clone();
        let members = changes.flat_map(move |shop| {
            let members = members_of(&store.state(), &shop);
            hurried.hurry_urgent(&shop, members.iter().map(AsRef::as_ref), &members);
            let keys: Vec<_> = members.iter().map(|m| cache_key(m)).collect();
            futures::stream::iter(keys)
        });
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
    use crate::cache::LAST_APPLIED;

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
    fn a_status_write_names_the_fields_it_changed() {
        use crate::api::DatabaseStatus;
        let stored = ShopRegionStatus {
            database: Some(DatabaseStatus {
                readers: 2,
                replication_lag_seconds: Some(0.2),
                ..Default::default()
            }),
            writer_region: Some("us-east-1".into()),
            ..Default::default()
        };
        let mut written = stored.clone();
        written.database.as_mut().unwrap().replication_lag_seconds = Some(3.5);
        written.writer_region = None;
        written.conditions = vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Available".into(),
            message: "ok".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }];
        assert_eq!(
            changed_fields(Some(&stored), &written),
            [
                "conditions.Ready",
                "database.replicationLagSeconds",
                "writerRegion"
            ]
        );
        assert_eq!(changed_fields(Some(&stored), &stored), Vec::<String>::new());
    }

    #[test]
    fn the_cache_keeps_no_managed_fields_nor_applied_copy_but_every_other_annotation() {
        let mut region = crate::api::fixtures::acme_region("eu-west-1");
        region.metadata.managed_fields = Some(vec![Default::default()]);
        region.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{\"spec\":{}}".to_string()),
                (
                    "argocd.argoproj.io/tracking-id".to_string(),
                    "shop".to_string(),
                ),
            ]
            .into(),
        );
        let region = PackedShopRegion::pack(region).unwrap().unpack().unwrap();
        assert_eq!(region.metadata.managed_fields, None);
        assert_eq!(
            region
                .metadata
                .annotations
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["argocd.argoproj.io/tracking-id"]
        );
    }

    #[test]
    fn stalled_becoming_true_and_ready_becoming_false_are_warnings() {
        let both = [
            transition(types::READY, Some("True"), "False"),
            transition(types::STALLED, Some("False"), "True"),
        ];
        let events = events_for(&both);
        assert_eq!(events.len(), 1, "one Warning for one piece of news");
        assert!(events[0].note.starts_with("Stalled is True"));
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
    fn a_deletion_waits_for_the_slowest_concern_and_a_blocked_one_keeps_the_finalizer() {
        let pending = |secs| CleanupOutcome::InProgress {
            requeue: Duration::from_secs(secs),
        };
        assert_eq!(
            deletion_state(&[
                (types::DATABASE_READY, CleanupOutcome::Done),
                (types::CACHE_READY, CleanupOutcome::Done)
            ]),
            Deletion::Done
        );
        assert_eq!(
            deletion_state(&[
                (types::DATABASE_READY, pending(30)),
                (types::CACHE_READY, pending(10))
            ]),
            Deletion::Pending(Duration::from_secs(10))
        );
        let blocked = CleanupOutcome::Blocked {
            reason: "DeletionRefused".into(),
            message: "AWS refused".into(),
        };
        let Deletion::Blocked(conditions) = deletion_state(&[
            (types::DATABASE_READY, pending(10)),
            (types::CACHE_READY, blocked),
        ]) else {
            panic!("a refusal blocks the deletion");
        };
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].type_, types::CACHE_READY);
    }

    #[test]
    fn a_blocked_deletion_warns_once_per_new_reason() {
        let blocked = [Desired::new(
            types::CACHE_READY,
            Status::False,
            "DeletionRefused",
            "AWS refused",
        )];
        let stored = |status: &str, reason: &str| Condition {
            type_: types::CACHE_READY.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::from_second(1_700_000_000).unwrap(),
            ),
        };
        // Leaving True: the transition's own Event says it.
        assert!(blocked_news(&[stored("True", "Available")], &blocked).is_empty());
        // Already False for another reason: nothing else would say it.
        assert_eq!(
            blocked_news(&[stored("False", "Deleting")], &blocked).len(),
            1
        );
        // The same refusal again: already said.
        assert!(blocked_news(&[stored("False", "DeletionRefused")], &blocked).is_empty());
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

    fn acme_shop(writer: &str) -> Vec<Arc<ShopRegion>> {
        ["us-east-1", "eu-west-1", "ap-northeast-1"]
            .into_iter()
            .map(|name| {
                let mut region = crate::api::fixtures::acme_region(name);
                region.status = Some(ShopRegionStatus {
                    writer_region: Some(writer.into()),
                    ..Default::default()
                });
                Arc::new(region)
            })
            .collect()
    }

    /// The verdicts of us-east-1, eu-west-1 and ap-northeast-1, in that order.
    fn judged(verdicts: [HealthVerdict; 3]) -> BTreeMap<String, HealthVerdict> {
        ["us-east-1", "eu-west-1", "ap-northeast-1"]
            .into_iter()
            .map(String::from)
            .zip(verdicts)
            .collect()
    }

    fn hurried(
        shop: &[Arc<ShopRegion>],
        verdicts: &BTreeMap<String, HealthVerdict>,
    ) -> Vec<String> {
        shop.iter()
            .filter(|r| in_a_hurry(r, shop, verdicts))
            .map(|r| r.spec.region.clone())
            .collect()
    }

    #[test]
    fn a_lost_writer_hurries_only_the_regions_that_may_take_over() {
        use HealthVerdict::*;
        let shop = acme_shop("us-east-1");
        let lost = judged([Unhealthy, Healthy, Healthy]);
        assert_eq!(hurried(&shop, &lost), ["eu-west-1", "ap-northeast-1"]);
        let next_also_down = judged([Unknown, Unhealthy, Healthy]);
        assert_eq!(hurried(&shop, &next_also_down), ["ap-northeast-1"]);
    }

    #[test]
    fn the_writer_most_shopregions_report_decides_whoever_the_cache_lists_first() {
        use HealthVerdict::*;
        let mut shop = acme_shop("eu-west-1");
        // The lost region's ShopRegion still names the writer it had.
        let mut stale = (*shop[0]).clone();
        stale.status.as_mut().unwrap().writer_region = Some("us-east-1".into());
        shop[0] = Arc::new(stale);
        // The new writer is well: nothing to take over, every region as usual.
        let old_writer_still_lost = judged([Unhealthy, Healthy, Healthy]);
        assert_eq!(hurried(&shop, &old_writer_still_lost).len(), 3);
        shop.reverse();
        assert_eq!(hurried(&shop, &old_writer_still_lost).len(), 3);
    }

    #[test]
    fn a_healthy_writer_or_no_one_to_take_over_hurries_every_region() {
        use HealthVerdict::*;
        let shop = acme_shop("us-east-1");
        let secondary_lost = judged([Healthy, Unhealthy, Healthy]);
        assert_eq!(hurried(&shop, &secondary_lost).len(), 3);
        let nobody_healthy = judged([Unhealthy, Unknown, Unknown]);
        assert_eq!(hurried(&shop, &nobody_healthy).len(), 3);
        let writer_never_seen: Vec<Arc<ShopRegion>> = ["us-east-1", "eu-west-1"]
            .into_iter()
            .map(|r| Arc::new(crate::api::fixtures::acme_region(r)))
            .collect();
        assert_eq!(hurried(&writer_never_seen, &nobody_healthy).len(), 2);
    }

    #[test]
    fn a_verdict_change_reconciles_the_shops_regions_only() {
        let region = |shop: &str, name: &str| {
            let mut r = crate::api::fixtures::acme_region("eu-west-1");
            r.spec.shop = shop.into();
            r.metadata.name = Some(name.into());
            r.metadata.namespace = Some("shop".into());
            Arc::new(PackedShopRegion::pack(r).unwrap())
        };
        let regions = [
            region("acme", "acme-eu-west-1"),
            region("globex", "globex-eu-west-1"),
            region("acme", "acme-us-east-1"),
        ];
        let names: Vec<String> = members_of(&regions, "acme")
            .iter()
            .map(|r| r.name_any())
            .collect();
        assert_eq!(names, ["acme-eu-west-1", "acme-us-east-1"]);
        assert!(members_of(&regions, "initech").is_empty());
    }
}
