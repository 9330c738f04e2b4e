//! One shared observation of each region and service, serving every shop's
//! health sampler and every reconcile.
//!
//! Asked one resource at a time, the AWS reads of a fleet grow with shops ×
//! regions: every reconcile describes its global cluster, cluster,
//! instances, replication group and Global Datastore, and every sampler
//! round its cluster and group in every region. A thousand shops would send
//! hundreds of describes a second to each region, far beyond what RDS and
//! ElastiCache allow before they throttle, and the throttling would arrive
//! during a region outage, when detection needs the reads most.
//!
//! [`SharedView`] is a [`Cloud`] in front of the real one. Per region it
//! keeps the answer of one region-wide, paginated listing of each kind
//! (`DescribeGlobalClusters`, `DescribeDBClusters`, `DescribeDBInstances`,
//! `DescribeReplicationGroups`, `DescribeGlobalReplicationGroups`, and the
//! replication lags in batched `GetMetricData`), read by the first caller
//! that needs a newer one and shared by every other. The reads per region
//! then depend on the number of resources there divided by a page, not on
//! how many shops ask.
//!
//! How new a listing a read of one resource needs ([`need_for`]):
//! - a settled resource: at most [`MAX_AGE`] old;
//! - a resource this process changed (an action's own result: a create, a
//!   failover, a modify): a listing begun after the change;
//! - a resource the listing shows in motion (creating, modifying, failing
//!   over): at most [`IN_MOTION_MAX_AGE`] old, or the listing's interval
//!   when longer ([`in_motion_max_age`]), so that a change under way is
//!   followed closely.
//!
//! A converged fleet is served by one listing of each kind per region every
//! [`MAX_AGE`]. A fleet in motion, a thousand shops coming up or failing
//! over in the same minute, is served by one listing of each kind per
//! interval ([`listing_interval`], which grows with the listing's pages),
//! each answering every shop whose change came before it began: never one
//! read per shop, and never more than two thirds of the region's budget
//! (a bootstrap of a thousand shops re-listing its 30 pages of instances
//! back to back took all of it, and every other read of every reconcile
//! waited for the budget). Only a sampler whose probe failed gets a listing
//! of its own round at once: that is how an outage is seen.
//!
//! A listing that failed (throttled, region unreachable) answers with its
//! error for [`FAILED_MAX_AGE`], for every resource of the region: one
//! failing call per region and kind, not one per shop. The samplers turn it
//! into "no data", never into "down" (see `failover::health::database_signal`).
//!
//! Every read, shared or not, goes through the region's
//! [`RequestBudget`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use super::aurora::port::{
    AuroraPort, Cluster, ClusterStatus, CreateClusterRequest, CreateGlobalClusterRequest,
    CreateInstanceRequest, DESCRIBE_PAGE, DeleteClusterRequest, GlobalCluster, GlobalClusterStatus,
    Instance, InstanceStatus, METRIC_QUERIES_PER_CALL, ModifyClusterRequest,
    ModifyGlobalClusterRequest, ModifyInstanceRequest, RegionInstance, SubnetGroup, instances_of,
};
use super::budget::RequestBudget;
use super::elasticache::names::{find_global, suffix_of};
use super::elasticache::port::{
    CreateGlobalReplicationGroupRequest, CreateReplicationGroupRequest,
    DeleteReplicationGroupRequest, ElastiCachePort, GlobalMemberStatus, GlobalReplicationGroup,
    ModifyReplicationGroupRequest, ReplicationGroup, ReplicationGroupStatus,
};
use super::{Cloud, CloudError, Tags, arn_region, real_delay};
use crate::clock::{Clock, elapsed};
use crate::probe::Probe;

/// How old a listing may be for a settled resource. A converged resource
/// changes only when someone changes it (this process reads its own changes
/// in a newer listing), so this bounds how late a change made elsewhere
/// (the console, another tool, AWS maintenance) is seen, and the steady
/// cost: a thousand shops are about 70 pages per region per interval.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// How old a listing may be for a resource in motion: one sampling round,
/// or the listing's own interval ([`listing_interval`]) when it is longer.
pub const IN_MOTION_MAX_AGE: Duration = Duration::from_secs(5);

/// The kinds of region-wide listing that share a region's budget.
const LISTING_KINDS: u32 = 5;

/// The share of a region's budget the listings may take together while a
/// fleet is in motion; the rest stays for the reads no listing answers
/// (replication lags, tags, lookups).
const LISTINGS_SHARE: f64 = 2.0 / 3.0;

/// How long a failed listing answers with its error before it is tried
/// again: one sampling round.
pub const FAILED_MAX_AGE: Duration = Duration::from_secs(5);

/// How old a replication lag may be. CloudWatch publishes the lag metrics
/// at one-minute resolution: reading them more often costs API calls (and
/// GetMetricData is billed per metric) for the same data points.
pub const LAG_MAX_AGE: Duration = Duration::from_secs(60);

/// How soon after a read of a region's lags the ids asked for since are
/// read: a new secondary's lag is known this late at most.
pub const LAG_NEW_ID_INTERVAL: Duration = Duration::from_secs(15);

/// How long a resource whose lag was asked for stays in every batch of its
/// region.
const LAG_WANTED_FOR: Duration = Duration::from_secs(600);

/// How old a Redis group's tags may be: no region-wide call lists them
/// (`ListTagsForResource` is one call per group), and they change only when
/// this process changes them or someone edits them by hand.
pub const CACHE_TAGS_MAX_AGE: Duration = Duration::from_secs(3600);

/// One listing, as it answered.
#[derive(Debug)]
pub struct Taken<T> {
    /// When it began: it shows no change made after this.
    pub at: Timestamp,
    /// Its place in this process's order of listings and changes: it shows
    /// every change of a smaller number.
    pub seq: u64,
    /// The requests it took (or, failed, the ones it was charged for).
    pub pages: u32,
    pub result: Result<T, CloudError>,
}

impl<T> Taken<T> {
    /// Whether it may answer at `now` ([`answers`]).
    fn answers(&self, now: Timestamp, max_age: Duration, need: Need) -> bool {
        answers(self.at, self.seq, self.result.is_err(), now, max_age, need)
    }
}

/// How new a listing a caller needs, beyond [`MAX_AGE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Need {
    /// Begun at or after this instant.
    pub since: Option<Timestamp>,
    /// Begun after the change of this number.
    pub after: Option<u64>,
}

impl Need {
    pub fn since(at: Timestamp) -> Self {
        Self {
            since: Some(at),
            after: None,
        }
    }

    /// Whether a listing begun `at`, numbered `seq`, is new enough.
    pub fn met_by(&self, at: Timestamp, seq: u64) -> bool {
        self.since.is_none_or(|since| at >= since) && self.after.is_none_or(|after| seq > after)
    }
}

/// Whether a listing may answer at `now`: younger than `max_age`
/// ([`FAILED_MAX_AGE`] when it failed), and as new as `need` asks.
pub fn answers(
    at: Timestamp,
    seq: u64,
    failed: bool,
    now: Timestamp,
    max_age: Duration,
    need: Need,
) -> bool {
    let max_age = if failed {
        max_age.min(FAILED_MAX_AGE)
    } else {
        max_age
    };
    at <= now && elapsed(at, now) < max_age && need.met_by(at, seq)
}

/// What a read of one resource needs of the listing, given the number of
/// this process's last change of it and, when the listing at hand shows it
/// in motion, how old a listing may then be ([`in_motion_max_age`]).
pub fn need_for(changed: Option<u64>, in_motion: Option<Duration>, now: Timestamp) -> Need {
    Need {
        since: in_motion.map(|max_age| crate::clock::before(now, max_age)),
        after: changed,
    }
}

/// How often a listing of `pages` requests may begin when callers want a
/// newer one, so that the listings of a region in motion take no more than
/// [`LISTINGS_SHARE`] of its budget of `per_second` requests: a listing of a
/// thousand shops' instances (30 pages) every 22 s at 10 requests/s, a
/// small fleet's one page at once ([`turn_of`]). A change of this process is
/// then seen at most one interval late, by every shop at once, and a fleet
/// in motion never spends the budget the other reads need.
pub fn listing_interval(pages: u32, per_second: u32) -> Duration {
    let per_kind = f64::from(per_second.max(1)) * LISTINGS_SHARE / f64::from(LISTING_KINDS);
    Duration::from_secs_f64(f64::from(pages.max(1)) / per_kind)
}

/// How old a listing of `pages` requests may be for a resource in motion:
/// one sampling round, or the listing's interval when that is longer (a
/// listing that may not begin sooner cannot be asked to be newer).
pub fn in_motion_max_age(pages: u32, per_second: u32) -> Duration {
    IN_MOTION_MAX_AGE.max(listing_interval(pages, per_second))
}

/// How long a caller whose `need` the listing at hand (begun `at`, of
/// `pages` requests, `failed` or not) does not meet waits before a new one
/// begins: the rest of the listing's interval. A caller that needs a
/// listing begun later than this one (`need.since`: a sampler whose probe
/// failed, which is how an outage is detected, or a resource in motion
/// past its interval) and a failed listing never wait; the second costs
/// AWS nothing. Nor does a caller of a one-page listing: one request, as a
/// describe of the one resource would be, and a small fleet's actions are
/// then followed on the instant they complete.
pub fn turn_of(
    at: Timestamp,
    pages: u32,
    failed: bool,
    need: Need,
    now: Timestamp,
    per_second: u32,
) -> Duration {
    if failed || pages <= 1 || need.since.is_some_and(|since| at < since) || at > now {
        return Duration::ZERO;
    }
    listing_interval(pages, per_second).saturating_sub(elapsed(at, now))
}

/// No change under way: what a converged reconcile sees.
fn global_cluster_settled(g: &GlobalCluster) -> bool {
    g.status == GlobalClusterStatus::Available && g.failover.is_none()
}

fn cluster_settled(c: &Cluster) -> bool {
    c.status == ClusterStatus::Available
}

fn instance_settled(i: &Instance) -> bool {
    i.status == InstanceStatus::Available
}

fn group_settled(g: &ReplicationGroup) -> bool {
    g.status == ReplicationGroupStatus::Available
}

fn global_group_settled(g: &GlobalReplicationGroup) -> bool {
    g.status.is_settled()
        && g.members
            .iter()
            .all(|m| m.status == GlobalMemberStatus::Associated)
}

/// What this process changed, so that its next read of it waits for a
/// listing begun after the change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Changed {
    GlobalCluster(String),
    /// A regional resource: (region, identifier).
    Cluster(String, String),
    /// Instances added to or removed from a cluster: (region, cluster).
    InstancesOf(String, String),
    Instance(String, String),
    Group(String, String),
    /// A Global Datastore, by suffix (AWS chose the prefix).
    GlobalGroup(String),
    Tags(String),
}

/// A listing under way.
type Listing<'a, T> = std::pin::Pin<Box<dyn Future<Output = Arc<Taken<T>>> + Send + 'a>>;

/// One region-wide listing of one kind, shared.
struct Shared<T> {
    current: tokio::sync::Mutex<Option<Arc<Taken<T>>>>,
    /// How many resources the last listing found: the pages the next one
    /// costs the budget.
    found: AtomicUsize,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self {
            current: tokio::sync::Mutex::new(None),
            found: AtomicUsize::new(0),
        }
    }
}

/// The pages of a listing of `found` resources.
fn pages(found: usize, per_page: usize) -> u32 {
    u32::try_from(found.div_ceil(per_page).max(1)).unwrap_or(u32::MAX)
}

impl<T> Shared<T> {
    /// The current listing if it answers, else a new one by `read` once it
    /// is the listing's turn ([`turn_of`]; callers arriving meanwhile wait
    /// for it instead of making their own), sent within `region`'s budget.
    async fn get<F, Fut>(
        &self,
        state: &State,
        region: &str,
        max_age: Duration,
        need: Need,
        read: F,
        count: fn(&T) -> usize,
    ) -> Arc<Taken<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let mut waited = false;
        let mut current = loop {
            let current = self.current.lock().await;
            let now = state.now();
            let Some(taken) = current.as_ref() else {
                break current;
            };
            if taken.answers(now, max_age, need) {
                return taken.clone();
            }
            let turn = turn_of(
                taken.at,
                taken.pages,
                taken.result.is_err(),
                need,
                now,
                state.budget.per_second(),
            );
            if waited || turn.is_zero() {
                break current;
            }
            // Wait for the listing's turn without holding it: callers the
            // listing at hand answers are not held back, and the ones that
            // wait meanwhile are answered by the first new one.
            drop(current);
            state.sleep(turn).await;
            waited = true;
        };
        let now = state.now();
        let seq = state.next_seq();
        let cost = pages(self.found.load(Ordering::Relaxed), DESCRIBE_PAGE);
        let result = state.send(region, cost, read()).await;
        let taken_pages = match &result {
            Ok(found) => {
                let found = count(found);
                self.found.store(found, Ordering::Relaxed);
                pages(found, DESCRIBE_PAGE)
            }
            Err(_) => cost,
        };
        let taken = Arc::new(Taken {
            at: now,
            seq,
            pages: taken_pages,
            result,
        });
        *current = Some(taken.clone());
        taken
    }
}

/// The lags of a region's secondaries, and which ones are asked for.
#[derive(Default)]
struct Lags {
    read: Shared<BTreeMap<String, Option<Duration>>>,
    /// Every resource asked for lately, with when: each read covers them all.
    wanted: Mutex<BTreeMap<String, Timestamp>>,
}

impl Lags {
    /// Records that `ids` are wanted at `now`. Cheap: every sampler of a
    /// region calls it every round, and only a new read lists them all.
    fn want<'i>(&self, ids: impl IntoIterator<Item = &'i str>, now: Timestamp) {
        let mut wanted = lock(&self.wanted);
        for id in ids {
            match wanted.get_mut(id) {
                Some(asked) => *asked = now,
                None => {
                    wanted.insert(id.to_string(), now);
                }
            }
        }
    }

    /// The ids still wanted at `now`, for a new read.
    fn wanted(&self, now: Timestamp) -> Vec<String> {
        let mut wanted = lock(&self.wanted);
        wanted.retain(|_, asked| elapsed(*asked, now) < LAG_WANTED_FOR);
        wanted.keys().cloned().collect()
    }

    /// The read at hand when it answers `need`; else the slot, locked, for
    /// a new read. An `id` asked for the first time (as each new secondary
    /// of a fleet coming up is) is in the next read, due at the latest
    /// [`LAG_NEW_ID_INTERVAL`] after the one at hand: until then it has no
    /// data point ([`LagObservation::covers`] tells). One read per new id
    /// was a read every second while a thousand shops came up.
    async fn at_hand<'a>(
        &'a self,
        state: &State,
        id: &str,
        need: Need,
    ) -> Result<Arc<LagObservation>, tokio::sync::MutexGuard<'a, Option<Arc<LagObservation>>>> {
        let current = self.read.current.lock().await;
        // Read after the lock: a read begun while this caller waited for
        // it is not one "from the future".
        let now = state.now();
        let Some(taken) = current.as_ref() else {
            return Err(current);
        };
        let answers = taken.answers(now, LAG_MAX_AGE, need);
        let new_ids_wait = elapsed(taken.at, now)
            < LAG_NEW_ID_INTERVAL.max(listing_interval(taken.pages, state.budget.per_second()));
        if answers && (taken.covers(id) || new_ids_wait) {
            return Ok(taken.clone());
        }
        Err(current)
    }
}

#[derive(Default)]
struct RegionState {
    global_clusters: Shared<ById<GlobalCluster>>,
    clusters: Shared<ById<Cluster>>,
    instances: Shared<Vec<RegionInstance>>,
    groups: Shared<ById<ReplicationGroup>>,
    global_groups: Shared<Vec<GlobalReplicationGroup>>,
    database_lags: Lags,
    cache_lags: Lags,
    cache_tags: Mutex<HashMap<String, (Timestamp, u64, Tags)>>,
    /// Subnet groups by name. A fleet's ShopRegions in one region mostly
    /// name the same few (one VPC), and each looks its groups up on every
    /// reconcile until its resources exist: shared, a bootstrap of a
    /// thousand shops costs one lookup per name every [`MAX_AGE`], not one
    /// per reconcile.
    database_subnet_groups: Lookups<Option<SubnetGroup>>,
    cache_subnet_groups: Lookups<bool>,
    /// Default engine versions by `engine/major`: a fleet creates its
    /// clusters of one engine, each asking which minor version is the
    /// default just before its create.
    engine_versions: Lookups<Option<String>>,
}

/// Lookups by name, each shared.
type Lookups<T> = Mutex<HashMap<String, Arc<Shared<T>>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the maps consistent before it could panic.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct State {
    cloud: Arc<dyn Cloud>,
    budget: RequestBudget,
    regions: Mutex<HashMap<String, Arc<RegionState>>>,
    /// This process's changes, by number, with when.
    changed: Mutex<HashMap<Changed, (u64, Timestamp)>>,
    /// Numbers listings and changes in the order they happen (the clock may
    /// not move between them: a simulation on exact virtual time).
    sequence: AtomicU64,
}

impl State {
    fn now(&self) -> Timestamp {
        self.cloud.clock().now()
    }

    /// `name` by `read`, through its shared lookup among `lookups`: at
    /// most [`MAX_AGE`] old, one read in flight.
    async fn looked_up<T: Clone, Fut>(
        &self,
        region: &str,
        lookups: &Lookups<T>,
        name: &str,
        read: impl FnOnce() -> Fut,
    ) -> Result<T, CloudError>
    where
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let lookup = lock(lookups).entry(name.to_string()).or_default().clone();
        let taken = lookup
            .get(self, region, MAX_AGE, Need::default(), read, |_| 1)
            .await;
        taken.result.clone()
    }

    fn next_seq(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::SeqCst)
    }

    fn region(&self, region: &str) -> Arc<RegionState> {
        lock(&self.regions)
            .entry(region.to_string())
            .or_default()
            .clone()
    }

    fn changed(&self, what: &Changed) -> Option<u64> {
        lock(&self.changed).get(what).map(|(seq, _)| *seq)
    }

    /// Marks `what` as changed by this process, after the call (a listing
    /// begun before its answer may not show it), whatever AWS answered.
    fn mark(&self, what: impl IntoIterator<Item = Changed>) {
        let now = self.now();
        let mut changed = lock(&self.changed);
        // A change older than any listing that may still answer is shown
        // by all of them.
        changed.retain(|_, (_, at)| elapsed(*at, now) < MAX_AGE * 2);
        for what in what {
            changed.insert(what, (self.next_seq(), now));
        }
    }

    /// `call` (a read of `pages` requests), once the region's budget lets
    /// it go.
    async fn send<T>(
        &self,
        region: &str,
        pages: u32,
        call: impl Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        let wait = self.budget.charge(region, pages, self.now())?;
        self.sleep(wait).await;
        call.await
    }

    /// Waits `wait` of the cloud's time.
    async fn sleep(&self, wait: Duration) {
        if !wait.is_zero() {
            tokio::time::sleep(real_delay(
                wait,
                self.cloud.speed(),
                Duration::from_millis(1),
            ))
            .await;
        }
    }

    /// How old a listing of `pages` may be for a resource in motion.
    fn in_motion_max_age(&self, pages: u32) -> Duration {
        in_motion_max_age(pages, self.budget.per_second())
    }

    /// The region's listing in `slot`: the one at hand if it answers
    /// `need`, else a new one by `read` (see [`Shared::get`]).
    async fn listed<T, Fut>(
        &self,
        region: &str,
        need: Need,
        slot: fn(&RegionState) -> &Shared<T>,
        read: impl FnOnce() -> Fut,
        count: fn(&T) -> usize,
    ) -> Arc<Taken<T>>
    where
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let state = self.region(region);
        slot(&state)
            .get(self, region, MAX_AGE, need, read, count)
            .await
    }

    async fn clusters(&self, region: &str, need: Need) -> Arc<Taken<ById<Cluster>>> {
        let port = self.cloud.aurora(region);
        let read = || async { Ok(ById::new(port.describe_clusters().await?, |c| &c.id)) };
        self.listed(region, need, |r| &r.clusters, read, ById::len)
            .await
    }

    async fn groups(&self, region: &str, need: Need) -> Arc<Taken<ById<ReplicationGroup>>> {
        let port = self.cloud.elasticache(region);
        let read = || async {
            Ok(ById::new(port.describe_replication_groups().await?, |g| {
                &g.id
            }))
        };
        self.listed(region, need, |r| &r.groups, read, ById::len)
            .await
    }

    async fn global_clusters(&self, region: &str, need: Need) -> Arc<Taken<ById<GlobalCluster>>> {
        let port = self.cloud.aurora(region);
        let read = || async { Ok(ById::new(port.describe_global_clusters().await?, |g| &g.id)) };
        self.listed(region, need, |r| &r.global_clusters, read, ById::len)
            .await
    }

    async fn instances(&self, region: &str, need: Need) -> Arc<Taken<Vec<RegionInstance>>> {
        let port = self.cloud.aurora(region);
        let read = || port.describe_instances();
        self.listed(region, need, |r| &r.instances, read, Vec::len)
            .await
    }

    async fn global_groups(
        &self,
        region: &str,
        need: Need,
    ) -> Arc<Taken<Vec<GlobalReplicationGroup>>> {
        let port = self.cloud.elasticache(region);
        let read = || port.describe_global_replication_groups(None);
        self.listed(region, need, |r| &r.global_groups, read, Vec::len)
            .await
    }

    /// One resource from a listing: the one at hand, or a newer one when
    /// this process changed the resource since it began or it shows the
    /// resource in motion ([`need_for`]).
    async fn resource<'a, T, V: Clone>(
        &self,
        changed: &Changed,
        listing: impl Fn(Need) -> Listing<'a, T>,
        find: impl Fn(&T) -> Option<&V>,
        settled: fn(&V) -> bool,
    ) -> Result<Option<V>, CloudError> {
        let taken = listing(Need::default()).await;
        let in_motion = taken
            .result
            .as_ref()
            .ok()
            .and_then(&find)
            .is_some_and(|v| !settled(v))
            .then(|| self.in_motion_max_age(taken.pages));
        let need = need_for(self.changed(changed), in_motion, self.now());
        let taken = if need.met_by(taken.at, taken.seq) {
            taken
        } else {
            listing(need).await
        };
        match &taken.result {
            Ok(all) => Ok(find(all).cloned()),
            Err(error) => Err(error.clone()),
        }
    }

    async fn database_lags(
        &self,
        region: &str,
        id: &str,
        also: impl FnOnce() -> Vec<String>,
        need: Need,
    ) -> Arc<LagObservation> {
        let state = self.region(region);
        let now = self.now();
        state.database_lags.want([id], now);
        let port = self.cloud.aurora(region);
        let mut current = match state.database_lags.at_hand(self, id, need).await {
            Ok(answer) => return answer,
            Err(locked) => locked,
        };
        let now = self.now();
        state
            .database_lags
            .want(also().iter().map(String::as_str), now);
        // Sorted: the wanted ids are a BTreeMap's keys.
        let ids = state.database_lags.wanted(now);
        let seq = self.next_seq();
        let cost = pages(ids.len(), METRIC_QUERIES_PER_CALL);
        let result = self
            .send(region, cost, port.replication_lags(&ids, now))
            .await;
        let taken = Arc::new(Taken {
            at: now,
            seq,
            pages: cost,
            result,
        });
        *current = Some(taken.clone());
        taken
    }

    async fn cache_lags(&self, region: &str, id: &str) -> Arc<LagObservation> {
        let state = self.region(region);
        state.cache_lags.want([id], self.now());
        let groups = self.groups(region, Need::default()).await;
        let port = self.cloud.elasticache(region);
        let mut current = match state.cache_lags.at_hand(self, id, Need::default()).await {
            Ok(answer) => return answer,
            Err(locked) => locked,
        };
        let now = self.now();
        // Every id asked for until now, the ones of the callers that waited
        // for this read included.
        let wanted = state.cache_lags.wanted(now);
        let seq = self.next_seq();
        let mut cost = 1;
        let result = match &groups.result {
            Ok(all) => {
                let batch: Vec<ReplicationGroup> = wanted
                    .iter()
                    .filter_map(|id| all.get(id).cloned())
                    .collect();
                let nodes = batch.iter().map(|g| g.nodes().len()).sum();
                cost = pages(nodes, METRIC_QUERIES_PER_CALL);
                self.send(region, cost, port.replication_lags(&batch, now))
                    .await
                    .map(|mut lags| {
                        // A group the region does not hold has no data point.
                        for id in wanted {
                            lags.entry(id).or_insert(None);
                        }
                        lags
                    })
            }
            Err(error) => Err(error.clone()),
        };
        let taken = Arc::new(Taken {
            at: now,
            seq,
            pages: cost,
            result,
        });
        *current = Some(taken.clone());
        taken
    }
}

/// The shared observation in front of a cloud; a [`Cloud`] itself.
pub struct SharedView {
    state: Arc<State>,
}

/// What one sampling round reads of a region: its clusters and groups.
#[derive(Debug)]
pub struct RegionObservation {
    clusters: Arc<Taken<ById<Cluster>>>,
    groups: Arc<Taken<ById<ReplicationGroup>>>,
}

impl RegionObservation {
    /// The cluster `id` as a describe of it would have answered: `None`
    /// when the region has no such cluster.
    pub fn cluster(&self, id: &str) -> Result<Option<&Cluster>, &CloudError> {
        self.clusters.result.as_ref().map(|all| all.get(id))
    }

    /// The replication group `id`, as [`Self::cluster`].
    pub fn group(&self, id: &str) -> Result<Option<&ReplicationGroup>, &CloudError> {
        self.groups.result.as_ref().map(|all| all.get(id))
    }

    /// When the older of the two listings began.
    pub fn taken_at(&self) -> Timestamp {
        self.clusters.at.min(self.groups.at)
    }
}

/// The replication lags of a region's secondaries, read at once.
pub type LagObservation = Taken<BTreeMap<String, Option<Duration>>>;

impl LagObservation {
    /// The lag of `id`; `None` without a data point.
    pub fn lag(&self, id: &str) -> Result<Option<Duration>, &CloudError> {
        self.result
            .as_ref()
            .map(|all| all.get(id).copied().flatten())
    }

    /// Whether it answers for `id` (a failed read answers for all): an id
    /// asked for after it began may not be in it ([`Lags::at_hand`]).
    pub fn covers(&self, id: &str) -> bool {
        self.result
            .as_ref()
            .map_or(true, |all| all.contains_key(id))
    }
}

/// A region-wide listing, by identifier: sorted once, searched in place. A
/// `HashMap` kept every identifier twice and, filled to less than half as
/// it often is, as many empty slots as resources: a thousand shops'
/// clusters, groups and global clusters, in every region, took twice
/// their size, and twice again while a new listing replaced the old.
#[derive(Debug)]
pub struct ById<T> {
    items: Box<[T]>,
    id: fn(&T) -> &str,
}

impl<T> ById<T> {
    fn new(mut items: Vec<T>, id: fn(&T) -> &str) -> Self {
        items.sort_unstable_by(|a, b| id(a).cmp(id(b)));
        Self {
            items: items.into_boxed_slice(),
            id,
        }
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        let found = self.items.binary_search_by(|item| (self.id)(item).cmp(key));
        found.ok().map(|at| &self.items[at])
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// The resource type and identifier of an RDS ARN: `cluster:ID`, `db:ID`.
fn rds_arn_id(arn: &str) -> Option<(&str, &str)> {
    let mut fields = arn.splitn(7, ':');
    let kind = fields.nth(5)?;
    let id = fields.next()?;
    Some((kind, id))
}

impl SharedView {
    /// `budget`: how fast this view may read each region.
    pub fn new(cloud: Arc<dyn Cloud>, budget: RequestBudget) -> Self {
        Self {
            state: Arc::new(State {
                cloud,
                budget,
                regions: Mutex::new(HashMap::new()),
                changed: Mutex::new(HashMap::new()),
                sequence: AtomicU64::new(0),
            }),
        }
    }

    /// The clusters and groups of `region` for a sampling round: the shared
    /// listings, or new ones when `need` asks (a sampler whose data-plane
    /// probe failed needs to know whether AWS still answers now, not
    /// [`MAX_AGE`] ago).
    pub async fn observe(&self, region: &str, need: Need) -> RegionObservation {
        let (clusters, groups) = tokio::join!(
            self.state.clusters(region, need),
            self.state.groups(region, need)
        );
        RegionObservation { clusters, groups }
    }

    /// The Aurora replication lags of `region`, answering for `id`, at most
    /// [`LAG_MAX_AGE`] old and as new as `need` asks: one batch for every
    /// cluster asked for lately, plus `id` and `also`.
    pub async fn database_lags(
        &self,
        region: &str,
        id: &str,
        also: impl FnOnce() -> Vec<String>,
        need: Need,
    ) -> Arc<LagObservation> {
        self.state.database_lags(region, id, also, need).await
    }
}

impl Cloud for SharedView {
    fn aurora(&self, region: &str) -> Arc<dyn AuroraPort> {
        Arc::new(ViewedAurora {
            inner: self.state.cloud.aurora(region),
            region: region.to_string(),
            state: self.state.clone(),
        })
    }

    fn elasticache(&self, region: &str) -> Arc<dyn ElastiCachePort> {
        Arc::new(ViewedElastiCache {
            inner: self.state.cloud.elasticache(region),
            region: region.to_string(),
            state: self.state.clone(),
        })
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.state.cloud.clock()
    }

    fn speed(&self) -> u32 {
        self.state.cloud.speed()
    }

    fn probe(&self) -> Arc<dyn Probe> {
        self.state.cloud.probe()
    }
}

struct ViewedAurora {
    inner: Arc<dyn AuroraPort>,
    region: String,
    state: Arc<State>,
}

impl ViewedAurora {
    fn cluster_key(&self, id: &str) -> Changed {
        Changed::Cluster(self.region.clone(), id.to_string())
    }

    /// What an RDS ARN names, as a change mark.
    fn arn_key(&self, arn: &str) -> Option<Changed> {
        let region = arn_region(arn).unwrap_or(&self.region).to_string();
        match rds_arn_id(arn)? {
            ("cluster", id) => Some(Changed::Cluster(region, id.to_string())),
            ("db", id) => Some(Changed::Instance(region, id.to_string())),
            _ => None,
        }
    }

    /// What a listing of the region's instances must show for `cluster`:
    /// this process's changes of its instances, and whether any of them
    /// (or its member list) is in motion.
    /// `pages`: what the listing at hand took.
    fn instances_need(&self, cluster: &Cluster, listed: &[Instance], pages: u32) -> Need {
        let region = &self.region;
        let changed = listed
            .iter()
            .map(|i| i.id.clone())
            .chain(cluster.members.iter().cloned())
            .filter_map(|id| self.state.changed(&Changed::Instance(region.clone(), id)))
            .chain(
                self.state
                    .changed(&Changed::InstancesOf(region.clone(), cluster.id.clone())),
            )
            .max();
        let mut ids: Vec<&str> = listed.iter().map(|i| i.id.as_str()).collect();
        let mut members: Vec<&str> = cluster.members.iter().map(String::as_str).collect();
        ids.sort_unstable();
        members.sort_unstable();
        let in_motion = (ids != members || !listed.iter().all(instance_settled))
            .then(|| self.state.in_motion_max_age(pages));
        need_for(changed, in_motion, self.state.now())
    }
}

#[async_trait]
impl AuroraPort for ViewedAurora {
    fn region(&self) -> &str {
        &self.region
    }

    async fn describe_global_cluster(&self, id: &str) -> Result<Option<GlobalCluster>, CloudError> {
        self.state
            .resource(
                &Changed::GlobalCluster(id.to_string()),
                |need| Box::pin(self.state.global_clusters(&self.region, need)),
                |all| all.get(id),
                global_cluster_settled,
            )
            .await
    }

    async fn describe_global_clusters(&self) -> Result<Vec<GlobalCluster>, CloudError> {
        let taken = self
            .state
            .global_clusters(&self.region, Need::default())
            .await;
        taken
            .result
            .as_ref()
            .map(|all| all.values().cloned().collect())
            .map_err(Clone::clone)
    }

    async fn create_global_cluster(
        &self,
        request: &CreateGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        let result = self.inner.create_global_cluster(request).await;
        let mut marks = vec![Changed::GlobalCluster(request.global_cluster_id.clone())];
        marks.extend(self.arn_key(&request.source_cluster_arn));
        self.state.mark(marks);
        result
    }

    async fn modify_global_cluster(
        &self,
        request: &ModifyGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        let result = self.inner.modify_global_cluster(request).await;
        self.state
            .mark([Changed::GlobalCluster(request.global_cluster_id.clone())]);
        result
    }

    async fn delete_global_cluster(&self, id: &str) -> Result<(), CloudError> {
        let result = self.inner.delete_global_cluster(id).await;
        self.state.mark([Changed::GlobalCluster(id.to_string())]);
        result
    }

    async fn remove_from_global_cluster(
        &self,
        global_cluster_id: &str,
        cluster_arn: &str,
    ) -> Result<(), CloudError> {
        let result = self
            .inner
            .remove_from_global_cluster(global_cluster_id, cluster_arn)
            .await;
        let mut marks = vec![Changed::GlobalCluster(global_cluster_id.to_string())];
        marks.extend(self.arn_key(cluster_arn));
        self.state.mark(marks);
        result
    }

    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<(), CloudError> {
        let result = self
            .inner
            .failover_global_cluster(global_cluster_id, target_cluster_arn, allow_data_loss)
            .await;
        let mut marks = vec![Changed::GlobalCluster(global_cluster_id.to_string())];
        marks.extend(self.arn_key(target_cluster_arn));
        self.state.mark(marks);
        result
    }

    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
    ) -> Result<(), CloudError> {
        let result = self
            .inner
            .switchover_global_cluster(global_cluster_id, target_cluster_arn)
            .await;
        let mut marks = vec![Changed::GlobalCluster(global_cluster_id.to_string())];
        marks.extend(self.arn_key(target_cluster_arn));
        self.state.mark(marks);
        result
    }

    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>, CloudError> {
        self.state
            .resource(
                &self.cluster_key(id),
                |need| Box::pin(self.state.clusters(&self.region, need)),
                |all| all.get(id),
                cluster_settled,
            )
            .await
    }

    async fn describe_clusters(&self) -> Result<Vec<Cluster>, CloudError> {
        let taken = self.state.clusters(&self.region, Need::default()).await;
        taken
            .result
            .as_ref()
            .map(|all| all.values().cloned().collect())
            .map_err(Clone::clone)
    }

    async fn create_cluster(&self, request: &CreateClusterRequest) -> Result<Cluster, CloudError> {
        let result = self.inner.create_cluster(request).await;
        let mut marks = vec![
            self.cluster_key(&request.cluster_id),
            Changed::InstancesOf(self.region.clone(), request.cluster_id.clone()),
        ];
        marks.extend(
            request
                .global_cluster_id
                .iter()
                .map(|g| Changed::GlobalCluster(g.clone())),
        );
        self.state.mark(marks);
        result
    }

    async fn modify_cluster(&self, request: &ModifyClusterRequest) -> Result<Cluster, CloudError> {
        let result = self.inner.modify_cluster(request).await;
        self.state.mark([self.cluster_key(&request.cluster_id)]);
        result
    }

    async fn delete_cluster(&self, request: &DeleteClusterRequest) -> Result<(), CloudError> {
        let result = self.inner.delete_cluster(request).await;
        self.state.mark([
            self.cluster_key(&request.cluster_id),
            Changed::InstancesOf(self.region.clone(), request.cluster_id.clone()),
        ]);
        result
    }

    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError> {
        let result = self.inner.add_tags(resource_arn, tags).await;
        self.state.mark(self.arn_key(resource_arn));
        result
    }

    async fn list_instances(&self, cluster_id: &str) -> Result<Vec<Instance>, CloudError> {
        let Some(cluster) = self.describe_cluster(cluster_id).await? else {
            return Ok(Vec::new());
        };
        let taken = self.state.instances(&self.region, Need::default()).await;
        let listed = |taken: &Taken<Vec<RegionInstance>>| match &taken.result {
            Ok(all) => Ok(instances_of(&cluster, all)),
            Err(error) => Err(error.clone()),
        };
        let need = match listed(&taken) {
            Ok(instances) => self.instances_need(&cluster, &instances, taken.pages),
            Err(_) => Need::default(),
        };
        if need.met_by(taken.at, taken.seq) {
            return listed(&taken);
        }
        listed(&*self.state.instances(&self.region, need).await)
    }

    async fn describe_instances(&self) -> Result<Vec<RegionInstance>, CloudError> {
        let taken = self.state.instances(&self.region, Need::default()).await;
        taken.result.clone()
    }

    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<Instance, CloudError> {
        let result = self.inner.create_instance(request).await;
        self.state.mark([
            Changed::InstancesOf(self.region.clone(), request.cluster_id.clone()),
            Changed::Instance(self.region.clone(), request.instance_id.clone()),
        ]);
        result
    }

    async fn delete_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        let result = self.inner.delete_instance(instance_id).await;
        self.state.mark([Changed::Instance(
            self.region.clone(),
            instance_id.to_string(),
        )]);
        result
    }

    async fn modify_instance(&self, request: &ModifyInstanceRequest) -> Result<(), CloudError> {
        let result = self.inner.modify_instance(request).await;
        self.state.mark([Changed::Instance(
            self.region.clone(),
            request.instance_id.clone(),
        )]);
        result
    }

    async fn describe_subnet_group(&self, name: &str) -> Result<Option<SubnetGroup>, CloudError> {
        let lookups = &self.state.region(&self.region).database_subnet_groups;
        self.state
            .looked_up(&self.region, lookups, name, || {
                self.inner.describe_subnet_group(name)
            })
            .await
    }

    async fn default_engine_version(
        &self,
        engine: &str,
        major: &str,
    ) -> Result<Option<String>, CloudError> {
        let lookups = &self.state.region(&self.region).engine_versions;
        self.state
            .looked_up(&self.region, lookups, &format!("{engine}/{major}"), || {
                self.inner.default_engine_version(engine, major)
            })
            .await
    }

    async fn replication_lag(
        &self,
        cluster_id: &str,
        _now: Timestamp,
    ) -> Result<Option<Duration>, CloudError> {
        let lags = self
            .state
            .database_lags(&self.region, cluster_id, Vec::new, Need::default())
            .await;
        lags.lag(cluster_id).map_err(Clone::clone)
    }

    async fn replication_lags(
        &self,
        cluster_ids: &[String],
        now: Timestamp,
    ) -> Result<BTreeMap<String, Option<Duration>>, CloudError> {
        let cost = pages(cluster_ids.len(), METRIC_QUERIES_PER_CALL);
        self.state
            .send(
                &self.region,
                cost,
                self.inner.replication_lags(cluster_ids, now),
            )
            .await
    }
}

struct ViewedElastiCache {
    inner: Arc<dyn ElastiCachePort>,
    region: String,
    state: Arc<State>,
}

impl ViewedElastiCache {
    fn group_key(&self, id: &str) -> Changed {
        Changed::Group(self.region.clone(), id.to_string())
    }

    fn global_key(global_replication_group_id: &str) -> Option<Changed> {
        suffix_of(global_replication_group_id).map(|s| Changed::GlobalGroup(s.to_string()))
    }
}

#[async_trait]
impl ElastiCachePort for ViewedElastiCache {
    fn region(&self) -> &str {
        &self.region
    }

    async fn describe_global_replication_groups(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<GlobalReplicationGroup>, CloudError> {
        match id {
            Some(id) => {
                self.state
                    .send(
                        &self.region,
                        1,
                        self.inner.describe_global_replication_groups(Some(id)),
                    )
                    .await
            }
            None => self
                .state
                .global_groups(&self.region, Need::default())
                .await
                .result
                .clone(),
        }
    }

    async fn global_replication_group(
        &self,
        suffix: &str,
    ) -> Result<Option<GlobalReplicationGroup>, CloudError> {
        self.state
            .resource(
                &Changed::GlobalGroup(suffix.to_string()),
                |need| Box::pin(self.state.global_groups(&self.region, need)),
                |all| find_global(all, suffix),
                global_group_settled,
            )
            .await
    }

    async fn create_global_replication_group(
        &self,
        request: &CreateGlobalReplicationGroupRequest,
    ) -> Result<GlobalReplicationGroup, CloudError> {
        let result = self.inner.create_global_replication_group(request).await;
        self.state.mark([
            Changed::GlobalGroup(request.suffix.clone()),
            self.group_key(&request.primary_replication_group_id),
        ]);
        result
    }

    async fn delete_global_replication_group(&self, id: &str) -> Result<(), CloudError> {
        let result = self.inner.delete_global_replication_group(id).await;
        self.state.mark(Self::global_key(id));
        result
    }

    async fn disassociate_global_replication_group(
        &self,
        global_replication_group_id: &str,
        replication_group_id: &str,
        replication_group_region: &str,
    ) -> Result<(), CloudError> {
        let result = self
            .inner
            .disassociate_global_replication_group(
                global_replication_group_id,
                replication_group_id,
                replication_group_region,
            )
            .await;
        let mut marks: Vec<Changed> = Self::global_key(global_replication_group_id)
            .into_iter()
            .collect();
        marks.push(Changed::Group(
            replication_group_region.to_string(),
            replication_group_id.to_string(),
        ));
        self.state.mark(marks);
        result
    }

    async fn failover_global_replication_group(
        &self,
        global_replication_group_id: &str,
        primary_region: &str,
        primary_replication_group_id: &str,
    ) -> Result<(), CloudError> {
        let result = self
            .inner
            .failover_global_replication_group(
                global_replication_group_id,
                primary_region,
                primary_replication_group_id,
            )
            .await;
        let mut marks: Vec<Changed> = Self::global_key(global_replication_group_id)
            .into_iter()
            .collect();
        marks.push(Changed::Group(
            primary_region.to_string(),
            primary_replication_group_id.to_string(),
        ));
        self.state.mark(marks);
        result
    }

    async fn cache_subnet_group_exists(&self, name: &str) -> Result<bool, CloudError> {
        let lookups = &self.state.region(&self.region).cache_subnet_groups;
        self.state
            .looked_up(&self.region, lookups, name, || {
                self.inner.cache_subnet_group_exists(name)
            })
            .await
    }

    async fn describe_replication_group(
        &self,
        id: &str,
    ) -> Result<Option<ReplicationGroup>, CloudError> {
        self.state
            .resource(
                &self.group_key(id),
                |need| Box::pin(self.state.groups(&self.region, need)),
                |all| all.get(id),
                group_settled,
            )
            .await
    }

    async fn describe_replication_groups(&self) -> Result<Vec<ReplicationGroup>, CloudError> {
        let taken = self.state.groups(&self.region, Need::default()).await;
        taken
            .result
            .as_ref()
            .map(|all| all.values().cloned().collect())
            .map_err(Clone::clone)
    }

    async fn create_replication_group(
        &self,
        request: &CreateReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError> {
        let result = self.inner.create_replication_group(request).await;
        let mut marks = vec![self.group_key(&request.replication_group_id)];
        marks.extend(
            request
                .global_replication_group_id
                .as_deref()
                .and_then(Self::global_key),
        );
        self.state.mark(marks);
        result
    }

    async fn modify_replication_group(
        &self,
        request: &ModifyReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError> {
        let result = self.inner.modify_replication_group(request).await;
        self.state
            .mark([self.group_key(&request.replication_group_id)]);
        result
    }

    async fn delete_replication_group(
        &self,
        request: &DeleteReplicationGroupRequest,
    ) -> Result<(), CloudError> {
        let result = self.inner.delete_replication_group(request).await;
        self.state
            .mark([self.group_key(&request.replication_group_id)]);
        result
    }

    async fn increase_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError> {
        let result = self
            .inner
            .increase_replica_count(replication_group_id, new_replica_count)
            .await;
        self.state.mark([self.group_key(replication_group_id)]);
        result
    }

    async fn decrease_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError> {
        let result = self
            .inner
            .decrease_replica_count(replication_group_id, new_replica_count)
            .await;
        self.state.mark([self.group_key(replication_group_id)]);
        result
    }

    async fn list_tags(&self, resource_arn: &str) -> Result<Tags, CloudError> {
        let region = self.state.region(&self.region);
        let now = self.state.now();
        let changed = self.state.changed(&Changed::Tags(resource_arn.to_string()));
        if let Some((at, seq, tags)) = lock(&region.cache_tags).get(resource_arn)
            && answers(
                *at,
                *seq,
                false,
                now,
                CACHE_TAGS_MAX_AGE,
                need_for(changed, None, now),
            )
        {
            return Ok(tags.clone());
        }
        let seq = self.state.next_seq();
        let tags = self
            .state
            .send(&self.region, 1, self.inner.list_tags(resource_arn))
            .await?;
        lock(&region.cache_tags).insert(resource_arn.to_string(), (now, seq, tags.clone()));
        Ok(tags)
    }

    async fn node_security_groups(
        &self,
        cache_cluster_id: &str,
    ) -> Result<Vec<String>, CloudError> {
        self.state
            .send(
                &self.region,
                1,
                self.inner.node_security_groups(cache_cluster_id),
            )
            .await
    }

    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError> {
        let result = self.inner.add_tags(resource_arn, tags).await;
        let region = self.state.region(&self.region);
        lock(&region.cache_tags).remove(resource_arn);
        // A listing begun before this answer must not be kept either.
        self.state.mark([Changed::Tags(resource_arn.to_string())]);
        result
    }

    async fn replication_lag(
        &self,
        replication_group_id: &str,
        _now: Timestamp,
    ) -> Result<Option<Duration>, CloudError> {
        let lags = self
            .state
            .cache_lags(&self.region, replication_group_id)
            .await;
        lags.lag(replication_group_id).map_err(Clone::clone)
    }

    async fn replication_lags(
        &self,
        groups: &[ReplicationGroup],
        now: Timestamp,
    ) -> Result<BTreeMap<String, Option<Duration>>, CloudError> {
        let nodes = groups.iter().map(|g| g.nodes().len()).sum();
        self.state
            .send(
                &self.region,
                pages(nodes, METRIC_QUERIES_PER_CALL),
                self.inner.replication_lags(groups, now),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    #[test]
    fn a_listing_answers_until_it_is_too_old_or_older_than_asked() {
        let thirty = Duration::from_secs(30);
        let none = Need::default();
        assert!(answers(at(0), 1, false, at(29), thirty, none));
        assert!(!answers(at(0), 1, false, at(30), thirty, none));
        assert!(answers(
            at(10),
            1,
            false,
            at(12),
            thirty,
            Need::since(at(10))
        ));
        assert!(
            !answers(at(9), 1, false, at(12), thirty, Need::since(at(10))),
            "a sampler whose probe failed needs a listing of its own round"
        );
        assert!(
            !answers(at(0), 1, true, at(5), thirty, none),
            "a failed listing is tried again after one round"
        );
        assert!(answers(at(0), 1, true, at(4), thirty, none));
    }

    #[test]
    fn a_change_of_this_process_is_read_in_a_listing_begun_after_it() {
        let changed = need_for(Some(7), None, at(10));
        assert!(!changed.met_by(at(10), 7), "begun with the change");
        assert!(!changed.met_by(at(10), 3), "begun before it, same instant");
        assert!(changed.met_by(at(10), 8));
        assert_eq!(need_for(None, None, at(10)), Need::default());
    }

    #[test]
    fn a_resource_in_motion_is_read_in_a_listing_of_the_last_round() {
        let moving = need_for(None, Some(IN_MOTION_MAX_AGE), at(60));
        assert!(!moving.met_by(at(54), 100));
        assert!(moving.met_by(at(55), 100));
    }

    #[test]
    fn a_fleet_s_listings_in_motion_take_two_thirds_of_the_budget_at_most() {
        // A thousand shops: 30 pages of instances, 10 of each other kind.
        let per_second = 10;
        let rate: f64 = [30, 10, 10, 10, 10]
            .iter()
            .map(|p| f64::from(*p) / listing_interval(*p, per_second).as_secs_f64())
            .sum();
        assert!((rate - 20.0 / 3.0).abs() < 1e-9, "{rate} requests/s");
        assert_eq!(
            listing_interval(30, per_second),
            Duration::from_millis(22_500)
        );
        assert_eq!(
            in_motion_max_age(1, per_second),
            IN_MOTION_MAX_AGE,
            "a small fleet is followed every round"
        );
        assert_eq!(
            in_motion_max_age(30, per_second),
            listing_interval(30, per_second)
        );
    }

    #[test]
    fn a_change_s_result_waits_for_the_listing_s_turn_but_an_outage_check_never_does() {
        let after = Need {
            since: None,
            after: Some(7),
        };
        // 10 pages at 10 requests/s: one listing every 7.5 s.
        assert_eq!(
            turn_of(at(100), 10, false, after, at(102), 10),
            Duration::from_millis(5_500)
        );
        assert_eq!(
            turn_of(at(100), 10, false, after, at(108), 10),
            Duration::ZERO
        );
        assert_eq!(
            turn_of(at(100), 10, false, Need::since(at(101)), at(102), 10),
            Duration::ZERO,
            "a sampler whose probe failed reads its own round at once"
        );
        let moving_and_changed = Need {
            since: Some(at(95)),
            after: Some(7),
        };
        assert_eq!(
            turn_of(at(100), 10, false, moving_and_changed, at(102), 10),
            Duration::from_millis(5_500),
            "a resource in motion that this process changed waits like any change"
        );
        assert_eq!(
            turn_of(at(100), 10, true, after, at(102), 10),
            Duration::ZERO,
            "a failed listing cost AWS nothing to repeat"
        );
        assert_eq!(
            turn_of(at(100), 1, false, after, at(100), 10),
            Duration::ZERO,
            "a one-page listing is one request: never held back"
        );
    }

    #[test]
    fn rds_arns_name_their_resource() {
        assert_eq!(
            rds_arn_id("arn:aws:rds:eu-west-1:123456789012:cluster:acme-eu-west-1"),
            Some(("cluster", "acme-eu-west-1"))
        );
        assert_eq!(
            rds_arn_id("arn:aws:rds:eu-west-1:123456789012:db:acme-eu-west-1-1"),
            Some(("db", "acme-eu-west-1-1"))
        );
        assert_eq!(rds_arn_id("not-an-arn"), None);
    }
}

#[cfg(all(test, feature = "simulation"))]
mod sim_tests {
    use super::*;
    use crate::sim::{Fault, LiveSim, Op, SimCloud, VirtualClock};

    const MINUTE: Duration = Duration::from_secs(60);

    fn cluster(id: &str) -> CreateClusterRequest {
        CreateClusterRequest {
            cluster_id: id.into(),
            engine: "aurora-postgresql".into(),
            engine_version: "16.6".into(),
            storage_encrypted: true,
            master_username: Some("admin_user".into()),
            master_user_password: Some(super::super::aurora::MasterPassword::new(
                "sim-password-0123456789",
            )),
            ..Default::default()
        }
    }

    fn instance(cluster: &str, id: &str) -> CreateInstanceRequest {
        CreateInstanceRequest {
            instance_id: id.into(),
            cluster_id: cluster.into(),
            class: "db.r6g.large".into(),
            engine: "aurora-postgresql".into(),
            ..Default::default()
        }
    }

    /// A view over a simulated cloud whose clock follows the (paused) test
    /// runtime, with `shops` available clusters of two instances each in
    /// eu-west-1.
    async fn fleet(shops: usize) -> (SimCloud, SharedView) {
        fleet_within(shops, RequestBudget::new(1000)).await
    }

    /// [`fleet`], read within `budget`.
    async fn fleet_within(shops: usize, budget: RequestBudget) -> (SimCloud, SharedView) {
        let sim = SimCloud::new(VirtualClock::default());
        let view = SharedView::new(Arc::new(LiveSim::start(sim.clone(), 1)), budget);
        let eu = sim.aurora("eu-west-1");
        for n in 0..shops {
            let id = format!("shop-{n:04}");
            eu.create_cluster(&cluster(&id)).await.unwrap();
        }
        tokio::time::advance(11 * MINUTE).await;
        for n in 0..shops {
            let id = format!("shop-{n:04}");
            for slot in 0..2 {
                eu.create_instance(&instance(&id, &format!("{id}-{slot}")))
                    .await
                    .unwrap();
            }
        }
        tokio::time::advance(11 * MINUTE).await;
        (sim, view)
    }

    fn reads(sim: &SimCloud) -> usize {
        sim.call_count(Op::DescribeDBClusters) + sim.call_count(Op::DescribeDBInstances)
    }

    #[tokio::test(start_paused = true)]
    async fn a_converged_fleet_is_reconciled_from_one_paginated_read_of_each_kind() {
        let (sim, view) = fleet(251).await;
        let before = reads(&sim);
        let eu = view.aurora("eu-west-1");
        for n in 0..251 {
            let id = format!("shop-{n:04}");
            let found = eu.describe_cluster(&id).await.unwrap().expect("exists");
            assert_eq!(found.id, id);
            let instances = eu.list_instances(&id).await.unwrap();
            assert_eq!(instances.len(), 2);
            assert!(instances[0].is_writer, "the first instance took the writes");
        }
        // 251 clusters: three pages; 502 instances: six pages.
        assert_eq!(reads(&sim) - before, 3 + 6);
        assert_eq!(
            eu.list_instances("shop-0007").await.unwrap(),
            sim.aurora("eu-west-1")
                .list_instances("shop-0007")
                .await
                .unwrap(),
            "the shared read answers as AWS does, order and writer flag included"
        );
        // Past the shared read's age, one more read of each kind.
        let before = reads(&sim);
        tokio::time::advance(MAX_AGE).await;
        eu.describe_cluster("shop-0001").await.unwrap();
        eu.list_instances("shop-0001").await.unwrap();
        assert_eq!(reads(&sim) - before, 3 + 6);
    }

    #[tokio::test(start_paused = true)]
    async fn an_action_s_own_result_is_read_in_a_listing_begun_after_it() {
        let (sim, view) = fleet(3).await;
        let eu = view.aurora("eu-west-1");
        eu.describe_cluster("shop-0001").await.unwrap();
        let described = sim.call_count(Op::DescribeDBClusters);
        eu.modify_cluster(&ModifyClusterRequest {
            cluster_id: "shop-0001".into(),
            security_group_ids: Some(vec!["sg-0123456789abcdef0".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
        let after = eu.describe_cluster("shop-0001").await.unwrap().unwrap();
        assert_eq!(
            after.security_group_ids,
            vec!["sg-0123456789abcdef0".to_string()],
            "the change is seen at once, on the same instant"
        );
        assert_eq!(sim.call_count(Op::DescribeDBClusters), described + 1);
        // The new listing serves every other shop too.
        eu.describe_cluster("shop-0002").await.unwrap();
        eu.describe_cluster("shop-0001").await.unwrap();
        assert_eq!(sim.call_count(Op::DescribeDBClusters), described + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn changes_made_over_a_few_seconds_by_many_shops_are_read_in_one_listing_an_interval() {
        // 300 shops of two instances: 6 pages, one listing every 4.5 s at
        // 10 requests/s.
        let (sim, view) = fleet_within(300, RequestBudget::new(10)).await;
        let eu = view.aurora("eu-west-1");
        eu.list_instances("shop-0000").await.unwrap();
        let before = sim.call_count(Op::DescribeDBInstances);
        let start = view.clock().now();
        let readers = (0..50).map(|n| {
            let eu = eu.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(100) * n).await;
                let id = format!("shop-{n:04}");
                eu.create_instance(&instance(&id, &format!("{id}-reader")))
                    .await
                    .unwrap();
                let listed = eu.list_instances(&id).await.unwrap();
                assert!(
                    listed.iter().any(|i| i.id == format!("{id}-reader")),
                    "{id} sees its own new reader"
                );
            }
        });
        futures::future::join_all(readers).await;
        let listings = (sim.call_count(Op::DescribeDBInstances) - before) / 7;
        assert!(listings <= 3, "{listings} listings for 50 changes over 5 s");
        assert!(
            crate::clock::elapsed(start, view.clock().now()) < Duration::from_secs(15),
            "each shop waited one interval at most"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_resource_in_motion_is_followed_by_one_listing_a_round_for_every_shop() {
        let sim = SimCloud::new(VirtualClock::default());
        let view = SharedView::new(
            Arc::new(LiveSim::start(sim.clone(), 1)),
            RequestBudget::new(1000),
        );
        for n in 0..50 {
            sim.aurora("eu-west-1")
                .create_cluster(&cluster(&format!("shop-{n:04}")))
                .await
                .unwrap();
        }
        let eu = view.aurora("eu-west-1");
        for round in 1..=3 {
            for n in 0..50 {
                let found = eu
                    .describe_cluster(&format!("shop-{n:04}"))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(found.status, ClusterStatus::Creating);
            }
            assert_eq!(sim.call_count(Op::DescribeDBClusters), round);
            tokio::time::advance(IN_MOTION_MAX_AGE + Duration::from_secs(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_subnet_group_named_by_a_whole_fleet_is_looked_up_once_per_interval() {
        let sim = SimCloud::new(VirtualClock::default());
        let view = SharedView::new(
            Arc::new(LiveSim::start(sim.clone(), 1)),
            RequestBudget::default(),
        );
        let lookups = || {
            futures::future::join_all((0..500).map(|_| {
                let (aurora, cache) = (view.aurora("eu-west-1"), view.elasticache("eu-west-1"));
                async move {
                    (
                        aurora.describe_subnet_group("shops").await.unwrap(),
                        cache.cache_subnet_group_exists("shops").await.unwrap(),
                    )
                }
            }))
        };
        let answers = lookups().await;
        assert!(answers.iter().all(|a| a == &answers[0]));
        let sent = || {
            (
                sim.call_count(Op::DescribeDBSubnetGroups),
                sim.call_count(Op::DescribeCacheSubnetGroups),
            )
        };
        assert_eq!(sent(), (1, 1), "500 reconciles at once: one lookup each");
        tokio::time::advance(MAX_AGE - Duration::from_secs(1)).await;
        lookups().await;
        assert_eq!(sent(), (1, 1));
        tokio::time::advance(Duration::from_secs(2)).await;
        lookups().await;
        assert_eq!(
            sent(),
            (2, 2),
            "a group created meanwhile is seen within MAX_AGE"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reads_go_no_faster_than_the_budget_and_changes_are_never_held_back() {
        let sim = SimCloud::new(VirtualClock::default());
        let view = SharedView::new(
            Arc::new(LiveSim::start(sim.clone(), 1)),
            RequestBudget::new(10),
        );
        let start = view.clock().now();
        let eu = view.aurora("eu-west-1");
        let asks = (0..150).map(|n| {
            let eu = eu.clone();
            async move { eu.describe_subnet_group(&format!("subnets-{n}")).await }
        });
        let answers = futures::future::join_all(asks).await;
        let sent = sim.call_count(Op::DescribeDBSubnetGroups);
        let refused = answers
            .iter()
            .filter(|a| a.as_ref().is_err_and(|e| e.metric_label() == "throttled"))
            .count();
        // A burst of 50, then 10 a second for the 5 s a read may wait: the
        // others are refused without reaching AWS.
        assert_eq!(sent + refused, 150);
        assert!((99..=101).contains(&sent), "{sent} sent");
        assert!(crate::clock::elapsed(start, view.clock().now()) <= Duration::from_secs(6));
        // A change is never held back by a spent budget.
        sim.aurora("eu-west-1")
            .create_cluster(&cluster("late"))
            .await
            .unwrap();
        eu.delete_cluster(&DeleteClusterRequest {
            cluster_id: "late".into(),
            skip_final_snapshot: true,
            final_snapshot_id: None,
        })
        .await
        .expect_err("creating: refused by AWS, but sent");
        assert_eq!(sim.call_count(Op::DeleteDBCluster), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_region_answers_every_shop_with_one_failed_read_a_round() {
        let (sim, view) = fleet(20).await;
        sim.inject(Fault::RegionOutage {
            region: "eu-west-1".into(),
        });
        let before = sim.call_count(Op::DescribeDBClusters);
        let eu = view.aurora("eu-west-1");
        for n in 0..20 {
            let error = eu
                .describe_cluster(&format!("shop-{n:04}"))
                .await
                .expect_err("the region cannot be reached");
            assert!(matches!(error, CloudError::RegionUnavailable { .. }));
        }
        assert_eq!(sim.call_count(Op::DescribeDBClusters) - before, 1);
        tokio::time::advance(FAILED_MAX_AGE).await;
        eu.describe_cluster("shop-0000").await.unwrap_err();
        assert_eq!(sim.call_count(Op::DescribeDBClusters) - before, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sampler_whose_probe_failed_gets_a_read_of_its_own_round() {
        let (sim, view) = fleet(1).await;
        let first = view.observe("eu-west-1", Need::default()).await;
        assert!(first.cluster("shop-0000").unwrap().is_some());
        tokio::time::advance(Duration::from_secs(5)).await;
        sim.inject(Fault::RegionOutage {
            region: "eu-west-1".into(),
        });
        let shared = view.observe("eu-west-1", Need::default()).await;
        assert!(shared.cluster("shop-0000").is_ok(), "still the shared read");
        let round = view.clock().now();
        let fresh = view.observe("eu-west-1", Need::since(round)).await;
        assert!(
            fresh.cluster("shop-0000").is_err(),
            "AWS does not answer now"
        );
    }
}
